"""Optional compiled kernels (numba) behind the ops' NumPy code.

An op asks for the kernels it may use (:func:`pooling`, :func:`convolution`,
:func:`winograd`, :func:`indexing`, :func:`optimizer`, :func:`elementwise`, :func:`recurrent`,
:func:`softmax`, :func:`normalization`); the answer is None when numba is not
installed, when ``HPNN_JIT=0``, or when the arrays are not float32 on the CPU, and
the op then runs its NumPy code, which stays the reference the gradient checks test.
``import hpnn`` never imports numba.

Loading numba and its compiled code costs about 0.6 s (and, on a machine with no
cache yet, a few seconds of compiling). The pooling, col2im, Winograd, row
scatter-add, ReLU and Adam kernels give exactly the NumPy code's numbers, so they are
loaded in a background thread on first request while the ops go on with NumPy
meanwhile: a short program does not wait for them before its first steps (only, if
it ends sooner, at exit), and results do not depend on when the switch happens.
The LSTM kernels (whose tanh differs from NumPy's by up to 3.5e-7), the softmax
(its own exp) and the normalisation passes (float64 sums) differ in the last bits,
so they are loaded on the spot: a run uses them from its first step.
:func:`warm_up` loads everything at once.

Install with ``pip install 'hpnn[jit]'``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading

import numpy as np

_modules: dict = {}
_has_numba: bool | None = None
_ready = threading.Event()  # the exact kernels (pool, conv, wino, optim, index) are set up
_lock = threading.Lock()
_loader: threading.Thread | None = None
_now_lock = threading.Lock()  # one on-the-spot load at a time (ops run on several threads)
_loaded_now: set = set()  # the kernels loaded on the spot, set up and called once


def enabled() -> bool:
    """Whether compiled kernels may be used: numba is installed and HPNN_JIT is not 0."""
    global _has_numba
    setting = os.environ.get("HPNN_JIT", "1").strip().lower()
    if setting in ("0", "off", "false", "no"):
        return False
    if setting not in ("1", "on", "true", "yes"):
        raise ValueError(f"HPNN_JIT: expected 1 or 0. Received: {os.environ['HPNN_JIT']!r}")
    if _has_numba is None:
        _has_numba = importlib.util.find_spec("numba") is not None
    return _has_numba


def _applies(arrays) -> bool:
    ok = all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays)
    return ok and enabled()


def _import(name):
    if name not in _modules:
        _modules[name] = importlib.import_module(f"hpnn.engine.kernels.{name}")
    return _modules[name]


def _set_up_exact() -> None:
    """Import numba and the exact kernels, and call each once (loads the compiled code
    for the argument types the ops use)."""
    f32 = np.float32
    pool = _import("pool")
    x, y = np.zeros((1, 2, 2, 1), f32), np.zeros((1, 1, 1, 1), f32)
    idx = np.zeros((1, 1, 1, 1), np.uint8)
    pool.max_pool_forward(x, 2, 2, 2, 2, False, y, idx)
    pool.max_pool_forward(x, 2, 2, 2, 2, False, y, np.zeros((0, 0, 0, 0), np.uint8))
    pool.max_pool_backward(y, idx, 2, 2, 2, 2, True, x)
    _import("conv").col2im_add(np.zeros((1, 4), f32), 2, 2, 1, 1, 1, 1, x)
    wino = _import("wino")
    v, g = np.zeros((36, 1, 1), f32), np.zeros((1, 3, 3, 1), f32)
    wino.input_transform(g, 1, 1, v)
    wino.output_transform(v, np.zeros(1, f32), True, y)
    wino.output_grad_transform(y, 1, 1, v)
    wino.input_grad_transform(v, g)
    one = np.ones(1, f32)
    optim = _import("optim")
    optim.adam_update(one, one, one, one, f32(0.9), f32(1e-3), f32(1e-7), f32(0.0))
    optim.adam_update_sum(one, one, one, one, one, f32(0.9), f32(1e-3), f32(1e-7), f32(0.0))
    m = np.zeros((1, 1), f32)
    _import("index").scatter_add_rows(np.zeros(1, np.int64), m, m)
    pointwise = _import("pointwise")
    pointwise.relu_forward(one, one)
    pointwise.relu_backward(one, one, one)


def _set_up_rnn() -> None:
    f32 = np.float32
    rnn = _import("rnn")
    z, d = np.zeros((4, 1, 1), f32), np.zeros((1, 4), f32)
    s2, s1 = np.zeros((2, 1), f32), np.zeros((1, 1), f32)
    rnn.lstm_forward(z, 0, np.zeros((4, 1), f32), s2, s1, s2)
    rnn.lstm_backward(z, 0, s2, s1, np.zeros(1, f32), np.zeros(1, f32), d)


def _set_up_softmax() -> None:
    activation = _import("activation")
    m = np.zeros((1, 1), np.float32)
    activation.softmax_forward(m, m)
    activation.softmax_backward(m, m, m)


def _set_up_norm() -> None:
    norm = _import("norm")
    m, v, acc = np.zeros((1, 1), np.float32), np.zeros(1, np.float32), np.zeros(1)
    norm.col_sums(m, v)
    norm.col_sq_dev_sums(m, v, v)
    norm.bn_apply(m, v, v, v, v, m, m)
    norm.col_grad_sums(m, m, v, v)
    norm.bn_grad_input(m, m, v, v, v, v, m)
    norm.ln_forward(m, v, v, 1e-3, m, v, m)
    norm.ln_backward(m, m, v, v, m, acc, acc)


_SET_UP_NOW = {"rnn": _set_up_rnn, "activation": _set_up_softmax, "norm": _set_up_norm}


def _load_in_background() -> None:
    try:
        _set_up_exact()
    except Exception:  # a broken numba: the ops stay on their NumPy code
        return
    _ready.set()


def _exact(name, arrays):
    if not _applies(arrays):
        return None
    if _ready.is_set():
        return _modules[name]
    global _loader
    with _lock:
        if _loader is None:
            # Not a daemon: the interpreter waits for it at exit rather than tearing
            # LLVM down under a compile in progress (which aborts the process).
            _loader = threading.Thread(target=_load_in_background, name="hpnn-kernels")
            _loader.start()
    return None


def _now(name, arrays):
    """Kernels that differ from the NumPy code in the last bits: loaded now if need be
    (a run uses them from its first step, or never)."""
    if not _applies(arrays):
        return None
    if name not in _loaded_now:
        with _now_lock:
            if name not in _loaded_now:
                _SET_UP_NOW[name]()
                _loaded_now.add(name)
    return _modules[name]


def recurrent(*arrays):
    """The compiled LSTM kernels (module ``rnn``), loaded now if need be; or None."""
    return _now("rnn", arrays)


def softmax(*arrays):
    """The compiled softmax over rows (module ``activation``), loaded now if need be;
    or None."""
    return _now("activation", arrays)


def normalization(*arrays):
    """The compiled batch and layer normalisation passes (``norm``), loaded now if need
    be; or None."""
    return _now("norm", arrays)


def pooling(*arrays):
    """The compiled pooling kernels (``pool``) once loaded; None before or where they do
    not apply (the first request starts the background load)."""
    return _exact("pool", arrays)


def convolution(*arrays):
    """The compiled col2im (``conv``) once loaded; None before or where it does not apply."""
    return _exact("conv", arrays)


def winograd(*arrays):
    """The compiled Winograd transforms (``wino``) once loaded; None before or where
    they do not apply."""
    return _exact("wino", arrays)


def indexing(*arrays):
    """The compiled row scatter-add (``index``) once loaded; None before or where it
    does not apply."""
    return _exact("index", arrays)


def elementwise(*arrays):
    """The compiled ReLU passes (``pointwise``) once loaded; None before or where they
    do not apply."""
    return _exact("pointwise", arrays)


def optimizer(*arrays):
    """The compiled Adam step (``optim``) once loaded; None before or where it does not apply."""
    return _exact("optim", arrays)


def finish_loading() -> None:
    """Wait for a background load in progress, if any (before a fork: a child must not
    inherit a compile half done)."""
    loader = _loader
    if loader is not None:
        loader.join()


def warm_up() -> bool:
    """Load numba and every kernel now instead of on first use; returns whether the
    kernels are enabled. numba with its LLVM adds about 120 MB of resident memory."""
    if not enabled():
        return False
    if not _ready.is_set():
        _set_up_exact()
        _ready.set()
    for name in _SET_UP_NOW:
        _now(name, [])
    return True
