"""Semi-supervised training: a few labelled samples and many unlabelled ones.

:class:`MeanTeacher` (Tarvainen & Valpola, 2017) is a ``Model`` that wraps a student
model and trains it with its own ``train_step``: the compiled loss on the labelled
batch plus a consistency cost, the squared distance between the student's outputs
and those of a *teacher* on differently perturbed copies of the same inputs, on the
labelled batch and on a batch drawn from the unlabelled images. The teacher is not
trained: after every step its weights move towards the student's,
``teacher = decay * teacher + (1 - decay) * student`` (an exponential moving
average, :meth:`MeanTeacher.update_teacher`). The perturbations are hpnn's
augmentation layers (``GaussianNoise``, ``RandomTranslation``...).

>>> student = build_cnn()                       # ends in Dense(k, "softmax")
>>> mt = MeanTeacher(student, augment=[layers.RandomTranslation(0.1, 0.1),
...                                    layers.GaussianNoise(0.1)])
>>> mt.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
...            metrics=["accuracy"])
>>> mt.fit(x_few, y_few, unlabelled=x_rest, epochs=100, batch_size=32)
>>> mt.evaluate(x_test, y_test)                 # the teacher predicts

An epoch is a pass over the labelled samples; each step draws
``unlabelled_ratio`` unlabelled images per labelled one (with replacement).
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from hpnn.backend import floatx, get_xp
from hpnn.data import adapter
from hpnn.engine import step_context
from hpnn.engine.tensor import Tensor, gradients, no_grad
from hpnn.layers.augmentation import GaussianNoise
from hpnn.layers.base import Layer, collect_activity_penalties
from hpnn.models import Model, clone_model
from hpnn.random import make_rng
from hpnn.training.callbacks import Callback
from hpnn.training.loops import Loops

__all__ = ["MeanTeacher"]

COSTS = ("mse", "pseudo_label")

_FIT = inspect.signature(Loops.fit)


class _FollowStudent(Callback):
    """After every training step: the teacher's moving average takes one step."""

    def on_train_batch_end(self, batch, logs=None):
        self.model.update_teacher()


