"""DEC: blobs recovered, reproducibility, a given encoder, estimator conventions, errors."""

import numpy as np
import pytest

from hpnn import Input, Sequential, layers
from hpnn.cluster import DEC, KMeans, cluster_accuracy


def blobs(n=240, k=4, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)) * 6
    y = rng.permutation(np.arange(n) % k)
    return (centres[y] + rng.standard_normal((n, dim))).astype(np.float32), y


def small_dec(k=4, **kw):
    options = dict(
        hidden_units=(32, 32),
        embedding_dim=3,
        pretrain_epochs=15,
        pretrain_batch_size=32,
        batch_size=32,
        update_interval=8,
        max_iter=80,
        n_init=5,
        seed=0,
    )
    return DEC(k, **{**options, **kw})


@pytest.fixture(scope="module")
def fitted():
    x, y = blobs()
    return small_dec().fit(x), x, y


def test_dec_and_kmeans_recover_well_separated_blobs(fitted):
    dec, x, y = fitted
    assert cluster_accuracy(y, KMeans(4, seed=0).fit_predict(x)) == 1.0
    assert cluster_accuracy(y, dec.kmeans_labels_) == 1.0
    assert cluster_accuracy(y, dec.labels_) == 1.0
    np.testing.assert_array_equal(dec.predict(x), dec.labels_)
    x_new, y_new = blobs(n=80, seed=0)  # the same blobs, new points
    assert cluster_accuracy(y_new, dec.predict(x_new)) == 1.0


