"""Model: layers, their weights and saving; training comes from the trainer mixin."""

from __future__ import annotations

import numpy as np

from hpnn.layers.base import Layer
from hpnn.training.step import outputs_data  # noqa: F401  (hpnn.models.model.outputs_data)
from hpnn.training.trainer import Trainer


class Model(Trainer, Layer):
    """Base class of models; subclasses define ``call`` and the ``layers`` list.

    ``Model(inputs, outputs)`` makes a functional model (``hpnn.models.functional``),
    as in Keras.
    """

    def _summary_totals(self, cols) -> list[str]:
        """The parameter counts that end ``summary()``'s table ``cols`` wide."""
        trainable = sum(w.size for w in self.trainable_weights)
        total = self.count_params()
        return [
            "=" * sum(cols),
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
            "-" * sum(cols),
        ]

    def summary(
        self,
        line_length=80,
        positions=None,
        print_fn=None,
        expand_nested=False,
        show_trainable=False,
        layer_range=None,
    ):
        """Print the layers a subclassed model holds (in assignment order), their output
        shapes (``?`` until the model is built or called) and parameter counts."""
        print_fn = print_fn or print
        cols = (max(34, line_length - 46), 28, 12)
        lines = [
            f'Model: "{self.name}"',
            "-" * sum(cols),
            "Layer (type)".ljust(cols[0]) + "Output Shape".ljust(cols[1]) + "Param #",
            "=" * sum(cols),
        ]
        for layer in self.layers:
            built = layer.built and layer.output_shape is not None
            lines.append(
                f"{layer.name} ({type(layer).__name__})".ljust(cols[0] - 1)
                + " "
                + (str(layer.output_shape) if built else "?").ljust(cols[1])
                + (f"{layer.count_params():,}" if layer.built else "0 (unbuilt)")
            )
        print_fn("\n".join([*lines, *self._summary_totals(cols)]))

    def get_build_config(self):
        """Keras' build config, ``{"input_shape": (None, ...)}``, once built; else None."""
        return {"input_shape": self.input_shape} if self.built else None

    def build_from_config(self, config) -> None:
        """Build from ``get_build_config()``'s dict (nothing to do once built)."""
        shape = (config or {}).get("input_shape")
        if shape is not None and not self.built:
            self.build_for(tuple(shape))

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from hpnn.models.functional import Functional

            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self.history = None

    # -- weights over all layers ----------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The layers a subclassed model holds in its attributes (Keras' tracking)."""
        return self._sublayers()

    def build_for(self, input_shape):
        """A subclassed model builds by calling itself once on zeros of ``input_shape``
        (one sample): its layers build, and the output shape is known."""
        if type(self).call is Layer.call or type(self).build is not Layer.build or self.built:
            return super().build_for(input_shape)  # Sequential, or a model with a build()
        shape = (None, *tuple(input_shape)[1:])
        self.output_shape = self._probe(shape)
        self.built = True
        self.input_shape = shape
        return self.output_shape

    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return (
            [w for layer in self.layers for w in layer.trainable_weights] if self.trainable else []
        )

    @property
    def non_trainable_weights(self):
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def get_layer(self, name=None, index=None):
        """A layer of this model by ``name`` or by ``index`` in ``layers`` (as Keras)."""
        if (name is None) == (index is None):
            raise ValueError(
                f"Model '{self.name}'.get_layer: expected a layer name or an index, not "
                f"both or neither. Received: name={name!r}, index={index!r}"
            )
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise ValueError(
                    f"Model '{self.name}'.get_layer: index must be an int. Received: {index!r}"
                )
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(
                    f"Model '{self.name}'.get_layer: index {index} out of range: the model "
                    f"has {len(self.layers)} layers"
                )
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"Model '{self.name}'.get_layer: no layer named {name!r}. "
            f"Existing layers: {[layer.name for layer in self.layers]}"
        )

    def get_weights(self):
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        expected = self.weights
        if len(weights) != len(expected):
            raise ValueError(
                f"Model '{self.name}' has {len(expected)} weight arrays. Received: {len(weights)} "
                "(is the model built? call it on data or give it an Input first)"
            )
        i = 0
        for layer in self.layers:
            n = len(layer.weights)
            layer.set_weights(weights[i : i + n])
            i += n

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    # -- saving ---------------------------------------------------------------------
    def save(self, filepath) -> None:
        """Save architecture, weights, compile config and optimizer state to one file."""
        from hpnn.models import saving  # saving imports Sequential: import late

        saving.save_model(self, filepath)

    def save_weights(self, filepath) -> None:
        """Save the weights alone (atomically)."""
        from hpnn.models import saving

        saving.save_weights(self, filepath)

    def load_weights(self, filepath) -> None:
        """Load weights from ``save_weights`` or ``save``; nothing is set unless all fit."""
        from hpnn.models import saving

        saving.load_weights(self, filepath)

    def to_json(self, **kwargs) -> str:
        """The architecture as JSON (no weights); ``hpnn.models.model_from_json`` reads it."""
        from hpnn.models import saving

        return saving.to_json(self, **kwargs)
