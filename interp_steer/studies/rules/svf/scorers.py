"""The simulated scorers of the SVF worlds: a raw score read through VADER's compound or a probe's
sigmoid, and per-prompt effects of two methods calibrated to exact mean effects on that bounded scale
(as the study measures them: correlated over prompts, some greedy texts unchanged)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from interp_steer.studies.rules.base import (
    vader_compound,
)


@functools.cache
def calibrated_shift(scale: str, target: float, base_mean: float, base_sd: float, noise_sd: float,
                      spread: float) -> float:
    """The raw shift whose mean effect on ``scale`` ("vader": VADER's compound of a raw valence sum;
    "probability": a sigmoid of log-odds) is ``target``, for prompts whose unsteered raw score is
    N(base_mean, base_sd), shifted by ``shift · (1 + spread · a)`` (a ~ N(0, 1), the prompt's
    sensitivity) plus N(0, noise_sd) noise. Found by bisection on 200 000 fixed draws."""
    rng = np.random.default_rng(12345)
    base = base_mean + base_sd * rng.standard_normal(200_000)
    a = rng.standard_normal(200_000)
    eps = noise_sd * rng.standard_normal(200_000)
    to_scale = SCALES[scale]
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


SCALES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"vader": vader_compound, "probability": _sigmoid}

# Scales of the simulated scorers: VADER compound of completions of about 32 tokens (unsteered raw
# valence centred at +1 with SD 2: most built-in prompts continue neutral to mildly positive, so the
# intended direction, up, has less room than down: asymmetric ends), and P(matching answer) (log-odds
# centred at 0.5 with SD 1.5).
VADER_BASE = (1.0, 2.0)
PROBABILITY_BASE = (0.5, 1.5)
UNCHANGED = 0.07
"""The fraction of prompts whose steered text (so score) is the unsteered one (2 of 30 for the field in
the default model's quick run): their effect is exactly 0."""


def scaled_pair(rng: np.random.Generator, size: tuple[int, ...], scale: str, targets: tuple[float, float],
                 noise_sds: tuple[float, float], spread: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-prompt effects of two methods on a bounded scale, with mean effects ``targets`` exactly:
    a shared unsteered raw score and sensitivity per prompt (so the effects are correlated over
    prompts, as measured), each method its own raw shift (calibrated) and noise."""
    base_mean, base_sd = VADER_BASE if scale == "vader" else PROBABILITY_BASE
    base = base_mean + base_sd * rng.standard_normal(size)
    a = rng.standard_normal(size)
    to_scale = SCALES[scale]
    start = to_scale(base)
    out = []
    for target, sd in zip(targets, noise_sds, strict=True):
        shift = calibrated_shift(scale, float(target) / (1 - UNCHANGED), base_mean, base_sd, float(sd), spread)
        moved = rng.random(size) >= UNCHANGED  # greedy text left unchanged: an effect of exactly 0
        out.append(np.where(moved, to_scale(base + shift * (1 + spread * a) + sd * rng.standard_normal(size)) - start,
                            0.0))
    return out[0], out[1]
