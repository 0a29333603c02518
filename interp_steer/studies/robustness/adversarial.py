"""Finding 3 of the robustness study, adversarial reversal: from each seed prompt, an evolutionary
search over token edits and a gradient-guided suffix search (:mod:`interp_steer.adversarial`)
minimise the steering's signed effect on the next-token readout
(:mod:`~interp_steer.studies.robustness.readout`), next to a control of random edits with the same
budget. Found inputs are kept with their token ids (replayable with :func:`replay`), their
perplexity under the unsteered model against the seed's, and a check by generation and the scorer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from interp_steer.adversarial import SearchResult, evolutionary_search, gcg_search, random_search
from interp_steer.directions import SteeringVector
from interp_steer.evaluation import answer_letter_ids
from interp_steer.likelihood import token_nll
from interp_steer.models import Model
from interp_steer.stats import log_ratio_interval, proportion_interval, t_interval
from interp_steer.studies._units import UnitRunner
from interp_steer.studies.concept import Scorer
from interp_steer.studies.robustness.config import RobustnessConfig
from interp_steer.studies.robustness.effects import generate_scored
from interp_steer.studies.robustness.inputs import ID, Inputs
from interp_steer.studies.robustness.readout import (
    SteeredReadout,
    content_ids,
    indicative_tokens,
    template_ids,
)
from interp_steer.studies.robustness.vector import Fitted
from interp_steer.units import fingerprint, numeric

SEARCHES = ("evolutionary", "gcg")
"""The optimised adversarial searches run from every seed."""
CONTROL = "random"
"""The control: random edits of the same budget (:func:`~interp_steer.adversarial.random_search`)."""
PAIRED_SEARCH = "evolutionary"
"""The search the verdict compares with the control: the same edit language, so the only difference
is the selection (GCG edits a suffix by gradients; its reversals are reported, not judged)."""


def _vocabulary(model: Model, texts: list[str]) -> list[int]:
    special = set(model.tokenizer.all_special_ids)
    ids = {t for row in model.encode(texts, add_special_tokens=False) for t in row}
    return sorted(ids - special)


def measure_adversarial(model: Model, config: RobustnessConfig, inputs: Inputs, fitted: Fitted,
                        concept: dict[str, Any], score: Scorer, work: UnitRunner) -> dict[str, Any]:
    kind, items = inputs.sets[ID]
    if config.adversarial_seeds == 0:
        return {"status": "skipped", "reason": "adversarial_seeds=0 in the config"}
    c = config.primary_coefficient
    seeds = items[: config.adversarial_seeds]
    texts = [q.question for q in items] if kind == "questions" else list(items)
    train_texts = (inputs.train_positive + inputs.train_negative if inputs.mode == "texts"
                   else [t for p in inputs.train_pairs for t in (p.positive, p.negative)] if inputs.mode == "pairs"
                   else [q.question for q in inputs.train_questions])
    vocabulary = _vocabulary(model, texts + train_texts)
    token_info: dict[str, Any] | None = None
    if kind == "questions":
        prefix, tail = template_ids(model, answer_prefix="(")
        all_readouts = []
        for q in items:
            text = str(model.format_chat(q.question)) + "(" if model.has_chat_template else q.question + "("
            letters = answer_letter_ids(model, text, [q.matching_letter, q.not_matching_letter])
            all_readouts.append(SteeredReadout(model, fitted.vector, c, "ab", tuple(prefix), tuple(tail),
                                               letters=(letters[0], letters[1]), batch_size=config.batch_size))
        readouts = all_readouts[: len(seeds)]
        # The scale a reversal is measured against: the readout's mean effect on every held-out question.
        id_effects = np.array([r([ids])[0] for r, ids in zip(all_readouts, content_ids(model, texts), strict=True)])
        scale_note = f"mean readout effect on all {len(items)} held-out questions"
    else:
        # Tokens chosen on the in-distribution prompts that are not seeds (when there are any), the
        # scale measured on the seeds: choosing and measuring on the same prompts would inflate it.
        choose = texts[len(seeds):] or texts
        promoted, suppressed, token_info = indicative_tokens(model, fitted.vector, c, choose, config.readout_tokens,
                                                             batch_size=config.batch_size)
        prefix, tail = template_ids(model)
        shared = SteeredReadout(model, fitted.vector, c, "tokens", tuple(prefix), tuple(tail),
                                positive=tuple(promoted), negative=tuple(suppressed), batch_size=config.batch_size)
        readouts = [shared] * len(seeds)
        id_effects = shared(content_ids(model, list(seeds)))
        scale_note = (f"mean readout effect on the {len(seeds)} seed prompts (the tokens were chosen on "
                      f"{'the other ' if len(choose) < len(texts) else 'all '}{len(choose)} in-distribution prompts)")
    seed_texts = [q.question for q in seeds] if kind == "questions" else list(seeds)
    seed_ids = content_ids(model, seed_texts)
    typical = float(np.nanmean(id_effects))
    threshold = -config.reversal_margin * abs(typical)
    items = [{"seed_index": i, "method": method, "readout": readout.to_dict(), "ids": list(ids)}
             for i, (readout, ids) in enumerate(zip(readouts, seed_ids, strict=True))
             for method in (*_searches(config), CONTROL)]
    shared = {"config": config, "vector": fitted.vector, "vocabulary": vocabulary, "threshold": threshold}
    identity = fingerprint(numeric(shared))
    found = work.run(_search_unit, "search", shared, identity, items)
    searches = [(item["seed_index"], item["method"], SearchResult.from_dict(result))
                for item, result in zip(items, found, strict=True)]
    entries = _check_found(work, config, readouts, seed_texts, [s for s in searches if s[1] != CONTROL], score,
                           concept, kind)
    control = _check_found(work, config, readouts, seed_texts, [s for s in searches if s[1] == CONTROL], score,
                           concept, kind, generate=False)
    n_seeds = len(seed_texts)
    already = sorted({e["seed_index"] for e in entries if e["seed_already_reversed"]})
    by_seed: dict[int, list[bool]] = {}
    for entry in entries:
        by_seed.setdefault(entry["seed_index"], []).append(entry["reversal"])
    n_found = sum(any(v) for v in by_seed.values())

    def flags(rows: list[dict[str, Any]], method: str) -> list[float | None]:
        """Per seed: 1.0 when ``method`` reversed it, 0.0 when not, None for a seed already reversed."""
        reversed_ = {e["seed_index"]: e["reversal"] for e in rows if e["method"] == method}
        return [None if i in already else float(reversed_[i]) for i in range(n_seeds)]

    def rate(rows: list[dict[str, Any]], method: str) -> dict[str, Any]:
        count = sum(e["reversal"] for e in rows if e["method"] == method)
        return {**proportion_interval(count, n_seeds - len(already)).to_dict(), "reversed": int(count)}

    per_method = {m: rate(entries, m) for m in _searches(config)}
    found_ppl = [e["perplexity"]["found"] for e in entries if e["reversal"]]
    seed_ppl = [e["perplexity"]["seed"] for e in entries if e["reversal"]]
    return {"readout": {**readouts[0].to_dict(), "tokens": token_info,
                        "definition": "signed effect of the steering on the next-token readout (see readout.py); "
                                      "< 0 is the steering moving against its coefficient"},
            "readouts_per_seed": [r.to_dict() for r in readouts] if kind == "questions" else None,
            "coefficient": c, "budget_per_search": config.adversarial_budget, "vocabulary_size": len(vocabulary),
            "in_distribution_readout_effect": {**t_interval(id_effects).to_dict(), "over": scale_note},
            "threshold": threshold,
            "threshold_rule": f"a reversal is an edited input whose effect is below −{config.reversal_margin:g} × |mean "
                              "in-distribution readout effect|, from a seed that was not below it already",
            "seeds_already_reversed": already,
            "n_seeds": n_seeds, "seeds_with_reversal": proportion_interval(n_found, n_seeds).to_dict(),
            "per_method": per_method,
            "found_over_seed_perplexity": log_ratio_interval(np.array(found_ppl), np.array(seed_ppl)).to_dict()
            if found_ppl else None,
            "searches": entries,
            "control": {"method": CONTROL, "searches": control, "seeds_with_reversal": rate(control, CONTROL),
                        "definition": "random edits of the same budget: the evolutionary search's breeding (its edit "
                                      "operators and crossover) with selection switched off, scored by the same "
                                      "readout (interp_steer.adversarial.random_search)"},
            "paired": {"search_method": PAIRED_SEARCH, "search": flags(entries, PAIRED_SEARCH),
                       "control": flags(control, CONTROL),
                       "definition": "per seed prompt: 1 when the method found an input below the threshold, 0 when "
                                     "not, null for a seed already below it unedited (left out)"}}


def _searches(config: RobustnessConfig) -> tuple[str, ...]:
    return SEARCHES if config.gcg else SEARCHES[:1]


def _search_unit(model: Model, shared: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """One work unit: one adversarial search from one seed (``item``: its readout, ids and method)."""
    config, vocabulary, threshold = shared["config"], shared["vocabulary"], shared["threshold"]
    readout = SteeredReadout.from_dict(model, shared["vector"], item["readout"], batch_size=config.batch_size)
    seed = config.seed + item["seed_index"]
    if item["method"] == "evolutionary":
        found = evolutionary_search(readout, item["ids"], vocabulary, budget=config.adversarial_budget,
                                    population=config.population, elite=max(1, config.population // 4),
                                    threshold=threshold, stop_when_found=False, seed=seed)
    elif item["method"] == CONTROL:
        # Its own random stream: the control's edits should not copy the search's first draws.
        found = random_search(readout, item["ids"], vocabulary, budget=config.adversarial_budget,
                              population=config.population, elite=max(1, config.population // 4),
                              threshold=threshold, stop_when_found=False, seed=seed + 1_000_003)
    else:
        found = gcg_search(readout, item["ids"], vocabulary, suffix_length=config.suffix_length,
                           budget=config.adversarial_budget, threshold=threshold, stop_when_found=False, seed=seed)
    return found.to_dict()


@torch.inference_mode()
def _content_perplexity(model: Model, prefix: Sequence[int], contents: list[list[int]]) -> np.ndarray:
    """Perplexity of each content under the unsteered model, after the chat template's prefix."""
    sequences = [[*prefix, *c] for c in contents]
    nll = token_nll(model, sequences, [max(1, len(prefix))] * len(sequences))
    return np.array([math.exp(float(x.mean())) if x.numel() else float("nan") for x in nll])


