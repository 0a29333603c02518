"""How many training examples a contrastive steering vector needs: a saturating curve fitted to the
behavioural effect as a function of the number of examples ``n``, and the ``n`` at which it reaches
90 % and 95 % of its plateau, with bootstrap intervals.

The claim under test (arXiv 2505.03189) is that returns diminish around ``n ≈ 80``. The study builds
vectors from ``n ∈ {4, 8, 16, 32, 64, 128, all}`` examples ("all" is simply the size of the training
set), several random subsets per ``n``, applies each to one fixed held-out item set and measures a
per-item effect, oriented so that positive is the intended direction. :func:`fit_saturation` takes
those effects, ``[len(ns), subsets, items]``, and fits one of five curves to the per-``n`` means:

=================  ==================================  ==============================
form               ``E(n)``                            ``n_q`` (reaches ``q · E_max``)
=================  ==================================  ==============================
hyperbolic         ``E_max · n / (n + K)``             ``K · q / (1 − q)``
exponential        ``E_max · (1 − exp(−n / K))``       ``K · ln(1 / (1 − q))``
sqrt_hyperbolic    ``E_max · √(n / (n + K))``          ``K · q² / (1 − q²)``
hill2              ``E_max · n² / (n² + K²)``          ``K · √(q / (1 − q))``
hill3              ``E_max · n³ / (n³ + K³)``          ``K · (q / (1 − q))^(1/3)``
=================  ==================================  ==============================

Why the two Hill forms: the first three bend from ``n = 0`` (concave everywhere). A readout that
starts convex — a threshold such as an A/B logit, or VADER needing a sentiment word before it
moves — is S-shaped, and a concave form fitted to it gets a large ``K`` and extrapolates ``n_0.9``
far past the data: with only the concave forms, S-shaped truths (Hill exponent 2 or 3) reaching
90 % at 100-128 examples read ``n_0.9 > 128`` in 12-73 % of simulated runs (red team, 2026-12).
The Hill exponents are fixed (2 and 3), so every form keeps two parameters and the least-squares
comparison stays fair (a free exponent is a third parameter, poorly identified from six means).

Why ``sqrt_hyperbolic``: a mean-difference vector from ``n`` pairs is ``v̂ = δ·u + ε̄`` with ``u``
the true unit direction, ``δ`` the separation along it, and ``ε̄`` the mean of ``n`` noise vectors
(covariance ``Σ``), so ``‖ε̄‖² ≈ tr(Σ) / n`` (the noise norm concentrates in many dimensions). Once
the vector is rescaled to a fixed norm, only its direction matters, and its cosine to ``u`` is about
``δ / √(δ² + tr(Σ)/n) = √(n / (n + K))`` with ``K = tr(Σ) / δ²`` — for isotropic noise
``K = σ² · d / δ²``: the noise variance times the dimension over the squared separation. If the
behavioural effect of a fixed-norm vector is proportional to that cosine, ``E(n)`` is this curve.
Its approach is slow (``1 − E/E_max ≈ K / 2n``), so ``n_0.95`` is about ``2.2 × n_0.9``. The other
two forms are the usual saturating shapes (Michaelis–Menten-like, and first-order), for effects
that are not linear in the cosine.

How the fit works. Every form is ``E_max · g(n; K)`` with ``0 < g < 1``, linear in ``E_max``: for a
given ``K`` the least-squares ``E_max`` is ``⟨g, y⟩ / ⟨g, g⟩`` (``y`` the per-``n`` means), leaving a
one-dimensional search over ``K``. We search ``log K`` on a grid from ``min(ns) / 1000`` to
``1000 · max(ns)``, refine the best cell by golden section, and (for the point estimate) polish with
:func:`scipy.optimize.curve_fit` under the bounds ``E_max ≥ 0``, ``K`` in that range. The grid
makes the fit immune to bad starting values, and the profile is what lets the bootstrap fit all
replicates at once as array operations. Each per-``n`` mean gets equal weight (ordinary least
squares): the means are correlated through the shared items, and weights estimated from a handful
of subsets are themselves too noisy to help. With several ``forms`` the point estimate uses the one
with the smallest residual sum of squares on the full data (all have two parameters, so the
comparison is fair).

The choice of form matters more than the noise. With realistic sizes (``ns = 4 … 256``, 5 subsets,
30 items) a planted steering direction, whose true curve is close to ``sqrt_hyperbolic``, is fitted
better by ``hyperbolic`` in about a third of runs, and that form's ``n_0.9`` is about 30 % lower
(so the point estimate leans low: median 70 against a true 79 below). Hence by default every
bootstrap replicate picks its own form by the same rule (``boot_form_share`` says how often each
won), and the intervals carry the uncertainty of the choice. In the planted simulation of
``tests/test_saturation.py`` (100 runs, data seeds 100–199, true ``n_0.9 ≈ 79``, ``n_boot = 300``) the
95 % interval of ``n_0.9`` covered the truth in 95 runs this way, and the union of every form's own
interval (:meth:`SaturationFit.n_at_union`, what the study's verdict reads) in 98.

Two edges of the search have a meaning:

- ``K`` at the top (more than 1000 × the largest ``n``): the effect is still rising as fast as it
  started — there is no plateau to estimate. ``E_max``, ``K`` and ``n_q`` are then ``inf``.
- ``K`` at the bottom: the curve is flat over the tested range; ``n_q`` lies below the smallest
  ``n`` and is reported as the (tiny) fitted value, with a note.

The bootstrap. Items are shared by every ``(n, subset)`` cell, so a replicate draws one set of item
indices with replacement and uses it everywhere; the subsets are independent random draws, so it
also resamples the subsets within each ``n``, independently per ``n``. It recomputes the means
(as count-weighted sums: one matrix product for all replicates), refits (every form in ``forms``,
keeping the replicate's best, or only the full-data form with ``select_in_bootstrap=False``), and takes
the 2.5 % and 97.5 % order statistics of ``E_max`` and ``n_q`` (no interpolation, so a replicate
with no plateau gives an infinite upper bound rather than a NaN). Resampling ``s`` subsets gives a
mean that varies only ``(s − 1) / s`` as much as it should (20 % too little with 5), so each
subset's deviation from its ``n``'s mean is first widened by ``√(s / (s − 1))``. (Items are not widened: with tens of them the shortfall is
a few per cent.) A replicate whose mean at the
largest ``n`` is not positive (or missing) has nothing to saturate: it counts as failed, is left
out of the intervals, and the count is reported.

Caveats the numbers cannot show: at large ``n`` the subsets of a finite training set overlap (and
``n = all`` has a single subset), so the interval is conditional on that training set; the true
curve need not be any of the five forms (the planted one is only close to ``sqrt_hyperbolic``);
and an extrapolated ``n_q`` (``beyond_range``) rests on the form being right.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from interp_steer._io import jsonable

FORMS = ("hyperbolic", "exponential", "sqrt_hyperbolic", "hill2", "hill3")
"""The saturating curves :func:`fit_saturation` knows (see the module docstring)."""

S_SHAPED = ("hill2", "hill3")
"""The forms that start convex; :meth:`SaturationFit.n_at_union` counts them only where the data show
an S-shape (see :data:`S_SHAPED_MIN_SHARE`)."""

S_SHAPED_MIN_SHARE = 0.05
"""An S-shaped form joins the union of intervals only when it is the full-data fit or fits best in at
least this share of bootstrap replicates: a form the data reject (a Hill curve fitted to a straight
line, with 1000 times the residual of the concave forms) would otherwise put its n_0.9 interval into
the union and hide a plateau that is not there."""

INTERVAL_LEVEL = 0.95
"""Coverage of the bootstrap intervals (percentile, order statistics)."""

K_SPAN = 1000.0
"""``K`` is searched from ``min(ns) / K_SPAN`` to ``K_SPAN · max(ns)``; the top means "no plateau"."""

_HILL = {"hill2": 2.0, "hill3": 3.0}  # S-shaped forms: the Hill exponent of each

_GRID = 241  # log-K grid points: a step of about 0.08 in log K for ns = 4 ... 256
_GOLDEN_STEPS = 48  # shrinks the bracket by 0.618**48 ≈ 1e-10


def _shape(form: str, n: np.ndarray | float, k: np.ndarray | float) -> np.ndarray:
    """``g(n; K)``, the curve divided by ``E_max`` (broadcasts ``n`` against ``k``)."""
    r = n / k
    if form == "hyperbolic":
        return r / (1.0 + r)
    if form == "exponential":
        return -np.expm1(-r)
    if form in _HILL:
        p = r * r if form == "hill2" else r * r * r  # (products: a float power is several times slower)
        return p / (1.0 + p)
    return np.sqrt(r / (1.0 + r))


def saturation_curve(form: str, e_max: float, k: float, n: np.ndarray | Sequence[float]) -> np.ndarray:
    """``E(n)`` of one form with the given plateau ``e_max`` and scale ``k`` (e.g. from ``to_dict()``)."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    return float(e_max) * _shape(form, np.asarray(n, dtype=float), np.float64(k))


