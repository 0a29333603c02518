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

from interp_steer.stats import fieller, mean_and_se, t_quantile
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
"""The scales a verdict must hold on, per scorer (``scale=``): VADER's compound on its raw valence sum
(primary) and on ``2·artanh``; a probability on its logit; log-odds as they are."""

SCALE_WORDS = {"vader_raw": "VADER's raw valence sum s = √15·c/√(1 − c²) (the compound's exact inverse)",
               "artanh": "the logistic scale 2·artanh(c) of VADER's compound",
               "logit": "the logit of the probability", "identity": "the log-odds as measured"}

DOMINANCE_TEXT = (
    "per prompt, scores mapped per completion to a named unbounded scale (VADER: its raw valence sum "
    "s = sqrt(15) c / sqrt(1 - c^2), and separately 2 artanh(c); probabilities: logit; log-odds: as they are) and "
    "averaged over a cell's completions; on each scale: reproduced when the pure ends are separated, the area "
    "between d(alpha) and the diagonal has a 95 % Fieller interval above 0 and d(alpha) > alpha at a majority of the "
    "interior mixes (point estimates); not reproduced when the area's 95 % interval lies below 0 (B dominates), or "
    "its 90 % interval lies inside +-the paper's effect on the grid (TOST at 5 %), or at a majority of interior "
    "mixes d(alpha) is significantly below alpha^(1/2) (one-sided 2.5 %); inconclusive otherwise. A verdict counts "
    "only when every scale of the scorer gives it (VADER: both); otherwise inconclusive. Dominance is relative to "
    "the scale: the report names it")


def paper_gamma(margin: float | int = PAPER_AREA) -> float:
    """The exponent ``γ`` of the curve ``d(α) = α^γ`` whose area over the diagonal is ``margin``
    (``∫ (α^γ − α) dα = 1 / (γ + 1) − 1/2``; ``margin = 1/6`` gives ``γ = 1/2``)."""
    if not 0 < margin < 0.5:
        raise ValueError(f"margin must be in (0, 0.5) (the area of a curve d(α) = α^γ), got {margin}")
    return 1 / (margin + 0.5) - 1


def _check_alphas(alphas: np.ndarray) -> np.ndarray:
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or alphas.size < 3 or alphas[0] != 0.0 or alphas[-1] != 1.0 or np.any(np.diff(alphas) <= 0):
        raise ValueError(f"alphas must increase from 0 to 1 (both included) with a mix between; got {alphas.tolist()}")
    return alphas


def _on_scale(scores: np.ndarray, scale: str) -> np.ndarray:
    """``scores [..., alphas, items, samples]`` mapped to ``scale`` completion by completion, then
    averaged over each cell's completions (NaNs left out)."""
    with _quiet():
        return np.nanmean(_mixing().to_dominance_scale(scores, scale), axis=-1)


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

    a_dominates = separated & (area.low > 0)
    most_of_range = above_point >= majority
    b_dominates = separated & (area.high < 0)
    smaller = separated & area90.bounded & (area90.low > -margin_on_grid) & (area90.high < margin_on_grid)
    minority = separated & (below_paper >= majority)
    reproduced = a_dominates & most_of_range
    not_reproduced = ~reproduced & (b_dominates | smaller | minority)
    code = np.where(reproduced, 1, np.where(not_reproduced, -1, 0))
    return {"code": code, "separated": separated, "a_dominates": a_dominates, "most_of_range": most_of_range,
            "b_dominates": b_dominates, "smaller_than_paper": smaller, "confined_to_minority": minority,
            "area": area.estimate, "area_low": area.low, "area_high": area.high, "area_low_90": area90.low,
            "area_high_90": area90.high, "area_se": area.se, "n": area.n, "mde": mde(area.se, area.n),
            "d": d.estimate, "d_low": d.low, "d_high": d.high, "inner": inner, "diagonal": diagonal,
            "diagonal_t": diagonal_t, "paper_gap": paper, "paper_t": paper_t, "above_point": above_point,
            "above": above, "below": below, "below_paper": below_paper, "majority": majority,
            "gamma": gamma, "margin_on_grid": margin_on_grid}


