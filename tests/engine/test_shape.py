"""Tests for hpnn.engine.ops.shape: reshape, transpose, broadcast_to, getitem, concatenate."""

import numpy as np
import pytest

from hpnn.engine import Tensor, ops
from hpnn.testing import OpTest, check_grad


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def shape_id(p):
    return "-".join(str(x) for x in p) if isinstance(p, tuple) else str(p)


class TestReshape(OpTest):
    @pytest.fixture(
        autouse=True,
        params=[
            ((3, 4), (12,)),
            ((2, 6), (3, -1)),
            ((2, 3, 4), (4, -1, 2)),
            ((7,), (1, 7, 1)),
            ((1, 5, 1), (5,)),
            ((1,), ()),
            ((3, 1, 5), (-1,)),
        ],
        ids=shape_id,
    )
    def _config(self, request):
        self.in_shape, self.new_shape = request.param

    def cases(self):
        return [(rand(*self.in_shape),)]

    def op(self, a):
        return ops.reshape(a, self.new_shape)

    def reference(self, a):
        return a.reshape(self.new_shape)


class TestTranspose(OpTest):
    @pytest.fixture(
        autouse=True,
        params=[
            ((3, 4), None),
            ((2, 3, 4), None),
            ((1, 7), None),
            ((2, 3, 4), (1, 0, 2)),
            ((2, 3, 4), (2, 0, 1)),
            ((2, 1, 3, 2), (3, 1, 0, 2)),
            ((2, 3, 4), (-1, 0, 1)),
            ((5,), None),
        ],
        ids=shape_id,
    )
    def _config(self, request):
        self.in_shape, self.axes = request.param

    def cases(self):
        return [(rand(*self.in_shape),)]

    def op(self, a):
        return ops.transpose(a, self.axes)

    def reference(self, a):
        return np.transpose(a, self.axes)


class TestTransposeProperty(OpTest):
    cases = [(rand(3, 5),), (rand(2, 3, 4),)]

    def op(self, a):
        return a.T

    def reference(self, a):
        return a.T


class TestBroadcastTo(OpTest):
    @pytest.fixture(
        autouse=True,
        params=[
            ((3, 1), (2, 3, 4)),
            ((), (2, 3)),
            ((1,), (5,)),
            ((4,), (3, 4)),
            ((2, 1, 3), (2, 5, 3)),
            ((1, 1), (3, 7)),
            ((2, 3), (2, 3)),
        ],
        ids=shape_id,
    )
    def _config(self, request):
        self.in_shape, self.out_shape = request.param

    def cases(self):
        return [(rand(*self.in_shape),)]

    def op(self, a):
        return ops.broadcast_to(a, self.out_shape)

    def reference(self, a):
        return np.broadcast_to(a, self.out_shape)


MASK = np.random.default_rng(3).random((4, 5)) > 0.5
GETITEM_CASES = {
    "int": ((5, 3), 2),
    "negative-int": ((5, 3), -1),
    "negative-pair": ((4, 5, 2), (-2, -3)),
    "slice-step": ((7, 5), (slice(None, None, 2), slice(1, None, 3))),
    "slice-negative-step": ((4, 5), (slice(None, None, -1), slice(-1, 0, -2))),
    "slice-negative-bounds": ((6, 3), slice(-4, -1)),
    "ellipsis-newaxis": ((2, 3, 4), (Ellipsis, None, 1)),
    "int-array-repeated": ((5, 3), np.array([0, 2, 0, 0, 4])),
    "list-repeated": ((5,), [1, 1, 3, 1]),
    "int-array-2d": ((4, 3), np.array([[0, 1], [1, 3]])),
    "mixed-slice-array": ((3, 5), (slice(None), np.array([1, 1, 4]))),
    "two-arrays": ((4, 5), (np.array([0, 0, 3]), np.array([2, 2, 1]))),
    "negative-array": ((5, 2), np.array([-1, -1, 0])),
    # rows named more often than ROUNDS: summed per id (a table's and a vector's)
    "rows-named-often": ((6, 3), np.array([2] * 12 + [0, 5, 5, 1, 2, -1])),
    "vector-named-often": ((4,), np.array([[3] * 10 + [0, 1], [1] * 11 + [2]])),
    "rows-of-3d-table": ((5, 2, 2), np.array([[4, 0, 4], [1, 4, 4]], np.uint8)),
    "rows-tuple": ((5, 3), (np.array([1, 1, 3]),)),
    "bool-mask": ((4, 5), MASK),
    "bool-rows": ((4, 3), np.array([True, False, True, True])),
}


