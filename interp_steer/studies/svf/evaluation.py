"""Stage 3 of the SVF comparison: vector and field at every coefficient on the held-out inputs, with
the backfire floor's control cells (random directions of the same length) in the same grid.

Open-ended: one greedy completion per prompt and cell, scored by the scorer and by its perplexity
under the unsteered model, generated as work units of a few prompts × every cell; the primary cells
run on to ``long_tokens`` for the long-form stage. A/B: P(matching answer) per question and cell,
one batched forward per block of questions.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from interp_steer.data import ABQuestion, reject_bare_strings
from interp_steer.directions import SteeringVector
from interp_steer.evaluation import FLOOR_LEVEL
from interp_steer.fields import SteeringField
from interp_steer.generation import Generation, format_prompts, generate
from interp_steer.likelihood import completion_perplexity
from interp_steer.models import Model
from interp_steer.stats import (
    backfire_rate,
    log_ratio_interval,
    proportion_interval,
    summarise,
    t_interval,
)
from interp_steer.steering import RowMix, Steering
from interp_steer.studies._common import score_texts
from interp_steer.studies._units import UnitRunner, steered_ab
from interp_steer.studies.concept import Scorer
from interp_steer.studies.rules.svf import control_floor
from interp_steer.studies.svf.config import SvfConfig
from interp_steer.studies.svf.fit import Fitted
from interp_steer.studies.svf.result import METHODS
from interp_steer.units import Unit, fingerprint, numeric, run_units, text_hash


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Per-cell summaries, the per-prompt numbers the claims use, and the unsteered transcripts."""

    items: list[str]
    unsteered: dict[str, Any]
    cells: list[dict[str, Any]]
    floor: dict[str, Any]
    anti_steerable: dict[str, Any] | None
    per_prompt: dict[str, np.ndarray]
    transcripts: tuple[list[list[int]], list[int]]  # token ids, and where each prompt ends
    unsteered_generations: list[Generation] | None = None
    long_generations: list[Generation] | None = None  # per prompt: unsteered, vector, field at the primary c


def _grid_cells(config: SvfConfig) -> list[tuple[str, float]]:
    """The unsteered cell, then vector and field at every non-zero coefficient."""
    return [("unsteered", 0.0)] + [(method, c) for c in config.coefficients if c != 0.0 for method in METHODS]


def control_cells(config: SvfConfig) -> list[tuple[str, float]]:
    """The backfire floor's control cells: ``("control{k}", size)``, draw ``k`` of a random direction
    at each coefficient size ``|c|`` (a random direction's sign is itself random)."""
    sizes = sorted({abs(c) for c in config.coefficients if c != 0.0})
    return [(f"control{k}", size) for size in sizes for k in range(config.floor_draws)]