def _dominance_batch(alphas: Any, scores: Any, scale: str, margin: float | int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """``scores [runs, alphas, items(, samples)]``: the combined code per run, the grid, the scores as
    ``[runs, alphas, items, samples]`` and each scale's core."""
    if scale not in SCORER_SCALES:
        raise ValueError(f"scale must be one of {list(SCORER_SCALES)} (what the scores are), got {scale!r}")
    alphas = _check_alphas(_same_rows(np.asarray(alphas, dtype=float), "alphas"))
    s = np.asarray(scores, dtype=float)
    if s.ndim == 3:
        s = s[..., None]
    if s.ndim != 4 or s.shape[1] != alphas.size:
        raise ValueError(f"scores must be [runs, alphas, items] or [runs, alphas, items, samples] with "
                         f"{alphas.size} alphas; got shape {s.shape}")
    per = {name: _scale_core(alphas, _on_scale(s, name), margin) for name in SCORER_SCALES[scale]}
    codes = np.stack([out["code"] for out in per.values()])
    combined = np.where((codes == 1).all(0), 1, np.where((codes == -1).all(0), -1, 0))
    return combined, alphas, s, per


def _dominance_codes(alphas: Any, scores: Any, scale: str = "vader", margin: float | int = PAPER_AREA) -> np.ndarray:
    return _dominance_batch(alphas, scores, scale, margin)[0]


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
        "area_se": _num(se), "mde": _num(first["mde"]), "power_at_paper_effect": _num(_power(on_grid, se, n)),
        "margin": margin, "margin_on_grid": on_grid, "paper_gamma": gamma, "paper_curve": f"d(alpha) = alpha^{gamma:g}",
        "paper_balance_point": 0.5 ** (1 / gamma),
        "equivalence": {"interval_90": [_num(first["area_low_90"]), _num(first["area_high_90"])],
                        "bounds": [-on_grid, on_grid], "inside": criteria["smaller_than_paper"]},
        "mixes": mixes, "n_mixes": len(inner), "majority": int(first["majority"]),
        "mixes_above_point": int(first["above_point"]), "mixes_above": int(first["above"]),
        "mixes_below": int(first["below"]), "mixes_below_paper": int(first["below_paper"]), "criteria": criteria,
    }


def _dominance(alphas: Any, scores: Any, *, scale: str = "vader", margin: float | int = PAPER_AREA) -> Decision:
    """``alphas [alphas]``: the mixes (0 = pure B, 1 = pure A); ``scores [alphas, items]`` or
    ``[alphas, items, samples]``: each prompt's score (each completion's) per mix; ``scale``: what the
    scores are (``"vader"`` compounds, ``"probability"`` of A, ``"log_odds"``)."""
    s = np.asarray(scores, dtype=float)
    if s.ndim not in (2, 3):
        raise ValueError(f"scores must be [alphas, items] or [alphas, items, samples]; got shape {s.shape}")
    code, grid, s4, per = _dominance_batch(alphas, s[None], scale, margin)
    code = int(code[0])
    verdict = VERDICTS[code]
    names = SCORER_SCALES[scale]
    by_scale = {name: _scale_numbers(per[name], grid, name, margin) for name in names}
    primary = by_scale[names[0]]
    with _quiet():
        cells = np.nanmean(s4[0], axis=-1)  # [alphas, items] on the score's own scale
    complete = np.isfinite(cells).all(axis=0)
    ends = cells[-1, complete] - cells[0, complete]
    ends_mean, ends_se, ends_n = (float(v) for v in mean_and_se(ends))
    half = float(t_quantile(0.95, ends_n - 1) * ends_se) if ends_n >= 2 else float("nan")
    numbers = {
        **primary, "verdict": verdict, "scorer": scale, "scales_checked": list(names),
        "scale_verdicts": {name: by_scale[name]["verdict"] for name in names},
        "scales": by_scale if len(names) > 1 else {}, "n_dropped": int((~complete).sum()),
        "n_samples": int(s4.shape[-1]),
        "ends_difference": {"mean": _num(ends_mean), "low": _num(ends_mean - half), "high": _num(ends_mean + half),
                            "n": int(ends_n), "level": 0.95, "on": "the scores' own scale"},
        "relative_to_scale": (f"dominance is relative to the scale it is read on: here {SCALE_WORDS[names[0]]}"
                              + (f", checked on {SCALE_WORDS[names[1]]}" if len(names) > 1 else "")),
    }
    numbers["reason"] = reason = _dominance_reason(code, numbers, by_scale, names)
    return Decision(verdict, reason, numbers)


def _dominance_reason(code: int, nb: dict[str, Any], by_scale: dict[str, dict[str, Any]], names: tuple[str, ...]) -> str:
    primary = by_scale[names[0]]
    text = _scale_reason(primary)
    scale_line = f"on {SCALE_WORDS[names[0]]}: {text}"
    if len(names) == 1:
        return scale_line
    other = by_scale[names[1]]
    if primary["verdict"] == other["verdict"]:
        return f"{scale_line}; the same verdict on {SCALE_WORDS[names[1]]} (area {_area_text(other)})"
    return (f"the verdict depends on the scale, so it is inconclusive: {primary['verdict']} on "
            f"{SCALE_WORDS[names[0]]} ({text}), but {other['verdict']} on {SCALE_WORDS[names[1]]} "
            f"(area {_area_text(other)})")


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
    if not criteria["separated"]:
        return (f"the pure ends are not separated (their difference's 95 % interval contains 0), so dominance is "
                f"undefined; {detect}")
    if nb["verdict"] == "reproduced":
        text = f"A dominates: {area_text} lies above 0 and {mixes}"
        if criteria["smaller_than_paper"]:
            text += (f"; but the effect is significantly smaller than the paper's (90 % interval "
                     f"[{f(a90['low'])}, {f(a90['high'])}] inside ±{nb['margin_on_grid']:.3f})")
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
    return f"neither A's dominance nor its absence is established: {area_text}, {mixes}; {detect}"


