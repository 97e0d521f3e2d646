"""3-D convolution and pooling layers over ``(batch, depth, height, width, channels)``."""

from __future__ import annotations

from hpnn.engine import ops
from hpnn.engine.ops.conv import conv_output_length
from hpnn.layers.base import KernelLayer, Layer, normalize_tuple
from hpnn.layers.conv import _data_format, _padding
from hpnn.layers.pooling import _GlobalPooling

RANK_HINT = "(batch, depth, height, width, channels)"
LAYOUT = "(N, D, H, W, C)"


def _spatial_output(layer, input_shape, window, what):
    """The output's (depth, height, width) of a window op, or a ValueError naming
    ``layer`` when the input is smaller than the window under 'valid' padding."""
    layer.check_input_shape(input_shape)
    spatial = tuple(input_shape[1:4])
    strides = layer.strides
    out = []
    for size, k, s in zip(spatial, window, strides, strict=True):
        o = None if size is None else conv_output_length(size, k, s, layer.padding)
        if o is not None and o <= 0:
            raise ValueError(
                f"{layer._where()}: input of spatial size {spatial} is smaller than the {what} "
                f"with padding='valid'. Received: shape={tuple(input_shape)}"
            )
        out.append(o)
    return tuple(out)


class Conv3D(KernelLayer):
    """3-D convolution over ``(batch, depth, height, width, channels)``, as Keras'.

    Args:
        filters: number of output channels.
        kernel_size: int or ``(kd, kh, kw)``; kernel ``(kd, kh, kw, in // groups, filters)``.
        strides: int or ``(sd, sh, sw)``.
        padding: ``"valid"`` or ``"same"`` (TF's rule: the odd padding after).
        dilation_rate: int or ``(dd, dh, dw)``; not combined with strides > 1 (as Keras).
        groups: input and output channels split into this many groups, each
            convolved on its own (output channels ``g * filters / groups`` onwards from
            input channels ``g * in / groups`` onwards).

    >>> Conv3D(8, 3, padding="same").compute_output_shape((None, 4, 16, 16, 1))
    (None, 4, 16, 16, 8)
    """

    input_ndim = 5
    rank_hint = RANK_HINT

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = self._where()
        self.filters = self._positive_int("filters", filters)
        self.kernel_size = normalize_tuple(kernel_size, 3, "kernel_size", owner)
        self.strides = normalize_tuple(strides, 3, "strides", owner)
        self.padding = _padding(padding, owner)
        _data_format(data_format, owner, LAYOUT)
        self.dilation_rate = normalize_tuple(dilation_rate, 3, "dilation_rate", owner)
        if max(self.dilation_rate) > 1 and max(self.strides) > 1:
            raise ValueError(
                f"{owner}: strides > 1 and dilation_rate > 1 cannot be combined (as in "
                f"Keras). Received: strides={self.strides}, dilation_rate={self.dilation_rate}"
            )
        self.groups = self._positive_int("groups", groups)
        if self.filters % self.groups:
            raise ValueError(
                f"{owner}: filters must be a multiple of groups. "
                f"Received: filters={self.filters}, groups={self.groups}"
            )
        self._kernel_args(
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            activity_regularizer,
            kernel_constraint,
            bias_constraint,
        )

    def build(self, input_shape):
        self.check_input_shape(input_shape)
        c = self._last_axis(input_shape)
        if c % self.groups:
            raise ValueError(
                f"{self._where()}: the input channels must be a multiple of groups="
                f"{self.groups}. Received: shape={tuple(input_shape)}"
            )
        self.compute_output_shape(input_shape)  # raises if the input is too small
        kernel = (*self.kernel_size, c // self.groups, self.filters)
        self._build_kernel(kernel, c, self.filters)

    def call(self, x, training=False):
        args = (self.strides, self.padding, self.dilation_rate)
        if self.groups == 1:
            return self.activation(ops.conv3d(x, self.kernel, self.bias, *args))
        cg, fg = x.shape[-1] // self.groups, self.filters // self.groups
        parts = [
            ops.conv3d(
                x[..., g * cg : (g + 1) * cg], self.kernel[..., g * fg : (g + 1) * fg], None, *args
            )
            for g in range(self.groups)
        ]
        y = ops.concatenate(parts, axis=-1)
        return self.activation(y if self.bias is None else y + self.bias)

    def compute_output_shape(self, input_shape):
        pairs = zip(self.kernel_size, self.dilation_rate, strict=True)
        extents = tuple((k - 1) * d + 1 for k, d in pairs)
        out = _spatial_output(self, input_shape, extents, f"kernel {self.kernel_size}")
        return (input_shape[0], *out, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": "channels_last",
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
        }


class _Pooling3D(Layer):
    input_ndim = 5
    rank_hint = RANK_HINT
    _fn = None

    def __init__(
        self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None, **kwargs
    ):
        super().__init__(**kwargs)
        owner = self._where()
        self.pool_size = normalize_tuple(pool_size, 3, "pool_size", owner)
        self.strides = normalize_tuple(
            self.pool_size if strides is None else strides, 3, "strides", owner
        )
        self.padding = _padding(padding, owner)
        _data_format(data_format, owner, LAYOUT)

    def compute_output_shape(self, input_shape):
        out = _spatial_output(self, input_shape, self.pool_size, f"pool {self.pool_size}")
        return (input_shape[0], *out, input_shape[-1])

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def call(self, x, training=False):
        return type(self)._fn(x, self.pool_size, self.strides, self.padding)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "padding": self.padding,
            "strides": self.strides,
            "data_format": "channels_last",
        }


class MaxPooling3D(_Pooling3D):
    """Max over ``pool_size`` windows; ``strides`` defaults to ``pool_size``; on ties the
    gradient goes to the window's first maximum."""

    _fn = staticmethod(ops.max_pool3d)


class AveragePooling3D(_Pooling3D):
    """Mean over ``pool_size`` windows ('same' windows average their real inputs only)."""

    _fn = staticmethod(ops.average_pool3d)


class _GlobalPooling3D(_GlobalPooling):
    input_ndim = 5
    rank_hint = RANK_HINT
    axes = (1, 2, 3)

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last"}


class GlobalAveragePooling3D(_GlobalPooling3D):
    """Mean over depth, height and width: ``(N, D, H, W, C) -> (N, C)``."""

    def call(self, x, training=False):
        return ops.mean(x, axis=self.axes, keepdims=self.keepdims)


class GlobalMaxPooling3D(_GlobalPooling3D):
    """Max over depth, height and width: ``(N, D, H, W, C) -> (N, C)`` (ties share the
    gradient, as the 2-D layer)."""

    def call(self, x, training=False):
        return ops.max(x, axis=self.axes, keepdims=self.keepdims)


MaxPool3D = MaxPooling3D
AvgPool3D = AveragePooling3D
GlobalAvgPool3D = GlobalAveragePooling3D
GlobalMaxPool3D = GlobalMaxPooling3D
