"""``robustness.model_size`` (finding 5): the threshold rule (:mod:`.threshold`) on per-text
differences of log ratios, smallest model minus largest. The rule and its simulated worlds."""

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

MODEL_SIZE_MARGIN = 0.05
MODEL_SIZE_CLAIM = ("Larger models resist steering-induced degradation: the smallest model's perplexity rises more than "
                    "1 + margin (5 %) times the largest model's")
MODEL_SIZE_TEXT = ("per neutral text d = log(steered / unsteered perplexity) of the smallest model − that of the largest "
                   "(by parameter count), same texts, at the primary coefficient (in each model's residual-norm units); "
                   "reproduced: the 95 % interval of mean(d) (t, with Hall's skewness correction) lies above "
                   "log(1 + margin) (the smallest model degrades more than 5 % more, not any significant amount more); "
                   "not reproduced: it lies below; inconclusive otherwise. Each arm is a one-sided 2.5 % test at the "
                   "boundary. Two models differ in more than size (family, training data, tokenizer): the verdict is "
                   "about these two models")


def _model_size_codes(small_log_ratios: Any, large_log_ratios: Any, margin: Any = MODEL_SIZE_MARGIN) -> np.ndarray:
    d = np.asarray(small_log_ratios, dtype=float) - np.asarray(large_log_ratios, dtype=float)
    return threshold_codes(d, np.log1p(np.asarray(margin, dtype=float)))["code"]


def _model_size(small_log_ratios: Any, large_log_ratios: Any, *, margin: float | int = MODEL_SIZE_MARGIN,
                small: str = "the smallest model", large: str = "the largest model") -> Decision:
    """``small_log_ratios``, ``large_log_ratios``: per neutral text (the same texts, in the same order),
    ``log(steered / unsteered perplexity)`` of the smallest and of the largest model at the primary
    coefficient (NaN left out pairwise); ``small``/``large``: the models' names."""
    a = one_d(small_log_ratios, "small_log_ratios", "per neutral text", INF_HINT)
    b = one_d(large_log_ratios, "large_log_ratios", "per neutral text", INF_HINT)
    if a.shape != b.shape:
        raise ValueError(f"the two models' log ratios must be per text on the same texts; got {a.size} and {b.size}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    decision = threshold_decision(a - b, margin, what=f"{small}'s perplexity ratio over {large}'s",
                                   more="degrades", units="texts")
    why = decision.reason + "; the two models differ in more than size (family, training), so this is about these models"
    return Decision(decision.verdict, why, {**decision.numbers, "smallest": small, "largest": large})


def _model_size_world(shape: str, difference: float, small_sd: float = 0.15, large_sd: float = 0.15,
                      rho: float = 0.5, large_mean: float = math.log(1.1)):
    """Per text, each model's log ratio: the large model's ``large_mean``, the small one's ``difference``
    more, each with its own spread (``*_sd``) and a shared per-text component (correlation ``rho``:
    a text hard for one model is hard for the other). ``shape``: normal, t3 or skewed (centred
    exponential)."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        size = (runs, int(profile["neutral_texts"]))

        def unit() -> np.ndarray:
            if shape == "skewed":
                return rng.exponential(1.0, size) - 1.0
            return noise(rng, shape, size)

        shared = unit()
        small = large_mean + difference + small_sd * (math.sqrt(rho) * shared + math.sqrt(1 - rho) * unit())
        large = large_mean + large_sd * (math.sqrt(rho) * shared + math.sqrt(1 - rho) * unit())
        return {"small_log_ratios": small, "large_log_ratios": large}

    return draw


def _model_size_dgps() -> dict[str, DGP]:
    at = math.log1p(MODEL_SIZE_MARGIN)
    worlds = {"normal": ("normal", {}), "t3": ("t3", {}), "skewed": ("skewed", {}),
              "unequal variances": ("normal", {"small_sd": 0.3, "large_sd": 0.08, "rho": 0.2})}
    out = {}
    for truth in ("null", "effect"):
        for name, (shape, kwargs) in worlds.items():
            key = f"{truth}: difference exactly {MODEL_SIZE_MARGIN:.0%}, {name}"
            error = "reproduced" if truth == "null" else "not reproduced"
            out[key] = DGP(key, truth, f"per-text log ratios ({name}), the small model's {MODEL_SIZE_MARGIN:.0%} "
                                       f"higher: the boundary, least favourable for a false '{error}'",
                           _model_size_world(shape, at, **kwargs))
    out["null: the same degradation"] = DGP(
        "null: the same degradation", "null", "both models x1.10 (normal)", _model_size_world("normal", 0.0))
    out["null: a 1 % difference"] = DGP(
        "null: a 1 % difference", "null",
        "the small model degrades 1 % more (x1.111 against x1.10): significant with enough texts, but not the claim",
        _model_size_world("normal", math.log(1.01), small_sd=0.05, large_sd=0.05, rho=0.8))
    out["effect: x1.30 against x1.10"] = DGP(
        "effect: x1.30 against x1.10", "effect",
        "the small model's perplexity x1.30, the large one's x1.10 (the paper reports less degradation for 70B than 8B "
        "without per-text numbers: an assumed effect for power)",
        _model_size_world("normal", math.log(1.3 / 1.1)), paper=True)
    return out


MODEL_SIZE = register(Rule(
    id="robustness.model_size", claim=MODEL_SIZE_CLAIM, text=MODEL_SIZE_TEXT,
    inputs={"small_log_ratios": "[texts] log(steered / unsteered perplexity) per neutral text, smallest model",
            "large_log_ratios": "[texts] the same on the same texts, largest model"},
    decide_one=_model_size, codes=_model_size_codes,
    profiles={"quick": {"neutral_texts": 40}, "full": {"neutral_texts": 120}},
    dgps=_model_size_dgps(), detectable=lambda numbers: numbers["mde"],
    notes="Quick: 40 neutral texts (max_perplexity_texts); full: the built-in neutral corpus (120 baseline passages). "
          "The models differ in more than size, so a verdict compares these two models, not sizes in general. As for "
          "robustness.perplexity: rare degenerate texts are beyond the design at 40 texts; infinite or 2-D log "
          "ratios are refused; identical differences give no interval."))
