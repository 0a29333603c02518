"""The verdict rules of the robustness study (arXiv 2505.03189's five findings).

Each rule is registered in :data:`~interp_steer.studies.rules.base.REGISTRY` under
``robustness.<finding>``; the study's ``claims`` module calls :meth:`Rule.decide` and wraps the
decision in its finding. ``interp-steer rules robustness.ood`` (etc.) prints a rule's card: its error
rates under every simulated world below at the shipped quick and full sizes.

- ``robustness.ood``: Fieller's interval of OOD effect / ID effect per out-of-distribution set
  (standardised effects when the sets are measured differently), gated on a significant ID effect;
- ``robustness.sample_size``: the bootstrap interval of n₉₀, where a saturating curve reaches 90 %
  of its plateau, against the paper's "about 80" (limit 128);
- ``robustness.adversarial``: per seed prompt, did the optimised search reverse the steering, and did
  random edits of the same budget (the control)? McNemar's exact test for "more than random", an
  exact bound for "not much more than random";
- ``robustness.perplexity``: the interval of the mean per-text log perplexity ratio against
  ``log(1 + margin)``;
- ``robustness.model_size``: the same threshold rule on per-text differences of log ratios, smallest
  model minus largest.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import optimize as _opt
from scipy import stats as _sps

from interp_steer.stats import mean_and_se, skew_corrected_interval, t_quantile
from interp_steer.studies.rules.base import DGP, Decision, Rule, noise, register, vader_compound
from interp_steer.studies.rules.paired import mde

VERDICT_OF = {1: "reproduced", -1: "not reproduced", 0: "inconclusive"}


def _num(x: Any) -> float | None:
    """A JSON number: ``None`` for NaN and infinities."""
    x = float(x)
    return x if math.isfinite(x) else None


# ------------------------------------------------------------------------------ finding 1: OOD

OOD_MARGIN = 0.25
OOD_CLAIM = ("Steering is reliable only in-distribution: out of distribution it keeps less than 1 - margin (75 %) of "
             "its in-distribution effect")
OOD_TEXT = ("per out-of-distribution set, Fieller's 95 % interval of r = mean OOD effect / mean ID effect at the primary "
            "coefficient (independent item sets, t on min(n) - 1 d.o.f.; when a set is measured differently from the "
            "ID set, each set's effects are divided by the mean absolute deviation of its unsteered scores from their "
            "median, with that scale's own uncertainty in the standard errors; a set whose scale rests on fewer than 8 unsteered "
            "scores differing from their median, or is 0, is inconclusive); reproduced: the ID effect is "
            "significantly in the intended direction (its 95 % t interval above 0) and every set's interval lies "
            "below 1 - margin; not reproduced: the ID effect is significant and every set's interval lies above "
            "1 - margin; inconclusive otherwise (an unbounded interval, a non-significant ID effect, sets that "
            "disagree). Each arm is a one-sided 2.5 % test at the boundary ratio 1 - margin")
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


def _one_d(values: Any, name: str, per: str, hint: str = "") -> np.ndarray:
    """``values`` as a 1-D float array, refusing other shapes and ±inf with a message naming ``name``."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, one value {per}; got shape {arr.shape} (a 2-D array is not "
                         f"flattened: pass the column of the primary coefficient)")
    if np.isinf(arr).any():
        raise ValueError(f"{name} holds infinite values: pass finite numbers (NaN for a missing value, which is left "
                         f"out){hint}")
    return arr


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
    idx = _one_d(id_effects, "id_effects", "per in-distribution item")
    ood = _padded(ood_effects)
    if isinstance(ood_effects, np.ndarray) and ood_effects.ndim == 2 and ood.shape[0] > ood.shape[1]:
        raise ValueError(f"ood_effects looks transposed: [sets, items] is expected, and shape {ood.shape} would be "
                         f"{ood.shape[0]} sets of {ood.shape[1]} items; pass ood_effects.T (and ood_unsteered.T)")
    sets = ood.shape[0]
    flag = np.broadcast_to(np.asarray(standardise, dtype=bool), (sets,))
    u_ood = _padded(ood_unsteered, "ood_unsteered")
    u_id = None if id_unsteered is None else _one_d(id_unsteered, "id_unsteered", "per in-distribution item")
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
    id_iv = {"mean": _num(out["id_mean"][0]), "low": _num(out["id_low"][0]), "high": _num(out["id_high"][0]),
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
                   f"{int(out['n'][0, k]) - 1} d.o.f. (min(n) - 1; this set has {n_k} items)")
        elif high < bound:
            why = f"OOD/ID ratio {ratio:.2f} {interval} lies below {bound:.2f}"
        elif low > bound:
            why = f"OOD/ID ratio {ratio:.2f} {interval} lies above {bound:.2f}: the effect carries over"
        else:
            why = f"OOD/ID ratio {ratio:.2f} {interval} straddles {bound:.2f}"
        mde_k = float(out["mde"][0, k])
        per_set[name] = {"verdict": VERDICT_OF[code], "reason": why, "ratio": _num(ratio), "low": _num(low),
                         "high": _num(high), "n": int(out["n"][0, k]), "mde": _num(mde_k),
                         "scale": f"standardised effects ({OOD_SCALE})" if flag[k] else "raw effects"}
        parts.append(f"{name}: {why}" + (f" (this run could detect a ratio {mde_k:.2f} away from its estimate)"
                                          if math.isfinite(mde_k) else ""))
    code = int(out["code"][0])
    verdict = VERDICT_OF[code]
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
               "mde": _num(np.nanmax(out["mde"][0])) if np.isfinite(out["mde"][0]).any() else None}
    return Decision(verdict, reason, numbers)


# The simulated worlds of the OOD rule. A "set" draws per-item (effect, unsteered score) pairs at a
# steering shift ``delta`` on its own scale; its truth is the expected effect (standardised: over the
# population mean absolute deviation of its unsteered scores from their median), computed once by
# Monte Carlo with common random numbers, so that the OOD shift can be solved for an exact true ratio.


class _Set:
    """One prompt set's scores: ``kind`` "normal"/"t3" (effects ``delta + sd · noise``, unsteered
    ``sd_u · noise``), "vader" (raw VADER valence ``mu + tau z`` unsteered and ``mu + delta + tau (rho z +
    sqrt(1 - rho²) w)`` steered, each 0 with probability ``p0`` (no sentiment word), through VADER's
    ``s / √(s² + 15)`` rounded to 4 decimals) or "prob" (A/B: ``P = sigmoid(l)`` unsteered and
    ``sigmoid(l + delta + eta)`` steered, ``l ~ N(mu, tau)``, ``eta ~ N(0, 0.7)``)."""

    def __init__(self, kind: str, mu: float = 0.0, sd: float = 1.0, tau: float = 2.0, p0: float = 0.25) -> None:
        self.kind, self.mu, self.sd, self.tau, self.p0 = kind, mu, sd, tau, p0

    def draw(self, rng: np.random.Generator, size: Any, delta: float) -> tuple[np.ndarray, np.ndarray]:
        if self.kind in ("normal", "t3"):
            return delta + self.sd * noise(rng, self.kind, size), self.sd * noise(rng, self.kind, size)
        z, w = rng.standard_normal(size), rng.standard_normal(size)
        if self.kind == "vader":
            rho, p0 = 0.5, self.p0
            raw_u = np.where(rng.random(size) < p0, 0.0, self.mu + self.tau * z)
            raw_s = np.where(rng.random(size) < p0, 0.0,
                             self.mu + delta + self.tau * (rho * z + math.sqrt(1 - rho * rho) * w))
            unsteered = vader_compound(raw_u)
            return vader_compound(raw_s) - unsteered, unsteered
        if self.kind == "prob":
            logit = self.mu + self.tau * z
            unsteered = 1 / (1 + np.exp(-logit))
            return 1 / (1 + np.exp(-(logit + delta + 0.7 * w))) - unsteered, unsteered
        raise ValueError(self.kind)

    def truth(self, delta: float, standardised: bool) -> float:
        """The expected effect at ``delta`` (standardised: over the unsteered scores' population scale)."""
        effect, unsteered = self.draw(np.random.default_rng(20240529), 400_000, delta)
        value = float(effect.mean())
        if standardised:
            value /= float(np.mean(np.abs(unsteered - np.median(unsteered))))
        return value


