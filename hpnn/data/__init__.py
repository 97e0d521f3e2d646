"""Input checking and batching for ``fit``/``evaluate``/``predict``."""
