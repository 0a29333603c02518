"""The Creative Collision study: two opposing persona vectors, superimposed and swept over α × λ.

:func:`run` runs the study from a :class:`~interp_steer.studies.collision.config.CollisionConfig` and
returns a :class:`~interp_steer.studies.collision.result.CollisionResult`, one call per stage (read it
as the table of contents); :func:`collide` builds the config from keywords and calls it.
``result.save(out)`` writes ``collision.json``, the figures and ``report.md``. The steps:

1. **Persona vectors** at every layer: ``v_A = mean(persona A) − mean(baseline)``,
   ``v_B = mean(persona B) − mean(baseline)``, read at the last token by default (on the default
   model the mean over tokens makes the two vectors almost identical — cosine 0.99 at layer 15 — so
   the last token, which keeps more of what differs, steers the contrast better; see the README).
   Both are put on a common scale (:func:`~interp_steer.studies.mixing.common_scale`).
2. **Localisation**: cross-validated probes per layer for A vs baseline, B vs baseline and A vs B.
   ``layer="auto"`` steers at the shared layer where the weakest of the three is strongest.
3. **Collision grid**: every ``(α, λ)`` cell and the unsteered model, for every prompt (and sample),
   generated together as one batched per-row-delta generation, steering after the prompt.
4. **Axes** per cell, scored on completions only with the unsteered model: moral valence (VADER, and
   the A-vs-B probe readout), coherence (perplexity, repetition, distinct-n), surface style (style
   features and a style classifier trained on the corpora), dominance (per strength), geometry.
5. **Decomposition** of the collision vectors and of the observed residual shifts at the steering
   layer and every later layer onto ``v_A`` and ``v_B``.

Intervals are 95 % percentile bootstraps over prompts (with ``samples > 1``, a prompt's samples are
averaged first, so prompts stay the unit of resampling).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from interp_steer.activations import collect_activations
from interp_steer.directions import SteeringVector
from interp_steer.generation import Generation, generate
from interp_steer.metrics import ProbeReadout, score_generations
from interp_steer.models import Model, load_model
from interp_steer.stats import bootstrap_mean, paired_difference, summarise
from interp_steer.steering import RowDeltas, Steering, steer
from interp_steer.studies._common import Stopwatch
from interp_steer.studies.collision.config import CollisionConfig
from interp_steer.studies.collision.findings import judge_findings
from interp_steer.studies.collision.result import CollisionResult
from interp_steer.studies.collision.style import StyleClassifier
from interp_steer.studies.mixing import (
    SCORE_SCALES,
    Dominance,
    collision_vector,
    decompose,
    dominance,
    quiet_nan_warnings,
)
from interp_steer.studies.personas import Personas, StudyTexts, Texts, build_personas, study_inputs


def run(
    model: Model | str | None,
    config: CollisionConfig,
    *,
    persona_a: Texts = None,
    persona_b: Texts = None,
    baseline: Texts = None,
    prompts: Texts = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> CollisionResult:
    """Run the collision study; one line per stage (see the module docstring).

    ``model`` is a :class:`Model` or a spec for :func:`~interp_steer.load_model` (``None``: the
    embedded SmolLM2). Corpora and prompts are lists of texts or file paths (``None``: the built-in
    personas, baseline and prompts). ``log`` receives one line per stage, with its time.
    """
    clock = Stopwatch(log)
    model = model if isinstance(model, Model) else load_model(model)
    clock.lap("load_model")
    data, texts = study_inputs(persona_a, persona_b, baseline, prompts, max_passages=config.max_passages,
                               max_prompts=config.max_prompts, min_passages=config.folds)
    personas = build_personas(model, texts.persona_a, texts.persona_b, texts.baseline, position=config.position,
                              folds=config.folds, seed=config.seed, layer=config.layer, progress=progress,
                              hashes=(data["persona_a"]["sha256"], data["persona_b"]["sha256"]), on_stage=clock.lap)
    readout = _readout(model, config, personas, texts, progress)
    style = StyleClassifier.fit(texts.persona_a, texts.persona_b, folds=config.folds, seed=config.seed)
    clock.lap("readout_and_style")
    grid = _generate_grid(model, config, personas, texts.prompts, progress, clock.say)
    clock.lap("generation")
    scores = _score(model, config, grid, readout, style)
    unsteered, cells = _summarise(config, grid, scores, personas)
    dominance_by_score = _dominance(config, scores)
    coherence = _coherence(config, scores.per_prompt, scores.unsteered)
    clock.lap("scoring")
    decomposition = _decompose_shifts(model, config, personas, coherence["best_lambda"], texts.prompts, grid, progress)
    clock.lap("decomposition")
    geometry = _geometry(personas.raw_a, personas.raw_b, personas.resid_norm)
    findings = judge_findings(config, dominance_by_score, coherence, scores.per_prompt, personas.localisation,
                              personas.profiles)
    return CollisionResult(
        model={"name": model.name, "source": str(model.source), "n_layers": model.n_layers, "d_model": model.d_model},
        config=config, data=data, layer=personas.layer, localisation=personas.localisation, geometry=geometry,
        vector_a=personas.v_a, vector_b=personas.v_b, prompts=texts.prompts, unsteered=unsteered, cells=cells,
        per_prompt=scores.per_prompt, per_prompt_unsteered=scores.unsteered, dominance=dominance_by_score,
        coherence=coherence, style=style.to_dict(), readout=_describe_readout(readout, personas),
        decomposition=decomposition, findings=findings, timings=clock.total(),
    )


def collide(
    model: Model | str | None = None,
    *,
    persona_a: Texts = None,
    persona_b: Texts = None,
    baseline: Texts = None,
    prompts: Texts = None,
    config: CollisionConfig | None = None,
    quick: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    **overrides: Any,
) -> CollisionResult:
    """The collision study in one call: the settings come from ``config``, or from
    :meth:`CollisionConfig.quick` when ``quick``, with keyword ``overrides`` (e.g. ``layer=15``,
    ``lambdas=(0.2, 0.4)``); everything else is passed to :func:`run`.
    """
    if config is None:
        config = CollisionConfig.quick(**overrides) if quick else CollisionConfig(**overrides)
    elif overrides:
        config = replace(config, **overrides)
    return run(model, config, persona_a=persona_a, persona_b=persona_b, baseline=baseline, prompts=prompts,
               progress=progress, log=log)


# ------------------------------------------------------------------------------------- stages


def _readout(model: Model, config: CollisionConfig, personas: Personas, texts: StudyTexts,
             progress: bool | None) -> ProbeReadout:
    """The A-vs-B probe that reads completions: mean-over-token activations at the A-vs-B best layer."""
    readout_layer = personas.profiles["A vs B"].best_layer
    if config.position == "mean":
        mean_a, mean_b = personas.act_a.at(readout_layer), personas.act_b.at(readout_layer)
    else:
        a_texts, b_texts = texts.persona_a, texts.persona_b
        both = collect_activations(model, a_texts + b_texts, layers=[readout_layer], position="mean", progress=progress)
        pa, pb = both.split(len(a_texts), len(b_texts))
        mean_a, mean_b = pa.values[:, 0], pb.values[:, 0]
    return ProbeReadout.from_activations(mean_a, mean_b, layer=readout_layer, labels=("persona A", "persona B"))


def _describe_readout(readout: ProbeReadout, personas: Personas) -> dict[str, Any]:
    return {"layer": readout.layer, "positive": readout.positive_label, "negative": readout.negative_label,
            "train_accuracy": readout.train_accuracy, "heldout_accuracy": personas.profiles["A vs B"].heldout_accuracy,
            "reads": "mean residual over the completion's tokens, unsteered model"}


@dataclass(frozen=True, eq=False)
class _Grid:
    """The grid's completions. ``cells[0]`` is the unsteered model (λ = 0), then every ``(λ, α)``
    with α varying fastest; the completion of prompt p, sample s, cell c is row
    ``(p * n_samples + s) * len(cells) + c``."""

    cells: list[tuple[float, float | None]]
    n_prompts: int
    n_samples: int
    outputs: list[Generation]

    def completion(self, prompt: int, cell: int, sample: int = 0) -> Generation:
        return self.outputs[(prompt * self.n_samples + sample) * len(self.cells) + cell]


def _generate_grid(model: Model, config: CollisionConfig, personas: Personas, prompts: list[str],
                   progress: bool | None, say: Callable[[str], None]) -> _Grid:
    """Every cell of every prompt (and sample) in one batched generation with a delta per row,
    steering from the end of the prompt on; samples share random streams across cells."""
    cells: list[tuple[float, float | None]] = [(0.0, None)] + [(lam, alpha) for lam in config.lambdas
                                                               for alpha in config.alphas]
    n_samples = config.samples or 1
    layer = personas.layer
    rows, deltas, sample_ids = [], [], []
    a_layer, b_layer = personas.v_a.select([layer]), personas.v_b.select([layer])
    for prompt in prompts:
        for s in range(n_samples):
            for lam, alpha in cells:
                rows.append(prompt)
                sample_ids.append(s)
                weight_a = 0.0 if alpha is None else lam * alpha
                weight_b = 0.0 if alpha is None else lam * (1 - alpha)
                deltas.append([(a_layer, weight_a), (b_layer, weight_b)])
    sampling = {"temperature": config.temperature, "top_p": config.top_p, "seed": config.seed,
                "sample_ids": sample_ids} if config.samples else {}
    say(f"generating {len(rows)} completions ({len(prompts)} prompts x {n_samples} sample(s) x "
        f"{len(cells)} cells) at layer {layer}")
    outputs = generate(model, rows, steering=Steering(RowDeltas.from_rows(deltas), positions="after_prompt"),
                       max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
                       progress=progress, **sampling)
    return _Grid(cells, len(prompts), n_samples, outputs)


@dataclass(frozen=True, eq=False)
class _Scores:
    """Per-prompt scores (a prompt's samples averaged; perplexity as a geometric mean)."""

    per_prompt: dict[str, np.ndarray]  # metric -> [lambdas, alphas, prompts]
    unsteered: dict[str, np.ndarray]  # metric -> [prompts]


def _score(model: Model, config: CollisionConfig, grid: _Grid, readout: ProbeReadout, style: StyleClassifier) -> _Scores:
    """Every completion scored on its own tokens by the unsteered model, then averaged per prompt."""
    flat = score_generations(model, grid.outputs, readout=readout)
    flat["style_a"] = style.score([g.text for g in grid.outputs])
    shape = (grid.n_prompts, grid.n_samples, len(grid.cells))
    per_row = {name: values.reshape(shape) for name, values in flat.items()}
    with quiet_nan_warnings():
        log_ppl = np.nanmean(np.log(per_row["perplexity"]), axis=1)  # geometric mean over samples
        per_prompt_all = {name: np.nanmean(v, axis=1) for name, v in per_row.items()}  # [prompts, cells]
    per_prompt_all["perplexity"] = np.exp(log_ppl)
    n_l, n_a = len(config.lambdas), len(config.alphas)
    per_prompt = {name: v[:, 1:].reshape(grid.n_prompts, n_l, n_a).transpose(1, 2, 0) for name, v in per_prompt_all.items()}
    return _Scores(per_prompt, {name: v[:, 0] for name, v in per_prompt_all.items()})


def _summarise(config: CollisionConfig, grid: _Grid, scores: _Scores,
               personas: Personas) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The unsteered model and every cell: intervals per metric, the mix's norm, sample completions."""
    layer = personas.layer
    a_layer, b_layer = personas.v_a.select([layer]), personas.v_b.select([layer])

    def samples(cell: int) -> list[str]:
        return [grid.completion(p, cell).text for p in range(min(config.keep_samples, grid.n_prompts))]

    unsteered = {"metrics": {name: _interval(name, v, config.seed) for name, v in scores.unsteered.items()},
                 "samples": samples(0)}
    cells = []
    n_a = len(config.alphas)
    for li, lam in enumerate(config.lambdas):
        for ai, alpha in enumerate(config.alphas):
            cells.append({"lambda": lam, "alpha": alpha,
                          "mix_norm": float(collision_vector(a_layer, b_layer, alpha, lam)[layer].norm()
                                            / personas.resid_norm[layer]),
                          "metrics": {name: _interval(name, v[li, ai], config.seed) for name, v in scores.per_prompt.items()},
                          "samples": samples(1 + li * n_a + ai)})
    return unsteered, cells


def _dominance(config: CollisionConfig, scores: _Scores) -> dict[str, list[Dominance]]:
    """d(α) per strength for the two valence scores, on unbounded scales: VADER through 2·artanh, the
    readout on its own log-odds."""
    return {key: [dominance(config.alphas, scores.per_prompt[source][li], score=source, scale=SCORE_SCALES[source])
                  for li in range(len(config.lambdas))]
            for key, source in (("vader", "vader"), ("probe_valence", "probe_log_odds"))}


def _interval(name: str, values: np.ndarray, seed: int) -> dict[str, Any]:
    """Mean and 95 % bootstrap interval over prompts; perplexity as a geometric mean (:func:`summarise`)."""
    values = np.asarray(values, dtype=float)
    if np.isnan(values).all():
        return {"mean": None, "low": None, "high": None, "n": 0}
    return summarise(values, metric=name, seed=seed).to_dict()


def _coherence(config: CollisionConfig, per_prompt: dict[str, np.ndarray], unsteered: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per strength: how much each pure end degrades the text, and which strength is the best usable
    one (the non-degraded strength whose pure ends differ most in VADER valence)."""
    log_ppl = np.log(per_prompt["perplexity"])  # [lambdas, alphas, prompts]
    base_log_ppl = np.log(unsteered["perplexity"])
    base_rep = float(np.nanmean(unsteered["repetition"]))
    strengths = []
    for li, lam in enumerate(config.lambdas):
        ends = {}
        for label, ai in (("B", 0), ("A", len(config.alphas) - 1)):
            ratio = paired_difference(log_ppl[li, ai], base_log_ppl, seed=config.seed, allow_empty=True)
            repetition = float(np.nanmean(per_prompt["repetition"][li, ai]))
            ends[label] = {"perplexity_ratio": math.exp(ratio.mean),
                           "perplexity_ratio_low": math.exp(ratio.low), "perplexity_ratio_high": math.exp(ratio.high),
                           "repetition": repetition}
        # NaN (every completion of an end empty) counts as degraded.
        degraded = any(not e["perplexity_ratio"] <= config.degradation_ratio
                       or e["repetition"] > base_rep + config.degradation_repetition for e in ends.values())
        separation = paired_difference(per_prompt["vader"][li, -1], per_prompt["vader"][li, 0], seed=config.seed, allow_empty=True)
        strengths.append({"lambda": lam, "degraded": bool(degraded), "ends": ends,
                          "vader_a_minus_b": separation.to_dict()})
    usable = [s for s in strengths if not s["degraded"]]
    best = max(usable, key=lambda s: s["vader_a_minus_b"]["mean"]) if usable else strengths[0]
    return {"unsteered_repetition": base_rep, "per_lambda": strengths, "best_lambda": best["lambda"],
            "best_lambda_is_degraded": not usable,
            "rule": (f"degraded: a pure end's perplexity > {config.degradation_ratio:g}x the unsteered one "
                     f"(geometric mean) or its repetition rate > unsteered + {config.degradation_repetition:g}; "
                     "best: the non-degraded strength with the largest mean VADER(A end) - VADER(B end)")}


def _decompose_shifts(model: Model, config: CollisionConfig, personas: Personas, lam: float, prompts: list[str],
                      grid: _Grid, progress: bool | None) -> dict[str, Any]:
    """:func:`_decomposition` at ``lam`` on the first ``config.decomposition_prompts`` prompts (all
    when ``None``), each with its unsteered completion from the grid."""
    prompts = prompts[: config.decomposition_prompts] if config.decomposition_prompts else prompts
    unsteered = [grid.completion(p, 0) for p in range(len(prompts))]
    return _decomposition(model, personas.v_a, personas.v_b, personas.layer, config, lam, prompts, unsteered, progress)


@torch.inference_mode()
def _decomposition(model: Model, v_a: SteeringVector, v_b: SteeringVector, layer: int, config: CollisionConfig,
                   lam: float, prompts: list[str], unsteered: list, progress: bool | None) -> dict[str, Any]:
    """(a) each collision vector of the grid at ``lam``, and (b) the observed mean residual shift it
    causes at the steering layer and every later layer, decomposed onto ``v_A``/``v_B`` there.

    The observed shift is measured on each prompt's unsteered transcript (chat-formatted prompt plus
    its unsteered completion) with the collision vector added at every position; it is the steered
    minus the unsteered residual, averaged over positions, per prompt.
    """
    texts = [model.format_chat(p) + g.text if model.has_chat_template else p + g.text
             for p, g in zip(prompts, unsteered, strict=True)]
    later = list(range(layer, model.n_layers))
    clean = collect_activations(model, texts, layers=later, position="mean", progress=progress).values
    vectors, observed = [], []
    for alpha in config.alphas:
        mixed = collision_vector(v_a, v_b, alpha, lam).select([layer])
        parts = decompose(mixed[layer], v_a[layer], v_b[layer])
        vectors.append({"alpha": alpha, "coef_a": float(parts.coef_a[0]), "coef_b": float(parts.coef_b[0]),
                        "residual_fraction": float(parts.residual_fraction[0])})
        with steer(model, mixed):
            shifted = collect_activations(model, texts, layers=later, position="mean", progress=False).values
        shift = (shifted - clean).double()  # [prompts, layers, d]
        per_layer = []
        for i, at in enumerate(later):
            parts = decompose(shift[:, i], v_a[at], v_b[at])
            share = parts.coef_a / (parts.coef_a + parts.coef_b)
            per_layer.append({
                "layer": at,
                "coef_a": bootstrap_mean(parts.coef_a, seed=config.seed, allow_empty=True).to_dict(),
                "coef_b": bootstrap_mean(parts.coef_b, seed=config.seed, allow_empty=True).to_dict(),
                "share_a": float(np.nanmean(share)),
                "residual_fraction": bootstrap_mean(parts.residual_fraction, seed=config.seed, allow_empty=True).to_dict(),
                "shift_norm": float(shift[:, i].norm(dim=-1).mean()),
                "cosine_ab": parts.cosine_ab,
            })
        observed.append({"alpha": alpha, "layers": per_layer})
    # Later layers can tilt every shift towards one parent (pure B's shift picks up an A share too),
    # so the share that speaks to dominance is where a mix sits between the pure ends' shares, the
    # representational analogue of d(α): α at the steering layer by construction.
    for i in range(len(later)):
        low, high = observed[0]["layers"][i]["share_a"], observed[-1]["layers"][i]["share_a"]
        for entry in observed:
            row = entry["layers"][i]
            row["share_between_ends"] = (row["share_a"] - low) / (high - low) if high != low else float("nan")
    return {"lambda": lam, "layer": layer, "n_prompts": len(prompts), "collision_vectors": vectors, "observed": observed,
            "basis": "v_A and v_B at each layer, on the common scale (coefficient 1 = one mean residual norm)",
            "measured_on": "unsteered transcripts (prompt + unsteered completion), vector added at every position"}


def _geometry(v_a: SteeringVector, v_b: SteeringVector, resid_norm: dict[int, float]) -> dict[str, Any]:
    cosine = v_a.cosine(v_b)
    layers = list(v_a.layers)
    return {
        "layers": layers,
        "cosine": [cosine[layer] for layer in layers],
        "angle_degrees": [math.degrees(math.acos(max(-1.0, min(1.0, cosine[layer])))) for layer in layers],
        "norm_a": [v_a.norms()[layer] for layer in layers],
        "norm_b": [v_b.norms()[layer] for layer in layers],
        "relative_norm_a": [v_a.norms()[layer] / resid_norm[layer] for layer in layers],
        "relative_norm_b": [v_b.norms()[layer] / resid_norm[layer] for layer in layers],
        "resid_norm": [resid_norm[layer] for layer in layers],
        # |v_A - v_B| / |v_A + v_B| on the common scale: how much of a pure end is what the two do not share.
        "contrast_fraction": [float((_unit(v_a[layer]) - _unit(v_b[layer])).norm() / (_unit(v_a[layer]) + _unit(v_b[layer])).norm())
                              for layer in layers],
    }


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


__all__ = ["collide", "run"]
