"""The Layer base class: ``build(input_shape)`` creates weights, ``call`` computes."""

from __future__ import annotations

import collections
import contextlib
import inspect
import re
import threading

import numpy as np

from hpnn import activations, constraints, initializers, regularizers
from hpnn.backend import floatx, to_numpy
from hpnn.engine import ops
from hpnn.engine.tensor import Tensor, _as_array, is_grad_enabled
from hpnn.engine.variable import Variable
from hpnn.layers.arguments import normalize_tuple, weight_config  # noqa: F401  (re-exported)
from hpnn.layers.symbolic import KerasTensor, _symbolic, map_tensors

_name_counts: collections.Counter = collections.Counter()


class _Collector(threading.local):
    """The list that layers called in this thread add their activity penalties to."""

    active: list | None = None


_collector = _Collector()


@contextlib.contextmanager
def collect_activity_penalties():
    """Collect the activity-regularizer penalties of the layers called in the block,
    in this thread (so the parts of a batch split each collect their own)."""
    previous = _collector.active
    _collector.active = penalties = []
    try:
        yield penalties
    finally:
        _collector.active = previous


def unique_name(base: str) -> str:
    """``conv2d``, then ``conv2d_1``, ``conv2d_2``... as Keras names layers."""
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def reset_names() -> None:
    """Restart the automatic layer names (``clear_session``)."""
    _name_counts.clear()


