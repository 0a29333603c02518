"""``collision.dominance`` (finding i): does persona A dominate the mix across most of the α range?

Judged per prompt on every named scale of the scorer (:mod:`.scales`), by Fieller's interval of the
area between ``d(α)`` and the diagonal, a skew-corrected interval of the bend and the majority of the
inner mixes; "reproduced" also needs the scale-free rank check, and degenerate inner mixes (neutral or
repetitive text) make any verdict inconclusive. Its simulated worlds are in :mod:`.dominance_worlds`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats as _sps

from interp_steer.stats import fieller, mean_and_se, skew_corrected_interval, t_quantile
from interp_steer.studies.rules.base import (
    VERDICTS,
    Decision,
    Rule,
    json_number,
    register,
)
from interp_steer.studies.rules.collision.common import (
    FULL_ALPHAS,
    FULL_PROMPTS,
    QUICK_ALPHAS,
    QUICK_PROMPTS,
    mixing_module,
    quiet,
    same_rows,
)
from interp_steer.studies.rules.collision.dominance_worlds import (
    DOMINANCE_BEYOND,
    DOMINANCE_DGPS,
    DOMINANCE_NOTES,
    SATURATING_RATES,
)
from interp_steer.studies.rules.collision.scales import (
    PAPER_AREA,
    PER_WORD,
    SCALE_WORDS,
    SCORER_SCALES,
    check_alphas,
    check_aside,
    check_scores,
    on_scale,
    paper_gamma,
)
from interp_steer.studies.rules.paired import mde

DOMINANCE_CLAIM = "The optimistic persona (A) dominates the mix across most of the α range."


DOMINANCE_GUARD_LEVEL = 0.05
"""One-sided level of the degenerate-mix guards (paired t over prompts)."""

DOMINANCE_TEXT = (
    "per prompt, scores mapped per completion to a named unbounded scale (VADER: its raw valence sum "
    "s = √15 c / √(1 − c²), and separately 2 artanh(c), and, given the number N of words VADER scored, "
    "the valence per sentiment word s / N; probabilities: logit; log-odds: as they are) and averaged over a cell's "
    "completions; on each scale: reproduced when the pure ends are separated, the area between d(α) and the "
    "diagonal has a 95 % Fieller interval above 0, the orientation-signed bend (the area's numerator per prompt) has "
    "a 95 % Hall-corrected t interval above 0 too, and d(α) > α at a majority of the interior mixes (point "
    "estimates), and the scale-free rank check passes (per prompt, the mean over inner mixes α of P(mix α "
    "above pure B) − P(pure A above mix 1 − α), its 95 % t interval over prompts above 0: unchanged by any "
    "monotone re-expression of the scores, a saturating scorer included); not reproduced when the area lies below 0 by both intervals (B dominates), or its 90 % interval "
    "lies inside ± the paper's effect on the grid (TOST at 5 %), or at a majority of interior mixes d(α) is "
    "significantly below α^γ (one-sided 2.5 %; γ = 1 / (margin + 1/2) − 1, 1/2 at the paper's area "
    "1/6); inconclusive otherwise. A verdict counts only when every scale of the scorer gives it; otherwise "
    "inconclusive. Inconclusive too when the inner mixes degenerate more than the pure ends (one-sided paired t at "
    "5 % over prompts, inner mixes' mean minus the ends' mean): a larger share of exact-0 VADER compounds (text "
    "with no sentiment word), or, given it, a higher repetition rate. Dominance is relative to the scale: the "
    "report names it. When the true area lies between 0 and the paper's, both verdicts are true statements of "
    "different claims: reproduced = A leans significantly (the qualitative claim), not reproduced = smaller than "
    "the paper's effect")


def _degenerate_guard(alphas: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    """Do the inner mixes degenerate more than the pure ends? ``values [runs, alphas, items, samples]``
    (a 0/1 flag or a rate per completion, NaN unscored): per prompt, the inner mixes' mean minus the
    two ends' mean; fires when its mean over prompts is above 0 by a one-sided paired t-test at
    :data:`DOMINANCE_GUARD_LEVEL` (or every prompt's excess is the same positive number)."""
    with quiet():
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
    with quiet():
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
    with quiet():
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
    mixing = mixing_module()
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
    alphas = check_alphas(same_rows(np.asarray(alphas, dtype=float), "alphas"))
    s = np.asarray(scores, dtype=float)
    if s.ndim == 3:
        s = s[..., None]
    if s.ndim != 4 or s.shape[1] != alphas.size:
        raise ValueError(f"scores must be [runs, alphas, items] or [runs, alphas, items, samples] with "
                         f"{alphas.size} alphas; got shape {s.shape}")
    check_scores(s, scale)
    names = SCORER_SCALES[scale]
    words = None
    if sentiment_words is not None:
        if scale != "vader":
            raise ValueError(f"sentiment_words (VADER's lexicon hits) applies to VADER compounds (scale='vader'), "
                             f"not to scale={scale!r}")
        words = check_aside(sentiment_words, s, "sentiment_words", counts=True)
        names = (*names, PER_WORD)
    per = {name: _scale_core(alphas, on_scale(s, name, words), margin) for name in names}
    codes = np.stack([out["code"] for out in per.values()])
    on_scales = np.where((codes == 1).all(0), 1, np.where((codes == -1).all(0), -1, 0))
    rank = _rank_check(alphas, s)
    combined = np.where((on_scales == 1) & ~rank["passes"], 0, on_scales)
    guards: dict[str, dict[str, np.ndarray]] = {}
    if scale == "vader":
        guards["neutral"] = _degenerate_guard(alphas, np.where(np.isfinite(s), (s == 0).astype(float), np.nan))
    if repetition is not None:
        guards["repetition"] = _degenerate_guard(alphas, check_aside(repetition, s, "repetition", counts=False))
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
        mixes.append({"alpha": float(alphas[i]), "d": json_number(first["d"][i]), "d_low": json_number(first["d_low"][i]),
                      "d_high": json_number(first["d_high"][i]), "paper_d": float(alphas[i] ** gamma),
                      "vs_diagonal": significance, "point_above_diagonal": bool(first["diagonal"][j] > 0),
                      "below_paper": bool(first["paper_gap"][j] < -first["paper_t"][j])})
    criteria = {key: bool(first[key]) for key in ("separated", "a_dominates", "most_of_range", "b_dominates",
                                                  "smaller_than_paper", "confined_to_minority")}
    return {
        "verdict": VERDICTS[int(first["code"])], "scale": scale, "scale_words": SCALE_WORDS[scale], "n_items": n,
        "area": {"estimate": json_number(first["area"]), "low": json_number(first["area_low"]), "high": json_number(first["area_high"]),
                 "level": 0.95},
        "area_90": {"low": json_number(first["area_low_90"]), "high": json_number(first["area_high_90"])},
        "signed_bend": {"mean": json_number(first["signed_bend"]), "low": json_number(first["signed_bend_low"]),
                        "high": json_number(first["signed_bend_high"]), "level": 0.95,
                        "interval": "t with Hall's skewness correction (adjusted skewness G1)",
                        "what": "per prompt, the area's numerator (the bend of s over the line between the ends), "
                                "signed so that > 0 leans to A"},
        "area_se": json_number(se), "mde": json_number(first["mde"]), "power_at_paper_effect": json_number(_power(on_grid, se, n)),
        "margin": margin, "margin_on_grid": on_grid, "paper_gamma": gamma, "paper_curve": f"d(α) = α^{gamma:g}",
        "paper_balance_point": 0.5 ** (1 / gamma),
        "equivalence": {"interval_90": [json_number(first["area_low_90"]), json_number(first["area_high_90"])],
                        "bounds": [-on_grid, on_grid], "inside": criteria["smaller_than_paper"]},
        "mixes": mixes, "n_mixes": len(inner), "majority": int(first["majority"]),
        "mixes_above_point": int(first["above_point"]), "mixes_above": int(first["above"]),
        "mixes_below": int(first["below"]), "mixes_below_paper": int(first["below_paper"]), "criteria": criteria,
    }


GUARD_WORDS = {"neutral": "exact-0 VADER compounds (text in which VADER scores no word)",
               "repetition": "the repetition rate (1 − distinct-3)"}


def _guard_numbers(guard: dict[str, np.ndarray]) -> dict[str, Any]:
    return {"fired": bool(guard["fires"][0]), "inner_mixes": json_number(guard["mixes"][0]), "ends": json_number(guard["ends"][0]),
            "excess": json_number(guard["excess"][0]), "excess_se": json_number(guard["se"][0]), "n": int(guard["n"][0]),
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
    with quiet():
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
        "ends_difference": {"mean": json_number(ends_mean), "low": json_number(ends_mean - half), "high": json_number(ends_mean + half),
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
                f"P(mix above B) − P(A above the mirror mix) is {_rank_text(rank)} (a monotone re-expression of "
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
    return {"passes": bool(rank["passes"][0]), "mean": json_number(rank["mean"][0]), "low": json_number(rank["low"][0]),
            "high": json_number(rank["high"][0]), "n": int(rank["n"][0]), "level": RANK_LEVEL,
            "mirror_pairs": [list(pair) for pair in rank["pairs"]],
            "what": "per prompt, mean over the inner mixes of P(mix α above pure B) − P(pure A above mix "
                    "1 − α) (probabilities of superiority over the completions, ties half, signed so A's end is "
                    "the higher): > 0 leans to A on every monotone scale; 'reproduced' needs its t interval above 0"}


def _rank_text(rank: dict[str, Any]) -> str:
    if not rank["mirror_pairs"]:
        return "undefined (no inner mix has its mirror 1 − α on the grid)"
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


DOMINANCE = register(Rule(
    id="collision.dominance", claim=DOMINANCE_CLAIM, text=DOMINANCE_TEXT,
    inputs={"alphas": "[alphas] the mixes, finite and increasing from 0 (pure B) to 1 (pure A)",
            "scores": "[alphas, items] each prompt's score per mix (or [alphas, items, samples]: each completion's; NaN "
                      "= unscored), on the scorer's own scale and precision: VADER compounds in [-1, 1] as VADER gives "
                      "them (4 decimals), a probe's P(A) strictly inside (1e-6, 1 − 1e-6) at full precision, or "
                      "finite log-odds; scores rounded to 3 decimals or fewer, ±inf, or probabilities at 0, 1 or the "
                      "clip are refused",
            "scale": "required: what the scores are, 'vader', 'probability' or 'log_odds' (checked against the values)",
            "sentiment_words": "optional, VADER only, the shape of scores: the number of words VADER's lexicon scored in "
                               "each completion (non-zero entries of its sentiments); adds the scale 'valence per "
                               "sentiment word' s / N, which must agree too (the study passes it)",
            "repetition": "optional, the shape of scores or [alphas, items]: each completion's repetition rate "
                          "(1 − distinct-3, in [0, 1]); the verdict is inconclusive when the inner mixes are "
                          "significantly more repetitive than the pure ends (the study passes it)"},
    decide_one=_dominance, codes=_dominance_codes,
    profiles={"quick": {"alphas": QUICK_ALPHAS, "prompts": QUICK_PROMPTS, "samples": 1},
              "full": {"alphas": FULL_ALPHAS, "prompts": FULL_PROMPTS, "samples": 1}},
    dgps=DOMINANCE_DGPS, detectable=_dominance_detectable,
    notes=DOMINANCE_NOTES.format(**SATURATING_RATES, **DOMINANCE_BEYOND)))
