"""The collision study's figures. Each takes a result (a finished run, or one read back with
:meth:`CollisionResult.load`) and an optional ``ax``/``fig`` and returns it; only
:func:`write_figures` touches files. Everything drawn is read from what ``collision.json`` holds
(cell means, dominance curves, decomposition, geometry), so a saved run's figures can be redrawn
with new code: ``write_figures(CollisionResult.load(out), out)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import CenteredNorm

from interp_steer.plotting import cell_formatter, save_figure

if TYPE_CHECKING:
    from interp_steer.studies.collision.result import CollisionResult

HEATMAP_METRICS = (
    ("vader", "moral valence: VADER compound", "RdBu_r"),
    ("probe_valence", "moral valence: probe P(A)", "RdBu_r"),
    ("perplexity", "coherence: perplexity (log scale)", "viridis"),
    ("repetition", "coherence: repeated 3-grams", "viridis"),
    ("distinct_2", "coherence: distinct-2", "viridis"),
    ("style_a", "surface style: P(A's style)", "RdBu_r"),
)
NEUTRAL = {"vader": 0.0, "probe_valence": 0.5, "style_a": 0.5}
"""Where a diverging colour map turns white: no lean to either persona."""

FIGURES = ("heatmaps", "dominance", "layer_profiles", "decomposition", "geometry")
PAPER_GAMMA = 0.5
"""The paper's dominance curve d(α) = √α, used when a result's dominance finding does not record its own."""
LEANS = {"A": ", leans to A", "B": ", leans to B"}
"""The legend's words for a :class:`~interp_steer.studies.mixing.Dominance` verdict (none: no lean shown)."""


def cell_means(result: CollisionResult, metric: str) -> np.ndarray:
    """``[lambdas, alphas]`` cell means of a metric, as ``collision.json`` records them (perplexity:
    geometric mean over prompts); NaN where a cell has none."""
    alphas, lambdas = list(result.config.alphas), list(result.config.lambdas)
    matrix = np.full((len(lambdas), len(alphas)), np.nan)
    for cell in result.cells:
        mean = cell["metrics"][metric]["mean"]
        if mean is not None:
            matrix[lambdas.index(cell["lambda"]), alphas.index(cell["alpha"])] = mean
    return matrix


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def cell_writer(metric: str, matrix: np.ndarray) -> Callable[[float], str]:
    """How a heatmap writes its cells: perplexity (unbounded, often close together) with three
    significant figures and enough decimals to tell its cells apart (:func:`~interp_steer.plotting.cell_formatter`),
    the bounded scores with two decimals."""
    return cell_formatter(matrix, significant=3) if metric == "perplexity" else "{:.2f}".format


def annotate_cells(ax, matrix: np.ndarray, write: Callable[[float], str]) -> None:
    """Write each finite cell's value on a heatmap with ``write`` (see :func:`cell_writer`)."""
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            ax.text(
                j,
                i,
                write(value),
                ha="center",
                va="center",
                fontsize=7,
                color="black",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "alpha": 0.5, "lw": 0},
            )


def plot_heatmaps(result: CollisionResult, fig=None):
    """One α × λ heatmap per axis metric (rows: λ, columns: α). Diverging maps are white where
    neither persona is favoured (VADER 0, probabilities 0.5); perplexity is coloured on a log scale
    and written with enough figures to tell its cells apart."""
    fig = fig or plt.figure(figsize=(15, 7.5))
    alphas, lambdas = result.config.alphas, result.config.lambdas
    for k, (metric, title, cmap) in enumerate(HEATMAP_METRICS):
        ax = fig.add_subplot(2, 3, k + 1)
        matrix = cell_means(result, metric)
        shown = np.log10(matrix) if metric == "perplexity" else matrix
        norm = CenteredNorm(vcenter=NEUTRAL[metric]) if metric in NEUTRAL else None
        image = ax.imshow(shown, cmap=cmap, norm=norm, aspect="auto", origin="lower")
        bar = fig.colorbar(image, ax=ax)
        if metric == "perplexity":
            bar.set_label("log₁₀ perplexity")
        annotate_cells(ax, matrix, cell_writer(metric, matrix))
        ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas], fontsize=7)
        ax.set_yticks(range(len(lambdas)), [f"{x:g}" for x in lambdas])
        ax.set_xlabel("α (0 = pure B, 1 = pure A)")
        ax.set_ylabel("λ (× residual norm)")
        base = result.unsteered["metrics"][metric]["mean"]
        ax.set_title(f"{title}\nunsteered: {_num(base)}", fontsize=9)
    fig.suptitle(f"Collision grid at layer {result.layer} ({result.model['name']})")
    return fig


