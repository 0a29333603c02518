"""Per-layer linear probes with honest cross-validation, and layer localisation.

Question: *at which layer is a concept linearly readable from the residual stream?* The answer here
is a :class:`LayerProfile`: for every layer, how well a logistic-regression probe separates
positive from negative examples **on data it was not trained on**, plus the best layer, the band
of layers that are statistically as good as the best, and an honest accuracy for "the best layer".

Why each piece is there:

- **Stratified k-fold cross-validation.** A probe's training accuracy in a 576-dimensional residual
  stream with a few hundred texts is meaningless: with more dimensions than samples, any labelling,
  even a random one, is linearly separable. Every number reported per layer is measured on
  held-out folds; stratification keeps the class ratio equal in every fold. The same folds are
  used at every layer, so layers can be compared fold by fold (paired).
- **The band.** Per-layer accuracies are noisy and neighbouring layers often differ by less than
  that noise, so "the best layer" is a point estimate, not a fact. A layer ``L`` is in the band when
  the mean over folds of ``acc[fold, best] - acc[fold, L]`` is within the 95 % paired-t margin
  ``t(0.975, k-1) * sd / sqrt(k)``: ``L`` is not detectably worse than the best. Read the band as
  "the concept is about equally readable anywhere here". Folds share training data, so the
  differences are not independent and the margin is, if anything, too narrow (Nadeau & Bengio,
  2003): a layer outside the band is not proof of a real difference, but a layer inside it
  certainly is not shown to be worse.
- **Nested cross-validation for the selected layer.** The accuracy *at* the best layer is biased
  upwards: picking the maximum of 30 noisy estimates selects the luckiest one (with random labels
  the max of 30 fold-averaged accuracies sits well above 0.5). ``heldout_accuracy`` repeats the
  whole procedure, layer choice included, inside each outer training set and scores the chosen
  layer on the outer test fold, which took no part in choosing it. It is the honest answer to
  "if I pick a layer this way, how well will a probe there do on new data?"; with random labels it
  is about 0.5, as it should be.
- **Separability along the mean difference.** Steering usually uses the plain mean-difference
  (CAA) direction, not the probe's weights. ``separability`` is the held-out AUROC of the
  projection onto the training folds' ``mean(pos) - mean(neg)``: high when the concept lives along
  that one direction, lower than the probe's AUROC when the probe needs a rotated or rescaled
  direction to read it.

:func:`locate` puts several concepts' profiles side by side (a shared layer where all are strong,
and whether their best layers are distinguishable at all); :func:`sample_size_curve` shows how many
examples a mean-difference direction and a probe need before they stop changing.

All work is on arrays ``[n, n_layers, d_model]`` (numpy, torch or an :class:`Activations`), never
on a model, and the results are frozen dataclasses with ``to_dict()`` for JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np
from jaxtyping import Float, Int
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import Tensor

from interp_steer.activations import Activations

ActivationStack = np.ndarray | Tensor | Activations
"""Activations of one class, ``[n, n_layers, d_model]``: a numpy array, a tensor or an
:class:`Activations` (whose ``layers`` then name the layers)."""


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
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "heldout_scores"}
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


@dataclass(frozen=True)
class Localisation:
    """Several concepts' layer profiles side by side (all computed on the same layers).

    With two or more concepts, ``shared_layer`` is the layer where the *weakest* concept's mean CV
    accuracy is highest (all jointly readable; ties, e.g. all at 1.0, go to the layer where the
    weakest held-out log-likelihood is highest), and ``best_layers_indistinguishable`` says whether
    every concept's best layer lies in every other concept's band. Both are ``None`` for one
    concept.
    """

    profiles: Mapping[str, LayerProfile]
    shared_layer: int | None
    best_layers_indistinguishable: bool | None

    @property
    def layers(self) -> tuple[int, ...]:
        return next(iter(self.profiles.values())).layers

    def __repr__(self) -> str:
        from interp_steer.display import one_line

        return one_line("Localisation", concepts={n: p.best_layer for n, p in self.profiles.items()},
                        shared_layer=self.shared_layer,
                        best_layers_indistinguishable=self.best_layers_indistinguishable)

    def _repr_html_(self) -> str:
        from interp_steer.display import localisation_html

        return localisation_html(self)

    def to_dict(self) -> dict[str, Any]:
        """``{"concepts": {name: profile.to_dict()}, "shared_layer", "best_layers_indistinguishable"}``."""
        return {
            "concepts": {name: profile.to_dict() for name, profile in self.profiles.items()},
            "shared_layer": self.shared_layer,
            "best_layers_indistinguishable": self.best_layers_indistinguishable,
        }

    def to_frame(self):
        """Every concept's profile rows (concept, layer, metric) stacked (:mod:`interp_steer.frames`)."""
        from interp_steer.frames import localisation_frame

        return localisation_frame(self)


