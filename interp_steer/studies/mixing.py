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
  for a score ``s`` averaged over items; persona A dominates where ``d(α) > α``. The area between
  ``d`` and the diagonal (positive: A dominates) gets a percentile-bootstrap interval from resampling
  items (prompts) jointly across all α, and the verdict is ``"none"`` unless that interval excludes
  zero and the two ends are themselves separated.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp_steer.directions import SteeringVector, mix
from interp_steer.stats import Interval, bootstrap_mean

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


@dataclass(frozen=True)
class Dominance:
    """Where mixes land between the pure ends, for one score at one strength (see the module docstring).

    ``curve[i]`` is ``d(alphas[i])`` from the item means, ``curve_low``/``curve_high`` its bootstrap
    interval; ``area`` is ``∫ (d(α) − α) dα`` (trapezoids over the grid) with its interval;
    ``balance_point`` is the first α where ``d`` reaches 0.5 (linear interpolation); ``ends`` is the
    paired difference ``s(1) − s(0)`` over items. ``verdict``: ``"A"`` or ``"B"`` when the area's
    interval excludes zero (and the ends are separated), else ``"none"``.
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score, "alphas": list(self.alphas), "d": list(self.curve),
            "d_low": list(self.curve_low), "d_high": list(self.curve_high),
            "area": self.area.to_dict(), "balance_point": _finite_or_none(self.balance_point),
            "balance_low": _finite_or_none(self.balance_low), "balance_high": _finite_or_none(self.balance_high),
            "ends_difference": self.ends.to_dict(), "verdict": self.verdict, "reason": self.reason,
        }


def dominance(
    alphas: Numbers,
    scores: Float[np.ndarray, "alphas items"],
    *,
    score: str = "score",
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Dominance:
    """Dominance of persona A over B from ``scores[i, k]``: score of item ``k`` (a prompt) under the
    mix ``alphas[i]``. The grid must contain 0 and 1; items are paired across α (the same prompts),
    and NaN scores are left out of a cell's mean."""
    alphas = np.asarray(alphas, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[0] != alphas.size:
        raise ValueError(f"scores must be [alphas, items] = [{alphas.size}, n]; got shape {scores.shape}")
    if np.any(np.diff(alphas) <= 0) or alphas[0] != 0.0 or alphas[-1] != 1.0:
        raise ValueError(f"alphas must increase from 0 to 1 (both included); got {alphas.tolist()}")
    n_items = scores.shape[1]
    if n_items < 2:
        raise ValueError("dominance needs at least 2 items for an interval")

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_items, size=(resamples, n_items))
    with quiet_nan_warnings():
        curve = _curve(np.nanmean(scores, axis=1)[None])[0]
        boot_means = np.nanmean(scores[:, picks], axis=2).T  # [resamples, alphas]
        boot = _curve(boot_means)
    tail = (1 - level) / 2 * 100

    def interval(values: np.ndarray) -> tuple[float, float]:
        finite = values[np.isfinite(values)]
        if finite.size < resamples / 2:  # the ends coincide in most resamples: no interval
            return float("nan"), float("nan")
        low, high = np.percentile(finite, [tail, 100 - tail])
        return float(low), float(high)

    areas = _area(alphas, boot)
    area_low, area_high = interval(areas)
    area = Interval(float(_area(alphas, curve[None])[0]), area_low, area_high, n_items)
    balance = _balance(alphas, curve[None])[0]
    balance_low, balance_high = interval(_balance(alphas, boot))
    bands = [interval(boot[:, i]) for i in range(alphas.size)]
    ends = bootstrap_mean(scores[-1] - scores[0], level=level, resamples=resamples, seed=seed,
                          allow_empty=True)

    if not ends.excludes_zero:
        verdict, reason = "none", "the pure ends are not separated (their difference's interval contains 0)"
    elif not (np.isfinite(area_low) and (area_low > 0 or area_high < 0)):
        verdict, reason = "none", "the area's interval contains 0"
    else:
        verdict = "A" if area_low > 0 else "B"
        reason = f"the area's interval excludes 0 ({'above' if verdict == 'A' else 'below'} the diagonal)"
    return Dominance(
        score=score, alphas=tuple(alphas.tolist()), curve=tuple(curve.tolist()),
        curve_low=tuple(b[0] for b in bands), curve_high=tuple(b[1] for b in bands),
        area=area, balance_point=float(balance), balance_low=balance_low, balance_high=balance_high,
        ends=ends, verdict=verdict, reason=reason,
    )


@contextlib.contextmanager
def quiet_nan_warnings() -> Iterator[None]:
    """Silence numpy's warnings for means of all-NaN slices (e.g. a prompt whose every completion is
    empty): NaN is the intended answer there."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _curve(means: np.ndarray) -> np.ndarray:
    """``d`` for each row of ``means [rows, alphas]`` (NaN where the ends coincide)."""
    span = means[:, -1:] - means[:, :1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span != 0, (means - means[:, :1]) / span, np.nan)


def _area(alphas: np.ndarray, curves: np.ndarray) -> np.ndarray:
    gap = curves - alphas[None]
    return ((gap[:, 1:] + gap[:, :-1]) / 2 * np.diff(alphas)[None]).sum(axis=1)


def _balance(alphas: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """First α where each curve reaches 0.5, by linear interpolation (NaN for a NaN curve)."""
    out = np.full(curves.shape[0], np.nan)
    for row, curve in enumerate(curves):
        if not np.isfinite(curve).all():
            continue
        above = np.nonzero(curve >= 0.5)[0]
        i = int(above[0])  # exists: d(1) = 1
        if i == 0:
            out[row] = alphas[0]
            continue
        lo, hi = curve[i - 1], curve[i]
        out[row] = alphas[i - 1] + (0.5 - lo) / (hi - lo) * (alphas[i] - alphas[i - 1])
    return out


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


__all__ = ["Decomposition", "Dominance", "collision_vector", "common_scale", "decompose", "dominance"]