@functools.cache
def _ood_shift(world: str, ratio: float) -> float:
    """The OOD set's shift giving a true OOD/ID ratio of exactly ``ratio`` in ``world``."""
    spec = _OOD_WORLDS[world]
    target = ratio * spec["id"].truth(spec["id_delta"], spec["standardise"])
    ood = spec["ood"]
    if ood.kind in ("normal", "t3") and not spec["standardise"]:
        return target
    return float(_opt.brentq(lambda d: ood.truth(d, spec["standardise"]) - target, -20.0, 20.0, xtol=1e-6))


_OOD_WORLDS: dict[str, dict[str, Any]] = {
    # ID effect of 1 SD of its per-item effects, OOD sets as noisy.
    "normal": {"id": _Set("normal"), "id_delta": 1.0, "ood": _Set("normal"), "standardise": False},
    # The OOD set twice as noisy as the ID set (the quick run measured 1.5x).
    "unequal": {"id": _Set("normal"), "id_delta": 1.0, "ood": _Set("normal", sd=2.0), "standardise": False},
    "t3": {"id": _Set("t3"), "id_delta": 1.0, "ood": _Set("t3"), "standardise": False},
    # VADER compound: ID prompts near neutral (raw 0.5), OOD ones already positive (raw 2.5: reviews),
    # where the compound saturates; a third of a raw unit per shift step.
    "vader": {"id": _Set("vader", mu=0.5), "id_delta": 1.5, "ood": _Set("vader", mu=2.5), "standardise": False},
    # A/B questions on both sides: ID around P = 0.5, OOD near the ceiling (P about 0.8).
    "probabilities": {"id": _Set("prob", mu=0.0, tau=1.5), "id_delta": 1.5, "ood": _Set("prob", mu=1.5, tau=1.5),
                      "standardise": False},
    # A/B ID questions against open-ended OOD prompts scored by VADER: standardised, with a large ID
    # effect, where the scales' own uncertainty matters most.
    "standardised": {"id": _Set("prob", mu=0.0, tau=1.0), "id_delta": 3.0, "ood": _Set("vader", mu=0.5),
                     "standardise": True},
    "standardised, t3": {"id": _Set("t3", sd=0.3), "id_delta": 1.8, "ood": _Set("t3", sd=0.6), "standardise": True},
    # As "standardised", with most OOD texts scoring exactly 0 (no sentiment word): the scale rests on
    # few items (red team: false "reproduced" 5.6 % at 60 % zeros, 9.6 % at 80 % before the guard).
    "standardised, VADER 60 % zeros": {"id": _Set("prob", mu=0.0, tau=1.0), "id_delta": 3.0,
                                       "ood": _Set("vader", mu=0.5, p0=0.6), "standardise": True},
    "standardised, VADER 80 % zeros": {"id": _Set("prob", mu=0.0, tau=1.0), "id_delta": 3.0,
                                       "ood": _Set("vader", mu=0.5, p0=0.8), "standardise": True},
}