def _dominance_detectable(numbers: Mapping[str, Any]) -> float | None:
    """The largest MDE over the scales checked (the verdict needs every one of them)."""
    values = [s["mde"] for s in numbers.get("scales", {}).values()] or [numbers["mde"]]
    finite = [v for v in values if v is not None]
    return max(finite) if len(finite) == len(values) else None


# --------------------------------------------------------------------- dominance: simulated worlds


def _valence_world(lo: float | int, hi: float | int, *, curve: Callable[[np.ndarray], np.ndarray] = lambda a: a,
                   kind: str = "normal", sd: tuple[float | int, float | int] = (1.0, 1.0), scorer: str = "vader",
                   samples: int | None = None, saturation: float | None = None):
    """Per prompt ``k`` a latent valence ``x_k(α) = a_k + b_k · curve(α) + σ(α) · ε`` with
    ``a_k ~ N(lo, 1)``, ``b_k ~ N(hi − lo, 0.5)`` (the pure ends' means are ``lo`` and ``hi``), noise
    ``ε`` of ``kind`` per completion with SD ``σ(α)`` from ``sd[0]`` (pure B) to ``sd[1]`` (pure A),
    ``samples`` completions per cell (default: the profile's). The scorer reads ``x`` as: ``"vader"``,
    VADER's raw valence sum (compound ``x / √(x² + 15)``, rounded to 4 decimals); ``"tanh"``, a
    compound ``tanh(x / 2)`` rounded to 4 decimals (the logistic world); ``"probability"``, a
    probe's ``sigmoid(x)``. ``saturation=S``: VADER reads ``S · tanh(x / S)`` instead of ``x`` (the
    raw sum saturates before VADER's normalisation)."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        alphas = np.asarray(profile["alphas"], dtype=float)
        n, m = int(profile["prompts"]), int(samples or profile["samples"])
        a = rng.normal(lo, 1.0, (runs, 1, n, 1))
        b = rng.normal(hi - lo, 0.5, (runs, 1, n, 1))
        spread = (sd[0] + (sd[1] - sd[0]) * alphas)[None, :, None, None]
        x = a + b * curve(alphas)[None, :, None, None] + spread * noise(rng, kind, (runs, alphas.size, n, m))
        if saturation is not None:
            x = saturation * np.tanh(x / saturation)
        if scorer == "vader":
            scores, scale = vader_compound(x), "vader"
        elif scorer == "tanh":
            scores, scale = np.round(np.tanh(x / 2), 4), "vader"
        elif scorer == "probability":
            scores, scale = expit(x), "probability"
        else:
            raise ValueError(scorer)
        return {"alphas": np.broadcast_to(alphas, (runs, alphas.size)),
                "scores": scores[..., 0] if m == 1 else scores, "scale": scale}

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
    _dgp("effect: √α on the negative side, ends -4→-1", "effect", "both ends negative (compounds -0.72 and -0.25)",
         _valence_world(-4, -1, curve=np.sqrt)),
    _dgp("effect: √α, 4 sampled completions per cell, ends +0→+3", "effect", "sampled decoding",
         _valence_world(0, 3, curve=np.sqrt, samples=4)),
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
"""Nulls the rule is NOT designed for (see the rule's notes): a latent linear in α whose raw valence
sum saturates (``S · tanh(x / S)``) *before* VADER's normalisation. On the raw scale the mix then
really does sit closer to the saturated end, the same bend as the paper's √α, and no rule that reads
the scores on a fixed scale can tell the two apart."""

SATURATING_RATES = {"sat4": "99 % / 86 %", "sat6": "77 % / 48 %", "sat3": "20 % / 12 %", "satsym": "3.3 % / 2.2 %"}
"""False "reproduced" under :data:`SATURATING_NULLS`, full / quick (2000 runs, seed 7;
``tests/test_rules_collision.py`` re-measures them)."""

DOMINANCE_NOTES = (
    "Dominance is relative to the scale the scores are read on: a monotone re-expression of the scores bends d(alpha). "
    "The rule reads VADER's compound on VADER's own raw valence sum (the exact inverse of compound = s / sqrt(s^2 + 15), "
    "applied per completion before averaging; a compound of +-1 is read as +-0.9999) and, as a second scale, on "
    "2 artanh(c) (linear for a compound made as tanh(z/2)); a verdict counts only when both give it. Read on 2 artanh "
    "alone (the old rule) a raw valence sum exactly linear in alpha came out 'reproduced' 2 % (ends -2->+2), 15 % "
    "(-1->+4) and 53 % (0->+6) of the time at the full profile. NOT within the design: nulls where the raw valence sum "
    "itself saturates before VADER's normalisation (s = S tanh(x/S) of a latent x linear in alpha). On the raw scale "
    "the mix then truly sits nearer the saturated end, the same bend as the paper's sqrt(alpha), and the false "
    "'reproduced' rate is whatever power the rule has against that bend (measured, full / quick, 2000 runs: "
    "4 tanh(x/4) at ends 0->+6: {sat4}; 6 tanh(x/6) at 0->+6: {sat6}; 3 tanh(x/3) at 0->+3: {sat3}; symmetric ends "
    "-2->+2 stay within the design: {satsym}). A scale-free (rank-based) rule would not remove this: ranks are "
    "invariant to the scorer's scale but their 'no dominance' needs equal noise at every mix, which unequal noise at "
    "the ends breaks, and ties (VADER 0 for neutral text, identical greedy completions) make them coarse. Sizes: quick "
    "16 prompts x 5 alphas, full 30 prompts x 9 alphas, greedy (one completion per cell).")


DOMINANCE = register(Rule(
    id="collision.dominance", claim=DOMINANCE_CLAIM, text=DOMINANCE_TEXT,
    inputs={"alphas": "[alphas] the mixes, increasing from 0 (pure B) to 1 (pure A)",
            "scores": "[alphas, items] each prompt's score per mix (or [alphas, items, samples]: each completion's), "
                      "on the scorer's own scale: VADER compounds in [-1, 1] (scale='vader'), P(A) "
                      "(scale='probability') or log-odds (scale='log_odds')"},
    decide_one=_dominance, codes=_dominance_codes,
    profiles={"quick": {"alphas": QUICK_ALPHAS, "prompts": QUICK_PROMPTS, "samples": 1},
              "full": {"alphas": FULL_ALPHAS, "prompts": FULL_PROMPTS, "samples": 1}},
    dgps=_DOMINANCE_DGPS, detectable=_dominance_detectable,
    notes=DOMINANCE_NOTES.format(**SATURATING_RATES)))


# =============================================================================== (ii) coherence

COHERENCE_CLAIM = "At high strength, intermediate mixes are more coherent than either pure vector."

COHERENCE_TEXT = (
    "at the top strength, per prompt d_B = log-perplexity(mix nearest alpha = 0.5) - log-perplexity(pure B) and d_A "
    "likewise (paired over prompts); inconclusive when the top strength does not degrade a pure end (nothing for a mix "
    "to rescue); reproduced when the 95 % interval of mean(d_B) and of mean(d_A) both lie below 0 (the mix is more "
    "fluent than both; each a one-sided 2.5 % test); not reproduced when the 97.5 % interval of either lies above 0 "
    "(the mix is less fluent than an end; one-sided 1.25 % each, Bonferroni for the two); inconclusive otherwise. "
    "Intervals: t with Hall's skewness correction, skewness by the adjusted Fisher-Pearson G1")
COHERENCE_LEVELS = {"reproduced": 0.95, "not reproduced": 0.975}


def hall_interval(values: Any, *, level: float | int = 0.95, axis: int = -1
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard error, count and a two-sided ``level`` interval for the mean along ``axis``
    (NaNs left out), with Hall's (1992) transformation of the t statistic as in
    :func:`interp_steer.stats.skew_corrected_interval`, but with the skewness estimated by the
    adjusted Fisher-Pearson coefficient ``G1 = g1 · √(n(n − 1)) / (n − 2)`` (``g1`` underestimates
    the skewness at a dozen items, and per-prompt log-perplexities of degraded text are skewed:
    simulated at 16 prompts, the one-sided errors with ``g1`` are 4.9 % and 5.8 % where ``G1`` gives
    4.2 % and 5.1 %). Written here, not in :mod:`interp_steer.stats` (which its owner keeps)."""
    x = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    mean, se, n = mean_and_se(x, axis=-1)
    mask = np.isfinite(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.where(mask, x - mean[..., None], 0.0)
        m2 = (dev**2).sum(axis=-1) / n
        m3 = (dev**3).sum(axis=-1) / n
        g1 = np.where((n >= 3) & (m2 > 0), m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0)
        gamma = np.where(n >= 3, g1 * np.sqrt(n * (n - 1)) / np.maximum(n - 2, 1), 0.0)
        a = gamma / np.sqrt(np.maximum(n, 1))
        q = t_quantile(level, n - 1)

        def inverse(y):
            small = np.abs(a) < 1e-9
            safe = np.where(small, 1.0, a)
            return np.where(small, y - a / 6, 3 / safe * (np.cbrt(1 + safe * (y - safe / 6)) - 1))

        low = mean - se * inverse(q)
        high = mean - se * inverse(-q)
    return mean, se, n, low, high


def _coherence_core(mid: Any, pure_a: Any, pure_b: Any, degraded: Any = True) -> dict[str, np.ndarray]:
    mid, pure_a, pure_b = (np.asarray(v, dtype=float) for v in (mid, pure_a, pure_b))
    if not (mid.shape == pure_a.shape == pure_b.shape):
        raise ValueError(f"mid, pure_a and pure_b must be per-prompt arrays of one shape (the same prompts); got "
                         f"{mid.shape}, {pure_a.shape}, {pure_b.shape}")
    out: dict[str, np.ndarray] = {}
    for end, values in (("B", pure_b), ("A", pure_a)):
        d = mid - values
        mean, se, n, low, high = hall_interval(d, level=COHERENCE_LEVELS["reproduced"])
        *_, low_strict, high_strict = hall_interval(d, level=COHERENCE_LEVELS["not reproduced"])
        out.update({f"mean_{end}": mean, f"se_{end}": se, f"n_{end}": n, f"low_{end}": low, f"high_{end}": high,
                    f"low_strict_{end}": low_strict, f"high_strict_{end}": high_strict, f"mde_{end}": mde(se, n)})
    degraded = np.broadcast_to(np.asarray(degraded, dtype=bool), out["mean_B"].shape)
    valid = (out["n_A"] >= 2) & (out["n_B"] >= 2)
    more_fluent = valid & (out["high_A"] < 0) & (out["high_B"] < 0)
    less_fluent = valid & ((out["low_strict_A"] > 0) | (out["low_strict_B"] > 0))
    out["code"] = np.where(~degraded, 0, np.where(more_fluent, 1, np.where(less_fluent, -1, 0)))
    out["degraded"] = degraded
    return out


def _coherence_codes(mid: Any, pure_a: Any, pure_b: Any, degraded: Any = True) -> np.ndarray:
    return _coherence_core(mid, pure_a, pure_b, degraded)["code"]


def _coherence(mid: Any, pure_a: Any, pure_b: Any, degraded: Any = True) -> Decision:
    """``mid``, ``pure_a``, ``pure_b``: per-prompt log-perplexity at the top strength of the mix nearest
    α = 0.5 and of the two pure ends (the same prompts, NaN where unscored); ``degraded``: whether the
    top strength degrades a pure end (the study's degradation rule)."""
    arrays = [np.asarray(v, dtype=float).ravel() for v in (mid, pure_a, pure_b)]
    out = {k: (v[0] if isinstance(v, np.ndarray) and v.ndim else v)
           for k, v in _coherence_core(*(a[None] for a in arrays), bool(degraded)).items()}
    code = int(out["code"])

    def interval(end: str) -> dict[str, Any]:
        return {"mean": _num(out[f"mean_{end}"]), "low": _num(out[f"low_{end}"]), "high": _num(out[f"high_{end}"]),
                "n": int(out[f"n_{end}"]), "level": COHERENCE_LEVELS["reproduced"],
                "low_97_5": _num(out[f"low_strict_{end}"]), "high_97_5": _num(out[f"high_strict_{end}"])}

    def f(x: float | None) -> str:
        return "n/a" if x is None else f"{x:+.2f}"

    to_b, to_a = interval("B"), interval("A")
    mdes = [_num(out["mde_B"]), _num(out["mde_A"])]
    detect = max(mdes) if None not in mdes else None
    numbers = {"verdict": VERDICTS[code], "log_perplexity_mid_minus_B": to_b, "log_perplexity_mid_minus_A": to_a,
               "top_lambda_degraded": bool(degraded), "mde": detect, "levels": dict(COHERENCE_LEVELS),
               "interval": "t with Hall's skewness correction (adjusted skewness G1)"}
    text = (f"log-perplexity of the mix minus the pure B end {f(to_b['mean'])} [{f(to_b['low'])}, {f(to_b['high'])}], "
            f"minus the pure A end {f(to_a['mean'])} [{f(to_a['low'])}, {f(to_a['high'])}] (95 %, negative = the mix "
            "is more fluent)")
    detect_text = (f"; this run could detect a difference of ±{detect:.2f} in log-perplexity" if detect is not None
                   else "; too few prompts to detect anything")
    if not degraded:
        reason = ("the top strength does not degrade the pure ends, so there is nothing for a mix to rescue; raise "
                  "the top λ. " + text)
    elif code == 1:
        reason = f"the mix is more fluent than both pure ends: {text}"
    elif code == -1:
        worse = [end for end in ("B", "A") if out[f"low_strict_{end}"] > 0]
        reason = (f"the mix is less fluent than the pure {' and '.join(worse)} end (97.5 % interval above 0): {text}")
    else:
        reason = f"the mix is not shown to be more fluent than both ends, nor less fluent than either: {text}"
    numbers["reason"] = reason + detect_text
    return Decision(VERDICTS[code], reason + detect_text, numbers)


def _fluency_world(mid: float | int, a: float | int, b: float | int, *, kinds: tuple[str, str, str] = ("normal",) * 3,
                   sds: tuple[float | int, float | int, float | int] = (0.3, 0.3, 0.3), prompt_sd: float | int = 0.5):
    """Per prompt ``k`` and arm (mix, pure A, pure B): log-perplexity ``μ_arm + u_k + sd_arm · ε``,
    ``u_k ~ N(0, prompt_sd²)`` shared by the arms, ``ε`` of the arm's kind: ``"normal"``, ``"t3"``,
    ``"exp"`` (a centred exponential: most prompts near the mean, a few far above, as degenerate text
    is), unit variance."""

    def arm(rng: np.random.Generator, kind: str, size: tuple[int, int]) -> np.ndarray:
        if kind == "exp":
            return rng.exponential(1.0, size) - 1.0
        return noise(rng, kind, size)

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        size = (runs, int(profile["prompts"]))
        u = prompt_sd * rng.standard_normal(size)
        mid_, a_, b_ = (mu + u + sd * arm(rng, kind, size) for mu, kind, sd in zip((mid, a, b), kinds, sds, strict=True))
        return {"mid": mid_, "pure_a": a_, "pure_b": b_, "degraded": np.ones(runs, dtype=bool)}

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
    _dgp("effect: mix barely more fluent than both ends (boundary), normal", "effect",
         f"the least favourable effect: the mix {_BOUNDARY} below both ends in log-perplexity",
         _fluency_world(-_BOUNDARY, 0, 0)),
    _dgp("effect: boundary, the ends skewed (exponential)", "effect",
         "the pure ends degenerate on a few prompts (centred exponential, SD 0.6), the mix varies little (SD 0.1)",
         _fluency_world(-_BOUNDARY, 0, 0, kinds=("normal", "exp", "exp"), sds=(0.1, 0.6, 0.6))),
    _dgp("effect: boundary, t3", "effect", "heavy tails", _fluency_world(-_BOUNDARY, 0, 0, kinds=("t3",) * 3)),
    _dgp("effect: boundary, unequal variances", "effect", "SD 0.1 (mix), 0.8 (A end), 0.3 (B end)",
         _fluency_world(-_BOUNDARY, 0, 0, sds=(0.1, 0.8, 0.3))),
    _dgp("effect: mix 0.3 more fluent than both ends", "effect",
         "an assumed effect (the paper reports no per-prompt size): the mix 0.3 below both ends in log-perplexity "
         "(perplexity x0.74), per-arm SD 0.3, prompt SD 0.5", _fluency_world(-0.3, 0, 0), paper=True),
])