class TestGetItem(OpTest):
    @pytest.fixture(autouse=True, params=list(GETITEM_CASES))
    def _config(self, request):
        self.in_shape, self.index = GETITEM_CASES[request.param]

    def cases(self):
        return [(rand(*self.in_shape),)]

    def op(self, a):
        return a[self.index]

    def reference(self, a):
        return a[self.index]


def test_getitem_single_element_float64():
    a = rand(4, 5)
    y = Tensor(a)[-2, -3]
    assert y.dtype == np.float64
    check_grad(lambda t: t[-2, -3], [a])


def test_getitem_repeated_index_accumulates():
    x = Tensor(np.arange(4, dtype=np.float32), requires_grad=True)
    x[np.array([0, 0, 2, 0])].backward(np.array([1.0, 10.0, 5.0, 100.0], np.float32))
    np.testing.assert_array_equal(x.grad, [111.0, 0.0, 5.0, 0.0])


@pytest.mark.parametrize("dim", [(), (1,), (2,), (7,)], ids=lambda d: f"row={d}")
def test_row_lookup_gradient_is_add_at_bit_for_bit(monkeypatch, dim):
    """The NumPy scatter-add (sorted rounds, per-id sums) adds in np.add.at's order."""
    monkeypatch.setenv("HPNN_JIT", "0")
    rng = np.random.default_rng(4)
    table = rng.standard_normal((30, *dim)).astype(np.float32)
    ids = np.minimum(rng.zipf(1.4, (5, 60)) - 1, 29)  # id 0 named ~150 times
    g = rng.standard_normal((5, 60, *dim)).astype(np.float32)
    t = Tensor(table, requires_grad=True)
    t[ids].backward(g)
    want = np.zeros_like(table)
    np.add.at(want, ids, g)
    np.testing.assert_array_equal(t.grad, want)


def test_getitem_with_tensor_index():
    x = Tensor(np.arange(5.0), requires_grad=True)
    idx = Tensor(np.array([4, 4, 1]))
    y = ops.getitem(x, idx)
    np.testing.assert_array_equal(y.data, [4.0, 4.0, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0, 0.0, 2.0])


def test_getitem_keeps_dtype():
    x = Tensor(np.ones((3, 4), np.float32), requires_grad=True)
    y = x[1:, ::2]
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [[0, 0, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]])


CONCAT_CASES = {
    "axis0": (0, [(2, 3), (1, 3), (4, 3)]),
    "axis-1": (-1, [(2, 1), (2, 3), (2, 5)]),
    "axis-1-3d": (-1, [(2, 3, 1), (2, 3, 2), (2, 3, 4)]),
    "axis0-1d": (0, [(1,), (7,), (3,)]),
    "axis1-3d": (1, [(2, 1, 3), (2, 2, 3), (2, 1, 3)]),
}


class TestConcatenate(OpTest):
    @pytest.fixture(autouse=True, params=list(CONCAT_CASES))
    def _config(self, request):
        self.axis, self.shapes = CONCAT_CASES[request.param]

    def cases(self):
        return [tuple(rand(*s, seed=i) for i, s in enumerate(self.shapes))]

    def op(self, *xs):
        return ops.concatenate(xs, axis=self.axis)

    def reference(self, *xs):
        return np.concatenate(xs, axis=self.axis)


def test_concatenate_with_inputs_not_requiring_grad():
    a = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    b = Tensor(np.zeros((1, 2), np.float32))
    c = Tensor(np.ones((3, 2), np.float32), requires_grad=True)
    y = ops.concatenate([a, b, c], axis=0)
    y.backward(np.arange(12, dtype=np.float32).reshape(6, 2))
    np.testing.assert_array_equal(a.grad, [[0, 1], [2, 3]])
    assert b.grad is None
    np.testing.assert_array_equal(c.grad, [[6, 7], [8, 9], [10, 11]])
