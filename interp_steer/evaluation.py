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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from interp_steer.data import ABQuestion
from interp_steer.directions import SteeringVector
from interp_steer.generation import format_prompts
from interp_steer.metrics import token_nll
from interp_steer.models import Model
from interp_steer.stats import Interval, bootstrap_mean
from interp_steer.steering import RowDeltas, steer


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
               "ci": "95% percentile bootstrap over items"}
        if per_item:
            out["values"] = self.values.tolist()
        return out


def _summarise(measure: str, layers: list[int], coefficients: list[float], values: np.ndarray, seed: int) -> SweepResult:
    def interval(cell: np.ndarray) -> Interval:
        # A cell can be all-NaN (e.g. perplexity when every completion is empty): report NaN.
        if np.isnan(cell).all():
            return Interval(float("nan"), float("nan"), float("nan"), 0)
        return bootstrap_mean(cell, seed=seed)

    intervals = [[interval(values[i, j]) for j in range(len(coefficients))] for i in range(len(layers))]
    return SweepResult(
        measure=measure, layers=layers, coefficients=coefficients,
        mean=[[iv.mean for iv in row] for row in intervals],
        low=[[iv.low for iv in row] for row in intervals],
        high=[[iv.high for iv in row] for row in intervals],
        values=values, n_items=values.shape[-1],
    )


def _letter_ids(model: Model, text: str, letters: Sequence[str]) -> list[int]:
    """Token id of each answer letter right after ``text`` (which ends with ``(``)."""
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


def _cells(model: Model, vector: SteeringVector, coefficients: Sequence[float | int], layers) -> tuple[list[float], list[int]]:
    """Validated coefficients and layers of a layer × coefficient sweep."""
    coefficients = [float(c) for c in coefficients]
    if not coefficients:
        raise ValueError("coefficients is empty")
    vector.check_model(model)
    chosen = list(vector.layers) if layers is None else list(model.resolve_layers(layers))
    missing = [layer for layer in chosen if layer not in vector.directions]
    if missing:
        raise ValueError(f"layers {missing} are not in the vector (it has {list(vector.layers)})")
    return coefficients, chosen


def _steered_rows(model: Model, vector: SteeringVector, layer: int, coefficients: Sequence[float | int], n: int) -> RowDeltas:
    """Rows ordered item-major: item i, coefficient j is row i * len(coefficients) + j."""
    single = vector.select([layer])
    return RowDeltas.from_rows([[(single, c)] for _ in range(n) for c in coefficients])


@torch.inference_mode()
def ab_eval(
    model: Model,
    questions: Sequence[ABQuestion],
    vector: SteeringVector,
    coefficients: Sequence[float | int] = (-2, -1, 0, 1, 2),
    layers: int | Sequence[int] | None = None,
    *,
    batch_size: int = 8,
    seed: int = 0,
) -> SweepResult:
    """P(behaviour-matching letter), normalised over the two letters, per layer × coefficient.

    ``layers`` defaults to every layer of ``vector``; each layer is steered on its own.
    """
    questions = list(questions)
    if not questions:
        raise ValueError("questions is empty")
    coefficients, chosen = _cells(model, vector, coefficients, layers)
    texts, prompt_lengths = format_prompts(model, [q.question for q in questions], chat=None, system=None)
    texts = [t + "(" for t in texts]
    letters = [_letter_ids(model, t, [q.matching_letter, q.not_matching_letter]) for t, q in zip(texts, questions, strict=True)]
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
    vector: SteeringVector,
    coefficients: Sequence[float | int],
    layers: int | Sequence[int] | None = None,
    *,
    batch_size: int = 8,
    seed: int = 0,
) -> SweepResult:
    """Mean per-token NLL of each text of ``corpus`` with ``vector`` added at every position, per
    layer × coefficient (``exp`` of it is the perplexity)."""
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
    """Steered generations scored on every metric, per (layer, coefficient) cell."""

    layers: list[int]
    coefficients: list[float]
    prompts: list[str]
    metrics: dict[str, SweepResult]  # metric name -> per-cell values over prompts
    samples: dict[str, list[str]]  # "layer,coefficient" -> the first few completions
    backfire: dict[str, dict]  # "layer,coefficient" -> VADER backfire rate against coefficient 0

    def to_dict(self) -> dict:
        return {"layers": self.layers, "coefficients": self.coefficients, "prompts": self.prompts,
                "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
                "samples": self.samples, "backfire_vader": self.backfire}


def generation_sweep(
    model: Model,
    prompts: Sequence[str],
    vector: SteeringVector,
    coefficients: Sequence[float | int],
    layers: int | Sequence[int] | None = None,
    *,
    max_new_tokens: int = 40,
    positions: str = "after_prompt",
    batch_size: int = 32,
    readout=None,
    keep_samples: int = 3,
    seed: int = 0,
) -> GenerationSweep:
    """Generate for every prompt in every (layer, coefficient) cell and score the completions.

    For each layer, all coefficients run together: rows are (prompt, coefficient) pairs with a
    per-row delta, generated in batches. Scores are computed afterwards, unsteered. The backfire rate
    of a cell is the fraction of prompts whose VADER valence moved against the sign of the
    coefficient relative to the coefficient-0 completion (needs 0 among the coefficients).
    """
    from interp_steer.generation import generate
    from interp_steer.metrics import score_generations
    from interp_steer.stats import backfire_rate
    from interp_steer.steering import Steering

    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty")
    coefficients, chosen = _cells(model, vector, coefficients, layers)
    n_p, n_c = len(prompts), len(coefficients)
    per_metric: dict[str, np.ndarray] = {}
    samples: dict[str, list[str]] = {}
    backfire: dict[str, dict] = {}
    for li, layer in enumerate(chosen):
        rows = [p for p in prompts for _ in coefficients]
        deltas = _steered_rows(model, vector, layer, coefficients, n_p)
        outputs = generate(model, rows, steering=Steering(deltas, positions=positions),
                           max_new_tokens=max_new_tokens, batch_size=batch_size)
        scores = score_generations(model, outputs, readout=readout)
        for name, flat in scores.items():
            per_metric.setdefault(name, np.zeros((len(chosen), n_c, n_p)))
            per_metric[name][li] = flat.reshape(n_p, n_c).T
        for j, c in enumerate(coefficients):
            samples[f"{layer},{c:g}"] = [outputs[i * n_c + j].text for i in range(min(keep_samples, n_p))]
        if 0.0 in coefficients:
            zero = coefficients.index(0.0)
            vader = per_metric["vader"][li]
            for j, c in enumerate(coefficients):
                if c != 0.0:
                    rate = backfire_rate(vader[j], vader[zero], direction=1 if c > 0 else -1, seed=seed)
                    backfire[f"{layer},{c:g}"] = rate.to_dict()
    metrics = {name: _summarise(name, chosen, coefficients, values, seed) for name, values in per_metric.items()}
    return GenerationSweep(chosen, coefficients, prompts, metrics, samples, backfire)
__all__ = ["GenerationSweep", "SweepResult", "ab_eval", "generation_sweep", "perplexity_under_steering"]