COHERENCE = register(Rule(
    id="collision.coherence", claim=COHERENCE_CLAIM, text=COHERENCE_TEXT,
    inputs={"mid": "[prompts] log-perplexity of the mix nearest alpha = 0.5 at the top strength, per prompt",
            "pure_a": "[prompts] log-perplexity of the pure A end (alpha = 1) at the top strength, same prompts",
            "pure_b": "[prompts] log-perplexity of the pure B end (alpha = 0) at the top strength, same prompts",
            "degraded": "[] bool: the top strength degrades a pure end (the study's degradation rule); False makes "
                        "the verdict inconclusive"},
    decide_one=_coherence, codes=_coherence_codes,
    profiles={"quick": {"prompts": QUICK_PROMPTS}, "full": {"prompts": FULL_PROMPTS}},
    dgps=_COHERENCE_DGPS, detectable=lambda numbers: numbers["mde"],
    notes=("Per-prompt log-perplexity is a geometric mean over a prompt's completions (greedy: one). The old rule (plain "
           "t intervals, either end significantly worse at 95 %) erred under skewed log-perplexities: a false "
           "'reproduced' of 8 % (quick) when the mix degenerates on a few prompts, a false 'not reproduced' of 15 % when "
           "the ends do. Beyond the design: far more skewed (lognormal, skewness 6) per-prompt differences, where the "
           "errors are 6-10 % at 16 prompts and 5-8 % at 30."),
))


