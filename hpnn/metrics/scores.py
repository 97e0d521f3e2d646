"""Metrics from confusion counts and running sums: confusion counts, precision, recall,
F-scores, R2, AUC."""

from __future__ import annotations

import numpy as np

from hpnn.backend import to_numpy
from hpnn.metrics.base import Metric


class _Confusion(Metric):
    """Precision and recall: ``total`` counts true positives and ``count`` the
    predicted (precision) or actual (recall) positives, each sample's decisions
    weighted by its sample weight, so the running sums add up over batches, threads
    and MPI ranks like every other metric's.

    A prediction is positive above ``thresholds`` (default 0.5), or, with ``top_k``,
    among the ``k`` largest of its row; ``class_id`` looks at one column only.
    """

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if thresholds is not None and not isinstance(thresholds, (int, float)):
            raise NotImplementedError(
                f"{type(self).__name__}: one threshold is supported (a float). "
                f"Received: thresholds={thresholds!r}"
            )
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"{type(self).__name__}: top_k must be an int >= 1. Received: {top_k}")
        self.threshold = 0.5 if thresholds is None else float(thresholds)
        self.thresholds, self.top_k, self.class_id = thresholds, top_k, class_id
        super().__init__(name or type(self).__name__.lower())

    def _decisions(self, y_true, y_pred):
        """Boolean ``(predicted positive, actually positive)`` arrays, shaped alike."""
        y_pred = np.asarray(y_pred, np.float64)
        y_true = np.asarray(y_true)
        if y_true.ndim == y_pred.ndim - 1:
            y_true = y_true[..., None]
        y_true = np.broadcast_to(y_true, y_pred.shape) != 0  # as Keras: cast to bool
        if self.top_k is not None:
            k = min(self.top_k, y_pred.shape[-1])
            kth = -np.partition(-y_pred, k - 1, axis=-1)[..., k - 1 : k]
            pred = y_pred >= kth
            if self.thresholds is not None:
                pred &= y_pred > self.threshold
        else:
            pred = y_pred > self.threshold
        if self.class_id is not None:
            pred, y_true = pred[..., self.class_id], y_true[..., self.class_id]
        return pred, y_true

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        pred, true = self._decisions(to_numpy(y_true), to_numpy(y_pred))
        w = 1.0
        if sample_weight is not None:
            w = np.asarray(to_numpy(sample_weight), np.float64)
            w = np.broadcast_to(w.reshape(w.shape + (1,) * (pred.ndim - w.ndim)), pred.shape)
        hits = self._counted(pred, true)
        self.total += float(np.sum((pred & true) * w))
        self.count += float(np.sum(hits * w))

    def get_config(self) -> dict:
        return {
            "thresholds": self.thresholds,
            "top_k": self.top_k,
            "class_id": self.class_id,
            "name": self.name,
        }


class Precision(_Confusion):
    """Of the predicted positives, the share that are positive (``keras.metrics.Precision``)."""

    @staticmethod
    def _counted(pred, true):
        return pred


class Recall(_Confusion):
    """Of the actual positives, the share predicted positive (``keras.metrics.Recall``)."""

    @staticmethod
    def _counted(pred, true):
        return true


class _ConditionCount(Metric):
    """The weighted count of one confusion-matrix cell at each of ``thresholds`` (a float
    or a list of floats in [0, 1], default 0.5), as Keras' ``TruePositives`` and kin:
    a prediction above a threshold is positive, targets count as positive where nonzero,
    and all outputs are flattened into one label. The result is a float for one
    threshold, else an array with one count per threshold; the state is those counts."""

    _cell, _default_name = "", ""  # _cell: "tp", "fp", "tn" or "fn"

    def __init__(self, thresholds=None, name=None, dtype=None):
        given = [] if thresholds is None else np.ravel(thresholds).tolist()
        bad = [t for t in given if t is None or not 0 <= t <= 1]
        if bad:
            raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad}")
        self.init_thresholds = thresholds
        self.thresholds = [float(t) for t in given] or [0.5]
        super().__init__(name or self._default_name)

    def reset_state(self) -> None:
        self.counts = np.zeros(len(getattr(self, "thresholds", ())))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        p = np.asarray(to_numpy(y_pred), np.float64)
        y = np.asarray(to_numpy(y_true))
        if y.ndim == p.ndim - 1:
            y = y[..., None]
        y = np.broadcast_to(y, p.shape) != 0
        w = np.ones(p.shape)
        if sample_weight is not None:
            sw = np.asarray(to_numpy(sample_weight), np.float64)
            w = np.broadcast_to(sw.reshape(sw.shape + (1,) * (p.ndim - sw.ndim)), p.shape)
        p, y, w = p.ravel(), y.ravel(), w.ravel()
        pred = p[None, :] > np.asarray(self.thresholds)[:, None]  # (thresholds, samples)
        want_pred, want_true = self._cell in ("tp", "fp"), self._cell in ("tp", "fn")
        cell = (pred == want_pred) & (y == want_true)[None, :]
        self.counts = self.counts + (cell * w).sum(axis=1)

    def result(self):
        return float(self.counts[0]) if len(self.counts) == 1 else self.counts.copy()

    def state_vector(self) -> np.ndarray:
        return self.counts.copy()

    def set_state_vector(self, vector) -> None:
        self.counts = np.asarray(vector, np.float64).reshape(len(self.thresholds)).copy()

    def get_config(self) -> dict:
        return {"thresholds": self.init_thresholds, "name": self.name}


