"""How many words VADER scored in each text: the ``N`` of the dominance rule's intensive scale.

VADER's raw valence sum (the compound's inverse) is a sum over a text's sentiment words, so it grows
with their number as much as with their tone. Two personas that write different numbers of sentiment
words (one persona's passages three times as long as the other's) make the raw sum of a mix bend
even when its tone per word is exactly linear in the mix; ``collision.dominance`` therefore also
reads the valence per sentiment word ``s / N`` and needs it to agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from interp_steer.data import reject_bare_strings


@lru_cache(maxsize=1)
def _counter() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    class _Counting(SentimentIntensityAnalyzer):
        """VADER itself, noting how many of a text's words carry a non-zero valence at the point where
        it sums them (after its booster, negation and "but" rules)."""

        last = 0

        def score_valence(self, sentiments, text):  # noqa: ANN001, ANN202 (VADER's own signature)
            self.last = sum(1 for value in sentiments if value != 0)
            return super().score_valence(sentiments, text)

    return _Counting()


def vader_word_counts(texts: Sequence[str]) -> np.ndarray:
    """Per text, the number of words VADER's lexicon scored (the non-zero entries of the valences
    it sums into the compound); 0 for a text with no sentiment word, whose compound is exactly 0."""
    reject_bare_strings(texts=texts)
    analyzer = _counter()
    counts = []
    for text in texts:
        analyzer.polarity_scores(text)
        counts.append(analyzer.last)
    return np.asarray(counts, dtype=float)


__all__ = ["vader_word_counts"]
