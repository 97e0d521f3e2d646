"""ONNX converters of the non-recurrent layers, and the table of all converters.

A converter ``convert(g, layer, x, shape)`` adds the nodes computing ``layer`` on
the tensor named ``x`` (whose hpnn shape, batch included, is ``shape``) to the
graph ``g`` and returns the output's name. Layers compute in inference mode.
"""

from __future__ import annotations

import numpy as np

from hpnn import activations
from hpnn import layers as hl
from hpnn.backend import to_numpy
from hpnn.engine.ops.conv import pad_amounts
from hpnn.export import onnx_recurrent
from hpnn.export.onnx import unsupported

_ELEMENTWISE = {
    "relu": ("Relu", {}),
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "softplus": ("Softplus", {}),
    "elu": ("Elu", {"alpha": 1.0}),
    "leaky_relu": ("LeakyRelu", {"alpha": 0.2}),
    "softsign": ("Softsign", {}),
    "selu": ("Selu", {"alpha": 1.6732632423543772, "gamma": 1.0507009873554805}),
    "hard_sigmoid": ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}),
    "hard_silu": ("HardSwish", {}),  # x * hard_sigmoid(x), the same formula
    "exponential": ("Exp", {}),
}


def _scalar(g, value, base="c"):
    return g.const(np.float32(value), base)


def _composite_activation(g, name, x):
    """The activations ONNX has no single op for (at opset 17), from several."""
    if name == "relu6":
        return g.op("Clip", [x, _scalar(g, 0.0, "zero"), _scalar(g, 6.0, "six")], like=x)
    if name == "silu":
        return g.op("Mul", [x, g.op("Sigmoid", [x], like=x)], like=x)
    if name == "mish":
        return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x], like=x)], like=x)], like=x)
    if name == "gelu":  # exact: 0.5 x (1 + erf(x / sqrt(2)))
        erf = g.op("Erf", [g.op("Mul", [x, _scalar(g, 1 / np.sqrt(2.0))], like=x)], like=x)
        half = g.op("Mul", [x, _scalar(g, 0.5)], like=x)
        return g.op("Mul", [half, g.op("Add", [erf, _scalar(g, 1.0)], like=x)], like=x)
    return None


def activation(g, layer, fn, x, rank):
    """Apply an hpnn activation function (by identity) to ``x``."""
    name = activations.serialize(fn)
    if activations._BY_NAME.get(name) is not fn:
        raise unsupported(layer, f"custom activation {fn!r}")
    if name == "linear":
        return x
    if name in ("softmax", "log_softmax"):
        x = g.channels_last(x, rank)  # over the last axis of hpnn's layout
        return g.op("Softmax" if name == "softmax" else "LogSoftmax", [x], axis=-1)
    composite = _composite_activation(g, name, x)
    if composite is not None:
        return composite
    op_type, attrs = _ELEMENTWISE[name]
    return g.op(op_type, [x], like=x, **attrs)


# -- activation layers -----------------------------------------------------------------
def relu_layer(g, layer, x, shape):
    th, top, slope = layer.threshold, layer.max_value, layer.negative_slope
    if th:
        keep = g.op("Cast", [g.op("Greater", [x, _scalar(g, th)])], to=1)  # 1: FLOAT
        y = g.op("Mul", [x, keep], like=x)
    else:
        y = g.op("Relu", [x], like=x)
    if top is not None:
        y = g.op("Clip", [y, _scalar(g, 0.0), _scalar(g, top)], like=x)
    if slope:
        below = g.op("Relu", [g.op("Sub", [_scalar(g, th), x], like=x)], like=x)
        y = g.op("Sub", [y, g.op("Mul", [below, _scalar(g, slope)], like=x)], like=x)
    return y


def leaky_relu_layer(g, layer, x, shape):
    return g.op("LeakyRelu", [x], like=x, alpha=layer.negative_slope)


def elu_layer(g, layer, x, shape):
    return g.op("Elu", [x], like=x, alpha=layer.alpha)


