"""The epoch loops: ``fit``, ``evaluate`` and ``predict`` over arrays, a PyDataset or a
generator, with callbacks, validation and MPI sharding. Every batch goes through the
trainer's ``_run_step``, which decides where it runs (``hpnn.training.trainer``)."""

from __future__ import annotations

import contextlib
import sys
import time
import traceback

import numpy as np

from hpnn.backend import floatx, to_numpy
from hpnn.data import adapter, pydataset
from hpnn.distributed import data_parallel, get_comm
from hpnn.random import make_rng
from hpnn.training.callbacks import CallbackList, History, ProgbarLogger
from hpnn.training.step import Step


@contextlib.contextmanager
def _abort_on_error(comm):
    """Under MPI, an exception on one rank ends the whole job now instead of hanging it."""
    if comm is None or comm.size == 1:
        yield
        return
    try:
        yield
    except BaseException:
        sys.stderr.write(f"hpnn: rank {comm.rank} of {comm.size} failed; aborting the job.\n")
        traceback.print_exc()
        sys.stderr.flush()
        time.sleep(0.5)  # let the launcher forward the traceback before the job is killed
        comm.abort(1)
        raise


def _joined(batches):
    """The batches' outputs joined on the host: one array, or a list per output."""
    if isinstance(batches[0], list):
        return [np.concatenate([to_numpy(b[i]) for b in batches]) for i in range(len(batches[0]))]
    return np.concatenate([to_numpy(b) for b in batches], axis=0)