class MeanTeacher(Model):
    """A student trained on labelled data and on its consistency with an averaged teacher.

    Args:
        student: the model to train (one input; it should end in a softmax, as the
            consistency compares probabilities).
        augment: the perturbation: a layer or a list of layers applied in order with
            ``training=True`` (augmentation layers), drawn anew for the student's and
            the teacher's copy. Default: ``GaussianNoise(0.1)``.
        teacher_augment: the teacher's perturbation (default: the same layers as
            ``augment``); with ``cost="pseudo_label"``, a weak one here and a strong
            ``augment`` make FixMatch's pair of views.
        teacher: a model of the student's architecture (default: ``clone_model``);
            its weights start as the student's.
        ema_decay: the teacher's decay in [0, 1). At step ``t`` (from 1) the decay is
            ``min(ema_decay, 1 - 1 / (t + 1))``, so the early teacher follows fast.
        consistency: weight of the consistency cost (>= 0).
        cost: ``"mse"`` (Mean Teacher's squared distance between output vectors,
            summed over classes, averaged over the labelled and unlabelled samples) or
            ``"pseudo_label"`` (the compiled loss of the student's outputs on the
            unlabelled images against the teacher's most likely class, where the
            teacher's probability of it is at least ``threshold``; averaged over all
            the unlabelled images, as FixMatch does).
        threshold: the teacher's confidence a pseudo-label needs, in [0, 1].
        unlabelled_ratio: unlabelled images drawn per labelled one in a step.
        predict_with: ``"teacher"`` (default) or ``"student"``: which model
            ``predict`` and ``evaluate`` use.
        seed: int or Generator for the unlabelled draws.
    """

    def __init__(
        self,
        student,
        augment=None,
        teacher_augment=None,
        teacher=None,
        ema_decay=0.99,
        consistency=10.0,
        cost="mse",
        threshold=0.95,
        unlabelled_ratio=1,
        predict_with="teacher",
        seed=None,
        name=None,
    ):
        super().__init__(name=name)
        if not isinstance(student, Model):
            raise ValueError(f"MeanTeacher: student must be a Model. Received: student={student!r}")
        self.ema_decay = _number("ema_decay", ema_decay, 0.0, 1.0, upper_open=True)
        self.consistency = _number("consistency", consistency, 0.0, math.inf)
        if cost not in COSTS:
            raise ValueError(f"MeanTeacher: cost must be one of {COSTS}. Received: cost={cost!r}")
        self.cost = cost
        self.threshold = _number("threshold", threshold, 0.0, 1.0)
        self.unlabelled_ratio = _count("unlabelled_ratio", unlabelled_ratio, minimum=1)
        if predict_with not in ("teacher", "student"):
            raise ValueError(
                "MeanTeacher: predict_with must be 'teacher' or 'student'. "
                f"Received: predict_with={predict_with!r}"
            )
        self.predict_with = predict_with
        self.student = student
        self.teacher = _make_teacher(student) if teacher is None else teacher
        self.teacher.trainable = False
        self.augment = _layers("augment", augment)
        self.teacher_augment = (
            self.augment if teacher_augment is None else _layers("teacher_augment", teacher_augment)
        )
        self.teacher_updates = 0
        self._rng = make_rng(seed)
        self._pool = None

    # -- building -----------------------------------------------------------------
    def build(self, input_shape):
        self.student.build_for(input_shape)
        self.teacher.build_for(input_shape)
        s, t = self.student.weights, self.teacher.weights
        if [w.shape for w in s] != [w.shape for w in t]:
            raise ValueError(
                f"MeanTeacher: teacher '{self.teacher.name}' must have the student's weights. "
                f"Expected shapes {[w.shape for w in s]}. Received: {[w.shape for w in t]}"
            )
        for tw, sw in zip(t, s, strict=True):
            tw.assign(sw.data)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.student.output_shape

    def call(self, x, training=False):
        model = self.teacher if self.predict_with == "teacher" else self.student
        return model(x, training=training)

    @property
    def trainable_weights(self):
        # only the student trains, whatever a trainable flag set on this model cascades
        return self.student.trainable_weights if self.trainable else []

    # -- data -----------------------------------------------------------------------
    def fit(self, *args, unlabelled=None, **kwargs):
        """``Model.fit`` on the labelled ``(x, y)``, with ``unlabelled``: images
        ``(M, ...)`` of the labelled ones' shape (kept for later calls)."""
        bound = _FIT.bind(self, *args, **kwargs)
        params = dict(bound.arguments)
        params.pop("self")
        x = params.get("x")
        if unlabelled is not None:
            self._pool = self._check_unlabelled(unlabelled, x)
        self._require_pool("fit")
        params["callbacks"] = [*(params.get("callbacks") or []), _FollowStudent()]
        return super().fit(**params)

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One step on a labelled batch (unlabelled images from the last ``fit`` or
        :meth:`set_unlabelled`), then one teacher update."""
        self._require_pool("train_on_batch")
        out = super().train_on_batch(x, y, sample_weight, class_weight, return_dict)
        self.update_teacher()
        return out

    def set_unlabelled(self, unlabelled) -> None:
        """Keep ``unlabelled`` images ``(M, ...)`` for the steps that follow."""
        self._pool = self._check_unlabelled(unlabelled, None)

    def _check_unlabelled(self, unlabelled, x):
        u = adapter.to_array(unlabelled, "unlabelled")
        adapter.check_finite(u, "unlabelled")
        if x is not None and not hasattr(x, "__next__") and hasattr(x, "shape"):
            sample = tuple(np.shape(x)[1:])
        elif self.student.input_shape is not None:
            sample = tuple(self.student.input_shape)[1:]
        else:
            sample = None
        ok = len(u) > 0 and (sample is None or _fits(sample, u.shape[1:]))
        if not ok:
            want = "(M, ...)" if sample is None else f"(M, {', '.join(map(str, sample))})"
            raise ValueError(
                f"MeanTeacher: unlabelled must be a non-empty array of shape {want}, images "
                f"like the labelled ones. Received: unlabelled of shape {u.shape}"
            )
        return u.astype(floatx(), copy=False)

    def _require_pool(self, what):
        if self._pool is None:
            raise ValueError(
                f"MeanTeacher.{what}: no unlabelled images: pass fit(..., unlabelled=x_u) "
                "(an array (M, ...) of inputs without labels). Received: unlabelled=None"
            )

    # -- the step ---------------------------------------------------------------------
    def _perturb(self, t: Tensor, teacher=False) -> Tensor:
        for layer in self.teacher_augment if teacher else self.augment:
            t = layer(t, training=True)
        return t

    def _draw_unlabelled(self, n: int) -> list[Tensor]:
        """``unlabelled_ratio`` batches of ``n`` unlabelled images, perturbed for the
        student, and the same images perturbed for the teacher: ``(student, teacher)``."""
        pool, k = self._pool, self.unlabelled_ratio
        idx = step_context.batch_random(self._rng, lambda r, m: r.integers(0, len(pool), (m, k)), n)
        # one chunk of n at a time: under a split step each draw is one row per sample
        chunks = [self._to_input(pool[idx[:, j]]) for j in range(k)]
        student = [self._perturb(c).data for c in chunks]
        teacher = [self._perturb(c, teacher=True).data for c in chunks]
        xp = get_xp(student[0])
        return Tensor(xp.concatenate(student)), Tensor(xp.concatenate(teacher))

    def train_step(self, x, y, sample_weight=None) -> float:
        """The compiled loss on the labelled batch plus ``consistency`` times the
        consistency cost (``cost``) on it and on a batch of unlabelled images."""
        self._require_pool("train_step")
        xl = self._to_input(x)
        xu_student, xu_teacher = self._draw_unlabelled(len(x))
        with no_grad():
            target_l = self.teacher(self._perturb(xl, teacher=True), training=False)
            target_u = self.teacher(xu_teacher, training=False)
        with collect_activity_penalties():
            pred_l = self.student(self._perturb(xl), training=True)
            pred_u = self.student(xu_student, training=True)
            loss = self.compute_loss(x, y, pred_l, sample_weight)
        if self.consistency > 0:
            if self.cost == "mse":
                cost = self._mse(pred_l, target_l, pred_u, target_u)
            else:
                cost = self._pseudo_label(y, pred_u, target_u)
            loss = loss + cost * np.float32(self.consistency)
        variables = self.trainable_weights
        grads = gradients(loss, variables) if loss.requires_grad else [None] * len(variables)
        with no_grad():
            self.optimizer.apply(grads, variables)
        self.compute_metrics(x, y, pred_l, sample_weight)
        return float(loss.item())

    def _mse(self, pred_l, target_l, pred_u, target_u) -> Tensor:
        """The squared distance, averaged over the labelled and unlabelled samples."""
        n_l, n_u = len(pred_l.data), len(pred_u.data)
        cost = _squared(pred_l, target_l) * np.float32(n_l / (n_l + n_u))
        return cost + _squared(pred_u, target_u) * np.float32(n_u / (n_l + n_u))

    def _pseudo_label(self, y, pred_u, target_u) -> Tensor:
        """The compiled loss against the teacher's confident classes (0 elsewhere)."""
        probs = target_u.data
        xp = get_xp(probs)
        mask = (probs.max(axis=-1) >= self.threshold).astype(floatx())
        labels = probs.argmax(axis=-1)
        if np.ndim(y) == 2 and np.shape(y)[-1] == probs.shape[-1]:  # one-hot targets
            labels = xp.eye(probs.shape[-1], dtype=floatx())[labels]
        return self.loss(labels, pred_u, mask)

    def update_teacher(self) -> float:
        """One step of the teacher's moving average; returns the decay used."""
        self.teacher_updates += 1
        t = self.teacher_updates
        decay = min(self.ema_decay, 1.0 - 1.0 / (t + 1))
        with no_grad():
            for tw, sw in zip(self.teacher.weights, self.student.weights, strict=True):
                if tw.data.dtype.kind != "f":
                    tw.assign(sw.data)
                    continue
                tw.data *= tw.data.dtype.type(decay)
                tw.data += sw.data * tw.data.dtype.type(1.0 - decay)
        return decay


