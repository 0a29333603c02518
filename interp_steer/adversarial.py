"""Budgeted searches for token sequences that minimise a black-box objective.

The searches here know nothing about models or steering: they see token-id lists and an
:class:`Objective`, a callable that scores a *batch* of candidate sequences, one float each, lower
is better. NaN marks a candidate the objective cannot score (too long, malformed, ...): it is paid
for, remembered, and never chosen. A robustness study wires a model in by writing the objective;
for example, the signed steering effect of a prompt (steered minus unsteered readout, oriented so
that ``> 0`` means the steering works) with ``threshold=0.0`` asks "is there a prompt within this
budget for which the steering reverses?". One batched forward per call is the caller's job; if a
batch is too large for memory, the objective splits it itself.

Two searches:

- :func:`evolutionary_search` needs nothing but values. A population grows from the seed; each
  generation breeds children from tournament-selected parents by one-point crossover (cut-and-splice
  on token lists) and the mutations in :data:`MUTATIONS` (insert, substitute, delete, swap two spans,
  move a span), keeps the ``elite`` best parents unchanged, and scores every new child of the
  generation in **one** objective call (``batch=False``: one call per child, same results).
- :func:`gcg_search` is greedy coordinate gradient (Zou et al., 2023) over a suffix appended to the
  seed. It needs a :class:`GradientObjective`, whose ``token_gradients`` is the derivative of the
  objective with respect to the one-hot token at each suffix position: the first-order estimate of
  what each single-token swap would do. Each step ranks the swaps by that estimate, scores a random
  sample of the ``top_k`` per position in one call, and moves to the best one if it truly improves.

And their control, :func:`random_search`: the evolutionary search with selection switched off (the
same breeding, the same budget, parents and survivors drawn at random), so that "the search found an
input below the threshold" can be compared with "random edits of the same budget did too".

Budget. ``budget`` counts candidates scored, the seed included, across all calls; it is never
exceeded (the last batch is cut short). Every value is cached by sequence: a candidate met again
costs nothing and is never sent to the objective twice, so the searches also stop on their own once
they find nothing new to score (``stop_reason`` says why a search ended). Gradient calls are not
part of the budget; :attr:`SearchResult.gradient_calls` counts them.

Reproducibility. All randomness comes from ``np.random.default_rng(seed)`` and none of it depends on
how candidates are batched, so a deterministic objective gives identical results for identical
arguments, with ``batch=True`` or ``False``.

Edits. :attr:`SearchResult.edits` is the path from the seed to the best candidate, one operation per
entry, each in the coordinates of the sequence it applies to:

- ``insert 7 at 3`` / ``insert [7, 8] at 3`` — tokens inserted before position 3;
- ``substitute 7 at 3 (was 5)``;
- ``delete 5 at 3``;
- ``swap [a:b] with [c:d]`` — exchange two spans (``b <= c``);
- ``move [a:b] to p`` — cut a span out, then insert it at ``p`` of what remains;
- ``crossover at 3 with tail [7, 8]`` — keep the first 3 tokens, then the tail of another parent.

:func:`replay_edits` applies such a path to the seed (and checks it on the way), so the path can be
audited, or cut short to ask which edit made the difference.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np

MUTATIONS = ("insert", "substitute", "delete", "swap", "move")
"""The mutation operators of :func:`evolutionary_search` (crossover is separate: it needs two parents)."""

_ATTEMPTS_PER_CHILD = 16
"""How often a child slot is redrawn when it comes out as a sequence already scored or already bred."""

_STALE_GENERATIONS = 8
"""Generations in a row without one new candidate after which the evolutionary search gives up."""

_CROSSOVER_ATTEMPTS = 8


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


# --------------------------------------------------------------------------- shared machinery

Ids = tuple[int, ...]


def _key(value: float) -> float:
    """Sort key: NaN (invalid) ranks after every real value."""
    return math.inf if math.isnan(value) else value


def _as_ids(values: Any, name: str) -> Ids:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of integer token ids, not text; tokenise it first")
    try:
        ids = tuple(operator.index(v) for v in values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of integer token ids, got {values!r:.80}") from None
    negative = [i for i in ids if i < 0]
    if negative:
        raise ValueError(f"{name} must hold non-negative token ids; got {negative[:5]}")
    return ids


def _check_common(seed_ids: Any, vocabulary: Any, budget: int, threshold: float) -> tuple[Ids, Ids]:
    seed = _as_ids(seed_ids, "seed_ids")
    if not seed:
        raise ValueError("seed_ids is empty: give the search at least one token to start from")
    vocab = tuple(dict.fromkeys(_as_ids(vocabulary, "vocabulary")))  # duplicates would bias sampling
    if not vocab:
        raise ValueError("vocabulary is empty: give the token ids the search may use")
    if budget < 1:
        raise ValueError(f"budget must be >= 1 (candidates scored, the seed included), got {budget}")
    if math.isnan(threshold):
        raise ValueError("threshold is NaN; use a number (0.0: the objective changes sign)")
    return seed, vocab


class _Ledger:
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


class _Best:
    """The best valid candidate so far (ties keep the earlier one)."""

    def __init__(self, ids: Ids, value: float, edits: tuple[str, ...]) -> None:
        self.ids, self.value, self.edits = ids, value, edits

    def offer(self, ids: Ids, value: float, edits: tuple[str, ...]) -> None:
        if not math.isnan(value) and _key(value) < _key(self.value):
            self.ids, self.value, self.edits = ids, value, edits


def _found(value: float, threshold: float) -> bool:
    return not math.isnan(value) and value < threshold


def _tokens(tokens: Sequence[int]) -> str:
    return str(int(tokens[0])) if len(tokens) == 1 else str([int(t) for t in tokens])


# --------------------------------------------------------------------------- edits


_INT = r"(\d+)"
_LIST = r"\[([\d, ]*)\]"
_EDIT_FORMS = {
    "insert": re.compile(rf"insert (?:{_INT}|{_LIST}) at {_INT}"),
    "substitute": re.compile(rf"substitute {_INT} at {_INT} \(was {_INT}\)"),
    "delete": re.compile(rf"delete {_INT} at {_INT}"),
    "swap": re.compile(rf"swap \[{_INT}:{_INT}\] with \[{_INT}:{_INT}\]"),
    "move": re.compile(rf"move \[{_INT}:{_INT}\] to {_INT}"),
    "crossover": re.compile(rf"crossover at {_INT} with tail {_LIST}"),
}


def _parse_list(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t.strip())


def replay_edits(seed_ids: Sequence[int] | np.ndarray, edits: Sequence[str]) -> list[int]:
    """Apply an edit path (:attr:`SearchResult.edits`) to ``seed_ids`` and return the result.

    Each edit is checked against the sequence it applies to (the token a ``delete`` or
    ``substitute`` names must be there, positions must be in range); a mismatch raises ValueError
    naming the edit. ``replay_edits(r.seed_ids, r.edits) == r.best_ids`` for every result ``r``.
    """
    ids = list(_as_ids(seed_ids, "seed_ids"))
    for step, edit in enumerate(edits):
        form = next((k for k, p in _EDIT_FORMS.items() if p.fullmatch(edit)), None)
        if form is None:
            raise ValueError(f"edit {step} ({edit!r}) is not one of the forms: {', '.join(_EDIT_FORMS)}")
        g = _EDIT_FORMS[form].fullmatch(edit).groups()  # type: ignore[union-attr]
        n = len(ids)

        def bad(why: str, step: int = step, edit: str = edit, n: int = n) -> ValueError:
            return ValueError(f"edit {step} ({edit!r}) does not apply to a sequence of length {n}: {why}")

        if form == "insert":
            tokens = (int(g[0]),) if g[0] is not None else _parse_list(g[1])
            p = int(g[2])
            if p > n:
                raise bad("position past the end")
            ids[p:p] = tokens
        elif form == "substitute":
            t, p, old = int(g[0]), int(g[1]), int(g[2])
            if p >= n or ids[p] != old:
                raise bad(f"no token {old} at {p}")
            ids[p] = t
        elif form == "delete":
            t, p = int(g[0]), int(g[1])
            if p >= n or ids[p] != t:
                raise bad(f"no token {t} at {p}")
            del ids[p]
        elif form == "swap":
            a, b, c, d = (int(x) for x in g)
            if not (a < b <= c < d <= n):
                raise bad("the spans must satisfy a < b <= c < d <= length")
            ids = ids[:a] + ids[c:d] + ids[b:c] + ids[a:b] + ids[d:]
        elif form == "move":
            a, b, p = (int(x) for x in g)
            if not (a < b <= n) or p > n - (b - a):
                raise bad("span or target out of range")
            span, rest = ids[a:b], ids[:a] + ids[b:]
            ids = rest[:p] + span + rest[p:]
        else:  # crossover
            p = int(g[0])
            if p > n:
                raise bad("cut past the end")
            ids = ids[:p] + list(_parse_list(g[1]))
    return ids


def diff_edits(seed_ids: Sequence[int] | np.ndarray, ids: Sequence[int] | np.ndarray) -> list[str]:
    """A short edit path from ``seed_ids`` to ``ids`` (inserts, deletes, substitutions only).

    :attr:`SearchResult.edits` is the path the search took, detours included (on a plateau a search
    wanders); this is a minimal-looking alternative from :class:`difflib.SequenceMatcher`, in the
    same grammar, so ``replay_edits(seed_ids, diff_edits(seed_ids, ids)) == list(ids)``. The edits
    run right to left, so every position is a position of the seed.
    """
    a, b = _as_ids(seed_ids, "seed_ids"), _as_ids(ids, "ids")
    out: list[str] = []
    opcodes = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in reversed(opcodes):
        if tag == "equal":
            continue
        common = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        if j2 - j1 > common:  # tokens of ``ids`` beyond the substituted ones: insert after them
            out.append(f"insert {_tokens(b[j1 + common : j2])} at {i1 + common}")
        out.extend(f"delete {a[i]} at {i}" for i in reversed(range(i1 + common, i2)))
        out.extend(f"substitute {b[j1 + k]} at {i1 + k} (was {a[i1 + k]})" for k in range(common))
    return out


# --------------------------------------------------------------------------- evolutionary


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
    seed_t, vocab = _check_common(seed_ids, vocabulary, budget, threshold)
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
    ledger = _Ledger(objective, budget, batch)
    ledger.score([seed_t])
    seed_value = ledger.values[seed_t]
    best = _Best(seed_t, seed_value, ())
    parents = [_Individual(seed_t, seed_value, ())]
    history: list[float] = []
    stop, stale = "budget", 0
    if stop_when_found and _found(seed_value, threshold):
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
            parents = sorted(merged[:population], key=lambda ind: _key(ind.value))
        else:  # the same structure, chosen blind: random parents kept, in random order
            order = [parents[int(i)] for i in rng.permutation(len(parents))]
            parents = (order[:elite] + valid + order[elite:])[:population]
        history.append(best.value)
        stale = 0 if new else stale + 1
        if stop_when_found and _found(best.value, threshold):
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
        found=_found(best.value, threshold),
        threshold=float(threshold),
        edits=list(best.edits),
        budget=budget,
        objective_calls=ledger.calls,
        stop_reason=stop,
        settings=settings,
    )


# --------------------------------------------------------------------------- GCG


def gcg_search(
    objective: GradientObjective,
    seed_ids: Sequence[int] | np.ndarray,
    vocabulary: Sequence[int] | np.ndarray,
    *,
    suffix_length: int = 8,
    budget: int = 256,
    top_k: int = 32,
    candidates_per_step: int = 32,
    max_steps: int | None = None,
    threshold: float = 0.0,
    stop_when_found: bool = False,
    seed: int = 0,
    init_token: int | None = None,
) -> SearchResult:
    """Greedy coordinate gradient over a ``suffix_length``-token suffix appended to ``seed_ids``.

    The suffix starts as ``init_token`` repeated, or as random ``vocabulary`` tokens. The seed alone
    and the seed with that suffix are scored first (one call, two evaluations). Then each step:

    1. ``objective.token_gradients(current, suffix positions)``, restricted to ``vocabulary``;
    2. per position, the ``top_k`` tokens with the most negative gradient (NaN counts as none);
    3. of those single-token swaps, the ones not yet scored (and not the current token), a random
       ``candidates_per_step`` of them (fewer if the budget or the pool is short) scored in one call;
    4. the best of them replaces the current suffix if it is strictly better; else nothing moves,
       and the next step samples among the swaps not yet tried.

    When every top-k swap of the current suffix has been scored the search has converged. The best
    candidate overall (the seed included) is reported; gradient calls are counted, not budgeted.
    """
    seed_t, vocab = _check_common(seed_ids, vocabulary, budget, threshold)
    if not callable(getattr(objective, "token_gradients", None)):
        raise TypeError(
            "gcg_search needs a GradientObjective: an objective with a token_gradients(ids, positions) "
            "method; for a values-only objective use evolutionary_search"
        )
    if suffix_length < 1:
        raise ValueError(f"suffix_length must be >= 1, got {suffix_length}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if candidates_per_step < 1:
        raise ValueError(f"candidates_per_step must be >= 1, got {candidates_per_step}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    if init_token is not None and init_token < 0:
        raise ValueError(f"init_token must be a non-negative token id or None, got {init_token}")

    settings = {
        "budget": budget, "suffix_length": suffix_length, "top_k": top_k,
        "candidates_per_step": candidates_per_step, "max_steps": max_steps,
        "stop_when_found": stop_when_found, "seed": seed, "init_token": init_token,
        "vocabulary_size": len(vocab),
    }  # fmt: skip
    rng = np.random.default_rng(seed)
    vocab_arr = np.asarray(vocab, dtype=np.int64)
    if init_token is None:
        suffix = tuple(int(t) for t in vocab_arr[rng.integers(len(vocab), size=suffix_length)])
    else:
        suffix = (int(init_token),) * suffix_length
    start = len(seed_t)
    positions = list(range(start, start + suffix_length))
    current = seed_t + suffix
    current_edits = (f"insert {_tokens(suffix)} at {start}",)

    ledger = _Ledger(objective, budget, batch=True)
    ledger.score([seed_t, current] if budget >= 2 else [seed_t])
    seed_value = ledger.values[seed_t]
    best = _Best(seed_t, seed_value, ())
    current_value = ledger.values.get(current, math.nan)
    if current in ledger.values:
        best.offer(current, current_value, current_edits)
    history: list[float] = []
    gradient_calls, stop = 0, "budget"

    while ledger.remaining > 0:
        if stop_when_found and _found(best.value, threshold):
            stop = "found"
            break
        if max_steps is not None and len(history) >= max_steps:
            stop = "max_steps"
            break
        grads = np.asarray(objective.token_gradients(list(current), list(positions)), dtype=float)
        gradient_calls += 1
        if grads.ndim != 2 or grads.shape[0] != suffix_length or grads.shape[1] <= int(vocab_arr.max()):
            raise ValueError(
                f"token_gradients returned shape {grads.shape}; expected [{suffix_length} positions, "
                f"vocab_size] with vocab_size > {int(vocab_arr.max())} (the largest vocabulary id)"
            )
        scores = grads[:, vocab_arr]
        scores = np.where(np.isnan(scores), np.inf, scores)
        k = min(top_k, len(vocab))
        top = np.argsort(scores, axis=1, kind="stable")[:, :k]  # most negative first
        pool: list[tuple[int, int]] = []
        for i in range(suffix_length):
            for t in vocab_arr[top[i]]:
                t = int(t)
                p = positions[i]
                if t != current[p] and current[:p] + (t,) + current[p + 1 :] not in ledger.values:
                    pool.append((p, t))
        if not pool:
            stop = "converged"
            break
        take = min(candidates_per_step, len(pool), ledger.remaining)
        picks = [pool[int(j)] for j in rng.choice(len(pool), size=take, replace=False)]
        candidates = [current[:p] + (t,) + current[p + 1 :] for p, t in picks]
        ledger.score(candidates)
        values = [ledger.values[c] for c in candidates]
        winner = min(range(take), key=lambda j: _key(values[j]))
        if not math.isnan(values[winner]) and _key(values[winner]) < _key(current_value):
            p, t = picks[winner]
            current_edits = (*current_edits, f"substitute {t} at {p} (was {current[p]})")
            current, current_value = candidates[winner], values[winner]
            best.offer(current, current_value, current_edits)
        history.append(best.value)
    if stop == "budget" and stop_when_found and _found(best.value, threshold):
        stop = "found"  # found with the last of the budget

    return SearchResult(
        method="gcg",
        seed_ids=list(seed_t),
        seed_value=seed_value,
        best_ids=list(best.ids),
        best_value=best.value,
        evaluations=ledger.evaluations,
        history=history,
        found=_found(best.value, threshold),
        threshold=float(threshold),
        edits=list(best.edits),
        budget=budget,
        objective_calls=ledger.calls,
        gradient_calls=gradient_calls,
        stop_reason=stop,
        settings=settings,
    )
