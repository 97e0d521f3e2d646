"""Tests for hpnn.losses against NumPy formulas (Keras semantics) and PyTorch."""

import numpy as np
import pytest

import hpnn
from hpnn import losses
from hpnn.engine import Tensor, no_grad, ops
from hpnn.testing import check_grad

EPS = 1e-7


@pytest.fixture
def float64():
    old = hpnn.backend.floatx()
    hpnn.backend.set_floatx("float64")
    yield
    hpnn.backend.set_floatx(old)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))  # no overflow for large |z|


def onehot(labels, n):
    return np.eye(n)[labels]


# Keras 3 formulas, written out in NumPy.
def ref_cce(t, p):
    p = p / p.sum(axis=-1, keepdims=True)
    p = np.clip(p, EPS, 1 - EPS)
    return -(t * np.log(p)).sum(axis=-1)


def ref_scce(labels, p):
    p = p / p.sum(axis=-1, keepdims=True)
    p = np.clip(p, EPS, 1 - EPS)
    return -np.log(p[np.arange(len(labels)), labels])


def ref_bce(t, p):
    p = np.clip(p, EPS, 1 - EPS)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=-1)


def ref_bce_logits(t, z):
    return (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean(axis=-1)


@pytest.fixture
def data(rng):
    n, c = 6, 4
    logits = rng.standard_normal((n, c)) * 2
    labels = rng.integers(0, c, n)
    return {
        "logits": logits,
        "labels": labels,
        "onehot": onehot(labels, c),
        "probs": np_softmax(logits),
        "bin_t": rng.integers(0, 2, (n, 3)).astype(np.float64),
        "bin_z": rng.standard_normal((n, 3)) * 3,
        "reg_t": rng.standard_normal((n, 3)),
        "reg_p": rng.standard_normal((n, 3)),
    }


def _cases(d):
    return [
        (
            losses.categorical_crossentropy,
            losses.CategoricalCrossentropy(),
            d["onehot"],
            d["probs"],
            ref_cce(d["onehot"], d["probs"]),
        ),
        (
            losses.sparse_categorical_crossentropy,
            losses.SparseCategoricalCrossentropy(),
            d["labels"],
            d["probs"],
            ref_scce(d["labels"], d["probs"]),
        ),
        (
            losses.binary_crossentropy,
            losses.BinaryCrossentropy(),
            d["bin_t"],
            np_sigmoid(d["bin_z"]),
            ref_bce(d["bin_t"], np_sigmoid(d["bin_z"])),
        ),
        (
            losses.mean_squared_error,
            losses.MeanSquaredError(),
            d["reg_t"],
            d["reg_p"],
            ((d["reg_p"] - d["reg_t"]) ** 2).mean(axis=-1),
        ),
        (
            losses.mean_absolute_error,
            losses.MeanAbsoluteError(),
            d["reg_t"],
            d["reg_p"],
            np.abs(d["reg_p"] - d["reg_t"]).mean(axis=-1),
        ),
    ]


CASE_IDS = ["cce", "scce", "bce", "mse", "mae"]


@pytest.mark.parametrize("i", range(5), ids=CASE_IDS)
def test_function_form_is_per_sample(data, i):
    fn, _, t, p, expected = _cases(data)[i]
    out = fn(t, Tensor(p.astype(np.float32)))
    assert out.shape == (len(t),)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("i", range(5), ids=CASE_IDS)
def test_class_form_is_the_mean(data, i):
    _, obj, t, p, expected = _cases(data)[i]
    out = obj(t, Tensor(p.astype(np.float32)))
    assert out.shape == ()
    np.testing.assert_allclose(out.item(), expected.mean(), rtol=1e-5)


@pytest.mark.parametrize("i", range(5), ids=CASE_IDS)
def test_reductions_and_sample_weight(data, i):
    _, obj, t, p, expected = _cases(data)[i]
    p = Tensor(p.astype(np.float32))
    cls = type(obj)
    np.testing.assert_allclose(cls(reduction="sum")(t, p).item(), expected.sum(), rtol=1e-5)
    np.testing.assert_allclose(cls(reduction="none")(t, p).numpy(), expected, rtol=1e-5)
    w = np.linspace(0, 2, len(t))
    np.testing.assert_allclose(obj(t, p, sample_weight=w).item(), (expected * w).mean(), rtol=1e-5)


def test_aliases_and_get(data):
    assert losses.mse is losses.mean_squared_error
    assert losses.mae is losses.mean_absolute_error
    for name, cls in [
        ("categorical_crossentropy", losses.CategoricalCrossentropy),
        ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
        ("binary_crossentropy", losses.BinaryCrossentropy),
        ("mse", losses.MeanSquaredError),
        ("mean_absolute_error", losses.MeanAbsoluteError),
        ("CategoricalCrossentropy", losses.CategoricalCrossentropy),
    ]:
        assert isinstance(losses.get(name), cls)
    assert isinstance(losses.get(losses.categorical_crossentropy), losses.CategoricalCrossentropy)
    with pytest.raises(ValueError, match=r"Unknown loss.*Received: loss='msee'"):
        losses.get("msee")


def test_sparse_labels_of_shape_n_by_1(data):
    a = losses.sparse_categorical_crossentropy(data["labels"][:, None], Tensor(data["probs"]))
    b = losses.sparse_categorical_crossentropy(data["labels"], Tensor(data["probs"]))
    np.testing.assert_allclose(a.numpy(), b.numpy())


# -- from_logits --------------------------------------------------------------------------


def test_from_logits(data):
    z = data["logits"]
    lse = np.log(np.exp(z).sum(axis=-1))
    expected = lse - z[np.arange(len(z)), data["labels"]]
    zt = Tensor(z.astype(np.float32))
    got = losses.categorical_crossentropy(data["onehot"], zt, from_logits=True)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    got = losses.sparse_categorical_crossentropy(data["labels"], zt, from_logits=True)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    got = losses.CategoricalCrossentropy(from_logits=True)(data["onehot"], zt)
    np.testing.assert_allclose(got.item(), expected.mean(), rtol=1e-5)
    got = losses.SparseCategoricalCrossentropy(from_logits=True)(data["labels"], zt)
    np.testing.assert_allclose(got.item(), expected.mean(), rtol=1e-5)


def test_binary_from_logits(data):
    t, z = data["bin_t"], data["bin_z"]
    expected = ref_bce_logits(t, z)
    got = losses.binary_crossentropy(t, Tensor(z.astype(np.float32)), from_logits=True)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    got = losses.BinaryCrossentropy(from_logits=True)(t, Tensor(z.astype(np.float32)))
    np.testing.assert_allclose(got.item(), expected.mean(), rtol=1e-5)
    # and it agrees with the probability form where nothing is clipped
    np.testing.assert_allclose(expected, ref_bce(t, np_sigmoid(z)), rtol=1e-6)


def test_binary_targets_of_shape_n(rng):
    t = rng.integers(0, 2, 5).astype(np.float64)
    p = rng.uniform(0.1, 0.9, (5, 1))
    got = losses.binary_crossentropy(t, Tensor(p))
    np.testing.assert_allclose(got.numpy(), ref_bce(t[:, None], p), rtol=1e-6)


def test_label_smoothing(data):
    t, p = data["onehot"], data["probs"]
    ts = t * 0.9 + 0.1 / t.shape[-1]
    got = losses.categorical_crossentropy(t, Tensor(p), label_smoothing=0.1)
    np.testing.assert_allclose(got.numpy(), ref_cce(ts, p), rtol=1e-5)
    bt, bz = data["bin_t"], data["bin_z"]
    got = losses.binary_crossentropy(bt, Tensor(bz), from_logits=True, label_smoothing=0.2)
    np.testing.assert_allclose(got.numpy(), ref_bce_logits(bt * 0.8 + 0.1, bz), rtol=1e-5)


# -- stability and clipping -------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True])
def test_softmax_output_with_huge_logits_is_finite(sparse):
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0], [0.0, 0.0, 1000.0]], np.float32)
    labels = np.array([1, 0, 2])  # the first two are confidently wrong
    t = onehot(labels, 3)
    logits = Tensor(z, requires_grad=True)
    p = ops.softmax(logits)
    assert (p.numpy() == 0).any()  # probabilities really underflow
    loss = (losses.SparseCategoricalCrossentropy() if sparse else losses.CategoricalCrossentropy())(
        labels if sparse else t, p
    )
    # exact loss from the logits, not -log(1e-7): 2000, 2000 - ..., ~0
    z64 = z.astype(np.float64)
    lse = np.log(np.exp(z64 - z64.max(1, keepdims=True)).sum(1)) + z64.max(1)
    expected = (lse - z64[np.arange(3), labels]).mean()
    assert np.isfinite(loss.item())
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)
    loss.backward()
    assert np.all(np.isfinite(logits.grad))
    np.testing.assert_allclose(logits.grad, (np_softmax(z64) - t) / 3, atol=1e-6)


