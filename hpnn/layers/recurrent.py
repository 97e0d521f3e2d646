"""Recurrent layers SimpleRNN, LSTM and GRU, each one fused op over the whole sequence."""

from __future__ import annotations

import numbers

import numpy as np

from hpnn import activations, constraints, initializers, regularizers
from hpnn.backend import get_xp
from hpnn.engine import step_context
from hpnn.engine.ops.recurrent import gru, lstm, simple_rnn
from hpnn.engine.ops.recurrent_base import ACTIVATIONS
from hpnn.engine.tensor import Tensor, _as_array
from hpnn.layers.base import Layer
from hpnn.random import make_rng


def _activation_name(value, what, owner):
    """The name of a fusable activation (a string, or hpnn's own function)."""
    name = value if isinstance(value, str) else activations.serialize(activations.get(value))
    if name not in ACTIVATIONS:
        raise ValueError(
            f"{owner}: {what} must be one of {ACTIVATIONS} (the recurrent ops fuse them). "
            f"Received: {what}={value!r}"
        )
    return name


def mask_array(layer, mask, x):
    """Check a ``(batch, timesteps)`` mask against ``x`` and return it as a bool array."""
    if mask is None:
        return None
    m = mask.data if isinstance(mask, Tensor) else get_xp(x.data).asarray(mask)
    if m.shape != tuple(x.shape[:2]):
        raise ValueError(
            f"{layer._where()}: expected a mask of shape (batch, timesteps) = "
            f"{tuple(x.shape[:2])}. Received: mask.shape={tuple(m.shape)}"
        )
    return m.astype(bool, copy=False)


