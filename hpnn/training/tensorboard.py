"""The ``TensorBoard`` callback: Keras 3's logs, written as TensorBoard event files.

No TensorFlow is needed (the files are encoded by :mod:`hpnn.io.tfevents`);
``tensorboard --logdir logs`` shows them. Like Keras, training values go to
``<log_dir>/train`` and validation values to ``<log_dir>/validation``, under the tags
``epoch_<name>`` (step: the epoch), ``batch_<name>`` (step: the global batch count,
with ``update_freq``), ``evaluation_<name>_vs_iterations`` (after each validation or
``evaluate``; step: the optimizer's iterations) and ``<weight path>/histogram``.
"""

from __future__ import annotations

import os
import time

from hpnn.backend import to_numpy
from hpnn.distributed import is_chief
from hpnn.io.tfevents import EventFileWriter
from hpnn.training.callbacks import Callback


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class TensorBoard(Callback):
    """Write the logs of ``fit`` (and ``evaluate``) for TensorBoard.

    Args:
        log_dir: the directory of the ``train`` and ``validation`` event files.
        histogram_freq: every this many epochs, a histogram of every weight (0: none).
        write_graph, write_images: accepted for Keras' signature; hpnn writes no graph
            and no weight images (``write_images=True`` raises).
        write_steps_per_second: also log ``steps_per_second`` (per epoch) and
            ``batch_steps_per_second`` (with batch-level logging).
        update_freq: ``"epoch"``, ``"batch"`` or an int ``N``: also log each
            ``N``-th batch's values as ``batch_<name>``.
        profile_batch, embeddings_freq, embeddings_metadata: must be 0 / None here
            (profiling and the embedding projector are not supported).

    Only rank 0 writes under MPI.
    """

    def __init__(
        self,
        log_dir="logs",
        histogram_freq=0,
        write_graph=True,
        write_images=False,
        write_steps_per_second=False,
        update_freq="epoch",
        profile_batch=0,
        embeddings_freq=0,
        embeddings_metadata=None,
    ):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int):
            raise ValueError(f"TensorBoard: histogram_freq must be an int >= 0. "
                             f"Received: {histogram_freq!r}")  # fmt: skip
        if histogram_freq < 0:
            raise ValueError(
                f"TensorBoard: histogram_freq must be >= 0. Received: {histogram_freq}"
            )
        freq = 1 if update_freq == "batch" else update_freq
        if freq != "epoch" and (isinstance(freq, bool) or not isinstance(freq, int) or freq < 1):
            raise ValueError(
                "TensorBoard: update_freq must be 'epoch', 'batch' or a positive int. "
                f"Received: {update_freq!r}"
            )
        unsupported = {
            "write_images": write_images,
            "profile_batch": profile_batch,
            "embeddings_freq": embeddings_freq,
            "embeddings_metadata": embeddings_metadata,
        }
        for name, value in unsupported.items():
            if value:
                raise NotImplementedError(
                    f"TensorBoard: {name} is not supported by hpnn (scalars and weight "
                    f"histograms are). Received: {name}={value!r}"
                )
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = freq
        self._writers: dict[str, EventFileWriter] = {}
        self._global_batch = 0
        self._batch_start = self._epoch_start = 0.0
        self._epoch_batches = 0

    def _writer(self, which: str) -> EventFileWriter:
        if which not in self._writers:
            self._writers[which] = EventFileWriter(os.path.join(self.log_dir, which))
        return self._writers[which]

    def _write(self, which: str, step: int, logs: dict, prefix: str = "", suffix: str = ""):
        values = {}
        for name, value in (logs or {}).items():
            v = _number(value)
            if v is not None:
                values[f"{prefix}{name}{suffix}"] = v
        if values and is_chief():
            self._writer(which).scalars(step, values)

    def on_train_begin(self, logs=None):
        self._global_batch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._epoch_batches = time.perf_counter(), 0

    def on_train_batch_begin(self, batch, logs=None):
        self._global_batch += 1
        self._epoch_batches += 1
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or self._global_batch % self.update_freq:
            return
        logs = dict(logs or {})
        if self.write_steps_per_second:
            logs["steps_per_second"] = 1.0 / max(time.perf_counter() - self._batch_start, 1e-9)
        self._write("train", self._global_batch, logs, prefix="batch_")

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            step = int(optimizer.iterations)
            self._write("validation", step, logs, prefix="evaluation_", suffix="_vs_iterations")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in train:
            train["learning_rate"] = optimizer.learning_rate
        if self.write_steps_per_second:
            elapsed = max(time.perf_counter() - self._epoch_start, 1e-9)
            train["steps_per_second"] = self._epoch_batches / elapsed
        self._write("train", epoch, train, prefix="epoch_")
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        self._write("validation", epoch, val, prefix="epoch_")
        if self.histogram_freq and epoch % self.histogram_freq == 0 and is_chief():
            weights = {
                f"{w.path.replace(':', '_')}/histogram": to_numpy(w.value)
                for w in self.model.weights
            }
            self._writer("train").histograms(epoch, weights)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
