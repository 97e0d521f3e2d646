"""Losses with Keras names. A loss maps ``(y_true, y_pred)`` to a scalar tensor.

Cross-entropies fed the output of hpnn's ``softmax``/``sigmoid`` op compute from
the logits underneath (as Keras does with TensorFlow), so they stay finite and
exact even when a probability underflows to 0.
"""

from __future__ import annotations

import math

from hpnn.backend import get_xp
from hpnn.engine import ops
from hpnn.engine.tensor import Tensor, as_tensor

EPSILON = 1e-7


def _logits_of(y_pred: Tensor, kind: str):
    """The input of the softmax (last axis) or sigmoid that produced ``y_pred``, if any."""
    src = y_pred._logits
    if src is not None and src[0] == kind:
        return as_tensor(src[1])
    return None


def _as_target(y_true, like: Tensor):
    xp = get_xp(like.data)
    data = y_true.data if isinstance(y_true, Tensor) else y_true
    return xp.asarray(data, dtype=like.dtype)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample cross-entropy between one-hot (or probability) targets and predictions."""
    y_pred = as_tensor(y_pred)
    t = _as_target(y_true, y_pred)
    if label_smoothing:
        n = t.shape[-1]
        t = t * (1 - label_smoothing) + label_smoothing / n
    logits = y_pred if from_logits else _logits_of(y_pred, "softmax")
    if logits is not None:
        return ops.softmax_cross_entropy(logits, t)
    p = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
    p = ops.clip(p, EPSILON, 1 - EPSILON)
    return -ops.sum(ops.mul(ops.log(p), t), axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Per-sample cross-entropy between integer labels and predictions."""
    y_pred = as_tensor(y_pred)
    xp = get_xp(y_pred.data)
    labels = y_true.data if isinstance(y_true, Tensor) else y_true
    labels = xp.asarray(labels)
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    labels = labels.astype(xp.int64)
    logits = y_pred if from_logits else _logits_of(y_pred, "softmax")
    if logits is not None:
        return ops.sparse_softmax_cross_entropy(logits, labels)
    p = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
    p = ops.clip(p, EPSILON, 1 - EPSILON)
    rows = xp.indices(labels.shape)
    return -ops.log(ops.getitem(p, (*rows, labels)))


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary cross-entropy, averaged over the last axis."""
    y_pred = as_tensor(y_pred)
    t = _as_target(y_true, y_pred)
    if label_smoothing:
        t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    if t.ndim == y_pred.ndim - 1:
        t = t[..., None]
    logits = y_pred if from_logits else _logits_of(y_pred, "sigmoid")
    if logits is not None:
        return ops.mean(ops.sigmoid_binary_cross_entropy(logits, t), axis=-1)
    p = ops.clip(y_pred, EPSILON, 1 - EPSILON)
    bce = ops.mul(ops.log(p), t) + ops.mul(ops.log(1 - p), 1 - t)
    return -ops.mean(bce, axis=-1)


def mean_squared_error(y_true, y_pred):
    """Per-sample mean of squared differences over the last axis."""
    y_pred = as_tensor(y_pred)
    d = ops.sub(y_pred, _as_target(y_true, y_pred))
    return ops.mean(d * d, axis=-1)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean of absolute differences over the last axis."""
    y_pred = as_tensor(y_pred)
    return ops.mean(ops.abs(ops.sub(y_pred, _as_target(y_true, y_pred))), axis=-1)


def _target(y_true, like: Tensor):
    """``y_true`` as a constant array shaped like ``like`` where it has one axis less."""
    t = _as_target(y_true, like)
    return t[..., None] if t.ndim == like.ndim - 1 else t


def huber(y_true, y_pred, delta=1.0):
    """Per-sample Huber loss: quadratic within ``delta`` of the target, linear beyond."""
    y_pred = as_tensor(y_pred)
    e = ops.abs(ops.sub(y_pred, _target(y_true, y_pred)))
    quadratic = ops.minimum(e, delta)
    return ops.mean(quadratic * quadratic * 0.5 + (e - quadratic) * delta, axis=-1)


def kl_divergence(y_true, y_pred):
    """Per-sample ``sum(t * log(t / p))``, both clipped to ``[epsilon, 1]``."""
    y_pred = as_tensor(y_pred)
    xp = get_xp(y_pred.data)
    t = xp.clip(_target(y_true, y_pred), EPSILON, 1)
    p = ops.clip(y_pred, EPSILON, 1)
    return ops.sum(ops.mul(ops.log(p) * -1.0 + xp.log(t), t), axis=-1)


