"""Compiled passes of batch and layer normalisation on a 2-D view.

Batch norm sees its input as ``(M, C)``: every axis but the channels merged into M
rows, the C channels contiguous; its statistics are per column. Layer norm sees
``(M, C)`` with the normalised features as the C columns; its statistics are per
row. NumPy's code makes one pass through memory per operation (subtract, square,
mean, multiply, add: about ten passes forward and backward for batch norm); each
function here is one pass, the inner loop over the contiguous columns (vectorised by
LLVM).

Sums run in float64 accumulators (NumPy's float32 mean over the rows of an
``(M, C)`` array adds them one after the other in float32), so the numbers differ
from the NumPy code's in the last bits: an op uses these from its first call (see
:mod:`hpnn.engine.kernels`). Arrays are float32 unless said otherwise; ``gamma`` and
``beta`` are ``(C,)`` arrays (ones and zeros where the layer has none).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Reassociated sums (a row's sum vectorised), but no nnan/ninf: NaN and inf propagate.
_MATH = {"reassoc", "contract", "nsz", "arcp"}
_jit = njit(fastmath=_MATH, boundscheck=False, error_model="numpy", cache=True, nogil=True)
_f = np.float32


@_jit
def col_sums(x, out):
    """``out[c] = sum_i x[i, c]``; x: ``(M, C)``, out: ``(C,)``."""
    acc = np.zeros(x.shape[1], np.float64)
    for i in range(x.shape[0]):
        row = x[i]
        for c in range(acc.shape[0]):
            acc[c] += row[c]
    for c in range(acc.shape[0]):
        out[c] = acc[c]


@_jit
def col_sq_dev_sums(x, mean, out):
    """``out[c] = sum_i (x[i, c] - mean[c])^2``; mean, out: ``(C,)``."""
    acc = np.zeros(x.shape[1], np.float64)
    m = mean.astype(np.float64)
    for i in range(x.shape[0]):
        row = x[i]
        for c in range(acc.shape[0]):
            d = row[c] - m[c]
            acc[c] += d * d
    for c in range(acc.shape[0]):
        out[c] = acc[c]


@_jit
def bn_apply(x, mean, inv, gamma, beta, xhat_out, y_out):
    """``xhat = (x - mean) * inv``, ``y = xhat * gamma + beta``, per column.

    mean, inv, gamma, beta: ``(C,)``; xhat_out, y_out: ``(M, C)``; xhat_out may be
    empty (inference: not kept).
    """
    keep = xhat_out.size > 0
    for i in range(x.shape[0]):
        row, y = x[i], y_out[i]
        if keep:
            xh = xhat_out[i]
            for c in range(x.shape[1]):
                h = (row[c] - mean[c]) * inv[c]
                xh[c] = h
                y[c] = h * gamma[c] + beta[c]
        else:
            for c in range(x.shape[1]):
                y[c] = (row[c] - mean[c]) * inv[c] * gamma[c] + beta[c]


@_jit
def col_grad_sums(gy, xhat, sum_gy_out, sum_gy_xhat_out):
    """``sum_gy_out[c] = sum_i gy[i, c]``, ``sum_gy_xhat_out[c] = sum_i gy[i, c] * xhat[i, c]``."""
    s1 = np.zeros(gy.shape[1], np.float64)
    s2 = np.zeros(gy.shape[1], np.float64)
    for i in range(gy.shape[0]):
        g, h = gy[i], xhat[i]
        for c in range(s1.shape[0]):
            s1[c] += g[c]
            s2[c] += np.float64(g[c]) * h[c]
    for c in range(s1.shape[0]):
        sum_gy_out[c] = s1[c]
        sum_gy_xhat_out[c] = s2[c]


@_jit
def bn_grad_input(gy, xhat, a, b, inv, gamma, gx_out):
    """``gx = (gy * gamma - a - xhat * b) * inv``, per column.

    a, b: ``(C,)``, the column means of ``gy * gamma`` and of ``gy * gamma * xhat``
    (from :func:`col_grad_sums`); inv, gamma: ``(C,)``.
    """
    for i in range(gy.shape[0]):
        g, h, out = gy[i], xhat[i], gx_out[i]
        for c in range(gy.shape[1]):
            out[c] = (g[c] * gamma[c] - a[c] - h[c] * b[c]) * inv[c]


@_jit
def ln_forward(x, gamma, beta, eps, xhat_out, inv_out, y_out):
    """Per row i: ``xhat = (x - mean) / sqrt(var + eps)``, ``y = xhat * gamma + beta``.

    x, xhat_out, y_out: ``(M, C)``; gamma, beta: ``(C,)``; inv_out: ``(M,)`` receives
    ``1 / sqrt(var + eps)`` (the biased variance, as the NumPy code).
    """
    c_ = x.shape[1]
    for i in range(x.shape[0]):
        row, xh, y = x[i], xhat_out[i], y_out[i]
        s = 0.0
        for c in range(c_):
            s += row[c]
        mean = _f(s / c_)
        q = 0.0
        for c in range(c_):
            d = row[c] - mean
            q += np.float64(d) * d
        inv = _f(1.0 / np.sqrt(q / c_ + eps))
        inv_out[i] = inv
        for c in range(c_):
            h = (row[c] - mean) * inv
            xh[c] = h
            y[c] = h * gamma[c] + beta[c]


@_jit
def ln_backward(gy, xhat, inv, gamma, gx_out, g_gamma_acc, g_beta_acc):
    """Per row i, with ``g = gy * gamma``: ``gx = (g - mean(g) - xhat * mean(g * xhat)) * inv[i]``.

    Also adds ``sum_i gy * xhat`` into ``g_gamma_acc`` and ``sum_i gy`` into
    ``g_beta_acc`` (``(C,)`` float64, zeroed by the caller).
    """
    c_ = gy.shape[1]
    for i in range(gy.shape[0]):
        g, h, out = gy[i], xhat[i], gx_out[i]
        sa = 0.0
        sb = 0.0
        for c in range(c_):
            gg = g[c] * gamma[c]
            sa += gg
            sb += np.float64(gg) * h[c]
            g_gamma_acc[c] += np.float64(g[c]) * h[c]
            g_beta_acc[c] += g[c]
        a, b, r = _f(sa / c_), _f(sb / c_), inv[i]
        for c in range(c_):
            out[c] = (g[c] * gamma[c] - a - h[c] * b) * r
