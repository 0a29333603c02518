"""The named scales ``collision.dominance`` reads scores on (dominance is relative to the scale: any
monotone re-expression of the scores bends ``d(α)``), the paper's effect on them, and the checks that
the scores are what their scale says."""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_steer.studies.rules.collision.common import mixing_module, quiet

PAPER_AREA = 1 / 6
"""The paper's dominance effect as an area: ``d(α) = √α`` (balance point α* = 0.25)."""

SCORER_SCALES = {"vader": ("vader_raw", "artanh"), "probability": ("logit",), "log_odds": ("identity",)}
"""The scales a verdict must hold on, per scorer (``scale``): VADER's compound on its raw valence sum
(primary) and on ``2·artanh``; a probability on its logit; log-odds as they are. With VADER's
``sentiment_words`` the valence per sentiment word (:data:`PER_WORD`) is a third."""

PER_WORD = "per_word"
"""The intensive scale: VADER's raw valence sum over the number of words it scored (``s / N``)."""

SCALE_WORDS = {"vader_raw": "VADER's raw valence sum s = √15·c/√(1 − c²) (the compound's exact inverse)",
               "artanh": "the logistic scale 2·artanh(c) of VADER's compound",
               PER_WORD: "VADER's valence per sentiment word s / N (N: the words its lexicon scored)",
               "logit": "the logit of the probability", "identity": "the log-odds as measured"}

GRID_DECIMALS = 4
"""The scorers' own precision: VADER rounds its compound to 4 decimals (a probe's probability is a
float). Scores that all lie on a coarser grid (0.001 or coarser: rounded for a table) are refused:
near ±1 (or 0 and 1) the rounding moves the unbounded scale by more than any effect (VADER compounds
rounded to 2 decimals made a raw valence sum linear from 0 to +30 read "reproduced" 66 % / 86 % of
the time)."""


def paper_gamma(margin: float | int = PAPER_AREA) -> float:
    """The exponent ``γ`` of the curve ``d(α) = α^γ`` whose area over the diagonal is ``margin``
    (``∫ (α^γ − α) dα = 1 / (γ + 1) − 1/2``; ``margin = 1/6`` gives ``γ = 1/2``)."""
    if not 0 < margin < 0.5:
        raise ValueError(f"margin must be in (0, 0.5) (the area of a curve d(α) = α^γ), got {margin}")
    return 1 / (margin + 0.5) - 1


def check_alphas(alphas: np.ndarray) -> np.ndarray:
    """The mixes as a float array, refused unless finite and increasing from 0 (pure B) to 1 (pure A),
    both included, with a mix between."""
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or alphas.size < 3 or not np.isfinite(alphas).all() or alphas[0] != 0.0 \
            or alphas[-1] != 1.0 or np.any(np.diff(alphas) <= 0):
        raise ValueError(f"alphas must be finite and increase from 0 (pure B) to 1 (pure A), both included, with a "
                         f"mix between; got {alphas.tolist()}")
    return alphas


def coarse_grid(values: np.ndarray) -> bool:
    """Whether every finite non-zero value lies on a grid of ``10^-(GRID_DECIMALS - 1)`` or coarser
    (at least 8 such values: by chance, 4-decimal values do so with probability 10^-8)."""
    v = values[np.isfinite(values) & (values != 0)]
    if v.size < 8:
        return False
    scaled = v * 10.0 ** (GRID_DECIMALS - 1)
    return bool(np.all(np.abs(scaled - np.rint(scaled)) < 1e-6))


def check_scores(s: np.ndarray, scale: str) -> None:
    """Refuse scores that are not what ``scale`` says, or that no unbounded scale can read."""
    from interp_steer.studies.mixing import PROBABILITY_CLIP

    if np.isinf(s).any():
        raise ValueError(f"scores holds ±inf; with scale={scale!r} every score must be finite (NaN for an unscored "
                         f"completion)")
    finite = s[np.isfinite(s)]
    if finite.size == 0:
        return
    low, high = float(finite.min()), float(finite.max())
    if scale == "vader":
        if low < -1 or high > 1:
            raise ValueError(f"scale='vader' needs VADER compounds in [-1, 1]; scores lies in [{low:g}, {high:g}]. Pass "
                             f"a probe's probabilities with scale='probability', log-odds with scale='log_odds'")
        if coarse_grid(s):
            raise ValueError(f"scores are VADER compounds rounded to {GRID_DECIMALS - 1} decimals or fewer; VADER gives "
                             f"{GRID_DECIMALS}. Pass the compounds as VADER returns them (a coarser rounding moves the "
                             f"raw valence sum near ±1 by more than any effect)")
    elif scale == "probability":
        if low <= PROBABILITY_CLIP or high >= 1 - PROBABILITY_CLIP:
            raise ValueError(f"scale='probability' needs probabilities strictly inside ({PROBABILITY_CLIP:g}, "
                             f"1 - {PROBABILITY_CLIP:g}); scores lies in [{low:g}, {high:g}]. A probability of 0 or 1 "
                             f"(or one rounded or saturated there) has no usable log-odds: pass the probe's log-odds "
                             f"(its decision function) with scale='log_odds'")
        if coarse_grid(s):
            raise ValueError(f"scores are probabilities rounded to {GRID_DECIMALS - 1} decimals or fewer; their "
                             f"log-odds near 0 and 1 are then meaningless. Pass the probe's log-odds with "
                             f"scale='log_odds' (or the probabilities at full precision)")


def check_aside(values: Any, s: np.ndarray, name: str, *, counts: bool) -> np.ndarray:
    """An optional per-completion input beside ``scores`` (``s [runs, alphas, items, samples]``):
    ``[runs, alphas, items]`` or ``s``'s shape, returned as ``s``'s shape."""
    v = np.asarray(values, dtype=float)
    if v.shape == s.shape[:-1] and (s.shape[-1] == 1 or not counts):  # a cell's rate stands for its completions
        v = np.broadcast_to(v[..., None], s.shape)
    if v.shape != s.shape:
        raise ValueError(f"{name} must match scores: [alphas, items] or [alphas, items, samples] = {s.shape[1:]}"
                         + ("" if counts else f" (or [alphas, items] = {s.shape[1:-1]}, a cell's mean)")
                         + f"; got {v.shape[1:]}")
    finite = v[np.isfinite(v)]
    if np.isinf(v).any():
        raise ValueError(f"{name} holds ±inf (NaN marks an unscored completion)")
    if counts and finite.size and (finite.min() < 0 or np.any(finite != np.rint(finite))):
        raise ValueError(f"{name} must be counts (non-negative integers: the words VADER's lexicon scored per "
                         f"completion)")
    if not counts and finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(f"{name} must be rates in [0, 1] (1 - distinct-3 per completion)")
    return v


def on_scale(scores: np.ndarray, scale: str, words: np.ndarray | None = None) -> np.ndarray:
    """``scores [..., alphas, items, samples]`` mapped to ``scale`` completion by completion, then
    averaged over each cell's completions (NaNs left out). ``per_word`` divides each completion's raw
    valence sum by its ``words`` (NaN where VADER scored no word)."""
    with quiet():
        if scale == PER_WORD:
            raw = mixing_module().to_dominance_scale(scores, "vader_raw")
            mapped = np.where(words > 0, raw / np.where(words > 0, words, 1.0), np.nan)
        else:
            mapped = mixing_module().to_dominance_scale(scores, scale)
        return np.nanmean(mapped, axis=-1)
