"""The Creative Collision study: two opposing persona vectors, superimposed and swept over α × λ.

:func:`collide` runs the whole study and returns a :class:`CollisionResult`; ``result.save(out)``
writes ``collision.json``, the figures and ``report.md``. The steps:

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
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp_steer.activations import collect_activations
from interp_steer.data import dataset_hash, load_builtin, load_corpus, load_prompts
from interp_steer.directions import SteeringVector, from_activations
from interp_steer.generation import generate
from interp_steer.metrics import ProbeReadout, score_generations
from interp_steer.models import Model
from interp_steer.probes import Localisation, locate, probe_layers
from interp_steer.stats import bootstrap_mean, paired_difference
from interp_steer.steering import RowDeltas, Steering, steer
from interp_steer.studies.collision.style import StyleClassifier
from interp_steer.studies.mixing import (
    Dominance,
    collision_vector,
    common_scale,
    decompose,
    dominance,
    quiet_nan_warnings,
)

DEFAULT_ALPHAS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
DEFAULT_LAMBDAS = (0.1, 0.2, 0.3, 0.5, 0.8)
QUICK_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
QUICK_LAMBDAS = (0.3, 0.8)

AXES = {
    "moral_valence": ("vader", "probe_valence"),
    "coherence": ("perplexity", "repetition", "distinct_1", "distinct_2"),
    "surface_style": ("style_a", "n_words", "mean_sentence_length", "type_token_ratio",
                      "punctuation_per_word", "exclamations_per_sentence", "reading_ease"),
}
"""Which per-completion metrics make up each evaluation axis (dominance and geometry are derived)."""

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CollisionConfig:
    """Settings of a collision study; validated on construction, round-trips through JSON.

    ``lambdas`` are in units of the mean residual norm at the steering layer. ``samples=None`` means
    greedy decoding; ``samples=N`` draws N samples per prompt (``temperature``, ``top_p``) on common
    random numbers across cells. ``max_prompts``/``max_passages`` cap the prompt list and each corpus
    (first items kept); ``decomposition_prompts`` caps the prompts whose residual shifts are
    decomposed (``None``: all). A strength is *degraded* when either pure end's perplexity (geometric mean
    over prompts) exceeds ``degradation_ratio`` times the unsteered model's, or its repetition rate
    exceeds the unsteered one by more than ``degradation_repetition``.
    """

    layer: int | str = "auto"
    alphas: Sequence[float | int] = DEFAULT_ALPHAS
    lambdas: Sequence[float | int] = DEFAULT_LAMBDAS
    position: str = "last"
    max_new_tokens: int = 40
    samples: int | None = None
    temperature: float | int = 0.8
    top_p: float | int = 0.95
    seed: int = 0
    max_prompts: int | None = None
    max_passages: int | None = None
    batch_size: int = 64
    folds: int = 5
    degradation_ratio: float | int = 2.0
    degradation_repetition: float | int = 0.2
    keep_samples: int = 2
    decomposition_prompts: int | None = None
    profile: str = "default"

    def __post_init__(self) -> None:
        alphas = tuple(float(a) for a in self.alphas)
        lambdas = tuple(float(x) for x in self.lambdas)
        if len(alphas) < 3 or alphas[0] != 0.0 or alphas[-1] != 1.0 or any(b <= a for a, b in zip(alphas, alphas[1:], strict=False)):
            raise ValueError(f"alphas must increase from 0 to 1, both included, with at least one mix between; got {list(alphas)}")
        if not lambdas or any(not math.isfinite(x) or x <= 0 for x in lambdas) or list(lambdas) != sorted(set(lambdas)):
            raise ValueError(f"lambdas must be positive, distinct and increasing (λ = 0 is always run as the "
                             f"unsteered reference); got {list(lambdas)}")
        if not (self.layer == "auto" or (isinstance(self.layer, int) and not isinstance(self.layer, bool) and self.layer >= 0)):
            raise ValueError(f"layer must be 'auto' or a layer number, got {self.layer!r}")
        if self.position not in ("last", "mean"):
            raise ValueError(f"position must be 'last' or 'mean', got {self.position!r}")
        for name in ("max_new_tokens", "batch_size", "folds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("samples", "max_prompts", "max_passages", "decomposition_prompts"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None), got {value}")
        if self.samples is not None and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError("sampling needs temperature > 0 and 0 < top_p <= 1")
        if self.degradation_ratio <= 1:
            raise ValueError(f"degradation_ratio must be > 1, got {self.degradation_ratio}")
        object.__setattr__(self, "alphas", alphas)
        object.__setattr__(self, "lambdas", lambdas)

    @classmethod
    def quick(cls, **overrides: Any) -> CollisionConfig:
        """The ``--quick`` profile: 5 mixes × 2 strengths, 16 prompts (8 of them decomposed), 48
        passages per corpus, 32 new tokens, 3-fold probes. Sixteen prompts is about the fewest that still separates the pure ends'
        valence on the default model; the whole run takes 2–3 minutes on a 2-core CPU."""
        settings: dict[str, Any] = {"alphas": QUICK_ALPHAS, "lambdas": QUICK_LAMBDAS, "max_prompts": 16,
                                    "max_passages": 48, "max_new_tokens": 32, "folds": 3,
                                    "decomposition_prompts": 8, "profile": "quick"}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["alphas"], out["lambdas"] = list(self.alphas), list(self.lambdas)
        return out


@dataclass(frozen=True)
class Finding:
    """One of the paper's findings, judged on this run: ``verdict`` is ``"reproduced"``,
    ``"not reproduced"`` or ``"inconclusive"``; ``summary`` says why, with the numbers."""

    key: str
    claim: str
    verdict: str
    summary: str
    numbers: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class CollisionResult:
    """Everything a collision study measured. ``to_dict()`` is the content of ``collision.json``
    (schema: ``interp_steer/studies/collision/schema.json``); :meth:`save` writes it with figures and report."""

    model: dict[str, Any]
    config: CollisionConfig
    data: dict[str, Any]
    layer: int
    localisation: Localisation
    geometry: dict[str, Any]
    vector_a: SteeringVector
    vector_b: SteeringVector
    prompts: list[str]
    unsteered: dict[str, Any]
    cells: list[dict[str, Any]]
    per_prompt: dict[str, np.ndarray]  # metric -> [lambdas, alphas, prompts]
    per_prompt_unsteered: dict[str, np.ndarray]  # metric -> [prompts]
    dominance: dict[str, list[Dominance]]  # score -> one per lambda
    coherence: dict[str, Any]
    style: dict[str, Any]
    readout: dict[str, Any]
    decomposition: dict[str, Any]
    findings: list[Finding]
    timings: dict[str, float] = field(default_factory=dict)

    def cell(self, lam: float, alpha: float) -> dict[str, Any]:
        for c in self.cells:
            if math.isclose(c["lambda"], lam) and math.isclose(c["alpha"], alpha):
                return c
        raise KeyError(f"no cell (lambda={lam}, alpha={alpha}); the grid has lambdas {list(self.config.lambdas)} "
                       f"and alphas {list(self.config.alphas)}")

    def to_dict(self) -> dict[str, Any]:
        from interp_steer import __version__

        return {
            "schema_version": SCHEMA_VERSION,
            "library_version": __version__,
            "model": self.model,
            "config": self.config.to_dict(),
            "seed": self.config.seed,
            "data": self.data,
            "layer": self.layer,
            "grid": {"alphas": list(self.config.alphas), "lambdas": list(self.config.lambdas),
                     "lambda_units": "mean residual norm at the steering layer",
                     "formula": "v(alpha, lambda) = lambda * (alpha * vhat_A + (1 - alpha) * vhat_B)"},
            "axes": {k: list(v) for k, v in AXES.items()},
            "localisation": self.localisation.to_dict(),
            "geometry": self.geometry,
            "prompts": self.prompts,
            "unsteered": self.unsteered,
            "cells": self.cells,
            "dominance": {score: [d.to_dict() for d in per_lambda] for score, per_lambda in self.dominance.items()},
            "coherence": self.coherence,
            "style_classifier": self.style,
            "readout": self.readout,
            "decomposition": self.decomposition,
            "findings": [f.to_dict() for f in self.findings],
            "timings_s": self.timings,
        }

    def save(self, out: str | Path, *, figures: bool = True) -> dict[str, Path]:
        """Write ``collision.json``, the vectors, the PNG figures and ``report.md`` under ``out``."""
        from interp_steer.studies.collision.report import write_outputs

        return write_outputs(self, Path(out), figures=figures)


# ---------------------------------------------------------------------------------------- study


@dataclass(frozen=True, eq=False)
class Personas:
    """Two persona vectors against a baseline, their localisation and the chosen steering layer.

    ``raw_a``/``raw_b`` are the mean differences; ``v_a``/``v_b`` the same directions on the common
    scale (unit norm times ``resid_norm[layer]``, the mean residual norm over all three corpora).
    ``profiles`` holds the probe profiles "A vs baseline", "B vs baseline" and "A vs B".
    """

    raw_a: SteeringVector
    raw_b: SteeringVector
    v_a: SteeringVector
    v_b: SteeringVector
    act_a: Any
    act_b: Any
    resid_norm: dict[int, float]
    profiles: dict[str, Any]
    localisation: Localisation
    layer: int


def build_personas(
    model: Model,
    persona_a: Sequence[str],
    persona_b: Sequence[str],
    baseline: Sequence[str],
    *,
    position: str = "last",
    folds: int = 5,
    seed: int = 0,
    layer: int | str = "auto",
    hashes: tuple[str, str] | None = None,
    progress: bool | None = None,
    on_stage: Callable[[str, float], Any] | None = None,
    started: float | None = None,
) -> Personas:
    """Persona vectors at every layer from one collection of the three corpora, per-layer probes, and
    the steering layer (``"auto"``: the shared layer where the weakest of the three profiles is
    strongest). Shared by the collision study and dominance patching."""
    a_texts, b_texts, base_texts = list(persona_a), list(persona_b), list(baseline)
    clock = time.perf_counter() if started is None else started
    acts = collect_activations(model, a_texts + b_texts + base_texts, position=position, progress=progress)
    act_a, act_b, act_base = acts.split(len(a_texts), len(b_texts), len(base_texts))
    norms = acts.values.norm(dim=-1).mean(0)
    resid_norm = {at: float(norms[i]) for i, at in enumerate(acts.layers)}
    hash_a, hash_b = hashes or (dataset_hash(a_texts), dataset_hash(b_texts))
    raw_a = from_activations(act_a, act_base, metadata={"dataset_hash": hash_a, "description": "persona A - baseline"})
    raw_b = from_activations(act_b, act_base, metadata={"dataset_hash": hash_b, "description": "persona B - baseline"})
    v_a, v_b = common_scale(raw_a, raw_b, resid_norm)
    if on_stage:
        clock = on_stage("persona_vectors", clock)
    profiles = {
        "A vs baseline": probe_layers(act_a, act_base, folds=folds, seed=seed, concept="A vs baseline"),
        "B vs baseline": probe_layers(act_b, act_base, folds=folds, seed=seed, concept="B vs baseline"),
        "A vs B": probe_layers(act_a, act_b, folds=folds, seed=seed, concept="A vs B"),
    }
    localisation = locate(profiles)
    chosen = localisation.shared_layer if layer == "auto" else model.resolve_layers([layer])[0]
    if on_stage:
        on_stage("localisation", clock)
    return Personas(raw_a, raw_b, v_a, v_b, act_a, act_b, resid_norm, profiles, localisation, int(chosen))




def collide(
    model: Model | str | None = None,
    *,
    persona_a: Sequence[str] | str | Path | None = None,
    persona_b: Sequence[str] | str | Path | None = None,
    baseline: Sequence[str] | str | Path | None = None,
    prompts: Sequence[str] | str | Path | None = None,
    config: CollisionConfig | None = None,
    quick: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    **overrides: Any,
) -> CollisionResult:
    """Run the collision study (see the module docstring).

    ``model`` is a :class:`Model` or a spec for :func:`~interp_steer.load_model` (default: the
    embedded SmolLM2). Corpora and prompts are lists of texts or file paths (default: the built-in
    personas, baseline and prompts). Settings come from ``config`` or :meth:`CollisionConfig.quick`
    when ``quick``, with keyword ``overrides`` (e.g. ``layer=15``, ``lambdas=(0.2, 0.4)``).
    ``log`` receives one line per stage.
    """
    from interp_steer.models import load_model

    started = time.perf_counter()
    say = log or (lambda _line: None)
    if config is None:
        config = CollisionConfig.quick(**overrides) if quick else CollisionConfig(**overrides)
    elif overrides:
        config = replace(config, **overrides)
    timings: dict[str, float] = {}

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        timings[stage] = round(now - since, 2)
        say(f"{stage}: {now - since:.1f} s")
        return now

    if not isinstance(model, Model):
        model = load_model(model)
    clock = lap("load_model", started)
    data, texts = study_inputs(persona_a, persona_b, baseline, prompts, max_passages=config.max_passages,
                               max_prompts=config.max_prompts, min_passages=config.folds)
    a_texts, b_texts, base_texts, prompt_list = texts

    personas = build_personas(model, a_texts, b_texts, base_texts, position=config.position, folds=config.folds,
                              seed=config.seed, layer=config.layer, hashes=(data["persona_a"]["sha256"],
                                                                            data["persona_b"]["sha256"]),
                              progress=progress, on_stage=lambda stage, since: lap(stage, since), started=clock)
    clock = time.perf_counter()
    v_a, v_b, raw_a, raw_b = personas.v_a, personas.v_b, personas.raw_a, personas.raw_b
    act_a, act_b = personas.act_a, personas.act_b
    resid_norm, profiles, localisation, layer = personas.resid_norm, personas.profiles, personas.localisation, personas.layer

    # The probe readout reads mean-over-token activations of completions at the A-vs-B best layer.
    readout_layer = profiles["A vs B"].best_layer
    if config.position == "mean":
        mean_a, mean_b = act_a.at(readout_layer), act_b.at(readout_layer)
    else:
        both = collect_activations(model, a_texts + b_texts, layers=[readout_layer], position="mean", progress=progress)
        pa, pb = both.split(len(a_texts), len(b_texts))
        mean_a, mean_b = pa.values[:, 0], pb.values[:, 0]
    readout = ProbeReadout.from_activations(mean_a, mean_b, layer=readout_layer, labels=("persona A", "persona B"))
    style = StyleClassifier.fit(a_texts, b_texts, folds=config.folds, seed=config.seed)
    clock = lap("readout_and_style", clock)

    # 3. the grid, one batched generation.
    grid = [(0.0, None)] + [(lam, alpha) for lam in config.lambdas for alpha in config.alphas]
    n_samples = config.samples or 1
    rows, deltas, sample_ids = [], [], []
    a_layer, b_layer = v_a.select([layer]), v_b.select([layer])
    for prompt in prompt_list:
        for s in range(n_samples):
            for lam, alpha in grid:
                rows.append(prompt)
                sample_ids.append(s)
                weight_a = 0.0 if alpha is None else lam * alpha
                weight_b = 0.0 if alpha is None else lam * (1 - alpha)
                deltas.append([(a_layer, weight_a), (b_layer, weight_b)])
    sampling = {"temperature": config.temperature, "top_p": config.top_p, "seed": config.seed,
                "sample_ids": sample_ids} if config.samples else {}
    say(f"generating {len(rows)} completions ({len(prompt_list)} prompts x {n_samples} sample(s) x "
        f"{len(grid)} cells) at layer {layer}")
    outputs = generate(model, rows, steering=Steering(RowDeltas.from_rows(deltas), positions="after_prompt"),
                       max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
                       progress=progress, **sampling)
    clock = lap("generation", clock)

    # 4. scores, on completions only, by the unsteered model.
    flat = score_generations(model, outputs, readout=readout)
    flat["style_a"] = style.score([g.text for g in outputs])
    shape = (len(prompt_list), n_samples, len(grid))
    per_row = {name: values.reshape(shape) for name, values in flat.items()}
    with quiet_nan_warnings():
        log_ppl = np.nanmean(np.log(per_row["perplexity"]), axis=1)  # geometric mean over samples
        per_prompt_all = {name: np.nanmean(v, axis=1) for name, v in per_row.items()}  # [prompts, cells]
    per_prompt_all["perplexity"] = np.exp(log_ppl)
    n_l, n_a = len(config.lambdas), len(config.alphas)
    per_prompt = {name: v[:, 1:].reshape(len(prompt_list), n_l, n_a).transpose(1, 2, 0) for name, v in per_prompt_all.items()}
    per_prompt_unsteered = {name: v[:, 0] for name, v in per_prompt_all.items()}
    samples = {c: [outputs[(p * n_samples) * len(grid) + c].text for p in range(min(config.keep_samples, len(prompt_list)))]
               for c in range(len(grid))}
    unsteered = {"metrics": {name: _interval(name, v, config.seed) for name, v in per_prompt_unsteered.items()},
                 "samples": samples[0]}
    cells = []
    for li, lam in enumerate(config.lambdas):
        for ai, alpha in enumerate(config.alphas):
            cells.append({"lambda": lam, "alpha": alpha,
                          "mix_norm": float(collision_vector(a_layer, b_layer, alpha, lam)[layer].norm() / resid_norm[layer]),
                          "metrics": {name: _interval(name, v[li, ai], config.seed) for name, v in per_prompt.items()},
                          "samples": samples[1 + li * n_a + ai]})
    dominance_by_score = {
        score: [dominance(config.alphas, per_prompt[score][li], score=score, seed=config.seed) for li in range(n_l)]
        for score in ("vader", "probe_valence")
    }
    coherence = _coherence(config, per_prompt, per_prompt_unsteered)
    clock = lap("scoring", clock)

    # 5. decomposition at the best usable strength.
    decomposed = prompt_list[: config.decomposition_prompts] if config.decomposition_prompts else prompt_list
    decomposition = _decomposition(model, v_a, v_b, layer, config, coherence["best_lambda"], decomposed,
                                   [outputs[p * n_samples * len(grid)] for p in range(len(decomposed))], progress)
    clock = lap("decomposition", clock)

    geometry = _geometry(raw_a, raw_b, resid_norm)
    findings = [
        _finding_dominance(config, dominance_by_score, coherence, per_prompt),
        _finding_coherence(config, per_prompt, coherence),
        _finding_shared_layer(localisation, profiles),
    ]
    timings["total"] = round(time.perf_counter() - started, 2)
    return CollisionResult(
        model={"name": model.name, "source": str(model.source), "n_layers": model.n_layers, "d_model": model.d_model},
        config=config, data=data, layer=int(layer), localisation=localisation, geometry=geometry,
        vector_a=v_a, vector_b=v_b, prompts=prompt_list, unsteered=unsteered, cells=cells,
        per_prompt=per_prompt, per_prompt_unsteered=per_prompt_unsteered, dominance=dominance_by_score,
        coherence=coherence, style=style.to_dict(),
        readout={"layer": readout.layer, "positive": readout.positive_label, "negative": readout.negative_label,
                 "train_accuracy": readout.train_accuracy,
                 "heldout_accuracy": profiles["A vs B"].heldout_accuracy,
                 "reads": "mean residual over the completion's tokens, unsteered model"},
        decomposition=decomposition, findings=findings, timings=timings,
    )


def study_inputs(persona_a, persona_b, baseline, prompts, *, max_passages: int | None, max_prompts: int | None,
                 min_passages: int) -> tuple[dict[str, Any], list[list[str]]]:
    """Load (or take) the two persona corpora, the baseline and the prompts (``None``: the built-in
    ones), keep the first ``max_passages``/``max_prompts``, and describe each for the JSON. Shared by
    the collision study and dominance patching."""
    def corpus(value, builtin: str, loader) -> tuple[list[str], str]:
        if value is None:
            return list(load_builtin(builtin)), f"built-in:{builtin}"
        if isinstance(value, (str, Path)):
            return loader(value), str(value)
        items = list(value)
        if not items or not all(isinstance(t, str) and t.strip() for t in items):
            raise ValueError(f"{builtin}: pass a file path or a non-empty list of non-empty strings")
        return items, "list"

    out_texts, data = [], {}
    for name, value, builtin, cap, loader in (
        ("persona_a", persona_a, "persona_a", max_passages, load_corpus),
        ("persona_b", persona_b, "persona_b", max_passages, load_corpus),
        ("baseline", baseline, "baseline", max_passages, load_corpus),
        ("prompts", prompts, "prompts", max_prompts, load_prompts),
    ):
        texts, source = corpus(value, builtin, loader)
        used = texts[:cap] if cap else texts
        minimum = 2 if name == "prompts" else min_passages
        if len(used) < minimum:
            raise ValueError(f"{name} ({source}) has {len(used)} texts; the study needs at least {minimum}")
        data[name] = {"source": source, "n_available": len(texts), "n_used": len(used), "sha256": dataset_hash(used)}
        out_texts.append(used)
    return data, out_texts


def _interval(name: str, values: np.ndarray, seed: int) -> dict[str, Any]:
    """Mean and 95 % bootstrap interval over prompts; perplexity as a geometric mean."""
    values = np.asarray(values, dtype=float)
    if np.isnan(values).all():
        return {"mean": None, "low": None, "high": None, "n": 0}
    if name == "perplexity":
        iv = bootstrap_mean(np.log(values), seed=seed)
        return {"mean": math.exp(iv.mean), "low": math.exp(iv.low), "high": math.exp(iv.high), "n": iv.n,
                "aggregate": "geometric mean"}
    return bootstrap_mean(values, seed=seed).to_dict()


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


# ----------------------------------------------------------------------------------- findings


def _finding_dominance(config, by_score, coherence, per_prompt) -> Finding:
    claim = "The optimistic persona (A) dominates the mix across most of the α range."
    li = config.lambdas.index(coherence["best_lambda"])
    main: Dominance = by_score["vader"][li]
    readout: Dominance = by_score["probe_valence"][li]
    inner = [i for i, a in enumerate(config.alphas) if 0 < a < 1]
    above = sum(1 for i in inner if main.curve_low[i] > config.alphas[i])
    below = sum(1 for i in inner if main.curve_high[i] < config.alphas[i])
    numbers = {"lambda": coherence["best_lambda"], "score": "vader", "area": main.area.to_dict(),
               "balance_point": main.to_dict()["balance_point"], "ends_difference": main.ends.to_dict(),
               "mixes_above_diagonal": above, "mixes_below_diagonal": below, "n_mixes": len(inner),
               "readout_area": readout.area.to_dict(), "readout_verdict": readout.verdict,
               "verdicts_per_lambda": {f"{lam:g}": by_score["vader"][i].verdict for i, lam in enumerate(config.lambdas)}}
    area = main.area
    text = (f"at λ = {coherence['best_lambda']:g} (the best non-degraded strength), VADER: A end − B end = "
            f"{main.ends.mean:+.2f} [{main.ends.low:+.2f}, {main.ends.high:+.2f}]; area between d(α) and the "
            f"diagonal {area.mean:+.3f} [{area.low:+.3f}, {area.high:+.3f}]; balance point α* = "
            f"{_fmt(main.balance_point)}; {above} of {len(inner)} mixes significantly above the diagonal, "
            f"{below} below. The A-vs-B probe readout gives area {readout.area.mean:+.3f} "
            f"[{readout.area.low:+.3f}, {readout.area.high:+.3f}] (verdict {readout.verdict}).")
    if main.verdict == "A":
        verdict = "reproduced"
    elif main.verdict == "B":
        verdict = "not reproduced"
        text = "B, not A, dominates: " + text
    elif not main.ends.excludes_zero:
        verdict = "inconclusive"
        text = "the pure ends do not differ in valence, so dominance is undefined: " + text
    elif np.isfinite(area.low) and -0.1 < area.low and area.high < 0.1:
        verdict = "not reproduced"
        text = "the mixes follow the diagonal (no dominance, interval within ±0.1): " + text
    else:
        verdict = "inconclusive"
        text = "the interval is too wide to tell: " + text
    return Finding("dominance", claim, verdict, text, numbers)


def _finding_coherence(config, per_prompt, coherence) -> Finding:
    claim = "At high strength, intermediate mixes are more coherent than either pure vector."
    li = len(config.lambdas) - 1
    lam = config.lambdas[li]
    inner = [i for i, a in enumerate(config.alphas) if 0 < a < 1]
    mid = min(inner, key=lambda i: abs(config.alphas[i] - 0.5))
    log_ppl = np.log(per_prompt["perplexity"][li])
    to_b = paired_difference(log_ppl[mid], log_ppl[0], seed=config.seed, allow_empty=True)
    to_a = paired_difference(log_ppl[mid], log_ppl[-1], seed=config.seed, allow_empty=True)
    top = coherence["per_lambda"][li]
    numbers = {"lambda": lam, "alpha_mid": config.alphas[mid],
               "log_perplexity_mid_minus_B": to_b.to_dict(), "log_perplexity_mid_minus_A": to_a.to_dict(),
               "repetition": {f"{config.alphas[i]:g}": float(np.nanmean(per_prompt["repetition"][li, i])) for i in (0, mid, len(config.alphas) - 1)},
               "top_lambda_degraded": top["degraded"]}
    text = (f"at the top strength λ = {lam:g}, log-perplexity of the α = {config.alphas[mid]:g} mix minus the pure "
            f"B end {to_b.mean:+.2f} [{to_b.low:+.2f}, {to_b.high:+.2f}], minus the pure A end {to_a.mean:+.2f} "
            f"[{to_a.low:+.2f}, {to_a.high:+.2f}] (negative = the mix is more fluent).")
    if not top["degraded"]:
        return Finding("coherence", claim, "inconclusive",
                       "the top strength does not degrade the pure ends, so there is nothing for a mix to "
                       "rescue; raise the top λ. " + text, numbers)
    if to_b.high < 0 and to_a.high < 0:
        verdict = "reproduced"
    elif to_b.low > 0 or to_a.low > 0:
        verdict = "not reproduced"
    else:
        verdict = "inconclusive"
    return Finding("coherence", claim, verdict, text, numbers)


def _finding_shared_layer(localisation: Localisation, profiles) -> Finding:
    claim = "Both personas localise best at the same layer (a shared moral-tone substrate)."
    pa, pb = profiles["A vs baseline"], profiles["B vs baseline"]
    n_layers = len(pa.layers)
    wide = max(len(pa.band), len(pb.band)) > n_layers / 2
    same = pa.best_layer in pb.band and pb.best_layer in pa.band
    saturated = {name: sum(a >= 0.99 for a in p.accuracy) for name, p in (("A", pa), ("B", pb))}
    numbers = {"best_layer_a": pa.best_layer, "band_a": list(pa.band), "best_layer_b": pb.best_layer,
               "band_b": list(pb.band), "shared_layer": localisation.shared_layer,
               "best_layer_a_vs_b": profiles["A vs B"].best_layer,
               "heldout_accuracy_a_vs_b": profiles["A vs B"].heldout_accuracy,
               "layers_at_accuracy_0.99": saturated}
    text = (f"A vs baseline peaks at layer {pa.best_layer} (band {pa.band_low}-{pa.band_high}), B vs baseline at "
            f"layer {pb.best_layer} (band {pb.band_low}-{pb.band_high}); A vs B peaks at layer "
            f"{profiles['A vs B'].best_layer} (held-out accuracy {profiles['A vs B'].heldout_accuracy:.2f}); "
            f"the shared layer is {localisation.shared_layer}.")
    if wide:
        return Finding("shared_layer", claim, "inconclusive",
                       f"the persona-vs-baseline probes are near-perfect at most layers (accuracy >= 0.99 at "
                       f"{saturated['A']} and {saturated['B']} of {n_layers} layers), so their bands cover over "
                       "half the model and cannot locate a peak. " + text, numbers)
    verdict = "reproduced" if same else "not reproduced"
    lead = "each best layer lies in the other's band. " if same else "the best layers are outside each other's bands. "
    return Finding("shared_layer", claim, verdict, lead + text, numbers)


def _fmt(value: float) -> str:
    return f"{value:.2f}" if np.isfinite(value) else "n/a"


__all__ = ["AXES", "CollisionConfig", "CollisionResult", "Finding", "Personas", "build_personas", "collide", "study_inputs"]
