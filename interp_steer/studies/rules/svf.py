"""The verdict rules of the Steering Vector Fields comparison: ``svf.control``, ``svf.backfire``,
``svf.long_form`` and ``svf.multi_attribute``.

Each rule takes the per-prompt numbers of *both* methods (never a precomputed difference or margin),
so that a simulation feeds it what the study measures and exercises the whole procedure: margins
estimated from the vector's own effects, the backfire floor estimated from the control perturbation,
retentions estimated as ratios. The study's ``claims`` module calls :meth:`Rule.decide`.

Every rule reads one 95 % interval of the field's advantage (or, for backfires, two exact one-sided
2.5 % tests): **reproduced** when it lies above 0; **not reproduced** when it shows the advantage
below the smallest effect of interest (which includes "the vector does better"); **inconclusive**
otherwise. Each arm is a one-sided 2.5 % test at its boundary, so false "reproduced" is designed at
≤ 2.5 % and false "not reproduced" at ≤ 2.5 % (control: two arms with different boundaries, ≤ 5 %
together); the simulations (``interp-steer rules svf.control`` ..., ``tests/test_rules_svf.py``) stay
within 4 % under every world here (the scorers' real scales, heavy tails, skew, unequal variances),
which leaves room for worlds nobody simulated.

- ``svf.control``: per prompt the two effects (move of the score in the intended direction);
  "reproduced" also needs the field's own mean effect significantly above 0. The
  smallest effect of interest is relative (the field ``1 + margin`` times as strong as the vector);
  it is tested per prompt as ``field − (1 + margin)·vector`` (Fieller's test of the ratio), never
  through a margin estimated from the vector's mean, whose noise is correlated with the difference.
- ``svf.backfire``: per prompt the two effects and the changes a content-free perturbation of the
  same length makes (a random direction, decoded greedily like the grid). The floor is their
  symmetrised 95 % quantile; a prompt backfires when its effect is below −floor. The paired 0/1 flags
  are judged by exact unconditional tests (Tango's score ordering, the nuisance maximised over), and
  a verdict counts only when it holds at every floor in the floor's distribution-free 95 % interval.
- ``svf.long_form``: retention, last third ÷ first third, per method; decided on the denominator-free
  form mean(last f)·mean(first v) − mean(last v)·mean(first f) (and the same minus margin·mean(first
  f)·mean(first v)) by the jackknife over prompts; the difference of retentions by the jackknife is
  reported. Undefined,
  so inconclusive, unless both methods' first-third effects are significantly in the intended
  direction.
- ``svf.multi_attribute``: retention, together ÷ alone, per attribute and method, averaged over the
  two attributes; the difference by the jackknife; gated on every solo effect being significant.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import special as _special
from scipy import stats as _sps

from interp_steer.stats import mean_and_se, skew_corrected_interval, t_quantile
from interp_steer.studies.rules.base import DGP, Decision, Rule, noise, register, vader_compound
from interp_steer.studies.rules.paired import detect_text, mde


def _dgps(worlds: list[tuple[str, str, str, Any]], *, paper: str) -> dict[str, DGP]:
    """A rule's worlds ``(name, truth, description, draw)`` by name; the one whose name starts with
    ``paper`` is the assumed paper-sized effect its card reports power at."""
    return {name: DGP(name, truth, text, draw, paper=name.startswith(paper)) for name, truth, text, draw in worlds}

LEVEL = 0.95
"""Every interval the rules read is two-sided 95 %: each verdict arm a one-sided 2.5 % test."""

PROFILES = {"quick": {"prompts": 30, "long_tokens": 48, "floor_draws": 2},
            "full": {"prompts": 30, "long_tokens": 128, "floor_draws": 2}}
"""The sizes the study ships (``SvfConfig.quick()`` and ``SvfConfig()``): all 30 built-in held-out
prompts in both; long-form completions of 48 and 128 tokens (thirds of 16 and about 43 tokens); two
random control directions per prompt for the backfire floor."""

PROFILE_NOTES = ("quick = SvfConfig.quick() and full = SvfConfig(): the 30 built-in held-out prompts, long-form "
                 "completions of 48 and 128 tokens, two random control directions per prompt")

# The default model's quick run (smollm2-135m-instruct, layers 19-21, c = 0.1, VADER; README), which
# the DGPs called "real" take their sizes from: the two methods' effects per prompt (means 0.49 and
# 0.35, SDs 0.43 and 0.46, correlated 0.48 over prompts), the long-form thirds of 16 tokens (first-third
# effects 0.21 and 0.28, SDs about 0.4; the effects grew rather than decayed: retentions 1.1 and 1.5),
# the multi-attribute readouts (solo effects 6-9 log-odds, SD 7-8; retentions 1.5-1.7), and, with the
# random-direction floor (0.70), the backfire rates (1 of 30 prompts each) and the control changes (SD
# 0.42 on VADER's scale; 83 % of them non-zero).
REAL = {
    "vector_effect": 0.49, "field_effect": 0.35, "effect_sd": 0.45, "effect_correlation": 0.48,
    "backfire_rate": 0.03, "backfire_correlation": 0.5, "reference_sd": 0.42,
    "first_third": 0.25, "third_sd": 0.40, "retention": 1.2,
    "alone": 7.5, "alone_sd": 7.5, "multi_retention": 1.6,
}


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _interval(values: np.ndarray, *, skew: bool | str) -> tuple[np.ndarray, ...]:
    """Mean, se, n and the 95 % interval along the last axis (NaNs left out): the plain t interval
    (``skew=False``), Hall's skewness-corrected one (``True``), or ``"hull"``: the smallest interval
    containing both, so that a verdict needs both to agree."""
    mean, se, n = mean_and_se(values, axis=-1)
    half = t_quantile(LEVEL, n - 1) * se
    if not skew:
        return mean, se, n, mean - half, mean + half
    _, _, _, low, high = skew_corrected_interval(values, level=LEVEL)
    if skew == "hull":
        return mean, se, n, np.fmin(low, mean - half), np.fmax(high, mean + half)
    return mean, se, n, low, high


def _complete(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays, broadcast, with a NaN wherever any of them has one (a prompt's value is used only
    when the other method's is there too)."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in arrays))
    keep = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    return tuple(np.where(keep, a, np.nan) for a in arrays)


def _batch(value: Any, ndim: int) -> np.ndarray:
    """``value`` as a float array with a leading runs axis (one run gets one)."""
    x = np.asarray(value, dtype=float)
    return x[None] if x.ndim == ndim else x


def _check_effects(value: Any, name: str, ndim: int | tuple[int, ...], *, what: str = "effects",
                   last: int | None = None) -> np.ndarray:
    """``value`` as a float array of ``ndim`` axes (``last``: the size of its last axis), with no ±inf
    (NaN marks a prompt or third that was not scored); otherwise an error naming ``name``."""
    x = np.asarray(value, dtype=float)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if x.ndim not in allowed or (last is not None and x.shape[-1] != last):
        want = " or ".join(f"{d}-D" for d in allowed) + (f" with {last} on the last axis" if last is not None else "")
        raise ValueError(f"{name} must be {want} (one run's {what}), got shape {x.shape}; for many runs use the "
                         f"rule's batched core or codes")
    if np.isinf(x).any():
        raise ValueError(f"{name} holds ±inf at {int(np.isinf(x).sum())} place(s); every value must be finite (NaN for "
                         f"an unscored prompt, which the rule leaves out). An infinite readout (a probability of 0 or "
                         f"1) has no usable size: clip it or pass the scorer's finite output")
    return x


def _same_shape(*named: tuple[str, np.ndarray]) -> None:
    shapes = {name: x.shape for name, x in named}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{', '.join(shapes)} need the same shape (the same prompts), got "
                         + ", ".join(f"{k} {v}" for k, v in shapes.items()))


def _check_setting(value: Any, name: str, low: float, high: float, *, low_open: bool = False,
                   high_open: bool = False) -> float:
    """A scalar setting in ``[low, high]`` (ends open as asked)."""
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be one number, got an array of shape {np.shape(value)}")
    x = float(value)
    ok = (x > low if low_open else x >= low) and (x < high if high_open else x <= high)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {bounds}, got {value}")
    return x


def _one(out: Mapping[str, Any]) -> dict[str, Any]:
    """Run 0 of a batched core's output, as Python scalars."""
    return {k: (v[0].item() if isinstance(v, np.ndarray) and v.ndim and v[0].ndim == 0 else
                v[0] if isinstance(v, np.ndarray) and v.ndim else v) for k, v in out.items()}


