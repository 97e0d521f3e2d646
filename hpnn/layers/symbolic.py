"""Symbolic tensors: what ``hpnn.Input`` returns and what layers called on them return
(the functional API)."""

from __future__ import annotations


class KerasTensor:
    """A symbolic tensor: what ``hpnn.Input(shape=...)`` returns, and what a layer
    called on symbolic tensors returns (the functional API). It holds a shape and a
    dtype, and records the call that made it: the layer and its symbolic inputs."""

    def __init__(self, shape, dtype, layer, inputs=(), kwargs=None, group=None, index=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self._layer = layer
        self._inputs = tuple(inputs)  # empty for an Input
        self._kwargs = dict(kwargs or {})
        # one of several outputs of one call (LSTM(return_state=True)): the call's first
        # tensor (``group``, shared by all of them) and this one's place in its outputs
        self._group, self._index = group, index
        self._n_args = len(self._inputs)  # the rest of _inputs come in through kwargs

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self._layer.name}>"

    # Arithmetic builds layers, as in Keras: ``x + attention`` is an Add layer's call,
    # ``x * 0.5`` a Rescaling's, so the graph stays made of (savable) layers.
    def _binary(self, other, merge, scale, offset, swap=False):
        from hpnn.layers import merge as merges
        from hpnn.layers.spatial import Rescaling

        if isinstance(other, KerasTensor):
            pair = [other, self] if swap else [self, other]
            return getattr(merges, merge)()(pair)
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            s, o = scale(float(other)), offset(float(other))
            return Rescaling(s, offset=o)(self)
        return NotImplemented

    def __add__(self, other):
        return self._binary(other, "Add", lambda c: 1.0, lambda c: c)

    __radd__ = __add__

    def __sub__(self, other):
        return self._binary(other, "Subtract", lambda c: 1.0, lambda c: -c)

    def __rsub__(self, other):
        return self._binary(other, "Subtract", lambda c: -1.0, lambda c: c, swap=True)

    def __mul__(self, other):
        return self._binary(other, "Multiply", lambda c: c, lambda c: 0.0)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._binary(other, "Divide", lambda c: 1.0 / c, lambda c: 0.0)

    def __neg__(self):
        from hpnn.layers.spatial import Rescaling

        return Rescaling(-1.0)(self)


def map_tensors(value, fn):
    """``value`` (a keyword argument of a call) with each KerasTensor in it, alone or in
    a list or tuple, replaced by ``fn(tensor)``."""
    if isinstance(value, KerasTensor):
        return fn(value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, KerasTensor) for v in value):
        return type(value)(fn(v) if isinstance(v, KerasTensor) else v for v in value)
    return value


def _symbolic(x) -> bool:
    if isinstance(x, KerasTensor):
        return True
    return isinstance(x, (list, tuple)) and any(isinstance(t, KerasTensor) for t in x)
