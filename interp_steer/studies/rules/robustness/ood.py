"""``robustness.ood`` (finding 1): Fieller's interval of OOD effect / ID effect per
out-of-distribution set (standardised effects when the sets are measured differently), gated on a
significant ID effect. Its simulated worlds are in :mod:`.ood_worlds`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as _sps

from interp_steer.stats import mean_and_se, t_quantile
from interp_steer.studies.rules.base import (
    VERDICTS,
    Decision,
    Rule,
    json_number,
    register,
)
from interp_steer.studies.rules.robustness.common import one_d
from interp_steer.studies.rules.robustness.ood_worlds import ood_dgps

OOD_MARGIN = 0.25
OOD_CLAIM = ("Steering is reliable only in-distribution: out of distribution it keeps less than 1 − margin (75 %) of "
             "its in-distribution effect")
OOD_TEXT = ("per out-of-distribution set, Fieller's 95 % interval of r = mean OOD effect / mean ID effect at the primary "
            "coefficient (independent item sets, t on min(n) − 1 d.o.f.; when a set is measured differently from the "
            "ID set, each set's effects are divided by the mean absolute deviation of its unsteered scores from their "
            "median, with that scale's own uncertainty in the standard errors; a set whose scale rests on fewer than 8 unsteered "
            "scores differing from their median, or is 0, is inconclusive); reproduced: the ID effect is "
            "significantly in the intended direction (its 95 % t interval above 0) and every set's interval lies "
            "below 1 − margin; not reproduced: the ID effect is significant and every set's interval lies above "
            "1 − margin; inconclusive otherwise (an unbounded interval, a non-significant ID effect, sets that "
            "disagree). Each arm is a one-sided 2.5 % test at the boundary ratio 1 − margin")
OOD_SCALE = "mean absolute deviation of the unsteered scores from their median"
OOD_MIN_INFORMATIVE = 8
"""A standardised set's scale needs at least this many unsteered scores that differ from their median
(about half of the quick profile's 15 OOD prompts): a scale resting on a few items (VADER scoring most
texts exactly 0) has a badly estimated variance (false "reproduced" 9.6 % at 80 % zeros, red team;
with a minimum of 5, still 6.4 % at 60 % zeros, 3000 runs; with 8, 3.6 %); with fewer the set is
inconclusive."""


def _raw_mean(effects: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean effect, squared standard error of the mean and item count (NaNs left out)."""
    mean, se, n = mean_and_se(effects, axis=-1)
    return np.asarray(mean), np.asarray(se**2), np.asarray(n)


