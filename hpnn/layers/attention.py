"""Multi-head attention (Vaswani et al. 2017), as Keras' ``MultiHeadAttention``.

``layer(query, value, key=None, attention_mask=None, use_causal_mask=False)`` on
``(batch, steps, features)`` tensors: each head projects the query, key and value,
weighs the values by ``softmax(q k^T / sqrt(key_dim))`` (masked positions set to
-1e9 first, as Keras does), and an output projection joins the heads. The weights
have Keras' shapes and order, so ``set_weights`` moves them between the two.
"""

from __future__ import annotations

import math

from hpnn import initializers, regularizers
from hpnn.backend import get_xp
from hpnn.engine import ops
from hpnn.engine.tensor import Tensor
from hpnn.layers.base import KerasTensor, Layer
from hpnn.random import make_rng

MASKED = -1e9  # what a masked score becomes (Keras' value for float32)


class MultiHeadAttention(Layer):
    """Multi-head attention over sequences ``(batch, steps, features)``.

    Args:
        num_heads: number of heads.
        key_dim: size of each head's query and key projections.
        value_dim: size of each head's value projection (default ``key_dim``).
        dropout: dropout on the attention weights, in training.
        use_bias: biases in the projections.
        output_shape: the output's last size (default the query's).
    """

    _list_input = True  # (query, value[, key]): recorded as a list in functional models

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = self._where()
        self.num_heads = self._positive_int("num_heads", num_heads)
        self.key_dim = self._positive_int("key_dim", key_dim)
        self.value_dim = self._positive_int("value_dim", value_dim or key_dim)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{owner}: dropout must be in [0, 1). Received: dropout={dropout!r}")
        if attention_axes is not None:
            raise NotImplementedError(
                f"{owner}: attention_axes is not supported yet (attention runs over the steps)."
            )
        if isinstance(output_shape, (tuple, list)):
            if len(output_shape) != 1:
                raise NotImplementedError(
                    f"{owner}: output_shape must be one size. Received: {output_shape!r}"
                )
            output_shape = output_shape[0]
        self._output_dim = None if output_shape is None else int(output_shape)
        self.dropout, self.use_bias, self.seed = float(dropout), use_bias, seed
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._rng = make_rng(seed)

    # -- shapes and weights ----------------------------------------------------------
    def _shapes(self, shapes):
        shapes = [tuple(s) for s in shapes]
        if not 2 <= len(shapes) <= 3 or any(len(s) != 3 for s in shapes):
            raise ValueError(
                f"{self._where()}: expects query and value (and optionally key) of shape "
                f"(batch, steps, features). Received: shapes={shapes}"
            )
        q, v = shapes[0], shapes[1]
        k = shapes[2] if len(shapes) == 3 else v
        if v[1] is not None and k[1] is not None and v[1] != k[1]:
            raise ValueError(
                f"{self._where()}: key and value must have the same number of steps. "
                f"Received: key {k}, value {v}"
            )
        return q, v, k

    def check_input_shape(self, shapes):
        q, v, k = self._shapes(shapes)
        if self.built:
            expected = zip(("query", "value", "key"), (q, v, k), self._dims, strict=True)
            for name, got, want in expected:
                if got[-1] != want:
                    raise ValueError(
                        f"{self._where()}: {name} features must be {want}. Received: shape={got}"
                    )

    def build_for(self, shapes):
        q, v, k = self._shapes(shapes)
        if not self.built:
            if any(s[-1] is None for s in (q, v, k)):
                raise ValueError(f"{self._where()}: the feature sizes must be known.")
            n, kd, vd = self.num_heads, self.key_dim, self.value_dim
            out = self._output_dim or q[-1]
            self._dims = (q[-1], v[-1], k[-1])
            for name, shape in (
                ("query", (q[-1], n, kd)),
                ("key", (k[-1], n, kd)),
                ("value", (v[-1], n, vd)),
                ("attention_output", (n, vd, out)),
            ):
                kernel = self.add_weight(
                    shape,
                    self.kernel_initializer,
                    f"{name}_kernel",
                    regularizer=self.kernel_regularizer,
                )
                bias = None
                if self.use_bias:
                    bias = self.add_weight(
                        shape[1:] if name != "attention_output" else (out,),
                        self.bias_initializer,
                        f"{name}_bias",
                        regularizer=self.bias_regularizer,
                    )
                setattr(self, f"_{name}", (kernel, bias))
            self.built = True
        self.check_input_shape(shapes)
        self.input_shape = [q, v, k]
        self.output_shape = self.compute_output_shape(shapes)
        return self.output_shape

    def compute_output_shape(self, shapes):
        q = tuple(shapes[0])
        return (*q[:-1], self._output_dim or q[-1])

    def symbolic_output_shape(self, shapes, kwargs, out):
        """With ``return_attention_scores``: the output's shape and the scores'
        ``(batch, heads, query steps, value steps)``."""
        if not kwargs.get("return_attention_scores"):
            return out
        q, v = tuple(shapes[0]), tuple(shapes[1])
        return [out, (q[0], self.num_heads, q[1], v[1])]

    # -- calling -------------------------------------------------------------------
    def __call__(
        self,
        query,
        value=None,
        key=None,
        attention_mask=None,
        training=False,
        use_causal_mask=False,
        return_attention_scores=False,
        **kwargs,
    ):
        if value is None and isinstance(query, (list, tuple)):  # (a functional replay)
            query, value, key = (*query, None)[:3]
        if value is None:
            raise TypeError(f"{self._where()}: call it as layer(query, value[, key]).")
        inputs = [query, value] + ([key] if key is not None else [])
        if any(isinstance(t, KerasTensor) for t in inputs):
            extra = {"use_causal_mask": use_causal_mask, **kwargs}
            if return_attention_scores:
                extra["return_attention_scores"] = True
            if attention_mask is not None:  # (a symbolic mask: an input of the call)
                extra["attention_mask"] = attention_mask
            return self._call_symbolic(inputs, extra)
        return super().__call__(
            inputs,
            training=training,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
            return_attention_scores=return_attention_scores,
            **kwargs,
        )

    def _project(self, x, name, dim):
        kernel, bias = getattr(self, f"_{name}")
        b, t, f = x.shape
        y = ops.matmul(x, ops.reshape(kernel, (f, self.num_heads * dim)))
        if bias is not None:
            y = y + ops.reshape(bias, (self.num_heads * dim,))
        return ops.transpose(ops.reshape(y, (b, t, self.num_heads, dim)), (0, 2, 1, 3))

    def _mask(self, attention_mask, use_causal_mask, t, s, like):
        """The (B or 1, 1, T, S) float mask (1 = attend), or None."""
        xp = get_xp(like.data)
        mask = None
        if attention_mask is not None:
            m = attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask
            m = xp.asarray(m)
            if m.shape[-2:] != (t, s):
                raise ValueError(
                    f"{self._where()}: attention_mask must have shape (batch, {t}, {s}). "
                    f"Received: shape={tuple(m.shape)}"
                )
            mask = (m > 0.5) if m.dtype != bool else m
            mask = mask.reshape(-1, 1, t, s)
        if use_causal_mask:
            causal = xp.tril(xp.ones((t, s), dtype=bool), k=s - t)[None, None]
            mask = causal if mask is None else mask & causal
        return None if mask is None else mask.astype(like.dtype)

    def call(
        self,
        inputs,
        training=False,
        attention_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
    ):
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) == 3 else value
        q = self._project(query, "query", self.key_dim) * (1.0 / math.sqrt(self.key_dim))
        k = self._project(key, "key", self.key_dim)
        v = self._project(value, "value", self.value_dim)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))  # (B, N, T, S)
        mask = self._mask(attention_mask, use_causal_mask, scores.shape[2], scores.shape[3], q)
        if mask is not None:
            scores = scores * mask + (1.0 - mask) * MASKED
        weights = ops.softmax(scores, axis=-1)
        attended = weights
        if training and self.dropout:
            attended = ops.dropout(weights, self.dropout, self._rng)
        ctx = ops.matmul(attended, v)  # (B, N, T, value_dim)
        b, n, t, vd = ctx.shape
        ctx = ops.reshape(ops.transpose(ctx, (0, 2, 1, 3)), (b, t, n * vd))
        kernel, bias = self._attention_output
        out = ops.matmul(ctx, ops.reshape(kernel, (n * vd, kernel.shape[-1])))
        if bias is not None:
            out = out + bias
        return (out, weights) if return_attention_scores else out

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": self._output_dim,
            "seed": self.seed if isinstance(self.seed, int) else None,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


