"""``svf.long_form``: does the field keep its effect better over long completions (retention, last
third ÷ first third, per method)? Decided on the denominator-free form by the jackknife
(:mod:`.retention`). The rule and its simulated worlds."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from interp_steer.studies.rules.base import (
    DGP,
    Decision,
    Rule,
    noise,
    register,
    vader_compound,
)
from interp_steer.studies.rules.svf.common import (
    PROFILE_NOTES,
    PROFILES,
    REAL,
    check_effects,
    check_setting,
    first_run,
    same_shape,
    world_table,
)
from interp_steer.studies.rules.svf.retention import (
    RETENTION_MARGIN,
    retention_core,
    retention_decision,
)
from interp_steer.studies.rules.svf.scorers import VADER_BASE, calibrated_shift

LONG_FORM_CLAIM = "The field keeps its effect better over long completions (last third against first third)."


LONG_FORM_TEXT = ("per prompt and method the effect on the first and the last third of a long completion; retention = "
                  "mean(last third) / mean(first third) per method. Decided without a denominator (a ratio's interval "
                  "is liberal when one first-third effect is weak): D = mean(last f) mean(first v) − mean(last v) "
                  "mean(first f), whose sign is that of the difference of retentions, and D − margin mean(first f) "
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


def _long_form(field: Any, vector: Any, *, margin: float = RETENTION_MARGIN) -> Decision:
    """``field``, ``vector``: ``[prompts, 3]`` each method's effect on the first, middle and last third
    of a long completion (oriented: intended direction positive; NaN for an empty third).
    ``margin``: the smallest difference of retentions of interest."""
    margin = check_setting(margin, "margin", 0.0, math.inf, high_open=True)
    f = check_effects(field, "field", 2, what="effects per third, [prompts, 3]", last=3)
    v = check_effects(vector, "vector", 2, what="effects per third, [prompts, 3]", last=3)
    same_shape(("field", f), ("vector", v))
    out = first_run(long_form_core(f, v, margin))
    weak = [m for m in ("field", "vector") if not out[f"significant_{m}"].all()]
    return retention_decision(out, margin, "last third / first third",
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
                    shift = calibrated_shift("vader", float(means[t]), base_mean, base_sd, noise_sd, 0.5)
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
    return world_table(worlds, paper="effect: field keeps 90")


LONG_FORM = register(Rule(
    id="svf.long_form", claim=LONG_FORM_CLAIM, text=LONG_FORM_TEXT,
    inputs={"field": "[prompts, 3] the field's effect on the first, middle and last third of its long completion "
                     "(score of that third of the steered completion − of the unsteered one, oriented; NaN for an "
                     "empty third)",
            "vector": "[prompts, 3] the vector's, the same way"},
    decide_one=_long_form, codes=_long_form_codes, profiles=PROFILES, dgps=_long_form_dgps(),
    detectable=lambda numbers: numbers["mde"],
    notes=(PROFILE_NOTES + ". Only the first and last thirds enter the rule (the middle one is reported). Judged "
           "on retention, not on the last third alone: a field that is stronger from the start and decays as fast "
           "is stronger on the last third without keeping its effect any better.")))
