"""A model's step as the placements see it (``hpnn.parallel``, ``hpnn.distributed``):
its functions, weights, random generators and metrics, with nothing of the model's
classes, so the placements import nothing from ``models`` or ``layers``."""

from __future__ import annotations

import numpy as np

from hpnn.layers.base import walk_layers


def outputs_data(y_pred):
    """The arrays of a model's output tensor, or of each of its outputs."""
    if isinstance(y_pred, (list, tuple)):
        return [t.data for t in y_pred]
    return y_pred.data


class Step:
    """A model's step as the placements see it: functions, weights, generators, metrics."""

    def __init__(self, model):
        self.model = model
        self._generators = None

    def fn(self, kind):
        m = self.model
        return {"train": m.train_step, "test": m.test_step, "predict": m.predict_step}[kind]

    def variables(self):
        return self.model.weights

    def generators(self):
        """The random generators the model's layers draw from (their states travel to
        the worker processes with the weights)."""
        if self._generators is None:
            found, seen = [], set()
            for layer in walk_layers(self.model):
                for value in vars(layer).values():
                    if isinstance(value, np.random.Generator) and id(value) not in seen:
                        seen.add(id(value))
                        found.append(value)
            self._generators = found
        return self._generators

    def metrics(self):
        return self.model._compiled_metrics
