"""Tests for hpnn.constraints: what each does to a weight, that the optimizer applies
it after every update, and that it survives saving (values against Keras 3 are in
tests/test_keras_reference.py)."""

import numpy as np
import pytest

import hpnn
from hpnn import constraints, layers

W = np.random.default_rng(0).normal(size=(6, 4)).astype("float32") * 2


def test_what_each_constraint_does():
    capped = constraints.MaxNorm(1.0)(W)
    norms = np.linalg.norm(W, axis=0)
    np.testing.assert_allclose(np.linalg.norm(capped, axis=0), np.minimum(norms, 1.0), rtol=1e-5)
    assert (constraints.NonNeg()(W) >= 0).all()
    np.testing.assert_array_equal(constraints.NonNeg()(W)[W > 0], W[W > 0])
    np.testing.assert_allclose(
        np.linalg.norm(constraints.UnitNorm(axis=1)(W), axis=1), 1.0, rtol=1e-5
    )
    half = constraints.MinMaxNorm(min_value=3.0, max_value=4.0, rate=0.5)(W)
    want = 0.5 * np.clip(norms, 3.0, 4.0) + 0.5 * norms
    np.testing.assert_allclose(np.linalg.norm(half, axis=0), want, rtol=1e-5)


def test_applied_after_each_update_and_saved(tmp_path):
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [
            hpnn.Input((6, 6, 1)),
            layers.Conv2D(3, 3, kernel_constraint=constraints.MaxNorm(0.3, axis=[0, 1, 2])),
            layers.Flatten(),
            layers.Dense(2, kernel_constraint="non_neg", bias_constraint=constraints.UnitNorm()),
        ]
    )
    model.compile(optimizer=hpnn.optimizers.Adam(0.1), loss="mse")
    x = np.random.default_rng(1).random((16, 6, 6, 1), dtype=np.float32)
    y = np.random.default_rng(2).random((16, 2), dtype=np.float32)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    conv, _, dense = model.layers
    assert np.linalg.norm(conv.kernel.numpy().reshape(-1, 3), axis=0).max() <= 0.3 + 1e-6
    assert (dense.kernel.numpy() >= 0).all()
    assert np.linalg.norm(dense.bias.numpy()) == pytest.approx(1.0, rel=1e-5)
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    assert isinstance(loaded.layers[0].kernel.constraint, constraints.MaxNorm)
    assert loaded.layers[0].kernel.constraint.get_config() == {"max_value": 0.3, "axis": [0, 1, 2]}
    assert isinstance(loaded.layers[2].kernel.constraint, constraints.NonNeg)


def test_unknown_constraint_names_the_choices():
    with pytest.raises(ValueError, match=r"Unknown constraint.*max_norm"):
        layers.Dense(2, kernel_constraint="tight")


def test_every_layer_with_constraint_arguments_applies_and_saves_them(tmp_path):
    hpnn.utils.set_random_seed(0)
    bound = constraints.MaxNorm(0.2)
    model = hpnn.Sequential(
        [
            hpnn.Input((5,)),
            layers.Embedding(
                20, 6, embeddings_constraint=constraints.MaxNorm(0.05, axis=1),
                embeddings_regularizer="l2",
            ),
            layers.LSTM(
                4, return_sequences=True, kernel_constraint=bound,
                recurrent_constraint=constraints.UnitNorm(), bias_constraint="non_neg",
            ),
            layers.LayerNormalization(gamma_constraint="non_neg", beta_constraint="non_neg"),
            layers.GroupNormalization(groups=2, gamma_constraint=constraints.MaxNorm(1.0)),
            layers.BatchNormalization(beta_constraint="non_neg"),
            layers.GlobalAveragePooling1D(),
            layers.Dense(2),
        ]
    )  # fmt: skip
    model.compile(optimizer=hpnn.optimizers.Adam(0.05), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, (32, 5)), rng.random((32, 2), dtype=np.float32)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    emb, lstm, ln, gn, bn = model.layers[:5]
    assert np.linalg.norm(emb.embeddings.numpy(), axis=1).max() <= 0.05 + 1e-6
    assert np.linalg.norm(lstm.kernel.numpy(), axis=0).max() <= 0.2 + 1e-6
    np.testing.assert_allclose(
        np.linalg.norm(lstm.recurrent_kernel.numpy(), axis=0), 1.0, rtol=1e-5
    )
    assert (lstm.bias.numpy() >= 0).all() and (ln.gamma.numpy() >= 0).all()
    assert (ln.beta.numpy() >= 0).all() and (bn.beta.numpy() >= 0).all()
    assert np.linalg.norm(gn.gamma.numpy()) <= 1.0 + 1e-6
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    for a, b in zip(model.layers[:5], loaded.layers[:5], strict=True):
        for va, vb in zip(a.weights, b.weights, strict=True):
            assert type(va.constraint) is type(vb.constraint), (a.name, va.name)
            assert type(va.regularizer) is type(vb.regularizer), (a.name, va.name)
    assert isinstance(loaded.layers[0].embeddings.regularizer, hpnn.regularizers.L2)
