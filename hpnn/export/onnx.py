"""``to_onnx``: a built Sequential model as an ONNX graph (opset 17 or newer).

hpnn is channels-last (``(N, H, W, C)``); ONNX's Conv and pooling ops are
channels-first. The graph builder records which tensors are channels-first and
inserts a Transpose only where a layer needs the other layout, so a conv stack
costs one Transpose after the input and one before ``Flatten`` (whose order then
matches hpnn's). The converters for each layer type are in ``onnx_layers`` and
``onnx_recurrent``.
"""

from __future__ import annotations

import itertools

import numpy as np

from hpnn.backend import to_numpy

DEFAULT_OPSET = 17


def require_onnx():
    """The ``onnx`` module, or an ImportError that names the extra to install."""
    try:
        import onnx
        from onnx import helper, numpy_helper  # noqa: F401 - the submodules used here
    except ImportError as e:
        raise ImportError(
            "to_onnx needs the onnx package: pip install 'hpnn[onnx]' (or pip install onnx)."
        ) from e
    return onnx


def unsupported(layer, reason="", supported=None):
    """The ValueError for a layer that cannot be exported, listing what can."""
    from hpnn.export.onnx_layers import supported_layers

    names = ", ".join(supported or supported_layers())
    why = f" ({reason})" if reason else ""
    return ValueError(
        f"to_onnx: layer '{layer.name}' ({type(layer).__name__}) cannot be exported{why}. "
        f"Supported layers: {names}."
    )