def test_fitted_attributes_and_outputs(fitted):
    dec, x, _ = fitted
    assert dec.cluster_centers_.shape == (4, 3)
    z = dec.transform(x)
    assert z.shape == (240, 3) and z.dtype == np.float32
    q = dec.predict_proba(x)
    np.testing.assert_allclose(q.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(q.argmax(1), dec.predict(x))
    # q is the soft assignment of the embedding to the centres (alpha = 1)
    d = ((z[:, None] - dec.cluster_centers_[None]) ** 2).sum(-1)
    expected = 1 / (1 + d)
    np.testing.assert_allclose(q, expected / expected.sum(1, keepdims=True), rtol=1e-4)
    assert len(dec.history_["pretrain_loss"]) == 15
    assert dec.history_["pretrain_loss"][-1] < dec.history_["pretrain_loss"][0]
    assert 0 < dec.n_iter_ <= 80 and dec.history_["delta"]
    assert set(dec.fit_time_) == {"pretrain", "kmeans", "refine"}


def test_refinement_sharpens_the_assignment():
    x, _ = blobs(seed=3)
    dec = small_dec(max_iter=0).fit(x)  # the k-means initialisation only
    before = dec.predict_proba(x).max(1).mean()
    dec = small_dec(max_iter=80, tol=0).fit(x)
    assert dec.n_iter_ == 80
    assert dec.predict_proba(x).max(1).mean() > before


def test_stops_when_fewer_than_tol_points_move():
    x, _ = blobs()
    dec = small_dec(max_iter=1000, tol=0.5).fit(x)
    assert dec.n_iter_ == 8  # the first update after the start: nothing moved
    assert dec.history_["delta"][-1] < 0.5


def test_the_same_seed_gives_the_same_clusters(fitted):
    dec, x, _ = fitted
    again = small_dec().fit(x)
    np.testing.assert_array_equal(again.labels_, dec.labels_)
    np.testing.assert_allclose(again.cluster_centers_, dec.cluster_centers_)
    other = small_dec(seed=1).fit(x)
    assert not np.allclose(other.cluster_centers_, dec.cluster_centers_)


def test_a_given_encoder_is_copied_not_trained():
    x, y = blobs()
    encoder = Sequential([Input(shape=(8,)), layers.Dense(16, "relu"), layers.Dense(3)])
    before = [w.copy() for w in encoder.get_weights()]
    dec = small_dec(encoder=encoder).fit(x)
    for a, b in zip(before, encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert dec.encoder_ is not encoder
    assert cluster_accuracy(y, dec.labels_) == 1.0
    # no pre-training: the given encoder as it is, and no decoder
    dec = small_dec(encoder=encoder, pretrain_epochs=0, max_iter=0).fit(x)
    assert dec.decoder_ is None
    np.testing.assert_allclose(dec.transform(x), encoder.predict(x, verbose=0), atol=1e-5)


def test_images_are_flattened_by_the_default_encoder():
    x, y = blobs(n=120, k=3, dim=12)
    dec = small_dec(3, max_iter=16).fit(x.reshape(120, 3, 4))
    assert dec.transform(x.reshape(120, 3, 4)).shape == (120, 3)
    assert dec.decoder_.output_shape == (None, 3, 4)
    assert cluster_accuracy(y, dec.labels_) == 1.0


def test_estimator_conventions():
    x, _ = blobs(n=60)
    dec = small_dec(max_iter=8, pretrain_epochs=2)
    params = dec.get_params()
    assert params["n_clusters"] == 4 and params["seed"] == 0 and params["tol"] == 1e-3
    assert set(params) == set(DEC().get_params())
    assert dec.fit(x) is dec
    np.testing.assert_array_equal(
        small_dec(max_iter=8, pretrain_epochs=2).fit_predict(x), dec.labels_
    )
    assert dec.set_params(n_clusters=3, tol=0.01) is dec and dec.n_clusters == 3
    assert "n_clusters=3" in repr(dec)
    assert not hasattr(DEC(), "labels_")  # __init__ stores the arguments only


def test_sklearn_clone():
    base = pytest.importorskip("sklearn.base")
    dec = small_dec(update_interval=5)
    copy = base.clone(dec)
    assert copy is not dec and copy.get_params() == dec.get_params()
    x, _ = blobs(n=60)
    fitted = small_dec(max_iter=8, pretrain_epochs=2).fit(x)
    fresh = base.clone(fitted)
    assert not hasattr(fresh, "cluster_centers_")


def test_bad_input_raises_with_what_was_received():
    x, _ = blobs(n=20)
    with pytest.raises(ValueError, match=r"DEC\.fit: expected x of rank >= 2.*shape=\(20,\)"):
        small_dec().fit(x[:, 0])
    with pytest.raises(ValueError, match=r"DEC: n_clusters must be at most.*\(20\).*=21"):
        small_dec(21).fit(x)
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"DEC\.fit: x must be finite.*1 NaN or infinite"):
        small_dec().fit(bad)
    with pytest.raises(RuntimeError, match=r"DEC\.predict\(\): .*not fitted.*fit\(x\) first"):
        small_dec().predict(x)
    with pytest.raises(RuntimeError, match=r"DEC\.transform\(\): .*not fitted"):
        small_dec().transform(x)
    with pytest.raises(ValueError, match=r"update_interval must be an int >= 1.*=0"):
        small_dec(update_interval=0).fit(x)
    with pytest.raises(ValueError, match=r"pretrain_dropout must be in \[0, 1\).*=1\.5"):
        small_dec(pretrain_dropout=1.5).fit(x)
    with pytest.raises(ValueError, match=r"hidden_units must be a tuple.*=\(32, -1\)"):
        small_dec(hidden_units=(32, -1)).fit(x)
    with pytest.raises(ValueError, match=r"learning_rate must be a number > 0.*=0"):
        small_dec(learning_rate=0).fit(x)


def test_predict_checks_the_sample_shape(fitted):
    dec, x, _ = fitted
    with pytest.raises(ValueError, match=r"DEC\.predict: expected samples of shape \(8,\).*"):
        dec.predict(x[:, :5])
    with pytest.raises(ValueError, match=r"DEC\.predict: x must be finite.*NaN"):
        dec.predict(np.full((2, 8), np.nan))


def test_an_encoder_that_does_not_embed_raises():
    x, _ = blobs(n=20)
    encoder = Sequential([Input(shape=(8,)), layers.Reshape((2, 4))])
    with pytest.raises(
        ValueError, match=r"encoder must output \(batch, features\).*\(None, 2, 4\)"
    ):
        small_dec(encoder=encoder).fit(x)
