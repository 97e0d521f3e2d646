"""Preprocessing and image layers, as Keras has them: ``Rescaling``, ``Normalization``,
``ZeroPadding2D``, ``Cropping2D`` and ``UpSampling2D`` (channels-last ``(N, H, W, C)``)."""

from __future__ import annotations

import numbers

import numpy as np

from hpnn.engine import ops
from hpnn.layers.base import Layer
from hpnn.layers.conv import _data_format


def _pairs(value, name, owner):
    """Keras' forms: ``n``, ``(h, w)`` or ``((top, bottom), (left, right))``, as the
    latter, every entry an int >= 0."""

    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0

    if is_int(value):
        return ((int(value),) * 2,) * 2
    try:
        a, b = value
        if is_int(a) and is_int(b):
            return ((int(a), int(a)), (int(b), int(b)))
        (t, bo), (le, r) = a, b
        if all(is_int(v) for v in (t, bo, le, r)):
            return ((int(t), int(bo)), (int(le), int(r)))
    except (TypeError, ValueError):
        pass
    raise ValueError(
        f"{owner}: {name} must be an int >= 0, a pair (height, width) or "
        f"((top, bottom), (left, right)). Received: {name}={value!r}"
    )


class Rescaling(Layer):
    """``x * scale + offset`` (``keras.layers.Rescaling(1 / 255)`` for pixel values)."""

    supports_masking = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        for name, v in (("scale", scale), ("offset", offset)):
            if not isinstance(v, numbers.Real) or isinstance(v, bool):
                raise ValueError(f"{self._where()}: {name} must be a number. Received: {v!r}")
        self.scale, self.offset = float(scale), float(offset)

    def call(self, x, training=False):
        y = x * self.scale
        return y + self.offset if self.offset else y

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


class ZeroPadding2D(Layer):
    """Zeros around the image: ``padding`` rows above and below, columns left and right."""

    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        _data_format(data_format, self._where())
        self.padding = _pairs(padding, "padding", self._where())

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (t, b), (le, r) = self.padding
        return (n, None if h is None else h + t + b, None if w is None else w + le + r, c)

    def call(self, x, training=False):
        return ops.pad_spatial(x, self.padding)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


class Cropping2D(Layer):
    """The image without ``cropping`` rows at the top and bottom and columns at the sides."""

    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        _data_format(data_format, self._where())
        self.cropping = _pairs(cropping, "cropping", self._where())

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (t, b), (le, r) = self.cropping
        out = [None if d is None else d - lo - hi for d, (lo, hi) in ((h, (t, b)), (w, (le, r)))]
        if any(d is not None and d <= 0 for d in out):
            raise ValueError(
                f"{self._where()}: cropping={self.cropping} leaves nothing of an image of "
                f"{h}x{w}. Received: shape={tuple(input_shape)}"
            )
        return (n, *out, c)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def call(self, x, training=False):
        (t, b), (le, r) = self.cropping
        self.compute_output_shape(x.shape)
        h, w = x.shape[1:3]
        return ops.getitem(x, (slice(None), slice(t, h - b), slice(le, w - r)))

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}


class UpSampling2D(Layer):
    """Each pixel repeated ``size`` times down and across (nearest neighbour)."""

    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        owner = self._where()
        _data_format(data_format, owner)
        if interpolation != "nearest":
            raise NotImplementedError(
                f"{owner}: interpolation='nearest' only. Received: interpolation={interpolation!r}"
            )
        (a, _), (b, _) = _pairs(size, "size", owner)
        if a < 1 or b < 1:
            raise ValueError(f"{owner}: size must be >= 1. Received: size={size!r}")
        self.size, self.interpolation = (a, b), interpolation

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        sh, sw = self.size
        return (n, None if h is None else h * sh, None if w is None else w * sw, c)

    def call(self, x, training=False):
        return ops.upsample(x, self.size)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "interpolation": self.interpolation}


