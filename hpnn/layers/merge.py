"""Merge layers: combine a list of tensors into one (Keras' ``Add``, ``Subtract``,
``Multiply``, ``Average``, ``Maximum``, ``Minimum``, ``Concatenate``), and their
functional forms (``add([a, b])``...). They are what branches of a functional
model (``hpnn.Model(inputs, outputs)``) join with, a residual connection for one."""

from __future__ import annotations

import functools

from hpnn.engine import ops
from hpnn.layers.base import Layer


class _Merge(Layer):
    """Elementwise merges: the inputs' shapes must match, or broadcast where a size is 1
    (as in Keras); the batch axis is never broadcast."""

    _list_input = True
    supports_masking = False
    min_inputs = 1
    max_inputs = None

    def _check_count(self, shapes):
        if not isinstance(shapes, (list, tuple)) or not all(
            isinstance(s, (list, tuple)) for s in shapes
        ):
            raise TypeError(f"{self._where()}: expects a list of tensors. Received: {shapes!r}")
        n = len(shapes)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            want = (
                f"exactly {self.min_inputs}"
                if self.max_inputs == self.min_inputs
                else f"at least {self.min_inputs}"
            )
            raise ValueError(f"{self._where()}: expects {want} inputs. Received: {n}")

    def check_input_shape(self, shapes):
        self._check_count(shapes)
        self._merged_shape(shapes)

    def build_for(self, shapes) -> tuple:
        shapes = [tuple(s) for s in shapes]
        self.check_input_shape(shapes)
        self.built = True
        self.input_shape = shapes
        self.output_shape = self._merged_shape(shapes)
        return self.output_shape

    def compute_output_shape(self, shapes):
        return self._merged_shape([tuple(s) for s in shapes])

    def _merged_shape(self, shapes):
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise ValueError(
                f"{self._where()}: the inputs must have the same rank. Received: shapes={shapes}"
            )
        out = [shapes[0][0]]
        for axis in range(1, len(shapes[0])):
            sizes = {s[axis] for s in shapes} - {None}
            known = sizes - {1}
            if len(known) > 1:
                raise ValueError(
                    f"{self._where()}: the input shapes do not match (or broadcast) on axis "
                    f"{axis}. Received: shapes={shapes}"
                )
            if known:
                out.append(known.pop())
            elif any(s[axis] is None for s in shapes):
                out.append(None)
            else:
                out.append(1)
        return tuple(out)

    def call(self, inputs, training=False):
        return functools.reduce(self._combine, inputs)


class Add(_Merge):
    """The sum of the inputs."""

    _combine = staticmethod(ops.add)


class Subtract(_Merge):
    """The first input minus the second (exactly two inputs)."""

    min_inputs = max_inputs = 2
    _combine = staticmethod(ops.sub)


class Multiply(_Merge):
    """The elementwise product of the inputs."""

    _combine = staticmethod(ops.mul)


class Maximum(_Merge):
    """The elementwise maximum of the inputs."""

    _combine = staticmethod(ops.maximum)


class Minimum(_Merge):
    """The elementwise minimum of the inputs."""

    _combine = staticmethod(ops.minimum)


class Divide(_Merge):
    """The first input divided by the second (``x / y`` on symbolic tensors)."""

    min_inputs = max_inputs = 2
    _combine = staticmethod(ops.div)


class Average(_Merge):
    """The elementwise mean of the inputs."""

    def call(self, inputs, training=False):
        return functools.reduce(ops.add, inputs) * (1.0 / len(inputs))