def control_direction(vector: SteeringVector, key: str, draw: int, seed: int) -> SteeringVector:
    """A random direction at each of ``vector``'s layers (isotropic Gaussian, fixed by ``seed``, the
    input's text ``key`` and ``draw``, so a unit of any size draws the same one), as long as
    ``vector`` is there: the same step length as the vector and the field at the same coefficient."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, digest, int(draw)])
    directions = {}
    for layer in vector.layers:
        r = torch.from_numpy(rng.standard_normal(vector.d_model))
        directions[layer] = (r / r.norm() * vector[layer].double().norm()).float()
    return SteeringVector(directions, replace(vector.metadata, description="svf study: random control direction"))


def _controls(config: SvfConfig, vector: SteeringVector, keys: list[str]) -> list[list[SteeringVector]]:
    """Per input, its ``floor_draws`` random control directions."""
    return [[control_direction(vector, key, k, config.seed) for k in range(config.floor_draws)] for key in keys]


FLOOR_SOURCE = ("control: {level:.0%} quantile of the symmetrised score changes (the {quantile:.0%} quantile of |change|) "
                "made by {draws} random direction(s) per input of the same length as the steering, at each coefficient "
                "size, {decoding}; a steering that changes nothing backfires on no input, a perturbation with no concept "
                "in it on 5 %")


def _floors(config: SvfConfig, controls: list[tuple[str, float]], control_scores: np.ndarray, base: np.ndarray,
            direction: int, decoding: str) -> dict[str, Any]:
    """The backfire floor at each coefficient size from the control cells' scores ``[inputs, cells]``
    (:func:`~interp_steer.studies.rules.svf.control_floor`, the function the backfire rule uses)."""
    sizes = sorted({size for _, size in controls})
    changes = {size: np.stack([(control_scores[:, j] - base) * direction for j, (_, s) in enumerate(controls)
                               if s == size], axis=-1) for size in sizes}
    floors = {size: float(control_floor(changes[size][None], FLOOR_LEVEL)[0]) for size in sizes}
    source = FLOOR_SOURCE.format(level=FLOOR_LEVEL, quantile=2 * FLOOR_LEVEL - 1, draws=config.floor_draws,
                                 decoding=decoding)
    if not all(math.isfinite(f) for f in floors.values()):
        source += "; no control completion could be scored at some size, whose floor is 0 (any move counts)"
        floors = {size: f if math.isfinite(f) else 0.0 for size, f in floors.items()}
    primary = abs(config.primary_coefficient)

    def finite(values: np.ndarray) -> np.ndarray:
        return values[np.isfinite(values)]

    moved = {f"{size:g}": float(np.mean(finite(changes[size]) != 0)) if finite(changes[size]).size else None
             for size in sizes}
    spread = {f"{size:g}": float(np.std(finite(changes[size]), ddof=1)) if finite(changes[size]).size > 1 else None
              for size in sizes}
    return {"value": floors[primary], "source": source, "level": FLOOR_LEVEL, "n_prompts": int(base.shape[0]),
            "draws": config.floor_draws, "coefficient": primary,
            "by_coefficient": {f"{size:g}": floors[size] for size in sizes}, "moved_fraction": moved,
            "reference_sd": spread, "floors": floors}


def _row_mix(fitted: Fitted | Steerers, cells: list[tuple[str, float]], n_items: int,
             controls: list[list[SteeringVector]] | None = None) -> RowMix:
    """Item-major rows (item i, cell j is row i * len(cells) + j), each steering one method."""
    return RowMix.from_rows(_mix_rows(fitted, cells, n_items, controls))


def _mix_rows(fitted: Fitted | Steerers, cells: list[tuple[str, float]], n_items: int,
              controls: list[list[SteeringVector]] | None = None) -> list[list[tuple]]:
    """:func:`_row_mix`'s rows as ``(term, coefficient)`` lists; a ``control{k}`` cell steers item
    ``i`` by ``controls[i][k]``."""
    terms = {"vector": fitted.vector, "field": fitted.field}
    rows = []
    for i in range(n_items):
        for method, c in cells:
            if method == "unsteered":
                rows.append([(fitted.vector, 0.0), (fitted.field, 0.0)])
            elif method.startswith("control"):
                if controls is None:
                    raise ValueError("control cells need their random directions")
                rows.append([(controls[i][int(method[len("control"):])], c)])
            else:
                rows.append([(terms[method], c)])
    return rows


def evaluate_open(model: Model, config: SvfConfig, fitted: Fitted, prompts: list[str], score: Scorer,
                   direction: int, progress: bool | None, say: Callable[[str], None], *, store: Any = None,
                   backend: Any = None) -> Evaluation:
    reject_bare_strings(prompts=prompts)
    cells, controls = _grid_cells(config), control_cells(config)
    n_p, n_c = len(prompts), len(cells)
    say(f"generating {n_p * n_c} completions ({n_p} prompts x {n_c} cells; the primary cells run on to "
        f"{config.long_tokens} tokens for the long-form test) and {n_p * len(controls)} greedy control completions "
        "(random directions) for the backfire floor")
    outputs, long_outputs, control_outputs = _grid_in_units(model, config, fitted, prompts, cells, store, backend,
                                                            progress)
    texts = [g.text for g in outputs]
    scored = score_texts(score, texts + [g.text for g in control_outputs])
    scores = scored[: n_p * n_c].reshape(n_p, n_c)
    control_scores = scored[n_p * n_c :].reshape(n_p, len(controls))
    perplexity = completion_perplexity(model, outputs).reshape(n_p, n_c)
    base, base_ppl = scores[:, 0], perplexity[:, 0]
    floor_info = _floors(config, controls, control_scores, base, direction, "greedy like the grid")
    floors = floor_info.pop("floors")
    source = floor_info["source"]
    unsteered = {"score": summarise(base, seed=config.seed).to_dict(),
                 "perplexity": summarise(base_ppl, metric="perplexity", seed=config.seed).to_dict(),
                 "samples": [outputs[i * n_c].text for i in range(min(config.keep_samples, n_p))]}
    summaries, per_prompt = [], {"unsteered_score": base, "unsteered_perplexity": base_ppl}
    for j, (method, c) in enumerate(cells[1:], start=1):
        per_prompt.setdefault(f"{method}_score", []).append(scores[:, j])
        per_prompt.setdefault(f"{method}_perplexity", []).append(perplexity[:, j])
        summaries.append(_cell(config, method, c, scores[:, j], base, direction, floors[abs(c)], source,
                               perplexity[:, j], base_ppl, [outputs[i * n_c + j].text for i in range(min(config.keep_samples, n_p))]))
    per_prompt = {k: np.asarray(v) for k, v in per_prompt.items()}
    per_prompt["control_score"] = _by_size(controls, control_scores, config.floor_draws)
    _, prompt_ends = format_prompts(model, prompts, chat=None, system=None)
    transcripts = [list(outputs[i * n_c].prompt_ids) + list(outputs[i * n_c].token_ids) for i in range(n_p)]
    return Evaluation(list(prompts), unsteered, summaries, floor_info, None, per_prompt, (transcripts, prompt_ends),
                       [outputs[i * n_c] for i in range(n_p)], long_outputs)


def _by_size(controls: list[tuple[str, float]], values: np.ndarray, draws: int) -> np.ndarray:
    """Control scores ``[inputs, cells]`` as ``[sizes, inputs, draws]`` (sizes ascending, as
    :func:`control_cells` orders them)."""
    return values.reshape(values.shape[0], len(controls) // draws, draws).transpose(1, 0, 2)


def _generate_grid(model: Model, config: SvfConfig, fitted: Fitted | Steerers, prompts: list[str], cells: list[tuple[str, float]],
                   progress: bool | None) -> tuple[list[Generation], list[Generation], list[Generation]]:
    """Every prompt × cell (item-major), greedy. The primary cells (unsteered, vector and field at the
    primary coefficient) run on to ``long_tokens`` for the long-form test and are cut back to
    ``max_new_tokens`` for the grid: greedy decoding makes the first tokens of the long completion the
    short completion, so the long-form run costs only the extra tokens. The control cells (random
    directions, :func:`control_cells`) run with the other short cells. Returns the grid's completions,
    the long ones (per prompt: unsteered, vector, field) and the control ones (per prompt, item-major)."""
    primary = {("unsteered", 0.0), ("vector", config.primary_coefficient), ("field", config.primary_coefficient)}
    long_cells = [cell for cell in cells if cell in primary]
    short_cells = [cell for cell in cells if cell not in primary]
    controls = control_cells(config)
    directions = _controls(config, fitted.vector, prompts)
    n_p = len(prompts)

    def run(chosen: list[tuple[str, float]], tokens: int) -> list[Generation]:
        if not chosen:
            return []
        return generate(model, [p for p in prompts for _ in chosen],
                        steering=Steering(_row_mix(fitted, chosen, n_p, directions), positions="after_prompt"),
                        max_new_tokens=tokens, batch_size=config.batch_size, progress=progress)

    long_out = run(long_cells, config.long_tokens)
    short_out = run(short_cells + controls, config.max_new_tokens)
    n_s = len(short_cells) + len(controls)
    outputs = []
    for i in range(n_p):
        for cell in cells:
            if cell in primary:
                outputs.append(truncated(model, long_out[i * len(long_cells) + long_cells.index(cell)],
                                         config.max_new_tokens))
            else:
                outputs.append(short_out[i * n_s + short_cells.index(cell)])
    control_out = [short_out[i * n_s + len(short_cells) + k] for i in range(n_p) for k in range(len(controls))]
    return outputs, long_out, control_out


UNIT_PROMPTS = 4
"""Prompts per work unit of the open-ended grid (every cell of each)."""


def _grid_in_units(model: Model, config: SvfConfig, fitted: Fitted, prompts: list[str], cells: list[tuple[str, float]],
                   store: Any, backend: Any, progress: bool | None
                   ) -> tuple[list[Generation], list[Generation], list[Generation]]:
    """:func:`_generate_grid` run as work units of :data:`UNIT_PROMPTS` prompts (:func:`_grid_unit`);
    the lists are item-major, so the units' lists concatenate."""
    chunks = [prompts[i : i + UNIT_PROMPTS] for i in range(0, len(prompts), UNIT_PROMPTS)]
    shared = {"config": config, "field": fitted.field, "vector": fitted.vector, "cells": cells}
    identity = fingerprint(numeric(shared))
    units = [Unit(f"grid-{i:04d}", {"shared": identity, "prompts": text_hash(chunk)}, item=chunk)
             for i, chunk in enumerate(chunks)]
    results = run_units(_grid_unit, units, model=model, shared=shared, store=store, backend=backend,
                        progress=progress, label="grid units")
    return tuple([Generation.from_record(g) for r in results for g in r[key]]  # type: ignore[return-value]
                 for key in ("outputs", "long", "control"))


