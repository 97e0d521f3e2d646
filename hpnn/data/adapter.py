"""Checks on user arrays, validation split, and batch iteration.

Every check runs once per call of ``fit``/``evaluate``/``predict`` on the whole
array, so that bad input fails before training with an error that names the
argument, what was expected and what was received.
"""

from __future__ import annotations

import numpy as np

from hpnn.backend import to_numpy
from hpnn.engine.tensor import Tensor


def to_array(value, name: str) -> np.ndarray:
    """Convert ``value`` (array, list, Tensor) to a NumPy array with a clear error."""
    if isinstance(value, Tensor):
        value = value.numpy()
    try:
        arr = np.asarray(to_numpy(value))
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{name} must be an array-like of numbers. Received: {type(value).__name__} ({e})"
        ) from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must hold numbers (bool, int or float). Received: dtype={arr.dtype}"
        )
    if arr.ndim == 0:
        raise ValueError(f"{name} must have a batch axis. Received: a scalar {arr!r}")
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise if a float array holds NaN or inf, saying where."""
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = np.argwhere(bad)[0]
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN or infinite value(s); the first at "
                f"index {tuple(int(i) for i in idx)} is {arr[tuple(idx)]}. Clean or impute the "
                "data before training."
            )


class InputList:
    """The input arrays of a model with several inputs, sliced together: ``len`` is the
    number of samples and ``[idx]`` takes the same samples from every array."""

    def __init__(self, arrays):
        self.arrays = list(arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, idx) -> InputList:
        return InputList([a[idx] for a in self.arrays])

    @property
    def shape(self) -> tuple:
        return (len(self),)

    def __repr__(self) -> str:
        return f"InputList(shapes={[a.shape for a in self.arrays]})"


def check_lengths(x: np.ndarray, y: np.ndarray | None, what: str = "") -> None:
    if y is not None and len(x) != len(y):
        raise ValueError(
            f"{what}x and {what}y must have the same number of samples. "
            f"Received: x.shape={x.shape}, y.shape={y.shape}"
        )


def check_targets(y: np.ndarray, loss_name: str, out_shape: tuple, name: str = "y") -> None:
    """Check targets against the loss and the model's output shape ``(None, ...)``."""
    loss = (loss_name or "").lower()
    n_out = out_shape[-1] if out_shape else None
    if "sparse" in loss:
        flat = y[..., 0] if (y.ndim == len(out_shape) and y.shape[-1] == 1) else y
        if flat.ndim != len(out_shape) - 1:
            raise ValueError(
                f"{loss_name} expects {name} as integer class indices of shape "
                f"{(len(y), *tuple(out_shape[1:-1]))}. Received: {name}.shape={y.shape} "
                f"(one-hot targets need loss='categorical_crossentropy')"
            )
        if flat.dtype.kind == "f" and not np.all(flat == np.round(flat)):
            raise ValueError(
                f"{loss_name} expects integer class indices in {name}. "
                f"Received: non-integer values such as {flat[flat != np.round(flat)][0]}"
            )
        lo, hi = (flat.min(), flat.max()) if flat.size else (0, 0)
        if n_out is not None and (lo < 0 or hi >= n_out):
            raise ValueError(
                f"{loss_name}: labels in {name} must be in [0, {n_out - 1}] for a model with "
                f"{n_out} outputs. Received: labels from {lo} to {hi}"
            )
        return
    if "categorical" in loss:
        if y.ndim != len(out_shape) or (n_out is not None and y.shape[-1] != n_out):
            hint = (
                (
                    " (integer labels need loss='sparse_categorical_crossentropy' "
                    "or hpnn.utils.to_categorical)"
                )
                if y.ndim == len(out_shape) - 1
                else ""
            )
            raise ValueError(
                f"{loss_name} expects one-hot {name} of shape {(len(y), *out_shape[1:])}. "
                f"Received: {name}.shape={y.shape}{hint}"
            )
        return
    if "binary" in loss and (y.min(initial=0) < 0 or y.max(initial=0) > 1):
        raise ValueError(
            f"{loss_name} expects {name} in [0, 1]. Received: values from {y.min()} to {y.max()}"
        )
    ok = y.shape[1:] == tuple(out_shape[1:]) or (
        y.ndim == len(out_shape) - 1 and n_out == 1 and y.shape[1:] == tuple(out_shape[1:-1])
    )
    if not ok:
        raise ValueError(
            f"{name} does not match the model's output: expected shape "
            f"{(len(y), *out_shape[1:])}. Received: {name}.shape={y.shape}"
        )


