"""``svf.multi_attribute``: steering two attributes at once, does the field keep more of their solo
effects (retention, together ÷ alone, averaged over the attributes)? The rule (:mod:`.retention`) and
its simulated worlds."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from interp_steer.studies.rules.base import (
    DGP,
    Decision,
    Rule,
    json_number,
    noise,
    register,
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

MULTI_CLAIM = ("Steering two attributes at once, the field keeps more of the attributes' solo effects than the vector "
               "does (retention averaged over the two attributes; not shown for each one).")
MULTI_TEXT = ("per prompt, method and attribute the effect steered alone and steered together with the other attribute; "
              "retention per method = the mean over the two attributes of mean(together) / mean(alone); the "
              "difference field − vector by the jackknife (pseudo-values over prompts) with a 95 % t interval. "
              "Undefined, so inconclusive, unless every solo effect (2 methods × 2 attributes) is significantly in the "
              "intended direction. Reproduced: the interval lies above 0; not reproduced: it lies below the margin; "
              "inconclusive otherwise")
MULTI_INPUTS = {f"{m}_{part}": f"[prompts, 2] the {m}'s effect on attributes A and B (readout log-odds, steered − "
                               f"unsteered, × sign(c)) when {'that attribute is steered alone' if part == 'alone' else 'both are steered at once'}"
                for m in ("field", "vector") for part in ("alone", "together")}


def _pairs(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.shape[-1] != 2:
        raise ValueError(f"multi-attribute effects need two attributes on the last axis, got {a.shape}")
    return a[None] if a.ndim == 2 else a


def multi_core(field_alone: Any, field_together: Any, vector_alone: Any, vector_together: Any,
               margin: Any = RETENTION_MARGIN) -> dict[str, np.ndarray]:
    """The multi-attribute rule on a batch (each input ``[runs, prompts, 2]``: attributes A and B):
    :func:`~.retention.retention_core` of together ÷ alone per method."""
    return retention_core({"field": _pairs(field_together), "vector": _pairs(vector_together)},
                          {"field": _pairs(field_alone), "vector": _pairs(vector_alone)}, margin)


def _multi_codes(field_alone: Any, field_together: Any, vector_alone: Any, vector_together: Any,
                 margin: Any = RETENTION_MARGIN) -> np.ndarray:
    return multi_core(field_alone, field_together, vector_alone, vector_together, margin)["code"]


def _multi(field_alone: Any, field_together: Any, vector_alone: Any, vector_together: Any, *,
           margin: float = RETENTION_MARGIN) -> Decision:
    """Per prompt ``[prompts, 2]`` (attributes A and B): each method's effect on each attribute steered
    alone and steered together. ``margin``: the smallest difference of retentions of interest."""
    margin = check_setting(margin, "margin", 0.0, math.inf, high_open=True)
    arrays = {name: check_effects(x, name, 2, what="effects on attributes A and B, [prompts, 2]", last=2)
              for name, x in (("field_alone", field_alone), ("field_together", field_together),
                              ("vector_alone", vector_alone), ("vector_together", vector_together))}
    same_shape(*arrays.items())
    out = first_run(multi_core(**arrays, margin=margin))
    weak = [f"{m} {k}" for m in ("field", "vector") for j, k in enumerate("AB") if not out[f"significant_{m}"][j]]
    decision = retention_decision(out, margin, "together / alone, mean over attributes A and B",
                                   f"the solo effect of {', '.join(weak)} is not significantly in the intended "
                                   "direction (95 % t interval not above 0)")
    decision.numbers["retention_per_attribute"] = {
        f"{m}_{k}": json_number(out[f"per_{m}"][j]) for m in ("field", "vector") for j, k in enumerate("AB")}
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
    return world_table(worlds, paper="effect: field keeps 90")


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
