"""Metrics: stateful accumulators over batches (``update_state``, ``result``, ``reset_state``).

They read plain arrays (predictions after the forward pass), never the graph.
"""

from __future__ import annotations

import numpy as np

from hpnn.backend import to_numpy
from hpnn.engine.tensor import Tensor
from hpnn.metrics.base import Mean, Metric, _labels  # noqa: F401  (Mean: public)
from hpnn.metrics.scores import (  # noqa: F401  (the public names of hpnn.metrics)
    AUC,
    F1Score,
    FalseNegatives,
    FalsePositives,
    FBetaScore,
    Precision,
    R2Score,
    Recall,
    TrueNegatives,
    TruePositives,
)


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

    def values(self, y_true, y_pred):
        top = np.argpartition(-y_pred, self.k - 1, axis=-1)[..., : self.k]
        return (top == np.argmax(y_true, axis=-1)[..., None]).any(axis=-1)


class SparseTopKCategoricalAccuracy(Metric):
    """Whether the integer label is among the ``k`` highest predictions."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(name)
        self.k = k

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


_BY_NAME = {
    "auc": AUC,
    "precision": Precision,
    "recall": Recall,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "root_mean_squared_error": RootMeanSquaredError,
    "f1_score": F1Score,
    "r2_score": R2Score,
    "true_positives": TruePositives,
    "false_positives": FalsePositives,
    "true_negatives": TrueNegatives,
    "false_negatives": FalseNegatives,
}


def accuracy_for(loss_name: str | None, y_true_shape=None, y_pred_shape=None) -> Metric:
    """Resolve the string ``"accuracy"`` the way Keras does.

    From the loss first (binary / sparse / categorical cross-entropy), else from
    the shapes: a 1-wide output is binary, integer-like targets are sparse.
    """
    name = (loss_name or "").lower()
    if "binary" in name:
        cls = BinaryAccuracy
    elif "sparse" in name:
        cls = SparseCategoricalAccuracy
    elif "categorical" in name:
        cls = CategoricalAccuracy
    elif y_pred_shape is not None and y_pred_shape[-1] == 1:
        cls = BinaryAccuracy
    elif (
        y_true_shape is not None
        and y_pred_shape is not None
        and (len(y_true_shape) < len(y_pred_shape) or y_true_shape[-1] == 1)
    ):
        cls = SparseCategoricalAccuracy
    else:
        cls = CategoricalAccuracy
    return cls(name="accuracy")


def get(identifier, loss_name=None, y_true_shape=None, y_pred_shape=None) -> Metric:
    """Return a Metric from a name, a class, an instance, or a function."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if identifier in ("accuracy", "acc"):
        m = accuracy_for(loss_name, y_true_shape, y_pred_shape)
        m.name = identifier
        return m
    if isinstance(identifier, str) and identifier in _BY_NAME:
        m = _BY_NAME[identifier]()
        m.name = identifier
        return m
    if callable(identifier) and not isinstance(identifier, str):
        return _FunctionMetric(identifier)
    raise ValueError(
        f"Unknown metric: expected 'accuracy', one of {sorted(_BY_NAME)}, a Metric or a "
        f"function. Received: metric={identifier!r}"
    )


class _FunctionMetric(Metric):
    def __init__(self, fn):
        self.fn = fn
        super().__init__(getattr(fn, "__name__", "metric"))

    def values(self, y_true, y_pred):
        out = self.fn(y_true, y_pred)
        return out.numpy() if isinstance(out, Tensor) else to_numpy(out)
