"""Keras 3's ``.keras`` files: a zip of ``config.json`` (the architecture and compile
settings), ``metadata.json`` and ``model.weights.h5`` (the weights, as in a
``.weights.h5`` file), read into hpnn models and written from them.

``model.save("m.keras")`` writes this format, atomically; ``load_model`` reads it (by
content, whatever the name). Only Sequential and functional models translate, since a
subclassed model's architecture is Python code. The optimizer's variables (Adam's
moments, its step count) are neither read nor written: a loaded model is compiled
as saved, with a fresh optimizer state.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import io
import json
import os
import zipfile
import zlib

import numpy as np

from hpnn import losses, schedules
from hpnn.io.archive import ArchiveError, atomic_write
from hpnn.io.keras_config import FAMILIES, ConfigReader, find_class, is_entry
from hpnn.io.keras_h5 import keras_order, keras_weights_bytes, load_keras_weights
from hpnn.layers.core import InputLayer
from hpnn.layers.symbolic import map_tensors

# The Keras release whose file layout this writes (and was checked against). Keras
# reads the field only to show it; on reading, any Keras 3 version is accepted.
KERAS_VERSION = "3.15.1"
_MEMBERS = ("config.json", "model.weights.h5")
# what reading a damaged zip raises (ValueError: bad JSON or UTF-8 in a member)
_DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, zlib.error)
# hpnn layers that Keras 3 cannot rebuild from a config
_NO_KERAS_FORM = {
    "Divide": "Keras 3 has no Divide layer (hpnn makes one for `a / b` on symbolic tensors)",
    "Lambda": "Keras stores a Lambda's function as Python bytecode, which hpnn does not write",
}

_KERAS_MODULE = {
    "layers": "keras.layers",
    "initializers": "keras.initializers",
    "regularizers": "keras.regularizers",
    "constraints": "keras.constraints",
    "optimizers": "keras.optimizers",
    "losses": "keras.losses",
    "metrics": "keras.metrics",
    "schedules": "keras.optimizers.schedules",
}


def _family_of(cls):
    for fam in FAMILIES:
        if getattr(importlib.import_module(f"hpnn.{fam}"), cls.__name__, None) is cls:
            return fam
    return None


def _keras_entry(cls, config, family) -> dict:
    """Keras' entry of an object of class ``cls`` with this (Keras) config: an hpnn class
    as Keras' own, a registered custom class by its registered name."""
    own = (_family_of(cls) or family) if cls.__module__.startswith("hpnn.") else None
    return {
        "module": _KERAS_MODULE[own] if own else cls.__module__,
        "class_name": cls.__name__,
        "config": config,
        "registered_name": vars(cls).get("_registered_name"),
    }


def _policy(dtype: str) -> dict:
    """Keras' dtype policy entry for ``dtype``."""
    return {
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {"name": np.dtype(dtype).name},
        "registered_name": None,
    }


def _keras_value(key, value):
    """An hpnn config value in Keras' form: dtypes as policies, ``{"class_name",
    "config"}`` objects as Keras entries (their configs translated too)."""
    if key == "dtype" and value is not None:
        return _policy(value)
    if is_entry(value):
        # (the family from the key, as Keras names them: kernel_initializer; else a layer)
        family = str(key).rsplit("_", 1)[-1] + "s"
        cls = find_class(value, family if family in FAMILIES else "layers")
        if cls is None:
            raise ValueError(
                f"save: hpnn has no class {value['class_name']!r} to write for {key!r}. "
                f"Received: {value!r}"
            )
        inner = {k: _keras_value(k, v) for k, v in value["config"].items()}
        return _keras_entry(cls, inner, None)
    if isinstance(value, dict):
        return {k: _keras_value(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_keras_value(None, v) for v in value]
    return value


def _separate_args(layer) -> bool:
    """Whether the layer's call takes its tensors as separate parameters
    (``MultiHeadAttention(query, value)``), as Keras records them, not as one list."""
    params = inspect.signature(type(layer).__call__).parameters.values()
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD][1:]
    return len(positional) > 1 and positional[1] != "training"


