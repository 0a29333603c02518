"""Stage 1 of the SVF comparison: what it reads (the concept, the held-out prompts or questions, the
two attributes) and what "the intended direction" means (:mod:`interp_steer.studies.concept` loads
and checks; this module decides what is held out and what goes into the result's ``data``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interp_steer.data import ABQuestion, ContrastPair, reject_bare_strings
from interp_steer.studies.concept import (
    Pairs,
    Questions,
    Scorer,
    Texts,
    load_concept,
    load_corpus_set,
    load_prompt_set,
    orientation,
    sides_of,
    split_indices,
    split_note,
)
from interp_steer.studies.svf.config import SvfConfig

MIN_EXAMPLES = 4
"""The fewest texts per side, pairs or questions the SVF study takes (two questions to train on, two
held out). The robustness study needs 6 (it holds out part of every kind of concept); each keeps its
own minimum, so that its outputs and error messages stay what they were."""


@dataclass(frozen=True, eq=False)
class Inputs:
    """What the study reads, after loading, capping and (A/B) splitting."""

    mode: str  # "texts" (two corpora), "pairs" or "ab"
    positive: list[str]
    negative: list[str]
    pairs: list[ContrastPair]
    train_questions: list[ABQuestion]
    heldout_questions: list[ABQuestion]
    prompts: list[str]
    attributes: tuple[list[str], list[str], list[str]]
    data: dict[str, Any]


def load_inputs(config: SvfConfig, positive: Texts, negative: Texts, pairs: Pairs, questions: Questions,
                prompts: Texts, attributes: tuple[Texts, Texts, Texts] | None) -> Inputs:
    """The concept (A/B questions split by the seed into training and held-out questions), the
    held-out prompts and, with ``multi_attribute``, the two attribute corpora and their baseline."""
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions, prompts=prompts, path_ok=True)
    concept = load_concept(positive, negative, pairs, questions, max_passages=config.max_passages,
                           minimum=MIN_EXAMPLES, questions_why="two to train on, two held out")
    data: dict[str, Any] = {}
    pos_texts: list[str] = []
    neg_texts: list[str] = []
    pair_list: list[ContrastPair] = []
    train_q: list[ABQuestion] = []
    held_q: list[ABQuestion] = []
    if concept.mode == "ab":
        (loaded,) = concept.sides
        train, held = split_indices(len(loaded.items), config.question_split, config.seed)
        held_q = [loaded.items[i] for i in held]
        train_q = [loaded.items[i] for i in train]
        if config.max_prompts:
            held_q = held_q[: config.max_prompts]
        data["questions"] = loaded.describe(n_train=len(train_q), n_heldout=len(held_q),
                                            split=split_note(config.question_split, config.seed))
    elif concept.mode == "pairs":
        (loaded,) = concept.sides
        pair_list = loaded.items
        data["pairs"] = loaded.describe()
    else:
        for side in concept.sides:
            data[side.name] = side.describe()
        pos_texts, neg_texts = concept.sides[0].items, concept.sides[1].items
    used_prompts = load_prompt_set(prompts, config.max_prompts)
    if concept.mode != "ab" or config.multi_attribute:
        data["prompts"] = used_prompts.describe()
    triple = attributes or (None, None, None)
    if len(triple) != 3:
        raise ValueError("attributes must be (attribute A texts, attribute B texts, baseline texts)")
    attribute_texts: list[list[str]] = []
    if config.multi_attribute:
        for name, value, builtin in zip(("attribute_a", "attribute_b", "baseline"), triple,
                                        ("persona_a", "persona_b", "baseline"), strict=True):
            used = load_corpus_set(value, builtin, name, config.max_passages)
            at_least = max(config.folds, MIN_EXAMPLES)
            if len(used.items) < at_least:
                raise ValueError(f"{name} ({used.source}) has {len(used.items)} texts; the multi-attribute test needs "
                                 f"at least {at_least}")
            data[name] = used.describe()
            attribute_texts.append(used.items)
    else:
        attribute_texts = [[], [], []]
    return Inputs(concept.mode, pos_texts, neg_texts, pair_list, train_q, held_q, used_prompts.items,
                  (attribute_texts[0], attribute_texts[1], attribute_texts[2]), data)


def describe_concept(config: SvfConfig, inputs: Inputs, score: Scorer, name: str) -> dict[str, Any]:
    """What "the intended direction" means: the score, its orientation and where that came from."""
    if inputs.mode == "ab":
        return {"measure": "P(matching answer)", "direction": 1, "direction_source": "A/B: positive coefficients "
                "steer towards the behaviour-matching answer", "positive": "matching answer",
                "negative": "not-matching answer"}
    labels = ({"positive": inputs.data["positive"]["source"], "negative": inputs.data["negative"]["source"]}
              if inputs.mode == "texts" else {"positive": "pairs: positive side", "negative": "pairs: negative side"})
    if config.direction != "auto":
        return {"measure": name, "direction": int(config.direction), "direction_source": "given in the config",
                **labels}
    gap = orientation(score, name, *sides_of(inputs.mode, inputs.positive, inputs.negative, inputs.pairs))
    return {"measure": name, "direction": 1 if gap > 0 else -1,
            "direction_source": (f"auto: mean {name}(positive texts) − mean {name}(negative texts) = {gap:+.3f} on the "
                                 "training texts"), "training_gap": gap, **labels}


__all__ = ["MIN_EXAMPLES", "Inputs", "describe_concept", "load_inputs"]