# ============================================================================ (iii) shared layer

SHARED_CLAIM = "Both personas localise best at the same layer (a shared moral-tone substrate)."

SHARED_TOLERANCE = 0.1
"""Peaks within ``round(0.1 × depth)`` layers count as the same layer (3 of 30; 4 of 40)."""
SHARED_INFLATION = 1.5
SHARED_LEVEL = 0.90
SHARED_RESAMPLES = 400

SHARED_TEXT = (
    "per profile (A vs baseline, B vs baseline), each example's held-out probe quality per layer, q = -(1 - p)^2 with "
    "p the probe's cross-validated probability of the example's true class (the negative Brier score: it keeps "
    "ranking layers where accuracy saturates at 1); the peak is the layer with the highest mean q (ties: every tied "
    "layer). A 90 % percentile interval for the distance peak_A - peak_B from a bootstrap over examples (stratified by "
    "class, the two profiles resampled independently; resampled means spread 1.5x around the observed ones, because "
    "resampling held-out examples misses the training folds' own variation, measured at 1.2-1.3x for these probes; "
    "with ties, the interval spans every tied layer); reproduced when the interval lies inside +-k layers, "
    "k = round(0.1 x depth) (equivalence at 5 %); not reproduced when it lies outside (the peaks significantly more "
    "than k layers apart); inconclusive otherwise (flat or saturated profiles)")


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