def poisson(y_true, y_pred):
    """Per-sample ``mean(p - t * log(p + epsilon))``."""
    y_pred = as_tensor(y_pred)
    t = _target(y_true, y_pred)
    return ops.mean(y_pred - ops.mul(ops.log(y_pred + EPSILON), t), axis=-1)


def log_cosh(y_true, y_pred):
    """Per-sample ``mean(log(cosh(p - t)))``, computed without overflow."""
    y_pred = as_tensor(y_pred)
    x = ops.sub(y_pred, _target(y_true, y_pred))
    return ops.mean(x + ops.softplus(x * -2.0) - float(math.log(2.0)), axis=-1)


def _l2_normalize(x, axis):
    norm = ops.sqrt(ops.sum(x * x, axis=axis, keepdims=True))
    return x / ops.maximum(norm, EPSILON)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample negative cosine similarity (as Keras' loss: -1 is the best)."""
    y_pred = as_tensor(y_pred)
    t = _target(y_true, y_pred)
    xp = get_xp(t)
    t_unit = t / xp.maximum(xp.sqrt((t * t).sum(axis=axis, keepdims=True)), EPSILON)
    return -ops.sum(ops.mul(_l2_normalize(y_pred, axis), t_unit), axis=axis)


def mean_absolute_percentage_error(y_true, y_pred):
    """Per-sample ``100 * mean(|t - p| / max(|t|, epsilon))``."""
    y_pred = as_tensor(y_pred)
    t = _target(y_true, y_pred)
    xp = get_xp(t)
    scale = 100.0 / xp.maximum(xp.abs(t), EPSILON)
    return ops.mean(ops.mul(ops.abs(ops.sub(y_pred, t)), scale), axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    """Per-sample ``mean((log(max(p, eps) + 1) - log(max(t, eps) + 1)) ** 2)``."""
    y_pred = as_tensor(y_pred)
    t = _target(y_true, y_pred)
    xp = get_xp(t)
    d = ops.log(ops.maximum(y_pred, EPSILON) + 1.0) - xp.log(xp.maximum(t, EPSILON) + 1.0)
    return ops.mean(d * d, axis=-1)


def _hinge_targets(y_true, like):
    """Targets in {-1, 1}: 0/1 labels are mapped to -1/1, as Keras does."""
    t = _target(y_true, like)
    xp = get_xp(t)
    return 2 * t - 1 if bool(xp.all((t == 0) | (t == 1))) else t


def hinge(y_true, y_pred):
    """Per-sample ``mean(max(1 - t * p, 0))`` with targets in {-1, 1} (or 0/1)."""
    y_pred = as_tensor(y_pred)
    return ops.mean(ops.relu(1.0 - ops.mul(y_pred, _hinge_targets(y_true, y_pred))), axis=-1)


def squared_hinge(y_true, y_pred):
    """Per-sample ``mean(max(1 - t * p, 0) ** 2)`` with targets in {-1, 1} (or 0/1)."""
    y_pred = as_tensor(y_pred)
    m = ops.relu(1.0 - ops.mul(y_pred, _hinge_targets(y_true, y_pred)))
    return ops.mean(m * m, axis=-1)


def categorical_hinge(y_true, y_pred):
    """Per-sample ``max(max((1 - t) * p) - sum(t * p) + 1, 0)`` for one-hot targets."""
    y_pred = as_tensor(y_pred)
    t = _as_target(y_true, y_pred)
    pos = ops.sum(ops.mul(y_pred, t), axis=-1)
    neg = ops.max(ops.mul(y_pred, 1 - t), axis=-1)
    return ops.relu(neg - pos + 1.0)


def binary_focal_crossentropy(
    y_true,
    y_pred,
    apply_class_balancing=False,
    alpha=0.25,
    gamma=2.0,
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
):
    """Per-sample focal binary cross-entropy (Keras 3): each element's cross-entropy
    times ``(1 - p_t) ** gamma``, where ``p_t`` is the probability given to the true
    label, and with ``apply_class_balancing`` times ``alpha`` (positives) or
    ``1 - alpha`` (negatives); averaged over the last axis."""
    y_pred = as_tensor(y_pred)
    t = _target(y_true, y_pred)
    if label_smoothing:
        t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    p = ops.sigmoid(y_pred) if from_logits else y_pred
    pc = ops.clip(p, EPSILON, 1 - EPSILON)
    bce = -(ops.mul(ops.log(pc), t) + ops.mul(ops.log(1 - pc), 1 - t))
    p_t = ops.mul(p, t) + ops.mul(1 - p, 1 - t)
    focal = ops.mul((1 - p_t) ** gamma, bce) if gamma else bce
    if apply_class_balancing:
        focal = ops.mul(focal, t * alpha + (1 - t) * (1 - alpha))
    return ops.mean(focal, axis=-1)


def categorical_focal_crossentropy(
    y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1
):
    """Per-sample focal cross-entropy (Keras 3): ``-sum(alpha * (1 - p) ** gamma * t *
    log(p))`` over the classes, ``p`` the predictions normalised and clipped."""
    y_pred = as_tensor(y_pred)
    t = _as_target(y_true, y_pred)
    if label_smoothing:
        t = t * (1 - label_smoothing) + label_smoothing / t.shape[-1]
    p = ops.softmax(y_pred) if from_logits else y_pred
    p = ops.clip(p / ops.sum(p, axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
    weight = (1 - p) ** gamma * alpha if gamma else alpha
    return -ops.sum(ops.mul(ops.log(p), t) * weight, axis=-1)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
kld = KLD = kl_divergence
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
logcosh = log_cosh


class Loss:
    """A loss object: ``loss(y_true, y_pred)`` returns the batch mean as a scalar Tensor."""

    fn = None

    def __init__(self, name=None, reduction="sum_over_batch_size", **kwargs):
        if reduction not in ("sum_over_batch_size", "sum", "none", None):
            raise ValueError(
                "reduction must be 'sum_over_batch_size', 'sum' or 'none'. "
                f"Received: reduction={reduction!r}"
            )
        self.name = name or _snake_name(type(self).__name__)
        self.reduction = reduction
        self.kwargs = kwargs

    def call(self, y_true, y_pred):
        return type(self).fn(y_true, y_pred, **self.kwargs)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self._reduce(self.call(y_true, y_pred), sample_weight)

    def _reduce(self, values, sample_weight=None):
        """The per-sample ``values`` weighted (a trailing axis of 1 of either dropped, as
        Keras matches their ranks) and reduced by ``reduction``."""
        if sample_weight is not None:
            w = _as_target(sample_weight, values)
            if w.ndim == values.ndim + 1 and w.shape[-1] == 1:
                w = w[..., 0]
            elif values.ndim == w.ndim + 1 and values.shape[-1] == 1:
                w = w[..., None]
            values = ops.mul(values, w)
        if self.reduction in ("none", None):
            return values
        total = ops.sum(values)
        if self.reduction == "sum":
            return total
        return total / values.size if values.size else total

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, **self.kwargs}


def _snake_name(cls_name):
    out = []
    for i, ch in enumerate(cls_name):
        if ch.isupper() and i and not cls_name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class CategoricalCrossentropy(Loss):
    fn = staticmethod(categorical_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, **kwargs):
        super().__init__(from_logits=from_logits, label_smoothing=label_smoothing, **kwargs)


class SparseCategoricalCrossentropy(Loss):
    fn = staticmethod(sparse_categorical_crossentropy)

    def __init__(self, from_logits=False, **kwargs):
        super().__init__(from_logits=from_logits, **kwargs)


class BinaryCrossentropy(Loss):
    fn = staticmethod(binary_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, **kwargs):
        super().__init__(from_logits=from_logits, label_smoothing=label_smoothing, **kwargs)


class MeanSquaredError(Loss):
    fn = staticmethod(mean_squared_error)


class MeanAbsoluteError(Loss):
    fn = staticmethod(mean_absolute_error)


class Huber(Loss):
    fn = staticmethod(huber)

    def __init__(self, delta=1.0, **kwargs):
        super().__init__(delta=delta, **kwargs)


class KLDivergence(Loss):
    fn = staticmethod(kl_divergence)


class Poisson(Loss):
    fn = staticmethod(poisson)


class LogCosh(Loss):
    fn = staticmethod(log_cosh)


class CosineSimilarity(Loss):
    fn = staticmethod(cosine_similarity)

    def __init__(self, axis=-1, **kwargs):
        super().__init__(axis=axis, **kwargs)


class MeanAbsolutePercentageError(Loss):
    fn = staticmethod(mean_absolute_percentage_error)


class MeanSquaredLogarithmicError(Loss):
    fn = staticmethod(mean_squared_logarithmic_error)


class Hinge(Loss):
    fn = staticmethod(hinge)


class SquaredHinge(Loss):
    fn = staticmethod(squared_hinge)


class CategoricalHinge(Loss):
    fn = staticmethod(categorical_hinge)


class BinaryFocalCrossentropy(Loss):
    fn = staticmethod(binary_focal_crossentropy)

    def __init__(
        self,
        apply_class_balancing=False,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        label_smoothing=0.0,
        **kwargs,
    ):
        super().__init__(
            apply_class_balancing=apply_class_balancing,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            **kwargs,
        )


class CategoricalFocalCrossentropy(Loss):
    fn = staticmethod(categorical_focal_crossentropy)

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, **kwargs):
        super().__init__(
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            **kwargs,
        )


class LossFunctionWrapper(Loss):
    """Wrap a plain function ``fn(y_true, y_pred) -> per-sample tensor``."""

    def __init__(self, fn, name=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", "loss"), **kwargs)
        self._fn = fn

    def call(self, y_true, y_pred):
        return self._fn(y_true, y_pred)


_BY_NAME = {
    "binary_focal_crossentropy": BinaryFocalCrossentropy,
    "categorical_focal_crossentropy": CategoricalFocalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "huber": Huber,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
    "poisson": Poisson,
    "log_cosh": LogCosh,
    "logcosh": LogCosh,
    "cosine_similarity": CosineSimilarity,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "mape": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "msle": MeanSquaredLogarithmicError,
    "hinge": Hinge,
    "squared_hinge": SquaredHinge,
    "categorical_hinge": CategoricalHinge,
}
_FN_TO_CLASS = {
    binary_focal_crossentropy: BinaryFocalCrossentropy,
    categorical_focal_crossentropy: CategoricalFocalCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    huber: Huber,
    kl_divergence: KLDivergence,
    poisson: Poisson,
    log_cosh: LogCosh,
    cosine_similarity: CosineSimilarity,
    mean_absolute_percentage_error: MeanAbsolutePercentageError,
    mean_squared_logarithmic_error: MeanSquaredLogarithmicError,
    hinge: Hinge,
    squared_hinge: SquaredHinge,
    categorical_hinge: CategoricalHinge,
}


def get(identifier) -> Loss:
    """Return a Loss object from a name, a Loss, a class, or a function."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        key = identifier if identifier in _BY_NAME else _snake_name(identifier)
        if key in _BY_NAME:
            loss = _BY_NAME[key]()
            loss.name = identifier
            return loss
        raise ValueError(
            f"Unknown loss: expected one of {sorted(_BY_NAME)}, a Loss or a function. "
            f"Received: loss={identifier!r}"
        )
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if identifier in _FN_TO_CLASS:
        return _FN_TO_CLASS[identifier]()
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise ValueError(f"loss must be a string, a Loss or a callable. Received: loss={identifier!r}")


# Keras 3's overlap, metric-learning and noise-robust losses (their own module: see there)
from hpnn.losses_extra import (  # noqa: E402  (they build on Loss, above)
    CategoricalGeneralizedCrossEntropy,
    Circle,
    Dice,
    Tversky,
    categorical_generalized_cross_entropy,
    circle,
    dice,
    tversky,
)

_EXTRA = {
    dice: Dice,
    tversky: Tversky,
    circle: Circle,
    categorical_generalized_cross_entropy: CategoricalGeneralizedCrossEntropy,
}
_FN_TO_CLASS.update(_EXTRA)
_BY_NAME.update({fn.__name__: cls for fn, cls in _EXTRA.items()})


def serialize(loss):
    """A Loss (or loss function) as Keras' ``{"module", "class_name", "config",
    "registered_name"}`` entry; ``deserialize`` makes it again."""
    from hpnn.saving import serialize_keras_object

    return serialize_keras_object(loss)


def deserialize(name, custom_objects=None):
    """A Loss from ``serialize``'s entry; a name gives the loss function of that name
    (``"mse"`` -> ``mean_squared_error``) or the class (``"Huber"``)."""
    from hpnn.saving import deserialize_keras_object

    if isinstance(name, str):
        found = globals().get(name)
        if callable(found) and (
            (isinstance(found, type) and issubclass(found, Loss)) or found in _FN_TO_CLASS
        ):
            return found
        if name in _BY_NAME:
            return _BY_NAME[name]
    return deserialize_keras_object(name, custom_objects)
