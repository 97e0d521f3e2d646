"""Utilities as in ``keras.utils``: seeding, one-hot encoding, session reset, and
``PyDataset`` (``Sequence``) for data read batch by batch."""

from __future__ import annotations

import random

import numpy as np

from hpnn import random as hpnn_random
from hpnn.backend import floatx
from hpnn.data.pydataset import PyDataset, Sequence  # noqa: F401 - keras.utils names
from hpnn.layers.base import reset_names
from hpnn.plot_model import model_to_dot, plot_model  # noqa: F401 - keras.utils names


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


def pad_sequences(
    sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0
) -> np.ndarray:
    """Lists of ids (or of feature vectors) as one ``(n, maxlen, ...)`` array, as Keras':
    shorter ones padded with ``value`` and longer ones cut, at the start (``"pre"``,
    the default) or at the end (``"post"``); ``maxlen`` defaults to the longest."""
    for name, v in (("padding", padding), ("truncating", truncating)):
        if v not in ("pre", "post"):
            raise ValueError(f"pad_sequences: {name} must be 'pre' or 'post'. Received: {v!r}")
    try:
        seqs = [np.asarray(s) for s in sequences]
    except TypeError as e:
        raise ValueError(
            f"pad_sequences: sequences must be an iterable of sequences. Received: {e}"
        ) from None
    lengths = [len(s) for s in seqs]
    if maxlen is None:
        maxlen = max(lengths, default=0)
    if not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be an int >= 0. Received: {maxlen!r}")
    tail = next((s.shape[1:] for s in seqs if len(s)), ())
    out = np.full((len(seqs), maxlen, *tail), value, dtype=dtype)
    for i, s in enumerate(seqs):
        if not len(s) or not maxlen:
            continue
        if s.shape[1:] != tail:
            raise ValueError(
                f"pad_sequences: every element must have shape {tail}. Received: "
                f"{s.shape[1:]} in sequence {i}"
            )
        s = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if padding == "post":
            out[i, : len(s)] = s
        else:
            out[i, maxlen - len(s) :] = s
    return out


def normalize(x, axis=-1, order=2) -> np.ndarray:
    """``x`` divided by its ``order``-norm along ``axis`` (zero norms left as 1)."""
    x = np.asarray(x)
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)
