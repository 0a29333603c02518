"""The arithmetic of a collision: mixing two persona vectors, decomposing shifts, measuring dominance.

Everything here is pure (arrays and vectors in, immutable results out), so the study in
:mod:`interp_steer.studies.collision` and a user's own experiments share one definition of each
quantity.

- :func:`common_scale` puts two persona vectors on one scale per layer: unit norm times the mean
  residual norm there (measured on all the corpora together), so ``λ = 0.3`` means "30 % of a typical
  residual" for either persona and neither wins a mix merely by being longer.
- :func:`collision_vector` is ``v(α, λ) = λ · (α · v̂_A + (1 − α) · v̂_B)``.
- :func:`decompose` writes a vector (a collision vector, or an observed change of the residual
  stream) as ``a · v_A + b · v_B + r`` by least squares, with ``r`` orthogonal to both; the residual
  fraction ``|r|² / |x|²`` says how much of it lies outside their span.
- :func:`dominance` places each mix between the pure ends, ``d(α) = (s(α) − s(0)) / (s(1) − s(0))``
  for a score ``s`` averaged over items, on a named *unbounded* scale (:func:`to_dominance_scale`:
  the scorer's own scale before it is squashed into a bounded range: log-odds for probabilities,
  VADER's raw valence sum ``√15·c / √(1 − c²)`` for its compound ``c``), because on a bounded scale
  saturation alone bends the mean curve. Dominance is relative to that scale: any monotone
  re-expression of the scores bends ``d(α)``, so every result names its scale. Persona A dominates
  where ``d(α) > α``. The area between ``d`` and the diagonal (positive: A dominates) is a ratio of
  two per-prompt linear functionals (bend and ends gap) with Fieller's interval; ``"A"``/``"B"``
  only when that interval excludes zero and the two ends are themselves separated.

The verdict on the paper's claim (finding i) is a registered rule, ``collision.dominance``
(:mod:`interp_steer.studies.rules.collision`), built on these statistics.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from scipy import stats as _sps
from torch import Tensor

from interp_steer.directions import SteeringVector, mix
from interp_steer.stats import (
    UNBOUNDED,
    ArrayLike,
    Fieller,
    Interval,
    fieller,
    mean_and_se,
    t_interval,
    t_quantile,
)

Numbers = Sequence[float | int] | np.ndarray


def common_scale(
    v_a: SteeringVector, v_b: SteeringVector, resid_norm: dict[int, float] | None = None
) -> tuple[SteeringVector, SteeringVector]:
    """Both vectors rescaled to ``resid_norm[layer]`` at every layer (default: the mean of the two
    vectors' own recorded residual norms). The metadata records the scale used."""
    v_a._check_compatible(v_b, "collide")
    if set(v_a.layers) != set(v_b.layers):
        raise ValueError(f"the persona vectors cover different layers: {list(v_a.layers)} vs {list(v_b.layers)}")
    if resid_norm is None:
        missing = [layer for layer in v_a.layers
                   if layer not in v_a.metadata.resid_norm or layer not in v_b.metadata.resid_norm]
        if missing:
            raise ValueError(f"no residual norm recorded for layers {missing}; pass resid_norm=")
        resid_norm = {layer: (v_a.metadata.resid_norm[layer] + v_b.metadata.resid_norm[layer]) / 2
                      for layer in v_a.layers}
    scaled = []
    for vector in (v_a, v_b):
        shared = SteeringVector(vector.directions, replace(vector.metadata, resid_norm=dict(resid_norm)))
        scaled.append(shared.normalised("resid"))
    return scaled[0], scaled[1]


def collision_vector(v_a: SteeringVector, v_b: SteeringVector, alpha: float | int, lam: float | int) -> SteeringVector:
    """``λ · (α · v_a + (1 − α) · v_b)``: ``α = 1`` is pure A, ``α = 0`` pure B, ``λ`` the strength."""
    return mix(v_a, v_b, float(alpha)) * float(lam)


@dataclass(frozen=True)
class Decomposition:
    """``x ≈ coef_a · v_a + coef_b · v_b + residual``, per row of ``x`` (arrays of length ``rows``)."""

    coef_a: np.ndarray
    coef_b: np.ndarray
    residual_fraction: np.ndarray
    """``|residual|² / |x|²`` (NaN where ``x`` is zero)."""
    cosine_ab: float

    def to_dict(self) -> dict[str, Any]:
        return {"coef_a": self.coef_a.tolist(), "coef_b": self.coef_b.tolist(),
                "residual_fraction": self.residual_fraction.tolist(), "cosine_ab": self.cosine_ab}


def decompose(
    x: Float[Tensor, "*rows features"] | np.ndarray,
    v_a: Float[Tensor, " d_model"] | np.ndarray,
    v_b: Float[Tensor, " d_model"] | np.ndarray,
) -> Decomposition:
    """Least-squares coefficients of each row of ``x`` on ``v_a`` and ``v_b`` (in float64), plus the
    fraction of its squared norm left in the orthogonal residual. ``v_a`` and ``v_b`` must not be
    parallel (their coefficients would not be identifiable)."""
    rows = np.atleast_2d(np.asarray(torch.as_tensor(x).double().cpu(), dtype=float))
    basis = np.stack([np.asarray(torch.as_tensor(v).double().cpu(), dtype=float) for v in (v_a, v_b)], axis=1)
    if basis.shape[0] != rows.shape[1]:
        raise ValueError(f"x has {rows.shape[1]} features but the vectors have {basis.shape[0]}")
    norms = np.linalg.norm(basis, axis=0)
    if (norms == 0).any():
        raise ValueError("cannot decompose onto a zero vector")
    cosine = float(basis[:, 0] @ basis[:, 1] / (norms[0] * norms[1]))
    if abs(cosine) > 1 - 1e-9:
        raise ValueError(f"v_a and v_b are parallel (cosine {cosine:.6f}); their coefficients are not identifiable")
    coefs, *_ = np.linalg.lstsq(basis, rows.T, rcond=None)  # [2, rows]
    residual = rows.T - basis @ coefs
    total = (rows**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(total > 0, (residual**2).sum(axis=0) / total, np.nan)
    return Decomposition(coefs[0], coefs[1], fraction, cosine)


# ------------------------------------------------------------------------------------ dominance

SCALES = ("identity", "logit", "vader_raw", "artanh")
"""Unbounded scales dominance is computed on (see :func:`to_dominance_scale`)."""

SCORE_SCALES = {"vader": "vader_raw", "probe_valence": "logit", "probe_log_odds": "identity"}
"""The scale of each score the collision study measures dominance on: VADER's compound on its raw
valence sum (the compound's exact inverse), the readout's probability on the logit, its log-odds as
they are."""

PROBABILITY_CLIP = 1e-6
"""Probabilities are clipped to ``[1e-6, 1 − 1e-6]`` (log-odds ±13.8) before the logit."""

VADER_CLIP = 0.9999
"""VADER rounds its compound to 4 decimals, so ±0.9999 is the most extreme value short of ±1: a
compound of ±1 (a raw valence sum of at least 274 in size) is read as ±0.9999, a raw sum of ±274."""

VADER_ALPHA = 15.0
"""VADER's normalisation constant: ``compound = s / √(s² + 15)`` for the raw valence sum ``s``
(``vaderSentiment.normalize``, ``alpha=15``)."""


def to_dominance_scale(values: Numbers, scale: str) -> np.ndarray:
    """Scores mapped to the unbounded scale dominance is measured on.

    - ``"identity"``: unbounded scores as they are (e.g. a probe's log-odds, a logit difference);
    - ``"logit"``: probabilities in [0, 1] (e.g. a probe's P(A)), ``log(p / (1 − p))`` after clipping
      to :data:`PROBABILITY_CLIP`. For a probe, prefer its decision function
      (:meth:`~interp_steer.probes.ProbeReadout.log_odds`), which needs no clipping;
    - ``"vader_raw"``: VADER compounds in [−1, 1] mapped back to VADER's raw valence sum, the exact
      inverse of its normalisation ``c = s / √(s² + 15)``: ``s = √15 · c / √(1 − c²)``, after clipping
      to ±:data:`VADER_CLIP` (VADER rounds ``c`` to 4 decimals; below |c| = 0.99 the rounding moves
      ``s`` by less than 0.03);
    - ``"artanh"``: scores in (−1, 1), ``2·artanh(c) = logit((1 + c) / 2)`` after clipping to
      ±:data:`VADER_CLIP`: the scale on which a compound made as ``tanh(z / 2)`` of a latent ``z``
      is linear. It is *not* VADER's inverse (VADER's compound is ``s / √(s² + 15)``, not
      ``tanh(s / 2)``); the dominance rule checks its verdict on it as a second scale.

    Why: on a bounded scale a mean that moves linearly in a latent quantity bends as it nears the
    bound (a sigmoid of a line is not a line), and ``d(α)`` reads that bend as dominance. Which
    unbounded scale is "linear" is an assumption about the scorer: dominance is relative to it.
    Apply the map per completion, before averaging (``dominance`` does, given a samples axis): the
    map of a mean is not the mean of the map.
    """
    x = np.asarray(values, dtype=float)
    finite = x[np.isfinite(x)]
    if scale == "identity":
        return x.copy()
    if scale == "logit":
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise ValueError(f"scale='logit' needs probabilities in [0, 1]; got values in [{finite.min():g}, {finite.max():g}]")
        p = np.clip(x, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
        return np.log(p) - np.log1p(-p)
    if scale in ("artanh", "vader_raw"):
        if finite.size and (finite.min() < -1 or finite.max() > 1):
            raise ValueError(f"scale={scale!r} needs scores in [-1, 1]; got values in [{finite.min():g}, {finite.max():g}]")
        c = np.clip(x, -VADER_CLIP, VADER_CLIP)
        if scale == "artanh":
            return 2 * np.arctanh(c)
        return np.sqrt(VADER_ALPHA) * c / np.sqrt(1 - c * c)
    raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")


@dataclass(frozen=True, eq=False)
class Dominance:
    """Where mixes land between the pure ends, for one score at one strength (see :func:`dominance`).

    ``curve[i]`` is ``d(alphas[i])`` with its 95 % Fieller interval ``curve_low``/``curve_high``
    (NaN where unbounded); ``area`` is ``∫ (d(α) − α) dα`` (trapezoids over the grid) with its 95 %
    Fieller interval, ``area_low_90``/``area_high_90`` its 90 % interval (for equivalence tests) and
    ``area_se`` its delta-method standard error; ``balance_point`` is the first α where ``d`` reaches
    0.5 with an interval from inverting a t-test at each α. All of these are on the ``scale``
    (:func:`to_dominance_scale`). ``ends`` is the paired difference ``s(1) − s(0)`` on the score's
    own scale (t-interval), ``ends_scaled`` the same on the dominance scale. ``verdict``: ``"A"`` or
    ``"B"`` when the ends are separated and the area's interval excludes zero, else ``"none"``: a
    description of the data; the rule ``collision.dominance``
    (:mod:`interp_steer.studies.rules.collision`) turns scores into a verdict on the paper's claim.
    ``scaled`` holds the per-item scores on the dominance scale (``[alphas, items]``, a cell's
    samples mapped one by one and then averaged; items with every cell scored).
    """

    score: str
    alphas: tuple[float, ...]
    curve: tuple[float, ...]
    curve_low: tuple[float, ...]
    curve_high: tuple[float, ...]
    area: Interval
    balance_point: float
    balance_low: float
    balance_high: float
    ends: Interval
    verdict: str
    reason: str
    scale: str = "identity"
    area_low_90: float = float("nan")
    area_high_90: float = float("nan")
    area_se: float = float("nan")
    ends_scaled: Interval = Interval(float("nan"), float("nan"), float("nan"), 0)
    n_dropped: int = 0
    scaled: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    @property
    def mde(self) -> float:
        """The smallest area this run detects with 80 % power in a 5 % two-sided test,
        ``(t_.975 + t_.80) · area_se`` on ``n − 1`` degrees of freedom."""
        return _mde(self.area_se, self.area.n)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (strict: values that do not exist are ``None``, never NaN)."""
        return _json_ready({
            "score": self.score, "scale": self.scale, "alphas": list(self.alphas), "d": list(self.curve),
            "d_low": list(self.curve_low), "d_high": list(self.curve_high),
            "area": self.area.to_dict(),
            "area_90": {"low": _finite_or_none(self.area_low_90), "high": _finite_or_none(self.area_high_90)},
            "area_se": _finite_or_none(self.area_se), "mde": _finite_or_none(self.mde),
            "balance_point": _finite_or_none(self.balance_point),
            "balance_low": _finite_or_none(self.balance_low), "balance_high": _finite_or_none(self.balance_high),
            "ends_difference": self.ends.to_dict(), "ends_difference_scaled": self.ends_scaled.to_dict(),
            "n_items": self.area.n, "n_dropped": self.n_dropped,
            "verdict": self.verdict, "reason": self.reason,
            "method": (f"on the {self.scale} scale, per prompt k: bend B_k = trapezoid integral of s_k(alpha) minus "
                       "(s_k(0) + s_k(1)) / 2, ends gap D_k = s_k(1) - s_k(0); area = mean(B) / mean(D) and "
                       "d(alpha) = mean(s(alpha) - s(0)) / mean(D), with Fieller intervals over prompts (t quantiles); "
                       "null bounds where the ends are not significantly separated"),
        })


def dominance(
    alphas: Numbers,
    scores: Float[np.ndarray, "alphas items"] | Float[np.ndarray, "alphas items samples"],
    *,
    score: str = "score",
    scale: str = "identity",
    level: float = 0.95,
    seed: int | None = None,
    resamples: int | None = None,
) -> Dominance:
    """Dominance of persona A over B from ``scores[i, k]``: score of item ``k`` (a prompt) under the
    mix ``alphas[i]``. The grid must contain 0 and 1; items are paired across α (the same prompts).
    With several completions per cell, ``scores[i, k, j]`` is completion ``j``'s: each is mapped to
    ``scale`` on its own and then averaged (NaNs left out), since the maps are not linear.

    Everything is computed on ``scale`` (:func:`to_dominance_scale`; :data:`SCORE_SCALES` names the
    collision study's) from two linear functionals per item: the *bend* ``B_k = ∫ s_k(α) dα −
    (s_k(0) + s_k(1)) / 2`` (trapezoids) and the *ends gap* ``Δ_k = s_k(1) − s_k(0)``. The area
    between ``d`` and the diagonal is exactly ``mean(B) / mean(Δ)``, and ``d(α_i) = mean(s(α_i) −
    s(0)) / mean(Δ)``: ratios of means, with Fieller's intervals (:func:`interp_steer.stats.fieller`),
    which keep their coverage at a few dozen prompts and are honest (unbounded, reported as NaN) when
    the ends are not separated. Items with a NaN cell are left out (``n_dropped``).
    ``seed``/``resamples`` are accepted and ignored (the intervals are closed-form)."""
    del seed, resamples
    alphas = np.asarray(alphas, dtype=float)
    raw = np.asarray(scores, dtype=float)
    if raw.ndim not in (2, 3) or raw.shape[0] != alphas.size:
        raise ValueError(f"scores must be [alphas, items] = [{alphas.size}, n] (or [alphas, items, samples]); "
                         f"got shape {raw.shape}")
    samples = raw if raw.ndim == 3 else raw[..., None]
    if np.any(np.diff(alphas) <= 0) or alphas[0] != 0.0 or alphas[-1] != 1.0:
        raise ValueError(f"alphas must increase from 0 to 1 (both included); got {alphas.tolist()}")
    if raw.shape[1] < 2:
        raise ValueError("dominance needs at least 2 items for an interval")
    with quiet_nan_warnings():  # a cell whose every sample is unscored is NaN
        raw = np.nanmean(samples, axis=-1)
        mapped = np.nanmean(to_dominance_scale(samples, scale), axis=-1)
    complete = np.isfinite(raw).all(axis=0)
    z = mapped[:, complete]
    core = _dominance_core(alphas, z[None], level=level)
    area95, area90 = core["area"], core["area_90"]
    n = int(area95.n[0])
    note = ("fewer than two prompts with every cell scored" if n < 2 else
            "" if bool(area95.bounded[0]) else "the pure ends are not separated: " + UNBOUNDED)
    area = Interval(float(area95.estimate[0]), float(area95.low[0]), float(area95.high[0]), n, note)
    curve = core["d"]
    ends = t_interval(raw[-1, complete] - raw[0, complete], level=level)
    ends_scaled = t_interval(z[-1] - z[0], level=level)
    balance, balance_low, balance_high = _balance(alphas, z, level)

    if n < 2 or not bool(area95.bounded[0]):
        verdict, reason = "none", f"the pure ends are not separated on the {scale} scale (their difference's interval contains 0)"
    elif not area.excludes_zero:
        verdict, reason = "none", "the area's interval contains 0"
    else:
        verdict = "A" if area.low > 0 else "B"
        reason = f"the area's interval excludes 0 ({'above' if verdict == 'A' else 'below'} the diagonal)"
    return Dominance(
        score=score, alphas=tuple(alphas.tolist()), curve=tuple(curve.estimate[0].tolist()),
        curve_low=tuple(curve.low[0].tolist()), curve_high=tuple(curve.high[0].tolist()),
        area=area, balance_point=balance, balance_low=balance_low, balance_high=balance_high,
        ends=ends, verdict=verdict, reason=reason, scale=scale,
        area_low_90=float(area90.low[0]), area_high_90=float(area90.high[0]), area_se=float(area95.se[0]),
        ends_scaled=ends_scaled, n_dropped=int((~complete).sum()), scaled=z,
    )


def trapezoid_weights(alphas: np.ndarray) -> np.ndarray:
    """Trapezoid-rule weights of a grid (``weights @ f(alphas)`` ≈ ``∫ f``)."""
    gaps = np.diff(alphas)
    weights = np.zeros(alphas.size)
    weights[:-1] += gaps / 2
    weights[1:] += gaps / 2
    return weights


def dominance_functionals(alphas: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item of ``z [..., alphas, items]``: the ends gap ``Δ``, the bend ``B`` and the rises
    ``s(α_i) − s(0)`` (``[..., alphas, items]``). Items with any NaN cell are NaN throughout."""
    complete = np.isfinite(z).all(axis=-2, keepdims=True)
    z = np.where(complete, z, np.nan)
    ends = z[..., -1, :] - z[..., 0, :]
    bend = np.einsum("a,...ak->...k", trapezoid_weights(alphas), z) - (z[..., 0, :] + z[..., -1, :]) / 2
    return ends, bend, z - z[..., :1, :]


def _dominance_core(alphas: np.ndarray, z: np.ndarray, *, level: float = 0.95) -> dict[str, Fieller]:
    """The dominance statistics of a batch of runs ``z [runs, alphas, items]`` (on the dominance
    scale), vectorised so that verdict rules can be simulated over thousands of runs."""
    ends, bend, rise = dominance_functionals(alphas, z)
    return {"area": fieller(bend, ends, level=level, axis=-1),
            "area_90": fieller(bend, ends, level=0.90, axis=-1),
            "d": fieller(rise, ends[..., None, :], level=level, axis=-1)}


def _balance(alphas: np.ndarray, z: np.ndarray, level: float, points: int = 401) -> tuple[float, float, float]:
    """The first α where ``d`` reaches 0.5 (linear interpolation of the mean curve) and its interval:
    the α on a fine grid where a paired t-test of ``s(α) − s(0) − Δ/2 = 0`` (with ``s`` interpolated
    per item) does not reject, from the first to the last. NaN when the ends are not separated."""
    nan = (float("nan"),) * 3
    if z.shape[1] < 2:
        return nan
    ends_mean, ends_se, n = mean_and_se(z[-1] - z[0])
    if not abs(ends_mean) > t_quantile(level, n - 1) * ends_se:
        return nan
    grid = np.linspace(0.0, 1.0, points)
    index = np.clip(np.searchsorted(alphas, grid, side="right") - 1, 0, alphas.size - 2)
    frac = (grid - alphas[index]) / (alphas[index + 1] - alphas[index])
    interpolated = z[index] * (1 - frac)[:, None] + z[index + 1] * frac[:, None]  # [points, items]
    gap = interpolated - z[0] - (z[-1] - z[0]) / 2
    mean, se, n = mean_and_se(gap, axis=1)
    curve = mean * np.sign(ends_mean)  # crosses from negative (at α = 0) to positive (at α = 1)
    crossing = int(np.argmax(curve >= 0))
    if crossing == 0:
        point = 0.0
    else:
        lo, hi = curve[crossing - 1], curve[crossing]
        point = float(grid[crossing - 1] + (0 - lo) / (hi - lo) * (grid[crossing] - grid[crossing - 1]))
    accepted = np.abs(mean) <= t_quantile(level, n - 1) * se
    if not accepted.any():  # only possible through rounding: the point itself is never rejected
        return point, point, point
    return point, float(grid[accepted].min()), float(grid[accepted].max())


def _mde(se: ArrayLike, n: ArrayLike) -> np.ndarray | float:
    df = np.asarray(n, dtype=float) - 1
    with np.errstate(invalid="ignore"):
        t_80 = np.where(df >= 1, _sps.t.ppf(0.80, np.maximum(df, 1)), np.nan)
        value = (t_quantile(0.95, df) + t_80) * np.asarray(se, dtype=float)
    return float(value) if np.ndim(value) == 0 else value


@contextlib.contextmanager
def quiet_nan_warnings() -> Iterator[None]:
    """Silence numpy's warnings for means of all-NaN slices (e.g. a prompt whose every completion is
    empty): NaN is the intended answer there."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _json_ready(value: Any) -> Any:
    """Plain JSON values: non-finite floats become ``None``, numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


__all__ = ["SCALES", "SCORE_SCALES", "Decomposition", "Dominance", "collision_vector", "common_scale", "decompose",
           "dominance", "dominance_functionals", "to_dominance_scale", "trapezoid_weights"]
