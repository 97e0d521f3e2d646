"""Winograd's minimal filtering F(4x4, 3x3) for 3x3, stride-1 convolutions (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", 2016).

A 6x6 input tile ``d`` and a 3x3 kernel ``g`` give a 4x4 output tile as
``A^T [(G g G^T) * (B^T d B)] A``: 36 products per tile and channel pair instead of
144, so the three matrix multiplies of a convolution's step (forward, input gradient,
kernel gradient) do a quarter of im2col's work. They are 36 independent products,
one per position in the transformed tile::

    V[:, k] = (B^T d B)[k]        (T tiles, C)    the input, transformed
    U[k]    = (G g G^T)[k]        (C, O)          the kernel, transformed
    M[:, k] = V[:, k] @ U[k]      (T, O)          36 matmuls
    y       = A^T M A             (+ bias)        back to 4x4 output tiles

``V`` and ``M`` are tile-major, ``(T, 36, C)``: a transform writes (or reads) one tile's
36 rows at a time, one stream through memory (36 planes of ``(T, C)`` each would be 36
streams, about twice as slow once the arrays are out of cache); the matmuls take the
strided planes as they are.

and backward, with ``dM = A dY A^T`` (the output transform's transpose):
``dV[k] = dM[k] @ U[k]^T``, ``dU[k] = V[k]^T @ dM[k]``, ``dx`` = ``B dV B^T`` added
into the overlapping input tiles, ``dw = G^T dU G``.

The transforms of B and A are written once, as the 1-D functions below (:func:`bt6`,
:func:`at6` and their transposes), made of additions and multiplications by 2, 4 and 8
(5x is 4x + x), so every step rounds the same way whoever evaluates it. This module
applies them to whole NumPy arrays (one strided view per tile position);
:mod:`hpnn.engine.kernels.wino` compiles the same functions over scalars, tile by
tile, and gives the same numbers bit for bit: the choice between the two (the compiled
one once it is loaded) never changes a result.

The numbers differ from im2col's by float32 rounding (the transforms add up to 9
terms with weights up to 8); ``HPNN_WINOGRAD=0`` turns the algorithm off.
"""

from __future__ import annotations

import os

import numpy as np

from hpnn.engine import kernels

F32 = np.float32
TWO, FOUR, EIGHT = F32(2), F32(4), F32(8)
TILE, M = 6, 4  # input tile 6x6 -> output tile 4x4

# The matrices, for the kernel transforms (tiny: done in float64) and for the tests.
BT = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=np.float64,
)
G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ]
)
AT = np.array(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    dtype=np.float64,
)
GG = np.kron(G, G)  # (36, 9): vec(G g G^T) = GG @ vec(g)


# -- the 1-D transforms (arrays or scalars alike) ------------------------------------
def bt6(d0, d1, d2, d3, d4, d5):
    """``B^T d`` for one 6-vector."""
    a = d4 - d2
    e = TWO * (d3 - d1)
    return (
        FOUR * (d0 - d2) + a,
        (d3 + d4) - FOUR * (d1 + d2),
        (d4 - d3) + FOUR * (d1 - d2),
        a + e,
        a - e,
        FOUR * (d1 - d3) + (d5 - d3),
    )


def b6t(v0, v1, v2, v3, v4, v5):
    """``B v`` (the transpose of :func:`bt6`), for the input gradient."""
    s12, d21 = v1 + v2, v2 - v1
    s34, d43 = v3 + v4, v4 - v3
    s012 = v0 + s12
    return (
        FOUR * v0,
        FOUR * (d21 + v5) + TWO * d43,
        -(FOUR * s012 + (v0 + s34)),
        (TWO * (v3 - v4) + (v1 - v2)) - (FOUR * v5 + v5),
        s012 + s34,
        v5,
    )


def at6(m0, m1, m2, m3, m4, m5):
    """``A^T m``: six transformed values back to four outputs."""
    s12, d12 = m1 + m2, m1 - m2
    s34, d34 = m3 + m4, m3 - m4
    return ((m0 + s12) + s34, d12 + TWO * d34, s12 + FOUR * s34, (d12 + EIGHT * d34) + m5)


def a6t(g0, g1, g2, g3):
    """``A g`` (the transpose of :func:`at6`), for the output gradient."""
    s, t = g0 + g2, g1 + g3
    u, w = g0 + FOUR * g2, TWO * g1 + EIGHT * g3
    return (g0, s + t, s - t, u + w, u - w, g3)


# -- when it applies --------------------------------------------------------------------
MIN_CHANNELS = 8  # fewer input channels: im2col's columns are short anyway


def enabled() -> bool:
    setting = os.environ.get("HPNN_WINOGRAD", "1").strip().lower()
    if setting in ("0", "off", "false", "no"):
        return False
    if setting not in ("1", "on", "true", "yes"):
        raise ValueError(
            f"HPNN_WINOGRAD: expected 1 or 0. Received: {os.environ['HPNN_WINOGRAD']!r}"
        )
    return True