def _squared(pred: Tensor, target: Tensor) -> Tensor:
    """Mean over samples of the squared distance between output rows."""
    diff = pred - target
    return (diff * diff).sum(axis=-1).mean()


def _make_teacher(student):
    try:
        return clone_model(student)
    except Exception as e:  # (any failure to rebuild it from its config)
        raise ValueError(
            f"MeanTeacher: cannot clone student '{student.name}' ({type(e).__name__}: {e}); "
            "pass teacher=, a second model of the same architecture. Received: teacher=None"
        ) from None


def _layers(name, value) -> list:
    if value is None:
        return [GaussianNoise(0.1)]
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not isinstance(item, Layer):
            raise ValueError(
                f"MeanTeacher: {name} must be a layer or a list of layers (augmentation "
                f"layers such as GaussianNoise). Received: {item!r}"
            )
    return items


def _fits(expected, got) -> bool:
    if len(expected) != len(got):
        return False
    return all(e is None or e == g for e, g in zip(expected, got, strict=True))


def _number(name, value, lower, upper, upper_open=False) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    ok = ok and lower <= value and (value < upper if upper_open else value <= upper)
    if not ok:
        bound = f"[{lower}, {upper})" if upper_open else f">= {lower}"
        raise ValueError(f"MeanTeacher: {name} must be a number in {bound}. Received: {value!r}")
    return float(value)


def _count(name, value, minimum) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"MeanTeacher: {name} must be an int >= {minimum}. Received: {name}={value!r}"
        )
    return int(value)
