"""Surface style of a completion relative to the two persona corpora.

A bag-of-words classifier (TF-IDF over word unigrams and bigrams, sublinear term frequency, then a
logistic regression) is trained to tell persona A's passages from persona B's; applied to a
completion it gives P(A's style). Its cross-validated accuracy on the corpora is kept with it, so a
reader can see how much a style score can mean. Words carry sentiment as well as style, so this axis
overlaps moral valence by construction; the raw style features (:func:`interp_steer.metrics.style_features`)
sit beside it in the study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp_steer.data import reject_bare_strings


@dataclass(frozen=True, eq=False)
class StyleClassifier:
    """P(persona A's style) for texts; ``cv_accuracy`` is its held-out accuracy on the corpora."""

    pipeline: Any
    cv_accuracy: float
    cv_accuracy_std: float
    folds: int

    @classmethod
    def fit(cls, persona_a: Sequence[str], persona_b: Sequence[str], *, folds: int = 5, seed: int = 0) -> StyleClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.pipeline import make_pipeline

        texts = list(persona_a) + list(persona_b)
        labels = np.r_[np.ones(len(persona_a)), np.zeros(len(persona_b))]
        smaller = min(len(persona_a), len(persona_b))
        if smaller < 2:
            raise ValueError("the style classifier needs at least 2 passages per persona")
        folds = min(folds, smaller)

        def pipeline():
            return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                                 LogisticRegression(C=10.0, max_iter=2000))

        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        scores = cross_val_score(pipeline(), texts, labels, cv=splitter)
        fitted = pipeline().fit(texts, labels)
        return cls(fitted, float(scores.mean()), float(scores.std(ddof=1)) if folds > 1 else 0.0, folds)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """P(A's style) per text; NaN for texts without a word."""
        reject_bare_strings(texts=texts)
        out = np.full(len(texts), np.nan)
        keep = [i for i, t in enumerate(texts) if any(ch.isalnum() for ch in t)]
        if keep:
            out[keep] = self.pipeline.predict_proba([texts[i] for i in keep])[:, 1]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "tf-idf word 1-2 grams + logistic regression", "cv_accuracy": self.cv_accuracy,
                "cv_accuracy_std": self.cv_accuracy_std, "folds": self.folds}


__all__ = ["StyleClassifier"]
