"""The Steering Vector Fields paper's four claims, judged on one run.

Each claim becomes one number per held-out input, ``d = field − vector`` at the primary coefficient,
oriented so that ``d > 0`` favours the field, and one rule decides them all
(:func:`~interp_steer.studies.rules.paired.paired_verdict`). The smallest effects of interest:

- **stronger control**: ``d`` = field's effect − vector's effect (each the score's move in the
  intended direction against the unsteered completion of the same prompt); margin
  ``effect_margin × |vector's mean effect|`` (:func:`relative_margin`): the field must be that much
  stronger to matter;
- **fewer backfires**: ``d`` = vector backfired − field backfired (0/1 per prompt: the score moved
  against the intended direction by more than the noise floor), with one discordant pair added each
  way (:func:`backfire_differences`); margin ``backfire_margin`` (a rate);
- **better long-form**: ``d`` = field's effect − vector's effect on the last third of a long
  completion; margin ``effect_margin × |vector's mean effect on the first third|`` (the same way);
- **better multi-attribute**: ``d`` = field's retention − vector's retention (together / alone, per
  attribute, averaged over the two attributes), per prompt through the delta method's pseudo-values
  ``R + (T_i − R·A_i) / mean(A)``, whose mean is ``R``; margin ``retention_margin``. Undefined (so
  inconclusive) unless every solo effect is significantly in the intended direction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_steer.stats import ArrayLike, proportion_interval, t_interval, t_quantile
from interp_steer.studies.svf.config import SvfConfig
from interp_steer.studies.svf.result import Claim
from interp_steer.studies.rules.paired import RULE, paired_verdict

CLAIMS = {
    "control": "The field gives stronger control than the static vector: a larger move of the score in the intended "
               "direction at the same step length.",
    "backfire": "The field backfires on fewer inputs than the vector (moves fewer of them against the intended direction "
                "beyond the noise floor).",
    "long_form": "The field keeps its effect better over long completions (the last third of a long generation).",
    "multi_attribute": "Steering two attributes at once, the field keeps more of each attribute's solo effect than the "
                       "vector does.",
}


def judge_claims(config: SvfConfig, per_prompt: dict[str, np.ndarray], *, direction: int, floor: float | int,
                 long_form: dict[str, Any], multi: dict[str, Any], mode: str) -> list[Claim]:
    """The four claims in the report's order: control, backfire, long-form, multi-attribute."""
    effects = primary_effects(config, per_prompt, direction)
    return [_control(config, effects, mode), _backfire(config, effects, float(floor)),
            _long_form(config, long_form), _multi(config, multi)]


def primary_effects(config: SvfConfig, per_prompt: dict[str, np.ndarray], direction: int) -> dict[str, np.ndarray]:
    """Per method, each prompt's effect at the primary coefficient: (steered − unsteered) · direction · sign(c)."""
    c = config.primary_coefficient
    k = [x for x in config.coefficients if x != 0.0].index(c)
    sign = 1 if c > 0 else -1
    base = np.asarray(per_prompt["unsteered_score"], dtype=float)
    return {m: (np.asarray(per_prompt[f"{m}_score"], dtype=float)[k] - base) * direction * sign
            for m in ("vector", "field")}


def relative_margin(values: ArrayLike, fraction: float | int) -> float:
    """``fraction`` of the size of a mean effect, measured on the same prompts: ``fraction ·
    max(0, |mean| − se)``. The margin is itself an estimate; taking the one-standard-error lower
    bound of the effect's size keeps its noise from inflating the equivalence test (with the plain
    ``|mean|`` the simulated "not reproduced" rate at the margin is 5.3 % at 100 prompts)."""
    interval = t_interval(values)
    if interval.n < 2:
        return float("nan")
    se = (interval.high - interval.mean) / float(t_quantile(0.95, interval.n - 1))
    return float(fraction * max(0.0, abs(interval.mean) - se))


def _numbers(verdict, **extra: Any) -> dict[str, Any]:
    return {**verdict.to_dict(), **extra}