class Attention(Layer):
    """Dot-product (Luong) attention, as Keras' ``Attention``: called on ``[query,
    value]`` or ``[query, value, key]`` of shapes ``(batch, Tq, dim)`` and ``(batch,
    Tv, dim)``, returns ``softmax(scores) @ value`` of shape ``(batch, Tq, dim)``.

    ``score_mode="dot"``: ``scores = query @ key^T`` (times a learned scalar with
    ``use_scale``); ``"concat"``: ``sum(tanh(query + key))`` over the features, per
    pair of steps (times a learned scalar). ``mask=[query_mask, value_mask]`` (True =
    a real step): masked values get no weight (their scores lowered by 1e9, as Keras),
    masked queries give 0; ``use_causal_mask`` lets step i see steps <= i only;
    ``return_attention_scores=True`` also returns the weights.
    """

    _list_input = True

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(
                f"{self._where()}: score_mode must be 'dot' or 'concat'. "
                f"Received: score_mode={score_mode!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{self._where()}: dropout must be in [0, 1). Received: {dropout!r}")
        self.use_scale, self.score_mode = bool(use_scale), score_mode
        self.dropout, self.seed = float(dropout), seed
        self._rng = make_rng(seed)
        self.scale = self.concat_score_weight = None

    def _shapes(self, shapes):
        if not isinstance(shapes, (list, tuple)) or len(shapes) not in (2, 3):
            raise ValueError(
                f"{self._where()}: expects [query, value] or [query, value, key]. "
                f"Received: {len(shapes) if isinstance(shapes, (list, tuple)) else shapes}"
            )
        q, v = tuple(shapes[0]), tuple(shapes[1])
        k = tuple(shapes[2]) if len(shapes) == 3 else v
        if len(q) != 3 or len(v) != 3 or len(k) != 3 or q[-1] != k[-1] or v[1] != k[1]:
            raise ValueError(
                f"{self._where()}: expected query (batch, Tq, dim), value (batch, Tv, vdim) "
                f"and key (batch, Tv, dim). Received: query {q}, value {v}, key {k}"
            )
        return q, v

    def check_input_shape(self, shape):
        self._shapes(shape)

    def build(self, input_shape):
        self._shapes(input_shape)
        self._build_scores(input_shape)
        self.built = True

    def _build_scores(self, input_shape):
        if self.use_scale:
            self.scale = self.add_weight((), "ones", "scale")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight((), "ones", "concat_score_weight")

    def compute_output_shape(self, input_shape):
        q, v = self._shapes(input_shape)
        return (q[0], q[1], v[-1])

    def _scores(self, q, k):
        if self.score_mode == "dot":
            scores = ops.matmul(q, ops.transpose(k, (0, 2, 1)))
            return scores * self.scale if self.scale is not None else scores
        pairs = ops.reshape(q, (q.shape[0], q.shape[1], 1, q.shape[2])) + ops.reshape(
            k, (k.shape[0], 1, k.shape[1], k.shape[2])
        )
        if self.scale is not None:
            pairs = pairs * self.scale
        return ops.sum(ops.tanh(pairs), axis=-1) * self.concat_score_weight

    def call(
        self,
        inputs,
        mask=None,
        training=False,
        return_attention_scores=False,
        use_causal_mask=False,
    ):
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) == 3 else v
        q_mask, v_mask = [*mask, None, None][:2] if mask is not None else (None, None)
        scores = self._scores(q, k)
        keep = None
        if v_mask is not None:
            keep = _bools(v_mask)[:, None, :]  # (B, 1, Tv)
        if use_causal_mask:
            tq, tv = scores.shape[1], scores.shape[2]
            causal = get_xp(scores.data).tril(get_xp(scores.data).ones((tq, tv), bool))[None]
            keep = causal if keep is None else keep & causal
        if keep is not None:
            scores = scores - (~keep).astype(scores.dtype) * 1e9
        weights = ops.softmax(scores, axis=-1)
        attended = weights
        if training and self.dropout:
            attended = ops.dropout(weights, self.dropout, self._rng)
        out = ops.matmul(attended, v)
        if q_mask is not None:
            out = out * _bools(q_mask)[..., None].astype(out.dtype)
        return (out, weights) if return_attention_scores else out

    def _call_symbolic(self, x, kwargs):
        if kwargs.get("return_attention_scores") or "mask" in kwargs:
            raise NotImplementedError(
                f"{self._where()}: mask= and return_attention_scores in a functional model "
                "are not supported yet (use_causal_mask is)."
            )
        return super()._call_symbolic(x, kwargs)

    def get_config(self):
        return {
            **super().get_config(),
            "use_scale": self.use_scale,
            "score_mode": self.score_mode,
            "dropout": self.dropout,
            "seed": self.seed if isinstance(self.seed, int) else None,
        }


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention, as Keras' ``AdditiveAttention``: ``scores =
    sum(scale * tanh(query + key))`` over the features, ``scale`` a learned vector
    (``use_scale``, the default); otherwise as ``Attention``."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def _build_scores(self, input_shape):
        if self.use_scale:
            self.scale = self.add_weight((input_shape[0][-1],), "glorot_uniform", "scale")

    def _scores(self, q, k):
        pairs = ops.tanh(
            ops.reshape(q, (q.shape[0], q.shape[1], 1, q.shape[2]))
            + ops.reshape(k, (k.shape[0], 1, k.shape[1], k.shape[2]))
        )
        return ops.sum(pairs * self.scale if self.scale is not None else pairs, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.pop("score_mode")
        return config


def _bools(mask):
    data = mask.data if isinstance(mask, Tensor) else mask
    return get_xp(data).asarray(data).astype(bool)
