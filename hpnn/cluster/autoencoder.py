"""DEC's default autoencoder: a dense encoder, its mirror as decoder, input dropout."""

from __future__ import annotations

import math

from hpnn import layers
from hpnn.initializers import GlorotUniform
from hpnn.layers.core import Input
from hpnn.models import Sequential, clone_model


def _seed(rng) -> int:
    return int(rng.integers(2**31))


def dense_encoder(shape, hidden_units, embedding_dim: int, rng) -> Sequential:
    """``Flatten`` (for inputs of rank > 1), ReLU ``Dense`` layers of ``hidden_units``,
    then a linear ``Dense(embedding_dim)`` (the paper's ``d-500-500-2000-10``)."""
    stack = [Input(shape=tuple(shape))]
    if len(shape) > 1:
        stack.append(layers.Flatten())
    for units in hidden_units:
        stack.append(layers.Dense(units, "relu", kernel_initializer=GlorotUniform(_seed(rng))))
    stack.append(layers.Dense(embedding_dim, kernel_initializer=GlorotUniform(_seed(rng))))
    return Sequential(stack, name="dec_encoder")


def dense_decoder(embedding_dim: int, shape, hidden_units, rng) -> Sequential:
    """ReLU ``Dense`` layers of ``hidden_units`` from the embedding, then a linear
    ``Dense`` to the input's size, reshaped to the input's ``shape``."""
    stack = [Input(shape=(embedding_dim,))]
    for units in hidden_units:
        stack.append(layers.Dense(units, "relu", kernel_initializer=GlorotUniform(_seed(rng))))
    size = math.prod(shape)
    stack.append(layers.Dense(size, kernel_initializer=GlorotUniform(_seed(rng))))
    if len(shape) > 1:
        stack.append(layers.Reshape(tuple(shape)))
    return Sequential(stack, name="dec_decoder")


def autoencoder(encoder, decoder, shape, dropout: float, rng) -> Sequential:
    """``decoder(encoder(dropout(x)))``: the model pre-trained on reconstructing ``x``."""
    stack = [Input(shape=tuple(shape))]
    if dropout:
        stack.append(layers.Dropout(dropout, seed=_seed(rng)))
    return Sequential([*stack, encoder, decoder], name="dec_autoencoder")


def copy_model(model):
    """A copy of ``model`` with its weights (the caller's model is never trained)."""
    copy = clone_model(model)
    if model.built:
        copy.build_for(model.input_shape)
        copy.set_weights(model.get_weights())
    return copy


def output_dim(encoder, shape) -> int:
    """The size of the embedding that ``encoder`` makes from samples of ``shape``."""
    out = encoder.build_for((None, *shape))
    if len(out) != 2 or out[-1] is None:
        raise ValueError(
            f"DEC: the encoder must output (batch, features). Received: output shape={tuple(out)}"
        )
    return int(out[-1])
