"""Save and load whole models, weights, and architectures (JSON).

``model.save(path)`` writes one archive (see :mod:`hpnn.io.archive`): the
architecture, the weights, the compile configuration and the optimizer state
(slots and iteration count), atomically. ``load_model`` checks the whole file
before building anything, so a bad file raises instead of giving half a model.
A path ending in ``.keras`` is written in Keras 3's format instead (see
:mod:`hpnn.io.keras_format`), and ``.h5`` weights in Keras' ``.weights.h5`` layout;
``load_model`` tells the formats apart by content.
"""

from __future__ import annotations

import json

from hpnn import layers as layers_mod
from hpnn import losses as losses_mod
from hpnn import optimizers as optimizers_mod
from hpnn.backend import to_numpy
from hpnn.io import keras_format
from hpnn.io.archive import ArchiveError, read_archive, write_archive
from hpnn.layers.core import InputLayer
from hpnn.models.sequential import Sequential
from hpnn.training.multi_output import MultiOutputLoss

KIND_MODEL, KIND_WEIGHTS = "model", "weights"


def _layer_class(name: str, custom_objects):
    from hpnn.saving import get_registered_object

    cls = get_registered_object(name, custom_objects) or getattr(layers_mod, name, None)
    if cls is None or not isinstance(cls, type):
        raise ValueError(
            f"Unknown layer class {name!r} in the saved model: pass it in custom_objects="
            f"{{{name!r}: {name}}} or register it with "
            "@hpnn.saving.register_keras_serializable()."
        )
    return cls


def model_config(model) -> dict:
    """``{"class_name": ..., "config": ...}`` of a Sequential or functional model."""
    return {"class_name": type(model).__name__, "config": model.get_config()}


def model_from_config(config: dict, custom_objects=None):
    """Build an (uncompiled) model from :func:`model_config`'s output."""
    if config.get("class_name") == "Functional":
        from hpnn.models.functional import Functional

        return Functional.from_config(
            config["config"], layer_class=lambda name: _layer_class(name, custom_objects)
        )
    if config.get("class_name") != "Sequential":
        raise ValueError(
            "Only Sequential and functional models can be rebuilt from a config. "
            f"Received: class_name={config.get('class_name')!r}"
        )
    cfg = config["config"]
    model = Sequential(name=cfg.get("name"))
    if cfg.get("input"):
        model.add(InputLayer(**cfg["input"]))
    for entry in cfg["layers"]:
        cls = _layer_class(entry["class_name"], custom_objects)
        model.add(cls.from_config(dict(entry["config"])))
    if not model.built and cfg.get("build_input_shape"):
        model.build_for(tuple(cfg["build_input_shape"]))
    return model


def to_json(model, **kwargs) -> str:
    return json.dumps(model_config(model), **kwargs)


def model_from_json(json_string: str, custom_objects=None):
    """Rebuild a model's architecture (fresh weights) from ``model.to_json()``."""
    try:
        config = json.loads(json_string)
    except json.JSONDecodeError as e:
        raise ValueError(f"model_from_json: not valid JSON ({e}).") from None
    return model_from_config(config, custom_objects)


def _compile_config(model) -> dict | None:
    if not model.compiled:
        return None
    opt = model.optimizer
    return {
        "optimizer": {"class_name": type(opt).__name__, "config": opt.get_config()},
        "loss": None
        if model.loss is None
        else {"class_name": type(model.loss).__name__, "config": model.loss.get_config()},
        "metrics": _saved_metrics(model._metric_specs, model._output_names()),
        "loss_weights": getattr(model, "_loss_scale", 1.0),
    }


def _saved_metrics(specs, several_outputs):
    """The metrics given by name (objects are not saved); per output when several."""
    if several_outputs:
        return [[m for m in entries if isinstance(m, str)] for entries in specs]
    return [m for m in specs if isinstance(m, str)]


def _model_classes():
    from hpnn.models.functional import Functional

    return Sequential, Functional


def save_model(model, path) -> None:
    """Write architecture, weights, compile config and optimizer state to ``path``
    (Keras' format, without the optimizer state, for a ``.keras`` path)."""
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built yet: nothing to save. Call it on "
            "data (fit, predict) or start it with hpnn.Input(...) first."
        )
    if str(path).endswith(".keras"):
        keras_format.save_model(model, path, *_model_classes())
        return
    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    document = {
        "kind": KIND_MODEL,
        "model": model_config(model),
        "compile": _compile_config(model),
        "optimizer_iterations": 0,
    }
    if model.compiled and model.optimizer._slots:
        state = model.optimizer.variables()
        arrays.update({f"optimizer_{i}": to_numpy(s) for i, s in enumerate(state)})
        document["optimizer_iterations"] = int(model.optimizer.iterations)
        document["optimizer_slots"] = len(state)
        # which weights the state belongs to: a layer frozen after training keeps its
        # slots, though it is no longer among the trainable weights
        document["optimizer_variables"] = model.optimizer.state_variables(model.weights)
    document["model"]["config"]["build_input_shape"] = list(model.input_shape or [])
    write_archive(path, document, arrays)