def _ood_world(world: str, ratio: float, *, sets: int = 1, id_delta: float | None = None,
               ood_sd: float | None = None) -> Callable[..., dict[str, Any]]:
    """Draw ``runs`` runs of ``world`` with a true OOD/ID ratio of ``ratio`` on every one of ``sets``
    OOD sets, at the profile's sizes (``n_id`` ID items, ``n_ood`` items per set)."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        spec = dict(_OOD_WORLDS[world])
        if id_delta is not None:
            spec["id_delta"] = id_delta
        if ood_sd is not None:
            spec["ood"] = _Set(spec["ood"].kind, spec["ood"].mu, ood_sd, spec["ood"].tau)
        shift = (_ood_shift(world, ratio) if id_delta is None and ood_sd is None
                 else ratio * spec["id_delta"])  # the overrides are for normal worlds only
        n_id, n_ood = int(profile["n_id"]), [int(n) for n in profile["n_ood"]] * sets
        id_e, id_u = spec["id"].draw(rng, (runs, n_id), spec["id_delta"])
        ood_e = np.full((runs, len(n_ood), max(n_ood)), np.nan)
        ood_u = np.full_like(ood_e, np.nan)
        for k, n in enumerate(n_ood):
            ood_e[:, k, :n], ood_u[:, k, :n] = spec["ood"].draw(rng, (runs, n), shift)
        return {"id_effects": id_e, "ood_effects": ood_e, "id_unsteered": id_u, "ood_unsteered": ood_u,
                "standardise": spec["standardise"]}

    return draw


def _ood_dgps() -> dict[str, DGP]:
    bound = 1 - OOD_MARGIN
    described = {
        "normal": "normal per-item effects, ID effect 1 SD, equal SDs",
        "unequal": "normal, the OOD set's per-item SD twice the ID set's",
        "t3": "t (3 d.o.f.) per-item effects and unsteered scores",
        "vader": "VADER compound (s/√(s²+15), 4 decimals, a quarter of texts with no sentiment word): ID prompts "
                 "near neutral, OOD ones already positive where the compound saturates",
        "probabilities": "A/B P(matching): ID questions around 0.5, OOD ones near the ceiling",
        "standardised": "A/B probabilities in distribution, VADER out of it: standardised effects, a large ID effect",
        "standardised, t3": "standardised t (3 d.o.f.) effects and unsteered scores, a large ID effect",
        "standardised, VADER 60 % zeros": "as 'standardised', with 60 % of OOD texts scoring exactly 0 (no sentiment "
                                          "word), so the scale rests on a few items",
        "standardised, VADER 80 % zeros": "as 'standardised', with 80 % of OOD texts scoring exactly 0: the scale "
                                          "usually rests on fewer than 8 items (then inconclusive)",
    }
    dgps = {}
    for truth in ("null", "effect"):
        for world, text in described.items():
            name = f"{truth}: ratio exactly {bound:g}, {world}"
            error = "reproduced" if truth == "null" else "not reproduced"
            dgps[name] = DGP(name, truth, f"{text}; the boundary ratio, least favourable for a false '{error}'",
                             _ood_world(world, bound))
        name = f"{truth}: ratio exactly {bound:g}, two OOD sets"
        dgps[name] = DGP(name, truth, "normal, two OOD sets of 15 items, both at the boundary ratio",
                         _ood_world("normal", bound, sets=2))
    dgps["null: ratio 1 (carries over fully)"] = DGP(
        "null: ratio 1 (carries over fully)", "null", "normal, the OOD effect equals the ID effect",
        _ood_world("normal", 1.0))
    dgps["null: no effect anywhere"] = DGP(
        "null: no effect anywhere", "null", "normal, ID and OOD effects both 0 (no reliability to lose)",
        _ood_world("normal", 0.0, id_delta=0.0))
    dgps["null: steering backfires in distribution"] = DGP(
        "null: steering backfires in distribution", "null",
        "normal, ID effect -1 SD (against the intended direction), OOD effect +0.5 SD: a negative ratio, but no "
        "reliable ID effect", _ood_world("normal", -0.5, id_delta=-1.0))
    dgps["effect: OOD effect 0, ID effect 0.7 SD"] = DGP(
        "effect: OOD effect 0, ID effect 0.7 SD", "effect",
        "the paper's finding (steering nearly fails out of distribution) at the default run's sizes: ID effect 0.7 SD "
        "of its per-item effects (the quick run measured +0.23 with SD 0.33), OOD effect 0 with 1.5x the ID SD",
        _ood_world("normal", 0.0, id_delta=0.7, ood_sd=1.5), paper=True)
    dgps["effect: OOD effect 0, ID effect 1.5 SD"] = DGP(
        "effect: OOD effect 0, ID effect 1.5 SD", "effect", "as above with a stronger ID effect (1.5 SD)",
        _ood_world("normal", 0.0, id_delta=1.5, ood_sd=1.5))
    return dgps


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
    dgps=_ood_dgps(), detectable=lambda numbers: numbers["mde"],
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


# ---------------------------------------------------------------------- finding 2: sample size

PLATEAU_LIMIT = 128
SAMPLE_SIZE_CLAIM = ("Returns diminish at about 80 examples: the steering effect reaches 90 % of its plateau by "
                     "plateau_limit (128) examples per class")
SAMPLE_SIZE_TEXT = ("five saturating curves, three concave (hyperbolic, exponential, sqrt-hyperbolic) and two S-shaped "
                    "(Hill n^h / (n^h + K^h) with h = 2 and 3, for readouts that start convex), each with two parameters "
                    "and fitted by least squares to the mean effect per training-set size n, give n90, where the curve "
                    "reaches 90 % of its plateau; n90's interval is the union of each form's own 95 % percentile "
                    "bootstrap interval (items and subsets resampled; the choice of form decides any extrapolation past "
                    "the data, so the interval must not lean on it), an S-shaped form counting only when it fits best "
                    "on the data or in at least 5 % of the bootstrap replicates; reproduced: the plateau's interval (best-fitting form) lies above 0 and "
                    "n90's interval lies at or below min(plateau_limit, the largest n tested); not reproduced: n90's "
                    "interval lies above plateau_limit (no plateau counts as infinite); inconclusive otherwise, and "
                    "when more than 2.5 % of the bootstrap fits failed")


def _sample_size_fit(ns: Any, effects: Any, plateau_limit: float, n_boot: int, seed: int) -> tuple[int, dict[str, Any]]:
    """Fit, judge one run: ``(code, numbers)``."""
    from interp_steer.studies.robustness.saturation import fit_saturation

    sizes = [int(n) for n in np.asarray(ns).ravel()]
    fit = fit_saturation(sizes, np.asarray(effects, dtype=float), n_boot=int(n_boot), seed=int(seed))
    inf = math.inf
    est = fit.n_at.get(0.9, math.nan)
    low, high = fit.n_at_union(0.9)
    largest = max(sizes)
    numbers = {"fit": fit.to_dict(), "n90": {"estimate": _num(est), "low": _num(low), "high": _num(high),
                                             "beyond_range": bool(fit.beyond_range.get(0.9, False)),
                                             "interval": "union of the forms' own bootstrap intervals",
                                             "chosen_form_interval": [_num(fit.n_at_low.get(0.9, math.nan)),
                                                                      _num(fit.n_at_high.get(0.9, math.nan))]},
               "plateau": {"estimate": _num(fit.e_max), "low": _num(fit.e_max_low), "high": _num(fit.e_max_high)},
               "plateau_limit": plateau_limit, "largest_n": largest, "form": fit.form or None,
               "bootstrap_failed": fit.n_boot_failed, "n_boot": fit.n_boot, "note": fit.note}
    if not fit.form:
        return 0, {**numbers, "why": f"no saturating curve could be fitted ({fit.note or 'no estimate'})"}
    if math.isnan(low) or math.isnan(high):
        return 0, {**numbers, "why": "no bootstrap interval of n90 (n_boot = 0, or no replicate could be fitted)"}
    # A fitted form with an infinite estimate or bound means "no plateau": unbounded.
    est, low, high = (inf if (x is None or (isinstance(x, float) and math.isnan(x))) else x for x in (est, low, high))
    interval = (f"n90 = {est:.0f} [{low:.0f}, {high:.0f}] examples per class (best form {fit.form}; the interval is the "
                f"union over forms; largest n tested {largest})")
    numbers["interval"] = interval
    if fit.n_boot_failed > 0.025 * fit.n_boot:
        return 0, {**numbers, "why": f"{interval}, but {fit.n_boot_failed} of {fit.n_boot} bootstrap fits failed"}
    if low > plateau_limit:
        return -1, {**numbers, "why": f"{interval}: the effect still grows beyond {plateau_limit:g} examples"}
    if not fit.e_max_low > 0:
        return 0, {**numbers, "why": f"{interval}, but the plateau's interval reaches 0: no effect to saturate"}
    if high <= min(plateau_limit, largest):
        return 1, {**numbers, "why": f"{interval}: 90 % of the plateau within the data and by {plateau_limit:g} examples "
                                     "(paper: about 80-100)"}
    if high <= plateau_limit:
        return 0, {**numbers, "why": f"{interval}: n90 may lie beyond the largest n tested, where the curve is "
                                     "extrapolated"}
    return 0, {**numbers, "why": f"{interval}: the interval straddles {plateau_limit:g}"}


def _sample_size_codes(ns: Any, effects: Any, plateau_limit: Any = PLATEAU_LIMIT, n_boot: Any = 1000,
                       seed: Any = 0) -> np.ndarray:
    """One fit per run (the bootstrap is the cost): ``ns [runs, sizes]``, ``effects [runs, sizes, subsets, items]``."""
    effects = np.asarray(effects, dtype=float)
    runs = effects.shape[0]
    ns = np.broadcast_to(np.asarray(ns), (runs, effects.shape[1]))
    limit, boot, seeds = (np.broadcast_to(np.asarray(v), (runs,)) for v in (plateau_limit, n_boot, seed))
    return np.array([_sample_size_fit(ns[i], effects[i], float(limit[i]), int(boot[i]), int(seeds[i]))[0]
                     for i in range(runs)])


def _sample_size(ns: Any, effects: Any, *, plateau_limit: float | int = PLATEAU_LIMIT, n_boot: int = 1000,
                 seed: int = 0) -> Decision:
    """``ns``: the training-set sizes (examples per class, increasing; the last may be the whole training
    split); ``effects [sizes, subsets, items]``: per held-out item, the effect at the primary coefficient of
    the vector from each random subset of each size (intended direction positive; NaN left out).
    ``n_boot``: bootstrap replicates (the study passes its config's), ``seed`` the bootstrap's."""
    if plateau_limit <= 0:
        raise ValueError(f"plateau_limit must be positive, got {plateau_limit}")
    code, numbers = _sample_size_fit(ns, effects, float(plateau_limit), int(n_boot), int(seed))
    verdict = VERDICT_OF[code]
    why = numbers.pop("why")
    return Decision(verdict, why, {"verdict": verdict, **numbers})


def _saturating(shape: str, n90: float, e_max: float) -> Callable[[np.ndarray], np.ndarray]:
    """The true mean effect curve ``E(n)`` reaching 90 % of ``e_max`` at ``n90`` (``linear``: no plateau,
    ``e_max`` at n = 90 and still rising; ``none``: no effect)."""
    if shape == "sqrt_hyperbolic":
        k = n90 * (1 - 0.81) / 0.81
        return lambda n: e_max * np.sqrt(n / (n + k))
    if shape == "hyperbolic":
        k = n90 / 9
        return lambda n: e_max * n / (n + k)
    if shape == "exponential":
        k = n90 / math.log(10)
        return lambda n: e_max * -np.expm1(-n / k)
    if shape in ("hill2", "hill3"):
        h = 2.0 if shape == "hill2" else 3.0
        k = n90 / 9.0 ** (1.0 / h)
        return lambda n: e_max * n**h / (n**h + k**h)
    if shape == "linear":
        return lambda n: e_max * n / 90.0
    if shape == "none":
        return lambda n: 0.0 * n
    raise ValueError(shape)


def _sample_size_world(shape: str, n90: float = 80.0, kind: str = "normal", e_max: float = 0.3):
    """Effects ``[runs, sizes, subsets, items]`` as the study measures them: each item's
    responsiveness ``r_j ~ U(0.5, 1.5)`` times the subset vector's mean effect ``E(n) + subset noise`` (SD
    ``0.3 · e_max · √(4 / n)``: small subsets give scattered directions), plus the steered completion's
    score noise (SD 0.3, fresh per cell) minus the unsteered one's (SD 0.2, shared by every cell of the
    item, as the study's effects share one unsteered completion). The last size is the whole training
    split: one vector, so every subset is the same. Noise ``kind``: normal or t3."""
    curve = _saturating(shape, n90, e_max)

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        ns = np.asarray(profile["ns"], dtype=float)
        subsets, items = int(profile["subsets"]), int(profile["items"])
        sizes = ns.size
        r = rng.uniform(0.5, 1.5, (runs, 1, 1, items))
        cell = curve(ns)[None, :, None] + 0.3 * e_max * np.sqrt(4 / ns)[None, :, None] * noise(rng, kind, (runs, sizes, subsets))
        steered = 0.3 * noise(rng, kind, (runs, sizes, subsets, items))
        unsteered = 0.2 * noise(rng, kind, (runs, 1, 1, items))
        effects = r * cell[..., None] + steered - unsteered
        effects[:, -1] = effects[:, -1, :1]  # the whole split: one vector, one greedy completion per item
        return {"ns": np.broadcast_to(ns.astype(int), (runs, sizes)).copy(), "effects": effects,
                "n_boot": int(profile["n_boot"])}

    return draw


_SAMPLE_SIZE_DGPS = {
    "null: plateau at n90 = 400": DGP(
        "null: plateau at n90 = 400", "null",
        "the effect of a noisy mean difference (√(n/(n+K))) reaching 90 % of its plateau at 400 examples, well after "
        "the limit (at n = 90 it is 70 % of the way); plateau 0.3, per-item noise SD 0.3 steered and 0.2 unsteered "
        "(about the quick run's VADER numbers)", _sample_size_world("sqrt_hyperbolic", 400.0)),
    "null: plateau at n90 = 400, t3": DGP(
        "null: plateau at n90 = 400, t3", "null", "as above with t (3 d.o.f.) noise everywhere",
        _sample_size_world("sqrt_hyperbolic", 400.0, "t3")),
    "null: plateau at the limit (n90 = 128), strong effect": DGP(
        "null: plateau at the limit (n90 = 128), strong effect", "null",
        "sqrt-hyperbolic reaching 90 % at exactly 128 examples, plateau 1.0 (3 SD of the per-item noise): the least "
        "favourable null, where the curve's form decides the extrapolation past n = 90 (the chosen form's interval "
        "alone read 'reproduced' in 7-11 % of runs here)", _sample_size_world("sqrt_hyperbolic", 128.0, e_max=1.0)),
    "null: no plateau (linear growth)": DGP(
        "null: no plateau (linear growth)", "null", "the effect grows in proportion to n up to the largest size",
        _sample_size_world("linear")),
    "null: no effect": DGP(
        "null: no effect", "null", "the vector does nothing at any size (noise only)", _sample_size_world("none")),
    "effect: plateau by 80 examples": DGP(
        "effect: plateau by 80 examples", "effect",
        "the paper's finding: 90 % of the plateau at 80 examples per class, √(n/(n+K)), plateau 0.3 (noise as in the "
        "nulls)", _sample_size_world("sqrt_hyperbolic", 80.0), paper=True),
    "effect: plateau by 80 examples, t3": DGP(
        "effect: plateau by 80 examples, t3", "effect", "as above with t (3 d.o.f.) noise",
        _sample_size_world("sqrt_hyperbolic", 80.0, "t3")),
    "effect: plateau at the limit (n90 = 128), exponential, strong effect": DGP(
        "effect: plateau at the limit (n90 = 128), exponential, strong effect", "effect",
        "1 - exp(-n/K) reaching 90 % at exactly 128 examples, plateau 1.0: least favourable for a false 'not "
        "reproduced' (the chosen form's interval alone read 'not reproduced' in 12-16 % of runs here)",
        _sample_size_world("exponential", 128.0, e_max=1.0)),
    **{f"effect: S-shaped (Hill h = {h}), n90 = {n90}, strong effect": DGP(
        f"effect: S-shaped (Hill h = {h}), n90 = {n90}, strong effect", "effect",
        f"n^{h} / (n^{h} + K^{h}) reaching 90 % at {n90} examples, plateau 1.0: a readout that starts convex (a "
        f"threshold, such as an A/B logit or VADER needing a sentiment word); with only the concave forms the rule "
        f"read 'not reproduced' in {rate} of quick runs here (red team)",
        _sample_size_world(f"hill{h}", float(n90), e_max=1.0))
       for h, n90, rate in ((2, 128, "28 %"), (2, 100, "12 %"), (3, 128, "73 %"), (3, 100, "72 %"))},
    "effect: early plateau (n90 = 20), strong effect": DGP(
        "effect: early plateau (n90 = 20), strong effect", "effect",
        "hyperbolic, n90 = 20, plateau 1.0", _sample_size_world("hyperbolic", 20.0, e_max=1.0)),
}

_SAMPLE_SIZES = (4, 8, 16, 32, 64, 90)
SAMPLE_SIZE = register(Rule(
    id="robustness.sample_size", claim=SAMPLE_SIZE_CLAIM, text=SAMPLE_SIZE_TEXT,
    inputs={"ns": "[sizes] training examples per class of each size (increasing; the last is the whole training split)",
            "effects": "[sizes, subsets, items] per held-out item, the effect at the primary coefficient of the vector "
                       "built from each random subset of each size (intended direction positive)"},
    decide_one=_sample_size, codes=_sample_size_codes,
    profiles={"quick": {"ns": _SAMPLE_SIZES, "subsets": 3, "items": 12, "n_boot": 500},
              "full": {"ns": _SAMPLE_SIZES, "subsets": 5, "items": 30, "n_boot": 1000}},
    dgps=_SAMPLE_SIZE_DGPS, cost=5.0,
    detectable=lambda numbers: (numbers["n90"]["high"] - numbers["n90"]["low"]
                                if numbers["n90"]["high"] is not None and numbers["n90"]["low"] is not None else None),
    notes="The built-in personas hold 120 texts each, a quarter held out: the largest size is the whole training split "
          "of 90 per class (128 is skipped). Each run refits a bootstrap of n_boot replicates (the profile's: 500 "
          "quick, 1000 full), about 0.1 s quick and 0.15 s full on 2 cores: the card simulates 200 runs per world "
          "(cost 5; the whole card takes about 8 minutes); the tests may pass a smaller n_boot through the profile. "
          "The detectable 'effect' is the width of n90's interval. S-shaped curves: with only the three concave "
          "forms, Hill truths reaching 90 % at 128/100 examples read 'not reproduced' in 28 %/15 % (h = 2) and "
          "75 %/75 % (h = 3) of 200 quick runs; with the Hill forms 0-4 %. Limits: the rule tests only 'n90 <= "
          "128', so a curve flat from the smallest n reads 'reproduced' for the paper's 'returns diminish at about "
          "80' (n90 = 0 [0, 37] does not say 80); at the paper-like plateau of 0.3 both arms have little power "
          "(quick: 'reproduced' under 2 % at plateau 0.2-0.3), so most runs are inconclusive; a truth outside the "
          "five forms (e.g. a Hill exponent above 3, or two phases) can still mislead the extrapolation (two-phase "
          "nulls with n90 200 and 400: false 'reproduced' 3.5-4 % in the red team's 200 runs)."))


# ---------------------------------------------------------------------- finding 3: adversarial

ADVERSARIAL_MARGIN = 0.25
ADVERSARIAL_CLAIM = ("Adversarial inputs can reverse the steered behaviour: an optimised search finds inputs that reverse "
                     "the steering on more seed prompts than random edits of the same budget do")
ADVERSARIAL_TEXT = ("per seed prompt (seeds already reversed unedited left out), S = 1 when the optimised search found an "
                    "input whose readout effect lies below the reversal threshold, C = 1 when random edits of the same "
                    "budget (the search's own edit operators, drawn without selection, scored by the same readout) did; "
                    "b = seeds with S = 1 and C = 0, c = seeds with S = 0 and C = 1, n = seeds. Reproduced: McNemar's "
                    "exact one-sided test of b against c at 2.5 % (the search reverses the steering on significantly "
                    "more seeds than random editing; at least 6 seeds with b and none with c); not reproduced: the "
                    "exact (Clopper-Pearson) one-sided 97.5 % upper bound of b / n lies below margin (the search's "
                    "excess over random editing, P(S=1, C=0) - P(S=0, C=1) <= P(S=1, C=0), is under 25 % of seeds: "
                    "reversals are rare or no likelier than by chance; with no reversal at all this needs 13 seeds); "
                    "inconclusive otherwise. Each arm is a one-sided 2.5 % test at its boundary (an excess of 0, of "
                    "margin)")
_MCNEMAR_LEVEL = 0.025


def _adversarial_core(search: Any, control: Any, margin: Any = ADVERSARIAL_MARGIN) -> dict[str, np.ndarray]:
    s_raw, c_raw = np.broadcast_arrays(np.asarray(search, dtype=float), np.asarray(control, dtype=float))
    valid = np.isfinite(s_raw) & np.isfinite(c_raw)
    s, c = valid & (s_raw > 0.5), valid & (c_raw > 0.5)
    n = valid.sum(axis=-1)
    only_search, only_control = (s & ~c).sum(axis=-1), (~s & c).sum(axis=-1)
    both = (s & c).sum(axis=-1)
    discordant = only_search + only_control
    p_value = np.where(discordant > 0, _sps.binom.sf(only_search - 1, np.maximum(discordant, 1), 0.5), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        upper = np.where(only_search < n, _sps.beta.ppf(0.975, only_search + 1, np.maximum(n - only_search, 1)), 1.0)
    upper = np.where(n > 0, upper, np.nan)
    reproduced = (discordant > 0) & (p_value <= _MCNEMAR_LEVEL)
    not_reproduced = (n > 0) & (upper < np.asarray(margin, dtype=float))
    code = np.where(reproduced, 1, np.where(not_reproduced, -1, 0))
    return {"code": code, "n": n, "only_search": only_search, "only_control": only_control, "both": both,
            "search": s.sum(axis=-1), "control": c.sum(axis=-1), "p_value": p_value, "upper": upper}


def _adversarial_codes(search: Any, control: Any, margin: Any = ADVERSARIAL_MARGIN) -> np.ndarray:
    return _adversarial_core(search, control, margin)["code"]


def smallest_significant_count() -> int:
    """The fewest seeds reversed by the search alone (none by the control alone) that McNemar's exact
    one-sided test at 2.5 % calls significant: 6 (0.5⁶ = 0.016; 0.5⁵ = 0.031)."""
    return next(b for b in range(1, 64) if 0.5**b <= _MCNEMAR_LEVEL)


def _detectable_excess(n: int) -> float | None:
    """The smallest share of ``n`` seeds that the search must reverse (random edits reversing none)
    for McNemar's test to say "reproduced" with 80 % power: the least ``p`` with
    ``P(Bin(n, p) >= 6) >= 0.8``."""
    need = smallest_significant_count()
    if n < need:
        return None
    grid = np.linspace(0.0, 1.0, 1001)
    return float(grid[np.argmax(_sps.binom.sf(need - 1, n, grid) >= 0.8)])


def _adversarial(search: Any, control: Any, *, margin: float | int = ADVERSARIAL_MARGIN) -> Decision:
    """``search``, ``control``: per seed prompt 1 when the optimised search (resp. random edits of the same
    budget) found an input below the reversal threshold, 0 when not; NaN for a seed left out (already
    reversed unedited)."""
    if not 0 < margin < 1:
        raise ValueError(f"margin must be in (0, 1), got {margin}")
    s = _one_d(search, "search", "per seed prompt")
    c = _one_d(control, "control", "per seed prompt")
    for name, flags in (("search", s), ("control", c)):
        odd = flags[np.isfinite(flags) & (flags != 0) & (flags != 1)]
        if odd.size:
            raise ValueError(f"{name} must hold 0/1 flags per seed (1: reversed; booleans are fine; NaN: left out), got "
                             f"{odd.size} other value(s) such as {odd[0]:g}: threshold the readout effects first")
    if s.shape != c.shape:
        raise ValueError(f"search and control must hold one flag per seed each; got {s.size} and {c.size}")
    out = {k: v[0] for k, v in _adversarial_core(s[None], c[None], margin).items()}
    code, n = int(out["code"]), int(out["n"])
    b, cc, both = int(out["only_search"]), int(out["only_control"]), int(out["both"])
    need = smallest_significant_count()
    counts = (f"the search reversed the steering on {int(out['search'])} of {n} seeds, random edits of the same budget "
              f"on {int(out['control'])} ({b} by the search alone, {cc} by random edits alone, {both} by both)")
    upper = float(out["upper"])
    if n == 0:
        why = "no seed to judge (every seed was already reversed unedited, or none was searched)"
    elif code == 1:
        why = f"{counts}: significantly more than random editing (McNemar exact p = {float(out['p_value']):.3f})"
    elif code == -1:
        why = (f"{counts}: the search's excess over random editing is below {margin:.0%} of seeds (the share reversed "
               f"by the search alone is at most {upper:.2f} at 97.5 %)")
    else:
        why = (f"{counts}: neither significantly more than random editing (p = {float(out['p_value']):.3f}; needs at "
               f"least {need} seeds reversed by the search alone) nor shown to be under {margin:.0%} of seeds (the "
               f"search-alone share could be up to {upper:.2f})")
    if n and int(out["control"]) >= max(1, n // 2):
        why += "; random edits alone reverse the steering on half the seeds or more: it is fragile to any edit"
    numbers = {"verdict": VERDICT_OF[code], "n_seeds": n, "search_reversed": int(out["search"]),
               "control_reversed": int(out["control"]), "search_only": b, "control_only": cc, "both": both,
               "mcnemar_p": float(out["p_value"]), "search_only_upper": _num(upper), "margin": margin,
               "detectable": _detectable_excess(n)}
    return Decision(VERDICT_OF[code], why, numbers)


def _reversal_world(p_search: float, p_control: float, rho: float = 0.5):
    """Per seed, a latent bivariate normal (correlation ``rho``: seeds easy to reverse are easy for both)
    thresholded so that the search reverses with probability ``p_search`` and random edits with
    ``p_control``; ``rho = 1`` makes random edits' reversals a subset of the search's (the least
    favourable case for a false "not reproduced" at an excess of exactly the margin)."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        seeds = int(profile["seeds"])
        z = rng.standard_normal((runs, seeds))
        w = rho * z + math.sqrt(max(1 - rho * rho, 0.0)) * rng.standard_normal((runs, seeds))
        search = (z < _sps.norm.ppf(p_search)).astype(float) if p_search > 0 else np.zeros((runs, seeds))
        control = (w < _sps.norm.ppf(p_control)).astype(float) if p_control > 0 else np.zeros((runs, seeds))
        return {"search": search, "control": control}

    return draw


