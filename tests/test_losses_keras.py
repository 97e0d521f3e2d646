"""Keras 3's Dice, Tversky, Circle and CategoricalGeneralizedCrossEntropy losses in hpnn:
values and gradients against Keras (torch autograd), float64 gradient checks through
hpnn's engine, hand-computed cases, training, the batch split, and serialization."""

import numpy as np
import pytest

import hpnn
from hpnn import layers, losses
from hpnn.engine import Tensor
from hpnn.testing import check_grad


@pytest.fixture
def float64():
    old = hpnn.backend.floatx()
    hpnn.backend.set_floatx("float64")
    yield
    hpnn.backend.set_floatx(old)


def unit_rows(rng, n, d):
    e = rng.standard_normal((n, d))
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def cases():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 2, (6, 5)).astype(np.float32)
    probs = rng.uniform(0.05, 0.95, (6, 5)).astype(np.float32)
    z = rng.standard_normal((8, 5))
    soft = (np.exp(z) / np.exp(z).sum(1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, 5, 8)
    emb = unit_rows(rng, 10, 4).astype(np.float32)
    groups = np.array([0, 0, 1, 1, 1, 2, 2, 3, 0, 1])  # class 3 has one sample: no positive
    w6, w8, w10 = (rng.uniform(0.5, 2.0, n).astype(np.float32) for n in (6, 8, 10))
    return [
        ("Dice", {}, masks, probs, w6),
        ("Dice", {"axis": 1}, masks, probs, w6),
        ("Dice", {"reduction": "sum"}, masks, probs, w6),
        ("Tversky", {}, masks, probs, w6),
        ("Tversky", {"alpha": 0.3, "beta": 0.7, "axis": (1,)}, masks, probs, w6),
        ("Tversky", {"alpha": 0.8, "beta": 0.1, "reduction": "none", "axis": -1}, masks, probs, w6),
        ("CategoricalGeneralizedCrossEntropy", {}, labels, soft, w8),
        ("CategoricalGeneralizedCrossEntropy", {"q": 0.2, "reduction": "sum"}, labels, soft, w8),
        ("Circle", {}, groups, emb, w10),
        ("Circle", {"gamma": 10.0, "margin": 0.25}, groups, emb, w10),
        ("Circle", {"remove_diagonal": False, "reduction": "sum"}, groups, emb, w10),
        ("Circle", {"reduction": "none"}, groups, emb, w10),
    ]


@pytest.mark.parametrize(("name", "kwargs", "y", "p", "w"), cases())
@pytest.mark.parametrize("weighted", [False, True])
def test_new_losses_and_their_gradients_follow_keras(keras, name, kwargs, y, p, w, weighted):
    import torch

    weight = w if weighted else None
    ours = getattr(losses, name)(**kwargs)
    theirs = getattr(keras.losses, name)(**kwargs)
    pt = Tensor(p.copy(), requires_grad=True)
    value = ours(y, pt, weight)
    ptk = torch.tensor(p.copy(), requires_grad=True)
    want = theirs(torch.tensor(y), ptk, None if weight is None else torch.tensor(weight))
    np.testing.assert_allclose(value.data, want.detach().numpy(), rtol=2e-5, atol=1e-5)
    (value.sum() if value.ndim else value).backward()
    (want.sum() if want.ndim else want).backward()
    scale = max(1.0, float(np.abs(ptk.grad.numpy()).max()))
    np.testing.assert_allclose(pt.grad, ptk.grad.numpy(), rtol=1e-4, atol=1e-5 * scale)
    assert ours.name == theirs.name
    config = {k: v for k, v in theirs.get_config().items() if k != "dtype"}
    assert ours.get_config() == config


def test_function_forms_follow_keras(keras):
    import torch

    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 2, (4, 3, 2)).astype(np.float32), rng.random((4, 3, 2), np.float32)
    for name, kwargs in [("dice", {}), ("dice", {"axis": (1, 2)}), ("tversky", {"alpha": 0.9})]:
        got = getattr(losses, name)(y, p, **kwargs).data
        want = getattr(keras.losses, name)(torch.tensor(y), torch.tensor(p), **kwargs).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
    emb, labels = unit_rows(rng, 6, 3).astype(np.float32), np.array([0, 1, 0, 1, 2, 2])
    ref, ref_labels = unit_rows(rng, 4, 3).astype(np.float32), np.array([0, 1, 2, 1])
    got = losses.circle(labels, emb, ref_labels=ref_labels, ref_embeddings=ref, gamma=5)
    want = keras.losses.circle(
        torch.tensor(labels),
        torch.tensor(emb),
        gamma=5,
        ref_labels=torch.tensor(ref_labels),
        ref_embeddings=torch.tensor(ref),
        remove_diagonal=False,
    )
    got_kept = losses.circle(
        labels, emb, ref_labels=ref_labels, ref_embeddings=ref, gamma=5, remove_diagonal=False
    )
    np.testing.assert_allclose(got_kept.data, want.numpy(), rtol=1e-5, atol=1e-5)
    assert got.shape == (6,)
    soft = np.full((3, 4), 0.25, np.float32)
    got = losses.categorical_generalized_cross_entropy([0, 3, 1], soft, q=0.5).data
    want = keras.losses.categorical_generalized_cross_entropy(
        torch.tensor([0, 3, 1]), torch.tensor(soft), q=0.5
    )
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)


