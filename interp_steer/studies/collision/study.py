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
from typing import Any

import numpy as np
import torch

from interp_steer.data import reject_bare_strings
from interp_steer.directions import SteeringVector
from interp_steer.execution import Execution, as_execution
from interp_steer.fields import SteeringField, fit_scorer
from interp_steer.generation import Generation, generate
from interp_steer.metrics import score_generations
from interp_steer.models import Model, load_model
from interp_steer.probes import ProbeReadout
from interp_steer.steering import RowDeltas, RowMix, Steerer, Steering
from interp_steer.studies._common import Stopwatch, settings
from interp_steer.studies.collision.coherence import judge_coherence, metric_interval, references
from interp_steer.studies.collision.config import CollisionConfig
from interp_steer.studies.collision.decomposition import decompose_shifts
from interp_steer.studies.collision.findings import judge_findings
from interp_steer.studies.collision.readout import describe_readout, fit_readout
from interp_steer.studies.collision.result import CollisionResult
from interp_steer.studies.collision.sentiment_words import vader_word_counts
from interp_steer.studies.collision.style import StyleClassifier
from interp_steer.studies.mixing import (
    SCORE_SCALES,
    Dominance,
    collision_vector,
    dominance,
    quiet_nan_warnings,
)
from interp_steer.studies.personas import Personas, Texts, build_personas, study_inputs
from interp_steer.units import Unit, fingerprint, numeric, run_key, run_units, text_hash