def _adversarial_dgps() -> dict[str, DGP]:
    out = {}

    def add(name: str, truth: str, description: str, world: Callable[..., dict[str, Any]], paper: bool = False) -> None:
        out[name] = DGP(name, truth, description, world, paper=paper)

    for p, rho in ((0.05, 0.5), (0.2, 0.5), (0.5, 0.5), (0.2, 0.0), (0.9, 0.8)):
        add(f"null: search no better than random, both {p:.0%}, rho {rho:g}", "null",
            f"the search and random edits each reverse the steering on {p:.0%} of seeds (latent correlation {rho:g})",
            _reversal_world(p, p, rho))
    add("null: search never reverses", "null", "neither the search nor random edits ever reverse the steering",
        _reversal_world(0.0, 0.0))
    add("null: search worse than random (10 % against 30 %)", "null",
        "random edits reverse more seeds than the search (latent correlation 0.5)", _reversal_world(0.1, 0.3))
    for ps, pc, rho in ((0.25, 0.0, 1.0), (0.35, 0.10, 1.0), (0.5, 0.25, 0.5)):
        add(f"effect: excess exactly 25 % ({ps:.0%} against {pc:.0%}, rho {rho:g})", "effect",
            f"the search reverses {ps:.0%} of seeds, random edits {pc:.0%}: an excess of exactly the margin"
            + (" (random edits' reversals a subset of the search's: least favourable)" if rho == 1 else ""),
            _reversal_world(ps, pc, rho))
    add("effect: search reverses 60 % of seeds, random edits 5 %", "effect",
        "the paper's finding (an evolutionary search finds reversing inputs; the paper gives no rate: assumed 60 % of "
        "seeds, random edits 5 %, latent correlation 0.5)", _reversal_world(0.6, 0.05), paper=True)
    return out