class TruePositives(_ConditionCount):
    """The (weighted) number of positives predicted positive."""

    _cell, _default_name = "tp", "true_positives"


class FalsePositives(_ConditionCount):
    """The (weighted) number of negatives predicted positive."""

    _cell, _default_name = "fp", "false_positives"


class TrueNegatives(_ConditionCount):
    """The (weighted) number of negatives predicted negative."""

    _cell, _default_name = "tn", "true_negatives"


class FalseNegatives(_ConditionCount):
    """The (weighted) number of positives predicted negative."""

    _cell, _default_name = "fn", "false_negatives"


def _ratio(a, b):
    """``a / b``, 0 where ``b`` is 0 (Keras' divide_no_nan)."""
    out = np.zeros(np.broadcast(a, b).shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


class FBetaScore(Metric):
    """F-beta score per class from running true/false positive and false negative sums,
    as Keras' ``FBetaScore``: targets one-hot (or multi-label) ``(N, C)``; a prediction
    counts as positive above ``threshold``, or, with ``threshold=None``, where it is the
    row's largest (and not 0). ``average``: None (one score per class, an array),
    ``"micro"`` (pooled counts), ``"macro"`` (the classes' mean) or ``"weighted"`` (by
    each class's share of the true labels). Sample weights weigh the counts."""

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(
                f"{type(self).__name__}: average must be None, 'micro', 'macro' or "
                f"'weighted'. Received: average={average!r}"
            )
        if not (isinstance(beta, (int, float)) and beta > 0):
            raise ValueError(f"{type(self).__name__}: beta must be > 0. Received: beta={beta!r}")
        self.average, self.beta, self.threshold = average, float(beta), threshold
        super().__init__(name)

    def reset_state(self) -> None:
        classes = getattr(self, "_classes", None)
        self.counts = None  # (4, C): tp, fp, fn, true labels; (4,) for "micro"
        if classes is not None:
            self.prime(classes)

    def prime(self, classes: int) -> None:
        """Size the running sums for ``classes`` classes before the first batch (so that
        data-parallel ranks hold state vectors of one length from the first step)."""
        self._classes = int(classes)
        if self.counts is None:
            self.counts = np.zeros(4 if self.average == "micro" else (4, self._classes))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        t = np.asarray(to_numpy(y_true), np.float64)
        p = np.asarray(to_numpy(y_pred), np.float64)
        if t.shape != p.shape or t.ndim != 2:
            raise ValueError(
                f"{type(self).__name__}: expected one-hot y_true and y_pred of the same shape "
                f"(batch, classes). Received: y_true {t.shape}, y_pred {p.shape}"
            )
        if self.threshold is None:
            hit = (p >= p.max(axis=-1, keepdims=True)) & (np.abs(p) > 1e-9)
        else:
            hit = p > self.threshold
        hit = hit.astype(np.float64)
        w = 1.0 if sample_weight is None else np.asarray(sample_weight, np.float64)[:, None]
        axis = None if self.average == "micro" else 0
        parts = (hit * t, hit * (1 - t), (1 - hit) * t, t)
        counts = np.stack([np.sum(q * w, axis=axis) for q in parts])
        self._classes = t.shape[-1]
        self.counts = counts if self.counts is None else self.counts + counts

    def result(self):
        if self.counts is None:
            return 0.0
        if not self.counts.any():  # primed, nothing seen
            return 0.0 if self.average is not None else np.zeros(self.counts.shape[-1])
        eps = 1e-7
        tp, fp, fn, true = self.counts
        precision, recall = tp / (tp + fp + eps), tp / (tp + fn + eps)
        b2 = self.beta**2
        score = precision * recall / (b2 * precision + recall + eps) * (1 + b2)
        if self.average == "weighted":
            return float(np.sum(score * true / (np.sum(true) + eps)))
        if self.average is not None:
            return float(np.mean(score))
        return score

    def state_vector(self) -> np.ndarray:
        return np.zeros(0) if self.counts is None else self.counts.reshape(-1).copy()

    def set_state_vector(self, vector) -> None:
        vector = np.asarray(vector, np.float64)
        self.counts = vector.reshape(4, -1) if vector.size else None
        if self.counts is not None and self.average == "micro":
            self.counts = self.counts[:, 0]

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "average": self.average,
            "beta": self.beta,
            "threshold": self.threshold,
        }


