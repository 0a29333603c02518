"""Dominance patching: which components carry persona A's effect when A and B are mixed.

:func:`run` builds the two persona vectors (as the collision study does), steers the same prompts by
pure A (the source) and by the mix v(α, λ) (the target), and patches every component from the source
into the target (:mod:`interp_steer.patching`): the residual stream per layer × position and per
layer, attention and MLP outputs per layer, every head, and only the parts of the residual along v_A
or along v_B. Attribution patching estimates the same effects from one backward pass per prompt, and
its agreement with exact patching is reported as a correlation. :func:`dominance_patching` builds the
config from keywords and calls :func:`run`. ``result.save(out)`` writes ``patching.json``, heatmaps
and ``report.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from interp_steer.models import Model, load_model
from interp_steer.patching import (
    METRICS,
    Patch,
    PatchMetrics,
    RunPair,
    attribution_patch,
    exact_patch,
    normalised_effect,
    prepare,
)
from interp_steer.studies._common import Stopwatch
from interp_steer.studies.mixing import collision_vector
from interp_steer.studies.patching.config import PatchingConfig
from interp_steer.studies.patching.result import PatchingResult
from interp_steer.studies.personas import Personas, StudyTexts, Texts, build_personas, study_inputs

Runs = dict[str, dict[str, list[float]]]
"""``"source"``/``"target"`` -> metric -> one value per prompt."""


def run(
    model: Model | str | None,
    config: PatchingConfig,
    *,
    persona_a: Texts = None,
    persona_b: Texts = None,
    baseline: Texts = None,
    prompts: Texts = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> PatchingResult:
    """Patch every component from the pure-source run into the mix run (see the module docstring).

    ``model`` is a :class:`Model` or a spec for :func:`~interp_steer.load_model`; corpora and prompts
    are lists of texts or file paths (``None``: the built-in ones). ``log`` receives progress lines.
    """
    clock = Stopwatch(log)
    model = model if isinstance(model, Model) else load_model(model)
    _, texts = study_inputs(persona_a, persona_b, baseline, prompts, max_passages=config.max_passages,
                            max_prompts=config.max_prompts, min_passages=config.folds)
    personas = build_personas(model, texts.persona_a, texts.persona_b, texts.baseline, folds=config.folds,
                              seed=config.seed, layer=config.layer, progress=progress)
    metrics = _metrics(model, config, personas, texts)
    source, target = _source_and_target(config, personas)
    clock.say(f"personas and metrics: {clock.elapsed():.1f} s; steering layer {personas.layer}")
    pairs, runs, attributions = _prepare_runs(model, config, texts.prompts, source, target, metrics)
    heads = _heads_to_patch(model, config, runs, attributions)
    per_prompt = _patch(model, config, personas, pairs, target, metrics, heads, clock)
    positions = min([config.positions] + [pair.tokens.shape[1] for pair in pairs])
    n_layers, n_heads = model.n_layers, model.bridge.cfg.n_heads
    effects = _effects(per_prompt, runs, n_layers, n_heads, config, positions)
    attribution = _attribution_summary(attributions, effects, runs, positions, config)
    return PatchingResult(
        model={"name": model.name, "n_layers": n_layers, "n_heads": n_heads, "d_model": model.d_model},
        config=config, layer=personas.layer, prompts=texts.prompts, metrics=metrics.to_dict(model), runs=runs,
        effects=effects, attribution=attribution, top=_top_components(effects),
        timings={"total": round(clock.elapsed(), 2)},
    )


def dominance_patching(
    model: Model | str | None = None,
    *,
    persona_a: Texts = None,
    persona_b: Texts = None,
    baseline: Texts = None,
    prompts: Texts = None,
    config: PatchingConfig | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool | None = None,
    **overrides: Any,
) -> PatchingResult:
    """Dominance patching in one call: the settings come from ``config`` (default
    :class:`PatchingConfig`) with keyword ``overrides`` (e.g. ``alpha=0.25``, ``method="attribution"``);
    everything else is passed to :func:`run`."""
    if config is None:
        config = PatchingConfig(**overrides)
    elif overrides:
        config = replace(config, **overrides)
    return run(model, config, persona_a=persona_a, persona_b=persona_b, baseline=baseline, prompts=prompts,
               progress=progress, log=log)


# ------------------------------------------------------------------------------------- stages


def _metrics(model: Model, config: PatchingConfig, personas: Personas, texts: StudyTexts) -> PatchMetrics:
    """The metrics read at the final position, with the probe on the last layer's collected activations."""
    last = model.n_layers - 1
    return PatchMetrics.build(model, texts.persona_a, texts.persona_b, probe_layer=last,
                              continuation=config.continuation,
                              activations=(personas.act_a.at(last), personas.act_b.at(last)))


