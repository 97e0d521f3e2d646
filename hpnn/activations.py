"""Activation functions by name, as Keras' ``activation=`` strings."""

from __future__ import annotations

import numpy as np

from hpnn.engine import ops
from hpnn.engine.tensor import as_tensor


def linear(x):
    """Identity."""
    return x


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """``max(x, 0)``; with Keras' options: values up to ``threshold`` become 0, those
    above are kept, capped at ``max_value``, and ``negative_slope * (x - threshold)``
    is added below ``threshold``."""
    if not negative_slope and max_value is None and not threshold:
        return ops.relu(x)
    x = as_tensor(x)
    if threshold:
        y = x * (x.data > threshold).astype(x.dtype)  # below the threshold: 0
    else:
        y = ops.relu(x)
    if max_value is not None:
        y = ops.clip(y, 0.0, max_value)
    if negative_slope:
        y = y - ops.relu(threshold - x) * negative_slope
    return y


def relu6(x):
    return ops.minimum(ops.relu(x), 6.0)


def sigmoid(x):
    return ops.sigmoid(x)


def tanh(x):
    return ops.tanh(x)


def softmax(x, axis=-1):
    return ops.softmax(x, axis)


def log_softmax(x, axis=-1):
    return ops.log_softmax(x, axis)


def leaky_relu(x, negative_slope=0.2):
    return ops.leaky_relu(x, negative_slope)


def elu(x, alpha=1.0):
    return ops.elu(x, alpha)


def softplus(x):
    return ops.softplus(x)


def softsign(x):
    return x / (ops.abs(x) + 1.0)


def silu(x):
    """``x * sigmoid(x)`` (``swish``)."""
    return x * ops.sigmoid(x)


swish = silu


def gelu(x, approximate=False):
    """``x * P(X <= x)`` for a standard normal X: ``0.5 x (1 + erf(x / sqrt(2)))``, or
    with ``approximate=True`` the tanh form ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715
    x^3)))`` (Keras' default is the exact one)."""
    x = as_tensor(x)
    if approximate:
        inner = (x + x * x * x * 0.044715) * float(np.sqrt(2.0 / np.pi))
        return x * (ops.tanh(inner) + 1.0) * 0.5
    return x * (ops.erf(x * float(1.0 / np.sqrt(2.0))) + 1.0) * 0.5


_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def selu(x):
    """``scale * elu(x, alpha)`` with the self-normalising constants."""
    return ops.elu(x, _SELU_ALPHA) * _SELU_SCALE


def mish(x):
    """``x * tanh(softplus(x))``."""
    return x * ops.tanh(ops.softplus(x))


def hard_sigmoid(x):
    """``relu6(x + 3) / 6``: 0 below -3, 1 above 3, linear between (Keras 3)."""
    return relu6(as_tensor(x) + 3.0) * (1.0 / 6.0)


def hard_silu(x):
    """``x * hard_sigmoid(x)`` (``hard_swish``)."""
    return x * hard_sigmoid(x)


hard_swish = hard_silu


def exponential(x):
    return ops.exp(x)


_BY_NAME = {
    "linear": linear,
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "softplus": softplus,
    "relu6": relu6,
    "softsign": softsign,
    "silu": silu,
    "swish": swish,
    "gelu": gelu,
    "selu": selu,
    "mish": mish,
    "hard_sigmoid": hard_sigmoid,
    "hard_silu": hard_silu,
    "hard_swish": hard_swish,
    "exponential": exponential,
}


def get(identifier, owner: str | None = None):
    """Return the activation function for a name, a callable, or None (linear).

    ``owner`` (e.g. ``"Dense 'dense_1'"``) starts the error message, naming the layer.
    """
    where = f"{owner}: " if owner else ""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _BY_NAME.get(identifier)
        if fn is None:
            raise ValueError(
                f"{where}Unknown activation: expected one of {sorted(_BY_NAME)} or a callable. "
                f"Received: activation={identifier!r}"
            )
        return fn
    if callable(identifier):
        return identifier
    raise ValueError(
        f"{where}activation must be a string or a callable. Received: activation={identifier!r}"
    )


def serialize(fn) -> str:
    """Return the name of a known activation (for configs)."""
    for name, f in _BY_NAME.items():
        if f is fn:
            return name
    return getattr(fn, "__name__", str(fn))
