"""Activation layers with arguments, as Keras': ReLU, LeakyReLU, ELU, Softmax, PReLU."""

from __future__ import annotations

import numpy as np

from hpnn import activations, initializers, regularizers
from hpnn.engine import ops
from hpnn.layers.base import Layer


def _number(value, name: str, owner: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{owner}: {name} must be a number. Received: {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}. Received: {name}={value!r}")
    return float(value)


class ReLU(Layer):
    """``activations.relu`` with ``max_value``, ``negative_slope`` and ``threshold``."""

    supports_masking = True

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        where = self._where()
        self.max_value = None if max_value is None else _number(max_value, "max_value", where, 0)
        self.negative_slope = _number(negative_slope, "negative_slope", where, 0)
        self.threshold = _number(threshold, "threshold", where, 0)

    def call(self, x, training=False):
        return activations.relu(x, self.negative_slope, self.max_value, self.threshold)

    def get_config(self):
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


class LeakyReLU(Layer):
    """``x`` above 0, ``negative_slope * x`` below (Keras' default slope here: 0.3)."""

    supports_masking = True

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = _number(negative_slope, "negative_slope", self._where(), 0)

    def call(self, x, training=False):
        return ops.leaky_relu(x, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(Layer):
    """``x`` above 0, ``alpha * (exp(x) - 1)`` below."""

    supports_masking = True

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number(alpha, "alpha", self._where())

    def call(self, x, training=False):
        return ops.elu(x, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(Layer):
    """Softmax over ``axis`` (an int). With ``mask=`` (True = keep), masked entries get
    probability 0, as Keras'."""

    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"{self._where()}: axis must be an int. Received: axis={axis!r}")
        self.axis = int(axis)

    def build(self, input_shape):
        if (
            not -len(input_shape) <= self.axis < len(input_shape)
            or self.axis % len(input_shape) == 0
        ):
            raise ValueError(
                f"{self._where()}: axis {self.axis} is not a feature axis of inputs of "
                f"shape {tuple(input_shape)}"
            )
        self.built = True

    def call(self, x, mask=None, training=False):
        if mask is not None:
            keep = np.asarray(mask, dtype=bool)
            x = x + np.where(keep, 0.0, -1e9).astype(x.dtype)  # as Keras: a large negative
        return ops.softmax(x, self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class PReLU(Layer):
    """``x`` above 0, ``alpha * x`` below, with ``alpha`` learned per feature (one per
    input element, batch excluded); ``shared_axes`` share it along those axes."""

    def __init__(
        self,
        alpha_initializer="zeros",
        alpha_regularizer=None,
        alpha_constraint=None,
        shared_axes=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if alpha_constraint is not None:
            raise NotImplementedError(f"{self._where()}: alpha_constraint is not supported.")
        self.alpha_initializer = alpha_initializer
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if shared_axes is None:
            self.shared_axes = None
        elif isinstance(shared_axes, (int, np.integer)):
            self.shared_axes = [int(shared_axes)]
        else:
            self.shared_axes = [int(a) for a in shared_axes]

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for a in self.shared_axes or ():
            if not 1 <= a <= len(shape):
                raise ValueError(
                    f"{self._where()}: shared_axes must name axes 1..{len(shape)} of inputs "
                    f"of shape {tuple(input_shape)}. Received: shared_axes={self.shared_axes}"
                )
            shape[a - 1] = 1
        if any(d is None for d in shape):
            raise ValueError(
                f"{self._where()}: every non-shared axis must be known to size alpha. "
                f"Received: shape={tuple(input_shape)}, shared_axes={self.shared_axes}"
            )
        self.alpha = self.add_weight(
            tuple(shape),
            initializer=self.alpha_initializer,
            name="alpha",
            regularizer=self.alpha_regularizer,
        )
        self.built = True

    def call(self, x, training=False):
        return ops.relu(x) - self.alpha * ops.relu(-x)

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_initializer": initializers.serialize(initializers.get(self.alpha_initializer)),
            "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
            "shared_axes": self.shared_axes,
        }
