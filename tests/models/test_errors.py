"""Clear errors from compile/fit/evaluate/predict: they name the argument and what was received."""

import numpy as np
import pytest

from hpnn import Input, Sequential, layers
from hpnn.cli import build_model


@pytest.fixture
def x():
    return np.random.default_rng(0).random((10, 4))


def classifier(loss="sparse_categorical_crossentropy", n_out=10):
    model = Sequential([Input((4,)), layers.Dense(n_out, activation="softmax")])
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model


def regressor(n_out=2):
    model = Sequential([Input((4,)), layers.Dense(n_out)])
    model.compile(optimizer="adam", loss="mse")
    return model


# -- compile ------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["fit", "evaluate", "train_on_batch"])
def test_use_before_compile(x, what):
    model = Sequential([Input((4,)), layers.Dense(2)])
    with pytest.raises(RuntimeError, match=rf"compile\(\) before {what}\(\)"):
        getattr(model, what)(x, np.zeros((10, 2)))


def test_predict_needs_no_compile(x):
    model = Sequential([Input((4,)), layers.Dense(2)])
    assert model.predict(x, verbose=0).shape == (10, 2)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"optimizer": "adamm", "loss": "mse"}, r"Unknown optimizer.*Received: optimizer='adamm'"),
        ({"optimizer": "adam", "loss": "mse2"}, r"Unknown loss.*Received: loss='mse2'"),
        (
            {"optimizer": "adam", "loss": "mse", "metrics": ["acuracy"]},
            r"Unknown metric.*Received: metric='acuracy'",
        ),
    ],
)
def test_unknown_names_in_compile(kwargs, pattern):
    model = Sequential([Input((4,)), layers.Dense(2)])
    with pytest.raises(ValueError, match=pattern):
        model.compile(**kwargs)
    assert not model.compiled


def test_unknown_activation_string():
    with pytest.raises(ValueError, match=r"Unknown activation.*Received: activation='rellu'"):
        layers.Dense(2, activation="rellu")


def test_unexpected_compile_keyword():
    with pytest.raises(TypeError, match="unexpected keyword"):
        regressor().compile(optimizer="adam", loss="mse", metric=["mae"])


# -- shapes and lengths ----------------------------------------------------------------------


def test_x_y_length_mismatch(x):
    with pytest.raises(ValueError) as e:
        classifier().fit(x, np.arange(9), verbose=0)
    msg = str(e.value)
    assert "same number of samples" in msg
    assert "Received: x.shape=(10, 4), y.shape=(9,)" in msg


def test_validation_data_length_mismatch(x):
    with pytest.raises(
        ValueError, match=r"validation_data x and validation_data y.*y\.shape=\(7,\)"
    ):
        classifier().fit(x, np.arange(10), validation_data=(x, np.arange(7)), verbose=0)


@pytest.mark.parametrize("what", ["fit", "evaluate", "predict"])
def test_wrong_input_shape_for_built_model(x, what):
    model = classifier()
    bad = np.zeros((10, 5))
    args = (bad,) if what == "predict" else (bad, np.arange(10))
    with pytest.raises(ValueError) as e:
        getattr(model, what)(*args, verbose=0)
    msg = str(e.value)
    assert "expected input of shape (None, 4)" in msg and "Received: shape=(10, 5)" in msg


def test_wrong_input_rank_for_cnn():
    model = build_model("cnn")
    with pytest.raises(ValueError, match=r"\(None, 28, 28, 1\).*Received: shape=\(2, 28, 28\)"):
        model.predict(np.zeros((2, 28, 28)), verbose=0)


