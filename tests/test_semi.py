"""hpnn.semi.MeanTeacher: the teacher's moving average, the costs, the step under a
split batch, bad input, and that the unlabelled data help on two moons."""

import numpy as np
import pytest

import hpnn
from hpnn import layers, transfer
from hpnn.engine.tensor import Tensor
from hpnn.semi import MeanTeacher


def _moons(n, rng, noise=0.1):
    t = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    upper = np.c_[np.cos(t), np.sin(t)]
    lower = np.c_[1 - np.cos(t), 0.5 - np.sin(t)]
    x = np.where(label[:, None] == 0, upper, lower) + rng.normal(0, noise, (n, 2))
    return x.astype("float32"), label


def _mlp(seed, inputs=2, classes=2):
    hpnn.utils.set_random_seed(seed)
    return hpnn.Sequential(
        [
            hpnn.Input(shape=(inputs,)),
            layers.Dense(32, activation="relu"),
            layers.Dense(32, activation="relu"),
            layers.Dense(classes, activation="softmax"),
        ]
    )


def _compiled(model, lr=0.01):
    model.compile(
        optimizer=hpnn.optimizers.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_mean_teacher_beats_supervised_training_on_two_moons_with_three_labels_a_class():
    rng = np.random.default_rng(0)
    x, y = _moons(600, rng)
    x_test, y_test = _moons(1000, rng)
    supervised, semi = [], []
    for seed in range(3):
        (x_few, y_few), x_rest = transfer.few_labels(x, y, per_class=3, seed=seed)
        model = _compiled(_mlp(seed))
        model.fit(x_few, y_few, epochs=300, batch_size=32, verbose=0)
        supervised.append(model.evaluate(x_test, y_test, verbose=0)[1])
        mt = MeanTeacher(
            _mlp(seed),
            augment=layers.GaussianNoise(0.15, seed=seed),
            unlabelled_ratio=16,
            seed=seed,
        )
        _compiled(mt).fit(x_few, y_few, unlabelled=x_rest, epochs=300, batch_size=32, verbose=0)
        semi.append(mt.evaluate(x_test, y_test, verbose=0)[1])
    # measured: supervised 0.86, 0.81, 0.84; Mean Teacher 0.87, 0.85, 0.94
    assert np.mean(semi) > np.mean(supervised) + 0.03, (supervised, semi)


def test_the_teacher_is_a_moving_average_of_the_student():
    rng = np.random.default_rng(1)
    mt = MeanTeacher(_mlp(0, inputs=3), ema_decay=0.9)
    mt.build_for((None, 3))
    student = [w.copy() for w in mt.student.get_weights()]
    for tw, sw in zip(mt.teacher.get_weights(), student, strict=True):
        np.testing.assert_array_equal(tw, sw)  # the teacher starts as the student
    reference = [w.astype(np.float64) for w in student]
    for t in range(1, 16):
        new = [rng.normal(size=w.shape).astype("float32") for w in student]
        mt.student.set_weights(new)
        decay = mt.update_teacher()
        expected = min(0.9, 1.0 - 1.0 / (t + 1))  # 0.5, 0.667, ... then 0.9
        assert decay == pytest.approx(expected)
        reference = [expected * r + (1 - expected) * n for r, n in zip(reference, new, strict=True)]
    for got, want in zip(mt.teacher.get_weights(), reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert mt.teacher_updates == 15


def test_only_the_student_trains_and_fit_moves_the_teacher_once_a_step():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 3)).astype("float32"), np.arange(40) % 2
    mt = _compiled(MeanTeacher(_mlp(0, inputs=3), seed=0))
    mt.fit(x, y, unlabelled=rng.normal(size=(50, 3)), epochs=2, batch_size=16, verbose=0)
    student_ids = {id(w) for w in mt.student.weights}
    assert {id(w) for w in mt.trainable_weights} == student_ids
    assert mt.teacher_updates == 2 * 3  # ceil(40 / 16) steps an epoch
    mt.trainable = True  # a flag set on the wrapper does not make the teacher train
    assert {id(w) for w in mt.trainable_weights} == student_ids
    mt.train_on_batch(x[:8], y[:8])
    assert mt.teacher_updates == 7
    teacher = mt.predict(x, verbose=0)
    mt.predict_with = "student"
    assert not np.allclose(teacher, mt.predict(x, verbose=0))


