"""Tests for hpnn.utils: to_categorical and set_random_seed."""

import random

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.utils import set_random_seed, to_categorical


def test_to_categorical_basic():
    out = to_categorical([0, 2, 1, 2])
    assert out.shape == (4, 3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1, 2]])


def test_to_categorical_num_classes():
    out = to_categorical(np.array([1, 0]), num_classes=5)
    assert out.shape == (2, 5)
    np.testing.assert_array_equal(out, [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]])


def test_to_categorical_shapes():
    assert to_categorical(np.array([[1], [0], [3]])).shape == (3, 4)  # (N, 1) squeezed
    labels = np.array([[0, 1, 2], [2, 2, 0]])
    out = to_categorical(labels, 3)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.argmax(-1), labels)
    np.testing.assert_array_equal(out.sum(-1), 1)
    assert to_categorical(np.array([], dtype=np.int64), 4).shape == (0, 4)


def test_to_categorical_accepts_integer_valued_floats_and_uint8():
    np.testing.assert_array_equal(to_categorical(np.array([2.0, 0.0])), np.eye(3)[[2, 0]])
    np.testing.assert_array_equal(to_categorical(np.array([1, 0], np.uint8)), np.eye(2)[[1, 0]])


def test_to_categorical_follows_floatx():
    old = hpnn.backend.floatx()
    hpnn.backend.set_floatx("float64")
    try:
        assert to_categorical([1, 0]).dtype == np.float64
    finally:
        hpnn.backend.set_floatx(old)


def test_to_categorical_errors():
    with pytest.raises(ValueError, match=r"does not fit num_classes=3"):
        to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match=r">= 0\. Received: min=-1"):
        to_categorical([0, -1])
    with pytest.raises(ValueError, match=r"integer class indices\. Received: non-integer.*1\.5"):
        to_categorical([0.0, 1.5])
    with pytest.raises(ValueError, match=r"integer labels\. Received: dtype="):
        to_categorical(np.array(["a", "b"]))


def _draws():
    dense = layers.Dense(6)
    dense.build((None, 5))
    drop = layers.Dropout(0.5)(np.ones((8, 8), np.float32), training=True).numpy()
    return dense.get_weights()[0], drop, np.random.rand(), random.random()


def test_set_random_seed_reproduces_weights_dropout_and_global_rngs():
    set_random_seed(123)
    a = _draws()
    set_random_seed(123)
    b = _draws()
    set_random_seed(124)
    c = _draws()
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    for u, v in zip(a, c, strict=True):
        assert not np.array_equal(u, v)


def test_set_random_seed_rejects_bad_seeds():
    for bad in (-1, 1.5, "1", True):
        with pytest.raises(ValueError, match=r"seed.*Received: seed="):
            set_random_seed(bad)


def test_explicit_layer_seed_ignores_the_global_seed():
    x = np.ones((10, 10), np.float32)
    set_random_seed(1)
    a = layers.Dropout(0.5, seed=9)(x, training=True).numpy()
    set_random_seed(2)
    b = layers.Dropout(0.5, seed=9)(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)


def test_pad_sequences_as_keras():
    from hpnn.utils import pad_sequences

    seqs = [[1, 2, 3], [4], [], [5, 6, 7, 8, 9]]
    out = pad_sequences(seqs)
    assert out.shape == (4, 5) and out.dtype == np.int32
    np.testing.assert_array_equal(out[0], [0, 0, 1, 2, 3])  # padded at the start
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=3)[3], [7, 8, 9])  # cut at the start
    post = pad_sequences(seqs, maxlen=4, padding="post", truncating="post", value=-1)
    np.testing.assert_array_equal(post, [[1, 2, 3, -1], [4, -1, -1, -1], [-1] * 4, [5, 6, 7, 8]])
    vectors = pad_sequences([np.ones((2, 3)), np.ones((1, 3))], dtype="float32")
    assert vectors.shape == (2, 2, 3) and vectors[1, 0].sum() == 0
    with pytest.raises(ValueError, match="padding must be 'pre' or 'post'"):
        pad_sequences(seqs, padding="middle")
    with pytest.raises(ValueError, match="every element must have shape"):
        pad_sequences([np.ones((2, 3)), np.ones((1, 4))])


def test_normalize():
    from hpnn.utils import normalize

    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(x), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(x, order=1), [[3 / 7, 4 / 7], [0.0, 0.0]])
