"""The adversarial searches against planted answers: a token (or an ordered pair) hidden in the
mutation space is found, a linear objective with an exact gradient is minimised by GCG, the budget
holds however candidates repeat, NaN candidates never win, and every edit path replays to the best
candidate. Every objective here is a few lines of numpy, so the whole file runs in seconds."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from interp_steer.adversarial import (
    MUTATIONS,
    GradientObjective,
    Objective,
    SearchResult,
    diff_edits,
    evolutionary_search,
    gcg_search,
    random_search,
    replay_edits,
)

VOCAB = list(range(100, 150))  # 50 tokens; the seeds below use ids outside it
SEED = [1, 2, 3, 4, 5, 6]
PLANTED = 137


class Recorder:
    """Wraps a per-sequence function as a batched objective and records every call."""

    def __init__(self, value) -> None:
        self.value = value
        self.calls: list[list[tuple[int, ...]]] = []

    def __call__(self, candidates: list[list[int]]) -> np.ndarray:
        assert all(isinstance(t, int) for c in candidates for t in c)  # plain ints reach the caller
        self.calls.append([tuple(c) for c in candidates])
        return np.array([self.value(c) for c in candidates], dtype=float)

    @property
    def scored(self) -> list[tuple[int, ...]]:
        return [c for call in self.calls for c in call]


def planted(c: list[int]) -> float:
    return -1.0 if PLANTED in c else 1.0


def ordered_pair(c: list[int], first: int = 137, second: int = 112) -> float:
    """-1 when ``first`` occurs somewhere before ``second``; 0 with only one of them; else +1."""
    if first in c and second in c[c.index(first) + 1 :]:
        return -1.0
    return 0.0 if first in c or second in c else 1.0


class Linear:
    """Sum of per-token weights over the suffix (everything after ``start``): its gradient in the
    one-hot tokens is exactly ``w`` at every position, so GCG's linearisation is exact."""

    def __init__(self, w: np.ndarray, start: int, poison: int | None = None) -> None:
        self.w, self.start, self.poison = w, start, poison
        self.calls: list[int] = []

    def __call__(self, candidates: list[list[int]]) -> np.ndarray:
        self.calls.append(len(candidates))
        return np.array([self.value(c) for c in candidates])

    def value(self, c: list[int]) -> float:
        if self.poison is not None and self.poison in c[self.start :]:
            return math.nan
        return float(self.w[c[self.start :]].sum())

    def token_gradients(self, ids: list[int], positions: list[int]) -> np.ndarray:
        return np.tile(self.w, (len(positions), 1))


def weights(seed: int = 0, size: int = 200) -> np.ndarray:
    w = np.random.default_rng(seed).normal(size=size)
    w[7] = -100.0  # the global minimum lies outside VOCAB: the search must not use it
    return w


def check_consistent(result: SearchResult, value) -> None:
    """The invariants every result keeps, whatever it found."""
    assert result.evaluations <= result.budget
    assert result.found == (result.best_value < result.threshold)
    assert replay_edits(result.seed_ids, result.edits) == result.best_ids
    assert replay_edits(result.seed_ids, result.diff) == result.best_ids
    if not math.isnan(result.best_value):
        assert value(result.best_ids) == result.best_value  # exactly: the value is the objective's
        assert result.best_value <= result.seed_value
    assert all(b >= a for a, b in zip(result.history[1:], result.history, strict=False))
    json.dumps(result.to_dict())


# ------------------------------------------------------------------------- planted answers


def test_evolutionary_finds_a_planted_token():
    # A flat landscape with one way down: 100 of 100 seeds find it within 300 candidates.
    results = [evolutionary_search(Recorder(planted), SEED, VOCAB, budget=300, seed=s) for s in range(10)]
    for r in results:
        check_consistent(r, planted)
        assert r.found == (PLANTED in r.best_ids)
    assert sum(r.found for r in results) >= 9