@dataclass(frozen=True)
class SampleSizeCurve:
    """How the mean-difference direction and a probe settle as the number of examples grows.

    For each ``sizes[i]`` (examples *per class*), ``cosine[i]`` holds, per repeat, the cosine
    between the direction from that many examples and the direction from all of them, and
    ``accuracy[i]`` the accuracy of a probe trained on those examples on every example not drawn.
    ``skipped_sizes`` are the requested sizes that left no held-out example of the smaller class.
    """

    layer_index: int
    layer: int
    sizes: tuple[int, ...]
    skipped_sizes: tuple[int, ...]
    repeats: int
    seed: int
    C: float
    n_positive: int
    n_negative: int
    cosine_mean: tuple[float, ...]
    cosine_std: tuple[float, ...]
    accuracy_mean: tuple[float, ...]
    accuracy_std: tuple[float, ...]
    cosine: tuple[tuple[float, ...], ...]
    accuracy: tuple[tuple[float, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """Every field, as JSON-ready plain Python types."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


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
    folds = _check_folds(folds)
    seed = _check_seed(seed)
    C = _check_C(C)
    x, y, layer_tuple = _stack_classes(positive, negative, layers)
    n_positive, n_negative = int((y == 1).sum()), int((y == 0).sum())
    _check_class_sizes(n_positive, n_negative, folds)

    # Small problems: BLAS threads cost more in hand-offs than they save (lbfgs on a 200 x 600
    # problem runs ~6x faster on one thread), so limit them for this call only.
    with threadpool_limits(limits=1, user_api="blas"):
        outer = _splits(y, folds, seed)
        # scores[fold, layer] = (accuracy, auroc, separability); the same folds at every layer,
        # so layers can be compared fold by fold. heldout[example, layer]: each example's decision value
        # from the fold that held it out.
        per_layer = [_layer_cv(x[i], y, outer, C) for i in range(len(layer_tuple))]
        scores = np.stack([fold_scores for fold_scores, _ in per_layer], axis=1)
        heldout_scores = np.stack([example_scores for _, example_scores in per_layer], axis=1)
        fold_accuracy = scores[..., 0]
        best = _pick(fold_accuracy.mean(axis=0), scores[..., 3].mean(axis=0))
        in_band = _band(fold_accuracy, best)
        heldout, picks = _nested_heldout(x, y, outer, folds, seed, C, fold_accuracy)

    return LayerProfile(
        concept=str(concept),
        layers=layer_tuple,
        accuracy=_floats(scores[..., 0].mean(axis=0)),
        accuracy_std=_floats(_std(scores[..., 0])),
        auroc=_floats(scores[..., 1].mean(axis=0)),
        auroc_std=_floats(_std(scores[..., 1])),
        separability=_floats(scores[..., 2].mean(axis=0)),
        log_likelihood=_floats(scores[..., 3].mean(axis=0)),
        best_layer=layer_tuple[best],
        band=tuple(layer for layer, inside in zip(layer_tuple, in_band, strict=True) if inside),
        heldout_accuracy=float(heldout.mean()),
        heldout_accuracy_std=float(_std(heldout[:, None])[0]),
        heldout_layers=tuple(layer_tuple[i] for i in picks),
        folds=folds,
        seed=seed,
        C=C,
        n_positive=n_positive,
        n_negative=n_negative,
        heldout_scores=heldout_scores,
    )


def locate(profiles: Mapping[str, LayerProfile]) -> Localisation:
    """Compare concepts' layer profiles: a layer where all are strong, and whether they peak apart.

    ``profiles`` maps a concept name to its :func:`probe_layers` result; all must cover the same
    layers. ``shared_layer`` maximises the minimum over concepts of mean CV accuracy (ties go to the
    highest minimum log-likelihood, then the earlier layer). ``best_layers_indistinguishable`` is
    True when each concept's best layer is in every other concept's band, i.e. the data cannot tell
    their peaks apart. Both are ``None`` for a single concept.
    """
    if not isinstance(profiles, Mapping) or not profiles:
        raise ValueError(
            "profiles is empty: pass {concept_name: probe_layers(...)} for 1+ concepts"
        )
    for name, profile in profiles.items():
        if not isinstance(profile, LayerProfile):
            raise TypeError(
                f"profiles[{name!r}] is {type(profile).__name__}, expected LayerProfile"
            )
    names = list(profiles)
    layers = profiles[names[0]].layers
    for name in names[1:]:
        if profiles[name].layers != layers:
            raise ValueError(
                f"profiles cover different layers: {names[0]!r} has {list(layers)}, {name!r} has "
                f"{list(profiles[name].layers)}; compute them on the same layers"
            )
    frozen = MappingProxyType(dict(profiles))
    if len(names) == 1:
        return Localisation(profiles=frozen, shared_layer=None, best_layers_indistinguishable=None)

    accuracy = np.array([profiles[name].accuracy for name in names])  # [concepts, layers]
    loglik = np.array([profiles[name].log_likelihood for name in names])
    shared = layers[_pick(accuracy.min(axis=0), loglik.min(axis=0))]
    indistinguishable = all(
        profiles[a].best_layer in profiles[b].band for a in names for b in names if a != b
    )
    return Localisation(
        profiles=frozen, shared_layer=shared, best_layers_indistinguishable=indistinguishable
    )


def sample_size_curve(
    positive: ActivationStack,
    negative: ActivationStack,
    *,
    layer_index: int,
    sizes: Sequence[int] = (5, 10, 20, 40, 80, 160),
    repeats: int = 10,
    seed: int = 0,
    C: float = 1.0,
) -> SampleSizeCurve:
    """How many examples per class a direction and a probe need, at one layer.

    ``layer_index`` is a position along the layers axis (``0 .. n_layers-1``), not a layer number;
    the result records both. For each ``n`` in ``sizes`` smaller than the smaller class (larger ones
    are skipped and listed in ``skipped_sizes``), ``repeats`` times: draw ``n`` positives and ``n``
    negatives without replacement, take the cosine between their mean difference and the mean
    difference of all the data, and train a probe on them that is scored on every example not
    drawn. A cosine near 1 means more data would barely move the direction. Deterministic given
    ``seed``.
    """
    layer_index = _check_int(layer_index, "layer_index", minimum=0)
    repeats = _check_int(repeats, "repeats", minimum=1)
    seed = _check_seed(seed)
    C = _check_C(C)
    if isinstance(sizes, str) or not sizes:
        raise ValueError(
            f"sizes={sizes!r}: give one or more sample sizes per class, e.g. (5, 10, 20)"
        )
    sizes = [_check_int(n, "each size", minimum=1) for n in sizes]
    x, y, layer_tuple = _stack_classes(positive, negative, None)
    if layer_index >= len(layer_tuple):
        raise ValueError(
            f"layer_index={layer_index} is out of range: the activations have {len(layer_tuple)} "
            f"layers (indices 0..{len(layer_tuple) - 1}, layers {list(layer_tuple)})"
        )
    pos, neg = x[layer_index][y == 1], x[layer_index][y == 0]
    full = pos.mean(axis=0) - neg.mean(axis=0)
    full_norm = float(np.linalg.norm(full))
    if full_norm == 0.0:
        raise ValueError(
            f"positive and negative have identical means at layer index {layer_index}: the "
            "mean-difference direction is zero, so there is nothing to converge to"
        )

    limit = min(len(pos), len(neg))
    kept = [n for n in sizes if n < limit]
    skipped = [n for n in sizes if n >= limit]
    if not kept:
        raise ValueError(
            f"every size in {sizes} needs at least as many examples as the smaller class has "
            f"({limit}), leaving none held out; use sizes below {limit}"
        )
    rng = np.random.default_rng(seed)
    cosine = np.zeros((len(kept), repeats))
    accuracy = np.zeros((len(kept), repeats))
    with threadpool_limits(limits=1, user_api="blas"):  # see probe_layers
        for i, n in enumerate(kept):
            for r in range(repeats):
                drawn_pos = np.zeros(len(pos), dtype=bool)
                drawn_neg = np.zeros(len(neg), dtype=bool)
                drawn_pos[rng.choice(len(pos), n, replace=False)] = True
                drawn_neg[rng.choice(len(neg), n, replace=False)] = True
                diff = pos[drawn_pos].mean(axis=0) - neg[drawn_neg].mean(axis=0)
                norm = float(np.linalg.norm(diff))
                # A zero subsample direction carries no information about the full one.
                cosine[i, r] = float(diff @ full) / (norm * full_norm) if norm > 0 else 0.0
                accuracy[i, r] = _heldout_probe_accuracy(pos, neg, drawn_pos, drawn_neg, C)

    return SampleSizeCurve(
        layer_index=layer_index,
        layer=layer_tuple[layer_index],
        sizes=tuple(kept),
        skipped_sizes=tuple(skipped),
        repeats=repeats,
        seed=seed,
        C=C,
        n_positive=len(pos),
        n_negative=len(neg),
        cosine_mean=_floats(cosine.mean(axis=1)),
        cosine_std=_floats(_std(cosine.T)),
        accuracy_mean=_floats(accuracy.mean(axis=1)),
        accuracy_std=_floats(_std(accuracy.T)),
        cosine=tuple(_floats(row) for row in cosine),
        accuracy=tuple(_floats(row) for row in accuracy),
    )


# --------------------------------------------------------------------------------------------
# Cross-validation machinery


def localise(
    model: Any,
    concepts: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    *,
    layers: Any = None,
    position: str | int = "last",
    folds: int = 5,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool | None = None,
    units: Any = None,
    backend: Any = None,
    fresh: bool = False,
) -> Localisation:
    """Collect activations for each concept's ``(positive_texts, negative_texts)`` on ``model`` and
    :func:`locate` them: per-concept layer profiles, and the shared layer for two or more.

    Each concept is a work unit (:mod:`interp_steer.units`): ``units=DIR`` keeps finished ones so
    that a re-run skips them (``fresh=True`` discards them); ``backend`` says where they run."""
    from interp_steer.units import Unit, open_store, own_backend, run_key, run_units, text_hash

    if not concepts:
        raise ValueError("concepts is empty: pass {name: (positive_texts, negative_texts)}")
    settings = {"layers": layers if layers is None or isinstance(layers, str) else list(model.resolve_layers(layers)),
                "position": position, "folds": folds, "seed": seed, "batch_size": batch_size}
    items = [{"name": name, "positive": list(positive), "negative": list(negative)}
             for name, (positive, negative) in concepts.items()]
    data = {item["name"]: [text_hash(item["positive"]), text_hash(item["negative"])] for item in items}
    store = open_store(units, run_key(model, settings, data), fresh=fresh)
    with own_backend(backend, model) as runner:
        results = run_units(_concept_unit, [Unit(f"concept-{i:03d}", {"name": item["name"], "texts": data[item["name"]]},
                                                 item=item) for i, item in enumerate(items)],
                            model=model, shared=settings, store=store, backend=runner, progress=progress,
                            label="concepts")
    return locate({item["name"]: LayerProfile.from_dict(result) for item, result in zip(items, results, strict=True)})


def _concept_unit(model: Any, settings: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    """One work unit of :func:`localise`: a concept's activations and layer profile."""
    from interp_steer.activations import collect_activations

    positive, negative = item["positive"], item["negative"]
    acts = collect_activations(model, positive + negative, layers=settings["layers"], position=settings["position"],
                               batch_size=settings["batch_size"], progress=False)
    pos, neg = acts.split(len(positive), len(negative))
    profile = probe_layers(pos, neg, folds=settings["folds"], seed=settings["seed"], concept=item["name"])
    return profile.to_dict()


def plot_localisation(localisation: Localisation, *, title: str | None = None, ax: Any = None) -> Any:
    """Held-out accuracy per layer for each concept (band: ±1 std over folds; dashed: best layer;
    black: the shared layer). Returns the ``Axes``."""
    from interp_steer.plotting import plot_layer_profile

    for name, profile in localisation.profiles.items():
        mean, std = np.array(profile.accuracy), np.array(profile.accuracy_std)
        ax = plot_layer_profile(profile.layers, mean, band=(mean - std, mean + std),
                                mark=profile.best_layer, label=f"{name} (best {profile.best_layer})",
                                ylabel="held-out probe accuracy", title=title, ax=ax)
    if localisation.shared_layer is not None:
        ax.axvline(localisation.shared_layer, color="black", linewidth=1.2,
                   label=f"shared layer {localisation.shared_layer}")
        ax.legend(frameon=False, fontsize=8)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    return ax


def _probe(C: float) -> Pipeline:
    # Scaling inside the pipeline means the scaler, like the probe, only ever sees training rows.
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(C=C, solver="lbfgs", max_iter=1000)),
        ]
    )


