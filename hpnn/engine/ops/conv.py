"""2-D convolution, channels-last: im2col + one matrix multiply over the batch."""

from __future__ import annotations

from hpnn.backend import get_xp
from hpnn.engine.tensor import Function, Tensor


def conv_output_length(n: int, k: int, stride: int, padding: str) -> int:
    """Output length of a window op over ``n`` positions (Keras/TF rules)."""
    if padding == "same":
        return -(-n // stride)
    return (n - k) // stride + 1


def pad_amounts(n: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    """(before, after) padding for one spatial axis; 'same' puts the odd one after, as TF."""
    if padding != "same":
        return 0, 0
    out = -(-n // stride)
    total = max((out - 1) * stride + k - n, 0)
    return total // 2, total - total // 2


def pad_hw(x, pads, value=0.0):
    """Pad axes 1 and 2 of an NHWC array with ``value`` (no copy when there is no padding)."""
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return x
    xp = get_xp(x)
    n, h, w, c = x.shape
    out = xp.full((n, h + pt + pb, w + pl + pr, c), value, dtype=x.dtype)
    out[:, pt : pt + h, pl : pl + w] = x
    return out


class Conv2D(Function):
    """``y[n, i, j, o] = sum_{p, q, c} x[n, i*s + p, j*s + q, c] * w[p, q, c, o] + b[o]``."""

    def __init__(self, strides=(1, 1), padding="valid"):
        self.strides = strides
        self.padding = padding

    def forward(self, x, w, b=None):
        n, h, wd, c = x.shape
        kh, kw, _, o = w.shape
        sh, sw = self.strides
        self.pads = (pad_amounts(h, kh, sh, self.padding), pad_amounts(wd, kw, sw, self.padding))
        xp_ = pad_hw(x, self.pads)
        oh = (xp_.shape[1] - kh) // sh + 1
        ow = (xp_.shape[2] - kw) // sw + 1
        cols = im2col(xp_, kh, kw, sh, sw, oh, ow).reshape(n * oh * ow, kh * kw * c)
        y = cols @ w.reshape(kh * kw * c, o)
        if b is not None:
            y += b
        self.cols, self.w = cols, w
        self.x_shape, self.padded_shape, self.out_hw = x.shape, xp_.shape, (oh, ow)
        return y.reshape(n, oh, ow, o)

    def backward(self, gy):
        _kh, _kw, _c, o = self.w.shape
        gy2 = gy.reshape(-1, o)
        gw = (self.cols.T @ gy2).reshape(self.w.shape) if self.needs_input_grad[1] else None
        gx = self._input_grad(gy2) if self.needs_input_grad[0] else None
        if len(self.needs_input_grad) == 3:
            return gx, gw, gy2.sum(axis=0) if self.needs_input_grad[2] else None
        return gx, gw

    def _input_grad(self, gy2):
        xp = get_xp(gy2)
        kh, kw, c, o = self.w.shape
        n = self.x_shape[0]
        oh, ow = self.out_hw
        sh, sw = self.strides
        # One (N*OH*OW, O) @ (O, C) product per tap into a reused buffer, added into its
        # strided window: each product stays in cache, and each weight slab is contiguous.
        wt = xp.ascontiguousarray(self.w.reshape(kh * kw, c, o).transpose(0, 2, 1))
        buf = xp.empty((gy2.shape[0], c), dtype=gy2.dtype)
        gxp = xp.zeros(self.padded_shape, dtype=gy2.dtype)
        for p in range(kh):
            for q in range(kw):
                xp.matmul(gy2, wt[p * kw + q], out=buf)
                gxp[:, p : p + sh * oh : sh, q : q + sw * ow : sw, :] += buf.reshape(n, oh, ow, c)
        (pt, _), (pl, _) = self.pads
        h, wd = self.x_shape[1:3]
        return gxp[:, pt : pt + h, pl : pl + wd]


def im2col(x, kh, kw, sh, sw, oh, ow):
    """Patches of NHWC ``x`` as a contiguous ``(N, OH, OW, KH, KW*C)`` array.

    For a fixed kernel row, the KW taps times C channels of one patch are adjacent
    in memory, so the whole copy is one strided view copied in runs of KW*C floats
    (about 5x faster than KH*KW separate slice copies for the reference CNN).
    """
    xp = get_xp(x)
    n, h, w, c = x.shape
    # Merge (W, C) into one axis first: its stride is then the element stride, whatever
    # strides the input had (a view such as x[..., None] has a 0 stride on C).
    rows = xp.ascontiguousarray(x).reshape(n, h, w * c)
    s_n, s_h, s_e = rows.strides
    view = xp.lib.stride_tricks.as_strided(
        rows, shape=(n, oh, ow, kh, kw * c), strides=(s_n, sh * s_h, sw * c * s_e, s_h, s_e)
    )
    return xp.ascontiguousarray(view)


def conv2d(x, w, b=None, strides=(1, 1), padding: str = "valid") -> Tensor:
    """2-D convolution (cross-correlation, as in every framework) on NHWC input.

    Args:
        x: input ``(N, H, W, C)``.
        w: kernel ``(KH, KW, C, O)`` (Keras layout).
        b: optional bias ``(O,)``.
        strides: ``(sh, sw)``.
        padding: ``"valid"`` or ``"same"`` (TF rules: odd padding goes after).

    Returns:
        ``(N, OH, OW, O)``.
    """
    f = Conv2D(tuple(strides), padding)
    return f(x, w) if b is None else f(x, w, b)
