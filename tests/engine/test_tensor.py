"""Tests for hpnn.engine.tensor: creation, dtype policy, no_grad and the backward walk."""

import numpy as np
import pytest

from hpnn.engine import Tensor, as_tensor, is_grad_enabled, no_grad, ops

# -- creation ------------------------------------------------------------------


@pytest.mark.parametrize("value", [[1.0, 2.0], [[1.5], [2.5]], 3.0, np.float64(3.0), [1, 2.5]])
def test_lists_and_float_scalars_become_float32(value):
    assert Tensor(value).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_int_arrays_keep_their_dtype(dtype):
    arr = np.arange(6, dtype=dtype).reshape(2, 3)
    t = Tensor(arr)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.data, arr)


def test_int_list_stays_int():
    assert Tensor([1, 2, 3]).dtype.kind == "i"


def test_float32_array_is_not_copied():
    arr = np.ones((3, 4), np.float32)
    t = Tensor(arr)
    assert t.data is arr
    assert as_tensor(arr).data is arr


def test_float64_array_keeps_float64():
    assert Tensor(np.ones(3)).dtype == np.float64


def test_float64_full_reduction_stays_float64():
    x = Tensor(np.ones(3), requires_grad=True)
    assert x.sum().dtype == np.float64
    assert x.mean().dtype == np.float64
    assert (-Tensor(np.array(2.0))).dtype == np.float64


def test_explicit_dtype_converts():
    t = Tensor(np.ones(3, np.float32), dtype=np.float64)
    assert t.dtype == np.float64
    assert Tensor([1, 2], dtype=np.float32).dtype == np.float32


def test_as_tensor_returns_the_same_tensor():
    t = Tensor([1.0])
    assert as_tensor(t) is t


def test_array_like_properties():
    t = Tensor(np.zeros((2, 3, 4), np.float32))
    assert t.shape == (2, 3, 4)
    assert t.ndim == 3
    assert t.size == 24
    assert len(t) == 2
    assert "requires_grad=True" in repr(Tensor([1.0], requires_grad=True))


# -- dtype of operators with scalars -----------------------------------------------


def _f32():
    return Tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)


SCALAR_EXPRESSIONS = {
    "t * 2.0": lambda t: t * 2.0,
    "2.0 * t": lambda t: 2.0 * t,
    "2.0 - t": lambda t: 2.0 - t,
    "t - 2.0": lambda t: t - 2.0,
    "t + 1": lambda t: t + 1,
    "1.5 + t": lambda t: 1.5 + t,
    "np.float64(3) * t": lambda t: np.float64(3) * t,
    "t * np.float64(3)": lambda t: t * np.float64(3),
    "np.float64(3) - t": lambda t: np.float64(3) - t,
    "np.float64(3) / t": lambda t: np.float64(3) / t,
    "np.array(2.0) * t": lambda t: np.array(2.0) * t,
    "t / 3": lambda t: t / 3,
    "3.0 / t": lambda t: 3.0 / t,
    "t ** 2": lambda t: t**2,
    "t ** 0.5": lambda t: t**0.5,
    "2.0 ** t": lambda t: 2.0**t,
    "-t": lambda t: -t,
}


@pytest.mark.parametrize("expr", list(SCALAR_EXPRESSIONS))
def test_scalar_operands_keep_float32(expr):
    t = _f32()
    y = SCALAR_EXPRESSIONS[expr](t)
    assert isinstance(y, Tensor), f"{expr} returned {type(y).__name__}, not a Tensor"
    assert y.dtype == np.float32, f"{expr} gave {y.dtype}"
    y.sum().backward()
    assert t.grad.dtype == np.float32, f"gradient of {expr} is {t.grad.dtype}"


def test_scalar_operator_values():
    t = Tensor(np.array([1.0, 2.0, 4.0], np.float32))
    np.testing.assert_allclose((2.0 - t).data, [1.0, 0.0, -2.0])
    np.testing.assert_allclose((np.float64(3) * t).data, [3.0, 6.0, 12.0])
    np.testing.assert_allclose((t / 4).data, [0.25, 0.5, 1.0])
    np.testing.assert_allclose((8.0 / t).data, [8.0, 4.0, 2.0])
    np.testing.assert_allclose((t**2).data, [1.0, 4.0, 16.0])
    np.testing.assert_allclose((2.0**t).data, [2.0, 4.0, 16.0])


