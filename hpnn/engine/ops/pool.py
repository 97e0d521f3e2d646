"""2-D max and average pooling, channels-last, as a loop over the window taps.

Each tap is a strided view of the input, so pooling is kh*kw vectorised passes
over the output, with no index arrays; when the window tiles the input this is
exactly the reshape-to-6-D formulation.
"""

from __future__ import annotations

from hpnn.backend import get_xp
from hpnn.engine import kernels
from hpnn.engine.ops.conv import pad_amounts, pad_hw
from hpnn.engine.tensor import Function, Tensor


class _Pool2D(Function):
    def __init__(self, pool_size, strides, padding):
        self.pool_size, self.strides, self.padding = pool_size, strides, padding

    def _setup(self, x, fill):
        _n, h, w, _c = x.shape
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        self.pads = (pad_amounts(h, kh, sh, self.padding), pad_amounts(w, kw, sw, self.padding))
        xp_ = pad_hw(x, self.pads, fill)
        self.oh = (xp_.shape[1] - kh) // sh + 1
        self.ow = (xp_.shape[2] - kw) // sw + 1
        self.x_shape, self.padded_shape = x.shape, xp_.shape
        return xp_

    def _taps(self, a):
        """Yield ((p, q), view) for every window tap of the padded array ``a``."""
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        oh, ow = self.oh, self.ow
        for p in range(kh):
            for q in range(kw):
                yield a[:, p : p + sh * oh : sh, q : q + sw * ow : sw, :]

    def _unpad(self, gxp):
        (pt, _), (pl, _) = self.pads
        h, w = self.x_shape[1:3]
        return gxp[:, pt : pt + h, pl : pl + w]


class MaxPool2D(_Pool2D):
    """Max pooling; with ``relu=True`` it is ``relu(max_pool(x))`` in the same pass (a
    window whose maximum is not positive then routes no gradient)."""

    def __init__(self, pool_size, strides, padding, relu=False):
        super().__init__(pool_size, strides, padding)
        self.relu = relu

    def _compiled(self, x, xp_):
        """The compiled kernels when they apply: float32 NumPy, no padding, <= 255 taps."""
        kh, kw = self.pool_size
        if xp_.shape != x.shape or kh * kw > 255:
            return None
        return kernels.pooling(x)

    def forward(self, x):
        xp = get_xp(x)
        xp_ = self._setup(x, -xp.inf)
        self.kern = self._compiled(x, xp_)
        if self.kern is not None:  # one pass (hpnn.engine.kernels.pool)
            (kh, kw), (sh, sw) = self.pool_size, self.strides
            shape = (x.shape[0], self.oh, self.ow, x.shape[3])
            y = xp.empty(shape, dtype=x.dtype)
            idx = xp.empty(shape if self.needs_input_grad[0] else (0, 0, 0, 0), dtype=xp.uint8)
            x = xp.ascontiguousarray(x)  # one compiled signature (C order), as warm_up loads
            self.kern.max_pool_forward(x, kh, kw, sh, sw, self.relu, y, idx)
            self.idx = idx
            return y
        taps = self._taps(xp_)
        y = next(taps).copy()
        if not self.needs_input_grad[0]:
            for t in taps:
                xp.maximum(y, t, out=y)
            return xp.maximum(y, 0, out=y) if self.relu else y
        # Record which tap holds the maximum (the first one on ties, as PyTorch and TF
        # do), in uint8 arithmetic: idx += (t > y) * (k - idx). Backward then needs
        # one compare per tap on this small array instead of re-reading the input.
        idx = xp.zeros(y.shape, dtype=xp.uint8)
        for k, t in enumerate(taps, start=1):
            step = xp.greater(t, y).view(xp.uint8)
            xp.maximum(y, t, out=y)
            d = xp.uint8(k) - idx
            d *= step
            idx += d
        if self.relu:
            off = y <= 0  # not positive (NaN stays)
            y[off] = 0
            idx[off] = 255  # matches no tap: no gradient
        self.idx = idx
        return y

    def backward(self, gy):
        xp = get_xp(gy)
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        if self.kern is not None and isinstance(gy, type(self.idx)) and gy.dtype == xp.float32:
            tiles = (sh, sw) == (kh, kw) and self.padded_shape[1:3] == (kh * self.oh, kw * self.ow)
            gx = (xp.empty if tiles else xp.zeros)(self.padded_shape, dtype=gy.dtype)
            gy = xp.ascontiguousarray(gy)
            self.kern.max_pool_backward(gy, self.idx, kh, kw, sh, sw, tiles, gx)
            return gx
        overlap = sh < kh or sw < kw
        tiles = (sh, sw) == (kh, kw) and self.padded_shape[1:3] == (sh * self.oh, sw * self.ow)
        # Windows that tile the input are written once each: no zero fill, no adds.
        gxp = (xp.empty if tiles else xp.zeros)(self.padded_shape, gy.dtype)
        for k, g in enumerate(self._taps(gxp)):
            if overlap:
                g += gy * (self.idx == k)
            else:
                xp.multiply(gy, self.idx == k, out=g)
        return self._unpad(gxp)


class AvgPool2D(_Pool2D):
    def forward(self, x):
        xp = get_xp(x)
        xp_ = self._setup(x, 0.0)
        taps = self._taps(xp_)
        y = next(taps).copy()
        for t in taps:
            y += t
        # 'same' padding: divide by the number of real (unpadded) inputs in each window
        if xp_.shape != x.shape:
            ones = pad_hw(xp.ones((1, *x.shape[1:3], 1), dtype=x.dtype), self.pads)
            count = sum(t for t in self._taps(ones))
            self.scale = (1.0 / count).astype(x.dtype)
        else:
            kh, kw = self.pool_size
            self.scale = x.dtype.type(1.0 / (kh * kw))
        y *= self.scale
        return y

    def backward(self, gy):
        xp = get_xp(gy)
        gxp = xp.zeros(self.padded_shape, dtype=gy.dtype)
        g_scaled = gy * self.scale
        for g in self._taps(gxp):
            g += g_scaled
        return self._unpad(gxp)


def max_pool2d(x, pool_size=(2, 2), strides=None, padding: str = "valid", relu=False) -> Tensor:
    """Max pooling over ``(N, H, W, C)``; ``strides`` defaults to ``pool_size``.

    ``relu=True`` returns ``relu(max_pool2d(x))`` from the same pass.
    """
    return MaxPool2D(tuple(pool_size), tuple(strides or pool_size), padding, relu)(x)


def average_pool2d(x, pool_size=(2, 2), strides=None, padding: str = "valid") -> Tensor:
    """Average pooling over ``(N, H, W, C)``; 'same' windows average only real inputs."""
    return AvgPool2D(tuple(pool_size), tuple(strides or pool_size), padding)(x)