def test_evolutionary_finds_a_planted_ordered_pair():
    # Harder than one token: the second must land after the first. Measured over 100 seeds: 98 found
    # within 500 candidates (79 within 300), so "9 of 10" leaves room for an unlucky seed.
    results = [
        evolutionary_search(Recorder(ordered_pair), SEED, VOCAB, budget=500, threshold=-0.5, seed=s)
        for s in range(10)
    ]
    for r in results:
        check_consistent(r, ordered_pair)
    assert sum(r.found for r in results) >= 9
    best = next(r.best_ids for r in results if r.found)
    assert best.index(137) < len(best) - 1 - best[::-1].index(112)


# ------------------------------------------------------------------------- the random control


def test_the_control_is_blind_to_the_objective():
    """``random_search`` lets no value decide anything: under two objectives that disagree everywhere
    it scores exactly the same candidates in the same order (the evolutionary search does not)."""
    rng = np.random.default_rng(0)
    table: dict[tuple[int, ...], float] = {}

    def noise(c: list[int]) -> float:
        return table.setdefault(tuple(c), float(rng.normal()))

    runs = {}
    for name, value in (("planted", planted), ("noise", noise), ("pair", ordered_pair)):
        for search in (random_search, evolutionary_search):
            recorder = Recorder(value)
            result = search(recorder, SEED, VOCAB, budget=200, seed=3)
            check_consistent(result, value)
            runs[name, search.__name__] = recorder.scored
    assert runs["planted", "random_search"] == runs["noise", "random_search"] == runs["pair", "random_search"]
    assert runs["planted", "evolutionary_search"] != runs["noise", "evolutionary_search"]


def test_the_control_breeds_as_the_search_does_and_reports_what_it_happened_upon():
    recorder = Recorder(ordered_pair)
    result = random_search(recorder, SEED, VOCAB, budget=300, threshold=-0.5, seed=1)
    check_consistent(result, ordered_pair)
    assert result.method == "random" and result.settings["selection"] is False
    assert result.evaluations == 300 and len(set(recorder.scored)) == 300
    assert result.best_value == min(ordered_pair(list(c)) for c in recorder.scored)
    # The same edit language: every operator and crossover appear on the way.
    edits = [e.split()[0] for r in (random_search(Recorder(planted), SEED, VOCAB, budget=300, seed=s) for s in range(5))
             for e in r.edits]
    assert {"insert", "substitute", "delete", "swap", "move", "crossover"} <= set(edits)


def test_selection_is_what_the_search_adds_over_its_control():
    """An ordered pair hidden in the edit space, 200 candidates from each of 20 seeds: the search finds
    it from 17, random edits of the same budget from 2 (over 40 seeds: 30 against 5)."""
    found = {search.__name__: sum(search(Recorder(ordered_pair), SEED, VOCAB, budget=200, threshold=-0.5, seed=s).found
                                  for s in range(20)) for search in (evolutionary_search, random_search)}
    assert found["evolutionary_search"] >= 14 and found["random_search"] <= 6, found


def test_gcg_reaches_the_minimum_of_a_linear_objective_within_the_vocabulary():
    w = weights()
    target = VOCAB[int(np.argmin(w[VOCAB]))]
    for s in range(3):
        objective = Linear(w, start=len(SEED))
        r = gcg_search(objective, SEED, VOCAB, suffix_length=6, budget=300, top_k=8, candidates_per_step=16, seed=s)
        check_consistent(r, objective.value)
        assert r.best_ids == SEED + [target] * 6
        assert r.method == "gcg" and r.gradient_calls >= len(r.history)
        assert sum(objective.calls) == r.evaluations and len(objective.calls) == r.objective_calls
        assert r.diff == [f"insert {[target] * 6} at {len(SEED)}"]


