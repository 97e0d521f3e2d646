"""Tests for hpnn.engine.ops.linalg: matmul with NumPy's rules, and the fused linear op."""

import numpy as np
import pytest

from hpnn.engine import Tensor, ops
from hpnn.testing import OpTest, check_grad


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def pairs(shapes):
    return [(rand(*sa, seed=i), rand(*sb, seed=50 + i)) for i, (sa, sb) in enumerate(shapes)]


class TestMatMul2D(OpTest):
    cases = pairs([((3, 4), (4, 5)), ((1, 1), (1, 7)), ((7, 1), (1, 3)), ((2, 5), (5, 1))])

    def op(self, a, b):
        return a @ b

    def reference(self, a, b):
        return a @ b


class TestMatMulBatched(TestMatMul2D):
    cases = pairs(
        [
            ((2, 3, 4), (2, 4, 5)),  # same batch
            ((3, 4), (2, 4, 5)),  # 2-D on the left broadcast over the batch
            ((2, 3, 4), (4, 5)),  # 2-D on the right
            ((2, 1, 3, 4), (5, 4, 2)),  # batch dims broadcast against each other
            ((1, 3, 2), (4, 2, 3)),  # size-1 batch dim
        ]
    )


class TestMatMulVector(TestMatMul2D):
    cases = pairs(
        [
            ((4,), (4, 5)),  # 1-D on the left
            ((4,), (2, 4, 3)),  # 1-D on the left of a batch
            ((3, 4), (4,)),  # 1-D on the right
            ((2, 3, 4), (4,)),  # 1-D on the right of a batch
            ((1,), (1, 7)),
        ]
    )


class TestMatMulFunction(TestMatMul2D):
    def op(self, a, b):
        return ops.matmul(a, b)


class TestMatMulVectorVector(TestMatMul2D):
    """1-D @ 1-D gives a 0-d result, which must keep float64 in the gradient check."""

    cases = pairs([((4,), (4,)), ((1,), (1,))])

    def test_backward(self):
        super().test_backward()


def test_matmul_vector_vector_gradient_of_b_float32():
    a = Tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    b = Tensor(np.array([4.0, 5.0, 6.0], np.float32), requires_grad=True)
    (a @ b).backward()
    np.testing.assert_array_equal(a.grad, b.data)
    np.testing.assert_array_equal(b.grad, a.data)


def test_matmul_vector_vector_gradient_of_a_only():
    a = Tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    b = Tensor(np.array([4.0, 5.0, 6.0], np.float32))
    y = a @ b
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, 32.0)
    y.backward()
    np.testing.assert_array_equal(a.grad, b.data)


def test_matmul_with_numpy_operand():
    a = rand(3, 4).astype(np.float32)
    b = Tensor(rand(4, 2, seed=1).astype(np.float32), requires_grad=True)
    y = a @ b
    assert isinstance(y, Tensor) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, a @ b.data, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(b.grad, np.broadcast_to(a.sum(0)[:, None], (4, 2)), rtol=1e-6)


class TestLinear(OpTest):
    cases = [
        (rand(4, 3), rand(3, 5, seed=1), rand(5, seed=2)),
        (rand(2, 3, 4), rand(4, 2, seed=1), rand(2, seed=2)),  # 3-D x
        (rand(1, 1), rand(1, 7, seed=1), rand(7, seed=2)),
        (rand(7, 2), rand(2, 1, seed=1), rand(1, seed=2)),
    ]

    def op(self, x, w, b):
        return ops.linear(x, w, b)

    def reference(self, x, w, b):
        return x @ w + b


class TestLinearNoBias(OpTest):
    cases = [(x, w) for x, w, _ in TestLinear.cases]

    def op(self, x, w):
        return ops.linear(x, w)

    def reference(self, x, w):
        return x @ w


@pytest.mark.parametrize("wrt", [[1, 2], [0], [1], [2]])
def test_linear_partial_gradients(wrt):
    x, w, b = rand(2, 3, 4), rand(4, 2, seed=1), rand(2, seed=2)
    check_grad(ops.linear, [x, w, b], wrt=wrt)


def test_linear_matches_matmul_plus_bias_in_float32():
    x = Tensor(rand(5, 3).astype(np.float32), requires_grad=True)
    w = Tensor(rand(3, 4, seed=1).astype(np.float32), requires_grad=True)
    b = Tensor(rand(4, seed=2).astype(np.float32), requires_grad=True)
    y = ops.linear(x, w, b)
    assert y.dtype == np.float32
    gy = rand(5, 4, seed=3).astype(np.float32)
    y.backward(gy)
    grads = [t.grad for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    (x @ w + b).backward(gy)
    for got, t in zip(grads, (x, w, b), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, t.grad, rtol=1e-6, atol=1e-6)
