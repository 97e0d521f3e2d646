"""Models: ``Sequential``, functional models (``Model(inputs, outputs)``) and the
``Model`` base class."""

from hpnn.models.functional import Functional
from hpnn.models.model import Model
from hpnn.models.saving import load_model, model_from_json
from hpnn.models.sequential import Sequential


def clone_model(model):
    """A new model of the same architecture with freshly initialised weights (as
    Keras' ``clone_model``: nothing is shared, nothing is copied; uncompiled)."""
    from hpnn.models.saving import model_config, model_from_config

    return model_from_config(model_config(model))


def save_model(model, filepath, overwrite=True):
    from hpnn.saving import save_model as save

    save(model, filepath, overwrite=overwrite)


__all__ = [
    "Functional",
    "Model",
    "Sequential",
    "clone_model",
    "load_model",
    "model_from_json",
    "save_model",
]
