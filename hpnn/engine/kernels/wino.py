"""Compiled Winograd F(4x4, 3x3) transforms, tile by tile (see hpnn.engine.ops.winograd).

The 1-D transforms are the NumPy module's own functions, compiled over float32
scalars: each output is the same expression evaluated in the same order, so these
kernels give the NumPy transforms' numbers bit for bit (float32 constants, no fastmath).
The innermost loop runs over the contiguous channels, which LLVM vectorises. Tiles
past the input's edge read zeros and outputs past the output's edge are dropped, as
the NumPy code's padding and cropping do.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hpnn.engine.ops import winograd as _w

_jit = njit(fastmath=False, boundscheck=False, error_model="numpy", cache=True, nogil=True)
_inline = njit(inline="always", fastmath=False, cache=True)
bt6, b6t = _inline(_w.bt6), _inline(_w.b6t)
at6, a6t = _inline(_w.at6), _inline(_w.a6t)


@_inline
def _load_tile(src, n, y0, z0, tile):
    """``tile`` (K, K, C) = ``src[n, y0 : y0 + K, z0 : z0 + K]``, zeros past its edge."""
    _, h, w, c_ = src.shape
    k = tile.shape[0]
    zero = np.float32(0)
    for r in range(k):
        for s in range(k):
            y, z = y0 + r, z0 + s
            if y < h and z < w:
                for c in range(c_):
                    tile[r, s, c] = src[n, y, z, c]
            else:
                for c in range(c_):
                    tile[r, s, c] = zero


@_jit
def input_transform(x, th, tw, v):
    """``v[(n, i, j), k, c]`` = ``(B^T d B)[k]`` of the 6x6 tile of ``x`` at (4i, 4j)."""
    n_, _, _, c_ = x.shape
    d = np.empty((6, 6, c_), dtype=np.float32)
    t = np.empty((6, 6, c_), dtype=np.float32)
    for n in range(n_):
        for i in range(th):
            for j in range(tw):
                _load_tile(x, n, 4 * i, 4 * j, d)
                for s in range(6):  # columns first, as the NumPy code
                    for c in range(c_):
                        e0, e1, e2, e3, e4, e5 = bt6(
                            d[0, s, c], d[1, s, c], d[2, s, c], d[3, s, c], d[4, s, c], d[5, s, c]
                        )
                        t[0, s, c], t[1, s, c], t[2, s, c] = e0, e1, e2
                        t[3, s, c], t[4, s, c], t[5, s, c] = e3, e4, e5
                vt = v[(n * th + i) * tw + j]
                for a in range(6):
                    k = 6 * a
                    for c in range(c_):
                        e0, e1, e2, e3, e4, e5 = bt6(
                            t[a, 0, c], t[a, 1, c], t[a, 2, c], t[a, 3, c], t[a, 4, c], t[a, 5, c]
                        )
                        vt[k, c], vt[k + 1, c], vt[k + 2, c] = e0, e1, e2
                        vt[k + 3, c], vt[k + 4, c], vt[k + 5, c] = e3, e4, e5


@_jit
def output_transform(m, bias, has_bias, y):
    """``y`` = ``A^T M A`` (+ bias) of each tile (``m``: ``(T, 36, O)``), what falls past
    ``y``'s edge dropped."""
    n_, oh, ow, o_ = y.shape
    th, tw = (oh + 3) // 4, (ow + 3) // 4
    z = np.empty((4, 6, o_), dtype=np.float32)
    e = np.empty((4, 4, o_), dtype=np.float32)
    for n in range(n_):
        for i in range(th):
            for j in range(tw):
                mt = m[(n * th + i) * tw + j]
                for b in range(6):
                    for c in range(o_):
                        e0, e1, e2, e3 = at6(
                            mt[b, c],
                            mt[6 + b, c],
                            mt[12 + b, c],
                            mt[18 + b, c],
                            mt[24 + b, c],
                            mt[30 + b, c],
                        )
                        z[0, b, c], z[1, b, c], z[2, b, c], z[3, b, c] = e0, e1, e2, e3
                for u in range(4):
                    for c in range(o_):
                        e0, e1, e2, e3 = at6(
                            z[u, 0, c], z[u, 1, c], z[u, 2, c], z[u, 3, c], z[u, 4, c], z[u, 5, c]
                        )
                        if has_bias:
                            e0, e1, e2, e3 = e0 + bias[c], e1 + bias[c], e2 + bias[c], e3 + bias[c]
                        e[u, 0, c], e[u, 1, c], e[u, 2, c], e[u, 3, c] = e0, e1, e2, e3
                for u in range(min(4, oh - 4 * i)):
                    for v in range(min(4, ow - 4 * j)):
                        dst = y[n, 4 * i + u, 4 * j + v]
                        for c in range(o_):
                            dst[c] = e[u, v, c]