def paper_gamma(result: CollisionResult) -> float:
    """The exponent γ of the paper's curve d(α) = α^γ, as the dominance rule recorded it."""
    finding = next((f for f in result.findings if f.key == "dominance"), None)
    gamma = None if finding is None else finding.numbers.get("paper_gamma")
    return PAPER_GAMMA if gamma is None else float(gamma)


def paper_curve_label(gamma: float) -> str:
    """The legend entry of the paper's reference curve."""
    curve = "√α" if math.isclose(gamma, 0.5) else f"α^{gamma:g}"
    return f"the paper's reference curve, d(α) = {curve}"


def dominance_label(lam: float, area: float | None, verdict: str, *, best: bool) -> str:
    """One strength's legend entry: its area and, where the area's interval says so, which persona
    the mix leans to (nothing when it shows no lean)."""
    shown = "n/a" if area is None or not math.isfinite(area) else f"{area:+.2f}"
    return f"λ = {lam:g}{' (best usable)' if best else ''}: area {shown}{LEANS.get(verdict, '')}"


SHORT_SCALES = {
    "vader_raw": "raw VADER valence √15·c/√(1 − c²)",
    "artanh": "2·artanh({score})",
    "per_word": "VADER valence per sentiment word",
    "logit": "logit({score})",
}


def short_scale(score: str, scale: str) -> str:
    """The scale a dominance curve is computed on, short enough for an axis label."""
    if scale in SHORT_SCALES:
        return SHORT_SCALES[scale].format(score="c" if score == "vader" else score)
    return "probe log-odds" if score.endswith("log_odds") else f"{score} (as measured)"


def plot_dominance(result: CollisionResult, fig=None):
    """d(α) against the diagonal and the paper's reference curve, one line per strength (the best
    usable one bold, with its 95 % band), for VADER and the probe readout, each on the unbounded
    scale its dominance was computed on (:attr:`Dominance.scale`, named on the axes)."""
    fig = fig or plt.figure(figsize=(11, 5.4))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(result.config.lambdas)))
    gamma = paper_gamma(result)
    grid = np.linspace(0, 1, 101)
    for k, (key, label) in enumerate(
        (("vader", "VADER valence"), ("probe_valence", "probe readout"))
    ):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="linear (no dominance)")
        ax.plot(
            grid,
            grid**gamma,
            color="black",
            linestyle="--",
            linewidth=1,
            label=paper_curve_label(gamma),
        )
        ax.axhline(0.5, color="grey", linewidth=0.6, label="d(α) = 0.5: the balance point α*")
        best = result.coherence["best_lambda"]
        for d, colour, lam in zip(
            result.dominance[key], colours, result.config.lambdas, strict=True
        ):
            curve = np.array(d.curve, dtype=float)
            chosen = math.isclose(lam, best)
            ax.plot(
                d.alphas,
                curve,
                marker="o",
                markersize=3 if chosen else 2,
                color=colour,
                linewidth=2.2 if chosen else 0.9,
                alpha=1.0 if chosen else 0.6,
                label=dominance_label(lam, d.area.mean, d.verdict, best=chosen),
            )
            if chosen:  # one band keeps the figure readable; every interval is in collision.json
                ax.fill_between(
                    d.alphas,
                    np.array(d.curve_low, dtype=float),
                    np.array(d.curve_high, dtype=float),
                    color=colour,
                    alpha=0.18,
                    linewidth=0,
                )
        first = result.dominance[key][0]
        ax.set_ylim(-0.6, 1.6)
        ax.set_xlabel("α (share of persona A)")
        ax.set_ylabel(
            f"d(α) = (s(α) − s(0)) / (s(1) − s(0))\ns: {short_scale(first.score, first.scale)}",
            fontsize=8,
        )
        ax.set_title(f"dominance on {label}\n(above the diagonal: A dominates)", fontsize=9)
        ax.legend(
            frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2
        )
        ax.grid(alpha=0.3)
    return fig


