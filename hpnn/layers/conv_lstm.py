"""ConvLSTM2D: an LSTM whose gates are convolutions, over ``(batch, time, H, W, C)``."""

from __future__ import annotations

import numbers

import numpy as np

from hpnn import activations, constraints, initializers, regularizers
from hpnn.engine import ops
from hpnn.engine.ops.conv import conv_output_length
from hpnn.engine.tensor import Tensor, _as_array
from hpnn.layers.base import Layer, normalize_tuple
from hpnn.layers.conv import _data_format, _padding


class ConvLSTM2D(Layer):
    """A 2-D convolutional LSTM (Shi et al. 2015), as Keras' ``ConvLSTM2D``.

    Per step: ``z = conv(x_t, kernel, strides, padding, dilation) + bias +
    conv(h, recurrent_kernel, 'same')``, split into the gates i, f, c, o (Keras'
    order); ``c = f * c + i * activation(z_c)``, ``h = o * activation(c)`` (i, f and
    o through ``recurrent_activation``). The input convolution runs once for all steps
    (one im2col matmul); the loop over the steps runs the recurrent one.

    Args:
        filters: channels of the state. Kernel ``(kh, kw, in, 4*filters)``,
            recurrent_kernel ``(kh, kw, filters, 4*filters)``, bias ``(4*filters,)``.
        kernel_size, strides, dilation_rate: int or pair (the input convolution's).
        padding: ``"valid"`` or ``"same"`` of the input convolution (the recurrent one
            is always 'same', stride 1).
        unit_forget_bias: start the forget gate's bias at 1.
        return_sequences: output ``(batch, time, H', W', filters)``, not the last step.
        return_state: also return the final states: ``[output, h, c]``.
        go_backwards: run the steps in reverse (outputs in that order, as Keras).

    Call with ``initial_state=[h0, c0]``, each ``(batch, H', W', filters)``.
    """

    input_ndim = 5
    rank_hint = "(batch, time, height, width, channels)"

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        owner = self._where()
        self.filters = self._positive_int("filters", filters)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", owner)
        self.strides = normalize_tuple(strides, 2, "strides", owner)
        self.padding = _padding(padding, owner)
        _data_format(data_format, owner, "(N, T, H, W, C)")
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", owner)
        if max(self.dilation_rate) > 1 and max(self.strides) > 1:
            raise ValueError(
                f"{owner}: strides > 1 and dilation_rate > 1 cannot be combined (as in "
                f"Keras). Received: strides={self.strides}, dilation_rate={self.dilation_rate}"
            )
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
                raise ValueError(f"{owner}: {name} must be in [0, 1). Received: {name}={rate!r}")
            if rate:
                raise NotImplementedError(f"{owner}: {name} > 0 is not supported yet.")
        if stateful:
            raise NotImplementedError(f"{owner}: stateful=True is not supported yet.")
        self.activation = activations.get(activation, owner)
        self.recurrent_activation = activations.get(recurrent_activation, owner)
        self.use_bias, self.unit_forget_bias = use_bias, unit_forget_bias
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.seed = seed if isinstance(seed, int) else None
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards, self.unroll = go_backwards, unroll
        self.zero_output_for_mask = zero_output_for_mask  # (no masks here: kept for configs)

    # -- weights ----------------------------------------------------------------------
    def build(self, input_shape):
        self.check_input_shape(input_shape)
        if None in tuple(input_shape[2:]):
            raise ValueError(
                f"{self._where()}: the height, width and channel axes must be known. "
                f"Received: shape={tuple(input_shape)}"
            )
        self.compute_output_shape(input_shape)  # raises if the input is too small
        c, f = input_shape[-1], self.filters
        self.kernel = self._weight("kernel", (*self.kernel_size, c, 4 * f))
        self.recurrent_kernel = self._weight("recurrent_kernel", (*self.kernel_size, f, 4 * f))
        self.bias = self._weight("bias", (4 * f,)) if self.use_bias else None
        self._fixed_dims = {-1: c}
        self.built = True

    def _weight(self, name, shape):
        part = "kernel" if name == "kernel" else name.split("_")[0]
        init = getattr(self, f"{part}_initializer")
        if name == "bias" and self.unit_forget_bias:
            init = self._forget_ones(initializers.get(init))
        return self.add_weight(
            shape,
            init,
            name,
            regularizer=getattr(self, f"{part}_regularizer"),
            constraint=getattr(self, f"{part}_constraint"),
        )

    def _forget_ones(self, init):
        f = self.filters

        def forget_ones(shape, dtype=None):
            return np.concatenate([init((f,), dtype), np.ones(f, dtype), init((2 * f,), dtype)])

        return forget_ones

    # -- calling ----------------------------------------------------------------------
    def call(self, x, training=False, initial_state=None):
        n, steps, h, w, c = x.shape
        f = self.filters
        z = ops.conv2d(
            ops.reshape(x, (n * steps, h, w, c)),
            self.kernel,
            self.bias,
            self.strides,
            self.padding,
            self.dilation_rate,
        )  # every step's input convolution in one
        oh, ow = z.shape[1:3]
        z = ops.reshape(z, (n, steps, oh, ow, 4 * f))
        state, cell = self._initial_states(initial_state, (n, oh, ow, f), x.dtype)
        outputs = []
        order = range(steps - 1, -1, -1) if self.go_backwards else range(steps)
        for t in order:
            zt = z[:, t]
            if state is not None:  # (a zero state adds nothing: the first step skips it)
                zt = zt + ops.conv2d(state, self.recurrent_kernel, None, (1, 1), "same")
            i = self.recurrent_activation(zt[..., :f])
            forget = self.recurrent_activation(zt[..., f : 2 * f])
            cand = i * self.activation(zt[..., 2 * f : 3 * f])
            cell = cand if cell is None else forget * cell + cand
            state = self.recurrent_activation(zt[..., 3 * f :]) * self.activation(cell)
            if self.return_sequences:
                outputs.append(ops.reshape(state, (n, 1, oh, ow, f)))
        out = ops.concatenate(outputs, axis=1) if self.return_sequences else state
        return [out, state, cell] if self.return_state else out

    def _initial_states(self, initial_state, shape, dtype):
        """``(h, c)`` from ``initial_state``, or ``(None, None)`` for zeros."""
        if initial_state is None:
            return None, None
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else []
        if len(states) != 2:
            raise ValueError(
                f"{self._where()}: initial_state must be a list [h, c] of 2 states of shape "
                f"{shape}. Received: {initial_state!r:.80}"
            )
        out = []
        for k, s in enumerate(states):
            t = s if isinstance(s, Tensor) else Tensor(_as_array(s, dtype))
            if tuple(t.shape) != shape:
                raise ValueError(
                    f"{self._where()}: initial_state[{k}] must have shape {shape}. "
                    f"Received: shape={tuple(t.shape)}"
                )
            out.append(t)
        return tuple(out)

    def compute_output_shape(self, input_shape):
        self.check_input_shape(input_shape)
        n, steps, h, w, _ = input_shape
        pairs = zip(self.kernel_size, self.dilation_rate, strict=True)
        extents = [(k - 1) * d + 1 for k, d in pairs]
        out = []
        for size, k, s in zip((h, w), extents, self.strides, strict=True):
            o = None if size is None else conv_output_length(size, k, s, self.padding)
            if o is not None and o <= 0:
                raise ValueError(
                    f"{self._where()}: input of spatial size {(h, w)} is smaller than the kernel "
                    f"{self.kernel_size} with padding='valid'. Received: shape={tuple(input_shape)}"
                )
            out.append(o)
        state = (n, *out, self.filters)
        y = (n, steps, *out, self.filters) if self.return_sequences else state
        return [y, state, state] if self.return_state else y

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": "channels_last",
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "unit_forget_bias": self.unit_forget_bias,
            **{
                f"{part}_{kind}": module.serialize(getattr(self, f"{part}_{kind}"))
                for part in ("kernel", "recurrent", "bias")
                for kind, module in (
                    ("initializer", initializers),
                    ("regularizer", regularizers),
                    ("constraint", constraints),
                )
            },
            "dropout": 0.0,
            "recurrent_dropout": 0.0,
            "seed": self.seed,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": False,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