def sample_weights(sample_weight, class_weight, y, what: str = ""):
    """The per-sample weights of ``fit``/``evaluate`` as float32, or None.

    ``sample_weight``: an array whose first axis is the samples (``(N,)``, or the
    shape of the loss per sample, e.g. ``(N, T)``). ``class_weight``: a dict from
    class index to weight, turned into sample weights through the targets as Keras
    does (one-hot targets by their argmax; classes not in the dict weigh 1).
    """
    if class_weight is not None:
        if sample_weight is not None:
            raise ValueError(
                "You cannot use class_weight and sample_weight at the same time: pass "
                "one. Received: both"
            )
        if not isinstance(class_weight, dict) or not all(
            isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0
            for k in class_weight
        ):
            raise ValueError(
                "class_weight must be a dict from class index (int >= 0) to weight. "
                f"Received: {class_weight!r}"
            )
        labels = np.asarray(y)
        if labels.ndim > 2:
            raise ValueError(
                "class_weight needs targets of one class per sample: (N,) labels or (N, C) "
                f"one-hot. Received: targets of shape {labels.shape}; pass sample_weight"
            )
        if labels.ndim == 2:
            labels = labels.argmax(axis=-1) if labels.shape[-1] != 1 else labels[:, 0]
        labels = np.round(labels).astype(np.int64)
        if labels.size and labels.min() < 0:
            raise ValueError(
                f"class_weight needs class indices >= 0. Received: a target of {labels.min()}"
            )
        table = np.ones(max(int(labels.max(initial=0)), max(class_weight)) + 1, np.float64)
        for k, v in class_weight.items():
            table[int(k)] = float(v)
        return table[labels].astype(np.float32)
    if sample_weight is None:
        return None
    name = f"{what}sample_weight"
    w = to_array(sample_weight, name)
    check_finite(w, name)
    if len(w) != len(y):
        raise ValueError(
            f"{name} must have one weight per sample: {len(y)} samples. Received: shape={w.shape}"
        )
    return w.astype(np.float32)


def split_validation(x, y, fraction: float, sample_weight=None):
    """Keras' ``validation_split``: the last ``fraction`` of the samples, before shuffling.
    Returns ``(x, y, w), (x_val, y_val, w_val)`` (``w`` None without sample weights;
    the validation part None when ``fraction`` is 0)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(
            f"validation_split must be in [0, 1). Received: validation_split={fraction}"
        )
    n_val = int(len(x) * fraction)
    if fraction and n_val == 0:
        raise ValueError(f"validation_split={fraction} leaves no validation sample out of {len(x)}")
    cut = len(x) - n_val
    arrays = (x, y, sample_weight)
    if n_val == 0:
        return arrays, None
    train = tuple(None if a is None else a[:cut] for a in arrays)
    return train, tuple(None if a is None else a[cut:] for a in arrays)


def batch_slices(n: int, batch_size: int):
    """Yield ``slice`` objects covering ``range(n)`` in order."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def check_batch_size(batch_size, default=32) -> int:
    if batch_size is None:
        return default
    if (
        not isinstance(batch_size, (int, np.integer))
        or isinstance(batch_size, bool)
        or batch_size <= 0
    ):
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
    return int(batch_size)
