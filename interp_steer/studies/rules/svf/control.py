"""``svf.control``: does the field give stronger control than the static vector? Per prompt the two
effects; reproduced when the field's advantage is significantly above 0 (and its own effect above 0);
not reproduced when it is short of the relative margin, tested per prompt as ``field − (1 + margin)
· vector`` (Fieller's test of the ratio). The rule and its simulated worlds."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from interp_steer.stats import mean_and_se
from interp_steer.studies.rules.base import (
    DGP,
    Decision,
    Rule,
    json_number,
    noise,
    register,
    verdict_of,
)
from interp_steer.studies.rules.paired import detect_text, mde
from interp_steer.studies.rules.svf.common import (
    LEVEL,
    PROFILE_NOTES,
    PROFILES,
    REAL,
    check_effects,
    check_setting,
    complete,
    first_run,
    interval,
    interval_text,
    same_shape,
    with_runs,
    world_table,
)
from interp_steer.studies.rules.svf.scorers import scaled_pair

CONTROL_CLAIM = ("The field gives stronger control than the static vector: a larger move of the score in the intended "
                 "direction at the same step length.")
CONTROL_MARGIN = 0.25
CONTROL_TEXT = ("per prompt the effects of field and vector (move of the score in the intended direction at the primary "
                "coefficient). Reproduced: the 95 % interval of mean(field − vector) lies above 0 and so does the field's "
                "own mean effect's (a field that moves nothing is not stronger control). Not reproduced: it "
                "lies below 0, or the 95 % interval of mean(field − (1 + margin) × vector) lies below 0 (the field is "
                "shown less than 1 + margin times as strong as the vector: Fieller's test of the ratio, per prompt, so "
                "the margin's noise is part of the test). Inconclusive otherwise. Intervals: the hull of the Student t "
                "interval and Hall's skewness-corrected one (both must agree); each arm a one-sided 2.5 % test")


def control_core(field: Any, vector: Any, margin: Any = CONTROL_MARGIN, *,
                 skew: bool | str = "hull") -> dict[str, np.ndarray]:
    """The control rule on a batch: ``field`` and ``vector`` ``[runs, prompts]`` per-prompt effects
    (prompts with a NaN on either side left out), ``margin`` per run or scalar. The intervals are the
    hull of the plain t interval and Hall's skewness-corrected one (``skew="hull"``): each fails in a
    world the other handles. Hall's correction, estimated from 30 differences of bounded VADER scores
    with point masses at 0, raised the simulated errors (VADER null: 3.8 % against 2.3 % for plain t;
    the boundary's margin arm 4.8 % against 3.8 %), while plain t lets a left-skewed field reach 4.1 %
    (Hall: 3.2 %); the hull keeps the lower of the two."""
    f, v = complete(with_runs(field, 1), with_runs(vector, 1))
    margin = np.asarray(margin, dtype=float)
    factor = 1 + (margin[..., None] if margin.ndim else margin)  # a margin per run applies to each of its prompts
    mean, se, n, low, high = interval(f - v, skew=skew)
    short_mean, _, _, short_low, short_high = interval(f - factor * v, skew=skew)
    _, _, _, own_low, own_high = interval(f, skew=skew)
    valid = (n >= 2) & np.isfinite(se)
    moves = valid & (own_low > 0)  # the field itself moves the score the intended way: control, not less harm
    above = valid & (low > 0)
    below = valid & (high < 0)
    short = valid & np.isfinite(short_high) & (short_high < 0)
    code = np.where(above & moves, 1, np.where(below | short, -1, 0))
    fm, fse, _ = mean_and_se(f, axis=-1)
    vm, vse, _ = mean_and_se(v, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(vm != 0, fm / vm, np.nan)
    return {"code": code, "mean": mean, "se": se, "n": n, "low": low, "high": high, "above": above, "below": below,
            "short": short, "moves": moves, "field_low": own_low, "field_high": own_high, "short_mean": short_mean, "short_low": short_low, "short_high": short_high,
            "field_mean": fm, "field_se": fse, "vector_mean": vm, "vector_se": vse, "ratio": ratio,
            "mde": mde(se, n), "margin": np.broadcast_to(margin, mean.shape)}


def _control_codes(field: Any, vector: Any, margin: Any = CONTROL_MARGIN) -> np.ndarray:
    return control_core(field, vector, margin)["code"]


def _control(field: Any, vector: Any, *, margin: float = CONTROL_MARGIN, units: str = "score") -> Decision:
    """``field``, ``vector``: per held-out prompt, each method's effect at the primary coefficient
    (steered − unsteered score, oriented so that the intended direction is positive; NaNs left out).
    ``margin``: the field must be ``1 + margin`` times as strong as the vector to matter."""
    margin = check_setting(margin, "margin", 0.0, math.inf, high_open=True)
    f, v = check_effects(field, "field", 1), check_effects(vector, "vector", 1)
    same_shape(("field", f), ("vector", v))
    out = first_run(control_core(f, v, margin))
    code, n = int(out["code"]), int(out["n"])
    unit = f" {units}" if units else ""
    diff = f"{interval_text(out['mean'], out['low'], out['high'])}{unit} (95 %, n = {n})"
    short = interval_text(out["short_mean"], out["short_low"], out["short_high"])
    detect = detect_text(out["mde"], unit)
    times = f"{1 + margin:g}×"
    if n < 2:
        reason = f"fewer than two prompts with both effects ({n}): no interval"
    elif code == 1:
        small = (f" (but the field is shown less than {times} as strong as the vector: field − {times} vector = {short})"
                 if out["short"] else "")
        reason = f"field − vector = {diff}, above 0, and the field's own effect is above 0{small}; {detect}"
    elif out["above"] and not out["moves"]:
        own = interval_text(out["field_mean"], out["field_low"], out["field_high"])
        reason = (f"field − vector = {diff}, above 0, but the field's own effect {own}{unit} is not above 0: the "
                  f"vector does more harm, which is not stronger control; {detect}")
    elif out["below"]:
        reason = f"the vector does better: field − vector = {diff}, below 0; {detect}"
    elif code == -1:
        reason = (f"field − vector = {diff}; field − {times} vector = {short}, below 0: the field is not {times} as "
                  f"strong as the vector (the smallest effect of interest); {detect}")
    else:
        reason = (f"field − vector = {diff}, not above 0; field − {times} vector = {short}, not below 0: cannot tell; "
                  f"{detect}")
    numbers = {"verdict": verdict_of(code), "reason": reason,
               "difference": {"mean": json_number(out["mean"]), "low": json_number(out["low"]), "high": json_number(out["high"]), "n": n,
                              "level": LEVEL},
               "short_of_margin": {"mean": json_number(out["short_mean"]), "low": json_number(out["short_low"]),
                                   "high": json_number(out["short_high"]), "n": n, "level": LEVEL,
                                   "definition": f"mean over prompts of field − {times} vector"},
               "ratio": json_number(out["ratio"]), "se": json_number(out["se"]), "margin": float(margin),
               "margin_rule": f"relative: the field must be {times} as strong as the vector (tested per prompt)",
               "mde": json_number(out["mde"]),
               "field_effect": {"mean": json_number(out["field_mean"]), "low": json_number(out["field_low"]),
                                "high": json_number(out["field_high"]), "n": n, "level": LEVEL},
               "criteria": {"above_zero": bool(out["above"]), "field_moves": bool(out["moves"]),
                            "below_zero": bool(out["below"]), "short_of_margin": bool(out["short"])}}
    return Decision(verdict_of(code), reason, numbers)


def _control_world(shape: str, ratio: float, *, vector_effect: float = REAL["vector_effect"],
                   sd: float = REAL["effect_sd"], rho: float = REAL["effect_correlation"],
                   field_sd: float | None = None) -> Callable[..., dict[str, Any]]:
    """Per-prompt (field, vector) effects with mean(field) = ``ratio`` × mean(vector), drawn jointly:
    ``normal``/``t3`` (correlation ``rho``, SDs ``sd`` and ``field_sd``), ``vader``/``probability``
    (bounded scales, calibrated means, correlated through the shared prompt), ``skewed`` (the
    field's own noise ``1 − Exp(1)``: most prompts a little above its mean, a few far below)."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        size = (runs, int(profile["prompts"]))
        mu_v, mu_f = vector_effect, ratio * vector_effect
        if shape in ("normal", "t3", "skewed"):
            first = noise(rng, "normal" if shape == "skewed" else shape, size)
            # the field's own noise left-skewed in the skewed world (a few prompts move far the wrong way)
            own = 1.0 - rng.exponential(1.0, size) if shape == "skewed" else noise(rng, shape, size)
            v = mu_v + sd * first
            f = mu_f + (field_sd or sd) * (rho * first + math.sqrt(1 - rho**2) * own)
        elif shape in ("vader", "probability"):
            unit = 3.0 if shape == "vader" else 1.0  # raw noise giving the measured per-prompt SD and correlation
            f, v = scaled_pair(rng, size, shape, (mu_f, mu_v), (unit * (field_sd or sd) / sd, unit))
        else:
            raise ValueError(shape)
        return {"field": f, "vector": v}

    return draw


def _control_dgps() -> dict[str, DGP]:
    r = 1 + CONTROL_MARGIN
    real = f"vector effect {REAL['vector_effect']}, per-prompt SD {REAL['effect_sd']}, correlation {REAL['effect_correlation']}"
    worlds = [
        ("null: equal effects, normal", "null", f"field = vector on average ({real}: the default model's quick run)",
         _control_world("normal", 1.0)),
        ("null: equal effects, t3", "null", "the same with t3 noise (heavy tails)", _control_world("t3", 1.0)),
        ("null: equal effects, skewed", "null", "the same with the field's own noise left-skewed (1 − Exp(1))",
         _control_world("skewed", 1.0)),
        ("null: equal effects, field twice as variable", "null", "unequal variances between methods",
         _control_world("normal", 1.0, field_sd=2 * REAL["effect_sd"])),
        ("null: equal effects, VADER", "null", "VADER compound (raw valence, asymmetric ends, 4 decimals, 7 % of "
         "prompts unchanged), equal mean effects (calibrated)", _control_world("vader", 1.0)),
        ("null: equal effects, VADER, field more variable", "null", "the same with the field's raw noise 1.5× the "
         "vector's", _control_world("vader", 1.0, field_sd=1.5 * REAL["effect_sd"])),
        ("null: equal effects, probabilities", "null", "P(matching answer) through a sigmoid, equal mean effects "
         "(calibrated)", _control_world("probability", 1.0, vector_effect=0.15)),
        ("null: neither moves the score", "null", "both effects 0 on average (a vector that does nothing)",
         _control_world("normal", 1.0, vector_effect=0.0)),
        (f"effect: field exactly {r:g}x, normal", "effect", f"the boundary of the claim, field = {r:g} × vector "
         f"({real}); the issue's correlated margin", _control_world("normal", r)),
        (f"effect: field exactly {r:g}x, t3", "effect", "the boundary with t3 noise", _control_world("t3", r)),
        (f"effect: field exactly {r:g}x, skewed", "effect", "the boundary with the field's noise left-skewed",
         _control_world("skewed", r)),
        (f"effect: field exactly {r:g}x, vector twice as variable", "effect", "the boundary, unequal variances",
         _control_world("normal", r, field_sd=REAL["effect_sd"] / 2)),
        (f"effect: field exactly {r:g}x, VADER", "effect", "the boundary on VADER's scale (calibrated)",
         _control_world("vader", r)),
        (f"effect: field exactly {r:g}x, probabilities", "effect", "the boundary on P(matching) (calibrated)",
         _control_world("probability", r, vector_effect=0.15)),
        (f"effect: field exactly {r:g}x, strong vector, anti-correlated", "effect", "the boundary with a strong vector "
         "(mean effect 1, SD 0.45) and effects correlated -0.5 over prompts (where the vector moves a prompt more, the "
         "field moves it less): the world where the old margin, estimated from the vector's mean, erred 5.6 % at 100 "
         "prompts", _control_world("normal", r, vector_effect=1.0, rho=-0.5)),
        ("effect: field = vector = 0", "effect", "the boundary when the vector does nothing: the claim then asks only "
         "for field ≥ vector", _control_world("normal", 1.0, vector_effect=0.0)),
        ("effect: field 1.5x the vector", "effect", "an assumed paper-sized advantage (the paper gives no per-prompt "
         f"numbers): field = 1.5 × vector, {real}", _control_world("normal", 1.5)),
    ]
    return world_table(worlds, paper="effect: field 1.5x")


CONTROL = register(Rule(
    id="svf.control", claim=CONTROL_CLAIM, text=CONTROL_TEXT,
    inputs={"field": "[prompts] the field's effect per held-out prompt at the primary coefficient: (steered − unsteered "
                     "score) × direction × sign(c)",
            "vector": "[prompts] the vector's effect per held-out prompt, the same way"},
    decide_one=_control, codes=_control_codes,
    profiles={**PROFILES, "prompts_100": {**PROFILES["full"], "prompts": 100}},
    dgps=_control_dgps(), detectable=lambda numbers: numbers["mde"],
    notes=(PROFILE_NOTES + "; prompts_100: 100 prompts, where the issue measured the old estimated margin at 5.6 %. "
           "The ratio is on the scorer's own scale: a monotone rescaling of the score changes it. Beyond the design: rare, "
           "large per-prompt jumps (greedy decoding leaves most completions unchanged, so an effect can be 0 on most "
           "prompts and a large VADER jump on a few). The red team measured false 'reproduced' 13.3 % (vector +1.8 on "
           "5 % of prompts, field +0.6 on 15 %) and 15-17 % (every prompt moved a little, the vector also jumping +1.5 "
           "on 3-5 %), false 'not reproduced' 11.3 % in the mirror: no mean over 30 prompts sees a tail that is "
           "usually not in the sample, so the 5 % assumes no such jumps (red team F2, not fixed).")))