class Graph:
    """Nodes, initializers and the layout of each tensor (by name) while a model is converted.

    ``opset`` is the target opset version; converters read it where an op changed.
    """

    def __init__(self, opset: int):
        self.onnx = require_onnx()
        self.opset = opset
        self.nodes, self.initializers = [], []
        self.channels_first_names: set[str] = set()
        self.int_names: set[str] = set()
        self._ids = itertools.count()

    def fresh(self, base: str) -> str:
        return f"{base}_{next(self._ids)}"

    def const(self, value, base="const", dtype=np.float32) -> str:
        """An initializer holding ``value`` (a weight Variable, array or list)."""
        arr = np.asarray(to_numpy(getattr(value, "data", value)), dtype=dtype)
        name = self.fresh(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def ints(self, values, base="shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), base, np.int64)

    def op(self, op_type, inputs, base=None, outputs=1, like=None, **attrs):
        """Add a node; returns its output name (a list if ``outputs > 1``).

        ``like``: an input whose layout (channels-first or not) the output keeps.
        """
        base = base or op_type.lower()
        names = [self.fresh(base) for _ in range(outputs)]
        self.nodes.append(
            self.onnx.helper.make_node(op_type, list(inputs), names, name=names[0], **attrs)
        )
        if like is not None and like in self.channels_first_names:
            self.channels_first_names.add(names[0])
        return names if outputs > 1 else names[0]

    def is_channels_first(self, x) -> bool:
        return x in self.channels_first_names

    def channels_first(self, x: str, rank: int) -> str:
        """``x`` in ``(N, C, ...)`` layout (a Transpose unless it is already)."""
        if rank < 3 or x in self.channels_first_names:
            return x
        y = self.op("Transpose", [x], "to_nchw", perm=[0, rank - 1, *range(1, rank - 1)])
        self.channels_first_names.add(y)
        return y

    def channels_last(self, x: str, rank: int) -> str:
        """``x`` in hpnn's ``(N, ..., C)`` layout (a Transpose unless it is already)."""
        if x not in self.channels_first_names:
            return x
        return self.op("Transpose", [x], "to_nhwc", perm=[0, *range(2, rank), 1])

    def as_int64(self, x: str) -> str:
        if x in self.int_names:
            return x
        y = self.op("Cast", [x], "ids", to=self.onnx.TensorProto.INT64)
        self.int_names.add(y)
        return y


def _value_info(onnx, name, shape, elem_type, prefix):
    dims = [
        ("batch" if i == 0 else f"{prefix}_{i}") if d is None else int(d)
        for i, d in enumerate(shape)
    ]
    return onnx.helper.make_tensor_value_info(name, elem_type, dims)


def _check_model(model, where="to_onnx"):
    from hpnn.models.functional import Functional
    from hpnn.models.sequential import Sequential

    if not isinstance(model, (Sequential, Functional)):
        raise ValueError(
            f"{where}: only Sequential and functional models can be exported. "
            f"Received: {type(model).__name__}"
        )
    if not model.built or model.input_shape is None:
        raise ValueError(
            f"{where}: model '{model.name}' is not built: give it an Input or call it on data."
        )
    if not model.layers:
        raise ValueError(f"{where}: model '{model.name}' has no layers.")


def _check_masks(layers):
    """A mask (``Embedding(mask_zero=True)``) that a later layer would use cannot be exported."""
    for i, layer in enumerate(layers):
        if getattr(layer, "mask_zero", False) and any(
            later._call_accepts_mask for later in layers[i + 1 :]
        ):
            raise unsupported(
                layer, "mask_zero=True feeds a mask to later layers; ONNX has no masks"
            )


def to_onnx(model, path=None, *, opset=DEFAULT_OPSET, input_name="input", output_name="output"):
    """Export a built Sequential or functional model to ONNX (needs the ``onnx`` extra).

    Args:
        model: a built ``Sequential`` or ``Model(inputs, outputs)`` (inference
            behaviour: Dropout is the identity, BatchNormalization uses its moving
            statistics).
        path: where to write the ``.onnx`` file; None to only return the model.
        opset: ONNX opset version, 17 or newer.
        input_name, output_name: names of the graph's input and output; a functional
            model with several inputs (outputs) names them after its Input layers
            (``output_name`` + ``_0``, ``_1``...).

    Returns:
        the ``onnx.ModelProto`` (checked with ``onnx.checker.check_model(full_check=True)``).

    Raises:
        ValueError: naming the first layer that cannot be exported, with the list of
            supported layer types.

    >>> to_onnx(model, "model.onnx")                                  # doctest: +SKIP
    """
    from hpnn import __version__

    onnx = require_onnx()
    if not isinstance(opset, int) or opset < DEFAULT_OPSET:
        raise ValueError(f"to_onnx: opset must be an int >= 17. Received: opset={opset!r}")
    _check_model(model)
    g = Graph(opset)
    if hasattr(model, "_nodes"):  # functional
        inputs, outputs = _convert_functional(g, model, input_name, output_name)
    else:
        inputs, outputs = _convert_sequential(g, model, input_name, output_name)
    graph = onnx.helper.make_graph(g.nodes, model.name, inputs, outputs, initializer=g.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="hpnn",
        producer_version=__version__,
        ir_version=onnx.helper.find_min_ir_version_for(opsets),
    )
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        onnx.save(proto, str(path))
    return proto


def _graph_input(g, name, shape, is_float):
    onnx = g.onnx
    if not is_float:
        g.int_names.add(name)
    elem = onnx.TensorProto.FLOAT if is_float else onnx.TensorProto.INT64
    return _value_info(onnx, name, shape, elem, f"{name}_in")


def _graph_output(g, x, shape, name):
    x = g.channels_last(x, len(shape))
    g.nodes.append(g.onnx.helper.make_node("Identity", [x], [name], name=name))
    return _value_info(g.onnx, name, shape, g.onnx.TensorProto.FLOAT, f"{name}_out")


def _convert_sequential(g, model, input_name, output_name):
    from hpnn.export.onnx_layers import convert_layer

    layers = model.layers
    _check_masks(layers)
    graph_in = _graph_input(g, input_name, model.input_shape, model._float_input)
    x, shape = input_name, tuple(model.input_shape)
    for layer in layers:
        x, shape = convert_layer(g, layer, x, shape)
    return [graph_in], [_graph_output(g, x, shape, output_name)]


def _convert_functional(g, model, input_name, output_name):
    """Each recorded call in running order; a merge converter takes a list of inputs."""
    from hpnn.export.onnx_layers import convert_layer
    from hpnn.export.onnx_merge import convert_merge

    many_in = len(model._inputs) > 1
    names, shapes, graph_in = {}, {}, []
    for t in model._inputs:
        name = t._layer.name if many_in else input_name
        is_float = np.dtype(t.dtype).kind == "f"
        graph_in.append(_graph_input(g, name, t.shape, is_float))
        names[id(t)], shapes[id(t)] = name, tuple(t.shape)
    for node in model._nodes:
        layer = node._layer
        if node._group is not None or node._n_args != len(node._inputs):
            raise NotImplementedError(
                f"to_onnx: layer '{layer.name}' is called with several outputs "
                "(return_state) or symbolic keyword arguments (initial_state), which the "
                "ONNX export does not convert yet."
            )
        xs = [names[id(t)] for t in node._inputs]
        ins = [shapes[id(t)] for t in node._inputs]
        if layer._list_input:
            y, shape = convert_merge(g, layer, xs, ins, node._kwargs)
        else:
            y, shape = convert_layer(g, layer, xs[0], ins[0])
        names[id(node)], shapes[id(node)] = y, tuple(shape)
    outs = model._outputs
    graph_out = [
        _graph_output(
            g,
            names[id(t)],
            shapes[id(t)],
            f"{output_name}_{i}" if len(outs) > 1 else output_name,
        )
        for i, t in enumerate(outs)
    ]
    return graph_in, graph_out
