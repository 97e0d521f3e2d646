"""Convolution and pooling layers (channels-last)."""

from __future__ import annotations

from hpnn import constraints, initializers, regularizers
from hpnn.backend import get_xp
from hpnn.engine import ops
from hpnn.engine.ops.conv import conv_output_length, conv_transpose_length
from hpnn.engine.tensor import Tensor
from hpnn.layers.base import KernelLayer, Layer, normalize_tuple


def _padding(value, owner, allowed=("valid", "same")):
    p = value.lower() if isinstance(value, str) else value
    if p not in allowed:
        names = ", ".join(f"'{a}'" for a in allowed[:-1]) + f" or '{allowed[-1]}'"
        raise ValueError(f"{owner}: padding must be {names}. Received: padding={value!r}")
    return p


def _data_format(value, owner, layout="(N, H, W, C)"):
    if value not in (None, "channels_last"):
        raise ValueError(
            f"{owner}: only data_format='channels_last' {layout} is supported. "
            f"Received: data_format={value!r}"
        )


def _conv2d_geometry(layer, filters, kernel_size, strides, padding, data_format) -> str:
    """Check and set a 2-D convolution's filters, kernel_size, strides and padding;
    returns the layer's name for error messages."""
    owner = layer._where()
    layer.filters = layer._positive_int("filters", filters)
    layer.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", owner)
    layer.strides = normalize_tuple(strides, 2, "strides", owner)
    layer.padding = _padding(padding, owner)
    _data_format(data_format, owner)
    return owner


class Conv2D(KernelLayer):
    """2-D convolution over ``(batch, height, width, channels)``.

    Args:
        filters: number of output channels.
        kernel_size: int or ``(kh, kw)``; kernel shape ``(kh, kw, in, filters)``.
        strides: int or ``(sh, sw)``.
        padding: ``"valid"`` or ``"same"``.
    """

    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
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
        owner = _conv2d_geometry(self, filters, kernel_size, strides, padding, data_format)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", owner)
        if self.dilation_rate != (1, 1) and self.strides != (1, 1):
            raise ValueError(
                f"{owner}: strides > 1 and dilation_rate > 1 cannot be combined (as in "
                f"Keras). Received: strides={self.strides}, dilation_rate={self.dilation_rate}"
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
        c = self._last_axis(input_shape)
        self.compute_output_shape(input_shape)  # raises if the input is too small
        self._build_kernel((*self.kernel_size, c, self.filters), c, self.filters)

    def call(self, x, training=False):
        y = ops.conv2d(x, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate)
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        out = []
        pairs = zip(self.kernel_size, self.dilation_rate, strict=True)
        extents = [(k - 1) * d + 1 for k, d in pairs]
        for size, k, s in zip((h, w), extents, self.strides, strict=True):
            o = None if size is None else conv_output_length(size, k, s, self.padding)
            if o is not None and o <= 0:
                raise ValueError(
                    f"{self._where()}: input of spatial size {(h, w)} is smaller than the kernel "
                    f"{self.kernel_size} with padding='valid'. Received: shape={tuple(input_shape)}"
                )
            out.append(o)
        return (n, *out, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
        }


class Conv2DTranspose(KernelLayer):
    """Transposed 2-D convolution (a learned upsampling), as Keras' ``Conv2DTranspose``.

    Args:
        filters: output channels; kernel ``(kh, kw, filters, in_channels)``.
        kernel_size, strides: int or pair.
        padding: ``"valid"`` (output ``H * s + max(k - s, 0)``) or ``"same"`` (``H * s``).
        output_padding: None or an int/pair: the output is then
            ``(H - 1) * s + k - 2 * (k // 2 if same else 0) + output_padding``.
    """

    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        output_padding=None,
        data_format=None,
        dilation_rate=(1, 1),
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
        owner = _conv2d_geometry(self, filters, kernel_size, strides, padding, data_format)
        if normalize_tuple(dilation_rate, 2, "dilation_rate", owner) != (1, 1):
            raise NotImplementedError(f"{owner}: dilation_rate other than 1 is not supported yet.")
        self.output_padding = None
        if output_padding is not None:
            pads = (output_padding,) * 2 if isinstance(output_padding, int) else output_padding
            pads = tuple(int(p) for p in pads)
            if len(pads) != 2 or any(
                not 0 <= p < s for p, s in zip(pads, self.strides, strict=True)
            ):
                raise ValueError(
                    f"{owner}: output_padding must be smaller than the strides "
                    f"{self.strides}. Received: output_padding={output_padding!r}"
                )
            self.output_padding = pads
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
        c = self._last_axis(input_shape)
        self.compute_output_shape(input_shape)
        self._build_kernel((*self.kernel_size, self.filters, c), c, self.filters)

    def call(self, x, training=False):
        y = ops.conv2d_transpose(
            x, self.kernel, self.bias, self.strides, self.padding, self.output_padding
        )
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        pads = self.output_padding or (None, None)
        out = [
            None if size is None else conv_transpose_length(size, k, s, self.padding, p)
            for size, k, s, p in zip((h, w), self.kernel_size, self.strides, pads, strict=True)
        ]
        return (n, *out, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "output_padding": self.output_padding,
        }


class _Pooling2D(Layer):
    input_ndim = 4
    rank_hint = "(batch, height, width, channels)"
    _fn = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = f"{type(self).__name__} '{self.name}'"
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size", owner)
        self.strides = normalize_tuple(
            strides if strides is not None else self.pool_size, 2, "strides", owner
        )
        self.padding = _padding(padding, owner)
        _data_format(data_format, owner)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        out = []
        for size, k, s in zip((h, w), self.pool_size, self.strides, strict=True):
            o = None if size is None else conv_output_length(size, k, s, self.padding)
            if o is not None and o <= 0:
                raise ValueError(
                    f"{self._where()}: input of spatial size {(h, w)} is smaller than the pool "
                    f"{self.pool_size}. Received: shape={tuple(input_shape)}"
                )
            out.append(o)
        return (n, *out, c)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def call(self, x, training=False):
        return type(self)._fn(x, self.pool_size, self.strides, self.padding)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }


