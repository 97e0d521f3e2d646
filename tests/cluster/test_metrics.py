"""Clustering scores and the linear assignment: hand-computed cases, scikit-learn, SciPy."""

import itertools

import numpy as np
import pytest

from hpnn.cluster import (
    adjusted_rand,
    cluster_accuracy,
    contingency_matrix,
    linear_assignment,
    normalized_mutual_info,
)


def _brute_force(cost):
    """The least total cost over every injection of rows into columns (n <= m)."""
    n, m = cost.shape
    return min(cost[range(n), list(p)].sum() for p in itertools.permutations(range(m), n))


def test_linear_assignment_on_hand_computed_cases():
    rows, cols = linear_assignment([[4, 1, 3], [2, 0, 5], [3, 2, 2]])
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]  # 1 + 2 + 2 = 5
    rows, cols = linear_assignment([[10, 1], [1, 10], [5, 5]])  # more rows than columns
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    rows, cols = linear_assignment([[3, 1, 2]])
    assert rows.tolist() == [0] and cols.tolist() == [1]


def test_linear_assignment_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        m = int(rng.integers(n, 7))
        cost = rng.integers(-5, 6, (n, m)).astype(float)  # ties too
        rows, cols = linear_assignment(cost)
        assert len(set(cols.tolist())) == n
        assert cost[rows, cols].sum() == pytest.approx(_brute_force(cost))


def test_linear_assignment_against_scipy():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(1)
    for shape in [(10, 10), (7, 12), (12, 7), (30, 30)]:
        cost = rng.standard_normal(shape)
        rows, cols = linear_assignment(cost)
        r2, c2 = optimize.linear_sum_assignment(cost)
        assert cost[rows, cols].sum() == pytest.approx(cost[r2, c2].sum())
        np.testing.assert_array_equal(rows, r2)


def test_linear_assignment_rejects_bad_costs():
    with pytest.raises(ValueError, match=r"2-D cost matrix\. Received: shape=\(3,\)"):
        linear_assignment([1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        linear_assignment([[1, np.inf], [0, 1]])


def test_scores_on_hand_computed_cases():
    y = [0, 0, 1, 1]
    # a relabelling is a perfect clustering
    assert cluster_accuracy(y, [1, 1, 0, 0]) == 1.0
    assert normalized_mutual_info(y, [1, 1, 0, 0]) == pytest.approx(1.0)
    assert adjusted_rand(y, [1, 1, 0, 0]) == pytest.approx(1.0)
    # clusters {0, 2} and {1, 3}: independent of the classes
    assert cluster_accuracy(y, [0, 1, 0, 1]) == 0.5
    assert normalized_mutual_info(y, [0, 1, 0, 1]) == 0.0
    # pairs: 6; same class 2, same cluster 2, both 0; expected 2*2/6; max (2+2)/2
    assert adjusted_rand(y, [0, 1, 0, 1]) == pytest.approx((0 - 2 / 3) / (2 - 2 / 3))
    # 3 of 4 in the right cluster under the best map
    assert cluster_accuracy(y, [5, 5, 5, 7]) == 0.75
    # one cluster each: both entropies 0, a perfect (trivial) match
    assert normalized_mutual_info([1, 1, 1], [2, 2, 2]) == 1.0
    assert adjusted_rand([1, 1, 1], [2, 2, 2]) == 1.0


def test_nmi_by_hand():
    y, c = [0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]
    # counts [[2, 1], [0, 3]]; H(y) = ln 2; H(c) = H(1/3, 2/3)
    mi = 2 / 6 * np.log((2 / 6) / (3 / 6 * 2 / 6)) + 1 / 6 * np.log((1 / 6) / (3 / 6 * 4 / 6))
    mi += 3 / 6 * np.log((3 / 6) / (3 / 6 * 4 / 6))
    h_y, h_c = np.log(2), -(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3))
    assert normalized_mutual_info(y, c) == pytest.approx(mi / ((h_y + h_c) / 2))


def test_accuracy_with_more_clusters_than_classes():
    # 3 clusters, 2 classes: the best one-to-one map leaves one cluster unmatched
    assert cluster_accuracy([0, 0, 0, 1, 1, 1], [0, 0, 2, 1, 1, 1]) == pytest.approx(5 / 6)


def test_contingency_matrix_takes_any_labels():
    counts = contingency_matrix(["a", "b", "a", "a"], [3, 3, 7, 3])
    np.testing.assert_array_equal(counts, [[2, 1], [1, 0]])


def test_scores_against_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    for _ in range(100):
        n = int(rng.integers(1, 60))
        a = rng.integers(0, rng.integers(1, 8), n)
        b = rng.integers(0, rng.integers(1, 8), n)
        assert normalized_mutual_info(a, b) == pytest.approx(
            metrics.normalized_mutual_info_score(a, b), abs=1e-12
        )
        assert adjusted_rand(a, b) == pytest.approx(metrics.adjusted_rand_score(a, b), abs=1e-12)
    y = rng.integers(0, 10, 5000)  # larger: no overflow in the pair counts
    c = np.where(rng.random(5000) < 0.7, y, rng.integers(0, 10, 5000))
    assert adjusted_rand(y, c) == pytest.approx(metrics.adjusted_rand_score(y, c), abs=1e-12)


def test_accuracy_against_scipy():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 6, 300)
    c = np.where(rng.random(300) < 0.5, (y + 2) % 6, rng.integers(0, 6, 300))
    counts = contingency_matrix(y, c)
    r, k = optimize.linear_sum_assignment(-counts)
    assert cluster_accuracy(y, c) == pytest.approx(counts[r, k].sum() / 300)


@pytest.mark.parametrize("score", [cluster_accuracy, normalized_mutual_info, adjusted_rand])
def test_bad_labels_raise_with_what_was_received(score):
    name = score.__name__
    with pytest.raises(ValueError, match=rf"{name}: .*same length\. Received: 3 and 2"):
        score([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=rf"{name}: expected 1-D.*shape=\(2, 2\)"):
        score([[0, 1], [1, 0]], [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=rf"{name}: expected at least one label"):
        score([], [])
