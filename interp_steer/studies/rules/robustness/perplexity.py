"""``robustness.perplexity`` (finding 4): the interval of the mean per-text log perplexity ratio
against ``log(1 + margin)`` (:mod:`.threshold`). The rule and its simulated worlds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from interp_steer.studies.rules.base import (
    DGP,
    Decision,
    Rule,
    noise,
    register,
)
from interp_steer.studies.rules.robustness.common import one_d
from interp_steer.studies.rules.robustness.threshold import (
    INF_HINT,
    threshold_codes,
    threshold_decision,
)

PERPLEXITY_CLAIM = "Steering raises the model's perplexity"
PERPLEXITY_TEXT = ("per neutral text d = log(steered / unsteered perplexity) at the primary coefficient; reproduced: "
                   "the 95 % interval of mean(d) (t, with Hall's skewness correction) lies above log(1 + margin) (a rise "
                   "of more than the margin, not any significant rise); not reproduced: it lies below; inconclusive otherwise. Each arm is a one-sided "
                   "2.5 % test at the boundary")
PERPLEXITY_MARGIN = 0.05


def _perplexity_codes(log_ratios: np.ndarray, margin: Any = PERPLEXITY_MARGIN) -> np.ndarray:
    return threshold_codes(log_ratios, np.log1p(np.asarray(margin, dtype=float)))["code"]


def _perplexity(log_ratios: Any, *, margin: float | int = PERPLEXITY_MARGIN) -> Decision:
    """``log_ratios``: per neutral text, ``log(steered / unsteered perplexity)`` at the primary coefficient
    (NaNs left out); ``margin``: the smallest relative rise that counts."""
    d = one_d(log_ratios, "log_ratios", "per neutral text", INF_HINT)
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    return threshold_decision(d, margin, what="perplexity", more="rises", units="texts")


def _texts(profile: Mapping[str, Any], runs: int) -> tuple[int, int]:
    return runs, int(profile["neutral_texts"])


def _perplexity_world(shape: str, mean: float, sd: float = 0.15):
    """Per-text log ratios with the given mean: ``normal``; ``t3`` (heavy tails); ``skewed`` (a
    centred exponential: most texts barely move, a few a lot, as perplexity under steering does);
    ``lengths`` (each text's mean per-token NLL change, with per-token noise over 20-200 tokens:
    unequal variances across texts); ``measured`` (the spread and skewness the quick run measured on
    the default model: SD 0.089, skewness 0.77 over the 40 neutral texts at c = 0.2; the other
    shapes use SD 0.15 and, skewed, skewness 2, so they are harder than the data)."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        size = _texts(profile, runs)
        if shape in ("normal", "t3"):
            d = mean + sd * noise(rng, shape, size)
        elif shape == "skewed":
            d = mean + sd * (rng.exponential(1.0, size) - 1.0)
        elif shape == "lengths":
            tokens = rng.integers(20, 201, size)
            d = mean + sd * 0.5 * rng.standard_normal(size) + 1.2 * rng.standard_normal(size) / np.sqrt(tokens)
        elif shape == "measured":
            # The quick run's 40 neutral log ratios at c = 0.2: SD 0.089, skewness 0.77 (a gamma of that
            # skewness, shape (2 / 0.77)², centred and scaled).
            k = (2 / 0.77) ** 2
            d = mean + 0.089 * (rng.gamma(k, 1.0, size) - k) / math.sqrt(k)
        else:
            raise ValueError(shape)
        return {"log_ratios": d}

    return draw


_AT_MARGIN = math.log1p(PERPLEXITY_MARGIN)
_PERPLEXITY_DGPS = {
    **{f"null: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}": DGP(
        f"null: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}", "null",
        f"per-text log ratios ({shape}) with mean log(1.05): the least favourable case for a false 'reproduced'",
        _perplexity_world(shape, _AT_MARGIN)) for shape in ("normal", "t3", "skewed", "lengths", "measured")},
    **{f"effect: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}": DGP(
        f"effect: rise exactly {PERPLEXITY_MARGIN:.0%}, {shape}", "effect",
        f"per-text log ratios ({shape}) with mean log(1.05): the least favourable case for a false 'not reproduced'",
        _perplexity_world(shape, _AT_MARGIN)) for shape in ("normal", "t3", "skewed", "lengths", "measured")},
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
    notes="Quick: up to 40 texts of the neutral corpus (max_perplexity_texts); full: the built-in neutral corpus (120 "
          "baseline passages). Checked against the study: the default model's quick run (c = 0.2) gave 40 per-text "
          "log ratios with mean 0.27 (x1.31), SD 0.089, skewness 0.77, excess kurtosis 0.73; the worlds above are as "
          "spread or more, and as skewed or more. Beyond the design: a rise carried by rare degenerate texts (mean "
          "exactly log 1.05 from most texts at -0.05 and 2.5 % at +2.0, or 5 % at +1.0) reads 'not reproduced' in "
          "36 %/13 % of quick runs (40 texts) and 4.6 % full (120): P(no such text among 40), which no rule can tell "
          "from a mean below the bound; lognormal log ratios (skewness 6) sit at the edge (5.4 % quick, 4.4 % full). "
          "Infinite log ratios are refused (a degenerate text must be capped, and said so, not dropped); identical "
          "log ratios give no interval (inconclusive); 2-D input is refused."))
