"""Benchmark: shared prompt prefixes in steered grid generation (issue 14, item 1).

The collision grid generates every prompt once per cell (46 cells in the default profile), steering
from the prompt's last token on. With ``share_prefixes=True`` (the default) each batch prefills the
unsteered part of each distinct prompt once and copies its key/value cache to the prompt's rows.
This runs the default collision profile's grid (its cells, batch size and completion length) for a
few built-in prompts three ways, alternating: as before issue 14 (no sharing, every forward through
the bridge's wrappers, a concatenating key/value cache, one prompt's cells per batch:
``_timing.as_before_issue_14``), unshared on the plain view (``interp_steer._plain``), and as now
(shared prefixes on the plain view). It prints the median times, the ratios (target: the full
default collision >= 1.3x faster; see bench_collision.py for the whole study) and whether the greedy
tokens of all three are identical (they must be).

    python benchmarks/bench_shared_prefix.py [--model SPEC] [--prompts 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

from _timing import COLLISION_BEFORE_ISSUE_14, as_before_issue_14

import interp_steer as ist
from interp_steer.steering import RowDeltas, Steering
from interp_steer.studies.collision import CollisionConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = CollisionConfig()
    model = ist.load_model(args.model, device="cpu")
    layer = model.n_layers * 2 // 3
    v_a = ist.build_vector(model, ist.load_builtin("persona_a")[:24], ist.load_builtin("baseline")[:24], layers=[layer])
    v_b = ist.build_vector(model, ist.load_builtin("persona_b")[:24], ist.load_builtin("baseline")[:24], layers=[layer])
    unit = v_a.metadata.resid_norm[layer]
    v_a, v_b = v_a * (unit / v_a.norms()[layer]), v_b * (unit / v_b.norms()[layer])
    cells = [(0.0, 0.0)] + [(lam, alpha) for lam in config.lambdas for alpha in config.alphas]
    prompts = ist.load_builtin("prompts")[: args.prompts]
    rows = [p for p in prompts for _ in cells]
    deltas = RowDeltas.from_rows([[(v_a, lam * alpha), (v_b, lam * (1 - alpha))] for _ in prompts for lam, alpha in cells])
    steering = Steering(deltas, positions="after_prompt")

    def run(share: bool, before: bool = False):
        started = time.perf_counter()
        batch = COLLISION_BEFORE_ISSUE_14["batch_size"] if before else config.batch_size
        with as_before_issue_14() if before else contextlib.nullcontext():
            out = ist.generate(model, rows, steering=steering, max_new_tokens=config.max_new_tokens,
                               batch_size=batch, share_prefixes=share, progress=False)
        return time.perf_counter() - started, out

    cases = {"before": (False, True), "unshared": (False, False), "shared": (True, False)}
    times: dict[str, list[float]] = {name: [] for name in cases}
    tokens = {}
    run(True)  # warm-up
    for _ in range(args.repeats):
        for name, (share, before) in cases.items():
            seconds, out = run(share, before)
            times[name].append(seconds)
            tokens[name] = [g.token_ids for g in out]
    shared_tokens = sum(g.shared_prefix for g in out)
    prompt_tokens = sum(len(g.prompt_ids) for g in out)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"{model.name}: {len(prompts)} prompts x {len(cells)} cells = {len(rows)} rows, "
          f"{config.max_new_tokens} new tokens, batch {config.batch_size} "
          f"(before: {COLLISION_BEFORE_ISSUE_14['batch_size']})")
    print(f"prompt tokens from a shared prefill: {shared_tokens} of {prompt_tokens}")
    print(f"before (unshared, bridged) {med['before']:.1f} s, unshared on the plain view {med['unshared']:.1f} s, "
          f"shared on the plain view {med['shared']:.1f} s")
    print(f"sharing alone: {med['unshared'] / med['shared']:.2f}x; now against before: "
          f"{med['before'] / med['shared']:.2f}x (target for the whole default collision >= 1.3x)")
    print(f"greedy tokens identical: {tokens['shared'] == tokens['unshared'] == tokens['before']}")

if __name__ == "__main__":
    main()
