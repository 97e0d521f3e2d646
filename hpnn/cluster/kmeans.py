"""k-means in NumPy: greedy k-means++ seeding, Lloyd's iterations, ``n_init`` restarts.

Every step is a few whole-array operations (distances as one matrix multiply, centre
sums as another); the only Python loops are over iterations, restarts and the k seeds.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from hpnn.cluster.base import Estimator, check_array, check_seed
from hpnn.random import make_rng


def squared_distances(x: np.ndarray, centers: np.ndarray, x_sq=None) -> np.ndarray:
    """``(N, k)`` squared Euclidean distances, clipped at 0 (rounding can go below)."""
    if x_sq is None:
        x_sq = np.einsum("ij,ij->i", x, x)
    c_sq = np.einsum("ij,ij->i", centers, centers)
    d = x @ centers.T
    d *= -2
    d += x_sq[:, None]
    d += c_sq[None, :]
    return np.maximum(d, 0, out=d)


def kmeans_plusplus(x, n_clusters: int, rng, x_sq=None) -> np.ndarray:
    """``n_clusters`` initial centres drawn from the rows of ``x`` by greedy k-means++
    (Arthur and Vassilvitskii): each next centre the best of ``2 + ln k`` candidates
    drawn with probability proportional to the squared distance to the nearest centre."""
    n = len(x)
    if x_sq is None:
        x_sq = np.einsum("ij,ij->i", x, x)
    trials = 2 + int(math.log(n_clusters))
    centers = np.empty((n_clusters, x.shape[1]), dtype=x.dtype)
    centers[0] = x[rng.integers(n)]
    closest = squared_distances(x, centers[:1], x_sq)[:, 0].astype(np.float64)
    for c in range(1, n_clusters):
        total = closest.sum()
        if total <= 0:  # every point sits on a centre: any point will do
            picks = rng.integers(n, size=trials)
        else:
            picks = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
            picks = np.minimum(picks, n - 1)
        d = squared_distances(x, x[picks], x_sq).T.astype(np.float64)  # (trials, N)
        np.minimum(d, closest, out=d)
        best = int(np.argmin(d.sum(axis=1)))
        centers[c] = x[picks[best]]
        closest = d[best]
    return centers


def lloyd(x, centers, max_iter: int, tol: float, x_sq=None):
    """Lloyd's iterations from ``centers`` until the centres move less than ``tol``
    (summed squared shift); returns ``(centers, labels, inertia, n_iter)``."""
    if x_sq is None:
        x_sq = np.einsum("ij,ij->i", x, x)
    k = len(centers)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is returned)
        d = squared_distances(x, centers, x_sq)
        labels = np.argmin(d, axis=1)
        counts = np.bincount(labels, minlength=k)
        one_hot = np.zeros((len(x), k), dtype=x.dtype)
        one_hot[np.arange(len(x)), labels] = 1
        sums = one_hot.T @ x
        new = sums / np.maximum(counts, 1)[:, None].astype(x.dtype)
        empty = np.nonzero(counts == 0)[0]
        if len(empty):  # an empty cluster restarts at the points worst served now
            worst = np.argsort(d[np.arange(len(x)), labels])[::-1][: len(empty)]
            new[empty] = x[worst]
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if shift <= tol:
            break
    d = squared_distances(x, centers, x_sq)
    labels = np.argmin(d, axis=1)
    inertia = float(d[np.arange(len(x)), labels].sum(dtype=np.float64))
    return centers, labels, inertia, n_iter


class KMeans(Estimator):
    """k-means clustering (NumPy; scikit-learn is not needed).

    Args:
        n_clusters: the number of clusters k.
        n_init: restarts from new k-means++ seeds; the run of least inertia is kept.
        max_iter: Lloyd iterations per run at most.
        tol: stop a run when the centres' summed squared shift is below
            ``tol * mean(var(x, axis=0))`` (scikit-learn's rule).
        seed: int, numpy Generator or None (hpnn's global seed source).

    Attributes (after ``fit``): ``cluster_centers_`` ``(k, n_features)``, ``labels_``
    ``(N,)``, ``inertia_`` (sum of squared distances to the nearest centre), ``n_iter_``.

    >>> KMeans(3, seed=0).fit(x).labels_  # doctest: +SKIP
    """

    def __init__(self, n_clusters=8, n_init=10, max_iter=300, tol=1e-4, seed=None):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed

    def _check_params(self):
        for name in ("n_init", "max_iter"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"KMeans: {name} must be a positive int. Received: {name}={value!r}"
                )
        if not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
            raise ValueError(f"KMeans: tol must be a number >= 0. Received: tol={self.tol!r}")
        return check_seed(self.seed, "KMeans")

    def fit(self, x):
        """Cluster the rows of ``x`` ``(N, n_features)``; returns self."""
        seed = self._check_params()
        x = check_array(x, "KMeans.fit", ndim=2)
        k = self._check_n_clusters(len(x))
        rng = make_rng(seed)
        x_sq = np.einsum("ij,ij->i", x, x)
        tol = float(self.tol) * float(np.var(x, axis=0, dtype=np.float64).mean())
        best = None
        for _ in range(int(self.n_init)):
            start = kmeans_plusplus(x, k, rng, x_sq)
            run = lloyd(x, start, int(self.max_iter), tol, x_sq)
            if best is None or run[2] < best[2]:
                best = run
        self.cluster_centers_, self.labels_, self.inertia_, self.n_iter_ = best
        return self

    def _checked(self, x, what):
        self._check_fitted(what)
        x = check_array(x, f"KMeans.{what}", ndim=2)
        if x.shape[1] != self.cluster_centers_.shape[1]:
            raise ValueError(
                f"KMeans.{what}: expected {self.cluster_centers_.shape[1]} features (as in "
                f"fit). Received: shape={x.shape}"
            )
        return x.astype(self.cluster_centers_.dtype, copy=False)

    def predict(self, x) -> np.ndarray:
        """The nearest centre of each row of ``x``."""
        x = self._checked(x, "predict")
        return np.argmin(squared_distances(x, self.cluster_centers_), axis=1)

    def transform(self, x) -> np.ndarray:
        """``(N, k)`` Euclidean distances of each row to each centre."""
        x = self._checked(x, "transform")
        return np.sqrt(squared_distances(x, self.cluster_centers_))
