"""Shared fixtures."""

import os

import pytest


@pytest.fixture
def keras():
    """Keras 3 on its torch backend, the reference of the comparison tests (skipped
    where torch or keras is not installed)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    module = pytest.importorskip("keras")
    if module.backend.backend() != "torch":
        pytest.skip("the comparison runs Keras on its torch backend")
    return module
