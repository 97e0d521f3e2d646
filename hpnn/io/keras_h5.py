"""Keras 3's weights layout (``.weights.h5``, and ``model.weights.h5`` in a ``.keras`` file).

Keras 3 (``model.save_weights("m.weights.h5")``) stores each layer's variables under
``layers/<key>/vars/<i>``, where ``<key>`` is the snake-case class name made unique
among its siblings in Keras' order of them (``dense``, ``dense_1``...: not the layers'
names; see :func:`keras_order`), and the variables of a layer's parts under their
attribute names (``lstm/cell/vars``, ``bidirectional/forward_layer/cell/vars``,
``multi_head_attention/query_dense/vars``; a nested model's under ``layers/``).
hpnn's layers keep Keras' weight layouts, so the arrays go to hpnn's layers in the
same order, and come back from them the same way. Needs ``h5py`` (``pip install h5py``).
"""

from __future__ import annotations

import io

import numpy as np

from hpnn.layers.base import Layer, _snake

# the parts of a layer that Keras keeps its weights in, in the order of its weights
_PARTS = {
    "Bidirectional": ("forward_layer", "backward_layer"),
    "MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense"),
    # (the recurrent layers' weights are their cell's; a wrapper's, its layer's)
    "LSTM": ("cell",),
    "GRU": ("cell",),
    "SimpleRNN": ("cell",),
    "TimeDistributed": ("layer",),
}


def _keys(layers) -> list[str]:
    """Keras' keys of sibling layers: the snake-case class name, ``_1``, ``_2``... after
    the first of a kind."""
    seen: dict[str, int] = {}
    out = []
    for layer in layers:
        base = _snake(type(layer).__name__)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(base if n == 0 else f"{base}_{n}")
    return out


def _is_model(layer) -> bool:
    return isinstance(getattr(layer, "layers", None), list)


def _h5py(action: str, path):
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            f"{action}: a Keras weights file needs h5py: pip install h5py. Received: {path!r}"
        ) from e
    return h5py


# -- reading -----------------------------------------------------------------------------
def _layer_arrays(layer, group, where) -> list:
    """The arrays of ``layer`` (and what it holds) from its group, in its weights' order."""
    if "layers" in group and _is_model(layer):  # a nested model
        return _model_arrays(layer, group["layers"], where)
    arrays = _own(group)
    parts = [k for k in group if k != "vars"]
    order = _PARTS.get(type(layer).__name__)
    if order is None:
        if len(parts) > 1:
            raise NotImplementedError(
                f"load_weights: layer '{layer.name}' ({type(layer).__name__}) keeps its "
                f"weights in several parts {sorted(parts)} of the Keras file, whose order "
                f"hpnn does not know for this layer. Received: {where}"
            )
        order = tuple(parts)
    for name in order:
        if name in group:
            arrays += _part_arrays(group[name])
    return arrays


def _own(group) -> list:
    v = group.get("vars", {})
    return [np.asarray(v[str(i)]) for i in range(len(v))]


def _part_arrays(group) -> list:
    """A part's arrays (``cell/vars``, ``query_dense/vars``): its own, then those of what
    it holds (an RNN layer holds its cell; Keras writes an empty ``vars`` beside it)."""
    out = _own(group)
    for name in group:
        if name != "vars":
            out += _part_arrays(group[name])
    return out


def _model_arrays(model, group, where) -> list:
    """The arrays for ``model.get_weights()``, found by Keras' keys."""
    found = {}
    layers = keras_order(model)
    for layer, key in zip(layers, _keys(layers), strict=True):
        if not layer.weights:
            continue
        if key not in group:
            raise ValueError(
                f"load_weights: no weights for layer '{layer.name}' ({type(layer).__name__}) "
                f"in {where}: Keras' file holds {sorted(group)} (keys by class name and "
                f"order: is it the same architecture?). Received: key {key!r} missing"
            )
        got = _layer_arrays(layer, group[key], where)
        want = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in got] != want:
            raise ValueError(
                f"load_weights: layer '{layer.name}' expects weights of shapes {want}. "
                f"Received: {[a.shape for a in got]} from {where} at layers/{key}"
            )
        found[id(layer)] = got
    return [a for layer in model.layers for a in found.get(id(layer), [])]


