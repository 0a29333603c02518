"""Steered evaluations that need only forward passes: CAA's A/B test and the perplexity cost.

:func:`ab_eval` — CAA's behavioural measure. Each question is shown as a chat user turn, the
assistant's answer is opened with ``(``, and the probability of the behaviour-matching letter is
read from the next-token distribution, normalised over the two answer letters. Steering is added
from the user prompt's last token on (CAA's rule: ``positions="after_prompt"``). A whole (question × coefficient) block runs as one batched
forward with a per-row delta.

:func:`perplexity_under_steering` — mean negative log-likelihood of a neutral corpus as the
steering coefficient grows; contrastive-activation-engineering work reports that steering raises
perplexity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from interp_steer._types import Positions
from interp_steer.data import ABQuestion, reject_bare_string
from interp_steer.directions import SteeringVector
from interp_steer.fields import SteeringField
from interp_steer.generation import format_prompts
from interp_steer.likelihood import token_nll
from interp_steer.models import Model
from interp_steer.stats import GEOMETRIC_METRICS, summarise
from interp_steer.steering import RowDeltas, RowMix, Steerer, steer


@dataclass(frozen=True)
class SweepResult:
    """A score per (layer, coefficient) cell: ``values[l][c]`` per item, with bootstrap intervals."""

    measure: str
    layers: list[int]
    coefficients: list[float]
    mean: list[list[float]]
    low: list[list[float]]
    high: list[list[float]]
    values: np.ndarray  # [layers, coefficients, items]
    n_items: int

    def to_dict(self, *, per_item: bool = False) -> dict:
        out = {"measure": self.measure, "layers": self.layers, "coefficients": self.coefficients,
               "mean": self.mean, "ci_low": self.low, "ci_high": self.high, "n_items": self.n_items,
               "ci": "95% percentile bootstrap over items",
               "aggregate": "geometric mean" if self.measure in GEOMETRIC_METRICS else "mean"}
        if per_item:
            out["values"] = self.values.tolist()
        return out

    def __repr__(self) -> str:
        from interp_steer.display import sweep_line

        return sweep_line(self)

    def _repr_html_(self) -> str:
        from interp_steer.display import sweep_html

        return sweep_html(self)

    def to_frame(self):
        """Tidy rows (layer, coefficient, metric) with ``value``, ``low``, ``high``, ``n``
        (:mod:`interp_steer.frames`)."""
        from interp_steer.frames import sweep_frame

        return sweep_frame(self)


def _summarise(measure: str, layers: list[int], coefficients: list[float], values: np.ndarray, seed: int) -> SweepResult:
    """Per-cell summaries over items by :func:`interp_steer.stats.summarise`: perplexity as a geometric
    mean, like everywhere else in the package; an all-NaN cell (e.g. perplexity when every completion
    is empty) is reported as NaN."""
    intervals = [[summarise(values[i, j], metric=measure, seed=seed) for j in range(len(coefficients))]
                 for i in range(len(layers))]
    return SweepResult(
        measure=measure, layers=layers, coefficients=coefficients,
        mean=[[iv.mean for iv in row] for row in intervals],
        low=[[iv.low for iv in row] for row in intervals],
        high=[[iv.high for iv in row] for row in intervals],
        values=values, n_items=values.shape[-1],
    )


def answer_letter_ids(model: Model, text: str, letters: Sequence[str]) -> list[int]:
    """The token id of each answer letter (``"A"``, ``"B"``, ...) as the one next token after
    ``text``, a formatted A/B question ending with ``(``: the ids whose probabilities an A/B readout
    compares. Raises when the tokenizer merges ``(`` with a letter or splits a letter, so that the
    answer is not one next token."""
    base = model.encode([text])[0]
    ids = []
    for letter in letters:
        full = model.encode([text + letter])[0]
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ValueError(
                f"the tokenizer merges '(' and {letter!r} (or splits the letter), so the answer "
                "letter is not one next token; A/B evaluation cannot read it on this model"
            )
        ids.append(full[-1])
    return ids


def _cells(model: Model, vector: Steerer, coefficients: Sequence[float | int], layers) -> tuple[list[float], list[int]]:
    """Validated coefficients and layers of a layer × coefficient sweep."""
    if not isinstance(vector, (SteeringVector, SteeringField)):
        raise TypeError(f"expected a SteeringVector or a SteeringField, got {type(vector).__name__}")
    coefficients = [float(c) for c in coefficients]
    if not coefficients:
        raise ValueError("coefficients is empty")
    vector.check_model(model)
    chosen = list(vector.layers) if layers is None else list(model.resolve_layers(layers))
    missing = [layer for layer in chosen if layer not in vector.layers]
    if missing:
        what = "field" if isinstance(vector, SteeringField) else "vector"
        raise ValueError(f"layers {missing} are not in the {what} (it has {list(vector.layers)})")
    return coefficients, chosen


def _steered_rows(model: Model, vector: Steerer, layer: int, coefficients: Sequence[float | int], n: int) -> RowDeltas | RowMix:
    """Rows ordered item-major: item i, coefficient j is row i * len(coefficients) + j. A field's
    update depends on the activation, so its rows are per-row coefficients (:class:`RowMix`)."""
    single = vector.select([layer])
    rows = [[(single, c)] for _ in range(n) for c in coefficients]
    return RowMix.from_rows(rows) if isinstance(single, SteeringField) else RowDeltas.from_rows(rows)


@torch.inference_mode()
def ab_probabilities(model: Model, questions: Sequence[ABQuestion], mix: RowMix | RowDeltas, n_cells: int,
                      batch_size: int) -> tuple[np.ndarray, list[list[int]], list[int]]:
    """P(matching letter), normalised over the two letters, ``[questions, cells]``, with a per-row
    steering (``mix``: item-major rows, question i, cell j is row i * n_cells + j), steered from the
    question's last token on like :func:`ab_eval`. Also each question's token ids (the formatted prompt and ``(``) and prompt end."""
    reject_bare_string(questions, "questions")
    texts, prompt_lengths = format_prompts(model, [q.question for q in questions], chat=None, system=None)
    texts = [t + "(" for t in texts]
    letters = [answer_letter_ids(model, t, [q.matching_letter, q.not_matching_letter]) for t, q in zip(texts, questions, strict=True)]
    token_ids = model.encode(texts)
    values = np.zeros((len(questions), n_cells))
    per_batch = max(1, batch_size // n_cells)
    for start in range(0, len(questions), per_batch):
        items = list(range(start, min(start + per_batch, len(questions))))
        rows = [token_ids[i] for i in items for _ in range(n_cells)]
        ids, mask = model.pad(rows, padding_side="left")
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        prompt_end = [prompt_lengths[i] for i in items for _ in range(n_cells)]
        part = mix.rows(slice(start * n_cells, (items[-1] + 1) * n_cells))
        with steer(model, part, positions="after_prompt", prompt_end=prompt_end):
            logits = model.hf_model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                    logits_to_keep=1).logits[:, -1].float()
        for k, i in enumerate(items):
            pair = logits[k * n_cells : (k + 1) * n_cells][:, letters[i]]
            values[i] = torch.softmax(pair, dim=-1)[:, 0].cpu().numpy()
    return values, token_ids, prompt_lengths


@torch.inference_mode()
def ab_eval(
    model: Model,
    questions: Sequence[ABQuestion],
    vector: SteeringVector | SteeringField,
    coefficients: Sequence[float | int] = (-2, -1, 0, 1, 2),
    layers: int | Sequence[int] | None = None,
    *,
    batch_size: int = 8,
    seed: int = 0,
) -> SweepResult:
    """P(behaviour-matching letter), normalised over the two letters, per layer × coefficient.

    ``layers`` defaults to every layer of ``vector``; each layer is steered on its own.
    """
    reject_bare_string(questions, "questions")
    questions = list(questions)
    if not questions:
        raise ValueError("questions is empty")
    coefficients, chosen = _cells(model, vector, coefficients, layers)
    texts, prompt_lengths = format_prompts(model, [q.question for q in questions], chat=None, system=None)
    texts = [t + "(" for t in texts]
    letters = [answer_letter_ids(model, t, [q.matching_letter, q.not_matching_letter]) for t, q in zip(texts, questions, strict=True)]
    token_ids = model.encode(texts)
    values = np.zeros((len(chosen), len(coefficients), len(questions)))
    n_coef = len(coefficients)
    for li, layer in enumerate(chosen):
        for start in range(0, len(questions), batch_size):
            items = list(range(start, min(start + batch_size, len(questions))))
            rows = [token_ids[i] for i in items for _ in coefficients]
            ids, mask = model.pad(rows, padding_side="left")
            positions = (mask.cumsum(-1) - 1).clamp_min(0)
            prompt_end = [prompt_lengths[i] for i in items for _ in coefficients]  # row coordinates
            deltas = _steered_rows(model, vector, layer, coefficients, len(items))
            with steer(model, deltas, positions="after_prompt", prompt_end=prompt_end):
                logits = model.hf_model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                        logits_to_keep=1).logits[:, -1].float()
            for k, i in enumerate(items):
                pair = logits[k * n_coef : (k + 1) * n_coef][:, letters[i]]  # [coefficients, 2]
                values[li, :, i] = torch.softmax(pair, dim=-1)[:, 0].cpu().numpy()
    return _summarise("p_matching", chosen, coefficients, values, seed)


@torch.inference_mode()
def perplexity_under_steering(
    model: Model,
    corpus: Sequence[str],
    vector: SteeringVector | SteeringField,
    coefficients: Sequence[float | int],
    layers: int | Sequence[int] | None = None,
    *,
    batch_size: int = 8,
    seed: int = 0,
) -> SweepResult:
    """Mean per-token NLL of each text of ``corpus`` with ``vector`` added at every position, per
    layer × coefficient (``exp`` of it is the perplexity)."""
    reject_bare_string(corpus, "corpus")
    corpus = list(corpus)
    if not corpus:
        raise ValueError("corpus is empty")
    coefficients, chosen = _cells(model, vector, coefficients, layers)
    token_ids = model.encode(corpus)
    short = [i for i, ids in enumerate(token_ids) if len(ids) < 2]
    if short:
        raise ValueError(f"texts {short[:5]} have fewer than 2 tokens; nothing to predict")
    values = np.zeros((len(chosen), len(coefficients), len(corpus)))
    n_coef = len(coefficients)
    for li, layer in enumerate(chosen):
        for start in range(0, len(corpus), batch_size):
            items = list(range(start, min(start + batch_size, len(corpus))))
            sequences = [token_ids[i] for i in items for _ in coefficients]
            with steer(model, _steered_rows(model, vector, layer, coefficients, len(items))):
                nll = token_nll(model, sequences, [1] * len(sequences))
            for k, i in enumerate(items):
                for j in range(n_coef):
                    values[li, j, i] = float(nll[k * n_coef + j].mean())
    return _summarise("nll", chosen, coefficients, values, seed)





@dataclass(frozen=True)
class GenerationSweep:
    """Steered generations scored on every metric, per (layer, coefficient) cell.

    ``backfire["layer,coefficient"]`` is :meth:`interp_steer.stats.Backfire.to_dict` for that cell
    against coefficient 0; ``backfire_settings`` says on which metric, in which intended direction
    and with which noise floor (and where the floor came from)."""

    layers: list[int]
    coefficients: list[float]
    prompts: list[str]
    metrics: dict[str, SweepResult]  # metric name -> per-cell values over prompts
    samples: dict[str, list[str]]  # "layer,coefficient" -> the first few completions
    backfire: dict[str, dict]  # "layer,coefficient" -> backfire rate against coefficient 0
    backfire_settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"layers": self.layers, "coefficients": self.coefficients, "prompts": self.prompts,
                "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
                "samples": self.samples, "backfire": {**self.backfire_settings, "cells": self.backfire}}

    def __repr__(self) -> str:
        from interp_steer.display import generation_sweep_line

        return generation_sweep_line(self)

    def _repr_html_(self) -> str:
        from interp_steer.display import generation_sweep_html

        return generation_sweep_html(self)

    def to_frame(self):
        """Tidy rows (layer, coefficient, metric) for every metric and the backfire rate
        (:mod:`interp_steer.frames`)."""
        from interp_steer.frames import generation_sweep_frame

        return generation_sweep_frame(self)


FLOOR_LEVEL = 0.95
"""Level of the seed-estimated noise floor: a no-effect vector backfires on about 5 % of prompts."""


def generation_sweep(
    model: Model,
    prompts: Sequence[str],
    vector: SteeringVector | SteeringField,
    coefficients: Sequence[float | int],
    layers: int | Sequence[int] | None = None,
    *,
    max_new_tokens: int = 40,
    positions: Positions = "after_prompt",
    batch_size: int = 32,
    readout=None,
    scorers: Mapping[str, Callable[[list[str]], Sequence[float] | np.ndarray]] | None = None,
    backfire_metric: str = "vader",
    backfire_direction: int = 1,
    backfire_floor: float | str = "seeds",
    floor_temperature: float | int = 1.0,
    keep_samples: int = 3,
    seed: int = 0,
) -> GenerationSweep:
    """Generate for every prompt in every (layer, coefficient) cell and score the completions.

    For each layer, all coefficients run together: rows are (prompt, coefficient) pairs with a
    per-row delta, generated in batches (greedy). Scores are computed afterwards, unsteered: every
    built-in metric (:func:`~interp_steer.metrics.score_generations`) plus ``scorers`` (name ->
    function from completion texts to one score each), e.g. a user's toxicity classifier.

    **Backfire** (needs 0 among the coefficients): per cell, the fraction of prompts whose
    ``backfire_metric`` moved *against* the intended direction relative to the coefficient-0
    completion by more than a noise floor (:func:`~interp_steer.stats.backfire_rate`). The intended
    direction is ``backfire_direction × sign(coefficient)``: ``backfire_direction`` is +1 when
    positive coefficients are meant to raise the metric (the default, e.g. a vector built as
    positive − negative sentiment scored by VADER), −1 when they are meant to lower it (e.g. a
    detoxifying vector scored by toxicity, where lower is better). The floor:

    - ``"seeds"`` (default): :func:`~interp_steer.stats.noise_floor` at 95 % from two *unsteered*
      sampled completions per prompt (temperature ``floor_temperature``, seeds ``seed`` and
      ``seed + 1``): how much the metric moves between two completions of the same prompt for no
      reason, so that a vector with no effect backfires on about 5 % of prompts. It costs two extra
      unsteered generations per prompt and is itself estimated from the prompts (use ≥ 20);
    - a number: a floor you chose, on the metric's scale;
    - ``0.0``: any move against the direction counts — with greedy decoding any change of text moves
      the score, so a vector with no effect then backfires on up to half the prompts.

    Prompts whose score is NaN (e.g. the probe readout of an empty completion) are counted apart
    (``n_nan``), neither as successes nor as backfires.
    """
    reject_bare_string(prompts, "prompts")
    from interp_steer.generation import generate
    from interp_steer.metrics import score_generations, vader_valence
    from interp_steer.stats import backfire_rate, noise_floor
    from interp_steer.steering import Steering

    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty")
    if backfire_direction not in (1, -1):
        raise ValueError(f"backfire_direction must be +1 (positive coefficients raise {backfire_metric}) or -1 "
                         f"(they lower it), got {backfire_direction}")
    if not (backfire_floor == "seeds" or (isinstance(backfire_floor, (int, float)) and backfire_floor >= 0)):
        raise ValueError(f"backfire_floor must be 'seeds' or a number >= 0, got {backfire_floor!r}")
    scorers = dict(scorers or {})
    coefficients, chosen = _cells(model, vector, coefficients, layers)
    n_p, n_c = len(prompts), len(coefficients)

    def score(outputs) -> dict[str, np.ndarray]:
        scores = score_generations(model, outputs, readout=readout)
        texts = [g.text for g in outputs]
        for name, scorer in scorers.items():
            values = np.asarray(scorer(texts), dtype=float)
            if values.shape != (len(texts),):
                raise ValueError(f"scorer {name!r} returned shape {values.shape} for {len(texts)} texts; "
                                 "it must return one number per text")
            scores[name] = values
        return scores

    def score_one(outputs, name: str) -> np.ndarray:
        """One metric only (the noise floor needs no perplexity forward passes)."""
        texts = [g.text for g in outputs]
        if name in scorers:
            return np.asarray(scorers[name](texts), dtype=float)
        if name == "vader":
            return vader_valence(texts)
        return score(outputs)[name]

    per_metric: dict[str, np.ndarray] = {}
    samples: dict[str, list[str]] = {}
    for li, layer in enumerate(chosen):
        rows = [p for p in prompts for _ in coefficients]
        deltas = _steered_rows(model, vector, layer, coefficients, n_p)
        outputs = generate(model, rows, steering=Steering(deltas, positions=positions),
                           max_new_tokens=max_new_tokens, batch_size=batch_size)
        for name, flat in score(outputs).items():
            per_metric.setdefault(name, np.zeros((len(chosen), n_c, n_p)))
            per_metric[name][li] = flat.reshape(n_p, n_c).T
        for j, c in enumerate(coefficients):
            samples[f"{layer},{c:g}"] = [outputs[i * n_c + j].text for i in range(min(keep_samples, n_p))]
    if backfire_metric not in per_metric:
        raise ValueError(f"backfire_metric {backfire_metric!r} is not scored; scored: {sorted(per_metric)} "
                         "(add it with scorers=, or pass readout= for probe_valence)")

    backfire: dict[str, dict] = {}
    settings: dict = {"metric": backfire_metric, "direction": backfire_direction,
                      "definition": "(score(c) - score(0)) * direction * sign(c) < -floor, per prompt"}
    if 0.0 in coefficients:
        if backfire_floor == "seeds":
            unsteered = generate(model, prompts * 2, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                 temperature=floor_temperature, seed=seed)  # repeats draw independent samples
            values = score_one(unsteered, backfire_metric)
            floor = noise_floor(values[:n_p], values[n_p:], level=FLOOR_LEVEL)
            source = (f"seeds: {FLOOR_LEVEL:.0%} quantile of the difference between two unsteered sampled "
                      f"completions per prompt (temperature {floor_temperature:g})")
        else:
            floor = float(backfire_floor)
            source = "given" if floor > 0 else "none: any move against the intended direction counts"
        settings.update(floor=floor, floor_source=source)
        zero = coefficients.index(0.0)
        for li, layer in enumerate(chosen):
            values = per_metric[backfire_metric][li]
            for j, c in enumerate(coefficients):
                if c != 0.0:
                    rate = backfire_rate(values[j], values[zero], direction=backfire_direction * (1 if c > 0 else -1),
                                         floor=floor, floor_source=source)
                    backfire[f"{layer},{c:g}"] = rate.to_dict()
    metrics = {name: _summarise(name, chosen, coefficients, values, seed) for name, values in per_metric.items()}
    return GenerationSweep(chosen, coefficients, prompts, metrics, samples, backfire, settings)


def anti_steerable_fraction(result: SweepResult, *, floor: float | int = 0.0, level: float = 0.95) -> dict:
    """Per-question reliability of an A/B sweep (:func:`ab_eval`): how many questions steering moves
    the wrong way (Tan et al., arXiv 2407.12404, call them *anti-steerable*).

    ``cells["layer,coefficient"]``: for each non-zero coefficient ``c``, the fraction of questions
    whose P(matching) moved against ``sign(c)`` by more than ``floor`` relative to coefficient 0
    (:func:`~interp_steer.stats.backfire_rate`; ``floor`` is on the probability scale, 0 counts any
    move; the A/B readout is deterministic, so there is no sampling noise to estimate a floor from).
    ``slope["layer"]``: Tan et al.'s per-example definition — the fraction of questions whose
    least-squares slope of the log-odds of P(matching) over all coefficients is negative. Needs 0
    among the coefficients for ``cells`` and at least two coefficients for ``slope``. JSON-ready."""
    from interp_steer.stats import backfire_rate, proportion_interval

    if result.measure != "p_matching":
        raise ValueError(f"anti_steerable_fraction reads an A/B sweep (measure 'p_matching'), got {result.measure!r}")
    coefficients = np.asarray(result.coefficients, dtype=float)
    values = np.asarray(result.values, dtype=float)  # [layers, coefficients, questions]
    out: dict = {"floor": float(floor), "measure": "P(matching answer)",
                 "definition": ("cells: fraction of questions with (P(c) - P(0)) * sign(c) < -floor; slope: fraction of "
                                "questions whose least-squares slope of logit P(matching) over the coefficients is "
                                "negative (Tan et al., arXiv 2407.12404)"),
                 "cells": {}, "slope": {}}
    if 0.0 in result.coefficients:
        zero = result.coefficients.index(0.0)
        for li, layer in enumerate(result.layers):
            for j, c in enumerate(result.coefficients):
                if c != 0.0:
                    out["cells"][f"{layer},{c:g}"] = backfire_rate(
                        values[li, j], values[li, zero], direction=1 if c > 0 else -1, floor=floor, level=level).to_dict()
    if coefficients.size >= 2 and np.ptp(coefficients) > 0:
        p = np.clip(values, 1e-6, 1 - 1e-6)
        log_odds = np.log(p) - np.log1p(-p)
        centred = coefficients - coefficients.mean()
        slopes = np.einsum("c,lcq->lq", centred, log_odds) / (centred @ centred)  # [layers, questions]
        for li, layer in enumerate(result.layers):
            finite = np.isfinite(slopes[li])
            interval = proportion_interval(int((slopes[li][finite] < 0).sum()), int(finite.sum()), level=level)
            out["slope"][str(layer)] = {**interval.to_dict(), "mean_slope": float(np.nanmean(slopes[li]))}
    return out


__all__ = ["GenerationSweep", "SweepResult", "ab_eval", "ab_probabilities", "answer_letter_ids", "anti_steerable_fraction",
           "generation_sweep",
           "perplexity_under_steering"]
