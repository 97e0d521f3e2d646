"""Fused loss kernels that work from logits: stable and one pass each way.

Each returns the per-sample loss, shape ``(N,)`` (more generally the input shape
without the class axis).
"""

from __future__ import annotations

from hpnn.backend import get_xp
from hpnn.engine.ops.activation import log_softmax_array
from hpnn.engine.tensor import Function, Tensor


class SoftmaxCrossEntropy(Function):
    """``-sum(t * log_softmax(z))`` over the last axis; ``t`` needs no gradient."""

    def forward(self, z, t):
        logp = log_softmax_array(z)
        self.logp, self.t = logp, t
        return -(t * logp).sum(axis=-1)

    def backward(self, gy):
        xp = get_xp(gy)
        t = self.t
        # d/dz = softmax(z) * sum(t) - t  (sum(t) is 1 for one-hot or smoothed labels)
        g = xp.exp(self.logp) * t.sum(axis=-1, keepdims=True) - t
        g *= gy[..., None]
        return g, None


class SparseSoftmaxCrossEntropy(Function):
    """``-log_softmax(z)[label]``; ``labels`` are integers, one per row."""

    def forward(self, z, labels):
        xp = get_xp(z)
        logp = log_softmax_array(z)
        self.logp = logp
        self.labels = labels
        self.rows = xp.indices(labels.shape)
        return -logp[(*self.rows, labels)]

    def backward(self, gy):
        xp = get_xp(gy)
        g = xp.exp(self.logp)
        g[(*self.rows, self.labels)] -= 1
        g *= gy[..., None]
        return g, None


class SigmoidBinaryCrossEntropy(Function):
    """Elementwise ``max(z, 0) - z * t + log(1 + exp(-|z|))`` (no mean)."""

    def forward(self, z, t):
        xp = get_xp(z)
        self.z, self.t = z, t
        return xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-abs(z)))

    def backward(self, gy):
        xp = get_xp(gy)
        z = self.z
        s = (xp.tanh(z * z.dtype.type(0.5)) + 1) * z.dtype.type(0.5)
        return gy * (s - self.t), None


def softmax_cross_entropy(logits, target) -> Tensor:
    """Cross-entropy between probability targets and ``softmax(logits)``, per sample."""
    return SoftmaxCrossEntropy()(logits, target)


def sparse_softmax_cross_entropy(logits, labels) -> Tensor:
    """Cross-entropy between integer labels and ``softmax(logits)``, per sample."""
    return SparseSoftmaxCrossEntropy()(logits, labels)


def sigmoid_binary_cross_entropy(logits, target) -> Tensor:
    """Binary cross-entropy between targets and ``sigmoid(logits)``, elementwise."""
    return SigmoidBinaryCrossEntropy()(logits, target)
