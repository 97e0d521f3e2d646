"""Utilities as in ``keras.utils``: seeding, one-hot encoding, session reset,
``PyDataset`` (``Sequence``) for data read batch by batch, the serialization registry
(from ``hpnn.saving``), batch packing, dtype names, ``Progbar`` and ``Config``.

Not here: ``img_to_array``, ``array_to_img``, ``load_img`` and ``save_img`` convert to
and from PIL images (Pillow), which hpnn does not depend on.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np

from hpnn import random as hpnn_random
from hpnn.backend import floatx
from hpnn.data.pydataset import PyDataset, Sequence  # noqa: F401 - keras.utils names
from hpnn.layers.base import reset_names
from hpnn.plot_model import model_to_dot, plot_model  # noqa: F401 - keras.utils names
from hpnn.saving import (  # noqa: F401 - keras.utils names
    CustomObjectScope,
    custom_object_scope,
    deserialize_keras_object,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
    serialize_keras_object,
)


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


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """``(x, y, sample_weight)`` as one batch: ``x`` alone (a tuple or list wrapped as
    ``(x,)``), ``(x, y)`` or ``(x, y, sample_weight)``."""
    if y is None:
        return (x,) if isinstance(x, (tuple, list)) else x
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def unpack_x_y_sample_weight(data):
    """A batch as ``(x, y, sample_weight)``, None for what it lacks."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return (data, None, None)
    if 1 <= len(data) <= 3:
        return tuple(data) + (None,) * (3 - len(data))
    raise ValueError(
        "unpack_x_y_sample_weight: expected x, (x,), (x, y) or (x, y, sample_weight). "
        f"Received: a tuple of {len(data)} elements"
    )


def is_keras_tensor(x) -> bool:
    """Whether ``x`` is a symbolic tensor (from ``hpnn.Input`` or a layer called on one)."""
    from hpnn.layers.symbolic import KerasTensor

    return isinstance(x, KerasTensor)


def get_source_inputs(tensor):
    """The ``Input`` tensors a symbolic tensor is computed from (each once, in the order
    met); a tensor that is not symbolic is returned as is."""
    if not is_keras_tensor(tensor):
        return tensor
    found, todo, seen = [], [tensor], set()
    while todo:
        t = todo.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if not t._inputs:
            found.append(t)
        todo.extend(reversed(t._inputs))
    return found


_DTYPES = (
    "float16",
    "float32",
    "float64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "bfloat16",
    "bool",
    "string",
    "float8_e4m3fn",
    "float8_e5m2",
    "complex64",
    "complex128",
)
_PYTHON_DTYPES = {
    bool: "bool",
    int: "int32",
    float: "float32",
    str: "string",
    "int": "int32",
    complex: "complex64",
}


def standardize_dtype(dtype) -> str:
    """A dtype's name as Keras writes it (``np.float32`` -> ``"float32"``; None ->
    ``floatx()``; Python's ``int`` -> ``"int32"``, ``float`` -> ``"float32"``)."""
    if dtype is None:
        return floatx()
    with contextlib.suppress(TypeError):  # (an unhashable dtype object)
        dtype = _PYTHON_DTYPES.get(dtype, dtype)
    if hasattr(dtype, "name"):
        dtype = dtype.name
    elif hasattr(dtype, "__name__"):
        dtype = dtype.__name__
    elif "torch" in str(dtype) or "jax.numpy" in str(dtype):
        dtype = str(dtype).split(".")[-1]
    if dtype not in _DTYPES:
        raise ValueError(f"standardize_dtype: invalid dtype. Received: dtype={dtype!r}")
    return dtype


# -- interactive logging and the progress bar ----------------------------------------------
_INTERACTIVE = {"on": True}


def enable_interactive_logging() -> None:
    """``Progbar`` output goes to the terminal (stdout), redrawn in place."""
    _INTERACTIVE["on"] = True


def disable_interactive_logging() -> None:
    """``Progbar`` output goes to Python's ``logging`` (logger ``hpnn``), final lines only."""
    _INTERACTIVE["on"] = False


def is_interactive_logging_enabled() -> bool:
    return _INTERACTIVE["on"]


