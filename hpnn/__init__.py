"""hpnn: high-performance neural networks in Python, with a Keras-shaped API.

``import hpnn as keras`` runs Keras 3 programs that use the layers hpnn has.
"""

from hpnn import (
    activations,
    allocator,
    backend,
    callbacks,
    cluster,
    constraints,
    datasets,
    explain,
    export,
    initializers,
    layers,
    losses,
    metrics,
    models,
    ops,
    optimizers,
    plot,
    regularizers,
    robust,
    saving,
    tune,
    utils,
    wrappers,
)
from hpnn.engine import Tensor, no_grad
from hpnn.layers.core import Input
from hpnn.models import Model, Sequential

allocator.configure()  # keep freed array memory for the next step (see hpnn.allocator)

__version__ = "0.1.0"

__all__ = [
    "Input",
    "Model",
    "Sequential",
    "Tensor",
    "__version__",
    "activations",
    "allocator",
    "backend",
    "callbacks",
    "cluster",
    "constraints",
    "datasets",
    "explain",
    "export",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "no_grad",
    "ops",
    "optimizers",
    "plot",
    "regularizers",
    "robust",
    "saving",
    "tune",
    "utils",
    "wrappers",
]