class ConfigWriter:
    """Keras 3 config entries of hpnn's Sequential and functional models."""

    def __init__(self, sequential, functional):
        self.sequential, self.functional = sequential, functional

    def model(self, model) -> dict:
        kind = type(model)
        if kind is self.sequential:
            return {
                "module": "keras",
                "class_name": "Sequential",
                "config": self._sequential(model),
                "registered_name": None,
                "build_config": {"input_shape": _shape(model.input_shape)},
            }
        if kind is self.functional:
            return {
                "module": "keras.src.models.functional",
                "class_name": "Functional",
                "config": self._functional(model),
                "registered_name": "Functional",
                "build_config": {"input_shape": None},
            }
        raise NotImplementedError(
            f"save: model '{model.name}' is a {kind.__name__}; Keras' format holds Sequential "
            "and functional models (a subclassed model's architecture is Python code). Save "
            "it as .hpnn, or its weights with save_weights('m.weights.h5')."
        )

    def _sequential(self, model) -> dict:
        first = model.get_config().get("input")
        layers = [_input_entry(first)] if first else []
        layers += [self.layer(layer) for layer in model.layers]
        config = {"name": model.name, "trainable": model.trainable, "layers": layers}
        if model.built:
            config["build_input_shape"] = _shape(model.input_shape)
        return config

    def _functional(self, model) -> dict:
        refs, nodes = self._calls(model)
        layers = []
        for layer in keras_order(model):
            entry = self.layer(layer)
            entry["name"] = layer.name
            entry["inbound_nodes"] = nodes.get(id(layer), [])
            layers.append(entry)

        def spec(tensors, one):
            out = [refs[id(t)] for t in tensors]
            return out[0] if one else out

        return {
            "name": model.name,
            "trainable": model.trainable,
            "layers": layers,
            "input_layers": spec(model.inputs, not isinstance(model.input, list)),
            "output_layers": spec(model.outputs, not isinstance(model.output, list)),
        }

    def _calls(self, model):
        """Keras' ``[layer, node, output]`` of every tensor, and each layer's recorded
        calls (Keras numbers a nested functional model's calls from 1: its node 0 is
        the model itself)."""
        refs = {id(t): [t._layer.name, 0, 0] for t in model.inputs}
        nodes, counts, calls = {}, {}, {}
        for t in model._nodes:
            head = t._group if t._group is not None else t
            if id(head) in calls:  # another output of a call already listed
                refs[id(t)] = [*calls[id(head)], t._index]
                continue
            layer = t._layer
            k = counts.get(id(layer), 0)
            counts[id(layer)] = k + 1
            calls[id(head)] = [layer.name, k + (1 if isinstance(layer, self.functional) else 0)]
            refs[id(t)] = [*calls[id(head)], t._index or 0]
            nodes.setdefault(id(layer), []).append(_node(layer, t, refs))
        return refs, nodes

    def layer(self, layer) -> dict:
        """A layer's (or a nested model's) entry."""
        if isinstance(layer, (self.sequential, self.functional)):
            return self.model(layer)
        cls = type(layer)
        if isinstance(layer, InputLayer):
            return _input_entry(layer.get_config())
        if cls.__name__ in _NO_KERAS_FORM and cls.__module__.startswith("hpnn."):
            raise ValueError(
                f"save: layer '{layer.name}' ({cls.__name__}) cannot be written in Keras' "
                f"format: {_NO_KERAS_FORM[cls.__name__]}. Save the model as .hpnn instead."
            )
        config = {k: _keras_value(k, v) for k, v in layer.get_config().items()}
        return _keras_entry(cls, config, "layers")


def _shape(shape):
    if shape is None:
        return None
    if shape and isinstance(shape[0], (list, tuple)):
        return [list(s) for s in shape]
    return list(shape)


