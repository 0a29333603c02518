"""The five findings of arXiv 2505.03189, each judged on one run by a registered rule.

Every verdict is :meth:`~interp_steer.studies.rules.base.Rule.decide` of a rule in
:mod:`interp_steer.studies.rules.robustness`, fed the run's arrays; this module only reads them from
the report and wraps the decision in a :class:`Finding` (its ``numbers`` carry ``"rule"``, the rule's
id). ``interp-steer rules robustness.<finding>`` prints a rule's card: its claim, its rule, and its
simulated error rates under nulls and effects at the shipped sizes.

1. **Reliable only in-distribution** (``robustness.ood``): per out-of-distribution set, Fieller's 95 %
   interval of OOD effect / ID effect at the primary coefficient (standardised effects when the sets
   are measured differently), gated on a significant ID effect; reproduced when every set's interval
   lies below ``1 − ood_margin``, not reproduced when every one lies above it.
2. **Diminishing returns by about 80 examples** (``robustness.sample_size``): the union over curve
   forms (three concave, two S-shaped Hill curves counted where the data show an S-shape) of each
   form's bootstrap interval of n₉₀; reproduced when it lies within the data and at or
   below ``plateau_limit`` with a positive plateau, not reproduced when it lies above ``plateau_limit``.
3. **Adversarial inputs can reverse the steering** (``robustness.adversarial``): per seed prompt, did
   the evolutionary search reverse the steering, and did random edits of the same budget (the
   control)? Reproduced when the search reverses significantly more seeds (McNemar's exact test),
   not reproduced when its excess over random editing is shown to be under 25 % of seeds.
4. **Steering raises perplexity** (``robustness.perplexity``): the per-text log ratio's interval at the
   primary coefficient against ``log(1 + perplexity_margin)``.
5. **Larger models resist degradation** (``robustness.model_size``): the same threshold rule on per-text
   differences of log ratios, smallest minus largest model; needs two models of different sizes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from interp_steer.studies._common import Judged
from interp_steer.studies.rules.base import Decision
from interp_steer.studies.rules.robustness import (
    ADVERSARIAL,
    MODEL_SIZE,
    OOD,
    PERPLEXITY,
    SAMPLE_SIZE,
)


class Finding(Judged):
    """One finding of the paper judged on this run (see the module docstring)."""


CLAIMS = {
    "ood": "Steering is reliable only in-distribution: its effect out of distribution is much smaller",
    "sample_size": "Returns diminish at about 80 examples: more data barely strengthens the vector",
    "adversarial": "Adversarial inputs can reverse the steered behaviour",
    "perplexity": "Steering raises the model's perplexity",
    "model_size": "Larger models resist steering-induced degradation",
}

ID = "in_distribution"


def _finding(key: str, decision: Decision, summary: str | None = None, **extra: Any) -> Finding:
    return Finding(key, CLAIMS[key], decision.verdict, decision.reason if summary is None else summary,
                   {**decision.numbers, **extra})


def _inconclusive(key: str, why: str, numbers: dict[str, Any] | None = None) -> Finding:
    return Finding(key, CLAIMS[key], "inconclusive", why, dict(numbers or {}))


def _ood(config: Any, report: dict[str, Any]) -> Finding:
    sets = report["effects"]["sets"]
    others = [name for name in sets if name != ID]
    if not others:
        return _inconclusive("ood", "no out-of-distribution set", {"rule": OOD.id})
    floats = lambda values: np.asarray([np.nan if v is None else v for v in values], dtype=float)  # noqa: E731
    measure = sets[ID]["measure"]
    decision = OOD.decide(
        id_effects=floats(sets[ID]["per_item_primary_effect"]),
        ood_effects=[floats(sets[name]["per_item_primary_effect"]) for name in others],
        id_unsteered=floats(sets[ID]["per_item_unsteered"]),
        ood_unsteered=[floats(sets[name]["per_item_unsteered"]) for name in others],
        standardise=[sets[name]["measure"] != measure for name in others], names=others, margin=config.ood_margin)
    return _finding("ood", decision)


def _sample_size(config: Any, report: dict[str, Any]) -> Finding:
    ss = report["sample_size"]
    effects = np.asarray([[[np.nan if v is None else v for v in subset] for subset in size] for size in ss["effects"]],
                         dtype=float)
    decision = SAMPLE_SIZE.decide(ns=ss["sizes"], effects=effects, plateau_limit=config.plateau_limit,
                                  n_boot=config.n_boot, seed=config.seed)
    numbers = {k: v for k, v in decision.numbers.items() if k != "fit"}  # the report holds the fit
    return Finding("sample_size", CLAIMS["sample_size"], decision.verdict, decision.reason, numbers)


def _adversarial(config: Any, report: dict[str, Any]) -> Finding:
    adv = report["adversarial"]
    if adv.get("status") == "skipped":
        return _inconclusive("adversarial", adv["reason"], {"rule": ADVERSARIAL.id})
    paired = adv["paired"]
    flags = [np.asarray([np.nan if v is None else v for v in paired[k]], dtype=float) for k in ("search", "control")]
    decision = ADVERSARIAL.decide(search=flags[0], control=flags[1])
    extra, notes = [], []
    excluded = adv.get("seeds_already_reversed") or []
    if excluded:
        notes.append(f"{len(excluded)} seed(s) already below the threshold unedited, left out")
    gcg = adv.get("per_method", {}).get("gcg")
    if gcg:
        notes.append(f"the gradient-guided suffix search (no control, not in the verdict) reversed {gcg['reversed']} of "
                     f"{gcg['n']} seeds")
    found = [s for s in adv["searches"] if s["reversal"]]
    checked = [s["generation_check"]["agrees"] for s in found if s.get("generation_check")]
    if checked:
        notes.append(f"{sum(bool(x) for x in checked)} of {len(checked)} found inputs also move the generated text's "
                     "score against the coefficient")
    ppl = adv.get("found_over_seed_perplexity")
    if ppl and ppl.get("low") is not None:
        notes.append(f"found inputs' perplexity / their seed's: {ppl['mean']:.2f} [{ppl['low']:.2f}, {ppl['high']:.2f}]")
    best = min(adv["searches"], key=lambda s: s["effect"] if s["effect"] is not None else math.inf)
    notes.append(f"best readout effect {best['effect']:+.3f} against a threshold of {adv['threshold']:+.3f}")
    extra = {"threshold": adv["threshold"], "budget_per_search": adv["budget_per_search"],
             "confirmed_by_generation": [sum(bool(x) for x in checked), len(checked)] if checked else None,
             "found_over_seed_perplexity": ppl, "search_method": paired["search_method"]}
    return _finding("adversarial", decision, decision.reason + "; " + "; ".join(notes), **extra)


def _log_ratios_at(report: dict[str, Any], coefficient: float) -> np.ndarray:
    corpus = report["perplexity"]["corpora"]["neutral"]
    j = report["perplexity"]["coefficients"].index(coefficient)
    return np.asarray([np.nan if v is None else v for v in corpus["per_text_log_ratio"][j]], dtype=float)


def _perplexity(config: Any, report: dict[str, Any]) -> Finding:
    c = config.primary_coefficient
    decision = PERPLEXITY.decide(log_ratios=_log_ratios_at(report, c), margin=config.perplexity_margin)
    return _finding("perplexity", decision, f"at c = {c:g}: {decision.reason}", coefficient=c,
                    rise=report["perplexity"]["corpora"]["neutral"]["rise"])


def _model_size(config: Any, reports: list[dict[str, Any]]) -> Finding:
    numbers = {"n_models": len(reports), "rule": MODEL_SIZE.id}
    if len(reports) < 2:
        return _inconclusive("model_size", "needs ≥ 2 models (run with --models SPEC,SPEC,...); this run had one",
                             numbers)
    ordered = sorted(reports, key=lambda r: r["model"]["n_parameters"])
    small, large = ordered[0], ordered[-1]
    if small["model"]["n_parameters"] == large["model"]["n_parameters"]:
        return _inconclusive("model_size", f"the models have the same number of parameters "
                                           f"({small['model']['n_parameters']:,}): no size difference to compare", numbers)
    c = config.primary_coefficient
    decision = MODEL_SIZE.decide(small_log_ratios=_log_ratios_at(small, c), large_log_ratios=_log_ratios_at(large, c),
                                 margin=config.perplexity_margin, small=small["model"]["name"],
                                 large=large["model"]["name"])
    effects = {r["model"]["name"]: r["effects"]["sets"][ID]["primary_effect"] for r in ordered}
    summary = decision.reason + ("; compare the models' effects too: a model that degrades less may also be steered "
                                 "less" if decision.verdict == "reproduced" else "")
    return _finding("model_size", decision, summary, effects=effects, n_models=len(reports),
                    parameters={r["model"]["name"]: r["model"]["n_parameters"] for r in ordered})


def judge_claims(config: Any, reports: list[dict[str, Any]]) -> list[Finding]:
    """Findings 1-4 on the first model (every model's own verdicts are in its report), 5 across models."""
    first = reports[0]
    return [_ood(config, first), _sample_size(config, first), _adversarial(config, first),
            _perplexity(config, first), _model_size(config, reports)]


__all__ = ["CLAIMS", "Finding", "judge_claims"]
