"""Explanations of a prediction: saliency, SmoothGrad, integrated gradients, Grad-CAM, occlusion.

Each function takes a model and a batch ``x``, explains the output of one class
per sample (by default the predicted one), and returns NumPy arrays; the model's
weights are never changed. Pictures: :func:`save_overlay` and
:func:`plot_explanations` (the ``plot`` extra); command line: ``hpnn explain``.

>>> ig = hpnn.explain.integrated_gradients(model, x_test[:4], steps=64)  # doctest: +SKIP
>>> cam = hpnn.explain.grad_cam(model, x_test[:4], layer="conv2d_1")     # doctest: +SKIP
"""

from hpnn.explain.attribution import (
    Attribution,
    integrated_gradients,
    occlusion,
    saliency,
    smoothgrad,
)
from hpnn.explain.cli import cli_main
from hpnn.explain.gradcam import grad_cam, resize_bilinear
from hpnn.explain.plot import plot_explanations, save_overlay

__all__ = [
    "Attribution",
    "cli_main",
    "grad_cam",
    "integrated_gradients",
    "occlusion",
    "plot_explanations",
    "resize_bilinear",
    "saliency",
    "save_overlay",
    "smoothgrad",
]