def test_sigmoid_output_with_huge_logits_is_finite():
    z = np.array([[1000.0], [-1000.0], [30.0]], np.float32)
    t = np.array([[0.0], [1.0], [1.0]])
    logits = Tensor(z, requires_grad=True)
    loss = losses.BinaryCrossentropy()(t, ops.sigmoid(logits))
    np.testing.assert_allclose(
        loss.item(), ref_bce_logits(t, z.astype(np.float64)).mean(), rtol=1e-5
    )
    loss.backward()
    np.testing.assert_allclose(logits.grad, (np_sigmoid(z.astype(np.float64)) - t) / 3, atol=1e-6)


def test_probabilities_given_directly_are_clipped_like_keras():
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    t = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    got = losses.categorical_crossentropy(t, Tensor(p)).numpy()
    np.testing.assert_allclose(got, [-np.log(EPS), -np.log(np.float32(1 - EPS))], rtol=1e-4)
    got = losses.sparse_categorical_crossentropy(np.array([1, 1]), Tensor(p)).numpy()
    np.testing.assert_allclose(got, [-np.log(EPS), -np.log(np.float32(1 - EPS))], rtol=1e-4)
    got = losses.binary_crossentropy(np.array([[1.0], [0.0]]), Tensor([[0.0], [0.0]])).numpy()
    np.testing.assert_allclose(
        got, [-np.log(EPS), -np.log(np.float32(1 - EPS))], rtol=1e-4, atol=1e-6
    )
    # a softmax computed outside hpnn is not recognised: it is clipped too
    z = np.array([[1000.0, -1000.0]])
    got = losses.categorical_crossentropy([[0.0, 1.0]], Tensor(np_softmax(z))).item()
    np.testing.assert_allclose(got, -np.log(EPS), rtol=1e-4)


