"""What the explanations and the attacks share: inputs, targets, and d(score)/d(input).

The model is never changed: its weights are switched to ``requires_grad=False``
while a gradient is taken (so the backward pass skips every weight gradient) and
their ``.grad`` is put back as it was afterwards.
"""

from __future__ import annotations

import contextlib

import numpy as np

from hpnn.backend import floatx, to_numpy, xp_default
from hpnn.engine import ops
from hpnn.engine.tensor import Tensor, no_grad


@contextlib.contextmanager
def frozen(model):
    """Inside, weights take no gradient; afterwards ``requires_grad`` and ``.grad`` are restored."""
    saved = [(w, w.requires_grad, w.grad) for w in model.weights]
    for w, _, _ in saved:
        w.requires_grad = False
    try:
        yield
    finally:
        for w, requires_grad, grad in saved:
            w.requires_grad, w.grad = requires_grad, grad


def as_input(model, x, where: str) -> np.ndarray:
    """``x`` as a float32 array that fits the model's input (a batch axis first)."""
    if not getattr(model, "_float_input", True):
        raise ValueError(
            f"{where}: the model takes integer ids (its first layer is "
            f"{type(model.layers[0]).__name__}); input gradients need float inputs."
        )
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: x must be numeric. Received: dtype={arr.dtype}")
    # A fresh C-ordered copy: canonical strides whatever the caller's view (a size-1 axis
    # made by [..., None] has stride 0), and the caller's array is never written to.
    arr = np.array(arr, dtype=floatx(), order="C", copy=True)
    expected = getattr(model, "input_shape", None)
    if expected is not None and (
        arr.ndim != len(expected)
        or any(e is not None and e != s for e, s in zip(expected[1:], arr.shape[1:], strict=False))
    ):
        raise ValueError(
            f"{where}: x must be a batch of model inputs, shape {expected} (None = any). "
            f"Received: shape={arr.shape}"
        )
    if arr.ndim < 2 or len(arr) == 0:
        raise ValueError(f"{where}: x must be a non-empty batch. Received: shape={arr.shape}")
    return arr


def forward(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's inference outputs for ``x`` (as ``predict``), without graph."""
    outs = []
    with no_grad():
        for start in range(0, len(x), batch_size):
            xb = Tensor(xp_default().asarray(x[start : start + batch_size]))
            outs.append(to_numpy(model(xb, training=False).data))
    return np.concatenate(outs)


def class_outputs(out: np.ndarray, where: str) -> np.ndarray:
    """Check that the model outputs one row of class scores per sample."""
    if out.ndim != 2:
        raise ValueError(
            f"{where}: the model must output (batch, classes) scores. "
            f"Received: output shape={out.shape}"
        )
    return out


def resolve_target(target, out: np.ndarray, where: str) -> np.ndarray:
    """Per-sample class indices: None means the predicted class; an int applies to all."""
    n, classes = out.shape
    if target is None:
        return out.argmax(axis=1) if classes > 1 else np.zeros(n, dtype=np.int64)
    t = np.asarray(target)
    if t.dtype.kind not in "iu" or t.ndim > 1 or (t.ndim == 1 and len(t) != n):
        raise ValueError(
            f"{where}: target must be None, an int, or {n} ints (one per sample). "
            f"Received: target={target!r}"
        )
    t = np.broadcast_to(t, (n,)).astype(np.int64)
    if t.min() < 0 or t.max() >= classes:
        raise ValueError(
            f"{where}: target must be a class index in [0, {classes}). Received: target={target!r}"
        )
    return t


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((len(labels), classes), dtype=floatx())
    out[np.arange(len(labels)), labels] = 1
    return out


def gradient(model, x: np.ndarray, score, batch_size: int = 256):
    """``d score / d x`` for every sample, batch by batch.

    Args:
        x: inputs ``(N, ...)``.
        score: ``score(output_tensor, rows)`` returns per-sample scores (a Tensor
            ``(B,)``) for the batch ``x[rows]``; samples must not interact, so the
            gradient of their sum is each sample's own gradient.

    Returns:
        ``(grad, outputs)``: arrays ``(N, ...)`` like ``x`` and the model's outputs.
    """
    grads, outs = [], []
    with frozen(model):
        for start in range(0, len(x), batch_size):
            rows = slice(start, min(start + batch_size, len(x)))
            xt = Tensor(xp_default().asarray(x[rows]), requires_grad=True)
            out = model(xt, training=False)
            ops.sum(score(out, rows)).backward()
            grads.append(to_numpy(xt.grad))
            outs.append(to_numpy(out.data))
    return np.concatenate(grads), np.concatenate(outs)


def class_score(targets: np.ndarray):
    """A ``score`` for :func:`gradient`: output ``[i, targets[i]]`` of each sample."""

    def score(out, rows):
        mask = one_hot(targets[rows], out.shape[1])
        return ops.sum(out * Tensor(xp_default().asarray(mask)), axis=1)

    return score


def check_positive_int(value, name: str, where: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive int. Received: {name}={value!r}")
    return int(value)