def _shared_core(scores_a: Any, labels_a: Any, scores_b: Any, labels_b: Any, layers: Any = None,
                 tolerance: float | int = SHARED_TOLERANCE, inflation: float | int = SHARED_INFLATION, level: float | int = SHARED_LEVEL,
                 resamples: int = SHARED_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """The rule on a batch: ``scores_* [runs, examples, layers]``, ``labels_* [runs, examples]`` or
    ``[examples]`` (the same layout in every run of a batch)."""
    sa, sb = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if sa.ndim != 3 or sb.ndim != 3 or sa.shape[-1] != sb.shape[-1]:
        raise ValueError(f"scores_a and scores_b must be [examples, layers] over the same layers; got {sa.shape[1:]} "
                         f"and {sb.shape[1:]}")
    la, lb = (_same_rows(np.asarray(v), "labels") for v in (labels_a, labels_b))
    for name, labels, scores in (("a", la, sa), ("b", lb, sb)):
        if labels.shape != (scores.shape[1],) or set(np.unique(labels)) - {0, 1} or np.unique(labels).size != 2:
            raise ValueError(f"labels_{name} must hold 1 (persona) and 0 (baseline) for each of the {scores.shape[1]} "
                             f"examples of scores_{name}")
    n_layers = sa.shape[-1]
    numbers = np.arange(n_layers) if layers is None else np.asarray(layers, dtype=int).ravel()
    if numbers.size != n_layers:
        raise ValueError(f"layers has {numbers.size} entries for {n_layers} layers of scores")
    depth = int(numbers.max() - numbers.min() + 1)
    k = max(1, round(tolerance * depth))
    qa, qb = brier_quality(sa, la), brier_quality(sb, lb)
    ma, mb = qa.mean(axis=1), qb.mean(axis=1)  # [runs, layers]
    out = {"k": k, "depth": depth, "mean_a": ma, "mean_b": mb, "layers": numbers}
    first_a, last_a = _tie_range(ma)
    first_b, last_b = _tie_range(mb)
    out.update(first_a=numbers[first_a], last_a=numbers[last_a], first_b=numbers[first_b], last_b=numbers[last_b])
    wa = _bootstrap_weights(la, resamples, np.random.default_rng([seed, 0]))
    wb = _bootstrap_weights(lb, resamples, np.random.default_rng([seed, 1]))
    boot_a = ma[:, None, :] + inflation * (_resampled_means(wa, qa) - ma[:, None, :])  # [runs, resamples, layers]
    boot_b = mb[:, None, :] + inflation * (_resampled_means(wb, qb) - mb[:, None, :])
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
                  tolerance: float | int = SHARED_TOLERANCE, inflation: float | int = SHARED_INFLATION,
                  level: float | int = SHARED_LEVEL, resamples: int = SHARED_RESAMPLES, seed: int = 0) -> np.ndarray:
    return _shared_core(scores_a, labels_a, scores_b, labels_b, layers, tolerance, inflation, level, resamples,
                        seed)["code"]