class Normalization(Layer):
    """``(x - mean) / max(sqrt(variance), epsilon)`` per feature, as Keras'
    ``Normalization``: the statistics are given (``mean=``, ``variance=``) or computed
    from data with ``adapt(data)`` before training; ``invert=True`` undoes it.

    ``axis``: the axes that keep their own statistics (default the last); None for
    one mean and variance over everything.
    """

    supports_masking = True

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if (mean is None) != (variance is None):
            raise ValueError(
                f"{self._where()}: mean and variance must be given together. "
                f"Received: mean={mean!r}, variance={variance!r}"
            )
        self.axis = () if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        self.input_mean, self.input_variance, self.invert = mean, variance, bool(invert)

    def _axes(self, shape):
        ndim = len(shape)
        if any(not -ndim <= a < ndim for a in self.axis):
            raise ValueError(
                f"{self._where()}: axis {self.axis} is outside inputs of rank {ndim}. "
                f"Received: shape={tuple(shape)}"
            )
        keep = tuple(sorted(a % ndim for a in self.axis))
        if 0 in keep:
            raise ValueError(f"{self._where()}: axis must not include the batch axis 0.")
        return keep, tuple(d for d in range(ndim) if d not in keep)

    def build(self, input_shape):
        keep, _ = self._axes(input_shape)
        if any(input_shape[d] is None for d in keep):
            raise ValueError(
                f"{self._where()}: the axes {keep} must have known sizes. "
                f"Received: shape={tuple(input_shape)}"
            )
        self._keep = keep
        self._broadcast = tuple(
            input_shape[d] if d in keep else 1 for d in range(1, len(input_shape))
        )
        stats_shape = tuple(input_shape[d] for d in keep)
        self.mean = self.add_weight(stats_shape, "zeros", "mean", trainable=False)
        self.variance = self.add_weight(stats_shape, "ones", "variance", trainable=False)
        self.count = self.add_weight((), "zeros", "count", trainable=False)
        if self.input_mean is not None:
            self.mean.assign(np.broadcast_to(self.input_mean, stats_shape))
            self.variance.assign(np.broadcast_to(self.input_variance, stats_shape))
        self.built = True

    def adapt(self, data, batch_size=None, steps=None):
        """Set the mean and variance from ``data``: an array, or batches (a list, a
        generator or a PyDataset of arrays or ``(x, ...)`` tuples)."""
        from hpnn.data import pydataset

        if isinstance(data, np.ndarray) or hasattr(data, "__array__"):
            batches = [np.asarray(data)]
        else:
            source = data if pydataset.is_batched(data) else iter(data)
            batches = (
                np.asarray(b[0] if isinstance(b, tuple) else b)
                for b in pydataset.epoch_batches(source, steps)
            )
        total = total_sq = None
        count = 0
        for b in batches:
            b = b.astype(np.float64)
            if not self.built:
                self.build_for((None, *b.shape[1:]))
            keep, reduce = self._axes(b.shape)
            if tuple(b.shape[d] for d in keep) != tuple(self.mean.shape):
                raise ValueError(
                    f"{self._where()}: adapt() data of shape {b.shape} does not fit statistics "
                    f"of shape {tuple(self.mean.shape)}."
                )
            s, sq = b.sum(axis=reduce), (b * b).sum(axis=reduce)
            total = s if total is None else total + s
            total_sq = sq if total_sq is None else total_sq + sq
            count += int(np.prod([b.shape[d] for d in reduce]))
        if not count:
            raise ValueError(f"{self._where()}: adapt() received no data.")
        mean = total / count
        self.mean.assign(mean)
        self.variance.assign(np.maximum(total_sq / count - mean * mean, 0.0))
        self.count.assign(np.asarray(count, dtype=self.count.dtype))

    def call(self, x, training=False):
        mean = ops.reshape(self.mean, self._broadcast)
        std = ops.maximum(ops.sqrt(ops.reshape(self.variance, self._broadcast)), 1e-7)
        if self.invert:
            return x * std + mean
        return (x - mean) / std

    def get_config(self):
        config = {**super().get_config(), "axis": self.axis, "invert": self.invert}
        if self.input_mean is not None:
            config["mean"] = np.asarray(self.input_mean).tolist()
            config["variance"] = np.asarray(self.input_variance).tolist()
        return config


