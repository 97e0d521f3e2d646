"""MultiHeadAttention: gradients, masks, dropout, and a transformer block in a
functional model (its values against Keras itself are in test_keras_reference)."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import Tensor
from hpnn.testing import check_grad


def seqs(n=2, t=5, f=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, t, f))


def test_gradients_of_query_key_value_and_weights(float64_floatx):
    layer = layers.MultiHeadAttention(2, 3, value_dim=4)
    q, v, k = seqs(), seqs(t=4, f=3, seed=1), seqs(t=4, f=2, seed=2)
    layer(q, v, key=k)
    mask = np.random.default_rng(3).random((2, 5, 4)) > 0.3
    check_grad(lambda a, b, c: layer(a, b, key=c, attention_mask=mask), [q, v, k])
    weights = layer.trainable_weights
    out = layer(Tensor(q), Tensor(v), key=Tensor(k), attention_mask=mask)
    (out * out).sum().backward()
    assert all(w.grad is not None and np.abs(w.grad).sum() > 0 for w in weights)


@pytest.fixture
def float64_floatx():
    old = hpnn.backend.floatx()
    hpnn.backend.set_floatx("float64")
    yield
    hpnn.backend.set_floatx(old)


def test_the_causal_mask_hides_later_steps():
    layer = layers.MultiHeadAttention(2, 4)
    x = seqs().astype(np.float32)
    before = layer(x, x, use_causal_mask=True).data
    later = x.copy()
    later[:, 3:] += 5.0  # change steps 3 and 4 only
    after = layer(later, later, use_causal_mask=True).data
    np.testing.assert_allclose(after[:, :3], before[:, :3], rtol=1e-6)
    assert not np.allclose(after[:, 3:], before[:, 3:])
    _, scores = layer(x, x, use_causal_mask=True, return_attention_scores=True)
    assert scores.shape == (2, 2, 5, 5)
    np.testing.assert_array_equal(np.triu(scores.data[0, 0], k=1), 0)


def test_dropout_acts_in_training_only():
    layer = layers.MultiHeadAttention(2, 4, dropout=0.5, seed=1)
    x = seqs().astype(np.float32)
    infer = layer(x, x).data
    np.testing.assert_array_equal(layer(x, x).data, infer)
    assert not np.allclose(layer(x, x, training=True).data, infer)


def test_a_transformer_block_trains_saves_and_loads(tmp_path):
    hpnn.utils.set_random_seed(0)
    inp = hpnn.Input((6, 8))
    attn = layers.MultiHeadAttention(2, 4)(inp, inp, use_causal_mask=True)
    h = layers.LayerNormalization()(layers.add([inp, attn]))
    h = layers.LayerNormalization()(layers.add([h, layers.Dense(8)(layers.Dense(16, "relu")(h))]))
    out = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling1D()(h))
    model = hpnn.Model(inp, out)
    model.compile(optimizer=hpnn.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    x = seqs(64, 6, 8, seed=4).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(int) + (x[:, 0, 1] > 1)
    history = model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.25 * history.history["loss"][0]  # 0.97 -> 0.08
    model.save(tmp_path / "block.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "block.hpnn")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_inputs_and_arguments():
    layer = layers.MultiHeadAttention(2, 4)
    x = seqs().astype(np.float32)
    with pytest.raises(TypeError, match=r"layer\(query, value\[, key\]\)"):
        layer(x)
    with pytest.raises(ValueError, match="key and value must have the same number of steps"):
        layer(x, x, key=seqs(t=3))
    layer(x, x)
    with pytest.raises(ValueError, match="query features must be 6"):
        layer(seqs(f=5), x)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(batch, 5, 5\)"):
        layer(x, x, attention_mask=np.ones((2, 5, 4), bool))
    with pytest.raises(NotImplementedError, match="attention_axes"):
        layers.MultiHeadAttention(2, 4, attention_axes=(1,))
    config = layers.MultiHeadAttention(3, 5, value_dim=2, output_shape=7).get_config()
    assert layers.MultiHeadAttention.from_config(config).get_config() == config


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.Attention(use_scale=True),
        lambda: layers.Attention(score_mode="concat", use_scale=True),
        lambda: layers.AdditiveAttention(),
    ],
    ids=["dot", "concat", "additive"],
)
def test_luong_and_additive_attention_gradients(make):
    rng = np.random.default_rng(0)
    q, v, k = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 4))
    layer = make()
    layer([Tensor(q), Tensor(v), Tensor(k)])
    layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
    vm = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    check_grad(lambda a, b, c: layer([a, b, c], mask=[None, vm], use_causal_mask=True), [q, v, k])
    out, weights = layer([Tensor(q), Tensor(v)], return_attention_scores=True)
    assert out.shape == (2, 3, 4) and weights.shape == (2, 3, 5)
    np.testing.assert_allclose(weights.data.sum(-1), 1.0, rtol=1e-12)


def test_attention_in_a_functional_model_trains_and_saves(tmp_path):
    hpnn.utils.set_random_seed(0)
    query, value = hpnn.Input((4, 3)), hpnn.Input((6, 3))
    context = layers.Attention(use_scale=True)([query, value])
    pooled = layers.GlobalAveragePooling1D()(layers.Concatenate()([query, context]))
    model = hpnn.Model([query, value], layers.Dense(1)(pooled))
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x = [rng.random((16, 4, 3), dtype=np.float32), rng.random((16, 6, 3), dtype=np.float32)]
    y = rng.random((16, 1), dtype=np.float32)
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match=r"expected query \(batch, Tq, dim\)"):
        layers.Attention()([np.ones((2, 3, 4), "float32"), np.ones((2, 5, 2), "float32")])
    with pytest.raises(ValueError, match="score_mode must be 'dot' or 'concat'"):
        layers.Attention(score_mode="general")
