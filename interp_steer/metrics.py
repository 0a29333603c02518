"""Judge-free scores for generated text. Every function scores the completion only, never the prompt.

| score | function | scale | better / more |
| --- | --- | --- | --- |
| perplexity | :func:`~interp_steer.likelihood.completion_perplexity` | ≥ 1 | lower = more fluent, under the *unsteered* model |
| reference perplexity | :func:`~interp_steer.likelihood.sequence_perplexity` | ≥ 1 | the same for token sequences on their own (e.g. corpus passages cut to a completion's length) |
| repetition | :func:`repetition_rate` | 0–1 | higher = more repeated word 3-grams (degenerate loops); exactly 1 − distinct-3 |
| distinct-n | :func:`distinct_n` | 0–1 | higher = more varied wording (NaN for texts shorter than n words) |
| VADER compound | :func:`vader_valence` | −1–1 | higher = more positive sentiment |
| probe valence | :class:`~interp_steer.probes.ProbeReadout` | 0–1 | probability of the readout's positive class (e.g. persona A) |
| probe log-odds | :meth:`~interp_steer.probes.ProbeReadout.log_odds` | unbounded | the same probe's decision function (for curve shapes: it does not saturate) |
| style | :func:`style_features` | various | sentence length, type/token ratio, punctuation, exclamations, readability, length |

This module holds the text metrics and :func:`score_generations`, which gathers every score for a
list of completions; the likelihood scores live in :mod:`interp_steer.likelihood` (token ids under
a model) and the probe readout in :mod:`interp_steer.probes` (a probe on the model's activations).

VADER (vaderSentiment) is a lexicon-and-rules sentiment scorer. Readability is the Flesch reading
ease (higher = easier) with syllables counted from pyphen's English hyphenation dictionary; textstat
computes the same formula but downloads a pronunciation dictionary at run time, which fails offline. The probe readout is a logistic probe fitted on the *unsteered*
model's activations of two labelled corpora and applied to a completion's activations, so it reads
what the model itself represents rather than surface words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from interp_steer.data import reject_bare_string
from interp_steer.generation import Generation
from interp_steer.likelihood import completion_perplexity
from interp_steer.models import Model
from interp_steer.probes.readout import ProbeReadout

_WORD = re.compile(r"[A-Za-z0-9']+")
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, apostrophes)."""
    return [w.lower() for w in _WORD.findall(text)]


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(text: str, n: int = 2) -> float:
    """Distinct word n-grams over all word n-grams: 1.0 when no n-gram repeats. NaN for a text with
    no n-gram at all (fewer than ``n`` words): the fraction does not exist there, and 0 would read
    as "maximally repetitive"."""
    grams = _ngrams(words(text), n)
    return len(set(grams)) / len(grams) if grams else float("nan")


def repetition_rate(text: str, n: int = 3) -> float:
    """Fraction of the text's word n-grams that already occurred earlier in it: exactly
    ``1 − distinct_n(text, n)`` (each n-gram either is a first occurrence, counted by distinct-n, or
    repeats one), so the two can never disagree; NaN for a text with no n-gram."""
    return 1.0 - distinct_n(text, n)


def vader_valence(texts: Sequence[str]) -> np.ndarray:
    """VADER compound sentiment per text, in [-1, 1]."""
    reject_bare_string(texts, "texts")
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(t)["compound"] for t in texts], dtype=float)


@functools.lru_cache(maxsize=1)
def _hyphenator() -> Any:
    import pyphen

    return pyphen.Pyphen(lang="en_US")


def syllables(word: str) -> int:
    """Syllables in a word, from hyphenation points (an approximation; at least 1)."""
    return len(_hyphenator().positions(word)) + 1


def reading_ease(text: str) -> float:
    """Flesch reading ease: 206.835 − 1.015 · words/sentence − 84.6 · syllables/word."""
    tokens = words(text)
    if not tokens:
        return 0.0
    n_sentences = max(len([s for s in _SENTENCE.findall(text) if words(s)]), 1)
    per_word = sum(syllables(w) for w in tokens) / len(tokens)
    return 206.835 - 1.015 * len(tokens) / n_sentences - 84.6 * per_word


def style_features(text: str) -> dict[str, float]:
    """Surface style of one text (all per-text numbers; empty text gives zeros)."""
    tokens = words(text)
    sentences = [s for s in _SENTENCE.findall(text) if words(s)]
    n_words, n_sentences = len(tokens), max(len(sentences), 1)
    punctuation = sum(ch in ",;:.!?-—\"'()" for ch in text)
    return {
        "n_words": float(n_words),
        "mean_sentence_length": n_words / n_sentences if n_words else 0.0,
        "type_token_ratio": len(set(tokens)) / n_words if n_words else 0.0,
        "punctuation_per_word": punctuation / n_words if n_words else 0.0,
        "exclamations_per_sentence": text.count("!") / n_sentences if n_words else 0.0,
        "reading_ease": reading_ease(text),
    }


def text_scores(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The metrics that need no model, per text: repetition, distinct-1/2, VADER valence and the
    style features."""
    reject_bare_string(texts, "texts")
    scores: dict[str, np.ndarray] = {
        "repetition": np.array([repetition_rate(t) for t in texts]),
        "distinct_1": np.array([distinct_n(t, 1) for t in texts]),
        "distinct_2": np.array([distinct_n(t, 2) for t in texts]),
        "vader": vader_valence(texts),
    }
    styles = [style_features(t) for t in texts]
    for key in styles[0] if styles else []:
        scores[key] = np.array([s[key] for s in styles])
    return scores


def score_generations(
    model: Model, generations: Sequence[Generation], *, readout: ProbeReadout | None = None,
    perplexity: Sequence[float] | None = None,
) -> dict[str, np.ndarray]:
    """Every metric for every completion, as arrays keyed by metric name (score outside ``steer``).
    ``perplexity``: each completion's perplexity under ``model`` when already known (e.g. the
    :attr:`Generation.perplexity` of ``generate(..., perplexity=True)`` on this model); None:
    computed here."""
    reject_bare_string(generations, "generations")
    texts = [g.text for g in generations]
    if perplexity is None:
        perplexity = completion_perplexity(model, generations)
    elif len(perplexity) != len(generations):
        raise ValueError(f"perplexity has {len(perplexity)} values for {len(generations)} generations")
    perplexity = np.asarray(perplexity, dtype=np.float64)
    scores: dict[str, np.ndarray] = {"perplexity": perplexity, **text_scores(texts)}
    if readout is not None:
        log_odds = readout.log_odds(model, texts)
        scores["probe_valence"] = _expit(log_odds)
        scores["probe_log_odds"] = log_odds
    return scores


def _expit(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(x)


__all__ = [
    "distinct_n",
    "reading_ease",
    "repetition_rate",
    "score_generations",
    "style_features",
    "syllables",
    "text_scores",
    "vader_valence",
    "words",
]
