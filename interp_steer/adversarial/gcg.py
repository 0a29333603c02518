"""Greedy coordinate gradient (Zou et al., 2023) over a suffix appended to the seed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from interp_steer.adversarial.edits import format_tokens
from interp_steer.adversarial.search import (
    Best,
    GradientObjective,
    Ledger,
    SearchResult,
    below_threshold,
    check_search_inputs,
    rank_key,
)


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
    seed_t, vocab = check_search_inputs(seed_ids, vocabulary, budget, threshold)
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
    current_edits = (f"insert {format_tokens(suffix)} at {start}",)

    ledger = Ledger(objective, budget, batch=True)
    ledger.score([seed_t, current] if budget >= 2 else [seed_t])
    seed_value = ledger.values[seed_t]
    best = Best(seed_t, seed_value, ())
    current_value = ledger.values.get(current, math.nan)
    if current in ledger.values:
        best.offer(current, current_value, current_edits)
    history: list[float] = []
    gradient_calls, stop = 0, "budget"

    while ledger.remaining > 0:
        if stop_when_found and below_threshold(best.value, threshold):
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
        winner = min(range(take), key=lambda j: rank_key(values[j]))
        if not math.isnan(values[winner]) and rank_key(values[winner]) < rank_key(current_value):
            p, t = picks[winner]
            current_edits = (*current_edits, f"substitute {t} at {p} (was {current[p]})")
            current, current_value = candidates[winner], values[winner]
            best.offer(current, current_value, current_edits)
        history.append(best.value)
    if stop == "budget" and stop_when_found and below_threshold(best.value, threshold):
        stop = "found"  # found with the last of the budget

    return SearchResult(
        method="gcg",
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
        gradient_calls=gradient_calls,
        stop_reason=stop,
        settings=settings,
    )
