"""Work units the studies share: batched steered generation and A/B readouts split into units that
give exactly the numbers of one batched call (:mod:`interp_steer.units` stores and runs them).

A unit is one batch of the call it replaces, cut where that call cuts its batches
(:func:`~interp_steer.generation.batch_rows` for generation; consecutive questions for the A/B
readout), and its rows are steered by the same per-row deltas or mix as in that call: the rows of a
batch are all a batch's output depends on, so local, resumed and Ray runs equal one uninterrupted
call, to the bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from interp_steer.data import ABQuestion
from interp_steer.evaluation import ab_probabilities
from interp_steer.generation import Generation, batch_rows, generate
from interp_steer.models import Model
from interp_steer.steering import RowDeltas, RowMix, Steerer, Steering
from interp_steer.units import Unit, fingerprint, numeric, run_units

Rows = Sequence[Sequence[tuple[Steerer, float]]]
"""Per row, its ``(vector or field, coefficient)`` terms."""


@dataclass(frozen=True, eq=False)
class UnitRunner:
    """Where a study's units go: the run's store, a backend, a prefix for unit ids (one per model
    when a study runs several), and whether to show progress."""

    model: Model
    store: Any
    backend: Any
    prefix: str = ""
    progress: bool | None = None

    def run(self, fn: Callable, name: str, shared: Any, identity: Any, items: list[Any]) -> list[dict[str, Any]]:
        """``fn(model, shared, item)`` for every item, as units ``{prefix}{name}-NNN`` keyed on
        ``identity`` (what determines ``shared``) and the item."""
        units = [Unit(f"{self.prefix}{name}-{i:03d}", {"shared": identity, "item": item}, item=item)
                 for i, item in enumerate(items)]
        return run_units(fn, units, model=self.model, shared=shared, store=self.store, backend=self.backend,
                         progress=self.progress, label=name)


def steered_generations(runner: UnitRunner, name: str, prompts: list[str], rows: Rows, *, max_new_tokens: int,
                        batch_size: int, mix: bool = False) -> list[Generation]:
    """Greedy completions of ``prompts``, prompt ``i`` steered from its last token on by ``rows[i]``:
    what ``generate(model, prompts, steering=Steering(R, positions="after_prompt"), ...)`` gives for
    ``R = RowDeltas.from_rows(rows)`` (or ``RowMix.from_rows(rows)`` with ``mix=True``, needed for
    fields), one unit per generation batch."""
    terms = list(RowMix.from_rows(rows).terms)  # every term, in the order a single call's mix has them
    index = {id(t): k for k, t in enumerate(terms)}
    batches = batch_rows(runner.model, prompts, batch_size=batch_size)
    items = [{"prompts": [prompts[i] for i in batch],
              "rows": [[[index[id(t)], float(c)] for t, c in rows[i]] for i in batch]} for batch in batches]
    shared = {"terms": terms, "mix": mix, "max_new_tokens": max_new_tokens}
    results = runner.run(_generation_unit, name, shared, fingerprint(numeric(shared)), items)
    out: list[Generation | None] = [None] * len(prompts)
    for batch, result in zip(batches, results, strict=True):
        for i, record in zip(batch, result["generations"], strict=True):
            out[i] = Generation.from_record(record)
    return out  # type: ignore[return-value]


def _generation_unit(model: Model, shared: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """One work unit: one generation batch of :func:`steered_generations`."""
    steering = Steering(_row_steering(shared["terms"], item["rows"], shared["mix"]), positions="after_prompt")
    outputs = generate(model, item["prompts"], steering=steering, max_new_tokens=shared["max_new_tokens"],
                       batch_size=len(item["prompts"]), progress=False)
    return {"generations": [g.to_record() for g in outputs]}


def steered_ab(runner: UnitRunner, name: str, questions: list[ABQuestion], rows: Rows, n_cells: int, *,
               batch_size: int, mix: bool = False) -> tuple[np.ndarray, list[list[int]], list[int]]:
    """:func:`~interp_steer.evaluation.ab_probabilities` of ``questions`` (question ``i``, cell ``j``
    steered by ``rows[i * n_cells + j]``), one unit per batch of questions it would run together."""
    terms = list(RowMix.from_rows(rows).terms)
    index = {id(t): k for k, t in enumerate(terms)}
    per_batch = max(1, batch_size // n_cells)
    starts = range(0, len(questions), per_batch)
    items = [{"questions": [[q.question, q.answer_matching_behavior, q.answer_not_matching_behavior]
                            for q in questions[s : s + per_batch]],
              "rows": [[[index[id(t)], float(c)] for t, c in row] for row in rows[s * n_cells : (s + per_batch) * n_cells]]}
             for s in starts]
    shared = {"terms": terms, "mix": mix, "n_cells": n_cells}
    results = runner.run(_ab_unit, name, shared, fingerprint(numeric(shared)), items)
    values = np.concatenate([np.asarray(r["values"], dtype=np.float64).reshape(-1, n_cells) for r in results])
    return values, [ids for r in results for ids in r["token_ids"]], [end for r in results for end in r["prompt_ends"]]


def _ab_unit(model: Model, shared: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """One work unit: one batch of questions of :func:`steered_ab`."""
    questions = [ABQuestion(q, a, b) for q, a, b in item["questions"]]
    steering = _row_steering(shared["terms"], item["rows"], shared["mix"])
    with torch.inference_mode():
        values, token_ids, ends = ab_probabilities(model, questions, steering, shared["n_cells"],
                                                   len(questions) * shared["n_cells"])
    return {"values": values, "token_ids": [list(ids) for ids in token_ids], "prompt_ends": list(ends)}


def _row_steering(terms: list[Steerer], rows: list[list[list[float | int]]], mix: bool) -> RowDeltas | RowMix:
    """A unit's rows as the per-row steering a single call would cut from its whole grid."""
    if mix:
        coefficients = torch.zeros(len(rows), len(terms))
        for i, row in enumerate(rows):
            for k, c in row:
                coefficients[i, int(k)] += float(c)
        return RowMix(tuple(terms), coefficients)
    return RowDeltas.from_rows([[(terms[int(k)], c) for k, c in row] for row in rows])


__all__ = ["Rows", "UnitRunner", "steered_ab", "steered_generations"]