def _splits(y: Int[np.ndarray, " n"], folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
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
        probe = _probe(C).fit(x[train], y[train])
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


def _pick(accuracy: np.ndarray, log_likelihood: np.ndarray) -> int:
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
            probe = _probe(C).fit(x[layer][train], y[train])
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
        inner = _splits(y_train, inner_folds, seed + 1 + o)
        x_train = x[:, train]
        inner_accuracy, inner_loglik = _cv_accuracy(x_train, y_train, inner, C)
        pick = _pick(inner_accuracy.mean(axis=0), inner_loglik.mean(axis=0))
        probe = _probe(C).fit(x_train[pick], y_train)
        accuracy[o] = np.mean((probe.decision_function(x[pick][test]) > 0) == (y[test] == 1))
        picks.append(pick)
    return accuracy, picks


def _heldout_probe_accuracy(
    pos: Float[np.ndarray, "n_pos d"],
    neg: Float[np.ndarray, "n_neg d"],
    drawn_pos: np.ndarray,
    drawn_neg: np.ndarray,
    C: float,
) -> float:
    """Fit a probe on the drawn rows of both classes; accuracy on all rows not drawn."""
    x_train = np.concatenate([pos[drawn_pos], neg[drawn_neg]])
    y_train = np.r_[np.ones(int(drawn_pos.sum()), int), np.zeros(int(drawn_neg.sum()), int)]
    x_test = np.concatenate([pos[~drawn_pos], neg[~drawn_neg]])
    y_test = np.r_[np.ones(int((~drawn_pos).sum()), int), np.zeros(int((~drawn_neg).sum()), int)]
    probe = _probe(C).fit(x_train, y_train)
    return float(np.mean((probe.decision_function(x_test) > 0) == (y_test == 1)))


# --------------------------------------------------------------------------------------------
# Input checking and conversion


def _stack_classes(
    positive: ActivationStack, negative: ActivationStack, layers: Sequence[int] | None
) -> tuple[Float[np.ndarray, "layers n d"], Int[np.ndarray, " n"], tuple[int, ...]]:
    """Both classes as one layer-major float64 array (a contiguous [n, d] block per layer) + labels."""
    pos, pos_layers = _as_stack(positive, "positive")
    neg, neg_layers = _as_stack(negative, "negative")
    if pos.shape[1:] != neg.shape[1:]:
        raise ValueError(
            f"positive is [n, n_layers, d_model] = {list(pos.shape)} but negative is "
            f"{list(neg.shape)}: both need the same layers and d_model (collect them with the same "
            "model and layers=)"
        )
    if pos_layers is not None and neg_layers is not None and pos_layers != neg_layers:
        raise ValueError(
            f"positive was collected at layers {list(pos_layers)} but negative at "
            f"{list(neg_layers)}; collect both at the same layers"
        )
    own = pos_layers if pos_layers is not None else neg_layers
    n_layers = pos.shape[1]
    if layers is None:
        layer_tuple = own if own is not None else tuple(range(n_layers))
    else:
        if isinstance(layers, str):
            raise ValueError(f"layers={layers!r}: give a sequence of layer numbers, e.g. range(6)")
        layer_tuple = tuple(_check_int(layer, "each layer", minimum=0) for layer in layers)
        if len(layer_tuple) != n_layers:
            raise ValueError(
                f"layers has {len(layer_tuple)} entries but the activations have {n_layers} "
                "layers; give one layer number per slice of axis 1, or leave layers=None"
            )
        if own is not None and layer_tuple != own:
            raise ValueError(
                f"layers={list(layer_tuple)} disagrees with the Activations' own layers "
                f"{list(own)}; leave layers=None to use them"
            )
    if len(set(layer_tuple)) != len(layer_tuple):
        raise ValueError(
            f"layers {list(layer_tuple)} contain duplicates; each layer must be unique"
        )
    x = np.ascontiguousarray(np.concatenate([pos, neg]).transpose(1, 0, 2))
    y = np.r_[np.ones(len(pos), dtype=np.int64), np.zeros(len(neg), dtype=np.int64)]
    return x, y, layer_tuple


def _as_stack(data: ActivationStack, name: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """``data`` as float64 ``[n, n_layers, d_model]`` plus its own layer numbers if it has them."""
    own_layers = None
    if hasattr(data, "values") and hasattr(data, "layers"):  # an Activations, or anything like it
        own_layers = tuple(int(layer) for layer in data.layers)
        data = data.values
    if isinstance(data, Tensor):
        data = data.detach().to("cpu").double().numpy()
    array = np.asarray(data, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(
            f"{name} has shape {list(array.shape)}; expected [n, n_layers, d_model] (for a single "
            "layer's [n, d_model] array, pass x[:, None, :])"
        )
    if array.shape[0] == 0 or array.shape[2] == 0:
        raise ValueError(f"{name} is empty (shape {list(array.shape)}); pass at least one example")
    if own_layers is not None and len(own_layers) != array.shape[1]:
        raise ValueError(f"{name}.layers has {len(own_layers)} entries for {array.shape[1]} layers")
    finite = np.isfinite(array)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=(1, 2))).tolist()
        raise ValueError(
            f"{name} contains {int((~finite).sum())} non-finite values (NaN/inf) in rows "
            f"{bad_rows[:10]}{' ...' if len(bad_rows) > 10 else ''}; drop those rows, or "
            "recollect the activations in float32"
        )
    return array, own_layers


def _check_class_sizes(n_positive: int, n_negative: int, folds: int) -> None:
    for name, n in (("positive", n_positive), ("negative", n_negative)):
        if n < folds:
            fix = f"pass folds={n}" if n >= 3 else "add examples"
            raise ValueError(
                f"{name} has {n} examples but folds={folds} needs at least {folds} per class "
                f"(every test fold must hold one of each class); {fix}"
            )
    # Nested CV runs an inner CV on each outer training set, which needs >= 2 of each class.
    smallest = min(n_positive, n_negative)
    if smallest - math.ceil(smallest / folds) < 2:
        raise ValueError(
            f"the smaller class has {smallest} examples: with folds={folds} an outer training set "
            f"keeps only {smallest - math.ceil(smallest / folds)} of them, too few for the nested "
            "layer-selection CV (needs 2); add examples or use folds >= 3"
        )


def _check_folds(folds: int) -> int:
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ValueError(
            f"folds={folds!r}: cross-validation needs an integer folds >= 2 (5 is usual)"
        )
    return int(folds)


def _check_seed(seed: int) -> int:
    return _check_int(seed, "seed", minimum=0)


def _check_C(C: float) -> float:
    if isinstance(C, bool) or not isinstance(C, int | float | np.number) or not 0 < C < math.inf:
        raise ValueError(f"C={C!r}: the inverse regularisation strength must be a positive number")
    return float(C)


def _check_int(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}={value!r}: expected an integer >= {minimum}")
    return int(value)


# --------------------------------------------------------------------------------------------
# Small numeric helpers


def _std(values: Float[np.ndarray, "samples items"]) -> Float[np.ndarray, " items"]:
    """Sample standard deviation over axis 0 (0 when there is a single sample, never NaN)."""
    if values.shape[0] < 2:
        return np.zeros(values.shape[1])
    return values.std(axis=0, ddof=1)


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _plain(value: Any) -> Any:
    """Tuples, mappings and numpy scalars as the lists, dicts and Python scalars JSON wants."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


__all__ = [
    "localise",
    "plot_localisation",
    "ActivationStack",
    "LayerProfile",
    "Localisation",
    "SampleSizeCurve",
    "locate",
    "probe_layers",
    "sample_size_curve",
]
