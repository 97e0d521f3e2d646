"""Layer constructor arguments: Keras' tuple rule, and the kernel layers' weight options
serialized."""

from __future__ import annotations

import numpy as np

from hpnn import constraints, initializers, regularizers


def weight_config(layer) -> dict:
    """The initializer and regularizer arguments of a layer with a kernel, serialized."""
    return {
        "kernel_initializer": initializers.serialize(layer.kernel_initializer),
        "bias_initializer": initializers.serialize(layer.bias_initializer),
        "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
        "bias_regularizer": regularizers.serialize(layer.bias_regularizer),
        "kernel_constraint": constraints.serialize(getattr(layer, "kernel_constraint", None)),
        "bias_constraint": constraints.serialize(getattr(layer, "bias_constraint", None)),
    }


def normalize_tuple(value, n: int, name: str, owner: str) -> tuple:
    """Turn an int or a sequence of ``n`` positive ints into a tuple (Keras' rule)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        t = (int(value),) * n
    else:
        try:
            t = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            t = ()
    if len(t) != n or any(v <= 0 for v in t):
        raise ValueError(
            f"{owner}: {name} must be a positive int or a tuple of {n} positive ints. "
            f"Received: {name}={value!r}"
        )
    return t
