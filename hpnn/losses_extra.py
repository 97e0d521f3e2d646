"""Keras 3's overlap, metric-learning and noise-robust losses: ``dice``, ``tversky``,
``circle`` and ``categorical_generalized_cross_entropy`` (and their classes), built from
hpnn's ops, so they back-propagate through the engine.

``Dice`` and ``Tversky`` (with Keras' default ``axis=None``) and ``Circle`` are not means
of per-sample values: Dice and Tversky sum over the whole batch, Circle compares every
pair of samples. Such a loss's batch is never cut into parts across the cores
(``batch_mean = False``); under MPI each rank's shard is one batch of its own (the
gradient is the mean of the shards' gradients), as with any loss.
"""

from __future__ import annotations

from hpnn.backend import get_xp
from hpnn.engine import ops
from hpnn.engine.tensor import Tensor, as_tensor
from hpnn.losses import EPSILON, Loss, _as_target


def dice(y_true, y_pred, axis=None):
    """``1 - 2 * sum(t * p) / (sum(t) + sum(p) + epsilon)`` over ``axis`` (all axes by
    default: one value for the batch)."""
    y_pred = as_tensor(y_pred)
    t = _as_target(y_true, y_pred)
    overlap = ops.sum(ops.mul(y_pred, t), axis=axis)
    total = ops.sum(y_pred, axis=axis) + (t.sum(axis=axis) + EPSILON)
    return 1.0 - overlap * 2.0 / total


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """``1 - sum(t * p) / (sum(t * p) + alpha * sum(t * (1 - p)) + beta * sum((1 - t) *
    p) + epsilon)`` over ``axis`` (as Keras 3 writes it); alpha = beta = 0.5 is Dice."""
    y_pred = as_tensor(y_pred)
    t = _as_target(y_true, y_pred)
    overlap = ops.sum(ops.mul(y_pred, t), axis=axis)
    missed = ops.sum(ops.mul(1.0 - y_pred, t), axis=axis)
    extra = ops.sum(ops.mul(y_pred, 1.0 - t), axis=axis)
    return 1.0 - overlap / (overlap + missed * alpha + extra * beta + EPSILON)


def categorical_generalized_cross_entropy(y_true, y_pred, q):
    """Per-sample ``(1 - p ** q) / q``, ``p`` the probability given to the integer label
    (Zhang & Sabuncu's noise-robust loss: cross-entropy as q -> 0, MAE at q = 1)."""
    y_pred = as_tensor(y_pred)
    xp = get_xp(y_pred.data)
    labels = xp.asarray(y_true.data if isinstance(y_true, Tensor) else y_true)
    onehot = xp.eye(y_pred.shape[-1], dtype=y_pred.dtype)[labels.astype(xp.int64)]
    p = ops.sum(ops.mul(y_pred, onehot), axis=-1)
    return (1.0 - ops.pow(p, float(q))) * (1.0 / q)


def _masked_logsumexp(x: Tensor, mask):
    """``log(sum(exp(x)))`` over each row's entries where ``mask`` (a constant array) is
    1; rows without any get 0 (the caller drops them). Masked-out entries take no part,
    not even in the gradient."""
    xp = get_xp(x.data)
    has = mask.any(axis=1, keepdims=True)
    top = xp.where(mask > 0, x.data, -xp.inf).max(axis=1, keepdims=True)
    top = xp.where(has, top, 0.0).astype(x.dtype)
    safe = ops.mul(x, mask) + top * (1 - mask)  # exp of an unmasked entry never overflows
    total = ops.sum(ops.mul(ops.exp(safe - top), mask), axis=1, keepdims=True)
    return (ops.log(total + (~has).astype(x.dtype)) + top)[:, 0]