def test_categorical_crossentropy_renormalises_probabilities():
    p = np.array([[2.0, 6.0]])  # sums to 8: Keras divides by the sum first
    got = losses.categorical_crossentropy([[0.0, 1.0]], Tensor(p)).item()
    np.testing.assert_allclose(got, -np.log(0.75), rtol=1e-6)


# -- gradients ---------------------------------------------------------------------------


def test_gradcheck_losses_float64(float64, data):
    d = data
    check_grad(
        lambda p: losses.categorical_crossentropy(d["onehot"], p), [np.abs(d["probs"]) + 0.1]
    )
    check_grad(
        lambda z: losses.categorical_crossentropy(d["onehot"], ops.softmax(z)), [d["logits"]]
    )
    check_grad(
        lambda z: losses.CategoricalCrossentropy(from_logits=True)(d["onehot"], z), [d["logits"]]
    )
    check_grad(
        lambda z: losses.sparse_categorical_crossentropy(d["labels"], ops.softmax(z)), [d["logits"]]
    )
    check_grad(
        lambda p: losses.sparse_categorical_crossentropy(d["labels"], p), [np.abs(d["probs"]) + 0.1]
    )
    check_grad(lambda z: losses.binary_crossentropy(d["bin_t"], ops.sigmoid(z)), [d["bin_z"]])
    check_grad(lambda z: losses.binary_crossentropy(d["bin_t"], z, from_logits=True), [d["bin_z"]])
    check_grad(lambda p: losses.binary_crossentropy(d["bin_t"], p), [np_sigmoid(d["bin_z"])])
    check_grad(lambda p: losses.MeanSquaredError()(d["reg_t"], p), [d["reg_p"]])
    check_grad(lambda p: losses.mean_absolute_error(d["reg_t"], p), [d["reg_p"]])