def applies(x, w, strides, dilation) -> bool:
    """3x3 kernel, stride 1, no dilation, float32 NumPy arrays, enough channels, and the
    compiled kernels available (without numba the NumPy transforms would cost more than
    the multiplies save)."""
    return (
        w.shape[:2] == (3, 3)
        and tuple(strides) == (1, 1)
        and tuple(dilation) == (1, 1)
        and w.shape[2] >= MIN_CHANNELS
        and isinstance(x, np.ndarray)
        and x.dtype == F32
        and w.dtype == F32
        and kernels.enabled()
        and enabled()
    )


def tiles_for(oh: int, ow: int) -> tuple[int, int]:
    return -(-oh // M), -(-ow // M)


# -- the kernel's transforms (NumPy) ------------------------------------------------------
GG32, GGT32 = GG.astype(F32), np.ascontiguousarray(GG.T).astype(F32)


def kernel_transform(w):
    """``U = G g G^T`` for every (input, output) channel pair: ``(3, 3, C, O)`` ->
    ``(36, C, O)`` float32 (one small matmul)."""
    _, _, c, o = w.shape
    return (GG32 @ w.reshape(9, c * o)).reshape(36, c, o)


def kernel_grad(du):
    """``dw = G^T dU G``: ``(36, C, O)`` -> ``(3, 3, C, O)`` float32."""
    _, c, o = du.shape
    return (GGT32 @ du.reshape(36, c * o)).reshape(3, 3, c, o)


# -- the data transforms, on whole arrays ------------------------------------------------
def _extended(a, rows, cols):
    """``a`` (N, H, W, C) cut or zero-padded to (N, rows, cols, C)."""
    n, h, w, c = a.shape
    if (h, w) == (rows, cols):
        return a
    out = np.zeros((n, rows, cols, c), dtype=a.dtype)
    out[:, : min(h, rows), : min(w, cols)] = a[:, :rows, :cols]
    return out


def _transform_tiles(a, size, th, tw, fn, out):
    """``out[n, i, j, p, q]`` = the 2-D transform ``fn`` (over columns, then rows) of the
    ``size`` x ``size`` window of ``a`` (N, H, W, C) at (4i, 4j), zeros past its edge."""
    ae = _extended(a, M * th + size - M, M * tw + size - M)
    rows = [ae[:, r : r + M * th : M] for r in range(size)]  # (N, th, W', C) each
    cols = [fn(*[rows[r][:, :, s : s + M * tw : M] for r in range(size)]) for s in range(size)]
    for p in range(TILE):
        for q, value in enumerate(fn(*[cols[s][p] for s in range(size)])):
            out[:, :, :, p, q] = value


def input_transform(x, th, tw, v):
    """``v[t, k, c]`` = ``(B^T d B)[k]`` of each 6x6 tile ``d`` of ``x`` (N, H, W, C)
    (tile ``t = (n, i, j)`` starts at row 4i, column 4j; zeros beyond the input)."""
    n, _, _, c = x.shape
    _transform_tiles(x, TILE, th, tw, bt6, v.reshape(n, th, tw, TILE, TILE, c))


def output_transform(m, bias, y):
    """``y`` (N, OH, OW, O) = ``A^T M A`` (+ bias) of each tile, cropped to ``y``."""
    n, oh, ow, o = y.shape
    th, tw = tiles_for(oh, ow)
    mm = m.reshape(n, th, tw, TILE, TILE, o)
    cols = [at6(*[mm[:, :, :, a, b] for a in range(TILE)]) for b in range(TILE)]  # [b][u]
    full = np.empty((n, th, M, tw, M, o), dtype=y.dtype)
    for u in range(M):
        for v, value in enumerate(at6(*[cols[b][u] for b in range(TILE)])):
            full[:, :, u, :, v] = value if bias is None else value + bias
    y[...] = full.reshape(n, M * th, M * tw, o)[:, :oh, :ow]


def output_grad_transform(gy, th, tw, dm):
    """``dm[t, k, o]`` = ``(A dY A^T)[k]`` of each 4x4 tile of ``gy`` (N, OH, OW, O)."""
    n, _, _, o = gy.shape
    _transform_tiles(gy, M, th, tw, a6t, dm.reshape(n, th, tw, TILE, TILE, o))


def input_grad_transform(dv, gx):
    """Add ``B dV B^T`` of each tile into ``gx`` (N, H, W, C), where the 6x6 tiles overlap,
    tile position by tile position (row-major), what falls outside ``gx`` dropped."""
    n, h, w, c = gx.shape
    th, tw = tiles_for(h - 2, w - 2)
    vv = dv.reshape(n, th, tw, TILE, TILE, c)
    cols = [b6t(*[vv[:, :, :, a, b] for a in range(TILE)]) for b in range(TILE)]  # [b][r]
    ge = np.zeros((n, M * th + 2, M * tw + 2, c), dtype=gx.dtype)
    for r in range(TILE):
        for s, value in enumerate(b6t(*[cols[b][r] for b in range(TILE)])):
            ge[:, r : r + M * th : M, s : s + M * tw : M] += value
    gx += ge[:, :h, :w]
