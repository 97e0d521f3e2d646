"""Keras 3's ``keras.saving``: registering custom classes so saved models load without
``custom_objects``, serializing objects to Keras' config entries, and the save/load
functions under their ``keras.saving`` names.

    @keras.saving.register_keras_serializable(package="my_pkg")
    class Gate(keras.layers.Layer):
        ...

    model.save("m.hpnn")
    keras.saving.load_model("m.hpnn")  # finds Gate by its registered name
"""

from __future__ import annotations

import importlib
import inspect
import os

import numpy as np

_REGISTRY: dict[str, object] = {}  # names -> classes/functions ("package>Name" and "Name")
_NAMES: dict = {}  # registered object -> "package>Name"
_SCOPES: list[dict] = []  # custom_object_scope's dicts, innermost last

# hpnn's modules whose objects are written under Keras' module names
_FAMILIES = {
    "layers": "keras.layers",
    "losses": "keras.losses",
    "metrics": "keras.metrics",
    "optimizers": "keras.optimizers",
    "schedules": "keras.optimizers.schedules",
    "initializers": "keras.initializers",
    "regularizers": "keras.regularizers",
    "constraints": "keras.constraints",
    "activations": "keras.activations",
    "models": "keras.models",
}


def register_keras_serializable(package="Custom", name=None):
    """A decorator: register a class (it must have ``get_config``; a layer has one) or a
    function under ``"package>name"`` (``name`` defaults to its ``__name__``) and its
    plain name, for ``load_model``, ``model_from_json`` and ``deserialize_keras_object``."""

    def decorate(obj):
        if not (isinstance(obj, type) or callable(obj)):
            raise TypeError(
                f"register_keras_serializable: expected a class or a function. Received: {obj!r}"
            )
        if isinstance(obj, type) and not hasattr(obj, "get_config"):
            raise TypeError(
                f"register_keras_serializable: {obj.__name__} has no get_config(), so it "
                "cannot be saved and rebuilt"
            )
        key = name or obj.__name__
        registered = f"{package}>{key}"
        if registered in _REGISTRY and _REGISTRY[registered] is not obj:
            raise ValueError(f"{registered!r} is already registered to another class or function")
        _REGISTRY[registered] = obj
        _REGISTRY[key] = obj
        _NAMES[obj] = registered
        if isinstance(obj, type):
            obj._registered_name = registered
        return obj

    return decorate


def get_registered_name(obj) -> str:
    """The name ``obj`` (a class or function; or an instance, by its class) is registered
    under, ``"package>Name"``; its plain name when it is not registered."""
    target = obj if hasattr(obj, "__name__") else type(obj)
    try:
        if target in _NAMES:
            return _NAMES[target]
    except TypeError:  # (unhashable)
        pass
    return vars(target).get("_registered_name") or target.__name__


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The class or function for ``name``: from ``custom_objects``, an active
    ``custom_object_scope``, the registry, or ``module_objects``; None if none has it."""
    for table in (custom_objects or {}, *reversed(_SCOPES), _REGISTRY, module_objects or {}):
        if name in table:
            return table[name]
    return None


def get_custom_objects() -> dict:
    """The registry itself (a dict: adding to it registers, as in Keras)."""
    return _REGISTRY


class CustomObjectScope:
    """``with CustomObjectScope({"Gate": Gate}):`` — inside the block, the objects are
    found by name as if registered (several dicts may be given)."""

    def __init__(self, *custom_objects):
        self.custom_objects = {}
        for table in custom_objects:
            if table is None:
                continue
            if not isinstance(table, dict):
                raise TypeError(
                    f"custom_object_scope: expected dicts of name -> object. Received: {table!r}"
                )
            self.custom_objects.update(table)

    def __enter__(self):
        _SCOPES.append(self.custom_objects)
        return self

    def __exit__(self, *exc):
        _SCOPES.remove(self.custom_objects)
        return False


custom_object_scope = CustomObjectScope


# -- serialization --------------------------------------------------------------------
def _family_of(obj):
    """The hpnn module (``layers``, ``losses``...) that has ``obj`` under its name."""
    if not str(getattr(obj, "__module__", "")).startswith("hpnn"):
        return None
    for family in _FAMILIES:
        if getattr(importlib.import_module(f"hpnn.{family}"), obj.__name__, None) is obj:
            return family
    return None


def _module_name(obj) -> str:
    family = _family_of(obj)
    return _FAMILIES[family] if family else getattr(obj, "__module__", "builtins")


def serialize_keras_object(obj):
    """``obj`` as JSON-able data in Keras' form: an object with ``get_config`` (a layer,
    loss, metric, optimizer, initializer...) or a function as an entry ``{"module",
    "class_name", "config", "registered_name"}``; lists, dicts and plain values as such."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.ndarray):
        return {
            "class_name": "__numpy__",
            "config": {"value": obj.tolist(), "dtype": str(obj.dtype)},
        }
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(v) for v in obj]
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        name = get_registered_name(obj)
        return {
            "module": _module_name(obj),
            "class_name": "function",
            "config": obj.__name__,
            "registered_name": name,
        }
    if isinstance(obj, type) or not hasattr(obj, "get_config"):
        raise TypeError(
            "serialize_keras_object: expected an object with get_config() (a layer, loss, "
            f"metric, optimizer, initializer...), a function or plain data. Received: {obj!r}"
        )
    cls = type(obj)
    return {
        "module": _module_name(cls),
        "class_name": cls.__name__,
        "config": serialize_keras_object(obj.get_config()),
        "registered_name": _NAMES.get(cls) or vars(cls).get("_registered_name"),
    }


