"""All ops, by family. ``Tensor``'s operators call these functions."""

from hpnn.engine.ops.activation import (
    elu,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)
from hpnn.engine.ops.arith import (
    abs,
    add,
    clip,
    div,
    erf,
    exp,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    sqrt,
    sub,
    unbroadcast,
)
from hpnn.engine.ops.conv import conv2d, conv2d_transpose, depthwise_conv2d
from hpnn.engine.ops.conv3d import average_pool3d, conv3d, max_pool3d
from hpnn.engine.ops.dropout import dropout
from hpnn.engine.ops.extra import cumsum, einsum
from hpnn.engine.ops.linalg import linear, matmul
from hpnn.engine.ops.loss import (
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    sparse_softmax_cross_entropy,
)
from hpnn.engine.ops.norm import batch_norm, layer_norm
from hpnn.engine.ops.pool import average_pool2d, max_pool2d
from hpnn.engine.ops.recurrent import gru, lstm, simple_rnn
from hpnn.engine.ops.reduce import max, mean, sum
from hpnn.engine.ops.shape import (
    broadcast_to,
    concatenate,
    getitem,
    pad_spatial,
    reshape,
    transpose,
    upsample,
)

__all__ = [
    "abs",
    "add",
    "average_pool2d",
    "average_pool3d",
    "batch_norm",
    "broadcast_to",
    "clip",
    "concatenate",
    "conv2d",
    "conv2d_transpose",
    "conv3d",
    "cumsum",
    "depthwise_conv2d",
    "div",
    "dropout",
    "einsum",
    "elu",
    "erf",
    "exp",
    "getitem",
    "gru",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log",
    "log_softmax",
    "lstm",
    "matmul",
    "max",
    "max_pool2d",
    "max_pool3d",
    "maximum",
    "mean",
    "minimum",
    "mul",
    "neg",
    "pad_spatial",
    "pow",
    "relu",
    "reshape",
    "sigmoid",
    "sigmoid_binary_cross_entropy",
    "simple_rnn",
    "softmax",
    "softmax_cross_entropy",
    "softplus",
    "sparse_softmax_cross_entropy",
    "sqrt",
    "sub",
    "sum",
    "tanh",
    "transpose",
    "unbroadcast",
    "upsample",
]