def _grid_unit(model: Model, shared: dict[str, Any], prompts: list[str]) -> dict[str, Any]:
    """One work unit: every cell of ``prompts``, short and long completions, and the control cells."""
    fitted = Steerers(shared["field"], shared["vector"])
    outputs, long_out, control_out = _generate_grid(model, shared["config"], fitted, prompts, shared["cells"], False)
    return {"outputs": [g.to_record() for g in outputs], "long": [g.to_record() for g in long_out],
            "control": [g.to_record() for g in control_out]}


@dataclass(frozen=True, eq=False)
class Steerers:
    """What :func:`_generate_grid` and :func:`_row_mix` read of a :class:`Fitted` (all a grid unit needs)."""

    field: SteeringField
    vector: SteeringVector


def truncated(model: Model, generation: Generation, tokens: int) -> Generation:
    """The completion as if generation had stopped after ``tokens`` new tokens (greedy decoding
    makes it exactly that completion)."""
    if len(generation.token_ids) <= tokens:
        return generation
    ids = generation.token_ids[:tokens]
    return replace(generation, text=model.tokenizer.decode(list(ids), skip_special_tokens=True), token_ids=ids,
                   finished=False)


def _cell(config: SvfConfig, method: str, c: float, steered: np.ndarray, base: np.ndarray, direction: int,
          floor: float, floor_source: str, ppl: np.ndarray | None, base_ppl: np.ndarray | None,
          samples: list[str]) -> dict[str, Any]:
    """One (method, coefficient) cell: mean score, signed shift, oriented effect, backfire rate and,
    for completions, the perplexity ratio to the unsteered completion of the same prompt."""
    sign = 1 if c > 0 else -1
    shift = steered - base
    change = shift * direction * sign
    scored = np.isfinite(change)
    out = {"method": method, "coefficient": c,
           "score": summarise(steered, seed=config.seed).to_dict(),
           "shift": t_interval(shift).to_dict(),
           "effect": t_interval(change).to_dict(),
           "backfire": backfire_rate(steered, base, direction=direction * sign, floor=floor,
                                     floor_source=floor_source).to_dict(),
           # Descriptive only: any move against the direction, however small (no floor). With greedy
           # decoding any change of text moves the score, so a steering that does nothing scores up to ~50 %.
           "against_any": proportion_interval(int((change[scored] < 0).sum()), int(scored.sum())).to_dict()}
    if ppl is not None and base_ppl is not None:
        out["perplexity_ratio"] = log_ratio_interval(ppl, base_ppl).to_dict()
    out["samples"] = samples
    return out


