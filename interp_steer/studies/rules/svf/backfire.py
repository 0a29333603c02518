"""``svf.backfire``: does the field backfire on fewer inputs than the vector? A prompt backfires when
its effect is below −floor, the floor estimated from a content-free perturbation's changes; the paired
0/1 flags are judged by exact unconditional tests, at every floor in the floor's 95 % interval. The
rule and its simulated worlds."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import special as _special
from scipy import stats as _sps

from interp_steer.studies.rules.base import (
    DGP,
    Decision,
    Rule,
    json_number,
    noise,
    register,
    verdict_of,
)
from interp_steer.studies.rules.svf.common import (
    LEVEL,
    PROFILE_NOTES,
    PROFILES,
    REAL,
    check_effects,
    check_setting,
    complete,
    first_run,
    same_shape,
    with_runs,
    world_table,
)

BACKFIRE_CLAIM = ("The field backfires on fewer inputs than the vector (moves fewer of them against the intended "
                  "direction beyond what a content-free perturbation of the same size does).")
BACKFIRE_MARGIN = 0.05
ALPHA = 0.025
FLOOR_COVERAGE = 0.95
"""The floor's own sampling error: a verdict must hold over a distribution-free 95 % interval of it."""
BACKFIRE_TEXT = ("floor = the symmetrised 95 % quantile of the score changes a random direction of the same length makes "
                 "(decoded greedily like the grid; the 90 % quantile of |change|), so such a perturbation backfires on "
                 "5 % of prompts and a steering that changes nothing on 0 %; a prompt backfires when its effect < -floor. "
                 "Paired flags: b prompts where only the vector backfires, c where only the field does. Reproduced: "
                 "exact unconditional test of rate(vector) − rate(field) > 0 at one-sided 2.5 % (Tango's score "
                 "statistic, the nuisance maximised over). Not reproduced: the same test shows the difference below "
                 "the margin, or shows it below 0 (the field backfires more), each at one-sided 2.5 %. The floor is "
                 "itself estimated: a verdict counts only when the tests give it at every floor in the floor's "
                 "distribution-free 95 % interval (order statistics of the |changes|), else inconclusive. "
                 "Inconclusive otherwise")


def control_floor(reference: Any, level: float = LEVEL) -> np.ndarray:
    """The backfire floor from content-free changes ``reference [runs, ...]`` (flattened per run; NaNs
    left out): the ``level`` quantile of the symmetrised changes, i.e. the ``2·level − 1`` quantile of
    ``|change|``, taken as the order statistic at rank ``(2·level − 1)·(m + 1)`` of the ``m`` changes
    (Weibull's plotting position), so that a fresh content-free change exceeds it with probability
    ``2·(1 − level)`` on average however few changes there are (linear interpolation, numpy's default,
    gives 11.3 % instead of 10 % at 60 changes). NaN when no change is finite."""
    r = np.abs(np.asarray(reference, dtype=float))
    flat = r.reshape(r.shape[0], -1) if r.ndim > 1 else r[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a run with no finite change: NaN, said so by the rule
        return np.nanquantile(flat, 2 * level - 1, axis=-1, method="weibull")


def _tango(b: np.ndarray, c: np.ndarray, n: int, delta: float) -> np.ndarray:
    """Tango's (1998) score statistic for ``H0: p10 − p01 = delta`` from ``b`` = n10 and ``c`` = n01
    of ``n`` pairs: ``(b − c − n·delta) / sqrt(n (2 q + delta − delta²))`` with ``q`` the restricted
    maximum-likelihood estimate of p01. Small values: evidence that the difference is below ``delta``."""
    b, c = np.asarray(b, dtype=float), np.asarray(c, dtype=float)
    m = n - b - c
    big_b = b * (1 - delta) + c * (1 - 3 * delta) - 2 * m * delta
    q = (big_b + np.sqrt(big_b**2 + 8 * n * c * delta * (1 - delta))) / (4 * n)
    var = n * (2 * q + delta - delta**2)
    top = b - c - n * delta
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 1e-12, top / np.sqrt(np.maximum(var, 1e-300)), np.where(top < 0, -np.inf,
                                                                                       np.where(top > 0, np.inf, 0.0)))


