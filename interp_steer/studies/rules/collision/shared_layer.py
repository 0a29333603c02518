"""``collision.shared_layer`` (finding iii): do the two personas (each against the baseline) peak at
the same layer? An equivalence test on the distance between the peaks, from the probes' held-out
per-example scores. Its simulated worlds are in :mod:`.shared_layer_worlds`."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from interp_steer.studies.rules.base import (
    VERDICTS,
    Decision,
    Rule,
    register,
)
from interp_steer.studies.rules.collision.common import same_rows
from interp_steer.studies.rules.collision.shared_layer_worlds import (
    SHARED_DGPS,
    SHARED_NOTES,
    SHARED_WIDTHS,
)

SHARED_CLAIM = "Both personas localise best at the same layer (a shared moral-tone substrate)."

SHARED_TOLERANCE = 0.1
"""Peaks within ``round(0.1 × depth)`` layers count as the same layer (3 of 30; 4 of 40)."""
SHARED_INFLATION = 1.5
"""The spread of the resampled means when the folds are not given (``folds_a``/``folds_b``): a fixed
guess of how much the training folds' own variation widens the interval (measured 1.2-1.3x on the
default model's probes, more with more examples)."""
SHARED_LEVEL = 0.90
SHARED_RESAMPLES = 400
SHARED_MIN_PER_CLASS = 10
"""The fewest examples of each class a profile must have (below it a bootstrap over examples has
too few distinct resamples to mean anything: one example per class gives a zero-width interval)."""
SHARED_MIN_DEPTH = 10
"""The fewest layers (``max(layers) − min(layers) + 1``): "the same layer" is a tenth of the depth,
at least one layer, and with fewer than 10 layers ±1 layer is most of the model."""

SHARED_TEXT = (
    "per profile (A vs baseline, B vs baseline), each example's held-out probe quality per layer, q = −(1 − p)² with "
    "p the probe's cross-validated probability of the example's true class (the negative Brier score: it keeps "
    "ranking layers where accuracy saturates at 1); the peak is the layer with the highest mean q (ties: every tied "
    "layer). A 90 % percentile interval for the distance peak_A − peak_B from a bootstrap over examples (stratified by "
    "class, the two profiles resampled independently; with ties, the interval spans every tied layer), its resampled "
    "means spread around the observed ones by √((S_e + (N/F) S_f) / (S_e + S_f)): resampling held-out examples "
    "misses how much the probes themselves vary between the F training folds, so, given the fold of each example, "
    "S_f (the between-fold variance component of each layer's difference from the peak, from the per-fold means, one "
    "random-effects ANOVA per layer, summed over layers, at least 0) and S_e (the within-fold variance, summed) "
    "estimate the missing share; without the folds a fixed 1.5×; reproduced when the interval lies inside ±k "
    "layers, k = round(0.1 × depth) (equivalence at 5 %); not reproduced when it lies outside (the peaks "
    "significantly more than k layers apart); inconclusive otherwise (flat or saturated profiles)")


def brier_quality(scores: Any, labels: Any) -> np.ndarray:
    """Per example and layer, ``−(1 − p)²`` with ``p = sigmoid(score)`` the probability the probe gives
    the example's true class (``labels`` 1 or 0, broadcast along the last axis of ``scores``)."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels)
    signed = np.where((labels == 1)[..., None], scores, -scores)
    return -((1.0 - expit(signed)) ** 2)


def _bootstrap_weights(labels: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``[resamples, examples]`` weights of a bootstrap stratified by class (each row sums to 1)."""
    n = labels.size
    weights = np.zeros((resamples, n))
    for value in np.unique(labels):
        where = np.flatnonzero(labels == value)
        counts = rng.multinomial(where.size, np.full(where.size, 1 / where.size), size=resamples)
        weights[:, where] = counts / n
    return weights


