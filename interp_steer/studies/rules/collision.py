"""The verdict rules of the Creative Collision study (the paper's findings i–iii).

Each rule is registered in :data:`~interp_steer.studies.rules.base.REGISTRY`; the study's
:mod:`~interp_steer.studies.collision.findings` calls :meth:`Rule.decide` and wraps the decision in a
:class:`~interp_steer.studies.collision.result.Finding`.

- ``collision.dominance`` (finding i): does persona A dominate the mix across most of the α range?
  Judged on per-prompt scores **on a named scale**: dominance is relative to the scale it is read on
  (any monotone re-expression of the scores bends ``d(α)``), so the rule reads VADER's compound on
  VADER's own raw valence sum (the compound's exact inverse) and also on the logistic scale
  ``2·artanh(c)``, and a verdict counts only when both scales give it.
- ``collision.coherence`` (finding ii): at the top strength, is the mix nearest α = 0.5 more fluent
  (lower log-perplexity) than both pure ends?
- ``collision.shared_layer`` (finding iii): do the two personas (each against the baseline) peak at
  the same layer? An equivalence test on the distance between the peaks, from the probes' held-out
  per-example scores.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from scipy import stats as _sps
from scipy.special import expit

from interp_steer.stats import fieller, mean_and_se, skew_corrected_interval, t_quantile
from interp_steer.studies.rules.base import (
    DGP,
    VERDICTS,
    Decision,
    Rule,
    noise,
    register,
    vader_compound,
)
from interp_steer.studies.rules.paired import mde

QUICK_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
FULL_ALPHAS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
QUICK_PROMPTS, FULL_PROMPTS = 16, 30
"""The study's shipped sizes (``CollisionConfig.quick()`` and the default config on the 30 built-in
prompts; greedy decoding, one completion per cell). ``tests/test_rules_collision.py`` checks that
they match the config."""


def _mixing():
    """:mod:`interp_steer.studies.mixing`, imported on first use: it imports torch, and the command
    line's parser imports this registry (``interp-steer --help`` stays light)."""
    from interp_steer.studies import mixing

    return mixing


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """NaN is the intended mean of an all-NaN slice (a cell whose completions are all unscored)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _num(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _same_rows(array: np.ndarray, what: str) -> np.ndarray:
    """The one row of an input that a batch of runs shares (``[runs, k]`` or ``[k]``)."""
    array = np.asarray(array)
    if array.ndim == 2:
        if not (array == array[:1]).all():
            raise ValueError(f"{what} must be the same in every run of a batch")
        return array[0]
    return array


# =============================================================================== (i) dominance

DOMINANCE_CLAIM = "The optimistic persona (A) dominates the mix across most of the α range."

PAPER_AREA = 1 / 6
"""The paper's dominance effect as an area: ``d(α) = √α`` (balance point α* = 0.25)."""

SCORER_SCALES = {"vader": ("vader_raw", "artanh"), "probability": ("logit",), "log_odds": ("identity",)}
"""The scales a verdict must hold on, per scorer (``scale``): VADER's compound on its raw valence sum
(primary) and on ``2·artanh``; a probability on its logit; log-odds as they are. With VADER's
``sentiment_words`` the valence per sentiment word (:data:`PER_WORD`) is a third."""

PER_WORD = "per_word"
"""The intensive scale: VADER's raw valence sum over the number of words it scored (``s / N``)."""

SCALE_WORDS = {"vader_raw": "VADER's raw valence sum s = √15·c/√(1 − c²) (the compound's exact inverse)",
               "artanh": "the logistic scale 2·artanh(c) of VADER's compound",
               PER_WORD: "VADER's valence per sentiment word s / N (N: the words its lexicon scored)",
               "logit": "the logit of the probability", "identity": "the log-odds as measured"}

GRID_DECIMALS = 4
"""The scorers' own precision: VADER rounds its compound to 4 decimals (a probe's probability is a
float). Scores that all lie on a coarser grid (0.001 or coarser: rounded for a table) are refused:
near ±1 (or 0 and 1) the rounding moves the unbounded scale by more than any effect (VADER compounds
rounded to 2 decimals made a raw valence sum linear from 0 to +30 read "reproduced" 66 % / 86 % of
the time)."""

DOMINANCE_GUARD_LEVEL = 0.05
"""One-sided level of the degenerate-mix guards (paired t over prompts)."""

DOMINANCE_TEXT = (
    "per prompt, scores mapped per completion to a named unbounded scale (VADER: its raw valence sum "
    "s = sqrt(15) c / sqrt(1 - c^2), and separately 2 artanh(c), and, given the number N of words VADER scored, "
    "the valence per sentiment word s / N; probabilities: logit; log-odds: as they are) and averaged over a cell's "
    "completions; on each scale: reproduced when the pure ends are separated, the area between d(alpha) and the "
    "diagonal has a 95 % Fieller interval above 0, the orientation-signed bend (the area's numerator per prompt) has "
    "a 95 % Hall-corrected t interval above 0 too, and d(alpha) > alpha at a majority of the interior mixes (point "
    "estimates), and the scale-free rank check passes (per prompt, the mean over inner mixes alpha of P(mix alpha "
    "above pure B) - P(pure A above mix 1 - alpha), its 95 % t interval over prompts above 0: unchanged by any "
    "monotone re-expression of the scores, a saturating scorer included); not reproduced when the area lies below 0 by both intervals (B dominates), or its 90 % interval "
    "lies inside +-the paper's effect on the grid (TOST at 5 %), or at a majority of interior mixes d(alpha) is "
    "significantly below alpha^gamma (one-sided 2.5 %; gamma = 1 / (margin + 1/2) - 1, 1/2 at the paper's area "
    "1/6); inconclusive otherwise. A verdict counts only when every scale of the scorer gives it; otherwise "
    "inconclusive. Inconclusive too when the inner mixes degenerate more than the pure ends (one-sided paired t at "
    "5 % over prompts, inner mixes' mean minus the ends' mean): a larger share of exact-0 VADER compounds (text "
    "with no sentiment word), or, given it, a higher repetition rate. Dominance is relative to the scale: the "
    "report names it. When the true area lies between 0 and the paper's, both verdicts are true statements of "
    "different claims: reproduced = A leans significantly (the qualitative claim), not reproduced = smaller than "
    "the paper's effect")


def paper_gamma(margin: float | int = PAPER_AREA) -> float:
    """The exponent ``γ`` of the curve ``d(α) = α^γ`` whose area over the diagonal is ``margin``
    (``∫ (α^γ − α) dα = 1 / (γ + 1) − 1/2``; ``margin = 1/6`` gives ``γ = 1/2``)."""
    if not 0 < margin < 0.5:
        raise ValueError(f"margin must be in (0, 0.5) (the area of a curve d(α) = α^γ), got {margin}")
    return 1 / (margin + 0.5) - 1


def _check_alphas(alphas: np.ndarray) -> np.ndarray:
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or alphas.size < 3 or not np.isfinite(alphas).all() or alphas[0] != 0.0 \
            or alphas[-1] != 1.0 or np.any(np.diff(alphas) <= 0):
        raise ValueError(f"alphas must be finite and increase from 0 (pure B) to 1 (pure A), both included, with a "
                         f"mix between; got {alphas.tolist()}")
    return alphas


def _coarse_grid(values: np.ndarray) -> bool:
    """Whether every finite non-zero value lies on a grid of ``10^-(GRID_DECIMALS - 1)`` or coarser
    (at least 8 such values: by chance, 4-decimal values do so with probability 10^-8)."""
    v = values[np.isfinite(values) & (values != 0)]
    if v.size < 8:
        return False
    scaled = v * 10.0 ** (GRID_DECIMALS - 1)
    return bool(np.all(np.abs(scaled - np.rint(scaled)) < 1e-6))


def _check_scores(s: np.ndarray, scale: str) -> None:
    """Refuse scores that are not what ``scale`` says, or that no unbounded scale can read."""
    from interp_steer.studies.mixing import PROBABILITY_CLIP

    if np.isinf(s).any():
        raise ValueError(f"scores holds ±inf; with scale={scale!r} every score must be finite (NaN for an unscored "
                         f"completion)")
    finite = s[np.isfinite(s)]
    if finite.size == 0:
        return
    low, high = float(finite.min()), float(finite.max())
    if scale == "vader":
        if low < -1 or high > 1:
            raise ValueError(f"scale='vader' needs VADER compounds in [-1, 1]; scores lies in [{low:g}, {high:g}]. Pass "
                             f"a probe's probabilities with scale='probability', log-odds with scale='log_odds'")
        if _coarse_grid(s):
            raise ValueError(f"scores are VADER compounds rounded to {GRID_DECIMALS - 1} decimals or fewer; VADER gives "
                             f"{GRID_DECIMALS}. Pass the compounds as VADER returns them (a coarser rounding moves the "
                             f"raw valence sum near ±1 by more than any effect)")
    elif scale == "probability":
        if low <= PROBABILITY_CLIP or high >= 1 - PROBABILITY_CLIP:
            raise ValueError(f"scale='probability' needs probabilities strictly inside ({PROBABILITY_CLIP:g}, "
                             f"1 - {PROBABILITY_CLIP:g}); scores lies in [{low:g}, {high:g}]. A probability of 0 or 1 "
                             f"(or one rounded or saturated there) has no usable log-odds: pass the probe's log-odds "
                             f"(its decision function) with scale='log_odds'")
        if _coarse_grid(s):
            raise ValueError(f"scores are probabilities rounded to {GRID_DECIMALS - 1} decimals or fewer; their "
                             f"log-odds near 0 and 1 are then meaningless. Pass the probe's log-odds with "
                             f"scale='log_odds' (or the probabilities at full precision)")


def _check_aside(values: Any, s: np.ndarray, name: str, *, counts: bool) -> np.ndarray:
    """An optional per-completion input beside ``scores`` (``s [runs, alphas, items, samples]``):
    ``[runs, alphas, items]`` or ``s``'s shape, returned as ``s``'s shape."""
    v = np.asarray(values, dtype=float)
    if v.shape == s.shape[:-1] and (s.shape[-1] == 1 or not counts):  # a cell's rate stands for its completions
        v = np.broadcast_to(v[..., None], s.shape)
    if v.shape != s.shape:
        raise ValueError(f"{name} must match scores: [alphas, items] or [alphas, items, samples] = {s.shape[1:]}"
                         + ("" if counts else f" (or [alphas, items] = {s.shape[1:-1]}, a cell's mean)")
                         + f"; got {v.shape[1:]}")
    finite = v[np.isfinite(v)]
    if np.isinf(v).any():
        raise ValueError(f"{name} holds ±inf (NaN marks an unscored completion)")
    if counts and finite.size and (finite.min() < 0 or np.any(finite != np.rint(finite))):
        raise ValueError(f"{name} must be counts (non-negative integers: the words VADER's lexicon scored per "
                         f"completion)")
    if not counts and finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(f"{name} must be rates in [0, 1] (1 - distinct-3 per completion)")
    return v


def _on_scale(scores: np.ndarray, scale: str, words: np.ndarray | None = None) -> np.ndarray:
    """``scores [..., alphas, items, samples]`` mapped to ``scale`` completion by completion, then
    averaged over each cell's completions (NaNs left out). ``per_word`` divides each completion's raw
    valence sum by its ``words`` (NaN where VADER scored no word)."""
    with _quiet():
        if scale == PER_WORD:
            raw = _mixing().to_dominance_scale(scores, "vader_raw")
            mapped = np.where(words > 0, raw / np.where(words > 0, words, 1.0), np.nan)
        else:
            mapped = _mixing().to_dominance_scale(scores, scale)
        return np.nanmean(mapped, axis=-1)


