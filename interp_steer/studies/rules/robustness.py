"""The verdict rules of the robustness study (arXiv 2505.03189's findings).

Each rule is registered in :data:`~interp_steer.studies.rules.base.REGISTRY` under
``robustness.<finding>``; the study's ``claims`` module calls :meth:`Rule.decide`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from interp_steer.stats import skew_corrected_interval
from interp_steer.studies.rules.base import DGP, Decision, Rule, noise, register
from interp_steer.studies.rules.paired import mde

# ------------------------------------------------------------------------- finding 4: perplexity

PERPLEXITY_CLAIM = "Steering raises the model's perplexity"
PERPLEXITY_TEXT = ("per neutral text d = log(steered / unsteered perplexity) at the primary coefficient; reproduced: "
                   "the 95 % interval of mean(d) (t, with Hall's skewness correction) lies above log(1 + margin) (a rise of more than the margin, not any "
                   "significant rise); not reproduced: it lies below; inconclusive otherwise. Each arm is a one-sided "
                   "2.5 % test at the boundary")
PERPLEXITY_MARGIN = 0.05


def threshold_codes(d: np.ndarray, bound: Any) -> dict[str, np.ndarray]:
    """The threshold rule on a batch ``d [runs, items]`` (NaNs left out) against ``bound`` (per run or
    scalar): code 1 when the 95 % interval of the mean lies above ``bound``, −1 below, 0 otherwise
    (and with fewer than two items). The interval is the t interval with Hall's skewness correction
    (:func:`~interp_steer.stats.skew_corrected_interval`)."""
    mean, se, n, low, high = skew_corrected_interval(d, level=0.95)
    valid = (n >= 2) & np.isfinite(se)
    bound = np.broadcast_to(np.asarray(bound, dtype=float), mean.shape)
    code = np.where(valid & (low > bound), 1, np.where(valid & (high < bound), -1, 0))
    return {"code": code, "mean": mean, "se": se, "n": n, "low": low, "high": high, "bound": bound,
            "mde": mde(se, n)}


def _perplexity_codes(log_ratios: np.ndarray, margin: Any = PERPLEXITY_MARGIN) -> np.ndarray:
    return threshold_codes(log_ratios, np.log1p(np.asarray(margin, dtype=float)))["code"]


def _perplexity(log_ratios: Any, *, margin: float = PERPLEXITY_MARGIN) -> Decision:
    """``log_ratios``: per neutral text, ``log(steered / unsteered perplexity)`` at the primary coefficient
    (NaNs left out); ``margin``: the smallest relative rise that counts."""
    d = np.asarray(log_ratios, dtype=float).ravel()
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    out = {k: v[0] if isinstance(v, np.ndarray) and v.ndim else v
           for k, v in threshold_codes(d[None], math.log1p(margin)).items()}
    code, n = int(out["code"]), int(out["n"])

    def ratio(x: float) -> str:
        return f"{math.exp(x):.3f}" if np.isfinite(x) else "n/a"

    interval = f"x{ratio(out['mean'])} [{ratio(out['low'])}, {ratio(out['high'])}]"
    rise = f"a rise of {margin:.0%}"
    verdict, why = {1: ("reproduced", f"perplexity {interval}: significantly more than {rise}"),
                    -1: ("not reproduced", f"perplexity {interval}: significantly less than {rise}"),
                    0: ("inconclusive", f"perplexity {interval}: cannot tell from {rise}")}[code]
    if n < 2:
        why = f"fewer than two texts with a perplexity ({n}): no interval"
    detect = (f"; this run could detect ±{out['mde']:.3f} in log ratio (n = {n} texts)"
              if np.isfinite(out["mde"]) else "")

    def num(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    numbers = {"verdict": verdict, "difference": {"mean": num(out["mean"]), "low": num(out["low"]),
                                                  "high": num(out["high"]), "n": n, "level": 0.95},
               "se": num(out["se"]), "margin": margin, "bound": math.log1p(margin), "mde": num(out["mde"])}
    return Decision(verdict, why + detect, numbers)


def _texts(profile: Mapping[str, Any], runs: int) -> tuple[int, int]:
    return runs, int(profile["neutral_texts"])


def _perplexity_world(shape: str, mean: float, sd: float = 0.15):
    """Per-text log ratios with the given mean: ``normal``; ``t3`` (heavy tails); ``skewed`` (a
    centred exponential: most texts barely move, a few a lot, as perplexity under steering does);
    ``lengths`` (each text's mean per-token NLL change, with per-token noise over 20-200 tokens:
    unequal variances across texts)."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        size = _texts(profile, runs)
        if shape in ("normal", "t3"):
            d = mean + sd * noise(rng, shape, size)
        elif shape == "skewed":
            d = mean + sd * (rng.exponential(1.0, size) - 1.0)
        elif shape == "lengths":
            tokens = rng.integers(20, 201, size)
            d = mean + sd * 0.5 * rng.standard_normal(size) + 1.2 * rng.standard_normal(size) / np.sqrt(tokens)
        else:
            raise ValueError(shape)
        return {"log_ratios": d}

    return draw


_AT_MARGIN = math.log1p(PERPLEXITY_MARGIN)
_PERPLEXITY_DGPS = {
    **{f"null: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}": DGP(
        f"null: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}", "null",
        f"per-text log ratios ({shape}) with mean log(1.05): the least favourable case for a false 'reproduced'",
        _perplexity_world(shape, _AT_MARGIN)) for shape in ("normal", "t3", "skewed", "lengths")},
    **{f"effect: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}": DGP(
        f"effect: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}", "effect",
        f"per-text log ratios ({shape}) with mean log(1.05): the least favourable case for a false 'not reproduced'",
        _perplexity_world(shape, _AT_MARGIN)) for shape in ("normal", "t3", "skewed", "lengths")},
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
    notes="Quick: up to 40 texts of the neutral corpus; full: the built-in neutral corpus (120 baseline passages)."))


__all__ = ["PERPLEXITY", "threshold_codes"]
