"""Keras 3's initializers that hpnn gained: TruncatedNormal, LecunUniform, Identity, the
aliases, serialize/deserialize; checked against Keras' definitions and draws."""

import math

import numpy as np
import pytest

import hpnn
from hpnn import initializers, layers

ALIASES = [
    "constant", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "identity",
    "lecun_normal", "lecun_uniform", "ones", "orthogonal", "random_normal", "random_uniform",
    "truncated_normal", "variance_scaling", "zeros", "IdentityInitializer",
    "OrthogonalInitializer",
]  # fmt: skip


def test_truncated_normal_redraws_beyond_two_stddev_as_keras(keras):
    ours = initializers.TruncatedNormal(mean=0.3, stddev=0.1, seed=1)((300, 400), "float64")
    theirs = keras.ops.convert_to_numpy(
        keras.initializers.TruncatedNormal(mean=0.3, stddev=0.1, seed=1)((300, 400))
    )
    for a in (ours, theirs):
        assert np.abs(a - 0.3).max() <= 0.2 + 1e-7  # nothing beyond 2 stddev
        assert a.mean() == pytest.approx(0.3, abs=1e-3)
    # the spread of a normal cut at 2 stddev: 0.8796 stddev, in both
    assert ours.std() == pytest.approx(0.1 * 0.87962566, rel=5e-3)
    assert ours.std() == pytest.approx(theirs.std(), rel=1e-2)
    # the share in each of 8 bins is the truncated normal's (120,000 draws: within 5 sigma)
    edges = np.linspace(-2, 2, 9)
    cdf = np.array([0.5 * (1 + math.erf(e / math.sqrt(2))) for e in edges])
    want = np.diff(cdf) / (cdf[-1] - cdf[0])
    for a in (ours, theirs):
        got = np.histogram(a, bins=8, range=(0.1, 0.5))[0] / a.size
        np.testing.assert_allclose(got, want, atol=5 * np.sqrt(0.2 * 0.8 / a.size))


def test_truncated_normal_by_hand_and_seeds():
    a = initializers.TruncatedNormal(stddev=2.0, seed=3)((1000,))
    assert a.dtype == np.float32 and np.abs(a).max() <= 4.0 and np.abs(a).max() > 3.5
    b = initializers.TruncatedNormal(stddev=2.0, seed=3)((1000,))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, initializers.TruncatedNormal(stddev=2.0, seed=4)((1000,)))
    assert initializers.TruncatedNormal(0.5, 0.2, seed=7).get_config() == {
        "seed": 7,
        "mean": 0.5,
        "stddev": 0.2,
    }


def test_lecun_uniform_follows_keras(keras):
    shape = (3, 3, 16, 32)  # fan_in = 3 * 3 * 16
    limit = np.sqrt(3 / 144)
    ours = initializers.LecunUniform(seed=0)(shape)
    theirs = keras.ops.convert_to_numpy(keras.initializers.LecunUniform(seed=0)(shape))
    for a in (ours, theirs):
        assert np.abs(a).max() <= limit and np.abs(a).max() > 0.98 * limit
        assert a.var() == pytest.approx(1 / 144, rel=0.05)
    assert ours.var() == pytest.approx(theirs.var(), rel=0.05)


def test_identity_follows_keras(keras):
    for shape in ((3, 3), (3, 5), (5, 2)):
        ours = initializers.Identity(gain=2.5)(shape)
        theirs = keras.ops.convert_to_numpy(keras.initializers.Identity(gain=2.5)(shape))
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match=r"2-D matrices only\. Received: shape=\(2, 3, 4\)"):
        initializers.Identity()((2, 3, 4))


def test_identity_and_orthogonal_by_hand():
    np.testing.assert_array_equal(initializers.identity(gain=3.0)((2, 3)), [[3, 0, 0], [0, 3, 0]])
    q = initializers.OrthogonalInitializer(gain=2.0, seed=1)((6, 4))
    np.testing.assert_allclose(q.T @ q, 4 * np.eye(4), atol=1e-5)
    assert initializers.OrthogonalInitializer is initializers.Orthogonal
    assert initializers.IdentityInitializer is initializers.Identity


def test_aliases_are_the_classes_keras_has(keras):
    for name in ALIASES:
        ours, theirs = getattr(initializers, name), getattr(keras.initializers, name)
        assert isinstance(ours, type) and issubclass(ours, initializers.Initializer), name
        assert ours.__name__ == theirs.__name__, name


def test_names_in_layers_and_get():
    hpnn.utils.set_random_seed(0)
    for name, check in [
        ("truncated_normal", lambda k: np.abs(k).max() <= 0.1 + 1e-7),
        ("lecun_uniform", lambda k: np.abs(k).max() <= np.sqrt(3 / 4)),
        ("identity", lambda k: np.array_equal(k, np.eye(4, 4))),
    ]:
        dense = layers.Dense(4, kernel_initializer=name)
        dense.build((None, 4))
        assert check(dense.kernel.numpy()), name
        assert (
            type(initializers.get(name)).__name__ == type(initializers.get(name.upper())).__name__
        )


def test_serialize_deserialize(keras):
    for init in (
        initializers.TruncatedNormal(0.1, 0.3, seed=5),
        initializers.LecunUniform(seed=2),
        initializers.Identity(gain=0.5),
        initializers.Orthogonal(gain=1.5),
    ):
        back = initializers.deserialize(initializers.serialize(init))
        assert type(back) is type(init) and back.get_config() == init.get_config()
    # Keras' own entries (module, registered_name) read too
    entry = keras.initializers.serialize(keras.initializers.TruncatedNormal(0.2, 0.4, seed=3))
    got = initializers.deserialize(entry)
    assert isinstance(got, initializers.TruncatedNormal)
    assert (got.mean, got.stddev, got.seed) == (0.2, 0.4, 3)
    assert isinstance(initializers.deserialize("lecun_uniform"), initializers.LecunUniform)


def test_deserialize_finds_registered_and_custom_classes():
    class Halves(initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return np.full(shape, 0.5, dtype or "float32")

    entry = {"class_name": "Halves", "config": {}}
    with pytest.raises(ValueError, match="no class or function 'Halves'"):
        initializers.deserialize(entry)
    assert isinstance(initializers.deserialize(entry, {"Halves": Halves}), Halves)
    with hpnn.saving.custom_object_scope({"Halves": Halves}):
        assert isinstance(initializers.get(entry), Halves)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"TruncatedNormal: stddev must be > 0\. Received: "):
        initializers.TruncatedNormal(stddev=0)
