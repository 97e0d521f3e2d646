"""Core layers: Input, Dense, Flatten, Dropout, Activation."""

from __future__ import annotations

import math

from hpnn import activations, regularizers
from hpnn.engine import ops
from hpnn.layers.base import KerasTensor, KernelLayer, Layer
from hpnn.random import make_rng


class InputLayer(Layer):
    """Declares the input shape of a model (without the batch axis)."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, **kwargs):
        if "input_shape" in kwargs and shape is None:
            shape = kwargs.pop("input_shape")
        super().__init__(name=name, dtype=dtype, **kwargs)
        if shape is None:
            raise ValueError("InputLayer: shape is required. Received: shape=None")
        if isinstance(shape, int):
            shape = (shape,)
        try:
            shape = tuple(None if s is None else int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(
                f"InputLayer: shape must be a tuple of ints (without the batch axis). "
                f"Received: shape={shape!r}"
            ) from None
        if any(s is not None and s <= 0 for s in shape):
            raise ValueError(f"InputLayer: shape entries must be positive. Received: shape={shape}")
        self.batch_shape = (batch_size, *shape)
        self.built = True
        self.output = KerasTensor(self.batch_shape, self.dtype, self)

    def call(self, x, training=False):
        return x

    def get_config(self):
        return {
            "shape": self.batch_shape[1:],
            "batch_size": self.batch_shape[0],
            "dtype": self.dtype,
            "name": self.name,
        }


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None):  # noqa: N802
    """Return a symbolic input of ``shape`` (without batch axis), as ``keras.Input``."""
    if batch_shape is not None:
        batch_size, shape = batch_shape[0], batch_shape[1:]
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name).output


class Dense(KernelLayer):
    """``activation(x @ kernel + bias)`` on the last axis.

    Args:
        units: output size.
        activation: name or callable (default linear).
        kernel: shape ``(in, units)``; bias ``(units,)``.
    """

    min_ndim = 2
    rank_hint = "(batch, ..., features)"

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = self._positive_int("units", units)
        self._kernel_args(
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            activity_regularizer,
        )

    def build(self, input_shape):
        in_dim = self._last_axis(input_shape)
        self._build_kernel((in_dim, self.units), in_dim, self.units)

    def call(self, x, training=False):
        return self.activation(ops.linear(x, self.kernel, self.bias))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Flatten(Layer):
    """Flatten all axes but the batch axis."""

    min_ndim = 1

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)

    def call(self, x, training=False):
        return ops.reshape(x, (x.shape[0], -1))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(s is None for s in rest) else math.prod(rest)
        return (input_shape[0], n)


class Dropout(Layer):
    """Randomly zero a fraction ``rate`` of the inputs in training (inverted dropout)."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(
                f"{self._where()}: rate must be a float in [0, 1). Received: rate={rate!r}"
            )
        if noise_shape is not None:
            raise NotImplementedError("Dropout: noise_shape is not supported yet.")
        self.rate = float(rate)
        self.seed = seed
        self._rng = make_rng(seed)

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        return ops.dropout(x, self.rate, self._rng)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class Activation(Layer):
    """Apply an activation function by name or callable."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation, self._where())

    def call(self, x, training=False):
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class ActivityRegularization(Layer):
    """Pass the input through and add ``(l1 * sum(|x|) + l2 * sum(x ** 2)) / batch``
    to the loss, as ``keras.layers.ActivityRegularization``."""

    supports_masking = True

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        if "activity_regularizer" in kwargs:
            raise TypeError(
                "ActivityRegularization: pass l1 and l2, not activity_regularizer. "
                f"Received: activity_regularizer={kwargs['activity_regularizer']!r}"
            )
        super().__init__(activity_regularizer=regularizers.L1L2(l1=l1, l2=l2), **kwargs)
        self.l1, self.l2 = self.activity_regularizer.l1, self.activity_regularizer.l2

    def call(self, x, training=False):
        return x

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        return {**config, "l1": self.l1, "l2": self.l2}