class F1Score(FBetaScore):
    """``FBetaScore`` with ``beta=1``: the harmonic mean of precision and recall."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("beta")
        return config


class R2Score(Metric):
    """The coefficient of determination, ``1 - SS_res / SS_tot`` per output from running
    (weighted) sums, as Keras' ``R2Score``: ``class_aggregation`` ``"uniform_average"``
    (the outputs' mean), ``"variance_weighted_average"`` or None (one per output); with
    ``num_regressors`` > 0 the adjusted R2 ``1 - (1 - R2) (n - 1) / (n - p - 1)``."""

    _AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")

    def __init__(
        self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None
    ):
        if class_aggregation not in self._AGGREGATIONS:
            raise ValueError(
                f"R2Score: class_aggregation must be one of {self._AGGREGATIONS}. Received: "
                f"{class_aggregation!r}"
            )
        if not isinstance(num_regressors, int) or num_regressors < 0:
            raise ValueError(
                f"R2Score: num_regressors must be an int >= 0. Received: {num_regressors!r}"
            )
        self.class_aggregation, self.num_regressors = class_aggregation, num_regressors
        super().__init__(name)

    def reset_state(self) -> None:
        outputs = getattr(self, "_outputs", None)
        self.sums = None  # (4, D): sum of w*y, of w*y^2, of w*(y - p)^2, of w; and n
        self.samples = 0.0
        if outputs is not None:
            self.prime(outputs)

    def prime(self, outputs: int) -> None:
        self._outputs = int(outputs)
        if self.sums is None:
            self.sums = np.zeros((4, self._outputs))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        p = np.asarray(to_numpy(y_pred), np.float64)
        t = np.asarray(to_numpy(y_true), np.float64).reshape(p.shape) if p.ndim else None
        if p.ndim == 1:
            t, p = t[:, None], p[:, None]
        if t is None or p.ndim != 2:
            raise ValueError(
                f"R2Score: expected y_true and y_pred of shape (batch, outputs) or (batch,). "
                f"Received: y_pred {p.shape}"
            )
        w = np.ones_like(t) if sample_weight is None else np.asarray(sample_weight, np.float64)
        w = np.broadcast_to(w[:, None] if w.ndim == 1 else w, t.shape)
        sums = np.stack([(w * t).sum(0), (w * t * t).sum(0), (w * (t - p) ** 2).sum(0), w.sum(0)])
        self._outputs = t.shape[1]
        self.sums = sums if self.sums is None else self.sums + sums
        self.samples += t.size

    def result(self):
        if self.sums is None or not self.sums[3].any():
            return 0.0
        total_y, total_y2, residual, count = self.sums
        with np.errstate(divide="ignore", invalid="ignore"):
            total = total_y2 - total_y * (total_y / count)
            raw = 1 - residual / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            r2 = float(np.mean(raw))
        elif self.class_aggregation == "variance_weighted_average":
            r2 = float(np.sum(total * raw) / np.sum(total))
        else:
            r2 = raw
        n, k = self.samples, self.num_regressors
        if k and k < n - 1:
            r2 = 1 - (1 - r2) * (n - 1) / (n - k - 1)
        return r2

    def state_vector(self) -> np.ndarray:
        if self.sums is None:
            return np.zeros(0)
        return np.concatenate([self.sums.reshape(-1), [self.samples]])

    def set_state_vector(self, vector) -> None:
        vector = np.asarray(vector, np.float64)
        if vector.size:
            self.sums, self.samples = vector[:-1].reshape(4, -1), float(vector[-1])

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "class_aggregation": self.class_aggregation,
            "num_regressors": self.num_regressors,
        }


class AUC(Metric):
    """Area under the ROC or precision-recall curve, as ``keras.metrics.AUC``.

    Predictions in [0, 1] (or logits with ``from_logits=True``) are compared with
    ``num_thresholds`` evenly spaced thresholds; the weighted confusion counts at each
    are running sums over batches (and MPI ranks), and the area is Keras' Riemann sum
    (``summation_method`` 'interpolation', 'minoring' or 'majoring'; for the PR curve
    'interpolation' is Davis & Goadrich's). All outputs count as one label.
    """

    def __init__(
        self,
        num_thresholds=200,
        curve="ROC",
        summation_method="interpolation",
        name=None,
        dtype=None,
        thresholds=None,
        multi_label=False,
        num_labels=None,
        label_weights=None,
        from_logits=False,
    ):
        if multi_label or label_weights is not None or thresholds is not None:
            raise NotImplementedError(
                "AUC: multi_label, label_weights and explicit thresholds are not supported yet."
            )
        if not isinstance(num_thresholds, int) or num_thresholds <= 1:
            raise ValueError(
                f"AUC: num_thresholds must be an int > 1. Received: {num_thresholds!r}"
            )
        curve, summation = str(curve).upper(), str(summation_method).lower()
        if curve not in ("ROC", "PR") or summation not in (
            "interpolation",
            "minoring",
            "majoring",
        ):
            raise ValueError(
                "AUC: curve must be 'ROC' or 'PR' and summation_method 'interpolation', "
                f"'minoring' or 'majoring'. Received: curve={curve!r}, "
                f"summation_method={summation!r}"
            )
        self.num_thresholds, self.curve, self.summation_method = num_thresholds, curve, summation
        self.from_logits = from_logits
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.thresholds = np.array([-1e-7, *inner, 1 + 1e-7])
        super().__init__(name or "auc")

    def reset_state(self) -> None:
        self.counts = np.zeros((4, getattr(self, "num_thresholds", 0)))  # tp, fp, tn, fn

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        p = np.asarray(to_numpy(y_pred), np.float64)
        y = np.asarray(to_numpy(y_true))
        if y.ndim == p.ndim - 1:
            y = y[..., None]
        y = np.broadcast_to(y, p.shape) != 0
        if self.from_logits:
            p = 0.5 * (1 + np.tanh(0.5 * p))
        w = np.ones(p.shape)
        if sample_weight is not None:
            sw = np.asarray(to_numpy(sample_weight), np.float64)
            w = np.broadcast_to(sw.reshape(sw.shape + (1,) * (p.ndim - sw.ndim)), p.shape)
        p, y, w = p.ravel(), y.ravel(), w.ravel()
        order = np.argsort(p, kind="stable")
        pos = np.concatenate([[0.0], np.cumsum((w * y)[order])])
        neg = np.concatenate([[0.0], np.cumsum((w * ~y)[order])])
        below = np.searchsorted(p[order], self.thresholds, side="right")  # p <= threshold
        self.counts += np.stack(
            [pos[-1] - pos[below], neg[-1] - neg[below], neg[below], pos[below]]
        )

    def result(self) -> float:
        tp, fp, tn, fn = self.counts
        if self.curve == "PR" and self.summation_method == "interpolation":
            return float(self._interpolate_pr(tp, fp, fn))
        recall = _ratio(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _ratio(fp, fp + tn), recall
        else:
            x, y = recall, _ratio(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    @staticmethod
    def _interpolate_pr(tp, fp, fn):
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _ratio(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _ratio(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return np.sum(
            _ratio(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
        )

    def state_vector(self) -> np.ndarray:
        return self.counts.ravel().copy()

    def set_state_vector(self, vector) -> None:
        self.counts = np.asarray(vector, np.float64).reshape(4, self.num_thresholds).copy()

    def get_config(self) -> dict:
        return {
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "name": self.name,
            "from_logits": self.from_logits,
        }
