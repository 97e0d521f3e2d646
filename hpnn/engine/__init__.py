"""hpnn's autodiff engine: Tensor, Function, the backward walk and the ops."""

from hpnn.engine import ops
from hpnn.engine.tensor import (
    Function,
    Tensor,
    as_tensor,
    gradients,
    is_grad_enabled,
    no_grad,
)

__all__ = ["Function", "Tensor", "as_tensor", "gradients", "is_grad_enabled", "no_grad", "ops"]