ADVERSARIAL = register(Rule(
    id="robustness.adversarial", claim=ADVERSARIAL_CLAIM, text=ADVERSARIAL_TEXT,
    inputs={"search": "[seeds] 1 when the optimised search found an input below the reversal threshold, 0 when not, NaN "
                      "for a seed left out (already reversed unedited)",
            "control": "[seeds] the same for random edits of the same budget from the same seed"},
    decide_one=_adversarial, codes=_adversarial_codes,
    profiles={"quick": {"seeds": 16}, "full": {"seeds": 20}},
    dgps=_adversarial_dgps(), detectable=lambda numbers: numbers["detectable"],
    notes="The flags are 0/1 per seed, so the rule is exact whatever the data: McNemar's test conditions on the "
          "discordant seeds (exact under any equal rates and any correlation), and Clopper-Pearson's bound on "
          "P(S = 1, C = 0) bounds the excess from above. The detectable excess is the share of seeds the search must "
          "reverse for McNemar's test to call it significant with 80 % power when random edits reverse none (0.45 "
          "with 16 seeds, 0.37 with 20). Both tests assume independent seeds: seeds that are paraphrases of each "
          "other (clusters of 4 sharing their outcome, latent correlation 0.9) at an excess of exactly 25 % read "
          "'not reproduced' in 17 % of runs (red team; the nulls stay at 0.1 % false 'reproduced'). The study's "
          "seeds are distinct in-distribution prompts. Flags must be 0/1 (booleans fine, NaN left out): other "
          "values, including infinities, are refused."))


