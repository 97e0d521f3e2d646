"""Keras 3 model configs (``config.json`` of a ``.keras`` file) into hpnn models (the
way back is :class:`hpnn.io.keras_format.ConfigWriter`).

An entry is ``{"module", "class_name", "config", "registered_name"}`` (a functional
model's layers add ``name`` and ``inbound_nodes``), and the objects inside a config
(initializers, regularizers, dtype policies, a wrapped layer) are entries too. hpnn's
layers take Keras' constructor arguments, so a config translates key by key: a key
hpnn's class has no argument for is dropped only where its value asks for what hpnn
does anyway (see :func:`_neutral`), and refused with an error naming it otherwise.

The model classes come in as arguments (``io`` sits below ``models``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect

from hpnn import losses
from hpnn.layers.base import Layer
from hpnn.layers.core import InputLayer

# hpnn's modules that Keras' entries resolve into, by the family named in the entry's module
FAMILIES = (
    "layers",
    "initializers",
    "regularizers",
    "constraints",
    "optimizers",
    "losses",
    "metrics",
    "schedules",
)

# Keras options that hpnn's classes have no argument for, harmless at these values
_NEUTRAL = {
    "data_format": "channels_last",  # hpnn is channels-last throughout
    "groups": 1,  # (Conv) one group: a plain convolution
    "dilation_rate": 1,  # (Conv*Transpose) no dilation
    "attention_axes": 1,  # hpnn's MultiHeadAttention attends over the steps axis, 1
    "axis": -1,  # (losses) the last axis, the one hpnn reduces over
    "dtype": "float32",  # (losses, metrics) hpnn computes them in float32
}
# Keras options written as the value Keras resolved when building, where hpnn's
# argument takes None for that same behaviour
_RESOLVED = ("attention_axes",)
# Keras options that matter only when another one is on
_ONLY_WITH = {
    "renorm_momentum": "renorm",
    "ema_momentum": "use_ema",
    "fill_mode": "pad_to_aspect_ratio",
    "fill_value": "pad_to_aspect_ratio",
}


def _neutral(key, value, config) -> bool:
    """Whether Keras' option ``key=value`` asks for nothing beyond what hpnn does."""
    if value is None or value is False:  # an option hpnn lacks, turned off
        return True
    if key in _ONLY_WITH and not config.get(_ONLY_WITH[key]):
        return True
    want = _NEUTRAL.get(key, ())
    items = value if isinstance(value, (list, tuple)) else [value]
    return bool(items) and all(v == want for v in items)


def _parameters(cls) -> set:
    """The keyword arguments ``cls(...)`` takes: its ``__init__``'s, and those its
    ``**kwargs`` pass on to the base classes (a loss passes them to its function)."""
    names: set = set()
    for base in cls.__mro__:
        init = vars(base).get("__init__")
        if init is None or base is object:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    if issubclass(cls, losses.Loss) and cls.fn is not None:
        names |= set(inspect.signature(cls.fn).parameters)
    return names - {"self"}


def _families(module) -> list:
    """The hpnn modules to look a class up in, from a Keras module path
    (``keras.src.backend.torch.optimizers.torch_adam`` -> optimizers)."""
    parts = str(module or "").split(".")
    named = [f for f in FAMILIES if f in parts]
    return named[-1:] or list(FAMILIES)  # (keras.optimizers.schedules: schedules)


def find_class(entry, family=None, custom_objects=None):
    """The hpnn class for a Keras entry: a custom object or registered class first
    (by registered name, then class name), then hpnn's own; None if none."""
    from hpnn.saving import get_registered_object

    for name in (entry.get("registered_name"), entry.get("class_name")):
        if isinstance(name, str):
            found = get_registered_object(name, custom_objects)
            if found is not None:
                return found
    for fam in [family] if family else _families(entry.get("module")):
        cls = getattr(importlib.import_module(f"hpnn.{fam}"), str(entry.get("class_name")), None)
        if isinstance(cls, type):
            return cls
    return None


def _unknown(entry, where, families) -> ValueError:
    """The error for a class hpnn does not have, with hpnn's classes of similar names."""
    name = entry.get("class_name")
    known = []
    for fam in families:
        module = importlib.import_module(f"hpnn.{fam}")
        known += [n for n in dir(module) if isinstance(getattr(module, n), type)]
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f" hpnn has: {', '.join(close)}." if close else ""
    what = families[0].removesuffix("es" if families[0] == "losses" else "s") + " "
    return ValueError(
        f"{where}: hpnn has no {what if len(families) == 1 else ''}class {name!r}.{hint} For "
        f"a custom class pass custom_objects={{{name!r}: cls}} or register it with "
        f"@hpnn.saving.register_keras_serializable(). Received: class_name={name!r}, "
        f"module={entry.get('module')!r}"
    )


def is_entry(value) -> bool:
    return isinstance(value, dict) and "class_name" in value and "config" in value


