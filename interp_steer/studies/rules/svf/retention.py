"""Ratios of means by the jackknife over prompts, the retention rule ``svf.long_form`` and
``svf.multi_attribute`` share (gated on significant denominators), and its decision text."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from interp_steer.stats import mean_and_se, t_quantile
from interp_steer.studies.rules.base import (
    Decision,
    json_number,
    verdict_of,
)
from interp_steer.studies.rules.paired import detect_text, mde
from interp_steer.studies.rules.svf.common import LEVEL, complete, interval, interval_text

RETENTION_MARGIN = 0.1
"""The smallest difference of retentions of interest (both rules' default margin)."""


def _ratio_terms(num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``mean(num) / mean(den)`` per run and its leave-one-out values per prompt (last axis; NaN
    prompts left out: the caller made them NaN in both)."""
    mask = np.isfinite(num) & np.isfinite(den)
    sn, sd = np.where(mask, num, 0).sum(-1), np.where(mask, den, 0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = sn / sd
        loo = np.where(mask, (sn[..., None] - num) / (sd[..., None] - den), np.nan)
    return ratio, loo


def jackknife(theta: np.ndarray, leave_one_out: np.ndarray) -> np.ndarray:
    """Jackknife pseudo-values ``n·θ − (n − 1)·θ₋ᵢ`` (``θ`` per run, ``θ₋ᵢ [runs, prompts]`` with NaN
    for prompts left out); their mean is the bias-corrected estimate, their standard error the
    jackknife's."""
    n = np.isfinite(leave_one_out).sum(-1)
    with np.errstate(invalid="ignore", over="ignore"):  # an infinite ratio (a zero mean) gives NaN: inconclusive
        return n[..., None] * theta[..., None] - (n[..., None] - 1) * leave_one_out


def _significant(values: np.ndarray) -> np.ndarray:
    """Whether the 95 % t interval of the mean (last axis) lies above 0."""
    mean, se, n = mean_and_se(values, axis=-1)
    with np.errstate(invalid="ignore"):
        return (n >= 2) & (mean - t_quantile(LEVEL, n - 1) * se > 0)


def retention_core(together: Mapping[str, np.ndarray], alone: Mapping[str, np.ndarray],
                   margin: Any) -> dict[str, np.ndarray]:
    """The retention rule shared by long-form and multi-attribute, on a batch: per method ("field",
    "vector") ``together[m]`` and ``alone[m]`` ``[runs, prompts, k]`` (k ratios averaged per method:
    k = 1 for long-form, 2 attributes for multi-attribute). Retention per method = mean over k of
    mean(together) / mean(alone); the difference field − vector by the jackknife with a t interval.
    Undefined (inconclusive) unless every ``alone`` mean is significantly above 0."""
    arrays = complete(together["field"], alone["field"], together["vector"], alone["vector"])
    arrays = [np.moveaxis(a, -1, 0) for a in arrays]  # [k, runs, prompts]
    # a prompt is used only when all its values are finite (over every k)
    keep = np.logical_and.reduce([np.isfinite(a).all(axis=0) for a in arrays])
    tf, af, tv, av = (np.where(keep, a, np.nan) for a in arrays)
    k = tf.shape[0]
    theta = np.zeros(tf.shape[1])
    loo = np.zeros(tf.shape[1:])
    retention, per, significant = {}, {}, {}
    for name, (t, a), sign in (("field", (tf, af), 1.0), ("vector", (tv, av), -1.0)):
        parts = []
        for j in range(k):
            ratio, left = _ratio_terms(t[j], a[j])
            theta = theta + sign * ratio / k
            loo = loo + sign * left / k
            parts.append(ratio)
        retention[name] = np.mean(parts, axis=0)
        per[name] = np.stack(parts, axis=-1)
        significant[name] = np.stack([_significant(a[j]) for j in range(k)], axis=-1)  # [runs, k]
    gate = significant["field"].all(-1) & significant["vector"].all(-1)
    pseudo = jackknife(theta, loo)
    mean, se, n, low, high = interval(pseudo, skew=False)
    margin = np.broadcast_to(np.asarray(margin, dtype=float), mean.shape)
    # The decision (long-form, k = 1): the denominator-free forms of mean_j(R_f,j - R_v,j) > 0 and < margin, i.e. multiplied by
    # every denominator, G = mean_j[(T_f,j A_v,j - T_v,j A_f,j) prod_{i != j} A_f,i A_v,i] and
    # G - margin prod_j A_f,j A_v,j (their signs agree with the ratios' whenever the denominators are
    # positive): polynomials in the means, judged by their jackknife t intervals. The ratio's own interval
    # is liberal when one denominator is weak (red team F3: 6-8 %); these are not.
    stats = [[_loo_means(x[j]) for j in range(k)] for x in (tf, af, tv, av)]

    def forms(i: int, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        (mtf, maf, mtv, mav) = ([s[j][i] for j in range(k)] for s in stats)
        dens = [maf[j] * mav[j] for j in range(k)]
        total = 0
        for j in range(k):
            others = functools.reduce(np.multiply, [dens[q] for q in range(k) if q != j], 1.0)
            total = total + (mtf[j] * mav[j] - mtv[j] * maf[j]) * others / k
        return total, total - shift * functools.reduce(np.multiply, dens, 1.0)

    g, g_short = forms(0, margin)
    lg, lg_short = forms(1, margin[..., None])
    product = _t_bounds(jackknife(g, lg), LEVEL)
    product_short = _t_bounds(jackknife(g_short, lg_short), LEVEL)
    valid = gate & (n >= 3) & np.isfinite(se) & np.isfinite(low)
    if k == 1:
        above, short, below = valid & (product[1] > 0), valid & (product_short[2] < 0), valid & (product[2] < 0)
    else:
        # Averaged over k > 1 ratios the polynomial carries the product of 2k noisy denominators, whose
        # spread cost most of the power (0.26 -> 0.09 at the paper's effect); the ratio's interval stayed
        # within the design there (red team: 1.7-2.3 % with one weak solo effect), so it decides
        above, short, below = valid & (low > 0), valid & (high < margin), valid & (high < 0)
    code = np.where(above, 1, np.where(short | below, -1, 0))
    return {"code": code, "gate": gate, "mean": mean, "se": se, "n": n, "low": low, "high": high, "estimate": theta,
            "retention_field": retention["field"], "retention_vector": retention["vector"],
            "per_field": per["field"], "per_vector": per["vector"], "significant_field": significant["field"],
            "significant_vector": significant["vector"], "above": above, "short": short, "below": below,
            "product": product[0], "product_low": product[1], "product_high": product[2],
            "short_product": product_short[0], "short_low": product_short[1], "short_high": product_short[2],
            "margin": margin, "mde": mde(se, n)}


def _loo_means(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over prompts (last axis, NaNs left out) and its leave-one-out values (NaN where left out)."""
    mask = np.isfinite(x)
    total, count = np.where(mask, x, 0).sum(-1), mask.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count, np.where(mask, (total[..., None] - x) / (count[..., None] - 1), np.nan)


def _t_bounds(pseudo: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and the two-sided ``level`` t interval of jackknife pseudo-values (last axis)."""
    mean, se, n = mean_and_se(pseudo, axis=-1)
    half = t_quantile(level, n - 1) * se
    return mean, mean - half, mean + half




def retention_decision(out: Mapping[str, Any], margin: float, what: str, gate_text: str) -> Decision:
    """One run's retention verdict from :func:`retention_core`'s output (run 0, as scalars) with its
    reason: ``what`` names the retention, ``gate_text`` says which effects were not significant (the
    reason when the gate leaves the retention undefined)."""
    code, n = int(out["code"]), int(out["n"])
    retained = f"retention field {out['retention_field']:.2f}, vector {out['retention_vector']:.2f}"
    diff = f"{interval_text(out['mean'], out['low'], out['high'], 2)} (jackknife, 95 %, n = {n})"
    detect = detect_text(out["mde"], " in retention", digits=2)
    product = ""
    if "product" in out and np.ndim(out["product_low"]) == 0 and what.startswith("last third"):
        product = (f"; decided on the denominator-free form mean(last f) mean(first v) − mean(last v) mean(first f) "
                   f"= {interval_text(out['product'], out['product_low'], out['product_high'])} and the same minus {margin:g} "
                   f"mean(first f) mean(first v) = {interval_text(out['short_product'], out['short_low'], out['short_high'])}")
    if not out["gate"]:
        reason = f"{gate_text}, so retention ({what}) is undefined; {retained}"
    elif not np.isfinite(out["low"]):
        reason = f"fewer than three complete prompts ({n}): no interval"
    elif code == 1:
        reason = f"{retained}; field − vector {diff}, above 0{product}; {detect}"
    elif code == -1:
        lower = "the vector keeps more" if out["below"] else f"any advantage of the field is below {margin:g}"
        reason = f"{retained}; field − vector {diff}, below {margin:g}: {lower}{product}; {detect}"
    else:
        reason = f"{retained}; field − vector {diff}: neither above 0 nor below {margin:g}{product}; {detect}"
    numbers = {"verdict": verdict_of(code), "reason": reason, "measured": True,
               "difference": {"mean": json_number(out["mean"]), "low": json_number(out["low"]), "high": json_number(out["high"]), "n": n,
                              "level": LEVEL, "definition": f"retention ({what}) of the field − of the vector, "
                                                            "jackknife estimate"},
               "retention": {"field": json_number(out["retention_field"]), "vector": json_number(out["retention_vector"])},
               "estimate": json_number(out["estimate"]), "se": json_number(out["se"]), "defined": bool(out["gate"]),
               "margin": float(margin), "mde": json_number(out["mde"]),
               **({"denominator_free": {
                   "difference": {"mean": json_number(out["product"]), "low": json_number(out["product_low"]),
                                  "high": json_number(out["product_high"])},
                   "short_of_margin": {"mean": json_number(out["short_product"]), "low": json_number(out["short_low"]),
                                       "high": json_number(out["short_high"])},
                   "definition": "mean(last f) mean(first v) − mean(last v) mean(first f) [− margin mean(first f) "
                                 "mean(first v)], jackknife 95 % t intervals; they decide"}} if product else {}),
               "criteria": {"defined": bool(out["gate"]), "above_zero": bool(out["above"]),
                            "below_margin": bool(out["short"]), "below_zero": bool(out["below"])}}
    return Decision(verdict_of(code), reason, numbers)
