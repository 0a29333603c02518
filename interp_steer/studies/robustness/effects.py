"""Finding 1 of the robustness study, in- vs out-of-distribution: every item set at every
coefficient (open-ended sets as greedy completions scored by the scorer, A/B sets as
P(matching answer)), the effect per item, and the OOD/ID ratio at the primary coefficient by the
rule's own ratio (``robustness.ood``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from interp_steer.data import reject_bare_strings
from interp_steer.directions import SteeringVector
from interp_steer.stats import proportion_interval, summarise, t_interval
from interp_steer.studies._common import score_texts
from interp_steer.studies._units import UnitRunner, steered_ab, steered_generations
from interp_steer.studies.concept import Scorer
from interp_steer.studies.robustness.config import RobustnessConfig
from interp_steer.studies.robustness.inputs import ID, Inputs
from interp_steer.studies.rules.robustness import OOD_SCALE, ood_ratio


def generate_scored(work: UnitRunner, name: str, config: RobustnessConfig, prompts: list[str],
                    rows: list[list[tuple]], score: Scorer) -> tuple[np.ndarray, list[str]]:
    """Greedy completions of ``prompts`` (prompt ``i`` steered by ``rows[i]``, a list of ``(vector,
    coefficient)``), scored; generated as work units of one batch each."""
    reject_bare_strings(prompts=prompts)
    outputs = steered_generations(work, name, prompts, rows, max_new_tokens=config.max_new_tokens,
                                  batch_size=config.batch_size)
    texts = [g.text for g in outputs]
    return score_texts(score, texts), texts


def measure_effects(work: UnitRunner, config: RobustnessConfig, inputs: Inputs, vector: SteeringVector,
             concept: dict[str, Any], score: Scorer,
             say: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per prompt set and coefficient: score summaries and effects; the OOD/ID ratios at the primary
    coefficient. Open-ended sets run as one batched generation (in units of a batch). Returns the report and each set's
    per-item scores ``[items, coefficients]``."""
    coefficients = list(config.coefficients)
    scores: dict[str, np.ndarray] = {}
    samples: dict[str, list[str]] = {}
    open_sets = [(name, items) for name, (kind, items) in inputs.sets.items() if kind == "prompts"]
    if open_sets:
        prompts = [p for _, items in open_sets for p in items for _ in coefficients]
        say(f"generating {len(prompts)} completions ({sum(len(i) for _, i in open_sets)} prompts x "
            f"{len(coefficients)} coefficients)")
        rows = [[(vector, c)] for _, items in open_sets for _ in items for c in coefficients]
        values, texts = generate_scored(work, "generation", config, prompts, rows, score)
        start = 0
        for name, items in open_sets:
            block = len(items) * len(coefficients)
            scores[name] = values[start : start + block].reshape(len(items), len(coefficients))
            samples[name] = texts[start : start + block]
            start += block
    for k, (name, (kind, items)) in enumerate(inputs.sets.items()):
        if kind == "questions":  # units named by the set's position: a set's name comes from a file name
            rows = [[(vector, c)] for _ in items for c in coefficients]
            scores[name], _, _ = steered_ab(work, f"ab-set{k}", items, rows, len(coefficients),
                                            batch_size=config.batch_size)
    zero, primary = coefficients.index(0.0), coefficients.index(config.primary_coefficient)
    report: dict[str, Any] = {"coefficients": coefficients, "primary": config.primary_coefficient, "sets": {}}
    per_item: dict[str, np.ndarray] = {}
    for name, (kind, items) in inputs.sets.items():
        direction = 1 if kind == "questions" else concept["direction"]
        s = scores[name]
        cells = []
        for j, c in enumerate(coefficients):
            if c == 0.0:
                continue
            change = direction * np.sign(c) * (s[:, j] - s[:, zero])
            cell = {"coefficient": c, "score": summarise(s[:, j], seed=config.seed).to_dict(),
                    "effect": t_interval(change).to_dict(),
                    "against": proportion_interval(int((change < 0).sum()), int(np.isfinite(change).sum())).to_dict()}
            if kind == "prompts":
                cell["samples"] = [samples[name][i * len(coefficients) + j] for i in range(min(config.keep_samples, len(items)))]
            cells.append(cell)
        effect = direction * np.sign(config.primary_coefficient) * (s[:, primary] - s[:, zero])
        per_item[name] = effect
        spread = float(np.nanstd(s[:, zero], ddof=1))
        report["sets"][name] = {
            "kind": kind, "measure": "P(matching answer)" if kind == "questions" else concept["measure"],
            "n_items": len(items), "unsteered": summarise(s[:, zero], seed=config.seed).to_dict(),
            "unsteered_sd": spread, "cells": cells, "primary_effect": t_interval(effect).to_dict(),
            "standardised_primary_effect": t_interval(effect / spread).to_dict() if spread > 0 else None,
            "per_item_primary_effect": effect.tolist(), "per_item_unsteered": s[:, zero].tolist()}
    id_set = report["sets"][ID]
    ratios = {}
    for name, info in report["sets"].items():
        if name == ID:
            continue
        same = info["measure"] == id_set["measure"]
        # The rule's own ratio (robustness.ood), so that the table shows the interval the verdict reads.
        ratio = {k: float(v) for k, v in ood_ratio(per_item[name], per_item[ID], scores[name][:, zero],
                                                    scores[ID][:, zero], standardise=not same).items()}
        entry = {"mean": ratio["ratio"], "low": ratio["low"], "high": ratio["high"], "n": int(ratio["n"]),
                 "scale": "raw effects" if same else
                 f"standardised effects (each set's effect over the {OOD_SCALE}): the sets are measured differently"}
        if not ratio["bounded"]:
            entry["note"] = ("the in-distribution effect is not significantly non-zero at this size: Fieller's interval "
                             "is unbounded" if math.isfinite(ratio["ratio"]) else "no common scale (an unsteered "
                             "spread is 0) or too few items")
        ratios[name] = entry
    report["ood_over_id"] = ratios
    return report, {name: scores[name] for name in inputs.sets}


__all__ = ["generate_scored", "measure_effects"]
