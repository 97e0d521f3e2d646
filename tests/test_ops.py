"""Tests for hpnn.ops (Keras 3's ``keras.ops`` names): values against NumPy, gradients
by finite differences, and a custom layer written with them. The values against Keras
itself are in tests/test_keras_reference.py."""

import numpy as np
import pytest

import hpnn
from hpnn import ops
from hpnn.engine import Tensor
from hpnn.testing import check_grad

RNG = np.random.default_rng(0)
A = RNG.uniform(0.5, 2.0, (3, 4)) * RNG.choice([-1.0, 1.0], (3, 4))
B = RNG.uniform(0.5, 2.0, (3, 4))

VALUES = {
    "add": (lambda: ops.add(A, B), A + B),
    "subtract": (lambda: ops.subtract(A, B), A - B),
    "multiply": (lambda: ops.multiply(A, B), A * B),
    "divide": (lambda: ops.divide(A, B), A / B),
    "square": (lambda: ops.square(A), A**2),
    "abs": (lambda: ops.abs(A), np.abs(A)),
    "sign": (lambda: ops.sign(A), np.sign(A)),
    "where": (lambda: ops.where(A > 0, A, B), np.where(A > 0, A, B)),
    "min": (lambda: ops.min(A, axis=1), A.min(axis=1)),
    "max_keepdims": (lambda: ops.max(A, axis=0, keepdims=True), A.max(axis=0, keepdims=True)),
    "var": (lambda: ops.var(A, axis=1), A.var(axis=1)),
    "std": (lambda: ops.std(A), A.std()),
    "argmax": (lambda: ops.argmax(A, axis=1), A.argmax(axis=1)),
    "expand_dims": (lambda: ops.expand_dims(A, -1), A[..., None]),
    "squeeze": (lambda: ops.squeeze(A[:, None, :], axis=1), A),
    "stack": (lambda: ops.stack([A, B], axis=1), np.stack([A, B], axis=1)),
    "concatenate": (lambda: ops.concatenate([A, B], axis=1), np.concatenate([A, B], axis=1)),
    "transpose": (lambda: ops.transpose(A), A.T),
    "matmul": (lambda: ops.matmul(A, B.T), A @ B.T),
    "one_hot": (lambda: ops.one_hot(np.array([0, 2]), 3), np.eye(3)[[0, 2]]),
    "normalize": (lambda: ops.normalize(A), A / np.linalg.norm(A, axis=-1, keepdims=True)),
    "clip": (lambda: ops.clip(A, -1.0, 1.0), np.clip(A, -1, 1)),
}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_values_against_numpy(name):
    fn, want = VALUES[name]
    got = fn()
    assert isinstance(got, Tensor)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)


GRADS = {
    "where": (lambda a, b: ops.where(A > 0, a, b), [A, B]),
    "min": (lambda a: ops.min(a, axis=0), [A]),
    "var": (lambda a: ops.var(a, axis=1, keepdims=True), [A]),
    "std": (lambda a: ops.std(a, axis=0), [A]),
    "stack": (lambda a, b: ops.stack([a, b], axis=2), [A, B]),
    "squeeze": (lambda a: ops.squeeze(ops.expand_dims(a, 0)), [A]),
    "normalize": (lambda a: ops.normalize(a, axis=0), [A]),
    "square_minus": (lambda a, b: ops.square(ops.subtract(a, b)), [A, B]),
    "gelu": (lambda a: ops.gelu(a), [A]),
}


@pytest.mark.parametrize("name", sorted(GRADS))
def test_gradients(name):
    fn, arrays = GRADS[name]
    check_grad(fn, arrays)


def test_numbers_and_int_arrays_become_floatx():
    assert ops.add(np.array([1, 2]), 1).dtype == np.float32
    assert ops.convert_to_tensor([1.0, 2.0]).dtype == np.float32
    assert ops.cast(np.array([1.5]), "float64").dtype == np.float64
    assert ops.shape(np.zeros((2, 3))) == (2, 3)
    np.testing.assert_array_equal(ops.convert_to_numpy(ops.ones((2,))), [1.0, 1.0])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="axis 0 has size 3, not 1"):
        ops.squeeze(A, axis=0)
    with pytest.raises(NotImplementedError, match="order=2"):
        ops.normalize(A, order=1)


