"""Small statistics shared by the studies: intervals for means and ratios of means, summaries, and
the backfire rate.

Which interval where:

- :func:`bootstrap_mean` — percentile bootstrap of a mean over items; the per-cell summaries of the
  sweeps and studies. With one value there is no interval (NaN bounds, with a ``note`` saying why).
- :func:`t_interval` — Student-t interval of a mean; closed form, so verdict rules that are checked
  by simulation over thousands of runs can use it.
- :func:`fieller` / :func:`ratio_of_means` — Fieller's interval for ``mean(num) / mean(den)`` over
  paired items with a t quantile. Exact under bivariate normality, so it keeps its coverage at small
  n (a percentile bootstrap of a ratio does not). When the denominator's mean is not significantly
  non-zero, the confidence set is unbounded (the whole line, or two rays): the bounds are NaN and the
  ``note`` says so; we never report a finite interval there.
- :func:`proportion_interval` — Wilson's score interval for a proportion (the backfire rates).
- :func:`summarise` — the one place that decides how a metric is averaged over items: perplexity as
  a geometric mean (it is ``exp`` of a mean log-likelihood, so averaging on the log scale is the
  average the metric itself is built from), everything else arithmetically.
- :func:`noise_floor` and :func:`backfire_rate` — how often steering moves a score *against* its
  intended direction by more than an unsteered sample varies on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as _sps

Numbers = Sequence[float | int] | np.ndarray
ArrayLike = np.ndarray | Sequence[Any] | float | int | np.number
"""Arrays or numbers (numpy's own ``ArrayLike`` leaves out ``int`` under the runtime type checks)."""

GEOMETRIC_METRICS = frozenset({"perplexity"})
"""Metrics summarised by a geometric mean (see :func:`summarise`)."""


@dataclass(frozen=True)
class Interval:
    """An estimate (a mean, a ratio, a rate) with a confidence interval.

    ``note`` says why an interval is missing or special (e.g. one value, an unbounded Fieller set);
    ``aggregate`` names the average when it is not the arithmetic mean (e.g. ``"geometric mean"``).
    Both appear in :meth:`to_dict` only when set, so the usual four keys stay the usual four keys.
    """

    mean: float
    low: float
    high: float
    n: int
    note: str = ""
    aggregate: str = "mean"

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}
        if self.note:
            out["note"] = self.note
        if self.aggregate != "mean":
            out["aggregate"] = self.aggregate
        return out


ONE_VALUE = "one value: no interval can be estimated from a single item"
EMPTY = "no finite values"


def _finite(values: Numbers) -> np.ndarray:
    data = np.asarray(values, dtype=float).ravel()
    return data[~np.isnan(data)]


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_mean(
    values: Numbers,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    allow_empty: bool = False,
) -> Interval:
    """Mean and percentile-bootstrap interval over the given values (NaNs are dropped, and counted
    out of ``n``). With one value the bounds are NaN (a resample of one value has no spread, which is
    not certainty) and ``note`` says so. With none, raise, or with ``allow_empty`` return an all-NaN
    interval with ``n = 0`` (e.g. a cell whose every completion was empty)."""
    _check_level(level)
    data = _finite(values)
    if data.size == 0:
        if allow_empty:
            return Interval(float("nan"), float("nan"), float("nan"), 0, EMPTY)
        raise ValueError("no finite values to average")
    mean = float(data.mean())
    if data.size == 1:
        return Interval(mean, float("nan"), float("nan"), 1, ONE_VALUE)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(mean, float(low), float(high), int(data.size))


def t_quantile(level: float, df: ArrayLike) -> np.ndarray:
    """The two-sided Student-t quantile ``t_{(1 + level) / 2, df}`` (NaN where ``df < 1``)."""
    df = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(df >= 1, _sps.t.ppf((1 + level) / 2, np.maximum(df, 1)), np.nan)


