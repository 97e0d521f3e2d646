"""2-D convolution, channels-last: im2col + one matrix multiply over the batch."""

from __future__ import annotations

import numpy

from hpnn.backend import get_xp
from hpnn.engine import kernels
from hpnn.engine.ops import winograd
from hpnn.engine.tensor import Function, Tensor, as_tensor


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


# Samples per chunk are chosen so that a chunk's column matrix is about this many bytes:
# im2col writes it and the matmul reads it back while it is still in cache.
CHUNK_BYTES = 2 << 20
KEEP_BYTES = 8 << 20  # columns up to this size are kept for backward, larger ones rebuilt
TAP_MAJOR_BELOW = 16  # KW * C under this: tap-major columns (see Conv2D.forward)


class Conv2D(Function):
    """``y[n, i, j, o] = sum_{p, q, c} x[n, i*s + p, j*s + q, c] * w[p, q, c, o] + b[o]``.

    im2col + one matmul. The column matrix carries a column of ones when there is a
    bias, so the bias rides in the matmul (and its gradient in the kernel gradient's
    matmul). On NumPy the batch runs in chunks sized to stay in cache
    (``CHUNK_BYTES``): each chunk's columns are written and at once multiplied; columns
    over ``KEEP_BYTES`` in all are not kept but rebuilt chunk by chunk in backward,
    where each chunk's kernel and input gradients are formed in cache too. With few
    channels the columns are tap-major instead, ``(K, N*OH*OW)``. A 3x3, stride-1
    kernel on float32 NumPy arrays runs Winograd's F(4x4, 3x3) instead
    (:mod:`hpnn.engine.ops.winograd`: a quarter of the multiplies), and a 1x1 kernel
    a plain matmul of the (strided) pixels, with no columns at all.
    """

    def flops(self, xs, y) -> int:
        """Multiply-adds of the forward pass as im2col does them, times 2."""
        kh, kw, cin, _ = xs[1].shape
        return 2 * y.size * kh * kw * cin

    def __init__(self, strides=(1, 1), padding="valid", dilation=(1, 1)):
        self.strides = strides
        self.padding = padding
        self.dilation = tuple(dilation)

    def forward(self, x, w, b=None):
        xp = get_xp(x)
        n, h, wd, c = x.shape
        kh, kw, _, o = w.shape
        sh, sw = self.strides
        dh, dw = self.dilation
        eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1  # the dilated kernel's extent
        self.pads = (pad_amounts(h, eh, sh, self.padding), pad_amounts(wd, ew, sw, self.padding))
        xp_ = pad_hw(x, self.pads)
        oh = (xp_.shape[1] - eh) // sh + 1
        ow = (xp_.shape[2] - ew) // sw + 1
        self.x_shape, self.padded_shape, self.out_hw = x.shape, xp_.shape, (oh, ow)
        self.winograd = winograd.applies(x, w, self.strides, self.dilation)
        if self.winograd:
            return self._winograd_forward(xp_, w, b)
        self.pointwise = kh == kw == 1  # 1x1: never padded, dilation means nothing
        if self.pointwise:
            return self._pointwise_forward(x, w, b)
        k = kh * kw * c
        kb = k + (b is not None)
        w2 = xp.empty((kb, o), dtype=x.dtype)  # the kernel as a matrix, then the bias row
        w2[:k] = w.reshape(k, o)
        if b is not None:
            w2[k] = b
        per = oh * ow
        self.chunk, self.xp_, self.w, self.w2, self.cols, self.cols_t = n, xp_, w, w2, None, None
        if kw * c < TAP_MAJOR_BELOW:
            # Few channels (a first layer): the columns tap-major, (K, N*OH*OW), one slice
            # copy per tap; a patch row of K floats would be too short to copy fast.
            cols_t = xp.empty((kb, n, oh, ow), dtype=x.dtype)
            for p in range(kh):
                for q in range(kw):
                    tap = xp_[:, p * dh :: sh, q * dw :: sw, :][:, :oh, :ow]
                    cols_t[(p * kw + q) * c : (p * kw + q + 1) * c] = tap.transpose(3, 0, 1, 2)
            if b is not None:
                cols_t[k] = 1
            self.cols_t = cols_t.reshape(kb, n * per)
            y = self.cols_t.T @ w2
        else:
            keep = xp is not numpy or 4 * kb * per * n <= KEEP_BYTES
            chunk = n if xp is not numpy else max(1, min(n, CHUNK_BYTES // (4 * kb * per)))
            cols = _column_buffer(xp, (n if keep else chunk) * per, k, kb, x.dtype)
            y = xp.empty((n * per, o), dtype=x.dtype)
            for s in range(0, n, chunk):
                m = min(chunk, n - s)
                part = cols[s * per : (s + m) * per] if keep else cols[: m * per]
                im2col_into(part, xp_[s : s + m], kh, kw, sh, sw, oh, ow, self.dilation)
                xp.matmul(part, w2, out=y[s * per : (s + m) * per])
            self.chunk, self.cols = chunk, cols if keep else None  # else rebuilt in backward
        return y.reshape(n, oh, ow, o)

    def _winograd_forward(self, xp_, w, b):
        n, _, _, c = xp_.shape
        (oh, ow), o = self.out_hw, w.shape[3]
        th, tw = winograd.tiles_for(oh, ow)
        xp_ = numpy.ascontiguousarray(xp_)
        kern = kernels.winograd(xp_, w)  # the compiled transforms once loaded (same numbers)
        v = numpy.empty((n * th * tw, 36, c), dtype=numpy.float32)  # tile-major
        (kern or winograd).input_transform(xp_, th, tw, v)
        u = winograd.kernel_transform(w)
        m = numpy.empty((n * th * tw, 36, o), dtype=numpy.float32)
        numpy.matmul(v.transpose(1, 0, 2), u, out=m.transpose(1, 0, 2))  # the 36 products
        y = numpy.empty((n, oh, ow, o), dtype=numpy.float32)
        if kern is not None:
            bias = numpy.zeros(0, numpy.float32) if b is None else numpy.ascontiguousarray(b)
            kern.output_transform(m, bias, b is not None, y)
        else:
            winograd.output_transform(m, b, y)
        self.v, self.u, self.tiles = v, u, (th, tw)
        return y

    def _pointwise_forward(self, x, w, b):
        """A 1x1 kernel: the (strided) pixels times the kernel matrix, no im2col. A bias
        rides in the matmul on a column of ones next to the pixels: a copy of them (a
        chunk at a time, in cache, when the input is not strided) costs less than a
        pass over the whole output to add it."""
        xp = get_xp(x)
        sh, sw = self.strides
        xs = x if (sh, sw) == (1, 1) else x[:, ::sh, ::sw]
        n, oh, ow, c = xs.shape
        o, rows = w.shape[3], n * oh * ow
        self.w, w2 = w, w.reshape(c, o)
        if b is None:
            self.x2 = xp.ascontiguousarray(xs).reshape(rows, c)  # kept for dW
            return (self.x2 @ w2).reshape(n, oh, ow, o)
        w2 = xp.concatenate([w2, b.reshape(1, o)])
        if xs is not x or not x.flags.c_contiguous:  # one copy, kept for dW
            cols = _column_buffer(xp, rows, c, c + 1, x.dtype)
            cols.reshape(n, oh, ow, c + 1)[..., :c] = xs
            self.x2 = cols[:, :c]
            return (cols @ w2).reshape(n, oh, ow, o)
        self.x2 = x.reshape(rows, c)
        chunk = rows if xp is not numpy else max(1, min(rows, CHUNK_BYTES // (4 * (c + 1))))
        cols = _column_buffer(xp, chunk, c, c + 1, x.dtype)
        y = xp.empty((rows, o), dtype=x.dtype)
        for s in range(0, rows, chunk):
            m = min(chunk, rows - s)
            cols[:m, :c] = self.x2[s : s + m]
            xp.matmul(cols[:m], w2, out=y[s : s + m])
        return y.reshape(n, oh, ow, o)

    def _pointwise_backward(self, gy):
        xp = get_xp(gy)
        need = self.needs_input_grad
        c, o = self.w.shape[2:]
        gy2 = xp.ascontiguousarray(gy).reshape(-1, o)
        gx = gw = gb = None
        if need[0]:
            g = (gy2 @ self.w.reshape(c, o).T).reshape(*gy.shape[:3], c)
            if self.strides == (1, 1):
                gx = g
            else:  # the skipped pixels get no gradient
                gx = xp.zeros(self.x_shape, dtype=gy.dtype)
                gx[:, :: self.strides[0], :: self.strides[1]] = g
        if need[1]:
            gw = (self.x2.T @ gy2).reshape(self.w.shape)
        if len(need) == 3 and need[2]:
            gb = xp.ones(gy2.shape[0], dtype=gy.dtype) @ gy2  # BLAS: 5x sum(axis=0)
        return (gx, gw, gb) if len(need) == 3 else (gx, gw)

    def _winograd_backward(self, gy):
        need = self.needs_input_grad
        th, tw = self.tiles
        gy = numpy.ascontiguousarray(gy)
        kern = kernels.winograd(gy)
        v, u = self.v, self.u
        dm = numpy.empty((v.shape[0], 36, gy.shape[3]), dtype=numpy.float32)
        (kern or winograd).output_grad_transform(gy, th, tw, dm)
        planes = dm.transpose(1, 0, 2)  # (36, T, O)
        gx = gw = None
        if need[0]:
            dv = numpy.empty(v.shape, dtype=numpy.float32)
            ut = numpy.ascontiguousarray(u.transpose(0, 2, 1))  # (a third faster than the view)
            numpy.matmul(planes, ut, out=dv.transpose(1, 0, 2))
            gxp = numpy.zeros(self.padded_shape, dtype=numpy.float32)
            (kern or winograd).input_grad_transform(dv, gxp)
            (pt, _), (pl, _) = self.pads
            h, wd = self.x_shape[1:3]
            gx = gxp[:, pt : pt + h, pl : pl + wd]
        if need[1]:
            gw = winograd.kernel_grad(numpy.matmul(v.transpose(1, 2, 0), planes))
        if len(need) == 3:
            return gx, gw, gy.sum(axis=(0, 1, 2)) if need[2] else None
        return gx, gw

    def backward(self, gy):
        if self.winograd:
            return self._winograd_backward(gy)
        if self.pointwise:
            return self._pointwise_backward(gy)
        xp = get_xp(gy)
        kh, kw, c, o = self.w.shape
        sh, sw = self.strides
        oh, ow = self.out_hw
        n, per, k, chunk = self.x_shape[0], oh * ow, kh * kw * c, self.chunk
        need = self.needs_input_grad
        want_w = need[1] or (len(need) == 3 and need[2])
        gy2 = gy.reshape(n * per, o)
        g2 = xp.zeros(self.w2.shape, dtype=gy.dtype) if want_w else None  # (K[+1], O)
        gxp = buf = wt = kern = None
        if need[0]:
            # per chunk: one matmul back to (rows, K) columns, then each tap's column
            # block added into its strided window (compiled: one call, same order; the
            # compiled kernel knows no dilation, for which the NumPy loop runs)
            gxp = xp.zeros(self.padded_shape, dtype=gy.dtype)
            kern = kernels.convolution(gy2, gxp) if self.dilation == (1, 1) else None
            wt = xp.ascontiguousarray(self.w.reshape(k, o).T)  # (O, K)
            buf = xp.empty((chunk * per, k), dtype=gy.dtype)
        cols = self.cols
        if want_w and self.cols_t is not None:
            xp.matmul(self.cols_t, gy2, out=g2)
            want_w = False
        elif want_w and cols is not None:  # kept: one matmul over the whole batch
            xp.matmul(cols.T, gy2, out=g2)
            want_w = False
        elif want_w:
            cols = _column_buffer(xp, chunk * per, k, self.w2.shape[0], gy.dtype)
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            g = gy2[s * per : (s + m) * per]
            if want_w:  # columns rebuilt chunk by chunk
                im2col_into(cols, self.xp_[s : s + m], kh, kw, sh, sw, oh, ow, self.dilation)
                g2 += cols[: m * per].T @ g
            if need[0]:
                b = buf[: m * per]
                xp.matmul(g, wt, out=b)
                if kern is not None:
                    kern.col2im_add(b, kh, kw, sh, sw, oh, ow, gxp[s : s + m])
                else:
                    dh, dw = self.dilation
                    for p in range(kh):
                        for q in range(kw):
                            t = (p * kw + q) * c
                            win = gxp[s : s + m, p * dh :: sh, q * dw :: sw, :][:, :oh, :ow]
                            win += b[:, t : t + c].reshape(m, oh, ow, c)
        gx = None
        if need[0]:
            (pt, _), (pl, _) = self.pads
            h, wd = self.x_shape[1:3]
            gx = gxp[:, pt : pt + h, pl : pl + wd]
        gw = g2[:k].reshape(self.w.shape) if need[1] else None
        if len(need) == 3:
            return gx, gw, g2[k] if need[2] else None
        return gx, gw


def _column_buffer(xp, rows, k, kb, dtype):
    """A ``(rows, kb)`` column matrix; with a bias (``kb == k + 1``) its last column is
    ones, so the bias rides in the matmul."""
    cols = xp.empty((rows, kb), dtype=dtype)
    if kb > k:
        cols[:, k] = 1
    return cols


def _patches(x, kh, kw, sh, sw, oh, ow, dilation=(1, 1)):
    """The patches of NHWC ``x`` as a ``(N, OH, OW, KH, KW*C)`` strided view (no copy).

    For a fixed kernel row, the KW taps times C channels of one patch are adjacent
    in memory, so copying the view copies runs of KW*C floats (about 5x faster than
    KH*KW separate slice copies for the reference CNN).
    """
    xp = get_xp(x)
    n, h, w, c = x.shape
    # Merge (W, C) into one axis first: its stride is then the element stride, whatever
    # strides the input had (a view such as x[..., None] has a 0 stride on C).
    rows = xp.ascontiguousarray(x).reshape(n, h, w * c)
    s_n, s_h, s_e = rows.strides
    dh, dw = dilation
    if dw != 1:  # the taps of a row are not adjacent: (N, OH, OW, KH, KW, C)
        return xp.lib.stride_tricks.as_strided(
            rows,
            shape=(n, oh, ow, kh, kw, c),
            strides=(s_n, sh * s_h, sw * c * s_e, dh * s_h, dw * c * s_e, s_e),
        )
    return xp.lib.stride_tricks.as_strided(
        rows, shape=(n, oh, ow, kh, kw * c), strides=(s_n, sh * s_h, sw * c * s_e, dh * s_h, s_e)
    )


def im2col_into(cols, x, kh, kw, sh, sw, oh, ow, dilation=(1, 1)):
    """Write the patches of ``x`` (see :func:`_patches`) into the first
    ``N*OH*OW`` rows and ``KH*KW*C`` columns of the matrix ``cols``."""
    xp = get_xp(x)
    n, _h, _w, c = x.shape
    rows = n * oh * ow
    dest = cols[:rows].reshape(n, oh, ow, cols.shape[1])[..., : kh * kw * c]
    patches = _patches(x, kh, kw, sh, sw, oh, ow, dilation)
    dest = dest.reshape(patches.shape)  # a view: the last axis is contiguous
    xp.copyto(dest, patches)


def conv_transpose_length(n: int, k: int, stride: int, padding: str, output_padding=None) -> int:
    """Output length of a transposed convolution (Keras' rule)."""
    if output_padding is None:
        return n * stride + max(k - stride, 0) if padding == "valid" else n * stride
    pad = k // 2 if padding == "same" else 0
    return (n - 1) * stride + k - 2 * pad + output_padding


class Conv2DTranspose(Function):
    """The transposed convolution: the gradient of a convolution with respect to its
    input, as an op. Each input pixel's ``x @ w^T`` (a ``KH*KW*O`` column) is added into
    its window of the output (col2im); the windows overlap where the stride is smaller
    than the kernel. The output is that full map cropped (or padded with zeros) to the
    Keras size: ``start`` rows and columns dropped before, ``out`` kept.

    Kernel ``(KH, KW, O, C)`` as Keras' ``Conv2DTranspose``; input ``(N, H, W, C)``.
    """

    def flops(self, xs, y) -> int:
        return 2 * xs[0].size * (xs[1].size // xs[0].shape[-1])

    def __init__(self, strides, start, out):
        self.strides, self.start, self.out = tuple(strides), tuple(start), tuple(out)

    def forward(self, x, w, b=None):
        xp = get_xp(x)
        n, h, wd, c = x.shape
        kh, kw, o, _ = w.shape
        sh, sw = self.strides
        full = ((h - 1) * sh + kh, (wd - 1) * sw + kw)
        size = tuple(max(f, b + k) for f, b, k in zip(full, self.start, self.out, strict=True))
        self.x, self.w, self.full_size = x, w, size
        cols = x.reshape(n * h * wd, c) @ w.reshape(kh * kw * o, c).T  # (N*H*W, KH*KW*O)
        y = xp.zeros((n, *size, o), dtype=x.dtype)
        kern = kernels.convolution(cols, y)
        if kern is not None:
            kern.col2im_add(cols, kh, kw, sh, sw, h, wd, y)
        else:
            for p in range(kh):
                for q in range(kw):
                    t = (p * kw + q) * o
                    win = y[:, p : p + sh * h : sh, q : q + sw * wd : sw, :]
                    win += cols[:, t : t + o].reshape(n, h, wd, o)
        (t0, l0), (oh, ow) = self.start, self.out
        y = y[:, t0 : t0 + oh, l0 : l0 + ow]
        if b is not None:
            y = y + b
        return xp.ascontiguousarray(y)

    def backward(self, gy):
        xp = get_xp(gy)
        x, w = self.x, self.w
        n, h, wd, c = x.shape
        kh, kw, o, _ = w.shape
        sh, sw = self.strides
        (t0, l0), (oh, ow) = self.start, self.out
        g_full = xp.zeros((n, *self.full_size, o), dtype=gy.dtype)
        g_full[:, t0 : t0 + oh, l0 : l0 + ow] = gy
        cols = _column_buffer(xp, n * h * wd, kh * kw * o, kh * kw * o, gy.dtype)
        im2col_into(cols, g_full, kh, kw, sh, sw, h, wd)  # the convolution's columns
        need = self.needs_input_grad
        w2 = w.reshape(kh * kw * o, c)
        gx = (cols @ w2).reshape(x.shape) if need[0] else None
        gw = (cols.T @ x.reshape(n * h * wd, c)).reshape(w.shape) if need[1] else None
        if len(need) == 3:
            return gx, gw, gy.sum(axis=(0, 1, 2)) if need[2] else None
        return gx, gw


def conv2d_transpose(
    x, w, b=None, strides=(1, 1), padding: str = "valid", output_padding=None
) -> Tensor:
    """Transposed 2-D convolution on NHWC input, as Keras' ``Conv2DTranspose``.

    Args:
        x: input ``(N, H, W, C)``.
        w: kernel ``(KH, KW, O, C)`` (Keras layout: output channels before input ones).
        b: optional bias ``(O,)``.
        strides: ``(sh, sw)``.
        padding: ``"valid"`` or ``"same"``.
        output_padding: None, or ``(ph, pw)`` extra rows and columns at the end.

    Returns:
        ``(N, OH, OW, O)`` with Keras' output size (``conv_transpose_length``).
    """
    x, w = as_tensor(x), as_tensor(w)
    kh, kw = w.shape[:2]
    h, wd = x.shape[1:3]
    pads = output_padding if output_padding is not None else (None, None)
    start, out = [], []
    for size, k, s, op in zip((h, wd), (kh, kw), strides, pads, strict=True):
        length = conv_transpose_length(size, k, s, padding, op)
        # 'same': the convolution from the output back to the input pads (TF's rule)
        # (full - length) // 2 before, so the transposed one drops that much first
        full = (size - 1) * s + k
        begin = max(full - length, 0) // 2 if padding == "same" else 0
        start.append(begin)
        out.append(length)
    f = Conv2DTranspose(strides, start, out)
    return f(x, w) if b is None else f(x, w, b)


def conv2d(x, w, b=None, strides=(1, 1), padding: str = "valid", dilation=(1, 1)) -> Tensor:
    """2-D convolution (cross-correlation, as in every framework) on NHWC input.

    Args:
        x: input ``(N, H, W, C)``.
        w: kernel ``(KH, KW, C, O)`` (Keras layout).
        b: optional bias ``(O,)``.
        strides: ``(sh, sw)``.
        padding: ``"valid"`` or ``"same"`` (TF rules: odd padding goes after).

        dilation: ``(dh, dw)``, the spacing of the kernel's taps (Keras' dilation_rate).

    Returns:
        ``(N, OH, OW, O)``.
    """
    f = Conv2D(tuple(strides), padding, tuple(dilation))
    return f(x, w) if b is None else f(x, w, b)


def depthwise_conv2d(
    x, w, b=None, strides=(1, 1), padding: str = "valid", dilation=(1, 1)
) -> Tensor:
    """Depthwise 2-D convolution on NHWC input, as Keras' ``DepthwiseConv2D``: each input
    channel convolved with its own ``M`` filters.

    Args:
        x: input ``(N, H, W, C)``.
        w: kernel ``(KH, KW, C, M)`` (M: the depth multiplier).
        b: optional bias ``(C * M,)``.

    Returns: ``(N, OH, OW, C * M)``, output channel ``c * M + m`` from input channel
    ``c`` and filter ``m``.

    A sum over the kernel's taps of strided slices of the (padded) input times the
    tap's weights: each term is the engine's getitem, multiply and add, whose
    backward passes make this op's (no im2col: with one filter per channel a matmul
    would have nothing to reduce over).
    """
    from hpnn.engine.ops.shape import getitem, pad_spatial, reshape

    x, w = as_tensor(x), as_tensor(w)
    n, h, wd, c = x.shape
    kh, kw, _, m = w.shape
    (sh, sw), (dh, dw) = strides, dilation
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    pads = (pad_amounts(h, eh, sh, padding), pad_amounts(wd, ew, sw, padding))
    if any(p for pair in pads for p in pair):
        x = pad_spatial(x, pads)
    oh = (x.shape[1] - eh) // sh + 1
    ow = (x.shape[2] - ew) // sw + 1
    y = None
    for p in range(kh):
        for q in range(kw):
            rows = slice(p * dh, p * dh + (oh - 1) * sh + 1, sh)
            cols = slice(q * dw, q * dw + (ow - 1) * sw + 1, sw)
            tap = getitem(x, (slice(None), rows, cols, slice(None)))
            term = reshape(tap, (n, oh, ow, c, 1)) * getitem(w, (p, q))  # (.., C, M)
            y = term if y is None else y + term
    y = reshape(y, (n, oh, ow, c * m))
    return y if b is None else y + b
