"""``robustness.adversarial`` (finding 3): per seed prompt, did the optimised search reverse the
steering, and did random edits of the same budget (the control)? McNemar's exact test for "more than
random", an exact bound for "not much more than random". The rule and its simulated worlds."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import stats as _sps

from interp_steer.studies.rules.base import (
    DGP,
    VERDICTS,
    Decision,
    Rule,
    json_number,
    register,
)
from interp_steer.studies.rules.robustness.common import one_d

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
                    "excess over random editing, P(S=1, C=0) − P(S=0, C=1) ≤ P(S=1, C=0), is under 25 % of seeds: "
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
    s = one_d(search, "search", "per seed prompt")
    c = one_d(control, "control", "per seed prompt")
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
    numbers = {"verdict": VERDICTS[code], "n_seeds": n, "search_reversed": int(out["search"]),
               "control_reversed": int(out["control"]), "search_only": b, "control_only": cc, "both": both,
               "mcnemar_p": float(out["p_value"]), "search_only_upper": json_number(upper), "margin": margin,
               "detectable": _detectable_excess(n)}
    return Decision(VERDICTS[code], why, numbers)


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