class Loops:
    """The loops of ``Model.fit``, ``evaluate`` and ``predict`` (a mixin of the trainer)."""

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
    ):
        """Train for ``epochs`` epochs; returns the ``History``.

        ``x`` is an array (or a list of arrays for several inputs) with targets ``y``,
        or a ``hpnn.utils.PyDataset`` or generator that yields ``(x, y)`` /
        ``(x, y, sample_weight)`` batches (then ``y``, ``batch_size`` and
        ``sample_weight`` come from it, and ``steps_per_epoch`` may cap an epoch).
        """
        self._require_compiled("fit")
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int. Received: epochs={epochs!r}")
        comm = get_comm()
        ranks = comm.size if comm is not None else 1
        batch_size = adapter.check_batch_size(batch_size)
        if pydataset.is_batched(x):
            self._check_batched("fit", x, y, sample_weight, comm)
            if validation_split:
                raise ValueError(
                    "fit(): validation_split needs arrays; with a PyDataset or generator pass "
                    "validation_data."
                )
            steps = pydataset.steps_of(x, steps_per_epoch)
            samples, self._metrics_pending = None, True

            def run_epoch(epoch, cb):
                batches = self._source_batches(x, steps, class_weight, epoch, shuffle)
                return self._train_epoch(batches, epoch, cb, source=x)

        else:
            if steps_per_epoch is not None:
                raise NotImplementedError(
                    "fit(): steps_per_epoch is supported with a PyDataset or generator only."
                )
            x, y = self._prepare(x, y, "")
            w = adapter.sample_weights(sample_weight, class_weight, y)
            if validation_data is None and validation_split:
                (x, y, w), validation_data = adapter.split_validation(x, y, validation_split, w)
            steps, samples = -(-len(x) // (batch_size * ranks)), len(x)
            self._make_metrics(y.shape)

            def run_epoch(epoch, cb):
                batches = self._array_batches(x, y, w, batch_size, epoch, shuffle, comm)
                return self._train_epoch(batches, epoch, cb)

        validate = self._validation(
            validation_data, validation_steps, validation_batch_size or batch_size, comm
        )
        verbose = 1 if verbose == "auto" else verbose
        if comm is not None and comm.rank != 0:
            verbose = 0  # one progress bar per job, not one per rank
        history = History()
        # Keras' order: the user's callbacks first (a learning-rate callback's additions to
        # the logs then reach History), then History, then the progress bar.
        cbs = [*(callbacks or []), history]
        if verbose:
            cbs.append(ProgbarLogger(verbose))
        cb = CallbackList(
            cbs,
            model=self,
            epochs=epochs,
            verbose=verbose,
            steps=steps,
            batch_size=batch_size,
            samples=samples,
        )
        # One seed for the run; each epoch's order is drawn from (seed, epoch), so an
        # epoch's shuffle does not depend on what ran before it (resume, MPI shards).
        self._shuffle_seed = int(make_rng().integers(2**63))
        if comm is not None:
            self._shuffle_seed = comm.bcast_obj(self._shuffle_seed)
            data_parallel.broadcast_state(self, comm, Step(self).generators())
            data_parallel.prime_metrics(self)
        self.stop_training = False
        logs = {}
        self._resume_epoch = None
        with _abort_on_error(comm):
            cb.on_train_begin()
            if self._resume_epoch is not None:  # set by BackupAndRestore
                initial_epoch = max(initial_epoch, self._resume_epoch)
            with data_parallel.node_shared_weights(self, comm):
                for epoch in range(initial_epoch, epochs):
                    logs = run_epoch(epoch, cb)
                    if self.stop_training and not logs:  # a generator ran out of batches
                        break
                    if validate is not None and (epoch + 1) % validation_freq == 0:
                        logs.update({f"val_{k}": v for k, v in validate(cb).items()})
                    cb.on_epoch_end(epoch, logs)
                    if self.stop_training:
                        break
            cb.on_train_end(logs)
        return history

    def _check_batched(self, where, x, y, sample_weight, comm) -> None:
        """What cannot come with data that is already in batches."""
        kind = type(x).__name__
        if y is not None:
            raise ValueError(
                f"{where}(): with x a {kind} (a PyDataset or generator), y must not be passed: "
                "the batches hold the targets. Received: y"
            )
        if sample_weight is not None:
            raise ValueError(
                f"{where}(): with x a {kind}, sample_weight must not be passed: yield "
                "(x, y, sample_weight) batches instead."
            )
        if comm is not None and comm.size > 1:
            raise NotImplementedError(
                f"{where}(): a PyDataset or generator under MPI is not supported yet; pass "
                "arrays (each rank then takes its shard of every global batch)."
            )

    def _validation(self, validation_data, steps, batch_size, comm):
        """A function ``cb -> logs`` that evaluates ``validation_data``, or None."""
        if validation_data is None:
            return None
        if pydataset.is_batched(validation_data):
            self._check_batched("fit", validation_data, None, None, comm)
            if not isinstance(validation_data, pydataset.PyDataset) and steps is None:
                raise ValueError(
                    "fit(): a generator as validation_data needs validation_steps (it is read "
                    "again every epoch)."
                )
            n = pydataset.steps_of(validation_data, steps)
            return lambda cb: self._evaluate_batches(validation_data, n, cb)
        shape = ""
        if isinstance(validation_data, (tuple, list)):
            shape = f" of length {len(validation_data)}"
        if not shape or len(validation_data) not in (2, 3):
            raise ValueError(
                "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                f"sample_weight_val), or a PyDataset. Received: {type(validation_data).__name__}"
                f"{shape}"
            )
        xv, yv = self._prepare(*validation_data[:2], "validation_data ")
        wv = validation_data[2] if len(validation_data) == 3 else None
        wv = adapter.sample_weights(wv, None, yv, "validation_data ")
        return lambda cb: self._evaluate_arrays(xv, yv, wv, batch_size, comm, cb)

    def _batch_arrays(self, batch, step, where, class_weight=None, targets_needed=True):
        """``(x, y, w)`` of one batch from a PyDataset or generator, checked."""
        xb, yb, wb = pydataset.unpack(batch, step, where)
        xb, yb = self._prepare(xb, yb, f"batch {step}: ", targets_needed)
        if yb is not None:
            wb = adapter.sample_weights(wb, class_weight, yb, f"batch {step}: ")
            if getattr(self, "_metrics_pending", False):
                self._make_metrics(yb.shape)
                self._metrics_pending = False
        return xb, yb, wb

    def _source_batches(self, source, steps, class_weight, epoch, shuffle):
        """An epoch's batches of a PyDataset (in a new order when ``shuffle``) or a
        generator: ``(x, y, sample_weight, n, where)``, as ``_array_batches``."""
        order = None
        if shuffle and isinstance(source, pydataset.PyDataset):
            order = np.random.default_rng((self._shuffle_seed, epoch))
        for step, batch in enumerate(pydataset.epoch_batches(source, steps, order)):
            xb, yb, wb = self._batch_arrays(batch, step, "fit", class_weight)
            yield xb, yb, wb, len(yb), None

    def _epoch_order(self, n, epoch, shuffle):
        if not shuffle:
            return None
        return np.random.default_rng((self._shuffle_seed, epoch)).permutation(n)

    def _array_batches(self, x, y, w, batch_size, epoch, shuffle, comm=None):
        """An epoch's batches of arrays: ``(x, y, sample_weight, n, where)`` with ``n``
        the global batch's size and, under MPI, this rank's shard of it and ``where``
        (the communicator, the shard's offset, ``n``) for the placement."""
        order = self._epoch_order(len(x), epoch, shuffle)
        ranks = comm.size if comm is not None else 1
        for sl in adapter.batch_slices(len(x), batch_size * ranks):
            idx = sl if order is None else order[sl]
            n = sl.stop - sl.start
            if comm is None:
                yield x[idx], y[idx], None if w is None else w[idx], n, None
                continue
            idx = np.arange(sl.start, sl.stop) if order is None else idx
            shard = data_parallel.even_shard(n, comm.rank, ranks)
            mine = idx[shard]
            wb = None if w is None else w[mine]
            yield x[mine], y[mine], wb, n, (comm, shard.start, n)

    def _train_epoch(self, batches, epoch, cb, source=None):
        """One epoch: the step on every batch of ``batches`` (``_array_batches`` or
        ``_source_batches``), with the callbacks. ``source``: the PyDataset or generator
        the batches come from; {} when a generator had nothing left (training stops)."""
        cb.on_epoch_begin(epoch)
        for m in self.metrics:
            m.reset_state()
        total, seen, logs = 0.0, 0, {}
        for step, (xb, yb, wb, n, where) in enumerate(batches):
            cb.on_train_batch_begin(step)  # (after the batch is read, as in Keras)
            total += self._run_step("train", xb, yb, wb, where) * n
            seen += n
            logs = {"loss": total / seen, **{m.name: m.result() for m in self.metrics}}
            cb.on_train_batch_end(step, logs)
            if self.stop_training:
                break
        if isinstance(source, pydataset.PyDataset):
            source.on_epoch_end()
        elif source is not None and not seen:
            sys.stderr.write(
                f"hpnn: the generator ran out of batches at epoch {epoch + 1}; training stops. "
                "Give fit() a PyDataset, or steps_per_epoch and a generator that repeats.\n"
            )
            self.stop_training = True
        return dict(logs)

    # -- evaluate / predict -------------------------------------------------------------
    def _evaluate_arrays(self, x, y, w, batch_size, comm=None, cb=None) -> dict:
        cb = cb if cb is not None else CallbackList()
        cb.on_test_begin()
        if comm is not None:
            logs = data_parallel.evaluate(self, comm, x, y, batch_size, cb, w)
            cb.on_test_end(logs)
            return logs
        for m in self.metrics:
            m.reset_state()
        total, seen, logs = 0.0, 0, {}
        for step, sl in enumerate(adapter.batch_slices(len(x), batch_size)):
            cb.on_test_batch_begin(step)
            n = sl.stop - sl.start
            total += self._run_step("test", x[sl], y[sl], None if w is None else w[sl]) * n
            seen += n
            logs = {"loss": total / seen, **{m.name: m.result() for m in self.metrics}}
            cb.on_test_batch_end(step, logs)
        logs = {"loss": total / max(len(x), 1), **{m.name: m.result() for m in self.metrics}}
        cb.on_test_end(logs)
        return logs

    def _evaluate_batches(self, source, steps, cb) -> dict:
        """Loss and metrics over the batches of a PyDataset or generator."""
        cb.on_test_begin()
        first = True
        total, seen, logs = 0.0, 0, {}
        for step, batch in enumerate(pydataset.epoch_batches(source, steps)):
            cb.on_test_batch_begin(step)
            xb, yb, wb = self._batch_arrays(batch, step, "evaluate")
            if first:  # the metrics' kind (binary, sparse...) from the first targets
                if not self.metrics:
                    self._make_metrics(yb.shape)
                for m in self.metrics:
                    m.reset_state()
                first = False
            n = len(yb)
            total += self._run_step("test", xb, yb, wb) * n
            seen += n
            logs = {"loss": total / seen, **{m.name: m.result() for m in self.metrics}}
            cb.on_test_batch_end(step, logs)
        if not seen:
            raise ValueError("evaluate(): the PyDataset or generator gave no batch.")
        cb.on_test_end(logs)
        return logs

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size=None,
        verbose="auto",
        sample_weight=None,
        steps=None,
        callbacks=None,
        return_dict=False,
    ):
        """Loss (and metrics) on ``(x, y)``: a float, a list, or a dict with ``return_dict``."""
        self._require_compiled("evaluate")
        batch_size = adapter.check_batch_size(batch_size)
        comm = get_comm()
        if pydataset.is_batched(x):
            self._check_batched("evaluate", x, y, sample_weight, comm)
            n = pydataset.steps_of(x, steps)
            self.metrics = []  # made from the first batch's targets
            cb = CallbackList(callbacks, model=self, verbose=verbose, steps=n)
            logs = self._evaluate_batches(x, n, cb)
        else:
            x, y = self._prepare(x, y, "")
            w = adapter.sample_weights(sample_weight, None, y)
            self._make_metrics(y.shape)
            cb = CallbackList(
                callbacks, model=self, verbose=verbose, steps=-(-len(x) // batch_size)
            )
            logs = self._evaluate_arrays(x, y, w, batch_size, comm, cb)
        if comm is not None and comm.rank != 0:
            verbose = 0
        if verbose and verbose != "auto":
            from hpnn.training.callbacks import format_logs

            print(format_logs(logs))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for ``x``, in batches, as a NumPy array (``x`` may be a PyDataset or
        generator of batches; their targets, if any, are ignored)."""
        batch_size = adapter.check_batch_size(batch_size)
        if pydataset.is_batched(x):
            outs = []
            batches = pydataset.epoch_batches(x, pydataset.steps_of(x, steps))
            for step, batch in enumerate(batches):
                xb, _, _ = pydataset.unpack(batch, step, "predict")
                xb, _ = self._prepare(xb, None, f"batch {step}: ", targets_needed=False)
                outs.append(self._run_step("predict", xb))
            if not outs:
                raise ValueError("predict(): the PyDataset or generator gave no batch.")
            return _joined(outs)
        x, _ = self._prepare(x, None, "", targets_needed=False)
        outs = [self._run_step("predict", x[sl]) for sl in adapter.batch_slices(len(x), batch_size)]
        if not outs:
            shapes = self.output_shape if self._output_names() else [self.output_shape]
            empty = [np.zeros((0, *s[1:]), dtype=floatx()) for s in shapes]
            return empty if self._output_names() else empty[0]
        return _joined(outs)
