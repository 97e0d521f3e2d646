"""The CuPy backend: the same ops and models on a GPU give the NumPy results.

Skipped unless CuPy is installed and sees a GPU (CI runs on CPUs only);
``bash benchmarks/gpu_check.sh`` runs these on a GPU machine.
"""

import numpy as np
import pytest

import hpnn
from hpnn import backend, layers
from hpnn.engine import Tensor, ops

cupy = pytest.importorskip("cupy")
try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("no CUDA device", allow_module_level=True)
except Exception as e:
    pytest.skip(f"CUDA unavailable: {e}", allow_module_level=True)

pytestmark = pytest.mark.gpu


@pytest.fixture
def gpu():
    backend.set_backend("cupy")
    yield cupy
    backend.set_backend("numpy")


def _both(fn, *arrays):
    """Run fn forward+backward on NumPy and on CuPy; return both sets of results."""
    out = []
    for xp in (np, cupy):
        ts = [Tensor(xp.asarray(a), requires_grad=True) for a in arrays]
        y = fn(*ts)
        gy = xp.asarray(np.random.default_rng(0).standard_normal(y.shape).astype(np.float32))
        y.backward(gy)
        out.append([backend.to_numpy(y.data)] + [backend.to_numpy(t.grad) for t in ts])
    return out


CASES = {
    "conv2d_same_stride2": (
        lambda x, w, b: ops.conv2d(x, w, b, (2, 2), "same"),
        [(2, 9, 8, 3), (3, 3, 3, 4), (4,)],
    ),
    "conv2d_valid": (lambda x, w: ops.conv2d(x, w), [(3, 7, 7, 2), (2, 3, 2, 5)]),
    "max_pool": (lambda x: ops.max_pool2d(x, (2, 2)), [(2, 6, 7, 3)]),
    "avg_pool_same": (lambda x: ops.average_pool2d(x, (3, 3), (2, 2), "same"), [(2, 7, 7, 3)]),
    "linear_softmax_ce": (
        lambda x, w, b: ops.softmax_cross_entropy(
            ops.linear(x, w, b), backend.get_xp(x.data).eye(5, dtype="float32")[:4]
        ),
        [(4, 6), (6, 5), (5,)],
    ),
    "relu_sigmoid_tanh": (lambda x: ops.relu(x) + ops.sigmoid(x) * ops.tanh(x), [(3, 4)]),
    "reduce_broadcast": (lambda a, b: ((a * b).sum(axis=1) / 3.0).max(), [(4, 5), (5,)]),
    "getitem_concat": (lambda a, b: ops.concatenate([a[:, ::2], b], axis=1), [(3, 6), (3, 2)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_numpy(name, gpu):
    fn, shapes = CASES[name]
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    cpu, dev = _both(fn, *arrays)
    for a, b in zip(cpu, dev, strict=True):
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-5)


def _model(seed):
    hpnn.utils.set_random_seed(seed)
    m = hpnn.Sequential(
        [
            hpnn.Input(shape=(12, 12, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(4, 3, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(16, activation="relu"),
            layers.Dense(3, activation="softmax"),
        ]
    )
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_training_on_gpu_matches_cpu(gpu):
    rng = np.random.default_rng(0)
    x = rng.random((96, 12, 12, 1), dtype=np.float32)
    y = rng.integers(0, 3, 96)
    backend.set_backend("numpy")
    cpu = _model(0)
    h_cpu = cpu.fit(x, y, epochs=2, batch_size=16, verbose=0)
    backend.set_backend("cupy")
    dev = _model(0)
    assert isinstance(dev.weights[0].data, cupy.ndarray)
    h_dev = dev.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(cpu.get_weights(), dev.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(h_dev.history["loss"], h_cpu.history["loss"], rtol=1e-4)
    np.testing.assert_allclose(dev.predict(x), cpu.predict(x), rtol=1e-3, atol=1e-5)


def test_lstm_and_batchnorm_on_gpu_match_cpu(gpu):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 7, 5)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    results = []
    for name in ("numpy", "cupy"):
        backend.set_backend(name)
        hpnn.utils.set_random_seed(3)
        m = hpnn.Sequential(
            [
                hpnn.Input(shape=(7, 5)),
                layers.LSTM(8, return_sequences=True),
                layers.GRU(6),
                layers.BatchNormalization(),
                layers.Dense(2, activation="softmax"),
            ]
        )
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        m.fit(x, y, epochs=2, batch_size=8, verbose=0)
        results.append((m.get_weights(), m.predict(x)))
    for a, b in zip(results[0][0] + [results[0][1]], results[1][0] + [results[1][1]], strict=True):
        np.testing.assert_allclose(b, a, rtol=2e-3, atol=2e-4)
