"""Benchmark: achieved arithmetic throughput against the machine's matrix-product peak (issue 14, item 4).

For three workloads on the default model, each measured in this one run:

- collection: residual activations of 240 texts at every layer (``collect_activations`` defaults);
- grid generation: the default collision profile's grid (its cells, batch size and completion
  length) for ``--prompts`` built-in prompts, as the study runs it (one batched, per-row steered
  ``generate``, shared prompt prefixes);
- patching: exact ``resid`` patching of every layer x position of a 12-token prompt (the
  ``interp-steer patch`` inner loop);

it counts the floating-point operations the run actually performs (``torch.utils.flop_counter``:
every matrix product, attention's included; element-wise work is not counted), times the workload
(median of ``--repeats``), and divides: achieved FLOP/s as a fraction of the peak, which is the best
``torch.mm`` of two 2048 x 2048 float32 matrices on the same threads, measured before and after the
workloads (the higher of the two counts: on a shared machine a disturbed measurement reads low). Goals: collection >= 40 % of
peak, grid generation >= 25 %.

Then the profiler says where each workload's time goes: matrix products, attention's other
operations (softmax, masking), every other operator, and the time outside any operator (Python:
the decoding loop, hooks, tokenising, the bridge's wrappers).

    python benchmarks/bench_throughput.py [--model SPEC] [--prompts 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from _timing import median_seconds
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

import interp_steer as ist
from interp_steer.patching import Patch, PatchMetrics, exact_patch, prepare
from interp_steer.steering import RowDeltas, Steering
from interp_steer.studies.collision import CollisionConfig

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_scaled_dot_product_flash_attention_for_cpu",
          "aten::_scaled_dot_product_attention_math"}
ATTENTION_OTHER = {"aten::_softmax", "aten::softmax", "aten::masked_fill", "aten::masked_fill_"}


def matmul_peak(repeats: int = 7, n: int = 2048) -> float:
    """FLOP/s of the best of ``repeats`` float32 ``n x n`` matrix products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def flops(fn: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def where_time_goes(fn: Callable[[], object]) -> dict[str, float]:
    """Shares of the wall time: matrix products, attention's other operators, other operators, and
    outside any operator."""
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    wall = time.perf_counter() - start
    shares = {"matrix products": 0.0, "softmax and masking": 0.0, "other operators": 0.0}
    others: dict[str, float] = {}
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6
        key = ("matrix products" if event.key in MATMUL else
               "softmax and masking" if event.key in ATTENTION_OTHER else "other operators")
        shares[key] += seconds
        if key == "other operators":
            others[event.key] = seconds
    shares = {k: v / wall for k, v in shares.items()}
    outside = max(0.0, 1 - sum(shares.values()))
    largest = sorted(others, key=others.get, reverse=True)[:3]
    shares |= {f"of which {name}": others[name] / wall for name in largest}
    shares["outside operators (Python, hooks, tokenising)"] = outside
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--prompts", type=int, default=2, help="prompts in the grid (46 cells each)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = ist.load_model(args.model, device="cpu")
    persona_a, persona_b, baseline = (ist.load_builtin(n) for n in ("persona_a", "persona_b", "baseline"))
    texts = persona_a + baseline

    def collection():
        ist.collect_activations(model, texts, layers="all", progress=False)

    config = CollisionConfig()
    layer = model.n_layers * 2 // 3
    v_a = ist.build_vector(model, persona_a[:24], baseline[:24], layers=[layer], progress=False).normalised("resid")
    v_b = ist.build_vector(model, persona_b[:24], baseline[:24], layers=[layer], progress=False).normalised("resid")
    cells = [(0.0, 0.0)] + [(lam, alpha) for lam in config.lambdas for alpha in config.alphas]
    prompts = ist.load_builtin("prompts")[: args.prompts]
    rows = [p for p in prompts for _ in cells]
    deltas = RowDeltas.from_rows([[(v_a, lam * a), (v_b, lam * (1 - a))] for _ in prompts for lam, a in cells])

    def grid():
        ist.generate(model, rows, steering=Steering(deltas, positions="after_prompt"),
                     max_new_tokens=config.max_new_tokens, batch_size=config.batch_size, progress=False)

    metrics = PatchMetrics.build(model, persona_a[:24], persona_b[:24], probe_layer=model.n_layers - 1)
    prompt = model.tokenizer.decode(model.encode(["The ferry left the harbour at seven and the island slowly came"])[0][:12])
    source, target = (v_a * 0.3, 1.0), ((v_a * 0.5 + v_b * 0.5) * 0.3, 1.0)
    pair = prepare(model, prompt, source, target, metrics, chat=False, positions="all")
    patches = [Patch("resid", at, position=p) for at in range(model.n_layers) for p in range(pair.tokens.shape[1])]

    def patching():
        exact_patch(model, pair, target, metrics, patches, skip_identical=False)

    peak = matmul_peak()
    workloads = {
        f"collection ({len(texts)} texts, {model.n_layers} layers)": (collection, 0.40),
        f"grid generation ({len(rows)} rows, {config.max_new_tokens} tokens)": (grid, 0.25),
        f"exact patching ({len(patches)} patches)": (patching, None),
    }
    print(f"{model.name}, torch threads {torch.get_num_threads()}, medians of {args.repeats}")
    print(f"matrix-product peak before the workloads: {peak / 1e9:.1f} GFLOP/s "
          "(float32 2048 x 2048 torch.mm, best of 7)")
    results = {}
    for name, (fn, goal) in workloads.items():
        work = flops(fn)
        seconds = median_seconds(fn, args.repeats)
        results[name] = (work, seconds, goal)
    peak_after = matmul_peak()  # the machine is shared: a changed peak says the run was disturbed
    # The peak is the best product the machine gave in this run: a measurement disturbed by other
    # jobs reads low, and dividing by it would overstate every fraction.
    best = max(peak, peak_after)
    print(f"matrix-product peak after the workloads: {peak_after / 1e9:.1f} GFLOP/s; fractions are of the higher, "
          f"{best / 1e9:.1f} GFLOP/s\n")
    print(f"{'workload':<44} {'GFLOP':>8} {'s':>7} {'GFLOP/s':>8} {'of peak':>8}  goal")
    for name, (work, seconds, goal) in results.items():
        fraction = work / seconds / best
        verdict = "" if goal is None else f">= {goal:.0%} {'PASS' if fraction >= goal else 'FAIL'}"
        print(f"{name:<44} {work / 1e9:8.1f} {seconds:7.2f} {work / seconds / 1e9:8.1f} {fraction:8.1%}  {verdict}")
    print()
    for name, (fn, _) in workloads.items():
        shares = where_time_goes(fn)
        print(f"where the time goes, {name}: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))


if __name__ == "__main__":
    main()