def mean_and_se(values: ArrayLike, *, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard error of the mean and item count along ``axis``, NaNs left out (vectorised:
    the building block of the t-tests that simulated verdict rules run thousands of times)."""
    x = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    mask = np.isfinite(x)
    n = mask.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(mask, x, 0.0).sum(axis=-1) / n
        dev = np.where(mask, x - mean[..., None], 0.0)
        var = (dev**2).sum(axis=-1) / (n - 1)
        se = np.where(n >= 2, np.sqrt(var / n), np.nan)
    return np.asarray(mean), np.asarray(se), np.asarray(n)


def skew_corrected_interval(values: ArrayLike, *, level: float = 0.95, axis: int = -1
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard error, count and a two-sided ``level`` interval for the mean along ``axis`` (NaNs
    left out), with Hall's (1992) transformation of the t statistic removing its first-order skewness.

    For skewed data the t statistic is skewed the other way, so a plain t interval errs on one side
    much more often than ``(1 − level) / 2``: with exponential data at 12 items a one-sided 2.5 % test
    rejects 9.0 % of the time, 4.4 % after the correction (lognormal, far more skewed: 15 % and
    7.4 %); symmetric data are barely touched (normal: 2.5 % either way; t with 3 d.o.f.: 2.0 %
    becomes 3.6 %). With ``T = (mean − μ) / se``, skewness estimate ``γ`` and ``a = γ / √n``, the
    statistic ``g(T) = T + a (T²/3 + 1/6) + a² T³ / 27 = ((1 + aT/3)³ − 1) / a + a / 6`` is monotone in
    ``T``, so the interval is ``{μ : |g(T)| ≤ t_q}``, inverted in closed form. ``γ`` is the adjusted
    Fisher-Pearson coefficient ``G1 = g1 · √(n(n − 1)) / (n − 2)``, ``g1 = m3 / m2^{3/2}`` with the
    central moments ``m2``, ``m3`` (divisor ``n``): ``g1`` underestimates the skewness at a dozen items,
    and the correction with it leaves more of the one-sided error. Returns NaN bounds with fewer than
    two items (and no correction with fewer than three)."""
    x = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    mean, se, n = mean_and_se(x, axis=-1)
    mask = np.isfinite(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.where(mask, x - mean[..., None], 0.0)
        m2 = (dev**2).sum(axis=-1) / n
        m3 = (dev**3).sum(axis=-1) / n
        g1 = np.where((n >= 3) & (m2 > 0), m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0)
        gamma = np.where(n >= 3, g1 * np.sqrt(n * (n - 1)) / np.maximum(n - 2, 1), 0.0)
        a = gamma / np.sqrt(np.maximum(n, 1))
        q = t_quantile(level, n - 1)

        def inverse(y):
            small = np.abs(a) < 1e-9
            safe = np.where(small, 1.0, a)
            return np.where(small, y - a / 6, 3 / safe * (np.cbrt(1 + safe * (y - safe / 6)) - 1))

        low = mean - se * inverse(q)
        high = mean - se * inverse(-q)
    return mean, se, n, low, high


def t_interval(values: Numbers, *, level: float = 0.95) -> Interval:
    """Mean with a Student-t interval ``mean ± t_{n−1} · s / √n`` (NaNs dropped). With one value the
    bounds are NaN (``note`` says why); with none, an all-NaN interval with ``n = 0``."""
    _check_level(level)
    data = _finite(values)
    if data.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, EMPTY)
    mean, se, n = mean_and_se(data)
    if data.size == 1:
        return Interval(float(mean), float("nan"), float("nan"), 1, ONE_VALUE)
    half = float(t_quantile(level, n - 1) * se)
    return Interval(float(mean), float(mean) - half, float(mean) + half, int(n))


class Fieller(NamedTuple):
    """Fieller's interval for ratios of means, elementwise over cells (see :func:`fieller`)."""

    estimate: np.ndarray
    """``mean(num) / mean(den)`` (NaN where ``mean(den) = 0``)."""
    low: np.ndarray
    high: np.ndarray
    """The bounds; NaN where the set is unbounded (``bounded`` False) or ``n < 2``."""
    bounded: np.ndarray
    """True where ``mean(den)`` is significantly non-zero at ``level`` (t-test), which is exactly when
    Fieller's confidence set is a finite interval."""
    se: np.ndarray
    """Delta-method standard error of the ratio, ``√(v_nn − 2 r v_nd + r² v_dd) / |mean(den)|``
    (for minimum-detectable-effect statements, not for the interval)."""
    n: np.ndarray
    """Paired items with both values finite."""


def fieller(num: ArrayLike, den: ArrayLike, *, level: float = 0.95, axis: int = 0) -> Fieller:
    """Fieller's confidence interval for ``r = E[num] / E[den]`` from paired items along ``axis``
    (pairs with a NaN on either side are left out, cell by cell; ``num`` and ``den`` broadcast).

    The set is ``{r : (x̄ − r ȳ)² ≤ t² · Var(x̄ − r ȳ)}`` with ``t`` the Student quantile on ``n − 1``
    degrees of freedom: the values of ``r`` that a paired t-test of ``num − r · den`` does not reject.
    It is a bounded interval exactly when ``ȳ² > t² Var(ȳ)``, i.e. when the denominator's mean is
    significantly non-zero; otherwise it is unbounded and reported as NaN bounds with
    ``bounded = False`` — a ratio whose denominator may be zero has no finite interval."""
    _check_level(level)
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    x, y = np.moveaxis(num, axis, -1), np.moveaxis(den, axis, -1)
    mask = np.isfinite(x) & np.isfinite(y)
    n = mask.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(mask, x, 0.0).sum(axis=-1) / n
        my = np.where(mask, y, 0.0).sum(axis=-1) / n
        dx = np.where(mask, x - mx[..., None], 0.0)
        dy = np.where(mask, y - my[..., None], 0.0)
        scale = 1.0 / (n * (n - 1))  # covariance of the means
        vxx, vyy, vxy = (dx * dx).sum(-1) * scale, (dy * dy).sum(-1) * scale, (dx * dy).sum(-1) * scale
        t2 = t_quantile(level, n - 1) ** 2
        estimate = np.where(my != 0, mx / my, np.nan)
        a = my**2 - t2 * vyy
        b = mx * my - t2 * vxy
        c = mx**2 - t2 * vxx
        bounded = (n >= 2) & (a > 0)
        root = np.sqrt(np.maximum(b**2 - a * c, 0.0))  # >= 0 whenever a > 0 (the estimate is inside)
        low = np.where(bounded, (b - root) / a, np.nan)
        high = np.where(bounded, (b + root) / a, np.nan)
        se = np.sqrt(np.maximum(vxx - 2 * estimate * vxy + estimate**2 * vyy, 0.0)) / np.abs(my)
        se = np.where((n >= 2) & (my != 0), se, np.nan)
    return Fieller(estimate, low, high, bounded, se, n)


UNBOUNDED = ("the denominator's mean is not significantly non-zero at this level, so Fieller's confidence "
             "set for the ratio is unbounded: no finite interval")


def ratio_of_means(num: Numbers, den: Numbers, *, level: float = 0.95) -> Interval:
    """``mean(num) / mean(den)`` over paired items with Fieller's interval (:func:`fieller`); NaN
    bounds and a ``note`` when the set is unbounded or there are fewer than two items."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError(f"ratio_of_means needs two 1-D arrays of paired items, got shapes {num.shape} and {den.shape}")
    result = fieller(num, den, level=level)
    n = int(result.n)
    note = EMPTY if n == 0 else ONE_VALUE if n == 1 else "" if bool(result.bounded) else UNBOUNDED
    return Interval(float(result.estimate), float(result.low), float(result.high), n, note, "ratio of means")


def independent_ratio(num: Numbers, den: Numbers, *, level: float = 0.95) -> Interval:
    """``mean(num) / mean(den)`` for two **independent** samples (e.g. an effect on one prompt set
    over the effect on another) with Fieller's interval: the ``r`` for which a test of
    ``mean(num) − r · mean(den) = 0`` with variance ``v_num + r² v_den`` (squared standard errors of
    the two means) does not reject, on ``min(n_num, n_den) − 1`` degrees of freedom (conservative
    against Welch's). NaN bounds and a ``note`` when ``mean(den)`` is not significantly non-zero
    (the set is then unbounded) or either side has fewer than two values."""
    _check_level(level)
    x, y = _finite(num), _finite(den)
    n = min(x.size, y.size)
    if n < 2:
        return Interval(float("nan"), float("nan"), float("nan"), n, EMPTY if n == 0 else ONE_VALUE, "ratio of means")
    mx, my = float(x.mean()), float(y.mean())
    vx, vy = float(x.var(ddof=1)) / x.size, float(y.var(ddof=1)) / y.size
    t2 = float(t_quantile(level, n - 1)) ** 2
    a, b, c = my**2 - t2 * vy, mx * my, mx**2 - t2 * vx
    estimate = mx / my if my != 0 else float("nan")
    if a <= 0:
        return Interval(estimate, float("nan"), float("nan"), n, UNBOUNDED, "ratio of means")
    root = math.sqrt(max(b * b - a * c, 0.0))
    return Interval(estimate, (b - root) / a, (b + root) / a, n, "", "ratio of means")


def log_ratio_interval(steered: np.ndarray, base: np.ndarray) -> Interval:
    """Geometric mean over items of ``steered / base`` with a t-interval on the log scale (items with a
    NaN or non-positive value on either side left out)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.asarray(steered, dtype=float)) - np.log(np.asarray(base, dtype=float))
    logs = np.where(np.isfinite(logs), logs, np.nan)
    iv = t_interval(logs)
    return Interval(math.exp(iv.mean) if math.isfinite(iv.mean) else float("nan"),
                    math.exp(iv.low) if math.isfinite(iv.low) else float("nan"),
                    math.exp(iv.high) if math.isfinite(iv.high) else float("nan"), iv.n, iv.note,
                    "geometric mean ratio")


def proportion_interval(successes: int, n: int, *, level: float = 0.95) -> Interval:
    """A proportion with Wilson's score interval (keeps its coverage at small ``n`` and at rates near
    0 or 1, where the bootstrap of a 0/1 mean collapses to a point)."""
    _check_level(level)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, EMPTY, "proportion")
    p = successes / n
    z = float(_sps.norm.ppf((1 + level) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n, "", "proportion")


def summarise(
    values: Numbers,
    *,
    metric: str | None = None,
    geometric: bool | None = None,
    level: float = 0.95,
    seed: int = 0,
    resamples: int = 2000,
) -> Interval:
    """The package's one way to average a metric over items, with a bootstrap interval.

    Geometric mean (``exp`` of the mean log, interval transformed back) when ``geometric`` is True or,
    by default, when ``metric`` is in :data:`GEOMETRIC_METRICS` (perplexity); otherwise the arithmetic
    mean. NaNs are dropped; all-NaN gives an all-NaN interval with ``n = 0``."""
    geometric = (metric in GEOMETRIC_METRICS) if geometric is None else geometric
    data = np.asarray(values, dtype=float)
    if not geometric:
        return bootstrap_mean(data, level=level, seed=seed, resamples=resamples, allow_empty=True)
    finite = _finite(data)
    if (finite <= 0).any():
        raise ValueError(f"a geometric mean needs positive values; {metric or 'values'} has {int((finite <= 0).sum())} <= 0")
    with np.errstate(divide="ignore"):
        logs = bootstrap_mean(np.log(data), level=level, seed=seed, resamples=resamples, allow_empty=True)
    return Interval(math.exp(logs.mean), math.exp(logs.low), math.exp(logs.high), logs.n, logs.note,
                    "geometric mean")


def paired_difference(a: Numbers, b: Numbers, **kwargs) -> Interval:
    """Bootstrap interval of the mean of ``a - b`` over paired items (e.g. the same prompts)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same shape, got {a.shape} and {b.shape}")
    return bootstrap_mean(a - b, **kwargs)


# ------------------------------------------------------------------------------------- backfire


def noise_floor(sample_a: Numbers, sample_b: Numbers, *, level: float = 0.95) -> float:
    """How far a score moves between two *unsteered* samples of the same prompt, at ``level``.

    ``sample_a[k]`` and ``sample_b[k]`` score two completions of prompt ``k`` drawn with different
    seeds. The floor is the ``level`` quantile of the symmetrised differences ``{a − b, b − a}``
    (equivalently the ``2·level − 1`` quantile of ``|a − b|``). A steered-minus-baseline change is
    then, for a prompt that steering does not affect at all, a difference of two such samples, so it
    falls below ``−floor`` — a backfire — with probability ``1 − level`` (5 % at the default): the
    backfire rate of a no-effect vector is about 5 %, not the ~50 % of a zero floor. Pairs with a NaN
    are left out; the estimate is only as good as the number of prompts (say ≥ 20)."""
    _check_level(level)
    a, b = np.asarray(sample_a, dtype=float), np.asarray(sample_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need the same shape, got {a.shape} and {b.shape}")
    diff = np.abs(a - b)
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        raise ValueError("no prompt has two finite unsteered scores; cannot estimate a noise floor")
    return float(np.quantile(diff, 2 * level - 1))


@dataclass(frozen=True)
class Backfire:
    """How often steering moved a score against its intended direction.

    Per item, ``change = (steered − baseline) · direction``; the item *backfired* when
    ``change < −floor``, *succeeded* when ``change > floor``, and is *within the floor* otherwise.
    Items with a NaN score (e.g. an empty completion) are counted in ``n_nan`` and are neither.
    ``rate`` is the backfire fraction of the scored items with a Wilson interval.
    """

    rate: Interval
    n_backfire: int
    n_success: int
    n_within_floor: int
    n_nan: int
    direction: int
    floor: float
    floor_source: str = "given"

    @property
    def success(self) -> Interval:
        return proportion_interval(self.n_success, self.rate.n)

    def to_dict(self) -> dict[str, Any]:
        return {**self.rate.to_dict(), "n_backfire": self.n_backfire, "n_success": self.n_success,
                "n_within_floor": self.n_within_floor, "n_nan": self.n_nan, "direction": self.direction,
                "floor": self.floor, "floor_source": self.floor_source}


def backfire_rate(
    steered: Numbers,
    baseline: Numbers,
    *,
    direction: int = 1,
    floor: float | int = 0.0,
    floor_source: str = "given",
    level: float = 0.95,
) -> Backfire:
    """Fraction of items whose score moved *against* ``direction`` by more than ``floor`` when steered
    (the reliability measure of steering-vector-field work); see :class:`Backfire`.

    ``direction`` is where steering is meant to move the score: +1 up, −1 down. It is the product of
    the score's orientation (+1 when the steered behaviour raises it, −1 when it lowers it, e.g. a
    toxicity score for a detoxifying vector) and the sign of the steering coefficient. ``floor``: a
    change must exceed it to count (:func:`noise_floor` estimates one from unsteered samples; 0 counts
    any move, so a no-effect vector "backfires" on about half the items)."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    if not floor >= 0:
        raise ValueError(f"floor must be >= 0, got {floor}")
    steered, baseline = np.asarray(steered, dtype=float), np.asarray(baseline, dtype=float)
    if steered.shape != baseline.shape:
        raise ValueError(f"steered and baseline need the same shape, got {steered.shape} and {baseline.shape}")
    change = (steered - baseline) * direction
    scored = np.isfinite(change)
    against, toward = int((change[scored] < -floor).sum()), int((change[scored] > floor).sum())
    n = int(scored.sum())
    return Backfire(proportion_interval(against, n, level=level), against, toward, n - against - toward,
                    int((~scored).sum()), direction, float(floor), floor_source)


__all__ = [
    "GEOMETRIC_METRICS",
    "Backfire",
    "Fieller",
    "Interval",
    "backfire_rate",
    "bootstrap_mean",
    "fieller",
    "independent_ratio",
    "log_ratio_interval",
    "mean_and_se",
    "noise_floor",
    "paired_difference",
    "proportion_interval",
    "ratio_of_means",
    "skew_corrected_interval",
    "summarise",
    "t_interval",
    "t_quantile",
]