def _control(config: SvfConfig, effects: dict[str, np.ndarray], mode: str) -> Claim:
    units = "P(matching)" if mode == "ab" else "score"
    vector, field = t_interval(effects["vector"]), t_interval(effects["field"])
    margin = relative_margin(effects["vector"], config.effect_margin)
    verdict = paired_verdict(effects["field"] - effects["vector"], margin, units=units,
                             what="field effect - vector effect")
    text = (f"at c = {config.primary_coefficient:g}, effect (move in the intended direction) of the field "
            f"{_iv(field)}, of the vector {_iv(vector)}; {verdict.reason}. Margin: "
            f"{config.effect_margin:g} x the vector's mean effect (less one standard error) = {margin:.3f}.")
    numbers = _numbers(verdict, coefficient=config.primary_coefficient, field_effect=field.to_dict(),
                       vector_effect=vector.to_dict(),
                       margin_rule=(f"{config.effect_margin:g} x max(0, |mean vector effect at the primary coefficient| - "
                                    "its standard error)"))
    return Claim("control", CLAIMS["control"], verdict.verdict, text, numbers)


def backfire_differences(vector: ArrayLike, field: ArrayLike) -> np.ndarray:
    """Per prompt, vector backfired − field backfired (0/1 flags; prompts with a NaN left out), plus
    one discordant pair each way (+1 and −1), in the spirit of Agresti and Min's adjustment for paired
    proportions. Without it, prompts where neither method backfires give ``d`` with zero variance and
    a zero-width interval, which would "prove" the two rates equal from, say, 0 of 30 against 0 of 30;
    with it, equivalence needs real evidence and a one-sided advantage behaves like McNemar's test."""
    d = np.asarray(vector, dtype=float) - np.asarray(field, dtype=float)
    return np.r_[d[np.isfinite(d)], 1.0, -1.0]


def _backfire(config: SvfConfig, effects: dict[str, np.ndarray], floor: float) -> Claim:
    flags = {}
    for m, e in effects.items():
        flags[m] = np.where(np.isfinite(e), (e < -floor).astype(float), np.nan)
    rates = {m: proportion_interval(int(np.nansum(f)), int(np.isfinite(f).sum())) for m, f in flags.items()}
    verdict = paired_verdict(backfire_differences(flags["vector"], flags["field"]), config.backfire_margin,
                             what="vector backfire rate - field backfire rate (adjusted)")
    text = (f"at c = {config.primary_coefficient:g} with noise floor {floor:.3f}, backfire rate of the field "
            f"{_rate(rates['field'])}, of the vector {_rate(rates['vector'])} (Wilson 95 %); {verdict.reason}. "
            f"Margin: {config.backfire_margin:g} (a difference of rates).")
    numbers = _numbers(verdict, coefficient=config.primary_coefficient, floor=floor,
                       adjustment="one discordant pair added each way (+1, -1); n counts them",
                       field_rate=rates["field"].to_dict(), vector_rate=rates["vector"].to_dict(),
                       margin_rule=f"{config.backfire_margin:g} (difference of backfire rates)")
    return Claim("backfire", CLAIMS["backfire"], verdict.verdict, text, numbers)


def _undecided(key: str, reason: str, *, measured: bool = False, **extra: Any) -> Claim:
    """A claim the rule cannot judge on this run: inconclusive, with the reason."""
    summary = reason if measured else f"not measured: {reason}"
    return Claim(key, CLAIMS[key], "inconclusive", f"{summary}.",
                 {"verdict": "inconclusive", "reason": reason, "measured": measured, "rule": RULE, "mde": None,
                  "difference": {"mean": None, "low": None, "high": None, "n": 0, "level": 0.95}, **extra})


def _long_form(config: SvfConfig, long_form: dict[str, Any]) -> Claim:
    if long_form.get("status") != "measured":
        return _undecided("long_form", long_form.get("reason", "skipped"))
    vector = np.asarray(long_form["per_prompt"]["vector"], dtype=float)  # [prompts, thirds]
    field = np.asarray(long_form["per_prompt"]["field"], dtype=float)
    margin = relative_margin(vector[:, 0], config.effect_margin)
    verdict = paired_verdict(field[:, 2] - vector[:, 2], margin, units="score",
                             what="field - vector effect on the last third")
    last_f, last_v = t_interval(field[:, 2]), t_interval(vector[:, 2])
    decay_f, decay_v = t_interval(field[:, 2] - field[:, 0]), t_interval(vector[:, 2] - vector[:, 0])
    text = (f"{long_form['tokens']} tokens at c = {long_form['coefficient']:g}: effect on the last third, field "
            f"{_iv(last_f)}, vector {_iv(last_v)} (decay last - first: field {_iv(decay_f)}, "
            f"vector {_iv(decay_v)}); {verdict.reason}. Margin: {config.effect_margin:g} x the vector's mean "
            f"effect on the first third (less one standard error) = {margin:.3f}.")
    numbers = _numbers(verdict, coefficient=long_form["coefficient"], tokens=long_form["tokens"], measured=True,
                       field_last_third=last_f.to_dict(), vector_last_third=last_v.to_dict(),
                       field_decay=decay_f.to_dict(), vector_decay=decay_v.to_dict(),
                       margin_rule=(f"{config.effect_margin:g} x max(0, |mean vector effect on the first third| - its "
                                    "standard error)"))
    return Claim("long_form", CLAIMS["long_form"], verdict.verdict, text, numbers)