def softmax_layer(g, layer, x, shape):
    return g.op("Softmax", [g.channels_last(x, len(shape))], axis=layer.axis)


def prelu_layer(g, layer, x, shape):
    return g.op("PRelu", [g.channels_last(x, len(shape)), g.const(layer.alpha, "alpha")])


def _w(v):
    return to_numpy(v.data)


# -- core ------------------------------------------------------------------------------
def dense(g, layer, x, shape):
    x = g.channels_last(x, len(shape))
    y = g.op("MatMul", [x, g.const(layer.kernel, "kernel")])
    if layer.bias is not None:
        y = g.op("Add", [y, g.const(layer.bias, "bias")])
    return activation(g, layer, layer.activation, y, len(shape))


def flatten(g, layer, x, shape):
    return g.op("Flatten", [g.channels_last(x, len(shape))], axis=1)


def identity(g, layer, x, shape):
    return x


def activation_layer(g, layer, x, shape):
    return activation(g, layer, layer.activation, x, len(shape))


# -- convolution and pooling (channels-first in ONNX) --------------------------------------
def _pads(layer, shape, kernel, strides, padding):
    """ONNX ``pads`` ``[begin..., end...]`` for Keras' 'valid'/'same' (odd padding at the end)."""
    spatial = shape[1:-1]
    if padding == "same" and any(n is None for n in spatial) and any(s > 1 for s in strides):
        raise unsupported(layer, "padding='same' with strides > 1 needs known spatial sizes")
    amounts = [
        pad_amounts(n if n is not None else k, k, s, padding)
        for n, k, s in zip(spatial, kernel, strides, strict=True)
    ]
    return [a for a, _ in amounts] + [b for _, b in amounts]


def conv2d(g, layer, x, shape):
    x = g.channels_first(x, 4)
    w = g.const(_w(layer.kernel).transpose(3, 2, 0, 1), "kernel")  # (O, C, KH, KW)
    inputs = [x, w] + ([g.const(layer.bias, "bias")] if layer.bias is not None else [])
    pairs = zip(layer.kernel_size, layer.dilation_rate, strict=True)
    extents = [(k - 1) * d + 1 for k, d in pairs]  # 'same' pads for the dilated kernel
    pads = _pads(layer, shape, extents, layer.strides, layer.padding)
    y = g.op(
        "Conv",
        inputs,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.strides),
        dilations=list(layer.dilation_rate),
        pads=pads,
        like=x,
    )
    return activation(g, layer, layer.activation, y, 4)


def _depthwise(g, layer, x, shape, kernel, bias):
    """ONNX Conv with one group per input channel: output ``c * M + m`` from channel c."""
    x = g.channels_first(x, 4)
    kh, kw, c, m = kernel.shape
    w = g.const(_w(kernel).transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw), "depthwise")
    inputs = [x, w] + ([g.const(bias, "bias")] if bias is not None else [])
    pairs = zip(layer.kernel_size, layer.dilation_rate, strict=True)
    extents = [(k - 1) * d + 1 for k, d in pairs]
    return g.op(
        "Conv",
        inputs,
        group=c,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.strides),
        dilations=list(layer.dilation_rate),
        pads=_pads(layer, shape, extents, layer.strides, layer.padding),
        like=x,
    )


def depthwise_conv2d(g, layer, x, shape):
    y = _depthwise(g, layer, x, shape, layer.kernel, layer.bias)
    return activation(g, layer, layer.activation, y, 4)


def separable_conv2d(g, layer, x, shape):
    y = _depthwise(g, layer, x, shape, layer.depthwise_kernel, None)
    w = g.const(_w(layer.pointwise_kernel).transpose(3, 2, 0, 1), "pointwise")
    inputs = [y, w] + ([g.const(layer.bias, "bias")] if layer.bias is not None else [])
    y = g.op("Conv", inputs, kernel_shape=[1, 1], like=y)
    return activation(g, layer, layer.activation, y, 4)