def test_gcg_accepts_only_improvements_and_starts_from_init_token():
    w = weights(1)
    objective = Linear(w, start=len(SEED))
    r = gcg_search(objective, SEED, VOCAB, suffix_length=4, budget=40, top_k=4, candidates_per_step=8, init_token=120)
    assert r.edits[0] == f"insert {[120] * 4} at {len(SEED)}"
    assert all(e.startswith("substitute ") for e in r.edits[1:])
    assert r.seed_value == 0.0  # the seed alone has an empty suffix
    check_consistent(r, objective.value)


# ------------------------------------------------------------------------- budget and batching


@pytest.mark.parametrize("budget", [1, 2, 7, 50, 300])
def test_the_budget_is_never_exceeded_and_nothing_is_scored_twice(budget):
    for run in (
        lambda o: evolutionary_search(o, SEED, VOCAB, budget=budget, population=8, elite=2),
        lambda o: gcg_search(o, SEED, VOCAB, budget=budget, suffix_length=3, top_k=4, candidates_per_step=5),
    ):
        objective = Linear(weights(), start=len(SEED))
        recorder = Recorder(objective.value)
        recorder.token_gradients = objective.token_gradients
        r = run(recorder)
        scored = recorder.scored
        assert len(scored) == r.evaluations <= budget
        assert len(set(scored)) == len(scored)
        assert scored[0] == tuple(SEED) and len(recorder.calls) == r.objective_calls


def test_a_small_space_is_exhausted_without_rescoring_duplicates():
    # Vocabulary {7, 8}, lengths 1..3: 14 sequences in all, so most children are repeats.
    recorder = Recorder(lambda c: float(sum(c)))
    r = evolutionary_search(recorder, [8], [7, 8], budget=100, max_length=3, population=6, elite=1)
    scored = recorder.scored
    assert len(set(scored)) == len(scored) == r.evaluations <= 14
    assert all(1 <= len(c) <= 3 for c in scored)
    assert r.stop_reason == "exhausted" and r.best_ids == [7] and r.best_value == 7.0


def test_one_call_per_generation_and_identical_results_one_by_one():
    batched, single = Recorder(ordered_pair), Recorder(ordered_pair)
    kwargs = dict(budget=120, population=10, elite=3, seed=4)
    a = evolutionary_search(batched, SEED, VOCAB, batch=True, **kwargs)
    b = evolutionary_search(single, SEED, VOCAB, batch=False, **kwargs)
    # One call for the seed, then one per generation that bred anything new, none larger than the
    # number of children a generation breeds.
    assert len(batched.calls) == a.objective_calls <= 1 + len(a.history)
    assert all(len(call) <= 10 - 3 for call in batched.calls[1:])
    assert len(single.calls) == b.objective_calls == b.evaluations > a.objective_calls
    assert all(len(call) == 1 for call in single.calls)
    assert batched.scored == single.scored
    same = {k: v for k, v in a.to_dict().items() if k not in ("objective_calls", "settings")}
    assert same == {k: v for k, v in b.to_dict().items() if k not in ("objective_calls", "settings")}


# ------------------------------------------------------------------------- NaN and early stopping


def test_nan_candidates_are_never_chosen():
    poison = 120  # would be the best token of all, but the objective cannot score it

    def value(c: list[int]) -> float:
        return math.nan if poison in c else (-1.0 if PLANTED in c else 1.0)

    for s in range(3):
        recorder = Recorder(value)
        r = evolutionary_search(recorder, SEED, VOCAB, budget=200, seed=s)
        assert any(poison in c for c in recorder.scored)  # it was tried...
        assert poison not in r.best_ids and not math.isnan(r.best_value)  # ...and never chosen
        assert not any(math.isnan(h) for h in r.history)

    w = weights()
    best_token = VOCAB[int(np.argmin(w[VOCAB]))]
    objective = Linear(w, start=len(SEED), poison=best_token)
    r = gcg_search(objective, SEED, VOCAB, suffix_length=3, budget=200, top_k=8, candidates_per_step=16)
    runner_up = VOCAB[int(np.argsort(w[VOCAB])[1])]
    assert r.best_ids == SEED + [runner_up] * 3


