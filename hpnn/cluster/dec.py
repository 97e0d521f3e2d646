"""Deep Embedded Clustering (Xie, Girshick, Farhadi 2016) as a scikit-learn-style estimator.

Three stages, all on hpnn's engine: an autoencoder learns to reconstruct the data
(pre-training); k-means places the centres in its embedding; then the encoder and the
centres are refined together on KL(P || Q), Q the Student's t soft assignment
(:class:`~hpnn.cluster.layer.ClusteringLayer`) and P its sharpened target, recomputed
every ``update_interval`` steps, until fewer than ``tol`` of the points change cluster
between two updates.
"""

from __future__ import annotations

import math
import numbers
import time

import numpy as np

from hpnn.cluster.base import Estimator, check_array, check_seed
from hpnn.cluster.kmeans import KMeans
from hpnn.cluster.layer import ClusteringLayer, target_distribution
from hpnn.random import make_rng

PREDICT_BATCH = 1024


class DEC(Estimator):
    """Deep Embedded Clustering.

    Args:
        n_clusters: the number of clusters k.
        encoder: an hpnn model mapping a sample to its embedding ``(batch, d)``; by
            default the paper's dense stack ``input-500-500-2000-10`` (ReLU), on the
            flattened input. A given encoder is copied (with its weights), never trained
            in place; with ``pretrain_epochs=0`` it is used as it is (pre-trained).
        decoder: an hpnn model from the embedding back to the input's shape, for the
            pre-training; by default the encoder's dense stack mirrored.
        hidden_units, embedding_dim: the default encoder's layer sizes.
        alpha: degrees of freedom of the Student's t kernel.
        pretrain_epochs, pretrain_batch_size, pretrain_learning_rate: the autoencoder's
            training (Adam, mean squared error).
        pretrain_dropout: the rate of input dropout during pre-training (a denoising
            autoencoder, as the paper's); 0 for a plain autoencoder.
        batch_size, learning_rate, momentum: the refinement's steps (SGD).
        update_interval: refinement steps between updates of the target P.
        max_iter: refinement steps at most.
        tol: stop when fewer than this fraction of the points change cluster between
            two updates of P.
        n_init: k-means restarts in the embedding.
        seed: int, numpy Generator or None (hpnn's global seed source): the default
            model's weights, the batches, the dropout and k-means.
        verbose: 0 silent, 1 one line per pre-training epoch and per target update.

    Attributes (after ``fit``): ``cluster_centers_`` ``(k, d)`` in the embedding,
    ``labels_`` ``(N,)``, ``encoder_``, ``decoder_``, ``model_`` (encoder + soft
    assignment), ``n_iter_`` (refinement steps run), ``kmeans_labels_`` (the initial
    clusters), ``history_`` (``pretrain_loss`` per epoch; ``delta``, the fraction of
    points that changed cluster, per target update), ``fit_time_`` (seconds per stage).

    >>> dec = DEC(n_clusters=10, seed=0).fit(x_train)       # doctest: +SKIP
    >>> clusters = dec.predict(x_test)                       # doctest: +SKIP
    """

    def __init__(
        self,
        n_clusters=10,
        encoder=None,
        decoder=None,
        hidden_units=(500, 500, 2000),
        embedding_dim=10,
        alpha=1.0,
        pretrain_epochs=20,
        pretrain_batch_size=256,
        pretrain_learning_rate=1e-3,
        pretrain_dropout=0.2,
        batch_size=256,
        learning_rate=0.01,
        momentum=0.9,
        update_interval=140,
        max_iter=3000,
        tol=1e-3,
        n_init=20,
        seed=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.encoder = encoder
        self.decoder = decoder
        self.hidden_units = hidden_units
        self.embedding_dim = embedding_dim
        self.alpha = alpha
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_batch_size = pretrain_batch_size
        self.pretrain_learning_rate = pretrain_learning_rate
        self.pretrain_dropout = pretrain_dropout
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.update_interval = update_interval
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.seed = seed
        self.verbose = verbose

    # -- checks ----------------------------------------------------------------
    def _check_params(self):
        for name in ("pretrain_batch_size", "batch_size", "update_interval", "n_init"):
            _check_int(name, getattr(self, name), 1)
        for name in ("pretrain_epochs", "max_iter", "embedding_dim"):
            _check_int(name, getattr(self, name), 0 if name != "embedding_dim" else 1)
        units = self.hidden_units
        if not isinstance(units, (tuple, list)) or not all(
            isinstance(u, numbers.Integral) and not isinstance(u, bool) and u > 0 for u in units
        ):
            raise ValueError(
                f"DEC: hidden_units must be a tuple of positive ints. Received: hidden_units="
                f"{units!r}"
            )
        for name in ("alpha", "pretrain_learning_rate", "learning_rate"):
            _check_real(name, getattr(self, name), positive=True)
        for name in ("momentum", "tol", "pretrain_dropout"):
            _check_real(name, getattr(self, name), positive=False)
        if not self.pretrain_dropout < 1:
            raise ValueError(
                f"DEC: pretrain_dropout must be in [0, 1). Received: pretrain_dropout="
                f"{self.pretrain_dropout!r}"
            )
        return check_seed(self.seed, "DEC")

    def _input(self, x, what: str) -> np.ndarray:
        x = check_array(x, f"DEC.{what}")
        shape = getattr(self, "input_shape_", None)
        if shape is not None and x.shape[1:] != shape:
            raise ValueError(
                f"DEC.{what}: expected samples of shape {shape} (as in fit). "
                f"Received: shape={x.shape}"
            )
        return x.astype(np.float32, copy=False)

    # -- fit ---------------------------------------------------------------------
    def fit(self, x):
        """Pre-train, initialise by k-means and refine on ``x`` ``(N, ...)``; returns self."""
        seed = self._check_params()
        x = check_array(x, "DEC.fit")
        k = self._check_n_clusters(len(x))
        x = x.astype(np.float32, copy=False)
        rng = make_rng(seed)
        self.input_shape_ = None
        self.history_ = {"pretrain_loss": [], "delta": []}
        self.fit_time_ = {}
        start = time.perf_counter()
        self.encoder_, self.decoder_ = self._models(x.shape[1:], rng)
        if self.pretrain_epochs:
            self._pretrain(x, rng)
        self.fit_time_["pretrain"] = time.perf_counter() - start
        start = time.perf_counter()
        z = self.encoder_.predict(x, batch_size=PREDICT_BATCH, verbose=0)
        if z.ndim != 2:
            raise ValueError(
                f"DEC: the encoder must output (batch, features). Received: shape={z.shape}"
            )
        km = KMeans(k, n_init=self.n_init, seed=rng).fit(z)
        self.kmeans_labels_ = km.labels_
        self.fit_time_["kmeans"] = time.perf_counter() - start
        start = time.perf_counter()
        self.model_ = self._clustering_model(x.shape[1:], km.cluster_centers_)
        self._refine(x, km.labels_, rng)
        self.fit_time_["refine"] = time.perf_counter() - start
        self.input_shape_ = x.shape[1:]
        self.cluster_centers_ = self.model_.layers[-1].get_weights()[0]
        return self

    def _models(self, shape, rng):
        """The encoder and decoder to train: the defaults, or copies of the given ones."""
        from hpnn.cluster import autoencoder

        if self.encoder is None:
            encoder = autoencoder.dense_encoder(shape, self.hidden_units, self.embedding_dim, rng)
        else:
            encoder = autoencoder.copy_model(self.encoder)
        if not self.pretrain_epochs:
            return encoder, None
        if self.decoder is None:
            dim = autoencoder.output_dim(encoder, shape)
            units = tuple(self.hidden_units)[::-1]
            decoder = autoencoder.dense_decoder(dim, shape, units, rng)
        else:
            decoder = autoencoder.copy_model(self.decoder)
        return encoder, decoder

    def _pretrain(self, x, rng):
        """Train the (denoising) autoencoder on reconstructing ``x``."""
        from hpnn.cluster import autoencoder

        model = autoencoder.autoencoder(
            self.encoder_, self.decoder_, x.shape[1:], self.pretrain_dropout, rng
        )
        from hpnn.optimizers import Adam

        model.compile(optimizer=Adam(learning_rate=self.pretrain_learning_rate), loss="mse")
        size = self.pretrain_batch_size
        for epoch in range(self.pretrain_epochs):
            order = rng.permutation(len(x))
            total = 0.0
            for i in range(0, len(x), size):
                batch = x[order[i : i + size]]
                total += model.train_on_batch(batch, batch) * len(batch)
            self.history_["pretrain_loss"].append(total / len(x))
            if self.verbose:
                print(
                    f"DEC pre-training epoch {epoch + 1}/{self.pretrain_epochs}: "
                    f"loss {total / len(x):.5f}"
                )

    def _clustering_model(self, shape, centers):
        from hpnn import Input, Sequential
        from hpnn.optimizers import SGD

        layer = ClusteringLayer(self.n_clusters, self.alpha)
        model = Sequential([Input(shape=shape), self.encoder_, layer])
        layer.set_weights([centers.astype(np.float32)])
        model.compile(optimizer=SGD(self.learning_rate, momentum=self.momentum), loss="kld")
        return model

    def _refine(self, x, labels, rng):
        """Train the encoder and centres on KL(P || Q), P updated every
        ``update_interval`` steps, until fewer than ``tol`` of the points move."""
        n, size = len(x), min(self.batch_size, len(x))
        order, at = rng.permutation(n), 0
        step = 0
        q = None
        while True:
            if step % self.update_interval == 0 or step == self.max_iter:
                q = self.model_.predict(x, batch_size=PREDICT_BATCH, verbose=0)
                new = q.argmax(axis=1)
                delta = float((new != labels).mean())
                labels = new
                self.history_["delta"].append(delta)
                if self.verbose:
                    print(f"DEC step {step}: {delta:.4f} of the points changed cluster")
                if (step > 0 and delta < self.tol) or step >= self.max_iter:
                    break
                p = target_distribution(q.astype(np.float64)).astype(np.float32)
            if at + size > n:  # a new pass over the data, in a new order
                order, at = rng.permutation(n), 0
            idx = order[at : at + size]
            at += size
            self.model_.train_on_batch(x[idx], p[idx])
            step += 1
        self.n_iter_ = step
        self.labels_ = labels

    # -- after fit -----------------------------------------------------------------
    def predict_proba(self, x) -> np.ndarray:
        """The soft assignment q ``(N, k)`` of each sample to each cluster."""
        self._check_fitted("predict_proba")
        return self.model_.predict(self._input(x, "predict_proba"), PREDICT_BATCH, verbose=0)

    def predict(self, x) -> np.ndarray:
        """The most likely cluster of each sample."""
        self._check_fitted("predict")
        q = self.model_.predict(self._input(x, "predict"), PREDICT_BATCH, verbose=0)
        return q.argmax(axis=1)

    def transform(self, x) -> np.ndarray:
        """The embedding ``(N, d)`` of each sample (the encoder's output)."""
        self._check_fitted("transform")
        return self.encoder_.predict(self._input(x, "transform"), PREDICT_BATCH, verbose=0)


def _check_int(name, value, low):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"DEC: {name} must be an int >= {low}. Received: {name}={value!r}")


def _check_real(name, value, positive):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"DEC: {name} must be a number {bound}. Received: {name}={value!r}")