@functools.lru_cache(maxsize=256)
def unconditional_pvalues(n: int, delta: float, grid: int = 400) -> np.ndarray:
    """``[n + 1, n + 1]`` p-values (index ``b``, ``c``; NaN where ``b + c > n``) of the exact
    unconditional test of ``H0: p10 − p01 >= delta`` against ``p10 − p01 < delta`` for ``n`` pairs
    with ``b`` = n10 and ``c`` = n01: the probability, maximised over the nuisance ``p01`` at the
    boundary, of an outcome with Tango's statistic no larger than the observed one."""
    if n < 1:
        return np.full((1, 1), np.nan)
    b, c = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    ok = b + c <= n
    bb, cc = b[ok].astype(float), c[ok].astype(float)
    z = np.round(_tango(bb, cc, n, delta), 10)
    order = np.argsort(z, kind="stable")
    z_sorted = z[order]
    position = np.searchsorted(z_sorted, z, side="right") - 1
    q = np.linspace(0.0, (1.0 - delta) / 2, grid)[:, None]
    p10, p01 = q + delta, q
    p00 = np.clip(1.0 - p10 - p01, 0.0, 1.0)
    rest = n - bb - cc
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = (_special.gammaln(n + 1) - _special.gammaln(bb + 1) - _special.gammaln(cc + 1)
                   - _special.gammaln(rest + 1) + _special.xlogy(bb, p10) + _special.xlogy(cc, p01)
                   + _special.xlogy(rest, p00))
    pmf = np.exp(log_pmf)
    cumulative = np.cumsum(pmf[:, order], axis=1)
    pvalues = np.minimum(cumulative[:, position].max(axis=0), 1.0)
    table = np.full((n + 1, n + 1), np.nan)
    table[ok] = pvalues
    return table


def _pvalue(n: np.ndarray, b: np.ndarray, c: np.ndarray, delta: float) -> np.ndarray:
    out = np.full(np.shape(n), np.nan)
    for size in np.unique(n):
        if size < 1:
            continue
        where = n == size
        out[where] = unconditional_pvalues(int(size), float(delta))[b[where], c[where]]
    return out


def floor_interval(reference: Any, level: float = LEVEL, coverage: float = FLOOR_COVERAGE) -> tuple[np.ndarray, ...]:
    """A distribution-free ``coverage`` interval for the population floor (the ``2·level − 1`` quantile
    of ``|change|``) from the ``m`` finite content-free changes of each run (``reference [runs, ...]``):
    the order statistics ``X(l) ≤ X(u)`` with ``P(Bin(m, p) < l) ≤ (1 − coverage)/2`` and
    ``P(Bin(m, p) ≥ u) ≤ (1 − coverage)/2``, so ``P(X(l) ≤ floor ≤ X(u)) ≥ coverage`` whatever the
    changes' distribution. ``+inf`` where ``m`` is too small for an upper rank (NaN when no change is
    finite). Returns ``(low, high, l, u, m)``."""
    r = np.abs(np.asarray(reference, dtype=float))
    flat = r.reshape(r.shape[0], -1) if r.ndim > 1 else r[None]
    m = np.isfinite(flat).sum(-1)
    p, tail = 2 * level - 1, (1 - coverage) / 2
    ranks = np.arange(flat.shape[-1] + 1)
    # l - 1 = the largest k with P(Bin(m, p) <= k) <= tail; u - 1 = the smallest k with P(Bin(m, p) > k) <= tail
    cdf = _sps.binom.cdf(ranks[None], m[:, None], p)
    low_rank = (cdf <= tail).sum(-1)  # = l - 1 + 1 = l (cdf is increasing; 0 when none qualifies: no lower bound)
    sf = _sps.binom.sf(ranks[None], m[:, None], p)
    high_rank = np.argmax(sf <= tail, axis=-1) + 1  # u
    ordered = np.sort(np.where(np.isfinite(flat), flat, np.inf), axis=-1)
    take = np.clip(np.stack([low_rank, high_rank], -1) - 1, 0, max(flat.shape[-1] - 1, 0))
    vals = np.take_along_axis(ordered, take, axis=-1) if flat.shape[-1] else np.full(take.shape, np.nan)
    low = np.where(low_rank >= 1, vals[..., 0], 0.0)
    high = np.where(high_rank <= m, vals[..., 1], np.inf)
    none = m == 0
    return np.where(none, np.nan, low), np.where(none, np.nan, high), low_rank, high_rank, m


