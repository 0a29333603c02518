"""Small statistics shared by the studies: bootstrap intervals and the backfire rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A mean with a percentile-bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def bootstrap_mean(
    values: Sequence[float | int] | np.ndarray,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    allow_empty: bool = False,
) -> Interval:
    """Mean and percentile-bootstrap interval over the given values (NaNs are dropped, and counted
    out of ``n``). With one value the interval is that value. With none, raise, or with
    ``allow_empty`` return an all-NaN interval with ``n = 0`` (e.g. a cell whose every completion
    was empty)."""
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if data.size == 0:
        if allow_empty:
            return Interval(float("nan"), float("nan"), float("nan"), 0)
        raise ValueError("no finite values to average")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mean = float(data.mean())
    if data.size == 1:
        return Interval(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(mean, float(low), float(high), int(data.size))


def paired_difference(
    a: Sequence[float | int] | np.ndarray, b: Sequence[float | int] | np.ndarray, **kwargs
) -> Interval:
    """Bootstrap interval of the mean of ``a - b`` over paired items (e.g. the same prompts)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same shape, got {a.shape} and {b.shape}")
    return bootstrap_mean(a - b, **kwargs)


def backfire_rate(
    steered: Sequence[float | int] | np.ndarray,
    baseline: Sequence[float | int] | np.ndarray,
    *,
    direction: int = 1,
    tolerance: float = 0.0,
    **kwargs,
) -> Interval:
    """Fraction of inputs whose score moved *against* the intended ``direction`` (+1 or −1) when
    steered, by more than ``tolerance``: the reliability measure of steering-vector-field work."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    change = (np.asarray(steered, dtype=float) - np.asarray(baseline, dtype=float)) * direction
    return bootstrap_mean((change < -tolerance).astype(float), **kwargs)


__all__ = ["Interval", "backfire_rate", "bootstrap_mean", "paired_difference"]
