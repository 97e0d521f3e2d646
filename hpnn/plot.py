"""Plots of training runs, written to image files with matplotlib's Agg backend.

matplotlib is an optional extra (``pip install matplotlib``); it is imported only
when a plot is drawn, and never switches the backend of a session that already
imported pyplot.
"""

from __future__ import annotations

import os


def require() -> None:
    """Raise the ImportError of a missing matplotlib now, before any work is done."""
    _pyplot()


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(
            "Plotting needs matplotlib, an optional extra: pip install matplotlib "
            f"(or pip install 'hpnn[test]'). Received: ImportError({e})"
        ) from e
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _curves(history) -> dict:
    """``{"loss": [...], ...}`` from a History, a fit() return value, or a plain dict."""
    curves = getattr(history, "history", history)
    if not isinstance(curves, dict) or not curves:
        raise ValueError(
            "plot_history expects a History (what fit() returns) or a dict of per-epoch lists. "
            f"Received: {type(history).__name__}"
        )
    return curves


def plot_history(history, path, title=None):
    """Draw each learning curve (train vs ``val_``), one panel per quantity, to ``path``.

    Args:
        history: a ``History`` (``model.fit(...)``'s return) or ``{"loss": [...], ...}``.
        path: where to write the image; the format follows the suffix (``.png``).
        title: an optional title above the panels.

    Returns:
        ``path``.

    >>> plot_history(model.fit(x, y, validation_split=0.2, epochs=10), "curves.png")
    """
    curves = _curves(history)
    names = [k for k in curves if not k.startswith("val_")]
    names += [k[4:] for k in curves if k.startswith("val_") and k[4:] not in curves]
    names.sort(key=lambda k: (k != "loss", k))  # loss first
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    try:
        for ax, name in zip(axes[0], names, strict=True):
            for key, label, style in ((name, "train", "-"), (f"val_{name}", "validation", "--")):
                if key in curves:
                    values = list(curves[key])
                    ax.plot(range(1, len(values) + 1), values, style, marker=".", label=label)
            ax.set_xlabel("epoch")
            ax.set_title(name)
            if name == "learning_rate":
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(os.fspath(path), dpi=100)
    finally:
        plt.close(fig)
    return path


def plot_lr_find(result, path):
    """Smoothed loss against learning rate (log axis), with the suggestion marked.

    Args:
        result: what ``hpnn.tune.lr_find`` returns (``lrs``, ``losses``, ``raw_losses``,
            ``centered_losses``, ``suggestion``).
        path: where to write the image.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        ax.plot(result.lrs, result.raw_losses, color="0.75", lw=0.8, label="batch loss")
        ax.plot(
            result.lrs, result.losses, color="C0", lw=0.8, ls=":", label="smoothed (causal, lags)"
        )
        centered = getattr(result, "centered_losses", None)
        if centered:
            ax.plot(result.lrs, centered, color="C0", label="smoothed (zero lag)")
        if result.suggestion is not None:
            ax.axvline(
                result.suggestion, color="C3", ls="--", label=f"suggestion {result.suggestion:.2e}"
            )
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        finite = [v for v in result.losses if v == v and abs(v) != float("inf")]
        if finite:  # the divergence at the end would squash the useful part
            lo, hi = min(finite), min(max(finite), 1.5 * max(finite[: max(1, len(finite) // 10)]))
            ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo) + 1e-12)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.fspath(path), dpi=100)
    finally:
        plt.close(fig)
    return path


__all__ = ["plot_history", "plot_lr_find"]