def _flag_codes(f: np.ndarray, v: np.ndarray, floors: np.ndarray, margin: float) -> dict[str, np.ndarray]:
    """The paired exact tests at each floor of ``floors [runs, C]`` (``f``, ``v`` ``[runs, prompts]``)."""
    scored = np.isfinite(f)[:, None, :]
    flag_f = scored & (f[:, None, :] < -floors[..., None])
    flag_v = scored & (v[:, None, :] < -floors[..., None])
    n = np.broadcast_to(scored.sum(-1), floors.shape)
    b = (flag_v & ~flag_f).sum(-1)
    c = (flag_f & ~flag_v).sum(-1)
    valid = (n >= 1) & np.isfinite(floors)
    p_fewer = np.where(valid, _pvalue(n, c, b, 0.0), np.nan)  # H0: field backfires at least as often
    p_more = np.where(valid, _pvalue(n, b, c, 0.0), np.nan)  # H0: field backfires at most as often
    p_margin = np.where(valid, _pvalue(n, b, c, margin), np.nan)  # H0: the field's advantage >= margin
    fewer, more, short = (valid & (p <= ALPHA) for p in (p_fewer, p_more, p_margin))
    code = np.where(fewer, 1, np.where(more | short, -1, 0))
    return {"code": code, "n": n, "b": b, "c": c, "flag_f": flag_f, "flag_v": flag_v, "p_fewer": p_fewer,
            "p_more": p_more, "p_margin": p_margin, "fewer": fewer, "more": more, "short": short}


def backfire_core(field: Any, vector: Any, reference: Any, margin: Any = BACKFIRE_MARGIN, *,
                  level: float = LEVEL, coverage: float = FLOOR_COVERAGE) -> dict[str, np.ndarray]:
    """The backfire rule on a batch: ``field``, ``vector`` ``[runs, prompts]`` effects, ``reference``
    ``[runs, ...]`` content-free changes (prompts × draws). The tests are run at the estimated floor
    and at every floor in its distribution-free ``coverage`` interval (the interval's ends and each
    effect inside it: the flags change only there); a verdict counts only when it is the same at all
    of them, so that effects clustered just inside the estimated floor cannot decide it."""
    f, v = complete(with_runs(field, 1), with_runs(vector, 1))
    reference = np.asarray(reference, dtype=float)
    reference = reference.reshape(f.shape[0], -1) if reference.ndim > 1 else reference[None]
    floor = control_floor(reference, level)
    low, high, _, _, m = floor_interval(reference, level, coverage)
    margin = float(margin)
    # every distinct set of flags over floors in [low, high]: at low and where an effect's -e lies inside
    inside = np.concatenate([-f, -v], axis=-1)
    inside = np.where(np.isfinite(inside), np.clip(inside, low[:, None], high[:, None]), low[:, None])
    floors = np.concatenate([floor[:, None], low[:, None], high[:, None], inside], axis=-1)
    at = _flag_codes(f, v, floors, margin)
    point = {k: x[:, 0] for k, x in at.items()}
    codes = at["code"]
    robust = (codes == codes[:, :1]).all(-1)
    code = np.where(robust, point["code"], 0)
    valid = (point["n"] >= 1) & np.isfinite(floor)
    n = point["n"]
    b, c = point["b"], point["c"]
    flag_f, flag_v = point["flag_f"], point["flag_v"]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate_v, rate_f = flag_v.sum(-1) / n, flag_f.sum(-1) / n
        discordant = (b + c) / n
        diff = (b - c) / n
        se = np.sqrt(np.maximum(discordant - diff**2, 1.0 / np.maximum(n, 1)) / n)
    return {"code": code, "code_at_floor": np.where(valid, point["code"], 0), "robust": robust, "floor": floor,
            "floor_low": low, "floor_high": high, "n": n, "b": b, "c": c, "rate_vector": rate_v, "rate_field": rate_f,
            "difference": diff, "p_fewer": point["p_fewer"], "p_more": point["p_more"], "p_margin": point["p_margin"],
            "p_fewer_worst": np.nanmax(np.where(np.isfinite(at["p_fewer"]), at["p_fewer"], 1.0), axis=-1),
            "fewer": point["fewer"] & robust, "more": point["more"] & robust, "short": point["short"] & robust,
            "mde": (_sps.norm.ppf(0.975) + _sps.norm.ppf(0.8)) * se, "n_reference": m}


def _backfire_codes(field: Any, vector: Any, reference: Any, margin: Any = BACKFIRE_MARGIN) -> np.ndarray:
    return backfire_core(field, vector, reference, margin)["code"]


