"""What the robustness study reads: the concept's examples split by the seed into training and
held-out parts, the in-distribution and out-of-distribution item sets, the neutral perplexity
corpus, and what "the intended direction" means (:mod:`interp_steer.studies.concept` loads and
checks; this module decides what is held out and what goes into the result's ``data``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp_steer.data import (
    ABQuestion,
    ContrastPair,
    load_ab_questions,
    load_prompts,
    reject_bare_strings,
)
from interp_steer.studies._common import describe_items, load_items
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
from interp_steer.studies.robustness.config import RobustnessConfig

ID = "in_distribution"
"""The name of the in-distribution item set (the first of ``Inputs.sets``)."""

MIN_EXAMPLES = 6
"""The fewest texts per side, pairs or questions the robustness study takes: every kind of concept is
split into training and held-out parts (four to train on, two held out). The SVF study needs 4;
each keeps its own minimum, so that its outputs and error messages stay what they were."""


@dataclass(frozen=True, eq=False)
class Inputs:
    mode: str  # "texts", "pairs" or "ab"
    train_positive: list[str]
    train_negative: list[str]
    train_pairs: list[ContrastPair]
    train_questions: list[ABQuestion]
    heldout_texts: list[str]  # the on-topic perplexity corpus
    sets: dict[str, tuple[str, list]]  # name -> ("prompts" | "questions", items); ID first
    neutral: list[str]
    data: dict[str, Any]


def named_sets(value: Any, kind: str) -> dict[str, Any]:
    """Out-of-distribution sets by name: a dict as given; a list named by file stem (or position),
    made unique and never :data:`ID`."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (str, Path)):
        value = [value]
    out = {}
    for i, item in enumerate(value):
        name = Path(item).stem if isinstance(item, (str, Path)) else f"ood_{kind}_{i + 1}"
        out[name if name not in out and name != ID else f"{name}_{i + 1}"] = item
    return out


def load_inputs(config: RobustnessConfig, positive: Texts, negative: Texts, pairs: Pairs, questions: Questions,
                prompts: Texts, ood_prompts: Any, ood_questions: Any, neutral: Texts) -> Inputs:
    """Everything the study reads, checked before any model is loaded."""
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions, prompts=prompts, neutral=neutral, path_ok=True)
    concept = load_concept(positive, negative, pairs, questions, max_passages=config.max_passages,
                           minimum=MIN_EXAMPLES, questions_why="four to train on, two held out")
    data: dict[str, Any] = {}
    train_pos: list[str] = []
    train_neg: list[str] = []
    train_pairs: list[ContrastPair] = []
    train_q: list[ABQuestion] = []
    heldout: list[str] = []
    sets: dict[str, tuple[str, list]] = {}
    note = split_note(config.heldout_fraction, config.seed)
    mode = concept.mode
    if mode == "ab":
        (loaded,) = concept.sides
        train, held = split_indices(len(loaded.items), config.heldout_fraction, config.seed)
        train_q = [loaded.items[i] for i in train]
        held_q = [loaded.items[i] for i in held][: config.max_prompts or None]
        sets[ID] = ("questions", held_q)
        heldout = [q.question for q in held_q]
        data["questions"] = loaded.describe(n_train=len(train_q), n_heldout=len(held_q), split=note)
    elif mode == "pairs":
        (loaded,) = concept.sides
        used = loaded.items
        train, held = split_indices(len(used), config.heldout_fraction, config.seed)
        train_pairs = [used[i] for i in train]
        heldout = [t for i in held for t in (used[i].positive, used[i].negative)]
        data["pairs"] = loaded.describe(n_train=len(train), n_heldout=len(held), split=note)
    else:
        held_sides: list[list[str]] = []
        for side in concept.sides:
            train, held = split_indices(len(side.items), config.heldout_fraction, config.seed)
            (train_pos if side.name == "positive" else train_neg).extend(side.items[i] for i in train)
            held_sides.append([side.items[i] for i in held])
            data[side.name] = side.describe(n_train=len(train), n_heldout=len(held), split=note)
        # Alternating sides, so that a capped on-topic corpus keeps both.
        heldout = [t for pair in zip(*held_sides, strict=False) for t in pair]
        heldout += held_sides[0][len(held_sides[1]):] + held_sides[1][len(held_sides[0]):]
    if mode != "ab":
        used_prompts = load_prompt_set(prompts, config.max_prompts)
        sets[ID] = ("prompts", used_prompts.items)
        data["prompts"] = used_prompts.describe()
    elif prompts is not None:
        raise ValueError("with A/B questions the in-distribution items are the held-out questions; give other "
                         "prompt sets as ood_prompts")
    _add_ood_sets(config, sets, data, named_sets(ood_prompts, "prompts"), named_sets(ood_questions, "questions"))
    used_neutral = load_corpus_set(neutral, "baseline", "neutral", config.max_passages)
    data["neutral"] = used_neutral.describe()
    data["on_topic"] = {"source": "the held-out part of the concept's examples", "n_used": len(heldout)}
    limit = (len(train_q) if mode == "ab" else len(train_pairs) if mode == "pairs"
             else min(len(train_pos), len(train_neg)))
    below = [n for n in config.sample_sizes if n < limit]
    if len(below) < 2:
        raise ValueError(f"sample_sizes {list(config.sample_sizes)}: the training split has {limit} examples per class, "
                         f"and only {below} of the sizes are below it; the sample-size curve needs at least two (the full "
                         f"split is added as the last point): give smaller sizes, e.g. --sample-sizes 2,4,8")
    return Inputs(mode, train_pos, train_neg, train_pairs, train_q, heldout, sets, used_neutral.items, data)


