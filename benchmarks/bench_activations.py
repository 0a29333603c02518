"""Benchmark: activation collection against a plain Hugging Face forward on the same weights.

Targets (issue 2), as ratios measured in this one run (the machine is shared, so only ratios count):
- last-token residuals at every layer, 256 short texts: <= 1.05x plain HF with output_hidden_states
  on the same padded batches (eager attention, same weights);
- a single middle layer: < 0.6x (the forward stops after that layer).

Also reported: the default pad-free batching against the same baseline, and, on texts of varied
length (prompts of 15 tokens beside passages of 85), padded batches against pad-free ones.

    python benchmarks/bench_activations.py [--model SPEC] [--repeats 3] [--batch-size 16]
        [--n-texts 256] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _timing import add_json_option, now, row, write_record

import interp_steer as ist
from interp_steer.activations import _plan_batches
from interp_steer.models import load_hf


def short_texts(n: int) -> list[str]:
    pairs = ist.load_builtin("moral_pairs")
    pool = [p.positive for p in pairs] + [p.negative for p in pairs] + ist.load_builtin("prompts")
    return pool[:n]


def varied_texts(n: int) -> list[str]:
    """Half persona passages, half short prompts: token lengths from about 15 to 85."""
    return ist.load_builtin("persona_a")[: n // 2] + ist.load_builtin("prompts")[: n - n // 2]


def hf_forward_all(hf, model: ist.Model, token_ids, batches) -> None:
    """Plain transformers: same padded batches, all hidden states, last real token of each."""
    with torch.inference_mode():
        for batch in batches:
            ids, mask = model.pad([token_ids[i] for i in batch])
            hidden = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            last = mask.sum(1) - 1
            torch.stack([h[torch.arange(len(batch)), last] for h in hidden[1:]], dim=1).float()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--n-texts", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    add_json_option(parser)
    args = parser.parse_args()
    started = now()

    model = ist.load_model(args.model, device="cpu")
    hf, _, _, _ = load_hf(args.model)  # an independent, unwrapped copy of the same weights
    hf.eval()
    texts = short_texts(args.n_texts)
    varied = varied_texts(96)
    token_ids = model.encode(texts)
    padded = _plan_batches([len(t) for t in token_ids], args.batch_size, pad_free=False)
    middle = model.n_layers // 2
    print(f"{model.name}: {len(texts)} texts, {sum(map(len, token_ids))} tokens, "
          f"batch size {args.batch_size}, torch threads {torch.get_num_threads()}")

    cases = {
        "hf_all_layers": lambda: hf_forward_all(hf, model, token_ids, padded),
        "ours_all_layers_same_batches": lambda: ist.collect_activations(
            model, texts, batch_size=args.batch_size, pad_free=False, progress=False),
        "ours_all_layers_pad_free": lambda: ist.collect_activations(
            model, texts, batch_size=args.batch_size, progress=False),
        f"ours_layer_{middle}_same_batches": lambda: ist.collect_activations(
            model, texts, layers=[middle], batch_size=args.batch_size, pad_free=False, progress=False),
        "varied_lengths_padded": lambda: ist.collect_activations(
            model, varied, batch_size=args.batch_size, pad_free=False, progress=False),
        "varied_lengths_pad_free": lambda: ist.collect_activations(
            model, varied, batch_size=args.batch_size, progress=False),
    }
    for fn in cases.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit every case alike
        for name, fn in cases.items():
            times[name].append(timed(fn))
    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["hf_all_layers"]
    targets = {"ours_all_layers_same_batches": 1.05, f"ours_layer_{middle}_same_batches": 0.6}
    print(f"\n{'case':<34} {'median s':>9} {'ratio vs HF':>12}  target")
    for name, seconds in median.items():
        target = targets.get(name)
        verdict = "" if target is None else (f"<= {target}  " + ("PASS" if seconds / base <= target else "FAIL"))
        print(f"{name:<34} {seconds:>9.2f} {seconds / base:>12.3f}  {verdict}")
    varied_ratio = median["varied_lengths_padded"] / median["varied_lengths_pad_free"]
    print(f"\nvaried lengths: padded / pad-free = {varied_ratio:.2f}")
    rows = []
    for name, seconds in median.items():
        if name == "hf_all_layers":
            rows.append(row("plain HF forward, all layers (the baseline)", seconds, "s"))
            continue
        target = targets.get(name)
        rows.append(row(f"{name} / HF", seconds / base, "ratio", None if target is None else f"<= {target}",
                        target is not None and seconds / base <= target))
    rows.append(row("varied lengths: padded / pad-free", varied_ratio, "ratio"))
    write_record(args.json, "bench_activations", rows, started=started,
                 notes=[f"{model.name}, {len(texts)} texts, batch size {args.batch_size}, medians of {args.repeats}",
                        *args.note])


if __name__ == "__main__":
    main()
