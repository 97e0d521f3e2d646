"""Compiled activations: softmax over the last axis, forward and backward, row by row.

NumPy's softmax makes five passes over the whole array (max, subtract, exp, sum,
divide) and its backward four, each through memory; here each row (an attention
score row: a few hundred floats, in L1) is read once and written once.

exp is Cephes' ``expf`` for arguments ``<= 0`` (the row's maximum is subtracted
first): ``2^n * p(r)`` with ``r = x - n ln 2``, a degree-7 polynomial and the
power of two built from its bits, so LLVM vectorises the loop where a call to
libm's ``expf`` would not be. At most 8.4e-8 relative error on [-87, 0] (NumPy's
float32 exp: 2.0e-7); 0 below -87 (``e^-87`` is 1.6e-38, at the bottom of float32's
normal range).
The numbers differ from NumPy's in the last bits, so the op uses this kernel from
its first call (see :mod:`hpnn.engine.kernels`).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_f = np.float32
_LOG2E, _C1, _C2 = _f(1.4426950408889634), _f(0.693359375), _f(-2.12194440e-4)
_LOW = _f(-87.0)
_P0, _P1, _P2 = _f(1.9875691500e-4), _f(1.3981999507e-3), _f(8.3334519073e-3)
_P3, _P4, _P5 = _f(4.1665795894e-2), _f(1.6666665459e-1), _f(5.0000001201e-1)
_ZERO, _HALF, _ONE = _f(0.0), _f(0.5), _f(1.0)

# Sums reassociated (vectorised) but no nnan/ninf: a NaN or inf in a row must come
# out as NaN, as in NumPy. exp is compiled apart, without reassociation, which would
# fold its two-step range reduction (x - n*C1 - n*C2) into one and lose precision.
_MATH = {"reassoc", "contract", "nsz", "arcp"}
_EXP_MATH = {"contract", "nsz"}
_jit = njit(fastmath=_MATH, boundscheck=False, error_model="numpy", cache=True, nogil=True)
_inline = njit(fastmath=_MATH, error_model="numpy", inline="always", cache=True)
_exp_jit = njit(fastmath=_EXP_MATH, boundscheck=False, error_model="numpy", cache=True, nogil=True)


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the low 32 bits of the integer ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if bits.bitwidth > 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(bits), codegen


@njit(fastmath=_EXP_MATH, error_model="numpy", inline="always", cache=True)
def exp_nonpositive(x):
    """``exp(x)`` for ``x <= 0`` (0 below -87; NaN stays NaN)."""
    ok = x >= _LOW  # False for NaN too: the conversion to int below gets a number
    t = x if ok else _LOW
    n = np.floor(t * _LOG2E + _HALF)
    r = t - n * _C1
    r = r - n * _C2
    p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    p = p * r * r + r + _ONE
    scale = _float_from_bits((np.int32(n) + np.int32(127)) << 23)  # 2^n, n in [-126, 0]
    e = p * scale if ok else _ZERO
    return x if x != x else e


@_inline
def _row_max(xr):
    # NaN-blind: a NaN anywhere in the row makes x - m NaN there whatever the maximum,
    # so the row's sum is NaN, which the caller checks
    m = xr[0]
    for j in range(xr.shape[0]):
        v = xr[j]
        m = v if v > m else m
    return m


@_exp_jit
def exp_array(x, out):
    """``out = exp(x)`` for 1-D ``x <= 0`` (tests measure the approximation with it)."""
    for k in range(x.shape[0]):
        out[k] = exp_nonpositive(x[k])


@_exp_jit
def _exp_row(xr, m, yr):
    for j in range(xr.shape[0]):
        yr[j] = exp_nonpositive(xr[j] - m)


@_jit
def softmax_forward(x, y):
    """``y[i] = exp(x[i] - max x[i]) / sum(...)`` for every row i of the 2-D ``x``.

    A row holding NaN or +inf, or all -inf, gives NaN, as NumPy's code does.
    """
    for i in range(x.shape[0]):
        xr, yr = x[i], y[i]
        _exp_row(xr, _row_max(xr), yr)
        s = _ZERO
        for j in range(xr.shape[0]):
            s += yr[j]
        inv = _ONE / s if s == s else s  # NaN: the whole row NaN
        for j in range(xr.shape[0]):
            yr[j] *= inv


@_jit
def softmax_backward(y, gy, gx):
    """``gx[i] = y[i] * (gy[i] - sum(y[i] * gy[i]))`` for every row i."""
    for i in range(y.shape[0]):
        yr, gr, out = y[i], gy[i], gx[i]
        s = _ZERO
        for j in range(yr.shape[0]):
            s += yr[j] * gr[j]
        for j in range(yr.shape[0]):
            out[j] = yr[j] * (gr[j] - s)
