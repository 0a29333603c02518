"""``interp-steer sweep``: steered generations scored over layers x coefficients."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interp_steer._io import write_text_atomically
from interp_steer.commands.arguments import add_model_args, model_and_vector, numbers


def add_parser(subparsers) -> argparse.ArgumentParser:
    sweep = subparsers.add_parser("sweep", help="score steered generations over layers x coefficients")
    add_model_args(sweep)
    sweep.add_argument("--vector", required=True, metavar="VEC.safetensors")
    sweep.add_argument("--layers", default=None)
    sweep.add_argument("--coefficients", default="-8,-4,0,4,8")
    sweep.add_argument("--prompts", required=True, metavar="FILE")
    sweep.add_argument("--max-new-tokens", type=int, default=40)
    sweep.add_argument("--positions", default="after_prompt", choices=["after_prompt", "all"])
    sweep.add_argument("--readout", metavar="POS_FILE:NEG_FILE",
                       help="also score probe valence: a probe on the unsteered model trained on these "
                            "two corpora (e.g. persona A vs persona B) reads each completion")
    sweep.add_argument("--readout-layer", type=int, default=None,
                       help="layer of the readout probe (default: the vector's first layer)")
    sweep.add_argument("--backfire-metric", default="vader",
                       help="metric whose move against the intended direction counts as backfire (default vader)")
    sweep.add_argument("--backfire-direction", type=int, default=1, choices=[1, -1],
                       help="+1: positive coefficients are meant to raise the metric (default); -1: to lower it")
    sweep.add_argument("--backfire-floor", default="seeds",
                       help="'seeds' (default: estimated from two unsteered sampled completions per prompt, so a "
                            "no-effect vector backfires ~5%% of the time) or a number on the metric's scale")
    sweep.add_argument("--out", required=True, metavar="DIR")
    sweep.set_defaults(handler=_sweep)
    return sweep


def _sweep(args: argparse.Namespace) -> int:
    import numpy as np

    from interp_steer.data import load_prompts
    from interp_steer.evaluation import generation_sweep
    from interp_steer.plotting import plot_heatmap, save_figure

    model, vector, layers = model_and_vector(args)
    coefficients = numbers(args.coefficients, "--coefficients")
    prompts = load_prompts(args.prompts)
    readout = None
    if args.readout:
        from interp_steer.data import load_corpus
        from interp_steer.probes import ProbeReadout

        positive, sep, negative = args.readout.rpartition(":")
        if not sep or not positive:
            raise ValueError(f"--readout {args.readout!r}: expected POS_FILE:NEG_FILE")
        layer = vector.layers[0] if args.readout_layer is None else model.resolve_layers([args.readout_layer])[0]
        readout = ProbeReadout.fit(model, load_corpus(positive), load_corpus(negative), layer=layer,
                                   labels=(Path(positive).stem, Path(negative).stem))
        print(f"probe readout at layer {layer}: {readout.positive_label} vs {readout.negative_label}, "
              f"training accuracy {readout.train_accuracy:.3f}")
    floor = args.backfire_floor if args.backfire_floor == "seeds" else numbers(args.backfire_floor, "--backfire-floor")[0]
    result = generation_sweep(model, prompts, vector, coefficients, layers, readout=readout,
                              max_new_tokens=args.max_new_tokens, positions=args.positions,
                              backfire_metric=args.backfire_metric, backfire_direction=args.backfire_direction,
                              backfire_floor=floor)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "sweep.json", json.dumps({"model": model.name, "vector": args.vector,
                                                **result.to_dict()}, indent=2))
    for name in ("vader", "perplexity", "repetition", "distinct_2", "probe_valence"):
        if name not in result.metrics:
            continue
        metric = result.metrics[name]
        ax = plot_heatmap(np.array(metric.mean), row_labels=metric.layers,
                          col_labels=[f"{c:g}" for c in metric.coefficients], annotate=True,
                          cmap="RdBu_r" if name in ("vader", "probe_valence") else "viridis", cbar_label=name,
                          title=f"{name} (mean over {metric.n_items} prompts)")
        ax.set_xlabel("coefficient")
        ax.set_ylabel("layer")
        save_figure(ax, out / f"sweep_{name}.png")
    vader = result.metrics["vader"]
    for i, layer in enumerate(vader.layers):
        cells = ", ".join(f"{c:g}: {m:+.2f}" for c, m in zip(vader.coefficients, vader.mean[i], strict=True))
        print(f"layer {layer} VADER by coefficient: {cells}")
    print(f"wrote {out / 'sweep.json'} and sweep_*.png")
    return 0
