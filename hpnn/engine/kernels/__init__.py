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


def optimizer(*arrays):
    """The module of compiled optimizer steps (``optim``), or None where they do not apply."""
    return _load("optim", arrays)


def warm_up() -> bool:
    """Import numba and load (or compile) every kernel now, for the argument types the
    ops use, instead of on first use; returns whether the kernels are enabled.

    The first use otherwise costs about 0.6 s (numba's import and set-up) and, on a
    machine with no cache yet, a few seconds of compiling. numba with its LLVM also
    adds about 120 MB of resident memory to the process.
    """
    if not enabled():
        return False
    f32 = np.float32
    pool = _load("pool", ())
    x, y = np.zeros((1, 2, 2, 1), f32), np.zeros((1, 1, 1, 1), f32)
    idx = np.zeros((1, 1, 1, 1), np.uint8)
    pool.max_pool_forward(x, 2, 2, 2, 2, False, y, idx)
    pool.max_pool_forward(x, 2, 2, 2, 2, False, y, np.zeros((0, 0, 0, 0), np.uint8))
    pool.max_pool_backward(y, idx, 2, 2, 2, 2, True, x)
    _load("conv", ()).col2im_add(np.zeros((1, 4), f32), 2, 2, 1, 1, 1, 1, x)
    rnn = _load("rnn", ())
    z, d = np.zeros((4, 1, 1), f32), np.zeros((1, 4), f32)
    s2, s1 = np.zeros((2, 1), f32), np.zeros((1, 1), f32)
    rnn.lstm_forward(z, 0, np.zeros((4, 1), f32), s2, s1, s2)
    rnn.lstm_backward(z, 0, s2, s1, np.zeros(1, f32), np.zeros(1, f32), d, np.zeros((4, 1), f32))
    one = np.ones(1, f32)
    _load("optim", ()).adam_update(one, one, one, one, f32(0.9), f32(1e-3), f32(1e-7), f32(0.0))
    return True
