"""Embedding: integer ids to dense vectors, with Keras' ``mask_zero``."""

from __future__ import annotations

from hpnn import constraints, initializers, regularizers
from hpnn.backend import get_xp
from hpnn.engine import ops
from hpnn.engine.tensor import Tensor
from hpnn.layers.base import Layer


class Embedding(Layer):
    """Map integer ids in ``[0, input_dim)`` to rows of an ``(input_dim, output_dim)`` matrix.

    Args:
        input_dim: vocabulary size.
        output_dim: size of each vector. Input ``(batch, ...)`` of ids; output
            ``(batch, ..., output_dim)``. Ids stay integers (never cast to floatx);
            float ids are truncated to int.
        embeddings_initializer: default ``"uniform"`` (U(-0.05, 0.05), as Keras).
        mask_zero: id 0 is padding: ``compute_mask`` returns ``ids != 0``, which
            ``Sequential`` hands to the next layers (e.g. an ``LSTM`` skips those steps).

    >>> emb = Embedding(10, 4, mask_zero=True)
    >>> emb(np.array([[1, 2, 0]])).shape
    (1, 3, 4)
    """

    min_ndim = 1
    rank_hint = "(batch, ...) of integer ids"
    _float_input = False

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        weights=None,
        lora_rank=None,
        input_length=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = self._where()
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{owner}: {name} must be a positive int. Received: {value!r}")
        if lora_rank is not None:
            raise NotImplementedError(f"{owner}: lora_rank is not supported yet.")
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = embeddings_initializer
        self.embeddings_regularizer = embeddings_regularizer
        self.mask_zero = mask_zero
        self._initial_weights = weights

    def build(self, input_shape):
        init = self.embeddings_initializer
        if isinstance(init, str) and init.lower() == "uniform":
            init = initializers.RandomUniform(-0.05, 0.05)
        self.embeddings = self.add_weight(
            (self.input_dim, self.output_dim),
            init,
            "embeddings",
            regularizer=self.embeddings_regularizer,
            constraint=self.embeddings_constraint,
        )
        self.built = True
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def call(self, x, training=False):
        ids = x.data
        if ids.dtype.kind not in "iu":
            ids = ids.astype(get_xp(ids).int64)
        if ids.size:
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= self.input_dim:
                raise ValueError(
                    f"{self._where()}: ids must be in [0, {self.input_dim}) "
                    f"(input_dim={self.input_dim}). Received: ids from {lo} to {hi}"
                )
        return ops.getitem(self.embeddings, ids)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        data = inputs.data if isinstance(inputs, Tensor) else inputs
        return data != 0

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(
                regularizers.get(self.embeddings_regularizer)
            ),
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
        }