@_jit
def output_grad_transform(gy, th, tw, dm):
    """``dm[tile, k, o]`` = ``(A g A^T)[k]`` of each 4x4 tile ``g`` of ``gy`` (zeros past
    its edge)."""
    n_, _, _, o_ = gy.shape
    g = np.empty((4, 4, o_), dtype=np.float32)
    e = np.empty((6, 4, o_), dtype=np.float32)
    for n in range(n_):
        for i in range(th):
            for j in range(tw):
                _load_tile(gy, n, 4 * i, 4 * j, g)
                for v in range(4):
                    for c in range(o_):
                        f0, f1, f2, f3, f4, f5 = a6t(g[0, v, c], g[1, v, c], g[2, v, c], g[3, v, c])
                        e[0, v, c], e[1, v, c], e[2, v, c] = f0, f1, f2
                        e[3, v, c], e[4, v, c], e[5, v, c] = f3, f4, f5
                dt = dm[(n * th + i) * tw + j]
                for a in range(6):
                    k = 6 * a
                    for c in range(o_):
                        f0, f1, f2, f3, f4, f5 = a6t(e[a, 0, c], e[a, 1, c], e[a, 2, c], e[a, 3, c])
                        dt[k, c], dt[k + 1, c], dt[k + 2, c] = f0, f1, f2
                        dt[k + 3, c], dt[k + 4, c], dt[k + 5, c] = f3, f4, f5


@_jit
def input_grad_transform(dv, gx):
    """Add ``B dV B^T`` of each tile (``dv``: ``(T, 36, C)``) into ``gx`` (zeroed by the
    caller). Tiles run last to first, so each element receives its (up to four) terms
    in the NumPy code's order (tile position by tile position: the later tile's term
    first)."""
    n_, h, w, c_ = gx.shape
    th, tw = (h + 1) // 4, (w + 1) // 4
    f = np.empty((6, 6, c_), dtype=np.float32)
    dd = np.empty((6, 6, c_), dtype=np.float32)
    for n in range(n_):
        for i in range(th - 1, -1, -1):
            for j in range(tw - 1, -1, -1):
                vt = dv[(n * th + i) * tw + j]
                for b in range(6):
                    for c in range(c_):
                        e0, e1, e2, e3, e4, e5 = b6t(
                            vt[b, c],
                            vt[6 + b, c],
                            vt[12 + b, c],
                            vt[18 + b, c],
                            vt[24 + b, c],
                            vt[30 + b, c],
                        )
                        f[0, b, c], f[1, b, c], f[2, b, c] = e0, e1, e2
                        f[3, b, c], f[4, b, c], f[5, b, c] = e3, e4, e5
                for r in range(6):
                    for c in range(c_):
                        e0, e1, e2, e3, e4, e5 = b6t(
                            f[r, 0, c], f[r, 1, c], f[r, 2, c], f[r, 3, c], f[r, 4, c], f[r, 5, c]
                        )
                        dd[r, 0, c], dd[r, 1, c], dd[r, 2, c] = e0, e1, e2
                        dd[r, 3, c], dd[r, 4, c], dd[r, 5, c] = e3, e4, e5
                for r in range(min(6, h - 4 * i)):
                    for s in range(min(6, w - 4 * j)):
                        dst = gx[n, 4 * i + r, 4 * j + s]
                        for c in range(c_):
                            dst[c] += dd[r, s, c]
