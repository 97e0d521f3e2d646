"""3-D convolution and pooling, channels-last ``(N, D, H, W, C)``.

A tap is one position of the window: its strided view of the (padded) input covers
every output position at once. The convolution is a sum over its depth taps of 2-D
convolutions of the depth slices (2-D columns built once per slice, one matmul per
depth tap, in cache-sized chunks: see :class:`Conv3D`). Pooling reduces the taps'
views.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy

from hpnn.backend import get_xp
from hpnn.engine import kernels
from hpnn.engine.ops.conv import KEEP_BYTES, im2col_into, pad_amounts
from hpnn.engine.tensor import Function, Tensor, as_tensor


def window_geometry(spatial, kernel, strides, dilation, padding):
    """``(pads, out)`` of a window op: ``(before, after)`` padding and the output length of
    each spatial axis, under TF/Keras' rules ('same' puts the odd padding after)."""
    pads, out = [], []
    for n, k, s, d in zip(spatial, kernel, strides, dilation, strict=True):
        extent = (k - 1) * d + 1  # the dilated window's span
        before, after = pad_amounts(n, extent, s, padding)
        pads.append((before, after))
        out.append((n + before + after - extent) // s + 1)
    return tuple(pads), tuple(out)


def pad_spatial(x, pads, value=0.0):
    """``x`` with ``pads[i] = (before, after)`` cells of ``value`` on spatial axis ``i + 1``
    (every axis but the batch and the channels); ``x`` itself when nothing is padded."""
    if not any(p for pair in pads for p in pair):
        return x
    xp = get_xp(x)
    inner = x.shape[1:-1]
    shape = (x.shape[0], *(n + a + b for n, (a, b) in zip(inner, pads, strict=True)), x.shape[-1])
    out = xp.full(shape, value, dtype=x.dtype)
    out[_crop_index(pads, inner)] = x
    return out


def _crop_index(pads, inner):
    """The index of the unpadded part of a padded array."""
    return (slice(None), *(slice(a, a + n) for (a, _), n in zip(pads, inner, strict=True)))


def _tap_starts(kernel, dilation):
    """The offsets of every tap of a window, in row-major order (the kernel's layout)."""
    axes = (range(0, k * d, d) for k, d in zip(kernel, dilation, strict=True))
    return list(itertools.product(*axes))


def _tap_view(a, start, strides, out):
    """The view of padded ``a`` that tap ``start`` sees at every output position."""
    index = (slice(b, b + (o - 1) * s + 1, s) for b, s, o in zip(start, strides, out, strict=True))
    return a[(slice(None), *index)]


# Input slices per chunk take about this many bytes of columns: the columns are written
# and read back by the taps' matmuls while in cache (measured on (8, 16, 32, 32, 8),
# 3x3x3x16: 2-6 MB run within 5% of each other, 1 MB 15% slower).
CHUNK_BYTES = 4 << 20


class _Chunk(NamedTuple):
    """Samples ``i0 : i0 + ns``, output depth slices ``d0 : d0 + m`` and the padded input's
    depth slices ``s0 : s0 + cnt`` they read."""

    i0: int
    ns: int
    d0: int
    m: int
    s0: int
    cnt: int


def _chunks(xp, n, od, slice_bytes, sd, span):
    """The chunks of a 3-D convolution: whole samples while one fits in ``CHUNK_BYTES``
    of columns, else runs of depth slices of one sample (each reading ``span - sd``
    input slices its neighbour reads too); one chunk off NumPy."""
    whole = (od - 1) * sd + span  # the input slices one sample's outputs read
    fit = CHUNK_BYTES // slice_bytes
    if xp is not numpy or fit >= whole:
        ns = n if xp is not numpy else min(n, fit // whole)
        ns = -(-n // -(-n // ns))  # equal parts
        return [_Chunk(i, min(ns, n - i), 0, od, 0, whole) for i in range(0, n, ns)]
    m = max(1, (fit - span) // sd + 1)
    m = -(-od // -(-od // m))
    return [
        _Chunk(i, 1, d, min(m, od - d), d * sd, (min(m, od - d) - 1) * sd + span)
        for i in range(n)
        for d in range(0, od, m)
    ]


def _col2im_add(kern, cols, g, kh, kw, sh, sw, oh, ow, dilation):
    """Add 2-D column gradients ``(S*OH*OW, KH*KW*C)`` into their windows of ``g``
    ``(S, H, W, C)``: the compiled col2im where given, else one NumPy add per tap (the
    same additions in the same order)."""
    if kern is not None:
        kern.col2im_add(cols, kh, kw, sh, sw, oh, ow, g)
        return
    s, c = g.shape[0], g.shape[-1]
    dh, dw = dilation
    for q in range(kh):
        for r in range(kw):
            t = (q * kw + r) * c
            win = g[:, q * dh :: sh, r * dw :: sw][:, :oh, :ow]
            win += cols[:, t : t + c].reshape(s, oh, ow, c)


class Conv3D(Function):
    """``y[n, i, j, l, o] = sum_{p, q, r, c} x[n, i*s + p, j*s + q, l*s + r, c] * w[p, q, r,
    c, o] + b[o]`` (with dilation ``d``: ``x[.., i*s + p*d, ..]``).

    A sum over the kernel's depth taps of 2-D convolutions: each (padded) input depth
    slice's 2-D columns ``(OH*OW, KH*KW*C)`` are built once, by the 2-D op's
    ``im2col_into``, and depth tap ``p`` multiplies the slices it reads by its
    ``(KH*KW*C, O)`` block of the kernel, the taps' products added up (KD times less
    copying than 3-D columns, which repeat every slice once per depth tap). On NumPy
    the batch runs in chunks (:func:`_chunks`) whose columns stay in cache between
    their writing and the matmuls; columns of at most ``KEEP_BYTES`` in all are kept
    for the kernel's gradient, larger ones rebuilt chunk by chunk. The input gradient
    runs the same chunks: each tap's ``gy @ w[p]^T`` added into its slices' column
    gradients, then the 2-D col2im (the compiled one where it applies).
    """

    def __init__(self, strides=(1, 1, 1), padding="valid", dilation=(1, 1, 1)):
        self.strides, self.padding, self.dilation = tuple(strides), padding, tuple(dilation)

    def flops(self, xs, y) -> int:
        """Multiply-adds of the forward matmuls, times 2."""
        return 2 * y.size * (xs[1].size // xs[1].shape[-1])

    def plan(self, x_shape, w, xp, dtype):
        """Set the geometry and the chunks for an input of ``x_shape`` and kernel ``w``
        (what forward and :meth:`input_grad` read)."""
        self.pads, self.out = window_geometry(
            x_shape[1:4], w.shape[:3], self.strides, self.dilation, self.padding
        )
        inner = zip(x_shape[1:4], self.pads, strict=True)
        self.padded_shape = (x_shape[0], *(n + a + b for n, (a, b) in inner), x_shape[4])
        self.w, self.x_shape = w, tuple(x_shape)
        (od, oh, ow), kd = self.out, w.shape[0]
        self.per, self.k2 = oh * ow, math.prod(w.shape[1:4])
        span = (kd - 1) * self.dilation[0] + 1
        slice_bytes = self.per * self.k2 * xp.dtype(dtype).itemsize
        self.chunks = _chunks(xp, x_shape[0], od, slice_bytes, self.strides[0], span)

    def forward(self, x, w, b=None):
        xp = get_xp(x)
        self.plan(x.shape, w, xp, x.dtype)
        xpad = xp.ascontiguousarray(pad_spatial(x, self.pads))
        kd, k2, o, per = w.shape[0], self.k2, w.shape[4], self.per
        n, (od, oh, ow) = x.shape[0], self.out
        want_w = any(self.needs_input_grad[1:])
        itemsize = xp.dtype(x.dtype).itemsize
        total = sum(c.ns * c.cnt for c in self.chunks) * per * k2 * itemsize
        keep = want_w and (xp is not numpy or self._in_plane_1x1() or total <= KEEP_BYTES)
        self.kept = [] if keep else None
        self.xpad = xpad if want_w and not keep else None  # the columns rebuilt from it
        w3 = w.reshape(kd, k2, o)
        y = xp.empty((n, od, per, o), dtype=xp.result_type(x.dtype, w.dtype))
        tmp = xp.empty(max(c.ns * c.m for c in self.chunks) * per * o, dtype=y.dtype)
        buf = None if keep else self._buffer(xp, xpad.dtype)
        for chunk in self.chunks:
            cols = self._columns(xpad, chunk, buf)
            if keep:
                self.kept.append(cols)
            yc = self._rows(y, chunk)
            xp.matmul(self._tap(cols, 0, chunk.m), w3[0], out=yc)
            for p in range(1, kd):
                t = tmp[: yc.size].reshape(yc.shape)
                xp.matmul(self._tap(cols, p, chunk.m), w3[p], out=t)
                yc += t
            if b is not None:
                yc += b
        return y.reshape(n, od, oh, ow, o)

    def _in_plane_1x1(self):
        """A (KD, 1, 1) kernel with unit in-plane strides: the slices are their own columns."""
        return self.w.shape[1:3] == (1, 1) and self.strides[1:] == (1, 1)

    def _buffer(self, xp, dtype):
        """A buffer for the largest chunk's columns (or their gradients); None where the
        slices are their own columns."""
        if self._in_plane_1x1():
            return None
        ns, cnt = max(c.ns for c in self.chunks), max(c.cnt for c in self.chunks)
        return xp.empty((ns, cnt, self.per, self.k2), dtype=dtype)

    def _columns(self, xpad, chunk, buf):
        """The 2-D columns of the chunk's input slices, ``(ns, cnt, OH*OW, KH*KW*C)``,
        written into ``buf`` (from :meth:`_buffer`; None: a new array)."""
        xp = get_xp(xpad)
        i0, ns, _, _, s0, cnt = chunk
        slices = xpad[i0 : i0 + ns, s0 : s0 + cnt]
        if self._in_plane_1x1():
            return slices.reshape(ns, cnt, self.per, self.k2)  # a view
        if buf is None:
            buf = xp.empty((ns, cnt, self.per, self.k2), dtype=xpad.dtype)
        cols = buf[:ns, :cnt]
        (_, kh, kw), (oh, ow) = self.w.shape[:3], self.out[1:]
        _, sh, sw = self.strides
        for s in range(ns):
            flat = cols[s].reshape(cnt * self.per, self.k2)
            im2col_into(flat, slices[s], kh, kw, sh, sw, oh, ow, self.dilation[1:])
        return cols

    def _tap(self, cols, p, m):
        """The columns depth tap ``p`` reads for the chunk's ``m`` output slices:
        ``(ns, m*OH*OW, K2)`` at depth stride 1, else ``(ns, m, OH*OW, K2)`` (views)."""
        sd, dd = self.strides[0], self.dilation[0]
        v = cols[:, p * dd : p * dd + (m - 1) * sd + 1 : sd]
        return v.reshape(v.shape[0], -1, v.shape[-1]) if sd == 1 else v

    def _rows(self, a, chunk):
        """The chunk's rows of an output-shaped ``(N, OD, OH*OW, O)`` array, shaped as
        :meth:`_tap`'s columns (a view)."""
        v = a[chunk.i0 : chunk.i0 + chunk.ns, chunk.d0 : chunk.d0 + chunk.m]
        return v.reshape(chunk.ns, -1, v.shape[-1]) if self.strides[0] == 1 else v

    def backward(self, gy):
        xp = get_xp(gy)
        need = self.needs_input_grad
        kd, o = self.w.shape[0], self.w.shape[4]
        gy4 = xp.ascontiguousarray(gy).reshape(self.x_shape[0], self.out[0], self.per, o)
        gw = xp.zeros((kd, self.k2, o), dtype=gy.dtype) if need[1] else None
        gx = self.input_grad(gy4) if need[0] else None
        buf = None if self.kept is not None or not need[1] else self._buffer(xp, gy.dtype)
        for j, chunk in enumerate(self.chunks if need[1] else ()):
            g = self._rows(gy4, chunk)
            if self.kept is not None:
                cols = self.kept[j]
            else:
                cols = self._columns(self.xpad, chunk, buf)
            for p in range(kd):
                prod = xp.matmul(self._tap(cols, p, chunk.m).swapaxes(-1, -2), g)
                gw[p] += prod.reshape(-1, self.k2, o).sum(axis=0)
        gw = None if gw is None else gw.reshape(self.w.shape)
        if len(need) < 3:
            return gx, gw
        gb = xp.ones(gy4.size // o, dtype=gy.dtype) @ gy4.reshape(-1, o) if need[2] else None
        return gx, gw, gb  # ones @ gy: BLAS, several times faster than sum(axis=0)

    def input_grad(self, gy4):
        """The input's gradient ``(N, D, H, W, C)`` from the output's, ``gy4`` ``(N, OD,
        OH*OW, O)``, after :meth:`plan` (the transposed convolution's forward too). Per
        chunk, each depth tap's ``gy @ w[p]^T`` is added into the column gradients of the
        slices it read, then 2-D col2im adds those into the padded input's gradient,
        whose slices are zeroed as the chunks first reach them."""
        xp = get_xp(gy4)
        kd, kh, kw, _, o = self.w.shape
        (sd, sh, sw), (_, oh, ow) = self.strides, self.out
        wt = xp.ascontiguousarray(self.w.reshape(kd, self.k2, o).transpose(0, 2, 1))
        gxp = xp.empty(self.padded_shape, dtype=gy4.dtype)
        in_plane = self.dilation[1:] == (1, 1)  # the compiled col2im knows no dilation
        kern = kernels.convolution(gy4, gxp) if in_plane else None
        rows = max(c.ns * c.m for c in self.chunks) * self.per
        tmp = xp.empty(rows * self.k2, dtype=gy4.dtype)
        ns, cnt = max(c.ns for c in self.chunks), max(c.cnt for c in self.chunks)
        gbuf = xp.empty((ns, cnt, self.per, self.k2), dtype=gy4.dtype)
        done = [0] * self.x_shape[0]  # slices of each sample's gradient zeroed so far
        for chunk in self.chunks:
            i0, ns, _, m, s0, cnt = chunk
            g, gc = self._rows(gy4, chunk), gbuf[:ns, :cnt]
            first = 0
            if sd == 1:  # tap 0 writes its slices, the rest start at zero
                xp.matmul(g, wt[0], out=self._tap(gc, 0, m))
                gc[:, m:] = 0
                first = 1
            else:  # strided: slices no tap reads get no gradient
                gc[...] = 0
            for p in range(first, kd):
                dest = self._tap(gc, p, m)
                t = tmp[: dest.size].reshape(dest.shape)
                xp.matmul(g, wt[p], out=t)
                dest += t
            for s in range(ns):
                i = i0 + s
                gxp[i, done[i] : s0 + cnt] = 0  # (and any gap a depth stride left)
                done[i] = max(done[i], s0 + cnt)
                flat = gc[s].reshape(cnt * self.per, self.k2)
                target = gxp[i, s0 : s0 + cnt]
                _col2im_add(kern, flat, target, kh, kw, sh, sw, oh, ow, self.dilation[1:])
        for i, d in enumerate(done):
            gxp[i, d:] = 0  # depth slices no output reads
        return gxp[_crop_index(self.pads, self.x_shape[1:4])]


class _Pool3D(Function):
    def __init__(self, pool_size, strides, padding):
        self.pool_size, self.strides, self.padding = tuple(pool_size), tuple(strides), padding

    def _setup(self, x, fill):
        """Pad ``x`` with ``fill`` and record the geometry; returns the padded array."""
        self.pads, self.out = window_geometry(
            x.shape[1:4], self.pool_size, self.strides, (1, 1, 1), self.padding
        )
        xpad = pad_spatial(x, self.pads, fill)
        self.starts = _tap_starts(self.pool_size, (1, 1, 1))
        self.x_shape, self.padded_shape = x.shape, xpad.shape
        return xpad

    def _views(self, a):
        """Every tap's view of the padded array ``a``, in row-major window order."""
        return (_tap_view(a, s, self.strides, self.out) for s in self.starts)

    def _unpad(self, gxp):
        return gxp[_crop_index(self.pads, self.x_shape[1:4])]


class MaxPool3D(_Pool3D):
    """Max over each window; the gradient goes to the window's first maximum in row-major
    order (as the 2-D op, PyTorch and TF do on ties)."""

    def forward(self, x):
        xp = get_xp(x)
        views = self._views(self._setup(x, -xp.inf))
        y = next(views).copy()
        if not self.needs_input_grad[0]:
            for v in views:
                xp.maximum(y, v, out=y)
            return y
        # which tap holds the maximum: backward then compares this small array, not the input
        idx = xp.zeros(y.shape, dtype=xp.uint8 if len(self.starts) < 256 else xp.uint16)
        for t, v in enumerate(views, start=1):
            idx[v > y] = t  # strictly greater: a tie keeps the earlier tap
            xp.maximum(y, v, out=y)
        self.idx = idx
        return y

    def backward(self, gy):
        xp = get_xp(gy)
        overlap = any(s < k for s, k in zip(self.strides, self.pool_size, strict=True))
        tiles = self.strides == self.pool_size and self.padded_shape[1:4] == tuple(
            o * k for o, k in zip(self.out, self.pool_size, strict=True)
        )
        # windows that tile the input write every element once: no zero fill, no adds
        gxp = (xp.empty if tiles else xp.zeros)(self.padded_shape, dtype=gy.dtype)
        for t, g in enumerate(self._views(gxp)):
            if overlap:
                g += gy * (self.idx == t)
            else:
                xp.multiply(gy, self.idx == t, out=g)
        return self._unpad(gxp)


class AvgPool3D(_Pool3D):
    """Mean over each window; a 'same' window averages only its real (unpadded) inputs."""

    def forward(self, x):
        xp = get_xp(x)
        xpad = self._setup(x, 0.0)
        views = self._views(xpad)
        y = next(views).copy()
        for v in views:
            y += v
        if xpad.shape != x.shape:
            ones = pad_spatial(xp.ones((1, *x.shape[1:4], 1), dtype=x.dtype), self.pads)
            count = sum(self._views(ones))
            self.scale = (1.0 / count).astype(x.dtype)
        else:
            self.scale = x.dtype.type(1.0 / len(self.starts))
        y *= self.scale
        return y

    def backward(self, gy):
        xp = get_xp(gy)
        gxp = xp.zeros(self.padded_shape, dtype=gy.dtype)
        scaled = gy * self.scale
        for g in self._views(gxp):
            g += scaled
        return self._unpad(gxp)


def _triple(value, name):
    """An int or three ints as a 3-tuple of positive ints, or a ValueError naming ``name``."""
    try:
        t = (int(value),) * 3 if numpy.ndim(value) == 0 else tuple(int(v) for v in value)
    except (TypeError, ValueError):
        t = ()
    if isinstance(value, bool) or len(t) != 3 or min(t) <= 0:
        raise ValueError(f"{name} must be a positive int or 3 positive ints. Received: {value!r}")
    return t


def _check(fn, x, window, strides, dilation, padding):
    """Check a 3-D window op's input and arguments; raise a ValueError naming ``fn``."""
    if x.ndim != 5:
        raise ValueError(
            f"{fn}: expected input of rank 5 (batch, depth, height, width, channels). "
            f"Received: shape={x.shape}"
        )
    if padding not in ("valid", "same"):
        raise ValueError(f"{fn}: padding must be 'valid' or 'same'. Received: {padding!r}")
    _, out = window_geometry(x.shape[1:4], window, strides, dilation, padding)
    if min(out) <= 0:
        raise ValueError(
            f"{fn}: input of spatial size {x.shape[1:4]} is smaller than the window "
            f"{tuple(window)} (dilation {tuple(dilation)}) with padding='valid'. "
            f"Received: shape={x.shape}"
        )


def conv3d(x, w, b=None, strides=(1, 1, 1), padding="valid", dilation=(1, 1, 1)) -> Tensor:
    """3-D convolution (cross-correlation) on channels-last input.

    Args:
        x: input ``(N, D, H, W, C)``.
        w: kernel ``(KD, KH, KW, C, O)`` (Keras' layout).
        b: optional bias ``(O,)``.
        strides: int or ``(sd, sh, sw)``.
        padding: ``"valid"`` or ``"same"`` (TF rules: the odd padding goes after).
        dilation: int or ``(dd, dh, dw)``, the spacing of the kernel's taps.

    Returns:
        ``(N, OD, OH, OW, O)``.

    >>> conv3d(numpy.ones((1, 4, 4, 4, 2)), numpy.ones((3, 3, 3, 2, 5))).shape
    (1, 2, 2, 2, 5)
    """
    x, w = as_tensor(x), as_tensor(w)
    strides, dilation = _triple(strides, "conv3d: strides"), _triple(dilation, "conv3d: dilation")
    if w.ndim != 5 or x.ndim != 5 or w.shape[3] != x.shape[4]:
        raise ValueError(
            "conv3d: expected a kernel (kd, kh, kw, C, filters) for an input (N, D, H, W, C). "
            f"Received: x.shape={x.shape}, w.shape={w.shape}"
        )
    _check("conv3d", x, w.shape[:3], strides, dilation, padding)
    f = Conv3D(strides, padding, dilation)
    return f(x, w) if b is None else f(x, w, b)


def _pool(cls, fn, x, pool_size, strides, padding):
    x = as_tensor(x)
    pool_size = _triple(pool_size, f"{fn}: pool_size")
    strides = pool_size if strides is None else _triple(strides, f"{fn}: strides")
    _check(fn, x, pool_size, strides, (1, 1, 1), padding)
    return cls(pool_size, strides, padding)(x)


def max_pool3d(x, pool_size=(2, 2, 2), strides=None, padding="valid") -> Tensor:
    """Max pooling over ``(N, D, H, W, C)``; ``strides`` defaults to ``pool_size``."""
    return _pool(MaxPool3D, "max_pool3d", x, pool_size, strides, padding)


def average_pool3d(x, pool_size=(2, 2, 2), strides=None, padding="valid") -> Tensor:
    """Average pooling over ``(N, D, H, W, C)``; 'same' windows average only real inputs."""
    return _pool(AvgPool3D, "average_pool3d", x, pool_size, strides, padding)