def _resize_matrix(n_in: int, n_out: int, interpolation: str) -> np.ndarray:
    """``(n_out, n_in)`` weights of one axis' resize, half-pixel centred (as Keras on
    torch: bilinear with ``align_corners=False``, nearest as ``"nearest-exact"``)."""
    scale = n_in / n_out
    w = np.zeros((n_out, n_in))
    centres = (np.arange(n_out) + 0.5) * scale
    if interpolation == "nearest":
        w[np.arange(n_out), np.minimum(np.floor(centres).astype(int), n_in - 1)] = 1.0
        return w
    src = np.maximum(centres - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(int), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    np.add.at(w, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(w, (np.arange(n_out), hi), frac)
    return w


class Resizing(Layer):
    """Resize images ``(batch, height, width, channels)`` to ``(height, width)``, as
    Keras' ``Resizing``: ``"bilinear"`` or ``"nearest"`` (half-pixel centres, no
    antialiasing); with ``crop_to_aspect_ratio`` the largest centred window of the
    target's aspect ratio is resized. A linear map on each axis (two matmuls), so the
    gradient passes through."""

    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"
    supports_masking = False

    def __init__(
        self,
        height,
        width,
        interpolation="bilinear",
        crop_to_aspect_ratio=False,
        pad_to_aspect_ratio=False,
        fill_mode="constant",
        fill_value=0.0,
        antialias=False,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        where = self._where()
        self.height = self._positive_int("height", height)
        self.width = self._positive_int("width", width)
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(
                f"{where}: interpolation must be 'bilinear' or 'nearest'. "
                f"Received: interpolation={interpolation!r}"
            )
        if pad_to_aspect_ratio or antialias:
            raise NotImplementedError(
                f"{where}: pad_to_aspect_ratio and antialias are not supported yet."
            )
        _data_format(data_format, where)
        self.interpolation, self.crop_to_aspect_ratio = interpolation, bool(crop_to_aspect_ratio)
        self._matrices = {}

    def _window(self, h, w):
        """The centred crop (top, left, height, width) that is resized."""
        if not self.crop_to_aspect_ratio:
            return 0, 0, h, w
        ch = min(h, int(w * self.height / self.width))
        cw = min(w, int(h * self.width / self.height))
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def call(self, x, training=False):
        _, h, w, _ = x.shape
        top, left, ch, cw = self._window(h, w)
        if (top, left, ch, cw) != (0, 0, h, w):
            x = ops.getitem(x, (slice(None), slice(top, top + ch), slice(left, left + cw)))
        key = (ch, cw, x.dtype)
        if key not in self._matrices:
            rows = _resize_matrix(ch, self.height, self.interpolation).astype(x.dtype)
            cols = _resize_matrix(cw, self.width, self.interpolation).T.astype(x.dtype)
            self._matrices[key] = (rows, cols)
        rows, cols = self._matrices[key]
        y = ops.matmul(ops.matmul(rows, ops.transpose(x, (0, 3, 1, 2))), cols)  # (N, C, H, W)
        return ops.transpose(y, (0, 2, 3, 1))

    def get_config(self):
        return {
            **super().get_config(),
            "height": self.height,
            "width": self.width,
            "interpolation": self.interpolation,
            "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
        }


class CenterCrop(Layer):
    """The centred ``(height, width)`` window of images ``(batch, h, w, channels)``, as
    Keras' ``CenterCrop`` (offsets ``(h - height) // 2`` and ``(w - width) // 2``).
    Images smaller than the window are not supported (Keras resizes them)."""

    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.height = self._positive_int("height", height)
        self.width = self._positive_int("width", width)
        _data_format(data_format, self._where())

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        if (h is not None and h < self.height) or (w is not None and w < self.width):
            raise NotImplementedError(
                f"{self._where()}: inputs smaller than the crop ({self.height}, {self.width}) "
                f"are not supported yet. Received: shape={tuple(input_shape)}"
            )
        return (n, self.height, self.width, c)

    def call(self, x, training=False):
        _, h, w, _ = x.shape
        self.compute_output_shape(x.shape)
        top, left = (h - self.height) // 2, (w - self.width) // 2
        rows, cols = slice(top, top + self.height), slice(left, left + self.width)
        return ops.getitem(x, (slice(None), rows, cols))

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
