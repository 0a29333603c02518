"""How far can a steering vector be trusted? The five findings of arXiv 2505.03189 as one study.

:func:`run` takes one model or several and a :class:`~interp_steer.studies.robustness.config.RobustnessConfig`
and returns a :class:`~interp_steer.studies.robustness.result.RobustnessResult`; :func:`robustness`
builds the config from keywords. Per model, one stage per finding:

0. **Vector.** The concept's examples (two corpora, contrast pairs or A/B questions; default: the
   built-in persona A against persona B) are split by the seed into training and held-out parts.
   A mean-difference vector at one layer (``"auto"``: the best layer of a probe profile over every
   layer, training split only) is rescaled to the layer's mean residual norm.
1. **In- vs out-of-distribution**: every prompt set (in-distribution: the built-in prompts, or the
   held-out A/B questions; out-of-distribution: the built-in ``prompts_ood`` or the user's sets) at
   every coefficient, greedy completions scored by the scorer (VADER by default) or A/B
   probabilities; the effect per item and the OOD/ID ratio at the primary coefficient (Fieller,
   independent samples; standardised effects when the two sets are measured differently).
2. **Sample size**: vectors from random subsets of ``n`` training examples per class, each
   rescaled to the full vector's norm (only the direction varies), applied to the same held-out
   items; a saturating curve through the effects (:mod:`~interp_steer.studies.robustness.saturation`)
   gives the ``n`` reaching 90 % and 95 % of the plateau with bootstrap intervals, next to each
   subset direction's cosine to the full one.
3. **Adversarial reversal**: from each seed prompt, an evolutionary search over token edits and a
   gradient-guided suffix search (:mod:`interp_steer.adversarial`) minimise the steering's signed
   effect on the next-token readout (:mod:`~interp_steer.studies.robustness.readout`), candidates
   scored in batches with steered and unsteered rows side by side. Found inputs are kept with their
   token ids (replayable), their perplexity under the unsteered model against the seed's, and a
   check by generation and the scorer.
4. **Perplexity**: NLL per token of a neutral corpus and of the held-out on-topic texts under the
   steering at every perplexity coefficient; the ratio to unsteered per text, and the coefficients
   where perplexity rises 10 % and 50 %.
5. **Model size**, across models: the same data and settings on each; degradation (perplexity ratio)
   and effect per model, compared on the same texts.

Intervals are 95 %: effects, Student-t over items; ratios of effects, Fieller; perplexity ratios, t
on per-text log ratios (geometric means); fractions, Wilson; sample-size plateaus, bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp_steer.activations import collect_activations
from interp_steer.adversarial import SearchResult, evolutionary_search, gcg_search, random_search
from interp_steer.data import (
    ABQuestion,
    ContrastPair,
    load_ab_questions,
    load_corpus,
    load_pairs,
    load_prompts,
    reject_bare_strings,
)
from interp_steer.directions import (
    SteeringVector,
    ab_contrast_pairs,
    contrast_texts,
    from_activations,
    position_label,
)
from interp_steer.evaluation import _letter_ids, perplexity_under_steering
from interp_steer.metrics import token_nll, vader_valence
from interp_steer.models import Model, load_model
from interp_steer.probes import probe_layers
from interp_steer.stats import (
    log_ratio_interval,
    proportion_interval,
    summarise,
    t_interval,
)
from interp_steer.studies._common import (
    Stopwatch,
    describe_items,
    load_items,
    score_texts,
)
from interp_steer.studies._units import UnitRunner, steered_ab, steered_generations
from interp_steer.studies.robustness.claims import judge_claims
from interp_steer.studies.robustness.config import RobustnessConfig
from interp_steer.studies.robustness.readout import (
    SteeredReadout,
    content_ids,
    indicative_tokens,
    template_ids,
)
from interp_steer.studies.robustness.result import RobustnessResult
from interp_steer.studies.robustness.saturation import fit_saturation
from interp_steer.studies.rules.robustness import OOD_SCALE, ood_ratio
from interp_steer.units import (
    BackendSpec,
    LocalBackend,
    RayBackend,
    fingerprint,
    model_identity,
    numeric,
    open_store,
    own_backend,
    run_key,
)

Texts = Sequence[str] | str | Path | None
"""A corpus or prompt list: texts, a file path, or ``None`` for the built-in one."""

Scorer = Callable[[list[str]], Any]
"""A function from completion texts to one number each (higher = more of the concept)."""

ID = "in_distribution"

SEARCHES = ("evolutionary", "gcg")
"""The optimised adversarial searches run from every seed."""
CONTROL = "random"
"""The control: random edits of the same budget (:func:`~interp_steer.adversarial.random_search`)."""
PAIRED_SEARCH = "evolutionary"
"""The search the verdict compares with the control: the same edit language, so the only difference
is the selection (GCG edits a suffix by gradients; its reversals are reported, not judged)."""


def run(
    model: Model | str | None | Sequence[Model | str | None],
    config: RobustnessConfig,
    *,
    positive: Texts = None,
    negative: Texts = None,
    pairs: Sequence[ContrastPair] | str | Path | None = None,
    questions: Sequence[ABQuestion] | str | Path | None = None,
    prompts: Texts = None,
    ood_prompts: dict[str, Texts] | Sequence[Texts] | None = None,
    ood_questions: dict[str, Any] | Sequence[Any] | None = None,
    neutral: Texts = None,
    scorer: Scorer | None = None,
    scorer_name: str | None = None,
    device: str | None = None,
    n_devices: int | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    units: str | Path | None = None,
    backend: str | BackendSpec | LocalBackend | RayBackend | None = None,
    fresh: bool = False,
) -> RobustnessResult:
    """Run the study on one model or several (``model``: a :class:`Model`, a spec for
    :func:`~interp_steer.load_model`, or a list of them, loaded one at a time).

    The concept: ``positive`` and ``negative`` texts, ``pairs`` or ``questions`` (A/B, CAA's format),
    each a list or a file; none: the built-in persona A against persona B. ``prompts``: the
    in-distribution prompts for open-ended concepts (default: built-in). ``ood_prompts`` and
    ``ood_questions``: out-of-distribution sets, named (a dict) or as a list (named by file or
    position); none of either: the built-in ``prompts_ood``. ``neutral``: the neutral perplexity
    corpus (default: the built-in baseline passages). ``scorer``: completion texts to numbers
    (default: VADER compound valence). ``device`` and ``n_devices``: where specs are loaded
    (:func:`~interp_steer.load_model`).

    The generations (in- and out-of-distribution sets, sample-size subsets, the check of found inputs;
    one unit per generation batch), the adversarial searches (one per seed and method) and the
    perplexity sweep (one per batch of texts, every coefficient) run as work units
    (:mod:`interp_steer.units`): ``units=DIR`` stores
    finished ones so that a re-run skips them (``fresh=True`` discards them), ``backend`` (``"local"``,
    ``"ray"`` or a backend object for a single model) says where they run.
    """
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions,
                        prompts=prompts, neutral=neutral, path_ok=True)
    clock = Stopwatch(log)
    inputs = _inputs(config, positive, negative, pairs, questions, prompts, ood_prompts, ood_questions, neutral)
    score = scorer or vader_valence
    name = scorer_name or ("vader" if scorer is None else getattr(scorer, "__name__", "scorer"))
    concept = _concept(config, inputs, score, name)
    specs = list(model) if isinstance(model, (list, tuple)) else [model]
    if not specs:
        raise ValueError("model is an empty list: give a model, a spec, or a list of them")
    store = open_store(units, _key(specs, config, inputs, device), fresh=fresh, log=clock.say)
    per_model, vectors = [], []
    for k, spec in enumerate(specs):
        loaded = spec if isinstance(spec, Model) else load_model(spec, device=device, n_devices=n_devices)
        clock.lap(f"load_model {loaded.name}")
        with own_backend(backend, loaded) as runner:
            work = UnitRunner(loaded, store, runner, f"m{k}-", progress)
            report, vector = _one_model(loaded, config, inputs, concept, score, work, clock)
        per_model.append(report)
        vectors.append(vector)
    claims = judge_claims(config, per_model)
    return RobustnessResult(config=config, data=inputs.data, concept=concept, models=per_model, vectors=vectors,
                            claims=claims, timings=clock.total())


def units_key(models: Sequence[Any], config: RobustnessConfig, *, device: str | None = None, positive: Texts = None,
              negative: Texts = None, pairs: Sequence[ContrastPair] | str | Path | None = None,
              questions: Sequence[ABQuestion] | str | Path | None = None, prompts: Texts = None,
              ood_prompts: dict[str, Texts] | Sequence[Texts] | None = None,
              ood_questions: dict[str, Any] | Sequence[Any] | None = None, neutral: Texts = None) -> dict[str, Any]:
    """The key of a run's units (:func:`~interp_steer.units.run_key`), found without loading the
    models: each is a :class:`Model` or a spec, loaded on ``device``."""
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions,
                        prompts=prompts, neutral=neutral, path_ok=True)
    inputs = _inputs(config, positive, negative, pairs, questions, prompts, ood_prompts, ood_questions, neutral)
    return _key(models, config, inputs, device)


def _key(models: Sequence[Any], config: RobustnessConfig, inputs: _Inputs, device: str | None) -> dict[str, Any]:
    identities = [model_identity(m if isinstance(m, Model) else (m, "float32", device)) for m in models]
    return run_key(identities, config, inputs.data)


def robustness(
    model: Model | str | None | Sequence[Model | str | None] = None,
    *,
    config: RobustnessConfig | None = None,
    quick: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> RobustnessResult:
    """The study in one call: settings from ``config``, or :meth:`RobustnessConfig.quick` when
    ``quick``, with config keywords among ``kwargs`` (e.g. ``layer=15``); the data keywords of
    :func:`run` (``positive``, ``prompts``, ``ood_prompts``, ...) go to it."""
    data_keys = {"positive", "negative", "pairs", "questions", "prompts", "ood_prompts", "ood_questions", "neutral",
                 "scorer", "scorer_name", "device", "n_devices", "units", "backend", "fresh"}
    data = {k: v for k, v in kwargs.items() if k in data_keys}
    overrides = {k: v for k, v in kwargs.items() if k not in data_keys}
    if config is None:
        config = RobustnessConfig.quick(**overrides) if quick else RobustnessConfig(**overrides)
    elif overrides:
        config = RobustnessConfig.from_dict({**config.to_dict(), **overrides})
    return run(model, config, progress=progress, log=log, **data)


# ------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, eq=False)
class _Inputs:
    mode: str  # "texts", "pairs" or "ab"
    train_positive: list[str]
    train_negative: list[str]
    train_pairs: list[ContrastPair]
    train_questions: list[ABQuestion]
    heldout_texts: list[str]  # the on-topic perplexity corpus
    sets: dict[str, tuple[str, list]]  # name -> ("prompts" | "questions", items); ID first
    neutral: list[str]
    data: dict[str, Any]


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train, held-out) indices, at least two on each side."""
    order = np.random.default_rng(seed).permutation(n)
    held = min(max(round(fraction * n), 2), n - 2)
    return sorted(order[held:].tolist()), sorted(order[:held].tolist())


def _named(value: Any, kind: str) -> dict[str, Any]:
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


def _inputs(config: RobustnessConfig, positive: Any, negative: Any, pairs: Any, questions: Any, prompts: Any,
            ood_prompts: Any, ood_questions: Any, neutral: Any) -> _Inputs:
    given = {"positive/negative": positive is not None or negative is not None, "pairs": pairs is not None,
             "questions": questions is not None}
    if sum(given.values()) > 1:
        raise ValueError(f"give one concept: two corpora (positive and negative), pairs, or questions; got "
                         f"{[k for k, v in given.items() if v]}")
    if (positive is None) != (negative is None):
        raise ValueError("positive and negative go together: give both corpora (or neither for the built-in personas)")
    cap, data = config.max_passages, {}
    train_pos: list[str] = []
    train_neg: list[str] = []
    train_pairs: list[ContrastPair] = []
    train_q: list[ABQuestion] = []
    heldout: list[str] = []
    sets: dict[str, tuple[str, list]] = {}
    split_note = f"seeded random split, {config.heldout_fraction:g} held out (seed {config.seed})"
    if given["questions"]:
        mode = "ab"
        loaded, source = load_items(questions, None, load_ab_questions, "questions", ABQuestion)
        if len(loaded) < 6:
            raise ValueError(f"questions ({source}) has {len(loaded)} questions; the study needs at least 6 "
                             "(four to train on, two held out)")
        train, held = _split(len(loaded), config.heldout_fraction, config.seed)
        train_q = [loaded[i] for i in train]
        held_q = [loaded[i] for i in held][: config.max_prompts or None]
        sets[ID] = ("questions", held_q)
        heldout = [q.question for q in held_q]
        data["questions"] = {**describe_items(loaded, source, len(loaded)), "n_train": len(train_q),
                             "n_heldout": len(held_q), "split": split_note}
    elif given["pairs"]:
        mode = "pairs"
        loaded, source = load_items(pairs, None, load_pairs, "pairs", ContrastPair)
        used = loaded[:cap] if cap else loaded
        if len(used) < 6:
            raise ValueError(f"pairs ({source}) has {len(used)} pairs; the study needs at least 6")
        train, held = _split(len(used), config.heldout_fraction, config.seed)
        train_pairs = [used[i] for i in train]
        heldout = [t for i in held for t in (used[i].positive, used[i].negative)]
        data["pairs"] = {**describe_items(used, source, len(loaded)), "n_train": len(train), "n_heldout": len(held),
                         "split": split_note}
    else:
        mode = "texts"
        held_sides: list[list[str]] = []
        for side, value, builtin in (("positive", positive, "persona_a"), ("negative", negative, "persona_b")):
            loaded, source = load_items(value, builtin, load_corpus, side, str)
            used = loaded[:cap] if cap else loaded
            if len(used) < 6:
                raise ValueError(f"{side} ({source}) has {len(used)} texts; the study needs at least 6")
            train, held = _split(len(used), config.heldout_fraction, config.seed)
            (train_pos if side == "positive" else train_neg).extend(used[i] for i in train)
            held_sides.append([used[i] for i in held])
            data[side] = {**describe_items(used, source, len(loaded)), "n_train": len(train), "n_heldout": len(held),
                          "split": split_note}
        # Alternating sides, so that a capped on-topic corpus keeps both.
        heldout = [t for pair in zip(*held_sides, strict=False) for t in pair]
        heldout += held_sides[0][len(held_sides[1]):] + held_sides[1][len(held_sides[0]):]
    if mode != "ab":
        loaded, source = load_items(prompts, "prompts", load_prompts, "prompts", str)
        used = loaded[: config.max_prompts] if config.max_prompts else loaded
        if len(used) < 2:
            raise ValueError(f"prompts ({source}) has {len(used)} prompts; the study needs at least 2")
        sets[ID] = ("prompts", used)
        data["prompts"] = describe_items(used, source, len(loaded))
    elif prompts is not None:
        raise ValueError("with A/B questions the in-distribution items are the held-out questions; give other "
                         "prompt sets as ood_prompts")
    named_prompts, named_questions = _named(ood_prompts, "prompts"), _named(ood_questions, "questions")
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
    loaded, source = load_items(neutral, "baseline", load_corpus, "neutral", str)
    used_neutral = loaded[:cap] if cap else loaded
    data["neutral"] = describe_items(used_neutral, source, len(loaded))
    data["on_topic"] = {"source": "the held-out part of the concept's examples", "n_used": len(heldout)}
    limit = (len(train_q) if mode == "ab" else len(train_pairs) if mode == "pairs"
             else min(len(train_pos), len(train_neg)))
    below = [n for n in config.sample_sizes if n < limit]
    if len(below) < 2:
        raise ValueError(f"sample_sizes {list(config.sample_sizes)}: the training split has {limit} examples per class, "
                         f"and only {below} of the sizes are below it; the sample-size curve needs at least two (the full "
                         f"split is added as the last point): give smaller sizes, e.g. --sample-sizes 2,4,8")
    return _Inputs(mode, train_pos, train_neg, train_pairs, train_q, heldout, sets, used_neutral, data)


def _concept(config: RobustnessConfig, inputs: _Inputs, score: Scorer, name: str) -> dict[str, Any]:
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
    pos = inputs.train_positive if inputs.mode == "texts" else [p.positive for p in inputs.train_pairs]
    neg = inputs.train_negative if inputs.mode == "texts" else [p.negative for p in inputs.train_pairs]
    gap = float(np.nanmean(score_texts(score, pos)) - np.nanmean(score_texts(score, neg)))
    if not math.isfinite(gap) or gap == 0:
        raise ValueError(f"the scorer {name!r} gives the positive and negative training texts the same mean score "
                         f"({gap}), so the intended direction is undefined; pass direction=1 or -1")
    return {**out, "measure": name, "direction": 1 if gap > 0 else -1, "training_gap": gap,
            "direction_source": f"auto: mean {name}(positive) - mean {name}(negative) = {gap:+.3f} on the training texts"}


# ---------------------------------------------------------------------------------- one model


def _one_model(model: Model, config: RobustnessConfig, inputs: _Inputs, concept: dict[str, Any], score: Scorer,
               work: UnitRunner, clock: Stopwatch) -> tuple[dict[str, Any], SteeringVector]:
    progress = work.progress
    fitted = _fit(model, config, inputs, progress)
    clock.say(f"{model.name}: steering layer {fitted.layer} ({fitted.rule})")
    clock.lap("vector")
    effects, base = _effects(work, config, inputs, fitted.vector, concept, score, clock.say)
    clock.lap("in_vs_out_of_distribution")
    sample_size = _sample_size(work, config, inputs, fitted, concept, score, base)
    clock.lap("sample_size")
    adversarial = _adversarial(model, config, inputs, fitted, concept, score, work)
    clock.lap("adversarial")
    perplexity = _perplexity(model, config, inputs, fitted.vector, work)
    clock.lap("perplexity")
    report = {"model": {"name": model.name, "source": str(model.source), "n_layers": model.n_layers,
                        "d_model": model.d_model, "n_parameters": sum(p.numel() for p in model.hf_model.parameters())},
              "vector": fitted.describe(), "effects": effects, "sample_size": sample_size,
              "adversarial": adversarial, "perplexity": perplexity}
    return report, fitted.vector


@dataclass(frozen=True, eq=False)
class _Fitted:
    vector: SteeringVector  # the full training split, normalised to the layer's residual norm
    layer: int
    rule: str
    positive: torch.Tensor  # training activations at the layer, [n, d]
    negative: torch.Tensor
    paired: bool
    profile: dict[str, Any] | None

    def describe(self) -> dict[str, Any]:
        return {"layer": self.layer, "rule": self.rule, "norm": float(self.vector.directions[self.layer].norm()),
                "resid_norm": self.vector.metadata.resid_norm[self.layer], "n_positive": int(self.positive.shape[0]),
                "n_negative": int(self.negative.shape[0]), "paired": self.paired, "probe_profile": self.profile}


def _fit(model: Model, config: RobustnessConfig, inputs: _Inputs, progress: bool | None) -> _Fitted:
    if inputs.mode == "ab":
        source: Any = ab_contrast_pairs(model, inputs.train_questions)
        negative: Any = None
        position: str | int = "last"
    elif inputs.mode == "pairs":
        source, negative, position = inputs.train_pairs, None, config.position
    else:
        source, negative, position = inputs.train_positive, inputs.train_negative, config.position
    pos_texts, neg_texts, digest, paired = contrast_texts(model, source, negative)
    if config.layer == "auto":
        layers = list(range(model.n_layers))
    else:
        if config.layer >= model.n_layers:
            raise ValueError(f"layer {config.layer} is out of range: {model.name} has layers 0..{model.n_layers - 1}")
        layers = [int(config.layer)]
    acts = collect_activations(model, pos_texts + neg_texts, layers=layers, position=position, progress=progress)
    pos, neg = acts.split(len(pos_texts), len(neg_texts))
    profile = None
    if config.layer == "auto":
        folds = min(config.folds, len(pos_texts), len(neg_texts))
        fit = probe_layers(pos, neg, folds=folds, seed=config.seed, concept="robustness")
        layer = int(fit.best_layer)
        rule = f"auto: best layer of a {folds}-fold probe profile over all layers, training split only"
        profile = {"best_layer": layer, "band": list(fit.band), "accuracy": list(fit.accuracy),
                   "heldout_accuracy": fit.heldout_accuracy}
    else:
        layer, rule = int(config.layer), "given"
    raw = from_activations(pos, neg, metadata={"dataset_hash": digest, "position": position_label(position, False),
                                               "description": "robustness study: mean difference, training split"})
    vector = raw.select([layer]).normalised("resid")
    index = list(acts.layers).index(layer)
    return _Fitted(vector, layer, rule, pos.values[:, index].float(), neg.values[:, index].float(), paired, profile)


# ----------------------------------------------------------------------------------- effects


def _generatescore_texts(work: UnitRunner, name: str, config: RobustnessConfig, prompts: list[str],
                         rows: list[list[tuple]], score: Scorer) -> tuple[np.ndarray, list[str]]:
    """Greedy completions of ``prompts`` (prompt ``i`` steered by ``rows[i]``, a list of ``(vector,
    coefficient)``), scored; generated as work units of one batch each."""
    outputs = steered_generations(work, name, prompts, rows, max_new_tokens=config.max_new_tokens,
                                  batch_size=config.batch_size)
    texts = [g.text for g in outputs]
    return score_texts(score, texts), texts


def _effects(work: UnitRunner, config: RobustnessConfig, inputs: _Inputs, vector: SteeringVector,
             concept: dict[str, Any], score: Scorer,
             say: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per prompt set and coefficient: score summaries and effects; the OOD/ID ratios at the primary
    coefficient. Open-ended sets run as one batched generation (in units of a batch). Returns the report and each set's
    per-item scores ``[items, coefficients]``."""
    coefficients = list(config.coefficients)
    scores: dict[str, np.ndarray] = {}
    samples: dict[str, list[str]] = {}
    open_sets = [(name, items) for name, (kind, items) in inputs.sets.items() if kind == "prompts"]
    if open_sets:
        prompts = [p for _, items in open_sets for p in items for _ in coefficients]
        say(f"generating {len(prompts)} completions ({sum(len(i) for _, i in open_sets)} prompts x "
            f"{len(coefficients)} coefficients)")
        rows = [[(vector, c)] for _, items in open_sets for _ in items for c in coefficients]
        values, texts = _generatescore_texts(work, "generation", config, prompts, rows, score)
        start = 0
        for name, items in open_sets:
            block = len(items) * len(coefficients)
            scores[name] = values[start : start + block].reshape(len(items), len(coefficients))
            samples[name] = texts[start : start + block]
            start += block
    for k, (name, (kind, items)) in enumerate(inputs.sets.items()):
        if kind == "questions":  # units named by the set's position: a set's name comes from a file name
            rows = [[(vector, c)] for _ in items for c in coefficients]
            scores[name], _, _ = steered_ab(work, f"ab-set{k}", items, rows, len(coefficients),
                                            batch_size=config.batch_size)
    zero, primary = coefficients.index(0.0), coefficients.index(config.primary_coefficient)
    report: dict[str, Any] = {"coefficients": coefficients, "primary": config.primary_coefficient, "sets": {}}
    per_item: dict[str, np.ndarray] = {}
    for name, (kind, items) in inputs.sets.items():
        direction = 1 if kind == "questions" else concept["direction"]
        s = scores[name]
        cells = []
        for j, c in enumerate(coefficients):
            if c == 0.0:
                continue
            change = direction * np.sign(c) * (s[:, j] - s[:, zero])
            cell = {"coefficient": c, "score": summarise(s[:, j], seed=config.seed).to_dict(),
                    "effect": t_interval(change).to_dict(),
                    "against": proportion_interval(int((change < 0).sum()), int(np.isfinite(change).sum())).to_dict()}
            if kind == "prompts":
                cell["samples"] = [samples[name][i * len(coefficients) + j] for i in range(min(config.keep_samples, len(items)))]
            cells.append(cell)
        effect = direction * np.sign(config.primary_coefficient) * (s[:, primary] - s[:, zero])
        per_item[name] = effect
        spread = float(np.nanstd(s[:, zero], ddof=1))
        report["sets"][name] = {
            "kind": kind, "measure": "P(matching answer)" if kind == "questions" else concept["measure"],
            "n_items": len(items), "unsteered": summarise(s[:, zero], seed=config.seed).to_dict(),
            "unsteered_sd": spread, "cells": cells, "primary_effect": t_interval(effect).to_dict(),
            "standardised_primary_effect": t_interval(effect / spread).to_dict() if spread > 0 else None,
            "per_item_primary_effect": effect.tolist(), "per_item_unsteered": s[:, zero].tolist()}
    id_set = report["sets"][ID]
    ratios = {}
    for name, info in report["sets"].items():
        if name == ID:
            continue
        same = info["measure"] == id_set["measure"]
        # The rule's own ratio (robustness.ood), so that the table shows the interval the verdict reads.
        ratio = {k: float(v) for k, v in ood_ratio(per_item[name], per_item[ID], scores[name][:, zero],
                                                    scores[ID][:, zero], standardise=not same).items()}
        entry = {"mean": ratio["ratio"], "low": ratio["low"], "high": ratio["high"], "n": int(ratio["n"]),
                 "scale": "raw effects" if same else
                 f"standardised effects (each set's effect over the {OOD_SCALE}): the sets are measured differently"}
        if not ratio["bounded"]:
            entry["note"] = ("the in-distribution effect is not significantly non-zero at this size: Fieller's interval "
                             "is unbounded" if math.isfinite(ratio["ratio"]) else "no common scale (an unsteered "
                             "spread is 0) or too few items")
        ratios[name] = entry
    report["ood_over_id"] = ratios
    return report, {name: scores[name] for name in inputs.sets}


# ------------------------------------------------------------------------------- sample size


def _sample_size(work: UnitRunner, config: RobustnessConfig, inputs: _Inputs, fitted: _Fitted, concept: dict[str, Any],
                 score: Scorer, base: dict[str, np.ndarray]) -> dict[str, Any]:
    kind, items = inputs.sets[ID]
    items = items[: config.sample_size_prompts or None]
    n_items = len(items)
    limit = min(fitted.positive.shape[0], fitted.negative.shape[0])
    sizes = [n for n in config.sample_sizes if n < limit] + [limit]
    skipped = [n for n in config.sample_sizes if n >= limit]
    layer = fitted.layer
    full = fitted.vector.directions[layer]
    norm = float(full.norm())
    rng = np.random.default_rng(config.seed)
    vectors, cosines = [], np.zeros((len(sizes), config.subsets))
    for i, n in enumerate(sizes):
        for r in range(config.subsets):
            if n == limit and r > 0:  # the full split: every subset is the same vector
                vectors.append(vectors[-1])
                cosines[i, r] = cosines[i, 0]
                continue
            if fitted.paired:
                chosen = rng.choice(fitted.positive.shape[0], n, replace=False)
                pos_rows, neg_rows = chosen, chosen
            else:
                pos_rows = rng.choice(fitted.positive.shape[0], n, replace=False)
                neg_rows = rng.choice(fitted.negative.shape[0], n, replace=False)
            if n == limit:
                # The full split: every row of both classes (labelled by the smaller class's count).
                pos_rows, neg_rows = np.arange(fitted.positive.shape[0]), np.arange(fitted.negative.shape[0])
            diff = fitted.positive[pos_rows].mean(0) - fitted.negative[neg_rows].mean(0)
            unit = diff / diff.norm().clamp_min(1e-12)
            cosines[i, r] = float(unit @ full / norm)
            vectors.append(SteeringVector({layer: unit * norm}, fitted.vector.metadata))
    c = config.primary_coefficient
    distinct = {id(v): v for v in vectors}
    order = list(distinct)
    direction = 1 if kind == "questions" else concept["direction"]
    if kind == "prompts":
        rows = [[(distinct[k], c)] for _ in items for k in order]
        values, _ = _generatescore_texts(work, "sample-size", config, [p for p in items for _ in order], rows, score)
        steered = values.reshape(n_items, len(order))
    else:
        rows = [[(distinct[k], c)] for _ in items for k in order]
        steered, _, _ = steered_ab(work, "sample-size-ab", items, rows, len(order), batch_size=config.batch_size)
    zero = list(config.coefficients).index(0.0)
    unsteered = base[ID][:n_items, zero]
    column = {k: j for j, k in enumerate(order)}
    effects = np.zeros((len(sizes), config.subsets, n_items))
    for i in range(len(sizes)):
        for r in range(config.subsets):
            j = column[id(vectors[i * config.subsets + r])]
            effects[i, r] = direction * np.sign(c) * (steered[:, j] - unsteered)
    fit = fit_saturation(sizes, effects, n_boot=config.n_boot, seed=config.seed)
    per_n = [{"n": n, "is_full_split": n == limit,
              "rows": [int(fitted.positive.shape[0]), int(fitted.negative.shape[0])] if n == limit else [n, n], "effect": t_interval(effects[i].mean(0)).to_dict(),
              "subset_effects": effects[i].mean(1).tolist(), "cosine_to_full": {
                  "mean": float(cosines[i].mean()), "min": float(cosines[i].min()), "values": cosines[i].tolist()}}
             for i, n in enumerate(sizes)]
    return {"coefficient": c, "n_items": n_items, "subsets": config.subsets, "sizes": sizes,
            "skipped_sizes": skipped, "per_n": per_n, "fit": fit.to_dict(), "plateau_limit": config.plateau_limit,
            "effects": effects.tolist(),
            "unit": "examples per class (pairs for paired data)",
            "design": ("each subset's direction is rescaled to the full vector's norm, so only the direction varies; "
                       "effects at the primary coefficient on the first in-distribution items, against the same "
                       "unsteered completions")}


# ------------------------------------------------------------------------------- adversarial


def _vocabulary(model: Model, texts: list[str]) -> list[int]:
    special = set(model.tokenizer.all_special_ids)
    ids = {t for row in model.encode(texts, add_special_tokens=False) for t in row}
    return sorted(ids - special)


def _adversarial(model: Model, config: RobustnessConfig, inputs: _Inputs, fitted: _Fitted, concept: dict[str, Any],
                 score: Scorer, work: UnitRunner) -> dict[str, Any]:
    kind, items = inputs.sets[ID]
    if config.adversarial_seeds == 0:
        return {"status": "skipped", "reason": "adversarial_seeds=0 in the config"}
    c = config.primary_coefficient
    seeds = items[: config.adversarial_seeds]
    texts = [q.question for q in items] if kind == "questions" else list(items)
    train_texts = (inputs.train_positive + inputs.train_negative if inputs.mode == "texts"
                   else [t for p in inputs.train_pairs for t in (p.positive, p.negative)] if inputs.mode == "pairs"
                   else [q.question for q in inputs.train_questions])
    vocabulary = _vocabulary(model, texts + train_texts)
    token_info: dict[str, Any] | None = None
    if kind == "questions":
        prefix, tail = template_ids(model, answer_prefix="(")
        all_readouts = []
        for q in items:
            text = str(model.format_chat(q.question)) + "(" if model.has_chat_template else q.question + "("
            letters = _letter_ids(model, text, [q.matching_letter, q.not_matching_letter])
            all_readouts.append(SteeredReadout(model, fitted.vector, c, "ab", tuple(prefix), tuple(tail),
                                               letters=(letters[0], letters[1]), batch_size=config.batch_size))
        readouts = all_readouts[: len(seeds)]
        # The scale a reversal is measured against: the readout's mean effect on every held-out question.
        id_effects = np.array([r([ids])[0] for r, ids in zip(all_readouts, content_ids(model, texts), strict=True)])
        scale_note = f"mean readout effect on all {len(items)} held-out questions"
    else:
        # Tokens chosen on the in-distribution prompts that are not seeds (when there are any), the
        # scale measured on the seeds: choosing and measuring on the same prompts would inflate it.
        choose = texts[len(seeds):] or texts
        promoted, suppressed, token_info = indicative_tokens(model, fitted.vector, c, choose, config.readout_tokens,
                                                             batch_size=config.batch_size)
        prefix, tail = template_ids(model)
        shared = SteeredReadout(model, fitted.vector, c, "tokens", tuple(prefix), tuple(tail),
                                positive=tuple(promoted), negative=tuple(suppressed), batch_size=config.batch_size)
        readouts = [shared] * len(seeds)
        id_effects = shared(content_ids(model, list(seeds)))
        scale_note = (f"mean readout effect on the {len(seeds)} seed prompts (the tokens were chosen on "
                      f"{'the other ' if len(choose) < len(texts) else 'all '}{len(choose)} in-distribution prompts)")
    seed_texts = [q.question for q in seeds] if kind == "questions" else list(seeds)
    seed_ids = content_ids(model, seed_texts)
    typical = float(np.nanmean(id_effects))
    threshold = -config.reversal_margin * abs(typical)
    items = [{"seed_index": i, "method": method, "readout": readout.to_dict(), "ids": list(ids)}
             for i, (readout, ids) in enumerate(zip(readouts, seed_ids, strict=True))
             for method in (*_searches(config), CONTROL)]
    shared = {"config": config, "vector": fitted.vector, "vocabulary": vocabulary, "threshold": threshold}
    identity = fingerprint(numeric(shared))
    found = work.run(_search_unit, "search", shared, identity, items)
    searches = [(item["seed_index"], item["method"], SearchResult.from_dict(result))
                for item, result in zip(items, found, strict=True)]
    entries = _check_found(work, config, readouts, seed_texts, [s for s in searches if s[1] != CONTROL], score,
                           concept, kind)
    control = _check_found(work, config, readouts, seed_texts, [s for s in searches if s[1] == CONTROL], score,
                           concept, kind, generate=False)
    n_seeds = len(seed_texts)
    already = sorted({e["seed_index"] for e in entries if e["seed_already_reversed"]})
    by_seed: dict[int, list[bool]] = {}
    for entry in entries:
        by_seed.setdefault(entry["seed_index"], []).append(entry["reversal"])
    n_found = sum(any(v) for v in by_seed.values())

    def flags(rows: list[dict[str, Any]], method: str) -> list[float | None]:
        """Per seed: 1.0 when ``method`` reversed it, 0.0 when not, None for a seed already reversed."""
        reversed_ = {e["seed_index"]: e["reversal"] for e in rows if e["method"] == method}
        return [None if i in already else float(reversed_[i]) for i in range(n_seeds)]

    def rate(rows: list[dict[str, Any]], method: str) -> dict[str, Any]:
        count = sum(e["reversal"] for e in rows if e["method"] == method)
        return {**proportion_interval(count, n_seeds - len(already)).to_dict(), "reversed": int(count)}

    per_method = {m: rate(entries, m) for m in _searches(config)}
    found_ppl = [e["perplexity"]["found"] for e in entries if e["reversal"]]
    seed_ppl = [e["perplexity"]["seed"] for e in entries if e["reversal"]]
    return {"readout": {**readouts[0].to_dict(), "tokens": token_info,
                        "definition": "signed effect of the steering on the next-token readout (see readout.py); "
                                      "< 0 is the steering moving against its coefficient"},
            "readouts_per_seed": [r.to_dict() for r in readouts] if kind == "questions" else None,
            "coefficient": c, "budget_per_search": config.adversarial_budget, "vocabulary_size": len(vocabulary),
            "in_distribution_readout_effect": {**t_interval(id_effects).to_dict(), "over": scale_note},
            "threshold": threshold,
            "threshold_rule": f"a reversal is an edited input whose effect is below -{config.reversal_margin:g} x |mean "
                              "in-distribution readout effect|, from a seed that was not below it already",
            "seeds_already_reversed": already,
            "n_seeds": n_seeds, "seeds_with_reversal": proportion_interval(n_found, n_seeds).to_dict(),
            "per_method": per_method,
            "found_over_seed_perplexity": log_ratio_interval(np.array(found_ppl), np.array(seed_ppl)).to_dict()
            if found_ppl else None,
            "searches": entries,
            "control": {"method": CONTROL, "searches": control, "seeds_with_reversal": rate(control, CONTROL),
                        "definition": "random edits of the same budget: the evolutionary search's breeding (its edit "
                                      "operators and crossover) with selection switched off, scored by the same "
                                      "readout (interp_steer.adversarial.random_search)"},
            "paired": {"search_method": PAIRED_SEARCH, "search": flags(entries, PAIRED_SEARCH),
                       "control": flags(control, CONTROL),
                       "definition": "per seed prompt: 1 when the method found an input below the threshold, 0 when "
                                     "not, null for a seed already below it unedited (left out)"}}


def _searches(config: RobustnessConfig) -> tuple[str, ...]:
    return SEARCHES if config.gcg else SEARCHES[:1]


def _search_unit(model: Model, shared: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """One work unit: one adversarial search from one seed (``item``: its readout, ids and method)."""
    config, vocabulary, threshold = shared["config"], shared["vocabulary"], shared["threshold"]
    readout = SteeredReadout.from_dict(model, shared["vector"], item["readout"], batch_size=config.batch_size)
    seed = config.seed + item["seed_index"]
    if item["method"] == "evolutionary":
        found = evolutionary_search(readout, item["ids"], vocabulary, budget=config.adversarial_budget,
                                    population=config.population, elite=max(1, config.population // 4),
                                    threshold=threshold, stop_when_found=False, seed=seed)
    elif item["method"] == CONTROL:
        # Its own random stream: the control's edits should not copy the search's first draws.
        found = random_search(readout, item["ids"], vocabulary, budget=config.adversarial_budget,
                              population=config.population, elite=max(1, config.population // 4),
                              threshold=threshold, stop_when_found=False, seed=seed + 1_000_003)
    else:
        found = gcg_search(readout, item["ids"], vocabulary, suffix_length=config.suffix_length,
                           budget=config.adversarial_budget, threshold=threshold, stop_when_found=False, seed=seed)
    return found.to_dict()


@torch.inference_mode()
def _content_perplexity(model: Model, prefix: Sequence[int], contents: list[list[int]]) -> np.ndarray:
    """Perplexity of each content under the unsteered model, after the chat template's prefix."""
    sequences = [[*prefix, *c] for c in contents]
    nll = token_nll(model, sequences, [max(1, len(prefix))] * len(sequences))
    return np.array([math.exp(float(x.mean())) if x.numel() else float("nan") for x in nll])


def _check_found(work: UnitRunner, config: RobustnessConfig, readouts: list[SteeredReadout], seed_texts: list[str],
                 searches: list, score: Scorer, concept: dict[str, Any], kind: str,
                 generate: bool = True) -> list[dict[str, Any]]:
    """Every search's best input with its replayable ids, perplexities and (open-ended, ``generate``)
    a check by greedy generation, steered against unsteered, scored by the study's scorer."""
    if not searches:
        return []
    model = work.model
    prefix = list(readouts[0].prefix)
    best = [list(found.best_ids) for _, _, found in searches]
    seeds = [list(found.seed_ids) for _, _, found in searches]
    ppl_best = _content_perplexity(model, prefix, best)
    ppl_seed = _content_perplexity(model, prefix, seeds)
    texts = [model.tokenizer.decode(ids) for ids in best]
    generated: np.ndarray | None = None
    reversal = [bool(found.found and best[k] != seeds[k] and not found.seed_value < found.threshold)
                for k, (_, _, found) in enumerate(searches)]
    checked = [k for k in range(len(searches)) if reversal[k]]  # only reversals need the check
    if kind == "prompts" and generate and checked:
        c = config.primary_coefficient
        rows = [[(readouts[0].vector, x)] for _ in checked for x in (0.0, c)]
        values, _ = _generatescore_texts(work, "found-check", config, [texts[k] for k in checked for _ in range(2)],
                                         rows, score)
        generated = np.full(len(searches), np.nan)
        generated[checked] = concept["direction"] * np.sign(c) * (values[1::2] - values[0::2])
    entries = []
    for k, (i, method, found) in enumerate(searches):
        entry = {"seed_index": i, "method": method, "seed_text": seed_texts[i], "text": texts[k],
                 "content_ids": best[k], "seed_content_ids": seeds[k],
                 "text_round_trips": model.encode([texts[k]], add_special_tokens=False)[0] == best[k],
                 "effect": found.best_value, "seed_effect": found.seed_value,
                 # A reversal is something the search found: an edit, from a seed not reversed already.
                 "reversal": reversal[k],
                 "seed_already_reversed": bool(found.seed_value < found.threshold),
                 "evaluations": found.evaluations, "edits": found.diff,
                 "history": found.history, "stop_reason": found.stop_reason,
                 "perplexity": {"seed": float(ppl_seed[k]), "found": float(ppl_best[k])}}
        if generated is not None and reversal[k]:
            entry["generation_check"] = {"effect": float(generated[k]), "agrees": bool(generated[k] < 0),
                                         "measure": concept["measure"], "tokens": config.max_new_tokens}
        entries.append(entry)
    return entries


def replay(model: Model, vector: SteeringVector, readout: dict[str, Any], content_ids: Sequence[int]) -> float:
    """The effect of one stored adversarial input, recomputed: ``readout`` is the result's
    ``adversarial.readout`` (or, for A/B, the seed's entry of ``readouts_per_seed``) and
    ``content_ids`` a search's ``content_ids``. It equals the stored ``effect`` up to float noise."""
    return float(SteeredReadout.from_dict(model, vector, readout)([list(content_ids)])[0])


# -------------------------------------------------------------------------------- perplexity


def _perplexity(model: Model, config: RobustnessConfig, inputs: _Inputs, vector: SteeringVector,
                work: UnitRunner) -> dict[str, Any]:
    coefficients = list(config.perplexity_coefficients)
    zero = coefficients.index(0.0)
    out: dict[str, Any] = {"coefficients": coefficients, "corpora": {}}
    cap = config.max_perplexity_texts
    corpora = (("neutral", inputs.neutral[:cap]), ("on_topic", inputs.heldout_texts[:cap]))
    size = config.batch_size // 4 or 1  # texts per unit: one batch of every coefficient
    items = [{"corpus": name, "texts": texts[start : start + size]}
             for name, texts in corpora for start in range(0, len(texts), size)]
    shared = {"config": config, "vector": vector}
    results = work.run(_perplexity_unit, "perplexity", shared, fingerprint(numeric(shared)), items)
    for name, texts in corpora:
        nll = np.concatenate([r["nll"] for item, r in zip(items, results, strict=True) if item["corpus"] == name],
                             axis=1)  # [coefficients, texts]
        log_ratio = nll - nll[zero]
        cells = [{"coefficient": c, "ratio": log_ratio_interval(np.exp(nll[j]), np.exp(nll[zero])).to_dict()}
                 for j, c in enumerate(coefficients)]
        out["corpora"][name] = {"n_texts": len(texts), "unsteered_perplexity": float(np.exp(nll[zero].mean())),
                                "cells": cells, "per_text_log_ratio": log_ratio.tolist(),
                                "rise": {f"{int(round(100 * level))}%": _crossing(coefficients, log_ratio, level,
                                                                                  config.n_boot, config.seed)
                                         for level in (0.1, 0.5)}}
    return out


def _perplexity_unit(model: Model, shared: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """One work unit: the NLL per token of a batch of texts at every perplexity coefficient."""
    config = shared["config"]
    sweep = perplexity_under_steering(model, item["texts"], shared["vector"], list(config.perplexity_coefficients),
                                      batch_size=len(item["texts"]), seed=config.seed)
    return {"nll": np.asarray(sweep.values[0], dtype=np.float64)}


def _crossing(coefficients: list[float], log_ratio: np.ndarray, level: float, n_boot: int, seed: int) -> dict[str, Any]:
    """Per sign of the coefficient, the smallest |c| at which the geometric-mean perplexity ratio
    reaches ``1 + level`` (linear interpolation of the mean log ratio in |c|), with a percentile
    bootstrap interval over texts; ``None`` where the grid never reaches it."""
    target = math.log1p(level)
    out = {}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, log_ratio.shape[1], size=(n_boot, log_ratio.shape[1])) if n_boot else None
    for side, sign in (("positive", 1), ("negative", -1)):
        idx = sorted([j for j, c in enumerate(coefficients) if c * sign > 0 or c == 0], key=lambda j: abs(coefficients[j]))
        xs = np.array([abs(coefficients[j]) for j in idx])
        if len(xs) < 2:
            out[side] = None
            continue

        def cross(curve: np.ndarray, xs: np.ndarray = xs) -> float:
            above = np.nonzero(curve >= target)[0]
            if not above.size or above[0] == 0:
                return float("nan") if not above.size else 0.0
            k = above[0]
            return float(xs[k - 1] + (target - curve[k - 1]) * (xs[k] - xs[k - 1]) / (curve[k] - curve[k - 1]))

        point = cross(np.nanmean(log_ratio[idx], axis=1))
        low = high = float("nan")
        if draws is not None:
            # A replicate that never reaches the level crosses "beyond the grid": +inf, so order
            # statistics (no interpolation) give an unbounded upper end instead of NaN.
            boot = np.array([cross(np.nanmean(log_ratio[idx][:, d], axis=1)) for d in draws])
            boot = np.where(np.isfinite(boot), boot, np.inf)
            low = float(np.percentile(boot, 2.5, method="lower"))
            high = float(np.percentile(boot, 97.5, method="higher"))
        out[side] = {"coefficient": point if math.isfinite(point) else None, "low": low, "high": high,
                     "reached": math.isfinite(point), "largest_tested": float(xs[-1])}
    return out


__all__ = ["replay", "robustness", "run", "units_key"]