def _resampled_means(weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``[runs, resamples, layers]`` means of ``q [runs, examples, layers]`` under each row of
    ``weights [resamples, examples]`` (one matrix product for every run and layer)."""
    runs, n, layers = q.shape
    flat = weights @ q.transpose(1, 0, 2).reshape(n, runs * layers)
    return flat.reshape(weights.shape[0], runs, layers).transpose(1, 0, 2)


def _tie_range(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index of the layers tied for the maximum (``means [..., layers]``)."""
    best = means.max(axis=-1, keepdims=True)
    tied = means >= best - 1e-12 * np.maximum(1.0, np.abs(best))
    first = tied.argmax(axis=-1)
    last = means.shape[-1] - 1 - tied[..., ::-1].argmax(axis=-1)
    return first, last


def _fold_ids(folds: Any, n: int, name: str) -> tuple[np.ndarray, int]:
    """``folds [examples]`` (the same in every run of a batch) as indices ``0 … F − 1`` and ``F``."""
    f = same_rows(np.asarray(folds), name)
    if f.shape != (n,) or not np.isfinite(f.astype(float)).all() or np.any(f != np.rint(f.astype(float))):
        raise ValueError(f"{name} must give, for each of the {n} examples, the integer index of the cross-validation "
                         f"fold that held it out; got shape {f.shape}")
    values, ids = np.unique(f.astype(int), return_inverse=True)
    counts = np.bincount(ids)
    if values.size < 2 or counts.min() < 2:
        raise ValueError(f"{name} must name at least 2 folds of at least 2 examples each; got fold sizes "
                         f"{counts.tolist()}")
    return ids, int(values.size)


def fold_inflation(q: np.ndarray, folds: np.ndarray, n_folds: int) -> np.ndarray:
    """How much wider the spread of a profile's layer means is than a bootstrap over its examples
    sees, from the folds: ``q [runs, examples, layers]`` (each example's held-out quality),
    ``folds [examples]`` (0 … F − 1). Per layer ``L``, each example's difference from the peak layer
    ``D_iL = q_iL − q_i,peak`` is split by a one-way random-effects ANOVA over folds into a within-fold
    variance ``σ²_L`` (the pooled variance around the fold means) and a between-fold component
    ``τ²_L = (MSB_L − σ²_L) / n̄`` (``MSB``: the between-fold mean square, ``n̄ = N / F``), the fold's
    probe being better or worse at that layer. The mean over ``N`` examples in ``F`` folds varies by
    ``σ²/N + τ²/F``; resampling examples sees about ``(σ² + τ²)/N``. Summed over layers (``S_e = Σσ²``,
    ``S_f = max(0, Στ²)``) the factor is ``√((S_e + (N/F)·S_f) / (S_e + S_f))`` per run, at least 1:
    with the training noise fixed it grows with the number of examples."""
    runs, n, layers = q.shape
    peak = q.mean(axis=1).argmax(axis=-1)
    d = q - np.take_along_axis(q, peak[:, None, None], axis=2)
    onehot = (folds[:, None] == np.arange(n_folds)[None, :]).astype(float)  # [examples, folds]
    sizes = onehot.sum(axis=0)
    fold_means = np.einsum("nf,rnl->rfl", onehot, d) / sizes[None, :, None]
    overall = d.mean(axis=1)
    within = ((d - fold_means[:, folds, :]) ** 2).sum(axis=1) / (n - n_folds)  # [runs, layers]
    between = (sizes[None, :, None] * (fold_means - overall[:, None, :]) ** 2).sum(axis=1) / (n_folds - 1)
    tau2 = (between - within) / (n / n_folds)
    s_e, s_f = within.sum(axis=-1), np.maximum(tau2.sum(axis=-1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(s_e + s_f > 0, (s_e + (n / n_folds) * s_f) / (s_e + s_f), 1.0)
    return np.sqrt(np.maximum(ratio, 1.0))


def _check_profile_scores(scores: np.ndarray, labels: np.ndarray, name: str) -> None:
    if not np.isfinite(scores).all():
        raise ValueError(f"scores_{name} holds NaN or ±inf; every example needs a finite held-out decision value at "
                         f"every layer (a NaN would flatten its whole profile into a tie)")
    if scores.size and scores.min() >= 0 and scores.max() <= 1:
        raise ValueError(f"scores_{name} lies in [0, 1]: these look like probabilities; pass the probe's log-odds "
                         f"(its decision function), as LayerProfile.heldout_scores holds them")
    if labels.shape != (scores.shape[1],) or set(np.unique(labels)) - {0, 1} or np.unique(labels).size != 2:
        raise ValueError(f"labels_{name} must hold 1 (persona) and 0 (baseline) for each of the {scores.shape[1]} "
                         f"examples of scores_{name}")
    counts = np.bincount(labels.astype(int), minlength=2)
    if counts.min() < SHARED_MIN_PER_CLASS:
        raise ValueError(f"labels_{name} has {counts[1]} persona and {counts[0]} baseline examples; the rule needs at "
                         f"least {SHARED_MIN_PER_CLASS} of each (a bootstrap over fewer has too few resamples to give an "
                         f"interval)")


def _layer_numbers(layers: Any, n_layers: int) -> np.ndarray:
    numbers = np.arange(n_layers) if layers is None else np.asarray(layers).ravel()
    if numbers.size != n_layers:
        raise ValueError(f"layers has {numbers.size} entries for {n_layers} layers of scores")
    if not np.all(numbers == np.rint(numbers.astype(float))) or np.any(np.diff(numbers.astype(float)) <= 0):
        raise ValueError(f"layers must be distinct integers in increasing order (the scores' columns); got "
                         f"{numbers.tolist()}")
    numbers = numbers.astype(int)
    depth = int(numbers.max() - numbers.min() + 1)
    if depth < SHARED_MIN_DEPTH:
        raise ValueError(f"the layers span {depth} layers; the rule needs at least {SHARED_MIN_DEPTH} (the same layer "
                         f"is within a tenth of the depth)")
    return numbers


def _shared_core(scores_a: Any, labels_a: Any, scores_b: Any, labels_b: Any, layers: Any = None,
                 folds_a: Any = None, folds_b: Any = None, tolerance: float | int = SHARED_TOLERANCE,
                 inflation: float | int = SHARED_INFLATION, level: float | int = SHARED_LEVEL,
                 resamples: int = SHARED_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """The rule on a batch: ``scores_* [runs, examples, layers]``, ``labels_*`` and ``folds_*``
    ``[runs, examples]`` or ``[examples]`` (the same layout in every run of a batch)."""
    if not 0 < tolerance < 1 or inflation < 1 or not 0.5 < level < 1 or resamples < 20:
        raise ValueError("tolerance must be in (0, 1), inflation >= 1, level in (0.5, 1), resamples >= 20")
    sa, sb = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if sa.ndim != 3 or sb.ndim != 3 or sa.shape[-1] != sb.shape[-1]:
        raise ValueError(f"scores_a and scores_b must be [examples, layers] over the same layers; got {sa.shape[1:]} "
                         f"and {sb.shape[1:]}")
    la, lb = (same_rows(np.asarray(v), "labels") for v in (labels_a, labels_b))
    _check_profile_scores(sa, la, "a")
    _check_profile_scores(sb, lb, "b")
    if (folds_a is None) != (folds_b is None):
        raise ValueError("pass folds_a and folds_b together (or neither)")
    numbers = _layer_numbers(layers, sa.shape[-1])
    depth = int(numbers.max() - numbers.min() + 1)
    k = max(1, round(tolerance * depth))
    qa, qb = brier_quality(sa, la), brier_quality(sb, lb)
    ma, mb = qa.mean(axis=1), qb.mean(axis=1)  # [runs, layers]
    runs = sa.shape[0]
    if folds_a is None:
        spread_a = spread_b = np.full(runs, float(inflation))
    else:
        spread_a = fold_inflation(qa, *_fold_ids(folds_a, la.size, "folds_a"))
        spread_b = fold_inflation(qb, *_fold_ids(folds_b, lb.size, "folds_b"))
    out = {"k": k, "depth": depth, "mean_a": ma, "mean_b": mb, "layers": numbers, "spread_a": spread_a,
           "spread_b": spread_b, "folds_given": folds_a is not None}
    first_a, last_a = _tie_range(ma)
    first_b, last_b = _tie_range(mb)
    out.update(first_a=numbers[first_a], last_a=numbers[last_a], first_b=numbers[first_b], last_b=numbers[last_b])
    wa = _bootstrap_weights(la, resamples, np.random.default_rng([seed, 0]))
    wb = _bootstrap_weights(lb, resamples, np.random.default_rng([seed, 1]))
    boot_a = ma[:, None, :] + spread_a[:, None, None] * (_resampled_means(wa, qa) - ma[:, None, :])
    boot_b = mb[:, None, :] + spread_b[:, None, None] * (_resampled_means(wb, qb) - mb[:, None, :])
    fa, ea = _tie_range(boot_a)
    fb, eb = _tie_range(boot_b)
    low_d = numbers[fa] - numbers[eb]  # [runs, resamples]: the smallest distance a resample allows
    high_d = numbers[ea] - numbers[fb]
    tail = (1 - level) / 2
    low = np.quantile(low_d, tail, axis=1, method="inverted_cdf")
    high = np.quantile(high_d, 1 - tail, axis=1, method="inverted_cdf")
    out.update(low=low, high=high)
    out["code"] = np.where((low >= -k) & (high <= k), 1, np.where((low > k) | (high < -k), -1, 0))
    return out


def _shared_codes(scores_a: Any, labels_a: Any, scores_b: Any, labels_b: Any, layers: Any = None,
                  folds_a: Any = None, folds_b: Any = None, tolerance: float | int = SHARED_TOLERANCE,
                  inflation: float | int = SHARED_INFLATION, level: float | int = SHARED_LEVEL,
                  resamples: int = SHARED_RESAMPLES, seed: int = 0) -> np.ndarray:
    return _shared_core(scores_a, labels_a, scores_b, labels_b, layers, folds_a, folds_b, tolerance, inflation, level,
                        resamples, seed)["code"]


def _shared_layer(scores_a: Any, labels_a: Any, scores_b: Any, labels_b: Any, layers: Any = None,
                  folds_a: Any = None, folds_b: Any = None, *, tolerance: float | int = SHARED_TOLERANCE,
                  inflation: float | int = SHARED_INFLATION, level: float | int = SHARED_LEVEL,
                  resamples: int = SHARED_RESAMPLES, seed: int = 0) -> Decision:
    """``scores_a [examples, layers]``: each example's held-out probe decision value (log-odds of the
    persona class) for "A vs baseline", from cross-validation; ``labels_a [examples]``: 1 persona A,
    0 baseline; ``scores_b``, ``labels_b`` likewise for "B vs baseline"; ``layers``: the layer numbers
    of the columns (default 0, 1, …); ``folds_a``, ``folds_b`` (optional, ``[examples]``): the
    cross-validation fold that held each example out."""
    sa, sb = (np.asarray(v, dtype=float) for v in (scores_a, scores_b))
    if sa.ndim != 2 or sb.ndim != 2:
        raise ValueError(f"scores_a and scores_b must be [examples, layers]; got shapes {sa.shape} and {sb.shape}")
    out = _shared_core(sa[None], labels_a, sb[None], labels_b, layers, folds_a, folds_b, tolerance, inflation, level,
                       resamples, seed)
    code, k, depth = int(out["code"][0]), int(out["k"]), int(out["depth"])
    low, high = int(out["low"][0]), int(out["high"][0])
    first_a, last_a, first_b, last_b = (int(out[key][0]) for key in ("first_a", "last_a", "first_b", "last_b"))
    layers_out = [int(v) for v in out["layers"]]

    def peak(first: int, last: int) -> str:
        return f"layer {first}" if first == last else f"layers {first}-{last} (tied)"

    distance = (first_a - first_b) if (first_a == last_a and first_b == last_b) else None
    spreads = [float(out["spread_a"][0]), float(out["spread_b"][0])]
    source = ("estimated per profile from the per-fold scores (random-effects ANOVA over folds)" if out["folds_given"]
              else f"fixed {inflation:g}× (no folds given)")
    numbers = {
        "verdict": VERDICTS[code], "peak_a": first_a, "peak_a_tied_to": last_a, "peak_b": first_b,
        "peak_b_tied_to": last_b, "distance": distance, "interval": [low, high], "interval_level": level,
        "interval_width": high - low, "k": k, "depth": depth, "tolerance": tolerance,
        "spread": {"a": spreads[0], "b": spreads[1], "source": source}, "inflation": inflation,
        "resamples": resamples, "seed": seed, "layers": layers_out,
        "quality": "held-out negative Brier score −(1 − p_true)² per example, mean per layer",
        "mean_quality_a": [float(v) for v in out["mean_a"][0]], "mean_quality_b": [float(v) for v in out["mean_b"][0]],
    }
    where = (f"A vs baseline peaks at {peak(first_a, last_a)}, B vs baseline at {peak(first_b, last_b)} (held-out "
             f"Brier score); the distance peak_A − peak_B lies in [{low:+d}, {high:+d}] layers (90 %, bootstrap over "
             f"examples, resampled means spread {spreads[0]:.2f}x and {spreads[1]:.2f}x for the training folds' own "
             f"variation, {source}); the same layer means within ±{k} of {depth} layers ({tolerance:.0%} of the depth)")
    if code == 1:
        reason = f"the peaks are within ±{k} layers: {where}"
    elif code == -1:
        reason = f"the peaks are more than {k} layers apart: {where}"
    elif high - low > 4 * k:
        reason = (f"the profiles are too flat (or saturated, or too variable between training folds) to locate their "
                  f"peaks: {where}")
    else:
        reason = f"the data cannot tell whether the peaks are within ±{k} layers: {where}"
    numbers["reason"] = reason
    return Decision(VERDICTS[code], reason, numbers)


SHARED_LAYER = register(Rule(
    id="collision.shared_layer", claim=SHARED_CLAIM, text=SHARED_TEXT,
    inputs={"scores_a": "[examples, layers] held-out probe decision value (log-odds of the persona class, finite) of "
                        "each example of 'A vs baseline' at each layer, from cross-validation "
                        "(LayerProfile.heldout_scores); at least 10 examples per class",
            "labels_a": "[examples] 1 for a persona-A passage, 0 for a baseline passage",
            "scores_b": "[examples, layers] the same for 'B vs baseline'",
            "labels_b": "[examples] 1 for a persona-B passage, 0 for a baseline passage",
            "layers": "optional [layers] the layer number of each column (distinct increasing integers spanning at "
                      "least 10 layers; default 0, 1, ...)",
            "folds_a": "optional [examples] the cross-validation fold (an integer) that held each example of 'A vs "
                       "baseline' out; with folds_b the spread of the resampled means is estimated from the folds "
                       "instead of the fixed 1.5× (the study passes them)",
            "folds_b": "optional [examples] the same for 'B vs baseline'"},
    decide_one=_shared_layer, codes=_shared_codes,
    profiles={"quick": {"per_class": 48, "folds": 3, "layers": 30}, "full": {"per_class": 120, "folds": 5, "layers": 30}},
    dgps=SHARED_DGPS, detectable=None, cost=8.0,
    notes=SHARED_NOTES.format(**SHARED_WIDTHS, min_class=SHARED_MIN_PER_CLASS, min_depth=SHARED_MIN_DEPTH),
))
