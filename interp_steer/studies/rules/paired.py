"""The one-sample paired rule: a mean over items of per-item differences ``d``, judged against 0 and
an equivalence margin. It was the SVF comparison's rule (moved here from ``svf/rule.py``); the SVF
claims now have their own registered rules (:mod:`interp_steer.studies.rules.svf`, which take both
methods' per-prompt numbers), and the robustness study judges one-sample claims with this one.
``d`` is oriented so that a positive mean supports the claim, and :func:`paired_verdict` says:

- **reproduced** when the 95 % interval of ``mean(d)`` lies above 0 (a one-sided 2.5 % test);
- **not reproduced** when that interval lies below 0, or when the 90 % interval lies inside
  ``±margin`` (two one-sided tests at 5 %: whatever effect there is, it is smaller than the smallest
  effect of interest);
- **inconclusive** otherwise (and with fewer than two items).

The intervals are t intervals with Hall's (1992) skewness correction
(:func:`~interp_steer.stats.skew_corrected_interval`) by default, since per-item effects are often
skewed and a plain t interval then errs on one side; ``skew=False`` gives plain t intervals (for data
where a sample skewness means nothing, such as a few ±1 among zeros: differences of 0/1 flags need an
exact test instead, see ``svf.backfire``). The margin is given, not estimated: a margin estimated
from the same items is correlated with ``d`` and needs its own simulation (``svf.control`` tests a
relative margin per item instead). The minimum detectable effect ``(t_.975 + t_.80) · se`` on
``n − 1`` degrees of freedom and ``n`` are always reported, with the power of the "reproduced" test
against an effect of ``margin``.

Simulated rates with the skewness correction (``tests/test_rules_paired.py``, 20 000 runs each; Monte
Carlo slack ``2·√(p(1 − p)/runs)``), margin 0.3 SD:

==================================================================  =========  =========  =========
rate                                                                 n = 16     n = 30     n = 100
==================================================================  =========  =========  =========
"reproduced" when d ~ N(0, 1) (design: ≤ 2.5 %)                       0.025      0.025
"reproduced" when d ~ t3 (heavy tails)                                0.036      0.036
"reproduced" when d = 1 − Exp(1) (left-skewed, mean 0)                0.048      0.035
  ... with plain t intervals (``skew=False``)                         0.082      0.065
"not reproduced" at a true effect equal to the margin                            0.015      0.050
  (design: ≤ 5 %)
power ("reproduced") at an effect of 0.5 SD                           0.46       0.75
power at an effect of 0.8 SD                                          0.84       0.99
"not reproduced" when d ~ N(0, 1) (correct: the effect is 0)          0.027      0.076      0.85
==================================================================  =========  =========  =========

The equivalence arm needs ``se`` below about ``margin / 1.7``: with a margin of 0.3 SD it rarely
fires at 30 items and usually at 100, so small runs are honestly inconclusive more often than not.
A significant effect smaller than the margin is still "reproduced" (the claim is qualitative); the
reason then says it is smaller than the smallest effect of interest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps

from interp_steer.stats import ArrayLike, mean_and_se, skew_corrected_interval, t_quantile

VERDICTS = {1: "reproduced", -1: "not reproduced", 0: "inconclusive"}

RULE = ("per item d, oriented so that d > 0 supports the claim; reproduced: the 95 % t interval (Hall's skewness "
        "correction) of mean(d) over items lies above 0; not reproduced: it lies below 0, or the 90 % interval lies "
        "inside ± margin (TOST at 5 %: any effect is smaller than the smallest effect of interest); inconclusive "
        "otherwise. MDE = (t_.975 + t_.80) * se on n − 1 degrees of freedom (80 % power, 5 % two-sided)")


def mde(se: ArrayLike, n: ArrayLike) -> np.ndarray | float:
    df = np.asarray(n, dtype=float) - 1
    with np.errstate(invalid="ignore"):
        t_80 = np.where(df >= 1, _sps.t.ppf(0.80, np.maximum(df, 1)), np.nan)
        return (t_quantile(0.95, df) + t_80) * np.asarray(se, dtype=float)


def detect_text(mde_value: float, unit: str = "", digits: int = 3) -> str:
    """The report's sentence for a minimum detectable effect (80 % power, 5 % two-sided)."""
    if not np.isfinite(mde_value):
        return "too few prompts to detect anything"
    return f"this run could detect ±{abs(float(mde_value)):.{digits}f}{unit} (80 % power, 5 % two-sided)"