def _iv(mean: float, low: float, high: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _verdict(code: int) -> str:
    return {1: "reproduced", -1: "not reproduced", 0: "inconclusive"}[int(code)]


# ============================================================================== svf.control

CONTROL_CLAIM = ("The field gives stronger control than the static vector: a larger move of the score in the intended "
                 "direction at the same step length.")
CONTROL_MARGIN = 0.25
CONTROL_TEXT = ("per prompt the effects of field and vector (move of the score in the intended direction at the primary "
                "coefficient). Reproduced: the 95 % interval of mean(field - vector) lies above 0 and so does the field's "
                "own mean effect's (a field that moves nothing is not stronger control). Not reproduced: it "
                "lies below 0, or the 95 % interval of mean(field - (1 + margin) x vector) lies below 0 (the field is "
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
    f, v = _complete(_batch(field, 1), _batch(vector, 1))
    margin = np.asarray(margin, dtype=float)
    factor = 1 + (margin[..., None] if margin.ndim else margin)  # a margin per run applies to each of its prompts
    mean, se, n, low, high = _interval(f - v, skew=skew)
    short_mean, _, _, short_low, short_high = _interval(f - factor * v, skew=skew)
    _, _, _, own_low, own_high = _interval(f, skew=skew)
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
    margin = _check_setting(margin, "margin", 0.0, math.inf, high_open=True)
    f, v = _check_effects(field, "field", 1), _check_effects(vector, "vector", 1)
    _same_shape(("field", f), ("vector", v))
    out = _one(control_core(f, v, margin))
    code, n = int(out["code"]), int(out["n"])
    unit = f" {units}" if units else ""
    diff = f"{_iv(out['mean'], out['low'], out['high'])}{unit} (95 %, n = {n})"
    short = _iv(out["short_mean"], out["short_low"], out["short_high"])
    detect = detect_text(out["mde"], unit)
    times = f"{1 + margin:g} x"
    if n < 2:
        reason = f"fewer than two prompts with both effects ({n}): no interval"
    elif code == 1:
        small = (f" (but the field is shown less than {times} as strong as the vector: field - {times} vector = {short})"
                 if out["short"] else "")
        reason = f"field - vector = {diff}, above 0, and the field's own effect is above 0{small}; {detect}"
    elif out["above"] and not out["moves"]:
        own = _iv(out["field_mean"], out["field_low"], out["field_high"])
        reason = (f"field - vector = {diff}, above 0, but the field's own effect {own}{unit} is not above 0: the "
                  f"vector does more harm, which is not stronger control; {detect}")
    elif out["below"]:
        reason = f"the vector does better: field - vector = {diff}, below 0; {detect}"
    elif code == -1:
        reason = (f"field - vector = {diff}; field - {times} vector = {short}, below 0: the field is not {times} as "
                  f"strong as the vector (the smallest effect of interest); {detect}")
    else:
        reason = (f"field - vector = {diff}, not above 0; field - {times} vector = {short}, not below 0: cannot tell; "
                  f"{detect}")
    numbers = {"verdict": _verdict(code), "reason": reason,
               "difference": {"mean": _num(out["mean"]), "low": _num(out["low"]), "high": _num(out["high"]), "n": n,
                              "level": LEVEL},
               "short_of_margin": {"mean": _num(out["short_mean"]), "low": _num(out["short_low"]),
                                   "high": _num(out["short_high"]), "n": n, "level": LEVEL,
                                   "definition": f"mean over prompts of field - {times} vector"},
               "ratio": _num(out["ratio"]), "se": _num(out["se"]), "margin": float(margin),
               "margin_rule": f"relative: the field must be {times} as strong as the vector (tested per prompt)",
               "mde": _num(out["mde"]),
               "field_effect": {"mean": _num(out["field_mean"]), "low": _num(out["field_low"]),
                                "high": _num(out["field_high"]), "n": n, "level": LEVEL},
               "criteria": {"above_zero": bool(out["above"]), "field_moves": bool(out["moves"]),
                            "below_zero": bool(out["below"]), "short_of_margin": bool(out["short"])}}
    return Decision(_verdict(code), reason, numbers)


@functools.cache
def _calibrated_shift(scale: str, target: float, base_mean: float, base_sd: float, noise_sd: float,
                      spread: float) -> float:
    """The raw shift whose mean effect on ``scale`` ("vader": VADER's compound of a raw valence sum;
    "probability": a sigmoid of log-odds) is ``target``, for prompts whose unsteered raw score is
    N(base_mean, base_sd), shifted by ``shift · (1 + spread · a)`` (a ~ N(0, 1), the prompt's
    sensitivity) plus N(0, noise_sd) noise. Found by bisection on 200 000 fixed draws."""
    rng = np.random.default_rng(12345)
    base = base_mean + base_sd * rng.standard_normal(200_000)
    a = rng.standard_normal(200_000)
    eps = noise_sd * rng.standard_normal(200_000)
    to_scale = _SCALES[scale]
    start = to_scale(base)

    def effect(shift: float) -> float:
        return float(np.mean(to_scale(base + shift * (1 + spread * a) + eps) - start))

    low, high = -40.0, 40.0
    if not effect(low) < target < effect(high):
        raise ValueError(f"a mean effect of {target} is out of reach on the {scale} scale")
    for _ in range(80):
        mid = (low + high) / 2
        low, high = (mid, high) if effect(mid) < target else (low, mid)
    return (low + high) / 2


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


_SCALES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"vader": vader_compound, "probability": _sigmoid}

# Scales of the simulated scorers: VADER compound of completions of about 32 tokens (unsteered raw
# valence centred at +1 with SD 2: most built-in prompts continue neutral to mildly positive, so the
# intended direction, up, has less room than down: asymmetric ends), and P(matching answer) (log-odds
# centred at 0.5 with SD 1.5).
VADER_BASE = (1.0, 2.0)
PROBABILITY_BASE = (0.5, 1.5)
UNCHANGED = 0.07
"""The fraction of prompts whose steered text (so score) is the unsteered one (2 of 30 for the field in
the default model's quick run): their effect is exactly 0."""


def _scaled_pair(rng: np.random.Generator, size: tuple[int, ...], scale: str, targets: tuple[float, float],
                 noise_sds: tuple[float, float], spread: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-prompt effects of two methods on a bounded scale, with mean effects ``targets`` exactly:
    a shared unsteered raw score and sensitivity per prompt (so the effects are correlated over
    prompts, as measured), each method its own raw shift (calibrated) and noise."""
    base_mean, base_sd = VADER_BASE if scale == "vader" else PROBABILITY_BASE
    base = base_mean + base_sd * rng.standard_normal(size)
    a = rng.standard_normal(size)
    to_scale = _SCALES[scale]
    start = to_scale(base)
    out = []
    for target, sd in zip(targets, noise_sds, strict=True):
        shift = _calibrated_shift(scale, float(target) / (1 - UNCHANGED), base_mean, base_sd, float(sd), spread)
        moved = rng.random(size) >= UNCHANGED  # greedy text left unchanged: an effect of exactly 0
        out.append(np.where(moved, to_scale(base + shift * (1 + spread * a) + sd * rng.standard_normal(size)) - start,
                            0.0))
    return out[0], out[1]


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
            f, v = _scaled_pair(rng, size, shape, (mu_f, mu_v), (unit * (field_sd or sd) / sd, unit))
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
        ("null: equal effects, skewed", "null", "the same with the field's own noise left-skewed (1 - Exp(1))",
         _control_world("skewed", 1.0)),
        ("null: equal effects, field twice as variable", "null", "unequal variances between methods",
         _control_world("normal", 1.0, field_sd=2 * REAL["effect_sd"])),
        ("null: equal effects, VADER", "null", "VADER compound (raw valence, asymmetric ends, 4 decimals, 7 % of "
         "prompts unchanged), equal mean effects (calibrated)", _control_world("vader", 1.0)),
        ("null: equal effects, VADER, field more variable", "null", "the same with the field's raw noise 1.5x the "
         "vector's", _control_world("vader", 1.0, field_sd=1.5 * REAL["effect_sd"])),
        ("null: equal effects, probabilities", "null", "P(matching answer) through a sigmoid, equal mean effects "
         "(calibrated)", _control_world("probability", 1.0, vector_effect=0.15)),
        ("null: neither moves the score", "null", "both effects 0 on average (a vector that does nothing)",
         _control_world("normal", 1.0, vector_effect=0.0)),
        (f"effect: field exactly {r:g}x, normal", "effect", f"the boundary of the claim, field = {r:g} x vector "
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
         "for field >= vector", _control_world("normal", 1.0, vector_effect=0.0)),
        ("effect: field 1.5x the vector", "effect", "an assumed paper-sized advantage (the paper gives no per-prompt "
         f"numbers): field = 1.5 x vector, {real}", _control_world("normal", 1.5)),
    ]
    return _dgps(worlds, paper="effect: field 1.5x")


CONTROL = register(Rule(
    id="svf.control", claim=CONTROL_CLAIM, text=CONTROL_TEXT,
    inputs={"field": "[prompts] the field's effect per held-out prompt at the primary coefficient: (steered - unsteered "
                     "score) x direction x sign(c)",
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


# ============================================================================= svf.backfire

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
                 "exact unconditional test of rate(vector) - rate(field) > 0 at one-sided 2.5 % (Tango's score "
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
    f, v = _complete(_batch(field, 1), _batch(vector, 1))
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
    margin = _check_setting(margin, "margin", 0.0, 1.0, high_open=True)
    level = _check_setting(level, "level", 0.5, 1.0, low_open=True, high_open=True)
    f, v = _check_effects(field, "field", 1), _check_effects(vector, "vector", 1)
    _same_shape(("field", f), ("vector", v))
    ref = _check_effects(reference, "reference", (1, 2), what="content-free changes")
    if ref.ndim == 2 and ref.shape[0] != f.shape[0]:
        raise ValueError(f"reference must be [prompts, draws] with one row per prompt of field ({f.shape[0]}), got "
                         f"{ref.shape}")
    out = _one(backfire_core(f, v, ref.ravel()[None], margin, level=level))
    code, n, b, c = int(out["code"]), int(out["n"]), int(out["b"]), int(out["c"])

    def pct(x: float) -> str:
        return f"{x:.0%}" if np.isfinite(x) else "n/a"

    span = f"[{out['floor_low']:.3f}, {out['floor_high']:.3f}]"
    counts = (f"backfire beyond the floor {out['floor']:.3f} (95 % interval {span} from {int(out['n_reference'])} "
              f"content-free changes): vector {pct(out['rate_vector'])}, field {pct(out['rate_field'])} of {n} prompts; "
              f"only the vector on {b}, only the field on {c}")
    detect = (f"this run could detect a difference of rates of about {out['mde']:.2f} (80 % power, 5 % two-sided)"
              if np.isfinite(out["mde"]) else "no prompts")
    fragile = (f"; but that verdict ({_verdict(int(out['code_at_floor']))}) does not hold at every floor in the "
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
    numbers = {"verdict": _verdict(code), "reason": reason,
               "difference": {"mean": _num(out["difference"]), "low": None, "high": None, "n": n, "level": LEVEL,
                              "definition": "backfire rate of the vector - of the field (tests are exact; no interval)"},
               "floor": _num(out["floor"]), "floor_level": level,
               "floor_interval": {"low": _num(out["floor_low"]), "high": _num(out["floor_high"]),
                                  "coverage": FLOOR_COVERAGE, "method": "order statistics (distribution-free)"},
               "n_reference": int(out["n_reference"]),
               "rate_vector": _num(out["rate_vector"]), "rate_field": _num(out["rate_field"]),
               "only_vector": b, "only_field": c,
               "p_values": {"field_fewer": _num(out["p_fewer"]), "field_more": _num(out["p_more"]),
                            "below_margin": _num(out["p_margin"]),
                            "field_fewer_worst_over_floor_interval": _num(out["p_fewer_worst"])},
               "alpha": ALPHA, "margin": float(margin), "mde": _num(out["mde"]),
               "criteria": {"field_fewer": bool(out["fewer"]), "field_more": bool(out["more"]),
                            "below_margin": bool(out["short"]), "holds_over_floor_interval": bool(out["robust"])}}
    return Decision(_verdict(code), reason, numbers)


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
    return _dgps(worlds, paper="effect: vector 25 %")


BACKFIRE = register(Rule(
    id="svf.backfire", claim=BACKFIRE_CLAIM, text=BACKFIRE_TEXT,
    inputs={"field": "[prompts] the field's effect per held-out prompt at the primary coefficient (oriented: intended "
                     "direction positive)",
            "vector": "[prompts] the vector's effect, the same way",
            "reference": "[prompts, draws] the change (steered - unsteered, oriented the same way) a random direction "
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


# ====================================================================== ratios by the jackknife


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
    arrays = _complete(together["field"], alone["field"], together["vector"], alone["vector"])
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
    mean, se, n, low, high = _interval(pseudo, skew=False)
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


# ============================================================================ svf.long_form

LONG_FORM_CLAIM = "The field keeps its effect better over long completions (last third against first third)."
RETENTION_MARGIN = 0.1
LONG_FORM_TEXT = ("per prompt and method the effect on the first and the last third of a long completion; retention = "
                  "mean(last third) / mean(first third) per method. Decided without a denominator (a ratio's interval "
                  "is liberal when one first-third effect is weak): D = mean(last f) mean(first v) - mean(last v) "
                  "mean(first f), whose sign is that of the difference of retentions, and D - margin mean(first f) "
                  "mean(first v), each with a jackknife 95 % t interval over prompts (the retention difference's own "
                  "jackknife interval is reported). Undefined, so inconclusive, unless both "
                  "methods' first-third effects are significantly in the intended direction (95 % t interval above 0). "
                  "Reproduced: the interval lies above 0; not reproduced: it lies below the margin (the field's "
                  "retention is not higher by the smallest amount of interest, or is lower); inconclusive otherwise")


def _thirds(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.shape[-1] != 3:
        raise ValueError(f"long-form effects need three thirds (first, middle, last) on the last axis, got {a.shape}")
    return a[None] if a.ndim == 2 else a


def long_form_core(field: Any, vector: Any, margin: Any = RETENTION_MARGIN) -> dict[str, np.ndarray]:
    """The long-form rule on a batch: ``field``, ``vector`` ``[runs, prompts, 3]`` effects per third."""
    f, v = _thirds(field), _thirds(vector)
    return retention_core({"field": f[..., 2:3], "vector": v[..., 2:3]}, {"field": f[..., 0:1], "vector": v[..., 0:1]},
                          margin)


def _long_form_codes(field: Any, vector: Any, margin: Any = RETENTION_MARGIN) -> np.ndarray:
    return long_form_core(field, vector, margin)["code"]


def _retention_decision(out: Mapping[str, Any], margin: float, what: str, gate_text: str) -> Decision:
    code, n = int(out["code"]), int(out["n"])
    retained = f"retention field {out['retention_field']:.2f}, vector {out['retention_vector']:.2f}"
    diff = f"{_iv(out['mean'], out['low'], out['high'], 2)} (jackknife, 95 %, n = {n})"
    detect = detect_text(out["mde"], " in retention", digits=2)
    product = ""
    if "product" in out and np.ndim(out["product_low"]) == 0 and what.startswith("last third"):
        product = (f"; decided on the denominator-free form mean(last f) mean(first v) - mean(last v) mean(first f) "
                   f"= {_iv(out['product'], out['product_low'], out['product_high'])} and the same minus {margin:g} "
                   f"mean(first f) mean(first v) = {_iv(out['short_product'], out['short_low'], out['short_high'])}")
    if not out["gate"]:
        reason = f"{gate_text}, so retention ({what}) is undefined; {retained}"
    elif not np.isfinite(out["low"]):
        reason = f"fewer than three complete prompts ({n}): no interval"
    elif code == 1:
        reason = f"{retained}; field - vector {diff}, above 0{product}; {detect}"
    elif code == -1:
        lower = "the vector keeps more" if out["below"] else f"any advantage of the field is below {margin:g}"
        reason = f"{retained}; field - vector {diff}, below {margin:g}: {lower}{product}; {detect}"
    else:
        reason = f"{retained}; field - vector {diff}: neither above 0 nor below {margin:g}{product}; {detect}"
    numbers = {"verdict": _verdict(code), "reason": reason, "measured": True,
               "difference": {"mean": _num(out["mean"]), "low": _num(out["low"]), "high": _num(out["high"]), "n": n,
                              "level": LEVEL, "definition": f"retention ({what}) of the field - of the vector, "
                                                            "jackknife estimate"},
               "retention": {"field": _num(out["retention_field"]), "vector": _num(out["retention_vector"])},
               "estimate": _num(out["estimate"]), "se": _num(out["se"]), "defined": bool(out["gate"]),
               "margin": float(margin), "mde": _num(out["mde"]),
               **({"denominator_free": {
                   "difference": {"mean": _num(out["product"]), "low": _num(out["product_low"]),
                                  "high": _num(out["product_high"])},
                   "short_of_margin": {"mean": _num(out["short_product"]), "low": _num(out["short_low"]),
                                       "high": _num(out["short_high"])},
                   "definition": "mean(last f) mean(first v) - mean(last v) mean(first f) [- margin mean(first f) "
                                 "mean(first v)], jackknife 95 % t intervals; they decide"}} if product else {}),
               "criteria": {"defined": bool(out["gate"]), "above_zero": bool(out["above"]),
                            "below_margin": bool(out["short"]), "below_zero": bool(out["below"])}}
    return Decision(_verdict(code), reason, numbers)


def _long_form(field: Any, vector: Any, *, margin: float = RETENTION_MARGIN) -> Decision:
    """``field``, ``vector``: ``[prompts, 3]`` each method's effect on the first, middle and last third
    of a long completion (oriented: intended direction positive; NaN for an empty third).
    ``margin``: the smallest difference of retentions of interest."""
    margin = _check_setting(margin, "margin", 0.0, math.inf, high_open=True)
    f = _check_effects(field, "field", 2, what="effects per third, [prompts, 3]", last=3)
    v = _check_effects(vector, "vector", 2, what="effects per third, [prompts, 3]", last=3)
    _same_shape(("field", f), ("vector", v))
    out = _one(long_form_core(f, v, margin))
    weak = [m for m in ("field", "vector") if not out[f"significant_{m}"].all()]
    return _retention_decision(out, margin, "last third / first third",
                               f"the first-third effect of the {' and the '.join(weak)} is not significantly in the "
                               "intended direction (95 % t interval not above 0)")


def _long_form_world(shape: str, first: tuple[float, float], retention: tuple[float, float], *,
                     sd: float = REAL["third_sd"], field_sd: float | None = None) -> Callable[..., dict[str, Any]]:
    """Per prompt and method the effects on three thirds: mean ``first[m]`` on the first third, decaying
    geometrically to ``retention[m] · first[m]`` on the last, times the prompt's sensitivity
    ``1 + 0.5·a`` (shared by both methods and thirds), plus noise (``normal``/``t3``/``skewed``, SD
    ``sd``, the field's ``field_sd``). ``vader``: each third's score is VADER's compound of a raw
    valence sum whose size grows with the third's length, the raw shifts calibrated so that the mean
    effects on the compound scale are exactly as asked."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        n = int(profile["prompts"])
        size = (runs, n, 3)
        a = rng.standard_normal((runs, n, 1))
        out = []
        for mu, r, s in zip(first, retention, (field_sd or sd, sd), strict=True):
            means = mu * np.array([1.0, (1 + r) / 2, r])
            if shape == "vader":
                length = profile["long_tokens"] / 3 / 16  # thirds of 16 tokens: the unit
                base_mean, base_sd = 0.5, VADER_BASE[1] * math.sqrt(length)
                noise_sd = 1.5 * math.sqrt(length) * s / sd
                base = base_mean + base_sd * rng.standard_normal(size)
                start = vader_compound(base)
                thirds = []
                for t in range(3):
                    shift = _calibrated_shift("vader", float(means[t]), base_mean, base_sd, noise_sd, 0.5)
                    thirds.append(vader_compound(base[..., t] + shift * (1 + 0.5 * a[..., 0])
                                                 + noise_sd * rng.standard_normal((runs, n))) - start[..., t])
                out.append(np.stack(thirds, axis=-1))
            else:
                if shape == "skewed":
                    e = rng.exponential(1.0, size) - 1.0
                else:
                    e = noise(rng, shape, size)
                out.append(means * (1 + 0.5 * a) + s * e)
        return {"field": out[0], "vector": out[1]}

    return draw


def _long_form_dgps() -> dict[str, DGP]:
    mu, r, m = REAL["first_third"], REAL["retention"], RETENTION_MARGIN
    worlds = [
        ("null: the issue's counter-example", "null", f"both retain half; the field's first-third effect twice the "
         f"vector's (1 and 0.5, the vector's as on short completions; per-third SD {REAL['third_sd']:g}), so it loses "
         "twice as much and is stronger on the last third", _long_form_world("normal", (1.0, 0.5), (0.5, 0.5))),
        ("null: equal retention, normal", "null", f"both retain {r:g} of a first-third effect of {mu:g} (the default "
         "model's quick run)", _long_form_world("normal", (mu, mu), (r, r))),
        ("null: equal retention, t3", "null", "the same with t3 noise", _long_form_world("t3", (mu, mu), (r, r))),
        ("null: equal retention, skewed", "null", "the same with centred exponential noise",
         _long_form_world("skewed", (mu, mu), (r, r))),
        ("null: equal retention, field twice as variable", "null", "unequal variances between methods",
         _long_form_world("normal", (mu, mu), (r, r), field_sd=2 * REAL["third_sd"])),
        ("null: equal retention, weak first third", "null", f"first-third effects of {mu / 2:g} (often not significant: "
         "the gate)", _long_form_world("normal", (mu / 2, mu / 2), (r, r))),
        ("null: the counter-example on VADER's scale", "null", "the field twice as strong at first, both retain half, "
         "on VADER's compound of thirds (calibrated)", _long_form_world("vader", (2 * mu, mu), (0.5, 0.5))),
        ("null: equal retention, VADER", "null", f"both retain {r:g}, VADER's compound (calibrated)",
         _long_form_world("vader", (mu, mu), (r, r))),
        ("null: equal retention, the vector's first third weak", "null", f"both retain {r:g}; first-third effects "
         "0.5 (field) and 0.15 (vector, barely significant: the gate keeps runs that overestimate it, and its ratio's "
         "interval is liberal; the red team's F3)", _long_form_world("normal", (0.5, 0.15), (r, r))),
        ("null: equal retention 2, the vector's first third weak", "null", "the same with both retaining 2 (the "
         "red team's worst case)", _long_form_world("normal", (0.5, 0.15), (2.0, 2.0))),
        (f"effect: retention higher by exactly {m:g}, the field's first third weak", "effect", "the boundary's mirror "
         f"of the weak world: first-third effects 0.15 (field) and 0.5 (vector), retentions {r:g} and {r - m:g}",
         _long_form_world("normal", (0.15, 0.5), (r, r - m))),
        (f"effect: retention higher by exactly {m:g}, normal", "effect", f"the boundary: field {r:g}, vector {r - m:g}",
         _long_form_world("normal", (mu, mu), (r, r - m))),
        (f"effect: retention higher by exactly {m:g}, t3", "effect", "the boundary with t3 noise",
         _long_form_world("t3", (mu, mu), (r, r - m))),
        (f"effect: retention higher by exactly {m:g}, field twice as strong at first", "effect",
         "the boundary when the field starts twice as strong (the counter-example's mirror)",
         _long_form_world("normal", (2 * mu, mu), (r, r - m))),
        (f"effect: retention higher by exactly {m:g}, field twice as variable", "effect", "the boundary, unequal "
         "variances", _long_form_world("normal", (mu, mu), (r, r - m), field_sd=2 * REAL["third_sd"])),
        (f"effect: retention higher by exactly {m:g}, VADER", "effect", "the boundary on VADER's scale",
         _long_form_world("vader", (mu, mu), (r, r - m))),
        ("effect: field keeps 90 %, vector 40 %", "effect", "an assumed paper-sized difference (the paper shows "
         f"long-form control but no per-prompt numbers), first-third effects {mu:g}",
         _long_form_world("normal", (mu, mu), (0.9, 0.4))),
    ]
    return _dgps(worlds, paper="effect: field keeps 90")


LONG_FORM = register(Rule(
    id="svf.long_form", claim=LONG_FORM_CLAIM, text=LONG_FORM_TEXT,
    inputs={"field": "[prompts, 3] the field's effect on the first, middle and last third of its long completion "
                     "(score of that third of the steered completion - of the unsteered one, oriented; NaN for an "
                     "empty third)",
            "vector": "[prompts, 3] the vector's, the same way"},
    decide_one=_long_form, codes=_long_form_codes, profiles=PROFILES, dgps=_long_form_dgps(),
    detectable=lambda numbers: numbers["mde"],
    notes=(PROFILE_NOTES + ". Only the first and last thirds enter the rule (the middle one is reported). Judged "
           "on retention, not on the last third alone: a field that is stronger from the start and decays as fast "
           "is stronger on the last third without keeping its effect any better.")))


# ======================================================================= svf.multi_attribute

MULTI_CLAIM = ("Steering two attributes at once, the field keeps more of the attributes' solo effects than the vector "
               "does (retention averaged over the two attributes; not shown for each one).")
MULTI_TEXT = ("per prompt, method and attribute the effect steered alone and steered together with the other attribute; "
              "retention per method = the mean over the two attributes of mean(together) / mean(alone); the "
              "difference field - vector by the jackknife (pseudo-values over prompts) with a 95 % t interval. "
              "Undefined, so inconclusive, unless every solo effect (2 methods x 2 attributes) is significantly in the "
              "intended direction. Reproduced: the interval lies above 0; not reproduced: it lies below the margin; "
              "inconclusive otherwise")
MULTI_INPUTS = {f"{m}_{part}": f"[prompts, 2] the {m}'s effect on attributes A and B (readout log-odds, steered - "
                               f"unsteered, x sign(c)) when {'that attribute is steered alone' if part == 'alone' else 'both are steered at once'}"
                for m in ("field", "vector") for part in ("alone", "together")}


def _pairs(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.shape[-1] != 2:
        raise ValueError(f"multi-attribute effects need two attributes on the last axis, got {a.shape}")
    return a[None] if a.ndim == 2 else a


def multi_core(field_alone: Any, field_together: Any, vector_alone: Any, vector_together: Any,
               margin: Any = RETENTION_MARGIN) -> dict[str, np.ndarray]:
    return retention_core({"field": _pairs(field_together), "vector": _pairs(vector_together)},
                          {"field": _pairs(field_alone), "vector": _pairs(vector_alone)}, margin)


def _multi_codes(field_alone: Any, field_together: Any, vector_alone: Any, vector_together: Any,
                 margin: Any = RETENTION_MARGIN) -> np.ndarray:
    return multi_core(field_alone, field_together, vector_alone, vector_together, margin)["code"]


def _multi(field_alone: Any, field_together: Any, vector_alone: Any, vector_together: Any, *,
           margin: float = RETENTION_MARGIN) -> Decision:
    """Per prompt ``[prompts, 2]`` (attributes A and B): each method's effect on each attribute steered
    alone and steered together. ``margin``: the smallest difference of retentions of interest."""
    margin = _check_setting(margin, "margin", 0.0, math.inf, high_open=True)
    arrays = {name: _check_effects(x, name, 2, what="effects on attributes A and B, [prompts, 2]", last=2)
              for name, x in (("field_alone", field_alone), ("field_together", field_together),
                              ("vector_alone", vector_alone), ("vector_together", vector_together))}
    _same_shape(*arrays.items())
    out = _one(multi_core(**arrays, margin=margin))
    weak = [f"{m} {k}" for m in ("field", "vector") for j, k in enumerate("AB") if not out[f"significant_{m}"][j]]
    decision = _retention_decision(out, margin, "together / alone, mean over attributes A and B",
                                   f"the solo effect of {', '.join(weak)} is not significantly in the intended "
                                   "direction (95 % t interval not above 0)")
    decision.numbers["retention_per_attribute"] = {
        f"{m}_{k}": _num(out[f"per_{m}"][j]) for m in ("field", "vector") for j, k in enumerate("AB")}
    return decision


def _multi_world(shape: str, retention: Mapping[str, tuple[float, float]], *, alone: float = REAL["alone"],
                 sd: float = REAL["alone_sd"], spreads: Mapping[str, tuple[float, float]] | None = None
                 ) -> Callable[..., dict[str, Any]]:
    """Per prompt, method and attribute: the solo effect ``alone · (1 + 0.4·a)`` plus noise, and the
    together effect ``retention · alone · (1 + 0.4·a)`` plus noise correlated with the solo one's
    (the same prompt, the same readout), ``a`` the prompt's sensitivity. ``spreads`` scale the noise
    per method and attribute (unequal variances); ``normal``, ``t3`` or ``skewed`` noise."""
    spreads = spreads or {"field": (1.0, 1.0), "vector": (1.0, 1.0)}

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        n = int(profile["prompts"])
        a = rng.standard_normal((runs, n, 1))
        out = {}
        for m in ("field", "vector"):
            r = np.array(retention[m])
            s = sd * np.array(spreads[m])

            def e() -> np.ndarray:
                if shape == "skewed":
                    return rng.exponential(1.0, (runs, n, 2)) - 1.0
                return noise(rng, shape, (runs, n, 2))

            common = e()
            out[f"{m}_alone"] = alone * (1 + 0.4 * a) + s * (0.6 * common + 0.8 * e())
            out[f"{m}_together"] = r * alone * (1 + 0.4 * a) + s * (0.6 * common + 0.8 * e())
        return out

    return draw


def _multi_dgps() -> dict[str, DGP]:
    r, m = REAL["multi_retention"], RETENTION_MARGIN
    same = {"field": (r, r), "vector": (r, r)}
    mixed = {"field": (r + 0.2, r - 0.2), "vector": (r, r)}
    unequal = {"field": (1.0, 2.0), "vector": (0.5, 1.5)}
    boundary = {"field": (r, r), "vector": (r - m, r - m)}
    worlds = [
        ("null: equal retention, normal", "null", f"both methods retain {r:g} of each solo effect (solo effect "
         f"{REAL['alone']:g} log-odds, SD {REAL['alone_sd']:g}: the default model's quick run)",
         _multi_world("normal", same)),
        ("null: equal mean retention, unequal attributes", "null", f"the field retains {r + 0.2:g} of A and {r - 0.2:g} "
         f"of B, the vector {r:g} of both", _multi_world("normal", mixed)),
        ("null: equal retention, t3", "null", "t3 noise", _multi_world("t3", same)),
        ("null: equal retention, skewed", "null", "centred exponential noise", _multi_world("skewed", same)),
        ("null: equal retention, unequal variances", "null", "noise SD x1 and x2 on the field's attributes, x0.5 and "
         "x1.5 on the vector's", _multi_world("normal", same, spreads=unequal)),
        ("null: equal retention 0.5, weak solo effects", "null", "solo effects of 0.5 log-odds (often not significant: "
         "the gate)", _multi_world("normal", {"field": (0.5, 0.5), "vector": (0.5, 0.5)}, alone=0.5)),
        (f"effect: retention higher by exactly {m:g}, normal", "effect", f"the boundary: field {r:g}, vector {r - m:g}",
         _multi_world("normal", boundary)),
        (f"effect: retention higher by exactly {m:g}, t3", "effect", "the boundary with t3 noise",
         _multi_world("t3", boundary)),
        (f"effect: retention higher by exactly {m:g}, unequal variances", "effect", "the boundary, unequal variances",
         _multi_world("normal", boundary, spreads=unequal)),
        (f"effect: retention higher by exactly {m:g}, skewed", "effect", "the boundary, skewed noise",
         _multi_world("skewed", boundary)),
        ("effect: field keeps 90 %, vector 60 %", "effect", "an assumed paper-sized difference (the paper shows "
         "multi-attribute control but no per-prompt numbers)",
         _multi_world("normal", {"field": (0.9, 0.9), "vector": (0.6, 0.6)})),
    ]
    return _dgps(worlds, paper="effect: field keeps 90")


MULTI = register(Rule(
    id="svf.multi_attribute", claim=MULTI_CLAIM, text=MULTI_TEXT, inputs=MULTI_INPUTS,
    decide_one=_multi, codes=_multi_codes, profiles=PROFILES, dgps=_multi_dgps(),
    detectable=lambda numbers: numbers["mde"],
    notes=(PROFILE_NOTES + ". Retentions above 1 are possible (overlapping attributes push each other's readout); "
           "the rule reads only their difference. It judges the average over the two attributes, not each one (red "
           "team F5: field retentions 1.0 and 0.3 against 0.5 and 0.5 read 'reproduced'); requiring each attribute's "
           "difference (intersection-union) cut the power at the paper's effect from 0.26 to 0.02, so the claim is "
           "worded as tested. The decision stays on the ratio's jackknife interval (long-form's denominator-free form, "
           "here a product of four noisy means, cut that power to 0.09); with one solo effect weak it stayed within "
           "the design (1.7-2.3 %).")))


__all__ = ["BACKFIRE", "CONTROL", "LONG_FORM", "MULTI", "REAL", "backfire_core", "control_core", "control_floor",
           "jackknife", "long_form_core", "multi_core", "retention_core", "unconditional_pvalues"]
