"""Weight constraints with Keras names (``keras.constraints``): applied to a weight
after every optimizer update, as Keras does (``kernel_constraint=``, ``bias_constraint=``
on ``Dense`` and the convolutions).

A constraint maps the weight's array to the constrained array; ``axis`` names the
axes a norm runs over (for a ``Dense`` kernel ``(inputs, units)``, ``axis=0`` gives
one norm per unit; for a ``Conv2D`` kernel ``(h, w, in, out)``, Keras' advice is
``axis=[0, 1, 2]``)."""

from __future__ import annotations

from hpnn.backend import get_xp

EPSILON = 1e-7


class Constraint:
    def __call__(self, w):
        return w

    def get_config(self) -> dict:
        return {}


def _norms(w, axis):
    xp = get_xp(w)
    axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    return xp.sqrt((w * w).sum(axis=axis, keepdims=True))


def _axis(axis):
    return [int(a) for a in axis] if isinstance(axis, (list, tuple)) else int(axis)


class MaxNorm(Constraint):
    """Scale the weights whose norm along ``axis`` exceeds ``max_value`` down to it."""

    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = float(max_value), _axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = get_xp(w).clip(norms, 0, self.max_value)
        return w * (desired / (EPSILON + norms)).astype(w.dtype)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Negative weights become 0."""

    def __call__(self, w):
        return w * (w >= 0).astype(w.dtype)


class UnitNorm(Constraint):
    """Scale the weights to norm 1 along ``axis``."""

    def __init__(self, axis=0):
        self.axis = _axis(axis)

    def __call__(self, w):
        return w / (EPSILON + _norms(w, self.axis)).astype(w.dtype)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Move the norms along ``axis`` into ``[min_value, max_value]``, by the fraction
    ``rate`` per update (1: at once)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value = float(min_value), float(max_value)
        self.rate, self.axis = float(rate), _axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        clipped = get_xp(w).clip(norms, self.min_value, self.max_value)
        desired = self.rate * clipped + (1 - self.rate) * norms
        return w * (desired / (EPSILON + norms)).astype(w.dtype)

    def get_config(self):
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            "axis": self.axis,
        }


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm
_BY_NAME = {
    "max_norm": MaxNorm,
    "non_neg": NonNeg,
    "unit_norm": UnitNorm,
    "min_max_norm": MinMaxNorm,
    "MaxNorm": MaxNorm,
    "NonNeg": NonNeg,
    "UnitNorm": UnitNorm,
    "MinMaxNorm": MinMaxNorm,
}


def serialize(constraint):
    if constraint is None:
        return None
    if isinstance(constraint, Constraint) and type(constraint).__name__ in _BY_NAME:
        return {"class_name": type(constraint).__name__, "config": constraint.get_config()}
    raise ValueError(f"Cannot serialize constraint {constraint!r}: use a built-in one.")


def get(identifier):
    """A constraint from None, a name, an instance, a config or a callable."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_NAME:
        return _BY_NAME[identifier["class_name"]](**identifier.get("config", {}))
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if callable(identifier):
        return identifier
    raise ValueError(
        f"Unknown constraint: expected one of {sorted(_BY_NAME)}, a Constraint or a "
        f"callable. Received: {identifier!r}"
    )
