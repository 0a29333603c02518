"""Benchmark: generation steered by a SteeringField against the same generation steered by a vector.

Target (issue 11), as a ratio measured in this one run: field-steered generation <= 1.3x
vector-steered generation on the default model, batch of 8 prompts, 32 new tokens, both steering
the same layers from the prompt's last token on. A field adds one small scorer forward + backward
per steered layer per decoding step; the vector adds one addition.

Also reported: ``steps=3`` (three gradient steps per steered activation) against the vector.

    python benchmarks/bench_field_generation.py [--model SPEC] [--repeats 3] [--layers 12,15,18]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import interp_steer as ist
from interp_steer.fields import fit_field


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", default=None, help="steered layers (default: three around the middle)")
    args = parser.parse_args()

    model = ist.load_model(args.model, device="cpu")
    middle = model.n_layers // 2
    layers = [int(x) for x in args.layers.split(",")] if args.layers else [middle - 3, middle, middle + 3]
    positive, negative = ist.load_builtin("persona_a")[:48], ist.load_builtin("persona_b")[:48]
    vector = ist.build_vector(model, positive, negative, layers=layers, position="mean").normalised("resid")
    field = fit_field(model, positive, negative, layers=layers, position="mean", seed=0)
    prompts = ist.load_builtin("prompts")[: args.batch]
    n, c = args.new_tokens, 0.1

    def run(steering=None):
        return ist.generate(model, prompts, min_new_tokens=n, max_new_tokens=n, steering=steering,
                            batch_size=args.batch, progress=False)

    cases = {
        "unsteered": lambda: run(),
        "vector": lambda: run(ist.Steering(vector, c, positions="after_prompt")),
        "field": lambda: run(ist.Steering(field, c, positions="after_prompt")),
        "field_3_steps": lambda: run(ist.Steering(field, c, positions="after_prompt", steps=3)),
    }
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so a burst of load on the shared machine hits every case
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"{model.name}: batch {args.batch}, {n} new tokens, layers {layers}, "
          f"torch threads {torch.get_num_threads()}\n")
    for name, seconds in med.items():
        print(f"{name:<16} {seconds:8.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times[name])})")
    print()
    ratio = med["field"] / med["vector"]
    print(f"{'field / vector':<24} {ratio:6.3f}   target <= 1.3   {'PASS' if ratio <= 1.3 else 'FAIL'}")
    print(f"{'field 3 steps / vector':<24} {med['field_3_steps'] / med['vector']:6.3f}   (reported)")


if __name__ == "__main__":
    main()