def evaluate_ab(work: UnitRunner, config: SvfConfig, fitted: Fitted, questions: list[ABQuestion]) -> Evaluation:
    """The A/B grid: P(matching answer) per question and cell, as work units of one batch of questions."""
    reject_bare_strings(questions=questions)
    cells, controls = _grid_cells(config), control_cells(config)
    directions = _controls(config, fitted.vector, [q.question for q in questions])
    rows = _mix_rows(fitted, cells + controls, len(questions), directions)
    values, token_ids, prompt_ends = steered_ab(work, "ab", questions, rows, len(cells) + len(controls),
                                                batch_size=config.batch_size, mix=True)
    values, control_values = values[:, : len(cells)], values[:, len(cells) :]
    base = values[:, 0]
    floor = _floors(config, controls, control_values, base, 1, "read like every other cell")
    floors = floor.pop("floors")
    summaries, per_prompt = [], {"unsteered_score": base}
    for j, (method, c) in enumerate(cells[1:], start=1):
        per_prompt.setdefault(f"{method}_score", []).append(values[:, j])
        summaries.append(_cell(config, method, c, values[:, j], base, 1, floors[abs(c)], floor["source"], None, None,
                               []))
    per_prompt = {k: np.asarray(v) for k, v in per_prompt.items()}
    per_prompt["control_score"] = _by_size(controls, control_values, config.floor_draws)
    anti = {method: _anti_steerable(config.coefficients, base, per_prompt[f"{method}_score"]) for method in METHODS}
    unsteered = {"score": summarise(base, seed=config.seed).to_dict(), "samples": []}
    return Evaluation([q.question for q in questions], unsteered, summaries, floor,
                       {**anti, "definition": ANTI_STEERABLE}, per_prompt, (token_ids, prompt_ends))


