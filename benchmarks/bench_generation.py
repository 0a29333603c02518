"""Benchmark: steered generation, our generation against plain Hugging Face, and a batched grid.

Targets (issue 4), as ratios measured in this one run:
- steered generation (one vector, one layer) <= 1.05x the same unsteered generation;
- our generation <= 1.2x plain Hugging Face ``generate`` on the same weights and batch (greedy,
  eager attention, KV cache, the same number of new tokens);
- a 4x4 grid of (coefficient, mix) cells for the same prompts as one batched per-row generation
  >= 4x faster than looping over the 16 cells.

    python benchmarks/bench_generation.py [--model SPEC] [--repeats 3] [--new-tokens 30]
        [--batch 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _timing import add_json_option, now, row, write_record

import interp_steer as ist
from interp_steer.models import load_hf


def varied_prompts(n: int) -> list[str]:
    """Short built-in prompts alternating with story openings of up to 60 words: templated lengths
    from about 20 to 110 tokens, as in a real batch of mixed requests."""
    short = ist.load_builtin("prompts")
    stories = [" ".join(p.split()[:60]) for p in ist.load_builtin("persona_a")]
    return [short[i // 2] if i % 2 == 0 else f"Continue this story: {stories[i // 2]}" for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--same-length", action="store_true",
                        help="the first built-in prompts only (similar lengths) instead of prompts of varied length")
    add_json_option(parser)
    args = parser.parse_args()
    started = now()

    model = ist.load_model(args.model, device="cpu")
    hf, tokenizer, _, _ = load_hf(args.model)
    prompts = ist.load_builtin("prompts")[: args.batch] if args.same_length else varied_prompts(args.batch)
    n = args.new_tokens
    persona = ist.load_builtin("persona_a")[:24]
    baseline = ist.load_builtin("baseline")[:24]
    layer = model.n_layers // 2
    v_a = ist.build_vector(model, persona, baseline, layers=[layer])
    v_b = -v_a
    scale = 0.3 * v_a.metadata.resid_norm[layer] / v_a.norms()[layer]

    texts = [model.format_chat(p) for p in prompts]
    ids, mask = model.pad(model.encode(texts), padding_side="left")
    stop = tokenizer.eos_token_id

    def hf_generate():
        with torch.inference_mode():
            # min_new_tokens keeps every run at exactly n tokens, as ours is below.
            hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                        do_sample=False, pad_token_id=stop)

    def ours(steering=None):
        return ist.generate(model, prompts, min_new_tokens=n, max_new_tokens=n, steering=steering,
                            batch_size=args.batch, progress=False)

    one_prompt = prompts[:1]
    alphas = [0.0, 1 / 3, 2 / 3, 1.0]
    lambdas = [0.5 * scale, scale, 1.5 * scale, 2.0 * scale]
    cells = [(a, lam) for lam in lambdas for a in alphas]

    def grid_batched():
        rows = ist.RowDeltas.from_rows([[(v_a, lam * a), (v_b, lam * (1 - a))] for a, lam in cells])
        ist.generate(model, one_prompt * len(cells), min_new_tokens=n, max_new_tokens=n,
                     batch_size=len(cells), progress=False,
                     steering=ist.Steering(rows, positions="after_prompt"))

    def grid_loop():
        for a, lam in cells:
            ist.generate(model, one_prompt, min_new_tokens=n, max_new_tokens=n, progress=False,
                         steering=ist.Steering(ist.mix(v_a, v_b, a), lam, positions="after_prompt"))

    cases = {
        "hf_generate": hf_generate,
        "ours_unsteered": ours,
        "ours_steered_1_layer": lambda: ours(ist.Steering(v_a, scale, positions="after_prompt")),
        "grid_4x4_batched": grid_batched,
        "grid_4x4_loop": grid_loop,
    }
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"{model.name}: batch {args.batch}, {n} new tokens, torch threads {torch.get_num_threads()}\n")
    rows = [
        ("steered / unsteered", med["ours_steered_1_layer"] / med["ours_unsteered"], "<= 1.05", lambda r: r <= 1.05),
        ("ours / HF generate", med["ours_unsteered"] / med["hf_generate"], "<= 1.2", lambda r: r <= 1.2),
        ("grid loop / grid batched", med["grid_4x4_loop"] / med["grid_4x4_batched"], ">= 4", lambda r: r >= 4),
    ]
    for name, seconds in med.items():
        print(f"{name:<24} {seconds:8.2f} s")
    print()
    for name, ratio, target, ok in rows:
        print(f"{name:<26} {ratio:6.3f}   target {target:<8} {'PASS' if ok(ratio) else 'FAIL'}")
    write_record(args.json, "bench_generation", [row(name, ratio, "ratio", target, ok(ratio))
                                                 for name, ratio, target, ok in rows],
                 started=started,
                 notes=[f"{model.name}, batch {args.batch}, {n} new tokens, "
                        f"{'similar' if args.same_length else 'varied'} prompt lengths, medians of {args.repeats}",
                        *args.note])


if __name__ == "__main__":
    main()