# ---------------------------------------------------------------------- finding 4: perplexity

PERPLEXITY_CLAIM = "Steering raises the model's perplexity"
PERPLEXITY_TEXT = ("per neutral text d = log(steered / unsteered perplexity) at the primary coefficient; reproduced: "
                   "the 95 % interval of mean(d) (t, with Hall's skewness correction) lies above log(1 + margin) (a rise "
                   "of more than the margin, not any significant rise); not reproduced: it lies below; inconclusive otherwise. Each arm is a one-sided "
                   "2.5 % test at the boundary")
PERPLEXITY_MARGIN = 0.05


def threshold_codes(d: np.ndarray, bound: Any) -> dict[str, np.ndarray]:
    """The threshold rule on a batch ``d [runs, items]`` (NaNs left out) against ``bound`` (per run or
    scalar): code 1 when the 95 % interval of the mean lies above ``bound``, −1 below, 0 otherwise
    (and with fewer than two items). The interval is the t interval with Hall's skewness correction
    (:func:`~interp_steer.stats.skew_corrected_interval`)."""
    d = np.asarray(d, dtype=float)
    if np.isinf(d).any():
        raise ValueError("the log ratios hold infinite values: pass finite numbers (NaN for a missing text)" + _INF_HINT)
    mean, se, n, low, high = skew_corrected_interval(d, level=0.95)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: n < 2 anyway
        spread = np.nanmax(d, axis=-1) - np.nanmin(d, axis=-1) if np.shape(d)[-1] else np.zeros(np.shape(d)[:-1])
    # Identical values (spread 0): a zero-width interval is no evidence, so no verdict.
    valid = (n >= 2) & np.isfinite(se) & (spread > 0)
    bound = np.broadcast_to(np.asarray(bound, dtype=float), mean.shape)
    code = np.where(valid & (low > bound), 1, np.where(valid & (high < bound), -1, 0))
    return {"code": code, "mean": mean, "se": se, "n": n, "low": low, "high": high, "bound": bound,
            "mde": mde(se, n), "spread": spread}