def test_methods_call_the_ops():
    x = np.array([[0.5, 1.0, 2.0], [1.5, 0.25, 3.0]], np.float32)
    t = Tensor(x)
    np.testing.assert_allclose(t.sum(axis=1).data, x.sum(axis=1))
    np.testing.assert_allclose(t.mean(axis=0, keepdims=True).data, x.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(t.max().data, x.max())
    np.testing.assert_allclose(t.reshape(3, 2).data, x.reshape(3, 2))
    np.testing.assert_allclose(t.reshape((6,)).data, x.reshape(6))
    np.testing.assert_allclose(t.T.data, x.T)
    np.testing.assert_allclose(t.transpose(1, 0).data, x.T)
    np.testing.assert_allclose(t.transpose().data, x.T)
    np.testing.assert_allclose(t.exp().data, np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(t.log().data, np.log(x), rtol=1e-6)
    np.testing.assert_allclose(t.sqrt().data, np.sqrt(x), rtol=1e-6)
    np.testing.assert_allclose(t.relu().data, x)
    np.testing.assert_allclose(t.tanh().data, np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(t.sigmoid().data, 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose((t @ t.T).data, x @ x.T, rtol=1e-6)
    np.testing.assert_allclose((x.T @ t).data, x.T @ x, rtol=1e-6)
    np.testing.assert_allclose(t[1, ::2].data, x[1, ::2])


# -- no_grad -------------------------------------------------------------------------


def test_no_grad_records_no_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 3.0 + 1.0).sum()
    assert is_grad_enabled()
    assert y.requires_grad is False
    assert y.creator is None
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        y.backward()


def test_no_grad_nests_and_restores_after_exception():
    with pytest.raises(ZeroDivisionError), no_grad():
        with no_grad():
            pass
        assert not is_grad_enabled()  # the inner exit restored the outer state
        raise ZeroDivisionError
    assert is_grad_enabled()


def test_grad_mode_is_per_thread():
    # One thread's no_grad (an optimizer step, a predict) must not stop another
    # thread's forward pass from recording its graph; a new thread starts recording.
    import threading

    x = Tensor([1.0, 2.0], requires_grad=True)
    inside, entered, release = [], threading.Event(), threading.Event()

    def other():
        with no_grad():
            entered.set()
            release.wait(5)
            inside.append(is_grad_enabled())

    t = threading.Thread(target=other)
    t.start()
    entered.wait(5)
    try:
        assert is_grad_enabled()
        y = (x * 2.0).sum()
        seen = []
        t2 = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        t2.start()
        t2.join()
    finally:
        release.set()
        t.join()
    assert y.requires_grad and y.creator is not None
    assert seen == [True] and inside == [False]
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_no_graph_without_inputs_requiring_grad():
    y = Tensor([1.0]) * Tensor([2.0])
    assert y.requires_grad is False
    assert y.creator is None


# -- gradient accumulation inside one graph ---------------------------------------------


def test_tensor_used_twice_in_mul():
    x = Tensor(np.array([1.0, -2.0, 3.0], np.float32), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)


def test_tensor_used_twice_in_add():
    x = Tensor(np.array([1.0, -2.0, 3.0], np.float32), requires_grad=True)
    gy = np.array([0.5, 1.0, -2.0], np.float32)
    (x + x).backward(gy)
    np.testing.assert_allclose(x.grad, 2 * gy)


def test_diamond_graph():
    # a feeds two branches that meet again: d = (2x + 1) * (2x * 3)
    x = Tensor(np.array([0.5, -1.5, 2.0]), requires_grad=True)
    a = x * 2.0
    b = a + 1.0
    c = a * 3.0
    d = b * c
    d.sum().backward()
    xv = x.data
    # d = 12 x^2 + 6 x  =>  dd/dx = 24 x + 6
    np.testing.assert_allclose(x.grad, 24 * xv + 6)
    assert a.grad is None and b.grad is None  # only leaves get .grad


def test_two_leaves_and_constant():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = Tensor(np.array([3.0, -1.0]), requires_grad=True)
    c = Tensor(np.array([10.0, 10.0]))
    ((x * w + c) * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data * w.data + c.data)
    np.testing.assert_allclose(w.grad, x.data**2)
    assert c.grad is None


# -- the backward walk ---------------------------------------------------------------


def test_deep_chain_has_no_recursion_limit():
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y + 1.0
    y = y * 0.5
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [0.5, 0.5])


def test_deep_chain_can_be_freed_without_backward():
    x = Tensor(np.ones(2, np.float32), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0
    del y  # no RecursionError or crash while the chain is torn down


def test_backward_twice_raises():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)  # the failed call changed nothing


def test_backward_through_a_freed_intermediate_raises():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3.0
    y.sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward(np.ones(2))


def test_second_loss_through_freed_shared_intermediate_raises():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2.0
    loss1 = h.sum()
    loss2 = (h * 3.0).sum()
    loss1.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss2.backward()


def test_retain_graph_accumulates():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = (x * x * x).sum()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad, 3 * x.data**2)
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad, 6 * x.data**2)
    y.backward()  # the last walk may free the graph
    np.testing.assert_allclose(x.grad, 9 * x.data**2)
    with pytest.raises(RuntimeError):
        y.backward()