class _LogStream:
    """A stream that writes each line to the ``hpnn`` logger."""

    def write(self, text):
        import logging

        line = text.replace("\r", "").replace("\033[K", "").strip()
        if line:
            logging.getLogger("hpnn").info(line)

    def flush(self):
        pass

    def isatty(self):
        return False


class Progbar:
    """Keras' ``utils.Progbar``: progress over ``target`` steps (None: unknown), drawn by
    hpnn's progress bar (redrawn in place in a terminal; the final line only in a log).

    ``update(current, values)`` takes ``[(name, value), ...]``: values of names not in
    ``stateful_metrics`` are shown as their average over the steps so far (weighted by
    the steps each covers), the others as given. ``add(n, values)`` advances by ``n``.
    """

    def __init__(
        self,
        target,
        width=20,
        verbose=1,
        interval=0.05,
        stateful_metrics=None,
        unit_name="step",
        stream=None,
    ):
        from hpnn.training.progbar import Progbar as Bar

        if stream is None and not is_interactive_logging_enabled():
            stream = _LogStream()
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name = interval, unit_name
        self.stateful_metrics = set(stateful_metrics or ())
        self._bar = Bar(target, verbose=verbose, width=width, stream=stream)
        self._values: dict = {}
        self._seen_so_far = 0

    def update(self, current, values=None, finalize=None) -> None:
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or []:
            value = float(value)
            if name in self.stateful_metrics or finalize:
                self._values[name] = [value, 1]
                continue
            steps = max(current - self._seen_so_far, 1)
            total, count = self._values.get(name, [0.0, 0])
            self._values[name] = [total + value * steps, count + steps]
        self._seen_so_far = current
        logs = {name: total / count for name, (total, count) in self._values.items()}
        if finalize:
            self._bar.seen = current
            if self.verbose:
                self._bar.finish(logs)
        elif self.verbose == 1:
            self._bar.update(current, logs)

    def add(self, n, values=None) -> None:
        self.update(self._seen_so_far + n, values)


class Config:
    """A dict whose keys are also attributes (Keras' ``utils.Config``); ``freeze()``
    makes it read-only.

    >>> c = Config(learning_rate=0.1); c.momentum = 0.9; c.as_dict()
    {'learning_rate': 0.1, 'momentum': 0.9}
    """

    def __init__(self, **kwargs):
        object.__setattr__(self, "_config", dict(kwargs))
        object.__setattr__(self, "_frozen", False)

    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    def unfreeze(self) -> None:
        object.__setattr__(self, "_frozen", False)

    def _check(self) -> None:
        if self._frozen:
            raise ValueError("Config: cannot change a frozen config (call unfreeze() first).")

    def as_dict(self) -> dict:
        return dict(self._config)

    def to_json(self) -> str:
        import json

        return json.dumps(self._config)

    def keys(self):
        return self._config.keys()

    def values(self):
        return self._config.values()

    def items(self):
        return self._config.items()

    def get(self, key, value=None):
        return self._config.get(key, value)

    def pop(self, *args):
        self._check()
        return self._config.pop(*args)

    def update(self, *args, **kwargs):
        self._check()
        self._config.update(*args, **kwargs)

    def __getattr__(self, name):
        config = object.__getattribute__(self, "_config")
        if name in config:
            return config[name]
        import difflib

        close = difflib.get_close_matches(name, list(config), n=1, cutoff=0.7)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise AttributeError(f"Config has no attribute {name!r}.{hint}")

    def __setattr__(self, name, value):
        if name in type(self).__dict__ or name.startswith("_"):
            return object.__setattr__(self, name, value)
        self._check()
        self._config[name] = value

    def __getitem__(self, key):
        return self._config[key]

    def __setitem__(self, key, value):
        self._check()
        self._config[key] = value

    def __delitem__(self, key):
        self._check()
        del self._config[key]

    def __contains__(self, key) -> bool:
        return key in self._config

    def __iter__(self):
        return iter(sorted(self._config))

    def __len__(self) -> int:
        return len(self._config)

    def __repr__(self) -> str:
        return f"<Config {self._config}>"
