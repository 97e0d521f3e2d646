"""hpnn.export.to_onnx: every exportable layer passes the ONNX checker and matches onnxruntime."""

import numpy as np
import pytest

import hpnn
from hpnn import Input, Sequential, layers
from hpnn.cli import build_model
from hpnn.export import supported_layers, to_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RTOL = 1e-5


def randomize(model, seed=0):
    """Random weights everywhere (biases and BN statistics too), variances positive."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(0, 0.5, w.shape).astype(np.float32)
        if "variance" in w.name:
            value = np.abs(value) + 0.5
        w.assign(value)
    return model


def run_onnx(model, x, tmp_path, opset=17):
    path = tmp_path / "model.onnx"
    proto = to_onnx(model, path, opset=opset)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert proto.opset_import[0].version == opset
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def assert_matches(model, x, tmp_path, opset=17):
    got = run_onnx(model, x, tmp_path, opset)
    want = model.predict(x, verbose=0)
    assert got.shape == want.shape
    # 1e-5 relative to the output's scale (elementwise relative error blows up near 0)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * float(np.abs(want).max()))


def images(n=3, h=9, w=9, c=3, seed=1):
    return np.random.default_rng(seed).normal(size=(n, h, w, c)).astype(np.float32)


def seqs(n=3, t=6, f=4, seed=2):
    return np.random.default_rng(seed).normal(size=(n, t, f)).astype(np.float32)


# -- each model: (builder, input) ------------------------------------------------------------
CASES = {
    "mlp": (
        lambda: [
            Input(shape=(6,)),
            layers.Normalization(mean=[0.5] * 6, variance=[2.0, 1, 3, 1, 0.5, 4]),
            layers.Dense(5, activation="relu", activity_regularizer="l2"),
            layers.Dropout(0.5),
            layers.ActivityRegularization(l1=0.01),
            layers.Dense(4, activation="softmax"),
        ],
        lambda: seqs()[:, 0, :].repeat(2, axis=1)[:, :6],
    ),
    "dense_on_sequences": (lambda: [Input(shape=(6, 4)), layers.Dense(3, use_bias=False)], seqs),
    "reference_cnn": (lambda: build_model("cnn"), lambda: images(2, 28, 28, 1)),
    "conv_same_stride2": (
        lambda: [
            Input(shape=(9, 9, 3)),
            layers.Conv2D(4, 3, strides=2, padding="same", activation="tanh"),
            layers.Conv2D(5, (2, 3), padding="valid", use_bias=False),
            layers.Flatten(),
            layers.Dense(3),
        ],
        images,
    ),
    "conv_same_even_kernel": (
        lambda: [
            Input(shape=(8, 7, 3)),
            layers.Conv2D(2, (4, 2), strides=(3, 2), padding="same"),
            layers.Activation("sigmoid"),
        ],
        lambda: images(2, 8, 7, 3),
    ),
    "augmentation_is_identity": (
        lambda: [
            Input(shape=(9, 9, 3)),
            layers.RandomFlip(),
            layers.RandomTranslation(0.1, 0.1),
            layers.RandomRotation(0.1),
            layers.RandomZoom(0.1),
            layers.RandomContrast(0.1),
            layers.GaussianNoise(0.1),
            layers.Conv2D(2, 3),
        ],
        images,
    ),
    "pools_2d": (
        lambda: [
            Input(shape=(9, 9, 3)),
            layers.MaxPooling2D((3, 3), strides=2, padding="same"),
            layers.AveragePooling2D(2, padding="same"),
            layers.AveragePooling2D(2, strides=1),
        ],
        images,
    ),
    "max_pool_valid_overlap": (
        lambda: [Input(shape=(9, 9, 3)), layers.MaxPooling2D(3, strides=2)],
        images,
    ),
    "global_pools_2d": (
        lambda: [
            Input(shape=(9, 9, 3)),
            layers.Conv2D(4, 3),
            layers.GlobalMaxPooling2D(keepdims=True),
            layers.GlobalAveragePooling2D(),
        ],
        images,
    ),
    "batch_norm_conv": (
        lambda: [
            Input(shape=(9, 9, 3)),
            layers.Conv2D(4, 3),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Flatten(),
            layers.BatchNormalization(epsilon=0.01),
        ],
        images,
    ),
    "batch_norm_sequence_and_axis": (
        lambda: [
            Input(shape=(6, 4)),
            layers.BatchNormalization(),
            layers.BatchNormalization(axis=1, center=False),
        ],
        seqs,
    ),
    "layer_norm": (
        lambda: [
            Input(shape=(6, 4)),
            layers.LayerNormalization(),
            layers.LayerNormalization(axis=[1, 2], scale=False),
            layers.LayerNormalization(axis=1),
        ],
        seqs,
    ),
    "conv1d_pools_1d": (
        lambda: [
            Input(shape=(10, 4)),
            layers.Conv1D(5, 3, padding="causal", activation="elu"),
            layers.SpatialDropout1D(0.2),
            layers.Conv1D(5, 3, padding="causal", dilation_rate=2),
            layers.Conv1D(5, 2, padding="same", dilation_rate=3),
            layers.Conv1D(4, 4, strides=2, padding="same"),
            layers.MaxPooling1D(2, padding="same"),
            layers.AveragePooling1D(2, strides=1),
            layers.GlobalAveragePooling1D(),
        ],
        lambda: seqs(3, 10, 4),
    ),
    "conv1d_global_max": (
        lambda: [
            Input(shape=(10, 4)),
            layers.Conv1D(3, 3),
            layers.GlobalMaxPooling1D(keepdims=True),
            layers.Flatten(),
        ],
        lambda: seqs(3, 10, 4),
    ),
    "reshaping": (
        lambda: [
            Input(shape=(6, 4)),
            layers.Reshape((4, -1)),
            layers.Permute((2, 1)),
            layers.Flatten(),
            layers.Dense(5),
            layers.RepeatVector(3),
            layers.TimeDistributed(layers.Dense(2, activation="leaky_relu")),
        ],
        seqs,
    ),
    "time_distributed_conv": (
        lambda: [
            Input(shape=(4, 6, 6, 2)),
            layers.TimeDistributed(layers.Conv2D(3, 3)),
            layers.TimeDistributed(layers.Flatten()),
        ],
        lambda: images(6, 4, 6, 6 * 2).reshape(3, 2 * 4, 6, 6, 2)[:, :4],
    ),
    "activations": (
        lambda: [
            Input(shape=(6, 4)),
            layers.Activation("softplus"),
            layers.Activation("elu"),
            layers.Activation("tanh"),
            layers.Activation("linear"),
            layers.Activation("log_softmax"),
        ],
        seqs,
    ),
    "simple_rnn": (
        lambda: [
            Input(shape=(6, 4)),
            layers.SimpleRNN(5, return_sequences=True),
            layers.SimpleRNN(3, activation="relu"),
        ],
        seqs,
    ),
    "lstm": (
        lambda: [
            Input(shape=(6, 4)),
            layers.LSTM(5, return_sequences=True),
            layers.LSTM(3, go_backwards=True),
        ],
        seqs,
    ),
    "lstm_backwards_sequences": (
        lambda: [Input(shape=(6, 4)), layers.LSTM(5, return_sequences=True, go_backwards=True)],
        seqs,
    ),
    "lstm_hard_sigmoid_linear": (
        lambda: [
            Input(shape=(6, 4)),
            layers.LSTM(3, activation="linear", recurrent_activation="hard_sigmoid"),
        ],
        seqs,
    ),
    "recurrent_mixed_activations": (
        lambda: [
            Input(shape=(6, 4)),
            layers.GRU(3, activation="linear", return_sequences=True),
            layers.LSTM(3, recurrent_activation="hard_sigmoid", return_sequences=True),
            layers.SimpleRNN(2, activation="linear"),
        ],
        seqs,
    ),
    "gru": (
        lambda: [
            Input(shape=(6, 4)),
            layers.GRU(5, return_sequences=True),
            layers.GRU(3, reset_after=False, go_backwards=True),
        ],
        seqs,
    ),
    "bidirectional": (
        lambda: [
            Input(shape=(6, 4)),
            layers.Bidirectional(layers.LSTM(3, return_sequences=True)),
            layers.Bidirectional(layers.GRU(2, return_sequences=True), merge_mode="ave"),
            layers.Bidirectional(layers.SimpleRNN(2), merge_mode="sum"),
            layers.Dense(2, activation="softmax"),
        ],
        seqs,
    ),
    "bidirectional_mul": (
        lambda: [Input(shape=(6, 4)), layers.Bidirectional(layers.GRU(3), merge_mode="mul")],
        seqs,
    ),
    "embedding": (
        lambda: [
            Input(shape=(5,), dtype="int64"),
            layers.Embedding(7, 3),
            layers.LSTM(4),
            layers.Dense(2),
        ],
        lambda: np.random.default_rng(3).integers(0, 7, (3, 5)),
    ),
}


def _residual():
    """A functional model: branches joined by every merge layer, in both layouts."""
    inp = Input(shape=(9, 9, 3))
    x = layers.Conv2D(4, 3, activation="relu")(inp)  # channels-first in ONNX from here
    s = layers.Conv2D(4, 1)(x)
    x = layers.add([layers.Conv2D(4, 3, padding="same")(x), s])
    x = layers.concatenate([x, s])  # the channel axis of a channels-first tensor
    x = layers.Maximum()([layers.MaxPooling2D()(x), layers.AveragePooling2D()(x)])
    x = layers.Minimum()([x, layers.Activation("tanh")(x)])
    flat = layers.Flatten()(x)
    d1, d2 = layers.Dense(5)(flat), layers.Dense(5, activation="relu")(flat)
    mixed = layers.concatenate(
        [layers.subtract([d1, d2]), layers.multiply([d1, d2, d1]), layers.average([d1, d2])]
    )
    return hpnn.Model(inp, layers.Dense(3, activation="softmax")(mixed))


CASES["activation_layers"] = (
    lambda: [
        Input(shape=(9, 9, 3)),
        layers.Conv2D(4, 3, activation="gelu"),
        layers.ReLU(max_value=0.8, negative_slope=0.1, threshold=0.05),
        layers.Conv2D(4, 1, activation="silu"),
        layers.PReLU(shared_axes=[1, 2]),
        layers.GroupNormalization(groups=2),
        layers.LeakyReLU(0.25),
        layers.Conv2D(4, 1, activation="mish"),
        layers.ELU(0.7),
        layers.GaussianDropout(0.3),
        layers.Identity(),
        layers.Softmax(axis=2),
    ],
    images,
)
CASES["more_activations"] = (
    lambda: [
        Input(shape=(6, 4)),
        layers.Dense(5, activation="selu"),
        layers.Dense(5, activation="relu6"),
        layers.Dense(5, activation="softsign"),
        layers.Dense(5, activation="hard_sigmoid"),
        layers.Dense(5, activation="hard_silu"),
        layers.UnitNormalization(axis=[1, 2]),
        layers.Dense(3, activation="exponential"),
    ],
    seqs,
)
CASES["depthwise_separable"] = (
    lambda: [
        Input(shape=(9, 9, 3)),
        layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
        layers.DepthwiseConv2D((3, 2), strides=2, dilation_rate=1),
        layers.SeparableConv2D(5, 3, depth_multiplier=2, padding="same", activation="tanh"),
        layers.SeparableConv2D(4, 2, use_bias=False, dilation_rate=2),
    ],
    images,
)
CASES["resizing_and_cropping"] = (
    lambda: [
        Input(shape=(9, 9, 3)),
        layers.Resizing(12, 7),
        layers.Conv2D(4, 3),  # channels-first from here
        layers.Resizing(6, 6, interpolation="nearest", crop_to_aspect_ratio=True),
        layers.CenterCrop(4, 3),
        layers.Flatten(),
        layers.Dense(2),
    ],
    images,
)
CASES["functional"] = (_residual, images)


def _attention():
    """A transformer-style block: causal attention, Dot, Divide and Rescaling nodes."""
    inp = Input(shape=(6, 8))
    h = layers.LayerNormalization()(
        inp + layers.MultiHeadAttention(2, 4, value_dim=3)(inp, inp, use_causal_mask=True)
    )
    cross = layers.MultiHeadAttention(1, 5)(h, inp, inp)
    h = h / (layers.Dense(8, activation="softplus")(cross) + 1.0)
    scores = layers.Flatten()(layers.Dot(axes=2)([h, layers.Dense(8)(h)]))
    pooled = layers.GlobalAveragePooling1D()(h)
    similarity = layers.Dot(axes=1, normalize=True)([pooled, layers.Dense(8)(pooled)])
    return hpnn.Model(inp, layers.Dense(3)(layers.concatenate([scores, similarity])))


CASES["attention"] = (_attention, lambda: seqs(3, 6, 8))


def _luong_attention():
    """Attention (dot with a scale, causal; concat) and AdditiveAttention in one graph."""
    inp = Input(shape=(6, 8))
    key = layers.Dense(8)(inp)
    dot = layers.Attention(use_scale=True)([inp, inp, key], use_causal_mask=True)
    concat = layers.Attention(score_mode="concat", use_scale=True)([dot, inp])
    additive = layers.AdditiveAttention()([concat, key])
    plain = layers.AdditiveAttention(use_scale=False)([additive, inp], use_causal_mask=True)
    return hpnn.Model(inp, layers.Dense(3)(layers.GlobalAveragePooling1D()(plain)))


CASES["luong_attention"] = (_luong_attention, lambda: seqs(3, 6, 8))
CASES["image_layers"] = (
    lambda: [
        Input(shape=(9, 9, 3)),
        layers.Rescaling(0.5, offset=-1.0),
        layers.Normalization(axis=(2, 3), mean=0.1, variance=2.0),
        layers.Normalization(invert=True, mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0]),
        layers.SpatialDropout2D(0.3),
        layers.Conv2D(3, 3, padding="same", dilation_rate=(2, 1)),
        layers.ZeroPadding2D(((1, 2), (0, 1))),
        layers.Conv2D(4, 3, activation="relu"),  # channels-first in ONNX from here
        layers.Cropping2D(((1, 0), (2, 1))),
        layers.UpSampling2D((2, 3)),
        layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(2, 2, strides=3),  # kernel smaller than the stride
        layers.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1),
        layers.ZeroPadding2D(1),
        layers.Cropping2D(1),
        layers.Flatten(),
        layers.Dense(3),
    ],
    images,
)


def _model(build):
    built = build()
    return built if isinstance(built, hpnn.Model) else Sequential(built)


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_matches_onnxruntime(case, tmp_path):
    build, data = CASES[case]
    model = randomize(_model(build))
    assert_matches(model, data(), tmp_path)


def test_every_layer_type_has_a_case():
    """The cases above exercise every converter (so a new converter needs a case)."""
    used = set()
    for build, _ in CASES.values():
        for layer in _model(build).layers:  # (a functional model's include its Inputs)
            used.add(type(layer).__name__)
            inner = getattr(layer, "layer", None) or getattr(layer, "forward_layer", None)
            if inner is not None:
                used.add(type(inner).__name__)
    assert set(supported_layers()) <= used


def test_reference_cnn_uses_two_transposes_and_a_newer_opset(tmp_path):
    model = randomize(build_model("cnn"))
    proto = to_onnx(model, opset=18)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Transpose") == 2  # NHWC -> NCHW after the input, back before Flatten
    assert_matches(model, images(2, 28, 28, 1), tmp_path, opset=18)


def test_layer_norm_decomposition_under_opset_18(tmp_path):
    model = randomize(Sequential([Input(shape=(6, 4)), layers.LayerNormalization(axis=1)]))
    assert_matches(model, seqs(), tmp_path, opset=18)


class Doubler(layers.Layer):
    def call(self, x, training=False):
        return x * 2.0


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: [Input(shape=(4,)), layers.Dense(3), Doubler(name="doubler")],
            r"layer 'doubler' \(Doubler\) cannot be exported.*Supported layers: .*Dense",
        ),
        (
            lambda: [Input(shape=(4,)), layers.Dense(3, activation=lambda x: x, name="odd")],
            r"layer 'odd' \(Dense\) cannot be exported \(custom activation",
        ),
        (
            lambda: [Input(shape=(6, 4)), layers.LSTM(3, return_state=True, name="st")],
            r"layer 'st' \(LSTM\) cannot be exported \(return_state=True",
        ),
        (
            lambda: [
                Input(shape=(5,)),
                layers.Embedding(7, 3, mask_zero=True, name="emb"),
                layers.LSTM(2),
            ],
            r"layer 'emb' \(Embedding\) cannot be exported \(mask_zero=True",
        ),
    ],
)
def test_unsupported_layers_raise_naming_the_layer(build, match):
    with pytest.raises(ValueError, match=match):
        to_onnx(Sequential(build()))


def test_unbuilt_and_empty_models_raise():
    with pytest.raises(ValueError, match="not built"):
        to_onnx(Sequential([layers.Dense(2)]))
    with pytest.raises(ValueError, match="opset must be an int >= 17"):
        to_onnx(Sequential([Input(shape=(3,)), layers.Dense(2)]), opset=13)


def test_cli_exports_a_saved_model(tmp_path, capsys):
    from hpnn.export import cli_main

    model = randomize(build_model("cnn"))
    saved = tmp_path / "cnn.hpnn"
    try:
        model.save(saved)
    except (NotImplementedError, ImportError) as e:  # saving is optional for this test
        pytest.skip(f"model.save is not available: {e}")
    out = tmp_path / "cnn.onnx"
    assert cli_main([str(saved), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = images(2, 28, 28, 1)
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], want, rtol=RTOL, atol=1e-6)
    assert cli_main([str(tmp_path / "missing.hpnn"), str(out)]) == 2


def test_functional_with_two_inputs_and_two_outputs(tmp_path):
    a, b = Input(shape=(4,), name="a"), Input(shape=(3,), name="b")
    h = layers.Dense(5, activation="relu")(layers.concatenate([a, b]))
    model = randomize(hpnn.Model([a, b], [layers.Dense(2)(h), layers.Dense(1)(a)]))
    path = tmp_path / "two.onnx"
    to_onnx(model, path)
    xa, xb = images(2, 1, 1, 4)[:, 0, 0], images(2, 1, 1, 3, seed=2)[:, 0, 0]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["output_0", "output_1"], {"a": xa, "b": xb})
    want = [t.data for t in model([xa, xb])]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize("case", ["activation_layers", "more_activations", "luong_attention"])
def test_reductions_under_opset_18(case, tmp_path):
    build, data = CASES[case]
    assert_matches(randomize(_model(build)), data(), tmp_path, opset=18)
