"""Array backend: which array module (`xp`) runs the ops, and the float policy.

This is the only module that may import CuPy. Everything else reaches the array
library through :func:`get_xp`, so one op implementation serves NumPy and CuPy.
"""

from __future__ import annotations

import os

import numpy as np

_FLOATX = "float32"
_BACKEND = "numpy"
_cupy = None
_EPSILON = 1e-7


def floatx() -> str:
    """Return the default float dtype name (``"float32"`` unless changed)."""
    return _FLOATX


def set_floatx(value: str) -> None:
    """Set the default float dtype: ``"float32"`` or ``"float64"``."""
    global _FLOATX
    if value not in ("float16", "float32", "float64"):
        raise ValueError(
            f"Unknown floatx: expected 'float16', 'float32' or 'float64'. Received: value={value!r}"
        )
    _FLOATX = value


def epsilon() -> float:
    """The fuzz factor Keras' formulas add (``1e-7``)."""
    return _EPSILON


def set_epsilon(value: float) -> None:
    global _EPSILON
    _EPSILON = float(value)


def image_data_format() -> str:
    """hpnn's images are channels-last, (N, H, W, C), as Keras' default."""
    return "channels_last"


def clear_session() -> None:
    """Restart the automatic layer names (``dense``, ``dense_1``...), as Keras'."""
    from hpnn.utils import clear_session as clear

    clear()


def backend() -> str:
    """Return the name of the active backend (``"numpy"`` or ``"cupy"``)."""
    return _BACKEND


def set_backend(name: str) -> None:
    """Select the array backend used for new tensors: ``"numpy"`` or ``"cupy"``."""
    global _BACKEND, _cupy
    if name == "numpy":
        _BACKEND = "numpy"
        return
    if name == "cupy":
        try:
            import cupy
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise ImportError(
                "The 'cupy' backend needs CuPy: pip install 'hpnn[gpu]'. "
                f"Received: ImportError({e})"
            ) from e
        _cupy = cupy
        _BACKEND = "cupy"
        return
    raise ValueError(f"Unknown backend: expected 'numpy' or 'cupy'. Received: name={name!r}")


def xp_default():
    """Return the array module of the active backend."""
    return _cupy if _BACKEND == "cupy" else np


def get_xp(*arrays):
    """Return the array module (numpy or cupy) that owns ``arrays``."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def to_numpy(a) -> np.ndarray:
    """Copy an array of any backend to host memory as a NumPy array."""
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return _cupy.asnumpy(a)
    return np.asarray(a)


if os.environ.get("HPNN_BACKEND"):
    set_backend(os.environ["HPNN_BACKEND"])
