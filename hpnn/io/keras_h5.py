"""Keras 3's ``.weights.h5`` files: a Keras model's weights into the same hpnn model.

Keras 3 (``model.save_weights("m.weights.h5")``) stores each layer's variables under
``layers/<key>/vars/<i>``, where ``<key>`` is the snake-case class name made unique
among its siblings in their order (``dense``, ``dense_1``...: not the layers'
names), and the variables of a layer's parts under their attribute names
(``lstm/cell/vars``, ``bidirectional/forward_layer/cell/vars``,
``multi_head_attention/query_dense/vars``; a nested model's under ``layers/``).
hpnn's layers keep Keras' weight layouts, so the arrays go to hpnn's layers in the
same order. Needs ``h5py`` (``pip install h5py``).
"""

from __future__ import annotations

import re

import numpy as np

# the parts of a layer, in the order of its weights (where a layer has several)
_PARTS = {
    "Bidirectional": ("forward_layer", "backward_layer"),
    "MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense"),
}


def _snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


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


def _layer_arrays(layer, group, where) -> list:
    """The arrays of ``layer`` (and what it holds) from its group, in its weights' order."""
    sub = getattr(layer, "layers", None)
    if "layers" in group and sub is not None:  # a nested model
        return _model_arrays(sub, group["layers"], where)
    arrays = []
    if "vars" in group:
        v = group["vars"]
        arrays += [np.asarray(v[str(i)]) for i in range(len(v))]
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


def _part_arrays(group) -> list:
    """A part's arrays (``cell/vars``, ``query_dense/vars``): its own, then those of what
    it holds (an RNN layer holds its cell; Keras writes an empty ``vars`` beside it)."""
    out = []
    if "vars" in group:
        v = group["vars"]
        out += [np.asarray(v[str(i)]) for i in range(len(v))]
    for name in group:
        if name != "vars":
            out += _part_arrays(group[name])
    return out


def _model_arrays(layers, group, where) -> list:
    arrays = []
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
        arrays += got
    return arrays


def load_keras_weights(model, path) -> None:
    """Set ``model``'s weights from a Keras 3 ``.weights.h5`` file of the same
    architecture; nothing is set unless every layer's arrays fit."""
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            "load_weights: reading a Keras .weights.h5 file needs h5py: pip install h5py. "
            f"Received: {path!r}"
        ) from e
    with h5py.File(path, "r") as f:
        if "layers" not in f:
            raise ValueError(f"load_weights: {str(path)!r} holds no Keras layer weights.")
        arrays = _model_arrays(model.layers, f["layers"], repr(str(path)))
    model.set_weights(arrays)