def conv2d_transpose(g, layer, x, shape):
    """ONNX ConvTranspose, its pads and output_padding chosen to keep the same window of
    the full map as hpnn (Keras' size, TF's 'same' offset)."""
    from hpnn.engine.ops.conv import conv_transpose_length

    x = g.channels_first(x, 4)
    w = g.const(_w(layer.kernel).transpose(3, 2, 0, 1), "kernel")  # (C, O, KH, KW)
    inputs = [x, w] + ([g.const(layer.bias, "bias")] if layer.bias is not None else [])
    begins, ends, extra = [], [], []
    pads = layer.output_padding or (None, None)
    for n, k, s, op in zip(shape[1:3], layer.kernel_size, layer.strides, pads, strict=True):
        if n is None:
            raise unsupported(layer, "it needs known spatial input sizes")
        length = conv_transpose_length(n, k, s, layer.padding, op)
        full = (n - 1) * s + k
        begin = max(full - length, 0) // 2 if layer.padding == "same" else 0
        begins.append(begin)
        ends.append(max(full - begin - length, 0))
        extra.append(max(begin + length - full, 0))
    y = g.op(
        "ConvTranspose",
        inputs,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.strides),
        pads=begins + ends,
        output_padding=extra,
        like=x,
    )
    return activation(g, layer, layer.activation, y, 4)


def conv1d(g, layer, x, shape):
    x = g.channels_first(x, 3)
    w = g.const(_w(layer.kernel).transpose(2, 1, 0), "kernel")  # (O, C, K)
    inputs = [x, w] + ([g.const(layer.bias, "bias")] if layer.bias is not None else [])
    k, s, d = layer.kernel_size, layer.strides, layer.dilation_rate
    extent = (k - 1) * d + 1
    if layer.padding == "causal":
        pads = [extent - 1, 0]
    else:
        pads = _pads(layer, shape, (extent,), (s,), layer.padding)
    y = g.op("Conv", inputs, kernel_shape=[k], strides=[s], dilations=[d], pads=pads, like=x)
    return activation(g, layer, layer.activation, y, 3)


def _pool(op_type, size, strides):
    def convert(g, layer, x, shape):
        rank = len(shape)
        x = g.channels_first(x, rank)
        k, s = size(layer), strides(layer)
        attrs = {"count_include_pad": 0} if op_type == "AveragePool" else {}
        return g.op(
            op_type,
            [x],
            kernel_shape=k,
            strides=s,
            pads=_pads(layer, shape, k, s, layer.padding),
            like=x,
            **attrs,
        )

    return convert


def _global_pool(op_type):
    def convert(g, layer, x, shape):
        x = g.channels_first(x, len(shape))
        y = g.op(op_type, [x], like=x)
        return y if layer.keepdims else g.op("Flatten", [y], axis=1)

    return convert


# -- normalization -----------------------------------------------------------------------
def batch_norm(g, layer, x, shape):
    rank, c = len(shape), shape[layer.axis]
    ones, zeros = np.ones(c, np.float32), np.zeros(c, np.float32)
    gamma = _w(layer.gamma) if layer.gamma is not None else ones
    beta = _w(layer.beta) if layer.beta is not None else zeros
    mean, var = _w(layer.moving_mean), _w(layer.moving_variance)
    if layer.axis % rank == rank - 1 and (rank == 2 or g.is_channels_first(x)):
        inputs = [
            x,
            *(
                g.const(a, n)
                for a, n in ((gamma, "gamma"), (beta, "beta"), (mean, "mean"), (var, "var"))
            ),
        ]
        return g.op("BatchNormalization", inputs, epsilon=layer.epsilon, like=x)
    # Any other axis or layout: (x - mean) * (gamma / sqrt(var + eps)) + beta, channels-last
    x = g.channels_last(x, rank)
    bshape = [1] * rank
    bshape[layer.axis % rank] = c
    inv = (gamma / np.sqrt(var.astype(np.float64) + layer.epsilon)).astype(np.float32)
    y = g.op("Sub", [x, g.const(mean.reshape(bshape), "mean")])
    y = g.op("Mul", [y, g.const(inv.reshape(bshape), "scale")])
    return g.op("Add", [y, g.const(beta.reshape(bshape), "beta")])


