"""The functional API (``hpnn.Model(inputs, outputs)``) and the merge layers."""

import numpy as np
import pytest

import hpnn
from hpnn import layers
from hpnn.engine import Tensor, gradients, ops
from hpnn.models import Functional, model_from_json
from hpnn.testing import check_grad


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def residual(seed=0):
    """Input -> Dense(relu) -> add the input -> concatenate with the input -> softmax."""
    hpnn.utils.set_random_seed(seed)
    inp = hpnn.Input((6,))
    h = layers.Dense(6, activation="relu")(inp)
    merged = layers.concatenate([layers.add([inp, h]), inp])
    out = layers.Dense(3, activation="softmax")(merged)
    return hpnn.Model(inputs=inp, outputs=out)


def test_model_of_inputs_and_outputs_is_functional_and_computes_the_graph():
    model = residual()
    assert isinstance(model, Functional) and isinstance(model, hpnn.Model)
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer",
        "Dense",
        "Add",
        "Concatenate",
        "Dense",
    ]
    assert model.input_shape == (None, 6) and model.output_shape == (None, 3)
    x = rand(5, 6)
    w1, b1, w2, b2 = model.get_weights()
    h = np.maximum(x @ w1 + b1, 0)
    z = np.concatenate([x + h, x], axis=1) @ w2 + b2
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_gradients_flow_through_both_branches():
    model = residual()
    x, labels = rand(4, 6), np.array([0, 2, 1, 2])
    # the same graph written with ops
    w1, b1, w2, b2 = (Tensor(w, requires_grad=True) for w in model.get_weights())
    xt = Tensor(x)
    h = ops.relu(ops.linear(xt, w1, b1))
    z = ops.linear(ops.concatenate([xt + h, xt], axis=1), w2, b2)
    by_hand = ops.mean(ops.sparse_softmax_cross_entropy(z, labels))
    expected = gradients(by_hand, [w1, b1, w2, b2])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    out = model(Tensor(x), training=True)
    got = gradients(model.loss(labels, out), model.trainable_weights)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_a_shared_layer_is_one_set_of_weights():
    hpnn.utils.set_random_seed(0)
    a, b = hpnn.Input((4,)), hpnn.Input((4,))
    shared = layers.Dense(2, name="shared")
    out = layers.subtract([shared(a), shared(b)])
    model = hpnn.Model([a, b], out)
    assert [layer.name for layer in model.layers].count("shared") == 1
    assert model.count_params() == 10
    xa, xb = rand(3, 4), rand(3, 4, seed=1)
    w, _ = shared.get_weights()
    got = model([Tensor(xa), Tensor(xb)])
    np.testing.assert_allclose(got.data, (xa - xb) @ w, rtol=1e-5, atol=1e-6)
    got.sum().backward()  # both uses add into the one kernel's gradient
    np.testing.assert_allclose(shared.kernel.grad, np.outer((xa - xb).sum(0), np.ones(2)))
    np.testing.assert_allclose(shared.bias.grad, np.zeros(2), atol=1e-6)


def test_fit_evaluate_save_and_load():
    x, y = rand(48, 6), np.random.default_rng(1).integers(0, 3, 48)
    model = residual()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0)[0]
    history = model.fit(x, y, epochs=5, batch_size=8, validation_split=0.25, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, y, verbose=0)[0] < before
    again = model_from_json(model.to_json())
    assert [type(v).__name__ for v in again.layers] == [type(v).__name__ for v in model.layers]
    assert again.get_config() == model.get_config()


