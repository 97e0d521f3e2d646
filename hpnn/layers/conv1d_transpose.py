"""Transposed 1-D convolution, as Keras' ``Conv1DTranspose``: the 2-D op on one row."""

from __future__ import annotations

from hpnn.engine import ops
from hpnn.engine.ops.conv import conv_transpose_length
from hpnn.layers.base import KernelLayer, normalize_tuple
from hpnn.layers.conv import _data_format, _padding


class Conv1DTranspose(KernelLayer):
    """Transposed 1-D convolution (a learned upsampling of sequences).

    Args:
        filters: output channels; kernel ``(k, filters, in_channels)`` as Keras stores it.
        kernel_size, strides: ints.
        padding: ``"valid"`` (output ``L * s + max(k - s, 0)``) or ``"same"`` (``L * s``).
        output_padding: None or an int smaller than ``strides``: the output is then
            ``(L - 1) * s + k - 2 * (k // 2 if same else 0) + output_padding``.

    Input ``(N, L, C)``, output ``(N, L', filters)``.
    """

    input_ndim = 3
    rank_hint = "(batch, steps, channels)"

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        output_padding=None,
        data_format=None,
        dilation_rate=1,
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
        if isinstance(filters, bool) or not isinstance(filters, int) or filters <= 0:
            raise ValueError(f"{owner}: filters must be a positive int. Received: {filters!r}")
        self.filters = filters
        (self.kernel_size,) = normalize_tuple(kernel_size, 1, "kernel_size", owner)
        (self.strides,) = normalize_tuple(strides, 1, "strides", owner)
        self.padding = _padding(padding, owner)
        _data_format(data_format, owner, "(N, L, C)")
        if normalize_tuple(dilation_rate, 1, "dilation_rate", owner) != (1,):
            raise NotImplementedError(f"{owner}: dilation_rate other than 1 is not supported yet.")
        if isinstance(output_padding, (list, tuple)) and len(output_padding) == 1:
            output_padding = output_padding[0]  # (Keras' config keeps a 1-tuple)
        if output_padding is not None and (
            isinstance(output_padding, bool)
            or not isinstance(output_padding, int)
            or not 0 <= output_padding < self.strides
        ):
            raise ValueError(
                f"{owner}: output_padding must be None or an int smaller than the strides "
                f"({self.strides}). Received: output_padding={output_padding!r}"
            )
        self.output_padding = output_padding
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
        self._build_kernel((self.kernel_size, self.filters, c), c, self.filters)

    def call(self, x, training=False):
        n, steps, c = x.shape
        k = self.kernel_size
        rows = ops.reshape(x, (n, 1, steps, c))
        kernel = ops.reshape(self.kernel, (1, k, self.filters, c))
        pads = None if self.output_padding is None else (0, self.output_padding)
        y = ops.conv2d_transpose(rows, kernel, self.bias, (1, self.strides), self.padding, pads)
        return self.activation(ops.reshape(y, (n, y.shape[2], self.filters)))

    def compute_output_shape(self, input_shape):
        n, steps, _ = input_shape
        length = None
        if steps is not None:
            length = conv_transpose_length(
                steps, self.kernel_size, self.strides, self.padding, self.output_padding
            )
        return (n, length, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "output_padding": self.output_padding,
        }
