"""The Steering Vector Fields paper's four claims, judged on one run.

Each claim is a registered rule (:mod:`interp_steer.studies.rules.svf`) fed the per-prompt numbers
of both methods at the primary coefficient; this module gathers them from the study's measurements,
calls the rule's :meth:`~interp_steer.studies.rules.base.Rule.decide` and words the verdict:

- **stronger control** (``svf.control``): each method's effect per prompt (the score's move in the
  intended direction against the unsteered completion of the same prompt); reproduced when
  field − vector is significantly above 0, not reproduced when it is below 0 or when the field is
  shown less than ``1 + effect_margin`` times as strong as the vector (per prompt, Fieller's test);
- **fewer backfires** (``svf.backfire``): the same effects and the changes random directions of the
  same length make (the control cells); a prompt backfires below −floor; exact paired tests;
- **better long-form** (``svf.long_form``): retention, last third ÷ first third, per method, and its
  difference by the jackknife; undefined unless both first-third effects are significant;
- **better multi-attribute** (``svf.multi_attribute``): retention, together ÷ alone, averaged over
  the two attributes, the same way; undefined unless every solo effect is significant.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_steer.stats import proportion_interval, t_interval
from interp_steer.studies.rules.base import Decision
from interp_steer.studies.rules.svf import BACKFIRE, CONTROL, LONG_FORM, MULTI
from interp_steer.studies.svf.config import SvfConfig
from interp_steer.studies.svf.result import Claim

CLAIMS = {
    "control": CONTROL.claim,
    "backfire": BACKFIRE.claim,
    "long_form": LONG_FORM.claim,
    "multi_attribute": MULTI.claim,
}
RULES = {"control": CONTROL, "backfire": BACKFIRE, "long_form": LONG_FORM, "multi_attribute": MULTI}


def card(key: str) -> str:
    """Where a claim's rule card is: its id and the command that prints it."""
    rule_id = RULES[key].id
    return f"rule `{rule_id}` (`interp-steer rules {rule_id}`)"


def judge_claims(config: SvfConfig, per_prompt: dict[str, np.ndarray], *, direction: int, long_form: dict[str, Any],
                 multi: dict[str, Any], mode: str) -> list[Claim]:
    """The four claims in the report's order: control, backfire, long-form, multi-attribute."""
    effects = primary_effects(config, per_prompt, direction)
    return [_control(config, effects, mode), _backfire(config, effects, primary_reference(config, per_prompt, direction)),
            _long_form(config, long_form), _multi(config, multi)]


def primary_effects(config: SvfConfig, per_prompt: dict[str, np.ndarray], direction: int) -> dict[str, np.ndarray]:
    """Per method, each prompt's effect at the primary coefficient: (steered − unsteered) · direction · sign(c)."""
    c = config.primary_coefficient
    k = [x for x in config.coefficients if x != 0.0].index(c)
    sign = 1 if c > 0 else -1
    base = np.asarray(per_prompt["unsteered_score"], dtype=float)
    return {m: (np.asarray(per_prompt[f"{m}_score"], dtype=float)[k] - base) * direction * sign
            for m in ("vector", "field")}


def primary_reference(config: SvfConfig, per_prompt: dict[str, np.ndarray], direction: int) -> np.ndarray:
    """``[prompts, draws]`` the changes the random control directions make at the primary
    coefficient's size, oriented like the effects (``per_prompt["control_score"]`` is ``[sizes,
    prompts, draws]``, sizes ascending)."""
    sizes = sorted({abs(x) for x in config.coefficients if x != 0.0})
    c = config.primary_coefficient
    base = np.asarray(per_prompt["unsteered_score"], dtype=float)
    scores = np.asarray(per_prompt["control_score"], dtype=float)[sizes.index(abs(c))]
    return (scores - base[:, None]) * direction * (1 if c > 0 else -1)


def _claim(key: str, decision: Decision, text: str, **extra: Any) -> Claim:
    numbers = {**decision.numbers, **extra, "card": f"interp-steer rules {RULES[key].id}"}
    return Claim(key, CLAIMS[key], decision.verdict, text, numbers)