def _input_entry(config) -> dict:
    """Keras' InputLayer entry from hpnn's InputLayer config."""
    return {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {
            "batch_shape": [config.get("batch_size"), *config["shape"]],
            "dtype": np.dtype(config.get("dtype") or "float32").name,
            "sparse": False,
            "ragged": False,
            "name": config["name"],
        },
        "registered_name": None,
    }


def _node(layer, t, refs) -> dict:
    """One call as Keras records it: ``{"args": [...], "kwargs": {...}}``."""

    def tensor(x):
        history = refs[id(x)]
        shape = list(x.shape)
        return {
            "class_name": "__keras_tensor__",
            "config": {"shape": shape, "dtype": np.dtype(x.dtype).name, "keras_history": history},
        }

    given = [tensor(x) for x in t._inputs[: t._n_args]]
    if _separate_args(layer):
        args = given
    else:
        args = [given] if layer._list_input else given[:1]
    kwargs = {k: map_tensors(v, tensor) for k, v in t._kwargs.items()}
    return {"args": args, "kwargs": kwargs}


# -- compile settings ------------------------------------------------------------------
def compile_config(model) -> dict:
    """Keras' ``compile_config`` of an hpnn model (``{}`` when it is not compiled, as
    Keras writes it). Metrics given as plain functions are left out."""
    if not model.compiled:
        return {}
    several = hasattr(model.loss, "output_names")  # one loss per output
    return {
        "optimizer": _optimizer_entry(model.optimizer),
        "loss": _loss_entry(model.loss),
        "loss_weights": _loss_weights(model, several),
        "metrics": _metric_entries(model._metric_specs),
        "weighted_metrics": None,
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


def _optimizer_entry(opt) -> dict:
    config = opt.get_config()
    rate = opt._learning_rate
    if isinstance(rate, schedules.LearningRateSchedule):
        config["learning_rate"] = _keras_entry(type(rate), rate.get_config(), "schedules")
    elif callable(rate):
        raise ValueError(
            f"save: the optimizer's learning rate is a plain function ({rate!r}); Keras' "
            "format holds a number or a keras.optimizers.schedules schedule."
        )
    return _keras_entry(type(opt), config, "optimizers")


def _loss_entry(loss):
    if loss is None:
        return None
    if hasattr(loss, "output_names"):
        return [_loss_entry(one) for one in loss.losses]
    if isinstance(loss, losses.LossFunctionWrapper):  # Keras' form of a function by name
        return {
            "module": "builtins",
            "class_name": "function",
            "config": loss.name,
            "registered_name": "function",
        }
    return _keras_entry(type(loss), loss.get_config(), "losses")


def _loss_weights(model, several):
    if several:
        weights = list(model.loss.loss_weights)
        return None if all(w == 1.0 for w in weights) else weights
    scale = getattr(model, "_loss_scale", 1.0)
    return None if scale == 1.0 else scale


def _metric_entries(specs):
    out = []
    for m in specs:
        if isinstance(m, (list, tuple)):  # one list per output
            out.append(_metric_entries(m))
        elif isinstance(m, str):
            out.append(m)
        elif hasattr(m, "get_config") and not inspect.isfunction(m):
            out.append(_keras_entry(type(m), m.get_config(), "metrics"))
    return out


def compile_arguments(cc, reader) -> dict:
    """``model.compile`` arguments from Keras' ``compile_config`` (names stay names;
    objects are rebuilt as hpnn's). Execution settings (run_eagerly, jit_compile,
    steps_per_execution) do not carry over."""
    where = "config.json, compile_config"
    if cc.get("weighted_metrics"):
        raise NotImplementedError(
            f"{where}: hpnn's compile has no weighted_metrics; load with compile=False and "
            f"compile the model again. Received: weighted_metrics={cc['weighted_metrics']!r}"
        )
    return {
        "optimizer": reader.instance(cc.get("optimizer", "rmsprop"), "optimizers", where),
        "loss": reader.instance(cc.get("loss"), "losses", f"{where}, loss"),
        "metrics": reader.instance(cc.get("metrics"), "metrics", f"{where}, metrics"),
        "loss_weights": cc.get("loss_weights"),
    }


# -- files -------------------------------------------------------------------------------
def is_keras_file(path) -> bool:
    """Whether ``path`` holds Keras' format: a zip with ``config.json`` (an hpnn archive
    has ``manifest.json``). A ``.keras`` path that is no readable zip counts too, so
    that reading it says what is wrong with it as a Keras file."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return str(path).endswith(".keras") and os.path.isfile(path)
    return "config.json" in names and "manifest.json" not in names


def _read(path):
    """``(config, weights bytes)`` of a .keras file, every member checked as read."""
    where = repr(str(path))
    try:
        with zipfile.ZipFile(path) as z:
            missing = sorted(set(_MEMBERS) - set(z.namelist()))
            if missing:
                raise ArchiveError(f"{where} is not a complete .keras file: it lacks {missing}.")
            names = z.namelist()
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
            config = json.loads(z.read("config.json"))
            weights = z.read("model.weights.h5")  # (zipfile checks each member's CRC)
    except ArchiveError:
        raise
    except _DAMAGED as e:
        raise ArchiveError(
            f"{where} is truncated, corrupted, or not a .keras file ({type(e).__name__}: {e})."
        ) from None
    version = str(meta.get("keras_version", "3") if isinstance(meta, dict) else "3")
    if version.split(".")[0] != "3":
        raise ArchiveError(
            f"{where} was written by Keras {version}; hpnn reads the .keras files of Keras 3."
        )
    if not isinstance(config, dict):
        raise ArchiveError(f"{where}: config.json holds no model. Received: {config!r:.80}")
    return config, weights


def _weights_into(model, weights: bytes, where) -> None:
    try:
        load_keras_weights(model, io.BytesIO(weights), f"{where} (model.weights.h5)")
    except OSError as e:  # h5py: not a readable HDF5 file
        raise ArchiveError(f"{where}: model.weights.h5 is corrupted ({e}).") from None


def load_model(path, sequential, functional, custom_objects=None, compile=True):  # noqa: A002
    """Read a Keras 3 ``.keras`` file into an hpnn model, compiled as saved when
    ``compile`` (a fresh optimizer state: Keras' optimizer variables are not read).

    Args:
        sequential, functional: hpnn's model classes (``io`` does not import ``models``).
        custom_objects: ``{name: class}`` for custom layers, besides the registry.
    """
    where = repr(str(path))
    config, weights = _read(path)
    reader = ConfigReader(sequential, functional, custom_objects)
    try:
        model = reader.model(config)
    except (KeyError, IndexError) as e:
        raise ArchiveError(f"{where}: config.json is malformed (missing {e}).") from None
    _weights_into(model, weights, where)
    cc = config.get("compile_config")
    if compile and cc:
        model.compile(**compile_arguments(cc, reader))
    return model


def load_weights(model, path) -> None:
    """Set ``model``'s weights from the ``model.weights.h5`` inside a ``.keras`` file."""
    _, weights = _read(path)
    _weights_into(model, weights, repr(str(path)))


def save_model(model, path, sequential, functional) -> None:
    """Write ``model`` to ``path`` in Keras 3's ``.keras`` format, atomically (without
    the optimizer's variables)."""
    entry = ConfigWriter(sequential, functional).model(model)
    entry["compile_config"] = compile_config(model)
    members = {
        "metadata.json": json.dumps(
            {
                "keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            }
        ),
        "config.json": json.dumps(entry),
        "model.weights.h5": keras_weights_bytes(model),
    }
    # stored, not deflated, as Keras writes it (Keras refuses members that inflate a lot)
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def save_weights(model, path) -> None:
    """Write ``model``'s weights to ``path`` in Keras 3's ``.weights.h5`` layout, atomically."""
    data = keras_weights_bytes(model)
    with atomic_write(path) as f:
        f.write(data)
