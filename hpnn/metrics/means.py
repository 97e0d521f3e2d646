"""Keras' mean metrics over a per-sample function: the probabilistic ones
(cross-entropies, KL divergence, Poisson), the hinges, the regression errors and the
correlations. Each is a :class:`MeanMetricWrapper` (a running ``total`` and ``count``,
which add over the parts of a batch and over MPI ranks) with Keras' names, defaults
and configs."""

from __future__ import annotations

import numpy as np

from hpnn import losses
from hpnn.backend import to_numpy
from hpnn.metrics import functions
from hpnn.metrics.base import MeanMetricWrapper


def _last_axis(owner, axis):
    if axis != -1:
        raise NotImplementedError(
            f"{owner}: hpnn computes it over the last axis only. Received: axis={axis!r}"
        )


class _Plain(MeanMetricWrapper):
    """A wrapper of ``fn`` with a default name and no other arguments."""

    fn = None
    default_name = ""

    def __init__(self, name=None, dtype=None):
        super().__init__(type(self).fn, name=name or self.default_name)

    def get_config(self) -> dict:
        return {"name": self.name}


class KLDivergence(_Plain):
    """Running mean of ``sum(t * log(t / p))`` per sample."""

    fn, default_name = staticmethod(losses.kl_divergence), "kl_divergence"


class Poisson(_Plain):
    """Running mean of ``mean(p - t * log(p))`` per sample."""

    fn, default_name = staticmethod(losses.poisson), "poisson"


class Hinge(_Plain):
    """Running mean of the hinge loss (targets in {-1, 1}, or 0/1)."""

    fn, default_name = staticmethod(losses.hinge), "hinge"


class SquaredHinge(_Plain):
    """Running mean of the squared hinge loss."""

    fn, default_name = staticmethod(losses.squared_hinge), "squared_hinge"


class CategoricalHinge(_Plain):
    """Running mean of the categorical hinge loss (one-hot targets)."""

    fn, default_name = staticmethod(losses.categorical_hinge), "categorical_hinge"


class LogCoshError(_Plain):
    """Running mean of ``mean(log(cosh(p - t)))`` per sample (Keras' name: ``logcosh``)."""

    fn, default_name = staticmethod(losses.log_cosh), "logcosh"


class MeanAbsolutePercentageError(_Plain):
    """Running mean of ``100 * mean(|t - p| / |t|)`` per sample."""

    fn = staticmethod(losses.mean_absolute_percentage_error)
    default_name = "mean_absolute_percentage_error"


class MeanSquaredLogarithmicError(_Plain):
    """Running mean of ``mean((log(p + 1) - log(t + 1))**2)`` per sample."""

    fn = staticmethod(losses.mean_squared_logarithmic_error)
    default_name = "mean_squared_logarithmic_error"


class CosineSimilarity(MeanMetricWrapper):
    """Running mean of the cosine similarity of ``y_true`` and ``y_pred`` (1 is best: the
    metric is the loss's value negated)."""

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        _last_axis("CosineSimilarity", axis)
        super().__init__(_cosine, name=name)
        self.axis = axis

    def get_config(self) -> dict:
        return {"name": self.name}


def _cosine(y_true, y_pred):
    return losses.cosine_similarity(y_true, y_pred) * -1.0


class BinaryCrossentropy(MeanMetricWrapper):
    """Running mean of the binary cross-entropy (``from_logits``, ``label_smoothing``)."""

    def __init__(
        self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0
    ):
        super().__init__(
            losses.binary_crossentropy,
            name=name,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
        )
        self.from_logits, self.label_smoothing = from_logits, label_smoothing

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
        }


class CategoricalCrossentropy(MeanMetricWrapper):
    """Running mean of the categorical cross-entropy of one-hot targets."""

    def __init__(
        self,
        name="categorical_crossentropy",
        dtype=None,
        from_logits=False,
        label_smoothing=0,
        axis=-1,
    ):
        _last_axis("CategoricalCrossentropy", axis)
        super().__init__(
            losses.categorical_crossentropy,
            name=name,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
        )
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Running mean of the cross-entropy of integer labels; with ``ignore_class`` the
    samples of that label weigh nothing (as Keras masks them)."""

    def __init__(
        self,
        name="sparse_categorical_crossentropy",
        dtype=None,
        from_logits=False,
        ignore_class=None,
        axis=-1,
    ):
        _last_axis("SparseCategoricalCrossentropy", axis)
        super().__init__(losses.sparse_categorical_crossentropy, name=name, from_logits=from_logits)
        self.from_logits, self.ignore_class, self.axis = from_logits, ignore_class, axis

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        if self.ignore_class is None:
            return super().update_state(y_true, y_pred, sample_weight)
        y, p = np.asarray(to_numpy(y_true)), to_numpy(y_pred)
        if y.ndim == p.ndim and y.shape[-1] == 1:
            y = y[..., 0]
        keep = y != self.ignore_class
        values = self.values(np.where(keep, y, 0), p)
        w = keep.astype(np.float64)
        if sample_weight is not None:
            sw = np.asarray(to_numpy(sample_weight), np.float64)
            w = w * sw.reshape(sw.shape[: w.ndim] + (1,) * max(w.ndim - sw.ndim, 0))
        self._add(values, w)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "from_logits": self.from_logits,
            "ignore_class": self.ignore_class,
            "axis": self.axis,
        }


class PearsonCorrelation(MeanMetricWrapper):
    """Running mean of each sample's Pearson correlation along the last axis."""

    def __init__(self, name="pearson_correlation", dtype=None, axis=-1):
        super().__init__(functions.pearson_correlation, name=name, axis=axis)
        self.axis = axis

    def get_config(self) -> dict:
        return {"name": self.name, "axis": self.axis}


class ConcordanceCorrelation(MeanMetricWrapper):
    """Running mean of each sample's concordance correlation along the last axis."""

    def __init__(self, name="concordance_correlation", dtype=None, axis=-1):
        super().__init__(functions.concordance_correlation, name=name, axis=axis)
        self.axis = axis

    def get_config(self) -> dict:
        return {"name": self.name, "axis": self.axis}
