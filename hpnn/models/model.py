"""Model: a layer with a training API — compile, fit, evaluate, predict."""

from __future__ import annotations

import contextlib
import functools
import operator
import sys
import time
import traceback

import numpy as np

from hpnn import losses as losses_mod
from hpnn import metrics as metrics_mod
from hpnn import optimizers as optimizers_mod
from hpnn.backend import floatx, get_xp, to_numpy, xp_default
from hpnn.data import adapter, pydataset
from hpnn.distributed import data_parallel, get_comm
from hpnn.engine.tensor import Tensor, gradients, no_grad
from hpnn.layers.base import Layer, activity_losses, collect_activity_penalties
from hpnn.models import batch_split, multi_output, part_workers
from hpnn.random import make_rng
from hpnn.training.callbacks import CallbackList, History, ProgbarLogger


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


def outputs_data(y_pred):
    """The arrays of a model's output tensor, or of each of its outputs."""
    if isinstance(y_pred, (list, tuple)):
        return [t.data for t in y_pred]
    return y_pred.data


def _joined(batches):
    """The batches' outputs joined on the host: one array, or a list per output."""
    if isinstance(batches[0], list):
        return [np.concatenate([to_numpy(b[i]) for b in batches]) for i in range(len(batches[0]))]
    return np.concatenate([to_numpy(b) for b in batches], axis=0)


