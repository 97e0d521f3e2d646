"""Bidirectional: one recurrent layer forwards, a copy backwards, outputs merged."""

from __future__ import annotations

from hpnn.engine import ops
from hpnn.layers.base import Layer

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """Run ``layer`` over the sequence and a fresh copy of it over the reversed sequence.

    Args:
        layer: a ``SimpleRNN``, ``LSTM`` or ``GRU``; its config is used for both
            directions (the backward copy gets ``go_backwards`` flipped).
        merge_mode: ``"concat"`` (last axis ``2*units``), ``"sum"``, ``"mul"``, ``"ave"``,
            or None for the list ``[forward, backward]``.
        backward_layer: an explicit backward layer (its ``go_backwards`` must differ).

    With ``return_sequences`` the backward outputs are flipped back to input order,
    and masked steps output zeros (Keras). With ``return_state`` the result is
    ``[output, *forward_states, *backward_states]``; ``initial_state`` takes the
    forward states then the backward ones. Weights: forward layer's, then backward's.

    >>> bi = Bidirectional(LSTM(4, return_sequences=True))
    >>> bi(np.zeros((2, 5, 3), np.float32)).shape
    (2, 5, 8)
    """

    input_ndim = 3
    rank_hint = "(batch, timesteps, features)"
    supports_masking = True

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        owner = self._where()
        if not hasattr(layer, "go_backwards") or not isinstance(layer, Layer):
            raise ValueError(
                f"{owner}: layer must be a recurrent layer (SimpleRNN, LSTM, GRU). "
                f"Received: layer={layer!r}"
            )
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"{owner}: merge_mode must be one of {MERGE_MODES}. "
                f"Received: merge_mode={merge_mode!r}"
            )
        if weights is not None:
            raise NotImplementedError(f"{owner}: weights= is not supported; use set_weights().")
        config = layer.get_config()
        self.forward_layer = type(layer).from_config({**config, "name": f"forward_{layer.name}"})
        if backward_layer is None:
            config = {**config, "name": f"backward_{layer.name}"}
            config["go_backwards"] = not layer.go_backwards
            backward_layer = type(layer).from_config(config)
        self.backward_layer = backward_layer
        self._check_pair(owner)
        for direction in (self.forward_layer, self.backward_layer):
            direction.zero_output_for_mask = direction.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state

    def _check_pair(self, owner):
        fwd, bwd = self.forward_layer, self.backward_layer
        if fwd.go_backwards == bwd.go_backwards:
            raise ValueError(
                f"{owner}: the forward and backward layers need different go_backwards. "
                f"Received: go_backwards={fwd.go_backwards} for both"
            )
        for attr in ("return_sequences", "return_state"):
            if getattr(fwd, attr) != getattr(bwd, attr):
                raise ValueError(
                    f"{owner}: the forward and backward layers need the same {attr}. "
                    f"Received: {getattr(fwd, attr)} and {getattr(bwd, attr)}"
                )

    def build(self, input_shape):
        self.forward_layer.build_for(input_shape)
        self.backward_layer.build_for(input_shape)
        # The two directions' Variables are this layer's weights (Keras order).
        self._weights = self.forward_layer.weights + self.backward_layer.weights
        self.built = True

    def call(self, x, training=False, mask=None, initial_state=None):
        fwd_state = bwd_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            fwd_state, bwd_state = list(initial_state[:half]), list(initial_state[half:])
        y = self.forward_layer(x, training=training, mask=mask, initial_state=fwd_state)
        y_rev = self.backward_layer(x, training=training, mask=mask, initial_state=bwd_state)
        states = []
        if self.return_state:
            states = [*y[1:], *y_rev[1:]]
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        out = self._merge(y, y_rev)
        if self.return_state:
            return [*out, *states] if self.merge_mode is None else [out, *states]
        return out

    def _merge(self, y, y_rev):
        mode = self.merge_mode
        if mode == "concat":
            return ops.concatenate([y, y_rev], axis=-1)
        if mode == "sum":
            return y + y_rev
        if mode == "mul":
            return y * y_rev
        if mode == "ave":
            return (y + y_rev) * 0.5
        return [y, y_rev]

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        state_shapes = []
        if self.return_state:
            shape, state_shapes = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            shape = (*shape[:-1], None if shape[-1] is None else 2 * shape[-1])
        out = [shape, shape] if self.merge_mode is None else [shape]
        if self.return_state:
            return out + state_shapes + state_shapes
        return out[0] if self.merge_mode is not None else out

    def compute_mask(self, inputs, mask=None):
        out = mask if self.return_sequences else None
        if self.merge_mode is None:
            out = [out, out]
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "merge_mode": self.merge_mode,
            "layer": {
                "class_name": type(self.forward_layer).__name__,
                "config": self.forward_layer.get_config(),
            },
        }

    @classmethod
    def from_config(cls, config):
        from hpnn import layers

        config = dict(config)
        spec = config.pop("layer")
        backward = config.pop("backward_layer", None)
        if isinstance(backward, dict):  # (Keras' configs always hold the backward layer)
            backward = getattr(layers, backward["class_name"]).from_config(backward["config"])
        return cls(
            getattr(layers, spec["class_name"]).from_config(spec["config"]),
            backward_layer=backward,
            **config,
        )