def test_loss_dtype_follows_predictions_in_float64(float64, data):
    out = losses.categorical_crossentropy(data["onehot"], Tensor(data["probs"]))
    assert out.dtype == np.float64


# -- PyTorch --------------------------------------------------------------------------


def test_against_torch_cross_entropy(data):
    torch = pytest.importorskip("torch")
    z = data["logits"].astype(np.float32)
    expected = torch.nn.functional.cross_entropy(
        torch.tensor(z), torch.tensor(data["labels"]), reduction="none"
    ).numpy()
    got = losses.sparse_categorical_crossentropy(data["labels"], ops.softmax(Tensor(z)))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    got = losses.categorical_crossentropy(data["onehot"], Tensor(z), from_logits=True)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    # gradients of the mean
    zt = torch.tensor(z, requires_grad=True)
    torch.nn.functional.cross_entropy(zt, torch.tensor(data["labels"])).backward()
    mine = Tensor(z, requires_grad=True)
    losses.CategoricalCrossentropy()(data["onehot"], ops.softmax(mine)).backward()
    np.testing.assert_allclose(mine.grad, zt.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_against_torch_bce_with_logits(data):
    torch = pytest.importorskip("torch")
    t = data["bin_t"].astype(np.float32)
    z = data["bin_z"].astype(np.float32)
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(zt, torch.tensor(t))
    ref.backward()
    mine = Tensor(z, requires_grad=True)
    got = losses.BinaryCrossentropy(from_logits=True)(t, mine)
    got.backward()
    np.testing.assert_allclose(got.item(), ref.item(), rtol=1e-5)
    np.testing.assert_allclose(mine.grad, zt.grad.numpy(), rtol=1e-5, atol=1e-7)
    # the sigmoid-output form goes through the logits too
    p = losses.BinaryCrossentropy()(t, ops.sigmoid(Tensor(z)))
    np.testing.assert_allclose(p.item(), ref.item(), rtol=1e-5)


@pytest.mark.parametrize("how", ["no_grad", "no_requires_grad"])
def test_softmax_output_without_a_graph_still_gives_the_exact_loss(how):
    z = np.array([[1000.0, 0.0, -1000.0]], np.float32)
    if how == "no_grad":
        with no_grad():
            p = ops.softmax(Tensor(z, requires_grad=True))
    else:
        p = ops.softmax(Tensor(z))
    got = losses.sparse_categorical_crossentropy([2], p).numpy()
    np.testing.assert_allclose(got, [2000.0], rtol=1e-6)


# -- regression, divergence and hinge losses: Keras 3's formulas in NumPy ----------------------
def _np_losses():
    eps = EPS

    def huber(t, p, delta=1.0):
        e = np.abs(p - t)
        return np.where(e <= delta, 0.5 * e**2, delta * e - 0.5 * delta**2).mean(-1)

    def kld(t, p):
        t, p = np.clip(t, eps, 1), np.clip(p, eps, 1)
        return (t * np.log(t / p)).sum(-1)

    def cos(t, p):
        unit = lambda v: v / np.maximum(np.sqrt((v * v).sum(-1, keepdims=True)), eps)  # noqa: E731
        return -(unit(t) * unit(p)).sum(-1)

    def hinge_t(t):
        return 2 * t - 1 if np.all((t == 0) | (t == 1)) else t

    return {
        "huber": huber,
        "kl_divergence": kld,
        "poisson": lambda t, p: (p - t * np.log(p + eps)).mean(-1),
        "log_cosh": lambda t, p: np.log(np.cosh(p - t)).mean(-1),
        "cosine_similarity": cos,
        "mape": lambda t, p: 100 * (np.abs(t - p) / np.maximum(np.abs(t), eps)).mean(-1),
        "msle": lambda t, p: (
            (np.log(np.maximum(p, eps) + 1) - np.log(np.maximum(t, eps) + 1)) ** 2
        ).mean(-1),
        "hinge": lambda t, p: np.maximum(1 - hinge_t(t) * p, 0).mean(-1),
        "squared_hinge": lambda t, p: (np.maximum(1 - hinge_t(t) * p, 0) ** 2).mean(-1),
        "categorical_hinge": lambda t, p: np.maximum(
            ((1 - t) * p).max(-1) - (t * p).sum(-1) + 1, 0
        ),
    }


NP_LOSSES = _np_losses()


def _pair(name, rng):
    """Targets and predictions in each loss's domain, away from kinks."""
    shape = (5, 4)
    if name in ("kl_divergence", "poisson"):
        t = rng.dirichlet(np.ones(4), 5)
        return t, rng.dirichlet(np.ones(4), 5)
    if name in ("hinge", "squared_hinge"):
        return rng.integers(0, 2, shape).astype(float), rng.uniform(-2, 2, shape)
    if name == "categorical_hinge":
        return onehot(rng.integers(0, 4, 5), 4), rng.uniform(-2, 2, shape)
    if name == "msle":
        return rng.uniform(0.1, 3, shape), rng.uniform(0.1, 3, shape)
    return rng.normal(size=shape), rng.normal(size=shape) * 2


@pytest.mark.parametrize("name", sorted(NP_LOSSES))
def test_more_losses_match_keras_formulas_and_gradients(name, rng, float64):
    t, p = _pair(name, rng)
    loss = losses.get(name)
    got = loss(t, Tensor(p)).item()
    assert got == pytest.approx(NP_LOSSES[name](t, p).mean(), rel=1e-10)
    fn = getattr(losses, type(loss).fn.__name__)
    check_grad(lambda q: fn(t, q), [p])
    assert losses.get(loss.get_config()["name"]).get_config() == loss.get_config()


def test_huber_delta_and_a_one_dimensional_target(rng, float64):
    t, p = rng.normal(size=6), rng.normal(size=(6, 1)) * 3
    got = losses.Huber(delta=0.5)(t, Tensor(p)).item()
    assert got == pytest.approx(NP_LOSSES["huber"](t[:, None], p, 0.5).mean(), rel=1e-10)


def test_more_losses_match_torch(rng, float64):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t, p = rng.dirichlet(np.ones(4), 5), rng.dirichlet(np.ones(4), 5)
    tt, pt = torch.tensor(t), torch.tensor(p)
    cases = {
        "huber": F.huber_loss(pt, tt, reduction="none").mean(-1),
        "kl_divergence": F.kl_div(pt.log(), tt, reduction="none").sum(-1),
        "poisson": F.poisson_nll_loss(pt, tt, log_input=False, eps=EPS, reduction="none").mean(-1),
        "cosine_similarity": -F.cosine_similarity(pt, tt, dim=-1),
    }
    for name, want in cases.items():
        np.testing.assert_allclose(
            getattr(losses, name)(t, Tensor(p)).data, want.numpy(), rtol=1e-6, err_msg=name
        )


def test_gradcheck_focal_losses_float64(float64, data):
    d = data
    check_grad(
        lambda z: losses.BinaryFocalCrossentropy(from_logits=True)(d["bin_t"], z), [d["bin_z"]]
    )
    check_grad(
        lambda p: losses.binary_focal_crossentropy(
            d["bin_t"], p, apply_class_balancing=True, gamma=1.5
        ),
        [np_sigmoid(d["bin_z"])],
    )
    check_grad(
        lambda z: losses.CategoricalFocalCrossentropy(from_logits=True)(d["onehot"], z),
        [d["logits"]],
    )
    check_grad(
        lambda p: losses.categorical_focal_crossentropy(d["onehot"], p, gamma=3.0),
        [np.abs(d["probs"]) + 0.1],
    )


def test_focal_losses_with_gamma_0_are_the_cross_entropies(data):
    d = data
    z = Tensor(d["bin_z"].astype("float32"))
    bce = losses.binary_crossentropy(d["bin_t"], z, from_logits=True).numpy()
    focal = losses.binary_focal_crossentropy(d["bin_t"], z, gamma=0.0, from_logits=True)
    np.testing.assert_allclose(focal.numpy(), bce, rtol=1e-5)
    p = Tensor(np_softmax(d["logits"]).astype("float32"))
    cce = losses.categorical_crossentropy(d["onehot"], p).numpy()
    cfocal = losses.categorical_focal_crossentropy(d["onehot"], p, gamma=0.0, alpha=1.0)
    np.testing.assert_allclose(cfocal.numpy(), cce, rtol=1e-5)
    assert losses.get("binary_focal_crossentropy").name == "binary_focal_crossentropy"