class _RNN(Layer):
    """What SimpleRNN, LSTM and GRU share: arguments, checks, weights, call."""

    input_ndim = 3
    rank_hint = "(batch, timesteps, features)"
    supports_masking = True
    gates = 1
    n_states = 1

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        use_cudnn="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = self._where()
        self.units = self._positive_int("units", units, (int, np.integer))
        self.activation = _activation_name(activation, "activation", owner)
        self.recurrent_activation = _activation_name(
            recurrent_activation, "recurrent_activation", owner
        )
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        if stateful:
            raise NotImplementedError(f"{owner}: stateful=True is not supported yet.")
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
                raise ValueError(f"{owner}: {name} must be in [0, 1). Received: {name}={rate!r}")
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.recurrent_regularizer = recurrent_regularizer
        self.bias_regularizer = bias_regularizer
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self._rng = make_rng(seed)
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = False
        self.unroll = unroll
        self.zero_output_for_mask = zero_output_for_mask

    @property
    def state_size(self):
        return self.units if self.n_states == 1 else [self.units] * self.n_states

    # -- weights -------------------------------------------------------------------
    def build(self, input_shape):
        features = input_shape[-1]
        if features is None:
            raise ValueError(
                f"{self._where()}: the features axis must be known. "
                f"Received: shape={tuple(input_shape)}"
            )
        width = self.gates * self.units
        self.kernel = self.add_weight(
            (features, width),
            self.kernel_initializer,
            "kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            (self.units, width),
            self.recurrent_initializer,
            "recurrent_kernel",
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = (
            self.add_weight(
                self._bias_shape(),
                self._bias_init(),
                "bias",
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )
        self._fixed_dims = {-1: features}
        self.built = True

    def _bias_shape(self):
        return (self.gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    # -- calling -------------------------------------------------------------------
    def call(self, x, training=False, mask=None, initial_state=None):
        if x.shape[1] == 0:
            raise ValueError(
                f"{self._where()}: expected at least one time step. Received: shape={x.shape}"
            )
        mask = mask_array(self, mask, x)
        states = self._initial_states(initial_state, x)
        if training and self.dropout:
            # Keras: one dropout mask per sequence, the same at every step
            keep = 1.0 - self.dropout
            f = x.shape[2]
            u = step_context.batch_random(self._rng, lambda r, n: r.random((n, 1, f)), x.shape[0])
            drop = ((u < keep) / keep).astype(x.dtype)
            x = x * Tensor(get_xp(x.data).asarray(drop))
        rec_mask = None
        if training and self.recurrent_dropout:
            # Keras: one mask of the previous state per gate and sequence, the same at
            # every step, scaled by 1 / keep
            keep = 1.0 - self.recurrent_dropout
            g, units = self.gates, self.units
            u = step_context.batch_random(
                self._rng, lambda r, n: r.random((g, n, units)), x.shape[0], axis=1
            )
            rec_mask = get_xp(x.data).asarray(((u < keep) / keep).astype(x.dtype))
        return self._run(x, states, mask, rec_mask)

    def _options(self, mask, rec_mask=None):
        return {
            "activation": self.activation,
            "go_backwards": self.go_backwards,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "zero_output_for_mask": self.zero_output_for_mask,
            "mask": mask,
            "recurrent_mask": rec_mask,
        }

    def _initial_states(self, initial_state, x):
        if initial_state is None:
            return None
        if isinstance(initial_state, (Tensor, np.ndarray)) or not hasattr(initial_state, "__len__"):
            initial_state = [initial_state]
        states = list(initial_state)
        if len(states) != self.n_states:
            raise ValueError(
                f"{self._where()}: initial_state must be a list of {self.n_states} state(s) "
                f"of shape (batch, units). Received: {len(states)} state(s)"
            )
        expected = (x.shape[0], self.units)
        out = []
        for i, s in enumerate(states):
            t = s if isinstance(s, Tensor) else Tensor(_as_array(s, self.dtype))
            if tuple(t.shape) != expected:
                raise ValueError(
                    f"{self._where()}: initial_state[{i}] must have shape (batch, units) = "
                    f"{expected}. Received: shape={tuple(t.shape)}"
                )
            out.append(t)
        return out

    def compute_output_shape(self, input_shape):
        n, t = input_shape[0], input_shape[1]
        out = (n, t, self.units) if self.return_sequences else (n, self.units)
        if self.return_state:
            return [out] + [(n, self.units)] * self.n_states
        return out

    def compute_mask(self, inputs, mask=None):
        out = mask if self.return_sequences else None
        return [out] + [None] * self.n_states if self.return_state else out

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed if isinstance(self.seed, int) else None,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "zero_output_for_mask": self.zero_output_for_mask,
        }


class SimpleRNN(_RNN):
    """Fully connected RNN: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    Args:
        units: size of the state. Input ``(batch, timesteps, features)``; kernel
            ``(features, units)``, recurrent_kernel ``(units, units)``, bias ``(units,)``.
        return_sequences: output ``(batch, timesteps, units)`` instead of the last step.
        return_state: also return the final state: ``[output, h]``.
        go_backwards: process the sequence in reverse (outputs in processing order).

    Call with ``mask=`` (bool ``(batch, timesteps)``) and ``initial_state=[h0]``.
    """

    def __init__(self, units, activation="tanh", use_bias=True, **kwargs):
        super().__init__(units, activation=activation, use_bias=use_bias, **kwargs)

    def _run(self, x, states, mask, rec_mask=None):
        return simple_rnn(
            x,
            self.kernel,
            self.recurrent_kernel,
            self.bias,
            states,
            **self._options(mask, rec_mask),
        )


class LSTM(_RNN):
    """Long short-term memory (Hochreiter 1997), as Keras' ``LSTM``.

    Args:
        units: size of the states. Input ``(batch, timesteps, features)``; kernel
            ``(features, 4*units)``, recurrent_kernel ``(units, 4*units)``, bias
            ``(4*units,)``, gates in the order i, f, c, o.
        unit_forget_bias: start the forget-gate bias at 1 (Jozefowicz et al. 2015).
        return_sequences, return_state, go_backwards: as in Keras; with
            ``return_state`` the result is ``[output, h, c]``.

    Call with ``mask=`` (bool ``(batch, timesteps)``) and ``initial_state=[h0, c0]``.

    >>> lstm = LSTM(8, return_sequences=True)
    >>> lstm(np.zeros((2, 5, 3), np.float32)).shape
    (2, 5, 8)
    """

    gates = 4
    n_states = 2

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )
        self.unit_forget_bias = unit_forget_bias

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        init, units = initializers.get(self.bias_initializer), self.units

        def forget_ones(shape, dtype=None):
            return np.concatenate(
                [init((units,), dtype), np.ones(units, dtype), init((2 * units,), dtype)]
            )

        return forget_ones

    def _run(self, x, states, mask, rec_mask=None):
        return lstm(
            x,
            self.kernel,
            self.recurrent_kernel,
            self.bias,
            states,
            recurrent_activation=self.recurrent_activation,
            **self._options(mask, rec_mask),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": self.recurrent_activation,
            "unit_forget_bias": self.unit_forget_bias,
        }


class GRU(_RNN):
    """Gated recurrent unit (Cho et al. 2014), as Keras' ``GRU``.

    Args:
        units: size of the state. Input ``(batch, timesteps, features)``; kernel
            ``(features, 3*units)``, recurrent_kernel ``(units, 3*units)``, gates in the
            order z, r, h.
        reset_after: apply the reset gate after the recurrent matmul (Keras' default,
            cuDNN-compatible); bias ``(2, 3*units)`` (input, recurrent). False: bias
            ``(3*units,)``.
        return_sequences, return_state, go_backwards: as in Keras.

    Call with ``mask=`` (bool ``(batch, timesteps)``) and ``initial_state=[h0]``.
    """

    gates = 3

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        reset_after=True,
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )
        self.reset_after = reset_after

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _run(self, x, states, mask, rec_mask=None):
        return gru(
            x,
            self.kernel,
            self.recurrent_kernel,
            self.bias,
            states,
            recurrent_activation=self.recurrent_activation,
            reset_after=self.reset_after,
            **self._options(mask, rec_mask),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": self.recurrent_activation,
            "reset_after": self.reset_after,
        }
