"""Activation functions by name, as Keras' ``activation=`` strings."""

from __future__ import annotations

from hpnn.engine import ops


def linear(x):
    """Identity."""
    return x


def relu(x):
    return ops.relu(x)


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