def test_the_costs_equal_numpy_references():
    mt = _compiled(MeanTeacher(_mlp(0, inputs=3, classes=3), threshold=0.6))
    rng = np.random.default_rng(3)
    p_l, t_l, p_u, t_u = (rng.dirichlet(np.ones(3), size=n).astype("float32") for n in (2, 2, 6, 6))
    t_u[:3] = [[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.05, 0.9, 0.05]]  # confident: 3 of 6
    t_u[3:] = [[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4]]
    mse = mt._mse(Tensor(p_l), Tensor(t_l), Tensor(p_u), Tensor(t_u)).item()
    both = np.concatenate([p_l - t_l, p_u - t_u])
    assert mse == pytest.approx(float(np.mean(np.sum(both**2, axis=1))), rel=1e-5)
    pseudo = mt._pseudo_label(np.zeros(2, "int64"), Tensor(p_u), Tensor(t_u)).item()
    picked = -np.log(p_u[[0, 1, 2], [0, 2, 1]])  # only the confident three count
    assert pseudo == pytest.approx(float(picked.sum() / 6), rel=1e-4)


def test_a_split_step_gives_the_whole_steps_numbers(monkeypatch):
    """Under the batch split each part draws its rows of the whole batch's unlabelled
    sample and perturbations, so the losses match a whole-batch run."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(64, 3)).astype("float32"), np.arange(64) % 2
    pool = rng.normal(size=(100, 3)).astype("float32")
    losses = {}
    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
    for threads in ("0", "2"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", threads)
        mt = MeanTeacher(_mlp(0, inputs=3), augment=layers.GaussianNoise(0.3, seed=1), seed=2)
        mt.unlabelled_ratio = 3
        _compiled(mt)
        history = mt.fit(x, y, unlabelled=pool, epochs=3, batch_size=64, shuffle=False, verbose=0)
        losses[threads] = history.history["loss"]
    np.testing.assert_allclose(losses["2"], losses["0"], rtol=1e-4)


def test_bad_unlabelled_data_is_named_with_the_shape_expected_and_received():
    x, y = np.zeros((8, 3), "float32"), np.arange(8) % 2
    mt = _compiled(MeanTeacher(_mlp(0, inputs=3)))
    with pytest.raises(ValueError, match=r"unlabelled must be .* shape \(M, 3\).*Received: "):
        mt.fit(x, y, unlabelled=np.zeros((5, 4)), verbose=0)
    with pytest.raises(ValueError, match=r"Received: unlabelled of shape \(0, 3\)"):
        mt.fit(x, y, unlabelled=np.zeros((0, 3)), verbose=0)
    with pytest.raises(ValueError, match=r"unlabelled contains 1 NaN"):
        mt.fit(x, y, unlabelled=np.array([[0.0, np.nan, 0.0]]), verbose=0)
    with pytest.raises(ValueError, match=r"no unlabelled images.*Received: unlabelled=None"):
        mt.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"no unlabelled images"):
        mt.train_on_batch(x, y)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ema_decay": 1.0}, r"ema_decay must be a number in \[0.0, 1.0\)\. Received: 1.0"),
        ({"ema_decay": -0.1}, r"ema_decay must be .* Received: -0.1"),
        ({"consistency": -1}, r"consistency must be a number in >= 0.0\. Received: -1"),
        ({"threshold": 1.5}, r"threshold must be .* Received: 1.5"),
        ({"unlabelled_ratio": 0}, r"unlabelled_ratio must be an int >= 1\. Received: unlab"),
        ({"cost": "kl"}, r"cost must be one of \('mse', 'pseudo_label'\)\. Received: cost='kl'"),
        ({"predict_with": "both"}, r"predict_with must be 'teacher' or 'student'"),
        ({"augment": [layers.GaussianNoise(0.1), "flip"]}, r"augment must be a layer or a list"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MeanTeacher(_mlp(0), **kwargs)


def test_a_student_that_is_not_a_model_or_cannot_be_cloned_is_reported():
    with pytest.raises(ValueError, match=r"student must be a Model\. Received: student="):
        MeanTeacher(layers.Dense(2))

    class Custom(hpnn.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2, activation="softmax")

        def call(self, x, training=False):
            return self.dense(x)

    with pytest.raises(ValueError, match=r"cannot clone student .*pass teacher="):
        MeanTeacher(Custom())
    mt = _compiled(MeanTeacher(Custom(), teacher=Custom()))  # a teacher given works
    x = np.ones((4, 3), "float32")
    mt.fit(x, np.arange(4) % 2, unlabelled=x, epochs=1, verbose=0)
    assert mt.predict(x, verbose=0).shape == (4, 2)