def test_retain_graph_with_two_losses_sharing_a_subgraph():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2.0
    (h.sum()).backward(retain_graph=True)
    (h * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [8.0, 8.0])


def test_backward_on_non_scalar_without_grad_raises():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="one-element"):
        y.backward()


def test_backward_on_one_element_non_scalar_shape():
    x = Tensor(np.array([[2.0]]), requires_grad=True)
    (x * x).backward()
    np.testing.assert_allclose(x.grad, [[4.0]])


@pytest.mark.parametrize("shape", [(3, 2), (6,), (2,), ()])
def test_grad_shape_mismatch_raises(shape):
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(shape))


def test_backward_with_explicit_grad():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    gy = np.array([1.0, 10.0, 100.0])
    (x * x).backward(gy)
    np.testing.assert_allclose(x.grad, 2 * x.data * gy)


def test_leaf_grad_accumulates_across_backward_calls():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 3.0 + 2 * x.data)
    x.grad = None
    (x * 5.0).sum().backward()
    np.testing.assert_allclose(x.grad, [5.0, 5.0])


def test_backward_on_leaf():
    x = Tensor(np.array(2.0), requires_grad=True)
    x.backward()
    x.backward()
    np.testing.assert_allclose(x.grad, 2.0)


def test_grad_dtype_follows_tensor():
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    (x * x).backward(np.array([1.0, 1.0]))  # float64 upstream gradient is cast
    assert x.grad.dtype == np.float32


def test_leaf_grad_is_an_owned_writable_array():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    x.sum().backward()
    assert x.grad.flags.writeable and x.grad.flags.owndata
    w = Tensor(np.ones(3, np.float32), requires_grad=True)
    gy = np.ones(3, np.float32)
    (w + 1.0).backward(gy)
    assert not np.shares_memory(w.grad, gy)


# -- leaving the graph -------------------------------------------------------------------


def test_detach_shares_data_and_cuts_graph():
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y = x * 2.0
    d = y.detach()
    assert d.requires_grad is False
    assert d.creator is None
    assert np.shares_memory(d.data, y.data)
    z = (d * x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad, y.data)  # no gradient through d


def test_numpy_item_and_asarray():
    x = Tensor(np.array([[1.5, 2.5]], np.float32))
    assert isinstance(x.numpy(), np.ndarray)
    np.testing.assert_array_equal(x.numpy(), [[1.5, 2.5]])
    arr = np.asarray(x)
    assert arr.dtype == np.float32 and arr.shape == (1, 2)
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    s = Tensor(np.array([[3.5]], np.float32))
    assert s.item() == 3.5
    assert isinstance(s.item(), float)
    assert isinstance(Tensor(np.array(4)).item(), int)
    with pytest.raises(ValueError):
        x.item()


def test_np_array_copies():
    x = Tensor(np.zeros(3, np.float32))
    arr = np.array(x)
    arr[0] = 99.0
    assert x.data[0] == 0.0


def test_ops_accept_python_and_numpy_operands():
    y = ops.add(np.array([1.0, 2.0], np.float32), 1.0)
    assert isinstance(y, Tensor) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, [2.0, 3.0])


def test_gradients_returns_them_without_touching_grad():
    from hpnn.engine import gradients

    w = Tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    unused = Tensor(np.ones(2, np.float32), requires_grad=True)
    w.grad = np.full(3, 7.0, np.float32)  # left as it is
    loss = (w * w).sum()
    gw, gu = gradients(loss, [w, unused], scale=0.5)
    np.testing.assert_allclose(gw, [1.0, 2.0, 3.0])  # 0.5 * 2w
    assert gu is None
    np.testing.assert_array_equal(w.grad, [7.0, 7.0, 7.0])
    with pytest.raises(ValueError, match="one-element loss"):
        gradients(w * w, [w])