def test_a_custom_layer_written_with_ops_trains():
    class Gate(hpnn.layers.Layer):  # as a Keras 3 tutorial would write it
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="w")

        def call(self, x):
            return ops.multiply(x, ops.sigmoid(self.w)) + ops.mean(x, axis=-1, keepdims=True)

    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential([hpnn.Input((4,)), Gate(), hpnn.layers.Dense(1)])
    model.compile(optimizer=hpnn.optimizers.Adam(0.05), loss="mse")
    x = RNG.standard_normal((64, 4)).astype("float32")
    y = x[:, :1] * 2.0
    history = model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert np.abs(model.layers[0].get_weights()[0]).max() > 0  # the gate's weight moved


def test_bad_shapes_name_the_op_and_the_shapes():
    with pytest.raises(ValueError, match=r"matmul: .*x1.shape=\(2, 3\), x2.shape=\(4, 5\)"):
        ops.matmul(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"reshape: .*\(2, 3\) \(6 elements\) the shape \(4,\)"):
        ops.reshape(np.ones((2, 3)), (4,))
    assert ops.reshape(np.ones((2, 3)), (-1, 2)).shape == (3, 2)
    with pytest.raises(ValueError, match=r"concatenate: .*\[\(2, 3\), \(3, 3\)\]"):
        ops.concatenate([np.ones((2, 3)), np.ones((3, 3))], axis=1)
    with pytest.raises(ValueError, match=r"one_hot: class ids must be in \[0, 3\)"):
        ops.one_hot(np.array([5]), 3)


C = RNG.standard_normal((3, 4, 2))
D = RNG.standard_normal((2, 5))

MORE_VALUES = {
    "arange": (lambda: ops.arange(1, 7, 2), np.arange(1, 7, 2)),
    "arange_float": (lambda: ops.arange(0.0, 1.0, 0.25), np.arange(0, 1, 0.25)),
    "linspace": (lambda: ops.linspace(-1, 1, 7), np.linspace(-1, 1, 7)),
    "linspace_open": (lambda: ops.linspace(0, 1, 4, endpoint=False), np.linspace(0, 1, 4, False)),
    "cumsum": (lambda: ops.cumsum(C, axis=1), np.cumsum(C, axis=1)),
    "cumsum_flat": (lambda: ops.cumsum(A), np.cumsum(A)),
    "logsumexp": (lambda: ops.logsumexp(C, axis=(0, 2)), np.log(np.exp(C).sum(axis=(0, 2)))),
    "logsumexp_all": (lambda: ops.logsumexp(A, keepdims=True), np.log(np.exp(A).sum())[None, None]),
    "tile": (lambda: ops.tile(A, (2, 1, 3)), np.tile(A, (2, 1, 3))),
    "repeat": (lambda: ops.repeat(C, [2, 0, 1, 3], axis=1), np.repeat(C, [2, 0, 1, 3], axis=1)),
    "repeat_flat": (lambda: ops.repeat(A, 2), np.repeat(A, 2)),
    "pad": (lambda: ops.pad(C, ((1, 0), (0, 2), (1, 1)), constant_values=0.5),
            np.pad(C, ((1, 0), (0, 2), (1, 1)), constant_values=0.5)),
    "pad_reflect": (lambda: ops.pad(A, 2, mode="reflect"), np.pad(A, 2, mode="reflect")),
    "split": (lambda: ops.split(C, 2, axis=-1)[1], np.split(C, 2, axis=-1)[1]),
    "split_at": (lambda: ops.split(A, [1, 3], axis=1)[1], np.split(A, [1, 3], axis=1)[1]),
    "take": (lambda: ops.take(C, np.array([[3, 0], [-1, 3]]), axis=1),
             np.take(C, [[3, 0], [-1, 3]], axis=1)),
    "take_flat": (lambda: ops.take(A, [5, 0, 5]), np.take(A, [5, 0, 5])),
    "sort": (lambda: ops.sort(C, axis=1), np.sort(C, axis=1)),
    "top_k": (lambda: ops.top_k(A, 3)[0], -np.sort(-A, axis=-1)[:, :3]),
    "top_k_indices": (lambda: ops.top_k(A, 3)[1], np.argsort(-A, axis=-1)[:, :3]),
    "einsum": (lambda: ops.einsum("ijk,kl->lji", C, D), np.einsum("ijk,kl->lji", C, D)),
    "einsum_implicit": (lambda: ops.einsum("ij,jk", A, A.T), A @ A.T),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(MORE_VALUES))
