"""Callbacks that write files: ModelCheckpoint and BackupAndRestore.

Every file is written atomically (temporary file, fsync, rename), and only by
the chief rank under MPI.
"""

from __future__ import annotations

import contextlib
import math
import os

from hpnn.backend import to_numpy
from hpnn.io.archive import read_archive, write_archive
from hpnn.layers.base import random_generators
from hpnn.training.callbacks import Callback


def _is_chief() -> bool:
    from hpnn.distributed import is_chief  # an upper layer: import late

    return is_chief()


class ModelCheckpoint(Callback):
    """Save the model (or its weights) at the end of epochs.

    Args:
        filepath: may hold ``{epoch}`` (1-based) and log keys, e.g.
            ``"ckpt-{epoch:02d}-{val_loss:.3f}.hpnn"``.
        monitor, mode: what "best" means with ``save_best_only``.
        save_best_only: only write when ``monitor`` improved.
        save_weights_only: write ``model.save_weights`` instead of ``model.save``.
        initial_value_threshold: a value ``monitor`` must beat before the first save.
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        super().__init__()
        if save_freq != "epoch":
            raise NotImplementedError("ModelCheckpoint: only save_freq='epoch' is supported.")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"ModelCheckpoint: mode must be auto, min or max. Received: {mode!r}")
        self.filepath = os.fspath(filepath)
        self.monitor, self.verbose = monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        if mode == "auto":
            mode = "max" if "acc" in monitor or monitor.endswith("auc") else "min"
        self.mode = mode
        self.best = initial_value_threshold

    def _improved(self, value) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                raise ValueError(
                    f"ModelCheckpoint: monitor={self.monitor!r} is not in the logs. "
                    f"Available: {', '.join(sorted(logs))}"
                )
            if math.isnan(value) or not self._improved(value):
                return
            self.best = value
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            raise ValueError(
                f"ModelCheckpoint: filepath {self.filepath!r} names {e}, which is "
                f"not in the logs ({', '.join(sorted(logs))})."
            ) from None
        if not _is_chief():
            return
        if self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class BackupAndRestore(Callback):
    """Resume an interrupted ``fit`` from the last completed epoch.

    At each epoch end the weights, optimizer state, epoch, shuffle seed and the
    random-generator states of the layers are written (atomically) to
    ``backup_dir``. When ``fit`` starts and a backup exists, it is restored and
    training continues with the next epoch, ending with the same weights as a run
    that was never interrupted. The backup is deleted when training completes.
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        if save_freq != "epoch":
            raise NotImplementedError("BackupAndRestore: only save_freq='epoch' is supported.")
        self.backup_dir = os.fspath(backup_dir)
        self.delete_checkpoint = delete_checkpoint
        self.path = os.path.join(self.backup_dir, "backup.hpnn")

    def on_train_begin(self, logs=None):
        if not os.path.exists(self.path):
            return
        document, arrays = read_archive(self.path)
        model = self.model
        n_w = document["n_weights"]
        model.set_weights([arrays[f"w{i}"] for i in range(n_w)])
        if document["n_slots"]:
            from hpnn.models.saving import build_optimizer_state  # (models imports this)

            build_optimizer_state(model, document.get("slot_weights"))
            model.optimizer.set_state(
                document["iterations"], [arrays[f"s{i}"] for i in range(document["n_slots"])]
            )
        model._shuffle_seed = int(document["shuffle_seed"])
        for gen, state in zip(random_generators(model), document["rng_states"], strict=True):
            gen.bit_generator.state = state
        model._resume_epoch = int(document["epoch"]) + 1

    def on_epoch_end(self, epoch, logs=None):
        if not _is_chief():
            return
        model = self.model
        weights = model.get_weights()
        slots = [to_numpy(s) for s in model.optimizer.variables()] if model.optimizer else []
        arrays = {f"w{i}": w for i, w in enumerate(weights)}
        arrays.update({f"s{i}": s for i, s in enumerate(slots)})
        document = {
            "epoch": epoch,
            "n_weights": len(weights),
            "n_slots": len(slots),
            "slot_weights": model.optimizer.state_variables(model.weights) if slots else [],
            "iterations": int(model.optimizer.iterations),
            "shuffle_seed": int(model._shuffle_seed),
            "rng_states": [g.bit_generator.state for g in random_generators(model)],
        }
        write_archive(self.path, document, arrays)

    def on_train_end(self, logs=None):
        # Reached only when fit finished: an interrupted run never gets here.
        if self.delete_checkpoint and _is_chief():
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
