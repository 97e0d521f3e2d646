"""Reshaping layers: Reshape, Permute, RepeatVector, and the TimeDistributed wrapper."""

from __future__ import annotations

import math

from hpnn.engine import ops
from hpnn.layers.base import Layer


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (without the batch axis; one entry may be -1).

    >>> Reshape((3, 4))(np.zeros((2, 12))).shape
    (2, 3, 4)
    """

    min_ndim = 1

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target = tuple(int(s) for s in target_shape)
        except (TypeError, ValueError):
            target = None
        if target is None or target.count(-1) > 1 or any(s == 0 or s < -1 for s in target):
            raise ValueError(
                f"{self._where()}: target_shape must be a tuple of positive ints with at most "
                f"one -1. Received: target_shape={target_shape!r}"
            )
        self.target_shape = target

    def _resolve(self, input_shape):
        size = None if any(s is None for s in input_shape[1:]) else math.prod(input_shape[1:])
        known = math.prod(s for s in self.target_shape if s != -1)
        if size is None:
            return self.target_shape
        if -1 in self.target_shape:
            if size % known:
                size = -1  # report below
            else:
                return tuple(size // known if s == -1 else s for s in self.target_shape)
        if size != known:
            raise ValueError(
                f"{self._where()}: cannot reshape samples of shape {tuple(input_shape[1:])} "
                f"to target_shape={self.target_shape}. Received: shape={tuple(input_shape)}"
            )
        return self.target_shape

    def compute_output_shape(self, input_shape):
        shape = self._resolve(input_shape)
        return (input_shape[0], *(None if s == -1 else s for s in shape))

    def build(self, input_shape):
        self._resolve(input_shape)
        self.built = True

    def call(self, x, training=False):
        return ops.reshape(x, (x.shape[0], *self._resolve(x.shape)))

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Permute(Layer):
    """Permute the non-batch axes: ``dims`` is a permutation of ``1..rank-1`` (1-indexed).

    >>> Permute((2, 1))(np.zeros((2, 3, 4))).shape
    (2, 4, 3)
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(
                f"{self._where()}: dims must be a permutation of 1..{len(self.dims)} "
                f"(the batch axis 0 stays first). Received: dims={dims!r}"
            )
        self.input_ndim = len(self.dims) + 1
        self.rank_hint = f"(batch, {len(self.dims)} more axes) for dims={self.dims}"

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def call(self, x, training=False):
        return ops.transpose(x, (0, *self.dims))

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


class RepeatVector(Layer):
    """Repeat a ``(batch, features)`` input ``n`` times: ``(batch, n, features)``."""

    input_ndim = 2
    rank_hint = "(batch, features)"

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = self._positive_int("n", n)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def call(self, x, training=False):
        n, f = x.shape
        return ops.broadcast_to(ops.reshape(x, (n, 1, f)), (n, self.n, f))

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class TimeDistributed(Layer):
    """Apply ``layer`` to every time step: ``(batch, T, ...) -> (batch, T, ...')``.

    The steps are folded into the batch, so the wrapped layer runs once on
    ``(batch * T, ...)``; its weights are shared across steps and are this layer's.

    >>> TimeDistributed(Dense(5))(np.zeros((2, 3, 4), np.float32)).shape
    (2, 3, 5)
    """

    min_ndim = 3
    rank_hint = "(batch, timesteps, ...)"
    supports_masking = True

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise ValueError(f"{self._where()}: layer must be a Layer. Received: layer={layer!r}")
        self.layer = layer

    def build(self, input_shape):
        self.layer.build_for((None, *input_shape[2:]))
        self._weights = self.layer.weights
        self.built = True

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((input_shape[0], *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])

    def call(self, x, training=False):
        n, t = x.shape[:2]
        y = self.layer(ops.reshape(x, (n * t, *x.shape[2:])), training=training)
        return ops.reshape(y, (n, t, *y.shape[1:]))

    def get_config(self):
        return {
            **super().get_config(),
            "layer": {"class_name": type(self.layer).__name__, "config": self.layer.get_config()},
        }

    @classmethod
    def from_config(cls, config):
        from hpnn import layers

        config = dict(config)
        spec = config.pop("layer")
        return cls(getattr(layers, spec["class_name"]).from_config(spec["config"]), **config)
