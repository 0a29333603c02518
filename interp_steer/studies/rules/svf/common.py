"""What the four SVF rules share: the level of every interval they read, the sizes the study ships,
the default model's measured sizes that the "real" worlds take, and the input checks and interval
helpers of their decisions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from interp_steer.stats import mean_and_se, skew_corrected_interval, t_quantile
from interp_steer.studies.rules.base import (
    DGP,
)


def world_table(worlds: list[tuple[str, str, str, Any]], *, paper: str) -> dict[str, DGP]:
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


def interval(values: np.ndarray, *, skew: bool | str) -> tuple[np.ndarray, ...]:
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


def complete(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays, broadcast, with a NaN wherever any of them has one (a prompt's value is used only
    when the other method's is there too)."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in arrays))
    keep = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    return tuple(np.where(keep, a, np.nan) for a in arrays)


def with_runs(value: Any, ndim: int) -> np.ndarray:
    """``value`` as a float array with a leading runs axis (one run gets one)."""
    x = np.asarray(value, dtype=float)
    return x[None] if x.ndim == ndim else x


def check_effects(value: Any, name: str, ndim: int | tuple[int, ...], *, what: str = "effects",
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


def same_shape(*named: tuple[str, np.ndarray]) -> None:
    """Refuse ``(name, array)`` pairs of different shapes (the two methods' numbers are per prompt)."""
    shapes = {name: x.shape for name, x in named}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{', '.join(shapes)} need the same shape (the same prompts), got "
                         + ", ".join(f"{k} {v}" for k, v in shapes.items()))


def check_setting(value: Any, name: str, low: float, high: float, *, low_open: bool = False,
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


def first_run(out: Mapping[str, Any]) -> dict[str, Any]:
    """Run 0 of a batched core's output, as Python scalars."""
    return {k: (v[0].item() if isinstance(v, np.ndarray) and v.ndim and v[0].ndim == 0 else
                v[0] if isinstance(v, np.ndarray) and v.ndim else v) for k, v in out.items()}


def interval_text(mean: float, low: float, high: float, digits: int = 3) -> str:
    """``mean [low, high]`` signed to ``digits`` decimals for a reason (``n/a`` without a mean, the
    mean alone without finite bounds)."""
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