def _shared_layer(scores_a: Any, labels_a: Any, scores_b: Any, labels_b: Any, *, layers: Any = None,
                  tolerance: float | int = SHARED_TOLERANCE, inflation: float | int = SHARED_INFLATION,
                  level: float | int = SHARED_LEVEL, resamples: int = SHARED_RESAMPLES, seed: int = 0) -> Decision:
    """``scores_a [examples, layers]``: each example's held-out probe decision value (log-odds of the
    persona class) for "A vs baseline", from cross-validation; ``labels_a [examples]``: 1 persona A,
    0 baseline; ``scores_b``, ``labels_b`` likewise for "B vs baseline"."""
    if not 0 < tolerance < 1 or inflation < 1 or not 0.5 < level < 1 or resamples < 20:
        raise ValueError("tolerance must be in (0, 1), inflation >= 1, level in (0.5, 1), resamples >= 20")
    sa, sb = (np.asarray(v, dtype=float) for v in (scores_a, scores_b))
    if sa.ndim != 2 or sb.ndim != 2:
        raise ValueError(f"scores_a and scores_b must be [examples, layers]; got shapes {sa.shape} and {sb.shape}")
    out = _shared_core(sa[None], labels_a, sb[None], labels_b, layers, tolerance, inflation, level, resamples, seed)
    code, k, depth = int(out["code"][0]), int(out["k"]), int(out["depth"])
    low, high = int(out["low"][0]), int(out["high"][0])
    first_a, last_a, first_b, last_b = (int(out[key][0]) for key in ("first_a", "last_a", "first_b", "last_b"))
    layers_out = [int(v) for v in out["layers"]]

    def peak(first: int, last: int) -> str:
        return f"layer {first}" if first == last else f"layers {first}-{last} (tied)"

    distance = (first_a - first_b) if (first_a == last_a and first_b == last_b) else None
    numbers = {
        "verdict": VERDICTS[code], "peak_a": first_a, "peak_a_tied_to": last_a, "peak_b": first_b,
        "peak_b_tied_to": last_b, "distance": distance, "interval": [low, high], "interval_level": level,
        "interval_width": high - low, "k": k, "depth": depth, "tolerance": tolerance, "inflation": inflation,
        "resamples": resamples, "seed": seed, "layers": layers_out,
        "quality": "held-out negative Brier score -(1 - p_true)^2 per example, mean per layer",
        "mean_quality_a": [float(v) for v in out["mean_a"][0]], "mean_quality_b": [float(v) for v in out["mean_b"][0]],
    }
    where = (f"A vs baseline peaks at {peak(first_a, last_a)}, B vs baseline at {peak(first_b, last_b)} (held-out "
             f"Brier score); the distance peak_A − peak_B lies in [{low:+d}, {high:+d}] layers (90 %, bootstrap over "
             f"examples); the same layer means within ±{k} of {depth} layers ({tolerance:.0%} of the depth)")
    if code == 1:
        reason = f"the peaks are within ±{k} layers: {where}"
    elif code == -1:
        reason = f"the peaks are more than {k} layers apart: {where}"
    elif high - low > 4 * k:
        reason = (f"the profiles are too flat (or saturated) to locate their peaks: {where}")
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


