"""Losses and metrics of a model with several outputs (Keras 3's rules).

``compile(loss=...)`` takes one loss for every output, a list (one per output) or
a dict by output name, and ``loss_weights`` likewise; the training loss is the
weighted sum of the outputs' losses. ``metrics`` is a list with one entry (a
metric or a list of them) per output, or a dict by output name. The logs hold
``loss``, then ``<output>_loss`` for each output (unweighted), then
``<output>_<metric>``. Every piece is a running sum, so batches and MPI ranks add
up as for one output.
"""

from __future__ import annotations

import numpy as np

from hpnn import losses as losses_mod
from hpnn import metrics as metrics_mod
from hpnn.data.adapter import InputList


def per_output(value, names, what, default=None):
    """``value`` as a list with one entry per output: the same for all, a list in
    output order, or a dict by output name."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(
                f"compile(): {what} names outputs {unknown}, which the model does not have. "
                f"Its outputs: {names}"
            )
        return [value.get(n, default) for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(
                f"compile(): {what} as a list needs one entry per output ({len(names)}: "
                f"{names}). Received: {len(value)}"
            )
        return list(value)
    return [value] * len(names)


def _loss_from(entry):
    if isinstance(entry, dict) and "class_name" in entry:  # from a saved model
        cfg = dict(entry.get("config", {}))
        name = cfg.pop("name", None)
        cfg.pop("reduction", None)
        loss = getattr(losses_mod, entry["class_name"])(**cfg)
        if name:
            loss.name = name
        return loss
    return losses_mod.get(entry)


class MultiOutputLoss:
    """The weighted sum of one loss per output; keeps the latest unweighted values."""

    name = "loss"
    reduction = "sum_over_batch_size"

    def __init__(self, losses, loss_weights=None, output_names=None):
        self.losses = [_loss_from(entry) for entry in losses]
        n = len(self.losses)
        self.output_names = list(output_names or [f"output_{i}" for i in range(n)])
        weights = [1.0] * n if loss_weights is None else list(loss_weights)
        self.loss_weights = [1.0 if w is None else float(w) for w in weights]
        self.last_values = [0.0] * n

    def __call__(self, y_true, y_pred, sample_weight=None):
        ys = y_true.arrays if isinstance(y_true, InputList) else list(y_true)
        values = [
            loss(y, p, sample_weight) for loss, y, p in zip(self.losses, ys, y_pred, strict=True)
        ]
        self.last_values = [float(v.item()) for v in values]
        total = values[0] * self.loss_weights[0]
        for v, w in zip(values[1:], self.loss_weights[1:], strict=True):
            total = total + v * w
        return total

    def get_config(self) -> dict:
        return {
            "losses": [
                {"class_name": type(loss).__name__, "config": loss.get_config()}
                for loss in self.losses
            ],
            "loss_weights": self.loss_weights,
            "output_names": self.output_names,
        }


class OutputLoss(metrics_mod.Metric):
    """``<output>_loss``: one output's unweighted loss, averaged over the samples."""

    def __init__(self, loss: MultiOutputLoss, index: int):
        self.loss, self.index = loss, index
        super().__init__(f"{loss.output_names[index]}_loss")

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        n = len(y_pred[self.index])
        self.total += self.loss.last_values[self.index] * n
        self.count += n


class OutputMetric(metrics_mod.Metric):
    """A metric of one output, named ``<output>_<metric>``."""

    def __init__(self, metric, index: int, output_name: str):
        self.metric, self.index = metric, index
        super().__init__(f"{output_name}_{metric.name}")

    def reset_state(self) -> None:
        if hasattr(self, "metric"):
            self.metric.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        ys = y_true.arrays if isinstance(y_true, InputList) else list(y_true)
        self.metric.update_state(ys[self.index], y_pred[self.index], sample_weight)

    def result(self) -> float:
        return self.metric.result()

    def state_vector(self) -> np.ndarray:
        return self.metric.state_vector()

    def set_state_vector(self, vector) -> None:
        self.metric.set_state_vector(vector)


def make_metrics(loss: MultiOutputLoss, specs, target_shapes, output_shapes) -> list:
    """The per-output loss trackers, then each output's metrics."""
    out = [OutputLoss(loss, i) for i in range(len(loss.losses))]
    for i, entries in enumerate(specs):
        for spec in entries:
            m = metrics_mod.get(spec, loss.losses[i].name, target_shapes[i], output_shapes[i])
            out.append(OutputMetric(m, i, loss.output_names[i]))
    return out


def metric_specs(metrics, names) -> list[list]:
    """``compile(metrics=...)`` as one list of metrics per output (Keras 3's forms)."""
    if metrics is None:
        return [[] for _ in names]
    if isinstance(metrics, dict) or (
        isinstance(metrics, (list, tuple)) and len(metrics) == len(names)
    ):
        entries = per_output(metrics, names, "metrics", default=[])
        return [
            list(e) if isinstance(e, (list, tuple)) else ([] if e is None else [e]) for e in entries
        ]
    raise ValueError(
        f"compile(): for a model with {len(names)} outputs {names}, metrics must be a list "
        "with one entry (a metric or a list of metrics) per output, or a dict by output "
        f"name. Received: {metrics!r}"
    )
