"""Compiled 2-D max pooling, channels-last, for windows without padding.

One pass over the input instead of one NumPy pass per window tap, and one over the
output gradient backward. The innermost loop runs over the channels, which are
contiguous, so LLVM vectorises it. Ties go to the first maximal tap in row-major
window order, as in the NumPy code (and PyTorch and TensorFlow).
"""

from __future__ import annotations

from numba import njit

_jit = njit(fastmath=False, boundscheck=False, error_model="numpy", cache=True)


@_jit
def max_pool_forward(x, kh, kw, sh, sw, relu, y, idx):
    """``y[n, i, j, c]`` = max over the window; ``idx`` (uint8) = its tap ``p * kw + q``.

    x: ``(N, H, W, C)``; y, idx: ``(N, OH, OW, C)``; idx may be empty (not needed).
    relu: also apply ReLU; a window whose maximum is not positive then outputs 0 and
    gets ``idx`` 255 (no tap: no gradient). NaN stays NaN.
    """
    n_, oh, ow, c_ = y.shape
    want_idx = idx.size > 0
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                yr = y[n, i, j]
                yr[:] = x[n, i * sh, j * sw]
                if want_idx:
                    ir = idx[n, i, j]
                    ir[:] = 0
                for p in range(kh):
                    for q in range(kw):
                        if p == 0 and q == 0:
                            continue
                        xr = x[n, i * sh + p, j * sw + q]
                        if want_idx:
                            k = p * kw + q
                            for c in range(c_):
                                v = xr[c]
                                if v > yr[c] or v != v:  # NaN wins, as in np.maximum
                                    yr[c] = v
                                    ir[c] = k
                        else:
                            for c in range(c_):
                                v = xr[c]
                                if v > yr[c] or v != v:
                                    yr[c] = v
                if relu:
                    for c in range(c_):
                        v = yr[c]
                        if v <= 0:
                            yr[c] = 0
                            if want_idx:
                                ir[c] = 255


@_jit
def max_pool_backward(gy, idx, kh, kw, sh, sw, gx):
    """Route each output gradient to its window's maximal tap; ``gx`` must be zeroed."""
    n_, oh, ow, c_ = gy.shape
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                gr, ir = gy[n, i, j], idx[n, i, j]
                for p in range(kh):
                    for q in range(kw):
                        k = p * kw + q
                        xr = gx[n, i * sh + p, j * sw + q]
                        for c in range(c_):
                            if ir[c] == k:
                                xr[c] += gr[c]
