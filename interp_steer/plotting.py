"""Figures: arrays in, matplotlib ``Axes`` out. Nothing here calls ``plt.show()`` or saves files;
callers (the CLI, notebooks) decide where a figure goes. See :func:`save_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)  # headless by default; notebooks may still pick their backend
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402


def plot_layer_profile(
    layers: Sequence[int],
    values: Sequence[float],
    *,
    band: tuple[Sequence[float], Sequence[float]] | None = None,
    mark: int | None = None,
    label: str | None = None,
    ylabel: str = "",
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """A per-layer curve, optionally with a ``(low, high)`` band and a marked layer."""
    layers = np.asarray(layers)
    values = np.asarray(values, dtype=float)
    if layers.shape != values.shape:
        raise ValueError(f"layers has shape {layers.shape} but values has shape {values.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    (line,) = ax.plot(layers, values, marker="o", markersize=3, label=label)
    if band is not None:
        low, high = (np.asarray(b, dtype=float) for b in band)
        ax.fill_between(layers, low, high, alpha=0.2, color=line.get_color(), linewidth=0)
    if mark is not None:
        ax.axvline(mark, color=line.get_color(), linestyle="--", linewidth=1)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if label:
        ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def save_figure(ax_or_fig, path: str | Path, *, dpi: int = 150) -> Path:
    """Save the figure an ``Axes`` (or ``Figure``) belongs to as PNG, close it, return the path."""
    figure = ax_or_fig.figure if isinstance(ax_or_fig, Axes) else ax_or_fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


__all__ = ["plot_layer_profile", "save_figure"]
