"""Tests for hpnn.layers.recurrent and hpnn.layers.bidirectional: Keras weight layouts,
states, masks from Embedding(mask_zero=True), Bidirectional merges, gradients, errors."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import ops
from hpnn.testing import check_grad

N, T, F, U = 2, 3, 2, 3
MASK = np.array([[True, True, False], [False, True, True]])


@pytest.fixture
def float64():
    old = hpnn.backend.floatx()
    hpnn.backend.set_floatx("float64")
    yield
    hpnn.backend.set_floatx(old)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-0.8, 0.8, shape)


def randomize(layer, seed=0):
    """Give every weight random values (biases are zero-initialised)."""
    layer.set_weights([rand(*w.shape, seed=seed + i) for i, w in enumerate(layer.get_weights())])


# -- weights -----------------------------------------------------------------------------


def test_lstm_weight_layout_and_keras_defaults():
    layer = layers.LSTM(5)
    layer(np.zeros((2, 7, 3), np.float32))
    assert [w.name for w in layer.weights] == ["kernel", "recurrent_kernel", "bias"]
    assert [w.shape for w in layer.weights] == [(3, 20), (5, 20), (20,)]
    assert layer.activation == "tanh" and layer.recurrent_activation == "sigmoid"
    kernel, recurrent, bias = layer.get_weights()
    # unit_forget_bias: gate order i, f, c, o, the forget block starts at one
    np.testing.assert_array_equal(bias, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    # orthogonal recurrent kernel: its rows are orthonormal
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(5), atol=1e-5)
    limit = np.sqrt(6 / (3 + 20))  # glorot_uniform
    assert np.abs(kernel).max() <= limit and kernel.std() > limit / 4
    assert layer.count_params() == 3 * 20 + 5 * 20 + 20


@pytest.mark.parametrize(
    ("layer", "shapes"),
    [
        (layers.GRU(4), [(3, 12), (4, 12), (2, 12)]),
        (layers.GRU(4, reset_after=False), [(3, 12), (4, 12), (12,)]),
        (layers.SimpleRNN(4), [(3, 4), (4, 4), (4,)]),
        (layers.LSTM(4, use_bias=False), [(3, 16), (4, 16)]),
    ],
)
def test_weight_shapes(layer, shapes):
    layer(np.zeros((1, 2, 3), np.float32))
    assert [w.shape for w in layer.weights] == shapes
    assert layer.get_weights()[-1].dtype == np.float32


def test_bidirectional_weights_are_forward_then_backward():
    bi = layers.Bidirectional(layers.LSTM(4, name="enc"))
    bi(np.zeros((1, 2, 3), np.float32))
    assert len(bi.weights) == 6
    assert bi.forward_layer.name == "forward_enc" and not bi.forward_layer.go_backwards
    assert bi.backward_layer.name == "backward_enc" and bi.backward_layer.go_backwards
    assert bi.weights[:3] == bi.forward_layer.weights
    assert bi.weights[3:] == bi.backward_layer.weights
    randomize(bi)
    np.testing.assert_array_equal(bi.forward_layer.get_weights()[0], rand(3, 16).astype(np.float32))


# -- calling -----------------------------------------------------------------------------


def test_layer_matches_op_and_states():
    layer = layers.LSTM(U, return_sequences=True, return_state=True, go_backwards=True)
    x = rand(N, T, F).astype(np.float32)
    h0, c0 = rand(N, U, seed=1), rand(N, U, seed=2)
    layer(x)
    randomize(layer)
    out, h, c = layer(x, initial_state=[h0, c0])
    assert out.shape == (N, T, U) and h.shape == c.shape == (N, U)
    w, r, b = layer.get_weights()
    ref, rh, rc = ops.lstm(
        x, w, r, b, [h0, c0], go_backwards=True, return_sequences=True, return_state=True
    )
    for got, want in ((out, ref), (h, rh), (c, rc)):
        np.testing.assert_allclose(got.data, want.data, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.data[:, -1], h.data)  # outputs in processing order
    assert layer.compute_output_shape((None, T, F)) == [(None, T, U), (None, U), (None, U)]


def test_dropout_only_in_training():
    layer = layers.GRU(U, dropout=0.5, seed=1)
    x = rand(4, T, F).astype(np.float32)
    infer = layer(x).data
    np.testing.assert_array_equal(layer(x, training=False).data, infer)
    assert not np.allclose(layer(x, training=True).data, infer)


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_recurrent_dropout_only_in_training(cls):
    hpnn.utils.set_random_seed(0)
    layer = cls(U, recurrent_dropout=0.5, seed=1, return_sequences=True)
    x = rand(4, T, F).astype(np.float32)
    infer = layer(x).data
    plain = cls(U, return_sequences=True)
    plain(x)
    plain.set_weights(layer.get_weights())
    np.testing.assert_array_equal(plain(x).data, infer)  # inference: no mask at all
    train = layer(x, training=True).data
    assert not np.allclose(train[:, 1:], infer[:, 1:])  # from the second step on
    np.testing.assert_allclose(train[:, 0], infer[:, 0], rtol=1e-6)  # h_0 = 0: nothing to drop
    assert layer.get_config()["recurrent_dropout"] == 0.5
    assert cls.from_config(layer.get_config()).recurrent_dropout == 0.5


@pytest.mark.parametrize("kind", ["dropout", "recurrent_dropout"])
def test_recurrent_dropout_trains_the_same_split(kind, monkeypatch):
    """The masks are drawn for the whole batch: split into parts, the same weights."""
    pytest.importorskip("threadpoolctl")
    x, y = rand(64, T, F).astype(np.float32), np.arange(64) % 2
    weights = []
    for threads in ("0", "2"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", threads)
        monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
        hpnn.utils.set_random_seed(0)
        model = hpnn.Sequential([hpnn.Input((T, F)), layers.LSTM(U, **{kind: 0.3})])
        model.add(layers.Dense(2, activation="softmax"))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        weights.append(model.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_config_round_trip():
    layer = layers.GRU(7, reset_after=False, return_sequences=True, go_backwards=True)
    clone = layers.GRU.from_config(layer.get_config())
    for key in ("units", "reset_after", "return_sequences", "go_backwards", "activation"):
        assert getattr(clone, key) == getattr(layer, key)


# -- masking -------------------------------------------------------------------------------


def _embed_rnn(cls):
    return hpnn.Sequential(
        [hpnn.Input((5,), dtype="int32"), layers.Embedding(12, 4, mask_zero=True), cls(3)]
    )


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_mask_zero_skips_padding(cls):
    model = _embed_rnn(cls)
    ids = np.array([[3, 7, 2, 0, 0], [0, 0, 5, 1, 9]])
    out = model.predict(ids, verbose=0)
    emb, rnn = model.layers
    for row, real in zip(out, ([3, 7, 2], [5, 1, 9]), strict=True):
        trimmed = rnn(emb(np.array([real]))).numpy()[0]
        np.testing.assert_allclose(row, trimmed, rtol=1e-5, atol=1e-6)


def test_bidirectional_masked_sequences_zero_padded_steps():
    model = hpnn.Sequential(
        [
            hpnn.Input((4,), dtype="int32"),
            layers.Embedding(9, 3, mask_zero=True),
            layers.Bidirectional(layers.GRU(2, return_sequences=True)),
        ]
    )
    ids = np.array([[4, 2, 7, 0], [5, 0, 0, 0]])
    out = model.predict(ids, verbose=0)
    assert out.shape == (2, 4, 4)
    np.testing.assert_array_equal(out[0, 3], 0)
    np.testing.assert_array_equal(out[1, 1:], 0)
    emb, bi = model.layers
    trimmed = bi(emb(np.array([[4, 2, 7]]))).numpy()[0]
    np.testing.assert_allclose(out[0, :3], trimmed, rtol=1e-5, atol=1e-6)


def test_mask_reaches_global_average_pooling_and_trains():
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [
            layers.Embedding(6, 4, mask_zero=True),
            layers.LSTM(8, return_sequences=True),
            layers.GlobalAveragePooling1D(),
            layers.Dense(2, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 6, size=(64, 6))
    ids[rng.random((64, 6)) < 0.3] = 0
    y = (ids == 3).any(axis=1).astype(int)
    model.compile(hpnn.optimizers.Adam(0.02), "sparse_categorical_crossentropy")
    hist = model.fit(ids, y, epochs=15, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]


# -- gradients (float64 finite differences) ------------------------------------------------


def _swap_weights(layer, tensors):
    """Point the layer's weight attributes at ``tensors`` (so check_grad can vary them)."""
    subs = [layer.forward_layer, layer.backward_layer] if hasattr(layer, "merge_mode") else [layer]
    it = iter(tensors)
    for sub in subs:
        for name in ("kernel", "recurrent_kernel", "bias"):
            if getattr(sub, name, None) is not None:
                setattr(sub, name, next(it))