def _backfire(field: Any, vector: Any, reference: Any, *, margin: float = BACKFIRE_MARGIN, level: float = LEVEL) -> Decision:
    """``field``, ``vector``: per held-out prompt, each method's effect at the primary coefficient
    (oriented: the intended direction is positive). ``reference``: ``[prompts, draws]`` the same
    change made by random directions of the same length at the same coefficient (oriented the same
    way; its sign does not matter). ``margin``: the smallest difference of backfire rates of interest."""
    margin = check_setting(margin, "margin", 0.0, 1.0, high_open=True)
    level = check_setting(level, "level", 0.5, 1.0, low_open=True, high_open=True)
    f, v = check_effects(field, "field", 1), check_effects(vector, "vector", 1)
    same_shape(("field", f), ("vector", v))
    ref = check_effects(reference, "reference", (1, 2), what="content-free changes")
    if ref.ndim == 2 and ref.shape[0] != f.shape[0]:
        raise ValueError(f"reference must be [prompts, draws] with one row per prompt of field ({f.shape[0]}), got "
                         f"{ref.shape}")
    out = first_run(backfire_core(f, v, ref.ravel()[None], margin, level=level))
    code, n, b, c = int(out["code"]), int(out["n"]), int(out["b"]), int(out["c"])

    def pct(x: float) -> str:
        return f"{x:.0%}" if np.isfinite(x) else "n/a"

    span = f"[{out['floor_low']:.3f}, {out['floor_high']:.3f}]"
    counts = (f"backfire beyond the floor {out['floor']:.3f} (95 % interval {span} from {int(out['n_reference'])} "
              f"content-free changes): vector {pct(out['rate_vector'])}, field {pct(out['rate_field'])} of {n} prompts; "
              f"only the vector on {b}, only the field on {c}")
    detect = (f"this run could detect a difference of rates of about {out['mde']:.2f} (80 % power, 5 % two-sided)"
              if np.isfinite(out["mde"]) else "no prompts")
    fragile = (f"; but that verdict ({verdict_of(int(out['code_at_floor']))}) does not hold at every floor in the "
               f"floor's 95 % interval {span}, so the floor's own sampling error decides it")
    if not np.isfinite(out["floor"]):
        reason = "no finite content-free change to set the floor from"
    elif n < 1:
        reason = "no prompt with both effects"
    elif code == 1:
        reason = (f"{counts}: the field backfires less (exact p = {out['p_fewer']:.3f}, at most "
                  f"{out['p_fewer_worst']:.3f} over the floor's interval); {detect}")
    elif out["more"]:
        reason = f"{counts}: the field backfires more (exact p = {out['p_more']:.3f}); {detect}"
    elif code == -1:
        reason = (f"{counts}: any advantage of the field is below {margin:g} (exact p = {out['p_margin']:.3f}); "
                  f"{detect}")
    elif out["code_at_floor"] != 0:
        reason = f"{counts}{fragile}; {detect}"
    else:
        reason = (f"{counts}: neither fewer backfires (exact p = {out['p_fewer']:.3f}) nor an advantage below "
                  f"{margin:g} (p = {out['p_margin']:.3f}) is shown; {detect}")
    numbers = {"verdict": verdict_of(code), "reason": reason,
               "difference": {"mean": json_number(out["difference"]), "low": None, "high": None, "n": n, "level": LEVEL,
                              "definition": "backfire rate of the vector − of the field (tests are exact; no interval)"},
               "floor": json_number(out["floor"]), "floor_level": level,
               "floor_interval": {"low": json_number(out["floor_low"]), "high": json_number(out["floor_high"]),
                                  "coverage": FLOOR_COVERAGE, "method": "order statistics (distribution-free)"},
               "n_reference": int(out["n_reference"]),
               "rate_vector": json_number(out["rate_vector"]), "rate_field": json_number(out["rate_field"]),
               "only_vector": b, "only_field": c,
               "p_values": {"field_fewer": json_number(out["p_fewer"]), "field_more": json_number(out["p_more"]),
                            "below_margin": json_number(out["p_margin"]),
                            "field_fewer_worst_over_floor_interval": json_number(out["p_fewer_worst"])},
               "alpha": ALPHA, "margin": float(margin), "mde": json_number(out["mde"]),
               "criteria": {"field_fewer": bool(out["fewer"]), "field_more": bool(out["more"]),
                            "below_margin": bool(out["short"]), "holds_over_floor_interval": bool(out["robust"])}}
    return Decision(verdict_of(code), reason, numbers)