def plot_layer_profiles(result: CollisionResult, ax=None):
    """Probe accuracy per layer for A vs baseline, B vs baseline and A vs B; the shared and steering layers marked."""
    from interp_steer.probes import plot_localisation

    ax = plot_localisation(
        result.localisation, title="where the personas live (held-out probe accuracy)", ax=ax
    )
    if result.layer != result.localisation.shared_layer:
        ax.axvline(result.layer, color="red", linewidth=1.2, label=f"steering layer {result.layer}")
        ax.legend(frameon=False, fontsize=8)
    return ax


def plot_decomposition(result: CollisionResult, fig=None):
    """Observed shift per layer after the steering layer: coefficients on v_A and v_B, and the residual fraction."""
    fig = fig or plt.figure(figsize=(16, 4))
    decomposition = result.decomposition
    colours = plt.cm.coolwarm(np.linspace(0, 1, len(decomposition["observed"])))
    ax_share, ax_between, ax_res = (fig.add_subplot(1, 3, k) for k in (1, 2, 3))
    for entry, colour in zip(decomposition["observed"], colours, strict=True):
        layers = [row["layer"] for row in entry["layers"]]
        share = [row["share_a"] for row in entry["layers"]]
        between = np.array([row["share_between_ends"] for row in entry["layers"]], dtype=float)
        ax_share.plot(
            layers, share, marker="o", markersize=2, color=colour, label=f"α = {entry['alpha']:g}"
        )
        ax_between.plot(
            layers, between, marker="o", markersize=2, color=colour, label=f"α = {entry['alpha']:g}"
        )
        for ax in (ax_share, ax_between):
            ax.axhline(entry["alpha"], color=colour, linestyle=":", linewidth=0.8)
        ax_res.plot(
            layers,
            [row["residual_fraction"]["mean"] for row in entry["layers"]],
            marker="o",
            markersize=2,
            color=colour,
            label=f"α = {entry['alpha']:g}",
        )
    ax_share.set_ylim(-0.5, 1.5)
    ax_share.set_xlabel("layer")
    ax_share.set_ylabel("A's share  a / (a + b)")
    ax_share.set_title(
        f"observed shift on (v_A, v_B), λ = {decomposition['lambda']:g} at layer "
        f"{decomposition['layer']} (dotted: α)",
        fontsize=9,
    )
    ax_between.set_ylim(-0.5, 1.5)
    ax_between.set_xlabel("layer")
    ax_between.set_ylabel("share placed between the pure ends' shares")
    ax_between.set_title("above the dotted α: A's part survives propagation better", fontsize=9)
    ax_res.set_xlabel("layer")
    ax_res.set_ylabel("|residual|² / |shift|²")
    ax_res.set_ylim(0, 1.05)
    ax_res.set_title("part of the shift outside span(v_A, v_B)", fontsize=9)
    for ax in (ax_share, ax_between, ax_res):
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=7, ncol=2)
    return fig