def test_wrong_rank_on_first_fit_names_the_first_layer():
    model = Sequential([layers.Conv2D(4, 3, name="first_conv"), layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match=r"Conv2D 'first_conv'.*rank 4.*Received"):
        model.fit(np.zeros((3, 8, 8)), np.zeros((3, 2)), verbose=0)


def test_validation_data_wrong_shape(x):
    with pytest.raises(ValueError, match=r"Received: shape=\(10, 3\)"):
        classifier().fit(x, np.arange(10), validation_data=(x[:, :3], np.arange(10)), verbose=0)


def test_validation_data_not_a_pair(x):
    with pytest.raises(ValueError, match=r"validation_data must be a tuple.*Received: ndarray"):
        classifier().fit(x, np.arange(10), validation_data=x, verbose=0)


def test_targets_not_matching_regression_output(x):
    with pytest.raises(
        ValueError, match=r"expected shape \(10, 2\)\. Received: y\.shape=\(10, 3\)"
    ):
        regressor().fit(x, np.zeros((10, 3)), verbose=0)


def test_scalar_x():
    with pytest.raises(ValueError, match=r"x must have a batch axis\. Received"):
        regressor().predict(np.array(3.0), verbose=0)


# -- labels -------------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "shown"), [(10, "0 to 10"), (-1, "-1 to 9")])
def test_sparse_labels_out_of_range(x, bad, shown):
    y = np.arange(10)
    y[3] = bad
    with pytest.raises(ValueError) as e:
        classifier().fit(x, y, verbose=0)
    msg = str(e.value)
    assert "[0, 9]" in msg and "10 outputs" in msg and f"Received: labels from {shown}" in msg


def test_sparse_labels_out_of_range_in_evaluate_and_validation(x):
    y_bad = np.full(10, 12)
    with pytest.raises(ValueError, match=r"labels in y must be in \[0, 9\].*Received"):
        classifier().evaluate(x, y_bad, verbose=0)
    with pytest.raises(
        ValueError, match=r"labels in validation_data y.*Received: labels from .* 12"
    ):
        classifier().fit(x, np.arange(10), validation_data=(x, y_bad), verbose=0)


@pytest.mark.parametrize(("value", "shown"), [(12, "12 to 12"), (-3, "-3 to -3")])
def test_sparse_label_range_in_message_is_the_real_range(x, value, shown):
    with pytest.raises(ValueError, match=f"Received: labels from {shown}"):
        classifier().fit(x, np.full(10, value), verbose=0)


def test_sparse_labels_not_integers(x):
    with pytest.raises(ValueError, match=r"integer class indices.*Received: non-integer.*0\.5"):
        classifier().fit(x, np.arange(10) + 0.5, verbose=0)


def test_one_hot_y_with_sparse_loss(x):
    with pytest.raises(ValueError) as e:
        classifier().fit(x, np.eye(10), verbose=0)
    msg = str(e.value)
    assert "sparse_categorical_crossentropy" in msg
    assert "Received: y.shape=(10, 10)" in msg
    assert "categorical_crossentropy'" in msg  # the hint names the loss that fits


def test_integer_y_with_categorical_loss(x):
    with pytest.raises(ValueError) as e:
        classifier(loss="categorical_crossentropy").fit(x, np.arange(10), verbose=0)
    msg = str(e.value)
    assert "one-hot y of shape (10, 10)" in msg
    assert "Received: y.shape=(10,)" in msg
    assert "sparse_categorical_crossentropy" in msg and "to_categorical" in msg


def test_one_hot_of_the_wrong_width(x):
    with pytest.raises(ValueError, match=r"Received: y\.shape=\(10, 3\)"):
        classifier(loss="categorical_crossentropy").fit(x, np.eye(10)[:, :3], verbose=0)


def test_binary_targets_out_of_range(x):
    model = classifier(loss="binary_crossentropy", n_out=1)
    with pytest.raises(ValueError, match=r"expects y in \[0, 1\]\. Received: values from 0 to 9"):
        model.fit(x, np.arange(10), verbose=0)


# -- non-finite and non-numeric data ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x(x, bad):
    x = x.copy()
    x[3, 1] = bad
    with pytest.raises(ValueError) as e:
        classifier().fit(x, np.arange(10), verbose=0)
    msg = str(e.value)
    assert msg.startswith("x contains 1 NaN or infinite value")
    assert "index (3, 1)" in msg and str(bad) in msg


def test_non_finite_x_in_predict_and_evaluate(x):
    x = x.copy()
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        classifier().predict(x, verbose=0)
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        classifier().evaluate(x, np.arange(10), verbose=0)


def test_non_finite_validation_data(x):
    xv = x.copy()
    xv[5, 2] = np.inf
    with pytest.raises(
        ValueError, match=r"validation_data x contains 1 NaN.*index \(5, 2\) is inf"
    ):
        classifier().fit(x, np.arange(10), validation_data=(xv, np.arange(10)), verbose=0)


def test_non_finite_y(x):
    y = np.zeros((10, 2))
    y[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"^y contains 1 NaN.*index \(4, 1\)"):
        regressor().fit(x, y, verbose=0)


def test_non_finite_x_fails_before_any_training(x):
    model = classifier()
    before = model.get_weights()
    xb = np.concatenate([x, x])
    xb[-1, 0] = np.nan  # only in the last batch
    with pytest.raises(ValueError, match="NaN"):
        model.fit(xb, np.arange(20) % 10, batch_size=2, verbose=0)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_string_x(x):
    with pytest.raises(ValueError, match=r"^x must hold numbers.*Received: dtype=<U"):
        classifier().fit(np.full((10, 4), "a"), np.arange(10), verbose=0)
    with pytest.raises(ValueError, match=r"^x must hold numbers.*Received"):
        classifier().predict([["1", "2", "3", "4"]], verbose=0)


def test_string_y(x):
    with pytest.raises(ValueError, match=r"^y must hold numbers.*Received: dtype=<U"):
        classifier().fit(x, np.arange(10).astype(str), verbose=0)


def test_ragged_x():
    with pytest.raises(ValueError, match=r"x must be an array-like of numbers\. Received: list"):
        regressor().predict([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]], verbose=0)


