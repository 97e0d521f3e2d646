"""Clustering: Deep Embedded Clustering, k-means, and clustering scores.

Everything is NumPy and hpnn's own engine: k-means (k-means++ seeding, restarts), the
linear assignment behind the unsupervised accuracy, NMI and ARI are written here
because scikit-learn and SciPy are not dependencies of hpnn. The estimators follow
scikit-learn's conventions (``get_params``/``set_params``, ``fit`` returns self,
``predict``, ``fit_predict``, ``transform``, fitted attributes ending in ``_``), so
``sklearn.base.clone`` and grid searches take them. Command line: ``hpnn cluster``.

>>> dec = hpnn.cluster.DEC(n_clusters=10, seed=0).fit(x_train)           # doctest: +SKIP
>>> hpnn.cluster.cluster_accuracy(y_test, dec.predict(x_test))           # doctest: +SKIP
"""

from hpnn.cluster.dec import DEC
from hpnn.cluster.kmeans import KMeans, kmeans_plusplus
from hpnn.cluster.layer import ClusteringLayer, SoftAssignment, soft_assignment, target_distribution
from hpnn.cluster.metrics import (
    adjusted_rand,
    cluster_accuracy,
    contingency_matrix,
    linear_assignment,
    normalized_mutual_info,
)

__all__ = [
    "DEC",
    "ClusteringLayer",
    "KMeans",
    "SoftAssignment",
    "adjusted_rand",
    "cluster_accuracy",
    "contingency_matrix",
    "kmeans_plusplus",
    "linear_assignment",
    "normalized_mutual_info",
    "soft_assignment",
    "target_distribution",
]