# -- gradients through hpnn's engine, float64 ---------------------------------------------
def test_gradcheck_new_losses_float64(float64):
    rng = np.random.default_rng(2)
    t = rng.integers(0, 2, (4, 3)).astype(np.float64)
    p = rng.uniform(0.1, 0.9, (4, 3))
    w = rng.uniform(0.5, 2.0, 4)
    check_grad(lambda q: losses.dice(t, q), [p])
    check_grad(lambda q: losses.dice(t, q, axis=1), [p])
    check_grad(lambda q: losses.Dice()(t, q, w), [p])
    check_grad(lambda q: losses.tversky(t, q, alpha=0.3, beta=0.7), [p])
    check_grad(lambda q: losses.Tversky(axis=-1, reduction="none")(t, q, w), [p])
    labels = rng.integers(0, 3, 4)
    check_grad(lambda q: losses.categorical_generalized_cross_entropy(labels, q, q=0.4), [p])
    check_grad(lambda q: losses.CategoricalGeneralizedCrossEntropy(q=0.7)(labels, q, w), [p])
    emb = unit_rows(rng, 7, 3)
    groups = np.array([0, 0, 1, 1, 2, 2, 3])
    check_grad(lambda e: losses.circle(groups, e, gamma=4.0), [emb])
    check_grad(lambda e: losses.Circle(gamma=6.0, margin=0.3)(groups, e), [emb])
    ref = unit_rows(rng, 5, 3)
    check_grad(
        lambda e, r: losses.circle(
            groups,
            e,
            ref_labels=[0, 1, 2, 3, 1],
            ref_embeddings=r,
            remove_diagonal=False,
            gamma=3.0,
        ),
        [emb, ref],
    )


# -- by hand ---------------------------------------------------------------------------------
def test_new_losses_by_hand():
    t = np.array([[1.0, 0.0, 1.0, 0.0]])
    assert losses.dice(t, t).item() == pytest.approx(0.0, abs=1e-6)
    p = np.array([[0.5, 0.5, 0.0, 0.0]])  # overlap 0.5, sums 2 and 1
    assert losses.dice(t, p).item() == pytest.approx(1 - 2 * 0.5 / 3, rel=1e-6)
    # alpha weighs the positives missed (1.5 here), beta the extra ones (0.5)
    expected = 1 - 0.5 / (0.5 + 0.2 * 1.5 + 0.8 * 0.5)
    assert losses.tversky(t, p, alpha=0.2, beta=0.8).item() == pytest.approx(expected, rel=1e-6)
    assert losses.tversky(t, p).item() == pytest.approx(losses.dice(t, p).item(), rel=1e-6)
    soft = np.array([[0.64, 0.36], [0.25, 0.75]])
    got = losses.categorical_generalized_cross_entropy([0, 0], soft, q=0.5).data
    np.testing.assert_allclose(got, [(1 - 0.8) / 0.5, (1 - 0.5) / 0.5], rtol=1e-6)
    # two identical embeddings of one class and one far of another: the lone sample of
    # class 1 has no positive pair, so its loss is 0 and the mean is over the other two
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    values = losses.circle([0, 0, 1], emb, gamma=2.0, margin=0.25).data
    assert values[2] == 0.0 and values[0] == pytest.approx(values[1]) and values[0] > 0
    # by the formula: d(pos) = 0, d(neg) = 1; pos weight 0.25, neg weight 0.25
    pos, neg = -2.0 * 0.25 * 0.25, 2.0 * 0.25 * (0.75 - 1.0)
    assert values[0] == pytest.approx(np.log1p(np.exp(pos + neg)), rel=1e-6)
    assert losses.Circle(gamma=2.0, margin=0.25)([0, 0, 1], emb).item() == pytest.approx(
        values[0], rel=1e-6
    )


