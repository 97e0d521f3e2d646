"""k-means: known answers, k-means++ seeding, reproducibility, estimator conventions, errors."""

import numpy as np
import pytest

from hpnn.cluster import KMeans, cluster_accuracy, kmeans_plusplus


def blobs(n=300, k=4, dim=5, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)) * 5
    y = rng.permutation(np.arange(n) % k)
    return centres[y] + spread * rng.standard_normal((n, dim)), y, centres


def test_recovers_well_separated_blobs():
    x, y, _ = blobs()
    km = KMeans(4, seed=0).fit(x)
    assert cluster_accuracy(y, km.labels_) == 1.0
    # each centre is the mean of its blob
    for j in range(4):
        np.testing.assert_allclose(km.cluster_centers_[j], x[km.labels_ == j].mean(0))
    assert km.inertia_ == pytest.approx(((x - km.cluster_centers_[km.labels_]) ** 2).sum())
    np.testing.assert_array_equal(km.predict(x), km.labels_)
    assert km.transform(x).shape == (300, 4)
    np.testing.assert_array_equal(km.transform(x).argmin(1), km.labels_)


def test_a_known_answer_by_hand():
    x = np.array([[0.0, 0], [0, 1], [10, 0], [10, 1], [10, 2]])
    km = KMeans(2, seed=3).fit(x)
    first = km.labels_[0]
    assert km.labels_.tolist() == [first, first, 1 - first, 1 - first, 1 - first]
    np.testing.assert_allclose(km.cluster_centers_[first], [0, 0.5])
    np.testing.assert_allclose(km.cluster_centers_[1 - first], [10, 1])
    assert km.inertia_ == pytest.approx(0.25 * 2 + 1 + 0 + 1)


def test_the_same_seed_gives_the_same_result():
    x, _, _ = blobs(n=400, k=6, spread=2.0)
    a, b = KMeans(6, n_init=3, seed=7).fit(x), KMeans(6, n_init=3, seed=7).fit(x)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    starts = [kmeans_plusplus(x, 6, np.random.default_rng(s)) for s in (0, 1)]
    assert not np.array_equal(*starts)


def test_restarts_keep_the_least_inertia():
    x, _, _ = blobs(n=300, k=8, spread=1.5, seed=4)
    one = [KMeans(8, n_init=1, seed=s).fit(x).inertia_ for s in range(5)]
    many = KMeans(8, n_init=10, seed=0).fit(x).inertia_
    assert many <= min(one) + 1e-9


def test_kmeans_plusplus_picks_distinct_rows_far_apart():
    x, _, centres = blobs(k=5, spread=0.1)
    start = kmeans_plusplus(x, 5, np.random.default_rng(0))
    # one seed in each blob: every start is a data row, nearest to a different centre
    assert all((x == s).all(1).any() for s in start)
    nearest = ((start[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
    assert sorted(nearest.tolist()) == [0, 1, 2, 3, 4]


def test_duplicate_points_and_k_equal_to_n():
    x = np.zeros((6, 2))
    km = KMeans(3, n_init=2, seed=0).fit(x)
    assert km.inertia_ == 0 and km.labels_.shape == (6,)
    x = np.arange(8.0).reshape(4, 2)
    km = KMeans(4, seed=0).fit(x)
    assert sorted(km.labels_.tolist()) == [0, 1, 2, 3] and km.inertia_ == pytest.approx(0)


def test_float32_stays_float32():
    x, _, _ = blobs()
    km = KMeans(4, seed=0).fit(x.astype(np.float32))
    assert km.cluster_centers_.dtype == np.float32


def test_estimator_conventions():
    x, _, _ = blobs()
    km = KMeans(4, n_init=2, seed=0)
    expected = {"max_iter": 300, "n_clusters": 4, "n_init": 2, "seed": 0, "tol": 1e-4}
    assert km.get_params() == expected
    assert km.fit(x) is km
    np.testing.assert_array_equal(KMeans(4, n_init=2, seed=0).fit_predict(x), km.labels_)
    assert km.set_params(n_clusters=3) is km and km.n_clusters == 3
    assert repr(KMeans(3, seed=1)) == "KMeans(n_clusters=3, seed=1)"
    with pytest.raises(ValueError, match=r"unknown parameter 'k'.*Received: k=3"):
        km.set_params(k=3)


def test_sklearn_clone():
    base = pytest.importorskip("sklearn.base")
    km = KMeans(5, n_init=3, seed=2)
    copy = base.clone(km)
    assert copy is not km and copy.get_params() == km.get_params()


def test_bad_input_raises_with_what_was_received():
    x, _, _ = blobs(n=20)
    with pytest.raises(ValueError, match=r"KMeans\.fit: expected x of rank 2.*shape=\(20,\)"):
        KMeans(2).fit(x[:, 0])
    with pytest.raises(ValueError, match=r"n_clusters must be at most.*\(20\).*n_clusters=21"):
        KMeans(21).fit(x)
    with pytest.raises(ValueError, match=r"n_clusters must be a positive int.*n_clusters=0"):
        KMeans(0).fit(x)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"KMeans\.fit: x must be finite.*1 NaN"):
        KMeans(2).fit(bad)
    with pytest.raises(RuntimeError, match=r"KMeans\.predict\(\): .*not fitted.*fit\(x\)"):
        KMeans(2).predict(x)
    km = KMeans(2, seed=0).fit(x)
    with pytest.raises(ValueError, match=r"expected 5 features.*shape=\(20, 3\)"):
        km.predict(x[:, :3])
    with pytest.raises(ValueError, match=r"n_init must be a positive int.*n_init=0"):
        KMeans(2, n_init=0).fit(x)
    with pytest.raises(ValueError, match=r"seed must be.*seed=-1"):
        KMeans(2, seed=-1).fit(x)
    with pytest.raises(ValueError, match=r"numeric array.*dtype=<U1"):
        KMeans(2).fit([["a", "b"], ["c", "d"]])
