"""One concept's held-out probe quality at every layer: :func:`probe_layers` and its
:class:`LayerProfile` (the cross-validation, the band and the nested estimate are explained in
:mod:`interp_steer.probes`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from jaxtyping import Float, Int
from scipy import stats
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from interp_steer.probes._arrays import (
    ActivationStack,
    check_C,
    check_class_sizes,
    check_folds,
    check_seed,
    floats,
    json_ready,
    new_probe,
    stack_classes,
    std_over_samples,
)


@dataclass(frozen=True)
class LayerProfile:
    """Held-out probe quality of one concept at every layer (sequences are indexed like ``layers``).

    ``accuracy``/``auroc``/``separability``/``log_likelihood`` are means over the ``folds``
    cross-validation folds and the ``*_std`` fields their sample standard deviations.
    ``log_likelihood`` is the probe's mean held-out log-probability of the true class (0 is perfect);
    it keeps ranking layers once accuracy saturates at 1.0. ``best_layer`` and ``band`` are layer
    numbers; ``heldout_accuracy`` is the nested-CV accuracy of the layer-selection procedure and
    ``heldout_layers`` the layer it chose in each outer fold (see the module docstring).

    ``heldout_scores`` (``[examples, layers]``, positives first, then negatives, as given) holds each
    example's held-out decision value (the log-odds of the positive class) at every layer, from the
    fold whose probe did not train on it: what an interval for the best layer needs
    (``collision.shared_layer``). It is kept in memory only (``to_dict`` leaves it out; ``None`` after
    ``from_dict``), so the profile's JSON is unchanged.
    """

    concept: str
    layers: tuple[int, ...]
    accuracy: tuple[float, ...]
    accuracy_std: tuple[float, ...]
    auroc: tuple[float, ...]
    auroc_std: tuple[float, ...]
    separability: tuple[float, ...]
    log_likelihood: tuple[float, ...]
    best_layer: int
    band: tuple[int, ...]
    heldout_accuracy: float
    heldout_accuracy_std: float
    heldout_layers: tuple[int, ...]
    folds: int
    seed: int
    C: float
    n_positive: int
    n_negative: int
    heldout_scores: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        per_layer = ("accuracy", "accuracy_std", "auroc", "auroc_std", "separability", "log_likelihood")
        for name in per_layer:
            if len(getattr(self, name)) != len(self.layers):
                raise ValueError(
                    f"{name} has {len(getattr(self, name))} values for {len(self.layers)} layers"
                )
        if self.best_layer not in self.band or not set(self.band) <= set(self.layers):
            raise ValueError(f"band {self.band} must contain best_layer {self.best_layer}")
        if self.heldout_scores is not None and np.shape(self.heldout_scores) != (
                self.n_positive + self.n_negative, len(self.layers)):
            raise ValueError(f"heldout_scores has shape {np.shape(self.heldout_scores)}; expected "
                             f"[{self.n_positive + self.n_negative} examples, {len(self.layers)} layers]")

    @property
    def heldout_labels(self) -> np.ndarray:
        """``[examples]``: 1 for the positives, 0 for the negatives (the rows of ``heldout_scores``)."""
        return np.r_[np.ones(self.n_positive, dtype=int), np.zeros(self.n_negative, dtype=int)]

    @property
    def band_low(self) -> int:
        """The first layer of the band (layers as good as the best)."""
        return min(self.band)

    @property
    def band_high(self) -> int:
        """The last layer of the band (layers as good as the best)."""
        return max(self.band)

    def __repr__(self) -> str:
        from interp_steer.display import layers_text, one_line

        at = self.layers.index(self.best_layer)
        return one_line("LayerProfile", concept=self.concept, layers=layers_text(self.layers), best_layer=self.best_layer,
                        band=f"{self.band_low}-{self.band_high}", accuracy_at_best=round(self.accuracy[at], 3),
                        heldout_accuracy=round(self.heldout_accuracy, 3))

    def _repr_html_(self) -> str:
        from interp_steer.display import profile_html

        return profile_html(self)

    def to_dict(self) -> dict[str, Any]:
        """Every field plus ``band_low``/``band_high``, as JSON-ready plain Python types (without the
        per-example ``heldout_scores``)."""
        out = {f.name: json_ready(getattr(self, f.name)) for f in fields(self) if f.name != "heldout_scores"}
        out["band_low"] = self.band_low
        out["band_high"] = self.band_high
        return out

    def to_frame(self):
        """Tidy rows (concept, layer, metric) with ``value``, ``std`` over folds, band and best layer
        marked (:mod:`interp_steer.frames`)."""
        from interp_steer.frames import profile_frame

        return profile_frame(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerProfile:
        """The inverse of :meth:`to_dict`."""
        values = {}
        for f in fields(cls):
            if f.name == "heldout_scores":
                continue
            value = data[f.name]
            values[f.name] = tuple(value) if isinstance(value, (list, tuple)) else value
        return cls(**values)


def probe_layers(
    positive: ActivationStack,
    negative: ActivationStack,
    *,
    layers: Sequence[int] | None = None,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
    concept: str = "concept",
) -> LayerProfile:
    """Cross-validated logistic-regression probes at every layer, positive vs negative.

    ``positive`` and ``negative`` are ``[n, n_layers, d_model]`` activations of the two classes
    (unpaired; the sizes may differ). ``layers`` names the layers (default: those of an
    :class:`Activations`, else ``0 .. n_layers-1``). Each probe is a ``StandardScaler`` plus an
    L2-regularised logistic regression (inverse strength ``C``), fitted on training folds only.

    Returns per-layer held-out accuracy and AUROC (mean and std over ``folds`` stratified folds),
    the mean-difference ``separability``, the ``best_layer`` (highest mean accuracy; ties go to the
    higher held-out log-likelihood, then the earlier layer), the ``band`` of layers not detectably worse than the best (paired t over
    folds), and the nested-CV ``heldout_accuracy`` of choosing a layer this way. Deterministic
    given ``seed``.
    """
    folds = check_folds(folds)
    seed = check_seed(seed)
    C = check_C(C)
    x, y, layer_tuple = stack_classes(positive, negative, layers)
    n_positive, n_negative = int((y == 1).sum()), int((y == 0).sum())
    check_class_sizes(n_positive, n_negative, folds)

    # Small problems: BLAS threads cost more in hand-offs than they save (lbfgs on a 200 x 600
    # problem runs ~6x faster on one thread), so limit them for this call only.
    with threadpool_limits(limits=1, user_api="blas"):
        outer = fold_splits(y, folds, seed)
        # scores[fold, layer] = (accuracy, auroc, separability); the same folds at every layer,
        # so layers can be compared fold by fold. heldout[example, layer]: each example's decision value
        # from the fold that held it out.
        per_layer = [_layer_cv(x[i], y, outer, C) for i in range(len(layer_tuple))]
        scores = np.stack([fold_scores for fold_scores, _ in per_layer], axis=1)
        heldout_scores = np.stack([example_scores for _, example_scores in per_layer], axis=1)
        fold_accuracy = scores[..., 0]
        best = pick_layer(fold_accuracy.mean(axis=0), scores[..., 3].mean(axis=0))
        in_band = _band(fold_accuracy, best)
        heldout, picks = _nested_heldout(x, y, outer, folds, seed, C, fold_accuracy)

    return LayerProfile(
        concept=str(concept),
        layers=layer_tuple,
        accuracy=floats(scores[..., 0].mean(axis=0)),
        accuracy_std=floats(std_over_samples(scores[..., 0])),
        auroc=floats(scores[..., 1].mean(axis=0)),
        auroc_std=floats(std_over_samples(scores[..., 1])),
        separability=floats(scores[..., 2].mean(axis=0)),
        log_likelihood=floats(scores[..., 3].mean(axis=0)),
        best_layer=layer_tuple[best],
        band=tuple(layer for layer, inside in zip(layer_tuple, in_band, strict=True) if inside),
        heldout_accuracy=float(heldout.mean()),
        heldout_accuracy_std=float(std_over_samples(heldout[:, None])[0]),
        heldout_layers=tuple(layer_tuple[i] for i in picks),
        folds=folds,
        seed=seed,
        C=C,
        n_positive=n_positive,
        n_negative=n_negative,
        heldout_scores=heldout_scores,
    )


# --------------------------------------------------------------------------------------------
# Cross-validation machinery


def fold_splits(y: Int[np.ndarray, " n"], folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (train, test) index pairs; only the labels decide them, so every layer shares them."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(y), 1)), y))


def _layer_cv(
    x: Float[np.ndarray, "n d"],
    y: Int[np.ndarray, " n"],
    splits: list[tuple[np.ndarray, np.ndarray]],
    C: float,
) -> tuple[Float[np.ndarray, "folds 4"], Float[np.ndarray, " n"]]:
    """Per fold at one layer: probe accuracy, probe AUROC, AUROC along the mean difference, and the
    probe's mean held-out log-likelihood of the true class; and per example, its held-out decision
    value (from the fold that held it out)."""
    out = np.zeros((len(splits), 4))
    heldout = np.full(len(y), np.nan)
    for f, (train, test) in enumerate(splits):
        probe = new_probe(C).fit(x[train], y[train])
        score = probe.decision_function(x[test])
        heldout[test] = score
        out[f, 0] = np.mean((score > 0) == (y[test] == 1))
        out[f, 1] = roc_auc_score(y[test], score)
        out[f, 3] = _log_likelihood(score, y[test])
        # The direction comes from the training fold only; not flipped if it points the wrong way.
        direction = x[train][y[train] == 1].mean(axis=0) - x[train][y[train] == 0].mean(axis=0)
        out[f, 2] = roc_auc_score(y[test], x[test] @ direction)
    return out, heldout


def _log_likelihood(score: np.ndarray, y: np.ndarray) -> float:
    """Mean log-probability the probe gives the true class (a logistic score is a log-odds)."""
    signed = np.where(y == 1, score, -score)
    return float(-np.logaddexp(0.0, -signed).mean())


def pick_layer(accuracy: np.ndarray, log_likelihood: np.ndarray) -> int:
    """Index of the best layer: highest accuracy; among equal accuracies (they saturate at 1.0 for
    easy concepts) the highest held-out log-likelihood, which keeps ranking confident probes above
    merely correct ones; then the earlier layer."""
    return int(np.lexsort((-np.round(log_likelihood, 12), -np.round(accuracy, 12)))[0])


def _cv_accuracy(
    x: Float[np.ndarray, "layers n d"],
    y: Int[np.ndarray, " n"],
    splits: list[tuple[np.ndarray, np.ndarray]],
    C: float,
) -> tuple[Float[np.ndarray, "folds layers"], Float[np.ndarray, "folds layers"]]:
    """Held-out probe accuracy and log-likelihood per fold and layer (the inner loop of nested CV)."""
    accuracy = np.zeros((len(splits), x.shape[0]))
    loglik = np.zeros((len(splits), x.shape[0]))
    for layer in range(x.shape[0]):
        for f, (train, test) in enumerate(splits):
            probe = new_probe(C).fit(x[layer][train], y[train])
            score = probe.decision_function(x[layer][test])
            accuracy[f, layer] = np.mean((score > 0) == (y[test] == 1))
            loglik[f, layer] = _log_likelihood(score, y[test])
    return accuracy, loglik


def _band(fold_accuracy: Float[np.ndarray, "folds layers"], best: int) -> np.ndarray:
    """Layers whose paired accuracy deficit to ``best`` is within the 95 % t margin."""
    k = fold_accuracy.shape[0]
    deficit = fold_accuracy[:, [best]] - fold_accuracy  # [folds, layers], >= 0 on average
    margin = stats.t.ppf(0.975, k - 1) * deficit.std(axis=0, ddof=1) / math.sqrt(k)
    # A layer identical to the best in every fold has deficit 0 and sd 0: it is in the band.
    inside = deficit.mean(axis=0) <= margin + 1e-12
    inside[best] = True
    return inside


def _nested_heldout(
    x: Float[np.ndarray, "layers n d"],
    y: Int[np.ndarray, " n"],
    outer: list[tuple[np.ndarray, np.ndarray]],
    folds: int,
    seed: int,
    C: float,
    outer_accuracy: Float[np.ndarray, "folds layers"],
) -> tuple[Float[np.ndarray, " folds"], list[int]]:
    """Accuracy on each outer test fold of the layer chosen by CV on that fold's training rows."""
    if x.shape[0] == 1:
        # Nothing to choose: the nested estimate is the plain CV estimate (same folds, same fits).
        return outer_accuracy[:, 0].copy(), [0] * len(outer)
    accuracy = np.zeros(len(outer))
    picks: list[int] = []
    for o, (train, test) in enumerate(outer):
        y_train = y[train]
        # Outer training sets are smaller than the whole, so cap the inner folds by class size.
        inner_folds = min(folds, int(np.bincount(y_train, minlength=2).min()))
        inner = fold_splits(y_train, inner_folds, seed + 1 + o)
        x_train = x[:, train]
        inner_accuracy, inner_loglik = _cv_accuracy(x_train, y_train, inner, C)
        pick = pick_layer(inner_accuracy.mean(axis=0), inner_loglik.mean(axis=0))
        probe = new_probe(C).fit(x_train[pick], y_train)
        accuracy[o] = np.mean((probe.decision_function(x[pick][test]) > 0) == (y[test] == 1))
        picks.append(pick)
    return accuracy, picks


__all__ = ["LayerProfile", "fold_splits", "pick_layer", "probe_layers"]