def core(d: ArrayLike, margin: ArrayLike, *, skew: bool = True) -> dict[str, np.ndarray]:
    """The rule for a batch of runs, ``d [..., items]`` (NaNs left out) and a margin per run
    (broadcast): verdict codes (1, −1, 0) and every number the rule uses. Vectorised so that the
    tests can simulate it over many runs; :func:`paired_verdict` calls it for one run. ``skew``: the
    intervals carry Hall's skewness correction (:func:`~interp_steer.stats.skew_corrected_interval`);
    without it they are plain t intervals (for data where a sample skewness means nothing, such as
    a few discordant 0/1 pairs)."""
    if skew:
        mean, se, n, low, high = skew_corrected_interval(d, level=0.95)
        _, _, _, low90, high90 = skew_corrected_interval(d, level=0.90)
    else:
        mean, se, n = mean_and_se(d, axis=-1)
        half95, half90 = t_quantile(0.95, n - 1) * se, t_quantile(0.90, n - 1) * se
        low, high, low90, high90 = mean - half95, mean + half95, mean - half90, mean + half90
    margin = np.broadcast_to(np.asarray(margin, dtype=float), mean.shape)
    valid = (n >= 2) & np.isfinite(se)
    above = valid & (low > 0)
    below = valid & (high < 0)
    equivalent = valid & np.isfinite(margin) & (low90 > -margin) & (high90 < margin)
    code = np.where(above, 1, np.where(below | equivalent, -1, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        power = np.where(valid & (se > 0), _sps.nct.sf(t_quantile(0.95, n - 1), np.maximum(n - 1, 1),
                                                        margin / np.where(se > 0, se, 1.0)), np.nan)
    return {"code": code, "mean": mean, "se": se, "n": n, "low": low, "high": high, "low_90": low90,
            "high_90": high90, "above": above, "below": below, "equivalent": equivalent, "margin": margin,
            "mde": mde(se, n), "power_at_margin": power}


@dataclass(frozen=True)
class PairedVerdict:
    """The rule's verdict on one claim and every number behind it (95 % and 90 % t intervals of
    ``mean(d)``, its standard error, ``n``, the margin, the MDE and the power against the margin)."""

    verdict: str
    reason: str
    mean: float
    low: float
    high: float
    low_90: float
    high_90: float
    se: float
    n: int
    margin: float
    mde: float
    power_at_margin: float
    criteria: dict[str, bool]
    rule: str = RULE

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        return {"verdict": self.verdict, "reason": self.reason, "difference": {
                    "mean": num(self.mean), "low": num(self.low), "high": num(self.high), "n": self.n, "level": 0.95},
                "interval_90": {"low": num(self.low_90), "high": num(self.high_90)}, "se": num(self.se),
                "margin": num(self.margin), "mde": num(self.mde), "power_at_margin": num(self.power_at_margin),
                "criteria": dict(self.criteria), "rule": self.rule}


def paired_verdict(d: ArrayLike, margin: float | int, *, units: str = "", what: str = "the field's advantage",
                   rule: str = RULE, other: str = "the vector does better") -> PairedVerdict:
    """Judge one claim from per-prompt paired differences ``d`` (field − vector, positive favours the
    field; NaNs are left out) with the smallest effect of interest ``margin`` (>= 0, in ``d``'s
    units; NaN disables the equivalence arm). See the module docstring for the rule and its
    simulated error rates. Other studies judge other one-sample claims with the same rule:
    ``what`` names the quantity, ``rule`` describes ``d`` for the result file and ``other`` says
    what a significantly negative mean means."""
    if not (margin >= 0 or np.isnan(margin)):
        raise ValueError(f"margin must be >= 0 (or NaN to disable the equivalence test), got {margin}")
    values = np.asarray(d, dtype=float).ravel()
    # a batch of one run: the interval functions return arrays for batches (a bare 1-D input gives numpy scalars)
    out = {k: (np.asarray(v)[0].item() if np.ndim(v) else v) for k, v in core(values[None], margin).items()}
    code = int(out["code"])
    n = int(out["n"])
    unit = f" {units}" if units else ""

    def f(x: float) -> str:
        return "n/a" if not np.isfinite(x) else f"{x:+.3f}"

    interval = f"{f(out['mean'])} [{f(out['low'])}, {f(out['high'])}]{unit} (95 %, n = {n})"
    detect = detect_text(out["mde"], unit)
    margin_text = f"±{margin:.3f}{unit}" if np.isfinite(margin) else "no margin"
    if n < 2:
        reason = f"fewer than two prompts with both values ({n}): no interval; {detect}"
    elif code == 1:
        smaller = (f" (but its 90 % interval lies inside {margin_text}: smaller than the smallest effect of interest)"
                   if out["equivalent"] else "")
        reason = f"{what} is {interval}, above 0{smaller}; {detect}"
    elif out["below"]:
        reason = f"{other}: {what} is {interval}, below 0; {detect}"
    elif code == -1:
        reason = (f"{what} is {interval}; its 90 % interval [{f(out['low_90'])}, {f(out['high_90'])}] lies inside "
                  f"{margin_text} (equivalence test at 5 %): any advantage is smaller than the smallest effect of "
                  f"interest; {detect}")
    else:
        reason = (f"{what} is {interval}: neither above 0 nor shown to be within {margin_text}; {detect}")
    criteria = {"above_zero": bool(out["above"]), "below_zero": bool(out["below"]),
                "within_margin": bool(out["equivalent"])}
    return PairedVerdict(VERDICTS[code], reason, float(out["mean"]), float(out["low"]), float(out["high"]),
                         float(out["low_90"]), float(out["high_90"]), float(out["se"]), n, float(margin),
                         float(out["mde"]), float(out["power_at_margin"]), criteria, rule)


__all__ = ["detect_text", "RULE", "VERDICTS", "PairedVerdict", "core", "mde", "paired_verdict"]
