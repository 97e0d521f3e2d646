"""Intersection-over-union metrics from a running (weighted) confusion matrix, as Keras'
``IoU``, ``MeanIoU``, ``BinaryIoU``, ``OneHotIoU`` and ``OneHotMeanIoU``.

The state is the ``(num_classes, num_classes)`` matrix of weighted counts (rows: true
class, columns: predicted class), flattened: it adds over batches, the parts of a batch
and MPI ranks like every other metric's sums.
"""

from __future__ import annotations

import numpy as np

from hpnn.backend import to_numpy
from hpnn.metrics.base import Metric

EPSILON = 1e-7


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _class_count(owner, num_classes) -> int:
    if not _is_int(num_classes) or num_classes < 2:
        raise ValueError(f"{owner}: num_classes must be an int >= 2. Received: {num_classes!r}")
    return int(num_classes)


class IoU(Metric):
    """The mean, over ``target_class_ids``, of each class's intersection over union
    ``tp / (tp + fp + fn)`` (classes that never appear in targets or predictions are
    left out of the mean).

    Args:
        num_classes: the number of classes (labels in ``[0, num_classes)``; others are
            not counted).
        target_class_ids: the classes whose IoU is averaged.
        ignore_class: a label not counted (e.g. a "void" class).
        sparse_y_true, sparse_y_pred: whether targets/predictions are integer labels
            (True) or per-class scores whose argmax along ``axis`` is the label.
    """

    def __init__(
        self,
        num_classes,
        target_class_ids,
        name=None,
        dtype=None,
        ignore_class=None,
        sparse_y_true=True,
        sparse_y_pred=True,
        axis=-1,
    ):
        owner = type(self).__name__
        self.num_classes = _class_count(owner, num_classes)
        ids = np.ravel(np.asarray(target_class_ids, dtype=object))
        if not ids.size or not all(_is_int(i) and 0 <= i < self.num_classes for i in ids):
            raise ValueError(
                f"{owner}: target_class_ids must be a list of class ids in "
                f"[0, {self.num_classes}). Received: target_class_ids={target_class_ids!r}"
            )
        self.target_class_ids = [int(i) for i in ids]
        self.ignore_class, self.axis = ignore_class, axis
        self.sparse_y_true, self.sparse_y_pred = sparse_y_true, sparse_y_pred
        super().__init__(name or _snake(owner))

    def reset_state(self) -> None:
        n = getattr(self, "num_classes", 0)
        self.total_cm = np.zeros((n, n))

    def _labels(self, y_true, y_pred):
        t = np.asarray(to_numpy(y_true))
        p = np.asarray(to_numpy(y_pred))
        if not self.sparse_y_true:
            t = np.argmax(t, axis=self.axis)
        if not self.sparse_y_pred:
            p = np.argmax(p, axis=self.axis)
        return t.reshape(-1).astype(np.int64), p.reshape(-1).astype(np.int64)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        t, p = self._labels(y_true, y_pred)
        if t.shape != p.shape:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': y_true and y_pred hold different "
                f"numbers of labels. Received: {t.size} and {p.size}"
            )
        w = np.ones(t.shape)
        if sample_weight is not None:
            w = np.broadcast_to(
                np.asarray(to_numpy(sample_weight), np.float64).reshape(-1), t.shape
            )
        n = self.num_classes
        keep = (t >= 0) & (t < n) & (p >= 0) & (p < n)
        if self.ignore_class is not None:
            keep &= t != self.ignore_class
        cm = np.bincount(t[keep] * n + p[keep], weights=w[keep], minlength=n * n)
        self.total_cm = self.total_cm + cm.reshape(n, n)

    def result(self) -> float:
        cm = self.total_cm
        tp = np.diag(cm)
        union = cm.sum(axis=0) + cm.sum(axis=1) - tp
        ids = self.target_class_ids
        tp, union = tp[ids], union[ids]
        valid = union > 1e-9
        iou = np.where(valid, tp / (union + EPSILON), 0.0)
        return float(iou.sum() / (valid.sum() + EPSILON))

    def state_vector(self) -> np.ndarray:
        return self.total_cm.reshape(-1).copy()

    def set_state_vector(self, vector) -> None:
        n = self.num_classes
        self.total_cm = np.asarray(vector, np.float64).reshape(n, n).copy()

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "target_class_ids": self.target_class_ids,
            "ignore_class": self.ignore_class,
            "sparse_y_true": self.sparse_y_true,
            "sparse_y_pred": self.sparse_y_pred,
            "axis": self.axis,
        }


def _snake(name: str) -> str:
    return {
        "IoU": "io_u",
        "MeanIoU": "mean_io_u",
        "BinaryIoU": "binary_io_u",
        "OneHotIoU": "one_hot_io_u",
        "OneHotMeanIoU": "one_hot_mean_io_u",
    }[name]


class MeanIoU(IoU):
    """The IoU averaged over all ``num_classes`` classes."""

    def __init__(
        self,
        num_classes,
        name=None,
        dtype=None,
        ignore_class=None,
        sparse_y_true=True,
        sparse_y_pred=True,
        axis=-1,
    ):
        count = _class_count("MeanIoU", num_classes)
        super().__init__(
            count,
            list(range(count)),
            name=name,
            ignore_class=ignore_class,
            sparse_y_true=sparse_y_true,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        del config["target_class_ids"]
        return config


class BinaryIoU(IoU):
    """IoU of two classes: a prediction ``>= threshold`` is class 1, else 0; targets are
    0/1 (``target_class_ids`` (0, 1) by default: both classes' mean)."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(2, list(target_class_ids), name=name)
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        p = np.asarray(to_numpy(y_pred), np.float64) >= self.threshold
        super().update_state(y_true, p.astype(np.int64), sample_weight)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "target_class_ids": self.target_class_ids,
            "threshold": self.threshold,
        }


class OneHotIoU(IoU):
    """``IoU`` of one-hot targets (their argmax is the label) and per-class scores."""

    def __init__(
        self,
        num_classes,
        target_class_ids,
        name=None,
        dtype=None,
        ignore_class=None,
        sparse_y_pred=False,
        axis=-1,
    ):
        super().__init__(
            num_classes,
            target_class_ids,
            name=name,
            ignore_class=ignore_class,
            sparse_y_true=False,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        del config["sparse_y_true"]
        return config


class OneHotMeanIoU(MeanIoU):
    """``MeanIoU`` of one-hot targets and per-class scores."""

    def __init__(
        self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False, axis=-1
    ):
        super().__init__(
            num_classes,
            name=name,
            ignore_class=ignore_class,
            sparse_y_true=False,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        del config["sparse_y_true"]
        return config