def test_save_and_load_keep_weights_and_optimizer(tmp_path):
    x, y = rand(32, 6), np.random.default_rng(1).integers(0, 3, 32)
    model = residual()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "f.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "f.hpnn")
    assert isinstance(loaded, Functional)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_chain_equals_the_sequential_model():
    hpnn.utils.set_random_seed(3)
    seq = hpnn.Sequential(
        [
            hpnn.Input((8, 8, 1)),
            layers.Conv2D(3, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )
    inp = hpnn.Input((8, 8, 1))
    h = layers.Conv2D(3, 3, activation="relu")(inp)
    out = layers.Dense(2)(layers.Flatten()(layers.MaxPooling2D()(h)))
    fun = hpnn.Model(inp, out)
    fun.set_weights(seq.get_weights())
    x = rand(4, 8, 8, 1)
    np.testing.assert_allclose(fun.predict(x, verbose=0), seq.predict(x, verbose=0), rtol=1e-6)


def test_summary_lists_inbound_layers():
    lines, model = [], residual()
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    inp, dense = model.layers[0].name, model.layers[1].name
    assert "Connected to" in text and f"{inp}, {dense}" in text
    assert "Total params: 81" in text


@pytest.mark.parametrize(
    ("merge", "reference"),
    [
        (layers.Add, lambda a, b, c: a + b + c),
        (layers.Multiply, lambda a, b, c: a * b * c),
        (layers.Average, lambda a, b, c: (a + b + c) / 3),
        (layers.Maximum, lambda a, b, c: np.maximum(np.maximum(a, b), c)),
        (layers.Minimum, lambda a, b, c: np.minimum(np.minimum(a, b), c)),
        (lambda: layers.Concatenate(axis=1), lambda a, b, c: np.concatenate([a, b, c], 1)),
    ],
    ids=["add", "multiply", "average", "maximum", "minimum", "concatenate"],
)
def test_merge_layers_forward_and_backward(merge, reference):
    a, b, c = rand(2, 3, 4), rand(2, 3, 4, seed=1), rand(2, 3, 4, seed=2)
    layer = merge()
    np.testing.assert_allclose(layer([a, b, c]).data, reference(a, b, c), rtol=1e-6)
    check_grad(lambda x, y, z: layer([x, y, z]), [a, b, c])


def test_merge_layers_broadcast_a_size_of_one():
    out = layers.Add()([hpnn.Input((3, 4)), hpnn.Input((1, 4))])
    assert out.shape == (None, 3, 4)


def test_errors_name_the_layer_and_what_was_wrong():
    a, b = hpnn.Input((4,)), hpnn.Input((5,))
    with pytest.raises(ValueError, match=r"add.*do not match .* on axis 1"):
        layers.Add(name="add_bad")([a, b])
    with pytest.raises(ValueError, match=r"subtract.*exactly 2 inputs. Received: 3"):
        layers.Subtract()([a, a, a])
    with pytest.raises(ValueError, match="to concatenate on axis -1, the other axes must match"):
        layers.Concatenate()([hpnn.Input((2, 4)), hpnn.Input((3, 4))])
    with pytest.raises(TypeError, match=r"takes one tensor\. Received: a list of 2"):
        layers.Dense(3)([a, a])
    with pytest.raises(TypeError, match="expects a list of tensors"):
        layers.Add()(np.ones((2, 4)))
    other = hpnn.Input((4,))
    with pytest.raises(ValueError, match=r"depend on the Input .* not in inputs"):
        hpnn.Model(a, layers.add([a, other]))
    with pytest.raises(TypeError, match="inputs must be symbolic tensors"):
        hpnn.Model(np.ones(3), a)
    model = hpnn.Model(a, layers.Dense(2)(a))
    model.compile(optimizer="sgd", loss="mse")
    bad_shape = r"expected input of shape \(None, 4\).*Received: shape=\(2, 5\)"
    with pytest.raises(ValueError, match=bad_shape):
        model.predict(np.ones((2, 5), np.float32), verbose=0)


def two_inputs(seed=0):
    hpnn.utils.set_random_seed(seed)
    a, b = hpnn.Input((4,), name="a"), hpnn.Input((2,), name="b")
    out = layers.Dense(3, activation="softmax")(layers.concatenate([a, b]))
    return hpnn.Model([a, b], out)


@pytest.mark.parametrize("comm", [None, "one_rank"])
def test_several_inputs_train_as_their_concatenation(comm):
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((30, 4)), rng.standard_normal((30, 2))
    y = rng.integers(0, 3, 30)
    model = two_inputs()
    hpnn.utils.set_random_seed(0)
    flat = hpnn.Sequential([hpnn.Input((6,)), layers.Dense(3, activation="softmax")])
    flat.set_weights(model.get_weights())
    for m in (model, flat):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if comm:
        hpnn.distributed.init(hpnn.distributed.SingleProcessComm())
    try:
        ha = model.fit(
            [xa, xb], y, epochs=2, batch_size=8, validation_split=0.2, shuffle=False, verbose=0
        )
        ea = model.evaluate({"a": xa, "b": xb}, y, verbose=0)
    finally:
        hpnn.distributed.shutdown()
    hb = flat.fit(
        np.hstack([xa, xb]),
        y,
        epochs=2,
        batch_size=8,
        validation_split=0.2,
        shuffle=False,
        verbose=0,
    )
    assert ha.history.keys() == hb.history.keys()
    for k in ha.history:
        np.testing.assert_allclose(ha.history[k], hb.history[k], rtol=1e-5, err_msg=k)
    for wa, wb in zip(model.get_weights(), flat.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ea, flat.evaluate(np.hstack([xa, xb]), y, verbose=0), rtol=1e-5)
    np.testing.assert_allclose(
        model.predict([xa, xb], verbose=0), flat.predict(np.hstack([xa, xb]), verbose=0), 1e-5
    )


def test_several_inputs_bad_data_says_what_is_wrong():
    model = two_inputs()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    xa, y = np.ones((5, 4)), np.zeros(5, int)
    with pytest.raises(ValueError, match=r"x must be a list of 2 arrays.*Received: a list of 1"):
        model.fit([xa], y, verbose=0)
    with pytest.raises(ValueError, match=r"x\[1\] feeds input 'b' of shape \(None, 2\)"):
        model.fit([xa, np.ones((5, 3))], y, verbose=0)
    with pytest.raises(ValueError, match="the same number of samples"):
        model.fit([xa, np.ones((4, 2))], y, verbose=0)
    with pytest.raises(ValueError, match=r"needs the keys \['a', 'b'\]"):
        model.predict({"a": xa}, verbose=0)


def test_an_integer_input_keeps_its_ids():
    ids, feats = hpnn.Input((3,), dtype="int64", name="ids"), hpnn.Input((2,), name="feats")
    emb = layers.Flatten()(layers.Embedding(10, 2)(ids))
    model = hpnn.Model([ids, feats], layers.Dense(1)(layers.concatenate([emb, feats])))
    model.compile(optimizer="sgd", loss="mse")
    x_ids = np.array([[1, 2, 9], [0, 0, 3]])
    model.fit([x_ids, np.ones((2, 2))], np.ones((2, 1)), verbose=0)


def two_heads(seed=0):
    hpnn.utils.set_random_seed(seed)
    inp = hpnn.Input((6,))
    h = layers.Dense(8, activation="tanh")(inp)
    cls = layers.Dense(3, activation="softmax", name="cls")(h)
    reg = layers.Dense(1, name="reg")(h)
    return hpnn.Model(inp, [cls, reg])


def head_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)), rng.integers(0, 3, n), rng.standard_normal((n, 1))


