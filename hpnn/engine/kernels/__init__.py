"""Optional compiled kernels (numba) behind the ops' NumPy code.

An op asks :func:`recurrent` for the kernels it may use; the answer is None when
numba is not installed, when ``HPNN_JIT=0``, or when the arrays are not float32
on the CPU, and the op then runs its NumPy code, which stays the reference the
gradient checks test. numba is imported on the first request, never by
``import hpnn``, so a program that does not use these ops pays nothing for it.
Compiled code is cached on disk (numba's ``cache=True``); the first use on a
machine compiles for a few seconds.

Install with ``pip install 'hpnn[jit]'``.
"""

from __future__ import annotations

import os

import numpy as np

_modules: dict = {}


def enabled() -> bool:
    """Whether compiled kernels may be used (numba importable and not switched off)."""
    setting = os.environ.get("HPNN_JIT", "1").strip().lower()
    if setting in ("0", "off", "false", "no"):
        return False
    if setting not in ("1", "on", "true", "yes"):
        raise ValueError(f"HPNN_JIT: expected 1 or 0. Received: {os.environ['HPNN_JIT']!r}")
    if "numba" not in _modules:
        try:
            import numba  # noqa: F401
        except ImportError:
            _modules["numba"] = None
        else:
            _modules["numba"] = True
    return _modules["numba"] is not None


def _load(name, arrays):
    if not all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays):
        return None
    if not enabled():
        return None
    if name not in _modules:
        import importlib

        _modules[name] = importlib.import_module(f"hpnn.engine.kernels.{name}")
    return _modules[name]


def recurrent(*arrays):
    """The module of compiled recurrent kernels (``rnn``), or None where they do not apply."""
    return _load("rnn", arrays)


def pooling(*arrays):
    """The module of compiled pooling kernels (``pool``), or None where they do not apply."""
    return _load("pool", arrays)


def convolution(*arrays):
    """The module of compiled convolution kernels (``conv``), or None where they do not apply."""
    return _load("conv", arrays)
