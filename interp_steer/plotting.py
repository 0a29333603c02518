"""Figures: arrays in, matplotlib ``Axes`` out. Nothing here calls ``plt.show()`` or saves files;
callers (the CLI, notebooks) decide where a figure goes. See :func:`save_figure`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

# No backend is forced here: matplotlib falls back to Agg on headless machines by itself, and
# forcing one would stop notebooks from showing figures inline.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

Numbers = Sequence[float | int] | np.ndarray
"""Anything array-like of numbers: a list, a tuple or a numpy array."""


def plot_layer_profile(
    layers: Numbers,
    values: Numbers,
    *,
    band: tuple[Numbers, Numbers] | None = None,
    mark: int | None = None,
    label: str | None = None,
    ylabel: str = "",
    xlabel: str = "layer",
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """A per-layer curve (or any x), optionally with a ``(low, high)`` band and a marked x."""
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
    ax.set_xlabel(xlabel)
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
    from interp_steer._io import atomic_path

    path = Path(path)
    try:
        figure.tight_layout()
        with atomic_path(path) as temp:
            figure.savefig(temp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(figure)
    return path


def cell_formatter(values, *, significant: int = 3, max_decimals: int = 4) -> Callable[[float], str]:
    """How to write the numbers of a heatmap's cells, chosen from the values it will write: each
    with ``significant`` significant figures, and with as many decimals as the values' range needs
    to show at least one significant figure of it (values close together keep their differences),
    at most ``max_decimals``. So perplexities of 3.89, 3.69 and 10.19 print as "3.89", "3.69" and
    "10.2", 3.96 and 4.04 as "3.96" and "4.04" (not both "4"), and 166 as "166". NaN prints as
    "n/a"; ``values`` may hold NaN and infinities, which the choice ignores."""
    if significant < 1 or max_decimals < 0:
        raise ValueError(f"significant must be >= 1 and max_decimals >= 0, got {significant} and {max_decimals}")
    finite = np.asarray(values, dtype=float).ravel()
    finite = finite[np.isfinite(finite)]
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    floor = -int(np.floor(np.log10(spread) + 1e-9)) if spread > 0 else 0  # 1e-9: 4.002 - 4.001 is 0.00099...

    def write(value: float) -> str:
        if not np.isfinite(value):
            return "n/a" if np.isnan(value) else str(value)
        own = significant - 1 - int(np.floor(np.log10(abs(value)) + 1e-9)) if value != 0 else 0
        return f"{value:.{min(max_decimals, max(0, own, floor))}f}"

    return write


def plot_heatmap(
    matrix,
    *,
    row_labels: Sequence | None = None,
    col_labels: Sequence | None = None,
    title: str | None = None,
    cbar_label: str = "",
    vmin: float | int | None = None,
    vmax: float | int | None = None,
    cmap: str = "RdBu_r",
    annotate: bool = False,
    ax: Axes | None = None,
) -> Axes:
    """A labelled heatmap (e.g. cosine between layers, or a grid of scores)."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D array, got shape {matrix.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.5))
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
    ax.figure.colorbar(image, ax=ax, label=cbar_label)
    for axis, labels in ((ax.set_yticks, row_labels), (ax.set_xticks, col_labels)):
        if labels is not None:
            step = max(1, len(labels) // 12)
            axis(range(0, len(labels), step), [str(x) for x in list(labels)[::step]])
    if annotate:
        write = cell_formatter(matrix, significant=2)
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, write(value), ha="center", va="center", fontsize=7)
    if title:
        ax.set_title(title)
    return ax


def plot_projection_scatter(
    points,
    labels: Sequence[str],
    *,
    direction=None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Activations projected on their first two principal components, coloured by label, with an
    optional direction drawn as an arrow from the data mean."""
    points = np.asarray(points, dtype=float)
    labels = np.asarray(labels)
    if points.ndim != 2 or len(points) != len(labels):
        raise ValueError(f"points must be [n, d] with one label each; got {points.shape} and {len(labels)} labels")
    mean = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - mean, full_matrices=False)
    basis = vt[:2]
    xy = (points - mean) @ basis.T
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    for name in dict.fromkeys(labels.tolist()):
        chosen = labels == name
        ax.scatter(xy[chosen, 0], xy[chosen, 1], s=10, alpha=0.7, label=str(name))
    if direction is not None:
        arrow = basis @ np.asarray(direction, dtype=float)
        scale = 0.4 * np.abs(xy).max() / max(np.linalg.norm(arrow), 1e-12)
        ax.annotate("", xy=tuple(arrow * scale), xytext=(0, 0),
                    arrowprops={"arrowstyle": "->", "color": "black", "lw": 1.5})
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return ax


__all__ = ["cell_formatter", "plot_heatmap", "plot_layer_profile", "plot_projection_scatter", "save_figure"]
