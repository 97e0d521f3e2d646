"""Central-difference gradient checks in float64, and a base class for op tests."""

from __future__ import annotations

import numpy as np

from hpnn.engine.tensor import Tensor


def numerical_grad(f, arrays, gy, index, eps=1e-6):
    """d(sum(f(arrays) * gy))/d(arrays[index]) by central differences."""
    x = arrays[index]
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        plus = float((np.asarray(f(*arrays)) * gy).sum())
        x[i] = old - eps
        minus = float((np.asarray(f(*arrays)) * gy).sum())
        x[i] = old
        g[i] = (plus - minus) / (2 * eps)
    return g


def check_grad(fn, arrays, wrt=None, rtol=1e-5, atol=1e-6, eps=1e-6, seed=0):
    """Compare ``fn``'s backward with central differences, in float64.

    Args:
        fn: maps Tensors to one Tensor (any shape).
        arrays: the inputs, converted to float64 arrays.
        wrt: indices of inputs to check (default: all float inputs).
        rtol, atol: tolerances of ``np.testing.assert_allclose``.
    """
    arrays = [
        np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
        for a in arrays
    ]
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    tensors = [Tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    y = fn(*tensors)
    rng = np.random.default_rng(seed)
    # A random upstream gradient catches errors that a gradient of ones would hide.
    gy = rng.standard_normal(y.shape)
    y.backward(gy)

    def value(*arrs):
        return fn(*[Tensor(a) for a in arrs]).data

    for i in wrt:
        expected = numerical_grad(value, arrays, gy, i, eps)
        got = tensors[i].grad
        assert got is not None, f"input {i}: backward produced no gradient"
        assert got.shape == arrays[i].shape, f"input {i}: grad shape {got.shape}"
        np.testing.assert_allclose(
            got, expected, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}"
        )


class OpTest:
    """Base class for op tests: subclass with ``op``, ``reference`` and ``cases``.

    ``cases`` is a list of tuples of input arrays (any float dtype; they are cast).
    ``op(*tensors)`` runs hpnn; ``reference(*arrays)`` is a plain NumPy version.
    The base checks the float32 forward against the reference and the float64
    backward against central differences for every case.
    """

    cases: list = []
    forward_rtol = 1e-5
    forward_atol = 1e-6
    grad_rtol = 1e-5
    grad_atol = 1e-6
    wrt = None

    def op(self, *xs):
        raise NotImplementedError

    def reference(self, *xs):
        raise NotImplementedError

    def _cases(self):
        return self.cases() if callable(self.cases) else self.cases

    def test_forward(self):
        for case in self._cases():
            xs32 = [
                np.asarray(a, np.float32) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
                for a in case
            ]
            got = self.op(*[Tensor(a) for a in xs32])
            assert got.dtype == np.float32, f"forward returned {got.dtype} for float32 input"
            expected = self.reference(
                *[np.asarray(a, np.float64) if a.dtype.kind == "f" else a for a in xs32]
            )
            np.testing.assert_allclose(
                got.data, expected, rtol=self.forward_rtol, atol=self.forward_atol
            )

    def test_backward(self):
        for case in self._cases():
            check_grad(self.op, list(case), wrt=self.wrt, rtol=self.grad_rtol, atol=self.grad_atol)