def _standardised_mean(effects: np.ndarray, unsteered: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``mean(effect) / D`` with ``D`` the mean absolute deviation of the unsteered scores from their
    median, over items where both are finite, and its squared standard error from the influence
    function ``(e_i − ē) / D − (ē / D) · (|u_i − med| − D) / D`` (the scale's uncertainty and its
    covariance with the effects included; the median's own term vanishes at the median). A scale
    estimated from 15 items is far from exact: without its uncertainty a standardised ratio's
    interval is too narrow (simulated: a 27 % false "reproduced" at an ID effect of 6 SD). The mean
    absolute deviation, not the SD, because its influence function has a finite variance under
    heavy tails (t with 3 d.o.f.), where the SD's does not. The fourth array is the number of
    unsteered scores that differ from their median (the items the scale rests on)."""
    e, u = np.broadcast_arrays(np.asarray(effects, dtype=float), np.asarray(unsteered, dtype=float))
    mask = np.isfinite(e) & np.isfinite(u)
    n = mask.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (padding): their n is 0
        mean = np.where(mask, e, 0.0).sum(axis=-1) / n
        median = np.nanmedian(np.where(mask, u, np.nan), axis=-1)
        deviation = np.where(mask, np.abs(u - median[..., None]), 0.0)
        scale = deviation.sum(axis=-1) / n
        ratio = mean / scale
        influence = np.where(mask, (e - mean[..., None]) / scale[..., None]
                             - ratio[..., None] * (deviation - scale[..., None]) / scale[..., None], 0.0)
        var = (influence**2).sum(axis=-1) / (n * (n - 1))
        var = np.where((n >= 2) & (scale > 0), var, np.nan)
        informative = (mask & (deviation > 0)).sum(axis=-1)
    return ratio, var, n, informative


def ood_ratio(ood_effects: Any, id_effects: Any, ood_unsteered: Any = None, id_unsteered: Any = None, *,
              standardise: Any = False, level: float = 0.95) -> dict[str, np.ndarray]:
    """Fieller's interval of ``mean OOD effect / mean ID effect`` for independent item sets, on raw
    effects or (``standardise``) on effects divided by each set's unsteered spread
    (:func:`_standardised_mean`). Shapes broadcast over leading axes, items on the last. Returns the
    ratio, ``low``/``high`` (NaN where unbounded: the ID mean is not significantly non-zero), ``bounded``,
    the delta-method ``se`` of the ratio, ``n`` (the smaller set) and ``mde`` (the smallest departure
    from the estimate a run detects: ``(t_.975 + t_.80) · se``), ``informative`` (standardised sets: the
    fewer, over the two sets, of unsteered scores differing from their median; the items count
    otherwise) and ``thin_scale`` (a standardised set whose scale rests on fewer than
    :data:`OOD_MIN_INFORMATIVE` such scores, or is 0: unbounded). ±inf anywhere is refused."""
    for name, arr in (("ood_effects", ood_effects), ("id_effects", id_effects), ("ood_unsteered", ood_unsteered),
                      ("id_unsteered", id_unsteered)):
        if arr is not None and np.isinf(np.asarray(arr, dtype=float)).any():
            raise ValueError(f"{name} holds infinite values: pass finite scores (NaN for a missing item, which is "
                             f"left out)")
    flag = np.asarray(standardise, dtype=bool)
    x, vx, nx = _raw_mean(ood_effects)
    y, vy, ny = _raw_mean(id_effects)
    informative = np.minimum(nx, ny)
    if flag.any():
        if ood_unsteered is None or id_unsteered is None:
            raise ValueError("standardised ratios need the unsteered scores of both sets (ood_unsteered, id_unsteered)")
        sx, svx, snx, ix = _standardised_mean(ood_effects, ood_unsteered)
        sy, svy, sny, iy = _standardised_mean(id_effects, id_unsteered)
        x, vx, nx = (np.where(flag, s, r) for s, r in ((sx, x), (svx, vx), (snx, nx)))
        y, vy, ny = (np.where(flag, s, r) for s, r in ((sy, y), (svy, vy), (sny, ny)))
        informative = np.where(flag, np.minimum(ix, iy), informative)
    thin = flag & (informative < OOD_MIN_INFORMATIVE)
    n = np.minimum(nx, ny)
    with np.errstate(invalid="ignore", divide="ignore"):
        t2 = t_quantile(level, n - 1) ** 2
        a, b, c = y * y - t2 * vy, x * y, x * x - t2 * vx
        bounded = (n >= 2) & (a > 0) & ~thin
        root = np.sqrt(np.maximum(b * b - a * c, 0.0))
        low = np.where(bounded, (b - root) / a, np.nan)
        high = np.where(bounded, (b + root) / a, np.nan)
        ratio = np.where(y != 0, x / y, np.nan)
        se = np.sqrt(vx + ratio**2 * vy) / np.abs(y)
        t80 = np.where(n >= 2, _sps.t.ppf(0.80, np.maximum(n - 1, 1)), np.nan)
    return {"ratio": ratio, "low": low, "high": high, "bounded": bounded, "se": se, "n": n,
            "mde": (t_quantile(0.95, n - 1) + t80) * se, "informative": informative, "thin_scale": thin}


def _ood_core(id_effects: Any, ood_effects: Any, id_unsteered: Any = None, ood_unsteered: Any = None,
              margin: Any = OOD_MARGIN, standardise: Any = False) -> dict[str, np.ndarray]:
    """The rule on a batch: ``id_effects [runs, n_id]``, ``ood_effects [runs, sets, n_ood]``
    (``[runs, n_ood]``: one set), unsteered scores of the same shapes (read for standardised sets),
    ``standardise`` per set (broadcast to ``[runs, sets]``)."""
    idx = np.asarray(id_effects, dtype=float)
    ood = np.asarray(ood_effects, dtype=float)
    if ood.ndim == idx.ndim:
        ood = ood[..., None, :]
        ood_unsteered = None if ood_unsteered is None else np.asarray(ood_unsteered, dtype=float)[..., None, :]
    id_u = None if id_unsteered is None else np.asarray(id_unsteered, dtype=float)[..., None, :]
    flag = np.broadcast_to(np.asarray(standardise, dtype=bool), ood.shape[:-1])
    ratio = ood_ratio(ood, idx[..., None, :], ood_unsteered, id_u, standardise=flag)
    mean, se, n_id = mean_and_se(idx, axis=-1)
    with np.errstate(invalid="ignore"):
        gate_low = mean - t_quantile(0.95, n_id - 1) * se
    gate = np.isfinite(gate_low) & (gate_low > 0)
    bound = np.asarray(1 - np.asarray(margin, dtype=float))
    bound_sets = bound[..., None] if bound.ndim else bound
    usable = gate[..., None] & ratio["bounded"]
    per_set = np.where(usable, np.where(ratio["high"] < bound_sets, 1, np.where(ratio["low"] > bound_sets, -1, 0)), 0)
    if per_set.shape[-1] == 0:
        code = np.zeros(per_set.shape[:-1], dtype=int)
    else:
        code = np.where((per_set == 1).all(axis=-1), 1, np.where((per_set == -1).all(axis=-1), -1, 0))
    return {**ratio, "per_set": per_set, "code": code, "gate": gate, "id_mean": mean,
            "id_low": gate_low, "id_high": mean + (mean - gate_low), "id_n": n_id, "bound": bound,
            "standardise": flag}


def _ood_codes(id_effects: Any, ood_effects: Any, id_unsteered: Any = None, ood_unsteered: Any = None,
               margin: Any = OOD_MARGIN, standardise: Any = False) -> np.ndarray:
    return _ood_core(id_effects, ood_effects, id_unsteered, ood_unsteered, margin, standardise)["code"]


def _padded(sets: Any, what: str = "ood_effects") -> np.ndarray | None:
    """Per-set arrays (a list of 1-D arrays of any lengths, a 2-D array, or one 1-D array) as one
    NaN-padded ``[sets, items]`` array."""
    if sets is None:
        return None
    if isinstance(sets, np.ndarray) and sets.dtype != object:
        arr = np.asarray(sets, dtype=float)
        if arr.ndim not in (1, 2):
            raise ValueError(f"{what} must be [sets, items] (a list of 1-D arrays, a 2-D array, or one 1-D array "
                             f"for one set), got an array of shape {arr.shape}")
        return arr[None] if arr.ndim == 1 else arr
    rows = [np.asarray(s, dtype=float) for s in sets]
    if any(r.ndim > 1 for r in rows):
        raise ValueError(f"{what} must be [sets, items]: each set a 1-D array of per-item values, got sets of shapes "
                         f"{[r.shape for r in rows]}")
    rows = [r.ravel() for r in rows]
    if rows and all(r.ndim == 0 or r.size == 1 for r in rows) and not isinstance(sets[0], (list, tuple, np.ndarray)):
        return np.asarray(rows, dtype=float).reshape(1, -1)  # one set given as a flat list of numbers
    width = max((r.size for r in rows), default=0)
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


def _ood(id_effects: Any, ood_effects: Any, id_unsteered: Any = None, ood_unsteered: Any = None, *,
         margin: float | int = OOD_MARGIN, standardise: Any = False, names: Sequence[str] | None = None) -> Decision:
    """``id_effects``: per in-distribution item, the effect at the primary coefficient (intended direction
    positive; NaN left out). ``ood_effects``: the same per item of each out-of-distribution set (a list
    of arrays, or ``[sets, items]`` NaN-padded; one 1-D array is one set). ``id_unsteered`` and
    ``ood_unsteered``: the unsteered scores of the same items (read only for standardised sets).
    ``standardise``: per set (or one bool for all), whether the set is measured differently from the
    ID set (e.g. A/B probabilities against open-ended scores); ``names``: the sets' names."""
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    idx = one_d(id_effects, "id_effects", "per in-distribution item")
    ood = _padded(ood_effects)
    if isinstance(ood_effects, np.ndarray) and ood_effects.ndim == 2 and ood.shape[0] > ood.shape[1]:
        raise ValueError(f"ood_effects looks transposed: [sets, items] is expected, and shape {ood.shape} would be "
                         f"{ood.shape[0]} sets of {ood.shape[1]} items; pass ood_effects.T (and ood_unsteered.T)")
    sets = ood.shape[0]
    flag = np.broadcast_to(np.asarray(standardise, dtype=bool), (sets,))
    u_ood = _padded(ood_unsteered, "ood_unsteered")
    u_id = None if id_unsteered is None else one_d(id_unsteered, "id_unsteered", "per in-distribution item")
    if flag.any():
        if u_ood is None or u_id is None:
            raise ValueError("standardised sets need id_unsteered and ood_unsteered (the unsteered score per item)")
        if u_ood.shape != ood.shape or u_id.shape != idx.shape:
            raise ValueError(f"unsteered scores must match the effects item for item: ood {u_ood.shape} vs "
                             f"{ood.shape}, id {u_id.shape} vs {idx.shape}")
    names = list(names) if names is not None else [f"set {k + 1}" for k in range(sets)]
    if len(names) != sets:
        raise ValueError(f"names has {len(names)} entries for {sets} sets")
    out = _ood_core(idx[None], ood[None], None if u_id is None else u_id[None], None if u_ood is None else u_ood[None],
                    margin, flag[None])
    bound = 1 - margin
    gate = bool(out["gate"][0])
    id_iv = {"mean": json_number(out["id_mean"][0]), "low": json_number(out["id_low"][0]), "high": json_number(out["id_high"][0]),
             "n": int(out["id_n"][0])}
    per_set, parts = {}, []
    for k, name in enumerate(names):
        code = int(out["per_set"][0, k])
        low, high, ratio = (float(out[key][0, k]) for key in ("low", "high", "ratio"))
        interval = f"[{low:.2f}, {high:.2f}]"
        n_k = int(np.isfinite(ood[k]).sum())
        if out["thin_scale"][0, k]:
            why = (f"the standardised scale rests on {int(out['informative'][0, k])} unsteered scores that differ from "
                   f"their median (fewer than {OOD_MIN_INFORMATIVE}; 0 means the scale is 0): no reliable common "
                   f"scale, so no interval")
        elif n_k < 2:
            why = f"this set has {n_k} item(s) with an effect: no interval"
        elif not out["bounded"][0, k]:
            why = (f"the ratio's interval is unbounded: the ID effect is not significantly non-zero with t on "
                   f"{int(out['n'][0, k]) - 1} d.o.f. (min(n) − 1; this set has {n_k} items)")
        elif high < bound:
            why = f"OOD/ID ratio {ratio:.2f} {interval} lies below {bound:.2f}"
        elif low > bound:
            why = f"OOD/ID ratio {ratio:.2f} {interval} lies above {bound:.2f}: the effect carries over"
        else:
            why = f"OOD/ID ratio {ratio:.2f} {interval} straddles {bound:.2f}"
        mde_k = float(out["mde"][0, k])
        per_set[name] = {"verdict": VERDICTS[code], "reason": why, "ratio": json_number(ratio), "low": json_number(low),
                         "high": json_number(high), "n": int(out["n"][0, k]), "mde": json_number(mde_k),
                         "scale": f"standardised effects ({OOD_SCALE})" if flag[k] else "raw effects"}
        parts.append(f"{name}: {why}" + (f" (this run could detect a ratio {mde_k:.2f} away from its estimate)"
                                          if math.isfinite(mde_k) else ""))
    code = int(out["code"][0])
    verdict = VERDICTS[code]
    id_text = (f"ID effect {id_iv['mean']:+.3f} [{id_iv['low']:+.3f}, {id_iv['high']:+.3f}] (n = {id_iv['n']})"
               if id_iv["low"] is not None else f"ID effect over {id_iv['n']} items: no interval")
    if not gate:
        reason = f"{id_text} is not significantly in the intended direction: no reliable ID effect to lose; " + "; ".join(parts)
    else:
        reason = f"{id_text}; " + "; ".join(parts)
        if len({v["verdict"] for v in per_set.values()}) > 1:
            reason += " (the sets disagree)"
    numbers = {"verdict": verdict, "per_set": per_set, "in_distribution_effect": id_iv, "id_significant": gate,
               "margin": margin, "bound": bound,
               "mde": json_number(np.nanmax(out["mde"][0])) if np.isfinite(out["mde"][0]).any() else None}
    return Decision(verdict, reason, numbers)


OOD = register(Rule(
    id="robustness.ood", claim=OOD_CLAIM, text=OOD_TEXT,
    inputs={"id_effects": "[items] per in-distribution item, the effect at the primary coefficient (steered - "
                          "unsteered score, intended direction positive)",
            "ood_effects": "[sets, items] the same per item of each out-of-distribution set (NaN-padded; a list of "
                           "arrays of any lengths, or one 1-D array for one set)",
            "id_unsteered": "[items] the unsteered score per ID item (read for standardised sets only)",
            "ood_unsteered": "[sets, items] the unsteered score per OOD item (read for standardised sets only)"},
    decide_one=_ood, codes=_ood_codes,
    profiles={"quick": {"n_id": 30, "n_ood": (15,)}, "full": {"n_id": 30, "n_ood": (15,)}},
    dgps=ood_dgps(OOD_MARGIN), detectable=lambda numbers: numbers["mde"],
    notes="Both profiles use every built-in prompt (30 in distribution, 15 out of it: the quick profile caps neither), "
          "so their rates differ only by Monte Carlo error. The ID effect's significance gate makes a vector that "
          "does nothing, or backfires, inconclusive: a ratio to an effect that is not there says nothing about "
          "losing reliability. Beyond the design (red team, 4000 quick runs each, ratio exactly 0.75): strongly skewed "
          "per-item OOD effects push Fieller's t interval off by a point or three: false 'reproduced' 5.7 % (centred "
          "exponential, skewness 2) and 8.0 % (lognormal, skewness 6), false 'not reproduced' 5.7 % (left-skewed); "
          "no skew-corrected Fieller interval is implemented yet. Standardised sets whose scale rests on fewer than 8 "
          "unsteered scores differing from their median are inconclusive: at 80 % exact-0 VADER texts false "
          "'reproduced' was 9.5 % without the guard, 4.0 % with a minimum of 5 and 0.4 % with 8; at 60 % zeros "
          "6.4 % with 5 and 3.6 % with 8 (3000 runs, seed 11). The sets are assumed independent (different "
          "items); correlated ID and OOD items are not simulated. Infinite values are refused; 2-D input must be "
          "[sets, items] (more sets than items is refused as transposed)."))