def _check_found(work: UnitRunner, config: RobustnessConfig, readouts: list[SteeredReadout], seed_texts: list[str],
                 searches: list, score: Scorer, concept: dict[str, Any], kind: str,
                 generate: bool = True) -> list[dict[str, Any]]:
    """Every search's best input with its replayable ids, perplexities and (open-ended, ``generate``)
    a check by greedy generation, steered against unsteered, scored by the study's scorer."""
    if not searches:
        return []
    model = work.model
    prefix = list(readouts[0].prefix)
    best = [list(found.best_ids) for _, _, found in searches]
    seeds = [list(found.seed_ids) for _, _, found in searches]
    ppl_best = _content_perplexity(model, prefix, best)
    ppl_seed = _content_perplexity(model, prefix, seeds)
    texts = [model.tokenizer.decode(ids) for ids in best]
    generated: np.ndarray | None = None
    reversal = [bool(found.found and best[k] != seeds[k] and not found.seed_value < found.threshold)
                for k, (_, _, found) in enumerate(searches)]
    checked = [k for k in range(len(searches)) if reversal[k]]  # only reversals need the check
    if kind == "prompts" and generate and checked:
        c = config.primary_coefficient
        rows = [[(readouts[0].vector, x)] for _ in checked for x in (0.0, c)]
        values, _ = generate_scored(work, "found-check", config, [texts[k] for k in checked for _ in range(2)],
                                         rows, score)
        generated = np.full(len(searches), np.nan)
        generated[checked] = concept["direction"] * np.sign(c) * (values[1::2] - values[0::2])
    entries = []
    for k, (i, method, found) in enumerate(searches):
        entry = {"seed_index": i, "method": method, "seed_text": seed_texts[i], "text": texts[k],
                 "content_ids": best[k], "seed_content_ids": seeds[k],
                 "text_round_trips": model.encode([texts[k]], add_special_tokens=False)[0] == best[k],
                 "effect": found.best_value, "seed_effect": found.seed_value,
                 # A reversal is something the search found: an edit, from a seed not reversed already.
                 "reversal": reversal[k],
                 "seed_already_reversed": bool(found.seed_value < found.threshold),
                 "evaluations": found.evaluations, "edits": found.diff,
                 "history": found.history, "stop_reason": found.stop_reason,
                 "perplexity": {"seed": float(ppl_seed[k]), "found": float(ppl_best[k])}}
        if generated is not None and reversal[k]:
            entry["generation_check"] = {"effect": float(generated[k]), "agrees": bool(generated[k] < 0),
                                         "measure": concept["measure"], "tokens": config.max_new_tokens}
        entries.append(entry)
    return entries


def replay(model: Model, vector: SteeringVector, readout: dict[str, Any], content_ids: Sequence[int]) -> float:
    """The effect of one stored adversarial input, recomputed: ``readout`` is the result's
    ``adversarial.readout`` (or, for A/B, the seed's entry of ``readouts_per_seed``) and
    ``content_ids`` a search's ``content_ids``. It equals the stored ``effect`` up to float noise."""
    return float(SteeredReadout.from_dict(model, vector, readout)([list(content_ids)])[0])


__all__ = ["CONTROL", "PAIRED_SEARCH", "SEARCHES", "measure_adversarial", "replay"]
