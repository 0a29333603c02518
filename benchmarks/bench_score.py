"""Benchmark: scoring completions made elsewhere (``interp-steer score``, issue 17).

Builds a collision-shaped grid of completions without generating anything (each completion is the
start of a built-in corpus passage, so lengths and tone vary like real ones): ``--prompts`` built-in
prompts × the quick profile's 10 cells plus the unsteered row. It times, alternating, in one run:

- the text metrics alone (no model): completions per second;
- with the scorer model (the default one): the text metrics and perplexity, which reads each
  prompt once and copies its key/value cache to the prompt's cells (as the study does);
- the same perplexities one completion at a time (each completion reads its own prompt), the
  baseline the prefix sharing is measured against; the two must agree (the same arithmetic per
  completion, so they are equal up to float rounding, usually exactly).

    python benchmarks/bench_score.py [--model SPEC] [--prompts 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import interp_steer as ist
from interp_steer.data import CompletionRecord
from interp_steer.likelihood import completion_perplexity
from interp_steer.studies.collision.config import QUICK_ALPHAS, QUICK_LAMBDAS
from interp_steer.studies.collision.imported import _generations, score


def grid(prompts: list[str], passages: list[str], words: int = 32) -> list[CompletionRecord]:
    records, k = [], 0
    cells = [(0.0, None)] + [(lam, alpha) for lam in QUICK_LAMBDAS for alpha in QUICK_ALPHAS]
    for prompt in prompts:
        for lam, alpha in cells:
            records.append(CompletionRecord(prompt, " ".join(passages[k % len(passages)].split()[:words]), alpha, lam))
            k += 1
    return records


def one_at_a_time(model, generations) -> np.ndarray:
    return np.concatenate([completion_perplexity(model, [g]) for g in generations])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = ist.load_model(args.model, device="cpu")
    passages = ist.load_builtin("persona_a") + ist.load_builtin("persona_b") + ist.load_builtin("baseline")
    records = grid(ist.load_builtin("prompts")[: args.prompts], passages)
    generations, _ = _generations(model, records, 512)
    times: dict[str, list[float]] = {"text": [], "scorer": [], "unshared": []}
    results = {}
    score(records[:11], scorer=model)  # warm-up: first forwards, VADER's lexicon
    for _ in range(args.repeats):
        for name, job in (("text", lambda: score(records)),
                          ("scorer", lambda: score(records, scorer=model)),
                          ("unshared", lambda: one_at_a_time(model, generations))):
            start = time.perf_counter()
            results[name] = job()
            times[name].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    shared = np.concatenate([results["scorer"].per_prompt_unsteered["perplexity"][:, None],
                             results["scorer"].per_prompt["perplexity"].transpose(2, 0, 1).reshape(args.prompts, -1)],
                            axis=1).ravel()
    gap = float(np.nanmax(np.abs(np.log(shared) - np.log(results["unshared"]))))
    n = len(records)
    print(f"{model.name}: {n} completions ({args.prompts} prompts x 11 cells), median of {args.repeats} runs")
    print(f"  text metrics only:          {median['text']:7.2f} s  {n / median['text']:8.1f} completions/s")
    print(f"  with the scorer model:      {median['scorer']:7.2f} s  {n / median['scorer']:8.1f} completions/s")
    print(f"  perplexity, one at a time:  {median['unshared']:7.2f} s  (baseline for prefix sharing)")
    print(f"  scorer (text + shared-prefix perplexity) vs one-at-a-time perplexity alone: "
          f"{median['unshared'] / median['scorer']:.2f}x faster")
    print(f"  largest |log perplexity| difference, shared vs one at a time: {gap:.1e} (must be ~0)")


if __name__ == "__main__":
    main()