def test_when_everything_is_nan_the_seed_stays_best():
    r = evolutionary_search(Recorder(lambda c: 0.5 if c == SEED else math.nan), SEED, VOCAB, budget=40)
    assert r.best_ids == SEED and r.best_value == 0.5 and r.edits == [] and not r.found
    r = evolutionary_search(Recorder(lambda c: math.nan), SEED, VOCAB, budget=40)
    assert r.best_ids == SEED and math.isnan(r.best_value) and not r.found and r.evaluations == 40


def test_stop_when_found_stops_at_the_generation_that_found_it():
    full = evolutionary_search(Recorder(planted), SEED, VOCAB, budget=300, seed=1)
    early = evolutionary_search(Recorder(planted), SEED, VOCAB, budget=300, seed=1, stop_when_found=True)
    assert early.found and early.stop_reason == "found" and early.evaluations < full.evaluations
    assert early.history == full.history[: len(early.history)]  # the same search, cut short
    assert early.history[-1] < 0 and all(h > 0 for h in early.history[:-1])

    already = evolutionary_search(Recorder(lambda c: -1.0), SEED, VOCAB, stop_when_found=True)
    assert already.evaluations == 1 and already.history == [] and already.best_ids == SEED

    objective = Linear(weights(), start=len(SEED))
    r = gcg_search(objective, SEED, VOCAB, suffix_length=4, budget=300, threshold=-3.0, stop_when_found=True, seed=2)
    assert r.found and r.stop_reason == "found" and r.best_value < -3.0 and r.evaluations < 300


# ------------------------------------------------------------------------- operators and lengths


def test_insertions_only_keep_the_seed_as_a_subsequence():
    r = evolutionary_search(Recorder(planted), SEED, VOCAB, budget=200, operators=("insert",), crossover_rate=0.0)
    assert r.found and all(e.startswith("insert ") for e in r.edits)
    rest = iter(r.best_ids)
    assert all(t in rest for t in SEED)  # the seed, in order, with tokens inserted around it


def test_reordering_only_permutes_the_seed():
    target = [6, 5, 4, 3, 2, 1]
    recorder = Recorder(lambda c: float(sum(a != b for a, b in zip(c, target, strict=True))))
    r = evolutionary_search(recorder, SEED, VOCAB, budget=300, operators=("swap", "move"), crossover_rate=0.0)
    assert all(Counter(c) == Counter(SEED) for c in recorder.scored)
    assert r.best_value < r.seed_value
    assert {e.split()[0] for e in r.edits} <= {"swap", "move"}


def test_every_operator_is_used_and_lengths_stay_in_range():
    recorder = Recorder(planted)
    evolutionary_search(recorder, SEED, VOCAB, budget=300, max_length=8, seed=3)
    assert all(1 <= len(c) <= 8 for c in recorder.scored)
    # A rugged objective (a fixed pseudo-random value per sequence) makes the best candidate's path a
    # long walk, on which every operator should turn up.
    def rugged(c: list[int]) -> float:
        return float(np.random.default_rng(c).random())

    ops: Counter[str] = Counter()
    for s in range(4):
        r = evolutionary_search(Recorder(rugged), SEED, VOCAB, budget=300, seed=s)
        check_consistent(r, rugged)
        ops.update(e.split()[0] for e in r.edits)
    assert set(ops) == set(MUTATIONS) | {"crossover"}


# ------------------------------------------------------------------------- reproducibility, edits


