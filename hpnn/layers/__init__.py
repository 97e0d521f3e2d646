"""Layers with Keras 3 names: ``hpnn.layers.Dense`` is ``keras.layers.Dense``."""

from hpnn.layers.base import Layer
from hpnn.layers.conv import AveragePooling2D, AvgPool2D, Conv2D, MaxPool2D, MaxPooling2D
from hpnn.layers.core import Activation, Dense, Dropout, Flatten, Input, InputLayer

__all__ = [
    "Activation",
    "AveragePooling2D",
    "AvgPool2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Input",
    "InputLayer",
    "Layer",
    "MaxPool2D",
    "MaxPooling2D",
]
