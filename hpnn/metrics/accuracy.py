"""The accuracies and the squared/absolute errors: running means of a per-sample value."""

from __future__ import annotations

import numpy as np

from hpnn.metrics.base import Metric, _labels


class CategoricalAccuracy(Metric):
    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(name)

    def values(self, y_true, y_pred):
        return np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)


class SparseCategoricalAccuracy(Metric):
    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(name)

    def values(self, y_true, y_pred):
        return _labels(y_true, y_pred).astype(np.int64) == np.argmax(y_pred, axis=-1)


class BinaryAccuracy(Metric):
    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(name)
        self.threshold = threshold

    def get_config(self) -> dict:
        return {"name": self.name, "threshold": self.threshold}

    def values(self, y_true, y_pred):
        y = np.asarray(y_true)
        if y.ndim == y_pred.ndim - 1:
            y = y[..., None]
        return ((y_pred > self.threshold) == (y > 0.5)).mean(axis=-1)


class Accuracy(Metric):
    """Exact match of ``y_true`` and ``y_pred`` (Keras' ``Accuracy`` class)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name)

    def values(self, y_true, y_pred):
        return np.asarray(y_true) == np.asarray(y_pred)


class MeanSquaredError(Metric):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(name)

    def values(self, y_true, y_pred):
        return ((y_pred - np.reshape(y_true, y_pred.shape)) ** 2).mean(axis=-1)


class MeanAbsoluteError(Metric):
    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(name)

    def values(self, y_true, y_pred):
        return np.abs(y_pred - np.reshape(y_true, y_pred.shape)).mean(axis=-1)


class TopKCategoricalAccuracy(Metric):
    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(name)
        self.k = k

    def get_config(self) -> dict:
        return {"name": self.name, "k": self.k}

    def values(self, y_true, y_pred):
        top = np.argpartition(-y_pred, self.k - 1, axis=-1)[..., : self.k]
        return (top == np.argmax(y_true, axis=-1)[..., None]).any(axis=-1)


class SparseTopKCategoricalAccuracy(Metric):
    """Whether the integer label is among the ``k`` highest predictions."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(name)
        self.k = k

    def get_config(self) -> dict:
        return {"name": self.name, "k": self.k}

    def values(self, y_true, y_pred):
        labels = _labels(y_true, y_pred).astype(np.int64)
        top = np.argpartition(-y_pred, self.k - 1, axis=-1)[..., : self.k]
        return (top == labels[..., None]).any(axis=-1)


class RootMeanSquaredError(Metric):
    """``sqrt`` of the (weighted) mean squared error over everything seen."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name)

    def values(self, y_true, y_pred):
        return ((y_pred - np.reshape(y_true, y_pred.shape)) ** 2).mean(axis=-1)

    def result(self) -> float:
        return float(np.sqrt(super().result()))
