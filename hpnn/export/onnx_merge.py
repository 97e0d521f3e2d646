"""ONNX converters of the layers that take several inputs: the merge layers, ``Dot``
and the attention layers (functional models call ``convert_merge``)."""

from __future__ import annotations

import numpy as np

from hpnn import layers as hl
from hpnn.export.onnx import unsupported
from hpnn.export.onnx_layers import _MERGE, _w, supported_layers

# -- merge layers (functional models) ------------------------------------------------------


def _dot(g, layer, xs, shapes):
    """``Dot``: a product summed over the dot axis (2-D) or a batched MatMul (3-D)."""
    rank = len(shapes[0])
    x, y = (g.channels_last(v, rank) for v in xs)
    a1, a2 = layer._resolved(list(shapes))
    if layer.normalize:
        x = g.op("LpNormalization", [x], axis=a1, p=2)
        y = g.op("LpNormalization", [y], axis=a2, p=2)
    if rank == 2:
        return g.op("ReduceSum", [g.op("Mul", [x, y]), g.ints([1], "axes")], keepdims=1)
    left = x if a1 == 2 else g.op("Transpose", [x], perm=[0, 2, 1])
    right = y if a2 == 1 else g.op("Transpose", [y], perm=[0, 2, 1])
    return g.op("MatMul", [left, right])


def _attention(g, layer, xs, shapes, causal):
    """MultiHeadAttention as MatMul, Reshape, Transpose and Softmax nodes."""
    rank = 3
    q, v = (g.channels_last(t, rank) for t in xs[:2])
    k = g.channels_last(xs[2], rank) if len(xs) == 3 else v
    n = layer.num_heads

    def project(t, name, dim):
        kernel, bias = getattr(layer, f"_{name}")
        w = _w(kernel).reshape(kernel.shape[0], n * dim)
        y = g.op("MatMul", [t, g.const(w, f"{name}_kernel")])
        if bias is not None:
            y = g.op("Add", [y, g.const(_w(bias).reshape(-1), f"{name}_bias")])
        y = g.op("Reshape", [y, g.ints([0, 0, n, dim])])
        return g.op("Transpose", [y], perm=[0, 2, 1, 3])  # (B, N, T, dim)

    qp = g.op("Mul", [project(q, "query", layer.key_dim), g.const(1 / layer.key_dim**0.5)])
    kp = project(k, "key", layer.key_dim)
    vp = project(v, "value", layer.value_dim)
    scores = g.op("MatMul", [qp, g.op("Transpose", [kp], perm=[0, 1, 3, 2])])
    if causal:
        t, s_len = shapes[0][1], shapes[1][1]
        if t is None or s_len is None:
            raise unsupported(layer, "use_causal_mask needs known sequence lengths")
        mask = np.tril(np.ones((t, s_len), np.float32), k=s_len - t)[None, None]
        scores = g.op("Add", [g.op("Mul", [scores, g.const(mask)]), g.const((1 - mask) * -1e9)])
    ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), vp])
    ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]), g.ints([0, 0, -1])])
    kernel, bias = layer._attention_output
    out = g.op("MatMul", [ctx, g.const(_w(kernel).reshape(-1, kernel.shape[-1]), "out_kernel")])
    return g.op("Add", [out, g.const(bias, "out_bias")]) if bias is not None else out


def _causal(g, layer, scores, t, s_len):
    """Attention's causal mask: the scores of later steps lowered by 1e9 (as Keras)."""
    if t is None or s_len is None:
        raise unsupported(layer, "use_causal_mask needs known sequence lengths")
    mask = np.tril(np.ones((t, s_len), np.float32))[None]
    return g.op("Add", [scores, g.const((1 - mask) * -1e9)])


def _luong(g, layer, xs, shapes, causal):
    """Attention / AdditiveAttention as MatMul (or Add, Tanh, ReduceSum), Softmax, MatMul."""
    q, v = (g.channels_last(t, 3) for t in xs[:2])
    k = g.channels_last(xs[2], 3) if len(xs) == 3 else v
    additive = type(layer) is hl.AdditiveAttention
    if layer.score_mode == "dot" and not additive:
        scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 2, 1])])
        if layer.scale is not None:
            scores = g.op("Mul", [scores, g.const(layer.scale, "scale")])
    else:  # tanh(q_i + k_j), summed over the features: (B, Tq, 1, d) + (B, 1, Tv, d)
        pairs = g.op(
            "Add",
            [g.op("Unsqueeze", [q, g.ints([2])]), g.op("Unsqueeze", [k, g.ints([1])])],
        )
        if layer.scale is not None and not additive:
            pairs = g.op("Mul", [pairs, g.const(layer.scale, "scale")])
        pairs = g.op("Tanh", [pairs])
        if additive and layer.scale is not None:
            pairs = g.op("Mul", [pairs, g.const(layer.scale, "scale")])
        scores = g.op("ReduceSum", [pairs, g.ints([3])], keepdims=0)  # axes: an input
        if layer.concat_score_weight is not None:
            scores = g.op("Mul", [scores, g.const(layer.concat_score_weight, "concat_w")])
    if causal:
        scores = _causal(g, layer, scores, shapes[0][1], shapes[1][1])
    return g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])


def convert_merge(g, layer, xs, shapes, kwargs=None):
    """A merge layer over the tensors named ``xs``: all in one layout (channels-first
    when they all are, so a residual Add between convolutions needs no Transpose).
    Also the other layers that take several tensors (Dot, MultiHeadAttention)."""
    if type(layer) is hl.MultiHeadAttention:
        causal = bool((kwargs or {}).get("use_causal_mask"))
        return _attention(g, layer, xs, shapes, causal), layer.compute_output_shape(shapes)
    if type(layer) in (hl.Attention, hl.AdditiveAttention):
        causal = bool((kwargs or {}).get("use_causal_mask"))
        return _luong(g, layer, xs, shapes, causal), layer.compute_output_shape(shapes)
    if type(layer) is hl.Dot:
        return _dot(g, layer, xs, shapes), layer.compute_output_shape(list(shapes))
    rank = len(shapes[0])
    first = all(g.is_channels_first(x) for x in xs)
    xs = [x if first else g.channels_last(x, rank) for x in xs]
    out_shape = tuple(layer.compute_output_shape(list(shapes)))
    like = xs[0] if first else None
    if type(layer) is hl.Concatenate:
        axis = layer.axis % rank
        if first and rank >= 3:  # (N, C, ...) in ONNX: channels to 1, spatial axes one on
            axis = 1 if axis == rank - 1 else axis + 1
        return g.op("Concat", xs, like=like, axis=axis), out_shape
    if type(layer) not in _MERGE:
        raise unsupported(layer, supported=supported_layers())
    op_type = _MERGE[type(layer)]
    if op_type is None:
        y = xs[0]
        for x in xs[1:]:
            y = g.op("Mul", [y, x], like=like)
        return y, out_shape
    return g.op(op_type, xs, like=like), out_shape