def test_more_values_against_numpy(name):
    fn, want = MORE_VALUES[name]
    got = fn()
    assert isinstance(got, Tensor)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_constructor_dtypes_follow_keras():
    assert ops.arange(5).dtype == np.int32
    assert ops.arange(5.0).dtype == np.float32
    assert ops.linspace(0, 1, 3).dtype == np.float32
    values, step = ops.linspace(0, 1, 5, retstep=True)
    assert step == 0.25 and values.shape == (5,)
    assert ops.top_k(A, 2)[1].dtype == np.int32


MORE_GRADS = {
    "cumsum": (lambda a: ops.cumsum(a, axis=0), [C]),
    "logsumexp": (lambda a: ops.logsumexp(a, axis=1), [C]),
    "tile": (lambda a: ops.tile(a, (2, 1, 3)), [A]),
    "repeat": (lambda a: ops.repeat(a, [2, 0, 1, 3], axis=1), [C]),
    "pad": (lambda a: ops.pad(a, ((1, 0), (0, 2), (1, 1)), constant_values=2.0), [C]),
    "pad_symmetric": (lambda a: ops.pad(a, ((2, 1), (1, 3)), mode="symmetric"), [A]),
    "split": (lambda a: ops.split(a, [1, 3], axis=1)[1] * 2 + ops.split(a, [1, 3], 1)[2], [A]),
    "take": (lambda a: ops.take(a, np.array([[3, 0], [3, 3]]), axis=1), [C]),
    "sort": (lambda a: ops.sort(a, axis=0), [C]),
    "top_k": (lambda a: ops.top_k(a, 2)[0], [C]),
    "einsum": (lambda a, b: ops.einsum("ijk,kl->lj", a, b), [C, D]),
    "einsum_three": (lambda a, b, c: ops.einsum("ij,jk,kl->il", a, b, c), [A, A.T, B]),
}


@pytest.mark.parametrize("name", sorted(MORE_GRADS))
def test_more_gradients(name):
    fn, arrays = MORE_GRADS[name]
    check_grad(fn, arrays)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ops.cumsum(A, axis=2), r"axis 2 is out of range for a tensor of rank 2"),
        (lambda: ops.split(A, 3, axis=1), r"split: axis 1 of size 4 cannot be cut into 3"),
        (lambda: ops.take(A, [0, 4], axis=1), r"take: indices must be in \[-4, 4\)"),
        (lambda: ops.take(A, [0.5]), r"take: indices must be integers"),
        (lambda: ops.top_k(A, 5), r"top_k: k must be in \[1, 4\].*k=5, x.shape=\(3, 4\)"),
        (lambda: ops.repeat(A, [1, 2], axis=0), r"repeat: repeats must be .* 3 of them"),
        (lambda: ops.tile(A, (-1,)), r"tile: repeats must be non-negative"),
        (lambda: ops.pad(A, ((1, 1),) * 3), r"pad: pad_width .* for 2 axes"),
        (lambda: ops.pad(A, 1, mode="edge", constant_values=1), r"pad: mode must be one of"),
        (lambda: ops.einsum("ij,jk->ik", A, A), r"einsum: .*shapes=\[\(3, 4\), \(3, 4\)\]"),
        (lambda: ops.einsum("i...", A), r"einsum: expected 1 comma-separated"),
        (lambda: ops.arange(0, 3, 0), r"arange: step must not be 0"),
    ],
)
def test_new_ops_reject_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
