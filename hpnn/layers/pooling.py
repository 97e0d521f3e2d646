"""1-D pooling over ``(batch, steps, channels)`` and global pooling over steps or space."""

from __future__ import annotations

from hpnn.backend import get_xp
from hpnn.engine import ops
from hpnn.engine.ops.conv import conv_output_length
from hpnn.engine.tensor import Tensor
from hpnn.layers.base import Layer, normalize_tuple
from hpnn.layers.conv import _padding
from hpnn.layers.recurrent import mask_array


def check_channels_last(value, owner):
    if value not in (None, "channels_last"):
        raise ValueError(
            f"{owner}: only data_format='channels_last' is supported. "
            f"Received: data_format={value!r}"
        )


class _Pooling1D(Layer):
    """A window op over steps, run as the 2-D op on a height-1 view ``(N, 1, L, C)``."""

    input_ndim = 3
    rank_hint = "(batch, steps, channels)"
    _fn = None

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = self._where()
        (self.pool_size,) = normalize_tuple(pool_size, 1, "pool_size", owner)
        (self.strides,) = normalize_tuple(
            self.pool_size if strides is None else strides, 1, "strides", owner
        )
        self.padding = _padding(padding, owner)
        check_channels_last(data_format, owner)

    def compute_output_shape(self, input_shape):
        n, steps, c = input_shape
        out = None
        if steps is not None:
            out = conv_output_length(steps, self.pool_size, self.strides, self.padding)
            if out <= 0:
                raise ValueError(
                    f"{self._where()}: {steps} steps are fewer than pool_size={self.pool_size} "
                    f"with padding='valid'. Received: shape={tuple(input_shape)}"
                )
        return (n, out, c)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def call(self, x, training=False):
        n, steps, c = x.shape
        y = type(self)._fn(
            ops.reshape(x, (n, 1, steps, c)), (1, self.pool_size), (1, self.strides), self.padding
        )
        return ops.reshape(y, (n, y.shape[2], c))

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }


class MaxPooling1D(_Pooling1D):
    """Max over windows of ``pool_size`` steps; ``strides`` defaults to ``pool_size``."""

    _fn = staticmethod(ops.max_pool2d)


class AveragePooling1D(_Pooling1D):
    """Mean over windows of ``pool_size`` steps ('same' windows average real steps only)."""

    _fn = staticmethod(ops.average_pool2d)


class _GlobalPooling(Layer):
    axes = (1,)

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        check_channels_last(data_format, self._where())
        self.keepdims = keepdims

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], *(1 for _ in self.axes), input_shape[-1])
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over steps: ``(N, L, C) -> (N, C)``; with a mask, over the unmasked steps only.

    A sequence with every step masked gives zeros (Keras would divide by zero).
    """

    input_ndim = 3
    rank_hint = "(batch, steps, channels)"
    supports_masking = True

    def call(self, x, training=False, mask=None):
        if mask is None:
            return ops.mean(x, axis=1, keepdims=self.keepdims)
        m = mask_array(self, mask, x)
        xp = get_xp(m)
        w = m.astype(x.dtype)[:, :, None]
        count = xp.maximum(w.sum(axis=1, keepdims=self.keepdims), 1)
        return ops.sum(x * Tensor(w), axis=1, keepdims=self.keepdims) * Tensor(1 / count)

    def compute_mask(self, inputs, mask=None):
        return None


class GlobalMaxPooling1D(_GlobalPooling):
    """Max over steps: ``(N, L, C) -> (N, C)`` (ties share the gradient)."""

    input_ndim = 3
    rank_hint = "(batch, steps, channels)"

    def call(self, x, training=False):
        return ops.max(x, axis=1, keepdims=self.keepdims)


class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over height and width: ``(N, H, W, C) -> (N, C)``."""

    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"
    axes = (1, 2)

    def call(self, x, training=False):
        return ops.mean(x, axis=(1, 2), keepdims=self.keepdims)


class GlobalMaxPooling2D(_GlobalPooling):
    """Max over height and width: ``(N, H, W, C) -> (N, C)`` (ties share the gradient)."""

    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"
    axes = (1, 2)

    def call(self, x, training=False):
        return ops.max(x, axis=(1, 2), keepdims=self.keepdims)


MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
