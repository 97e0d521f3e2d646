"""Sequential: a plain stack of layers, each feeding the next."""

from __future__ import annotations

from hpnn.layers import fusion
from hpnn.layers.base import Layer
from hpnn.layers.core import InputLayer, KerasTensor
from hpnn.models.model import Model


class Sequential(Model):
    """A linear stack of layers.

    Args:
        layers: layers in order; the first may be ``hpnn.Input(shape=...)`` or an
            ``InputLayer``, which builds the model at once.

    >>> model = Sequential([Input(shape=(4,)), Dense(3, activation="softmax")])
    """

    _makes_masks = False  # whether a layer makes a mask (set in build)

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(name=name, trainable=trainable)
        self._layers: list[Layer] = []
        self._input_layer: InputLayer | None = None
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def add(self, layer) -> None:
        """Append a layer (or an ``Input``) to the stack."""
        if isinstance(layer, KerasTensor):
            layer = layer._layer
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(
                    f"Sequential '{self.name}': an Input can only be the first element."
                )
            self._input_layer = layer
            self.build_for(layer.batch_shape)
            return
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential '{self.name}': add() expects a Layer. "
                f"Received: {type(layer).__name__} {layer!r}"
            )
        if any(existing is layer for existing in self._layers):
            raise ValueError(
                f"Sequential '{self.name}': layer '{layer.name}' is already in the model; use a "
                "new layer object for each position (one object would share its weights)."
            )
        self._layers.append(layer)
        if len(self._layers) == 1 and self._input_layer is None and layer._input_shape_arg:
            self._input_layer = InputLayer(shape=layer._input_shape_arg)
        self._rebuild()

    def pop(self) -> Layer:
        if not self._layers:
            raise IndexError(f"Sequential '{self.name}': there is no layer to pop.")
        layer = self._layers.pop()
        layer.__dict__.pop("_sequential_output", None)  # no longer in this stack
        self._rebuild()
        return layer

    def _rebuild(self) -> None:
        """After add/pop: build again from the known input shape (Input, or the last call)."""
        shape = (
            self._input_layer.batch_shape
            if self._input_layer is not None
            else (self.input_shape if self.built else None)
        )
        self.built = False
        if shape is not None:
            self.build_for(shape)

    def check_input_shape(self, shape):
        if self._layers:
            self._layers[0].check_input_shape(shape)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = layer.build_for(shape)
        self._steps = fusion.plan(self._layers)
        self._makes_masks = any(layer._computes_mask for layer in self._layers)
        self.built = True
        self._symbolic_chain(tuple(input_shape))

    def _symbolic_chain(self, input_shape) -> None:
        """Each layer's place in the stack as a symbolic tensor (shapes only, nothing
        runs), so ``model.inputs``, ``model.output`` and ``layer.output`` work as in
        Keras, e.g. ``Model(model.inputs, model.layers[1].output)``."""
        first = self._input_layer
        if first is None:  # built from data: an Input of that shape, batch size open
            old = self.__dict__.get("_chain_input")
            fits = old is not None and old.batch_shape[1:] == tuple(input_shape[1:])
            first = old if fits else InputLayer(shape=input_shape[1:])
        self._chain_input = first
        x = first.output
        for layer in self._layers:
            x = KerasTensor(layer.output_shape, layer.dtype, layer, [x])
            layer.__dict__["_sequential_output"] = x

    def _chain_end(self, what: str):
        if not self.built or self.__dict__.get("_chain_input") is None:
            raise AttributeError(
                f"Sequential '{self.name}' has no {what} yet: start it with "
                "hpnn.Input(shape=...), or call it on data (fit, predict) first."
            )
        if not self._layers:
            return self._chain_input.output
        return self._layers[-1].__dict__["_sequential_output"]

    @property
    def inputs(self) -> list:
        self._chain_end("inputs")
        return [self._chain_input.output]

    @property
    def outputs(self) -> list:
        return [self._chain_end("outputs")]

    @property
    def input(self):
        return self.inputs[0]

    @property
    def output(self):
        return self._chain_end("output")

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
        return shape

    @property
    def _float_input(self):
        """Whether batches are cast to floatx (not integer ids for a first Embedding)."""
        return not self._layers or self._layers[0]._float_input

    def call(self, x, training=False, mask=None):
        if mask is None and not self._makes_masks:
            for step in self._steps:
                x = step(x, training=training)
            return x
        return self._call_masked(x, training, mask)

    def _call_masked(self, x, training, mask):
        """The stack with Keras' mask propagation (a layer such as Embedding makes one)."""
        for step in self._steps:
            if not isinstance(step, Layer):  # a fusion of mask-free layers: the mask ends
                x, mask = step(x, training=training), None
                continue
            if mask is not None and step._call_accepts_mask:
                y = step(x, training=training, mask=mask)
            else:
                y = step(x, training=training)
            if mask is not None or step._computes_mask:
                mask = step.compute_mask(x, mask)
            x = y
        return x

    def summary(self, line_length=80, print_fn=None):
        """Print a table of the layers, their output shapes and parameter counts."""
        if not self.built:
            raise ValueError(
                f"Sequential '{self.name}' has not been built yet: start it with "
                "hpnn.Input(shape=...), or call it on data (fit, predict) first."
            )
        print_fn = print_fn or print
        cols = (max(34, line_length - 46), 28, 12)
        lines = [
            f'Model: "{self.name}"',
            "-" * sum(cols),
            "Layer (type)".ljust(cols[0]) + "Output Shape".ljust(cols[1]) + "Param #",
            "=" * sum(cols),
        ]
        for layer in self._layers:
            lines.append(
                f"{layer.name} ({type(layer).__name__})".ljust(cols[0] - 1)
                + " "
                + str(layer.output_shape).ljust(cols[1])
                + f"{layer.count_params():,}"
            )
        print_fn("\n".join([*lines, *self._summary_totals(cols)]))

    def get_config(self) -> dict:
        layers = [
            {"class_name": type(lay).__name__, "config": lay.get_config()} for lay in self._layers
        ]
        inp = self._input_layer.get_config() if self._input_layer else None
        return {"name": self.name, "input": inp, "layers": layers}
