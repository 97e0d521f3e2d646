"""Models: ``Sequential``, functional models (``Model(inputs, outputs)``) and the
``Model`` base class."""

from hpnn.models.functional import Functional
from hpnn.models.model import Model
from hpnn.models.saving import load_model, model_from_json
from hpnn.models.sequential import Sequential

__all__ = ["Functional", "Model", "Sequential", "load_model", "model_from_json"]
