"""Keras 3's ``Model`` methods around the compiled state (mixed into ``Trainer``): the
metrics' names and results, resetting them, and the compile settings as a config.

hpnn's loss is not a metric object (the epoch loops keep its running sum, and the logs
of ``fit`` and ``evaluate`` hold it), so ``get_metrics_result`` reports the compiled
metrics alone, and ``metrics_names`` lists ``"loss"`` and then the metrics' names (the
keys of the logs, in their order: Keras 3 itself lists ``["loss", "compile_metrics"]``).
"""

from __future__ import annotations


class ModelAPI:
    """``metrics_names``, ``reset_metrics``, ``get_metrics_result``,
    ``get_compile_config`` and ``compile_from_config``."""

    @property
    def metrics_names(self) -> list[str]:
        """``["loss", <metric names>]`` once compiled (the metrics are made from the
        first batch's targets: before ``fit`` or ``evaluate``, ``["loss"]``); ``[]``
        before ``compile``."""
        if not getattr(self, "compiled", False):
            return []
        return ["loss", *(m.name for m in self._compiled_metrics)]

    def reset_metrics(self) -> None:
        """Reset the state of every compiled metric."""
        for m in self._compiled_metrics:
            m.reset_state()

    def get_metrics_result(self) -> dict:
        """``{name: result}`` of the compiled metrics, as they stand now."""
        return {m.name: m.result() for m in self._compiled_metrics}

    def get_compile_config(self):
        """The compile settings in Keras' form (optimizer, loss and metrics as Keras
        entries), or None before ``compile``; ``compile_from_config`` takes it back."""
        if not getattr(self, "compiled", False):
            return None
        from hpnn.io import keras_format

        return keras_format.compile_config(self)

    def compile_from_config(self, config) -> None:
        """``compile`` with the settings of ``get_compile_config`` (hpnn's or Keras')."""
        if not isinstance(config, dict):
            raise ValueError(
                f"Model '{self.name}'.compile_from_config: expected the dict that "
                f"get_compile_config() returns. Received: {type(config).__name__}"
            )
        from hpnn.io import keras_config, keras_format
        from hpnn.models.functional import Functional
        from hpnn.models.sequential import Sequential

        reader = keras_config.ConfigReader(Sequential, Functional)
        self.compile(**keras_format.compile_arguments(config, reader))
