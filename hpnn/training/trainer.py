"""The trainer: compile, the one training step, and where each step runs.

``Model`` is layers plus this mixin (as Keras 3's ``Model`` is layers plus a
``Trainer``). The step is written once: :meth:`Trainer.train_step` (forward,
:meth:`compute_loss`, gradients, ``optimizer.apply``, :meth:`compute_metrics`),
:meth:`test_step` and :meth:`predict_step`; a subclass may override any of them.
:meth:`_run_step` hands the step, whatever it is, to a placement: whole in this
process, split across the cores (``hpnn.parallel``), over MPI ranks
(``hpnn.distributed.data_parallel``), or split on every rank; the epoch loops
(``hpnn.training.loops``) only ever call ``_run_step``.
"""

from __future__ import annotations

import numpy as np

from hpnn import losses as losses_mod
from hpnn import metrics as metrics_mod
from hpnn import optimizers as optimizers_mod
from hpnn.backend import floatx, get_xp, xp_default
from hpnn.data import adapter
from hpnn.distributed import data_parallel
from hpnn.engine import step_context
from hpnn.engine.tensor import Tensor, gradients, no_grad
from hpnn.layers.base import activity_losses, collect_activity_penalties, current_activity
from hpnn.parallel import census, split, workers
from hpnn.parallel import parts as parts_mod
from hpnn.training import loops, multi_output
from hpnn.training.model_api import ModelAPI
from hpnn.training.step import Step, outputs_data


