"""Benchmark: what checking the fast path on every use costs, against a decoding step.

Before each use (a generation, a collection's forward, a scoring pass) the plain view is compared
with the model it mirrors (``Snapshot.change``: module tree, attributes, configs, tensors) and the
hook registries are read (``Snapshot.hooked``). Target (issue 29): the check <= 2 % of one cached
decoding step of the default model, measured in this one run (a step: bench_generation's batch of 8
prompts of varied length, the median over repeats of (time of 2n tokens - time of n tokens) / n).

    python benchmarks/bench_fast_path_check.py [--model SPEC] [--batch 8] [--new-tokens 8] [--repeats 3]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _timing import add_json_option, median_seconds, now, row, write_record
from bench_generation import varied_prompts

import interp_steer as ist
from interp_steer import _plain
from interp_steer._plain import routes as plain_routes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    add_json_option(parser)
    args = parser.parse_args()
    started = now()

    model = ist.load_model(args.model, device="cpu")
    prompts = varied_prompts(args.batch)
    n = args.new_tokens

    def generate(tokens: int) -> None:
        ist.generate(model, prompts, max_new_tokens=tokens, min_new_tokens=tokens, progress=False)

    generate(2)  # builds the view
    entry = plain_routes._VIEWS[model]
    assert entry.view is not None and entry.snapshot.change(model) is None
    routes = entry.view.routes
    layer = model.n_layers // 2
    vector = ist.SteeringVector({layer: torch.randn(model.d_model)},
                                ist.VectorMetadata(model=model.name, d_model=model.d_model, hook_point="resid_post"))

    def forward_module() -> None:
        with _plain.forward_module(model):
            pass

    loops = 50
    per_call = {}
    # As generation, collection and scoring run them: without autograd (backward hooks do not count).
    with torch.inference_mode():
        for name, fn in (("mirror check (change)", lambda: entry.snapshot.change(model)),
                         ("hook check (hooked), nothing hooked", lambda: entry.snapshot.hooked(routes)),
                         ("forward_module, nothing hooked", forward_module)):
            per_call[name] = median_seconds(lambda fn=fn: [fn() for _ in range(loops)], args.repeats) / loops
        with ist.steer(model, vector, positions="all"):
            assert entry.snapshot.hooked(routes)[0], "the steering's hook point routes"
            per_call["hook check (hooked), one point steered"] = median_seconds(
                lambda: [entry.snapshot.hooked(routes) for _ in range(loops)], args.repeats) / loops
            per_call["forward_module, one point steered"] = median_seconds(
                lambda: [forward_module() for _ in range(loops)], args.repeats) / loops

    steps = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        generate(n)
        short = time.perf_counter() - start
        start = time.perf_counter()
        generate(2 * n)
        steps.append((time.perf_counter() - start - short) / n)
    step = statistics.median(steps)

    print(f"{model.name}: batch {args.batch}, torch threads {torch.get_num_threads()}, "
          f"{len(list(model.hf_model.modules()))} bridged modules, {len(routes)} routable hook points\n")
    print(f"{'decoding step':<40} {step * 1e3:8.2f} ms")
    for name, seconds in per_call.items():
        print(f"{name:<40} {seconds * 1e6:8.0f} us   {seconds / step:7.2%} of a step")
    check = per_call["mirror check (change)"] + per_call["hook check (hooked), one point steered"]
    ratio = check / step
    print(f"\ncheck per use (mirror + hooks, steered) / decoding step {ratio:7.2%}   target <= 2 %   "
          f"{'PASS' if ratio <= 0.02 else 'FAIL'}")
    rows = [row("decoding step", step, "s")]
    rows += [row(name, seconds, "s") for name, seconds in per_call.items()]
    rows.append(row("check per use (mirror + hooks, steered) / decoding step", ratio, "ratio", "<= 0.02",
                    ratio <= 0.02))
    write_record(args.json, "bench_fast_path_check", rows, started=started,
                 notes=[f"{model.name}, batch {args.batch}, {n} and {2 * n} new tokens, medians of {args.repeats}",
                        *args.note])


if __name__ == "__main__":
    main()