def _control(config: SvfConfig, effects: dict[str, np.ndarray], mode: str) -> Claim:
    units = "P(matching)" if mode == "ab" else "score"
    vector, field = t_interval(effects["vector"]), t_interval(effects["field"])
    decision = CONTROL.decide(field=effects["field"], vector=effects["vector"], margin=config.effect_margin, units=units)
    text = (f"at c = {config.primary_coefficient:g}, effect (move in the intended direction) of the field "
            f"{_iv(field)}, of the vector {_iv(vector)}; {decision.reason}.")
    return _claim("control", decision, text, coefficient=config.primary_coefficient, field_effect=field.to_dict(),
                  vector_effect=vector.to_dict())


def _backfire(config: SvfConfig, effects: dict[str, np.ndarray], reference: np.ndarray) -> Claim:
    decision = BACKFIRE.decide(field=effects["field"], vector=effects["vector"], reference=reference,
                               margin=config.backfire_margin)
    floor = decision.numbers["floor"]
    rates = {}
    for m, e in effects.items():
        scored = np.isfinite(e)
        rates[m] = proportion_interval(int((e[scored] < -floor).sum()) if floor is not None else 0, int(scored.sum()))
    text = (f"at c = {config.primary_coefficient:g}, {decision.reason}. Wilson 95 % intervals of the rates: field "
            f"{_rate(rates['field'])}, vector {_rate(rates['vector'])}. Margin: {config.backfire_margin:g} (a "
            "difference of rates).")
    return _claim("backfire", decision, text, coefficient=config.primary_coefficient,
                  field_rate=rates["field"].to_dict(), vector_rate=rates["vector"].to_dict())


def _undecided(key: str, reason: str) -> Claim:
    """A claim this run did not measure: inconclusive, with the reason."""
    rule = RULES[key]
    return Claim(key, CLAIMS[key], "inconclusive", f"not measured: {reason}.",
                 {"verdict": "inconclusive", "reason": reason, "measured": False, "rule": rule.id, "rule_text": rule.text,
                  "card": f"interp-steer rules {rule.id}", "mde": None,
                  "difference": {"mean": None, "low": None, "high": None, "n": 0, "level": 0.95}})


def _long_form(config: SvfConfig, long_form: dict[str, Any]) -> Claim:
    if long_form.get("status") != "measured":
        return _undecided("long_form", long_form.get("reason", "skipped"))
    vector = np.asarray(long_form["per_prompt"]["vector"], dtype=float)  # [prompts, thirds]
    field = np.asarray(long_form["per_prompt"]["field"], dtype=float)
    decision = LONG_FORM.decide(field=field, vector=vector, margin=config.retention_margin)
    first_f, first_v = t_interval(field[:, 0]), t_interval(vector[:, 0])
    last_f, last_v = t_interval(field[:, 2]), t_interval(vector[:, 2])
    text = (f"{long_form['tokens']} tokens at c = {long_form['coefficient']:g}: effect on the first / last third, field "
            f"{_iv(first_f)} / {_iv(last_f)}, vector {_iv(first_v)} / {_iv(last_v)}; {decision.reason}. Margin: "
            f"{config.retention_margin:g} (a difference of retentions).")
    return _claim("long_form", decision, text, coefficient=long_form["coefficient"], tokens=long_form["tokens"],
                  field_first_third=first_f.to_dict(), vector_first_third=first_v.to_dict(),
                  field_last_third=last_f.to_dict(), vector_last_third=last_v.to_dict())


def _multi(config: SvfConfig, multi: dict[str, Any]) -> Claim:
    if multi.get("status") != "measured":
        return _undecided("multi_attribute", multi.get("reason", "skipped"))
    per = multi["per_prompt"]

    def stack(m: str, part: str) -> np.ndarray:
        return np.stack([np.asarray(per[f"{m}_{k}_{part}"], dtype=float) for k in ("A", "B")], axis=-1)

    decision = MULTI.decide(field_alone=stack("field", "alone"), field_together=stack("field", "together"),
                            vector_alone=stack("vector", "alone"), vector_together=stack("vector", "together"),
                            margin=config.retention_margin)
    text = (f"at c = {multi['coefficient']:g} on both attributes: {decision.reason}. Margin: "
            f"{config.retention_margin:g} (a difference of retentions).")
    return _claim("multi_attribute", decision, text, coefficient=multi["coefficient"])


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


__all__ = ["CLAIMS", "RULES", "card", "judge_claims", "primary_effects", "primary_reference"]
