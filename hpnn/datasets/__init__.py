"""Small built-in datasets with a Keras-compatible ``load_data()``."""

from . import fashion_mnist, mnist

__all__ = ["fashion_mnist", "mnist"]