def _check_layer(layer, x, **call_kwargs):
    layer(x)
    randomize(layer, seed=3)
    weights = layer.get_weights()

    def fn(xt, *ws):
        _swap_weights(layer, ws)
        y = layer(xt, **call_kwargs)
        if isinstance(y, list):
            return ops.concatenate([ops.reshape(t, (t.shape[0], -1)) for t in y], axis=1)
        return y

    check_grad(fn, [x, *weights])


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_masked_layer_gradients(float64, cls):
    _check_layer(cls(U, return_sequences=True), rand(N, T, F), mask=MASK)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_bidirectional_gradients(float64, merge_mode):
    bi = layers.Bidirectional(layers.LSTM(U, return_sequences=True), merge_mode=merge_mode)
    _check_layer(bi, rand(N, T, F), mask=MASK)


def test_bidirectional_states_gradients(float64):
    bi = layers.Bidirectional(layers.GRU(U, return_state=True))
    init = [rand(N, U, seed=5), rand(N, U, seed=6)]
    _check_layer(bi, rand(N, T, F), initial_state=init)
    out = bi(rand(N, T, F), initial_state=init)
    assert [t.shape for t in out] == [(N, 2 * U), (N, U), (N, U)]


def test_bidirectional_merge_none():
    bi = layers.Bidirectional(layers.SimpleRNN(U, return_sequences=True), merge_mode=None)
    fwd, bwd = bi(rand(N, T, F).astype(np.float32))
    assert fwd.shape == bwd.shape == (N, T, U)
    assert bi.compute_output_shape((None, T, F)) == [(None, T, U), (None, T, U)]


