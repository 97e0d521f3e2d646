"""The functional API: ``hpnn.Model(inputs, outputs)`` over a graph of layer calls.

Calling a layer on symbolic tensors (``hpnn.Input(...)``, or the result of another
such call) runs nothing: it builds the layer from the shapes and returns a
``KerasTensor`` that records the call. ``Model(inputs, outputs)`` walks those
records back from the outputs, orders the calls so that each comes after the calls
it reads, and runs them in that order on real tensors. A layer called twice shares
its weights. Back-propagation needs nothing more: every call is recorded on the
autodiff tape as it runs.
"""

from __future__ import annotations

import numpy as np

from hpnn.backend import floatx, get_xp, xp_default
from hpnn.data import adapter
from hpnn.engine.tensor import Tensor
from hpnn.layers.base import KerasTensor, Layer
from hpnn.layers.core import InputLayer
from hpnn.layers.symbolic import map_tensors
from hpnn.models.model import Model


def _as_list(value, what: str) -> list:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if isinstance(value, dict):
        raise NotImplementedError(f"Model: {what} as a dict is not supported yet; pass a list.")
    if not items or not all(isinstance(t, KerasTensor) for t in items):
        raise TypeError(
            f"Model: {what} must be symbolic tensors (hpnn.Input(...) and layers called on "
            f"them). Received: {[type(t).__name__ for t in items] or value!r}"
        )
    return items


