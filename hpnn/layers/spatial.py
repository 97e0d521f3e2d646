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
