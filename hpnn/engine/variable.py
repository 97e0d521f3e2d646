"""Variable: a named, trainable leaf tensor that layers own and optimizers update."""

from __future__ import annotations

import numpy as np

from hpnn.backend import to_numpy, xp_default
from hpnn.engine import step_context
from hpnn.engine.tensor import Tensor

_grad_slot = Tensor.grad  # the slot that holds a Tensor's .grad


class Variable(Tensor):
    """A leaf tensor holding a weight.

    Args:
        value: the initial array.
        name: e.g. ``"kernel"``; ``path`` adds the owning layer's name.
        trainable: whether optimizers update it (and it gets a gradient).
    """

    __slots__ = ("constraint", "path", "regularizer", "trainable")

    def __init__(
        self, value, name: str = "variable", trainable: bool = True, path: str | None = None
    ):
        xp = xp_default()
        # C order always: the optimizers' compiled updates and the ops' matmuls take the
        # contiguous fast paths (an orthogonal initialiser's QR comes out in F order).
        super().__init__(xp.asarray(value, order="C"), requires_grad=trainable, name=name)
        self.trainable = trainable
        self.path = path or name
        self.regularizer = None
        self.constraint = None  # applied after each optimizer update (hpnn.constraints)

    @property
    def value(self):
        return self.data

    # In a part of a split step (``hpnn.engine.step_context``) each part has its own
    # .grad of every weight: the parts' threads share the Variable objects.
    @property
    def grad(self):
        sink = step_context.grad_sink()
        return _grad_slot.__get__(self) if sink is None else sink.get(id(self))

    @grad.setter
    def grad(self, value):
        sink = step_context.grad_sink()
        if sink is None:
            _grad_slot.__set__(self, value)
        else:
            sink[id(self)] = value

    def assign(self, value) -> None:
        """Copy ``value`` into the variable in place (shape must match)."""
        arr = value.data if isinstance(value, Tensor) else value
        if tuple(np.shape(arr)) != self.shape:
            raise ValueError(
                f"Variable '{self.path}': expected a value of shape {self.shape}. "
                f"Received: shape={tuple(np.shape(arr))}"
            )
        self.data[...] = xp_default().asarray(arr, dtype=self.dtype)

    def __repr__(self) -> str:
        value = to_numpy(self.data)
        return (
            f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}, value={value!r}>"
        )
