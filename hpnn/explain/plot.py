"""PNG pictures of explanations: heatmaps over the image (needs the ``plot`` extra).

Figures are drawn on matplotlib's Agg canvas directly (``matplotlib.figure.Figure``),
so nothing here touches pyplot's global backend or opens a window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def figure(**kwargs):
    """A matplotlib Figure on the Agg canvas; a clear ImportError without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "hpnn's plots need matplotlib: pip install 'hpnn[plot]' (or pip install matplotlib)."
        ) from e
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def heatmap_of(attribution) -> np.ndarray:
    """An ``(H, W)`` map from an attribution ``(H, W)`` or ``(H, W, C)``: max |value| over C."""
    a = np.asarray(attribution, dtype=np.float32)
    if a.ndim == 3:
        a = np.abs(a).max(axis=-1)
    elif a.ndim != 2:
        raise ValueError(f"heatmap_of: expected (H, W) or (H, W, C). Received: shape={a.shape}")
    return a


def _show_image(ax, image):
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3 and img.shape[-1] not in (3, 4):  # grey, or channels that are not RGB
        img = img.mean(axis=-1)
    elif img.ndim == 3:
        img = img[..., :3]
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_axis_off()


def _overlay(ax, image, heat, alpha, cmap, title):
    _show_image(ax, image)
    heat = np.asarray(heat, dtype=np.float32)
    hi = float(np.abs(heat).max())
    ax.imshow(heat / hi if hi > 0 else heat, cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    if title:
        ax.set_title(title, fontsize=9)


def save_overlay(image, attribution, path, *, alpha=0.5, cmap="jet", title=None, dpi=100):
    """Write one PNG: ``image`` ``(H, W[, C])`` with the heatmap of ``attribution`` on top."""
    fig = figure(figsize=(3, 3))
    _overlay(fig.add_subplot(1, 1, 1), image, heatmap_of(attribution), alpha, cmap, title)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return Path(path)


def plot_explanations(image, maps: dict, path, *, alpha=0.5, cmap="jet", title=None, dpi=100):
    """Write one PNG: the image, then one overlay per entry of ``maps`` (name -> attribution)."""
    fig = figure(figsize=(2.6 * (len(maps) + 1), 2.9))
    ax = fig.add_subplot(1, len(maps) + 1, 1)
    _show_image(ax, image)
    ax.set_title(title or "input", fontsize=9)
    for k, (name, attribution) in enumerate(maps.items(), start=2):
        _overlay(
            fig.add_subplot(1, len(maps) + 1, k), image, heatmap_of(attribution), alpha, cmap, name
        )
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return Path(path)
