"""Tests for hpnn.layers.embedding: lookups, mask_zero, integer input kept integer."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import Tensor
from hpnn.testing import check_grad


def test_lookup_and_weights():
    emb = layers.Embedding(10, 4)
    ids = np.array([[1, 2, 9], [0, 2, 2]])
    y = emb(ids)
    (table,) = emb.get_weights()
    assert table.shape == (10, 4) and emb.weights[0].name == "embeddings"
    assert np.abs(table).max() <= 0.05  # Keras' "uniform": U(-0.05, 0.05)
    np.testing.assert_array_equal(y.numpy(), table[ids])
    assert y.dtype == np.float32
    assert emb.compute_output_shape((None, 3)) == (None, 3, 4)
    assert emb(np.array([3, 4])).shape == (2, 4)  # any rank


def test_mask_zero():
    ids = np.array([[3, 0, 1], [0, 0, 2]])
    assert layers.Embedding(5, 2).compute_mask(Tensor(ids)) is None
    np.testing.assert_array_equal(
        layers.Embedding(5, 2, mask_zero=True).compute_mask(Tensor(ids)), ids != 0
    )


def test_integer_input_is_not_cast_to_float():
    model = hpnn.Sequential([layers.Embedding(10, 3), layers.Flatten(), layers.Dense(1)])
    ids = np.array([[1, 2], [3, 4]], np.int64)
    assert model._to_input(ids).dtype == np.int64
    dense_model = hpnn.Sequential([layers.Dense(1)])
    assert dense_model._to_input(ids).dtype == np.float32
    model.compile("sgd", "mse")
    model.fit(ids, np.ones((2, 1), np.float32), epochs=1, verbose=0)
    assert model.predict(ids, verbose=0).shape == (2, 1)
    # float ids (e.g. from a float array) are truncated, as Keras casts them
    np.testing.assert_array_equal(
        model.layers[0](np.array([[1.0, 2.0]])).numpy(), model.layers[0](np.array([[1, 2]])).numpy()
    )


def test_gradient_accumulates_repeated_ids():
    emb = layers.Embedding(5, 3)
    emb.build((None, 4))
    ids = np.array([[1, 1, 4, 0], [4, 1, 2, 2]])

    def fn(table):
        emb.embeddings = table
        return emb(ids)

    check_grad(fn, [np.random.default_rng(0).standard_normal((5, 3))])


def test_errors():
    emb = layers.Embedding(5, 2, name="emb")
    with pytest.raises(
        ValueError, match=r"Embedding 'emb': ids must be in \[0, 5\).*Received: ids"
    ):
        emb(np.array([[1, 5]]))
    with pytest.raises(ValueError, match=r"Received: ids from -1 to 2"):
        emb(np.array([[-1, 2]]))
    with pytest.raises(ValueError, match=r"output_dim must be a positive int. Received: 0"):
        layers.Embedding(5, 0)