def _perplexity_codes(log_ratios: np.ndarray, margin: Any = PERPLEXITY_MARGIN) -> np.ndarray:
    return threshold_codes(log_ratios, np.log1p(np.asarray(margin, dtype=float)))["code"]


def _threshold_decision(d: np.ndarray, margin: float, *, what: str, more: str, units: str) -> Decision:
    """The threshold rule on one run's ``d`` (log ratios), its reason in ratios (``what`` names the
    quantity, ``more`` says what exceeding the margin means, ``units`` what ``d`` is over)."""
    out = {k: v[0] if isinstance(v, np.ndarray) and v.ndim else v
           for k, v in threshold_codes(d[None], math.log1p(margin)).items()}
    code, n = int(out["code"]), int(out["n"])

    def ratio(x: float) -> str:
        return f"{math.exp(x):.3f}" if np.isfinite(x) else "n/a"

    interval = f"x{ratio(out['mean'])} [{ratio(out['low'])}, {ratio(out['high'])}]"
    rise = f"{1 + margin:.2f} (a rise of {margin:.0%})"
    why = {1: f"{what} {interval}: significantly more than {rise}",
           -1: f"{what} {interval}: significantly less than {rise}",
           0: f"{what} {interval}: cannot tell from {rise}"}[code]
    if n < 2:
        why = f"fewer than two {units} with a perplexity ({n}): no interval"
    elif not out["spread"] > 0:
        why = (f"every one of the {n} {units} has the same log ratio ({out['mean']:.4g}): a zero-width interval is not "
               f"evidence (a constant is more likely a bug, e.g. one value copied, than a measurement); no interval")
    detect = (f"; this run could detect ±{out['mde']:.3f} in log ratio (n = {n} {units})"
              if np.isfinite(out["mde"]) and out["spread"] > 0 else "")
    verdict = VERDICT_OF[code]
    numbers = {"verdict": verdict, "difference": {"mean": _num(out["mean"]), "low": _num(out["low"]),
                                                  "high": _num(out["high"]), "n": n, "level": 0.95},
               "ratio": {"mean": _num(math.exp(out["mean"])) if np.isfinite(out["mean"]) else None,
                         "low": _num(math.exp(out["low"])) if np.isfinite(out["low"]) else None,
                         "high": _num(math.exp(out["high"])) if np.isfinite(out["high"]) else None},
               "se": _num(out["se"]), "margin": margin, "bound": math.log1p(margin), "mde": _num(out["mde"]),
               "more": more}
    return Decision(verdict, why + detect, numbers)


def _perplexity(log_ratios: Any, *, margin: float | int = PERPLEXITY_MARGIN) -> Decision:
    """``log_ratios``: per neutral text, ``log(steered / unsteered perplexity)`` at the primary coefficient
    (NaNs left out); ``margin``: the smallest relative rise that counts."""
    d = _one_d(log_ratios, "log_ratios", "per neutral text", _INF_HINT)
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    return _threshold_decision(d, margin, what="perplexity", more="rises", units="texts")


_INF_HINT = ("; an infinite log ratio is a degenerate text (the strongest evidence of a rise, so it must not be dropped): "
             "replace it by a large finite value, e.g. the largest finite one, and report that you did")


def _texts(profile: Mapping[str, Any], runs: int) -> tuple[int, int]:
    return runs, int(profile["neutral_texts"])