def build_optimizer_state(model, indices=None) -> None:
    """Create the optimizer's slots for the weights at ``indices`` of ``model.weights``, in
    that order (as saved); without them (older files), for the trainable weights."""
    weights = model.weights
    if indices is None:
        model.optimizer.build(model.trainable_weights)
        return
    if any(not 0 <= i < len(weights) for i in indices):
        raise ArchiveError(
            f"the optimizer state names weights {list(indices)}, but the model has "
            f"{len(weights)}: the file does not match its architecture."
        )
    model.optimizer.build([weights[i] for i in indices])


def _weights_from(arrays, prefix, count=None):
    n = count if count is not None else sum(1 for k in arrays if k.startswith(prefix))
    try:
        return [arrays[f"{prefix}{i}"] for i in range(n)]
    except KeyError as e:
        raise ArchiveError(f"the file lacks array {e}: it is incomplete.") from None


def load_model(path, custom_objects=None, compile=True):  # noqa: A002 - Keras' name
    """Load a model written by ``model.save`` (or a Keras 3 ``.keras`` file); compiled
    with its optimizer state if it was (a Keras file's optimizer starts afresh)."""
    if keras_format.is_keras_file(path):
        return keras_format.load_model(path, *_model_classes(), custom_objects, compile)
    document, arrays = read_archive(path)
    if document.get("kind") != KIND_MODEL:
        raise ValueError(
            f"{str(path)!r} holds {document.get('kind')!r}, not a model: use "
            "model.load_weights() for a weights file."
        )
    model = model_from_config(document["model"], custom_objects)
    model.set_weights(_weights_from(arrays, "weight_"))
    cc = document.get("compile")
    if compile and cc:
        opt_cfg = dict(cc["optimizer"]["config"])
        opt_cfg = {k: v for k, v in opt_cfg.items() if v is not None}
        opt_cls = getattr(optimizers_mod, cc["optimizer"]["class_name"])
        loss_cfg = dict(cc["loss"]["config"]) if cc["loss"] is not None else {}
        if cc["loss"] is None:
            loss = None
        elif cc["loss"]["class_name"] == "MultiOutputLoss":
            loss = MultiOutputLoss(**loss_cfg)
        else:
            loss_cls = getattr(losses_mod, cc["loss"]["class_name"], None)
            name = loss_cfg.pop("name", None)
            loss_cfg.pop("reduction", None)
            loss = loss_cls(**loss_cfg) if loss_cls is not None else name
            if name and not isinstance(loss, str):
                loss.name = name
        weight = cc.get("loss_weights", 1.0)
        model.compile(
            optimizer=opt_cls(**opt_cfg),
            loss=loss,
            metrics=cc["metrics"],
            loss_weights=None if weight == 1.0 else weight,
        )
        n_slots = document.get("optimizer_slots")
        if n_slots:
            build_optimizer_state(model, document.get("optimizer_variables"))
            model.optimizer.set_state(
                document["optimizer_iterations"], _weights_from(arrays, "optimizer_", n_slots)
            )
    return model


def save_weights(model, path) -> None:
    """Write only the weights (in ``get_weights`` order) to ``path``, atomically; to a
    ``.h5`` path in Keras 3's ``.weights.h5`` layout, which Keras' load_weights reads."""
    if str(path).endswith(".h5"):
        keras_format.save_weights(model, path)
        return
    weights = model.get_weights()
    shapes = [list(w.shape) for w in weights]
    write_archive(
        path,
        {"kind": KIND_WEIGHTS, "shapes": shapes},
        {f"weight_{i}": w for i, w in enumerate(weights)},
    )


def load_weights(model, path) -> None:
    """Load weights saved by ``save_weights`` or ``save`` (or by Keras 3: a
    ``.weights.h5`` or ``.keras`` file); all checked before any is set."""
    if str(path).endswith(".h5"):
        from hpnn.io.keras_h5 import load_keras_weights

        load_keras_weights(model, path)
        return
    if keras_format.is_keras_file(path):
        keras_format.load_weights(model, path)
        return
    document, arrays = read_archive(path)
    if document.get("kind") not in (KIND_WEIGHTS, KIND_MODEL):
        raise ValueError(f"{str(path)!r} holds no weights.")
    model.set_weights(_weights_from(arrays, "weight_"))
