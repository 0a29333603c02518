"""A study's concept, read the same way by every study that steers one: from two corpora, contrast
pairs or A/B questions, with the held-out prompts, checked minimums and the scorer's orientation.

The SVF and robustness studies both take a concept as ``positive``/``negative`` texts (default: the
built-in persona A against persona B), ``pairs`` or ``questions``, each a list or a file path. This
module loads and checks them (:func:`load_concept`, :func:`load_prompt_set`), splits by the seed
(:func:`split_indices`), says which way the scorer points (:func:`orientation`) and turns the
training examples into the texts a vector or field is fitted on (:func:`training_texts`). What each
study does with them (which parts are held out, what goes into its result's ``data``) stays in the
study.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp_steer.data import (
    ABQuestion,
    ContrastPair,
    load_ab_questions,
    load_corpus,
    load_pairs,
    load_prompts,
    reject_bare_strings,
)
from interp_steer.directions import ab_contrast_pairs, contrast_texts
from interp_steer.metrics import vader_valence
from interp_steer.models import Model
from interp_steer.studies._common import describe_items, load_items, score_texts

Texts = Sequence[str] | str | Path | None
"""A corpus or prompt list: texts, a file path, or ``None`` for the built-in one."""

Pairs = Sequence[ContrastPair] | str | Path | None
"""Contrast pairs: a list, or a file path."""

Questions = Sequence[ABQuestion] | str | Path | None
"""A/B questions in CAA's format: a list, or a file path."""

Scorer = Callable[[list[str]], Any]
"""A function from completion texts to one number each (higher = more of the concept)."""

BUILTIN_SIDES = (("positive", "persona_a"), ("negative", "persona_b"))
"""The concept's two corpora and the built-in data each defaults to."""


@dataclass(frozen=True, eq=False)
class Loaded:
    """One data set as a study uses it: ``items`` (after any cap), where it came from and how many
    there were before the cap."""

    name: str
    items: list
    source: str
    n_available: int

    def describe(self, **extra: Any) -> dict[str, Any]:
        """Its entry in a result's ``data`` (:func:`~interp_steer.studies._common.describe_items`),
        with ``extra`` keys after the standard ones."""
        return {**describe_items(self.items, self.source, self.n_available), **extra}


@dataclass(frozen=True, eq=False)
class ConceptData:
    """The concept's examples: ``mode`` is ``"texts"`` (``sides`` holds the positive and negative
    corpora), ``"pairs"`` (``sides`` holds the pairs) or ``"ab"`` (``sides`` holds the questions)."""

    mode: str
    sides: tuple[Loaded, ...]


def load_concept(positive: Texts, negative: Texts, pairs: Pairs, questions: Questions, *, max_passages: int | None,
                 minimum: int, questions_why: str) -> ConceptData:
    """Load the one concept given (none: the built-in personas), checked in this order: one kind of
    concept, both corpora or neither, then each data set's size against ``minimum`` (corpora and
    pairs after the ``max_passages`` cap; questions uncapped, and ``questions_why`` says what the
    minimum is for, e.g. ``"two to train on, two held out"``)."""
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions, path_ok=True)
    given = {"positive/negative": positive is not None or negative is not None, "pairs": pairs is not None,
             "questions": questions is not None}
    if sum(given.values()) > 1:
        raise ValueError(f"give one concept: two corpora (positive and negative), pairs, or questions; got "
                         f"{[k for k, v in given.items() if v]}")
    if (positive is None) != (negative is None):
        raise ValueError("positive and negative go together: give both corpora (or neither for the built-in personas)")
    if given["questions"]:
        loaded, source = load_items(questions, None, load_ab_questions, "questions", ABQuestion)
        if len(loaded) < minimum:
            raise ValueError(f"questions ({source}) has {len(loaded)} questions; the study needs at least {minimum} "
                             f"({questions_why})")
        return ConceptData("ab", (Loaded("questions", loaded, source, len(loaded)),))
    if given["pairs"]:
        loaded, source = load_items(pairs, None, load_pairs, "pairs", ContrastPair)
        used = loaded[:max_passages] if max_passages else loaded
        if len(used) < minimum:
            raise ValueError(f"pairs ({source}) has {len(used)} pairs; the study needs at least {minimum}")
        return ConceptData("pairs", (Loaded("pairs", used, source, len(loaded)),))
    sides = []
    for (side, builtin), value in zip(BUILTIN_SIDES, (positive, negative), strict=True):
        loaded, source = load_items(value, builtin, load_corpus, side, str)
        used = loaded[:max_passages] if max_passages else loaded
        if len(used) < minimum:
            raise ValueError(f"{side} ({source}) has {len(used)} texts; the study needs at least {minimum}")
        sides.append(Loaded(side, used, source, len(loaded)))
    return ConceptData("texts", tuple(sides))