class Concatenate(_Merge):
    """The inputs joined along ``axis`` (default the last); the other axes must match."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(f"Concatenate: axis must be an int. Received: axis={axis!r}")
        self.axis = axis

    def _merged_shape(self, shapes):
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise ValueError(
                f"{self._where()}: the inputs must have the same rank. Received: shapes={shapes}"
            )
        axis = self.axis % rank if -rank <= self.axis < rank else None
        if axis is None or axis == 0:
            raise ValueError(
                f"{self._where()}: axis {self.axis} is not a feature axis of inputs of rank "
                f"{rank}. Received: shapes={shapes}"
            )
        out = list(shapes[0])
        for i in range(1, rank):
            if i == axis:
                sizes = [s[i] for s in shapes]
                out[i] = None if None in sizes else sum(sizes)
                continue
            known = {s[i] for s in shapes} - {None}
            if len(known) > 1:
                raise ValueError(
                    f"{self._where()}: to concatenate on axis {self.axis}, the other axes must "
                    f"match. Received: shapes={shapes}"
                )
            out[i] = known.pop() if known else None
        return tuple(out)

    def call(self, inputs, training=False):
        return ops.concatenate(inputs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _functional(cls):
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)

    merge.__name__ = cls.__name__.lower()
    merge.__doc__ = f"``{cls.__name__}(**kwargs)(inputs)``."
    return merge


add = _functional(Add)
subtract = _functional(Subtract)
multiply = _functional(Multiply)
average = _functional(Average)
maximum = _functional(Maximum)
minimum = _functional(Minimum)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


class Dot(_Merge):
    """The dot product of two tensors along ``axes`` (per sample), as Keras' ``Dot``:
    ``(batch, d)`` and ``(batch, d)`` give ``(batch, 1)``; ``(batch, n, d)`` and
    ``(batch, m, d)`` with ``axes=2`` give ``(batch, n, m)``. ``normalize=True``
    takes the cosine similarity."""

    min_inputs = max_inputs = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = (axes, axes) if isinstance(axes, int) else tuple(axes)
        if len(pair) != 2 or not all(isinstance(a, int) for a in pair):
            raise ValueError(f"Dot: axes must be an int or a pair of ints. Received: {axes!r}")
        self.axes, self.normalize = pair, bool(normalize)

    def _resolved(self, shapes):
        out = []
        for a, s in zip(self.axes, shapes, strict=True):
            if len(s) not in (2, 3):
                raise ValueError(
                    f"{self._where()}: inputs of rank 2 or 3 only. Received: shapes={shapes}"
                )
            axis = a % len(s)
            if axis == 0:
                raise ValueError(f"{self._where()}: axes must not include the batch axis.")
            out.append(axis)
        return out

    def _merged_shape(self, shapes):
        a1, a2 = self._resolved(shapes)
        d1, d2 = shapes[0][a1], shapes[1][a2]
        if d1 is not None and d2 is not None and d1 != d2:
            raise ValueError(
                f"{self._where()}: the dot axes have sizes {d1} and {d2}. Received: shapes={shapes}"
            )
        rest1 = [d for i, d in enumerate(shapes[0]) if i not in (0, a1)]
        rest2 = [d for i, d in enumerate(shapes[1]) if i not in (0, a2)]
        return (shapes[0][0], *(rest1 + rest2 or [1]))

    def call(self, inputs, training=False):
        x, y = inputs
        a1, a2 = self._resolved([x.shape, y.shape])
        if self.normalize:
            x = x / ops.maximum(ops.sqrt(ops.sum(x * x, axis=a1, keepdims=True)), 1e-12)
            y = y / ops.maximum(ops.sqrt(ops.sum(y * y, axis=a2, keepdims=True)), 1e-12)
        if x.ndim == 2:  # (B, d) . (B, d) -> (B, 1)
            return ops.sum(x * y, axis=1, keepdims=True)
        # (B, n, d) @ (B, d, m): the dot axis last on the left, second on the right
        left = x if a1 == 2 else ops.transpose(x, (0, 2, 1))
        right = y if a2 == 1 else ops.transpose(y, (0, 2, 1))
        return ops.matmul(left, right)

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def dot(inputs, axes, normalize=False, **kwargs):
    """``Dot(axes, normalize, **kwargs)(inputs)``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
