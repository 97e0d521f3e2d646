"""Clustering scores against known classes: unsupervised accuracy, NMI, ARI.

Written in NumPy (scikit-learn and SciPy are not dependencies of hpnn); they agree with
scikit-learn's ``normalized_mutual_info_score`` (arithmetic normalisation),
``adjusted_rand_score`` and SciPy's ``linear_sum_assignment``.
"""

from __future__ import annotations

import numpy as np


def linear_assignment(cost) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one assignment of rows to columns of least total cost (Hungarian).

    Args:
        cost: ``(n, m)`` finite costs. Every row is assigned when ``n <= m``, every
            column when ``n > m``.

    Returns:
        ``(rows, cols)``, sorted by row, as ``scipy.optimize.linear_sum_assignment``.

    >>> linear_assignment([[4, 1], [2, 0]])
    (array([0, 1]), array([1, 0]))
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(
            f"linear_assignment: expected a 2-D cost matrix. Received: shape={c.shape}"
        )
    if not np.isfinite(c).all():
        raise ValueError("linear_assignment: expected finite costs. Received: inf or NaN")
    if c.shape[0] > c.shape[1]:
        cols, rows = linear_assignment(c.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    col_of_row = _shortest_augmenting_paths(c)
    return np.arange(c.shape[0]), col_of_row


def _shortest_augmenting_paths(c: np.ndarray) -> np.ndarray:
    """The column of each row in a least-cost assignment of ``c`` (n <= m), by
    Dijkstra-like augmenting paths with dual potentials; O(n^2 m), vectorised over m."""
    n, m = c.shape
    u = np.zeros(n + 1)  # row potentials (index 0: a virtual row)
    v = np.zeros(m + 1)  # column potentials (index 0: a virtual column)
    row_of_col = np.zeros(m + 1, dtype=np.int64)  # 1-based row matched to column j; 0: free
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        row_of_col[0] = i
        j0 = 0
        min_slack = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = row_of_col[j0]
            free = ~used
            slack = c[i0 - 1] - u[i0] - v[1:]
            better = free[1:] & (slack < min_slack[1:])
            min_slack[1:][better] = slack[better]
            way[1:][better] = j0
            candidates = np.where(free, min_slack, np.inf)
            j1 = int(np.argmin(candidates))
            delta = candidates[j1]
            u[row_of_col[used]] += delta
            v[used] -= delta
            min_slack[free] -= delta
            j0 = j1
            if row_of_col[j0] == 0:
                break
        while j0:  # flip the alternating path back to the virtual column
            j1 = way[j0]
            row_of_col[j0] = row_of_col[j1]
            j0 = j1
    col_of_row = np.empty(n, dtype=np.int64)
    matched = np.nonzero(row_of_col[1:])[0]
    col_of_row[row_of_col[1:][matched] - 1] = matched
    return col_of_row


def _check_labels(labels_true, labels_pred, fn: str):
    a, b = np.asarray(labels_true), np.asarray(labels_pred)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(
            f"{fn}: expected 1-D label arrays. Received: labels_true.shape={a.shape}, "
            f"labels_pred.shape={b.shape}"
        )
    if len(a) != len(b):
        raise ValueError(
            f"{fn}: labels_true and labels_pred must have the same length. Received: "
            f"{len(a)} and {len(b)}"
        )
    if len(a) == 0:
        raise ValueError(f"{fn}: expected at least one label. Received: empty arrays")
    return a, b


def contingency_matrix(labels_true, labels_pred) -> np.ndarray:
    """Counts ``(n_classes, n_clusters)``: how many samples of class i are in cluster j
    (classes and clusters in sorted order)."""
    a, b = _check_labels(labels_true, labels_pred, "contingency_matrix")
    classes, ia = np.unique(a, return_inverse=True)
    clusters, ib = np.unique(b, return_inverse=True)
    flat = ia.ravel() * len(clusters) + ib.ravel()
    counts = np.bincount(flat, minlength=len(classes) * len(clusters))
    return counts.reshape(len(classes), len(clusters))


def cluster_accuracy(labels_true, labels_pred) -> float:
    """Unsupervised accuracy: the fraction of samples whose cluster maps to their class
    under the best one-to-one map of clusters to classes (Hungarian)."""
    a, b = _check_labels(labels_true, labels_pred, "cluster_accuracy")
    counts = contingency_matrix(a, b)
    rows, cols = linear_assignment(-counts)
    return float(counts[rows, cols].sum() / len(a))


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(labels_true, labels_pred) -> float:
    """Mutual information over the arithmetic mean of the two entropies (scikit-learn's
    default ``average_method``); 1.0 when both labelings have a single group."""
    a, b = _check_labels(labels_true, labels_pred, "normalized_mutual_info")
    counts = contingency_matrix(a, b).astype(np.float64)
    if counts.shape[0] == counts.shape[1] == 1:
        return 1.0
    n = len(a)
    rows, cols = counts.sum(1), counts.sum(0)
    i, j = np.nonzero(counts)
    nij = counts[i, j]
    mi = float((nij / n * (np.log(nij * n) - np.log(rows[i] * cols[j]))).sum())
    if mi <= 0:
        return 0.0
    return float(mi / ((_entropy(rows, n) + _entropy(cols, n)) / 2))


def adjusted_rand(labels_true, labels_pred) -> float:
    """The Rand index of the pairs of samples, adjusted for chance (Hubert and Arabie):
    0 in expectation for random labels, 1.0 for identical partitions."""
    a, b = _check_labels(labels_true, labels_pred, "adjusted_rand")
    counts = contingency_matrix(a, b).astype(np.float64)

    def pairs(x):
        return float((x * (x - 1) / 2).sum())

    both = pairs(counts)
    same_true, same_pred = pairs(counts.sum(1)), pairs(counts.sum(0))
    total = len(a) * (len(a) - 1) / 2
    expected = same_true * same_pred / total if total else 0.0
    top = (same_true + same_pred) / 2
    if top == expected:  # (one group each, or singletons each: the partitions agree)
        return 1.0
    return float((both - expected) / (top - expected))