def layer_norm(g, layer, x, shape):
    rank, axes = len(shape), tuple(layer._axes)
    x = g.channels_last(x, rank)
    pshape = tuple(shape[a] for a in axes)
    gamma = _w(layer.gamma) if layer.gamma is not None else np.ones(pshape, np.float32)
    beta = _w(layer.beta) if layer.beta is not None else np.zeros(pshape, np.float32)
    if axes == tuple(range(rank - len(axes), rank)):
        return g.op(
            "LayerNormalization",
            [x, g.const(gamma, "gamma"), g.const(beta, "beta")],
            axis=axes[0],
            epsilon=layer.epsilon,
        )
    # Axes that are not the trailing ones: the formula, with parameters broadcast
    bshape = [shape[a] if a in axes else 1 for a in range(rank)]
    bshape[0] = 1
    mean = _reduce(g, x, axes)
    d = g.op("Sub", [x, mean])
    var = _reduce(g, g.op("Mul", [d, d]), axes)
    std = g.op("Sqrt", [g.op("Add", [var, g.const(np.float32(layer.epsilon), "eps")])])
    y = g.op("Mul", [g.op("Div", [d, std]), g.const(gamma.reshape(bshape), "gamma")])
    return g.op("Add", [y, g.const(beta.reshape(bshape), "beta")])


def _reduce(g, x, axes, op_type="ReduceMean"):
    """A ReduceMean or ReduceSumSquare over ``axes``: an attribute before opset 18, an input
    from it (not for ReduceSum, whose axes are an input from opset 13)."""
    if g.opset >= 18:  # axes became an input in opset 18
        return g.op(op_type, [x, g.ints(list(axes), "axes")], keepdims=1)
    return g.op(op_type, [x], axes=list(axes), keepdims=1)


def unit_norm(g, layer, x, shape):
    rank = len(shape)
    x = g.channels_last(x, rank)
    axes = layer.axis if isinstance(layer.axis, list) else [layer.axis]
    sq = _reduce(g, x, [a % rank for a in axes], "ReduceSumSquare")
    norm = g.op("Max", [g.op("Sqrt", [sq]), _scalar(g, 1e-12)])
    return g.op("Div", [x, norm])