def _add_ood_sets(config: RobustnessConfig, sets: dict[str, tuple[str, list]], data: dict[str, Any],
                  named_prompts: dict[str, Any], named_questions: dict[str, Any]) -> None:
    """The out-of-distribution sets (none given: the built-in ``prompts_ood``), each capped at
    ``max_prompts`` and at least 2 items, into ``sets`` and ``data``."""
    if not named_prompts and not named_questions:
        named_prompts = {"prompts_ood": None}
    for kind, named, loader, item_type, builtin in (
            ("prompts", named_prompts, load_prompts, str, "prompts_ood"),
            ("questions", named_questions, load_ab_questions, ABQuestion, None)):
        for set_name, value in named.items():
            if set_name in sets:
                raise ValueError(f"two prompt sets are named {set_name!r}; name the out-of-distribution sets apart")
            loaded, source = load_items(value, builtin, loader, f"out-of-distribution {kind} {set_name!r}", item_type)
            used = loaded[: config.max_prompts] if config.max_prompts else loaded
            if len(used) < 2:
                raise ValueError(f"out-of-distribution set {set_name!r} ({source}) has {len(used)} items; each set "
                                 "needs at least 2")
            sets[set_name] = (kind, used)
            data[f"ood:{set_name}"] = describe_items(used, source, len(loaded))


def describe_concept(config: RobustnessConfig, inputs: Inputs, score: Scorer, name: str) -> dict[str, Any]:
    """What "the intended direction" means for open-ended items: the scorer and its orientation."""
    out: dict[str, Any] = {"ab_measure": "P(matching answer), normalised over the two letters"}
    if inputs.mode == "ab" and not any(kind == "prompts" for kind, _ in inputs.sets.values()):
        return {**out, "measure": "P(matching answer)", "direction": 1,
                "direction_source": "A/B: positive coefficients steer towards the matching answer"}
    if config.direction != "auto":
        return {**out, "measure": name, "direction": int(config.direction), "direction_source": "given in the config"}
    if inputs.mode == "ab":
        raise ValueError("open-ended out-of-distribution prompts with an A/B concept need the scorer's orientation: "
                         "pass direction=1 or -1 (does a higher score mean more of the behaviour?)")
    gap = orientation(score, name, *sides_of(inputs.mode, inputs.train_positive, inputs.train_negative,
                                             inputs.train_pairs))
    return {**out, "measure": name, "direction": 1 if gap > 0 else -1, "training_gap": gap,
            "direction_source": f"auto: mean {name}(positive) − mean {name}(negative) = {gap:+.3f} on the training texts"}


__all__ = ["ID", "MIN_EXAMPLES", "Inputs", "describe_concept", "load_inputs", "named_sets"]
