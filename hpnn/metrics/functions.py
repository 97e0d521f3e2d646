"""Keras' metric functions: the accuracies (arrays of per-sample 0/1 matches) and the
correlations (built from hpnn's ops, so they differentiate like a loss). The other
function forms of ``keras.metrics`` are the loss functions (``hpnn.losses``)."""

from __future__ import annotations

import numpy as np

from hpnn.backend import floatx, get_xp, to_numpy
from hpnn.engine import ops
from hpnn.engine.tensor import Tensor, as_tensor
from hpnn.metrics.base import _same_rank

EPSILON = 1e-7


def _arrays(y_true, y_pred):
    t = to_numpy(y_true.data if isinstance(y_true, Tensor) else y_true)
    p = to_numpy(y_pred.data if isinstance(y_pred, Tensor) else y_pred)
    return np.asarray(t), np.asarray(p)


def accuracy(y_true, y_pred):
    """1 where ``y_true == y_pred`` exactly, else 0."""
    t, p = _same_rank(*_arrays(y_true, y_pred))
    return (t == p).astype(floatx())


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1 where ``y_pred > threshold`` equals ``y_true`` (elementwise), else 0."""
    t, p = _same_rank(*_arrays(y_true, y_pred))
    return (t == (p > threshold).astype(t.dtype)).astype(floatx())


def categorical_accuracy(y_true, y_pred):
    """1 where the largest prediction is at the one-hot target's class, else 0."""
    t, p = _arrays(y_true, y_pred)
    return (np.argmax(t, axis=-1) == np.argmax(p, axis=-1)).astype(floatx())


def _sparse_labels(t, p):
    """Integer labels ``(N, ...)`` from targets one axis short of ``p`` or with a last axis
    of 1; and whether that axis was there."""
    squeezed = t.ndim == p.ndim and t.shape[-1] == 1
    return (t[..., 0] if squeezed else t), squeezed


def sparse_categorical_accuracy(y_true, y_pred):
    """1 where the largest prediction is at the integer label's class, else 0."""
    t, p = _arrays(y_true, y_pred)
    labels, _ = _sparse_labels(t, p)
    return (labels == np.argmax(p, axis=-1).astype(labels.dtype)).astype(floatx())


def _in_top_k(labels, p, k):
    """Whether each label's prediction is among the row's ``k`` largest (ties at the
    k-th value count in, as ``ops.in_top_k``)."""
    rows = p.reshape(-1, p.shape[-1])
    labels = labels.reshape(-1).astype(np.int64)
    k = min(int(k), rows.shape[-1])
    kth = -np.partition(-rows, k - 1, axis=-1)[:, k - 1]
    return rows[np.arange(len(rows)), labels] >= kth


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the one-hot target's class is among the ``k`` largest predictions."""
    t, p = _arrays(y_true, y_pred)
    labels = np.argmax(t, axis=-1)
    return _in_top_k(labels, p, k).reshape(labels.shape).astype(floatx())


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1 where the integer label is among the ``k`` largest predictions (or, with
    ``from_sorted_ids``, among the first ``k`` ids of ``y_pred``, ids sorted by score)."""
    t, p = _arrays(y_true, y_pred)
    labels = t.astype(np.int64) if not from_sorted_ids else t
    shape = labels.shape
    if from_sorted_ids:
        hit = (labels.reshape(-1, 1) == p.reshape(-1, p.shape[-1])[:, :k]).any(axis=1)
    else:
        hit = _in_top_k(labels, p, k)
    return hit.reshape(shape).astype(floatx())


def _pair(y_true, y_pred):
    y_pred = as_tensor(y_pred)
    xp = get_xp(y_pred.data)
    t = xp.asarray(y_true.data if isinstance(y_true, Tensor) else y_true, dtype=y_pred.dtype)
    if t.ndim == y_pred.ndim + 1 and t.shape[-1] == 1:
        t = t[..., 0]
    elif y_pred.ndim == t.ndim + 1 and y_pred.shape[-1] == 1:
        t = t[..., None]
    return t, y_pred


def pearson_correlation(y_true, y_pred, axis=-1):
    """The Pearson correlation of ``y_true`` and ``y_pred`` along ``axis``, per sample."""
    t, p = _pair(y_true, y_pred)
    tc = t - t.mean(axis=axis, keepdims=True)
    tn = tc / tc.std(axis=axis, keepdims=True)
    pc = p - ops.mean(p, axis=axis, keepdims=True)
    pn = pc / ops.sqrt(ops.mean(pc * pc, axis=axis, keepdims=True))
    return ops.mean(ops.mul(pn, tn), axis=axis)


def concordance_correlation(y_true, y_pred, axis=-1):
    """Lin's concordance correlation along ``axis``, per sample, written as Keras 3
    computes it: ``mean(2 * (t - mean(p)) * (p - mean(p)) / (var(t) + var(p) +
    (mean(t) - mean(p))**2 + epsilon))`` (its covariance centres ``t`` on ``p``'s mean)."""
    t, p = _pair(y_true, y_pred)
    t_mean = t.mean(axis=axis, keepdims=True)
    t_var = t.var(axis=axis, keepdims=True)
    p_mean = ops.mean(p, axis=axis, keepdims=True)
    pc = p - p_mean
    p_var = ops.mean(pc * pc, axis=axis, keepdims=True)
    d = p_mean * -1.0 + t_mean
    norm = p_var + d * d + (t_var + EPSILON)
    covar = ops.mul(pc, -1.0 * p_mean + t) * 2.0
    return ops.mean(covar / norm, axis=axis)
