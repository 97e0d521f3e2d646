"""ONNX converters of SimpleRNN, LSTM, GRU and Bidirectional (ONNX's RNN, LSTM, GRU ops).

Weight layouts: Keras keeps kernel ``(F, G*U)`` and recurrent kernel ``(U, G*U)``;
ONNX wants ``W [1, G*U, F]``, ``R [1, G*U, U]`` and ``B [1, 2*G*U]`` (input bias,
then recurrent bias). LSTM gates are i, f, c, o in Keras and i, o, f, c in ONNX;
GRU gates are z, r, h in both, and Keras' ``reset_after=True`` is ONNX's
``linear_before_reset=1`` with the bias ``(2, 3U)`` split into Wb and Rb.
``go_backwards`` reverses the input and keeps the outputs in processing order,
as hpnn does, so ONNX's forward direction serves both.
"""

from __future__ import annotations

import numpy as np

from hpnn.backend import to_numpy
from hpnn.export.onnx import unsupported

# hpnn's fused activation names -> (ONNX name, alpha, beta); Keras 3's hard_sigmoid is
# relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1).
_ACTIVATIONS = {
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
}
_INT64_MIN = -(2**63)


def _acts(names):
    """The ``activations`` attributes; alpha/beta are listed only for the functions using them."""
    attrs = {"activations": [_ACTIVATIONS[n][0] for n in names]}
    alphas = [_ACTIVATIONS[n][1] for n in names if _ACTIVATIONS[n][1] is not None]
    betas = [_ACTIVATIONS[n][2] for n in names if _ACTIVATIONS[n][2] is not None]
    if alphas:
        attrs["activation_alpha"], attrs["activation_beta"] = alphas, betas
    return attrs


def _gates(a, order, units):
    """Reorder the gate blocks of the last axis of ``a`` (``G*U`` wide)."""
    return np.concatenate([a[..., k * units : (k + 1) * units] for k in order], axis=-1)


def _onnx_weights(layer, order):
    """W ``[1, G*U, F]``, R ``[1, G*U, U]`` and B ``[1, 2*G*U]`` from the Keras weights."""
    u = layer.units
    kernel = _gates(to_numpy(layer.kernel.data), order, u)
    recurrent = _gates(to_numpy(layer.recurrent_kernel.data), order, u)
    width = kernel.shape[1]
    if layer.bias is None:
        bias = np.zeros(2 * width, np.float32)
    else:
        b = to_numpy(layer.bias.data)
        if b.ndim == 2:  # GRU reset_after: (input bias, recurrent bias)
            bias = np.concatenate([_gates(b[0], order, u), _gates(b[1], order, u)])
        else:
            bias = np.concatenate([_gates(b, order, u), np.zeros(width, np.float32)])
    return kernel.T[None], recurrent.T[None], bias[None]


def _reverse_time(g, x):
    return g.op(
        "Slice",
        [
            x,
            g.ints([-1], "starts"),
            g.ints([_INT64_MIN], "ends"),
            g.ints([1], "axes"),
            g.ints([-1], "steps"),
        ],
        "reversed",
    )


def _recurrent(g, layer, x, shape, op_type, order, acts, **attrs):
    if layer.return_state:
        raise unsupported(layer, "return_state=True: a Sequential passes one tensor on")
    x = g.channels_last(x, 3)
    if layer.go_backwards:
        x = _reverse_time(g, x)
    w, r, b = _onnx_weights(layer, order)
    time_major = g.op("Transpose", [x], perm=[1, 0, 2])
    seq, last = g.op(
        op_type,
        [time_major, g.const(w, "W"), g.const(r, "R"), g.const(b, "B")],
        outputs=2,
        hidden_size=layer.units,
        **_acts(acts),
        **attrs,
    )
    if not layer.return_sequences:
        return g.op("Squeeze", [last, g.ints([0], "axes")])  # (1, N, U) -> (N, U)
    y = g.op("Squeeze", [seq, g.ints([1], "axes")])  # (T, 1, N, U) -> (T, N, U)
    return g.op("Transpose", [y], perm=[1, 0, 2])


def _check_acts(layer, names):
    for n in names:
        if n not in _ACTIVATIONS:
            raise unsupported(layer, f"activation {n!r}")
    return names


def simple_rnn(g, layer, x, shape):
    acts = _check_acts(layer, [layer.activation])
    return _recurrent(g, layer, x, shape, "RNN", [0], acts)


def lstm(g, layer, x, shape):
    acts = _check_acts(layer, [layer.recurrent_activation, layer.activation, layer.activation])
    return _recurrent(g, layer, x, shape, "LSTM", [0, 3, 1, 2], acts)  # i,f,c,o -> i,o,f,c


def gru(g, layer, x, shape):
    acts = _check_acts(layer, [layer.recurrent_activation, layer.activation])
    return _recurrent(
        g, layer, x, shape, "GRU", [0, 1, 2], acts, linear_before_reset=int(layer.reset_after)
    )


_DIRECTIONS = {"SimpleRNN": simple_rnn, "LSTM": lstm, "GRU": gru}


def bidirectional(g, layer, x, shape):
    if layer.return_state or layer.merge_mode is None:
        raise unsupported(layer, "return_state=True or merge_mode=None gives several tensors")
    outs = []
    for direction in (layer.forward_layer, layer.backward_layer):
        convert = _DIRECTIONS.get(type(direction).__name__)
        if convert is None:
            raise unsupported(direction)
        outs.append(convert(g, direction, x, shape))
    y, y_rev = outs
    if layer.return_sequences:  # the backward outputs back in input order
        y_rev = _reverse_time(g, y_rev)
    mode = layer.merge_mode
    if mode == "concat":
        return g.op("Concat", [y, y_rev], axis=-1)
    if mode == "sum":
        return g.op("Add", [y, y_rev])
    if mode == "mul":
        return g.op("Mul", [y, y_rev])
    return g.op("Mul", [g.op("Add", [y, y_rev]), g.const(np.float32(0.5), "half")])