class ConfigReader:
    """Build hpnn models from Keras 3 config entries.

    Args:
        sequential, functional: hpnn's ``Sequential`` and functional ``Model`` classes.
        custom_objects: ``{name: class}`` for custom layers (the registry is searched too).
    """

    def __init__(self, sequential, functional, custom_objects=None):
        self.sequential, self.functional = sequential, functional
        self.custom_objects = custom_objects

    # -- models ------------------------------------------------------------------------
    def model(self, entry):
        """A Sequential or functional model from its entry."""
        kind, cfg = entry.get("class_name"), entry.get("config") or {}
        if kind == "Sequential":
            return self._sequential(cfg)
        if kind == "Functional":
            return self._functional(cfg)
        raise ValueError(
            "config.json: hpnn rebuilds Sequential and Functional models; a subclassed "
            "model's architecture is Python code, not in the file (rebuild it and use "
            f"load_weights). Received: class_name={kind!r}"
        )

    def _sequential(self, cfg):
        model = self.sequential(name=cfg.get("name"), trainable=cfg.get("trainable", True))
        for entry in cfg.get("layers", []):
            model.add(self.layer(entry))
        if not model.built and cfg.get("build_input_shape"):
            model.build_for(tuple(cfg["build_input_shape"]))
        return model

    def _functional(self, cfg):
        made = {}
        for entry in cfg["layers"]:
            layer = self.layer(entry)
            made[entry.get("name", layer.name)] = layer
        produced = {  # (layer name, node index as Keras counts) -> the call's outputs
            (name, 0): [layer.output]
            for name, layer in made.items()
            if isinstance(layer, InputLayer)
        }
        pending = {
            entry.get("name"): list(entry.get("inbound_nodes") or []) for entry in cfg["layers"]
        }
        for name in pending:
            if pending[name] and not isinstance(pending[name][0], dict):
                raise NotImplementedError(
                    f"config.json: layer '{name}' has its calls in the Keras 2 form; hpnn "
                    "reads the Keras 3 form (args/kwargs)."
                )
        self._replay(made, pending, produced)
        return self.functional(
            _refs_to(cfg["input_layers"], produced, "input_layers"),
            _refs_to(cfg["output_layers"], produced, "output_layers"),
            name=cfg.get("name"),
            trainable=cfg.get("trainable", True),
        )

    def _replay(self, made, pending, produced) -> None:
        """Make every recorded call, each once its inputs exist (a shared layer may be
        called at several depths), in each layer's order."""
        counts = {name: 0 for name in made}
        while any(pending.values()):
            progress = False
            for name, nodes in pending.items():
                layer = made[name]
                while nodes:
                    args = _revive(nodes[0].get("args", []), produced, made, name)
                    kwargs = _revive(nodes[0].get("kwargs", {}), produced, made, name)
                    if args is _MISSING or kwargs is _MISSING:
                        break
                    out = _call(layer, name, args, kwargs)
                    index = counts[name] + (1 if isinstance(layer, self.functional) else 0)
                    produced[(name, index)] = out if isinstance(out, list) else [out]
                    counts[name] += 1
                    nodes.pop(0)
                    progress = True
            if not progress:
                stuck = sorted(n for n, nodes in pending.items() if nodes)
                raise ValueError(
                    f"config.json: the calls of layers {stuck} read tensors no call makes "
                    "(the graph has a loop or refers to a missing call)."
                )

    # -- layers ------------------------------------------------------------------------
    def layer(self, entry):
        """A layer (or a nested model) from its entry."""
        if not is_entry(entry):
            raise ValueError(f"config.json: expected a layer entry. Received: {entry!r}")
        kind, cfg = entry["class_name"], entry["config"]
        if kind in ("Sequential", "Functional"):
            return self.model(entry)
        name = cfg.get("name", entry.get("name")) if isinstance(cfg, dict) else None
        where = f"config.json, layer '{name}' ({kind})"
        if kind == "InputLayer":
            return self._input_layer(cfg, where)
        cls = find_class(entry, "layers", self.custom_objects)
        if cls is None or not issubclass(cls, Layer):
            raise _unknown(entry, where, ["layers"])
        return cls.from_config(self.arguments(cls, cfg, where))

    def _input_layer(self, cfg, where):
        batch_shape = cfg.get("batch_shape") or [cfg.get("batch_size"), *cfg.get("shape", [])]
        for key, value in cfg.items():
            known = key in ("batch_shape", "shape", "batch_size", "dtype", "name")
            if not known and not _neutral(key, value, cfg):
                raise ValueError(f"{where}: hpnn's Input has no {key}. Received: {key}={value!r}")
        return InputLayer(
            shape=tuple(batch_shape[1:]),
            batch_size=batch_shape[0],
            dtype=self.value(cfg.get("dtype"), where),
            name=cfg.get("name"),
        )

    def arguments(self, cls, config, where) -> dict:
        """Keras' config of ``cls`` as keyword arguments of hpnn's ``cls``."""
        accepted = _parameters(cls)
        out = {}
        for key, value in config.items():
            if key in accepted and not (key in _RESOLVED and _neutral(key, value, config)):
                out[key] = self.value(value, f"{where}, {key}")
            elif not _neutral(key, value, config):
                raise ValueError(
                    f"{where}: hpnn's {cls.__name__} has no argument {key!r}, and the "
                    f"Keras value asks for more than hpnn does. Received: {key}={value!r}"
                )
        return out

    def value(self, value, where):
        """A config value with Keras' entries inside it in hpnn's form: a dtype policy
        as its dtype, an object as ``{"class_name", "config"}`` with hpnn's arguments."""
        if isinstance(value, list):
            return [self.value(v, where) for v in value]
        if not isinstance(value, dict):
            return value
        if not is_entry(value):
            return {k: self.value(v, where) for k, v in value.items()}
        if str(value["class_name"]).endswith("DTypePolicy"):
            return _dtype(value, where)
        if value["class_name"] == "function":  # a function by name (an activation)
            return self._function(value)
        if value["class_name"] in ("Sequential", "Functional"):
            raise NotImplementedError(f"{where}: a model inside a layer's config.")
        if value["class_name"] == "__lambda__":
            raise NotImplementedError(
                f"{where}: Keras stores this Lambda's function as Python bytecode, which hpnn "
                "does not run from a file; register the function (its name is then saved) "
                "or rebuild the layer in code."
            )
        cls = find_class(value, None, self.custom_objects)
        if cls is None:
            raise _unknown(value, where, _families(value.get("module")))
        if issubclass(cls, Layer):  # (a wrapped layer: errors name it too)
            where = f"{where} ({value['config'].get('name')})"
        return {"class_name": cls.__name__, "config": self.arguments(cls, value["config"], where)}

    def _function(self, entry):
        """A function Keras names (``{"class_name": "function", "config": name}``): the
        custom object of that name, else the name (hpnn's own functions go by name)."""
        found = find_class({"class_name": entry["config"]}, None, self.custom_objects)
        return found if callable(found) else entry["config"]

    def instance(self, value, family, where):
        """An object (optimizer, loss, metric, schedule) from its entry; a name stays a name."""
        if isinstance(value, list):
            return [self.instance(v, family, where) for v in value]
        if isinstance(value, dict) and not is_entry(value):  # per output, by name
            return {k: self.instance(v, family, f"{where} ({k})") for k, v in value.items()}
        if not is_entry(value):
            return value
        if value["class_name"] == "function":
            return self._function(value)
        cls = find_class(value, family if "module" not in value else None, self.custom_objects)
        if cls is None:
            raise _unknown(value, where, [family])
        accepted = _parameters(cls)
        kwargs = {}
        for key, v in value["config"].items():
            if key in accepted:
                nested = _families(v.get("module"))[-1] if is_entry(v) else family
                kwargs[key] = self.instance(v, nested, f"{where}, {key}")
            elif not _neutral(key, v, value["config"]):
                raise ValueError(
                    f"{where}: hpnn's {cls.__name__} has no argument {key!r}. Received: {key}={v!r}"
                )
        return cls(**kwargs)


