"""Image layers without weights, as Keras has them: ``Rescaling``, ``ZeroPadding2D``,
``Cropping2D`` and ``UpSampling2D`` (channels-last ``(N, H, W, C)``)."""

from __future__ import annotations

import numbers

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
