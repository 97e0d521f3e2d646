"""Keras 3's ``keras.saving``: registering custom classes so saved models load without
``custom_objects``, and the save/load functions under their ``keras.saving`` names.

    @keras.saving.register_keras_serializable(package="my_pkg")
    class Gate(keras.layers.Layer):
        ...

    model.save("m.hpnn")
    keras.saving.load_model("m.hpnn")  # finds Gate by its registered name
"""

from __future__ import annotations

import contextlib

_REGISTRY: dict[str, type] = {}  # names -> classes (both "package>Name" and "Name")
_SCOPES: list[dict] = []  # custom_object_scope's dicts, innermost last


def register_keras_serializable(package="Custom", name=None):
    """A class decorator: register the class under ``"package>name"`` (``name``
    defaults to the class name) and its plain name, for ``load_model`` and
    ``model_from_json``; it must have ``get_config`` (a layer has one)."""

    def decorate(cls):
        if not isinstance(cls, type):
            raise TypeError(f"register_keras_serializable: expected a class. Received: {cls!r}")
        if not hasattr(cls, "get_config"):
            raise TypeError(
                f"register_keras_serializable: {cls.__name__} has no get_config(), so it "
                "cannot be saved and rebuilt"
            )
        key = name or cls.__name__
        registered = f"{package}>{key}"
        if registered in _REGISTRY and _REGISTRY[registered] is not cls:
            raise ValueError(f"{registered!r} is already registered to another class")
        _REGISTRY[registered] = cls
        _REGISTRY[key] = cls
        cls._registered_name = registered
        return cls

    return decorate


def get_registered_name(obj) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return getattr(cls, "_registered_name", cls.__name__)


def get_registered_object(name, custom_objects=None):
    """The class for ``name``: from ``custom_objects``, an active
    ``custom_object_scope``, or the registry; None if none has it."""
    for table in (custom_objects or {}, *reversed(_SCOPES), _REGISTRY):
        if name in table:
            return table[name]
    return None


def get_custom_objects() -> dict:
    """The registry itself (a dict: adding to it registers, as in Keras)."""
    return _REGISTRY


@contextlib.contextmanager
def custom_object_scope(custom_objects):
    """Inside the block, ``custom_objects`` are found by name as if registered."""
    _SCOPES.append(dict(custom_objects or {}))
    try:
        yield
    finally:
        _SCOPES.pop()


CustomObjectScope = custom_object_scope


def load_model(filepath, custom_objects=None, compile=True):  # noqa: A002 - Keras' name
    from hpnn.models.saving import load_model as load

    return load(filepath, custom_objects=custom_objects, compile=compile)


def save_model(model, filepath, overwrite=True):
    import os

    from hpnn.models.saving import save_model as save

    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"save_model: {str(filepath)!r} exists and overwrite=False")
    save(model, filepath)