class Trainer(ModelAPI, loops.Loops):
    """compile / fit / evaluate / predict and the steps, mixed into ``Model``."""

    _compiled_metrics: list = []
    _loss_scale = 1.0

    # -- compile ------------------------------------------------------------------
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
        names = self._output_names()
        if loss is None and names:
            raise ValueError(
                "compile(): a model with several outputs needs a loss per output. "
                f"Outputs: {names}; Received: loss=None"
            )
        self.optimizer = optimizers_mod.get(optimizer)
        self._loss_scale = 1.0
        if loss is None:  # (as Keras: a subclass's compute_loss makes the loss)
            self.loss = None
            if metrics is not None and not isinstance(metrics, (list, tuple)):
                metrics = [metrics]
            self._metric_specs = list(metrics or [])
            for m in self._metric_specs:
                metrics_mod.get(m, None)
        elif names:  # several outputs: one loss (and list of metrics) per output
            self.loss = _multi_loss(loss, loss_weights, names)
            self._metric_specs = multi_output.metric_specs(metrics, names)
            for i, entries in enumerate(self._metric_specs):  # unknown names fail now
                for m in entries:
                    metrics_mod.get(m, self.loss.losses[i].name)
        else:
            self.loss = losses_mod.get(loss)
            if loss_weights is not None:
                self._loss_scale = _one_weight(loss_weights)
            if metrics is not None and not isinstance(metrics, (list, tuple)):
                metrics = [metrics]
            self._metric_specs = list(metrics or [])
            for m in self._metric_specs:  # fail now on an unknown name, not at fit time
                metrics_mod.get(m, self.loss.name)
        self.metrics = []
        self._plans = {}
        slot = self.__dict__.pop("_part_pool", None)
        if slot is not None:  # worker processes copied the old loss and optimizer
            slot.close()
        self.compiled = True

    @property
    def metrics(self) -> list:
        """The compiled metrics (in a part of a split step: that part's own copies)."""
        return [step_context.metric(m) for m in self._compiled_metrics]

    @metrics.setter
    def metrics(self, value):
        self._compiled_metrics = list(value)

    def _output_names(self):
        """The output names of a model with several outputs; None with one."""
        return None

    def _require_compiled(self, what):
        if not getattr(self, "compiled", False):
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
            metrics_mod.get(m, _checked_name(self.loss), y_shape, self.output_shape)
            for m in self._metric_specs
        ]

    # -- data ---------------------------------------------------------------------
    def _prepare(self, x, y, what, targets_needed=True):
        if not self.layers:
            raise ValueError(
                f"Model '{self.name}' has no layers: add layers (model.add(...)) before "
                "training or predicting."
            )
        label = f"{what}x" if what else "x"
        x = adapter.to_array(x, label)
        adapter.check_finite(x, label)
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
        # (no loss: compute_loss decides; a loss of any targets says so: Circle's labels)
        if y is not None and self.loss is not None and getattr(self.loss, "targets", 0) != "any":
            adapter.check_targets(y, _checked_name(self.loss), self.output_shape, f"{what}y")
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

    # -- the step -------------------------------------------------------------------
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss (times ``loss_weights``) plus the weights' penalties plus
        the activity penalties of the forward pass that made ``y_pred`` (as Keras).
        Compiled without a loss: the penalties alone (a subclass overrides this)."""
        penalties = [*self._weight_penalties(), *current_activity(self)]
        if self.loss is None:
            if not penalties:
                raise ValueError(
                    f"Model '{self.name}': no loss to compute. Pass a loss to compile(), "
                    "e.g. loss='mse', or override compute_loss. Received: loss=None"
                )
            loss, penalties = penalties[0], penalties[1:]
        else:
            loss = self.loss(y, y_pred, sample_weight)
            if self._loss_scale != 1.0:
                loss = loss * self._loss_scale
        for penalty in penalties:
            loss = loss + penalty
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with a batch's outputs."""
        outputs = outputs_data(y_pred) if not isinstance(y_pred, np.ndarray) else y_pred
        for m in self.metrics:
            m.update_state(y, outputs, sample_weight)

    def train_step(self, x, y, sample_weight=None) -> float:
        """One optimizer step on a batch (``sample_weight``: one weight per sample, or
        None); returns the batch loss."""
        with collect_activity_penalties():
            y_pred = self(self._to_input(x), training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        variables = self.trainable_weights
        if loss.requires_grad:  # (not when every weight the loss reaches is frozen)
            grads = gradients(loss, variables)
        else:
            grads = [None] * len(variables)
        with no_grad():
            self.optimizer.apply(grads, variables)
        self.compute_metrics(x, y, y_pred, sample_weight)
        return float(loss.item())

    def test_step(self, x, y, sample_weight=None) -> float:
        """Loss (and metric updates) of a batch in inference mode."""
        with no_grad(), collect_activity_penalties():
            # the loss from the output tensor: a softmax output's loss reads its logits
            y_pred = self(self._to_input(x), training=False)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=False)
        self.compute_metrics(x, y, y_pred, sample_weight)
        return float(loss.item())

    def predict_step(self, x):
        """The outputs of a batch in inference mode (an array, or a list per output)."""
        with no_grad():
            return outputs_data(self(self._to_input(x), training=False))

    # -- placement ------------------------------------------------------------------
    def _run_step(self, kind, x, y=None, w=None, where=None):
        """Run one ``kind`` step ("train", "test", "predict") on a batch wherever it runs
        best; returns the loss (train, test) or the outputs (predict).

        ``where``: ``(comm, offset, total)`` under MPI: this rank's shard of a global
        batch of ``total`` samples starting at ``offset``.
        """
        plans = self.__dict__.setdefault("_plans", {})
        plan = plans.get(kind)
        signature = _signature(self)
        if plan is None or plan.signature != signature:
            if plan is not None and plan.signature != signature:
                plan.slot.close()  # (the workers hold the old weights and loss)
            return self._census_step(kind, x, y, w, where, signature)
        step = plan.step
        if where is not None:
            return data_parallel.run(step, kind, plan, *where, x, y, w)
        slices = split.parts(plan, len(x)) if self._splittable(kind) else None
        if slices is None:
            return parts_mod.call(step.fn(kind), kind, x, y, w)
        results = workers.run(step, kind, plan, slices, x, y, w)
        return finish(step, kind, results)

    def _census_step(self, kind, x, y, w, where, signature):
        """The first ``kind`` step (or the first after a change of weights or loss): run
        whole, measured, to make the plan of the later ones."""
        step = Step(self)
        measure = census.Census()
        if where is not None:
            result = data_parallel.run(step, kind, None, *where, x, y, w, census=measure)
        else:
            result = measure.run(parts_mod.call, step.fn(kind), kind, x, y, w)
        weight_bytes = sum(v.data.nbytes for v in self.weights)
        plan = split.Plan(measure, weight_bytes, training=kind == "train")
        plan.step, plan.signature = step, signature
        plan.slot = self.__dict__.setdefault("_part_pool", workers.PoolSlot())
        if self.weights and not isinstance(self.weights[0].data, np.ndarray):
            plan.splittable = False  # CuPy: the GPU runs the whole batch
        self._plans[kind] = plan
        return result

    def _splittable(self, kind) -> bool:
        """Whether a batch may be cut into parts: any to predict; for a loss, not with
        several outputs (their loss object keeps each output's latest value, which
        parts would overwrite), nor with a loss that is not a batch mean (the parts'
        losses are weighted by their share of the batch): another reduction, or a loss
        over the whole batch at once (``batch_mean = False``: Dice, Circle)."""
        if kind == "predict":
            return True
        if self._output_names():
            return False
        reduction = getattr(self.loss, "reduction", "sum_over_batch_size")
        return reduction == "sum_over_batch_size" and getattr(self.loss, "batch_mean", True)

    # -- single batches -------------------------------------------------------------------
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        self._require_compiled("train_on_batch")
        x, y = self._prepare(x, y, "")
        w = adapter.sample_weights(sample_weight, class_weight, y)
        if not self._compiled_metrics:
            self._make_metrics(y.shape)
        for m in self._compiled_metrics:
            m.reset_state()
        loss = self._run_step("train", x, y, w)
        logs = {"loss": loss, **{m.name: m.result() for m in self._compiled_metrics}}
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

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=max(len(x), 1))

    def _weight_penalties(self) -> list[Tensor]:
        # the trainable weights' only, as Keras: a frozen layer's penalty is a constant
        return [w.regularizer(w) for w in self.trainable_weights if w.regularizer is not None]

    @property
    def losses(self) -> list[Tensor]:
        """The weights' regularization penalties, then the activity-regularizer
        penalties and ``add_loss`` losses of each layer's latest call (as Keras'
        ``model.losses``), as scalar tensors: what a custom training loop adds to its loss."""
        return self._weight_penalties() + activity_losses(self)


