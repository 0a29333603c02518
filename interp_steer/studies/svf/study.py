"""The Steering Vector Fields comparison: a learned field against the static vector, on the same data.

:func:`run` runs the study from a :class:`~interp_steer.studies.svf.config.SvfConfig` and returns a
:class:`~interp_steer.studies.svf.result.SvfResult`, one call per stage (read it as the table of
contents); :func:`svf` builds the config from keywords and calls it. ``result.save(out)`` writes
``svf.json``, the field and the vector, the figures and ``report.md``. The stages:

1. **Inputs.** A concept from two corpora (default: the built-in persona A, hopeful, against
   persona B, dark), contrast pairs, or CAA-style A/B questions (then split into training and
   held-out questions by the seed); held-out inputs are the built-in prompts (or the user's), which
   take no part in training, or the held-out questions.
2. **Fit** both on the same training rows, read at ``position`` (A/B: the answer letter): the vector
   is the mean difference, rescaled at each layer to that layer's mean residual norm; the field is
   :func:`~interp_steer.fields.fit_scorer` on the same activations, whose step is ``c · ‖h‖ₘ · ĝ(h)``
   with the same norm, so a coefficient moves an activation by the same length either way.
   ``layers="auto"`` fits the field at every candidate layer and keeps the window of adjacent layers
   with the lowest mean held-out scorer loss (training data only).
3. **Evaluate** on the held-out inputs at every coefficient, vector and field steering all chosen
   layers at once from the prompt's last token on: open-ended, one greedy completion per prompt and
   cell scored by the scorer (VADER by default) and by its perplexity under the unsteered model; A/B,
   P(matching answer) from one batched forward per block of questions. The backfire noise floor comes
   from control cells in the same grid: ``floor_draws`` random directions per prompt and coefficient
   size, each as long as the vector's (and the field's) step at the same layers, decoded greedily like
   every other cell (A/B: read like every other cell). It is the symmetrised 95 % quantile of the
   score changes they make (:func:`~interp_steer.studies.rules.svf.control_floor`): greedy text that
   steering leaves unchanged cannot backfire, while any real perturbation changes the text and moves
   the score both ways, so the reference is a perturbation of the same size with no concept in it,
   which then backfires on 5 % of prompts.
4. **Context dependence** of the field per layer: the mean pairwise cosine of its directions at the
   activations it actually steers (each held-out input's unsteered transcript, from the prompt's last
   token on); the vector's is 1 by construction.
5. **Long-form**: the primary cells' completions (vector, field and unsteered, at the primary
   coefficient) continued to ``long_tokens``; the effect on the first, middle and last third of the
   generated tokens.
6. **Multi-attribute**: persona A vs baseline and persona B vs baseline, one field and one vector
   each, read by their own probe readouts; each attribute's effect steered alone and both together.
7. **Claims**, each judged at the primary coefficient by its registered rule (``svf.control``,
   ``svf.backfire``, ``svf.long_form``, ``svf.multi_attribute``: :mod:`interp_steer.studies.rules.svf`).

Intervals (95 %, over held-out prompts or questions): per-cell score means, percentile bootstrap
(:func:`~interp_steer.stats.summarise`); effects, shifts and paired differences, Student-t; backfire
rates, Wilson; perplexity ratios, t on the per-prompt log ratio (geometric means); retentions,
Fieller.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp_steer.activations import Activations, _forward_collect, collect_activations
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
from interp_steer.evaluation import FLOOR_LEVEL
from interp_steer.fields import SteeringField, WeakLayerWarning, context_dependence, fit_scorer
from interp_steer.generation import Generation, format_prompts, generate
from interp_steer.metrics import ProbeReadout, completion_perplexity, vader_valence
from interp_steer.models import Model, load_model
from interp_steer.stats import (
    backfire_rate,
    log_ratio_interval,
    proportion_interval,
    ratio_of_means,
    summarise,
    t_interval,
)
from interp_steer.steering import RowMix, Steering
from interp_steer.studies._common import Stopwatch, describe_items, load_items, score_texts
from interp_steer.studies._units import UnitRunner, steered_ab, steered_generations
from interp_steer.studies.rules.svf import control_floor
from interp_steer.studies.svf.claims import judge_claims
from interp_steer.studies.svf.config import SvfConfig
from interp_steer.studies.svf.result import METHODS, SvfResult
from interp_steer.units import (
    BackendSpec,
    LocalBackend,
    RayBackend,
    Unit,
    fingerprint,
    numeric,
    open_store,
    own_backend,
    run_key,
    run_units,
    text_hash,
)

Texts = Sequence[str] | str | Path | None
"""A corpus or prompt list: texts, a file path, or ``None`` for the built-in one."""

Scorer = Callable[[list[str]], Any]
"""A function from completion texts to one number each (higher = more of the concept)."""


def run(
    model: Model | str | None,
    config: SvfConfig,
    *,
    positive: Texts = None,
    negative: Texts = None,
    pairs: Sequence[ContrastPair] | str | Path | None = None,
    questions: Sequence[ABQuestion] | str | Path | None = None,
    prompts: Texts = None,
    attributes: tuple[Texts, Texts, Texts] | None = None,
    scorer: Scorer | None = None,
    scorer_name: str | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    units: str | Path | None = None,
    backend: str | BackendSpec | LocalBackend | RayBackend | None = None,
    fresh: bool = False,
) -> SvfResult:
    """Run the SVF comparison; one line per stage (see the module docstring).

    The concept: ``positive`` and ``negative`` texts, or ``pairs`` (contrast pairs), or ``questions``
    (A/B questions, CAA's format; split into training and held-out questions), each a list or a file
    path; none of them: the built-in persona A (positive) and persona B (negative) corpora.
    ``prompts``: held-out open-ended prompts (default: built-in). ``attributes``: the two attribute
    corpora and their baseline for the multi-attribute test (default: built-in persona A, persona B,
    baseline). ``scorer``: completion texts to numbers (default: VADER compound valence).
    ``model`` is a :class:`Model` or a spec for :func:`~interp_steer.load_model`.

    The open-ended grid's generation runs as work units of a few prompts × every cell, the A/B grid
    and the multi-attribute generations as units of one batch each (:mod:`interp_steer.units`):
    ``units=DIR`` keeps finished ones so that a re-run skips them (``fresh=True`` discards them);
    ``backend`` says where they run. The context-dependence forward passes and the long-form scoring
    are light and re-run.
    """
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions,
                        prompts=prompts, path_ok=True)
    clock = Stopwatch(log)
    model = model if isinstance(model, Model) else load_model(model)
    clock.lap("load_model")
    inputs = _inputs(config, positive, negative, pairs, questions, prompts, attributes)
    score = scorer or vader_valence
    name = scorer_name or ("vader" if scorer is None else getattr(scorer, "__name__", "scorer"))
    concept = _concept(config, inputs, score, name)
    fitted = _fit(model, config, inputs, progress)
    clock.say(f"steering layers {list(fitted.field.layers)} ({fitted.rule})")
    clock.lap("fit")
    store = open_store(units, run_key(model, config, inputs.data), fresh=fresh, log=clock.say)
    with own_backend(backend, model) as runner:
        work = UnitRunner(model, store, runner, "", progress)
        if inputs.mode == "ab":
            evaluation = _evaluate_ab(work, config, fitted, inputs.heldout_questions)
        else:
            evaluation = _evaluate_open(model, config, fitted, inputs.prompts, score, concept["direction"], progress,
                                        clock.say, store=store, backend=runner)
        clock.lap("evaluation")
        context = _context(model, fitted, evaluation.transcripts)
        clock.lap("context_dependence")
        if inputs.mode == "ab":
            long_form = {"status": "skipped", "reason": LONG_FORM_AB}
        else:
            long_form = _long_form(model, config, evaluation.long_generations, inputs.prompts, score,
                                   concept["direction"])
        clock.lap("long_form")
        if config.multi_attribute:
            unsteered = evaluation.unsteered_generations if inputs.mode != "ab" else None
            multi = _multi_attribute(work, config, fitted, inputs, unsteered)
        else:
            multi = {"status": "skipped", "reason": "multi_attribute=False in the config"}
        clock.lap("multi_attribute")
    claims = judge_claims(config, evaluation.per_prompt, direction=concept["direction"], long_form=long_form,
                          multi=multi, mode=inputs.mode)
    return SvfResult(
        model={"name": model.name, "source": str(model.source), "n_layers": model.n_layers, "d_model": model.d_model},
        config=config, mode=inputs.mode, data=inputs.data, concept=concept, layers=fitted.describe(),
        field=fitted.field, vector=fitted.vector, inputs=evaluation.items, unsteered=evaluation.unsteered,
        cells=evaluation.cells, noise_floor=evaluation.floor, anti_steerable=evaluation.anti_steerable,
        context_dependence=context, long_form=long_form, multi_attribute=multi, claims=claims,
        per_prompt={k: np.asarray(v).tolist() for k, v in evaluation.per_prompt.items()}, timings=clock.total(),
    )


def units_key(model: Any, config: SvfConfig, *, positive: Texts = None, negative: Texts = None,
              pairs: Sequence[ContrastPair] | str | Path | None = None,
              questions: Sequence[ABQuestion] | str | Path | None = None, prompts: Texts = None,
              attributes: tuple[Texts, Texts, Texts] | None = None) -> dict[str, Any]:
    """The key of a run's units (:func:`~interp_steer.units.run_key`), found without loading the
    model: ``model`` is a :class:`Model` or a ``(spec, dtype, device)`` tuple."""
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions,
                        prompts=prompts, path_ok=True)
    return run_key(model, config, _inputs(config, positive, negative, pairs, questions, prompts, attributes).data)


def svf(
    model: Model | str | None = None,
    *,
    positive: Texts = None,
    negative: Texts = None,
    pairs: Sequence[ContrastPair] | str | Path | None = None,
    questions: Sequence[ABQuestion] | str | Path | None = None,
    prompts: Texts = None,
    attributes: tuple[Texts, Texts, Texts] | None = None,
    scorer: Scorer | None = None,
    scorer_name: str | None = None,
    config: SvfConfig | None = None,
    quick: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    units: str | Path | None = None,
    backend: str | BackendSpec | LocalBackend | RayBackend | None = None,
    fresh: bool = False,
    **overrides: Any,
) -> SvfResult:
    """The SVF comparison in one call: the settings come from ``config``, or from
    :meth:`SvfConfig.quick` when ``quick``, with keyword ``overrides`` (e.g. ``layers=(12, 13)``,
    ``coefficients=(-0.2, 0, 0.2)``); everything else is passed to :func:`run`."""
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions,
                        prompts=prompts, path_ok=True)
    if config is None:
        config = SvfConfig.quick(**overrides) if quick else SvfConfig(**overrides)
    elif overrides:
        config = replace(config, **overrides)
    return run(model, config, positive=positive, negative=negative, pairs=pairs, questions=questions,
               prompts=prompts, attributes=attributes, scorer=scorer, scorer_name=scorer_name, progress=progress,
               log=log, units=units, backend=backend, fresh=fresh)


LONG_FORM_AB = ("A/B mode reads the concept as P(matching answer), which has no open-ended score to follow over a "
                "long completion; run with --positive/--negative or --pairs for it")


# ------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, eq=False)
class _Inputs:
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


def _inputs(config: SvfConfig, positive: Any, negative: Any, pairs: Any, questions: Any, prompts: Any,
            attributes: Any) -> _Inputs:
    given = {"positive/negative": positive is not None or negative is not None, "pairs": pairs is not None,
             "questions": questions is not None}
    if sum(given.values()) > 1:
        raise ValueError(f"give one concept: two corpora (positive and negative), pairs, or questions; got "
                         f"{[k for k, v in given.items() if v]}")
    if (positive is None) != (negative is None):
        raise ValueError("positive and negative go together: give both corpora (or neither for the built-in personas)")
    cap = config.max_passages
    data: dict[str, Any] = {}
    pos_texts: list[str] = []
    neg_texts: list[str] = []
    pair_list: list[ContrastPair] = []
    train_q: list[ABQuestion] = []
    held_q: list[ABQuestion] = []
    if given["questions"]:
        mode = "ab"
        loaded, source = load_items(questions, None, load_ab_questions, "questions", ABQuestion)
        if len(loaded) < 4:
            raise ValueError(f"questions ({source}) has {len(loaded)} questions; the study needs at least 4 "
                             "(two to train on, two held out)")
        order = np.random.default_rng(config.seed).permutation(len(loaded))
        n_held = min(max(round(config.question_split * len(loaded)), 2), len(loaded) - 2)
        held_q = [loaded[i] for i in sorted(order[:n_held].tolist())]
        train_q = [loaded[i] for i in sorted(order[n_held:].tolist())]
        if config.max_prompts:
            held_q = held_q[: config.max_prompts]
        data["questions"] = {**describe_items(loaded, source, len(loaded)), "n_train": len(train_q),
                             "n_heldout": len(held_q),
                             "split": f"seeded random split, {config.question_split:g} held out (seed {config.seed})"}
    elif given["pairs"]:
        mode = "pairs"
        loaded, source = load_items(pairs, None, load_pairs, "pairs", ContrastPair)
        pair_list = loaded[:cap] if cap else loaded
        if len(pair_list) < 4:
            raise ValueError(f"pairs ({source}) has {len(pair_list)} pairs; the study needs at least 4")
        data["pairs"] = describe_items(pair_list, source, len(loaded))
    else:
        mode = "texts"
        for name, value, builtin in (("positive", positive, "persona_a"), ("negative", negative, "persona_b")):
            loaded, source = load_items(value, builtin, load_corpus, name, str)
            used = loaded[:cap] if cap else loaded
            if len(used) < 4:
                raise ValueError(f"{name} ({source}) has {len(used)} texts; the study needs at least 4")
            data[name] = describe_items(used, source, len(loaded))
            (pos_texts if name == "positive" else neg_texts).extend(used)
    loaded, source = load_items(prompts, "prompts", load_prompts, "prompts", str)
    used_prompts = loaded[: config.max_prompts] if config.max_prompts else loaded
    if len(used_prompts) < 2:
        raise ValueError(f"prompts ({source}) has {len(used_prompts)} prompts; the study needs at least 2")
    if mode != "ab" or config.multi_attribute:
        data["prompts"] = describe_items(used_prompts, source, len(loaded))
    triple = attributes or (None, None, None)
    if len(triple) != 3:
        raise ValueError("attributes must be (attribute A texts, attribute B texts, baseline texts)")
    attribute_texts: list[list[str]] = []
    if config.multi_attribute:
        for name, value, builtin in zip(("attribute_a", "attribute_b", "baseline"), triple,
                                        ("persona_a", "persona_b", "baseline"), strict=True):
            loaded, source = load_items(value, builtin, load_corpus, name, str)
            used = loaded[:cap] if cap else loaded
            if len(used) < max(config.folds, 4):
                raise ValueError(f"{name} ({source}) has {len(used)} texts; the multi-attribute test needs at least "
                                 f"{max(config.folds, 4)}")
            data[name] = describe_items(used, source, len(loaded))
            attribute_texts.append(used)
    else:
        attribute_texts = [[], [], []]
    return _Inputs(mode, pos_texts, neg_texts, pair_list, train_q, held_q, used_prompts,
                   (attribute_texts[0], attribute_texts[1], attribute_texts[2]), data)


def _concept(config: SvfConfig, inputs: _Inputs, score: Scorer, name: str) -> dict[str, Any]:
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
    pos = inputs.positive if inputs.mode == "texts" else [p.positive for p in inputs.pairs]
    neg = inputs.negative if inputs.mode == "texts" else [p.negative for p in inputs.pairs]
    gap = float(np.nanmean(score_texts(score, pos)) - np.nanmean(score_texts(score, neg)))
    if not math.isfinite(gap) or gap == 0:
        raise ValueError(f"the scorer {name!r} gives the positive and negative training texts the same mean score "
                         f"({gap}), so the intended direction is undefined; pass direction=1 or -1")
    return {"measure": name, "direction": 1 if gap > 0 else -1,
            "direction_source": (f"auto: mean {name}(positive texts) - mean {name}(negative texts) = {gap:+.3f} on the "
                                 "training texts"), "training_gap": gap, **labels}


# ---------------------------------------------------------------------------------------- fit


@dataclass(frozen=True, eq=False)
class _Fitted:
    """The vector and the field at the chosen layers, and how the layers were chosen."""

    field: SteeringField
    vector: SteeringVector
    candidates: tuple[int, ...]
    fits: dict[int, Any]  # layer -> LayerFit, every candidate
    rule: str
    position: str
    paired: bool
    training: dict[str, tuple[list[str], Activations]]  # side -> (texts, activations at the candidates)
    resid_norm: dict[int, float]  # every candidate layer's step unit

    def describe(self) -> dict[str, Any]:
        chosen = list(self.field.layers)
        weak = [layer for layer in chosen if self.fits[layer].heldout_accuracy < 0.6]
        return {"chosen": chosen, "candidates": list(self.candidates), "rule": self.rule,
                "position": self.position, "paired": self.paired,
                "fits": {str(layer): fit.to_dict() for layer, fit in sorted(self.fits.items())},
                "weak_chosen_layers": weak,
                "resid_norm": {str(k): v for k, v in sorted(self.resid_norm.items())}}


def candidate_layers(n_layers_model: int, band: Sequence[float], at_least: int) -> tuple[int, ...]:
    """Layers ``floor(low · n) .. ceil(high · n) − 1`` (``band`` as fractions of the depth), widened
    by neighbours on both sides until there are ``at_least`` of them (or every layer)."""
    low = max(0, math.floor(band[0] * n_layers_model))
    high = min(n_layers_model, max(low + 1, math.ceil(band[1] * n_layers_model)))
    while high - low < min(at_least, n_layers_model):
        if low > 0:
            low -= 1
        if high - low < at_least and high < n_layers_model:
            high += 1
    return tuple(range(low, high))


def choose_window(fits: dict[int, Any], size: int) -> tuple[int, ...]:
    """The ``size`` adjacent layers (of ``fits``' keys, consecutive integers) with the lowest mean
    held-out loss; ties to the higher mean held-out AUROC, then the earlier window."""
    layers = sorted(fits)
    size = min(size, len(layers))
    best, best_key = None, None
    for start in range(len(layers) - size + 1):
        window = layers[start : start + size]
        if window[-1] - window[0] != size - 1:
            continue
        key = (float(np.mean([fits[x].heldout_loss for x in window])),
               -float(np.mean([fits[x].heldout_auroc for x in window])), start)
        if best_key is None or key < best_key:
            best, best_key = tuple(window), key
    if best is None:
        raise ValueError(f"no {size} adjacent layers among {layers}")
    return best


def _fit(model: Model, config: SvfConfig, inputs: _Inputs, progress: bool | None) -> _Fitted:
    """Training activations at the candidate layers (one collection for both sides), the field at
    every candidate, the layer window, and the vector from the very same rows."""
    if config.layers == "auto":
        candidates = candidate_layers(model.n_layers, config.layer_band, config.n_layers)
    else:
        candidates = tuple(model.resolve_layers(list(config.layers)))
    if inputs.mode == "ab":
        source: Any = ab_contrast_pairs(model, inputs.train_questions)
        negative: Any = None
        position: str | int = "last"
    elif inputs.mode == "pairs":
        source, negative, position = inputs.pairs, None, config.position
    else:
        source, negative, position = inputs.positive, inputs.negative, config.position
    pos_texts, neg_texts, digest, paired = contrast_texts(model, source, negative)
    acts = collect_activations(model, pos_texts + neg_texts, layers=list(candidates), position=position,
                               progress=progress)
    pos, neg = acts.split(len(pos_texts), len(neg_texts))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakLayerWarning)  # weak chosen layers are reported, not warned about
        field = fit_scorer(pos, neg, form=config.form, epochs=config.epochs, paired=paired, seed=config.seed,
                           drop_weak="keep",
                           metadata={"dataset_hash": digest, "position": position_label(position, False),
                                     "description": "svf study: positive vs negative"})
    fits = dict(field.metadata.training)
    norms = dict(field.metadata.resid_norm)
    if config.layers == "auto":
        chosen = choose_window(fits, config.n_layers)
        band = config.layer_band
        rule = (f"auto: the {len(chosen)} adjacent layers with the lowest mean held-out loss of the field's scorer "
                f"among layers {candidates[0]}-{candidates[-1]} ({band[0]:g}-{band[1]:g} of the depth), on the "
                "training data only")
    else:
        chosen = candidates
        rule = "given"
    field = field.select(list(chosen))
    raw = from_activations(pos, neg, metadata={"dataset_hash": digest, "description": "svf study: mean difference"})
    raw = raw.select(list(chosen))
    # The vector's unit is the field's: the same rows' mean residual norm, so equal c, equal step length.
    scaled = SteeringVector(raw.directions, replace(raw.metadata, resid_norm=dict(field.metadata.resid_norm)))
    vector = scaled.normalised("resid")
    training = {"positive": (pos_texts, pos), "negative": (neg_texts, neg)}
    return _Fitted(field, vector, candidates, fits, rule, position_label(position, False), paired, training, norms)


# --------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, eq=False)
class _Evaluation:
    """Per-cell summaries, the per-prompt numbers the claims use, and the unsteered transcripts."""

    items: list[str]
    unsteered: dict[str, Any]
    cells: list[dict[str, Any]]
    floor: dict[str, Any]
    anti_steerable: dict[str, Any] | None
    per_prompt: dict[str, np.ndarray]
    transcripts: tuple[list[list[int]], list[int]]  # token ids, and where each prompt ends
    unsteered_generations: list[Generation] | None = None
    long_generations: list[Generation] | None = None  # per prompt: unsteered, vector, field at the primary c


def _grid_cells(config: SvfConfig) -> list[tuple[str, float]]:
    """The unsteered cell, then vector and field at every non-zero coefficient."""
    return [("unsteered", 0.0)] + [(method, c) for c in config.coefficients if c != 0.0 for method in METHODS]


def control_cells(config: SvfConfig) -> list[tuple[str, float]]:
    """The backfire floor's control cells: ``("control{k}", size)``, draw ``k`` of a random direction
    at each coefficient size ``|c|`` (a random direction's sign is itself random)."""
    sizes = sorted({abs(c) for c in config.coefficients if c != 0.0})
    return [(f"control{k}", size) for size in sizes for k in range(config.floor_draws)]


def control_direction(vector: SteeringVector, key: str, draw: int, seed: int) -> SteeringVector:
    """A random direction at each of ``vector``'s layers (isotropic Gaussian, fixed by ``seed``, the
    input's text ``key`` and ``draw``, so a unit of any size draws the same one), as long as
    ``vector`` is there: the same step length as the vector and the field at the same coefficient."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, digest, int(draw)])
    directions = {}
    for layer in vector.layers:
        r = torch.from_numpy(rng.standard_normal(vector.d_model))
        directions[layer] = (r / r.norm() * vector[layer].double().norm()).float()
    return SteeringVector(directions, replace(vector.metadata, description="svf study: random control direction"))


def _controls(config: SvfConfig, vector: SteeringVector, keys: list[str]) -> list[list[SteeringVector]]:
    """Per input, its ``floor_draws`` random control directions."""
    return [[control_direction(vector, key, k, config.seed) for k in range(config.floor_draws)] for key in keys]


FLOOR_SOURCE = ("control: {level:.0%} quantile of the symmetrised score changes (the {quantile:.0%} quantile of |change|) "
                "made by {draws} random direction(s) per input of the same length as the steering, at each coefficient "
                "size, {decoding}; a steering that changes nothing backfires on no input, a perturbation with no concept "
                "in it on 5 %")


def _floors(config: SvfConfig, controls: list[tuple[str, float]], control_scores: np.ndarray, base: np.ndarray,
            direction: int, decoding: str) -> dict[str, Any]:
    """The backfire floor at each coefficient size from the control cells' scores ``[inputs, cells]``
    (:func:`~interp_steer.studies.rules.svf.control_floor`, the function the backfire rule uses)."""
    sizes = sorted({size for _, size in controls})
    changes = {size: np.stack([(control_scores[:, j] - base) * direction for j, (_, s) in enumerate(controls)
                               if s == size], axis=-1) for size in sizes}
    floors = {size: float(control_floor(changes[size][None], FLOOR_LEVEL)[0]) for size in sizes}
    source = FLOOR_SOURCE.format(level=FLOOR_LEVEL, quantile=2 * FLOOR_LEVEL - 1, draws=config.floor_draws,
                                 decoding=decoding)
    if not all(math.isfinite(f) for f in floors.values()):
        source += "; no control completion could be scored at some size, whose floor is 0 (any move counts)"
        floors = {size: f if math.isfinite(f) else 0.0 for size, f in floors.items()}
    primary = abs(config.primary_coefficient)

    def finite(values: np.ndarray) -> np.ndarray:
        return values[np.isfinite(values)]

    moved = {f"{size:g}": float(np.mean(finite(changes[size]) != 0)) if finite(changes[size]).size else None
             for size in sizes}
    spread = {f"{size:g}": float(np.std(finite(changes[size]), ddof=1)) if finite(changes[size]).size > 1 else None
              for size in sizes}
    return {"value": floors[primary], "source": source, "level": FLOOR_LEVEL, "n_prompts": int(base.shape[0]),
            "draws": config.floor_draws, "coefficient": primary,
            "by_coefficient": {f"{size:g}": floors[size] for size in sizes}, "moved_fraction": moved,
            "reference_sd": spread, "floors": floors}


def _row_mix(fitted: _Fitted | _Steerers, cells: list[tuple[str, float]], n_items: int,
             controls: list[list[SteeringVector]] | None = None) -> RowMix:
    """Item-major rows (item i, cell j is row i * len(cells) + j), each steering one method."""
    return RowMix.from_rows(_mix_rows(fitted, cells, n_items, controls))


def _mix_rows(fitted: _Fitted | _Steerers, cells: list[tuple[str, float]], n_items: int,
              controls: list[list[SteeringVector]] | None = None) -> list[list[tuple]]:
    """:func:`_row_mix`'s rows as ``(term, coefficient)`` lists; a ``control{k}`` cell steers item
    ``i`` by ``controls[i][k]``."""
    terms = {"vector": fitted.vector, "field": fitted.field}
    rows = []
    for i in range(n_items):
        for method, c in cells:
            if method == "unsteered":
                rows.append([(fitted.vector, 0.0), (fitted.field, 0.0)])
            elif method.startswith("control"):
                if controls is None:
                    raise ValueError("control cells need their random directions")
                rows.append([(controls[i][int(method[len("control"):])], c)])
            else:
                rows.append([(terms[method], c)])
    return rows


def _evaluate_open(model: Model, config: SvfConfig, fitted: _Fitted, prompts: list[str], score: Scorer,
                   direction: int, progress: bool | None, say: Callable[[str], None], *, store: Any = None,
                   backend: Any = None) -> _Evaluation:
    cells, controls = _grid_cells(config), control_cells(config)
    n_p, n_c = len(prompts), len(cells)
    say(f"generating {n_p * n_c} completions ({n_p} prompts x {n_c} cells; the primary cells run on to "
        f"{config.long_tokens} tokens for the long-form test) and {n_p * len(controls)} greedy control completions "
        "(random directions) for the backfire floor")
    outputs, long_outputs, control_outputs = _grid_in_units(model, config, fitted, prompts, cells, store, backend,
                                                            progress)
    texts = [g.text for g in outputs]
    scored = score_texts(score, texts + [g.text for g in control_outputs])
    scores = scored[: n_p * n_c].reshape(n_p, n_c)
    control_scores = scored[n_p * n_c :].reshape(n_p, len(controls))
    perplexity = completion_perplexity(model, outputs).reshape(n_p, n_c)
    base, base_ppl = scores[:, 0], perplexity[:, 0]
    floor_info = _floors(config, controls, control_scores, base, direction, "greedy like the grid")
    floors = floor_info.pop("floors")
    source = floor_info["source"]
    unsteered = {"score": summarise(base, seed=config.seed).to_dict(),
                 "perplexity": summarise(base_ppl, metric="perplexity", seed=config.seed).to_dict(),
                 "samples": [outputs[i * n_c].text for i in range(min(config.keep_samples, n_p))]}
    summaries, per_prompt = [], {"unsteered_score": base, "unsteered_perplexity": base_ppl}
    for j, (method, c) in enumerate(cells[1:], start=1):
        per_prompt.setdefault(f"{method}_score", []).append(scores[:, j])
        per_prompt.setdefault(f"{method}_perplexity", []).append(perplexity[:, j])
        summaries.append(_cell(config, method, c, scores[:, j], base, direction, floors[abs(c)], source,
                               perplexity[:, j], base_ppl, [outputs[i * n_c + j].text for i in range(min(config.keep_samples, n_p))]))
    per_prompt = {k: np.asarray(v) for k, v in per_prompt.items()}
    per_prompt["control_score"] = _by_size(controls, control_scores, config.floor_draws)
    _, prompt_ends = format_prompts(model, prompts, chat=None, system=None)
    transcripts = [list(outputs[i * n_c].prompt_ids) + list(outputs[i * n_c].token_ids) for i in range(n_p)]
    return _Evaluation(list(prompts), unsteered, summaries, floor_info, None, per_prompt, (transcripts, prompt_ends),
                       [outputs[i * n_c] for i in range(n_p)], long_outputs)


def _by_size(controls: list[tuple[str, float]], values: np.ndarray, draws: int) -> np.ndarray:
    """Control scores ``[inputs, cells]`` as ``[sizes, inputs, draws]`` (sizes ascending, as
    :func:`control_cells` orders them)."""
    return values.reshape(values.shape[0], len(controls) // draws, draws).transpose(1, 0, 2)


def _generate_grid(model: Model, config: SvfConfig, fitted: _Fitted | _Steerers, prompts: list[str], cells: list[tuple[str, float]],
                   progress: bool | None) -> tuple[list[Generation], list[Generation], list[Generation]]:
    """Every prompt × cell (item-major), greedy. The primary cells (unsteered, vector and field at the
    primary coefficient) run on to ``long_tokens`` for the long-form test and are cut back to
    ``max_new_tokens`` for the grid: greedy decoding makes the first tokens of the long completion the
    short completion, so the long-form run costs only the extra tokens. The control cells (random
    directions, :func:`control_cells`) run with the other short cells. Returns the grid's completions,
    the long ones (per prompt: unsteered, vector, field) and the control ones (per prompt, item-major)."""
    primary = {("unsteered", 0.0), ("vector", config.primary_coefficient), ("field", config.primary_coefficient)}
    long_cells = [cell for cell in cells if cell in primary]
    short_cells = [cell for cell in cells if cell not in primary]
    controls = control_cells(config)
    directions = _controls(config, fitted.vector, prompts)
    n_p = len(prompts)

    def run(chosen: list[tuple[str, float]], tokens: int) -> list[Generation]:
        if not chosen:
            return []
        return generate(model, [p for p in prompts for _ in chosen],
                        steering=Steering(_row_mix(fitted, chosen, n_p, directions), positions="after_prompt"),
                        max_new_tokens=tokens, batch_size=config.batch_size, progress=progress)

    long_out = run(long_cells, config.long_tokens)
    short_out = run(short_cells + controls, config.max_new_tokens)
    n_s = len(short_cells) + len(controls)
    outputs = []
    for i in range(n_p):
        for cell in cells:
            if cell in primary:
                outputs.append(truncated(model, long_out[i * len(long_cells) + long_cells.index(cell)],
                                         config.max_new_tokens))
            else:
                outputs.append(short_out[i * n_s + short_cells.index(cell)])
    control_out = [short_out[i * n_s + len(short_cells) + k] for i in range(n_p) for k in range(len(controls))]
    return outputs, long_out, control_out


UNIT_PROMPTS = 4
"""Prompts per work unit of the open-ended grid (every cell of each)."""


def _grid_in_units(model: Model, config: SvfConfig, fitted: _Fitted, prompts: list[str], cells: list[tuple[str, float]],
                   store: Any, backend: Any, progress: bool | None
                   ) -> tuple[list[Generation], list[Generation], list[Generation]]:
    """:func:`_generate_grid` run as work units of :data:`UNIT_PROMPTS` prompts (:func:`_grid_unit`);
    the lists are item-major, so the units' lists concatenate."""
    chunks = [prompts[i : i + UNIT_PROMPTS] for i in range(0, len(prompts), UNIT_PROMPTS)]
    shared = {"config": config, "field": fitted.field, "vector": fitted.vector, "cells": cells}
    identity = fingerprint(numeric(shared))
    units = [Unit(f"grid-{i:04d}", {"shared": identity, "prompts": text_hash(chunk)}, item=chunk)
             for i, chunk in enumerate(chunks)]
    results = run_units(_grid_unit, units, model=model, shared=shared, store=store, backend=backend,
                        progress=progress, label="grid units")
    return tuple([Generation.from_record(g) for r in results for g in r[key]]  # type: ignore[return-value]
                 for key in ("outputs", "long", "control"))


def _grid_unit(model: Model, shared: dict[str, Any], prompts: list[str]) -> dict[str, Any]:
    """One work unit: every cell of ``prompts``, short and long completions, and the control cells."""
    fitted = _Steerers(shared["field"], shared["vector"])
    outputs, long_out, control_out = _generate_grid(model, shared["config"], fitted, prompts, shared["cells"], False)
    return {"outputs": [g.to_record() for g in outputs], "long": [g.to_record() for g in long_out],
            "control": [g.to_record() for g in control_out]}


@dataclass(frozen=True, eq=False)
class _Steerers:
    """What :func:`_generate_grid` and :func:`_row_mix` read of a :class:`_Fitted`."""

    field: SteeringField
    vector: SteeringVector


def truncated(model: Model, generation: Generation, tokens: int) -> Generation:
    """The completion as if generation had stopped after ``tokens`` new tokens (greedy decoding
    makes it exactly that completion)."""
    if len(generation.token_ids) <= tokens:
        return generation
    ids = generation.token_ids[:tokens]
    return replace(generation, text=model.tokenizer.decode(list(ids), skip_special_tokens=True), token_ids=ids,
                   finished=False)


def _cell(config: SvfConfig, method: str, c: float, steered: np.ndarray, base: np.ndarray, direction: int,
          floor: float, floor_source: str, ppl: np.ndarray | None, base_ppl: np.ndarray | None,
          samples: list[str]) -> dict[str, Any]:
    """One (method, coefficient) cell: mean score, signed shift, oriented effect, backfire rate and,
    for completions, the perplexity ratio to the unsteered completion of the same prompt."""
    sign = 1 if c > 0 else -1
    shift = steered - base
    change = shift * direction * sign
    scored = np.isfinite(change)
    out = {"method": method, "coefficient": c,
           "score": summarise(steered, seed=config.seed).to_dict(),
           "shift": t_interval(shift).to_dict(),
           "effect": t_interval(change).to_dict(),
           "backfire": backfire_rate(steered, base, direction=direction * sign, floor=floor,
                                     floor_source=floor_source).to_dict(),
           # Descriptive only: any move against the direction, however small (no floor). With greedy
           # decoding any change of text moves the score, so a steering that does nothing scores up to ~50 %.
           "against_any": proportion_interval(int((change[scored] < 0).sum()), int(scored.sum())).to_dict()}
    if ppl is not None and base_ppl is not None:
        out["perplexity_ratio"] = log_ratio_interval(ppl, base_ppl).to_dict()
    out["samples"] = samples
    return out


def _evaluate_ab(work: UnitRunner, config: SvfConfig, fitted: _Fitted, questions: list[ABQuestion]) -> _Evaluation:
    """The A/B grid: P(matching answer) per question and cell, as work units of one batch of questions."""
    cells, controls = _grid_cells(config), control_cells(config)
    directions = _controls(config, fitted.vector, [q.question for q in questions])
    rows = _mix_rows(fitted, cells + controls, len(questions), directions)
    values, token_ids, prompt_ends = steered_ab(work, "ab", questions, rows, len(cells) + len(controls),
                                                batch_size=config.batch_size, mix=True)
    values, control_values = values[:, : len(cells)], values[:, len(cells) :]
    base = values[:, 0]
    floor = _floors(config, controls, control_values, base, 1, "read like every other cell")
    floors = floor.pop("floors")
    summaries, per_prompt = [], {"unsteered_score": base}
    for j, (method, c) in enumerate(cells[1:], start=1):
        per_prompt.setdefault(f"{method}_score", []).append(values[:, j])
        summaries.append(_cell(config, method, c, values[:, j], base, 1, floors[abs(c)], floor["source"], None, None,
                               []))
    per_prompt = {k: np.asarray(v) for k, v in per_prompt.items()}
    per_prompt["control_score"] = _by_size(controls, control_values, config.floor_draws)
    anti = {method: _anti_steerable(config.coefficients, base, per_prompt[f"{method}_score"]) for method in METHODS}
    unsteered = {"score": summarise(base, seed=config.seed).to_dict(), "samples": []}
    return _Evaluation([q.question for q in questions], unsteered, summaries, floor,
                       {**anti, "definition": ANTI_STEERABLE}, per_prompt, (token_ids, prompt_ends))


ANTI_STEERABLE = ("fraction of held-out questions whose least-squares slope of logit P(matching) over all coefficients "
                  "(0 included) is negative, with a Wilson interval (Tan et al., arXiv 2407.12404)")


def _anti_steerable(coefficients: Sequence[float], base: np.ndarray, steered: np.ndarray) -> dict[str, Any]:
    """Tan et al.'s per-question measure for one method: the slope of the log-odds over coefficients."""
    nonzero = [c for c in coefficients if c != 0.0]
    xs = np.array(sorted([0.0, *nonzero]))
    columns = {0.0: base, **{c: steered[k] for k, c in enumerate(nonzero)}}
    p = np.clip(np.stack([columns[c] for c in xs]), 1e-6, 1 - 1e-6)  # [coefficients, questions]
    log_odds = np.log(p) - np.log1p(-p)
    centred = xs - xs.mean()
    slopes = centred @ log_odds / (centred @ centred)
    finite = np.isfinite(slopes)
    rate = proportion_interval(int((slopes[finite] < 0).sum()), int(finite.sum()))
    return {**rate.to_dict(), "mean_slope": float(np.nanmean(slopes))}


# ------------------------------------------------------------------------- context dependence


@torch.inference_mode()
def steered_activations(model: Model, transcripts: list[list[int]], prompt_ends: list[int], layers: Sequence[int],
                        hook_point: str = "resid_post", batch_size: int = 16) -> dict[int, torch.Tensor]:
    """Residuals at ``layers`` of each transcript at the positions a steering with
    ``positions="after_prompt"`` acts on (from the prompt's last token on; never the first token,
    the attention sink), stacked over transcripts: ``{layer: [rows, d_model]}``, unsteered."""
    names = [model.hook_name(layer, hook_point) for layer in layers]
    deepest = names[int(np.argmax(list(layers)))]
    kept: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    for start in range(0, len(transcripts), batch_size):
        rows, ends = transcripts[start : start + batch_size], prompt_ends[start : start + batch_size]
        ids, mask = model.pad(rows, padding_side="right")
        found = _forward_collect(model, ids, mask, names, deepest, "all")
        for layer, name in zip(layers, names, strict=True):
            for tokens, end in zip(torch.split(found[name], [len(r) for r in rows]), ends, strict=True):
                kept[layer].append(tokens[max(1, end - 1) :])
    return {layer: torch.cat(parts) for layer, parts in kept.items()}


def _context(model: Model, fitted: _Fitted, transcripts: tuple[list[list[int]], list[int]]) -> dict[str, Any]:
    """The field's context dependence per layer at the activations it steers, how far its directions
    sit from the vector's, and two diagnostics: the same measure on the training rows (where the
    scorer was fitted) and how large the steered activations are against the training rows' norm
    (a scorer read far outside its data tends to a fixed gradient)."""
    field = fitted.field
    rows = steered_activations(model, transcripts[0], transcripts[1], field.layers, field.hook_point)
    dependence = context_dependence(field, rows)
    training = {layer: torch.cat([acts.at(layer) for _, acts in fitted.training.values()]) for layer in field.layers}
    on_training = context_dependence(field, training)
    layers = list(field.layers)
    to_vector = []
    for layer in layers:
        g = field.direction(rows[layer], layer).double()
        unit = fitted.vector[layer].double() / fitted.vector[layer].double().norm()
        to_vector.append(float((g @ unit).mean()))
    return {"layers": layers, "field": [dependence[layer] for layer in layers], "vector": [1.0] * len(layers),
            "vector_note": "1 by construction: a steering vector has one direction everywhere (not measured)",
            "cosine_field_to_vector": to_vector, "n_rows": {str(layer): int(rows[layer].shape[0]) for layer in layers},
            "n_inputs": len(transcripts[0]), "measured_on": CONTEXT_MEASURED_ON,
            "field_on_training_rows": [on_training[layer] for layer in layers],
            "activation_norm_ratio": [float(rows[layer].norm(dim=-1).mean() / field.metadata.resid_norm[layer])
                                      for layer in layers],
            "definition": "mean pairwise cosine between the field's unit directions over all measured activations "
                          "(self-pairs excluded): (|sum g|^2 - n) / (n (n - 1))"}


CONTEXT_MEASURED_ON = ("the unsteered transcript of every held-out input (formatted prompt and greedy completion; A/B: "
                       "the formatted question and '('), at the positions the steering acts on: from the prompt's last "
                       "token on, never a text's first token (the attention sink)")


# ---------------------------------------------------------------------------------- long form


def thirds(model: Model, generation: Generation) -> list[str]:
    """The generated tokens (end-of-sequence and other special tokens dropped) cut into three equal
    parts by count, each decoded; empty strings when there are fewer than three tokens."""
    special = set(model.tokenizer.all_special_ids)
    ids = [t for t in generation.token_ids if t not in special]
    if len(ids) < 3:
        return ["", "", ""]
    a, b = len(ids) // 3, 2 * len(ids) // 3
    return [model.tokenizer.decode(part, skip_special_tokens=True) for part in (ids[:a], ids[a:b], ids[b:])]


def _long_form(model: Model, config: SvfConfig, outputs: list[Generation], prompts: list[str], score: Scorer,
               direction: int) -> dict[str, Any]:
    """The effect on the first, middle and last third of the long completions at the primary
    coefficient (``outputs``: per prompt, unsteered, vector, field; see :func:`_generate_grid`)."""
    c = config.primary_coefficient
    cells = [("unsteered", 0.0), ("vector", c), ("field", c)]
    parts = [thirds(model, g) for g in outputs]
    flat = [text for p in parts for text in p]
    values = score_texts(score, [t if t.strip() else "" for t in flat]).reshape(len(prompts), len(cells), 3)
    empty = np.array([[not t.strip() for t in p] for p in parts]).reshape(len(prompts), len(cells), 3)
    values = np.where(empty, np.nan, values)
    sign = 1 if c > 0 else -1
    effects = {method: (values[:, k] - values[:, 0]) * direction * sign for k, (method, _) in enumerate(cells) if k}
    out: dict[str, Any] = {"status": "measured", "coefficient": c, "tokens": config.long_tokens,
                           "parts": ["first third", "middle third", "last third"],
                           "unsteered_score": [summarise(values[:, 0, t], seed=config.seed).to_dict() for t in range(3)],
                           "n_words": {m: float(np.mean([len(g.text.split()) for g in outputs[k :: len(cells)]]))
                                       for k, (m, _) in enumerate(cells)},
                           "samples": {m: [outputs[i * len(cells) + k].text for i in range(min(config.keep_samples, len(prompts)))]
                                       for k, (m, _) in enumerate(cells)},
                           "definition": ("effect per third: (score of that third of the steered completion - score of the "
                                          "same third of the unsteered one) * direction * sign(c); thirds by generated "
                                          "token count; decay = last - first; retention = mean(last) / mean(first) "
                                          "(Fieller), what the long-form claim is judged on")}
    for method, e in effects.items():
        out[method] = {"effect": [t_interval(e[:, t]).to_dict() for t in range(3)],
                       "decay": t_interval(e[:, 2] - e[:, 0]).to_dict(),
                       "retention": ratio_of_means(e[:, 2], e[:, 0]).to_dict()}
    out["per_prompt"] = {method: e.tolist() for method, e in effects.items()}
    return out


# ---------------------------------------------------------------------------- multi-attribute


def _multi_attribute(work: UnitRunner, config: SvfConfig, fitted: _Fitted, inputs: _Inputs,
                     unsteered: list[Generation] | None) -> dict[str, Any]:
    """Two attributes (A vs baseline, B vs baseline), a field and a vector each at the study's layers,
    read by their own probe readouts (log-odds, mean-pooled completion at the middle steering layer,
    unsteered model): each attribute's effect steered alone and with the other at once. The unsteered
    completions are the evaluation's own (``unsteered``) when there are some. The generations run as
    work units of one batch each."""
    model, progress = work.model, work.progress
    texts = dict(zip(("A", "B", "baseline"), inputs.attributes, strict=True))
    layers = list(fitted.field.layers)
    readout_layer = layers[len(layers) // 2]
    acts = _attribute_activations(model, config, fitted, texts, layers, progress)
    if config.position == "mean":
        pooled = {k: a.at(readout_layer) for k, a in acts.items()}
    else:
        every = [t for k in ("A", "B", "baseline") for t in texts[k]]
        parts = collect_activations(model, every, layers=[readout_layer], position="mean",
                                    progress=progress).split(*(len(texts[k]) for k in ("A", "B", "baseline")))
        pooled = {k: part.values[:, 0] for k, part in zip(("A", "B", "baseline"), parts, strict=True)}
    attributes = {}
    for key in ("A", "B"):
        field, vector = _fit_pair(config, acts[key], acts["baseline"], key)
        readout = ProbeReadout.from_activations(pooled[key], pooled["baseline"], layer=readout_layer,
                                                labels=(inputs.data[f"attribute_{key.lower()}"]["source"],
                                                        inputs.data["baseline"]["source"]), folds=config.folds,
                                                seed=config.seed)
        attributes[key] = {"field": field, "vector": vector, "readout": readout, "n": len(texts[key])}
    c = config.primary_coefficient
    steered = [(f"{m}_{k}", ((m, k),)) for m in METHODS for k in ("A", "B")] + \
              [(f"{m}_AB", ((m, "A"), (m, "B"))) for m in METHODS]
    cells = ([] if unsteered else [("unsteered", ())]) + steered
    every_term = [(attributes[k][m], 0.0) for m in METHODS for k in ("A", "B")]  # each term appears in the mix
    rows = [every_term + [(attributes[k][m], c) for m, k in terms] for _ in inputs.prompts for _, terms in cells]
    prompts = inputs.prompts
    outputs = steered_generations(work, "multi-attribute", [p for p in prompts for _ in cells], rows,
                                  max_new_tokens=config.max_new_tokens, batch_size=config.batch_size, mix=True)
    if unsteered:  # the evaluation's unsteered completions, as cell 0 of every prompt
        outputs = [g for i, base in enumerate(unsteered) for g in [base, *outputs[i * len(cells) : (i + 1) * len(cells)]]]
        cells = [("unsteered", ()), *cells]
    n_c = len(cells)
    scored = readout_log_odds(model, [attributes["A"]["readout"], attributes["B"]["readout"]], [g.text for g in outputs])
    log_odds = {k: values.reshape(len(prompts), n_c) for k, values in zip(("A", "B"), scored, strict=True)}
    index = {name: j for j, (name, _) in enumerate(cells)}
    sign = 1 if c > 0 else -1
    per_prompt: dict[str, Any] = {}
    out: dict[str, Any] = {"status": "measured", "coefficient": c, "readout_layer": readout_layer,
                           "attributes": {}, "methods": {},
                           "definition": ("effect of attribute k = (readout_k log-odds of the steered completion - of the "
                                          "unsteered one) * sign(c); alone: steer k only; together: steer both at c; "
                                          "retention = mean(together) / mean(alone) (Fieller); off-target: the other "
                                          "attribute's readout when k alone is steered")}
    for k, info in attributes.items():
        r = info["readout"]
        out["attributes"][k] = {"label": r.positive_label, "n_passages": info["n"], "baseline": r.negative_label,
                                "readout": {"layer": r.layer, "heldout_accuracy": r.heldout_accuracy,
                                            "heldout_accuracy_std": r.heldout_accuracy_std, "folds": r.folds,
                                            "train_accuracy": r.train_accuracy,
                                            "measured_on": "attribute and baseline passages (mean-pooled), not completions"},
                                "field_heldout_accuracy": {str(layer): fit.heldout_accuracy for layer, fit in
                                                           info["field"].metadata.training.items()}}
    # How much the two attributes share: the vectors' cosine per layer (both contain "story, not neutral text").
    out["cosine_vectors_a_b"] = {str(k): v for k, v in attributes["A"]["vector"].cosine(attributes["B"]["vector"]).items()}
    for m in METHODS:
        entry = {}
        for k in ("A", "B"):
            other = "B" if k == "A" else "A"
            base = log_odds[k][:, 0]
            alone = (log_odds[k][:, index[f"{m}_{k}"]] - base) * sign
            together = (log_odds[k][:, index[f"{m}_AB"]] - base) * sign
            off = (log_odds[other][:, index[f"{m}_{k}"]] - log_odds[other][:, 0]) * sign
            per_prompt[f"{m}_{k}_alone"] = alone.tolist()
            per_prompt[f"{m}_{k}_together"] = together.tolist()
            entry[k] = {"alone": t_interval(alone).to_dict(), "together": t_interval(together).to_dict(),
                        "retention": ratio_of_means(together, alone).to_dict(),
                        "off_target": t_interval(off).to_dict()}
        out["methods"][m] = entry
    out["samples"] = {name: [outputs[i * n_c + j].text for i in range(min(config.keep_samples, len(prompts)))]
                      for j, (name, _) in enumerate(cells)}
    out["per_prompt"] = per_prompt
    return out


def _attribute_activations(model: Model, config: SvfConfig, fitted: _Fitted, texts: dict[str, list[str]],
                           layers: list[int], progress: bool | None) -> dict[str, Activations]:
    """The attribute and baseline corpora at ``layers`` (read at ``position``), reusing the training
    activations of a side whose texts are the same (the default: persona A and B are the concept's
    two sides), and collecting the rest in one pass."""
    reused: dict[str, Activations] = {}
    for key in ("A", "B", "baseline"):
        for side_texts, side_acts in fitted.training.values():
            if side_texts == texts[key] and fitted.position == position_label(config.position, False):
                index = [side_acts.layers.index(layer) for layer in layers]
                reused[key] = replace(side_acts, values=side_acts.values[:, index], layers=tuple(layers))
                break
    missing = [key for key in ("A", "B", "baseline") if key not in reused]
    if missing:
        every = [t for key in missing for t in texts[key]]
        parts = collect_activations(model, every, layers=layers, position=config.position,
                                    progress=progress).split(*(len(texts[key]) for key in missing))
        reused.update(zip(missing, parts, strict=True))
    return reused


def readout_log_odds(model: Model, readouts: Sequence[ProbeReadout], texts: list[str]) -> list[np.ndarray]:
    """:meth:`ProbeReadout.log_odds` of several readouts at one layer from a single collection
    (NaN for empty texts)."""
    reject_bare_strings(texts=texts)
    layer = readouts[0].layer
    if any(r.layer != layer for r in readouts):
        raise ValueError(f"readouts at different layers {[r.layer for r in readouts]}; score them one by one")
    out = [np.full(len(texts), np.nan) for _ in readouts]
    keep = [i for i, t in enumerate(texts) if t.strip()]
    if keep:
        acts = collect_activations(model, [texts[i] for i in keep], layers=[layer], position="mean")
        features = acts.values[:, 0].double().numpy()
        for values, readout in zip(out, readouts, strict=True):
            values[keep] = readout.pipeline.decision_function(features)
    return out


def _fit_pair(config: SvfConfig, positive: Activations, baseline: Activations,
              key: str) -> tuple[SteeringField, SteeringVector]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakLayerWarning)
        field = fit_scorer(positive, baseline, form=config.form, epochs=config.epochs, seed=config.seed,
                           drop_weak="keep", metadata={"description": f"svf study: attribute {key} vs baseline"})
    raw = from_activations(positive, baseline, metadata={"description": f"svf study: attribute {key} - baseline"})
    vector = SteeringVector(raw.directions, replace(raw.metadata, resid_norm=dict(field.metadata.resid_norm)))
    return field, vector.normalised("resid")


__all__ = ["units_key", "candidate_layers", "choose_window", "control_cells", "control_direction", "readout_log_odds", "run", "steered_activations",
           "svf", "thirds"]
