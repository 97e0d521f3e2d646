"""Metrics: stateful accumulators over batches (``update_state``, ``result``, ``reset_state``).

They read plain arrays (predictions after the forward pass), never the graph. Each keeps
its state as running sums (``state_vector``), so the parts of a split batch and the MPI
ranks add theirs up. ``compile(metrics=[...])`` takes them as objects, classes, Keras'
names (``"auc"``, ``"binary_crossentropy"``, ``"MeanSquaredError"``...) or functions.
"""

from __future__ import annotations

import inspect
import re

from hpnn.losses import (  # noqa: F401  (keras.metrics' function forms are the losses')
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_focal_crossentropy,
    categorical_hinge,
    hinge,
    huber,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
)
from hpnn.metrics.accuracy import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    MeanAbsoluteError,
    MeanSquaredError,
    RootMeanSquaredError,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
)
from hpnn.metrics.at_threshold import (
    PrecisionAtRecall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
)
from hpnn.metrics.base import Mean, MeanMetricWrapper, Metric, Sum, _labels  # noqa: F401
from hpnn.metrics.functions import (  # noqa: F401  (the public names of hpnn.metrics)
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    concordance_correlation,
    pearson_correlation,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from hpnn.metrics.iou import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from hpnn.metrics.means import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    CategoricalHinge,
    ConcordanceCorrelation,
    CosineSimilarity,
    Hinge,
    KLDivergence,
    LogCoshError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    PearsonCorrelation,
    Poisson,
    SparseCategoricalCrossentropy,
    SquaredHinge,
)
from hpnn.metrics.scores import (
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

_CLASSES = [
    Metric,
    Mean,
    Sum,
    MeanMetricWrapper,
    MeanSquaredError,
    RootMeanSquaredError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    CosineSimilarity,
    LogCoshError,
    R2Score,
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    PrecisionAtRecall,
    Recall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
    TrueNegatives,
    TruePositives,
    ConcordanceCorrelation,
    PearsonCorrelation,
    Hinge,
    SquaredHinge,
    CategoricalHinge,
    KLDivergence,
    Poisson,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    F1Score,
    FBetaScore,
    IoU,
    BinaryIoU,
    MeanIoU,
    OneHotIoU,
    OneHotMeanIoU,
]


def _snake(name: str) -> str:
    """``MeanSquaredError`` -> ``mean_squared_error`` (as Keras names its metrics)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


# Keras' names of its metrics (its ALL_OBJECTS_DICT): class names, their snake case, aliases
_BY_NAME = {n: c for c in _CLASSES for n in (c.__name__, _snake(c.__name__))}
_BY_NAME.update(
    {
        "bce": BinaryCrossentropy,
        "BCE": BinaryCrossentropy,
        "mse": MeanSquaredError,
        "MSE": MeanSquaredError,
        "mae": MeanAbsoluteError,
        "MAE": MeanAbsoluteError,
        "mape": MeanAbsolutePercentageError,
        "MAPE": MeanAbsolutePercentageError,
        "msle": MeanSquaredLogarithmicError,
        "MSLE": MeanSquaredLogarithmicError,
    }
)
del _BY_NAME["Metric"], _BY_NAME["metric"]  # (the base class computes nothing)


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


def _instance(cls, identifier):
    """``cls()``, or an error saying which arguments a metric by name lacks."""
    required = [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.default is p.empty and p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    if required:
        raise ValueError(
            f"Metric {identifier!r} ({cls.__name__}) needs {', '.join(required)}: pass an "
            f"instance, e.g. metrics.{cls.__name__}({required[0]}=...). "
            f"Received: metric={identifier!r}"
        )
    return cls()


def get(identifier, loss_name=None, y_true_shape=None, y_pred_shape=None) -> Metric:
    """A Metric from a name (Keras' names: ``"auc"``, ``"binary_crossentropy"``,
    ``"MeanIoU"``...; ``"accuracy"`` chosen from the loss and shapes), a class, an
    instance, a serialized config (``{"class_name", "config"}``), or a function
    ``fn(y_true, y_pred)`` of per-sample values (its running mean)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return _instance(identifier, identifier.__name__)
    if identifier in ("accuracy", "acc"):
        m = accuracy_for(loss_name, y_true_shape, y_pred_shape)
        m.name = identifier
        return m
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier in _BY_NAME:
        m = _instance(_BY_NAME[identifier], identifier)
        m.name = identifier
        return m
    if callable(identifier) and not isinstance(identifier, (str, type)):
        return MeanMetricWrapper(identifier)
    raise ValueError(
        "Unknown metric: expected 'accuracy', one of Keras' metric names (such as "
        f"{sorted(n for n in _BY_NAME if n.islower())}), a Metric or a function. "
        f"Received: metric={identifier!r}"
    )


def serialize(metric):
    """A Metric (or metric function) as Keras' ``{"module", "class_name", "config",
    "registered_name"}`` entry; ``deserialize`` makes it again."""
    from hpnn.saving import serialize_keras_object

    return serialize_keras_object(metric)


def deserialize(config, custom_objects=None):
    """A Metric (or metric function) from ``serialize``'s entry (or a name)."""
    from hpnn.saving import deserialize_keras_object

    if isinstance(config, str) and config in _BY_NAME:
        return _instance(_BY_NAME[config], config)
    found = deserialize_keras_object(config, custom_objects, module_objects=_BY_NAME)
    if isinstance(found, type):
        return _instance(found, config)
    return found