class MaxPooling2D(_Pooling2D):
    """Max over ``pool_size`` windows; ``strides`` defaults to ``pool_size``."""

    _fn = staticmethod(ops.max_pool2d)


class AveragePooling2D(_Pooling2D):
    """Mean over ``pool_size`` windows; ``strides`` defaults to ``pool_size``."""

    _fn = staticmethod(ops.average_pool2d)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class Conv1D(KernelLayer):
    """1-D convolution over ``(batch, steps, channels)``, run as Conv2D on a height-1 view.

    Args:
        filters: number of output channels.
        kernel_size: int; kernel shape ``(kernel_size, in, filters)`` (Keras layout).
        strides: int.
        padding: ``"valid"``, ``"same"``, or ``"causal"`` (zeros on the left only, so
            output step t sees inputs up to t).
    """

    input_ndim = 3
    rank_hint = "(batch, steps, channels)"

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
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
        (self.kernel_size,) = normalize_tuple(kernel_size, 1, "kernel_size", owner)
        (self.strides,) = normalize_tuple(strides, 1, "strides", owner)
        self.padding = _padding(padding, owner, ("valid", "same", "causal"))
        _data_format(data_format, owner, "(N, steps, C)")
        (self.dilation_rate,) = normalize_tuple(dilation_rate, 1, "dilation_rate", owner)
        if groups != 1:
            raise NotImplementedError(f"{owner}: groups other than 1 is not supported yet.")
        if self.dilation_rate != 1 and self.strides != 1:
            raise ValueError(
                f"{owner}: strides > 1 and dilation_rate > 1 cannot be combined (as in "
                f"Keras). Received: strides={self.strides}, dilation_rate={self.dilation_rate}"
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
        c = self._last_axis(input_shape)
        self.compute_output_shape(input_shape)  # raises if the input is too short
        self._build_kernel((self.kernel_size, c, self.filters), c, self.filters)

    def call(self, x, training=False):
        n, steps, c = x.shape
        k, padding, d = self.kernel_size, self.padding, self.dilation_rate
        x4 = ops.reshape(x, (n, 1, steps, c))
        if padding == "causal":  # the dilated kernel's extent minus one, on the left
            zeros = Tensor(get_xp(x.data).zeros((n, 1, (k - 1) * d, c), dtype=x.dtype))
            x4 = ops.concatenate([zeros, x4], axis=2) if k > 1 else x4
            padding = "valid"
        w4 = ops.reshape(self.kernel, (1, k, c, self.filters))
        y = ops.conv2d(x4, w4, self.bias, (1, self.strides), padding, (1, d))
        return self.activation(ops.reshape(y, (n, y.shape[2], self.filters)))

    def compute_output_shape(self, input_shape):
        n, steps, _ = input_shape
        out = None
        if steps is not None:
            if self.padding == "causal":  # left-padded by k - 1, then 'valid'
                out = (steps - 1) // self.strides + 1
            else:
                extent = (self.kernel_size - 1) * self.dilation_rate + 1
                out = conv_output_length(steps, extent, self.strides, self.padding)
            if out <= 0:
                raise ValueError(
                    f"{self._where()}: {steps} steps are fewer than kernel_size="
                    f"{self.kernel_size} with padding='valid'. Received: shape={tuple(input_shape)}"
                )
        return (n, out, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
        }


class DepthwiseConv2D(Conv2D):
    """Depthwise 2-D convolution, as Keras': each input channel convolved with its own
    ``depth_multiplier`` filters; kernel ``(kh, kw, in, depth_multiplier)``, bias
    ``(in * depth_multiplier,)``, output channel ``c * depth_multiplier + m``."""

    def __init__(
        self,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        depth_multiplier=1,
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            1,  # (set from the input in build)
            kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=depthwise_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=depthwise_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=depthwise_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self.depth_multiplier = self._positive_int("depth_multiplier", depth_multiplier)

    def build(self, input_shape):
        c = self._last_axis(input_shape)
        self.filters = c * self.depth_multiplier
        self.compute_output_shape(input_shape)
        self._build_kernel((*self.kernel_size, c, self.depth_multiplier), c, self.filters)

    def call(self, x, training=False):
        y = ops.depthwise_conv2d(
            x, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate
        )
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        c = input_shape[-1]
        self.filters = None if c is None else c * self.depth_multiplier
        return super().compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.pop("filters")
        for suffix in ("_initializer", "_regularizer", "_constraint"):
            config["depthwise" + suffix] = config.pop("kernel" + suffix)
        return {**config, "depth_multiplier": self.depth_multiplier}


class SeparableConv2D(Conv2D):
    """A depthwise convolution (``depth_multiplier`` filters per input channel, no bias)
    followed by a 1x1 convolution to ``filters`` channels with the bias, as Keras':
    weights ``depthwise_kernel (kh, kw, in, m)``, ``pointwise_kernel (1, 1, in * m,
    filters)``, ``bias (filters,)``."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        depth_multiplier=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        pointwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=pointwise_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=pointwise_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=pointwise_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self.depth_multiplier = self._positive_int("depth_multiplier", depth_multiplier)
        self.depthwise_initializer = depthwise_initializer
        self.depthwise_regularizer = depthwise_regularizer
        self.depthwise_constraint = depthwise_constraint

    def build(self, input_shape):
        c = self._last_axis(input_shape)
        self.compute_output_shape(input_shape)
        m = self.depth_multiplier
        self.depthwise_kernel = self.add_weight(
            (*self.kernel_size, c, m),
            self.depthwise_initializer,
            "depthwise_kernel",
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
        )
        self.pointwise_kernel = self.add_weight(
            (1, 1, c * m, self.filters),
            self.kernel_initializer,
            "pointwise_kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.kernel = self.pointwise_kernel
        self._build_bias(self.filters)
        self._fixed_dims = {-1: c}
        self.built = True

    def call(self, x, training=False):
        y = ops.depthwise_conv2d(
            x, self.depthwise_kernel, None, self.strides, self.padding, self.dilation_rate
        )
        return self.activation(ops.conv2d(y, self.pointwise_kernel, self.bias))

    def get_config(self):
        config = super().get_config()
        for suffix in ("_initializer", "_regularizer", "_constraint"):
            config["pointwise" + suffix] = config.pop("kernel" + suffix)
        return {
            **config,
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": initializers.serialize(
                initializers.get(self.depthwise_initializer)
            ),
            "depthwise_regularizer": regularizers.serialize(
                regularizers.get(self.depthwise_regularizer)
            ),
            "depthwise_constraint": constraints.serialize(
                constraints.get(self.depthwise_constraint)
            ),
        }