def _backfire_world(kind: str, rate_vector: float, rate_field: float, *, rho: float = REAL["backfire_correlation"],
                    reference_sd: float = REAL["reference_sd"], field_sd: float = 1.0) -> Callable[..., dict[str, Any]]:
    """Effects and content-free changes per prompt. ``flags``: each method backfires (effect far below
    any floor: −1) with its rate, jointly through a Gaussian copula with correlation ``rho`` (prompts
    that make one method backfire tend to make the other), else moves the right way (+0.5 ± 0.2); the
    reference changes are N(0, reference_sd). ``normal``/``t3``: effects continuous, scaled so that
    each method's probability of falling below the *true* floor is its rate (the estimated floor
    moves both methods' rates together)."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        n, draws = int(profile["prompts"]), int(profile["floor_draws"])
        size = (runs, n)
        reference = reference_sd * noise(rng, "t3" if kind == "t3" else "normal", (runs, n, draws))
        shared = rng.standard_normal(size)
        z = [math.sqrt(rho) * shared + math.sqrt(1 - rho) * rng.standard_normal(size) for _ in range(2)]
        if kind == "flags":
            out = []
            for zk, rate in zip(z, (rate_vector, rate_field), strict=True):
                back = zk < _sps.norm.ppf(rate)
                out.append(np.where(back, -1.0, 0.5 + 0.2 * rng.standard_normal(size)))
            v, f = out
        else:
            floor = _true_floor(kind, reference_sd)
            out = []
            for zk, rate, sd in zip(z, (rate_vector, rate_field), (1.0, field_sd), strict=True):
                u = _sps.norm.cdf(zk)  # a uniform per prompt, correlated between methods
                q = _sps.t.ppf(u, 3) / math.sqrt(3) if kind == "t3" else _sps.norm.ppf(u)
                quantile = _sps.t.ppf(rate, 3) / math.sqrt(3) if kind == "t3" else _sps.norm.ppf(rate)
                # effect = mu + s·q with P(effect < −floor) = rate: mu = −floor − s·quantile
                s = REAL["effect_sd"] * sd
                out.append(-floor - s * quantile + s * q)
            v, f = out
        return {"field": f, "vector": v, "reference": reference}

    return draw


def _backfire_cluster_world(rate_vector: float, rate_field: float, cluster_vector: float, cluster_field: float, *,
                            at: float = -0.62) -> Callable[..., dict[str, Any]]:
    """The red team's world (F1): flags as in ``flags`` (−1 with each method's rate, one uniform per
    prompt shared by both methods, else +0.5 ± 0.2), plus a share ``cluster_*`` of prompts whose effect
    sits at ``at`` ± 0.01, just inside the true floor (0.69 for reference changes N(0, 0.42)): VADER's
    compound is discrete, so many prompts can land on nearly the same value. Whether they count as
    backfires turns on the floor's own sampling error."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        n, draws = int(profile["prompts"]), int(profile["floor_draws"])
        reference = REAL["reference_sd"] * rng.standard_normal((runs, n, draws))
        u = rng.random((runs, n))
        out = []
        for rate, cluster in ((rate_field, cluster_field), (rate_vector, cluster_vector)):
            e = np.where(u < rate, -1.0, 0.5 + 0.2 * rng.standard_normal((runs, n)))
            out.append(np.where((u >= 0.5) & (u < 0.5 + cluster), at + 0.01 * rng.standard_normal((runs, n)), e))
        return {"field": out[0], "vector": out[1], "reference": reference}

    return draw


def _true_floor(kind: str, reference_sd: float) -> float:
    """The population floor: the 90 % quantile of |reference|."""
    if kind == "t3":
        return float(reference_sd * _sps.t.ppf(0.95, 3) / math.sqrt(3))
    return float(reference_sd * _sps.norm.ppf(0.95))


