"""Weight initializers with Keras names and semantics.

Each is called as ``init(shape, dtype)`` and returns a NumPy array. Fan-in and
fan-out follow Keras: for a kernel of shape ``(..., in, out)`` the receptive field
(product of the leading dims) multiplies both.
"""

from __future__ import annotations

import math

import numpy as np

from hpnn.backend import floatx
from hpnn.random import make_rng


def _fans(shape):
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: subclasses implement ``__call__(shape, dtype=None)``."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return np.zeros(shape, dtype=dtype or floatx())


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return np.ones(shape, dtype=dtype or floatx())


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, dtype=dtype or floatx())

    def get_config(self):
        return {"value": self.value}


def _truncated_normal(rng, shape, std, mean=0.0):
    """Normal draws of ``std`` about ``mean``, each one beyond 2 ``std`` drawn again."""
    a = rng.normal(mean, std, size=shape)
    bad = np.abs(a - mean) > 2 * std
    while bad.any():
        a[bad] = rng.normal(mean, std, size=int(bad.sum()))
        bad = np.abs(a - mean) > 2 * std
    return a


class _Random(Initializer):
    def __init__(self, seed=None):
        self.seed = seed
        self._rng = make_rng(seed)

    def get_config(self):
        return {"seed": self.seed if isinstance(self.seed, int) else None}


class RandomNormal(_Random):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=None):
        a = self._rng.normal(self.mean, self.stddev, size=shape)
        return a.astype(dtype or floatx())


class RandomUniform(_Random):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype=None):
        return self._rng.uniform(self.minval, self.maxval, size=shape).astype(dtype or floatx())


class TruncatedNormal(_Random):
    """Normal draws of ``stddev`` about ``mean``, those beyond 2 ``stddev`` drawn again
    (as ``keras.initializers.TruncatedNormal``: the values' spread is about 0.88
    ``stddev``)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        if not stddev > 0:
            raise ValueError(f"TruncatedNormal: stddev must be > 0. Received: stddev={stddev!r}")
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=None):
        a = _truncated_normal(self._rng, shape, self.stddev, self.mean)
        return a.astype(dtype or floatx())

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class VarianceScaling(_Random):
    """Keras' VarianceScaling: ``scale / fan`` variance, normal (truncated) or uniform."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be fan_in, fan_out or fan_avg. Received: mode={mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(
                "distribution must be truncated_normal, untruncated_normal or uniform. "
                f"Received: distribution={distribution!r}"
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            lim = math.sqrt(3.0 * var)
            a = self._rng.uniform(-lim, lim, size=shape)
        elif self.distribution == "untruncated_normal":
            a = self._rng.normal(0.0, math.sqrt(var), size=shape)
        else:
            # std of a normal truncated at 2 std is 0.8796... of the untruncated one
            a = _truncated_normal(self._rng, shape, math.sqrt(var) / 0.87962566103423978)
        return a.astype(dtype or floatx())

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
        }


class _FixedVarianceScaling(VarianceScaling):
    def get_config(self):
        return {"seed": self.seed if isinstance(self.seed, int) else None}


class GlorotUniform(_FixedVarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "uniform", seed)


class GlorotNormal(_FixedVarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)


class HeUniform(_FixedVarianceScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "uniform", seed)


class HeNormal(_FixedVarianceScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)


class LecunNormal(_FixedVarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "truncated_normal", seed)


class LecunUniform(_FixedVarianceScaling):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(3 / fan_in)``."""

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "uniform", seed)


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; a rectangular one has ones
    on its main diagonal), as ``keras.initializers.Identity``."""

    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(
                "Identity: the identity initializer makes 2-D matrices only. "
                f"Received: shape={tuple(shape)} of rank {len(shape)}"
            )
        return (self.gain * np.eye(*shape)).astype(dtype or floatx())

    def get_config(self):
        return {"gain": self.gain}


IdentityInitializer = Identity


class Orthogonal(_Random):
    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def __call__(self, shape, dtype=None):
        rows = math.prod(shape[:-1])
        cols = shape[-1]
        a = self._rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q[:rows, :cols]).reshape(shape).astype(dtype or floatx())


OrthogonalInitializer = Orthogonal
# Keras' lowercase names of the classes
constant, zeros, ones, identity = Constant, Zeros, Ones, Identity
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
glorot_normal, glorot_uniform, he_normal, he_uniform = (
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
)
lecun_normal, lecun_uniform, orthogonal = LecunNormal, LecunUniform, Orthogonal
variance_scaling = VarianceScaling

_ALIASES = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_normal": LecunNormal,
    "lecun_uniform": LecunUniform,
    "truncated_normal": TruncatedNormal,
    "identity": Identity,
    "orthogonal": Orthogonal,
    "variance_scaling": VarianceScaling,
}


def serialize(initializer):
    """A JSON-able form that ``get`` turns back into the initializer."""
    if isinstance(initializer, str) or initializer is None:
        return initializer
    if isinstance(initializer, dict) and "class_name" in initializer:
        return initializer  # already serialized (a layer loaded from a config keeps it)
    if isinstance(initializer, Initializer):
        return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
    raise ValueError(f"Cannot serialize initializer {initializer!r}: use a built-in one.")


def get(identifier) -> Initializer:
    """Return an initializer from a name, an instance, or a callable."""
    if isinstance(identifier, Initializer) or (
        callable(identifier)
        and not isinstance(identifier, str)
        and not isinstance(identifier, type)
    ):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = globals().get(identifier["class_name"])
        if isinstance(cls, type) and issubclass(cls, Initializer):
            return cls(**identifier.get("config", {}))
        return deserialize(identifier)
    if isinstance(identifier, str):
        key = identifier.lower()
        cls = _ALIASES.get(key) or next(
            (c for c in _ALIASES.values() if c.__name__.lower() == key), None
        )
        if cls is not None:
            return cls()
    raise ValueError(
        f"Unknown initializer: expected one of {sorted(_ALIASES)} or an Initializer. "
        f"Received: initializer={identifier!r}"
    )


def deserialize(config, custom_objects=None):
    """An initializer from ``serialize``'s form (or Keras' entry, or a name); custom and
    registered classes are found by name."""
    if isinstance(config, str) or (
        isinstance(config, dict) and isinstance(globals().get(config.get("class_name")), type)
    ):
        return get(config)
    from hpnn.saving import deserialize_keras_object

    found = deserialize_keras_object(config, custom_objects)
    if isinstance(found, dict):
        raise ValueError(f"Unknown initializer entry. Received: {config!r}")
    return found
