"""Utilities as in ``keras.utils``: seeding, one-hot encoding, session reset, and
``PyDataset`` (``Sequence``) for data read batch by batch."""

from __future__ import annotations

import random

import numpy as np

from hpnn import random as hpnn_random
from hpnn.backend import floatx
from hpnn.data.pydataset import PyDataset, Sequence  # noqa: F401 - keras.utils names
from hpnn.layers.base import reset_names


def set_random_seed(seed: int) -> None:
    """Seed everything a run draws from: weights, shuffling, dropout (and Python, NumPy)."""
    hpnn_random.set_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def to_categorical(x, num_classes=None) -> np.ndarray:
    """One-hot encode integer labels: shape ``(N,)`` becomes ``(N, num_classes)``."""
    y = np.asarray(x)
    if y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            raise ValueError(
                "to_categorical expects integer class indices. Received: "
                f"non-integer values such as {y[y != np.round(y)].flat[0]}"
            )
        y = y.astype(np.int64)
    if y.dtype.kind not in "iub":
        raise ValueError(f"to_categorical expects integer labels. Received: dtype={y.dtype}")
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0. Received: min={y.min()}")
    top = int(y.max()) + 1 if y.size else 0
    if num_classes is None:
        num_classes = top
    elif top > num_classes:
        raise ValueError(f"to_categorical: label {top - 1} does not fit num_classes={num_classes}")
    out = np.zeros((*y.shape, num_classes), dtype=floatx())
    np.put_along_axis(out, y[..., None].astype(np.int64), 1, axis=-1)
    return out


def clear_session() -> None:
    """Restart automatic layer names (``dense``, ``dense_1``, ...)."""
    reset_names()