def _find(entry: dict, name: str, custom_objects, module_objects):
    """The class or function an entry names: registered or custom first, then
    ``module_objects`` (classes: not for a function's entry), then hpnn's module for the
    entry's Keras module."""
    function = entry.get("class_name") == "function"
    for key in (entry.get("registered_name"), name):
        if isinstance(key, str):
            found = get_registered_object(key, custom_objects, None if function else module_objects)
            if found is not None:
                return found
    module = str(entry.get("module") or "")
    families = [f for f, keras_name in _FAMILIES.items() if module == keras_name]
    families += [f for f in _FAMILIES if f in module.split(".") and f not in families]
    for family in families or list(_FAMILIES):
        found = getattr(importlib.import_module(f"hpnn.{family}"), name, None)
        if found is not None and (isinstance(found, type) != function) and callable(found):
            return found
    return None


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """The object ``serialize_keras_object`` wrote (Keras' entries of hpnn's classes
    and functions, registered ones and ``custom_objects``); plain data as such.
    ``module_objects`` (a dict of name -> class) is searched too."""
    module_objects = kwargs.pop("module_objects", None)
    if kwargs:
        raise TypeError(f"deserialize_keras_object: unexpected arguments {sorted(kwargs)}")
    if isinstance(config, str):
        found = get_registered_object(config, custom_objects, module_objects)
        return config if found is None else found
    if isinstance(config, (list, tuple)):
        return [
            deserialize_keras_object(v, custom_objects, module_objects=module_objects)
            for v in config
        ]
    if not isinstance(config, dict):
        return config
    if "class_name" not in config or "config" not in config:
        return {
            k: deserialize_keras_object(v, custom_objects, module_objects=module_objects)
            for k, v in config.items()
        }
    kind, inner = config["class_name"], config["config"]
    if kind == "__numpy__":
        return np.asarray(inner["value"], dtype=inner["dtype"])
    name = inner if kind == "function" else kind
    found = _find(config, str(name), custom_objects, module_objects)
    if found is None:
        raise ValueError(
            f"deserialize_keras_object: no class or function {name!r} in hpnn, the registry "
            "or custom_objects (register it with @hpnn.saving.register_keras_serializable() "
            f"or pass custom_objects={{{name!r}: ...}}). Received: {config!r}"
        )
    if kind == "function" or not isinstance(found, type):
        return found
    inner = dict(inner or {})
    from_config = getattr(found, "from_config", None)
    return from_config(inner) if from_config is not None else found(**inner)


# -- files ----------------------------------------------------------------------------
def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):  # noqa: A002
    from hpnn.models.saving import load_model as load

    return load(filepath, custom_objects=custom_objects, compile=compile)


def save_model(model, filepath, overwrite=True, **kwargs):
    from hpnn.models.saving import save_model as save

    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"save_model: {str(filepath)!r} exists and overwrite=False")
    save(model, filepath)


def save_weights(model, filepath, overwrite=True, **kwargs):
    """``model.save_weights(filepath)`` (Keras' ``keras.saving.save_weights``)."""
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"save_weights: {str(filepath)!r} exists and overwrite=False")
    model.save_weights(filepath)


def load_weights(model, filepath, skip_mismatch=False, **kwargs):
    """``model.load_weights(filepath)`` (Keras' ``keras.saving.load_weights``)."""
    if skip_mismatch:
        raise NotImplementedError(
            "load_weights: skip_mismatch=True is not supported: hpnn sets no weight unless "
            "all fit. Received: skip_mismatch=True"
        )
    model.load_weights(filepath)