def _probe_world(curve_a: np.ndarray, curve_b: np.ndarray, *, kind: str = "normal", training: tuple[float | int, float | int] = (0.4, 0.4),
                 rho: float | int = 0.95):
    """Held-out decision values as cross-validated probes give them: example ``i`` of class ``y`` at
    layer ``L`` has margin ``z = (d′_L + u_{f(i),L}) / 2 + e_iL`` on its correct side, read as the
    Bayes log-odds ``d′_L · z``. ``e`` is the example's noise (of ``kind``), correlated across
    layers (AR(1), ``rho``: an example hard at one layer is hard at the next); ``u_{f,L}`` is the
    training variation of fold ``f``'s probe (SD ``training``, for A and B; 0.4 gives resampled means
    1.3x too narrow, as measured on logistic probes of 576-dimensional activations at these sizes)."""

    def one(rng: np.random.Generator, curve: np.ndarray, n: int, folds: int, runs: int, tau: float | int) -> np.ndarray:
        labels = np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)]
        fold = np.arange(2 * n) % folds
        e = _ar1(rng, (runs, 2 * n, curve.size), rho, kind)
        u = tau * _ar1(rng, (runs, folds, curve.size), 0.8)
        margin = (curve + u[:, fold, :]) / 2 + e
        return np.where((labels == 1)[None, :, None], 1.0, -1.0) * curve * margin

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        n, folds = int(profile["per_class"]), int(profile["folds"])
        labels = np.broadcast_to(np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)], (runs, 2 * n))
        return {"scores_a": one(rng, curve_a, n, folds, runs, training[0]), "labels_a": labels,
                "scores_b": one(rng, curve_b, n, folds, runs, training[1]), "labels_b": labels}

    return draw


_K = 3  # round(0.1 x 30), the default model's
_SHARP = {"plateau": 2.5, "bump": 1.5, "width": 1.5}
_REAL = {"plateau": 3.0, "bump": 0.7, "width": 2.0}
_SATURATED = {"plateau": 5.5, "bump": 1.0, "width": 2.0}
_HUMP = {"plateau": 0.5, "bump": 2.5, "width": 3.0}
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
])

SHARED_LAYER = register(Rule(
    id="collision.shared_layer", claim=SHARED_CLAIM, text=SHARED_TEXT,
    inputs={"scores_a": "[examples, layers] held-out probe decision value (log-odds of the persona class) of each "
                        "example of 'A vs baseline' at each layer, from cross-validation (LayerProfile.heldout_scores)",
            "labels_a": "[examples] 1 for a persona-A passage, 0 for a baseline passage",
            "scores_b": "[examples, layers] the same for 'B vs baseline'",
            "labels_b": "[examples] 1 for a persona-B passage, 0 for a baseline passage"},
    decide_one=_shared_layer, codes=_shared_codes,
    profiles={"quick": {"per_class": 48, "folds": 3, "layers": 30}, "full": {"per_class": 120, "folds": 5, "layers": 30}},
    dgps=_SHARED_DGPS, detectable=lambda numbers: numbers["interval_width"], cost=8.0,
    notes=("k = round(0.1 x depth): the paper's 'same layer' (28 of 40) is one run's point estimate, and a shared "
           "substrate is a region of depth, not one block; adjacent layers' residual streams differ by a small step, so "
           "peaks within a tenth of the depth (3 of the default model's 30 layers, 4 of 40) count as the same layer, "
           "peaks further apart as different ones. The interval is honest only if it is not too narrow: resampling "
           "held-out examples leaves out how much the fitted probes themselves vary between training folds (measured on "
           "logistic probes of 576-dimensional activations at 48 and 120 examples per class: the spread of layer "
           "differences is 1.2-1.3x what resampling examples gives), so resampled means are spread 1.5x. The old rule "
           "('each best layer inside the other's band of layers not detectably worse') called less data, which widens "
           "the bands, a shared layer; it ignored saturation unless the bands covered over half the model."),
))


__all__ = ["COHERENCE", "DOMINANCE", "PAPER_AREA", "SATURATING_NULLS", "SCORER_SCALES", "SHARED_LAYER", "brier_quality",
           "hall_interval", "paper_gamma", "separability_curve"]
