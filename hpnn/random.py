"""Seeding: one global seed source, and per-object generators drawn from it.

Every random op (initializers, shuffling, dropout, augmentation) owns a
``numpy.random.Generator``. Objects created without an explicit seed draw their
generator's seed from the global source, so ``set_seed`` before building a model
makes the whole run reproducible, while nothing reads NumPy's global state.
"""

from __future__ import annotations

import numpy as np

_global = np.random.default_rng()


def set_seed(seed: int) -> None:
    """Reset the global seed source."""
    global _global
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    _global = np.random.default_rng(int(seed))


def make_rng(seed=None) -> np.random.Generator:
    """Return a Generator: from ``seed`` (int or Generator), else from the global source."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng(int(_global.integers(2**63)))
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(int(seed))
    raise ValueError(
        f"seed must be None, a non-negative integer or a numpy Generator. Received: seed={seed!r}"
    )
