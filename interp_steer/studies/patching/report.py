"""Figures and ``report.md`` for a dominance-patching run; ``PatchingResult.save`` calls
:func:`write_outputs`. The report reads a result; the study never needs it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from interp_steer.patching import METRICS
from interp_steer.plotting import plot_heatmap, save_figure
from interp_steer.studies._common import write_json

if TYPE_CHECKING:
    from interp_steer.studies.patching.result import PatchingResult


def write_outputs(result: PatchingResult, out: Path, *, figures: bool = True) -> dict[str, Path]:
    """``patching.json``, the heatmaps (layer × position, layer × head, layer × component), the
    attribution scatter and ``report.md``."""
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": write_json(out / "patching.json", result.to_dict())}
    if figures:
        makers = {"layer_position": plot_layer_position, "layer_head": plot_layer_head,
                  "layer_component": plot_layer_component, "attribution": plot_attribution}
        for name, make in makers.items():
            figure = make(result)
            if figure is not None:  # a sweep that was not run has no figure
                written[name] = save_figure(figure, out / f"{name}.png")
    written["report"] = out / "report.md"
    written["report"].write_text(render_report(result, figures=figures))
    return written


def plot_layer_position(result: PatchingResult):
    if "resid_position" not in result.effects:
        return None
    matrix = np.array(result.effects["resid_position"]["logit_diff"]["effect"], dtype=float)
    width = matrix.shape[1]
    ax = plot_heatmap(matrix, row_labels=list(range(matrix.shape[0])), col_labels=list(range(-width, 0)),
                      cbar_label="normalised effect (logit difference)", vmin=-1, vmax=1,
                      title=f"resid_pre patched from pure {result.config.source}, layer × position from the end")
    ax.set_xlabel("position (from the end)")
    ax.set_ylabel("layer")
    ax.axhline(result.layer + 0.5, color="black", linewidth=1)
    return ax


def plot_layer_head(result: PatchingResult):
    if "heads" not in result.effects:
        return None
    matrix = np.array(result.effects["heads"]["logit_diff"]["effect"], dtype=float)
    ax = plot_heatmap(matrix, row_labels=list(range(matrix.shape[0])), col_labels=list(range(matrix.shape[1])),
                      cbar_label="normalised effect (logit difference)", vmin=-1, vmax=1,
                      title="one head's output patched (all positions)" +
                      (f"; top {result.config.top_k} by attribution" if result.config.method == "attribution" else ""))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    return ax


def plot_layer_component(result: PatchingResult):
    fig, axes = plt.subplots(1, len(METRICS), figsize=(15, 3.8))
    for ax, metric in zip(axes, METRICS, strict=True):
        for name, label in (("resid_layer", "resid_pre (all positions)"), ("attn_layer", "attention out"),
                            ("mlp_layer", "MLP out"), ("direction_a", "resid along v_A only"),
                            ("direction_b", "resid along v_B only"), ("direction_contrast", "resid along v_A − v_B only")):
            if name not in result.effects:
                continue
            e = result.effects[name][metric]
            effect = np.array(e["effect"], dtype=float)
            x = np.arange(len(effect)) + (1 if name.startswith("direction") else 0)
            line, = ax.plot(x, effect, marker="o", markersize=2, label=label)
            ax.fill_between(x, np.array(e["low"], dtype=float), np.array(e["high"], dtype=float),
                            color=line.get_color(), alpha=0.15, linewidth=0)
        ax.axvline(result.layer, color="black", linewidth=0.8, linestyle=":")
        ax.set_xlabel("layer")
        ax.set_ylabel("normalised effect")
        ax.set_title(metric, fontsize=9)
        ax.set_ylim(-0.5, 1.5)
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False, fontsize=7)
    fig.suptitle(f"patching pure {result.config.source} into the mix α={result.config.alpha:g}, λ={result.config.lam:g} "
                 f"(dotted: steering layer {result.layer})", fontsize=10)
    return fig


def plot_attribution(result: PatchingResult):
    if "resid_position" not in result.effects or "resid" not in result.attribution:
        return None
    exact = np.array(result.effects["resid_position"]["logit_diff"]["effect"], dtype=float).ravel()
    estimate = np.array(result.attribution["resid"], dtype=float).ravel()
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.scatter(exact, estimate, s=8, alpha=0.6)
    ax.plot([-1, 1.5], [-1, 1.5], color="grey", linestyle=":")
    r = result.attribution["correlation_with_exact"].get("resid", {}).get("pearson_r", float("nan"))
    ax.set_title(f"attribution vs exact, resid layer × position (r = {r:.2f})", fontsize=9)
    ax.set_xlabel("exact normalised effect")
    ax.set_ylabel("attribution estimate")
    ax.grid(alpha=0.3)
    return fig


def render_report(result: PatchingResult, *, figures: bool = True) -> str:
    """The run as Markdown: the two runs' metrics, the strongest components, the residual and direction
    sweeps, attribution against exact patching, and the figures."""
    cfg = result.config
    lines = [f"# Dominance patching on {result.model['name']}", "",
             f"Source: pure persona {cfg.source} at λ = {cfg.lam:g}; target: the mix α = {cfg.alpha:g} (share of A) at "
             f"the same λ; steering layer {result.layer}, after the prompt; {len(result.prompts)} prompts. Effect = "
             "(m_patched − m_target) / (m_source − m_target) at the final position (1: the component alone carries "
             "the source's effect), ratio of means over prompts with 95 % Fieller intervals.", "",
             "| metric | source | target |", "| --- | --- | --- |"]
    for m in METRICS:
        lines.append(f"| {m} | {np.mean(result.runs['source'][m]):+.3f} | {np.mean(result.runs['target'][m]):+.3f} |")
    lines += ["", "## Components that carry the most (logit difference)", "",
              "| component | layer / head | effect | 95 % interval |", "| --- | --- | --- | --- |"]
    for row in result.top:
        lines.append(f"| {row['component']} | {', '.join(map(str, row['index']))} | {row['effect']:+.2f} | "
                     f"[{row['low']:+.2f}, {row['high']:+.2f}] |")
    if "resid_layer" in result.effects:
        e = result.effects["resid_layer"]["logit_diff"]
        before = [e["effect"][at] for at in range(result.layer + 1)]
        after = e["effect"][result.layer + 1] if result.layer + 1 < len(e["effect"]) else float("nan")
        lines += ["", f"Residual stream, all positions: effect {max(map(abs, before)):.2f} at most up to the steering "
                  f"layer (the runs are identical there), {after:.2f} at layer {result.layer + 1}."]
    for name, label in (("direction_a", "v_A"), ("direction_b", "v_B"), ("direction_contrast", "v_A − v_B")):
        if name in result.effects:
            e = result.effects[name]["logit_diff"]["effect"]
            k = result.layer  # direction sweeps start at layer 1
            if k < len(e):
                lines.append(f"Patching only the part along {label}: effect {e[k]:.2f} right after the steering layer, "
                             f"{e[-1]:.2f} at the last layer.")
    corr = result.attribution.get("correlation_with_exact", {})
    if corr:
        lines += ["", "Attribution patching against exact patching (Pearson r over cells that move): " +
                  ", ".join(f"{c} {v['pearson_r']:.2f} ({v['cells']} cells)" for c, v in corr.items()) + "."]
    if figures:
        lines += ["", "![layer × component](layer_component.png)", "", "![layer × position](layer_position.png)", "",
                  "![layer × head](layer_head.png)", "", "![attribution vs exact](attribution.png)"]
    lines += ["", f"Run time: {result.timings.get('total', float('nan')):.0f} s. Full numbers: `patching.json`."]
    return "\n".join(lines) + "\n"


__all__ = ["plot_attribution", "plot_layer_component", "plot_layer_head", "plot_layer_position", "render_report",
           "write_outputs"]
