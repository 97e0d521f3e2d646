"""3-D convolution and pooling, channels-last ``(N, D, H, W, C)``, as loops over the taps.

A tap is one position of the window: its strided view of the (padded) input covers
every output position at once. The convolution copies each tap's view into its
block of the column matrix (im2col) and runs one matmul; its backward is one matmul
for the kernel (and bias), one for the columns' gradient, and a tap loop that adds
each block back into its view of the padded input. Pooling reduces the taps' views.
"""

from __future__ import annotations

import itertools
import math

import numpy

from hpnn.backend import get_xp
from hpnn.engine.ops.conv import pad_amounts
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


class Conv3D(Function):
    """``y[n, i, j, l, o] = sum_{p, q, r, c} x[n, i*s + p, j*s + q, l*s + r, c] * w[p, q, r,
    c, o] + b[o]`` (with dilation ``d``: ``x[.., i*s + p*d, ..]``).

    The columns ``(N*OD*OH*OW, KD*KH*KW*C)`` are built by one slice copy per tap; with a
    bias they carry a column of ones, so the bias rides in the forward's matmul and its
    gradient in the kernel gradient's. The columns are kept only when the kernel or the
    bias needs a gradient.
    """

    def __init__(self, strides=(1, 1, 1), padding="valid", dilation=(1, 1, 1)):
        self.strides, self.padding, self.dilation = tuple(strides), padding, tuple(dilation)

    def flops(self, xs, y) -> int:
        """Multiply-adds of the forward matmul, times 2."""
        return 2 * y.size * (xs[1].size // xs[1].shape[-1])

    def forward(self, x, w, b=None):
        xp = get_xp(x)
        n, c = x.shape[0], x.shape[-1]
        kernel, o = w.shape[:3], w.shape[-1]
        self.pads, self.out = window_geometry(
            x.shape[1:4], kernel, self.strides, self.dilation, self.padding
        )
        xpad = pad_spatial(x, self.pads)
        self.starts = _tap_starts(kernel, self.dilation)
        k = len(self.starts) * c
        kb = k + (b is not None)
        cols = xp.empty((n * math.prod(self.out), kb), dtype=x.dtype)
        blocks = cols.reshape(n, *self.out, kb)
        for t, start in enumerate(self.starts):
            blocks[..., t * c : (t + 1) * c] = _tap_view(xpad, start, self.strides, self.out)
        w2 = w.reshape(k, o)
        if b is not None:
            cols[:, k] = 1
            w2 = xp.concatenate([w2, b.reshape(1, o)])
        y = cols @ w2
        need = self.needs_input_grad
        self.cols = cols if any(need[1:]) else None  # only the kernel's gradient reads them
        self.w, self.x_shape, self.padded_shape = w, x.shape, xpad.shape
        return y.reshape(n, *self.out, o)

    def backward(self, gy):
        xp = get_xp(gy)
        need = self.needs_input_grad
        c, o = self.w.shape[3:]
        k = len(self.starts) * c
        gy2 = xp.ascontiguousarray(gy).reshape(-1, o)
        gx = gw = gb = None
        if self.cols is not None:
            g2 = self.cols.T @ gy2  # (K[+1], O): the kernel's gradient, then the bias'
            gw = g2[:k].reshape(self.w.shape) if need[1] else None
            gb = g2[k] if len(need) == 3 and need[2] else None
        if need[0]:
            gcols = gy2 @ self.w.reshape(k, o).T  # (rows, K): each column's gradient
            blocks = gcols.reshape(self.x_shape[0], *self.out, k)
            gxp = xp.zeros(self.padded_shape, dtype=gy.dtype)
            for t, start in enumerate(self.starts):
                view = _tap_view(gxp, start, self.strides, self.out)
                view += blocks[..., t * c : (t + 1) * c]
            gx = gxp[_crop_index(self.pads, self.x_shape[1:4])]
        return (gx, gw, gb) if len(need) == 3 else (gx, gw)


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