def _backfire_dgps() -> dict[str, DGP]:
    r, m = REAL["backfire_rate"], BACKFIRE_MARGIN
    worlds = [
        ("null: equal rates, 0/1 flags", "null", f"both methods backfire on {r:.0%} of prompts (the default model's "
         f"quick run), correlated over prompts", _backfire_world("flags", r, r)),
        ("null: equal rates 10 %, 0/1 flags", "null", "both backfire on 10 %", _backfire_world("flags", 0.1, 0.1)),
        ("null: equal rates 30 %, 0/1 flags", "null", "both backfire on 30 %", _backfire_world("flags", 0.3, 0.3)),
        ("null: equal rates, independent flags", "null", f"both {r:.0%}, uncorrelated over prompts",
         _backfire_world("flags", r, r, rho=0.0)),
        ("null: equal rates, normal effects", "null", f"continuous effects, both {r:.0%} below the true floor",
         _backfire_world("normal", r, r)),
        ("null: equal rates, t3 effects", "null", f"continuous t3 effects and reference, both {r:.0%}",
         _backfire_world("t3", r, r)),
        ("null: equal rates, field twice as variable", "null", f"both {r:.0%} below the true floor, the field's "
         "effects twice as spread (so the estimated floor moves their rates differently)",
         _backfire_world("normal", r, r, field_sd=2.0)),
        ("null: equal rates, vector's effects clustered just inside the floor", "null", f"both {r:.0%} beyond the "
         "true floor (0.69); on 20 % of prompts the vector's effect sits at -0.62, just inside it, so it counts as a "
         "backfire whenever the floor estimated from 60 changes falls below 0.62 (the red team's F1)",
         _backfire_cluster_world(r, r, 0.2, 0.0)),
        ("null: equal rates, 30 % clustered just inside the floor", "null", "the same with the cluster on 30 % of "
         "prompts", _backfire_cluster_world(r, r, 0.3, 0.0)),
        (f"effect: advantage exactly {m:g}, 0/1 flags", "effect", f"the boundary: vector {r + m:.0%}, field {r:.0%}",
         _backfire_world("flags", r + m, r)),
        (f"effect: advantage exactly {m:g}, independent flags", "effect", "the boundary, uncorrelated flags",
         _backfire_world("flags", r + m, r, rho=0.0)),
        (f"effect: advantage exactly {m:g}, t3 effects", "effect", "the boundary with continuous t3 effects",
         _backfire_world("t3", r + m, r)),
        (f"effect: advantage exactly {m:g}, field twice as variable", "effect", "the boundary, unequal variances",
         _backfire_world("normal", r + m, r, field_sd=2.0)),
        (f"effect: advantage exactly {m:g}, field's effects clustered just inside the floor", "effect",
         f"the boundary (vector {r + m:.0%}, field {r:.0%}) with the field's effect at -0.62 on 20 % of prompts (the "
         "mirror of the clustered null)", _backfire_cluster_world(r + m, r, 0.0, 0.2)),
        ("effect: vector 25 %, field 5 %", "effect", "an assumed paper-sized advantage (the paper reports no backfire "
         "numbers): the vector backfires on 25 % of prompts, the field on 5 %", _backfire_world("flags", 0.25, 0.05)),
    ]
    return world_table(worlds, paper="effect: vector 25 %")


BACKFIRE = register(Rule(
    id="svf.backfire", claim=BACKFIRE_CLAIM, text=BACKFIRE_TEXT,
    inputs={"field": "[prompts] the field's effect per held-out prompt at the primary coefficient (oriented: intended "
                     "direction positive)",
            "vector": "[prompts] the vector's effect, the same way",
            "reference": "[prompts, draws] the change (steered − unsteered, oriented the same way) a random direction "
                         "of the same length makes at the same coefficient, decoded like the grid (greedy)"},
    decide_one=_backfire, codes=_backfire_codes, profiles=PROFILES, dgps=_backfire_dgps(),
    detectable=lambda numbers: numbers["mde"],
    notes=(PROFILE_NOTES + ". At 30 prompts no discordant prompt at all cannot show the rates within the margin "
           "(0 of 30 is still 21 % likely at a true advantage of 0.05): 'not reproduced' then needs the field to "
           "backfire on a few more prompts than the vector. The paired tests are exact given the floor, but the claim is "
           "about the population floor, and the floor from 60 changes has an SD of about 0.08 on VADER's scale: prompts "
           "clustered just inside it (VADER is discrete) decided the verdict whenever it fell below them (red team F1: "
           "false 'reproduced' 12.9 % / 15.4 % with 20 % / 30 % of the vector's effects at -0.62, true floor 0.69). "
           "Requiring the verdict over the floor's 95 % interval bounds the error by 2.5 % + 5 % whatever the effects "
           "(simulated: 0.2 %), at a cost in power: at 60 changes the interval's upper end is near their maximum, so "
           "power at the paper's effect fell from about 0.70 to 0.52. More random directions per prompt narrow it.")))