def load_keras_weights(model, path, where=None) -> None:
    """Set ``model``'s weights from a Keras 3 weights file (a path, or a binary file
    object) of the same architecture; nothing is set unless every layer's arrays fit."""
    where = where or repr(str(path))
    h5py = _h5py("load_weights", path)
    with h5py.File(path, "r") as f:
        if "layers" not in f:
            raise ValueError(f"load_weights: {where} holds no Keras layer weights.")
        arrays = _model_arrays(model, f["layers"], where)
    model.set_weights(arrays)


# -- writing -----------------------------------------------------------------------------
def keras_weights_bytes(model) -> bytes:
    """``model``'s weights in Keras 3's layout, as the bytes of an HDF5 file."""
    h5py = _h5py("save_weights", model.name)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        _write_model(f, model)
    return buffer.getvalue()


def _write_vars(group, name, arrays) -> None:
    v = group.create_group("vars")
    v.attrs["name"] = name
    for i, a in enumerate(arrays):
        v[str(i)] = a


def _write_model(group, model) -> None:
    _write_vars(group, model.name, [])
    layers = keras_order(model)
    under = group.create_group("layers")
    for layer, key in zip(layers, _keys(layers), strict=True):
        _write_layer(under.create_group(key), layer)


def _write_layer(group, layer) -> None:
    """A layer's weights where Keras keeps them: its own ``vars``, or its parts' (a part
    hpnn holds as a layer gets that layer's layout; else the weights split evenly)."""
    if _is_model(layer):
        _write_model(group, layer)
        return
    parts = _PARTS.get(type(layer).__name__)
    if parts is None:
        _write_vars(group, layer.name, layer.get_weights())
        return
    _write_vars(group, layer.name, [])
    held = [getattr(layer, p, None) for p in parts]
    if all(isinstance(h, Layer) for h in held):
        for part, sub in zip(parts, held, strict=True):
            _write_layer(group.create_group(part), sub)
        return
    weights = layer.get_weights()
    n = len(weights) // len(parts)
    for i, part in enumerate(parts):
        _write_vars(group.create_group(part), f"{layer.name}_{part}", weights[i * n : (i + 1) * n])


# -- Keras' order of a model's layers ----------------------------------------------------
def keras_order(model) -> list:
    """``model.layers`` in the order Keras 3 gives them (a functional model's: by depth
    from the outputs, deepest first, ties by first visit from the outputs): the order
    that Keras' weight keys (``dense``, ``dense_1``...) follow."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError, NotImplementedError):  # not built, or subclassed
        return list(model.layers)
    first_seen, post = _visit(inputs, outputs)
    depth_of_node, depth_of_layer = {}, {}
    for node in reversed(post):
        d = max(depth_of_node.get(id(node), 0), depth_of_layer.get(id(node._layer), 0))
        depth_of_layer[id(node._layer)] = depth_of_node[id(node)] = d
        for parent in node._inputs:  # (an Input's node has none)
            p = _head(parent)
            depth_of_node[id(p)] = max(d + 1, depth_of_node.get(id(p), 0))
    for t in inputs:  # an input no output depends on: depth 0, first
        depth_of_layer.setdefault(id(t._layer), 0)
        first_seen.setdefault(id(t._layer), -1)
    layers = list(model.layers)
    if any(id(layer) not in depth_of_layer for layer in layers):
        return layers
    return sorted(layers, key=lambda la: (-depth_of_layer[id(la)], first_seen[id(la)]))


def _head(t):
    """The tensor that stands for a call (the first of its outputs where it has several)."""
    return t._group if t._group is not None else t


def _visit(inputs, outputs):
    """Keras' walk back from the outputs (depth first, inputs in order, without
    recursion): each layer's first-visit index and the calls after their inputs."""
    stop = {id(t) for t in inputs}
    first_seen, finished, post = {}, set(), []
    for out in outputs:
        stack = [(out, False)]
        while stack:
            t, expanded = stack.pop()
            node = _head(t)
            if expanded:
                finished.add(id(node))
                post.append(node)
                continue
            if id(node) in finished:
                continue
            first_seen.setdefault(id(t._layer), len(first_seen))
            if id(t) in stop or not t._inputs:
                finished.add(id(node))
                post.append(node)
                continue
            stack.append((t, True))
            stack.extend((x, False) for x in reversed(node._inputs))
    return first_seen, post
