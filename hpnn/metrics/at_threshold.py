"""One rate at the best threshold where another reaches a target, as Keras'
``SensitivityAtSpecificity``, ``SpecificityAtSensitivity``, ``PrecisionAtRecall`` and
``RecallAtPrecision``.

Like ``AUC``, each keeps the weighted true/false positive/negative counts at
``num_thresholds`` thresholds evenly spaced over [0, 1] (0.5 alone for one), a
prediction above a threshold being positive. The counts are running sums: they add
over batches, the parts of a batch and MPI ranks. All outputs count as one label, or
the column ``class_id`` alone.
"""

from __future__ import annotations

import numpy as np

from hpnn.backend import to_numpy
from hpnn.metrics.base import Metric


def _rate(a, b):
    out = np.zeros(np.shape(a))
    np.divide(a, b, out=out, where=b != 0)
    return out


class _AtThreshold(Metric):
    _target = ""  # the constrained rate's argument name
    _default_name = ""

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        owner = type(self).__name__
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(
                f"{owner}: {self._target} must be a number in [0, 1]. "
                f"Received: {self._target}={value!r}"
            )
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int):
            raise ValueError(
                f"{owner}: num_thresholds must be an int > 0. Received: {num_thresholds!r}"
            )
        if num_thresholds <= 0:
            raise ValueError(
                f"{owner}: num_thresholds must be an int > 0. Received: {num_thresholds!r}"
            )
        self.value, self.num_thresholds, self.class_id = float(value), num_thresholds, class_id
        if num_thresholds == 1:
            self.thresholds = np.array([0.5])
        else:
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self.thresholds = np.array([0.0, *inner, 1.0])
        super().__init__(name or self._default_name)

    def reset_state(self) -> None:
        self.counts = np.zeros((4, len(getattr(self, "thresholds", ()))))  # tp, fp, tn, fn

    def _arrays(self, y_true, y_pred, sample_weight):
        p = np.asarray(to_numpy(y_pred), np.float32)
        y = np.asarray(to_numpy(y_true))
        if y.ndim == p.ndim - 1:
            y = y[..., None]
        elif p.ndim == y.ndim - 1:
            p = p[..., None]
        y = np.broadcast_to(y, p.shape) != 0
        w = np.ones(p.shape)
        if sample_weight is not None:
            sw = np.asarray(to_numpy(sample_weight), np.float64)
            w = np.broadcast_to(sw.reshape(sw.shape + (1,) * (p.ndim - sw.ndim)), p.shape)
        if self.class_id is not None:
            if p.ndim < 2:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': with class_id, y_pred must be "
                    f"(samples, classes). Received: shape={p.shape}"
                )
            p, y, w = p[..., self.class_id], y[..., self.class_id], w[..., self.class_id]
        return p.ravel(), y.ravel(), w.ravel()

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        p, y, w = self._arrays(y_true, y_pred, sample_weight)
        n = len(self.thresholds)
        pos, neg = w * y, w * ~y
        if n == 1:
            above = p > self.thresholds[0]
            tp, fp = np.array([pos[above].sum()]), np.array([neg[above].sum()])
        else:
            # a prediction is above thresholds 0..k-1 for k = ceil(p * (n - 1)), in float32
            # as Keras buckets it (so ties at a threshold fall the same way)
            k = np.ceil(np.clip(p, 0, 1) * np.float32(n - 1)).astype(np.int64)
            at_pos = np.bincount(k, weights=pos, minlength=n)
            at_neg = np.bincount(k, weights=neg, minlength=n)
            tp = np.concatenate([np.cumsum(at_pos[::-1])[::-1][1:], [0.0]])
            fp = np.concatenate([np.cumsum(at_neg[::-1])[::-1][1:], [0.0]])
        self.counts += np.stack([tp, fp, neg.sum() - fp, pos.sum() - tp])

    def _best(self, constrained, dependent) -> float:
        feasible = constrained >= self.value
        return float(np.max(np.where(feasible, dependent, 0.0), initial=0.0))

    def state_vector(self) -> np.ndarray:
        return self.counts.ravel().copy()

    def set_state_vector(self, vector) -> None:
        self.counts = np.asarray(vector, np.float64).reshape(4, len(self.thresholds)).copy()

    def get_config(self) -> dict:
        return {
            "name": self.name,
            self._target: self.value,
            "num_thresholds": self.num_thresholds,
            "class_id": self.class_id,
        }

    def _rates(self):
        tp, fp, tn, fn = self.counts
        return {
            "sensitivity": _rate(tp, tp + fn),  # = recall
            "specificity": _rate(tn, tn + fp),
            "precision": _rate(tp, tp + fp),
        }


class SensitivityAtSpecificity(_AtThreshold):
    """The best sensitivity (recall) at a threshold where specificity >= ``specificity``."""

    _target, _default_name = "specificity", "sensitivity_at_specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name)

    def result(self) -> float:
        r = self._rates()
        return self._best(r["specificity"], r["sensitivity"])


class SpecificityAtSensitivity(_AtThreshold):
    """The best specificity at a threshold where sensitivity >= ``sensitivity``."""

    _target, _default_name = "sensitivity", "specificity_at_sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name)

    def result(self) -> float:
        r = self._rates()
        return self._best(r["sensitivity"], r["specificity"])


class PrecisionAtRecall(_AtThreshold):
    """The best precision at a threshold where recall >= ``recall``."""

    _target, _default_name = "recall", "precision_at_recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name)

    def result(self) -> float:
        r = self._rates()
        return self._best(r["sensitivity"], r["precision"])


class RecallAtPrecision(_AtThreshold):
    """The best recall at a threshold where precision >= ``precision``."""

    _target, _default_name = "precision", "recall_at_precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name)

    def result(self) -> float:
        r = self._rates()
        return self._best(r["precision"], r["sensitivity"])
