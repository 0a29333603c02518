"""What every search shares: the objective it minimises (:class:`Objective`, and
:class:`GradientObjective` for GCG), the result it returns (:class:`SearchResult`), and its
bookkeeping (:class:`Ledger`, the value cache and the budget; :class:`Best`, the best candidate so far)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np

from interp_steer.adversarial.edits import Ids, as_ids, diff_edits


@runtime_checkable
class Objective(Protocol):
    """Scores a batch of token sequences: one float per candidate, lower is better; NaN = invalid."""

    def __call__(self, candidates: list[list[int]]) -> np.ndarray: ...


@runtime_checkable
class GradientObjective(Objective, Protocol):
    """An :class:`Objective` that also linearises itself in the tokens (what GCG needs).

    ``token_gradients(ids, positions)`` is ``[len(positions), vocab_size]``: entry ``[i, t]`` is the
    derivative of the objective of ``ids`` with respect to the one-hot indicator of token ``t`` at
    position ``positions[i]``. Only the columns of the search's ``vocabulary`` are read.
    """

    def token_gradients(self, ids: list[int], positions: list[int]) -> np.ndarray: ...


@dataclass(frozen=True)
class SearchResult:
    """What a search found and what it cost.

    ``history[i]`` is the best value after generation (or step) ``i + 1``; ``found`` is
    ``best_value < threshold``; ``evaluations`` is the number of candidates scored (``<= budget``);
    ``objective_calls`` how many calls that took; ``stop_reason`` is one of ``"budget"``,
    ``"found"`` (``stop_when_found``), ``"exhausted"`` (no new candidate for several generations),
    ``"converged"`` (GCG: every top-k swap of the current suffix is already scored),
    ``"max_generations"`` / ``"max_steps"``. ``settings`` holds the search's arguments.
    """

    method: str
    seed_ids: list[int]
    seed_value: float
    best_ids: list[int]
    best_value: float
    evaluations: int
    history: list[float]
    found: bool
    threshold: float
    edits: list[str]
    budget: int
    objective_calls: int
    gradient_calls: int = 0
    stop_reason: str = "budget"
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def improvement(self) -> float:
        """``seed_value - best_value``: how much the search lowered the objective."""
        return self.seed_value - self.best_value

    @property
    def diff(self) -> list[str]:
        """A short edit path from seed to best (:func:`diff_edits`), free of the search's detours."""
        return diff_edits(self.seed_ids, self.best_ids)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchResult:
        """The inverse of :meth:`to_dict` (``diff`` is derived, so it is not read)."""
        names = [f.name for f in fields(cls)]
        return cls(**{name: data[name] for name in names if name in data})

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seed_ids": list(self.seed_ids),
            "seed_value": self.seed_value,
            "best_ids": list(self.best_ids),
            "best_value": self.best_value,
            "evaluations": self.evaluations,
            "history": list(self.history),
            "found": self.found,
            "threshold": self.threshold,
            "edits": list(self.edits),
            "diff": self.diff,
            "budget": self.budget,
            "objective_calls": self.objective_calls,
            "gradient_calls": self.gradient_calls,
            "stop_reason": self.stop_reason,
            "settings": dict(self.settings),
        }


def rank_key(value: float) -> float:
    """Sort key: NaN (invalid) ranks after every real value."""
    return math.inf if math.isnan(value) else value


def check_search_inputs(seed_ids: Any, vocabulary: Any, budget: int, threshold: float) -> tuple[Ids, Ids]:
    """The arguments every search takes, checked: the seed and the vocabulary (duplicates dropped) as ids."""
    seed = as_ids(seed_ids, "seed_ids")
    if not seed:
        raise ValueError("seed_ids is empty: give the search at least one token to start from")
    vocab = tuple(dict.fromkeys(as_ids(vocabulary, "vocabulary")))  # duplicates would bias sampling
    if not vocab:
        raise ValueError("vocabulary is empty: give the token ids the search may use")
    if budget < 1:
        raise ValueError(f"budget must be >= 1 (candidates scored, the seed included), got {budget}")
    if math.isnan(threshold):
        raise ValueError("threshold is NaN; use a number (0.0: the objective changes sign)")
    return seed, vocab


class Ledger:
    """The value cache and the budget: every candidate is scored at most once and counted once."""

    def __init__(self, objective: Objective, budget: int, batch: bool) -> None:
        self.objective = objective
        self.budget = budget
        self.batch = batch
        self.values: dict[Ids, float] = {}
        self.calls = 0

    @property
    def evaluations(self) -> int:
        return len(self.values)

    @property
    def remaining(self) -> int:
        return self.budget - len(self.values)

    def score(self, candidates: list[Ids]) -> None:
        """Score new, distinct candidates (the callers guarantee both and the budget)."""
        assert len(set(candidates)) == len(candidates) and not any(c in self.values for c in candidates)
        assert len(candidates) <= self.remaining
        if not candidates:
            return
        groups = [candidates] if self.batch else [[c] for c in candidates]
        for group in groups:
            values = self._call(group)
            self.values.update(zip(group, values, strict=True))

    def _call(self, group: list[Ids]) -> list[float]:
        raw = self.objective([list(c) for c in group])
        self.calls += 1
        values = np.asarray(raw, dtype=float)
        if values.shape != (len(group),):
            raise ValueError(
                f"the objective returned shape {values.shape} for {len(group)} candidates; it must "
                f"return one float per candidate, shape ({len(group)},)"
            )
        return [float(v) for v in values]


class Best:
    """The best valid candidate so far (ties keep the earlier one)."""

    def __init__(self, ids: Ids, value: float, edits: tuple[str, ...]) -> None:
        self.ids, self.value, self.edits = ids, value, edits

    def offer(self, ids: Ids, value: float, edits: tuple[str, ...]) -> None:
        if not math.isnan(value) and rank_key(value) < rank_key(self.value):
            self.ids, self.value, self.edits = ids, value, edits


def below_threshold(value: float, threshold: float) -> bool:
    """Whether a value counts as found: a real number below the threshold (NaN never is)."""
    return not math.isnan(value) and value < threshold