def _degenerate_guard(alphas: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    """Do the inner mixes degenerate more than the pure ends? ``values [runs, alphas, items, samples]``
    (a 0/1 flag or a rate per completion, NaN unscored): per prompt, the inner mixes' mean minus the
    two ends' mean; fires when its mean over prompts is above 0 by a one-sided paired t-test at
    :data:`DOMINANCE_GUARD_LEVEL` (or every prompt's excess is the same positive number)."""
    with _quiet():
        cells = np.nanmean(values, axis=-1)  # [runs, alphas, items]
        inner = (alphas > 0) & (alphas < 1)
        mixes = np.nanmean(cells[:, inner], axis=1)
        ends = (cells[:, 0] + cells[:, -1]) / 2
        mean, se, n = mean_and_se(mixes - ends, axis=-1)
        threshold = t_quantile(1 - 2 * DOMINANCE_GUARD_LEVEL, n - 1) * se
        fires = (n >= 2) & ((mean > threshold) | ((se == 0) & (mean > 0)))
        return {"fires": fires, "excess": mean, "se": se, "n": n, "mixes": np.nanmean(mixes, axis=-1),
                "ends": np.nanmean(ends, axis=-1)}


RANK_LEVEL = 0.95
"""Two-sided level of the rank check's interval (its lower bound above 0 is a one-sided 2.5 % test)."""


def _superiority(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(a > b | a ≠ b) over every pair of a cell's completions, per run and prompt: ``a``, ``b``
    ``[runs, items, samples]``; NaN where either cell is unscored or every pair ties. Ties are left
    out, not counted half: a scorer that plateaus (a capped raw sum) piles ties up at its saturated
    end, and counting them half understated how often that end beats the mix next to it (a raw sum
    capped at +4, ends 0→+6: false "reproduced" 55 % / 88 % with ties counted half)."""
    d = a[..., :, None] - b[..., None, :]
    with _quiet():
        return np.nanmean(np.where(np.isnan(d) | (d == 0), np.nan, (d > 0) * 1.0), axis=(-1, -2))


def _rank_check(alphas: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    """The scale-free check ``"reproduced"`` also needs. ``s [runs, alphas, items, samples]``, any
    monotone scale (each completion's own score: ranks do not depend on it). Per prompt and inner
    mix α whose mirror 1 − α is on the grid: r(α) = P(mix α above pure B) − P(pure A above mix 1 − α),
    both probabilities of superiority over the cells' completions (ties left out), signed so that
    A's end is the higher; r > 0 when the mix stands further from B than the mirror mix from A. With
    no dominance on *some* scale where the noise is symmetric and alike at the two ends, r has mean 0
    whatever monotone re-expression the scorer applies (saturation included), which no fixed-scale
    area can say. Per prompt, the mean of r over the mixes; passes when its 95 % t interval over
    prompts lies above 0."""
    inner = [j for j, a in enumerate(alphas) if 0 < a < 1]
    pairs = [(j, int(np.nonzero(np.isclose(alphas, 1 - alphas[j]))[0][0])) for j in inner
             if np.isclose(alphas, 1 - alphas[j]).any()]
    runs = s.shape[0]
    if not pairs:
        nan = np.full(runs, np.nan)
        return {"passes": np.zeros(runs, dtype=bool), "mean": nan, "low": nan, "high": nan,
                "n": np.zeros(runs, dtype=int), "pairs": []}
    with _quiet():
        ends = np.nanmean(s[:, -1], axis=(-1, -2)) - np.nanmean(s[:, 0], axis=(-1, -2))
        sign = np.where(ends < 0, -1.0, 1.0)[:, None]
        r = np.stack([_superiority(s[:, j], s[:, 0]) - _superiority(s[:, -1], s[:, k]) for j, k in pairs])
        per_prompt = sign * np.nanmean(r, axis=0)  # [runs, items]
        mean, se, n = mean_and_se(per_prompt, axis=-1)
        half = t_quantile(RANK_LEVEL, n - 1) * se
    low, high = mean - half, mean + half
    return {"passes": (n >= 2) & (low > 0), "mean": mean, "low": low, "high": high, "n": n,
            "pairs": [(float(alphas[j]), float(alphas[k])) for j, k in pairs]}


def _scale_core(alphas: np.ndarray, z: np.ndarray, margin: float | int) -> dict[str, np.ndarray]:
    """The rule on one scale for a batch ``z [runs, alphas, items]``: a code per run (1 reproduced,
    −1 not reproduced, 0 inconclusive) and every number it used."""
    mixing = _mixing()
    ends, bend, rise = mixing.dominance_functionals(alphas, z)
    area = fieller(bend, ends, level=0.95, axis=-1)
    area90 = fieller(bend, ends, level=0.90, axis=-1)
    d = fieller(rise, ends[..., None, :], level=0.95, axis=-1)
    separated = area.bounded
    ends_mean, _, _ = mean_and_se(ends, axis=-1)
    orientation = np.sign(ends_mean)[..., None]  # d > α  <=>  sign(mean Δ) · mean(s(α) − line(α)) > 0
    # the area's numerator per prompt, oriented so that > 0 leans to A: a Hall-corrected interval too,
    # since one end's skewed noise (an occasional effusive completion) skews it and Fieller's is a t interval
    signed_bend, _, _, bend_low, bend_high = skew_corrected_interval(orientation * bend, level=0.95)
    inner = np.nonzero((alphas > 0) & (alphas < 1))[0]
    gamma = paper_gamma(margin)

    def test(curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per inner mix: orientation-signed mean of ``s(α) − s(0) − curve(α) · Δ`` and its t-threshold."""
        gap = rise[..., inner, :] - curve[inner, None] * ends[..., None, :]
        mean, se, n = mean_and_se(gap, axis=-1)
        return orientation * mean, t_quantile(0.95, n - 1) * se

    diagonal, diagonal_t = test(alphas)
    paper, paper_t = test(alphas**gamma)
    majority = inner.size // 2 + 1
    above_point = (diagonal > 0).sum(-1)
    above = (diagonal > diagonal_t).sum(-1)
    below = (diagonal < -diagonal_t).sum(-1)
    below_paper = (paper < -paper_t).sum(-1)
    margin_on_grid = float(mixing.trapezoid_weights(alphas) @ alphas**gamma - 0.5)

    a_dominates = separated & (area.low > 0) & (bend_low > 0)
    most_of_range = above_point >= majority
    b_dominates = separated & (area.high < 0) & (bend_high < 0)
    smaller = separated & area90.bounded & (area90.low > -margin_on_grid) & (area90.high < margin_on_grid)
    minority = separated & (below_paper >= majority)
    reproduced = a_dominates & most_of_range
    not_reproduced = ~reproduced & (b_dominates | smaller | minority)
    code = np.where(reproduced, 1, np.where(not_reproduced, -1, 0))
    return {"code": code, "separated": separated, "a_dominates": a_dominates, "most_of_range": most_of_range,
            "b_dominates": b_dominates, "smaller_than_paper": smaller, "confined_to_minority": minority,
            "area": area.estimate, "area_low": area.low, "area_high": area.high, "area_low_90": area90.low,
            "area_high_90": area90.high, "area_se": area.se, "n": area.n, "mde": mde(area.se, area.n),
            "signed_bend": signed_bend, "signed_bend_low": bend_low, "signed_bend_high": bend_high,
            "d": d.estimate, "d_low": d.low, "d_high": d.high, "inner": inner, "diagonal": diagonal,
            "diagonal_t": diagonal_t, "paper_gap": paper, "paper_t": paper_t, "above_point": above_point,
            "above": above, "below": below, "below_paper": below_paper, "majority": majority,
            "gamma": gamma, "margin_on_grid": margin_on_grid}


def _dominance_batch(alphas: Any, scores: Any, scale: str, margin: float | int, sentiment_words: Any = None,
                     repetition: Any = None) -> dict[str, Any]:
    """``scores [runs, alphas, items(, samples)]`` (the optional inputs likewise): the combined code
    per run, the grid, the scores as ``[runs, alphas, items, samples]``, each scale's core and the
    degenerate-mix guards."""
    if not isinstance(scale, str) or scale not in SCORER_SCALES:
        raise ValueError(f"scale must be one of {list(SCORER_SCALES)} (what the scores are: VADER compounds, a "
                         f"probe's P(A), or log-odds), got {scale!r}")
    alphas = _check_alphas(_same_rows(np.asarray(alphas, dtype=float), "alphas"))
    s = np.asarray(scores, dtype=float)
    if s.ndim == 3:
        s = s[..., None]
    if s.ndim != 4 or s.shape[1] != alphas.size:
        raise ValueError(f"scores must be [runs, alphas, items] or [runs, alphas, items, samples] with "
                         f"{alphas.size} alphas; got shape {s.shape}")
    _check_scores(s, scale)
    names = SCORER_SCALES[scale]
    words = None
    if sentiment_words is not None:
        if scale != "vader":
            raise ValueError(f"sentiment_words (VADER's lexicon hits) applies to VADER compounds (scale='vader'), "
                             f"not to scale={scale!r}")
        words = _check_aside(sentiment_words, s, "sentiment_words", counts=True)
        names = (*names, PER_WORD)
    per = {name: _scale_core(alphas, _on_scale(s, name, words), margin) for name in names}
    codes = np.stack([out["code"] for out in per.values()])
    on_scales = np.where((codes == 1).all(0), 1, np.where((codes == -1).all(0), -1, 0))
    rank = _rank_check(alphas, s)
    combined = np.where((on_scales == 1) & ~rank["passes"], 0, on_scales)
    guards: dict[str, dict[str, np.ndarray]] = {}
    if scale == "vader":
        guards["neutral"] = _degenerate_guard(alphas, np.where(np.isfinite(s), (s == 0).astype(float), np.nan))
    if repetition is not None:
        guards["repetition"] = _degenerate_guard(alphas, _check_aside(repetition, s, "repetition", counts=False))
    guarded = np.zeros(combined.shape, dtype=bool)
    for guard in guards.values():
        guarded |= guard["fires"]
    code = np.where(guarded, 0, combined)
    return {"code": code, "combined": combined, "on_scales": on_scales, "rank": rank, "alphas": alphas, "scores": s,
            "per": per, "names": names, "guards": guards}


def _dominance_codes(alphas: Any, scores: Any, scale: str, sentiment_words: Any = None, repetition: Any = None,
                     margin: float | int = PAPER_AREA) -> np.ndarray:
    return _dominance_batch(alphas, scores, scale, margin, sentiment_words, repetition)["code"]


def _power(effect: float | int, se: float | int, n: int) -> float:
    """Power of the one-sided 2.5 % t-test (the "A dominates" condition) against an area ``effect``."""
    if not (np.isfinite(se) and se > 0 and n >= 2):
        return float("nan")
    return float(_sps.nct.sf(float(t_quantile(0.95, n - 1)), n - 1, effect / se))


def _scale_numbers(out: dict[str, Any], alphas: np.ndarray, scale: str, margin: float | int) -> dict[str, Any]:
    """One scale's verdict and every number behind it (one run)."""
    first = {key: (value[0] if isinstance(value, np.ndarray) and value.ndim and key != "inner" else value)
             for key, value in out.items()}
    inner = [int(i) for i in first["inner"]]
    gamma, on_grid = first["gamma"], first["margin_on_grid"]
    se, n = float(first["area_se"]), int(first["n"])
    mixes = []
    for j, i in enumerate(inner):
        significance = ("above" if first["diagonal"][j] > first["diagonal_t"][j] else
                        "below" if first["diagonal"][j] < -first["diagonal_t"][j] else "not significant")
        mixes.append({"alpha": float(alphas[i]), "d": _num(first["d"][i]), "d_low": _num(first["d_low"][i]),
                      "d_high": _num(first["d_high"][i]), "paper_d": float(alphas[i] ** gamma),
                      "vs_diagonal": significance, "point_above_diagonal": bool(first["diagonal"][j] > 0),
                      "below_paper": bool(first["paper_gap"][j] < -first["paper_t"][j])})
    criteria = {key: bool(first[key]) for key in ("separated", "a_dominates", "most_of_range", "b_dominates",
                                                  "smaller_than_paper", "confined_to_minority")}
    return {
        "verdict": VERDICTS[int(first["code"])], "scale": scale, "scale_words": SCALE_WORDS[scale], "n_items": n,
        "area": {"estimate": _num(first["area"]), "low": _num(first["area_low"]), "high": _num(first["area_high"]),
                 "level": 0.95},
        "area_90": {"low": _num(first["area_low_90"]), "high": _num(first["area_high_90"])},
        "signed_bend": {"mean": _num(first["signed_bend"]), "low": _num(first["signed_bend_low"]),
                        "high": _num(first["signed_bend_high"]), "level": 0.95,
                        "interval": "t with Hall's skewness correction (adjusted skewness G1)",
                        "what": "per prompt, the area's numerator (the bend of s over the line between the ends), "
                                "signed so that > 0 leans to A"},
        "area_se": _num(se), "mde": _num(first["mde"]), "power_at_paper_effect": _num(_power(on_grid, se, n)),
        "margin": margin, "margin_on_grid": on_grid, "paper_gamma": gamma, "paper_curve": f"d(alpha) = alpha^{gamma:g}",
        "paper_balance_point": 0.5 ** (1 / gamma),
        "equivalence": {"interval_90": [_num(first["area_low_90"]), _num(first["area_high_90"])],
                        "bounds": [-on_grid, on_grid], "inside": criteria["smaller_than_paper"]},
        "mixes": mixes, "n_mixes": len(inner), "majority": int(first["majority"]),
        "mixes_above_point": int(first["above_point"]), "mixes_above": int(first["above"]),
        "mixes_below": int(first["below"]), "mixes_below_paper": int(first["below_paper"]), "criteria": criteria,
    }


GUARD_WORDS = {"neutral": "exact-0 VADER compounds (text in which VADER scores no word)",
               "repetition": "the repetition rate (1 - distinct-3)"}


def _guard_numbers(guard: dict[str, np.ndarray]) -> dict[str, Any]:
    return {"fired": bool(guard["fires"][0]), "inner_mixes": _num(guard["mixes"][0]), "ends": _num(guard["ends"][0]),
            "excess": _num(guard["excess"][0]), "excess_se": _num(guard["se"][0]), "n": int(guard["n"][0]),
            "test": f"one-sided paired t at {DOMINANCE_GUARD_LEVEL:.0%} over prompts: per prompt, the inner mixes' "
                    f"mean minus the pure ends' mean"}


def _dominance(alphas: Any, scores: Any, scale: str, sentiment_words: Any = None, repetition: Any = None, *,
               margin: float | int = PAPER_AREA) -> Decision:
    """``alphas [alphas]``: the mixes (0 = pure B, 1 = pure A); ``scores [alphas, items]`` or
    ``[alphas, items, samples]``: each prompt's score (each completion's) per mix; ``scale``: what the
    scores are (``"vader"`` compounds, ``"probability"`` of A, ``"log_odds"``); optional, of the
    scores' shape: ``sentiment_words`` (VADER only), the number of words VADER's lexicon scored in
    each completion, and ``repetition``, each completion's repetition rate (or a cell's mean,
    ``[alphas, items]``)."""
    s = np.asarray(scores, dtype=float)
    if s.ndim not in (2, 3):
        raise ValueError(f"scores must be [alphas, items] or [alphas, items, samples]; got shape {s.shape}")
    aside = [None if v is None else np.asarray(v, dtype=float)[None] for v in (sentiment_words, repetition)]
    out = _dominance_batch(alphas, s[None], scale, margin, *aside)
    code, grid, s4, per, names, guards = (out[k] for k in ("code", "alphas", "scores", "per", "names", "guards"))
    code = int(code[0])
    verdict = VERDICTS[code]
    by_scale = {name: _scale_numbers(per[name], grid, name, margin) for name in names}
    primary = by_scale[names[0]]
    with _quiet():
        cells = np.nanmean(s4[0], axis=-1)  # [alphas, items] on the score's own scale
    complete = np.isfinite(cells).all(axis=0)
    ends = cells[-1, complete] - cells[0, complete]
    ends_mean, ends_se, ends_n = (float(v) for v in mean_and_se(ends))
    half = float(t_quantile(0.95, ends_n - 1) * ends_se) if ends_n >= 2 else float("nan")
    checked = ", ".join(SCALE_WORDS[name] for name in names[1:])
    numbers = {
        **primary, "verdict": verdict, "scorer": scale, "scales_checked": list(names),
        "scale_verdicts": {name: by_scale[name]["verdict"] for name in names},
        "verdict_before_guards": VERDICTS[int(out["combined"][0])],
        "scales": by_scale if len(names) > 1 else {}, "n_dropped": int((~complete).sum()),
        "n_samples": int(s4.shape[-1]),
        "ends_difference": {"mean": _num(ends_mean), "low": _num(ends_mean - half), "high": _num(ends_mean + half),
                            "n": int(ends_n), "level": 0.95, "on": "the scores' own scale"},
        "guards": {name: {**_guard_numbers(guard), "what": GUARD_WORDS[name]} for name, guard in guards.items()},
        "verdict_on_scales": VERDICTS[int(out["on_scales"][0])],
        "rank_check": _rank_numbers(out["rank"]),
        "relative_to_scale": (f"dominance is relative to the scale it is read on: here {SCALE_WORDS[names[0]]}"
                              + (f", checked on {checked}" if checked else "")),
    }
    numbers["reason"] = reason = _dominance_reason(code, numbers, by_scale, names)
    return Decision(verdict, reason, numbers)


def _dominance_reason(code: int, nb: dict[str, Any], by_scale: dict[str, dict[str, Any]], names: tuple[str, ...]) -> str:
    primary = by_scale[names[0]]
    text = _scale_reason(primary)
    scale_line = f"on {SCALE_WORDS[names[0]]}: {text}"
    others = [name for name in names[1:]]
    if not others:
        line = scale_line
    elif all(by_scale[name]["verdict"] == primary["verdict"] for name in others):
        line = scale_line + "".join(f"; the same verdict on {SCALE_WORDS[name]} (area {_area_text(by_scale[name])})"
                                    for name in others)
    else:
        line = (f"the verdict depends on the scale, so it is inconclusive: {primary['verdict']} on "
                f"{SCALE_WORDS[names[0]]} ({text})"
                + "".join(f", {by_scale[name]['verdict']} on {SCALE_WORDS[name]} (area {_area_text(by_scale[name])})"
                          for name in others))
    rank = nb["rank_check"]
    if nb["verdict_on_scales"] == "reproduced" and not rank["passes"]:
        line = (f"A dominates on every scale, but not by the scale-free rank check, so it is inconclusive: "
                f"P(mix above B) - P(A above the mirror mix) is {_rank_text(rank)} (a monotone re-expression of "
                f"the scores, such as a scorer that saturates, can bend every fixed scale; {line})")
    fired = [name for name, guard in nb["guards"].items() if guard["fired"]]
    if not fired:
        return line
    parts = []
    for name in fired:
        guard = nb["guards"][name]
        parts.append(f"{GUARD_WORDS[name]}: {guard['inner_mixes']:.2f} at the inner mixes against {guard['ends']:.2f} at "
                     f"the pure ends")
    return (f"the inner mixes degenerate more than the pure ends ({'; '.join(parts)}; one-sided paired t at "
            f"{DOMINANCE_GUARD_LEVEL:.0%}), so their scores do not measure a blend of the two tones and the verdict "
            f"is inconclusive (without this guard: {nb['verdict_before_guards']}; {line})")


def _rank_numbers(rank: dict[str, Any]) -> dict[str, Any]:
    return {"passes": bool(rank["passes"][0]), "mean": _num(rank["mean"][0]), "low": _num(rank["low"][0]),
            "high": _num(rank["high"][0]), "n": int(rank["n"][0]), "level": RANK_LEVEL,
            "mirror_pairs": [list(pair) for pair in rank["pairs"]],
            "what": "per prompt, mean over the inner mixes of P(mix alpha above pure B) - P(pure A above mix "
                    "1 - alpha) (probabilities of superiority over the completions, ties half, signed so A's end is "
                    "the higher): > 0 leans to A on every monotone scale; 'reproduced' needs its t interval above 0"}


def _rank_text(rank: dict[str, Any]) -> str:
    if not rank["mirror_pairs"]:
        return "undefined (no inner mix has its mirror 1 - alpha on the grid)"
    f = lambda v: "n/a" if v is None else f"{v:+.2f}"  # noqa: E731
    return f"{f(rank['mean'])} [{f(rank['low'])}, {f(rank['high'])}] over {rank['n']} prompts"


def _area_text(nb: dict[str, Any]) -> str:
    def f(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.3f}"

    area = nb["area"]
    return f"{f(area['estimate'])} [{f(area['low'])}, {f(area['high'])}] (95 %)"


def _scale_reason(nb: dict[str, Any]) -> str:
    """Why one scale reads as it does (the old ``dominance_verdict`` reason, on a named scale)."""
    def f(value: float | None, fmt: str = "+.3f") -> str:
        return "n/a" if value is None else format(value, fmt)

    criteria, a90 = nb["criteria"], nb["area_90"]
    area_text = f"area {_area_text(nb)}"
    power = nb["power_at_paper_effect"]
    detect = (f"this run could detect an area of ±{f(nb['mde'], '.3f')} on this scale (80 % power, 5 % two-sided; "
              f"the paper's effect is {nb['margin_on_grid']:.3f} on this grid, power against it "
              f"{'n/a' if power is None else format(power, '.0%')})")
    mixes = f"d(α) > α at {nb['mixes_above_point']} of {nb['n_mixes']} mixes ({nb['mixes_above']} significantly)"
    bend = nb["signed_bend"]
    if not criteria["separated"]:
        return (f"the pure ends are not separated (their difference's 95 % interval contains 0), so dominance is "
                f"undefined; {detect}")
    if nb["verdict"] == "reproduced":
        text = f"A dominates: {area_text} lies above 0 and {mixes}"
        if criteria["smaller_than_paper"]:
            text += (f"; but the effect is significantly smaller than the paper's (90 % interval "
                     f"[{f(a90['low'])}, {f(a90['high'])}] inside ±{nb['margin_on_grid']:.3f}): both readings hold, "
                     f"A leans significantly and less than the paper says")
        return f"{text}; {detect}"
    if nb["verdict"] == "not reproduced":
        if criteria["b_dominates"]:
            lead = f"B, not A, dominates: {area_text} lies below 0"
        elif criteria["smaller_than_paper"]:
            lead = (f"the effect is smaller than the paper's: the area's 90 % interval [{f(a90['low'])}, "
                    f"{f(a90['high'])}] lies inside ±{nb['margin_on_grid']:.3f} (equivalence test at 5 %)")
        else:
            lead = (f"A's claimed advantage holds at a minority of the range at most: at {nb['mixes_below_paper']} of "
                    f"{nb['n_mixes']} mixes d(α) is significantly below the paper's {nb['paper_curve']}")
        return f"{lead}; {area_text}, {mixes}; {detect}"
    if criteria["a_dominates"]:
        return f"A dominates on average ({area_text}) but {mixes}, not a majority; {detect}"
    if nb["area"]["low"] is not None and nb["area"]["low"] > 0:
        return (f"the area's Fieller interval lies above 0 ({area_text}) but the signed bend's skew-corrected interval "
                f"[{f(bend['low'])}, {f(bend['high'])}] does not (skewed per-prompt values); {mixes}; {detect}")
    return f"neither A's dominance nor its absence is established: {area_text}, {mixes}; {detect}"


def _dominance_detectable(numbers: Mapping[str, Any]) -> float | None:
    """The largest MDE over the scales checked (the verdict needs every one of them)."""
    values = [s["mde"] for s in numbers.get("scales", {}).values()] or [numbers["mde"]]
    finite = [v for v in values if v is not None]
    return max(finite) if len(finite) == len(values) else None


# --------------------------------------------------------------------- dominance: simulated worlds


def _skewed_unit(rng: np.random.Generator, kind: str, size: Any) -> np.ndarray:
    """Right-skewed noise of mean 0 and variance 1: ``"exp"`` (centred exponential, skewness 2) or
    ``"lognormal"`` (σ = 1, skewness 6.2): an occasional effusive completion."""
    if kind == "exp":
        return rng.exponential(1.0, size) - 1.0
    return (rng.lognormal(0.0, 1.0, size) - math.exp(0.5)) / math.sqrt((math.e - 1) * math.e)


def _valence_world(lo: float | int, hi: float | int, *, curve: Callable[[np.ndarray], np.ndarray] = lambda a: a,
                   kind: str = "normal", sd: tuple[float | int, float | int] = (1.0, 1.0), scorer: str = "vader",
                   samples: int | None = None, saturation: float | None = None, collapse: float = 0.0,
                   collapse_everywhere: bool = False, effusive: float = 0.0, effusive_kind: str = "exp",
                   repetitive: float = 0.0, cap: bool = False):
    """Per prompt ``k`` a latent valence ``x_k(α) = a_k + b_k · curve(α) + σ(α) · ε`` with
    ``a_k ~ N(lo, 1)``, ``b_k ~ N(hi − lo, 0.5)`` (the pure ends' means are ``lo`` and ``hi``), noise
    ``ε`` of ``kind`` per completion with SD ``σ(α)`` from ``sd[0]`` (pure B) to ``sd[1]`` (pure A),
    ``samples`` completions per cell (default: the profile's). The scorer reads ``x`` as: ``"vader"``,
    VADER's raw valence sum (compound ``x / √(x² + 15)``, rounded to 4 decimals); ``"tanh"``, a
    compound ``tanh(x / 2)`` rounded to 4 decimals (the logistic world); ``"probability"``, a
    probe's ``sigmoid(x)``. ``saturation=S``: VADER reads ``S · tanh(x / S)`` instead of ``x`` (the
    raw sum saturates before VADER's normalisation; ``cap``: reads ``min(x, S)``, a plateau of ties).
    ``effusive``: the pure A end's completions get
    right-skewed noise of that SD too (``effusive_kind``: :func:`_skewed_unit`). ``collapse``: a completion of an inner mix
    collapses to neutral text (raw sum exactly 0) with probability ``collapse · 4α(1 − α)`` (every
    mix with probability ``collapse`` if ``collapse_everywhere``); ``repetitive``: an inner mix
    degenerates with probability ``repetitive · 4α(1 − α)`` into repetitive near-neutral text (raw
    sum ~ N(0, 0.3²), repetition rate ~ 0.8 instead of ~ 0.1), and the draw returns ``repetition``."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        alphas = np.asarray(profile["alphas"], dtype=float)
        n, m = int(profile["prompts"]), int(samples or profile["samples"])
        shape = (runs, alphas.size, n, m)
        a = rng.normal(lo, 1.0, (runs, 1, n, 1))
        b = rng.normal(hi - lo, 0.5, (runs, 1, n, 1))
        spread = (sd[0] + (sd[1] - sd[0]) * alphas)[None, :, None, None]
        x = a + b * curve(alphas)[None, :, None, None] + spread * noise(rng, kind, shape)
        if effusive:
            x[:, -1] += effusive * _skewed_unit(rng, effusive_kind, x[:, -1].shape)
        if saturation is not None:
            x = np.minimum(x, saturation) if cap else saturation * np.tanh(x / saturation)
        bell = 4 * alphas * (1 - alphas)
        if collapse:
            p = np.full(alphas.size, collapse) if collapse_everywhere else collapse * bell
            x = np.where(rng.random(shape) < p[None, :, None, None], 0.0, x)
        extra = {}
        if repetitive:
            degenerate = rng.random(shape) < (repetitive * bell)[None, :, None, None]
            x = np.where(degenerate, 0.3 * rng.standard_normal(shape), x)
            rep = np.clip(np.where(degenerate, 0.8, 0.1) + 0.05 * rng.standard_normal(shape), 0.0, 1.0)
            extra["repetition"] = rep[..., 0] if m == 1 else rep
        if scorer == "vader":
            scores, scale = vader_compound(x), "vader"
        elif scorer == "tanh":
            scores, scale = np.round(np.tanh(x / 2), 4), "vader"
        elif scorer == "probability":
            scores, scale = expit(x), "probability"
        else:
            raise ValueError(scorer)
        return {"alphas": np.broadcast_to(alphas, (runs, alphas.size)),
                "scores": scores[..., 0] if m == 1 else scores, "scale": scale, **extra}

    return draw


def _count_world(counts: tuple[float | int, float | int], tone: tuple[float | int, float | int], *,
                 curve: Callable[[np.ndarray], np.ndarray] = lambda a: a, words: bool = True):
    """VADER's raw valence sum as the sum over a completion's sentiment words: their number
    ``N ~ Poisson(L(α))``, ``L`` linear from ``counts[0]`` (pure B) to ``counts[1]`` (pure A), each
    word's valence ``t_k(α) + ε`` (SD 1) around a prompt's tone ``t_k(α) = tone[0] + (tone[1] −
    tone[0]) · curve(α) + N(0, 0.5²)``: ``s = N · t + √N · ε``. With ``curve`` linear both factors are
    linear in α and their product bends (no dominance in tone, yet the raw sum leans to the end with
    fewer words when it is the positive one). ``words``: the draw returns ``sentiment_words = N``."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        alphas = np.asarray(profile["alphas"], dtype=float)
        n = int(profile["prompts"])
        rate = counts[0] + (counts[1] - counts[0]) * alphas
        t = tone[0] + (tone[1] - tone[0]) * curve(alphas)[None, :, None] + 0.5 * rng.standard_normal((runs, 1, n))
        count = rng.poisson(np.broadcast_to(rate[None, :, None], (runs, alphas.size, n)))
        raw = count * t + np.sqrt(count) * rng.standard_normal(count.shape)
        out = {"alphas": np.broadcast_to(alphas, (runs, alphas.size)), "scores": vader_compound(raw), "scale": "vader"}
        if words:
            out["sentiment_words"] = count
        return out

    return draw


def _dgp(name: str, truth: str, description: str, draw, paper: bool = False) -> tuple[str, DGP]:
    return name, DGP(name, truth, description, draw, paper)


_DOMINANCE_DGPS = dict([
    *(_dgp(f"null: linear raw VADER, ends {lo:+g}→{hi:+g}", "null",
           f"VADER's raw valence sum exactly linear in α (no dominance), pure ends at {lo:+g} and {hi:+g} "
           f"(compounds {lo / math.sqrt(lo * lo + 15):+.2f} and {hi / math.sqrt(hi * hi + 15):+.2f}); per-completion SD 1",
           _valence_world(lo, hi))
      for lo, hi in ((-2, 2), (-1, 4), (0, 6), (-6, 0))),
    _dgp("null: linear raw VADER, 4 sampled completions per cell, SD 3, ends -8→+0", "null",
         "4 sampled completions per cell, per-completion SD 3: the inverse must be applied per completion, before "
         "averaging (the inverse of a cell's mean compound bends towards A here: on the raw scale alone a false "
         "'reproduced' of 21 % at the full size)", _valence_world(-8, 0, samples=4, sd=(3.0, 3.0))),
    _dgp("null: linear raw VADER, t3 noise, ends -1→+4", "null",
         "heavy-tailed per-completion noise (Student t, 3 d.o.f., unit variance)", _valence_world(-1, 4, kind="t3")),
    _dgp("null: linear raw VADER, noise SD 0.3 at B and 2 at A, ends -1→+4", "null",
         "unequal noise at the two ends", _valence_world(-1, 4, sd=(0.3, 2.0))),
    _dgp("null: linear raw VADER, noise SD 2 at B and 0.3 at A, ends -1→+4", "null",
         "unequal noise at the two ends, the other way", _valence_world(-1, 4, sd=(2.0, 0.3))),
    _dgp("null: linear raw VADER, effusive A end (skewed noise SD 4), ends +0→+6", "null",
         "the pure A end's completions carry extra right-skewed noise (a centred exponential, SD 4): an occasional "
         "effusive completion skews each prompt's bend, and Fieller's t-based interval alone errs on that side; the "
         "signed bend's Hall-corrected interval keeps it within the design",
         _valence_world(0, 6, effusive=4.0)),
    _dgp("null: linear raw VADER, effusive A end (skewed noise SD 3), ends +0→+4", "null",
         "as above, milder", _valence_world(0, 4, effusive=3.0)),
    _dgp("null: inner mixes collapse to neutral text (exact-0 compounds), ends -4→+1", "null",
         "the latent valence is linear in α, but a completion of an inner mix collapses to neutral text (VADER scores "
         "no word: compound exactly 0) with probability 0.5·4α(1−α), as the degenerate function-word text the "
         "paper's low mid-mix perplexities come from: near the A end's near-neutral compounds it reads as A "
         "dominating (before the neutral-share guard: false 'reproduced' 42 % quick, 77 % full)",
         _valence_world(-4, 1, collapse=0.5)),
    _dgp("null: inner mixes collapse to neutral text less often (0.3), ends -3→+1", "null",
         "as above with collapse probability 0.3·4α(1−α) (before the guard: 10 % / 18 %)",
         _valence_world(-3, 1, collapse=0.3)),
    _dgp("null: neutral text at every mix alike (0.4), ends -4→+1", "null",
         "a constant share of neutral completions at every α, ends included: the raw sum stays linear, the guard "
         "has nothing to find", _valence_world(-4, 1, collapse=0.4, collapse_everywhere=True)),
    _dgp("null: inner mixes degenerate into repetitive text (repetition measured), ends -4→+1", "null",
         "an inner mix degenerates with probability 0.5·4α(1−α) into repetitive near-neutral text (raw sum "
         "N(0, 0.3²), not exactly 0, so only the repetition rate the study measures shows it)",
         _valence_world(-4, 1, repetitive=0.5)),
    _dgp("null: sentiment-word count x tone, N ~ Poisson(6→2), tone -1.5→+1.5 (counts given)", "null",
         "VADER's raw sum = (number of sentiment words) x (their mean valence), each linear in α: the B persona "
         "writes three times as many sentiment words (the released dark persona's texts are about 3x longer), so the "
         "raw sum bends to A while the tone per word is linear (before the per-word scale: false 'reproduced' 76 % "
         "quick, 97 % full); the study passes VADER's lexicon hits",
         _count_world((6, 2), (-1.5, 1.5))),
    _dgp("null: sentiment-word count x tone, N ~ Poisson(4→3), tone -1→+1 (counts given)", "null",
         "milder (before: 7 % / 12 %)", _count_world((4, 3), (-1.0, 1.0))),
    _dgp("null: latent linear through tanh(z/2) (logistic compound), ends -5→+0", "null",
         "a compound made as tanh(z/2) of a latent linear in α (the world the old 2·artanh scale assumed): on "
         "VADER's raw scale alone it reads as A dominating; the second scale (2·artanh) keeps the verdict honest",
         _valence_world(-5, 0, scorer="tanh")),
    _dgp("null: latent linear through a sigmoid, probe probability, ends -3→+2", "null",
         "a probe's P(A) = sigmoid(latent), the latent linear in α, read with scale='probability'",
         _valence_world(-3, 2, scorer="probability")),
    _dgp("null: B dominates (α²), ends -1→+4", "null", "the mix leans to B: d(α) = α² on the raw scale",
         _valence_world(-1, 4, curve=np.square)),
    _dgp("effect: paper's √α on raw VADER, ends 3 SD apart (-1→+2)", "effect",
         "the paper's effect d(α) = √α (area 1/6) on VADER's raw scale with the ends 3 per-completion SDs apart "
         "(the paper's signal-to-noise assumed by the old tests; the paper reports none)",
         _valence_world(-1, 2, curve=np.sqrt), paper=True),
    _dgp("effect: √α at the default model's separation (ends +0.4→+1.7)", "effect",
         "√α with the ends of the default model's quick run (compounds +0.10 and +0.40, about 1 SD apart): low "
         "power, and 'not reproduced' must stay rare", _valence_world(0.4, 1.7, curve=np.sqrt)),
    _dgp("effect: √α, t3 noise, ends -1→+2", "effect", "heavy-tailed noise",
         _valence_world(-1, 2, curve=np.sqrt, kind="t3")),
    _dgp("effect: √α, noise SD 0.3 at B and 2 at A, ends -1→+2", "effect", "unequal noise at the two ends",
         _valence_world(-1, 2, curve=np.sqrt, sd=(0.3, 2.0))),
    _dgp("effect: √α, effusive A end (skewed noise SD 2), ends -1→+2", "effect",
         "right-skewed noise at the A end (a centred exponential), in the paper's effect",
         _valence_world(-1, 2, curve=np.sqrt, effusive=2.0)),
    _dgp("effect: √α on the negative side, ends -4→-1", "effect", "both ends negative (compounds -0.72 and -0.25)",
         _valence_world(-4, -1, curve=np.sqrt)),
    _dgp("effect: √α, 4 sampled completions per cell, ends +0→+3", "effect", "sampled decoding",
         _valence_world(0, 3, curve=np.sqrt, samples=4)),
    _dgp("effect: √α, inner mixes collapse to neutral text, ends +0→+4", "effect",
         "the paper's effect, but inner mixes collapse to neutral text with probability 0.5·4α(1−α): the zeros pull "
         "the mixes to B's near-neutral end (before the guard: false 'not reproduced' 79 % quick, 99.8 % full)",
         _valence_world(0, 4, curve=np.sqrt, collapse=0.5)),
    _dgp("effect: √α, neutral text at every mix alike (0.5), ends -1→+2", "effect",
         "a constant share of neutral completions everywhere (the guard must not fire more than its 5 %)",
         _valence_world(-1, 2, curve=np.sqrt, collapse=0.5, collapse_everywhere=True)),
    _dgp("effect: √α in tone, sentiment-word count Poisson(6→2) (counts given)", "effect",
         "the paper's effect in the tone per word, the B persona writing three times as many sentiment words: every "
         "scale (raw, 2·artanh, per word) leans to A", _count_world((6, 2), (-1.5, 1.5), curve=np.sqrt)),
    _dgp("effect: √α in tone, sentiment-word count Poisson(4) at every mix (counts given)", "effect",
         "the paper's effect in the tone per word, as many sentiment words at every mix",
         _count_world((4, 4), (-1.5, 1.5), curve=np.sqrt)),
    _dgp("effect: √α in the logistic world (tanh(z/2) compound), ends -2→+2", "effect",
         "the paper's effect on the latent of a tanh(z/2) compound", _valence_world(-2, 2, curve=np.sqrt, scorer="tanh")),
    _dgp("effect: √α, probe probability, ends -2→+2", "effect", "the paper's effect on a probe's latent",
         _valence_world(-2, 2, curve=np.sqrt, scorer="probability")),
])

SATURATING_NULLS = {
    "raw sum 4·tanh(x/4), ends 0→+6": _valence_world(0, 6, saturation=4.0),
    "raw sum 6·tanh(x/6), ends 0→+6": _valence_world(0, 6, saturation=6.0),
    "raw sum 3·tanh(x/3), ends 0→+3": _valence_world(0, 3, saturation=3.0),
    "raw sum 2·tanh(x/2), ends -2→+2 (symmetric)": _valence_world(-2, 2, saturation=2.0),
}
"""Nulls no fixed scale can tell from dominance: a latent linear in α whose raw valence sum saturates
(``S · tanh(x / S)``) *before* VADER's normalisation. On every fixed scale the mix then really does
sit closer to the saturated end, the same bend as the paper's √α; the rank check, unchanged by any
monotone re-expression, keeps them within the design (they are registered nulls too)."""

_DOMINANCE_DGPS.update([
    _dgp("null: raw sum capped at +4 (a plateau of ties), ends 0→+6", "null",
         "a latent linear in α whose raw valence sum is capped at +4: ties pile up at A's end; the rank check leaves "
         "tied pairs out (counted half they read 'reproduced' 55 % / 88 %, quick / full)",
         _valence_world(0, 6, saturation=4.0, cap=True)),
    _dgp("null: raw sum capped at +3 (a plateau of ties), ends 0→+6", "null", "as above, a lower cap (before: 90 % / "
         "99.9 %)", _valence_world(0, 6, saturation=3.0, cap=True)),
])
_DOMINANCE_DGPS.update(_dgp(f"null: saturating raw sum, {name}", "null",
                             "a latent linear in α whose raw valence sum saturates before VADER's normalisation: on "
                             "every fixed scale the mix sits nearer the saturated end; only the rank check sees no "
                             "dominance", draw) for name, draw in SATURATING_NULLS.items())

SATURATING_RATES = {"sat4": "98 % / 81 %", "sat6": "76 % / 42 %", "sat3": "18 % / 10 %", "satsym": "3.6 % / 2.7 %"}
"""False "reproduced" under :data:`SATURATING_NULLS` on the fixed scales alone (without the rank
check), full / quick (2000 runs, seed 7; ``tests/test_rules_collision.py`` re-measures them)."""

DOMINANCE_BEYOND = {"i08_r": "5.6 % / 15 %", "i08_nr": "37 % / 62 %", "hetero": "3.4 % / 4.8 %",
                    "counts": "41 % / 80 %", "ln4": "5.4 % / 7.9 %", "ln6": "6.2 % / 7.1 %",
                    "satnoise": "43 % / 96 %", "satnoise12": "8.6 % / 26 %"}
"""Measured rates quoted in the notes (``tests/test_rules_collision.py`` re-measures them)."""

DOMINANCE_NOTES = (
    "Estimand: the area between d(alpha) = mean(s(alpha) - s(0)) / mean(s(1) - s(0)) and the diagonal on the named "
    "scale, a ratio of means over prompts (the dominance of the average prompt's curve), not the mean of per-prompt "
    "areas: prompts whose ends are far apart weigh more (half the prompts with sqrt(alpha) and ends 4 apart, half with "
    "alpha^2 and ends 1 apart have a mean per-prompt area of 0 but a ratio of means above 0; the rank check weighs "
    "every prompt alike, so such runs rarely read 'reproduced': {hetero}, quick / full). "
    "'Reproduced' and 'not reproduced' answer two claims, and when the true area lies between 0 and the paper's "
    "both can be true: 'reproduced' says A leans significantly across most of the range (the qualitative claim), "
    "'not reproduced' that the effect is significantly smaller than the paper's (TOST against the paper's area) or "
    "below the paper's curve at most mixes. Which one a run gives depends on its precision: with d = alpha^0.8 "
    "(area 0.056, a third of the paper's; ends 3 SD apart) 'reproduced' {i08_r} and 'not reproduced' {i08_nr} of the "
    "time (quick / full); the reason says which reading a verdict rests on. The package's other "
    "paired rules have the same structure (significant effect vs smaller than the smallest effect of interest). "
    "Dominance is relative to the scale the scores are read on: a monotone re-expression of the scores bends d(alpha). "
    "The rule reads VADER's compound on VADER's own raw valence sum (the exact inverse of compound = s / sqrt(s^2 + 15), "
    "applied per completion before averaging; a compound of +-1 is read as +-0.9999) and, as a second scale, on "
    "2 artanh(c) (linear for a compound made as tanh(z/2)); a verdict counts only when both give it. Read on 2 artanh "
    "alone (the old rule) a raw valence sum exactly linear in alpha came out 'reproduced' 2 % (ends -2->+2), 15 % "
    "(-1->+4) and 53 % (0->+6) of the time at the full profile. VADER's raw sum is extensive (a sum over sentiment "
    "words): when the two personas write different numbers of sentiment words, a tone linear in alpha times a count "
    "linear in alpha bends the raw sum; given the counts (sentiment_words, which the study passes) the valence per "
    "sentiment word must agree too. Without them that world is beyond the rule (N ~ Poisson(6->2), tone -1.5->+1.5: "
    "'reproduced' {counts}, quick / full). The paper's own low mid-mix perplexities come from degenerate "
    "function-word text, which VADER scores as exactly neutral: a verdict is inconclusive when the inner mixes have "
    "significantly more exact-0 compounds than the pure ends, or (given repetition) are significantly more "
    "repetitive. Saturating scorers: when the raw valence sum itself saturates before VADER's normalisation "
    "(s = S tanh(x/S) of a latent x linear in alpha) the mix truly sits nearer the saturated end on every fixed "
    "scale, the same bend as the paper's sqrt(alpha): on the fixed scales alone the false 'reproduced' rate was "
    "(full / quick, 2000 runs) {sat4} at 4 tanh(x/4), ends 0->+6; {sat6} at 6 tanh(x/6), 0->+6; {sat3} at "
    "3 tanh(x/3), 0->+3; {satsym} at symmetric ends -2->+2. 'Reproduced' therefore also needs the scale-free rank "
    "check (ranks do not change under any monotone re-expression, so these worlds are registered nulls within the "
    "design); on its own a rank rule would err where the noise differs between the ends (there the fixed scales are "
    "right), so it only vetoes. It costs power (the paper's effect with the ends 3 SD apart: about 0.6 -> 0.3 quick, "
    "0.96 -> 0.73 full). Tied pairs (exact-0 compounds, identical greedy completions, a capped scorer) are left "
    "out. Beyond the design: a saturating scorer AND unequal noise at the two ends together (the A end noisier or "
    "more skewed): saturation bends every fixed scale towards A, and the noisier end lowers P(pure A above the "
    "mix), so the rank check leans to A too; no statistic of the scores can tell that world from dominance "
    "(4 tanh(x/4), ends 0->+6, noise SD 0.3 at B and 2 at A: 'reproduced' {satnoise}; SD 1 and 2: {satnoise12}, "
    "quick / full). With equal noise, or unequal noise without saturation, it is within the design. Beyond the "

    "design too: far more skewed noise at one end (an effusive A end with centred lognormal noise, skewness 6): "
    "Fieller's interval alone said 'reproduced' 9 % / 7 % (SD 4, ends 0->+4) and 11 % / 9 % (SD 6, 0->+6), the "
    "signed bend's Hall-corrected interval brings it to {ln4} and {ln6} (quick / full; the correction is first-order "
    "and a run of 16 prompts often lacks the tail); a skewness of 2 (exponential) is within the design. Inputs the "
    "rule refuses rather than misread: non-finite alphas, ±inf scores, VADER compounds or probabilities rounded to 3 "
    "decimals or fewer (compounds rounded to 2 decimals made a linear raw sum from 0 to +30 read 'reproduced' 66 % / "
    "86 %), probabilities at 0, 1 or the 1e-6 clip (a clipped end reads as a bend: 31 % / 66 %). Sizes: quick "
    "16 prompts x 5 alphas, full 30 prompts x 9 alphas, greedy (one completion per cell).")


DOMINANCE = register(Rule(
    id="collision.dominance", claim=DOMINANCE_CLAIM, text=DOMINANCE_TEXT,
    inputs={"alphas": "[alphas] the mixes, finite and increasing from 0 (pure B) to 1 (pure A)",
            "scores": "[alphas, items] each prompt's score per mix (or [alphas, items, samples]: each completion's; NaN "
                      "= unscored), on the scorer's own scale and precision: VADER compounds in [-1, 1] as VADER gives "
                      "them (4 decimals), a probe's P(A) strictly inside (1e-6, 1 - 1e-6) at full precision, or "
                      "finite log-odds; scores rounded to 3 decimals or fewer, ±inf, or probabilities at 0, 1 or the "
                      "clip are refused",
            "scale": "required: what the scores are, 'vader', 'probability' or 'log_odds' (checked against the values)",
            "sentiment_words": "optional, VADER only, the shape of scores: the number of words VADER's lexicon scored in "
                               "each completion (non-zero entries of its sentiments); adds the scale 'valence per "
                               "sentiment word' s / N, which must agree too (the study passes it)",
            "repetition": "optional, the shape of scores or [alphas, items]: each completion's repetition rate "
                          "(1 - distinct-3, in [0, 1]); the verdict is inconclusive when the inner mixes are "
                          "significantly more repetitive than the pure ends (the study passes it)"},
    decide_one=_dominance, codes=_dominance_codes,
    profiles={"quick": {"alphas": QUICK_ALPHAS, "prompts": QUICK_PROMPTS, "samples": 1},
              "full": {"alphas": FULL_ALPHAS, "prompts": FULL_PROMPTS, "samples": 1}},
    dgps=_DOMINANCE_DGPS, detectable=_dominance_detectable,
    notes=DOMINANCE_NOTES.format(**SATURATING_RATES, **DOMINANCE_BEYOND)))


# =============================================================================== (ii) coherence

COHERENCE_CLAIM = "At high strength, intermediate mixes are more coherent than either pure vector."

COHERENCE_TEXT = (
    "at the top strength, per prompt d_B = log-perplexity(mix nearest alpha = 0.5) - log-perplexity(pure B) and d_A "
    "likewise (paired over prompts; the estimand is mean(d) over prompts, the log of the ratio of geometric-mean "
    "perplexities); inconclusive when the top strength does not degrade a pure end (nothing for a mix to rescue); "
    "reproduced when the 95 % interval of mean(d_B) and of mean(d_A) both lie below 0 (the mix is more fluent than "
    "both; each a one-sided 2.5 % test); not reproduced when the 97.5 % interval of either lies above 0 (the mix is "
    "less fluent than an end; one-sided 1.25 % each, Bonferroni for the two); inconclusive otherwise. Intervals: t "
    "with Hall's skewness correction, skewness by the adjusted Fisher-Pearson G1, over the prompts whose difference "
    "is finite; a log-perplexity of +inf is the worst value: a prompt where the mix is +inf and the end finite rules "
    "out 'reproduced', one where the end is +inf and the mix finite rules out 'not reproduced' against that end "
    "(both +inf: a tie, left out). Inconclusive too when, given the repetition rates, the mix is significantly more "
    "repetitive than the pure ends (one-sided paired t at 5 %: a degenerate mix of repeated function words has a "
    "low perplexity)")
COHERENCE_LEVELS = {"reproduced": 0.95, "not reproduced": 0.975}
COHERENCE_GUARD_LEVEL = 0.05
"""One-sided level of the repetition guard."""

REPETITION_INPUTS = ("repetition_mid", "repetition_a", "repetition_b")


def _log_ppl_arrays(mid: Any, pure_a: Any, pure_b: Any, ndim: int) -> list[np.ndarray]:
    """The three log-perplexity inputs as float arrays of ``ndim`` dimensions and one shape."""
    arrays = []
    for name, value in (("mid", mid), ("pure_a", pure_a), ("pure_b", pure_b)):
        a = np.asarray(value, dtype=float)
        if a.ndim != ndim:
            what = "[prompts]" if ndim == 1 else "[runs, prompts]"
            raise ValueError(f"{name} must be {what}: one log-perplexity per prompt (a prompt's completions already "
                             f"averaged, a geometric mean of their perplexities); got shape {a.shape}. Average a "
                             f"[prompts, samples] array over its samples first: the prompts, not the completions, are "
                             f"the units")
        if np.isneginf(a).any():
            raise ValueError(f"{name} holds -inf; a log-perplexity is at least 0 (perplexity >= 1); NaN marks an "
                             f"unscored prompt, +inf the worst value")
        arrays.append(a)
    if not (arrays[0].shape == arrays[1].shape == arrays[2].shape):
        raise ValueError(f"mid, pure_a and pure_b must be per-prompt arrays of one shape (the same prompts); got "
                         f"{arrays[0].shape}, {arrays[1].shape}, {arrays[2].shape}")
    return arrays


def _degraded_flags(degraded: Any, runs: int) -> np.ndarray:
    flags = np.asarray(degraded)
    if flags.dtype != bool or flags.ndim > 1 or (flags.ndim == 1 and flags.shape != (runs,)):
        raise ValueError(f"degraded must be a bool (one per run: [runs] in a batch), whether the top strength "
                         f"degrades a pure end; got {degraded!r}")
    return np.broadcast_to(flags, (runs,))


def _coherence_core(mid: Any, pure_a: Any, pure_b: Any, degraded: Any = True, repetition_mid: Any = None,
                    repetition_a: Any = None, repetition_b: Any = None) -> dict[str, np.ndarray]:
    """The rule on a batch: ``mid``, ``pure_a``, ``pure_b`` ``[runs, prompts]``, ``degraded`` a bool
    or ``[runs]``, the repetition rates ``[runs, prompts]`` or None."""
    mid, pure_a, pure_b = _log_ppl_arrays(mid, pure_a, pure_b, 2)
    out: dict[str, np.ndarray] = {}
    for end, values in (("B", pure_b), ("A", pure_a)):
        with np.errstate(invalid="ignore"):
            d = mid - values  # +inf: the mix infinitely worse; -inf: the end; NaN: unscored or a tie of +infs
        finite = np.where(np.isfinite(d), d, np.nan)
        mean, se, n, low, high = skew_corrected_interval(finite, level=COHERENCE_LEVELS["reproduced"])
        *_, low_strict, high_strict = skew_corrected_interval(finite, level=COHERENCE_LEVELS["not reproduced"])
        out.update({f"mean_{end}": mean, f"se_{end}": se, f"n_{end}": n, f"low_{end}": low, f"high_{end}": high,
                    f"low_strict_{end}": low_strict, f"high_strict_{end}": high_strict, f"mde_{end}": mde(se, n),
                    f"mix_inf_{end}": (d == np.inf).sum(-1), f"end_inf_{end}": (d == -np.inf).sum(-1)})
    runs = mid.shape[0]
    degraded = _degraded_flags(degraded, runs)
    valid = (out["n_A"] >= 2) & (out["n_B"] >= 2)
    more_fluent = valid
    less_fluent = np.zeros(runs, dtype=bool)
    for end in ("A", "B"):
        more_fluent = more_fluent & (out[f"high_{end}"] < 0) & (out[f"mix_inf_{end}"] == 0)
        less_fluent |= valid & (out[f"low_strict_{end}"] > 0) & (out[f"end_inf_{end}"] == 0)
    given = [v is not None for v in (repetition_mid, repetition_a, repetition_b)]
    guarded = np.zeros(runs, dtype=bool)
    if any(given):
        if not all(given):
            raise ValueError(f"pass all of {', '.join(REPETITION_INPUTS)} or none")
        reps = []
        for name, value in zip(REPETITION_INPUTS, (repetition_mid, repetition_a, repetition_b), strict=True):
            r = np.asarray(value, dtype=float)
            finite = r[np.isfinite(r)]
            if r.shape != mid.shape or np.isinf(r).any() or (finite.size and (finite.min() < 0 or finite.max() > 1)):
                raise ValueError(f"{name} must be a repetition rate in [0, 1] (1 - distinct-3; NaN unscored) per prompt "
                                 f"of the same prompts as mid ({mid.shape[1:]}); got shape {r.shape}")
            reps.append(r)
        excess = reps[0] - (reps[1] + reps[2]) / 2
        r_mean, r_se, r_n = mean_and_se(excess, axis=-1)
        with np.errstate(invalid="ignore"):
            guarded = (r_n >= 2) & ((r_mean > t_quantile(1 - 2 * COHERENCE_GUARD_LEVEL, r_n - 1) * r_se)
                                    | ((r_se == 0) & (r_mean > 0)))
        with _quiet():
            out.update(repetition_excess=r_mean, repetition_se=r_se, repetition_n=r_n,
                       repetition_mid=np.nanmean(reps[0], -1), repetition_ends=np.nanmean((reps[1] + reps[2]) / 2, -1))
    out["repetition_guard"] = guarded
    code = np.where(more_fluent, 1, np.where(less_fluent, -1, 0))
    out["code_before_guards"] = np.where(degraded, code, 0)
    out["code"] = np.where(~degraded | guarded, 0, code)
    out["degraded"] = degraded
    return out


def _coherence_codes(mid: Any, pure_a: Any, pure_b: Any, degraded: Any = True, repetition_mid: Any = None,
                     repetition_a: Any = None, repetition_b: Any = None) -> np.ndarray:
    return _coherence_core(mid, pure_a, pure_b, degraded, repetition_mid, repetition_a, repetition_b)["code"]


def _coherence(mid: Any, pure_a: Any, pure_b: Any, degraded: Any = True, repetition_mid: Any = None,
               repetition_a: Any = None, repetition_b: Any = None) -> Decision:
    """``mid``, ``pure_a``, ``pure_b``: per-prompt log-perplexity at the top strength of the mix nearest
    α = 0.5 and of the two pure ends (1-D, the same prompts, NaN where unscored, +inf the worst);
    ``degraded``: a bool, whether the top strength degrades a pure end (the study's degradation rule);
    ``repetition_*``: optional, each prompt's repetition rate in the same three cells."""
    arrays = _log_ppl_arrays(mid, pure_a, pure_b, 1)
    if not isinstance(degraded, (bool, np.bool_)):
        raise ValueError(f"degraded must be a bool (whether the top strength degrades a pure end); got {degraded!r}")
    reps = [None if v is None else np.asarray(v, dtype=float)[None] for v in (repetition_mid, repetition_a,
                                                                                repetition_b)]
    out = {k: (v[0] if isinstance(v, np.ndarray) and v.ndim else v)
           for k, v in _coherence_core(*(a[None] for a in arrays), np.array([bool(degraded)]), *reps).items()}
    code = int(out["code"])

    def interval(end: str) -> dict[str, Any]:
        return {"mean": _num(out[f"mean_{end}"]), "low": _num(out[f"low_{end}"]), "high": _num(out[f"high_{end}"]),
                "n": int(out[f"n_{end}"]), "level": COHERENCE_LEVELS["reproduced"],
                "low_97_5": _num(out[f"low_strict_{end}"]), "high_97_5": _num(out[f"high_strict_{end}"]),
                "prompts_mix_infinite": int(out[f"mix_inf_{end}"]), "prompts_end_infinite": int(out[f"end_inf_{end}"])}

    def f(x: float | None) -> str:
        return "n/a" if x is None else f"{x:+.2f}"

    to_b, to_a = interval("B"), interval("A")
    mdes = [_num(out["mde_B"]), _num(out["mde_A"])]
    detect = max(mdes) if None not in mdes else None
    guard = None
    if reps[0] is not None:
        guard = {"fired": bool(out["repetition_guard"]), "mix": _num(out["repetition_mid"]),
                 "ends": _num(out["repetition_ends"]), "excess": _num(out["repetition_excess"]),
                 "excess_se": _num(out["repetition_se"]), "n": int(out["repetition_n"]),
                 "test": f"one-sided paired t at {COHERENCE_GUARD_LEVEL:.0%}: per prompt, the mix's repetition rate "
                         f"minus the mean of the ends'"}
    numbers = {"verdict": VERDICTS[code], "verdict_before_guards": VERDICTS[int(out["code_before_guards"])],
               "log_perplexity_mid_minus_B": to_b, "log_perplexity_mid_minus_A": to_a,
               "top_lambda_degraded": bool(degraded), "mde": detect, "levels": dict(COHERENCE_LEVELS),
               "repetition_guard": guard,
               "estimand": "mean over prompts of log-perplexity(mix) - log-perplexity(end), per end",
               "interval": "t with Hall's skewness correction (adjusted skewness G1)"}
    text = (f"log-perplexity of the mix minus the pure B end {f(to_b['mean'])} [{f(to_b['low'])}, {f(to_b['high'])}], "
            f"minus the pure A end {f(to_a['mean'])} [{f(to_a['low'])}, {f(to_a['high'])}] (95 %, negative = the mix "
            "is more fluent)")
    infinite = [f"the mix's log-perplexity is +inf at {i['prompts_mix_infinite']} prompt(s) where the {end} end's is "
                f"finite" for end, i in (("B", to_b), ("A", to_a)) if i["prompts_mix_infinite"]]
    infinite += [f"the {end} end's is +inf at {i['prompts_end_infinite']} prompt(s) where the mix's is finite"
                 for end, i in (("B", to_b), ("A", to_a)) if i["prompts_end_infinite"]]
    if infinite:
        text += " over finite differences; " + "; ".join(infinite)
    detect_text = (f"; this run could detect a difference of ±{detect:.2f} in log-perplexity" if detect is not None
                   else "; too few prompts to detect anything")
    if not degraded:
        reason = ("the top strength does not degrade the pure ends, so there is nothing for a mix to rescue; raise "
                  "the top λ. " + text)
    elif guard is not None and guard["fired"]:
        reason = (f"the mix is more repetitive than the pure ends (repetition {guard['mix']:.2f} against "
                  f"{guard['ends']:.2f}, one-sided paired t at {COHERENCE_GUARD_LEVEL:.0%}), and repeated words have "
                  f"a low perplexity, so its perplexity does not measure coherence and the verdict is inconclusive "
                  f"(without this guard: {numbers['verdict_before_guards']}): {text}")
    elif code == 1:
        reason = f"the mix is more fluent than both pure ends: {text}"
    elif code == -1:
        worse = [end for end in ("B", "A") if out[f"low_strict_{end}"] > 0 and not out[f"end_inf_{end}"]]
        reason = (f"the mix is less fluent than the pure {' and '.join(worse)} end (97.5 % interval above 0): {text}")
    else:
        reason = f"the mix is not shown to be more fluent than both ends, nor less fluent than either: {text}"
    numbers["reason"] = reason + detect_text
    return Decision(VERDICTS[code], reason + detect_text, numbers)


def _fluency_world(mid: float | int, a: float | int, b: float | int, *, kinds: tuple[str, str, str] = ("normal",) * 3,
                   sds: tuple[float | int, float | int, float | int] = (0.3, 0.3, 0.3), prompt_sd: float | int = 0.5,
                   collapse: tuple[str, float, float] | None = None, repetitive: float = 0.0,
                   repetition: bool = False, level: float | int = 2.5):
    """Per prompt ``k`` and arm (mix, pure A, pure B): log-perplexity ``level + μ_arm + u_k + sd_arm · ε``,
    ``u_k ~ N(0, prompt_sd²)`` shared by the arms (``level`` 2.5: perplexity 12), ``ε`` of the arm's kind: ``"normal"``, ``"t3"``,
    ``"exp"`` (a centred exponential: most prompts near the mean, a few far above, as degenerate text
    is), unit variance. ``collapse = (arms, p, jump)``: in each arm named in ``arms`` ("m", "a", "b")
    a prompt collapses into garbage (``+jump``) with probability ``p``, its mean lowered by ``p · jump``
    so that the arm's mean stays ``μ_arm``. ``repetitive``: the mix degenerates into repeated function
    words on that share of prompts (log-perplexity ``0.4 + N(0, 0.1²)``, repetition rate 0.8 instead of
    0.1); ``repetition``: the draw returns the three arms' repetition rates."""

    def arm(rng: np.random.Generator, kind: str, size: tuple[int, int]) -> np.ndarray:
        if kind == "exp":
            return rng.exponential(1.0, size) - 1.0
        return noise(rng, kind, size)

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        size = (runs, int(profile["prompts"]))
        u = level + prompt_sd * rng.standard_normal(size)
        arms = [mu + u + sd * arm(rng, kind, size) for mu, kind, sd in zip((mid, a, b), kinds, sds, strict=True)]
        if collapse is not None:
            which, p, jump = collapse
            for i, key in enumerate("mab"):
                if key in which:
                    arms[i] = arms[i] - p * jump + np.where(rng.random(size) < p, jump, 0.0)
        rep = [np.clip(0.1 + 0.05 * rng.standard_normal(size), 0.0, 1.0) for _ in range(3)]
        if repetitive:
            degenerate = rng.random(size) < repetitive
            arms[0] = np.where(degenerate, 0.4 + 0.1 * rng.standard_normal(size), arms[0])
            rep[0] = np.where(degenerate, np.clip(0.8 + 0.05 * rng.standard_normal(size), 0.0, 1.0), rep[0])
        out = {"mid": arms[0], "pure_a": arms[1], "pure_b": arms[2], "degraded": np.ones(runs, dtype=bool)}
        if repetition or repetitive:
            out.update(zip(REPETITION_INPUTS, rep, strict=True))
        return out

    return draw


_BOUNDARY = 0.02
_COHERENCE_DGPS = dict([
    _dgp("null: mix as fluent as the A end, B end worse, normal", "null",
         "the least favourable null: mean(mix - A) = 0 exactly, the B end 1.5 worse in log-perplexity; per-arm SD 0.3, "
         "prompt SD 0.5", _fluency_world(0, 0, 1.5)),
    _dgp("null: mix as fluent as the A end, the mix skewed (exponential)", "null",
         "the mix degenerates on a few prompts (centred exponential, SD 0.6) where the A end varies little (SD 0.1)",
         _fluency_world(0, 0, 1.5, kinds=("exp", "normal", "normal"), sds=(0.6, 0.1, 0.3))),
    _dgp("null: mix as fluent as both ends, the mix skewed (exponential)", "null",
         "mean(mix - end) = 0 for both ends, the mix skewed", _fluency_world(0, 0, 0, kinds=("exp", "normal", "normal"),
                                                                         sds=(0.6, 0.1, 0.1))),
    _dgp("null: mix as fluent as the A end, t3", "null", "heavy tails in every arm",
         _fluency_world(0, 0, 1.5, kinds=("t3",) * 3)),
    _dgp("null: mix as fluent as the A end, unequal variances", "null", "SD 0.1 (mix), 0.8 (A end), 0.3 (B end)",
         _fluency_world(0, 0, 1.5, sds=(0.1, 0.8, 0.3))),
    _dgp("null: the mix collapses (+2) on 20 % of prompts, else 0.4 better than the A end", "null",
         "garbage on a fifth of the mix's prompts, mean(mix - A) = 0: a mode common enough for 16 prompts to show it "
         "(rarer modes are beyond the design: see the notes)", _fluency_world(0, 0, 1.5, collapse=("m", 0.2, 2.0),
                                                                             sds=(0.15, 0.15, 0.3))),
    _dgp("null: the mix degenerates into repeated function words on 30 % of prompts (repetition given)", "null",
         "the paper's own failure mode (MISSION.md: its low mid-mix perplexities come from degenerate function-word "
         "text): on 30 % of prompts the mix repeats function words (log-perplexity 0.4, repetition 0.8 against 0.1), "
         "elsewhere it is as fluent as both ends (before the repetition guard: false 'reproduced' 66 % quick, 93 % "
         "full)", _fluency_world(0, 0, 0, repetitive=0.3)),
    _dgp("effect: mix barely more fluent than both ends (boundary), normal", "effect",
         f"the least favourable effect: the mix {_BOUNDARY} below both ends in log-perplexity",
         _fluency_world(-_BOUNDARY, 0, 0)),
    _dgp("effect: boundary, the ends skewed (exponential)", "effect",
         "the pure ends degenerate on a few prompts (centred exponential, SD 0.6), the mix varies little (SD 0.1)",
         _fluency_world(-_BOUNDARY, 0, 0, kinds=("normal", "exp", "exp"), sds=(0.1, 0.6, 0.6))),
    _dgp("effect: boundary, t3", "effect", "heavy tails", _fluency_world(-_BOUNDARY, 0, 0, kinds=("t3",) * 3)),
    _dgp("effect: boundary, unequal variances", "effect", "SD 0.1 (mix), 0.8 (A end), 0.3 (B end)",
         _fluency_world(-_BOUNDARY, 0, 0, sds=(0.1, 0.8, 0.3))),
    _dgp("effect: boundary, the ends collapse (+2) on 25 % of prompts", "effect",
         "both ends collapse into garbage on a quarter of the prompts, the mix 0.02 below them in mean (so 0.48 above "
         "them on the other prompts)", _fluency_world(-_BOUNDARY, 0, 0, collapse=("ab", 0.25, 2.0),
                                                      sds=(0.15, 0.15, 0.15))),
    _dgp("effect: mix 0.3 more fluent than both ends, repetition given (no more repetitive)", "effect",
         "the assumed effect with the repetition rates passed, the mix as repetitive as the ends: the guard costs "
         "power (it fires 5 % of the time) but never makes 'not reproduced'", _fluency_world(-0.3, 0, 0, repetition=True)),
    _dgp("effect: mix 0.3 more fluent than both ends", "effect",
         "an assumed effect (the paper reports no per-prompt size): the mix 0.3 below both ends in log-perplexity "
         "(perplexity x0.74), per-arm SD 0.3, prompt SD 0.5", _fluency_world(-0.3, 0, 0), paper=True),
])

RARE_MODES = {
    "mix collapses (+4) on 5 % of prompts, else 0.2 better than the A end": (
        "null", _fluency_world(0, 0, 1.5, collapse=("m", 0.05, 4.0), sds=(0.15, 0.15, 0.3))),
    "mix collapses (+3) on 10 % of prompts, else 0.3 better than the A end": (
        "null", _fluency_world(0, 0, 1.5, collapse=("m", 0.10, 3.0), sds=(0.15, 0.15, 0.3))),
    "the ends collapse (+4) on 5 % of prompts, the mix 0.02 below them in mean": (
        "effect", _fluency_world(-_BOUNDARY, 0, 0, collapse=("ab", 0.05, 4.0), sds=(0.15, 0.15, 0.15))),
    "the ends collapse (+3) on 10 % of prompts, the mix 0.02 below them in mean": (
        "effect", _fluency_world(-_BOUNDARY, 0, 0, collapse=("ab", 0.10, 3.0), sds=(0.15, 0.15, 0.15))),
}
"""Worlds beyond the design (see the rule's notes): a rare mode of the per-prompt differences, which a
run of n prompts often does not contain, carries the mean."""

RARE_RATES = {"m5": "42 % / 21 %", "m10": "19 % / 4 %", "e5": "55 % / 38 %", "e10": "33 % / 8 %"}
"""The error rates under :data:`RARE_MODES`, quick / full (``tests/test_rules_collision.py``
re-measures them)."""

COHERENCE_NOTES = (
    "Estimand: per end, the mean over prompts of log-perplexity(mix) - log-perplexity(end) (per-prompt log-perplexity "
    "is a geometric mean over a prompt's completions; greedy: one), i.e. the log of the ratio of the geometric-mean "
    "perplexities. A documented minimum: the design holds when every mode of the per-prompt differences that moves "
    "the mean occurs on at least about a fifth of the prompts at the quick size (16) and about 15 % at the full size "
    "(30) (measured: a collapse of either kind on 20 % of 16 prompts errs 4.9 % and 2.9 %, on 15 % of 30 prompts "
    "1.4 % and 0.7 %). A rarer mode is often absent from a run (a mode of 5 % is missing from 44 % of 16-prompt "
    "runs), and when it carries the mean no rule on n prompts can see it. Measured (quick / full, "
    "error rate): the mix collapses (+4 in log-perplexity) on 5 % of prompts and is 0.2 better than the A end "
    "elsewhere (mean 0): false 'reproduced' {m5}; the same at 10 % (+3): {m10}; the ends collapse (+4) on 5 % of "
    "prompts with the mix 0.02 better in mean (worse on 95 % of prompts): false 'not reproduced' {e5}; at 10 % (+3): "
    "{e10}. A distribution-free version (a sign test per end: the mix more fluent on most prompts) changes the "
    "estimand rather than these rates (its 'reproduced' in the first world is 38 %, correct under its estimand) and "
    "costs power (0.41 / 0.83 against 0.59 / 0.93 at the assumed effect of 0.3), so the rule keeps the mean. The "
    "paper's own low mid-mix perplexities come from degenerate function-word text: given the repetition rates (the "
    "study passes them) a mix significantly more repetitive than the ends makes the verdict inconclusive. The old "
    "rule (plain t intervals, either end significantly worse at 95 %) erred under skewed log-perplexities: a false "
    "'reproduced' of 8 % (quick) when the mix degenerates on a few prompts, a false 'not reproduced' of 15 % when "
    "the ends do. Beyond the design too: far more skewed (lognormal, skewness 6) per-prompt differences, where the "
    "errors are 6-7 % at 16 prompts and 5-6 % at 30. Refused: per-completion [prompts, samples] arrays (average a "
    "prompt's completions first: the prompts are the units), -inf, a degraded flag that is not a bool.")

COHERENCE = register(Rule(
    id="collision.coherence", claim=COHERENCE_CLAIM, text=COHERENCE_TEXT,
    inputs={"mid": "[prompts] (1-D) log-perplexity of the mix nearest alpha = 0.5 at the top strength, per prompt (a "
                   "prompt's completions already averaged); NaN unscored, +inf the worst value",
            "pure_a": "[prompts] log-perplexity of the pure A end (alpha = 1) at the top strength, same prompts",
            "pure_b": "[prompts] log-perplexity of the pure B end (alpha = 0) at the top strength, same prompts",
            "degraded": "bool: the top strength degrades a pure end (the study's degradation rule); False makes "
                        "the verdict inconclusive",
            "repetition_mid": "optional [prompts] repetition rate (1 - distinct-3, in [0, 1]) of the mix's completions "
                              "per prompt; with repetition_a and repetition_b the verdict is inconclusive when the mix is "
                              "significantly more repetitive than the ends (the study passes them)",
            "repetition_a": "optional [prompts] the same for the pure A end",
            "repetition_b": "optional [prompts] the same for the pure B end"},
    decide_one=_coherence, codes=_coherence_codes,
    profiles={"quick": {"prompts": QUICK_PROMPTS}, "full": {"prompts": FULL_PROMPTS}},
    dgps=_COHERENCE_DGPS, detectable=lambda numbers: numbers["mde"],
    notes=COHERENCE_NOTES.format(**RARE_RATES),
))


# ============================================================================ (iii) shared layer

SHARED_CLAIM = "Both personas localise best at the same layer (a shared moral-tone substrate)."

SHARED_TOLERANCE = 0.1
"""Peaks within ``round(0.1 × depth)`` layers count as the same layer (3 of 30; 4 of 40)."""
SHARED_INFLATION = 1.5
"""The spread of the resampled means when the folds are not given (``folds_a``/``folds_b``): a fixed
guess of how much the training folds' own variation widens the interval (measured 1.2-1.3x on the
default model's probes, more with more examples)."""
SHARED_LEVEL = 0.90
SHARED_RESAMPLES = 400
SHARED_MIN_PER_CLASS = 10
"""The fewest examples of each class a profile must have (below it a bootstrap over examples has
too few distinct resamples to mean anything: one example per class gives a zero-width interval)."""
SHARED_MIN_DEPTH = 10
"""The fewest layers (``max(layers) − min(layers) + 1``): "the same layer" is a tenth of the depth,
at least one layer, and with fewer than 10 layers ±1 layer is most of the model."""

SHARED_TEXT = (
    "per profile (A vs baseline, B vs baseline), each example's held-out probe quality per layer, q = -(1 - p)^2 with "
    "p the probe's cross-validated probability of the example's true class (the negative Brier score: it keeps "
    "ranking layers where accuracy saturates at 1); the peak is the layer with the highest mean q (ties: every tied "
    "layer). A 90 % percentile interval for the distance peak_A - peak_B from a bootstrap over examples (stratified by "
    "class, the two profiles resampled independently; with ties, the interval spans every tied layer), its resampled "
    "means spread around the observed ones by sqrt((S_e + (N/F) S_f) / (S_e + S_f)): resampling held-out examples "
    "misses how much the probes themselves vary between the F training folds, so, given the fold of each example, "
    "S_f (the between-fold variance component of each layer's difference from the peak, from the per-fold means, one "
    "random-effects ANOVA per layer, summed over layers, at least 0) and S_e (the within-fold variance, summed) "
    "estimate the missing share; without the folds a fixed 1.5x; reproduced when the interval lies inside +-k "
    "layers, k = round(0.1 x depth) (equivalence at 5 %); not reproduced when it lies outside (the peaks "
    "significantly more than k layers apart); inconclusive otherwise (flat or saturated profiles)")


def brier_quality(scores: Any, labels: Any) -> np.ndarray:
    """Per example and layer, ``−(1 − p)²`` with ``p = sigmoid(score)`` the probability the probe gives
    the example's true class (``labels`` 1 or 0, broadcast along the last axis of ``scores``)."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels)
    signed = np.where((labels == 1)[..., None], scores, -scores)
    return -((1.0 - expit(signed)) ** 2)


def _bootstrap_weights(labels: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``[resamples, examples]`` weights of a bootstrap stratified by class (each row sums to 1)."""
    n = labels.size
    weights = np.zeros((resamples, n))
    for value in np.unique(labels):
        where = np.flatnonzero(labels == value)
        counts = rng.multinomial(where.size, np.full(where.size, 1 / where.size), size=resamples)
        weights[:, where] = counts / n
    return weights


def _resampled_means(weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``[runs, resamples, layers]`` means of ``q [runs, examples, layers]`` under each row of
    ``weights [resamples, examples]`` (one matrix product for every run and layer)."""
    runs, n, layers = q.shape
    flat = weights @ q.transpose(1, 0, 2).reshape(n, runs * layers)
    return flat.reshape(weights.shape[0], runs, layers).transpose(1, 0, 2)


def _tie_range(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index of the layers tied for the maximum (``means [..., layers]``)."""
    best = means.max(axis=-1, keepdims=True)
    tied = means >= best - 1e-12 * np.maximum(1.0, np.abs(best))
    first = tied.argmax(axis=-1)
    last = means.shape[-1] - 1 - tied[..., ::-1].argmax(axis=-1)
    return first, last


def _fold_ids(folds: Any, n: int, name: str) -> tuple[np.ndarray, int]:
    """``folds [examples]`` (the same in every run of a batch) as indices ``0 … F − 1`` and ``F``."""
    f = _same_rows(np.asarray(folds), name)
    if f.shape != (n,) or not np.isfinite(f.astype(float)).all() or np.any(f != np.rint(f.astype(float))):
        raise ValueError(f"{name} must give, for each of the {n} examples, the integer index of the cross-validation "
                         f"fold that held it out; got shape {f.shape}")
    values, ids = np.unique(f.astype(int), return_inverse=True)
    counts = np.bincount(ids)
    if values.size < 2 or counts.min() < 2:
        raise ValueError(f"{name} must name at least 2 folds of at least 2 examples each; got fold sizes "
                         f"{counts.tolist()}")
    return ids, int(values.size)


def fold_inflation(q: np.ndarray, folds: np.ndarray, n_folds: int) -> np.ndarray:
    """How much wider the spread of a profile's layer means is than a bootstrap over its examples
    sees, from the folds: ``q [runs, examples, layers]`` (each example's held-out quality),
    ``folds [examples]`` (0 … F − 1). Per layer ``L``, each example's difference from the peak layer
    ``D_iL = q_iL − q_i,peak`` is split by a one-way random-effects ANOVA over folds into a within-fold
    variance ``σ²_L`` (the pooled variance around the fold means) and a between-fold component
    ``τ²_L = (MSB_L − σ²_L) / n̄`` (``MSB``: the between-fold mean square, ``n̄ = N / F``), the fold's
    probe being better or worse at that layer. The mean over ``N`` examples in ``F`` folds varies by
    ``σ²/N + τ²/F``; resampling examples sees about ``(σ² + τ²)/N``. Summed over layers (``S_e = Σσ²``,
    ``S_f = max(0, Στ²)``) the factor is ``√((S_e + (N/F)·S_f) / (S_e + S_f))`` per run, at least 1:
    with the training noise fixed it grows with the number of examples."""
    runs, n, layers = q.shape
    peak = q.mean(axis=1).argmax(axis=-1)
    d = q - np.take_along_axis(q, peak[:, None, None], axis=2)
    onehot = (folds[:, None] == np.arange(n_folds)[None, :]).astype(float)  # [examples, folds]
    sizes = onehot.sum(axis=0)
    fold_means = np.einsum("nf,rnl->rfl", onehot, d) / sizes[None, :, None]
    overall = d.mean(axis=1)
    within = ((d - fold_means[:, folds, :]) ** 2).sum(axis=1) / (n - n_folds)  # [runs, layers]
    between = (sizes[None, :, None] * (fold_means - overall[:, None, :]) ** 2).sum(axis=1) / (n_folds - 1)
    tau2 = (between - within) / (n / n_folds)
    s_e, s_f = within.sum(axis=-1), np.maximum(tau2.sum(axis=-1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(s_e + s_f > 0, (s_e + (n / n_folds) * s_f) / (s_e + s_f), 1.0)
    return np.sqrt(np.maximum(ratio, 1.0))


def _check_profile_scores(scores: np.ndarray, labels: np.ndarray, name: str) -> None:
    if not np.isfinite(scores).all():
        raise ValueError(f"scores_{name} holds NaN or ±inf; every example needs a finite held-out decision value at "
                         f"every layer (a NaN would flatten its whole profile into a tie)")
    if scores.size and scores.min() >= 0 and scores.max() <= 1:
        raise ValueError(f"scores_{name} lies in [0, 1]: these look like probabilities; pass the probe's log-odds "
                         f"(its decision function), as LayerProfile.heldout_scores holds them")
    if labels.shape != (scores.shape[1],) or set(np.unique(labels)) - {0, 1} or np.unique(labels).size != 2:
        raise ValueError(f"labels_{name} must hold 1 (persona) and 0 (baseline) for each of the {scores.shape[1]} "
                         f"examples of scores_{name}")
    counts = np.bincount(labels.astype(int), minlength=2)
    if counts.min() < SHARED_MIN_PER_CLASS:
        raise ValueError(f"labels_{name} has {counts[1]} persona and {counts[0]} baseline examples; the rule needs at "
                         f"least {SHARED_MIN_PER_CLASS} of each (a bootstrap over fewer has too few resamples to give an "
                         f"interval)")


def _layer_numbers(layers: Any, n_layers: int) -> np.ndarray:
    numbers = np.arange(n_layers) if layers is None else np.asarray(layers).ravel()
    if numbers.size != n_layers:
        raise ValueError(f"layers has {numbers.size} entries for {n_layers} layers of scores")
    if not np.all(numbers == np.rint(numbers.astype(float))) or np.any(np.diff(numbers.astype(float)) <= 0):
        raise ValueError(f"layers must be distinct integers in increasing order (the scores' columns); got "
                         f"{numbers.tolist()}")
    numbers = numbers.astype(int)
    depth = int(numbers.max() - numbers.min() + 1)
    if depth < SHARED_MIN_DEPTH:
        raise ValueError(f"the layers span {depth} layers; the rule needs at least {SHARED_MIN_DEPTH} (the same layer "
                         f"is within a tenth of the depth)")
    return numbers


def _shared_core(scores_a: Any, labels_a: Any, scores_b: Any, labels_b: Any, layers: Any = None,
                 folds_a: Any = None, folds_b: Any = None, tolerance: float | int = SHARED_TOLERANCE,
                 inflation: float | int = SHARED_INFLATION, level: float | int = SHARED_LEVEL,
                 resamples: int = SHARED_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """The rule on a batch: ``scores_* [runs, examples, layers]``, ``labels_*`` and ``folds_*``
    ``[runs, examples]`` or ``[examples]`` (the same layout in every run of a batch)."""
    if not 0 < tolerance < 1 or inflation < 1 or not 0.5 < level < 1 or resamples < 20:
        raise ValueError("tolerance must be in (0, 1), inflation >= 1, level in (0.5, 1), resamples >= 20")
    sa, sb = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if sa.ndim != 3 or sb.ndim != 3 or sa.shape[-1] != sb.shape[-1]:
        raise ValueError(f"scores_a and scores_b must be [examples, layers] over the same layers; got {sa.shape[1:]} "
                         f"and {sb.shape[1:]}")
    la, lb = (_same_rows(np.asarray(v), "labels") for v in (labels_a, labels_b))
    _check_profile_scores(sa, la, "a")
    _check_profile_scores(sb, lb, "b")
    if (folds_a is None) != (folds_b is None):
        raise ValueError("pass folds_a and folds_b together (or neither)")
    numbers = _layer_numbers(layers, sa.shape[-1])
    depth = int(numbers.max() - numbers.min() + 1)
    k = max(1, round(tolerance * depth))
    qa, qb = brier_quality(sa, la), brier_quality(sb, lb)
    ma, mb = qa.mean(axis=1), qb.mean(axis=1)  # [runs, layers]
    runs = sa.shape[0]
    if folds_a is None:
        spread_a = spread_b = np.full(runs, float(inflation))
    else:
        spread_a = fold_inflation(qa, *_fold_ids(folds_a, la.size, "folds_a"))
        spread_b = fold_inflation(qb, *_fold_ids(folds_b, lb.size, "folds_b"))
    out = {"k": k, "depth": depth, "mean_a": ma, "mean_b": mb, "layers": numbers, "spread_a": spread_a,
           "spread_b": spread_b, "folds_given": folds_a is not None}
    first_a, last_a = _tie_range(ma)
    first_b, last_b = _tie_range(mb)
    out.update(first_a=numbers[first_a], last_a=numbers[last_a], first_b=numbers[first_b], last_b=numbers[last_b])
    wa = _bootstrap_weights(la, resamples, np.random.default_rng([seed, 0]))
    wb = _bootstrap_weights(lb, resamples, np.random.default_rng([seed, 1]))
    boot_a = ma[:, None, :] + spread_a[:, None, None] * (_resampled_means(wa, qa) - ma[:, None, :])
    boot_b = mb[:, None, :] + spread_b[:, None, None] * (_resampled_means(wb, qb) - mb[:, None, :])
    fa, ea = _tie_range(boot_a)
    fb, eb = _tie_range(boot_b)
    low_d = numbers[fa] - numbers[eb]  # [runs, resamples]: the smallest distance a resample allows
    high_d = numbers[ea] - numbers[fb]
    tail = (1 - level) / 2
    low = np.quantile(low_d, tail, axis=1, method="inverted_cdf")
    high = np.quantile(high_d, 1 - tail, axis=1, method="inverted_cdf")
    out.update(low=low, high=high)
    out["code"] = np.where((low >= -k) & (high <= k), 1, np.where((low > k) | (high < -k), -1, 0))
    return out


def _shared_codes(scores_a: Any, labels_a: Any, scores_b: Any, labels_b: Any, layers: Any = None,
                  folds_a: Any = None, folds_b: Any = None, tolerance: float | int = SHARED_TOLERANCE,
                  inflation: float | int = SHARED_INFLATION, level: float | int = SHARED_LEVEL,
                  resamples: int = SHARED_RESAMPLES, seed: int = 0) -> np.ndarray:
    return _shared_core(scores_a, labels_a, scores_b, labels_b, layers, folds_a, folds_b, tolerance, inflation, level,
                        resamples, seed)["code"]


def _shared_layer(scores_a: Any, labels_a: Any, scores_b: Any, labels_b: Any, layers: Any = None,
                  folds_a: Any = None, folds_b: Any = None, *, tolerance: float | int = SHARED_TOLERANCE,
                  inflation: float | int = SHARED_INFLATION, level: float | int = SHARED_LEVEL,
                  resamples: int = SHARED_RESAMPLES, seed: int = 0) -> Decision:
    """``scores_a [examples, layers]``: each example's held-out probe decision value (log-odds of the
    persona class) for "A vs baseline", from cross-validation; ``labels_a [examples]``: 1 persona A,
    0 baseline; ``scores_b``, ``labels_b`` likewise for "B vs baseline"; ``layers``: the layer numbers
    of the columns (default 0, 1, …); ``folds_a``, ``folds_b`` (optional, ``[examples]``): the
    cross-validation fold that held each example out."""
    sa, sb = (np.asarray(v, dtype=float) for v in (scores_a, scores_b))
    if sa.ndim != 2 or sb.ndim != 2:
        raise ValueError(f"scores_a and scores_b must be [examples, layers]; got shapes {sa.shape} and {sb.shape}")
    out = _shared_core(sa[None], labels_a, sb[None], labels_b, layers, folds_a, folds_b, tolerance, inflation, level,
                       resamples, seed)
    code, k, depth = int(out["code"][0]), int(out["k"]), int(out["depth"])
    low, high = int(out["low"][0]), int(out["high"][0])
    first_a, last_a, first_b, last_b = (int(out[key][0]) for key in ("first_a", "last_a", "first_b", "last_b"))
    layers_out = [int(v) for v in out["layers"]]

    def peak(first: int, last: int) -> str:
        return f"layer {first}" if first == last else f"layers {first}-{last} (tied)"

    distance = (first_a - first_b) if (first_a == last_a and first_b == last_b) else None
    spreads = [float(out["spread_a"][0]), float(out["spread_b"][0])]
    source = ("estimated per profile from the per-fold scores (random-effects ANOVA over folds)" if out["folds_given"]
              else f"fixed {inflation:g}x (no folds given)")
    numbers = {
        "verdict": VERDICTS[code], "peak_a": first_a, "peak_a_tied_to": last_a, "peak_b": first_b,
        "peak_b_tied_to": last_b, "distance": distance, "interval": [low, high], "interval_level": level,
        "interval_width": high - low, "k": k, "depth": depth, "tolerance": tolerance,
        "spread": {"a": spreads[0], "b": spreads[1], "source": source}, "inflation": inflation,
        "resamples": resamples, "seed": seed, "layers": layers_out,
        "quality": "held-out negative Brier score -(1 - p_true)^2 per example, mean per layer",
        "mean_quality_a": [float(v) for v in out["mean_a"][0]], "mean_quality_b": [float(v) for v in out["mean_b"][0]],
    }
    where = (f"A vs baseline peaks at {peak(first_a, last_a)}, B vs baseline at {peak(first_b, last_b)} (held-out "
             f"Brier score); the distance peak_A − peak_B lies in [{low:+d}, {high:+d}] layers (90 %, bootstrap over "
             f"examples, resampled means spread {spreads[0]:.2f}x and {spreads[1]:.2f}x for the training folds' own "
             f"variation, {source}); the same layer means within ±{k} of {depth} layers ({tolerance:.0%} of the depth)")
    if code == 1:
        reason = f"the peaks are within ±{k} layers: {where}"
    elif code == -1:
        reason = f"the peaks are more than {k} layers apart: {where}"
    elif high - low > 4 * k:
        reason = (f"the profiles are too flat (or saturated, or too variable between training folds) to locate their "
                  f"peaks: {where}")
    else:
        reason = f"the data cannot tell whether the peaks are within ±{k} layers: {where}"
    numbers["reason"] = reason
    return Decision(VERDICTS[code], reason, numbers)


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float | int, kind: str = "normal") -> np.ndarray:
    """Unit-variance noise with AR(1) correlation ``rho`` along the last axis (layers)."""
    e = noise(rng, kind, shape)
    out = np.empty(shape)
    out[..., 0] = e[..., 0]
    for layer in range(1, shape[-1]):
        out[..., layer] = rho * out[..., layer - 1] + math.sqrt(1 - rho**2) * e[..., layer]
    return out


def separability_curve(peak: int, layers: int = 30, *, plateau: float | int = 3.0, bump: float | int = 0.7, width: float | int = 2.0,
                       rise: float | int = 1.5, second: tuple[int, float | int] | None = None) -> np.ndarray:
    """A probe's separability d′ per layer as probes really show it: a fast rise over the first
    layers to a plateau (``plateau``: d′ = 3 is 93 % accuracy, 5 is 99 %), with a bump of ``bump`` at
    ``peak`` (Gaussian, ``width`` layers) and optionally a second bump ``(layer, height)``."""
    at = np.arange(layers)
    d = plateau * (1 - np.exp(-(at + 1) / rise)) + bump * np.exp(-((at - peak) ** 2) / (2 * width**2))
    if second is not None:
        d = d + second[1] * np.exp(-((at - second[0]) ** 2) / (2 * width**2))
    return d


def _probe_world(curve_a: np.ndarray, curve_b: np.ndarray, *, kind: str = "normal",
                 training: tuple[float | int, float | int] = (0.4, 0.4), rho: float | int = 0.95,
                 training_rho: float | int = 0.8, folds_given: bool = True):
    """Held-out decision values as cross-validated probes give them: example ``i`` of class ``y`` at
    layer ``L`` has margin ``z = (d′_L + u_{f(i),L}) / 2 + e_iL`` on its correct side, read as the
    Bayes log-odds ``d′_L · z``. ``e`` is the example's noise (of ``kind``), correlated across
    layers (AR(1), ``rho``: an example hard at one layer is hard at the next); ``u_{f,L}`` is the
    training variation of fold ``f``'s probe (SD ``training``, for A and B, AR(1) ``training_rho``
    across layers; 0.4 with 0.8 gives resampled means 1.3x too narrow, as measured on logistic probes
    of 576-dimensional activations at these sizes). Example ``i`` is in fold ``i mod folds``;
    ``folds_given``: the draw returns ``folds_a``/``folds_b`` (as the study passes them)."""

    def one(rng: np.random.Generator, curve: np.ndarray, n: int, folds: int, runs: int, tau: float | int) -> np.ndarray:
        labels = np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)]
        fold = np.arange(2 * n) % folds
        e = _ar1(rng, (runs, 2 * n, curve.size), rho, kind)
        u = tau * _ar1(rng, (runs, folds, curve.size), training_rho)
        margin = (curve + u[:, fold, :]) / 2 + e
        return np.where((labels == 1)[None, :, None], 1.0, -1.0) * curve * margin

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        n, folds = int(profile["per_class"]), int(profile["folds"])
        labels = np.broadcast_to(np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)], (runs, 2 * n))
        out = {"scores_a": one(rng, curve_a, n, folds, runs, training[0]), "labels_a": labels,
               "scores_b": one(rng, curve_b, n, folds, runs, training[1]), "labels_b": labels}
        if folds_given:
            fold = np.broadcast_to(np.arange(2 * n) % folds, (runs, 2 * n))
            out.update(folds_a=fold, folds_b=fold)
        return out

    return draw


_K = 3  # round(0.1 x 30), the default model's
_SHARP = {"plateau": 2.5, "bump": 1.5, "width": 1.5}
_REAL = {"plateau": 3.0, "bump": 0.7, "width": 2.0}
_SATURATED = {"plateau": 5.5, "bump": 1.0, "width": 2.0}
_HUMP = {"plateau": 0.5, "bump": 2.5, "width": 3.0}
_MEDIUM = {"plateau": 2.5, "bump": 1.0, "width": 1.0}
_SHARED_DGPS = dict([
    _dgp(f"null: clear peaks {_K + 1} layers apart", "null",
         f"d' rises to a plateau of 2.5 (accuracy 0.89) with a bump of 1.5 at layers 18 and {18 - _K - 1}: the "
         "least favourable null (the closest distance that is not the same layer)",
         _probe_world(separability_curve(18, **_SHARP), separability_curve(18 - _K - 1, **_SHARP))),
    _dgp(f"null: real-looking plateaus, peaks {_K + 1} apart", "null",
         "a plateau at d' = 3 (accuracy 0.93) with a small bump (0.7, to 0.96): the profiles the default model gives",
         _probe_world(separability_curve(18, **_REAL), separability_curve(18 - _K - 1, **_REAL))),
    _dgp(f"null: saturated plateaus (accuracy >= 0.99), peaks {_K + 1} apart", "null",
         "d' = 5.5 plateau (accuracy 0.997) with bumps of 1: saturation must not make 'reproduced' easy",
         _probe_world(separability_curve(18, **_SATURATED), separability_curve(18 - _K - 1, **_SATURATED))),
    _dgp(f"null: broad humps {_K + 1} apart over weak plateaus", "null",
         "d' = 0.5 away from a broad hump (2.5, width 3 layers): the layers near the humps are clearly best, so the "
         "old rule's bands were narrow enough to judge and wide enough to hold both peaks ('reproduced' 14 % at the "
         "quick size, 1 % at the full one: less data, easier 'reproduced')",
         _probe_world(separability_curve(18, **_HUMP), separability_curve(18 - _K - 1, **_HUMP))),
    _dgp("null: clear peaks 8 layers apart", "null", "further apart",
         _probe_world(separability_curve(20, **_SHARP), separability_curve(12, **_SHARP))),
    _dgp(f"null: A has a second, lower peak at B's layer ({_K + 1} from its own)", "null",
         "an adversarial profile: A's true peak (bump 1.5) at 18, a second bump of 1.3 at 14 where B peaks",
         _probe_world(separability_curve(18, **_SHARP, second=(18 - _K - 1, 1.3)),
                      separability_curve(18 - _K - 1, **_SHARP))),
    _dgp(f"null: t3 example noise, peaks {_K + 1} apart", "null", "heavy-tailed per-example noise",
         _probe_world(separability_curve(18, **_SHARP), separability_curve(18 - _K - 1, **_SHARP), kind="t3")),
    _dgp(f"null: unequal training noise (A 0.6, B 0.1), peaks {_K + 1} apart", "null",
         "one profile's probes vary much more between folds than the other's (and more than the inflation allows for)",
         _probe_world(separability_curve(18, **_SHARP), separability_curve(18 - _K - 1, **_SHARP), training=(0.6, 0.1))),
    _dgp("effect: equal clear peaks at 70 % depth (the paper's 28 of 40)", "effect",
         "both peak at layer 21 of 30 (bump 1.5 on a plateau of 2.5): power at the paper's claim",
         _probe_world(separability_curve(21, **_SHARP), separability_curve(21, **_SHARP)), paper=True),
    _dgp("effect: equal broad humps over weak plateaus", "effect", "the humps of the null above, at the same layer",
         _probe_world(separability_curve(18, **_HUMP), separability_curve(18, **_HUMP))),
    _dgp(f"effect: clear peaks exactly {_K} apart (the boundary)", "effect",
         "the furthest distance that still counts as the same layer: 'not reproduced' is the error",
         _probe_world(separability_curve(18, **_SHARP), separability_curve(18 - _K, **_SHARP))),
    _dgp("effect: equal peaks on real-looking plateaus", "effect", "the default model's kind of profile",
         _probe_world(separability_curve(18, **_REAL), separability_curve(18, **_REAL))),
    _dgp("effect: equal peaks on saturated plateaus", "effect", "accuracy >= 0.99 nearly everywhere",
         _probe_world(separability_curve(18, **_SATURATED), separability_curve(18, **_SATURATED))),
    _dgp("effect: identical rising profiles, no bump", "effect", "both rise to a plateau and keep rising slightly",
         _probe_world(separability_curve(29, plateau=3.0, bump=0.0), separability_curve(29, plateau=3.0, bump=0.0))),
    _dgp("effect: equal clear peaks, t3 example noise", "effect", "heavy tails",
         _probe_world(separability_curve(18, **_SHARP), separability_curve(18, **_SHARP), kind="t3")),
    _dgp("effect: equal clear peaks, unequal training noise (A 0.6, B 0.1)", "effect", "unequal variances",
         _probe_world(separability_curve(18, **_SHARP), separability_curve(18, **_SHARP), training=(0.6, 0.1))),
    _dgp(f"null: large training noise unlike across layers (SD 2), peaks {_K + 1} apart", "null",
         "each fold's probe varies by SD 2 in d' at each layer, independently across layers (plateau 2.5, bump 1 of "
         "width 1): the fold variation dwarfs the examples' and grows relative to it with more examples",
         _probe_world(separability_curve(18, **_MEDIUM), separability_curve(18 - _K - 1, **_MEDIUM),
                      training=(2.0, 2.0), training_rho=0.0)),
    _dgp("effect: equal peaks, large training noise unlike across layers (SD 2)", "effect",
         "as above with the peaks at one layer (the fixed 1.5x spread said 'not reproduced' 9 % of the time at the "
         "full size)", _probe_world(separability_curve(18, **_MEDIUM), separability_curve(18, **_MEDIUM),
                                    training=(2.0, 2.0), training_rho=0.0)),
    _dgp(f"effect: clear peaks {_K} apart (the boundary), large training noise (SD 2)", "effect",
         "the boundary with the fold variation of the two worlds above (fixed 1.5x: 'not reproduced' 8 % at the full "
         "size)", _probe_world(separability_curve(18, **_SHARP), separability_curve(18 - _K, **_SHARP),
                               training=(2.0, 2.0), training_rho=0.0)),
    _dgp(f"null: clear peaks {_K + 1} apart, folds not given (fixed spread)", "null",
         "the first null without the fold of each example: the rule falls back to the fixed 1.5x spread",
         _probe_world(separability_curve(18, **_SHARP), separability_curve(18 - _K - 1, **_SHARP), folds_given=False)),
    _dgp("effect: equal clear peaks, folds not given (fixed spread)", "effect",
         "equal clear peaks without the folds: the fixed 1.5x spread",
         _probe_world(separability_curve(18, **_SHARP), separability_curve(18, **_SHARP), folds_given=False)),
])

SHARED_NOTES = (
    "k = round(0.1 x depth): the paper's 'same layer' (28 of 40) is one run's point estimate, and a shared substrate is "
    "a region of depth, not one block; adjacent layers' residual streams differ by a small step, so peaks within a "
    "tenth of the depth (3 of the default model's 30 layers, 4 of 40) count as the same layer, peaks further apart as "
    "different ones. The interval is honest only if it is not too narrow: resampling held-out examples leaves out how "
    "much the fitted probes themselves vary between training folds. With the fold of each example (folds_a, folds_b; "
    "the study passes them) the spread is estimated per run from the per-fold scores; the fixed 1.5x it replaces was "
    "measured at 1.2-1.3x on the default model's probes, but the ratio grows with the number of examples (the "
    "examples' share of the variance falls as 1/N, the folds' stays at 1/F), and with large training noise the "
    "fixed spread said 'not reproduced' 9 % of the time at equal peaks (full size). Without the folds (a reviewer's "
    "arrays) the rule falls back to the fixed 1.5x, which is within the design in the worlds above but not under "
    "large training noise. There is no detectable effect in the 80 %-power sense here: what a run can resolve is its "
    "interval's width, the numbers' 'interval_width' (median {width_q} layers at the quick size and {width_f} at the "
    "full size for equal clear peaks, against the 2k = 6 layers of [-k, +k] it must fit in for 'reproduced'). Refused: "
    "fewer than {min_class} examples per class (one example per class gave a zero-width interval and a firm verdict), "
    "NaN or infinite scores (one NaN flattened a whole profile into a tie), scores in [0, 1] (probabilities: pass "
    "log-odds), layers that are not distinct increasing integers or span fewer than {min_depth}. The old rule ('each "
    "best layer inside the other's band of layers not detectably worse') called less data, which widens the bands, a "
    "shared layer; it ignored saturation unless the bands covered over half the model.")

SHARED_WIDTHS = {"width_q": "6.5", "width_f": "2"}
"""The median interval width quoted in the notes (``tests/test_rules_collision.py`` re-measures it)."""

SHARED_LAYER = register(Rule(
    id="collision.shared_layer", claim=SHARED_CLAIM, text=SHARED_TEXT,
    inputs={"scores_a": "[examples, layers] held-out probe decision value (log-odds of the persona class, finite) of "
                        "each example of 'A vs baseline' at each layer, from cross-validation "
                        "(LayerProfile.heldout_scores); at least 10 examples per class",
            "labels_a": "[examples] 1 for a persona-A passage, 0 for a baseline passage",
            "scores_b": "[examples, layers] the same for 'B vs baseline'",
            "labels_b": "[examples] 1 for a persona-B passage, 0 for a baseline passage",
            "layers": "optional [layers] the layer number of each column (distinct increasing integers spanning at "
                      "least 10 layers; default 0, 1, ...)",
            "folds_a": "optional [examples] the cross-validation fold (an integer) that held each example of 'A vs "
                       "baseline' out; with folds_b the spread of the resampled means is estimated from the folds "
                       "instead of the fixed 1.5x (the study passes them)",
            "folds_b": "optional [examples] the same for 'B vs baseline'"},
    decide_one=_shared_layer, codes=_shared_codes,
    profiles={"quick": {"per_class": 48, "folds": 3, "layers": 30}, "full": {"per_class": 120, "folds": 5, "layers": 30}},
    dgps=_SHARED_DGPS, detectable=None, cost=8.0,
    notes=SHARED_NOTES.format(**SHARED_WIDTHS, min_class=SHARED_MIN_PER_CLASS, min_depth=SHARED_MIN_DEPTH),
))


__all__ = ["COHERENCE", "DOMINANCE", "PAPER_AREA", "RARE_MODES", "SATURATING_NULLS", "SCORER_SCALES", "SHARED_LAYER",
           "brier_quality", "fold_inflation", "paper_gamma", "separability_curve"]
