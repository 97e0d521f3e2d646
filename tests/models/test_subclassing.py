"""Custom layers that hold layers, and subclassed models, as Keras writes them: the
held layers are tracked, so their weights train, count and save."""

import numpy as np
import pytest

import hpnn
from hpnn import layers


class TokenAndPosition(layers.Layer):
    """Keras' example layer: token embedding plus a learned position embedding."""

    def __init__(self, maxlen, vocab, dim, **kwargs):
        super().__init__(**kwargs)
        self.token = layers.Embedding(vocab, dim)
        self.position = layers.Embedding(maxlen, dim)

    def call(self, x, training=False):
        positions = self.position(np.arange(x.shape[-1]))
        return self.token(x) + positions

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.token.output_dim)


class TwoLayer(hpnn.Model):
    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(8, activation="relu")
        self.out = layers.Dense(1)

    def call(self, x, training=False):
        return self.out(self.hidden(x))


def test_a_custom_layer_tracks_the_layers_it_holds():
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential(
        [
            hpnn.Input((6,), dtype="int64"),
            TokenAndPosition(6, 20, 4),
            layers.GlobalAveragePooling1D(),
            layers.Dense(2, activation="softmax"),
        ]
    )
    block = model.layers[0]
    assert [w.shape for w in block.weights] == [(20, 4), (6, 4)]
    assert model.count_params() == 20 * 4 + 6 * 4 + 4 * 2 + 2
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ids = np.random.default_rng(0).integers(0, 20, (32, 6))
    before = [w.copy() for w in block.get_weights()]
    model.fit(ids, ids[:, 0] % 2, epochs=2, batch_size=8, verbose=0)
    assert all(not np.allclose(a, b) for a, b in zip(block.get_weights(), before, strict=True))
    block.set_weights(before)
    np.testing.assert_array_equal(block.get_weights()[1], before[1])


def test_a_subclassed_model_builds_trains_and_reports_its_layers():
    hpnn.utils.set_random_seed(0)
    model = TwoLayer()
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(1).standard_normal((64, 3)).astype(np.float32)
    y = x.sum(1, keepdims=True)
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.layers == [model.hidden, model.out]
    assert model.output_shape == (None, 1) and model.count_params() == 3 * 8 + 8 + 8 + 1
    assert model.predict(x[:5], verbose=0).shape == (5, 1)
    trainable = model.trainable_weights
    model.hidden.trainable = False
    assert len(model.trainable_weights) == len(trainable) - 2


class Distiller(hpnn.Model):
    """Keras' knowledge-distillation shape: compiled without a loss, its own
    compute_loss (here a squared distance to a fixed teacher's outputs)."""

    def __init__(self, student, teacher):
        super().__init__()
        self.student, self.teacher = student, teacher

    def call(self, x, training=False):
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        target = self.teacher(x, training=False).data
        return hpnn.ops.mean(hpnn.ops.square(y_pred - target))


def test_compile_without_a_loss_trains_with_the_subclass_compute_loss(tmp_path):
    hpnn.utils.set_random_seed(0)
    teacher = hpnn.Sequential([hpnn.Input((4,)), layers.Dense(3)])
    teacher.trainable = False
    student = hpnn.Sequential([hpnn.Input((4,)), layers.Dense(3)])
    model = Distiller(student, teacher)
    model.compile(optimizer=hpnn.optimizers.SGD(0.1))
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    history = model.fit(x, np.zeros((64, 3), np.float32), batch_size=16, epochs=20, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.05 * losses[0]  # the student learned the teacher
    np.testing.assert_allclose(student.predict(x, verbose=0), teacher.predict(x, verbose=0),
                               atol=0.05)  # fmt: skip


def test_without_a_loss_the_targets_need_not_match_the_outputs():
    """Distillation's targets are class labels while the model gives logits: with no
    compiled loss, compute_loss alone decides what the targets mean (as in Keras)."""
    teacher = hpnn.Sequential([hpnn.Input((4,)), layers.Dense(3)])
    model = Distiller(hpnn.Sequential([hpnn.Input((4,)), layers.Dense(3)]), teacher)
    model.compile(optimizer="sgd")
    x = np.zeros((8, 4), np.float32)
    history = model.fit(x, np.arange(8) % 3, batch_size=4, verbose=0)  # labels (8,)
    assert len(history.history["loss"]) == 1


def test_no_loss_and_no_compute_loss_says_so():
    model = hpnn.Sequential([hpnn.Input((4,)), layers.Dense(2)])
    model.compile(optimizer="adam")
    x = np.zeros((8, 4), np.float32)
    with pytest.raises(ValueError, match=r"no loss to compute.*Received: loss=None"):
        model.fit(x, np.zeros((8, 2), np.float32), verbose=0)


def test_a_model_compiled_without_a_loss_saves_and_loads(tmp_path):
    model = hpnn.Sequential([hpnn.Input((4,)), layers.Dense(2)])
    model.compile(optimizer="adam", metrics=["mae"])
    model.save(tmp_path / "m.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "m.hpnn")
    assert loaded.compiled and loaded.loss is None
