"""Models: ``Sequential`` and the ``Model`` base class."""

from hpnn.models.model import Model
from hpnn.models.sequential import Sequential

__all__ = ["Model", "Sequential"]