def test_object_x(x):
    with pytest.raises(ValueError, match=r"x must hold numbers.*Received: dtype=object"):
        classifier().fit(np.array([{"a": 1}] * 10, dtype=object), np.arange(10), verbose=0)


def test_missing_y(x):
    with pytest.raises(ValueError, match=r"y is required\. Received: y=None"):
        classifier().fit(x, verbose=0)


# -- arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [0, -4, 2.0, True, "32"])
@pytest.mark.parametrize("what", ["fit", "evaluate", "predict"])
def test_bad_batch_size(x, batch_size, what):
    model = classifier()
    args = (x,) if what == "predict" else (x, np.arange(10))
    with pytest.raises(
        ValueError,
        match=rf"batch_size must be a positive int\. Received: "
        rf"batch_size={batch_size!r}",
    ):
        getattr(model, what)(*args, batch_size=batch_size, verbose=0)


@pytest.mark.parametrize("split", [1.0, 1.5, -0.1])
def test_bad_validation_split(x, split):
    with pytest.raises(
        ValueError,
        match=rf"validation_split must be in \[0, 1\)\. "
        rf"Received: validation_split={split}",
    ):
        classifier().fit(x, np.arange(10), validation_split=split, verbose=0)


def test_validation_split_leaving_no_sample(x):
    with pytest.raises(ValueError, match=r"validation_split=0\.05 leaves no validation sample"):
        classifier().fit(x, np.arange(10), validation_split=0.05, verbose=0)


@pytest.mark.parametrize("epochs", [-1, 1.5, "2"])
def test_bad_epochs(x, epochs):
    with pytest.raises(ValueError, match=rf"epochs.*Received: epochs={epochs!r}"):
        classifier().fit(x, np.arange(10), epochs=epochs, verbose=0)


def test_unsupported_fit_arguments_say_so(x):
    with pytest.raises(NotImplementedError, match="steps_per_epoch"):
        classifier().fit(x, np.arange(10), steps_per_epoch=3, verbose=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_weight": np.ones(10), "class_weight": {0: 2.0}}, "at the same time"),
        ({"sample_weight": np.ones(9)}, r"sample_weight must have one weight per sample"),
        ({"sample_weight": [1.0] * 9 + [float("nan")]}, "sample_weight"),
        ({"class_weight": [1.0, 2.0]}, "class_weight must be a dict"),
        ({"class_weight": {-1: 2.0}}, "class_weight must be a dict"),
        ({"validation_data": (np.zeros((2, 4)), np.zeros(2), np.ones(3))}, "validation_data "),
    ],
)
def test_bad_sample_and_class_weights_say_what_is_wrong(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        classifier().fit(x, np.arange(10), verbose=0, **kwargs)


def test_fit_on_a_model_without_layers(x):
    model = Sequential()
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="no layers"):
        model.fit(x, x, verbose=0)
