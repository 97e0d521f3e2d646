"""Compiled per-step kernels of the LSTM: one pass over the gates instead of ~16 NumPy calls.

Used by ``hpnn.engine.ops.recurrent.LSTM`` for float32 with the default
activations (tanh, sigmoid); see ``hpnn.engine.kernels``. Arrays keep the op's
gate-major layout flattened over the batch: gates ``(4, T, M)`` with
``M = N * U``, states ``(T + 1, M)``; a kernel gets the whole arrays and the step.
Every inner loop runs over one contiguous index, so LLVM vectorises it.

tanh is a rational function, ``x * P(u) / Q(u)`` with ``u = (x / 7.9)^2`` on
``|x| <= 7.9`` (fitted by ``scripts/fit_tanh.py``): at most 3.5e-7 from the true
value in float32, against NumPy's 6e-8, but vectorisable where a call to libm's
``tanhf`` is not. sigmoid is ``0.5 * tanh(x / 2) + 0.5``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_f = np.float32
_CLIP = _f(7.9)
_INV_SQ = _f(1.0 / (7.9 * 7.9))
_P0, _P1, _P2, _P3, _P4, _P5 = (
    _f(1.0),
    _f(8.572846412658691),
    _f(15.344193458557129),
    _f(7.164527893066406),
    _f(0.519853949546814),
    _f(-0.014321052469313145),
)
_Q0, _Q1, _Q2, _Q3, _Q4 = (
    _f(1.0),
    _f(29.376178741455078),
    _f(107.13225555419922),
    _f(98.8161849975586),
    _f(21.11354637145996),
)
_HALF = _f(0.5)
_ONE = _f(1.0)

_jit = njit(fastmath=True, boundscheck=False, error_model="numpy", cache=True, nogil=True)
_inline = njit(fastmath=True, error_model="numpy", inline="always", cache=True)


@_inline
def tanh(x):
    x = min(max(x, -_CLIP), _CLIP)
    u = x * x * _INV_SQ
    num = _P0 + u * (_P1 + u * (_P2 + u * (_P3 + u * (_P4 + u * _P5))))
    den = _Q0 + u * (_Q1 + u * (_Q2 + u * (_Q3 + u * _Q4)))
    return x * num / den


@_inline
def sigmoid(x):
    return _HALF * tanh(_HALF * x) + _HALF


@_jit
def tanh_array(x, out):
    """``out = tanh(x)`` for 1-D arrays (tests measure the approximation with it)."""
    for k in range(x.shape[0]):
        out[k] = tanh(x[k])


@_jit
def lstm_forward(z, s, rec, cs, tcs, hs):
    """Step ``s``: activate the gates ``z[:, s] += rec`` in place, then the states.

    z: ``(4, T, M)`` input projections, gates i, f, c, o; rec: ``(4, M)`` ``h @ R``;
    cs, hs: ``(T + 1, M)`` (reads row s, writes row s + 1); tcs: ``(T, M)`` tanh(c).
    """
    zi, zf, zg, zo = z[0, s], z[1, s], z[2, s], z[3, s]
    ri, rf, rg, ro = rec[0], rec[1], rec[2], rec[3]
    c_prev, c, tc, h = cs[s], cs[s + 1], tcs[s], hs[s + 1]
    for k in range(c.shape[0]):
        i = sigmoid(zi[k] + ri[k])
        f = sigmoid(zf[k] + rf[k])
        g = tanh(zg[k] + rg[k])
        o = sigmoid(zo[k] + ro[k])
        cc = f * c_prev[k] + i * g
        t = tanh(cc)
        zi[k], zf[k], zg[k], zo[k] = i, f, g, o
        c[k], tc[k], h[k] = cc, t, o * t


@_jit
def lstm_backward(z, s, cs, tcs, dh, dc, d):
    """Step ``s`` of back-propagation through time, from the saved (activated) gates.

    dh: ``(M,)`` gradient of h_s; dc: ``(M,)`` gradient of c_s, replaced by that of
    c_{s-1} (in place); d: ``(N, 4U)`` receives the pre-activation gradients with the
    gates side by side (Keras' kernel layout). Every array is sliced per sample, so
    the inner loop runs over contiguous slices and LLVM vectorises it.
    """
    n, u4 = d.shape
    u = u4 // 4
    zi_, zf_, zg_, zo_ = z[0, s], z[1, s], z[2, s], z[3, s]
    c_prev, tc = cs[s], tcs[s]
    for a in range(n):
        lo, hi = a * u, (a + 1) * u
        zi, zf, zg, zo = zi_[lo:hi], zf_[lo:hi], zg_[lo:hi], zo_[lo:hi]
        cp, tr, ghr, gcr = c_prev[lo:hi], tc[lo:hi], dh[lo:hi], dc[lo:hi]
        row = d[a]
        di, df, dg, do = row[:u], row[u : 2 * u], row[2 * u : 3 * u], row[3 * u :]
        for b in range(u):
            i, f, g, o, t, gh = zi[b], zf[b], zg[b], zo[b], tr[b], ghr[b]
            do[b] = gh * t * o * (_ONE - o)
            gc = gcr[b] + gh * o * (_ONE - t * t)
            di[b] = gc * g * i * (_ONE - i)
            df[b] = gc * cp[b] * f * (_ONE - f)
            dg[b] = gc * i * (_ONE - g * g)
            gcr[b] = gc * f