def _source_and_target(config: PatchingConfig, personas: Personas) -> tuple[tuple[Any, float], tuple[Any, float]]:
    """The pure source persona and the mix v(α, λ), both at the steering layer."""
    layer = personas.layer
    pure = personas.v_a if config.source == "A" else personas.v_b
    source = (pure.select([layer]) * config.lam, 1.0)
    target = (collision_vector(personas.v_a, personas.v_b, config.alpha, config.lam).select([layer]), 1.0)
    return source, target


def _prepare_runs(model: Model, config: PatchingConfig, prompts: list[str], source, target,
                  metrics: PatchMetrics) -> tuple[list[RunPair], Runs, dict[str, list[np.ndarray]]]:
    """Pass 1: both runs of every prompt, their metrics, and the attribution estimates."""
    pairs = []
    runs: Runs = {"source": {m: [] for m in METRICS}, "target": {m: [] for m in METRICS}}
    attributions: dict[str, list[np.ndarray]] = {}
    for prompt in prompts:
        pair = prepare(model, prompt, source, target, metrics, config.components)
        pairs.append(pair)
        for which in ("source", "target"):
            for m in METRICS:
                runs[which][m].append(getattr(pair, f"{which}_metrics")[m])
        attribution = attribution_patch(model, pair, target, metrics, config.components, metric="logit_diff")
        for component, values in attribution.items():
            attributions.setdefault(component, []).append(values)
    return pairs, runs, attributions


def _heads_to_patch(model: Model, config: PatchingConfig, runs: Runs,
                    attributions: dict[str, list[np.ndarray]]) -> list[int]:
    """Indices into the layer × head grid of the heads patched exactly: all of them, or with
    ``method="attribution"`` the ``top_k`` with the largest attribution estimate, normalised per
    prompt and averaged over prompts (the same heads for every prompt)."""
    n_all = model.n_layers * model.bridge.cfg.n_heads
    if "heads" not in config.components or config.method != "attribution":
        return list(range(n_all))
    span = np.array(runs["source"]["logit_diff"]) - np.array(runs["target"]["logit_diff"])
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.nanmean(np.abs(np.stack(attributions["heads"]) / span[:, None, None]), axis=0).ravel()
    return sorted(np.argsort(-np.nan_to_num(score))[: config.top_k].tolist())


def _layer_sweeps(model: Model, config: PatchingConfig, personas: Personas) -> dict[str, list[Patch]]:
    """The sweeps that are the same for every prompt: per layer, and along the persona directions."""
    n_layers = model.n_layers
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
    return sweeps


def _patch(model: Model, config: PatchingConfig, personas: Personas, pairs: list[RunPair], target,
           metrics: PatchMetrics, heads: list[int], clock: Stopwatch) -> dict[str, dict[str, list[np.ndarray]]]:
    """Pass 2: every exact patch of every prompt; sweep -> metric -> one array per prompt."""
    n_layers, n_heads = model.n_layers, model.bridge.cfg.n_heads
    sweeps = _layer_sweeps(model, config, personas)
    all_heads = [Patch("heads", at, head=h) for at in range(n_layers) for h in range(n_heads)]
    per_prompt: dict[str, dict[str, list[np.ndarray]]] = {}
    for i, pair in enumerate(pairs):
        width = pair.tokens.shape[1]
        prompt_sweeps = dict(sweeps)
        if "resid" in config.components:
            prompt_sweeps["resid_position"] = [Patch("resid", at, position=p) for at in range(n_layers)
                                               for p in range(width - config.positions, width) if p >= 0]
        if "heads" in config.components:
            prompt_sweeps["heads"] = [all_heads[j] for j in heads]
        for name, patches in prompt_sweeps.items():
            values = exact_patch(model, pair, target, metrics, patches, batch_size=config.batch_size)
            if name == "heads":  # a full layer x head grid, NaN where a head was not patched
                for m in METRICS:
                    full = np.full(len(all_heads), np.nan)
                    full[heads] = values[m]
                    values[m] = full
            store = per_prompt.setdefault(name, {m: [] for m in METRICS})
            for m in METRICS:
                store[m].append(values[m])
        clock.say(f"prompt {i + 1}/{len(pairs)} patched ({width} tokens): {clock.elapsed():.1f} s")
    return per_prompt


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


__all__ = ["dominance_patching", "run"]