# -- against PyTorch, through set_weights -------------------------------------------------


def test_lstm_and_gru_layers_match_torch():
    torch = pytest.importorskip("torch")
    x = rand(3, 6, 4).astype(np.float32)
    t_lstm, t_gru = torch.nn.LSTM(4, 5, batch_first=True), torch.nn.GRU(4, 5, batch_first=True)
    sd = {k: v.detach().numpy() for k, v in t_lstm.state_dict().items()}
    lstm = layers.LSTM(5, return_sequences=True)
    lstm(x)
    # torch i, f, g, o == Keras i, f, c, o; torch's two biases add up
    lstm.set_weights(
        [sd["weight_ih_l0"].T, sd["weight_hh_l0"].T, sd["bias_ih_l0"] + sd["bias_hh_l0"]]
    )
    np.testing.assert_allclose(
        lstm(x).numpy(), t_lstm(torch.tensor(x))[0].detach().numpy(), rtol=1e-5, atol=1e-6
    )
    sd = {k: v.detach().numpy() for k, v in t_gru.state_dict().items()}
    perm = np.r_[5:10, 0:5, 10:15]  # torch r, z, n -> Keras z, r, h
    gru = layers.GRU(5, return_sequences=True)
    gru(x)
    gru.set_weights(
        [
            sd["weight_ih_l0"].T[:, perm],
            sd["weight_hh_l0"].T[:, perm],
            np.stack([sd["bias_ih_l0"][perm], sd["bias_hh_l0"][perm]]),
        ]
    )
    np.testing.assert_allclose(
        gru(x).numpy(), t_gru(torch.tensor(x))[0].detach().numpy(), rtol=1e-5, atol=1e-6
    )


# -- errors --------------------------------------------------------------------------------


def test_sequence_layer_fed_2d_input():
    layer = layers.LSTM(4, name="enc")
    with pytest.raises(ValueError, match=r"LSTM 'enc': expected input of rank 3 .*Received: shape"):
        layer(np.zeros((2, 5), np.float32))


def test_wrong_features_after_build():
    layer = layers.GRU(4, name="g")
    layer(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"GRU 'g'.*size 3.*Received: shape=\(2, 5, 4\)"):
        layer(np.zeros((2, 5, 4), np.float32))


def test_mask_shape_mismatch():
    layer = layers.SimpleRNN(4, name="r")
    with pytest.raises(ValueError, match=r"SimpleRNN 'r'.*\(2, 5\).*Received: mask.shape=\(2, 4\)"):
        layer(np.zeros((2, 5, 3), np.float32), mask=np.ones((2, 4), bool))


def test_initial_state_errors():
    layer = layers.LSTM(4, name="l")
    x = np.zeros((2, 5, 3), np.float32)
    with pytest.raises(
        ValueError, match=r"LSTM 'l'.*initial_state\[1\].*\(2, 4\).*Received: shape"
    ):
        layer(x, initial_state=[np.zeros((2, 4)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"LSTM 'l'.*2 state.*Received: 1"):
        layer(x, initial_state=[np.zeros((2, 4))])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: layers.LSTM(0), "units must be a positive int"),
        (lambda: layers.GRU(3, activation="swish"), "activation must be one of"),
        (lambda: layers.LSTM(3, stateful=True), "stateful"),
        (lambda: layers.LSTM(3, recurrent_dropout=1.0), r"recurrent_dropout must be in \[0, 1\)"),
        (lambda: layers.GRU(3, dropout=-0.1), r"dropout must be in \[0, 1\)"),
        (lambda: layers.Bidirectional(layers.LSTM(3), merge_mode="max"), "merge_mode"),
        (lambda: layers.Bidirectional(layers.Dense(3)), "recurrent layer"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises((ValueError, NotImplementedError), match=match):
        make()