def group_norm(g, layer, x, shape):
    """(N, ..., C) -> (N, rest, G, C/G); mean and variance over axes 1 and 3."""
    c = shape[-1]
    x = g.channels_last(x, len(shape))
    grouped = g.op("Reshape", [x, g.ints([0, -1, layer.groups, c // layer.groups])])
    d = g.op("Sub", [grouped, _reduce(g, grouped, [1, 3])])
    var = _reduce(g, g.op("Mul", [d, d]), [1, 3])
    std = g.op("Sqrt", [g.op("Add", [var, _scalar(g, layer.epsilon, "eps")])])
    y = g.op("Reshape", [g.op("Div", [d, std]), g.op("Shape", [x])])
    if layer.gamma is not None:
        y = g.op("Mul", [y, g.const(layer.gamma, "gamma")])
    if layer.beta is not None:
        y = g.op("Add", [y, g.const(layer.beta, "beta")])
    return y


# -- reshaping and embedding -------------------------------------------------------------
def reshape(g, layer, x, shape):
    x = g.channels_last(x, len(shape))
    return g.op("Reshape", [x, g.ints([0, *layer._resolve(shape)])])


def permute(g, layer, x, shape):
    return g.op("Transpose", [g.channels_last(x, len(shape))], perm=[0, *layer.dims])


def repeat_vector(g, layer, x, shape):
    y = g.op("Unsqueeze", [x, g.ints([1], "axes")])
    return g.op("Tile", [y, g.ints([1, layer.n, 1], "repeats")])


def time_distributed(g, layer, x, shape):
    inner_shape = (None, *shape[2:])
    if any(d is None for d in shape[2:]):
        raise unsupported(layer, "the per-step shape must be known")
    x = g.channels_last(x, len(shape))
    folded = g.op("Reshape", [x, g.ints([-1, *shape[2:]])])
    y, out = convert_layer(g, layer.layer, folded, inner_shape)
    y = g.channels_last(y, len(out))
    if any(d is None for d in out[1:]):
        raise unsupported(layer, "the wrapped layer's output shape must be known")
    batch_time = g.op("Slice", [g.op("Shape", [x]), g.ints([0], "starts"), g.ints([2], "ends")])
    target = g.op("Concat", [batch_time, g.ints(list(out[1:]))], axis=0)
    return g.op("Reshape", [y, target])


def embedding(g, layer, x, shape):
    return g.op("Gather", [g.const(layer.embeddings, "embeddings"), g.as_int64(x)], axis=0)


# -- image layers without weights -----------------------------------------------------------
def rescaling(g, layer, x, shape):
    y = g.op("Mul", [x, g.const([layer.scale], "scale")], like=x)
    return g.op("Add", [y, g.const([layer.offset], "offset")], like=y) if layer.offset else y


def normalization(g, layer, x, shape):
    x = g.channels_last(x, len(shape))  # the statistics are laid out as hpnn's axes
    mean = _w(layer.mean).reshape((1, *layer._broadcast))
    std = np.maximum(np.sqrt(_w(layer.variance)), 1e-7).reshape((1, *layer._broadcast))
    if layer.invert:
        return g.op("Add", [g.op("Mul", [x, g.const(std, "std")]), g.const(mean, "mean")])
    return g.op("Div", [g.op("Sub", [x, g.const(mean, "mean")]), g.const(std, "std")])


def zero_padding(g, layer, x, shape):
    (t, b), (le, r) = layer.padding
    x = g.channels_first(x, 4)
    return g.op("Pad", [x, g.ints([0, 0, t, le, 0, 0, b, r], "pads")], like=x, mode="constant")


def cropping(g, layer, x, shape):
    (t, b), (le, r) = layer.cropping
    big = np.iinfo(np.int64).max
    x = g.channels_first(x, 4)
    ends = [-b if b else big, -r if r else big]
    return g.op(
        "Slice",
        [x, g.ints([t, le], "starts"), g.ints(ends, "ends"), g.ints([2, 3], "axes")],
        like=x,
    )


def upsampling(g, layer, x, shape):
    x = g.channels_first(x, 4)
    sh, sw = layer.size
    scales = g.const([1.0, 1.0, float(sh), float(sw)], "scales")
    return g.op(
        "Resize",
        [x, "", scales],
        like=x,
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )


def resizing(g, layer, x, shape):
    """The same two resize matrices as hpnn's call, as MatMuls (exact, any interpolation)."""
    from hpnn.layers.spatial import _resize_matrix

    _, h, w, _ = shape
    if h is None or w is None:
        raise unsupported(layer, "it needs known spatial input sizes")
    top, left, ch, cw = layer._window(h, w)
    x = g.channels_first(x, 4)  # (N, C, H, W)
    if (top, left, ch, cw) != (0, 0, h, w):
        x = g.op(
            "Slice",
            [x, g.ints([top, left]), g.ints([top + ch, left + cw]), g.ints([2, 3])],
            like=x,
        )
    rows = g.const(_resize_matrix(ch, layer.height, layer.interpolation), "rows")
    cols = g.const(_resize_matrix(cw, layer.width, layer.interpolation).T, "cols")
    return g.op("MatMul", [g.op("MatMul", [rows, x], like=x), cols], like=x)


def center_crop(g, layer, x, shape):
    _, h, w, _ = shape
    if h is None or w is None:
        raise unsupported(layer, "it needs known spatial input sizes")
    top, left = (h - layer.height) // 2, (w - layer.width) // 2
    x = g.channels_first(x, 4)
    ends = [top + layer.height, left + layer.width]
    return g.op("Slice", [x, g.ints([top, left]), g.ints(ends), g.ints([2, 3])], like=x)


# -- the table ---------------------------------------------------------------------------
CONVERTERS = {
    hl.Dense: dense,
    hl.Flatten: flatten,
    hl.Dropout: identity,
    hl.SpatialDropout1D: identity,
    hl.SpatialDropout2D: identity,
    hl.ActivityRegularization: identity,  # a training loss only
    # augmentation: the identity outside training
    hl.RandomFlip: identity,
    hl.RandomTranslation: identity,
    hl.RandomRotation: identity,
    hl.RandomZoom: identity,
    hl.RandomContrast: identity,
    hl.GaussianNoise: identity,
    hl.GaussianDropout: identity,
    hl.Identity: identity,
    hl.Activation: activation_layer,
    hl.ReLU: relu_layer,
    hl.LeakyReLU: leaky_relu_layer,
    hl.ELU: elu_layer,
    hl.Softmax: softmax_layer,
    hl.PReLU: prelu_layer,
    hl.UnitNormalization: unit_norm,
    hl.GroupNormalization: group_norm,
    hl.Rescaling: rescaling,
    hl.Normalization: normalization,
    hl.ZeroPadding2D: zero_padding,
    hl.Cropping2D: cropping,
    hl.UpSampling2D: upsampling,
    hl.Resizing: resizing,
    hl.CenterCrop: center_crop,
    hl.Conv2D: conv2d,
    hl.Conv2DTranspose: conv2d_transpose,
    hl.DepthwiseConv2D: depthwise_conv2d,
    hl.SeparableConv2D: separable_conv2d,
    hl.Conv1D: conv1d,
    hl.MaxPooling2D: _pool(
        "MaxPool", lambda lay: list(lay.pool_size), lambda lay: list(lay.strides)
    ),
    hl.AveragePooling2D: _pool(
        "AveragePool", lambda lay: list(lay.pool_size), lambda lay: list(lay.strides)
    ),
    hl.MaxPooling1D: _pool("MaxPool", lambda lay: [lay.pool_size], lambda lay: [lay.strides]),
    hl.AveragePooling1D: _pool(
        "AveragePool", lambda lay: [lay.pool_size], lambda lay: [lay.strides]
    ),
    hl.GlobalAveragePooling2D: _global_pool("GlobalAveragePool"),
    hl.GlobalMaxPooling2D: _global_pool("GlobalMaxPool"),
    hl.GlobalAveragePooling1D: _global_pool("GlobalAveragePool"),
    hl.GlobalMaxPooling1D: _global_pool("GlobalMaxPool"),
    hl.BatchNormalization: batch_norm,
    hl.LayerNormalization: layer_norm,
    hl.Reshape: reshape,
    hl.Permute: permute,
    hl.RepeatVector: repeat_vector,
    hl.TimeDistributed: time_distributed,
    hl.Embedding: embedding,
    hl.SimpleRNN: onnx_recurrent.simple_rnn,
    hl.LSTM: onnx_recurrent.lstm,
    hl.GRU: onnx_recurrent.gru,
    hl.Bidirectional: onnx_recurrent.bidirectional,
}


def supported_layers() -> list[str]:
    return sorted(cls.__name__ for cls in CONVERTERS)


def convert_layer(g, layer, x, shape):
    """Convert one layer (exact class match: a subclass may compute something else)."""
    convert = CONVERTERS.get(type(layer))
    if convert is None:  # (merge layers are converted by convert_merge)
        raise unsupported(layer, supported=supported_layers())
    y = convert(g, layer, x, tuple(shape))
    return y, tuple(layer.compute_output_shape(tuple(shape)))


# -- merge layers (functional models): converted by hpnn.export.onnx_merge ----------------
_MERGE = {
    hl.Divide: "Div",
    hl.Add: "Sum",
    hl.Multiply: None,  # a chain of Mul (ONNX has no variadic product)
    hl.Maximum: "Max",
    hl.Minimum: "Min",
    hl.Average: "Mean",
    hl.Subtract: "Sub",
}


CONVERTERS.update(
    {
        cls: None
        for cls in (
            *_MERGE, hl.Concatenate, hl.Dot, hl.MultiHeadAttention, hl.Attention,
            hl.AdditiveAttention,
        )
    }
)  # fmt: skip
