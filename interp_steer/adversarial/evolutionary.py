"""The evolutionary search and its control: a population bred from the seed by crossover and
mutations, with selection (:func:`evolutionary_search`) or without it (:func:`random_search`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from interp_steer.adversarial.edits import Ids
from interp_steer.adversarial.search import (
    Best,
    Ledger,
    Objective,
    SearchResult,
    below_threshold,
    check_search_inputs,
    rank_key,
)

MUTATIONS = ("insert", "substitute", "delete", "swap", "move")
"""The mutation operators of :func:`evolutionary_search` (crossover is separate: it needs two parents)."""

_ATTEMPTS_PER_CHILD = 16
"""How often a child slot is redrawn when it comes out as a sequence already scored or already bred."""

_STALE_GENERATIONS = 8
"""Generations in a row without one new candidate after which the evolutionary search gives up."""

_CROSSOVER_ATTEMPTS = 8


@dataclass(frozen=True)
class _Individual:
    ids: Ids
    value: float
    edits: tuple[str, ...]


class _Breeder:
    """Variation operators; every draw comes from the one generator, in a fixed order."""

    def __init__(
        self,
        rng: np.random.Generator,
        vocab: Ids,
        operators: tuple[str, ...],
        max_length: int | None,
        tournament: int,
        mutation_rate: float,
        crossover_rate: float,
    ) -> None:
        self.rng = rng
        self.vocab = vocab
        self.index = {t: i for i, t in enumerate(vocab)}
        self.operators = operators
        self.max_length = max_length
        self.tournament = tournament
        self.mutation_rate = mutation_rate
        self.crossover_rate = crossover_rate

    def select(self, population: list[_Individual]) -> _Individual:
        # The population is sorted best first, so a tournament's winner is its smallest index.
        return population[int(self.rng.integers(len(population), size=self.tournament).min())]

    def child(self, population: list[_Individual]) -> tuple[Ids, tuple[str, ...]]:
        if self.crossover_rate > 0 and len(population) > 1 and self.rng.random() < self.crossover_rate:
            first, second = self.select(population), self.select(population)
            crossed = self.crossover(first.ids, second.ids)
            if crossed is None:  # no cut gives a length in range: mutate the first parent instead
                ids, edits = self._mutate_into(first.ids, first.edits)
            else:
                ids, edits = crossed[0], (*first.edits, crossed[1])
        else:
            parent = self.select(population)
            ids, edits = self._mutate_into(parent.ids, parent.edits)
        while self.mutation_rate > 0 and self.rng.random() < self.mutation_rate:
            ids, edits = self._mutate_into(ids, edits)
        return ids, edits

    def _mutate_into(self, ids: Ids, edits: tuple[str, ...]) -> tuple[Ids, tuple[str, ...]]:
        mutated = self.mutate(ids)
        if mutated is None:
            return ids, edits
        return mutated[0], (*edits, mutated[1])

    def _applicable(self, op: str, n: int) -> bool:
        if op == "insert":
            return self.max_length is None or n < self.max_length
        if op == "substitute":
            return n >= 1
        return n >= 2  # delete (never to an empty sequence), swap, move

    def _token(self, avoid: int | None = None) -> int:
        v = len(self.vocab)
        if avoid is None or avoid not in self.index or v == 1:
            return self.vocab[int(self.rng.integers(v))]
        i = int(self.rng.integers(v - 1))  # uniform over the vocabulary without ``avoid``
        return self.vocab[i + (i >= self.index[avoid])]

    def mutate(self, ids: Ids) -> tuple[Ids, str] | None:
        n = len(ids)
        ops = [op for op in self.operators if self._applicable(op, n)]
        if not ops:
            return None
        op = ops[int(self.rng.integers(len(ops)))]
        rng = self.rng
        if op == "insert":
            p, t = int(rng.integers(n + 1)), self._token()
            return ids[:p] + (t,) + ids[p:], f"insert {t} at {p}"
        if op == "substitute":
            p = int(rng.integers(n))
            t = self._token(avoid=ids[p])
            return ids[:p] + (t,) + ids[p + 1 :], f"substitute {t} at {p} (was {ids[p]})"
        if op == "delete":
            p = int(rng.integers(n))
            return ids[:p] + ids[p + 1 :], f"delete {ids[p]} at {p}"
        if op == "swap":
            # Four distinct cut points of 0..n+1, shifted, give every a < b <= c < d <= n.
            p0, p1, p2, p3 = sorted(int(x) for x in rng.choice(n + 2, size=4, replace=False))
            a, b, c, d = p0, p1, p2 - 1, p3 - 1
            return ids[:a] + ids[c:d] + ids[b:c] + ids[a:b] + ids[d:], f"swap [{a}:{b}] with [{c}:{d}]"
        # move: a span of 1..n-1 tokens to any other place in what remains
        length = int(rng.integers(1, n))
        a = int(rng.integers(n - length + 1))
        q = int(rng.integers(n - length))
        p = q + (q >= a)
        rest = ids[:a] + ids[a + length :]
        return rest[:p] + ids[a : a + length] + rest[p:], f"move [{a}:{a + length}] to {p}"

    def crossover(self, first: Ids, second: Ids) -> tuple[Ids, str] | None:
        """One-point cut-and-splice: ``first[:i] + second[j:]`` (cut points drawn independently)."""
        limit = math.inf if self.max_length is None else self.max_length
        for _ in range(_CROSSOVER_ATTEMPTS):
            i = int(self.rng.integers(len(first) + 1))
            j = int(self.rng.integers(len(second) + 1))
            child = first[:i] + second[j:]
            if 1 <= len(child) <= limit:
                return child, f"crossover at {i} with tail {[int(t) for t in second[j:]]}"
        return None


def evolutionary_search(
    objective: Objective,
    seed_ids: Sequence[int] | np.ndarray,
    vocabulary: Sequence[int] | np.ndarray,
    *,
    budget: int = 256,
    population: int = 16,
    elite: int = 4,
    mutation_rate: float = 0.5,
    crossover_rate: float = 0.25,
    tournament: int = 3,
    operators: Sequence[str] = MUTATIONS,
    max_length: int | None = None,
    max_generations: int | None = None,
    threshold: float = 0.0,
    stop_when_found: bool = False,
    seed: int = 0,
    batch: bool = True,
) -> SearchResult:
    """Search token sequences near ``seed_ids`` for one that minimises ``objective``.

    Each generation breeds ``population - elite`` children. A child is either a one-point crossover
    of two parents (probability ``crossover_rate``) or a mutation of one parent (an operator from
    ``operators``, uniformly among those that apply to its length), then one more mutation with
    probability ``mutation_rate``, and again, and so on (``1 / (1 - mutation_rate)`` operators per
    child on average). Parents are chosen by tournaments of ``tournament`` individuals, drawn with
    replacement; the best wins. A child already scored or already bred this generation is redrawn
    (up to a few times), so the budget goes to new sequences. The next population is the ``elite``
    best parents, the valid children, then the remaining parents best first, up to ``population``.
    Inserted and substituted tokens come from ``vocabulary``; the seed's own tokens may lie outside
    it (they are only ever moved, replaced or deleted). ``max_length`` caps every candidate's length.

    The search ends when the budget is spent, when ``stop_when_found`` and a candidate scores below
    ``threshold`` (at the end of that generation), after ``max_generations``, or when
    several generations in a row bring nothing new (``stop_reason`` says which).
    """
    return _evolve(objective, seed_ids, vocabulary, budget=budget, population=population, elite=elite,
                   mutation_rate=mutation_rate, crossover_rate=crossover_rate, tournament=tournament,
                   operators=operators, max_length=max_length, max_generations=max_generations, threshold=threshold,
                   stop_when_found=stop_when_found, seed=seed, batch=batch, selective=True)


def random_search(
    objective: Objective,
    seed_ids: Sequence[int] | np.ndarray,
    vocabulary: Sequence[int] | np.ndarray,
    *,
    budget: int = 256,
    population: int = 16,
    elite: int = 4,
    mutation_rate: float = 0.5,
    crossover_rate: float = 0.25,
    operators: Sequence[str] = MUTATIONS,
    max_length: int | None = None,
    max_generations: int | None = None,
    threshold: float = 0.0,
    stop_when_found: bool = False,
    seed: int = 0,
    batch: bool = True,
) -> SearchResult:
    """The control for :func:`evolutionary_search`: the same search with selection switched off.

    Children are bred exactly as there (crossover and the same mutation operators, as many edits per
    child, from ``vocabulary``), but parents are drawn uniformly and the next population keeps
    ``elite`` parents drawn at random, then the children, then the other parents in random order:
    no value decides anything. So it is a random walk of edits away from the seed that scores as
    many candidates (``budget``) as the search, through the same objective; its ``best_value`` is the
    lowest it happened upon (``method == "random"``). A search that finds inputs below a threshold
    no more often than this control has found nothing that chance edits would not."""
    return _evolve(objective, seed_ids, vocabulary, budget=budget, population=population, elite=elite,
                   mutation_rate=mutation_rate, crossover_rate=crossover_rate, tournament=1,
                   operators=operators, max_length=max_length, max_generations=max_generations, threshold=threshold,
                   stop_when_found=stop_when_found, seed=seed, batch=batch, selective=False)


def _evolve(
    objective: Objective,
    seed_ids: Sequence[int] | np.ndarray,
    vocabulary: Sequence[int] | np.ndarray,
    *,
    budget: int,
    population: int,
    elite: int,
    mutation_rate: float,
    crossover_rate: float,
    tournament: int,
    operators: Sequence[str],
    max_length: int | None,
    max_generations: int | None,
    threshold: float,
    stop_when_found: bool,
    seed: int,
    batch: bool,
    selective: bool,
) -> SearchResult:
    seed_t, vocab = check_search_inputs(seed_ids, vocabulary, budget, threshold)
    if population < 2:
        raise ValueError(f"population must be >= 2 (elite parents plus at least one child), got {population}")
    if not 0 <= elite < population:
        raise ValueError(f"elite must be in [0, population) = [0, {population}), got {elite}")
    if not 0 <= mutation_rate < 1:
        raise ValueError(f"mutation_rate must be in [0, 1) (the chance of each further mutation), got {mutation_rate}")
    if not 0 <= crossover_rate <= 1:
        raise ValueError(f"crossover_rate must be in [0, 1], got {crossover_rate}")
    if tournament < 1:
        raise ValueError(f"tournament must be >= 1 (1 = parents drawn uniformly), got {tournament}")
    if isinstance(operators, str):
        raise TypeError(f"operators must be a sequence of names, e.g. ({operators!r},), not one string")
    ops = tuple(dict.fromkeys(operators))
    unknown = [op for op in ops if op not in MUTATIONS]
    if unknown or not ops:
        raise ValueError(f"operators must be a non-empty subset of {MUTATIONS}; got {list(operators)}")
    if max_length is not None and max_length < len(seed_t):
        raise ValueError(f"max_length ({max_length}) is shorter than the seed ({len(seed_t)} tokens); raise it or use None")
    if max_generations is not None and max_generations < 1:
        raise ValueError(f"max_generations must be >= 1 or None, got {max_generations}")

    settings = {
        "budget": budget, "population": population, "elite": elite, "mutation_rate": mutation_rate,
        "crossover_rate": crossover_rate, "tournament": tournament, "operators": list(ops),
        "max_length": max_length, "max_generations": max_generations, "stop_when_found": stop_when_found,
        "seed": seed, "batch": batch, "vocabulary_size": len(vocab), "selection": selective,
    }  # fmt: skip
    rng = np.random.default_rng(seed)
    breeder = _Breeder(rng, vocab, ops, max_length, tournament, mutation_rate, crossover_rate)
    ledger = Ledger(objective, budget, batch)
    ledger.score([seed_t])
    seed_value = ledger.values[seed_t]
    best = Best(seed_t, seed_value, ())
    parents = [_Individual(seed_t, seed_value, ())]
    history: list[float] = []
    stop, stale = "budget", 0
    if stop_when_found and below_threshold(seed_value, threshold):
        stop = "found"

    while stop != "found" and ledger.remaining > 0:
        if max_generations is not None and len(history) >= max_generations:
            stop = "max_generations"
            break
        bred: list[tuple[Ids, tuple[str, ...]]] = []
        seen = {p.ids for p in parents}
        new: list[Ids] = []
        for _ in range(population - elite):
            if len(new) >= ledger.remaining:
                break
            for _attempt in range(_ATTEMPTS_PER_CHILD):
                ids, edits = breeder.child(parents)
                if ids not in seen and ids not in ledger.values:
                    break
            if ids in seen:
                continue
            seen.add(ids)
            bred.append((ids, edits))
            if ids not in ledger.values:
                new.append(ids)
        ledger.score(new)
        children = [_Individual(ids, ledger.values[ids], edits) for ids, edits in bred]
        for c in children:
            best.offer(c.ids, c.value, c.edits)
        valid = [c for c in children if not math.isnan(c.value)]
        if selective:
            merged = parents[:elite] + valid + parents[elite:]
            parents = sorted(merged[:population], key=lambda ind: rank_key(ind.value))
        else:  # the same structure, chosen blind: random parents kept, in random order
            order = [parents[int(i)] for i in rng.permutation(len(parents))]
            parents = (order[:elite] + valid + order[elite:])[:population]
        history.append(best.value)
        stale = 0 if new else stale + 1
        if stop_when_found and below_threshold(best.value, threshold):
            stop = "found"
        elif stale >= _STALE_GENERATIONS:
            stop = "exhausted"
            break

    return SearchResult(
        method="evolutionary" if selective else "random",
        seed_ids=list(seed_t),
        seed_value=seed_value,
        best_ids=list(best.ids),
        best_value=best.value,
        evaluations=ledger.evaluations,
        history=history,
        found=below_threshold(best.value, threshold),
        threshold=float(threshold),
        edits=list(best.edits),
        budget=budget,
        objective_calls=ledger.calls,
        stop_reason=stop,
        settings=settings,
    )
