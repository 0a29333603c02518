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
   the A-vs-B probe readout, whose own cross-validated accuracy on the corpus passages is reported),
   coherence (perplexity, repetition = 1 − distinct-3, distinct-n; a strength is *degraded* when a
   pure end reads worse than fluent text of its own tone, the persona's corpus scored the same way),
   surface style (style features and a style classifier trained on the corpora), dominance (per
   strength, on a named unbounded scale: VADER's raw valence sum, the readout's log-odds; each
   completion mapped before a prompt's completions are averaged), geometry. The paper's three
   findings are judged by registered rules (:mod:`interp_steer.studies.rules.collision`).
5. **Decomposition** of the collision vectors and of the observed residual shifts at the steering
   layer and every later layer onto ``v_A`` and ``v_B``, with the grid's own intervention (steering
   from the prompt's last token on) measured over the steered positions; A's share is a ratio of means.

Intervals (95 %, over prompts; with ``samples > 1`` a prompt's samples are averaged first, so prompts
stay the unit): per-cell means by percentile bootstrap (:func:`~interp_steer.stats.summarise`;
perplexity as a geometric mean everywhere); dominance by Fieller intervals with t quantiles
(:func:`~interp_steer.studies.mixing.dominance`); pure-end differences and decomposition
coefficients and paired differences over prompts (the pure ends' VADER gap, the coherence finding's
log-perplexity gaps) by t-intervals; A's decomposition share by Fieller
(:func:`~interp_steer.stats.ratio_of_means`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats as _sps

from interp_steer.activations import collect_activations, residual_shifts
from interp_steer.data import reject_bare_strings
from interp_steer.directions import SteeringVector
from interp_steer.fields import SteeringField, fit_scorer
from interp_steer.generation import Generation, format_prompts, generate
from interp_steer.metrics import (
    ProbeReadout,
    repetition_rate,
    score_generations,
    sequence_perplexity,
)
from interp_steer.models import Model, load_model
from interp_steer.stats import ratio_of_means, summarise, t_interval
from interp_steer.steering import RowDeltas, RowMix, Steerer, Steering
from interp_steer.studies._common import Stopwatch
from interp_steer.studies.collision.config import CollisionConfig, Settings
from interp_steer.studies.collision.findings import judge_findings
from interp_steer.studies.collision.result import CollisionResult
from interp_steer.studies.collision.sentiment_words import vader_word_counts
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
from interp_steer.units import (
    BackendSpec,
    LocalBackend,
    RayBackend,
    Unit,
    fingerprint,
    numeric,
    open_store,
    own_backend,
    run_key,
    run_units,
    text_hash,
)


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
    units: str | Path | None = None,
    backend: str | BackendSpec | LocalBackend | RayBackend | None = None,
    fresh: bool = False,
) -> CollisionResult:
    """Run the collision study; one line per stage (see the module docstring).

    ``model`` is a :class:`Model` or a spec for :func:`~interp_steer.load_model` (``None``: the
    embedded SmolLM2). Corpora and prompts are lists of texts or file paths (``None``: the built-in
    personas, baseline and prompts). ``log`` receives one line per stage, with its time.

    The grid (generation and scoring) runs as work units of a few prompts × every cell
    (:mod:`interp_steer.units`): with ``units=DIR`` each finished unit is stored there and a re-run
    with the same model, data and config skips it (``fresh=True`` discards them); ``backend``
    (``"local"``, ``"ray"`` or a backend object) says where units run. Results do not depend on either.
    """
    reject_bare_strings(persona_a=persona_a, persona_b=persona_b, baseline=baseline, prompts=prompts, path_ok=True)
    clock = Stopwatch(log)
    model = model if isinstance(model, Model) else load_model(model)
    if config.layer != "auto":
        model.resolve_layers([config.layer])  # an out-of-range layer fails here, before any work
    clock.lap("load_model")
    data, texts = study_inputs(persona_a, persona_b, baseline, prompts, max_passages=config.max_passages,
                               max_prompts=config.max_prompts, min_passages=config.folds)
    store = open_store(units, run_key(model, config, data), fresh=fresh, log=clock.say)
    personas = build_personas(model, texts.persona_a, texts.persona_b, texts.baseline, position=config.position,
                              pooled=True, folds=config.folds, seed=config.seed, layer=config.layer, progress=progress,
                              hashes=(data["persona_a"]["sha256"], data["persona_b"]["sha256"]), on_stage=clock.lap)
    steerers, fields = _steerers(model, config, personas)
    if fields:
        clock.lap("persona_fields")
    readout = _readout(model, config, personas, texts, progress)
    style = StyleClassifier.fit(texts.persona_a, texts.persona_b, folds=config.folds, seed=config.seed)
    clock.lap("readout_and_style")
    grid, flat = _grid_in_units(model, config, steerers, personas.layer, texts.prompts, readout, store=store,
                                backend=backend, progress=progress, say=clock.say)
    clock.lap("generation")
    scores = _score(config, grid, flat, style)
    unsteered, cells = _summarise(config, grid, scores, personas, measured_mix_norm=bool(fields))
    dominance_by_score = _dominance(config, scores)
    coherence = _coherence(config, scores.per_prompt, scores.unsteered, _references(model, config, texts))
    clock.lap("scoring")
    decomposition = _decompose_shifts(model, config, personas, steerers, coherence["best_lambda"], texts.prompts, grid)
    clock.lap("decomposition")
    geometry = _geometry(personas.raw_a, personas.raw_b, personas.resid_norm)
    findings = judge_findings(config, dominance_by_score, coherence, scores.per_prompt, personas.localisation,
                              personas.profiles, scores.per_sample)
    return CollisionResult(
        model={"name": model.name, "source": str(model.source), "n_layers": model.n_layers, "d_model": model.d_model},
        config=config, data=data, layer=personas.layer, localisation=personas.localisation, geometry=geometry,
        vector_a=personas.v_a, vector_b=personas.v_b, prompts=texts.prompts, unsteered=unsteered, cells=cells,
        per_prompt=scores.per_prompt, per_prompt_unsteered=scores.unsteered, dominance=dominance_by_score,
        coherence=coherence, style=style.to_dict(), readout=_describe_readout(readout),
        decomposition=decomposition, findings=findings, timings=clock.total(), fields=fields,
        field_a=steerers[0] if fields else None, field_b=steerers[1] if fields else None,
        generations=_records(model, grid),
    )


def _records(model: Model, grid: _Grid) -> list[Any]:
    """Every completion of the grid as a line of ``generations.jsonl`` (prompt by prompt, sample by
    sample, cell by cell), with the token ids the model generated."""
    from interp_steer.data import CompletionRecord

    out = []
    for p in range(grid.n_prompts):
        for s in range(grid.n_samples):
            for c, (lam, alpha) in enumerate(grid.cells):
                g = grid.completion(p, c, s)
                out.append(CompletionRecord(g.prompt, g.text, alpha, lam, s, model.name, tuple(g.token_ids)))
    return out


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
    units: str | Path | None = None,
    backend: str | BackendSpec | LocalBackend | RayBackend | None = None,
    fresh: bool = False,
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
               progress=progress, log=log, units=units, backend=backend, fresh=fresh)


# ------------------------------------------------------------------------------------- stages


def _steerers(model: Model, config: CollisionConfig, personas: Personas) -> tuple[tuple[Steerer, Steerer], dict[str, Any] | None]:
    """What the grid mixes at the steering layer: the persona vectors (``method="vector"``), or a
    field per persona (persona vs baseline) fitted on the same activations at that layer, its step
    per unit coefficient the vectors' common scale (``method="field"``), with each field's own
    held-out accuracy and AUROC."""
    layer = personas.layer
    if config.method == "vector":
        return (personas.v_a.select([layer]), personas.v_b.select([layer])), None
    fields, report = [], {"form": config.field_form, "layer": layer,
                          "step": "coefficient x mean residual norm at the layer (the vectors' common scale)",
                          "heldout": "the fields' own held-out split of the corpus passages (fit_scorer's seed)"}
    for key, acts, description in (("A", personas.act_a, "persona A - baseline"),
                                   ("B", personas.act_b, "persona B - baseline")):
        fitted = fit_scorer({layer: acts.at(layer)}, {layer: personas.act_base.at(layer)}, form=config.field_form,
                            seed=config.seed, metadata={"model": model.name, "hook_point": acts.hook_point,
                                                        "position": config.position, "description": description})
        fields.append(SteeringField(fitted.scorer, replace(fitted.metadata, resid_norm={layer: personas.resid_norm[layer]})))
        report[key] = {"description": description, **fitted.metadata.training[layer].to_dict()}
    return (fields[0], fields[1]), report


def _readout(model: Model, config: Settings, personas: Personas, texts: StudyTexts,
             progress: bool | None) -> ProbeReadout:
    """The A-vs-B probe that reads completions: mean-over-token activations at the A-vs-B best layer,
    with its own held-out accuracy on those features (the study's folds and seed)."""
    readout_layer = personas.profiles["A vs B"].best_layer
    if config.position == "mean":
        mean_a, mean_b = personas.act_a.at(readout_layer), personas.act_b.at(readout_layer)
    elif personas.pooled_a is not None:  # read in the personas' own forward passes (build_personas(pooled=True))
        mean_a, mean_b = personas.pooled_a.at(readout_layer), personas.pooled_b.at(readout_layer)
    else:
        a_texts, b_texts = texts.persona_a, texts.persona_b
        both = collect_activations(model, a_texts + b_texts, layers=[readout_layer], position="mean", progress=progress)
        pa, pb = both.split(len(a_texts), len(b_texts))
        mean_a, mean_b = pa.values[:, 0], pb.values[:, 0]
    return ProbeReadout.from_activations(mean_a, mean_b, layer=readout_layer, labels=("persona A", "persona B"),
                                         folds=config.folds, seed=config.seed)


READOUT_MEASURED_ON = "persona corpus passages (mean-pooled), not completions"


def _describe_readout(readout: ProbeReadout) -> dict[str, Any]:
    """The readout probe and its own accuracy. Not the A-vs-B profile's ``heldout_accuracy``: that
    one scores a layer-choosing procedure on the vectors' features (``position``), this one the fixed
    probe on mean-pooled passages at its layer."""
    return {"layer": readout.layer, "positive": readout.positive_label, "negative": readout.negative_label,
            "train_accuracy": readout.train_accuracy, "heldout_accuracy": readout.heldout_accuracy,
            "heldout_accuracy_std": readout.heldout_accuracy_std, "folds": readout.folds,
            "measured_on": READOUT_MEASURED_ON,
            "cross_validation": "stratified k-fold, shuffled with the study's seed (the probe profiles' folds)",
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


def _generate_grid(model: Model, config: CollisionConfig, steerers: tuple[Steerer, Steerer], layer: int,
                   prompts: list[str], progress: bool | None, say: Callable[[str], None]) -> _Grid:
    """Every cell of every prompt (and sample) in one batched generation with a delta (vectors) or
    coefficients (fields) per row, steering from the end of the prompt on; samples share random
    streams across cells."""
    cells: list[tuple[float, float | None]] = [(0.0, None)] + [(lam, alpha) for lam in config.lambdas
                                                               for alpha in config.alphas]
    n_samples = config.samples or 1
    rows, deltas, sample_ids = [], [], []
    a_layer, b_layer = steerers
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
        f"{len(cells)} cells) at layer {layer}, steering with {config.method}s")
    per_row = RowMix.from_rows(deltas) if config.method == "field" else RowDeltas.from_rows(deltas)
    outputs = generate(model, rows, steering=Steering(per_row, positions="after_prompt"),
                       max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
                       progress=progress, perplexity=True, **sampling)
    return _Grid(cells, len(prompts), n_samples, outputs)


def unit_prompts(config: CollisionConfig) -> int:
    """Prompts per work unit: ``config.unit_prompts``, or as many as fill one generation batch with
    every cell (and sample) of each."""
    if config.unit_prompts:
        return config.unit_prompts
    rows_per_prompt = (1 + len(config.lambdas) * len(config.alphas)) * (config.samples or 1)
    return max(1, config.batch_size // rows_per_prompt)


def _grid_in_units(model: Model, config: CollisionConfig, steerers: tuple[Steerer, Steerer], layer: int,
                   prompts: list[str], readout: ProbeReadout, *, store: Any, backend: Any, progress: bool | None,
                   say: Callable[[str], None]) -> tuple[_Grid, dict[str, np.ndarray]]:
    """The grid and its model-based scores, one work unit per chunk of prompts (:func:`_grid_unit`)."""
    size = unit_prompts(config)
    chunks = [(start, prompts[start : start + size]) for start in range(0, len(prompts), size)]
    shared = {"config": config, "steerers": steerers, "layer": layer, "readout": readout}
    identity = {"layer": layer, "steerers": fingerprint(numeric(steerers)), "readout": fingerprint(numeric(readout))}
    units = [Unit(f"grid-{i:04d}", {**identity, "first_prompt": start, "prompts": text_hash(chunk)}, item=chunk)
             for i, (start, chunk) in enumerate(chunks)]
    n_cells = 1 + len(config.lambdas) * len(config.alphas)
    say(f"generating {len(prompts) * (config.samples or 1) * n_cells} completions ({len(prompts)} prompts x "
        f"{config.samples or 1} sample(s) x {n_cells} cells) at layer {layer}, steering with {config.method}s, "
        f"in {len(units)} unit(s) of up to {size} prompt(s)")
    with own_backend(backend, model) as runner:
        results = run_units(_grid_unit, units, model=model, shared=shared, store=store, backend=runner,
                            progress=progress, label="grid units")
    outputs = [Generation.from_record(g) for result in results for g in result["generations"]]
    flat = {name: np.concatenate([r["scores"][name] for r in results]) for name in results[0]["scores"]}
    cells = [(0.0, None)] + [(lam, alpha) for lam in config.lambdas for alpha in config.alphas]
    return _Grid(cells, len(prompts), config.samples or 1, outputs), flat


def _grid_unit(model: Model, shared: dict[str, Any], prompts: list[str]) -> dict[str, Any]:
    """One work unit: every cell of ``prompts`` generated, then scored by the unsteered model."""
    config = shared["config"]
    grid = _generate_grid(model, config, shared["steerers"], shared["layer"], prompts, False, lambda _line: None)
    flat = score_generations(model, grid.outputs, readout=shared["readout"],
                             perplexity=[g.perplexity for g in grid.outputs])
    return {"generations": [g.to_record() for g in grid.outputs],
            "scores": {name: np.asarray(values, dtype=np.float64) for name, values in flat.items()}}


@dataclass(frozen=True, eq=False)
class _Scores:
    """Per-prompt scores (a prompt's samples averaged; perplexity as a geometric mean), and each
    completion's valence scores (dominance maps each completion to its scale before averaging)."""

    per_prompt: dict[str, np.ndarray]  # metric -> [lambdas, alphas, prompts]
    unsteered: dict[str, np.ndarray]  # metric -> [prompts]
    per_sample: dict[str, np.ndarray]  # SAMPLE_SCORES -> [lambdas, alphas, prompts, samples]


DOMINANCE_SCORES = ("vader", "probe_log_odds")
"""The scores whose every completion dominance reads (VADER's compound, the readout's log-odds)."""

SAMPLE_SCORES = (*DOMINANCE_SCORES, "repetition", "vader_words")
"""What the dominance rule reads per completion: the two scores, and the repetition rate and the number
of words VADER scored (its degenerate-mix guard and its per-sentiment-word scale)."""


def _score(config: CollisionConfig, grid: _Grid, flat: dict[str, np.ndarray], style: StyleClassifier) -> _Scores:
    """Every completion's scores (``flat``: by the unsteered model, from the units; plus the style
    classifier's, here), averaged per prompt."""
    texts = [g.text for g in grid.outputs]
    flat = {**flat, "style_a": style.score(texts)}
    shape = (grid.n_prompts, grid.n_samples, len(grid.cells))
    per_row = {name: values.reshape(shape) for name, values in flat.items()}
    rows = {**per_row, "vader_words": vader_word_counts(texts).reshape(shape)}  # per completion only
    with quiet_nan_warnings():
        log_ppl = np.nanmean(np.log(per_row["perplexity"]), axis=1)  # geometric mean over samples
        per_prompt_all = {name: np.nanmean(v, axis=1) for name, v in per_row.items()}  # [prompts, cells]
    per_prompt_all["perplexity"] = np.exp(log_ppl)
    n_l, n_a = len(config.lambdas), len(config.alphas)
    per_prompt = {name: v[:, 1:].reshape(grid.n_prompts, n_l, n_a).transpose(1, 2, 0) for name, v in per_prompt_all.items()}
    per_sample = {name: rows[name][:, :, 1:].reshape(grid.n_prompts, grid.n_samples, n_l, n_a).transpose(2, 3, 0, 1)
                  for name in SAMPLE_SCORES}
    return _Scores(per_prompt, {name: v[:, 0] for name, v in per_prompt_all.items()}, per_sample)


def _summarise(config: CollisionConfig, grid: _Grid, scores: _Scores, personas: Personas, *,
               measured_mix_norm: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The unsteered model and every cell: intervals per metric, the mix's norm, sample completions.
    A mix of fields has no single norm (it depends on the activation): ``mix_norm`` is then None."""
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
            mix_norm = None if measured_mix_norm else float(
                collision_vector(a_layer, b_layer, alpha, lam)[layer].norm() / personas.resid_norm[layer])
            cells.append({"lambda": lam, "alpha": alpha, "mix_norm": mix_norm,
                          "metrics": {name: _interval(name, v[li, ai], config.seed) for name, v in scores.per_prompt.items()},
                          "samples": samples(1 + li * n_a + ai)})
    return unsteered, cells


def _dominance(config: CollisionConfig, scores: _Scores) -> dict[str, list[Dominance]]:
    """d(α) per strength for the two valence scores, on unbounded scales: VADER on its raw valence sum
    (the compound's exact inverse, per completion), the readout on its own log-odds."""
    return {key: [dominance(config.alphas, scores.per_sample[source][li], score=source, scale=SCORE_SCALES[source])
                  for li in range(len(config.lambdas))]
            for key, source in (("vader", "vader"), ("probe_valence", "probe_log_odds"))}


def _interval(name: str, values: np.ndarray, seed: int) -> dict[str, Any]:
    """Mean and 95 % bootstrap interval over prompts; perplexity as a geometric mean (:func:`summarise`)."""
    values = np.asarray(values, dtype=float)
    if np.isnan(values).all():
        return {"mean": None, "low": None, "high": None, "n": 0}
    return summarise(values, metric=name, seed=seed).to_dict()


PURE_ENDS = {"B": 0, "A": -1}
"""Each pure end's α index; each is judged against the reference of the same key (its persona's corpus)."""


@dataclass(frozen=True, eq=False)
class _Reference:
    """Fluent text of one tone scored like a completion: per passage, the perplexity (unsteered
    model) and repetition rate of its first ``window`` scored tokens."""

    corpus: str
    perplexity: np.ndarray
    repetition: np.ndarray
    window: int

    def to_dict(self) -> dict[str, Any]:
        return {"corpus": self.corpus, "n_passages": int(self.perplexity.size), "window_tokens": self.window,
                "perplexity": summarise(self.perplexity, metric="perplexity").to_dict(),
                "repetition": t_interval(self.repetition).to_dict()}


def _references(model: Model, config: Settings, texts: StudyTexts) -> dict[str, _Reference]:
    """Coherence references: the persona corpora (and the baseline) cut to the completions' length.

    Each passage is cut to its first ``max_new_tokens + 1`` tokens (counting a BOS the tokenizer
    adds) and every token after the first is scored, so a passage, like a completion, contributes
    ``max_new_tokens`` predictions; the repetition rate is read on the same window's text."""
    window = config.max_new_tokens
    out = {}
    for key, (corpus, passages) in {"A": ("persona A corpus", texts.persona_a), "B": ("persona B corpus", texts.persona_b),
                                    "baseline": ("baseline corpus", texts.baseline)}.items():
        passages = passages[: config.reference_passages] if config.reference_passages else passages
        cut = [ids[: window + 1] for ids in model.encode(passages)]
        repetition = np.array([repetition_rate(model.tokenizer.decode(ids, skip_special_tokens=True)) for ids in cut])
        out[key] = _Reference(corpus, sequence_perplexity(model, cut), repetition, window)
    return out


def _log_ratio(log_ppl: np.ndarray, reference: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """``mean(log_ppl) − mean(reference)`` (the log of a ratio of geometric means) with Welch's
    t-interval: the completions and the reference passages are independent samples."""
    a, b = log_ppl[np.isfinite(log_ppl)], reference[np.isfinite(reference)]
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan"), float("nan")
    estimate = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return estimate, float("nan"), float("nan")
    interval = _sps.ttest_ind(a, b, equal_var=False).confidence_interval(confidence_level=level)
    return estimate, float(interval.low), float(interval.high)


def _judge_end(log_ppl: np.ndarray, repetition: np.ndarray, reference: _Reference,
              config: Settings) -> dict[str, Any]:
    """One pure end at one strength against fluent text of its tone: the ratio of geometric-mean
    perplexities (with Welch's interval), the repetition excess, and whether it is degraded. NaN
    perplexity (every completion empty) counts as degraded."""
    reference_log_ppl = np.log(reference.perplexity)
    log_ratio, low, high = _log_ratio(log_ppl, reference_log_ppl)
    with quiet_nan_warnings():  # geometric means; NaN where nothing was scored
        perplexity, reference_perplexity = (math.exp(float(np.nanmean(x))) for x in (log_ppl, reference_log_ppl))
        rep, ref_rep = float(np.nanmean(repetition)), float(np.nanmean(reference.repetition))
    ratio = math.exp(log_ratio)
    degraded = not ratio <= config.degradation_ratio or rep > ref_rep + config.degradation_repetition
    return {"reference": reference.corpus, "perplexity": perplexity, "reference_perplexity": reference_perplexity,
            "perplexity_ratio": ratio, "perplexity_ratio_low": math.exp(low), "perplexity_ratio_high": math.exp(high),
            "repetition": rep, "reference_repetition": ref_rep, "repetition_excess": rep - ref_rep,
            "degraded": bool(degraded)}


def _coherence(config: Settings, per_prompt: dict[str, np.ndarray], unsteered: dict[str, np.ndarray],
               references: dict[str, _Reference]) -> dict[str, Any]:
    """Per strength: whether each pure end reads worse than fluent text of its own tone (the persona
    corpora as references, :func:`_judge_end`), and which strength is the best usable one (the
    non-degraded strength whose pure ends differ most in VADER valence)."""
    log_ppl = np.log(per_prompt["perplexity"])  # [lambdas, alphas, prompts]
    strengths = []
    for li, lam in enumerate(config.lambdas):
        ends = {label: _judge_end(log_ppl[li, ai], per_prompt["repetition"][li, ai], references[label], config)
                for label, ai in PURE_ENDS.items()}
        separation = t_interval(per_prompt["vader"][li, -1] - per_prompt["vader"][li, 0])  # paired over prompts
        strengths.append({"lambda": lam, "degraded": any(e["degraded"] for e in ends.values()), "ends": ends,
                          "vader_a_minus_b": separation.to_dict()})
    usable = [s for s in strengths if not s["degraded"]]
    best = max(usable, key=lambda s: s["vader_a_minus_b"]["mean"]) if usable else strengths[0]
    return {"reference": {key: ref.to_dict() for key, ref in references.items()},
            "unsteered_vs_baseline": _judge_end(np.log(unsteered["perplexity"]), unsteered["repetition"],
                                               references["baseline"], config),
            "per_lambda": strengths, "best_lambda": best["lambda"], "best_lambda_is_degraded": not usable,
            "rule": (f"degraded: a pure end's perplexity (geometric mean over prompts) > {config.degradation_ratio:g}x "
                     f"that of fluent text of its own tone (the persona's corpus: A's for the A end, B's for the B end; "
                     f"geometric mean over passages) or its repetition rate > the corpus's + {config.degradation_repetition:g}; "
                     f"the corpora are scored by the unsteered model in windows of {config.max_new_tokens} scored tokens "
                     "(each passage's first tokens), the completions' length; "
                     "best: the non-degraded strength with the largest mean VADER(A end) - VADER(B end)")}


def _decompose_shifts(model: Model, config: CollisionConfig, personas: Personas, steerers: tuple[Steerer, Steerer],
                      lam: float, prompts: list[str], grid: _Grid) -> dict[str, Any]:
    """:func:`_decomposition` at ``lam`` on the first ``config.decomposition_prompts`` prompts (all
    when ``None``), each with its unsteered completion from the grid."""
    prompts = prompts[: config.decomposition_prompts] if config.decomposition_prompts else prompts
    unsteered = [grid.completion(p, 0) for p in range(len(prompts))]
    return _decomposition(model, personas.v_a, personas.v_b, personas.layer, config, lam, prompts, unsteered, steerers)


def _transcripts(model: Model, prompts: list[str], completions: list[Generation]) -> tuple[list[list[int]], list[int]]:
    """Each prompt's transcript as the grid's generation saw it (the formatted prompt's token ids
    followed by its completion's) and where its user prompt ends, in the grid's coordinates
    (:func:`~interp_steer.generation.format_prompts`, which :func:`generate` uses)."""
    _, prompt_ends = format_prompts(model, prompts, chat=None, system=None)
    return [list(g.prompt_ids) + list(g.token_ids) for g in completions], prompt_ends


def _observed_shifts(model: Model, transcripts: list[list[int]], prompt_ends: list[int],
                     vectors: list[Any], layers: list[int], *, hook_point: str = "resid_post",
                     batch_size: int = 16) -> list[list[torch.Tensor]]:
    """Per intervention (anything :func:`steer` takes: a vector, or a list of (vector or field,
    coefficient) terms), per transcript ``[tokens, layers, d_model]`` (float64): the residual at
    ``layers`` with the intervention applied as the grid applies it (``positions="after_prompt"``:
    from the prompt's last token on), minus the unsteered residual. Positions before the prompt's
    last token are not steered, and a causal model leaves them unchanged at every layer. The steered
    forwards resume after the blocks no intervention touches (:func:`residual_shifts`)."""
    steerings = [Steering(vector, positions="after_prompt") for vector in vectors]
    return residual_shifts(model, transcripts, steerings, layers, prompt_ends=prompt_ends, hook_point=hook_point,
                           batch_size=batch_size)


@torch.inference_mode()
def _decomposition(model: Model, v_a: SteeringVector, v_b: SteeringVector, layer: int, config: CollisionConfig,
                   lam: float, prompts: list[str], unsteered: list[Generation],
                   steerers: tuple[Steerer, Steerer] | None = None) -> dict[str, Any]:
    """(a) each collision vector of the grid at ``lam``, and (b) the observed residual shift it
    causes at the steering layer and every later layer, decomposed onto ``v_A``/``v_B`` there.
    With fields (``steerers``), (a) is empty (a mix of fields is no fixed vector) and (b) measures
    the shift the fields' mix causes, still decomposed onto the persona vectors.

    The shift is measured with the grid's own intervention (:func:`_observed_shifts`) on each
    prompt's unsteered transcript, averaged over the steered positions (the prompt's last token
    and every later one), per prompt. A's share is a ratio of means over prompts,
    ``mean(a) / mean(a + b)`` with Fieller's interval: a mean of per-prompt ratios would let a
    prompt whose shift is nearly orthogonal to both vectors (``a + b`` near 0) dominate it.
    """
    transcripts, prompt_ends = _transcripts(model, prompts, unsteered)
    later = list(range(layer, model.n_layers))
    with_fields = steerers is not None and isinstance(steerers[0], SteeringField)
    if with_fields:
        mixes = [[(steerers[0], lam * alpha), (steerers[1], lam * (1 - alpha))] for alpha in config.alphas]
    else:
        mixes = [collision_vector(v_a, v_b, alpha, lam).select([layer]) for alpha in config.alphas]
    vectors, observed = [], []
    shifts_per_mix = _observed_shifts(model, transcripts, prompt_ends, mixes, later, hook_point=v_a.hook_point)
    for alpha, mixed, shifts in zip(config.alphas, mixes, shifts_per_mix, strict=True):
        if not with_fields:
            parts = decompose(mixed[layer], v_a[layer], v_b[layer])
            vectors.append({"alpha": alpha, "coef_a": float(parts.coef_a[0]), "coef_b": float(parts.coef_b[0]),
                            "residual_fraction": float(parts.residual_fraction[0])})
        shift = torch.stack([s[end - 1 :].mean(0) for s, end in zip(shifts, prompt_ends, strict=True)])  # [prompts, layers, d]
        per_layer = []
        for i, at in enumerate(later):
            parts = decompose(shift[:, i], v_a[at], v_b[at])
            share = ratio_of_means(parts.coef_a, parts.coef_a + parts.coef_b)
            per_layer.append({
                "layer": at,
                "coef_a": t_interval(parts.coef_a).to_dict(),
                "coef_b": t_interval(parts.coef_b).to_dict(),
                "share_a": share.mean,
                "share_a_interval": share.to_dict(),
                "residual_fraction": t_interval(parts.residual_fraction).to_dict(),
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
    return {"lambda": lam, "layer": layer, "n_prompts": len(prompts), "steered_with": "fields" if with_fields else "vectors",
            "collision_vectors": vectors, "observed": observed,
            "basis": "v_A and v_B at each layer, on the common scale (coefficient 1 = one mean residual norm)",
            "measured_on": DECOMPOSITION_MEASURED_ON,
            "intervals": ("coef_a, coef_b, residual_fraction: 95 % t-intervals over prompts; share_a = mean(a) / "
                          "mean(a + b) over prompts with a 95 % Fieller interval (share_a_interval)")}


DECOMPOSITION_MEASURED_ON = (
    "each prompt's unsteered transcript (its formatted prompt and unsteered completion, as the grid's token ids), "
    "with the collision vector added as in the grid (positions='after_prompt': from the prompt's last token on); "
    "the shift is the steered minus the unsteered residual, averaged over those steered positions, per prompt")


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
