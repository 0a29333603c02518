"""A probe that reads a concept from text: :class:`ProbeReadout`, fitted on the unsteered model's
activations of two labelled corpora and applied to a completion's activations, so it reads what the
model itself represents rather than surface words (the ``probe_valence`` and ``probe_log_odds``
scores of :func:`interp_steer.metrics.score_generations`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp_steer.activations import collect_activations
from interp_steer.data import reject_bare_string
from interp_steer.models import Model


@dataclass(frozen=True, eq=False)
class ProbeReadout:
    """A logistic probe on the unsteered model's residual stream that reads a concept from text.

    Fit it on two labelled corpora (:meth:`fit`); :meth:`score` gives, per text, the probability of
    the positive class, from the mean residual over the text's tokens at ``layer``.

    ``train_accuracy`` is measured on the texts it was fitted on (optimistic: with more dimensions
    than texts it is often 1.0). With ``folds``, ``heldout_accuracy`` is this probe's own
    cross-validated accuracy: the same features, the same pipeline, refitted on each training fold
    of a stratified k-fold split (shuffled with ``seed``) and scored on the held-out fold;
    ``heldout_accuracy_std`` is the spread over folds. It is measured on the fitting corpora, not on
    the texts the readout is later applied to.
    """

    layer: int
    pipeline: Any
    positive_label: str
    negative_label: str
    train_accuracy: float
    heldout_accuracy: float = float("nan")
    heldout_accuracy_std: float = float("nan")
    folds: int = 0

    @classmethod
    def fit(
        cls,
        model: Model,
        positive: Sequence[str],
        negative: Sequence[str],
        *,
        layer: int,
        labels: tuple[str, str] = ("positive", "negative"),
        C: float = 1.0,
        folds: int | None = None,
        seed: int = 0,
    ) -> ProbeReadout:
        acts = collect_activations(model, list(positive) + list(negative), layers=[layer], position="mean")
        pos, neg = acts.split(len(positive), len(negative))
        return cls.from_activations(pos.values[:, 0], neg.values[:, 0], layer=layer, labels=labels, C=C,
                                    folds=folds, seed=seed)

    @classmethod
    def from_activations(
        cls,
        positive: Float[Tensor, "n d_model"] | np.ndarray,
        negative: Float[Tensor, "m d_model"] | np.ndarray,
        *,
        layer: int,
        labels: tuple[str, str] = ("positive", "negative"),
        C: float = 1.0,
        folds: int | None = None,
        seed: int = 0,
    ) -> ProbeReadout:
        """Fit on already collected mean-over-tokens activations at ``layer`` (what :meth:`score`
        reads), e.g. those a study collected for its vectors. ``folds`` (>= 2) also measures the
        probe's own held-out accuracy by stratified k-fold cross-validation, shuffled with ``seed``:
        the folds :func:`interp_steer.probes.probe_layers` uses for the same labels and seed."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.concatenate([np.asarray(torch.as_tensor(v).double()) for v in (positive, negative)])
        y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        heldout, spread = float("nan"), float("nan")
        if folds is not None:
            if folds < 2 or folds > min(len(positive), len(negative)):
                raise ValueError(f"folds must be between 2 and the smaller class size "
                                 f"({min(len(positive), len(negative))}), got {folds}")
            splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            per_fold = cross_val_score(pipeline, x, y, cv=splits, scoring="accuracy")
            heldout, spread = float(per_fold.mean()), float(per_fold.std(ddof=1))
        pipeline.fit(x, y)
        return cls(layer, pipeline, labels[0], labels[1], float(pipeline.score(x, y)), heldout, spread,
                   folds or 0)

    def log_odds(self, model: Model, texts: Sequence[str], *, progress: bool | None = False) -> np.ndarray:
        """The probe's decision function for each text: the log-odds of the positive class, an
        unbounded score (NaN for empty texts). Averages and ratios of it do not saturate the way
        probabilities do near 0 and 1, so dominance and other curve shapes are read on it.
        ``progress``: a progress bar over the texts (``None``: for more than 64)."""
        reject_bare_string(texts, "texts")
        out = np.full(len(texts), np.nan)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        if keep:
            acts = collect_activations(model, [texts[i] for i in keep], layers=[self.layer], position="mean",
                                       progress=progress)
            out[keep] = self.pipeline.decision_function(acts.values[:, 0].double().numpy())
        return out

    decision = log_odds

    def score(self, model: Model, texts: Sequence[str], *, progress: bool | None = False) -> np.ndarray:
        """Probability of the positive class for each text (NaN for empty texts): the logistic of
        :meth:`log_odds`."""
        reject_bare_string(texts, "texts")
        return _expit(self.log_odds(model, texts, progress=progress))


def _expit(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(x)


__all__ = ["ProbeReadout"]