def plot_geometry(result: CollisionResult, fig=None):
    """cos(v_A, v_B) and each vector's norm relative to the residual, per layer."""
    fig = fig or plt.figure(figsize=(11, 3.6))
    g = result.geometry
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(g["layers"], g["cosine"], marker="o", markersize=3, color="black")
    ax.axvline(result.layer, color="red", linewidth=1, label=f"steering layer {result.layer}")
    ax.set_ylim(min(0.0, min(g["cosine"]) - 0.05), 1.0)
    ax.set_xlabel("layer")
    ax.set_ylabel("cos(v_A, v_B)")
    ax.set_title("the two persona vectors share most of their direction", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(
        g["layers"],
        g["relative_norm_a"],
        marker="o",
        markersize=3,
        label="|v_A| / mean residual norm",
    )
    ax.plot(
        g["layers"],
        g["relative_norm_b"],
        marker="o",
        markersize=3,
        label="|v_B| / mean residual norm",
    )
    ax.plot(
        g["layers"],
        g["contrast_fraction"],
        marker="o",
        markersize=3,
        label="|v̂_A − v̂_B| / |v̂_A + v̂_B|",
    )
    ax.set_xlabel("layer")
    ax.set_title("norms before rescaling, and the contrast part", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return fig


MAKERS = {
    "heatmaps": plot_heatmaps,
    "dominance": plot_dominance,
    "layer_profiles": plot_layer_profiles,
    "decomposition": plot_decomposition,
    "geometry": plot_geometry,
}


def write_figures(result: CollisionResult, out: str | Path) -> dict[str, Path]:
    """Every figure of :data:`FIGURES` as ``out/<name>.png``; returns the paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {name: save_figure(MAKERS[name](result), out / f"{name}.png") for name in FIGURES}


IMPORTED_HEATMAPS = (
    ("vader", "VADER valence", "RdBu_r"),
    ("probe_valence", "probe readout P(A)", "RdBu_r"),
    ("perplexity", "perplexity", "magma"),
    ("repetition", "repetition", "magma"),
)


def imported_cell_means(result, metric: str) -> np.ndarray:
    """``[lambdas, alphas]`` cell means of an imported grid, NaN where a cell is absent or unscored."""
    grid = result.grid
    matrix = np.full((len(grid.lambdas), len(grid.alphas)), np.nan)
    for cell in result.cells:
        value = cell["metrics"][metric]["mean"]
        if value is not None:
            matrix[grid.lambdas.index(cell["lambda"]), grid.alphas.index(cell["alpha"])] = value
    return matrix


def plot_imported(result, fig=None):
    """Cell means per metric (rows λ, columns α; blank where a cell is absent or unscored) and, where
    it could be computed, d(α) per strength."""
    grid = result.grid
    fig = fig or plt.figure(figsize=(14, 6.5))
    shown = [m for m in IMPORTED_HEATMAPS if np.isfinite(imported_cell_means(result, m[0])).any()]
    for k, (metric, title, cmap) in enumerate(shown):
        ax = fig.add_subplot(2, 3, k + 1)
        matrix = imported_cell_means(result, metric)
        norm = CenteredNorm(vcenter=NEUTRAL[metric]) if metric in NEUTRAL else None
        image = ax.imshow(
            np.log10(matrix) if metric == "perplexity" else matrix,
            cmap=cmap,
            norm=norm,
            aspect="auto",
            origin="lower",
        )
        fig.colorbar(image, ax=ax).set_label("log₁₀ perplexity" if metric == "perplexity" else "")
        annotate_cells(ax, matrix, cell_writer(metric, matrix))
        ax.set_xticks(range(len(grid.alphas)), [f"{a:g}" for a in grid.alphas], fontsize=7)
        ax.set_yticks(range(len(grid.lambdas)), [f"{x:g}" for x in grid.lambdas])
        ax.set_xlabel("α (0 = pure B, 1 = pure A)")
        ax.set_ylabel(f"λ ({result.config.lambda_units})", fontsize=7)
        ax.set_title(title, fontsize=9)
    ax = fig.add_subplot(2, 3, 6)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="linear (no dominance)")
    drawn = False
    for entry in (
        result.dominance.get("vader", []) if isinstance(result.dominance.get("vader"), list) else []
    ):
        if "missing" not in entry:
            ax.plot(
                entry["alphas"],
                [np.nan if v is None else v for v in entry["d"]],
                marker="o",
                markersize=3,
                label=f"λ = {entry['lambda']:g}: area {_num(entry['area']['mean'])}",
            )
            drawn = True
    ax.set_title("d(α) on VADER" if drawn else "d(α): not computable (see report.md)", fontsize=9)
    ax.set_xlabel("α (share of persona A)")
    if drawn:
        ax.legend(frameon=False, fontsize=7)
    fig.suptitle(
        f"Imported completions ({result.source}), scored by {result.scorer or 'text metrics only'}",
        fontsize=10,
    )
    return fig


__all__ = [
    "FIGURES",
    "annotate_cells",
    "cell_means",
    "cell_writer",
    "dominance_label",
    "imported_cell_means",
    "paper_curve_label",
    "paper_gamma",
    "plot_decomposition",
    "plot_dominance",
    "plot_geometry",
    "plot_heatmaps",
    "plot_imported",
    "plot_layer_profiles",
    "short_scale",
    "write_figures",
]
