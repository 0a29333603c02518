"""Dominance patching: which components carry persona A's effect when A and B are mixed.

:func:`dominance_patching` builds the two persona vectors (as the collision study does), steers the
same prompts by pure A (the source) and by the mix v(α, λ) (the target), and patches every component
from the source into the target (:mod:`interp_steer.patching`): the residual stream per layer ×
position and per layer, attention and MLP outputs per layer, every head, and only the parts of the
residual along v_A or along v_B. Attribution patching estimates the same effects from one backward
pass per prompt, and its agreement with exact patching is reported as a correlation.
``result.save(out)`` writes ``patching.json``, heatmaps and ``report.md``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp_steer.models import Model
from interp_steer.patching import (
    COMPONENTS,
    METRICS,
    Patch,
    PatchMetrics,
    attribution_patch,
    exact_patch,
    normalised_effect,
    prepare,
)
from interp_steer.studies.collision.study import build_personas, study_inputs
from interp_steer.studies.mixing import collision_vector


@dataclass(frozen=True)
class PatchingConfig:
    """Settings of a dominance-patching run (validated; JSON round-trip via ``asdict``)."""

    alpha: float | int = 0.5
    lam: float | int = 0.3
    layer: int | str = "auto"
    source: str = "A"
    components: Sequence[str] = COMPONENTS
    method: str = "exact"
    max_prompts: int = 6
    max_passages: int = 48
    positions: int = 12
    continuation: str = "The"
    top_k: int = 12
    folds: int = 3
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not (math.isfinite(self.lam) and self.lam > 0):
            raise ValueError(f"lambda must be positive, got {self.lam}")
        if self.source not in ("A", "B"):
            raise ValueError(f"source must be 'A' or 'B', got {self.source!r}")
        if self.method not in ("exact", "attribution"):
            raise ValueError(f"method must be 'exact' or 'attribution', got {self.method!r}")
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown or not self.components:
            raise ValueError(f"components {list(self.components)}: choose from {list(COMPONENTS)}")
        for name in ("max_prompts", "max_passages", "positions", "top_k", "folds", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        object.__setattr__(self, "components", tuple(self.components))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["components"] = list(self.components)
        return out


@dataclass(frozen=True, eq=False)
class PatchingResult:
    """Normalised effects per component (mean and 95 % bootstrap interval over prompts), per metric."""

    model: dict[str, Any]
    config: PatchingConfig
    layer: int
    prompts: list[str]
    metrics: dict[str, Any]
    runs: dict[str, dict[str, list[float]]]  # source/target -> metric -> per prompt
    effects: dict[str, dict[str, Any]]  # sweep -> metric -> {"effect", "low", "high", axes...}
    attribution: dict[str, Any]
    top: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from interp_steer import __version__

        return {"schema_version": 1, "library_version": __version__, "model": self.model,
                "config": self.config.to_dict(), "layer": self.layer, "prompts": self.prompts,
                "metrics": self.metrics, "runs": self.runs, "effects": self.effects,
                "attribution": self.attribution, "top_components": self.top, "timings_s": self.timings,
                "effect_definition": "(m_patched - m_target) / (m_source - m_target), ratio of means over "
                                     "prompts, 95% percentile bootstrap over prompts"}

    def save(self, out: str | Path) -> dict[str, Path]:
        """``patching.json``, heatmaps (layer × position, layer × head, layer × component) and ``report.md``."""
        from interp_steer.plotting import save_figure
        from interp_steer.studies.collision.report import _jsonable

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = {"json": out / "patching.json"}
        written["json"].write_text(json.dumps(_jsonable(self.to_dict()), indent=1, allow_nan=False))
        for name, make in (("layer_position", plot_layer_position), ("layer_head", plot_layer_head),
                           ("layer_component", plot_layer_component), ("attribution", plot_attribution)):
            figure = make(self)
            if figure is not None:
                written[name] = save_figure(figure, out / f"{name}.png")
        written["report"] = out / "report.md"
        written["report"].write_text(render_report(self))
        return written


def dominance_patching(
    model: Model | str | None = None,
    *,
    persona_a: Sequence[str] | str | Path | None = None,
    persona_b: Sequence[str] | str | Path | None = None,
    baseline: Sequence[str] | str | Path | None = None,
    prompts: Sequence[str] | str | Path | None = None,
    config: PatchingConfig | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool | None = None,
    **overrides: Any,
) -> PatchingResult:
    """Patch every component from the pure-source run into the mix run (see the module docstring)."""
    from interp_steer.models import load_model

    started = time.perf_counter()
    say = log or (lambda _line: None)
    config = config or PatchingConfig(**overrides)
    if not isinstance(model, Model):
        model = load_model(model)
    _, texts = study_inputs(persona_a, persona_b, baseline, prompts, max_passages=config.max_passages,
                            max_prompts=config.max_prompts, min_passages=config.folds)
    a_texts, b_texts, base_texts, prompt_list = texts
    personas = build_personas(model, a_texts, b_texts, base_texts, folds=config.folds, seed=config.seed,
                              layer=config.layer, progress=progress)
    layer = personas.layer
    last = model.n_layers - 1
    metrics = PatchMetrics.build(model, a_texts, b_texts, probe_layer=last, continuation=config.continuation,
                                 activations=(personas.act_a.at(last), personas.act_b.at(last)))
    pure = personas.v_a if config.source == "A" else personas.v_b
    source = (pure.select([layer]) * config.lam, 1.0)
    target = (collision_vector(personas.v_a, personas.v_b, config.alpha, config.lam).select([layer]), 1.0)
    say(f"personas and metrics: {time.perf_counter() - started:.1f} s; steering layer {layer}")

    n_layers, n_heads = model.n_layers, model.bridge.cfg.n_heads
    sweeps: dict[str, list[Patch]] = {}
    if "resid" in config.components:
        sweeps["resid_layer"] = [Patch("resid", at) for at in range(n_layers)]
        sweeps["direction_a"] = [Patch("resid", at, direction=_unit(personas.v_a[at - 1])) for at in range(1, n_layers)]
        sweeps["direction_b"] = [Patch("resid", at, direction=_unit(personas.v_b[at - 1])) for at in range(1, n_layers)]
        # The two vectors share most of their direction, so what tells the runs apart is mostly
        # their difference: patch along it too.
        sweeps["direction_contrast"] = [Patch("resid", at, direction=_unit(personas.v_a[at - 1] - personas.v_b[at - 1]))
                                        for at in range(1, n_layers)]
    for component in ("attn", "mlp"):
        if component in config.components:
            sweeps[f"{component}_layer"] = [Patch(component, at) for at in range(n_layers)]
    per_prompt: dict[str, dict[str, list[np.ndarray]]] = {}
    runs: dict[str, dict[str, list[float]]] = {"source": {m: [] for m in METRICS}, "target": {m: [] for m in METRICS}}
    attributions: dict[str, list[np.ndarray]] = {}
    positions = config.positions
    pairs = []
    for prompt in prompt_list:  # pass 1: both runs of every prompt, and attribution estimates
        pair = prepare(model, prompt, source, target, metrics, config.components)
        pairs.append(pair)
        positions = min(positions, pair.tokens.shape[1])
        for run in ("source", "target"):
            for m in METRICS:
                runs[run][m].append(getattr(pair, f"{run}_metrics")[m])
        attribution = attribution_patch(model, pair, target, metrics, config.components, metric="logit_diff")
        for component, values in attribution.items():
            attributions.setdefault(component, []).append(values)
    all_heads = [Patch("heads", at, head=h) for at in range(n_layers) for h in range(n_heads)]
    chosen = list(range(len(all_heads)))
    if "heads" in config.components and config.method == "attribution":
        # Rank heads by their attribution estimate, normalised per prompt and averaged over prompts,
        # and patch only the strongest exactly (the same heads for every prompt).
        span = np.array(runs["source"]["logit_diff"]) - np.array(runs["target"]["logit_diff"])
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.nanmean(np.abs(np.stack(attributions["heads"]) / span[:, None, None]), axis=0).ravel()
        chosen = sorted(np.argsort(-np.nan_to_num(score))[: config.top_k].tolist())
    for i, pair in enumerate(pairs):  # pass 2: exact patches
        width = pair.tokens.shape[1]
        prompt_sweeps = dict(sweeps)
        if "resid" in config.components:
            prompt_sweeps["resid_position"] = [Patch("resid", at, position=p) for at in range(n_layers)
                                               for p in range(width - config.positions, width) if p >= 0]
        if "heads" in config.components:
            prompt_sweeps["heads"] = [all_heads[j] for j in chosen]
        for name, patches in prompt_sweeps.items():
            values = exact_patch(model, pair, target, metrics, patches, batch_size=config.batch_size)
            if name == "heads":  # a full layer x head grid, NaN where a head was not patched
                for m in METRICS:
                    full = np.full(len(all_heads), np.nan)
                    full[chosen] = values[m]
                    values[m] = full
            store = per_prompt.setdefault(name, {m: [] for m in METRICS})
            for m in METRICS:
                store[m].append(values[m])
        say(f"prompt {i + 1}/{len(prompt_list)} patched ({width} tokens): {time.perf_counter() - started:.1f} s")

    effects = _effects(per_prompt, runs, n_layers, n_heads, config, positions)
    attribution = _attribution_summary(attributions, effects, runs, positions, config)
    top = _top_components(effects)
    return PatchingResult(
        model={"name": model.name, "n_layers": n_layers, "n_heads": n_heads, "d_model": model.d_model},
        config=config, layer=layer, prompts=prompt_list, metrics=metrics.to_dict(model), runs=runs,
        effects=effects, attribution=attribution, top=top,
        timings={"total": round(time.perf_counter() - started, 2)},
    )


def _unit(v):
    return v / v.norm()


def _effects(per_prompt, runs, n_layers, n_heads, config, positions) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, by_metric in per_prompt.items():
        out[name] = {}
        for m, rows in by_metric.items():
            if name == "resid_position":  # align on the last `positions` tokens of each prompt
                rows = [r.reshape(n_layers, -1)[:, -positions:] for r in rows]
            elif name == "heads":
                rows = [r.reshape(n_layers, n_heads) for r in rows]
            effect, low, high = normalised_effect(np.stack(rows), np.array(runs["target"][m]),
                                                  np.array(runs["source"][m]), seed=config.seed)
            out[name][m] = {"effect": effect.tolist(), "low": low.tolist(), "high": high.tolist()}
        out[name]["axes"] = {"resid_position": ["layer", "position_from_end"], "heads": ["layer", "head"]}.get(
            name, ["layer"] if name.endswith("_layer") else ["layer (from 1)"])
    return out


def _attribution_summary(attributions, effects, runs, positions, config) -> dict[str, Any]:
    """Attribution estimates normalised like the exact effects, and their agreement with them."""
    target, source = np.array(runs["target"]["logit_diff"]), np.array(runs["source"]["logit_diff"])
    summary: dict[str, Any] = {"metric": "logit_diff", "correlation_with_exact": {}}
    exact_names = {"resid": "resid_position", "attn": "attn_layer", "mlp": "mlp_layer", "heads": "heads"}
    for component, rows in attributions.items():
        if component == "resid":
            rows = [r[:, -positions:] for r in rows]
        stacked = np.stack(rows)  # [prompts, ...]: estimated change of the metric
        baseline = target.reshape((-1,) + (1,) * (stacked.ndim - 1))
        estimate, _, _ = normalised_effect(stacked + baseline, target, source, seed=config.seed)
        summary[component] = estimate.tolist()
        exact_name = exact_names[component]
        if exact_name not in effects:
            continue
        exact = np.array(effects[exact_name]["logit_diff"]["effect"], dtype=float).ravel()
        guess = estimate.ravel()
        moving = np.isfinite(exact) & np.isfinite(guess) & ((exact != 0) | (guess != 0))
        if moving.sum() >= 3:
            r = float(np.corrcoef(exact[moving], guess[moving])[0, 1])
            summary["correlation_with_exact"][component] = {"pearson_r": r, "cells": int(moving.sum())}
    summary["note"] = ("cells identical in both runs (before the steering layer, before the steered positions) are "
                       "exactly 0 in both and left out of the correlation")
    return summary


def _top_components(effects: dict[str, dict[str, Any]], k: int = 8) -> list[dict[str, Any]]:
    """The single components (heads, attention and MLP outputs per layer) with the largest effect on the logit difference."""
    rows = []
    for name in ("attn_layer", "mlp_layer", "heads"):
        if name not in effects:
            continue
        e = effects[name]["logit_diff"]
        effect, low, high = (np.asarray(e[key], dtype=float) for key in ("effect", "low", "high"))
        for index in np.ndindex(effect.shape):
            if np.isfinite(effect[index]) and effect[index] != 0:  # 0: identical in both runs
                rows.append({"component": name.replace("_layer", ""), "index": [int(i) for i in index],
                             "effect": float(effect[index]), "low": float(low[index]), "high": float(high[index])})
    rows.sort(key=lambda r: -abs(r["effect"]))
    return rows[:k]


# ------------------------------------------------------------------------------------- figures


def plot_layer_position(result: PatchingResult):
    if "resid_position" not in result.effects:
        return None
    from interp_steer.plotting import plot_heatmap

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
    from interp_steer.plotting import plot_heatmap

    matrix = np.array(result.effects["heads"]["logit_diff"]["effect"], dtype=float)
    ax = plot_heatmap(matrix, row_labels=list(range(matrix.shape[0])), col_labels=list(range(matrix.shape[1])),
                      cbar_label="normalised effect (logit difference)", vmin=-1, vmax=1,
                      title="one head's output patched (all positions)" +
                      (f"; top {result.config.top_k} by attribution" if result.config.method == "attribution" else ""))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    return ax


def plot_layer_component(result: PatchingResult):
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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


def render_report(result: PatchingResult) -> str:
    cfg = result.config
    lines = [f"# Dominance patching on {result.model['name']}", "",
             f"Source: pure persona {cfg.source} at λ = {cfg.lam:g}; target: the mix α = {cfg.alpha:g} (share of A) at "
             f"the same λ; steering layer {result.layer}, after the prompt; {len(result.prompts)} prompts. Effect = "
             "(m_patched − m_target) / (m_source − m_target) at the final position (1: the component alone carries "
             "the source's effect), ratio of means over prompts with 95 % bootstrap intervals.", "",
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
    lines += ["", "![layer × component](layer_component.png)", "", "![layer × position](layer_position.png)", "",
              "![layer × head](layer_head.png)", "", "![attribution vs exact](attribution.png)", "",
              f"Run time: {result.timings.get('total', float('nan')):.0f} s. Full numbers: `patching.json`."]
    return "\n".join(lines) + "\n"


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``patching.json``."""
    from importlib import resources

    return json.loads(resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8"))


__all__ = ["PatchingConfig", "PatchingResult", "dominance_patching", "render_report", "schema"]