def retention_pseudo_values(together: ArrayLike, alone: ArrayLike) -> tuple[np.ndarray, float]:
    """Per item, the delta method's pseudo-value of ``R = mean(together) / mean(alone)``:
    ``R + (T_i − R·A_i) / mean(A)`` (items with a NaN on either side are NaN). Their mean is ``R``
    and their standard error is the delta-method standard error of ``R``."""
    together, alone = np.asarray(together, dtype=float), np.asarray(alone, dtype=float)
    keep = np.isfinite(together) & np.isfinite(alone)
    if keep.sum() == 0 or alone[keep].mean() == 0:
        return np.full(together.shape, np.nan), float("nan")
    mean_a = alone[keep].mean()
    ratio = together[keep].mean() / mean_a
    pseudo = ratio + (together - ratio * alone) / mean_a
    return np.where(keep, pseudo, np.nan), float(ratio)


def _multi(config: SvfConfig, multi: dict[str, Any]) -> Claim:
    if multi.get("status") != "measured":
        return _undecided("multi_attribute", multi.get("reason", "skipped"))
    per = multi["per_prompt"]
    weak = [f"{m} {k}" for m in ("field", "vector") for k in ("A", "B")
            if not (t_interval(np.asarray(per[f"{m}_{k}_alone"], dtype=float)).low > 0)]
    pseudo, ratios = {}, {}
    for m in ("field", "vector"):
        parts = []
        for k in ("A", "B"):
            values, ratio = retention_pseudo_values(per[f"{m}_{k}_together"], per[f"{m}_{k}_alone"])
            parts.append(values)
            ratios[f"{m}_{k}"] = ratio
        pseudo[m] = np.mean(parts, axis=0)
    retention = {m: float(np.mean([ratios[f"{m}_A"], ratios[f"{m}_B"]])) for m in ("field", "vector")}
    if weak:
        reason = (f"the solo effect of {', '.join(weak)} is not significantly in the intended direction (95 % t-interval "
                  "not above 0), so its retention (together / alone) is undefined")
        return _undecided("multi_attribute", reason, measured=True, retention=retention,
                          retention_per_attribute=ratios)
    verdict = paired_verdict(pseudo["field"] - pseudo["vector"], config.retention_margin, units="retention",
                             what="field retention - vector retention")
    text = (f"at c = {multi['coefficient']:g} on both attributes, mean retention (together / alone over attributes A and B) "
            f"field {retention['field']:.2f}, vector {retention['vector']:.2f}; {verdict.reason}. Margin: "
            f"{config.retention_margin:g} (a difference of retentions).")
    numbers = _numbers(verdict, coefficient=multi["coefficient"], measured=True, retention=retention,
                       retention_per_attribute=ratios,
                       margin_rule=f"{config.retention_margin:g} (difference of mean retentions)")
    return Claim("multi_attribute", CLAIMS["multi_attribute"], verdict.verdict, text, numbers)


def _iv(interval) -> str:
    if not np.isfinite(interval.mean):
        return "n/a"
    if not (np.isfinite(interval.low) and np.isfinite(interval.high)):
        return f"{interval.mean:+.3f}"
    return f"{interval.mean:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]"


def _rate(interval) -> str:
    if not np.isfinite(interval.mean):
        return "n/a"
    return f"{interval.mean:.0%} [{interval.low:.0%}, {interval.high:.0%}]"


__all__ = ["CLAIMS", "backfire_differences", "judge_claims", "primary_effects", "relative_margin",
           "retention_pseudo_values"]
