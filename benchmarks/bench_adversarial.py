"""Benchmark: the adversarial search's candidate scoring, batched against one candidate per forward.

Target (issue 12), as a ratio measured in this one run: scoring candidates in batches (one forward
per batch, each candidate's unsteered and steered rows side by side) is >= 4x faster in candidates
per second than a loop that scores one candidate per forward (its two rows still together), on the
default model with the robustness study's next-token readout. The batched path also shares the
chat template's prefix across the batch and packs the candidates' heads as a trie, each shared by
its two rows (``SteeredReadout.__call__``); the batched path without sharing is reported too, so the two gains
can be told apart (on a CPU, a 135M model's forward is compute-bound already at one candidate, so
batching alone gains little; the GPU is where per-forward overhead dominates). Also reported: a
whole evolutionary search with ``batch=True`` against ``batch=False`` (same result, one objective
call per candidate).

    python benchmarks/bench_adversarial.py [--model SPEC] [--candidates 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import interp_steer as ist
from interp_steer.adversarial import evolutionary_search, gcg_search
from interp_steer.studies.robustness.readout import (
    SteeredReadout,
    content_ids,
    indicative_tokens,
    template_ids,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--candidates", type=int, default=64, help="budget of each of the two recorded searches")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per forward (two per candidate)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layer", type=int, default=15)
    args = parser.parse_args()

    model = ist.load_model(args.model, device="cpu")
    positive, negative = ist.load_builtin("persona_a")[:48], ist.load_builtin("persona_b")[:48]
    vector = ist.build_vector(model, positive, negative, layers=[args.layer], position="mean",
                              progress=False).normalised("resid")
    prompts = ist.load_builtin("prompts")
    promoted, suppressed, _ = indicative_tokens(model, vector, 0.2, prompts, 20)
    prefix, tail = template_ids(model)
    readout = SteeredReadout(model, vector, 0.2, "tokens", tuple(prefix), tuple(tail), positive=tuple(promoted),
                             negative=tuple(suppressed), batch_size=args.batch_size)
    # Candidates as the searches make them: record the batches an evolutionary and a GCG search
    # submit from one seed prompt, then score exactly those batches each way.
    seeds = content_ids(model, prompts)
    vocabulary = sorted({t for row in seeds for t in row})
    batches: list[list[list[int]]] = []

    class Recorder:
        def __call__(self, candidates):
            batches.append([list(c) for c in candidates])
            return readout(candidates)

        def token_gradients(self, ids, positions):
            return readout.token_gradients(ids, positions)

    evolutionary_search(Recorder(), seeds[0], vocabulary, budget=args.candidates, population=16, seed=0)
    gcg_search(Recorder(), seeds[1], vocabulary, budget=args.candidates, suffix_length=6, seed=0)
    candidates = [c for batch in batches for c in batch]

    cases = {"batched": lambda: np.concatenate([readout(batch) for batch in batches]),
             "batched, unshared": lambda: np.concatenate([readout.score_unshared(batch) for batch in batches]),
             "one per forward": lambda: np.array([readout.score_unshared([c])[0] for c in candidates])}
    reference = cases["batched"]()
    assert np.allclose(reference, cases["one per forward"](), atol=1e-4), "batched and single scores differ"
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so a burst of load on the shared machine hits both
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"{model.name}: {len(candidates)} candidates in {len(batches)} search batches (an evolutionary and a GCG "
          f"search of {args.candidates} each), {args.batch_size} rows per forward, layer {args.layer}, "
          f"torch threads {torch.get_num_threads()}\n")
    for name, seconds in med.items():
        print(f"{name:<20} {seconds:7.2f} s  {len(candidates) / seconds:7.1f} candidates/s   "
              f"(runs: {', '.join(f'{t:.2f}' for t in times[name])})")
    ratio = med["one per forward"] / med["batched"]
    print(f"\n{'batched speed-up':<24} {ratio:6.2f}x   target >= 4   {'PASS' if ratio >= 4 else 'FAIL'}")

    search_times = {}
    for batch in (True, False):
        start = time.perf_counter()
        result = evolutionary_search(readout, seeds[0], vocabulary, budget=48, population=16, seed=0, batch=batch)
        search_times[batch] = time.perf_counter() - start
        print(f"evolutionary search, batch={batch!s:<5}: {search_times[batch]:6.2f} s for {result.evaluations} "
              f"candidates (best effect {result.best_value:+.3f})")
    print(f"{'search speed-up':<24} {search_times[False] / search_times[True]:6.2f}x   (reported)")


if __name__ == "__main__":
    main()