def n_at_level(form: str, k: float | np.ndarray, q: float) -> float | np.ndarray:
    """The ``n`` at which the curve of ``form`` with constant ``k`` reaches ``q · E_max``."""
    if form == "hyperbolic":
        return k * q / (1.0 - q)
    if form == "exponential":
        return -k * math.log1p(-q)
    if form == "sqrt_hyperbolic":
        return k * q * q / (1.0 - q * q)
    if form in _HILL:
        return k * (q / (1.0 - q)) ** (1.0 / _HILL[form])
    raise ValueError(f"form must be one of {FORMS}, got {form!r}")


@dataclass(frozen=True)
class SaturationFit:
    """A saturating curve fitted to mean effect against ``n``, and where it reaches its plateau.

    ``n_at[q]`` is the point estimate of the ``n`` reaching ``q · E_max``; ``n_at_low``/``n_at_high``
    and ``e_max_low``/``e_max_high`` are 95 % bootstrap bounds (NaN without a bootstrap; the upper
    ones may be ``inf`` when some replicates show no plateau). ``beyond_range[q]`` is True when the
    point estimate lies past the largest ``n`` tested — extrapolated, not observed. ``sse`` holds the
    residual sum of squares of each form tried on the means (the smallest one is ``form``);
    ``boot_form_share`` the fraction of (successful) bootstrap replicates in which each form fitted
    best. ``note`` is "" or says why the numbers should not be taken at face value."""

    form: str
    e_max: float
    k: float
    levels: tuple[float, ...]
    n_at: dict[float, float]
    n_at_low: dict[float, float]
    n_at_high: dict[float, float]
    e_max_low: float
    e_max_high: float
    beyond_range: dict[float, bool]
    sse: dict[str, float]
    ns: tuple[int, ...]
    mean_effect: tuple[float, ...]
    n_boot: int
    n_boot_failed: int
    note: str
    boot_form_share: dict[str, float]
    by_form: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per form tried (its point fit succeeded): ``e_max``, ``k``, ``sse`` and, per level, ``n_at``
    ``(estimate, low, high)`` with the bounds from that form's own refits in every bootstrap replicate
    (NaN without a bootstrap). :meth:`n_at_union` is the interval the choice of form cannot narrow."""

    def n_at_union(self, q: float) -> tuple[float, float]:
        """The union over forms of each form's own 95 % interval of ``n_q``: ``(min low, max high)``.
        The least-squares choice of form is itself uncertain, and when ``n_q`` lies beyond the data
        it decides the extrapolation, so an interval conditional on it can miss: a sqrt-hyperbolic
        truth reaching 90 % at 128 examples (tested to 90) read ``n_0.9 <= 90`` in 7-11 % of simulated
        runs with the chosen form's interval, in at most 3 % with the union. Forms without a bootstrap
        interval (``n_boot = 0``; ``select_in_bootstrap=False`` bootstraps the chosen form only) are left
        out; NaN when none has one. The S-shaped forms (:data:`S_SHAPED`) count only where the data show an
        S-shape: they are the full-data fit, or fit best in at least :data:`S_SHAPED_MIN_SHARE` of the
        bootstrap replicates."""
        rows = [f["n_at"][q] for name, f in self.by_form.items()
                if q in f["n_at"] and not (math.isnan(f["n_at"][q][1]) or math.isnan(f["n_at"][q][2]))
                and (name not in S_SHAPED or name == self.form
                     or self.boot_form_share.get(name, 0.0) >= S_SHAPED_MIN_SHARE)]
        if not rows:
            return math.nan, math.nan
        return float(min(r[1] for r in rows)), float(max(r[2] for r in rows))

    def curve(self, n: np.ndarray) -> np.ndarray:
        """The fitted ``E(n)`` (NaN everywhere when there is no fit or no plateau)."""
        n = np.asarray(n, dtype=float)
        if self.form not in FORMS or not (math.isfinite(self.e_max) and math.isfinite(self.k)):
            return np.full(n.shape, np.nan)
        return self.e_max * _shape(self.form, n, np.float64(self.k))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; ``inf`` and NaN become ``None`` (strict JSON has neither)."""
        per_level = {f"{q:g}": {"estimate": self.n_at[q], "low": self.n_at_low[q], "high": self.n_at_high[q],
                                "beyond_range": self.beyond_range[q]} for q in self.levels}
        return jsonable({
            "form": self.form or None,
            "e_max": {"estimate": self.e_max, "low": self.e_max_low, "high": self.e_max_high},
            "k": self.k,
            "levels": list(self.levels),
            "n_at": per_level,
            "sse": dict(self.sse),
            "data": {"ns": list(self.ns), "mean_effect": list(self.mean_effect)},
            "bootstrap": {"n_boot": self.n_boot, "n_failed": self.n_boot_failed, "interval": INTERVAL_LEVEL,
                          "resamples": "items (shared by every n and subset) and subsets within each n",
                          "form_share": dict(self.boot_form_share)},
            "note": self.note,
            "by_form": {form: {"e_max": f["e_max"], "k": f["k"], "sse": f["sse"],
                               "n_at": {f"{q:g}": {"estimate": v[0], "low": v[1], "high": v[2]}
                                        for q, v in f["n_at"].items()}}
                        for form, f in self.by_form.items()},
            "n_at_union": {f"{q:g}": dict(zip(("low", "high"), self.n_at_union(q), strict=True)) for q in self.levels},
        })