def _perplexity_world(shape: str, mean: float, sd: float = 0.15):
    """Per-text log ratios with the given mean: ``normal``; ``t3`` (heavy tails); ``skewed`` (a
    centred exponential: most texts barely move, a few a lot, as perplexity under steering does);
    ``lengths`` (each text's mean per-token NLL change, with per-token noise over 20-200 tokens:
    unequal variances across texts); ``measured`` (the spread and skewness the quick run measured on
    the default model: SD 0.089, skewness 0.77 over the 40 neutral texts at c = 0.2; the other
    shapes use SD 0.15 and, skewed, skewness 2, so they are harder than the data)."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        size = _texts(profile, runs)
        if shape in ("normal", "t3"):
            d = mean + sd * noise(rng, shape, size)
        elif shape == "skewed":
            d = mean + sd * (rng.exponential(1.0, size) - 1.0)
        elif shape == "lengths":
            tokens = rng.integers(20, 201, size)
            d = mean + sd * 0.5 * rng.standard_normal(size) + 1.2 * rng.standard_normal(size) / np.sqrt(tokens)
        elif shape == "measured":
            # The quick run's 40 neutral log ratios at c = 0.2: SD 0.089, skewness 0.77 (a gamma of that
            # skewness, shape (2 / 0.77)², centred and scaled).
            k = (2 / 0.77) ** 2
            d = mean + 0.089 * (rng.gamma(k, 1.0, size) - k) / math.sqrt(k)
        else:
            raise ValueError(shape)
        return {"log_ratios": d}

    return draw


_AT_MARGIN = math.log1p(PERPLEXITY_MARGIN)
_PERPLEXITY_DGPS = {
    **{f"null: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}": DGP(
        f"null: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}", "null",
        f"per-text log ratios ({shape}) with mean log(1.05): the least favourable case for a false 'reproduced'",
        _perplexity_world(shape, _AT_MARGIN)) for shape in ("normal", "t3", "skewed", "lengths", "measured")},
    **{f"effect: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}": DGP(
        f"effect: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}", "effect",
        f"per-text log ratios ({shape}) with mean log(1.05): the least favourable case for a false 'not reproduced'",
        _perplexity_world(shape, _AT_MARGIN)) for shape in ("normal", "t3", "skewed", "lengths", "measured")},
    "effect: rise 25 %, normal": DGP(
        "effect: rise 25 %, normal", "effect",
        "a clear rise (x1.25, per-text SD 0.15 in log ratio; the paper reports no per-text size, so this is an assumed effect for power)",
        _perplexity_world("normal", math.log(1.25)), paper=True),
}

PERPLEXITY = register(Rule(
    id="robustness.perplexity", claim=PERPLEXITY_CLAIM, text=PERPLEXITY_TEXT,
    inputs={"log_ratios": "[texts] log(steered / unsteered perplexity) per neutral text at the primary coefficient"},
    decide_one=_perplexity, codes=_perplexity_codes,
    profiles={"quick": {"neutral_texts": 40}, "full": {"neutral_texts": 120}},
    dgps=_PERPLEXITY_DGPS, detectable=lambda numbers: numbers["mde"],
    notes="Quick: up to 40 texts of the neutral corpus (max_perplexity_texts); full: the built-in neutral corpus (120 "
          "baseline passages). Checked against the study: the default model's quick run (c = 0.2) gave 40 per-text "
          "log ratios with mean 0.27 (x1.31), SD 0.089, skewness 0.77, excess kurtosis 0.73; the worlds above are as "
          "spread or more, and as skewed or more. Beyond the design: a rise carried by rare degenerate texts (mean "
          "exactly log 1.05 from most texts at -0.05 and 2.5 % at +2.0, or 5 % at +1.0) reads 'not reproduced' in "
          "36 %/13 % of quick runs (40 texts) and 4.6 % full (120): P(no such text among 40), which no rule can tell "
          "from a mean below the bound; lognormal log ratios (skewness 6) sit at the edge (5.4 % quick, 4.4 % full). "
          "Infinite log ratios are refused (a degenerate text must be capped, and said so, not dropped); identical "
          "log ratios give no interval (inconclusive); 2-D input is refused."))


# ---------------------------------------------------------------------- finding 5: model size

MODEL_SIZE_MARGIN = 0.05
MODEL_SIZE_CLAIM = ("Larger models resist steering-induced degradation: the smallest model's perplexity rises more than "
                    "1 + margin (5 %) times the largest model's")
MODEL_SIZE_TEXT = ("per neutral text d = log(steered / unsteered perplexity) of the smallest model - that of the largest "
                   "(by parameter count), same texts, at the primary coefficient (in each model's residual-norm units); "
                   "reproduced: the 95 % interval of mean(d) (t, with Hall's skewness correction) lies above "
                   "log(1 + margin) (the smallest model degrades more than 5 % more, not any significant amount more); "
                   "not reproduced: it lies below; inconclusive otherwise. Each arm is a one-sided 2.5 % test at the "
                   "boundary. Two models differ in more than size (family, training data, tokenizer): the verdict is "
                   "about these two models")


def _model_size_codes(small_log_ratios: Any, large_log_ratios: Any, margin: Any = MODEL_SIZE_MARGIN) -> np.ndarray:
    d = np.asarray(small_log_ratios, dtype=float) - np.asarray(large_log_ratios, dtype=float)
    return threshold_codes(d, np.log1p(np.asarray(margin, dtype=float)))["code"]


def _model_size(small_log_ratios: Any, large_log_ratios: Any, *, margin: float | int = MODEL_SIZE_MARGIN,
                small: str = "the smallest model", large: str = "the largest model") -> Decision:
    """``small_log_ratios``, ``large_log_ratios``: per neutral text (the same texts, in the same order),
    ``log(steered / unsteered perplexity)`` of the smallest and of the largest model at the primary
    coefficient (NaN left out pairwise); ``small``/``large``: the models' names."""
    a = _one_d(small_log_ratios, "small_log_ratios", "per neutral text", _INF_HINT)
    b = _one_d(large_log_ratios, "large_log_ratios", "per neutral text", _INF_HINT)
    if a.shape != b.shape:
        raise ValueError(f"the two models' log ratios must be per text on the same texts; got {a.size} and {b.size}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    decision = _threshold_decision(a - b, margin, what=f"{small}'s perplexity ratio over {large}'s",
                                   more="degrades", units="texts")
    why = decision.reason + "; the two models differ in more than size (family, training), so this is about these models"
    return Decision(decision.verdict, why, {**decision.numbers, "smallest": small, "largest": large})


def _model_size_world(shape: str, difference: float, small_sd: float = 0.15, large_sd: float = 0.15,
                      rho: float = 0.5, large_mean: float = math.log(1.1)):
    """Per text, each model's log ratio: the large model's ``large_mean``, the small one's ``difference``
    more, each with its own spread (``*_sd``) and a shared per-text component (correlation ``rho``:
    a text hard for one model is hard for the other). ``shape``: normal, t3 or skewed (centred
    exponential)."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        size = (runs, int(profile["neutral_texts"]))

        def unit() -> np.ndarray:
            if shape == "skewed":
                return rng.exponential(1.0, size) - 1.0
            return noise(rng, shape, size)

        shared = unit()
        small = large_mean + difference + small_sd * (math.sqrt(rho) * shared + math.sqrt(1 - rho) * unit())
        large = large_mean + large_sd * (math.sqrt(rho) * shared + math.sqrt(1 - rho) * unit())
        return {"small_log_ratios": small, "large_log_ratios": large}

    return draw


def _model_size_dgps() -> dict[str, DGP]:
    at = math.log1p(MODEL_SIZE_MARGIN)
    worlds = {"normal": ("normal", {}), "t3": ("t3", {}), "skewed": ("skewed", {}),
              "unequal variances": ("normal", {"small_sd": 0.3, "large_sd": 0.08, "rho": 0.2})}
    out = {}
    for truth in ("null", "effect"):
        for name, (shape, kwargs) in worlds.items():
            key = f"{truth}: difference exactly {MODEL_SIZE_MARGIN:.0%}, {name}"
            error = "reproduced" if truth == "null" else "not reproduced"
            out[key] = DGP(key, truth, f"per-text log ratios ({name}), the small model's {MODEL_SIZE_MARGIN:.0%} "
                                       f"higher: the boundary, least favourable for a false '{error}'",
                           _model_size_world(shape, at, **kwargs))
    out["null: the same degradation"] = DGP(
        "null: the same degradation", "null", "both models x1.10 (normal)", _model_size_world("normal", 0.0))
    out["null: a 1 % difference"] = DGP(
        "null: a 1 % difference", "null",
        "the small model degrades 1 % more (x1.111 against x1.10): significant with enough texts, but not the claim",
        _model_size_world("normal", math.log(1.01), small_sd=0.05, large_sd=0.05, rho=0.8))
    out["effect: x1.30 against x1.10"] = DGP(
        "effect: x1.30 against x1.10", "effect",
        "the small model's perplexity x1.30, the large one's x1.10 (the paper reports less degradation for 70B than 8B "
        "without per-text numbers: an assumed effect for power)",
        _model_size_world("normal", math.log(1.3 / 1.1)), paper=True)
    return out


MODEL_SIZE = register(Rule(
    id="robustness.model_size", claim=MODEL_SIZE_CLAIM, text=MODEL_SIZE_TEXT,
    inputs={"small_log_ratios": "[texts] log(steered / unsteered perplexity) per neutral text, smallest model",
            "large_log_ratios": "[texts] the same on the same texts, largest model"},
    decide_one=_model_size, codes=_model_size_codes,
    profiles={"quick": {"neutral_texts": 40}, "full": {"neutral_texts": 120}},
    dgps=_model_size_dgps(), detectable=lambda numbers: numbers["mde"],
    notes="Quick: 40 neutral texts (max_perplexity_texts); full: the built-in neutral corpus (120 baseline passages). "
          "The models differ in more than size, so a verdict compares these two models, not sizes in general. As for "
          "robustness.perplexity: rare degenerate texts are beyond the design at 40 texts; infinite or 2-D log "
          "ratios are refused; identical differences give no interval."))


__all__ = ["ADVERSARIAL", "MODEL_SIZE", "OOD", "PERPLEXITY", "SAMPLE_SIZE", "ood_ratio", "smallest_significant_count",
           "threshold_codes"]
