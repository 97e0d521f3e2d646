"""Core layers: Input, Dense, Flatten, Dropout, Activation."""

from __future__ import annotations

import math

from hpnn import activations, regularizers
from hpnn.engine import ops
from hpnn.engine.tensor import Tensor
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
        kernel_constraint=None,
        bias_constraint=None,
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
            kernel_constraint,
            bias_constraint,
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
            noise_shape = tuple(noise_shape)
            if not all(d is None or (isinstance(d, int) and d >= 1) for d in noise_shape):
                raise ValueError(
                    f"{self._where()}: noise_shape entries must be None or ints >= 1. "
                    f"Received: noise_shape={noise_shape!r}"
                )
        self.noise_shape = noise_shape
        self.rate = float(rate)
        self.seed = seed
        self._rng = make_rng(seed)

    def _noise_shape(self, shape):
        """Keras' rule: None entries take the input's size; the rest must broadcast."""
        if self.noise_shape is None:
            return None
        if len(self.noise_shape) != len(shape):
            raise ValueError(
                f"{self._where()}: noise_shape {self.noise_shape} must have the input's rank "
                f"{len(shape)}. Received: shape={tuple(shape)}"
            )
        out = tuple(s if d is None else d for d, s in zip(self.noise_shape, shape, strict=True))
        if any(d not in (1, s) for d, s in zip(out, shape, strict=True)):
            raise ValueError(
                f"{self._where()}: noise_shape {self.noise_shape} does not broadcast to the "
                f"input. Received: shape={tuple(shape)}"
            )
        return out

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        return ops.dropout(x, self.rate, self._rng, self._noise_shape(x.shape))

    def get_config(self):
        config = {**super().get_config(), "rate": self.rate, "seed": self.seed}
        if self.noise_shape is not None:
            config["noise_shape"] = self.noise_shape
        return config


class SpatialDropout1D(Dropout):
    """Dropout of whole channels of ``(batch, steps, channels)``: one draw per sample and
    channel, the same at every step (Keras' ``SpatialDropout1D``)."""

    input_ndim = 3

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)

    def _noise_shape(self, shape):
        return (shape[0], 1, shape[2])

    def get_config(self):
        config = super().get_config()
        config.pop("noise_shape", None)
        config.pop("trainable")  # (Keras' SpatialDropout takes no trainable: it has no weights)
        return config


class SpatialDropout2D(SpatialDropout1D):
    """Dropout of whole feature maps of ``(batch, height, width, channels)`` (Keras'
    ``SpatialDropout2D``, channels-last)."""

    input_ndim = 4

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        if data_format not in (None, "channels_last"):
            raise ValueError(
                "SpatialDropout2D: only data_format='channels_last' is supported. "
                f"Received: data_format={data_format!r}"
            )
        super().__init__(rate, seed=seed, **kwargs)

    def _noise_shape(self, shape):
        return (shape[0], 1, 1, shape[3])


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


class Lambda(Layer):
    """Wrap a function of tensors as a layer (Keras' ``Lambda``):
    ``Lambda(lambda x: x * 2)``. It runs on hpnn tensors, so it may use ``hpnn.engine.ops``
    and the tensor operators, and back-propagation goes through it.

    ``output_shape`` (without the batch axis) is needed only where the function changes
    the shape and hpnn cannot find it by calling it on zeros. A model with a Lambda
    saves its function by module and name when that is importable; a lambda or a
    closure cannot be saved (write a ``Layer`` subclass for that).
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(function, str):
            function = _import_function(function, self._where())
        if not callable(function):
            raise TypeError(f"{self._where()}: function must be callable. Received: {function!r}")
        if mask is not None:
            raise NotImplementedError(f"{self._where()}: mask= is not supported yet.")
        self.function, self.arguments = function, dict(arguments or {})
        self._output_shape = None if output_shape is None else tuple(output_shape)

    def call(self, x, training=False):
        return self.function(x, **self.arguments)

    def compute_output_shape(self, input_shape):
        if self._output_shape is not None:
            return (input_shape[0], *self._output_shape)
        import numpy as np

        from hpnn.engine import Tensor, no_grad

        probe = np.zeros([1 if d is None else d for d in input_shape], dtype=self.dtype)
        with no_grad():
            out = self.function(Tensor(probe), **self.arguments)
        return (input_shape[0], *tuple(out.shape)[1:])

    def get_config(self):
        fn = self.function
        name = getattr(fn, "__qualname__", "")
        if "<lambda>" in name or "<locals>" in name or not getattr(fn, "__module__", None):
            raise ValueError(
                f"{self._where()}: its function {name or fn!r} cannot be saved (a lambda or a "
                "closure); define it at module level, or write a Layer subclass."
            )
        return {
            **super().get_config(),
            "function": f"{fn.__module__}:{name}",
            "output_shape": self._output_shape,
            "arguments": self.arguments,
        }


def _import_function(path: str, owner: str):
    import importlib

    module, _, name = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{owner}: cannot import the function {path!r} ({e}).") from None
    return obj


class Identity(Layer):
    """The input, unchanged (masks pass through)."""

    supports_masking = True

    def call(self, x, training=False):
        return x


class Masking(Layer):
    """Mask the time steps whose features all equal ``mask_value``: they are zeroed,
    and the mask (True = a real step) goes to the layers after it (an LSTM skips the
    masked steps), as Keras' ``Masking``."""

    supports_masking = True
    min_ndim = 3
    rank_hint = "(batch, time steps, features)"

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def _keep(self, data):
        return (data != self.mask_value).any(axis=-1)

    def call(self, x, training=False):
        keep = self._keep(x.data)
        return x * keep[..., None].astype(x.dtype)

    def compute_mask(self, inputs, mask=None):
        data = inputs.data if isinstance(inputs, Tensor) else inputs
        return self._keep(data)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
