"""Activity regularizers (``activity_regularizer=`` on a layer, and the
``ActivityRegularization`` layer): Keras 3 adds ``regularizer(output) / batch_size``
of every call to the loss."""

import numpy as np
import pytest

import hpnn
from hpnn import layers, regularizers
from hpnn.engine import Tensor, gradients, ops
from hpnn.models import model_from_json

L1, L2 = 0.03, 0.02


def penalty(y):
    """What Keras 3 adds for ``L1L2(L1, L2)`` on an output ``y``, in float64."""
    y = np.asarray(y, np.float64)
    return (L1 * np.abs(y).sum() + L2 * (y**2).sum()) / len(y)


def mlp(activity, seed=0):
    hpnn.utils.set_random_seed(seed)
    model = hpnn.Sequential(
        [
            hpnn.Input((4,)),
            layers.Dense(5, activation="tanh", activity_regularizer=activity),
            layers.Dense(2),
        ]
    )
    model.compile(optimizer=hpnn.optimizers.SGD(0.1), loss="mse")
    return model


def data(n=6, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.standard_normal((n, 2)).astype(
        np.float32
    )


def test_the_penalty_is_the_regularizer_over_the_batch_size():
    model = mlp(regularizers.L1L2(l1=L1, l2=L2))
    x, _ = data()
    hidden = model.layers[0](Tensor(x))
    model.layers[1](hidden)
    (p,) = model.losses  # no weight regularizers: the activity penalty alone
    assert float(p.item()) == pytest.approx(penalty(hidden.data), rel=1e-6)


def test_a_training_step_follows_the_gradient_of_loss_plus_penalty():
    x, t = data()
    model = mlp(regularizers.L1L2(l1=L1, l2=L2))
    w1, b1, w2, b2 = (Tensor(w, requires_grad=True) for w in model.get_weights())
    # the same step written out by hand
    h = ops.tanh(ops.linear(Tensor(x), w1, b1))
    y = ops.linear(h, w2, b2)
    reg = (ops.sum(ops.abs(h)) * L1 + ops.sum(h * h) * L2) * (1.0 / len(x))
    loss = ops.mean((y - Tensor(t)) * (y - Tensor(t))) + reg
    expected_loss = float(loss.item())
    grads = gradients(loss, [w1, b1, w2, b2])
    reported = model.train_on_batch(x, t)
    assert reported == pytest.approx(expected_loss, rel=1e-6)
    for got, w, g in zip(model.get_weights(), (w1, b1, w2, b2), grads, strict=True):
        np.testing.assert_allclose(got, w.data - 0.1 * g, rtol=1e-5, atol=1e-7)


def test_it_changes_training_and_evaluate_reports_it():
    x, t = data()
    plain, regular = mlp(None), mlp(regularizers.L1L2(l1=L1, l2=L2))
    assert plain.evaluate(x, t, verbose=0) == pytest.approx(
        regular.evaluate(x, t, verbose=0) - penalty(np.tanh(x @ regular.get_weights()[0])),
        rel=1e-5,
    )
    plain.fit(x, t, epochs=2, batch_size=3, verbose=0)
    regular.fit(x, t, epochs=2, batch_size=3, verbose=0)
    assert not np.allclose(plain.get_weights()[0], regular.get_weights()[0])


def test_names_and_configs_round_trip():
    model = mlp("l2")
    assert isinstance(model.layers[0].activity_regularizer, regularizers.L2)
    again = model_from_json(model.to_json())
    assert again.layers[0].get_config() == model.layers[0].get_config()
    assert again.layers[0].activity_regularizer.get_config() == {"l2": 0.01}


def test_the_activity_regularization_layer():
    layer = layers.ActivityRegularization(l1=L1, l2=L2)
    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)
    model = hpnn.Sequential([hpnn.Input((2, 4)), layer])
    model.compile(optimizer="sgd", loss="mse")
    out = model(Tensor(x))
    np.testing.assert_array_equal(out.data, x)  # passes its input through
    (p,) = model.losses
    assert float(p.item()) == pytest.approx(penalty(x), rel=1e-6)
    config = layer.get_config()
    assert config["l1"] == L1 and config["l2"] == L2 and "activity_regularizer" not in config
    again = model_from_json(model.to_json())
    assert again.layers[0].get_config() == config
    with pytest.raises(TypeError, match="ActivityRegularization: pass l1 and l2"):
        layers.ActivityRegularization(activity_regularizer="l1")


def test_a_fused_conv_keeps_its_penalty():
    # Conv2D(relu) + MaxPooling2D normally run fused, without the conv's own output;
    # with an activity regularizer they must not be, and the penalty is the conv's.
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [
            hpnn.Input((6, 6, 1)),
            layers.Conv2D(2, 3, activation="relu", activity_regularizer=regularizers.L1(L1)),
            layers.MaxPooling2D(),
        ]
    )
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 1)).astype(np.float32)
    model(Tensor(x))
    conv_out = model.layers[0](Tensor(x)).data
    (p,) = model.losses
    assert float(p.item()) == pytest.approx(L1 * np.abs(conv_out).sum() / 2, rel=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda init, reg: layers.LSTM(3, kernel_initializer=init, recurrent_regularizer=reg),
        lambda init, reg: layers.GRU(3, recurrent_initializer=init, bias_regularizer=reg),
        lambda init, reg: layers.SimpleRNN(3, bias_initializer=init, kernel_regularizer=reg),
    ],
    ids=["lstm", "gru", "simple_rnn"],
)
def test_recurrent_layers_with_initializer_and_regularizer_objects_save(make):
    layer = make(hpnn.initializers.GlorotUniform(seed=3), regularizers.L1L2(l1=0.1, l2=0.2))
    model = hpnn.Sequential([hpnn.Input((5, 2)), layer])
    again = model_from_json(model.to_json())  # was: a TypeError from json
    assert again.layers[0].get_config() == layer.get_config()


def test_embedding_with_an_initializer_object_saves():
    layer = layers.Embedding(10, 3, embeddings_initializer=hpnn.initializers.RandomNormal(seed=1))
    model = hpnn.Sequential([hpnn.Input((4,), dtype="int64"), layer])
    again = model_from_json(model.to_json())
    assert again.layers[0].get_config() == layer.get_config()


def test_a_loaded_model_saves_again(tmp_path):
    # a layer built from a config keeps its initializers and regularizers in their
    # serialized form; saving it again must not fail
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [
            hpnn.Input((3,)),
            layers.Dense(
                2,
                kernel_initializer=hpnn.initializers.GlorotUniform(seed=1),
                kernel_regularizer=regularizers.L2(0.1),
                activity_regularizer=regularizers.L1(0.2),
            ),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "a.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "a.hpnn")
    loaded.save(tmp_path / "b.hpnn")
    again = hpnn.models.load_model(tmp_path / "b.hpnn")
    assert again.layers[0].get_config() == model.layers[0].get_config()
    for a, b in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
