"""Weight penalties with Keras names: ``L1``, ``L2``, ``L1L2`` and their strings."""

from __future__ import annotations

from hpnn.engine import ops


class Regularizer:
    """Maps a weight tensor to a scalar penalty tensor added to the loss."""

    def __call__(self, x):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x ** 2)``."""

    def __init__(self, l1=0.0, l2=0.0):
        for name, v in (("l1", l1), ("l2", l2)):
            if not isinstance(v, (int, float)) or v < 0:
                raise ValueError(
                    f"{type(self).__name__}: {name} must be a number >= 0. Received: {name}={v!r}"
                )
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, x):
        penalty = None
        if self.l1:
            penalty = ops.sum(ops.abs(x)) * self.l1
        if self.l2:
            p2 = ops.sum(x * x) * self.l2
            penalty = p2 if penalty is None else penalty + p2
        return penalty if penalty is not None else ops.sum(x) * 0.0

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2

_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def serialize(regularizer):
    """A JSON-able form that ``get`` turns back into the regularizer."""
    if regularizer is None or isinstance(regularizer, str):
        return regularizer
    if isinstance(regularizer, dict) and "class_name" in regularizer:
        return regularizer  # already serialized (a layer loaded from a config keeps it)
    if isinstance(regularizer, Regularizer):
        return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
    raise ValueError(f"Cannot serialize regularizer {regularizer!r}: use a built-in one.")


def get(identifier):
    """Return a regularizer from None, a name, an instance, a config or a callable."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in ("L1", "L2", "L1L2"):
        return globals()[identifier["class_name"]](**identifier.get("config", {}))
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if callable(identifier) and not isinstance(identifier, str):
        return identifier
    raise ValueError(
        f"Unknown regularizer: expected one of {sorted(_BY_NAME)} or a Regularizer. "
        f"Received: regularizer={identifier!r}"
    )