@dataclass(frozen=True)
class _Profile:
    """Least-squares fits of one form to a batch of mean curves ``y [B, len(ns)]``."""

    e_max: np.ndarray
    k: np.ndarray
    sse: np.ndarray
    no_plateau: np.ndarray  # K ran to the top of the search range
    failed: np.ndarray  # no positive effect at the largest n (or a missing mean)


def _profile_fit(form: str, ns: np.ndarray, y: np.ndarray) -> _Profile:
    """Vectorised least squares of ``E_max · g(ns; K)`` to each row of ``y``: ``E_max`` in closed
    form for every ``K`` on a log grid, then golden-section refinement of ``log K`` in the best
    cell's neighbourhood, all rows at once."""
    y = np.atleast_2d(y)
    failed = ~np.isfinite(y).all(axis=1) | ~(y[:, -1] > 0)
    y = np.where(failed[:, None], 1.0, y)  # any finite stand-in: failed rows are discarded below
    yy = (y * y).sum(axis=1)
    log_k = np.linspace(math.log(ns[0] / K_SPAN), math.log(ns[-1] * K_SPAN), _GRID)

    def sse_and_e(gy: np.ndarray, gg: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = np.maximum(gy, 0.0) / gg  # E_max >= 0: with <g, y> <= 0 the best is E_max = 0
        return yy - e * gy, e  # = |y - e g|^2 at the optimal e

    grid_g = _shape(form, ns[None, :], np.exp(log_k)[:, None])  # [grid, len(ns)]
    grid_sse, _ = sse_and_e(y @ grid_g.T, (grid_g * grid_g).sum(axis=1), yy[:, None])
    best = np.argmin(grid_sse, axis=1)
    lo = log_k[np.maximum(best - 1, 0)]
    hi = log_k[np.minimum(best + 1, _GRID - 1)]

    def sse_at(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = _shape(form, ns[None, :], np.exp(t)[:, None])
        return sse_and_e((g * y).sum(axis=1), (g * g).sum(axis=1), yy)

    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(_GOLDEN_STEPS):
        c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        left = sse_at(c)[0] < sse_at(d)[0]
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
    t = (lo + hi) / 2
    sse, e = sse_at(t)
    no_plateau = best == _GRID - 1
    failed = failed | ~(e > 0)
    return _Profile(e_max=np.where(failed, np.nan, e), k=np.where(failed, np.nan, np.exp(t)),
                    sse=np.where(failed, np.nan, sse), no_plateau=no_plateau & ~failed, failed=failed)


def _point_fit(form: str, ns: np.ndarray, y: np.ndarray) -> tuple[float, float, float, bool]:
    """``(E_max, K, SSE, no_plateau)`` for one mean curve: the profile search, polished by
    :func:`scipy.optimize.curve_fit` from the profile's optimum (kept only if it does better)."""
    prof = _profile_fit(form, ns, y[None, :])
    e0, k0, sse0 = float(prof.e_max[0]), float(prof.k[0]), float(prof.sse[0])
    if prof.no_plateau[0]:
        return math.inf, math.inf, sse0, True
    k_lo, k_hi = ns[0] / K_SPAN, ns[-1] * K_SPAN
    start = (e0, min(max(k0, k_lo * (1 + 1e-9)), k_hi * (1 - 1e-9)))

    def model(n: np.ndarray, e_max: float, k: float) -> np.ndarray:
        return e_max * _shape(form, n, k)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, _ = curve_fit(model, ns, y, p0=start, bounds=([0.0, k_lo], [np.inf, k_hi]),
                                xtol=1e-12, ftol=1e-12, gtol=1e-12)
    except (RuntimeError, ValueError):
        return e0, k0, sse0, False
    sse = float(((model(ns, *popt) - y) ** 2).sum())
    if popt[0] > 0 and sse <= sse0:
        return float(popt[0]), float(popt[1]), sse, False
    return e0, k0, sse0, False


def _bootstrap_means(effects: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, len(ns)]`` means of replicates that resample the items (one draw, shared by every
    cell) and the subsets within each ``n`` (independent draws per ``n``, of deviations widened by
    ``√(s / (s − 1))``), NaNs left out.

    A resample is a vector of counts, so a replicate's mean for ``n`` is
    ``Σ_s c_s Σ_j d_j x[n, s, j] / Σ_s c_s Σ_j d_j [x finite]`` — two matrix products over all
    replicates instead of gathering ``n_boot`` copies of the data."""
    n_sizes, n_subsets, n_items = effects.shape
    if n_subsets > 1:
        # A resampled mean of s values varies (s - 1) / s as much as the mean itself; with 5 subsets
        # that is 20 % too little. Widening each subset's deviation from its n's mean by
        # sqrt(s / (s - 1)) before resampling removes the shortfall.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            centre = np.nanmean(effects, axis=1, keepdims=True)
        effects = centre + math.sqrt(n_subsets / (n_subsets - 1)) * (effects - centre)
    finite = np.isfinite(effects)
    values = np.where(finite, effects, 0.0).reshape(n_sizes * n_subsets, n_items)
    present = finite.reshape(n_sizes * n_subsets, n_items).astype(float)

    def counts(rows: int, size: int) -> np.ndarray:
        draws = rng.integers(0, size, size=(rows, size)) + size * np.arange(rows)[:, None]
        return np.bincount(draws.ravel(), minlength=rows * size).reshape(rows, size).astype(float)

    item_counts = counts(n_boot, n_items)  # [B, items]
    subset_counts = counts(n_boot * n_sizes, n_subsets).reshape(n_boot, n_sizes, n_subsets)
    sums = (item_counts @ values.T).reshape(n_boot, n_sizes, n_subsets)
    cells = (item_counts @ present.T).reshape(n_boot, n_sizes, n_subsets)
    num, den = (subset_counts * sums).sum(axis=2), (subset_counts * cells).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _bounds(values: np.ndarray) -> tuple[float, float]:
    """95 % percentile bounds as order statistics (``inf`` stays ``inf``; NaN when empty)."""
    if values.size == 0:
        return math.nan, math.nan
    tail = (1 - INTERVAL_LEVEL) / 2 * 100
    return (float(np.percentile(values, tail, method="lower")),
            float(np.percentile(values, 100 - tail, method="higher")))


def _check(ns: Sequence[int] | np.ndarray, effects: np.ndarray, forms: Sequence[str], levels: Sequence[float],
           n_boot: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[float, ...]]:
    sizes = np.asarray(ns)
    if sizes.ndim != 1 or sizes.size == 0 or not np.issubdtype(sizes.dtype, np.number):
        raise ValueError(f"ns must be a 1-D sequence of sample sizes, e.g. (4, 8, 16, 32, 64, 128), got {ns!r}")
    if not (np.isfinite(sizes).all() and (sizes == np.round(sizes)).all() and (sizes > 0).all()):
        raise ValueError(f"ns must be positive integers (numbers of training examples), got {sizes.tolist()}")
    if not (np.diff(sizes) > 0).all():
        raise ValueError(f"ns must be strictly increasing (sort them, with effects in the same order; "
                         f"no repeats), got {sizes.tolist()}")
    if sizes.size < 3:
        raise ValueError(f"ns must hold at least 3 distinct sample sizes: a two-parameter curve needs three "
                         f"points to be tested at all, got {sizes.tolist()}")
    data = np.asarray(effects, dtype=float)
    if data.ndim != 3 or data.shape[0] != sizes.size or 0 in data.shape:
        raise ValueError(f"effects must be a 3-D array [len(ns), subsets, items] = [{sizes.size}, subsets, items] "
                         f"(one row per n, one column per random subset, one entry per held-out item), "
                         f"got shape {data.shape}")
    if np.isinf(data).any():
        raise ValueError("effects holds infinite values: use NaN for a missing effect (NaNs are left out)")
    empty = [int(n) for n, row in zip(sizes, data, strict=True) if not np.isfinite(row).any()]
    if empty:
        raise ValueError(f"effects has no finite value for n = {empty}: drop those sizes from ns and effects")
    chosen = (forms,) if isinstance(forms, str) else tuple(dict.fromkeys(forms))
    unknown = [f for f in chosen if f not in FORMS]
    if not chosen or unknown:
        raise ValueError(f"forms must be a non-empty selection of {FORMS}, got unknown {unknown or 'none'}")
    qs = tuple(float(q) for q in levels)
    if not qs or not all(0 < q < 1 for q in qs):
        raise ValueError(f"levels must be fractions of the plateau in (0, 1), e.g. (0.9, 0.95), got {tuple(levels)}")
    if n_boot != 0 and n_boot < 100:
        raise ValueError(f"n_boot must be 0 (no bootstrap) or at least 100 (a 95 % interval from fewer "
                         f"replicates is noise), got {n_boot}")
    return sizes.astype(int), data, chosen, tuple(dict.fromkeys(qs))


def fit_saturation(ns: Sequence[int] | np.ndarray, effects: np.ndarray, *, forms: Sequence[str] = FORMS,
                   levels: Sequence[float] = (0.9, 0.95), n_boot: int = 1000, seed: int = 0,
                   select_in_bootstrap: bool = True) -> SaturationFit:
    """Fit a saturating curve to effect against sample size and find where it reaches its plateau.

    ``effects`` is ``[len(ns), n_subsets, n_items]``: the per-item effect (positive = the intended
    direction; NaN allowed, left out) of the vector built from each random subset of size
    ``ns[i]``, on the same held-out items for every ``(n, subset)``. The curve is fitted to the mean
    per ``n`` (over subsets and items) by least squares; with several ``forms`` the one with the
    smallest residual sum of squares is used. ``n_boot`` bootstrap replicates (0 for none; bounds
    NaN) resample the items and, within each ``n``, the subsets, and give 95 % intervals for
    ``E_max`` and each ``n_q``; each replicate chooses its own form among ``forms`` unless
    ``select_in_bootstrap`` is False (then all refit the full-data form, and the intervals leave out
    the uncertainty of that choice). Reproducible from ``seed``. When the mean effect at the largest ``n``
    is not positive there is nothing to saturate: the fit is NaN and ``note`` says so."""
    sizes, data, chosen, qs = _check(ns, effects, forms, levels, n_boot)
    x = sizes.astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(data, axis=(1, 2))
    nan_level = {q: math.nan for q in qs}
    common = {"levels": qs, "ns": tuple(int(n) for n in sizes), "mean_effect": tuple(float(m) for m in means),
              "n_boot": n_boot}

    def no_fit(note: str, sse: dict[str, float]) -> SaturationFit:
        return SaturationFit(form="", e_max=math.nan, k=math.nan, n_at=dict(nan_level), n_at_low=dict(nan_level),
                             n_at_high=dict(nan_level), e_max_low=math.nan, e_max_high=math.nan,
                             beyond_range={q: False for q in qs}, sse=sse, n_boot_failed=0, note=note,
                             boot_form_share={}, **common)

    if not means[-1] > 0:
        return no_fit(f"the mean effect at the largest n ({sizes[-1]}) is {means[-1]:.3g}, not positive: the vector "
                      f"has no positive effect to saturate (orient effects so that positive is the intended "
                      f"direction); no fit", {f: math.nan for f in chosen})

    fits = {form: _point_fit(form, x, means) for form in chosen}
    sse = {form: fit[2] for form, fit in fits.items()}
    if not any(math.isfinite(v) for v in sse.values()):
        return no_fit("no saturating curve with a positive plateau fits these means (the effects at smaller n are "
                      "too negative for the one at the largest n); no fit", sse)
    form = min((f for f in chosen if math.isfinite(sse[f])), key=lambda f: sse[f])  # ties: the earlier form
    e_max, k, _, no_plateau = fits[form]
    n_at = {q: math.inf if no_plateau else float(n_at_level(form, k, q)) for q in qs}
    beyond = {q: bool(n_at[q] > sizes[-1]) for q in qs}

    notes = []
    if no_plateau:
        notes.append(f"no plateau within reach: the {form} fit's K ran past {K_SPAN:g}× the largest n, i.e. the "
                     f"effect is still rising about as fast as it started; E_max, K and n_q are unbounded (inf)")
    elif any(beyond.values()):
        past = ", ".join(f"n at {q:.0%} = {n_at[q]:.3g}" for q in qs if beyond[q])
        notes.append(f"plateau not reached within the tested range: {past} lies beyond the largest n tested "
                     f"({sizes[-1]}), so it is extrapolated from the {form} form, not observed")
    below = [q for q in qs if n_at[q] < sizes[0]]
    if below:
        notes.append(f"the curve is already flat at the smallest n ({sizes[0]}): n at "
                     f"{', '.join(f'{q:.0%}' for q in below)} lies below it, so only 'fewer than {sizes[0]}' is known")

    low, high = dict(nan_level), dict(nan_level)
    e_low = e_high = math.nan
    failed = 0
    share: dict[str, float] = {}
    fitted = [f for f in chosen if math.isfinite(sse[f])]
    by_form: dict[str, dict[str, Any]] = {
        f: {"e_max": float(fits[f][0]), "k": float(fits[f][1]), "sse": float(fits[f][2]),
            "n_at": {q: [math.inf if fits[f][3] else float(n_at_level(f, fits[f][1], q)), math.nan, math.nan]
                     for q in qs}}
        for f in fitted}
    if n_boot:
        boot = _bootstrap_means(data, n_boot, np.random.default_rng(seed))
        tried = chosen if select_in_bootstrap else (form,)
        profs = [_profile_fit(f, x, boot) for f in tried]
        sse_boot = np.stack([np.where(p.failed, np.inf, p.sse) for p in profs])  # [forms, B]
        ok = np.isfinite(sse_boot).any(axis=0)
        pick = np.argmin(sse_boot, axis=0)[ok]  # each replicate's own least-squares form

        def picked(per_form: list[np.ndarray]) -> np.ndarray:
            return np.stack(per_form)[:, ok][pick, np.arange(pick.size)]

        failed = int((~ok).sum())
        share = {f: float((pick == i).mean()) if pick.size else math.nan for i, f in enumerate(tried)}
        e_low, e_high = _bounds(picked([np.where(p.no_plateau, np.inf, p.e_max) for p in profs]))
        for q in qs:
            low[q], high[q] = _bounds(picked([np.where(p.no_plateau, np.inf, n_at_level(f, p.k, q))
                                              for f, p in zip(tried, profs, strict=True)]))
        for f, p in zip(tried, profs, strict=True):
            if f not in by_form:
                continue
            own = ~p.failed  # the replicates this form could fit
            for q in qs:
                values = np.where(p.no_plateau, np.inf, n_at_level(f, p.k, q))[own]
                by_form[f]["n_at"][q][1:] = _bounds(values)
        if failed:
            notes.append(f"{failed} of {n_boot} bootstrap replicates had no positive mean effect at the largest n and "
                         f"were left out of the intervals")
        unbounded = [q for q in qs if high[q] == math.inf]
        if unbounded and not no_plateau:
            notes.append(f"the upper bound of n at {', '.join(f'{q:.0%}' for q in unbounded)} is unbounded: more "
                         f"than {(1 - INTERVAL_LEVEL) / 2:.1%} of bootstrap replicates show no plateau")
    return SaturationFit(form=form, e_max=float(e_max), k=float(k), n_at=n_at, n_at_low=low, n_at_high=high,
                         e_max_low=e_low, e_max_high=e_high, beyond_range=beyond, sse=sse, n_boot_failed=failed,
                         note="; ".join(notes), boot_form_share=share,
                         by_form={f: {**v, "n_at": {q: tuple(x) for q, x in v["n_at"].items()}} for f, v in by_form.items()},
                         **common)


__all__ = ["FORMS", "INTERVAL_LEVEL", "K_SPAN", "S_SHAPED", "S_SHAPED_MIN_SHARE", "SaturationFit", "fit_saturation", "n_at_level", "saturation_curve"]
