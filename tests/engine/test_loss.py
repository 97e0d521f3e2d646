"""Tests for hpnn.engine.ops.loss: the fused cross-entropy kernels, checked wrt the logits."""

import warnings

import numpy as np
import pytest

from hpnn.engine import Tensor, ops
from hpnn.testing import OpTest


def rand(*shape, lo=-2.0, hi=2.0, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape)


def probabilities(*shape, seed=0):
    p = np.random.default_rng(seed).dirichlet(np.ones(shape[-1]), shape[:-1])
    return p.reshape(shape)


def one_hot(labels, k):
    return np.eye(k)[labels]


def np_log_softmax(x):
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class TestSoftmaxCrossEntropy(OpTest):
    cases = [
        (rand(4, 5), probabilities(4, 5, seed=1)),
        (rand(3, 7, seed=2), one_hot(np.array([0, 6, 3]), 7)),
        (rand(2, 3, 4, seed=3), probabilities(2, 3, 4, seed=4)),  # extra leading axis
        (rand(1, 1, seed=5), np.ones((1, 1))),
        (rand(5, 3, seed=6), 0.9 * one_hot(np.array([0, 1, 2, 1, 0]), 3) + 0.1 / 3),  # smoothing
    ]
    wrt = [0]

    def op(self, z, t):
        return ops.softmax_cross_entropy(z, t)

    def reference(self, z, t):
        return -(t * np_log_softmax(z)).sum(axis=-1)


class TestSparseSoftmaxCrossEntropy(OpTest):
    cases = [
        (rand(4, 5), np.array([0, 4, 2, 2])),
        (rand(2, 3, 4, seed=1), np.array([[0, 3, 1], [2, 2, 0]])),  # extra leading axis
        (rand(1, 1, seed=2), np.array([0])),
        (rand(7, 3, seed=3), np.array([2, 1, 0, 0, 2, 1, 1])),
    ]
    wrt = [0]

    def op(self, z, labels):
        return ops.sparse_softmax_cross_entropy(z, labels)

    def reference(self, z, labels):
        logp = np_log_softmax(z)
        return -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


class TestSigmoidBinaryCrossEntropy(OpTest):
    cases = [
        (rand(3, 4, lo=-5, hi=5), rand(3, 4, lo=0, hi=1, seed=1)),
        (rand(7, lo=-5, hi=5, seed=2), (rand(7, seed=3) > 0).astype(np.float64)),
        (rand(2, 1, 3, lo=-5, hi=5, seed=4), rand(2, 1, 3, lo=0, hi=1, seed=5)),
        (rand(1, lo=-5, hi=5, seed=6), np.array([1.0])),
    ]
    wrt = [0]

    def op(self, z, t):
        return ops.sigmoid_binary_cross_entropy(z, t)

    def reference(self, z, t):
        # the textbook form: fine in float64 for |z| <= 5
        s = 1 / (1 + np.exp(-z))
        return -(t * np.log(s) + (1 - t) * np.log(1 - s))


def test_sparse_matches_dense_with_one_hot():
    z = rand(6, 4).astype(np.float32)
    labels = np.array([3, 0, 1, 1, 2, 3])
    zs = Tensor(z, requires_grad=True)
    zd = Tensor(z, requires_grad=True)
    ys = ops.sparse_softmax_cross_entropy(zs, labels)
    yd = ops.softmax_cross_entropy(zd, one_hot(labels, 4).astype(np.float32))
    np.testing.assert_allclose(ys.data, yd.data, rtol=1e-6)
    gy = rand(6, seed=1).astype(np.float32)
    ys.backward(gy)
    yd.backward(gy)
    np.testing.assert_allclose(zs.grad, zd.grad, rtol=1e-5, atol=1e-7)


def test_softmax_cross_entropy_gradient_is_softmax_minus_target():
    z = rand(3, 5)
    t = probabilities(3, 5, seed=1)
    x = Tensor(z, requires_grad=True)
    ops.softmax_cross_entropy(x, t).sum().backward()
    np.testing.assert_allclose(x.grad, np.exp(np_log_softmax(z)) - t, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["dense", "sparse", "binary"])
def test_extreme_logits_stay_finite(name):
    z = np.array([[1e4, -1e4, 0.0], [-100.0, 100.0, 50.0]], np.float32)
    x = Tensor(z, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            if name == "dense":
                y = ops.softmax_cross_entropy(x, one_hot(np.array([1, 0]), 3).astype(np.float32))
                expected = [2e4, 200.0]
            elif name == "sparse":
                y = ops.sparse_softmax_cross_entropy(x, np.array([1, 0]))
                expected = [2e4, 200.0]
            else:
                y = ops.sigmoid_binary_cross_entropy(x, np.zeros_like(z))
                expected = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z.astype(np.float64))))
            y.backward(np.ones(y.shape, np.float32))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, expected, rtol=1e-6, atol=1e-30)
    assert np.all(np.isfinite(x.grad))


def test_sparse_labels_may_be_any_int_dtype():
    z = rand(3, 4).astype(np.float32)
    for dtype in (np.int32, np.int64, np.uint8):
        y = ops.sparse_softmax_cross_entropy(Tensor(z), np.array([0, 3, 1], dtype))
        np.testing.assert_allclose(y.data, -np_log_softmax(z)[[0, 1, 2], [0, 3, 1]], rtol=1e-6)
