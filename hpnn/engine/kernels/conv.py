"""Compiled col2im for the convolution's input gradient (channels-last).

The input gradient of im2col + matmul is a matmul back to columns, ``(rows, K)``,
then a scatter-add of every column block into its window of the input. NumPy has
no fast scatter-add, so the NumPy code adds each tap's column block into its
strided window, one NumPy call per tap; this kernel does the same additions in the
same order in one call, the innermost loop over the contiguous channels
(vectorised by LLVM).
"""

from __future__ import annotations

from numba import njit

_jit = njit(boundscheck=False, error_model="numpy", cache=True, nogil=True)


@_jit
def col2im_add(cols, kh, kw, sh, sw, oh, ow, gx):
    """``gx[n, i*sh + p, j*sw + q, c] += cols[(n*OH + i)*OW + j, (p*KW + q)*C + c]``.

    cols: ``(N*OH*OW, >= KH*KW*C)``; gx: ``(N, H, W, C)``, the (padded) input's gradient.
    Taps are added one after the other, in the NumPy code's order, so both give the
    same numbers.
    """
    n_, _h, _w, c_ = gx.shape
    for p in range(kh):
        for q in range(kw):
            t = (p * kw + q) * c_
            r = 0
            for n in range(n_):
                for i in range(oh):
                    for j in range(ow):
                        row = cols[r]
                        dst = gx[n, i * sh + p, j * sw + q]
                        for c in range(c_):
                            dst[c] += row[t + c]
                        r += 1