def load_corpus_set(value: Texts, builtin: str | None, name: str, cap: int | None) -> Loaded:
    """A corpus (texts, a file, or the built-in ``builtin``), its first ``cap`` texts when ``cap``."""
    loaded, source = load_items(value, builtin, load_corpus, name, str)
    return Loaded(name, loaded[:cap] if cap else loaded, source, len(loaded))


def load_prompt_set(prompts: Texts, max_prompts: int | None) -> Loaded:
    """The held-out prompts (default: the built-in ones), the first ``max_prompts``; at least 2."""
    loaded, source = load_items(prompts, "prompts", load_prompts, "prompts", str)
    used = loaded[:max_prompts] if max_prompts else loaded
    if len(used) < 2:
        raise ValueError(f"prompts ({source}) has {len(used)} prompts; the study needs at least 2")
    return Loaded("prompts", used, source, len(loaded))


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded ``(train, held-out)`` indices of ``n`` items, each sorted, ``fraction`` of them held
    out but at least two on each side."""
    order = np.random.default_rng(seed).permutation(n)
    held = min(max(round(fraction * n), 2), n - 2)
    return sorted(order[held:].tolist()), sorted(order[:held].tolist())


def split_note(fraction: float, seed: int) -> str:
    """How :func:`split_indices` split a data set, for a result's ``data``."""
    return f"seeded random split, {fraction:g} held out (seed {seed})"


def the_scorer(scorer: Scorer | None, scorer_name: str | None) -> tuple[Scorer, str]:
    """The scorer (default: VADER compound valence) and its name in the result."""
    name = scorer_name or ("vader" if scorer is None else getattr(scorer, "__name__", "scorer"))
    return scorer or vader_valence, name


def sides_of(mode: str, positive: list[str], negative: list[str], pairs: list[ContrastPair]) -> tuple[list[str], list[str]]:
    """The positive and negative training texts of a ``"texts"`` or ``"pairs"`` concept."""
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs)
    if mode == "texts":
        return positive, negative
    return [p.positive for p in pairs], [p.negative for p in pairs]


def orientation(score: Scorer, name: str, positive: list[str], negative: list[str]) -> float:
    """The scorer's mean gap between the positive and the negative training texts: its sign is the
    intended direction. Refused when the gap is 0 or not finite (the direction is undefined)."""
    reject_bare_strings(positive=positive, negative=negative)
    gap = float(np.nanmean(score_texts(score, positive)) - np.nanmean(score_texts(score, negative)))
    if not math.isfinite(gap) or gap == 0:
        raise ValueError(f"the scorer {name!r} gives the positive and negative training texts the same mean score "
                         f"({gap}), so the intended direction is undefined; pass direction=1 or -1")
    return gap


def training_texts(model: Model, mode: str, position: str | int, *, positive: list[str], negative: list[str],
                   pairs: list[ContrastPair], questions: list[ABQuestion]
                   ) -> tuple[list[str], list[str], str, bool, str | int]:
    """The texts a vector or field is fitted on, from the training examples of a concept of ``mode``:
    ``(positive texts, negative texts, dataset hash, paired, read position)``. A/B questions become
    contrast pairs ending at the answer letter, read at ``"last"``; the others at ``position``
    (:func:`~interp_steer.directions.contrast_texts`)."""
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions)
    if mode == "ab":
        source: Any = ab_contrast_pairs(model, questions)
        other: Any = None
        position = "last"
    elif mode == "pairs":
        source, other = pairs, None
    else:
        source, other = positive, negative
    pos_texts, neg_texts, digest, paired = contrast_texts(model, source, other)
    return pos_texts, neg_texts, digest, paired, position


__all__ = ["BUILTIN_SIDES", "ConceptData", "Loaded", "Pairs", "Questions", "Scorer", "Texts", "load_concept",
           "load_corpus_set", "load_prompt_set", "orientation", "sides_of", "split_indices", "split_note",
           "the_scorer", "training_texts"]