class Functional(Model):
    """A model defined by its symbolic inputs and outputs (``hpnn.Model(inputs, outputs)``).

    >>> inputs = hpnn.Input(shape=(16,))
    >>> h = layers.Dense(16, activation="relu")(inputs)
    >>> outputs = layers.Dense(3, activation="softmax")(layers.add([inputs, h]))
    >>> model = hpnn.Model(inputs, outputs)
    """

    def __init__(self, inputs, outputs, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._inputs = _as_list(inputs, "inputs")
        self._outputs = _as_list(outputs, "outputs")
        # (a list of one input takes a plain array too, as Keras)
        self._multi_in = isinstance(inputs, (list, tuple)) and len(inputs) > 1
        self._multi_out = isinstance(outputs, (list, tuple))
        self._list_input = self._multi_in
        for t in self._inputs:
            if not isinstance(t._layer, InputLayer):
                raise ValueError(
                    f"Model '{self.name}': inputs must come straight from hpnn.Input(...). "
                    f"Received: the output of layer '{t._layer.name}'"
                )
        self._nodes = self._order()
        layers, seen = [t._layer for t in self._inputs], {id(t._layer) for t in self._inputs}
        for node in self._nodes:
            if id(node._layer) not in seen:
                seen.add(id(node._layer))
                layers.append(node._layer)
        names = [layer.name for layer in layers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(
                f"Model '{self.name}': layer names must be unique. Received: {dup} more than once"
            )
        for layer in layers:
            if getattr(layer, "mask_zero", False):
                raise NotImplementedError(
                    f"Model '{self.name}': masks (Embedding(mask_zero=True)) are not propagated "
                    "in functional models yet; use Sequential."
                )
        self._layers = layers
        shapes_in = [t.shape for t in self._inputs]
        shapes_out = [t.shape for t in self._outputs]
        self.input_shape = shapes_in if self._multi_in else shapes_in[0]
        self.output_shape = shapes_out if self._multi_out else shapes_out[0]
        self.built = True

    def _order(self) -> list:
        """The recorded calls the outputs depend on, each after those it reads."""
        inputs = {id(t) for t in self._inputs}
        order, done, active = [], set(), set()
        for out in self._outputs:
            stack = [(out, False)]
            while stack:
                node, expanded = stack.pop()
                if id(node) in done or id(node) in inputs:
                    continue
                if expanded:
                    active.discard(id(node))
                    done.add(id(node))
                    order.append(node)
                    continue
                if not node._inputs:  # an Input that is not among the model's inputs
                    raise ValueError(
                        f"Model '{self.name}': the outputs depend on the Input "
                        f"'{node._layer.name}', which is not in inputs."
                    )
                active.add(id(node))
                stack.append((node, True))
                stack.extend((t, False) for t in reversed(node._inputs) if id(t) not in done)
        return order

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    # Keras' model.inputs / outputs (lists) and input / output (one tensor, or the list)
    @property
    def inputs(self) -> list:
        return list(self._inputs)

    @property
    def outputs(self) -> list:
        return list(self._outputs)

    @property
    def input(self):
        return list(self._inputs) if self._multi_in else self._inputs[0]

    @property
    def output(self):
        return list(self._outputs) if self._multi_out else self._outputs[0]

    @property
    def _float_input(self):
        """Whether batches are cast to floatx: not when the layers reading an input take
        integer ids (Embedding)."""
        first = self._inputs[0]
        readers = [n._layer for n in self._nodes if any(t is first for t in n._inputs)]
        return all(layer._float_input for layer in readers)

    # -- shapes ------------------------------------------------------------------------
    def check_input_shape(self, shape):
        shapes = list(shape) if self._multi_in else [shape]
        if len(shapes) != len(self._inputs):
            raise ValueError(
                f"Model '{self.name}': expects {len(self._inputs)} inputs. Received: {len(shapes)}"
            )
        for t, s in zip(self._inputs, shapes, strict=True):
            t._layer.check_input_shape(tuple(s))
            want = t.shape
            if len(s) != len(want) or any(
                w is not None and w != g for w, g in zip(want[1:], tuple(s)[1:], strict=False)
            ):
                raise ValueError(
                    f"Model '{self.name}': input '{t._layer.name}' expects shape {want} "
                    f"(None = any). Received: shape={tuple(s)}"
                )

    def build_for(self, input_shape):
        self.check_input_shape(input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape):
        return self.output_shape

    # -- running -------------------------------------------------------------------------
    def __call__(self, x, *args, **kwargs):
        if not self._multi_in and isinstance(x, (list, tuple)) and len(x) == 1:
            x = x[0]  # ([x] for a list of one Input, as Keras takes it)
        return super().__call__(x, *args, **kwargs)

    def call(self, x, training=False):
        xs = list(x) if self._multi_in else [x]
        values = {id(t): v for t, v in zip(self._inputs, xs, strict=True)}
        calls = {}  # a call with several outputs runs once: its outputs by its group
        for node in self._nodes:
            group = node._group
            if group is not None and id(group) in calls:
                values[id(node)] = calls[id(group)][node._index]
                continue
            args = [values[id(t)] for t in node._inputs[: node._n_args]]
            kwargs = {k: map_tensors(v, lambda t: values[id(t)]) for k, v in node._kwargs.items()}
            layer = node._layer
            out = layer(args if layer._list_input else args[0], training=training, **kwargs)
            if group is not None:
                calls[id(group)] = out
                out = out[node._index]
            values[id(node)] = out
        outs = [values[id(t)] for t in self._outputs]
        return outs if self._multi_out else outs[0]

    def _output_names(self):
        return [t._layer.name for t in self._outputs] if self._multi_out else None

    def _prepare(self, x, y, what, targets_needed=True):
        """Check the data: one array per input and per output (a list, or a dict by
        Input or output layer name, where there are several)."""
        if self._multi_in:
            xs = self._input_arrays(x, what)
        else:
            if isinstance(x, (list, tuple)) and len(x) == 1:  # [x] for a list of one Input
                x = x[0]
            xs, _ = super()._prepare(x, None, what, targets_needed=False)
        if y is None:
            if targets_needed:
                raise ValueError(f"{what}y is required. Received: y=None")
            return xs, None
        if not self._multi_out:
            y = adapter.to_array(y, f"{what}y")
            adapter.check_finite(y, f"{what}y")
            self._check_count(xs, y, what)
            adapter.check_targets(
                y, getattr(self.loss, "name", None), self.output_shape, f"{what}y"
            )
            return xs, y
        names = self._output_names()
        arrays = self._named_arrays(y, names, f"{what}y", "output")
        ys = []
        for i, (a, name) in enumerate(zip(arrays, names, strict=True)):
            label = f"{what}y[{i}] ('{name}')"
            a = adapter.to_array(a, label)
            adapter.check_finite(a, label)
            self._check_count(xs, a, what)
            adapter.check_targets(a, self.loss.losses[i].name, self.output_shape[i], label)
            ys.append(a)
        self._target_shapes = [a.shape for a in ys]
        return xs, adapter.InputList(ys)

    def _named_arrays(self, value, names, label, kind):
        """``value`` as a list in ``names`` order: from a list, a dict, or an InputList."""
        if isinstance(value, adapter.InputList):  # already split off (validation_split)
            value = value.arrays
        if isinstance(value, dict):
            missing = [n for n in names if n not in value]
            if missing:
                raise ValueError(
                    f"Model '{self.name}': {label} as a dict needs the keys {names}. "
                    f"Received: keys {sorted(value)}"
                )
            value = [value[n] for n in names]
        if len(names) == 1 and not isinstance(value, (list, tuple)):
            value = [value]  # one input (or output) given as a list, fed one array: as Keras
        if not isinstance(value, (list, tuple)) or len(value) != len(names):
            got = (
                f"a list of {len(value)}"
                if isinstance(value, (list, tuple))
                else type(value).__name__
            )
            raise ValueError(
                f"Model '{self.name}': {label} must be a list of {len(names)} arrays, one per "
                f"{kind} {names}. Received: {got}"
            )
        return list(value)

    def _check_count(self, xs, y, what):
        if len(y) != len(xs):
            raise ValueError(
                f"{what}x and {what}y must have the same number of samples. Received: "
                f"{len(xs)} and {len(y)}"
            )

    def _input_arrays(self, x, what):
        names = [t._layer.name for t in self._inputs]
        x = self._named_arrays(x, names, f"{what}x", "input")
        arrays = []
        for i, (a, t) in enumerate(zip(x, self._inputs, strict=True)):
            label = f"{what}x[{i}]"
            a = adapter.to_array(a, label)
            adapter.check_finite(a, label)
            want = t.shape
            if a.ndim != len(want) or any(
                w is not None and w != g for w, g in zip(want[1:], a.shape[1:], strict=True)
            ):
                raise ValueError(
                    f"Model '{self.name}': {label} feeds input '{names[i]}' of shape {want} "
                    f"(None = any). Received: shape={a.shape}"
                )
            if len(a) != len(arrays[0] if arrays else a):
                raise ValueError(
                    f"Model '{self.name}': every input array must have the same number of "
                    f"samples. Received: {[len(b) for b in (*arrays, a)]}"
                )
            arrays.append(a)
        return adapter.InputList(arrays)

    def _to_inputs(self, xb):
        """One tensor per input: floats cast to floatx unless the Input declares an
        integer dtype (ids for an Embedding)."""
        weights = self.weights
        xp = get_xp(weights[0].data) if weights else xp_default()
        out = []
        for a, t in zip(xb.arrays, self._inputs, strict=True):
            keep = np.dtype(t.dtype).kind in "iub"
            out.append(Tensor(xp.asarray(a if keep else a.astype(floatx(), copy=False))))
        return out

    # -- description ------------------------------------------------------------------
    def summary(self, line_length=98, print_fn=None):
        """Print the layers, their output shapes, parameter counts and inbound layers."""
        print_fn = print_fn or print
        cols = (30, 24, 12, max(20, line_length - 66))
        head = ("Layer (type)", "Output Shape", "Param #", "Connected to")
        lines = [
            f'Model: "{self.name}"',
            "-" * sum(cols),
            "".join(h.ljust(c) for h, c in zip(head, cols, strict=True)),
        ]
        lines.append("=" * sum(cols))
        for t in self._inputs:
            lines.append(self._summary_row(t._layer, t.shape, [], cols))
        shown = set()
        for node in self._nodes:
            group = node._group
            if group is not None and id(group) in shown:
                continue
            shape = node.shape
            if group is not None:  # one row a call: the shapes of all its outputs
                shown.add(id(group))
                shape = node._layer.compute_output_shape(
                    [t.shape for t in node._inputs]
                    if node._layer._list_input
                    else node._inputs[0].shape
                )
            sources = [t._layer.name for t in node._inputs]
            lines.append(self._summary_row(node._layer, shape, sources, cols))
        print_fn("\n".join([*lines, *self._summary_totals(cols)]))

    @staticmethod
    def _summary_row(layer, shape, sources, cols) -> str:
        name = f"{layer.name} ({type(layer).__name__})"
        cells = (name, str(shape), f"{layer.count_params():,}", ", ".join(sources))
        return "".join(str(c)[: w - 1].ljust(w) for c, w in zip(cells, cols, strict=True))

    # -- config --------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The layers' configs and the calls between them, in running order; layers
        and calls are named ``[layer_name, call_index]``."""
        count: dict[int, int] = {}
        ref: dict[int, list] = {}
        for t in self._inputs:
            ref[id(t)] = [t._layer.name, 0]
        calls, group_call = [], {}
        for node in self._nodes:
            group = node._group
            if group is not None and id(group) in group_call:  # the call is listed already
                ref[id(node)] = [node._layer.name, group_call[id(group)], node._index]
                continue
            k = count.get(id(node._layer), 0)
            count[id(node._layer)] = k + 1
            ref[id(node)] = [node._layer.name, k]
            if group is not None:  # ``[layer, call, output]`` for one of several outputs
                group_call[id(group)] = k
                ref[id(node)].append(node._index)
            kwargs = {
                k: map_tensors(v, lambda t: {"tensor": ref[id(t)]}) for k, v in node._kwargs.items()
            }
            calls.append(
                {
                    "layer": node._layer.name,
                    "inputs": [ref[id(t)] for t in node._inputs[: node._n_args]],
                    **({"kwargs": kwargs} if kwargs else {}),
                }
            )
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [
                {"class_name": type(layer).__name__, "config": layer.get_config()}
                for layer in self._layers
            ],
            "calls": calls,
            "inputs": [ref[id(t)] for t in self._inputs],
            "outputs": [ref[id(t)] for t in self._outputs],
            "multi_inputs": self._multi_in,
            "multi_outputs": self._multi_out,
        }

    @classmethod
    def from_config(cls, config, layer_class=None):
        """Rebuild from ``get_config``; ``layer_class(name)`` finds a layer class."""
        if layer_class is None:
            from hpnn import layers as layers_mod

            def layer_class(name):
                return getattr(layers_mod, name)

        made, tensors = {}, {}
        for entry in config["layers"]:
            layer = layer_class(entry["class_name"]).from_config(dict(entry["config"]))
            made[layer.name] = layer
            if isinstance(layer, InputLayer):
                tensors[(layer.name, 0)] = layer.output
        calls_so_far: dict[str, int] = {}
        for call in config["calls"]:
            layer = made[call["layer"]]
            args = [tensors[tuple(r)] for r in call["inputs"]]
            kwargs = {k: _tensors_in(v, tensors) for k, v in call.get("kwargs", {}).items()}
            out = layer(args if layer._list_input else args[0], **kwargs)
            k = calls_so_far.get(layer.name, 0)
            calls_so_far[layer.name] = k + 1
            if isinstance(out, list):  # several outputs: ``[layer, call, output]``
                for i, t in enumerate(out):
                    tensors[(layer.name, k, i)] = t
            else:
                tensors[(layer.name, k)] = out
        ins = [tensors[tuple(r)] for r in config["inputs"]]
        outs = [tensors[tuple(r)] for r in config["outputs"]]
        return cls(
            ins if config.get("multi_inputs") else ins[0],
            outs if config.get("multi_outputs") else outs[0],
            name=config.get("name"),
            trainable=config.get("trainable", True),
        )


def _tensors_in(value, tensors):
    """A saved keyword argument with its ``{"tensor": ref}`` entries (alone or in a list)
    back as the symbolic tensors they name."""
    if isinstance(value, dict) and set(value) == {"tensor"}:
        return tensors[tuple(value["tensor"])]
    if isinstance(value, (list, tuple)) and any(
        isinstance(v, dict) and set(v) == {"tensor"} for v in value
    ):
        return [_tensors_in(v, tensors) for v in value]
    return value
