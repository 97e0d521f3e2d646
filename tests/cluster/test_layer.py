"""DEC's soft assignment (op and layer) and target distribution against NumPy."""

import numpy as np
import pytest

from hpnn.cluster import ClusteringLayer, soft_assignment, target_distribution
from hpnn.testing import OpTest, check_grad


def soft_assignment_reference(z, c, alpha=1.0):
    """The paper's formula, by broadcasting (N, k, d)."""
    d = ((z[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    u = (1 + d / alpha) ** (-(alpha + 1) / 2)
    return u / u.sum(1, keepdims=True)


def _cases():
    rng = np.random.default_rng(0)
    return [
        (rng.standard_normal((7, 3)), rng.standard_normal((4, 3))),
        (rng.standard_normal((5, 2)) * 3, rng.standard_normal((2, 2))),
        (rng.standard_normal((1, 5)), rng.standard_normal((3, 5))),
    ]


class TestSoftAssignment(OpTest):
    cases = staticmethod(_cases)

    def op(self, z, c):
        return soft_assignment(z, c)

    def reference(self, z, c):
        return soft_assignment_reference(z, c)


@pytest.mark.parametrize("alpha", [0.5, 2.0, 10.0])
class TestSoftAssignmentAlpha(OpTest):
    cases = staticmethod(_cases)

    @pytest.fixture(autouse=True)
    def _alpha(self, alpha):
        self.alpha = alpha

    def op(self, z, c):
        return soft_assignment(z, c, self.alpha)

    def reference(self, z, c):
        return soft_assignment_reference(z, c, self.alpha)


def test_gradient_of_the_kl_loss_through_the_target():
    """The DEC loss itself, KL(P || Q) with P fixed, checks by finite differences."""
    rng = np.random.default_rng(1)
    z, c = rng.standard_normal((6, 3)), rng.standard_normal((3, 3))
    p = target_distribution(soft_assignment_reference(z, c))

    def kl(zt, ct):
        q = soft_assignment(zt, ct)
        return ((q.log() * -1.0 + np.log(p)) * p).sum()

    check_grad(kl, [z, c])


def test_far_points_do_not_underflow_in_float32():
    z = np.array([[1e4, 0.0], [0.0, 0.0]], np.float32)
    c = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    q = soft_assignment(z, c).numpy()
    assert np.isfinite(q).all()
    np.testing.assert_allclose(q.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(q[1], [2 / 3, 1 / 3], rtol=1e-6)


def test_only_the_gradients_asked_for_are_computed():
    from hpnn import Tensor

    z = Tensor(np.ones((2, 3)), requires_grad=True)
    c = Tensor(np.zeros((4, 3)))
    soft_assignment(z, c).sum().backward()
    assert z.grad is not None and c.grad is None


def test_target_distribution_against_the_formula():
    q = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.4, 0.4, 0.2]])
    f = q.sum(0)  # 1.2, 1.4, 0.4
    expected = q**2 / f
    expected /= expected.sum(1, keepdims=True)
    p = target_distribution(q)
    np.testing.assert_allclose(p, expected)
    np.testing.assert_allclose(p.sum(1), 1)
    # a hand-computed row: 0.49/1.2, 0.04/1.4, 0.01/0.4, normalised
    row = np.array([0.49 / 1.2, 0.04 / 1.4, 0.01 / 0.4])
    np.testing.assert_allclose(p[0], row / row.sum())
    assert p[0, 0] > q[0, 0]  # sharper: confident assignments gain


def test_target_distribution_rejects_the_wrong_rank():
    with pytest.raises(ValueError, match=r"rank 2.*Received: shape=\(3,\)"):
        target_distribution(np.ones(3))


def test_clustering_layer_holds_the_centres_and_checks_its_input():
    layer = ClusteringLayer(3, name="soft")
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    q = layer(x).numpy()
    (centres,) = layer.get_weights()
    assert centres.shape == (3, 4) and q.shape == (5, 3)
    np.testing.assert_allclose(q, soft_assignment_reference(x, centres), rtol=1e-5)
    assert layer.get_config()["n_clusters"] == 3
    with pytest.raises(ValueError, match=r"ClusteringLayer 'soft'.*rank 2.*Received: shape"):
        layer(np.zeros((5, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"axis 1.*size 4.*Received: shape=\(5, 2\)"):
        layer(np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match="n_clusters must be a positive int"):
        ClusteringLayer(0)
    with pytest.raises(ValueError, match=r"alpha must be > 0\. Received: alpha=-1"):
        ClusteringLayer(2, alpha=-1)