ANTI_STEERABLE = ("fraction of held-out questions whose least-squares slope of logit P(matching) over all coefficients "
                  "(0 included) is negative, with a Wilson interval (Tan et al., arXiv 2407.12404)")


def _anti_steerable(coefficients: Sequence[float], base: np.ndarray, steered: np.ndarray) -> dict[str, Any]:
    """Tan et al.'s per-question measure for one method: the slope of the log-odds over coefficients."""
    nonzero = [c for c in coefficients if c != 0.0]
    xs = np.array(sorted([0.0, *nonzero]))
    columns = {0.0: base, **{c: steered[k] for k, c in enumerate(nonzero)}}
    p = np.clip(np.stack([columns[c] for c in xs]), 1e-6, 1 - 1e-6)  # [coefficients, questions]
    log_odds = np.log(p) - np.log1p(-p)
    centred = xs - xs.mean()
    slopes = centred @ log_odds / (centred @ centred)
    finite = np.isfinite(slopes)
    rate = proportion_interval(int((slopes[finite] < 0).sum()), int(finite.sum()))
    return {**rate.to_dict(), "mean_slope": float(np.nanmean(slopes))}


__all__ = ["ANTI_STEERABLE", "FLOOR_SOURCE", "UNIT_PROMPTS", "Evaluation", "Steerers", "control_cells",
           "control_direction", "evaluate_ab", "evaluate_open", "truncated"]
