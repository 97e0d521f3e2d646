"""Compiled 2-D max pooling, channels-last, for windows without padding.

One pass over the input instead of one NumPy pass per window tap, and one over the
output gradient backward. The innermost loop runs over the channels, which are
contiguous, so LLVM vectorises it. Ties go to the first maximal tap in row-major
window order, as in the NumPy code (and PyTorch and TensorFlow).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_jit = njit(fastmath=False, boundscheck=False, error_model="numpy", cache=True, nogil=True)


@_jit
def max_pool_forward(x, kh, kw, sh, sw, relu, y, idx):
    """``y[n, i, j, c]`` = max over the window; ``idx`` (uint8) = its tap ``p * kw + q``.

    x: ``(N, H, W, C)``; y, idx: ``(N, OH, OW, C)``; idx may be empty (not needed).
    relu: also apply ReLU; a window whose maximum is not positive then outputs 0 and
    gets ``idx`` 255 (no tap: no gradient). NaN stays NaN.
    """
    if idx.size > 0:
        _pool_with_index(x, kh, kw, sh, sw, relu, y, idx)
    else:
        _pool(x, kh, kw, sh, sw, relu, y)


# Both loops use selects rather than branches, so LLVM vectorises them over c.
@_jit
def _pool_with_index(x, kh, kw, sh, sw, relu, y, idx):
    n_, oh, ow, c_ = y.shape
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                yr, ir, x0 = y[n, i, j], idx[n, i, j], x[n, i * sh, j * sw]
                for c in range(c_):
                    yr[c] = x0[c]
                    ir[c] = 0
                for p in range(kh):
                    for q in range(kw):
                        if p == 0 and q == 0:
                            continue
                        xr = x[n, i * sh + p, j * sw + q]
                        k = np.uint8(p * kw + q)
                        for c in range(c_):
                            v, cur = xr[c], yr[c]
                            take = (v > cur) | (v != v)  # NaN wins, as in np.maximum
                            yr[c] = v if take else cur
                            ir[c] = k if take else ir[c]
                if relu:
                    for c in range(c_):
                        off = yr[c] <= 0
                        yr[c] = 0 if off else yr[c]
                        ir[c] = 255 if off else ir[c]


@_jit
def _pool(x, kh, kw, sh, sw, relu, y):
    n_, oh, ow, c_ = y.shape
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                yr, x0 = y[n, i, j], x[n, i * sh, j * sw]
                for c in range(c_):
                    yr[c] = x0[c]
                for p in range(kh):
                    for q in range(kw):
                        if p == 0 and q == 0:
                            continue
                        xr = x[n, i * sh + p, j * sw + q]
                        for c in range(c_):
                            v, cur = xr[c], yr[c]
                            yr[c] = v if (v > cur) | (v != v) else cur
                if relu:
                    for c in range(c_):
                        yr[c] = 0 if yr[c] <= 0 else yr[c]


@_jit
def max_pool_backward(gy, idx, kh, kw, sh, sw, tiles, gx):
    """Route each output gradient to its window's maximal tap.

    tiles: the windows tile ``gx`` exactly (stride == window, nothing left over), so
    every element of ``gx`` is written once and ``gx`` may be uninitialised; else
    ``gx`` must be zeroed and the gradients are added tap after tap, in the NumPy
    code's order, so that overlapping windows sum in the same order.
    """
    n_, oh, ow, c_ = gy.shape
    for p in range(kh):
        for q in range(kw):
            k = np.uint8(p * kw + q)
            for n in range(n_):
                for i in range(oh):
                    for j in range(ow):
                        gr, ir = gy[n, i, j], idx[n, i, j]
                        xr = gx[n, i * sh + p, j * sw + q]
                        if tiles:
                            for c in range(c_):
                                xr[c] = gr[c] if ir[c] == k else np.float32(0)
                        else:
                            for c in range(c_):
                                xr[c] += gr[c] if ir[c] == k else np.float32(0)