def _snake(name: str) -> str:
    """Keras' snake case of a class name (``Conv2D`` -> ``conv2d``, ``ConvLSTM2D`` ->
    ``conv_lstm2d``): default layer names and the keys of Keras' weight files."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


class Layer:
    """Base class of all layers.

    Subclasses set ``input_ndim`` (exact rank, batch included) or ``min_ndim``,
    create weights in ``build(input_shape)`` with ``add_weight``, and compute in
    ``call(x, training=False)``.

    Masks (Keras' rules): a layer whose ``call`` takes ``mask=`` receives the mask
    of its input; ``compute_mask(inputs, mask)`` gives the mask of its output,
    by default ``mask`` when ``supports_masking`` else None. A layer whose input
    stays integer (``Embedding``) sets ``_float_input = False``.
    """

    input_ndim: int | None = None
    min_ndim: int | None = None
    _list_input = False  # merge layers: called on a list of tensors
    activity_regularizer = None  # (set in __init__; here for subclasses that skip it)
    _activity_losses: list | tuple = ()
    rank_hint: str = ""
    supports_masking = False
    _float_input = True
    # Set per class below: whether call() takes mask=, and whether compute_mask is custom.
    _call_accepts_mask = False
    _call_accepts_training = True
    _computes_mask = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        params = inspect.signature(cls.call).parameters
        cls._call_accepts_mask = "mask" in params
        # a Keras-style call(self, x) without training= gets none (as Keras does)
        cls._call_accepts_training = "training" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        )
        cls._computes_mask = cls.compute_mask is not Layer.compute_mask

    def __init__(
        self,
        name=None,
        trainable=True,
        dtype=None,
        input_shape=None,
        activity_regularizer=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}."
            )
        self.name = name or unique_name(_snake(type(self).__name__))
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._activity_losses: list = []
        self.trainable = trainable
        self.dtype = dtype or floatx()
        self.built = False
        self._weights: list[Variable] = []
        self._fixed_dims: dict[int, int] = {}
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None
        self.input_shape = None
        self.output_shape = None

    # -- weights ---------------------------------------------------------------
    def add_weight(
        self,
        shape,
        initializer="glorot_uniform",
        name=None,
        trainable=True,
        regularizer=None,
        dtype=None,
        constraint=None,
    ) -> Variable:
        """Create a weight (only from ``build``) and register it with the layer."""
        init = initializers.get(initializer)
        value = init(tuple(shape), dtype=dtype or self.dtype)
        v = Variable(value, name=name or "variable", trainable=trainable)
        v.path = f"{self.name}/{name or 'variable'}"
        v.requires_grad = trainable and self.trainable  # a frozen layer's take no gradient
        v.regularizer = regularizers.get(regularizer)
        v.constraint = constraints.get(constraint)
        self._weights.append(v)
        return v

    @property
    def trainable(self) -> bool:
        """Whether the optimizer updates this layer's weights. Setting it (as in Keras)
        sets it on every layer this one holds too, and freezes or thaws the weights
        created trainable: a layer built or loaded frozen can be unfrozen later. Weights
        created non-trainable (a BatchNormalization's moving statistics) stay so."""
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value) -> None:
        value = bool(value)
        self.__dict__["_trainable"] = value
        for v in self.__dict__.get("_weights", ()):
            v.requires_grad = v.trainable and value
        if "_weights" in self.__dict__:  # (not while __init__ runs: nothing held yet)
            for layer in self._sublayers():
                layer.trainable = value

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        # a new layer (or list of them) held: the tracked sublayers are found again
        if isinstance(value, (Layer, list, tuple)) and not name.startswith("_activity"):
            self.__dict__.pop("_sublayer_cache", None)

    def _sublayers(self) -> list:
        """The layers this one holds in its attributes (directly or in a list or tuple),
        in assignment order: as Keras, a custom layer's sublayers are tracked, so their
        weights train and save with it. Found once, again after such an attribute is
        set (a layer appended in place to a list already seen is not)."""
        cached = self.__dict__.get("_sublayer_cache")
        if cached is not None:
            return cached
        out: list = []
        for v in vars(self).values():
            for item in v if isinstance(v, (list, tuple)) else (v,):
                if isinstance(item, Layer) and item is not self and all(item is not o for o in out):
                    out.append(item)
        self.__dict__["_sublayer_cache"] = out
        return out

    @property
    def weights(self) -> list[Variable]:
        return self._and_sublayers(list(self._weights), "weights")

    @property
    def trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return []
        return self._and_sublayers([w for w in self._weights if w.trainable], "trainable_weights")

    def _and_sublayers(self, own: list, attr: str) -> list:
        """``own`` and then each held layer's ``attr`` list, every variable once (a layer
        held twice, or a weight of this layer's own, is not repeated)."""
        subs = self._sublayers()
        if subs:
            seen = {id(w) for w in self._weights}
            for layer in subs:
                for w in getattr(layer, attr):
                    if id(w) not in seen:
                        seen.add(id(w))
                        own.append(w)
        return own

    @property
    def non_trainable_weights(self) -> list[Variable]:
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    variables = property(lambda self: self.weights)  # (Keras 3's names of the lists)
    trainable_variables = property(lambda self: self.trainable_weights)
    non_trainable_variables = property(lambda self: self.non_trainable_weights)

    def add_loss(self, loss) -> None:
        """Keras 3's ``add_loss``, from ``call``: a scalar (a tensor is summed) added to
        the training loss of this forward pass, and in ``model.losses`` until the next."""
        loss = loss if isinstance(loss, Tensor) else Tensor(_as_array(loss, self.dtype))
        loss = ops.sum(loss) if loss.ndim else loss
        self.__dict__.setdefault("_added_losses", []).append(loss)
        if _collector.active is not None:
            _collector.active.append(loss)

    def get_weights(self) -> list[np.ndarray]:
        return [to_numpy(w.data).copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        """Set the weights from a list of arrays, in ``get_weights`` order."""
        weights = list(weights)
        mine = self.weights
        if len(weights) != len(mine):
            raise ValueError(
                f"Layer '{self.name}' expects {len(mine)} weight arrays "
                f"({[w.shape for w in mine]}). Received: {len(weights)} arrays"
            )
        for v, w in zip(mine, weights, strict=True):
            if tuple(np.shape(w)) != v.shape:
                raise ValueError(
                    f"Layer '{self.name}' weight '{v.name}': expected shape {v.shape}. "
                    f"Received: shape={tuple(np.shape(w))}"
                )
        for v, w in zip(mine, weights, strict=True):
            v.assign(w)

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    # -- shapes ----------------------------------------------------------------
    def _where(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def _positive_int(self, name, value, types=(int,)) -> int:
        """``value`` as an int, or a ValueError naming this layer and the argument."""
        if not isinstance(value, types) or isinstance(value, bool) or value <= 0:
            raise ValueError(
                f"{self._where()}: {name} must be a positive int. Received: {name}={value!r}"
            )
        return int(value)

    def check_input_shape(self, shape) -> None:
        """Raise a ValueError naming the layer if ``shape`` cannot be its input."""
        shape = tuple(shape)
        hint = f" {self.rank_hint}" if self.rank_hint else ""
        if self.input_ndim is not None and len(shape) != self.input_ndim:
            raise ValueError(
                f"{self._where()}: expected input of rank {self.input_ndim}{hint}. "
                f"Received: shape={shape}"
            )
        if self.min_ndim is not None and len(shape) < self.min_ndim:
            raise ValueError(
                f"{self._where()}: expected input of rank >= {self.min_ndim}{hint}. "
                f"Received: shape={shape}"
            )
        for axis, size in self._fixed_dims.items():
            if shape[axis] is not None and shape[axis] != size:
                raise ValueError(
                    f"{self._where()}: expected axis {axis} of the input to have size {size} "
                    f"(the layer was built for it). Received: shape={shape}"
                )

    def build(self, input_shape) -> None:
        """Create the weights for ``input_shape`` (batch axis included, may be None)."""
        self.built = True

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def build_for(self, input_shape) -> tuple:
        """Check, build if needed, and return the output shape (no computation)."""
        input_shape = tuple(input_shape)
        self.check_input_shape(input_shape)
        probed = None
        if not self.built:
            self.build(input_shape)
            if type(self).build is Layer.build and self._sublayers():
                probed = self._probe(input_shape)  # a custom layer: build what it holds
            self.built = True
        self.input_shape = input_shape
        if probed is not None and type(self).compute_output_shape is Layer.compute_output_shape:
            self.output_shape = probed
        else:
            self.output_shape = tuple(self.compute_output_shape(input_shape))
        return self.output_shape

    def _probe(self, input_shape) -> tuple:
        """Call the layer once on zeros of ``input_shape`` (one sample), so that the
        layers it holds build; returns the output shape (batch axis None)."""
        from hpnn.engine.tensor import no_grad

        dims = [1, *(1 if d is None else d for d in tuple(input_shape)[1:])]
        probe = np.zeros(dims, dtype=self.dtype if self._float_input else np.int64)
        with no_grad():
            args = {"training": False} if self._call_accepts_training else {}
            out = self.call(Tensor(probe), **args)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return (None, *tuple(out.shape)[1:])

    # -- calling ---------------------------------------------------------------
    def call(self, x, training=False):
        raise NotImplementedError

    def symbolic_output_shape(self, input_shape, kwargs, out_shape):
        """The output shape of a functional call with these keyword arguments (a list of
        shapes for several outputs): ``out_shape``, from ``compute_output_shape``, unless
        a layer whose outputs depend on its keyword arguments says otherwise."""
        return out_shape

    def compute_mask(self, inputs, mask=None):
        """The mask of the output: ``mask`` passed through when ``supports_masking``."""
        return mask if self.supports_masking else None

    def __call__(self, x, training=False, **kwargs):
        if _symbolic(x):
            return self._call_symbolic(x, kwargs)
        if self._list_input:  # a merge layer: a list of tensors
            if not isinstance(x, (list, tuple)):
                raise TypeError(
                    f"{self._where()}: expects a list of tensors. Received: {type(x).__name__}"
                )
            x = [t if isinstance(t, Tensor) else Tensor(_as_array(t, self.dtype)) for t in x]
            shapes = [tuple(t.shape) for t in x]
            if not self.built:
                self.build_for([(None, *s[1:]) for s in shapes])
            else:
                self.check_input_shape(shapes)
        else:
            if not isinstance(x, Tensor):
                x = Tensor(_as_array(x, self.dtype if self._float_input else None))
            if not self.built:
                self.build_for((None, *x.shape[1:]))
            else:
                self.check_input_shape(x.shape)
        if self._call_accepts_training:
            kwargs["training"] = training
        self.__dict__["_added_losses"] = []  # (add_loss: those of this call only)
        out = self.call(x, **kwargs)
        if self.activity_regularizer is not None:
            self._record_activity(out)
        return out

    def _call_symbolic(self, x, kwargs) -> KerasTensor:
        """The functional API: check and build from the shapes, run nothing, and return
        a KerasTensor that records this call."""
        many = isinstance(x, (list, tuple))
        inputs = list(x) if many else [x]
        if not all(isinstance(t, KerasTensor) for t in inputs):
            raise TypeError(
                f"{self._where()}: in a functional model every input must be a symbolic "
                "tensor (from hpnn.Input or a layer called on one). Received: "
                f"{[type(t).__name__ for t in inputs]}"
            )
        if many and not self._list_input:
            raise TypeError(
                f"{self._where()}: takes one tensor. Received: a list of {len(inputs)}; merge "
                "them first (layers.Concatenate, layers.Add...)"
            )
        if "mask" in kwargs:
            raise NotImplementedError(
                f"{self._where()}: mask= in a functional model is not supported yet."
            )
        shape = [t.shape for t in inputs] if self._list_input else inputs[0].shape
        if not self.built:
            out_shape = self.build_for(shape)
        else:
            self.check_input_shape(shape)
            out_shape = self.compute_output_shape(shape)
        out_shape = self.symbolic_output_shape(shape, kwargs, out_shape)
        # symbolic tensors among the keyword arguments (an LSTM's initial_state) are
        # inputs of the call too: after the positional ones
        extra = []
        for value in kwargs.values():
            map_tensors(value, extra.append)
        args = [*inputs, *extra]
        several = len(out_shape) > 0 and isinstance(out_shape[0], (tuple, list))
        if several:  # several outputs (a shape each): one tensor each, one call
            outs = []
            for i, s in enumerate(out_shape):
                group = outs[0] if outs else None
                outs.append(KerasTensor(s, self.dtype, self, args, kwargs, group, index=i))
                outs[-1]._n_args = len(inputs)
            outs[0]._group = outs[0]
            self.__dict__.setdefault("_symbolic_calls", []).append(outs[0])
            return outs
        out = KerasTensor(out_shape, self.dtype, self, args, kwargs)
        out._n_args = len(inputs)
        self.__dict__.setdefault("_symbolic_calls", []).append(out)
        return out

    # -- the symbolic tensors of this layer's calls (Keras' layer.input / layer.output) --
    def _the_call(self, what: str):
        calls = list(self.__dict__.get("_symbolic_calls", ()))
        in_sequential = self.__dict__.get("_sequential_output")
        if in_sequential is not None:
            calls.append(in_sequential)
        if len(calls) == 1:
            return calls[0]
        if not calls:
            raise AttributeError(
                f"Layer '{self.name}' has never been called on a symbolic input (hpnn.Input), "
                f"so it has no defined {what}."
            )
        raise AttributeError(
            f"Layer '{self.name}' has been called {len(calls)} times on symbolic inputs, so "
            f"its {what} is ambiguous: use the tensors those calls returned."
        )

    @property
    def output(self):
        """The symbolic output of this layer's one call in a functional graph (or of its
        place in a Sequential model that has an Input), as Keras' ``layer.output``."""
        return self._the_call("output")

    @output.setter
    def output(self, value) -> None:
        self.__dict__["_symbolic_calls"] = [value]

    @property
    def input(self):
        """The symbolic input(s) of that call, as Keras' ``layer.input``."""
        call = self._the_call("input")
        if not call._inputs:  # an Input: its own tensor
            return call
        return call._inputs[0] if len(call._inputs) == 1 else list(call._inputs)

    def _record_activity(self, out) -> None:
        """The activity penalty of each output, a mean over the batch as in Keras 3:
        ``activity_regularizer(output) / batch_size``. Kept as this layer's latest
        (``Model.losses``) and added to the thread's collection, if one is open.
        Skipped where nothing can use it: no collection and no graph (predict)."""
        collecting = _collector.active
        if collecting is None and not is_grad_enabled():
            self._activity_losses = []
            return
        outs = out if isinstance(out, (tuple, list)) else [out]
        penalties = []
        for t in outs:
            if not isinstance(t, Tensor):
                continue
            p = self.activity_regularizer(t)
            if t.ndim > 0 and t.shape[0] > 0:
                p = p * (1.0 / t.shape[0])
            elif t.ndim > 0:  # an empty batch: no penalty (Keras divides with no NaN)
                p = ops.sum(t) * 0.0
            penalties.append(p)
        self._activity_losses = penalties
        if collecting is not None:
            collecting.extend(penalties)

    # -- config ----------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


class KernelLayer(Layer):
    """Base of the layers with a kernel, an optional bias and an activation
    (Dense, Conv1D, Conv2D): their shared arguments, weights and config."""

    def _kernel_args(
        self,
        activation,
        use_bias,
        kernel_initializer,
        bias_initializer,
        kernel_regularizer,
        bias_regularizer,
        activity_regularizer,
        kernel_constraint=None,
        bias_constraint=None,
    ):
        self.activation = activations.get(activation, self._where())
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)

    def _last_axis(self, input_shape) -> int:
        """The input's feature/channel count, which the kernel's shape needs."""
        size = input_shape[-1]
        if size is None:
            raise ValueError(
                f"{self._where()}: the last input axis (features or channels) must be known. "
                f"Received: shape={tuple(input_shape)}"
            )
        return size

    def _build_kernel(self, kernel_shape, in_dim: int, units: int) -> None:
        self.kernel = self.add_weight(
            kernel_shape,
            self.kernel_initializer,
            "kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self._build_bias(units)
        self._fixed_dims = {-1: in_dim}
        self.built = True

    def _build_bias(self, units: int) -> None:
        self.bias = (
            self.add_weight(
                (units,),
                self.bias_initializer,
                "bias",
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **weight_config(self),
        }


def _walk(layer):
    """``layer`` and every layer inside it (held in an attribute or a list of them),
    each once, in a fixed order."""
    seen, todo = set(), [layer]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        for v in vars(obj).values():
            items = v if isinstance(v, (list, tuple)) else [v]
            todo.extend(item for item in items if isinstance(item, Layer))


def random_generators(layer) -> list:
    """Every numpy Generator that ``layer`` and the layers inside it own (dropout,
    augmentation...), in a fixed order: what must be saved to replay a run exactly."""
    found = []
    for obj in _walk(layer):
        for v in vars(obj).values():
            items = v if isinstance(v, (list, tuple)) else [v]
            found.extend(item for item in items if isinstance(item, np.random.Generator))
    return found


def walk_layers(layer) -> list:
    """``layer`` and every layer inside it, each once, in a fixed order."""
    return list(_walk(layer))


def current_activity(layer) -> list:
    """The activity penalties collected so far in this thread's
    ``collect_activity_penalties`` block, else those of ``layer``'s latest call."""
    collecting = _collector.active
    return list(collecting) if collecting is not None else activity_losses(layer)


def activity_losses(layer) -> list:
    """The activity penalties and added losses of ``layer``'s latest call (and its layers')."""
    keys = ("_activity_losses", "_added_losses")
    return [p for obj in _walk(layer) for key in keys for p in obj.__dict__.get(key, ())]
