"""The five findings of arXiv 2505.03189, each judged on one run by a rule with known error rates.

1. **Reliable only in-distribution** (``ood``), per out-of-distribution set, from Fieller's 95 %
   interval of the ratio r = OOD effect / ID effect at the primary coefficient (independent item
   sets): *reproduced* when the interval lies below ``1 − ood_margin`` (OOD keeps significantly less
   than that share of the ID effect), *not reproduced* when it lies above it, *inconclusive*
   otherwise, and when the ID effect is not significantly non-zero (the set is unbounded: there is
   no reliable ID effect to lose). Each arm is a one-sided 2.5 % test at the boundary, so at a true
   ratio of exactly ``1 − margin`` each wrong verdict has probability ≤ 2.5 % (simulated in
   ``tests/test_robustness.py``). Several sets: the verdict they share, else inconclusive.
   Power (simulated, 20 000 runs): when the effect vanishes out of distribution, "reproduced" comes
   with probability 0.66 at an ID effect of 1 SD of the per-item effects (30 ID and 15 OOD items,
   the built-in sets) and 0.46 at 12 + 12 items; 0.998 and 0.97 at 2 SD. When the effect carries
   over fully (ratio 1), "not reproduced" comes with probability 0.11 at 1 SD and 0.35 at 2 SD:
   showing that a vector *is* reliable out of distribution needs many items.
2. **Diminishing returns by about 80 examples** (``sample_size``), from the bootstrap interval of
   n₉₀, the examples per class at which the fitted saturating curve reaches 90 % of its plateau:
   *reproduced* when the plateau is positive (its interval above 0) and the whole n₉₀ interval lies
   at or below ``plateau_limit`` (128 by default: the paper's 80–100, with room) and within the
   tested sizes (no extrapolation), *not reproduced* when it lies above ``plateau_limit`` (no plateau
   counts as infinite), *inconclusive* otherwise and when more than 2.5 % of the bootstrap fits
   failed. The interval's coverage on planted data is about 94 % (``tests/test_saturation.py``).
3. **Adversarial inputs can reverse the steering** (``adversarial``), an existence claim: *reproduced*
   when a search found, for at least one seed prompt whose own effect was not already below it, an
   edited input on which the steering's readout effect is below the reversal threshold (the readout is deterministic, so a found reversal replays
   exactly: no false positives w.r.t. the readout; whether it carries over to generated text is
   reported beside it); *not reproduced* when none was found and the Wilson upper bound of the
   per-seed rate is below 0.25 (at least 12 seeds); *inconclusive* otherwise.
4. **Steering raises perplexity** (``perplexity``), on the neutral corpus at the primary
   coefficient, from the 95 % t interval of the mean per-text log ratio (steered / unsteered
   perplexity): *reproduced* when it lies above ``log(1 + perplexity_margin)`` (a rise of more
   than 5 %, not any significant rise), *not reproduced* when it lies below, *inconclusive*
   otherwise; each wrong verdict ≤ 2.5 % at a true rise of exactly the margin (one-sided t tests).
5. **Larger models resist degradation** (``model_size``): needs two models or more; the same rule on
   per-text differences of log ratios, smallest minus largest model (by parameter count), same
   neutral texts, at the primary coefficient (in units of each model's residual norm).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as _sps

from interp_steer.stats import proportion_interval, t_quantile
from interp_steer.studies._common import Judged
from interp_steer.studies.rules.paired import paired_verdict


class Finding(Judged):
    """One finding of the paper judged on this run (see the module docstring)."""


CLAIMS = {
    "ood": "Steering is reliable only in-distribution: its effect out of distribution is much smaller",
    "sample_size": "Returns diminish at about 80 examples: more data barely strengthens the vector",
    "adversarial": "Adversarial inputs can reverse the steered behaviour",
    "perplexity": "Steering raises the model's perplexity",
    "model_size": "Larger models resist steering-induced degradation",
}

OOD_RULE = ("Fieller 95 % interval of OOD effect / ID effect (independent items) at the primary coefficient: reproduced "
            "below 1 - margin, not reproduced above it, inconclusive otherwise or when unbounded")
PERPLEXITY_RULE = ("per neutral text d = log(steered / unsteered perplexity) at the primary coefficient; reproduced: the "
                   "95 % t interval of mean(d) lies above log(1 + margin); not reproduced: it lies below; inconclusive "
                   "otherwise")
SIZE_RULE = ("per neutral text d = log perplexity ratio of the smallest model - that of the largest, at the primary "
             "coefficient; the same rule as the perplexity finding")


def ratio_verdict(low: float | None, high: float | None, margin: float) -> tuple[str, str]:
    """The OOD rule on one ratio interval: (verdict, reason)."""
    bound = 1 - margin
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive", "the ratio's interval is unbounded (the in-distribution effect is not significant)"
    interval = f"[{low:.2f}, {high:.2f}]"
    if high < bound:
        return "reproduced", f"OOD/ID ratio {interval} lies below {bound:.2f}"
    if low > bound:
        return "not reproduced", f"OOD/ID ratio {interval} lies above {bound:.2f}: the effect carries over"
    return "inconclusive", f"OOD/ID ratio {interval} straddles {bound:.2f}"


def _ratio_mde(num: np.ndarray, den: np.ndarray) -> float | None:
    """The smallest departure of the OOD/ID ratio from its estimate this run could detect:
    ``(t_.975 + t_.80) · se`` with the delta-method standard error of a ratio of independent means."""
    x, y = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n = min(x.size, y.size)
    if n < 2 or y.mean() == 0:
        return None
    r = x.mean() / y.mean()
    se = math.sqrt(x.var(ddof=1) / x.size + r**2 * y.var(ddof=1) / y.size) / abs(y.mean())
    return float((t_quantile(0.95, n - 1) + _sps.t.ppf(0.80, n - 1)) * se)


def _ood(config: Any, report: dict[str, Any]) -> Finding:
    ratios = report["effects"]["ood_over_id"]
    per_set = {}
    for name, ratio in ratios.items():
        verdict, reason = ratio_verdict(ratio.get("low"), ratio.get("high"), config.ood_margin)
        est = ratio.get("mean")
        per_set[name] = {"verdict": verdict, "reason": reason, "ratio": est, "low": ratio.get("low"),
                         "high": ratio.get("high"), "scale": ratio.get("scale")}
        sets = report["effects"]["sets"]
        standardised = ratio.get("scale") != "raw effects"
        num, den = (np.asarray(sets[key]["per_item_primary_effect"], dtype=float)
                    / (sets[key]["unsteered_sd"] if standardised else 1.0) for key in (name, "in_distribution"))
        per_set[name]["mde"] = _ratio_mde(num, den)
    id_effect = report["effects"]["sets"]["in_distribution"]["primary_effect"]
    if not (id_effect.get("low") is not None and id_effect["low"] > 0):
        # A ratio to an ID effect that is not significantly in the intended direction says nothing
        # about losing reliability out of distribution (a backfiring vector has a negative ratio).
        for v in per_set.values():
            v["verdict"] = "inconclusive"
            v["reason"] = "the in-distribution effect is not significantly in the intended direction: " + v["reason"]
    verdicts = {v["verdict"] for v in per_set.values()}
    verdict = verdicts.pop() if len(verdicts) == 1 else "inconclusive"
    parts = [f"{name}: {v['reason']}" + (f" (this run could detect a ratio {v['mde']:.2f} away from its estimate)"
                                          if v["mde"] is not None else "") for name, v in per_set.items()]
    summary = (f"ID effect {id_effect['mean']:+.3f} [{id_effect['low']:+.3f}, {id_effect['high']:+.3f}]; "
               + "; ".join(parts))
    if len({v["verdict"] for v in per_set.values()}) > 1:
        summary += " (the sets disagree)"
    return Finding("ood", CLAIMS["ood"], verdict, summary,
                   {"per_set": per_set, "margin": config.ood_margin, "rule": OOD_RULE})


def _sample_size(config: Any, report: dict[str, Any]) -> Finding:
    fit = report["sample_size"]["fit"]
    level = fit["n_at"].get("0.9", {})
    low, high, est = level.get("low"), level.get("high"), level.get("estimate")
    limit = config.plateau_limit
    largest = max(report["sample_size"]["sizes"])
    plateau = fit.get("e_max", {})
    failed, n_boot = fit.get("bootstrap", {}).get("n_failed", 0), fit.get("bootstrap", {}).get("n_boot", 0)
    numbers = {"n90": level, "plateau_limit": limit, "largest_n": largest, "form": fit.get("form"),
               "plateau": plateau, "bootstrap_failed": failed, "note": fit.get("note"),
               "rule": (f"reproduced: the plateau is positive (its interval above 0) and n90's bootstrap interval lies at "
                        f"or below min({limit}, the largest n tested); not reproduced: n90's interval lies above {limit}; "
                        "inconclusive otherwise, or when more than 2.5 % of bootstrap fits failed")}

    def finding(verdict: str, why: str) -> Finding:
        return Finding("sample_size", CLAIMS["sample_size"], verdict, why, numbers)

    if not fit.get("form"):
        return finding("inconclusive", f"no saturating curve could be fitted ({fit.get('note') or 'no estimate'})")
    # A missing bound or estimate with a fitted form means "no plateau": unbounded.
    inf = float("inf")
    est, low, high = (inf if x is None else x for x in (est, low, high))
    interval = f"n90 = {est:.0f} [{low:.0f}, {high:.0f}] examples per class (largest tested {largest})"
    if n_boot and failed > 0.025 * n_boot:
        return finding("inconclusive", f"{interval}, but {failed} of {n_boot} bootstrap fits failed")
    if low > limit:
        return finding("not reproduced", f"{interval}: the effect still grows beyond {limit} examples")
    if (plateau.get("low") or 0) <= 0:
        return finding("inconclusive", f"{interval}, but the plateau's interval reaches 0: no effect to saturate")
    if high <= min(limit, largest):
        return finding("reproduced", f"{interval}: 90 % of the plateau within the data and by {limit} examples "
                                     "(paper: about 80-100)")
    if high <= limit:
        return finding("inconclusive", f"{interval}: n90 may lie beyond the largest n tested, where the curve is "
                                       "extrapolated")
    return finding("inconclusive", f"{interval}: the interval straddles {limit}")


def _adversarial(config: Any, report: dict[str, Any]) -> Finding:
    adv = report["adversarial"]
    if adv.get("status") == "skipped":
        return Finding("adversarial", CLAIMS["adversarial"], "inconclusive", adv["reason"], {})
    searches = adv["searches"]
    found = [s for s in searches if s["reversal"]]
    n_seeds = adv["n_seeds"]
    seeds_found = len({s["seed_index"] for s in found})
    rate = proportion_interval(seeds_found, n_seeds)
    checked = [s["generation_check"]["agrees"] for s in found if s.get("generation_check")]
    numbers = {"seeds_with_reversal": rate.to_dict(), "n_reversals": len(found), "threshold": adv["threshold"],
               "budget_per_search": adv["budget_per_search"],
               "confirmed_by_generation": (sum(bool(x) for x in checked), len(checked)) if checked else None,
               "found_over_seed_perplexity": adv.get("found_over_seed_perplexity"),
               "rule": "reproduced: a reversal found for at least one seed; not reproduced: none, with the Wilson upper "
                       "bound of the per-seed rate below 0.25; inconclusive otherwise"}
    best = min(searches, key=lambda s: s["effect"])
    if found:
        confirm = (f"; {sum(bool(x) for x in checked)} of {len(checked)} also move the generated text's score against "
                   "the coefficient" if checked else "")
        ppl = adv.get("found_over_seed_perplexity")
        ppl_text = (f"; found inputs' perplexity / their seed's: {ppl['mean']:.2f} [{ppl['low']:.2f}, {ppl['high']:.2f}]"
                    if ppl and ppl.get("low") is not None else "")
        return Finding("adversarial", CLAIMS["adversarial"], "reproduced",
                       f"reversals for {seeds_found} of {n_seeds} seed prompts (best readout effect {best['effect']:+.3f}, "
                       f"threshold {adv['threshold']:+.3f}){confirm}{ppl_text}", numbers)
    if rate.high < 0.25:
        return Finding("adversarial", CLAIMS["adversarial"], "not reproduced",
                       f"no reversal in {n_seeds} seeds x 2 searches of {adv['budget_per_search']} candidates (rate "
                       f"< {rate.high:.2f} at 95 %)", numbers)
    return Finding("adversarial", CLAIMS["adversarial"], "inconclusive",
                   f"no reversal in {n_seeds} seeds (best effect {best['effect']:+.3f}, threshold "
                   f"{adv['threshold']:+.3f}); too few seeds to rule reversals out (rate < {rate.high:.2f})", numbers)


def _log_ratios_at(report: dict[str, Any], coefficient: float) -> np.ndarray:
    corpus = report["perplexity"]["corpora"]["neutral"]
    j = report["perplexity"]["coefficients"].index(coefficient)
    return np.asarray(corpus["per_text_log_ratio"][j], dtype=float)


def _perplexity(config: Any, report: dict[str, Any]) -> Finding:
    c = config.primary_coefficient
    d = _log_ratios_at(report, c)
    margin = math.log1p(config.perplexity_margin)
    numbers = paired_verdict(d, margin, units="log ratio", rule=PERPLEXITY_RULE)
    ratio = (f"x{math.exp(numbers.mean):.3f} [{math.exp(numbers.low):.3f}, {math.exp(numbers.high):.3f}]"
             if math.isfinite(numbers.low) else "n/a")
    rise = f"a rise of {config.perplexity_margin:.0%}"
    if math.isfinite(numbers.low) and numbers.low > margin:
        verdict, why = "reproduced", f"perplexity {ratio} at c = {c:g}: significantly more than {rise}"
    elif math.isfinite(numbers.high) and numbers.high < margin:
        verdict, why = "not reproduced", f"perplexity {ratio} at c = {c:g}: significantly less than {rise}"
    else:
        verdict, why = "inconclusive", f"perplexity {ratio} at c = {c:g}: cannot tell from {rise}"
    detect = f"; this run could detect ±{numbers.mde:.3f} in log ratio (n = {numbers.n} neutral texts)"
    return Finding("perplexity", CLAIMS["perplexity"], verdict, why + detect,
                   {**numbers.to_dict(), "verdict": verdict, "coefficient": c,
                    "rise": report["perplexity"]["corpora"]["neutral"]["rise"]})


def _model_size(config: Any, reports: list[dict[str, Any]]) -> Finding:
    if len(reports) < 2:
        return Finding("model_size", CLAIMS["model_size"], "inconclusive",
                       "needs >= 2 models (run with --models SPEC,SPEC,...); this run had one", {"n_models": len(reports)})
    ordered = sorted(reports, key=lambda r: r["model"]["n_parameters"])
    small, large = ordered[0], ordered[-1]
    if small["model"]["n_parameters"] == large["model"]["n_parameters"]:
        return Finding("model_size", CLAIMS["model_size"], "inconclusive",
                       f"the models have the same number of parameters ({small['model']['n_parameters']:,}): no size "
                       "difference to compare", {"n_models": len(reports)})
    c = config.primary_coefficient
    d = _log_ratios_at(small, c) - _log_ratios_at(large, c)
    verdict = paired_verdict(d, math.log1p(config.perplexity_margin), units="log ratio",
                             what=f"{small['model']['name']}'s log perplexity ratio minus {large['model']['name']}'s",
                             rule=SIZE_RULE, other="the larger model degrades more")
    effects = {r["model"]["name"]: r["effects"]["sets"]["in_distribution"]["primary_effect"] for r in ordered}
    summary = verdict.reason + ("; compare the models' effects too: a model that degrades less may also be steered less"
                                if verdict.verdict == "reproduced" else "")
    return Finding("model_size", CLAIMS["model_size"], verdict.verdict, summary,
                   {**verdict.to_dict(), "smallest": small["model"]["name"], "largest": large["model"]["name"],
                    "effects": effects})


def judge_claims(config: Any, reports: list[dict[str, Any]]) -> list[Finding]:
    """Findings 1-4 on the first model (every model's own verdicts are in its report), 5 across models."""
    first = reports[0]
    return [_ood(config, first), _sample_size(config, first), _adversarial(config, first),
            _perplexity(config, first), _model_size(config, reports)]


__all__ = ["CLAIMS", "Finding", "judge_claims", "ratio_verdict"]