def circle(
    y_true, y_pred, ref_labels=None, ref_embeddings=None, remove_diagonal=True, gamma=80, margin=0.4
):
    """Per-sample circle loss (Sun et al. 2020) of L2-normalised embeddings ``y_pred``
    ``(N, D)`` with integer labels ``y_true`` ``(N,)``, against ``ref_embeddings`` (the
    batch itself by default): same-label pairs are pulled together, others pushed apart,
    each pair weighted by how far it is from its optimum. 0 for a sample with no pair
    of one kind."""
    y_pred = as_tensor(y_pred)
    xp = get_xp(y_pred.data)
    labels = xp.asarray(y_true.data if isinstance(y_true, Tensor) else y_true).reshape(-1)
    ref = y_pred if ref_embeddings is None else as_tensor(ref_embeddings)
    ref_labels = labels if ref_labels is None else xp.asarray(ref_labels).reshape(-1)
    same = labels.astype(xp.int64)[:, None] == ref_labels.astype(xp.int64)[None, :]
    positive, negative = same.copy(), ~same
    if remove_diagonal:
        positive &= ~xp.eye(len(labels), len(ref_labels), dtype=bool)
    positive, negative = positive.astype(y_pred.dtype), negative.astype(y_pred.dtype)
    distance = ops.relu(1.0 - ops.matmul(y_pred, ops.transpose(ref)))
    pos_weight = ops.relu(ops.mul(distance + margin, positive))
    neg_weight = ops.relu(ops.mul(1.0 + margin - distance, negative))
    pos_term = ops.mul(pos_weight, margin - distance) * -float(gamma)
    neg_term = ops.mul(neg_weight, 1.0 - margin - distance) * float(gamma)
    valid = (positive.any(axis=1) & negative.any(axis=1)).astype(y_pred.dtype)
    both = _masked_logsumexp(pos_term, positive) + _masked_logsumexp(neg_term, negative)
    return ops.mul(ops.softplus(both), valid)


class _WholeBatch(Loss):
    """A loss that is not a mean of per-sample values: its batch is never split."""

    batch_mean = False


class Dice(_WholeBatch):
    """``dice`` as a loss object (``axis`` None: one value for the batch)."""

    fn = staticmethod(dice)

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(name=name, reduction=reduction, axis=axis)
        self.batch_mean = axis is not None and 0 not in _axes(axis)


class Tversky(_WholeBatch):
    """``tversky`` as a loss object (``alpha`` weighs missed positives, ``beta`` extra
    ones)."""

    fn = staticmethod(tversky)

    def __init__(
        self,
        alpha=0.5,
        beta=0.5,
        reduction="sum_over_batch_size",
        name="tversky",
        axis=None,
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, alpha=alpha, beta=beta, axis=axis)
        self.batch_mean = axis is not None and 0 not in _axes(axis)


def _axes(axis):
    return (axis,) if isinstance(axis, int) else tuple(axis)


class Circle(_WholeBatch):
    """``circle`` as a loss object. As Keras, the batch mean counts only the samples
    whose loss is above 0 (those with pairs of both kinds)."""

    fn = staticmethod(circle)
    targets = "any"  # (labels (N,) of embeddings (N, D): any integers)

    def __init__(
        self,
        gamma=80.0,
        margin=0.4,
        remove_diagonal=True,
        reduction="sum_over_batch_size",
        name="circle",
        dtype=None,
    ):
        super().__init__(
            name=name,
            reduction=reduction,
            gamma=gamma,
            margin=margin,
            remove_diagonal=remove_diagonal,
        )

    def __call__(self, y_true, y_pred, sample_weight=None):
        values = self.call(y_true, y_pred)
        xp = get_xp(values.data)
        kept = (values.data > 0).astype(values.dtype)
        if self.reduction == "sum_over_batch_size" and kept.sum():
            kept *= values.size / kept.sum()  # Keras' masked mean: over the kept samples
        weight = kept if sample_weight is None else kept * _as_target(sample_weight, values)
        return self._reduce(values, xp.asarray(weight))


class CategoricalGeneralizedCrossEntropy(Loss):
    """``categorical_generalized_cross_entropy`` as a loss object, ``q`` in (0, 1)."""

    fn = staticmethod(categorical_generalized_cross_entropy)
    targets = "labels"  # integer labels (N,), as the sparse cross-entropy's

    def __init__(
        self,
        q=0.5,
        reduction="sum_over_batch_size",
        name="categorical_generalized_cross_entropy",
        dtype=None,
    ):
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
            raise ValueError(
                f"CategoricalGeneralizedCrossEntropy: q must be a number in (0, 1). "
                f"Received: q={q!r}"
            )
        super().__init__(name=name, reduction=reduction, q=q)