def run(
    model: Model | str | None,
    config: CollisionConfig,
    *,
    persona_a: Texts = None,
    persona_b: Texts = None,
    baseline: Texts = None,
    prompts: Texts = None,
    execution: Execution | None = None,
) -> CollisionResult:
    """Run the collision study; one line per stage (see the module docstring).

    ``model`` is a :class:`Model` or a spec for :func:`~interp_steer.load_model` (``None``: the
    embedded SmolLM2). Corpora and prompts are lists of texts or file paths (``None``: the built-in
    personas, baseline and prompts). ``execution`` (:class:`~interp_steer.Execution`) says how to run:
    progress bars, a ``log`` receiving one line per stage with its time, a ``store`` directory of
    finished work units, the ``backend`` and ``fresh``.

    The grid (generation and scoring) runs as work units of a few prompts × every cell
    (:mod:`interp_steer.units`): with ``Execution(store=DIR)`` each finished unit is stored there and a
    re-run with the same model, data and config skips it (``fresh=True`` discards them); ``backend``
    (``"local"``, ``"ray"`` or a backend object) says where units run. Results do not depend on either.
    """
    reject_bare_strings(persona_a=persona_a, persona_b=persona_b, baseline=baseline, prompts=prompts, path_ok=True)
    execution = as_execution(execution)
    progress = execution.progress
    clock = Stopwatch(execution.log)
    if not isinstance(model, Model):  # a model passed in was loaded by the caller: no 0.0 s stage
        model = load_model(model)
        clock.lap("load_model")
    if config.layer != "auto":
        model.resolve_layers([config.layer])  # an out-of-range layer fails here, before any work
    data, texts = study_inputs(persona_a, persona_b, baseline, prompts, max_passages=config.max_passages,
                               max_prompts=config.max_prompts, min_passages=config.folds)
    store = execution.open_store(run_key(model, config, data))
    personas = build_personas(model, texts.persona_a, texts.persona_b, texts.baseline, position=config.position,
                              pooled=True, folds=config.folds, seed=config.seed, layer=config.layer, progress=progress,
                              hashes=(data["persona_a"]["sha256"], data["persona_b"]["sha256"]), on_stage=clock.lap)
    steerers, fields = _steerers(model, config, personas)
    if fields:
        clock.lap("persona_fields")
    readout = fit_readout(model, config, personas, texts, progress)
    style = StyleClassifier.fit(texts.persona_a, texts.persona_b, folds=config.folds, seed=config.seed)
    clock.lap("readout_and_style")
    grid, flat = _grid_in_units(model, config, steerers, personas.layer, texts.prompts, readout, store=store,
                                execution=execution)
    clock.lap("generation")
    scores = _score(config, grid, flat, style)
    unsteered, cells = _summarise(config, grid, scores, personas, measured_mix_norm=bool(fields))
    dominance_by_score = _dominance(config, scores)
    coherence = judge_coherence(config, scores.per_prompt, scores.unsteered, references(model, config, texts))
    clock.lap("scoring")
    decomposition = decompose_shifts(model, config, personas, steerers, coherence["best_lambda"], texts.prompts,
                                     [grid.completion(p, 0) for p in range(grid.n_prompts)])
    clock.lap("decomposition")
    geometry = _geometry(personas.raw_a, personas.raw_b, personas.resid_norm)
    findings = judge_findings(config, dominance_by_score, coherence, scores.per_prompt, personas.localisation,
                              personas.profiles, scores.per_sample)
    return CollisionResult(
        model={"name": model.name, "source": str(model.source), "n_layers": model.n_layers, "d_model": model.d_model},
        config=config, data=data, layer=personas.layer, localisation=personas.localisation, geometry=geometry,
        vector_a=personas.v_a, vector_b=personas.v_b, prompts=texts.prompts, unsteered=unsteered, cells=cells,
        per_prompt=scores.per_prompt, per_prompt_unsteered=scores.unsteered, dominance=dominance_by_score,
        coherence=coherence, style=style.to_dict(), readout=describe_readout(readout),
        decomposition=decomposition, findings=findings, timings={**clock.total(), **store.reuse_timings()}, fields=fields,
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
    config: CollisionConfig | None = None,
    *,
    persona_a: Texts = None,
    persona_b: Texts = None,
    baseline: Texts = None,
    prompts: Texts = None,
    quick: bool = False,
    execution: Execution | None = None,
    **overrides: Any,
) -> CollisionResult:
    """The collision study in one call: the settings come from ``config``, or from
    :meth:`CollisionConfig.quick` when ``quick``, with keyword ``overrides`` (e.g. ``layer=15``,
    ``lambdas=(0.2, 0.4)``); everything else is passed to :func:`run`.
    """
    config = settings(CollisionConfig, config, quick=quick, **overrides)
    return run(model, config, persona_a=persona_a, persona_b=persona_b, baseline=baseline, prompts=prompts,
               execution=execution)


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
                   prompts: list[str], readout: ProbeReadout, *, store: Any,
                   execution: Execution) -> tuple[_Grid, dict[str, np.ndarray]]:
    """The grid and its model-based scores, one work unit per chunk of prompts (:func:`_grid_unit`)."""
    size = unit_prompts(config)
    chunks = [(start, prompts[start : start + size]) for start in range(0, len(prompts), size)]
    shared = {"config": config, "steerers": steerers, "layer": layer, "readout": readout}
    identity = {"layer": layer, "steerers": fingerprint(numeric(steerers)), "readout": fingerprint(numeric(readout))}
    units = [Unit(f"grid-{i:04d}", {**identity, "first_prompt": start, "prompts": text_hash(chunk)}, item=chunk)
             for i, (start, chunk) in enumerate(chunks)]
    n_cells = 1 + len(config.lambdas) * len(config.alphas)
    execution.say(f"generating {len(prompts) * (config.samples or 1) * n_cells} completions ({len(prompts)} prompts x "
        f"{config.samples or 1} sample(s) x {n_cells} cells) at layer {layer}, steering with {config.method}s, "
        f"in {len(units)} unit(s) of up to {size} prompt(s)")
    with execution.backend_for(model) as runner:
        results = run_units(_grid_unit, units, model=model, shared=shared, store=store, backend=runner,
                            progress=execution.progress, label="grid units")
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

    unsteered = {"metrics": {name: metric_interval(name, v, config.seed) for name, v in scores.unsteered.items()},
                 "samples": samples(0)}
    cells = []
    n_a = len(config.alphas)
    for li, lam in enumerate(config.lambdas):
        for ai, alpha in enumerate(config.alphas):
            mix_norm = None if measured_mix_norm else float(
                collision_vector(a_layer, b_layer, alpha, lam)[layer].norm() / personas.resid_norm[layer])
            cells.append({"lambda": lam, "alpha": alpha, "mix_norm": mix_norm,
                          "metrics": {name: metric_interval(name, v[li, ai], config.seed) for name, v in scores.per_prompt.items()},
                          "samples": samples(1 + li * n_a + ai)})
    return unsteered, cells


def _dominance(config: CollisionConfig, scores: _Scores) -> dict[str, list[Dominance]]:
    """d(α) per strength for the two valence scores, on unbounded scales: VADER on its raw valence sum
    (the compound's exact inverse, per completion), the readout on its own log-odds."""
    return {key: [dominance(config.alphas, scores.per_sample[source][li], score=source, scale=SCORE_SCALES[source])
                  for li in range(len(config.lambdas))]
            for key, source in (("vader", "vader"), ("probe_valence", "probe_log_odds"))}


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