# -- training, the batch split, names ----------------------------------------------------------
def _segmenter(loss, seed=0):
    hpnn.utils.set_random_seed(seed)
    model = hpnn.Sequential([hpnn.Input((6,)), layers.Dense(4, activation="sigmoid")])
    model.compile(optimizer=hpnn.optimizers.Adam(0.05), loss=loss)
    return model


def _masks(n=36, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    return x, (x[:, :4] > 0).astype(np.float32)


def test_dice_trains_and_whole_batch_losses_are_never_split(monkeypatch):
    pytest.importorskip("threadpoolctl")
    from hpnn.parallel import split

    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
    monkeypatch.setattr(split, "MIN_PER_PART", 4)
    kinds = []
    real = split.run

    def spy(step, kind, plan, slices, *args, **kwargs):
        kinds.append((kind, len(slices)))
        return real(step, kind, plan, slices, *args, **kwargs)

    monkeypatch.setattr(split, "run", spy)
    x, y = _masks()
    results = {}
    for loss in ("dice", losses.Dice(axis=1), losses.Tversky(), losses.Tversky(axis=-1)):
        per_sample = not isinstance(loss, str) and loss.batch_mean
        for setting in ("3", "0"):
            monkeypatch.setenv("HPNN_BATCH_THREADS", setting)
            kinds.clear()
            model = _segmenter(loss)
            history = model.fit(x, y, batch_size=12, epochs=3, verbose=0, shuffle=False)
            assert bool(kinds) == (per_sample and setting == "3"), (loss, setting, kinds)
            results[setting] = history.history["loss"]
        assert results["3"][-1] < results["3"][0]  # it trains
        np.testing.assert_allclose(results["3"], results["0"], rtol=1e-5)
    monkeypatch.setenv("HPNN_BATCH_THREADS", "3")
    kinds.clear()
    model = _segmenter("dice")  # the whole batch's Dice, as Keras: one number
    model.fit(x[:12], y[:12], batch_size=12, epochs=1, verbose=0)
    assert model.evaluate(x[:12], y[:12], batch_size=12, verbose=0) == pytest.approx(
        losses.dice(y[:12], model.predict(x[:12], verbose=0)).item(), rel=1e-5
    )


def test_generalized_cross_entropy_in_compile_splits_like_any_mean(monkeypatch):
    pytest.importorskip("threadpoolctl")
    from hpnn.parallel import split

    monkeypatch.setenv("HPNN_BATCH_PROCESSES", "0")
    monkeypatch.setattr(split, "MIN_PER_PART", 4)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((24, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    out = []
    for setting in ("3", "0"):
        monkeypatch.setenv("HPNN_BATCH_THREADS", setting)
        hpnn.utils.set_random_seed(0)
        model = hpnn.Sequential([hpnn.Input((5,)), layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="categorical_generalized_cross_entropy")
        out.append(model.fit(x, y, batch_size=12, epochs=3, verbose=0).history["loss"])
        assert isinstance(model.loss, losses.CategoricalGeneralizedCrossEntropy)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5)


def test_serialize_deserialize_and_get():
    for loss in (
        losses.Dice(axis=(1, 2)),
        losses.Tversky(alpha=0.2, beta=0.8),
        losses.Circle(gamma=10.0),
        losses.CategoricalGeneralizedCrossEntropy(q=0.3),
        losses.Huber(delta=2.0),
    ):
        entry = losses.serialize(loss)
        assert entry["module"] == "keras.losses" and entry["class_name"] == type(loss).__name__
        back = losses.deserialize(entry)
        assert type(back) is type(loss) and losses.serialize(back) == entry
    assert losses.deserialize("dice") is losses.dice
    assert losses.deserialize("mse") is losses.mean_squared_error
    assert losses.deserialize("Tversky") is losses.Tversky
    assert losses.deserialize(losses.serialize(losses.circle)) is losses.circle
    for name, cls in (
        ("dice", losses.Dice),
        ("Circle", losses.Circle),
        ("tversky", losses.Tversky),
    ):
        assert type(losses.get(name)) is cls
    assert type(losses.get(losses.circle)) is losses.Circle


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"q must be a number in \(0, 1\)\. Received: q=1\.5"):
        losses.CategoricalGeneralizedCrossEntropy(q=1.5)
    with pytest.raises(ValueError, match="reduction must be"):
        losses.Dice(reduction="mean_of_everything")
