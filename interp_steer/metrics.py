"""Judge-free scores for generated text. Every function scores the completion only, never the prompt.

| score | function | scale | better / more |
| --- | --- | --- | --- |
| perplexity | :func:`completion_perplexity` | ≥ 1 | lower = more fluent, under the *unsteered* model |
| reference perplexity | :func:`sequence_perplexity` | ≥ 1 | the same for token sequences on their own (e.g. corpus passages cut to a completion's length) |
| repetition | :func:`repetition_rate` | 0–1 | higher = more repeated word 3-grams (degenerate loops); exactly 1 − distinct-3 |
| distinct-n | :func:`distinct_n` | 0–1 | higher = more varied wording (NaN for texts shorter than n words) |
| VADER compound | :func:`vader_valence` | −1–1 | higher = more positive sentiment |
| probe valence | :class:`ProbeReadout` | 0–1 | probability of the readout's positive class (e.g. persona A) |
| probe log-odds | :meth:`ProbeReadout.log_odds` | unbounded | the same probe's decision function (for curve shapes: it does not saturate) |
| style | :func:`style_features` | various | sentence length, type/token ratio, punctuation, exclamations, readability, length |

VADER (vaderSentiment) is a lexicon-and-rules sentiment scorer. Readability is the Flesch reading
ease (higher = easier) with syllables counted from pyphen's English hyphenation dictionary; textstat
computes the same formula but downloads a pronunciation dictionary at run time, which fails offline. The probe readout is a logistic probe fitted on the *unsteered*
model's activations of two labelled corpora and applied to a completion's activations, so it reads
what the model itself represents rather than surface words.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp_steer._plain import forward_module
from interp_steer.activations import collect_activations
from interp_steer.data import reject_bare_string
from interp_steer.generation import Generation
from interp_steer.models import Model

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


def completion_perplexity(model: Model, generations: Sequence[Generation], *, batch_size: int = 16) -> np.ndarray:
    """Perplexity of each completion given its prompt, under ``model`` as it is (call it outside any
    ``steer`` block to score under the unsteered model). NaN for an empty completion.

    Completions of the same prompt (a steering grid has one per cell) share one forward of the
    prompt: its key/value cache is copied to every completion, so the prompt is read once instead of
    once per cell. Results equal a full forward of prompt + completion to float rounding."""
    reject_bare_string(generations, "generations")
    out = np.full(len(generations), np.nan)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, g in enumerate(generations):
        if g.token_ids:
            groups.setdefault(tuple(g.prompt_ids), []).append(i)
    for prompt_ids, members in groups.items():
        prefix = _prefix(model, list(prompt_ids))
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            nll = _completion_nll(model, prefix, len(prompt_ids), [list(generations[i].token_ids) for i in chunk])
            for i, values in zip(chunk, nll, strict=True):
                out[i] = math.exp(float(values.mean()))
    return out


@torch.inference_mode()
def _prefix(model: Model, prompt_ids: list[int]) -> tuple[Any, torch.Tensor]:
    """The prompt's key/value cache and its next-token log-probabilities."""
    from transformers import DynamicCache

    if not prompt_ids:
        raise ValueError("a completion needs a non-empty prompt to be scored")
    cache = DynamicCache()
    prompt = torch.tensor([prompt_ids], device=model.device)
    with forward_module(model) as hf:
        logits = hf(input_ids=prompt, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    return cache, torch.log_softmax(logits[0, -1].float(), dim=-1)


@torch.inference_mode()
def _completion_nll(model: Model, prefix: tuple[Any, torch.Tensor], width: int, completions: list[list[int]]) -> list[torch.Tensor]:
    """NLL of every token of each completion after a shared prompt of ``width`` tokens."""
    import copy

    cache, first_logprobs = prefix
    rows = copy.deepcopy(cache)
    rows.batch_repeat_interleave(len(completions))
    ids, mask = model.pad(completions, padding_side="right")
    full_mask = torch.cat([torch.ones(len(completions), width, dtype=mask.dtype, device=mask.device), mask], dim=1)
    positions = torch.arange(width, width + ids.shape[1], device=ids.device).expand(len(completions), -1)
    with forward_module(model) as hf:
        logits = hf(input_ids=ids, attention_mask=full_mask, position_ids=positions, past_key_values=rows,
                    use_cache=True, cache_position=torch.arange(width, width + ids.shape[1], device=ids.device)).logits
    result = []
    for row, completion in enumerate(completions):
        later = target_nll(logits[row, : len(completion) - 1], ids[row, 1 : len(completion)])
        result.append(torch.cat([-first_logprobs[completion[0]].reshape(1), later]).cpu())
    return result


def target_nll(logits: Float[Tensor, "... vocab"], targets: Tensor) -> Tensor:
    """``-log softmax(logits)[target]`` at each position, in float32 whatever the model's dtype."""
    return -torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None])[..., 0]


@torch.inference_mode()
def token_nll(model: Model, sequences: Sequence[Sequence[int]], score_from: Sequence[int]) -> list[torch.Tensor]:
    """Negative log-likelihood of each token at or after ``score_from[i]`` in each sequence
    (right-padded batch; the first token of a sequence has no prediction and is never scored)."""
    ids, mask = model.pad(sequences, padding_side="right")
    with forward_module(model) as hf:
        logits = hf(input_ids=ids, attention_mask=mask, use_cache=False).logits
    nll = target_nll(logits[:, :-1], ids[:, 1:])
    result = []
    for row, (seq, start) in enumerate(zip(sequences, score_from, strict=True)):
        first = max(int(start), 1)
        result.append(nll[row, first - 1 : len(seq) - 1].cpu())
    return result


def sequence_perplexity(model: Model, sequences: Sequence[Sequence[int]], *, batch_size: int = 16) -> np.ndarray:
    """Perplexity of each token sequence on its own (no prompt), under ``model`` as it is: ``exp`` of
    the mean NLL of every token after the first (the first has no prediction; a BOS the tokenizer
    adds is that first token). Use it to score reference text, e.g. a corpus cut to a completion's
    length; NaN for a sequence of fewer than two tokens."""
    out = np.full(len(sequences), np.nan)
    for start in range(0, len(sequences), batch_size):
        chunk = [list(s) for s in sequences[start : start + batch_size]]
        scored = [i for i, s in enumerate(chunk) if len(s) >= 2]
        if scored:
            nll = token_nll(model, [chunk[i] for i in scored], [1] * len(scored))
            for i, values in zip(scored, nll, strict=True):
                out[start + i] = math.exp(float(values.mean()))
    return out


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


__all__ = [
    "ProbeReadout",
    "reading_ease",
    "syllables",
    "completion_perplexity",
    "distinct_n",
    "repetition_rate",
    "score_generations",
    "sequence_perplexity",
    "style_features",
    "text_scores",
    "token_nll",
    "vader_valence",
    "words",
]