def test_several_outputs_train_on_the_weighted_sum_of_their_losses():
    x, yc, yr = head_data(12)
    model = two_heads()
    model.compile(
        optimizer=hpnn.optimizers.SGD(0.1),
        loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
        loss_weights={"reg": 0.5},
    )
    weights = [Tensor(w, requires_grad=True) for w in model.get_weights()]
    w1, b1, wc, bc, wr, br = weights
    h = ops.tanh(ops.linear(Tensor(x.astype(np.float32)), w1, b1))
    ce = ops.mean(ops.sparse_softmax_cross_entropy(ops.linear(h, wc, bc), yc))
    d = ops.linear(h, wr, br) - Tensor(yr.astype(np.float32))
    total = ce + ops.mean(d * d) * 0.5
    expected = gradients(total, weights)
    logs = model.train_on_batch(x, [yc, yr], return_dict=True)
    assert logs["loss"] == pytest.approx(float(total.item()), rel=1e-6)
    assert logs["cls_loss"] == pytest.approx(float(ce.item()), rel=1e-6)
    assert logs["reg_loss"] == pytest.approx(float(ops.mean(d * d).item()), rel=1e-6)
    for got, w, g in zip(model.get_weights(), weights, expected, strict=True):
        np.testing.assert_allclose(got, w.data - 0.1 * g, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("comm", [None, "one_rank"])
def test_several_outputs_fit_evaluate_predict_and_save(comm, tmp_path):
    x, yc, yr = head_data()
    model = two_heads()
    model.compile(
        optimizer="adam",
        loss=["sparse_categorical_crossentropy", "mse"],
        loss_weights=[1.0, 0.25],
        metrics=[["accuracy"], "mae"],  # one entry per output
    )
    if comm:
        hpnn.distributed.init(hpnn.distributed.SingleProcessComm())
    try:
        history = model.fit(x, {"cls": yc, "reg": yr}, epochs=2, batch_size=8, verbose=0,
                            validation_split=0.25)  # fmt: skip
        logs = model.evaluate(x, [yc, yr], verbose=0, return_dict=True)
    finally:
        hpnn.distributed.shutdown()
    keys = ["loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"]
    assert list(history.history) == keys + [f"val_{k}" for k in keys]
    assert list(logs) == keys
    p_cls, p_reg = model.predict(x, verbose=0)
    assert p_cls.shape == (40, 3) and p_reg.shape == (40, 1)
    ce = float(hpnn.losses.sparse_categorical_crossentropy(yc, Tensor(p_cls)).data.mean())
    mse = float(((p_reg - yr) ** 2).mean())
    assert logs["cls_loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["reg_loss"] == pytest.approx(mse, rel=1e-5)
    assert logs["loss"] == pytest.approx(ce + 0.25 * mse, rel=1e-5)
    assert logs["reg_mae"] == pytest.approx(float(np.abs(p_reg - yr).mean()), rel=1e-5)
    model.save(tmp_path / "heads.hpnn")
    loaded = hpnn.models.load_model(tmp_path / "heads.hpnn")
    assert loaded.evaluate(x, [yc, yr], verbose=0, return_dict=True) == pytest.approx(logs)


def test_several_outputs_compile_and_data_errors():
    x, yc, yr = head_data(8)
    model = two_heads()
    with pytest.raises(ValueError, match=r"loss names outputs \['other'\]"):
        model.compile(optimizer="sgd", loss={"other": "mse"})
    with pytest.raises(ValueError, match="every output needs a loss"):
        model.compile(optimizer="sgd", loss={"cls": "sparse_categorical_crossentropy"})
    with pytest.raises(ValueError, match="loss_weights as a list needs one entry per output"):
        model.compile(optimizer="sgd", loss="mse", loss_weights=[1.0])
    with pytest.raises(ValueError, match="metrics must be a list with one entry"):
        model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mae", "mae"])
    model.compile(optimizer="sgd", loss=["sparse_categorical_crossentropy", "mse"])
    with pytest.raises(ValueError, match=r"y must be a list of 2 arrays, one per output"):
        model.fit(x, yc, verbose=0)
    with pytest.raises(ValueError, match=r"y\[0\] \('cls'\)"):  # labels out of range
        model.fit(x, [yc + 5, yr], verbose=0)


def test_one_output_loss_weight_scales_the_loss():
    x, yc, _ = head_data(8)
    hpnn.utils.set_random_seed(0)
    model = hpnn.Sequential([hpnn.Input((6,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    plain = model.evaluate(x, yc, verbose=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", loss_weights=2.5)
    assert model.evaluate(x, yc, verbose=0) == pytest.approx(2.5 * plain, rel=1e-6)


def test_keras_style_program_runs_with_hpnn_as_keras():
    import hpnn as keras

    inputs = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    shortcut = keras.layers.Conv2D(4, 1)(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.add([x, shortcut])
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="tiny_resnet")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x_train, y_train = rand(32, 28, 28, 1), np.arange(32) % 10
    model.fit(x_train, y_train, epochs=1, batch_size=16, verbose=0)
    assert model.predict(x_train[:2], verbose=0).shape == (2, 10)


@pytest.mark.parametrize(
    ("shapes", "axes", "normalize"),
    [([(2, 4), (2, 4)], 1, False), ([(2, 3, 4), (2, 5, 4)], 2, False),
     ([(2, 3, 4), (2, 3, 6)], (1, 1), True), ([(2, 4, 3), (2, 5, 4)], (1, 2), False)],
)  # fmt: skip
def test_dot_matches_einsum_and_its_gradients(shapes, axes, normalize):
    a, b = rand(*shapes[0]), rand(*shapes[1], seed=1)
    got = layers.Dot(axes, normalize=normalize)([a, b]).data
    x, y = a.astype(np.float64), b.astype(np.float64)
    a1, a2 = (axes, axes) if isinstance(axes, int) else axes
    if normalize:
        x = x / np.linalg.norm(x, axis=a1, keepdims=True)
        y = y / np.linalg.norm(y, axis=a2, keepdims=True)
    if x.ndim == 2:
        want = (x * y).sum(1, keepdims=True)
    else:
        want = np.einsum("bid,bjd->bij", np.moveaxis(x, a1, 2), np.moveaxis(y, a2, 2))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    layer = layers.Dot(axes, normalize=normalize)
    check_grad(lambda p, q: layer([p, q]), [a, b])
    symbolic = layers.Dot(axes)([hpnn.Input(shapes[0][1:]), hpnn.Input(shapes[1][1:])])
    assert symbolic.shape == (None, *want.shape[1:])


def test_arithmetic_on_symbolic_tensors_builds_layers(tmp_path):
    a, b = hpnn.Input((3,)), hpnn.Input((3,))
    out = (a + b) * 0.5 - b / (a + 2.0) + (1.0 - a) + (-b) * a
    model = hpnn.Model([a, b], out)
    x, y = rand(4, 3), rand(4, 3, seed=1) + 5.0
    want = (x + y) * 0.5 - y / (x + 2.0) + (1.0 - x) + (-y) * x
    np.testing.assert_allclose(model([x, y]).data, want, rtol=1e-5)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"Add", "Multiply", "Subtract", "Divide", "Rescaling"} <= kinds
    again = model_from_json(model.to_json())
    np.testing.assert_allclose(again([x, y]).data, want, rtol=1e-5)


def test_models_built_from_another_models_tensors_share_its_layers():
    hpnn.utils.set_random_seed(0)
    inp = hpnn.Input((6, 6, 1))
    conv = layers.Conv2D(2, 3, activation="relu", name="conv")(inp)
    out = layers.Dense(3)(layers.Flatten()(conv))
    model = hpnn.Model(inp, out)
    assert model.inputs == [inp] and model.input is inp and model.output is out
    assert model.get_layer("conv").output is conv and model.get_layer("conv").input is inp
    grad_model = hpnn.Model(model.inputs, [model.get_layer("conv").output, model.output])
    x = np.random.default_rng(0).random((2, 6, 6, 1), dtype=np.float32)
    maps, logits = grad_model.predict(x, verbose=0)
    np.testing.assert_array_equal(logits, model.predict(x, verbose=0))
    np.testing.assert_array_equal(maps, model.get_layer("conv")(x).data)
    model.get_layer("conv").kernel.data += 1.0  # one set of weights: both see the change
    np.testing.assert_array_equal(grad_model.predict(x, verbose=0)[1], model.predict(x, verbose=0))


def test_sequential_inputs_outputs_and_layer_outputs():
    seq = hpnn.Sequential([hpnn.Input((5,)), layers.Dense(4, name="h"), layers.Dense(2)])
    extractor = hpnn.Model(seq.inputs, [layer.output for layer in seq.layers])
    x = np.ones((3, 5), "float32")
    hidden, out = extractor.predict(x, verbose=0)
    assert hidden.shape == (3, 4)
    np.testing.assert_array_equal(out, seq.predict(x, verbose=0))
    assert seq.layers[1].input is seq.layers[0].output and seq.output is seq.outputs[0]
    lazy = hpnn.Sequential([layers.Dense(3)])
    with pytest.raises(AttributeError, match="has no inputs yet"):
        lazy.inputs
    lazy.predict(np.ones((2, 7), "float32"), verbose=0)  # built from data: now it has one
    assert lazy.inputs[0].shape == (None, 7) and lazy.output.shape == (None, 3)
    popped = seq.pop()
    with pytest.raises(AttributeError, match="never been called"):
        popped.output


def test_a_layer_called_twice_has_an_ambiguous_output():
    shared = layers.Dense(2, name="shared")
    a, b = hpnn.Input((3,)), hpnn.Input((3,))
    ya, yb = shared(a), shared(b)
    assert ya is not yb
    with pytest.raises(AttributeError, match="called 2 times"):
        shared.output


def test_a_list_of_one_input_takes_an_array_or_a_list_of_one():
    inp = hpnn.Input((4,))
    model = hpnn.Model([inp], hpnn.layers.Dense(2)(inp))
    x = np.ones((3, 4), np.float32)
    a = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict([x], verbose=0), a)
    np.testing.assert_array_equal(model([x]).data, a)
    model.compile(optimizer="sgd", loss="mse")
    model.fit([x], np.zeros((3, 2), np.float32), verbose=0)
    model.fit(x, np.zeros((3, 2), np.float32), verbose=0)