def finish(step, kind, results):
    """A split step's parts brought together: one optimizer update with the summed
    gradients, the metrics' states, the loss (or the joined outputs)."""
    if kind == "predict":
        return split.join_outputs(results)
    loss, optimizer, variables, grads = parts_mod.combine(results)
    if optimizer is not None:
        with no_grad():
            optimizer.apply(grads, variables)
    parts_mod.merge_metrics(step.metrics(), results)
    return loss


def _checked_name(loss):
    """The loss's name as the target checks and ``"accuracy"`` read it (they go by the
    name): a loss of integer labels (``targets = "labels"``) whose name says
    "categorical" is read as a sparse one."""
    name = getattr(loss, "name", None)
    if getattr(loss, "targets", None) == "labels" and "sparse" not in str(name):
        return f"{name} (sparse labels)"
    return name


def _signature(model) -> tuple:
    """What a plan (and its worker processes' copy of the model) depends on: the loss and
    optimizer, and the weights (which ones, and which train)."""
    return (
        id(model.loss),
        id(model.optimizer),
        model._loss_scale,
        tuple((id(v), v.requires_grad) for v in model.weights),
    )


def _multi_loss(loss, loss_weights, names):
    if isinstance(loss, multi_output.MultiOutputLoss):
        return loss
    per = multi_output.per_output(loss, names, "loss")
    if any(entry is None for entry in per):
        raise ValueError(
            f"compile(): every output needs a loss. Outputs: {names}; Received: loss={loss!r}"
        )
    weights = None
    if loss_weights is not None:
        weights = multi_output.per_output(loss_weights, names, "loss_weights", 1.0)
    return multi_output.MultiOutputLoss(per, weights, names)


def _one_weight(loss_weights) -> float:
    """A model with one output's loss weight: a float, or a list or dict of one."""
    if isinstance(loss_weights, dict):
        values = list(loss_weights.values())
    elif isinstance(loss_weights, (list, tuple)):
        values = list(loss_weights)
    else:
        values = [loss_weights]
    if len(values) != 1:
        raise ValueError(
            "compile(): a model with one output takes one loss weight. "
            f"Received: loss_weights={loss_weights!r}"
        )
    return float(values[0])