def test_same_seed_same_search_other_seed_other_search():
    a = evolutionary_search(Recorder(ordered_pair), SEED, VOCAB, budget=150, seed=5)
    b = evolutionary_search(Recorder(ordered_pair), tuple(SEED), np.array(VOCAB), budget=150, seed=5)
    assert a.to_dict() == b.to_dict()
    others = [evolutionary_search(Recorder(ordered_pair), SEED, VOCAB, budget=150, seed=s) for s in (6, 7)]
    assert any(o.to_dict()["edits"] != a.to_dict()["edits"] for o in others)

    objective = Linear(weights(), start=len(SEED))
    g1 = gcg_search(objective, SEED, VOCAB, suffix_length=4, budget=60, seed=9)
    g2 = gcg_search(objective, SEED, VOCAB, suffix_length=4, budget=60, seed=9)
    assert g1.to_dict() == g2.to_dict()


def test_diff_edits_replay_and_bad_edits_are_refused():
    rng = np.random.default_rng(0)
    for _ in range(100):
        a = [int(t) for t in rng.integers(0, 4, size=rng.integers(1, 8))]
        b = [int(t) for t in rng.integers(0, 4, size=rng.integers(1, 8))]
        assert replay_edits(a, diff_edits(a, b)) == b
    assert diff_edits([1, 2, 3], [1, 9, 3, 4]) == ["insert 4 at 3", "substitute 9 at 1 (was 2)"]
    assert replay_edits([1, 2, 3, 4, 5], ["swap [0:1] with [3:5]", "move [0:2] to 3"]) == [2, 3, 1, 4, 5]
    assert replay_edits([1, 2, 3], ["crossover at 1 with tail [7, 8]"]) == [1, 7, 8]
    with pytest.raises(ValueError, match="no token 9 at 0"):
        replay_edits([1, 2], ["delete 9 at 0"])
    with pytest.raises(ValueError, match="not one of the forms"):
        replay_edits([1, 2], ["append 3"])


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(seed_ids=[]), "seed_ids is empty"),
        (dict(vocabulary=[]), "vocabulary is empty"),
        (dict(seed_ids=[1, -2]), "non-negative"),
        (dict(budget=0), "budget must be >= 1"),
        (dict(population=1), "population must be >= 2"),
        (dict(elite=16), "elite must be in"),
        (dict(mutation_rate=1.0), "mutation_rate"),
        (dict(crossover_rate=1.5), "crossover_rate"),
        (dict(tournament=0), "tournament"),
        (dict(operators=("insert", "shuffle")), "operators must be a non-empty subset"),
        (dict(max_length=3), "max_length"),
        (dict(max_generations=0), "max_generations"),
        (dict(threshold=math.nan), "threshold is NaN"),
    ],
)
def test_evolutionary_validation(kwargs, message):
    args = dict(seed_ids=SEED, vocabulary=VOCAB) | kwargs
    with pytest.raises(ValueError, match=message):
        evolutionary_search(Recorder(planted), args.pop("seed_ids"), args.pop("vocabulary"), **args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(suffix_length=0), "suffix_length"),
        (dict(top_k=0), "top_k"),
        (dict(candidates_per_step=0), "candidates_per_step"),
        (dict(budget=0), "budget"),
        (dict(max_steps=0), "max_steps"),
        (dict(init_token=-1), "init_token"),
    ],
)
def test_gcg_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gcg_search(Linear(weights(), len(SEED)), SEED, VOCAB, **kwargs)


def test_objectives_that_break_the_contract_are_refused():
    with pytest.raises(ValueError, match="one float per candidate"):
        evolutionary_search(lambda c: np.zeros((len(c), 2)), SEED, VOCAB)

    assert isinstance(planted, Objective) and not isinstance(planted, GradientObjective)
    # A values-only objective given to GCG: the module's TypeError, or the type checker's error under
    # this test suite's runtime checks (it sees the annotation first); both name GradientObjective.
    with pytest.raises(Exception, match="GradientObjective"):
        gcg_search(planted, SEED, VOCAB)

    class WrongShape(Linear):
        def token_gradients(self, ids, positions):
            return np.zeros((len(positions), 120))  # smaller than the largest vocabulary id

    with pytest.raises(ValueError, match="token_gradients returned shape"):
        gcg_search(WrongShape(weights(), len(SEED)), SEED, VOCAB)
