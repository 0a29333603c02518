"""Dominance patching: which components carry persona A's effect when A and B are mixed.

:func:`run` builds the two persona vectors (as the collision study does), steers the same prompts by
pure A (the source) and by the mix v(α, λ) (the target), and patches every component from the source
into the target (:mod:`interp_steer.patching`): the residual stream per layer × position and per
layer, attention and MLP outputs per layer, every head, and only the parts of the residual along v_A,
along v_B or along v_A − v_B. Attribution patching estimates the same effects from one backward pass
per prompt, and its agreement with exact patching is reported as a correlation.

What it reports, kept apart: the effects over all prompts (descriptive maps); the **sanity checks**,
effects fixed by construction (the whole residual restores 0 before the steering layer and 1 after
it, the part along v_A − v_B restores 1 right after it) or predicted by cos(v_A, v_B) (the v_A-only and
v_B-only parts), which test the machinery rather than the model; and the **findings**, the single
components chosen on one seeded half of the prompts and measured on the other (:mod:`.selection`).
Every effect is a ratio of means over prompts with Fieller's interval. :func:`dominance_patching`
builds the config from keywords and calls :func:`run`. ``result.save(out)`` writes ``patching.json``,
heatmaps and ``report.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_steer.data import reject_bare_strings
from interp_steer.execution import Execution, as_execution
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
from interp_steer.stats import mean_and_se
from interp_steer.studies._common import Stopwatch, settings
from interp_steer.studies.mixing import collision_vector
from interp_steer.studies.patching.config import PatchingConfig
from interp_steer.studies.patching.result import PatchingResult
from interp_steer.studies.patching.selection import select_and_report, split_halves
from interp_steer.studies.personas import Personas, StudyTexts, Texts, build_personas, study_inputs
from interp_steer.units import Unit, fingerprint, numeric, run_key, run_units

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
    execution: Execution | None = None,
) -> PatchingResult:
    """Patch every component from the pure-source run into the mix run (see the module docstring).

    ``model`` is a :class:`Model` or a spec for :func:`~interp_steer.load_model`; corpora and prompts
    are lists of texts or file paths (``None``: the built-in ones). ``execution``
    (:class:`~interp_steer.Execution`) says how to run; its ``log`` receives progress lines.

    Each prompt is a work unit (:mod:`interp_steer.units`; with ``method="attribution"`` and heads,
    two: its runs and attribution first, then the heads chosen from every prompt's attribution):
    ``Execution(store=DIR)`` stores finished ones so that a re-run skips them, its ``backend`` says
    where they run.
    """
    reject_bare_strings(persona_a=persona_a, persona_b=persona_b, baseline=baseline, prompts=prompts, path_ok=True)
    execution = as_execution(execution)
    progress = execution.progress
    clock = Stopwatch(execution.log)
    model = model if isinstance(model, Model) else load_model(model)
    if config.layer != "auto":
        model.resolve_layers([config.layer])  # an out-of-range layer fails here, before any work
    data, texts = study_inputs(persona_a, persona_b, baseline, prompts, max_passages=config.max_passages,
                               max_prompts=config.max_prompts, min_passages=config.folds)
    halves = split_halves(len(texts.prompts), config.seed)  # before the slow stages: too few prompts fail here
    store = execution.open_store(run_key(model, config, data))
    personas = build_personas(model, texts.persona_a, texts.persona_b, texts.baseline, folds=config.folds,
                              seed=config.seed, layer=config.layer, progress=progress)
    metrics = _metrics(model, config, personas, texts)
    source, target = _source_and_target(config, personas)
    clock.say(f"personas and metrics: {clock.elapsed():.1f} s; steering layer {personas.layer}")
    shared = {"config": config, "layer": personas.layer, "v_a": personas.v_a, "v_b": personas.v_b,
              "metrics": metrics, "source": source, "target": target}
    identity = fingerprint(numeric({"layer": personas.layer, "v_a": personas.v_a, "v_b": personas.v_b,
                                    "metrics": metrics, "source": source, "target": target}))
    split_heads = "heads" in config.components and config.method == "attribution"
    with execution.backend_for(model) as runner:
        first = run_units(_prompt_unit, [Unit(f"prompt-{i:03d}", {"shared": identity, "prompt": prompt, "heads": None},
                                              item={"prompt": prompt, "heads": None if split_heads else "all"})
                                         for i, prompt in enumerate(texts.prompts)],
                          model=model, shared=shared, store=store, backend=runner, progress=progress,
                          label="prompts")
        runs = {which: {m: [r["runs"][which][m] for r in first] for m in METRICS} for which in ("source", "target")}
        attributions = {c: [r["attribution"][c] for r in first] for c in first[0]["attribution"]}
        heads, heads_by_half = _heads_to_patch(model, config, runs, attributions, halves)
        per_prompt = {name: {m: [r["patched"][name][m] for r in first] for m in METRICS} for name in first[0]["patched"]}
        if split_heads:
            second = run_units(_prompt_unit, [Unit(f"heads-{i:03d}", {"shared": identity, "prompt": prompt, "heads": heads},
                                                   item={"prompt": prompt, "heads": heads, "only_heads": True})
                                              for i, prompt in enumerate(texts.prompts)],
                               model=model, shared=shared, store=store, backend=runner, progress=progress,
                               label="heads")
            per_prompt["heads"] = {m: [r["patched"]["heads"][m] for r in second] for m in METRICS}
    clock.say(f"{len(texts.prompts)} prompts patched: {clock.elapsed():.1f} s")
    positions = min([config.positions] + [r["width"] for r in first])
    n_layers, n_heads = model.n_layers, model.bridge.cfg.n_heads
    effects = _effects(per_prompt, runs, n_layers, n_heads, positions)
    followups = _followups(model, config, texts.prompts, source, target, metrics, effects)
    if followups:
        clock.say(f"follow-ups ({', '.join(followups)}): {clock.elapsed():.1f} s")
    return PatchingResult(
        model={"name": model.name, "n_layers": n_layers, "n_heads": n_heads, "d_model": model.d_model},
        config=config, layer=personas.layer, prompts=texts.prompts, metrics=metrics.to_dict(model), runs=runs,
        effects=effects, attribution=_attribution_summary(attributions, effects, runs, positions),
        sanity_checks=_sanity_checks(effects, personas, n_layers),
        findings=_findings(per_prompt, runs, halves, heads_by_half, config, n_layers, n_heads),
        timings={"total": round(clock.elapsed(), 2), **store.reuse_timings()}, followups=followups,
    )


def dominance_patching(
    model: Model | str | None = None,
    config: PatchingConfig | None = None,
    *,
    persona_a: Texts = None,
    persona_b: Texts = None,
    baseline: Texts = None,
    prompts: Texts = None,
    execution: Execution | None = None,
    **overrides: Any,
) -> PatchingResult:
    """Dominance patching in one call: the settings come from ``config`` (default
    :class:`PatchingConfig`) with keyword ``overrides`` (e.g. ``alpha=0.25``, ``method="attribution"``);
    everything else is passed to :func:`run`."""
    config = settings(PatchingConfig, config, **overrides)
    return run(model, config, persona_a=persona_a, persona_b=persona_b, baseline=baseline, prompts=prompts,
               execution=execution)


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


def _followups(model: Model, config: PatchingConfig, prompts: list[str], source, target, metrics: PatchMetrics,
               effects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The mechanistic follow-ups the config asks for, on the same runs: direct logit attribution of
    ``m_source − m_target`` (the logit difference) and the attention of the heads whose patching
    effect over all prompts is largest."""
    from interp_steer.steering import Steering

    runs = {name: Steering(vector, coefficient, positions="after_prompt")
            for name, (vector, coefficient) in (("source", source), ("target", target))}
    out: dict[str, Any] = {}
    if config.dla:
        from interp_steer.dla import direct_logit_attribution

        out["dla"] = direct_logit_attribution(model, prompts, runs["source"], reference=runs["target"],
                                              tokens_a=list(metrics.tokens_a), tokens_b=list(metrics.tokens_b))
    if config.attention_heads:
        from interp_steer.attention import attention_differences

        grid = np.abs(np.array(effects["heads"]["logit_diff"]["effect"], dtype=float))
        order = np.argsort(-np.nan_to_num(grid, nan=-1.0).ravel(), kind="stable")[: config.attention_heads]
        heads = [divmod(int(i), grid.shape[1]) for i in order]
        out["attention"] = attention_differences(model, prompts, heads, source=runs["source"], target=runs["target"],
                                                 window=config.positions,
                                                 labels=(f"pure {config.source}", f"mix α = {config.alpha:g}"))
    return out


def _prompt_unit(model: Model, shared: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """One prompt's work: both runs and their metrics, attribution estimates, and every exact patch
    (``item["heads"]``: ``"all"`` heads, a list of flat head indices, or None for no heads yet);
    ``only_heads`` re-runs the prompt for its head patches alone."""
    config, metrics, target = shared["config"], shared["metrics"], shared["target"]
    pair = prepare(model, item["prompt"], shared["source"], target, metrics, config.components)
    out: dict[str, Any] = {"width": int(pair.tokens.shape[1])}
    if not item.get("only_heads"):
        out["runs"] = {which: {m: float(getattr(pair, f"{which}_metrics")[m]) for m in METRICS}
                       for which in ("source", "target")}
        out["attribution"] = {c: np.asarray(v, dtype=np.float64) for c, v in
                              attribution_patch(model, pair, target, metrics, config.components, metric="logit_diff").items()}
    n_heads = model.n_layers * model.bridge.cfg.n_heads
    heads = list(range(n_heads)) if item["heads"] == "all" else item["heads"]
    sweeps = _prompt_sweeps(model, config, shared["v_a"], shared["v_b"], pair, heads, only_heads=item.get("only_heads", False))
    out["patched"] = {}
    for name, patches in sweeps.items():
        values = exact_patch(model, pair, target, metrics, patches, batch_size=config.batch_size)
        if name == "heads":  # a full layer x head grid, NaN where a head was not patched
            for m in METRICS:
                full = np.full(n_heads, np.nan)
                full[heads] = values[m]
                values[m] = full
        out["patched"][name] = {m: np.asarray(values[m], dtype=np.float64) for m in METRICS}
    return out


def _heads_to_patch(model: Model, config: PatchingConfig, runs: Runs, attributions: dict[str, list[np.ndarray]],
                    halves: tuple[list[int], list[int]]) -> tuple[list[int], tuple[list[int], list[int]] | None]:
    """Indices into the layer × head grid of the heads patched exactly, and which heads each half of
    the prompts may choose from. All heads, open to both halves; or with ``method="attribution"``
    the ``top_k`` heads by attribution *on each half's own prompts* (:func:`attribution_ranking`),
    so that a half's choice owes nothing to the prompts it is reported on; the union is patched."""
    n_all = model.n_layers * model.bridge.cfg.n_heads
    if "heads" not in config.components or config.method != "attribution":
        return list(range(n_all)), None
    span = np.array(runs["source"]["logit_diff"]) - np.array(runs["target"]["logit_diff"])
    by_half = tuple(attribution_ranking(np.stack(attributions["heads"]), span, half, config.top_k) for half in halves)
    return sorted(set(by_half[0]) | set(by_half[1])), by_half


def attribution_ranking(estimates: np.ndarray, span: np.ndarray, prompt_ids: list[int], k: int) -> list[int]:
    """The ``k`` cells (flat indices) with the largest attribution estimate on the prompts numbered
    ``prompt_ids``: ``estimates`` is ``[prompts, *cells]``, each prompt's estimates divided by its
    ``span`` (``m_source − m_target``) so that every prompt weighs alike, then averaged over those
    prompts."""
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.abs(estimates[prompt_ids] / span[prompt_ids].reshape((-1,) + (1,) * (estimates.ndim - 1)))
    score, _, _ = mean_and_se(scaled.reshape(len(prompt_ids), -1))
    return sorted(np.argsort(-np.nan_to_num(score), kind="stable")[:k].tolist())


def _layer_sweeps(model: Model, config: PatchingConfig, v_a, v_b) -> dict[str, list[Patch]]:
    """The sweeps that are the same for every prompt: per layer, and along the persona directions."""
    n_layers = model.n_layers
    sweeps: dict[str, list[Patch]] = {}
    if "resid" in config.components:
        sweeps["resid_layer"] = [Patch("resid", at) for at in range(n_layers)]
        sweeps["direction_a"] = [Patch("resid", at, direction=_unit(v_a[at - 1])) for at in range(1, n_layers)]
        sweeps["direction_b"] = [Patch("resid", at, direction=_unit(v_b[at - 1])) for at in range(1, n_layers)]
        # The two vectors share most of their direction, so what tells the runs apart is mostly
        # their difference: patch along it too.
        sweeps["direction_contrast"] = [Patch("resid", at, direction=_unit(v_a[at - 1] - v_b[at - 1]))
                                        for at in range(1, n_layers)]
    for component in ("attn", "mlp"):
        if component in config.components:
            sweeps[f"{component}_layer"] = [Patch(component, at) for at in range(n_layers)]
    return sweeps


def _prompt_sweeps(model: Model, config: PatchingConfig, v_a, v_b, pair: RunPair, heads: list[int] | None, *,
                   only_heads: bool = False) -> dict[str, list[Patch]]:
    """Every exact patch of one prompt, by sweep: the layer sweeps, the residual per position over
    the last ``config.positions`` tokens, and the given heads (none when ``heads`` is None)."""
    n_layers, n_heads = model.n_layers, model.bridge.cfg.n_heads
    sweeps = {} if only_heads else _layer_sweeps(model, config, v_a, v_b)
    width = pair.tokens.shape[1]
    if "resid" in config.components and not only_heads:
        sweeps["resid_position"] = [Patch("resid", at, position=p) for at in range(n_layers)
                                    for p in range(width - config.positions, width) if p >= 0]
    if "heads" in config.components and heads is not None:
        sweeps["heads"] = [Patch("heads", i // n_heads, head=i % n_heads) for i in heads]
    return sweeps


def _unit(v):
    return v / v.norm()


def _effects(per_prompt, runs, n_layers, n_heads, positions) -> dict[str, dict[str, Any]]:
    """Every sweep's normalised effects over all prompts (ratio of means, Fieller intervals): the
    descriptive maps. Headlines come from :func:`_findings`, which reports on held-out prompts."""
    out: dict[str, dict[str, Any]] = {}
    for name, by_metric in per_prompt.items():
        out[name] = {}
        for m, rows in by_metric.items():
            if name == "resid_position":  # align on the last `positions` tokens of each prompt
                rows = [r.reshape(n_layers, -1)[:, -positions:] for r in rows]
            elif name == "heads":
                rows = [r.reshape(n_layers, n_heads) for r in rows]
            effect, low, high = normalised_effect(np.stack(rows), np.array(runs["target"][m]),
                                                  np.array(runs["source"][m]))
            out[name][m] = {"effect": effect.tolist(), "low": low.tolist(), "high": high.tolist()}
        out[name]["axes"] = {"resid_position": ["layer", "position_from_end"], "heads": ["layer", "head"]}.get(
            name, ["layer"] if name.endswith("_layer") else ["layer (from 1)"])
    return out


def _attribution_summary(attributions, effects, runs, positions) -> dict[str, Any]:
    """Attribution estimates normalised like the exact effects, and their agreement with them."""
    target, source = np.array(runs["target"]["logit_diff"]), np.array(runs["source"]["logit_diff"])
    summary: dict[str, Any] = {"metric": "logit_diff", "correlation_with_exact": {}}
    exact_names = {"resid": "resid_position", "attn": "attn_layer", "mlp": "mlp_layer", "heads": "heads"}
    for component, rows in attributions.items():
        if component == "resid":
            rows = [r[:, -positions:] for r in rows]
        stacked = np.stack(rows)  # [prompts, ...]: estimated change of the metric
        baseline = target.reshape((-1,) + (1,) * (stacked.ndim - 1))
        estimate, _, _ = normalised_effect(stacked + baseline, target, source)
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


IDENTITY_TOLERANCE = 1e-3
"""How far (in normalised-effect units) an identity may miss: float32 rounding of two runs whose
metrics differ by a small span, with room to spare."""

_WHY = {
    "before": "the source and target runs are identical up to the steering layer, whose output is where the "
              "steering is added, so copying anything from there changes nothing (these patches are not even run)",
    "after": "all that later layers read is the residual stream: copying all of it (every position) at any layer "
             "after the steering layer reproduces the source run, whatever the model computes",
    "contrast": "right after the steering layer the runs differ only by the difference of their steering vectors, "
                "λ(1 − α)(v_A − v_B) from pure A (λα(v_B − v_A) from pure B), which lies along v_A − v_B: the part "
                "along it is the whole difference",
    "parent": "this patch adds to the target the projection of that difference d onto {v}; a share (v̂·d̂)² of it, "
              "(1 − cos(v_A, v_B)) / 2 for vectors of equal norm, lies along d and the rest is orthogonal to d. The "
              "effect equals that share if the metric is linear in the residual and reads it only along d; a gap "
              "says how much the metric reads the orthogonal rest",
}


def _sanity_checks(effects: dict[str, dict[str, Any]], personas: Personas, n_layers: int) -> list[dict[str, Any]]:
    """Effects that are fixed by construction (identities) or by the geometry of v_A and v_B: they
    check the machinery and are not findings about the model."""
    if "resid_layer" not in effects:
        return []
    layer = personas.layer
    checks = [_check("whole residual at or before the steering layer", "resid_pre, all positions",
                     effects["resid_layer"], range(layer + 1), 0.0, _WHY["before"])]
    if layer + 1 >= n_layers:  # steering at the last layer: nothing after it to patch
        return checks
    checks.append(_check("whole residual after the steering layer", "resid_pre, all positions",
                         effects["resid_layer"], range(layer + 1, n_layers), 1.0, _WHY["after"]))
    # The direction sweeps start at layer 1: index `layer` is resid_pre of layer + 1.
    checks.append(_check("v_A − v_B part right after the steering layer", "resid_pre along v_A − v_B",
                         effects["direction_contrast"], [layer], 1.0, _WHY["contrast"], layer_offset=1))
    v_a, v_b = (v[layer].double() for v in (personas.v_a, personas.v_b))
    d = _unit(v_a - v_b)
    cosine = float(_unit(v_a) @ _unit(v_b))
    for name, label, v in (("direction_a", "v_A", v_a), ("direction_b", "v_B", v_b)):
        share = float(_unit(v) @ d) ** 2
        check = _check(f"{label}-only part right after the steering layer", f"resid_pre along {label}", effects[name],
                       [layer], share, _WHY["parent"].format(v=f"v̂_{label[-1]}"), layer_offset=1, predicted=True)
        checks.append({**check, "cosine_ab": cosine})
    return checks


def _check(name: str, patch: str, sweep: dict[str, Any], cells, expected: float, why: str, *, layer_offset: int = 0,
           predicted: bool = False) -> dict[str, Any]:
    """One sanity check over a sweep's cells, per metric: an identity holds when every cell is within
    :data:`IDENTITY_TOLERANCE` of ``expected`` (the worst cell is shown); a prediction holds when it
    lies inside the measured 95 % interval."""
    measured = {}
    for metric in METRICS:
        e = {key: np.asarray(sweep[metric][key], dtype=float) for key in ("effect", "low", "high")}
        worst = max(cells, key=lambda at: abs(e["effect"][at] - expected))
        value = {key: float(e[key][worst]) for key in e}
        if predicted:
            holds = bool(value["low"] <= expected <= value["high"])
        else:
            holds = bool(all(abs(e["effect"][at] - expected) <= IDENTITY_TOLERANCE for at in cells))
        measured[metric] = {**value, "layer": int(worst + layer_offset), "holds": holds}
    layers = [int(at + layer_offset) for at in cells]
    return {"name": name, "patch": patch, "layers": layers, "kind": "prediction" if predicted else "identity",
            "expected": expected, "tolerance": None if predicted else IDENTITY_TOLERANCE, "why": why,
            "criterion": ("the prediction lies inside the measured 95 % interval" if predicted else
                          f"every layer within {IDENTITY_TOLERANCE:g} of the expected value"),
            "measured": measured, "holds": all(v["holds"] for v in measured.values())}


FINDING_SWEEPS = ("attn_layer", "mlp_layer", "heads")
"""The single components a headline can name (the whole residual and the direction parts are sanity checks)."""


def _findings(per_prompt, runs: Runs, halves: tuple[list[int], list[int]],
              heads_by_half: tuple[list[int], list[int]] | None, config: PatchingConfig, n_layers: int,
              n_heads: int) -> dict[str, Any]:
    """The headline components, chosen on one half of the prompts and reported on the other, both ways
    round (:mod:`.selection`)."""
    metric = "logit_diff"
    patched = {}
    for name in FINDING_SWEEPS:
        if name in per_prompt:
            rows = np.stack(per_prompt[name][metric])
            patched[name] = rows.reshape(len(rows), n_layers, n_heads) if name == "heads" else rows
    target, source = np.array(runs["target"][metric]), np.array(runs["source"][metric])
    folds = []
    for choose_on, (choose, report) in enumerate((halves, halves[::-1])):
        candidates = None
        if heads_by_half is not None:  # only the heads that attribution picked on the choosing half
            mask = np.zeros(n_layers * n_heads, dtype=bool)
            mask[heads_by_half[choose_on]] = True
            candidates = {"heads": mask.reshape(n_layers, n_heads)}
        rows = select_and_report(patched, target, source, choose, report, k=config.select_top, candidates=candidates)
        folds.append({"choose_on": choose_on, "report_on": 1 - choose_on, "components": rows})
    chosen = [{(r["component"], tuple(r["index"])): r for r in fold["components"]} for fold in folds]
    both = [{"component": c, "index": list(i), "effects": [chosen[0][c, i]["effect"], chosen[1][c, i]["effect"]],
             "holds_up": [chosen[0][c, i]["holds_up"], chosen[1][c, i]["holds_up"]]}
            for c, i in sorted(chosen[0].keys() & chosen[1].keys())]
    return {"metric": metric, "seed": config.seed, "halves": [list(h) for h in halves], "k": config.select_top,
            "level": 0.95, "family_level": 1 - 0.05 / config.select_top, "folds": folds,
            "chosen_by_both": both,
            "rule": "prompts split once at random (seed); in each fold the k components (attention and MLP outputs "
                    "per layer, heads) with the largest mean change of the metric on one half are reported on the "
                    "other half with 95% Fieller intervals; 'holds_up': the interval at the family-wise level "
                    "1 − 0.05/k excludes 0 with the sign seen on the choosing half"}


__all__ = ["attribution_ranking", "dominance_patching", "run"]