class _Missing:
    """A call's input that no call has made yet."""


_MISSING = _Missing()


def _revive(value, produced, made, caller):
    """A node's args or kwargs with Keras' tensor entries as hpnn's symbolic tensors
    (``_MISSING`` if one is not made yet)."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        if name not in made:
            raise ValueError(
                f"config.json: layer '{caller}' reads the output of layer {name!r}, which "
                "the config does not have."
            )
        outs = produced.get((name, node))
        return _MISSING if outs is None else outs[index]
    if isinstance(value, (list, tuple)):
        items = [_revive(v, produced, made, caller) for v in value]
        return _MISSING if any(v is _MISSING for v in items) else items
    if isinstance(value, dict):
        items = {k: _revive(v, produced, made, caller) for k, v in value.items()}
        return _MISSING if any(v is _MISSING for v in items.values()) else items
    return value


def _call(layer, name, args, kwargs):
    """Replay one recorded call: positional args as Keras recorded them (``[x]``,
    ``[[a, b]]`` for a merge, ``[query, value]``); keyword arguments left at their
    defaults (None, training=False) are dropped."""
    if kwargs.get("training"):
        raise NotImplementedError(
            f"config.json: layer '{name}' is called with training=True fixed in the graph; "
            "hpnn's functional models take training from fit/predict."
        )
    kwargs = {k: v for k, v in kwargs.items() if v is not None and k != "training"}
    return layer(args[0], **kwargs) if len(args) == 1 else layer(*args, **kwargs)


def _refs_to(spec, produced, what):
    """input_layers / output_layers: one ``[name, node, index]`` or a list of them."""
    if isinstance(spec, dict):
        raise NotImplementedError(f"config.json: {what} as a dict is not supported yet.")
    if len(spec) == 3 and isinstance(spec[0], str):
        name, node, index = spec
        return produced[(name, node)][index]
    return [_refs_to(s, produced, what) for s in spec]


def _dtype(policy, where) -> str:
    name = (policy.get("config") or {}).get("name")
    if not isinstance(name, str) or name.startswith("mixed"):
        raise NotImplementedError(
            f"{where}: hpnn computes each layer in one dtype; mixed-precision policies are "
            f"not supported. Received: dtype policy {name!r}"
        )
    return name