class Model(Layer):
    """Base class of models; subclasses define ``call`` and the ``layers`` list.

    ``Model(inputs, outputs)`` makes a functional model (``hpnn.models.functional``),
    as in Keras.
    """

    def _summary_totals(self, cols) -> list[str]:
        """The parameter counts that end ``summary()``'s table ``cols`` wide."""
        trainable = sum(w.size for w in self.trainable_weights)
        total = self.count_params()
        return [
            "=" * sum(cols),
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
            "-" * sum(cols),
        ]

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from hpnn.models.functional import Functional

            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self.history = None

    # -- weights over all layers ----------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The layers a subclassed model holds in its attributes (Keras' tracking)."""
        return self._sublayers()

    def build_for(self, input_shape):
        """A subclassed model builds by calling itself once on zeros of ``input_shape``
        (one sample): its layers build, and the output shape is known."""
        if type(self).call is Layer.call or type(self).build is not Layer.build or self.built:
            return super().build_for(input_shape)  # Sequential, or a model with a build()
        shape = (None, *tuple(input_shape)[1:])
        self.output_shape = self._probe(shape)
        self.built = True
        self.input_shape = shape
        return self.output_shape

    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return (
            [w for layer in self.layers for w in layer.trainable_weights] if self.trainable else []
        )

    @property
    def non_trainable_weights(self):
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def get_layer(self, name=None, index=None):
        """A layer of this model by ``name`` or by ``index`` in ``layers`` (as Keras)."""
        if (name is None) == (index is None):
            raise ValueError(
                f"Model '{self.name}'.get_layer: expected a layer name or an index, not "
                f"both or neither. Received: name={name!r}, index={index!r}"
            )
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise ValueError(
                    f"Model '{self.name}'.get_layer: index must be an int. Received: {index!r}"
                )
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(
                    f"Model '{self.name}'.get_layer: index {index} out of range: the model "
                    f"has {len(self.layers)} layers"
                )
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"Model '{self.name}'.get_layer: no layer named {name!r}. "
            f"Existing layers: {[layer.name for layer in self.layers]}"
        )

    def get_weights(self):
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        expected = self.weights
        if len(weights) != len(expected):
            raise ValueError(
                f"Model '{self.name}' has {len(expected)} weight arrays. Received: {len(weights)} "
                "(is the model built? call it on data or give it an Input first)"
            )
        i = 0
        for layer in self.layers:
            n = len(layer.weights)
            layer.set_weights(weights[i : i + n])
            i += n

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    # -- saving ---------------------------------------------------------------------
    def save(self, filepath) -> None:
        """Save architecture, weights, compile config and optimizer state to one file."""
        from hpnn.models import saving  # saving imports Sequential: import late

        saving.save_model(self, filepath)

    def save_weights(self, filepath) -> None:
        """Save the weights alone (atomically)."""
        from hpnn.models import saving

        saving.save_weights(self, filepath)

    def load_weights(self, filepath) -> None:
        """Load weights from ``save_weights`` or ``save``; nothing is set unless all fit."""
        from hpnn.models import saving

        saving.load_weights(self, filepath)

    def to_json(self, **kwargs) -> str:
        """The architecture as JSON (no weights); ``hpnn.models.model_from_json`` reads it."""
        from hpnn.models import saving

        return saving.to_json(self, **kwargs)

    @property
    def losses(self) -> list[Tensor]:
        """The weights' regularization penalties, then the activity-regularizer
        penalties of each layer's latest call (as Keras' ``model.losses``), as
        scalar tensors: what a custom training loop adds to its loss."""
        return self._weight_penalties() + activity_losses(self)

    def _weight_penalties(self) -> list[Tensor]:
        # the trainable weights' only, as Keras: a frozen layer's penalty is a constant
        return [w.regularizer(w) for w in self.trainable_weights if w.regularizer is not None]

    # -- compile ----------------------------------------------------------------
    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        metrics=None,
        loss_weights=None,
        run_eagerly=None,
        jit_compile=None,
        steps_per_execution=1,
        **kwargs,
    ):
        """Configure training: optimizer, loss and metrics (names or objects)."""
        if kwargs:
            raise TypeError(f"compile(): unexpected keyword argument(s) {sorted(kwargs)}")
        if loss is None:
            raise ValueError("compile(): loss is required, e.g. loss='categorical_crossentropy'.")
        self.optimizer = optimizers_mod.get(optimizer)
        names = self._output_names()
        self._loss_scale = 1.0
        if names:  # several outputs: one loss (and list of metrics) per output
            if isinstance(loss, multi_output.MultiOutputLoss):
                self.loss = loss
            else:
                per = multi_output.per_output(loss, names, "loss")
                if any(entry is None for entry in per):
                    raise ValueError(
                        f"compile(): every output needs a loss. Outputs: {names}; "
                        f"Received: loss={loss!r}"
                    )
                weights = None
                if loss_weights is not None:
                    weights = multi_output.per_output(loss_weights, names, "loss_weights", 1.0)
                self.loss = multi_output.MultiOutputLoss(per, weights, names)
            self._metric_specs = multi_output.metric_specs(metrics, names)
            for i, entries in enumerate(self._metric_specs):  # unknown names fail now
                for m in entries:
                    metrics_mod.get(m, self.loss.losses[i].name)
        else:
            self.loss = losses_mod.get(loss)
            if loss_weights is not None:  # a float, or a list or dict of one
                values = (
                    list(loss_weights.values())
                    if isinstance(loss_weights, dict)
                    else list(loss_weights)
                    if isinstance(loss_weights, (list, tuple))
                    else [loss_weights]
                )
                if len(values) != 1:
                    raise ValueError(
                        "compile(): a model with one output takes one loss weight. "
                        f"Received: loss_weights={loss_weights!r}"
                    )
                self._loss_scale = float(values[0])
            if metrics is not None and not isinstance(metrics, (list, tuple)):
                metrics = [metrics]
            self._metric_specs = list(metrics or [])
            for m in self._metric_specs:  # fail now on an unknown name, not at fit time
                metrics_mod.get(m, self.loss.name)
        self.metrics = []
        self.compiled = True

    def _output_names(self):
        """The output names of a model with several outputs; None with one."""
        return None

    def _data_loss(self, yb, y_pred, sample_weight=None):
        """The compiled loss of a batch (times ``loss_weights`` for one output)."""
        loss = self.loss(yb, y_pred, sample_weight)
        return loss if self._loss_scale == 1.0 else loss * self._loss_scale

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(
                f"You must call compile() before {what}(): e.g. model.compile(optimizer='adam', "
                "loss='sparse_categorical_crossentropy', metrics=['accuracy'])."
            )

    def _make_metrics(self, y_shape):
        if isinstance(self.loss, multi_output.MultiOutputLoss):
            self.metrics = multi_output.make_metrics(
                self.loss, self._metric_specs, self._target_shapes, self.output_shape
            )
            return
        self.metrics = [
            metrics_mod.get(m, self.loss.name, y_shape, self.output_shape)
            for m in self._metric_specs
        ]

    # -- data -----------------------------------------------------------------------
    def _prepare(self, x, y, what, targets_needed=True):
        if not self.layers:
            raise ValueError(
                f"Model '{self.name}' has no layers: add layers (model.add(...)) before "
                "training or predicting."
            )
        x = adapter.to_array(x, f"{what}x" if what else "x")
        adapter.check_finite(x, f"{what}x" if what else "x")
        if y is None:
            if targets_needed:
                raise ValueError(f"{what}y is required. Received: y=None")
        else:
            y = adapter.to_array(y, f"{what}y")
            adapter.check_finite(y, f"{what}y")
            adapter.check_lengths(x, y, what)
        if not self.built:
            self.build_for((None, *x.shape[1:]))
        else:
            self._check_model_input(x.shape)
        if y is not None:
            adapter.check_targets(y, self.loss.name, self.output_shape, f"{what}y")
        return x, y

    def _to_inputs(self, xb):
        raise TypeError(f"Model '{self.name}' takes one input array. Received: {xb!r}")

    def _check_model_input(self, shape):
        expected = self.input_shape
        if expected is not None and (
            len(shape) != len(expected)
            or any(e is not None and e != s for e, s in zip(expected[1:], shape[1:], strict=False))
        ):
            raise ValueError(
                f"Model '{self.name}': expected input of shape {expected} (None = any). "
                f"Received: shape={tuple(shape)}"
            )

    def _to_input(self, xb):
        """A batch of user data as a tensor on the device that holds the model's weights
        (a list of tensors for a model with several inputs)."""
        if isinstance(xb, adapter.InputList):
            return self._to_inputs(xb)
        if xb.dtype.kind in "biuf" and xb.dtype != np.dtype(floatx()) and self._float_input:
            xb = xb.astype(floatx())
        weights = self.weights
        xp = get_xp(weights[0].data) if weights else xp_default()
        return Tensor(xp.asarray(xb))

    _float_input = True

    # -- steps ----------------------------------------------------------------------
    def _total_loss(self, yb, y_pred, activity=(), sample_weight=None):
        """The loss plus the weight penalties plus ``activity``: the activity penalties
        that ``collect_activity_penalties`` gathered in the forward pass of ``y_pred``
        (gathered per thread, not read off the layers, which the parts of a batch
        split share)."""
        loss = self._data_loss(yb, y_pred, sample_weight)
        for penalty in (*self._weight_penalties(), *activity):
            loss = loss + penalty
        return loss

    def train_step(self, xb, yb, sample_weight=None) -> float:
        """One optimizer step on a batch (``sample_weight``: one weight per sample, or
        None); returns the batch loss."""
        slices = batch_split.parts(self, len(xb), training=True)
        if slices is not None:
            return self._train_step_split(xb, yb, slices, sample_weight)
        with collect_activity_penalties() as activity:
            y_pred = self(self._to_input(xb), training=True)
        loss = self._total_loss(yb, y_pred, activity, sample_weight)
        variables = self.trainable_weights
        for v in variables:
            v.grad = None
        if loss.requires_grad:  # (not when every weight the loss reaches is frozen)
            loss.backward()
        with no_grad():
            self.optimizer.apply([v.grad for v in variables], variables)
        for v in variables:
            v.grad = None
        for m in self.metrics:
            m.update_state(yb, outputs_data(y_pred), sample_weight)
        return float(loss.item())

    def _train_step_split(self, xb, yb, slices, sample_weight=None) -> float:
        """``train_step`` with the batch split into parts (``batch_split``), run on threads
        or, once they are up, in worker processes (``part_workers``): each part's loss (a
        batch mean) is weighted by the part's share of the batch, so the summed gradients
        and losses are those of the whole batch."""
        variables = self.trainable_weights
        n = len(xb)

        def part(sl):
            w = None if sample_weight is None else sample_weight[sl]
            return self._train_part(xb[sl], yb[sl], w, (sl.stop - sl.start) / n)

        results = part_workers.run_parts(self, "train", part, slices, xb, yb, sample_weight)
        total = []
        for per_part in zip(*(r[2] for r in results), strict=True):
            present = [g for g in per_part if g is not None]
            total.append(functools.reduce(operator.add, present) if present else None)
        with no_grad():
            self.optimizer.apply(total, variables)
        if self.metrics:
            y_pred = np.concatenate([r[1] for r in results])
            for m in self.metrics:
                m.update_state(yb, y_pred, sample_weight)
        return sum(r[0] for r in results)

    def _train_part(self, xb, yb, sample_weight, share):
        """One part of a split batch: ``share`` times its loss, its outputs and ``share``
        times its gradients (None for a weight the loss does not reach)."""
        variables = self.trainable_weights
        with collect_activity_penalties() as activity:
            y_pred = self(self._to_input(xb), training=True)
        loss = self._total_loss(yb, y_pred, activity, sample_weight)
        grads = gradients(loss, variables, share) if loss.requires_grad else []
        return share * float(loss.item()), y_pred.data, grads or [None] * len(variables)

    def _forward(self, xb):
        """The model's outputs for a batch, without a graph (split across threads where
        that pays, see ``batch_split``)."""
        slices = batch_split.parts(self, len(xb), training=False)
        if slices is None:
            with no_grad():
                return outputs_data(self(self._to_input(xb), training=False))

        def part(sl):
            return self._predict_part(xb[sl])

        parts = part_workers.run_parts(self, "predict", part, slices, xb)
        return get_xp(parts[0]).concatenate(parts)

    def _predict_part(self, xb):
        """One part of a split batch's outputs, in inference."""
        with no_grad():
            return self(self._to_input(xb), training=False).data

    def test_step(self, xb, yb, sample_weight=None) -> float:
        slices = batch_split.parts(self, len(xb), training=False)
        n = len(xb)

        def part(sl):
            w = None if sample_weight is None else sample_weight[sl]
            share = (sl.stop - sl.start) / n if n else 1.0  # 1.0 for the whole batch: exact
            return self._test_part(xb[sl], yb[sl], w, share)

        if slices is None:
            results = [part(slice(0, n))]
        else:
            results = part_workers.run_parts(self, "test", part, slices, xb, yb, sample_weight)
        y_pred = results[0][1] if len(results) == 1 else np.concatenate([r[1] for r in results])
        for m in self.metrics:
            m.update_state(yb, y_pred, sample_weight)
        return sum(r[0] for r in results)

    def _test_part(self, xb, yb, sample_weight, share):
        """One part of a split batch in evaluation: ``share`` times its loss, its outputs."""
        with no_grad():
            # the loss from the output tensor: a softmax output's loss reads its logits
            with collect_activity_penalties() as activity:
                y_pred = self(self._to_input(xb), training=False)
            loss = self._total_loss(yb, y_pred, activity, sample_weight)
        return float(loss.item()) * share, outputs_data(y_pred)

    # -- fit ------------------------------------------------------------------------
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
                return self._train_epoch_batches(x, steps, class_weight, epoch, shuffle, cb)

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
                return self._train_epoch(x, y, w, batch_size, epoch, shuffle, cb, comm)

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
            data_parallel.broadcast_state(self, comm)
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

    def _train_epoch_batches(self, source, steps, class_weight, epoch, shuffle, cb):
        """One epoch over a PyDataset (batches in a new order when ``shuffle``) or a
        generator; returns {} when the generator had nothing left (training stops)."""
        cb.on_epoch_begin(epoch)
        for m in self.metrics:
            m.reset_state()
        order = None
        if shuffle and isinstance(source, pydataset.PyDataset):
            order = np.random.default_rng((self._shuffle_seed, epoch))
        total, seen, logs = 0.0, 0, {}
        for step, batch in enumerate(pydataset.epoch_batches(source, steps, order)):
            cb.on_train_batch_begin(step)
            xb, yb, wb = self._batch_arrays(batch, step, "fit", class_weight)
            n = len(yb)
            total += self.train_step(xb, yb, *(() if wb is None else (wb,))) * n
            seen += n
            logs = {"loss": total / seen, **{m.name: m.result() for m in self.metrics}}
            cb.on_train_batch_end(step, logs)
            if self.stop_training:
                break
        if isinstance(source, pydataset.PyDataset):
            source.on_epoch_end()
        elif not seen:
            sys.stderr.write(
                f"hpnn: the generator ran out of batches at epoch {epoch + 1}; training stops. "
                "Give fit() a PyDataset, or steps_per_epoch and a generator that repeats.\n"
            )
            self.stop_training = True
        return dict(logs)

    def _epoch_order(self, n, epoch, shuffle):
        if not shuffle:
            return None
        return np.random.default_rng((self._shuffle_seed, epoch)).permutation(n)

    def _train_epoch(self, x, y, w, batch_size, epoch, shuffle, cb, comm=None):
        cb.on_epoch_begin(epoch)
        for m in self.metrics:
            m.reset_state()
        order = self._epoch_order(len(x), epoch, shuffle)
        ranks = comm.size if comm is not None else 1
        total, seen = 0.0, 0
        logs = {}
        for step, sl in enumerate(adapter.batch_slices(len(x), batch_size * ranks)):
            cb.on_train_batch_begin(step)
            idx = sl if order is None else order[sl]
            n = sl.stop - sl.start
            if comm is None:
                # (weights only when given: a subclass's train_step(xb, yb) still works)
                loss = self.train_step(x[idx], y[idx], *(() if w is None else (w[idx],)))
            else:
                idx = np.arange(sl.start, sl.stop) if order is None else idx
                mine = idx[data_parallel.local_slice(n, comm.rank, ranks, batch_size)]
                wb = None if w is None else w[mine]
                loss = data_parallel.train_step(self, comm, x[mine], y[mine], n, wb)
            total += loss * n
            seen += n
            logs = {"loss": total / seen, **{m.name: m.result() for m in self.metrics}}
            cb.on_train_batch_end(step, logs)
            if self.stop_training:
                break
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
            total += self.test_step(x[sl], y[sl], *(() if w is None else (w[sl],))) * n
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
            total += self.test_step(xb, yb, *(() if wb is None else (wb,))) * n
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
                outs.append(self._forward(xb))
            if not outs:
                raise ValueError("predict(): the PyDataset or generator gave no batch.")
            return _joined(outs)
        x, _ = self._prepare(x, None, "", targets_needed=False)
        outs = [self._forward(x[sl]) for sl in adapter.batch_slices(len(x), batch_size)]
        if not outs:
            shapes = self.output_shape if self._output_names() else [self.output_shape]
            empty = [np.zeros((0, *s[1:]), dtype=floatx()) for s in shapes]
            return empty if self._output_names() else empty[0]
        return _joined(outs)

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=max(len(x), 1))

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        self._require_compiled("train_on_batch")
        x, y = self._prepare(x, y, "")
        w = adapter.sample_weights(sample_weight, class_weight, y)
        if not self.metrics:
            self._make_metrics(y.shape)
        for m in self.metrics:
            m.reset_state()
        loss = self.train_step(x, y, *(() if w is None else (w,)))
        logs = {"loss": loss, **{m.name: m.result() for m in self.metrics}}
        return logs if return_dict else (list(logs.values()) if len(logs) > 1 else logs["loss"])

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        return self.evaluate(
            x,
            y,
            batch_size=max(len(x), 1),
            verbose=0,
            sample_weight=sample_weight,
            return_dict=return_dict,
        )
