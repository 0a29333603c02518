"""``interp-steer sweep``: steered generations scored over layers x coefficients."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interp_steer._io import write_text_atomically
from interp_steer.commands.arguments import (
    UNIT_LABELS,
    add_model_args,
    add_vector_to_steer_args,
    default_coefficients,
    numbers,
    vector_to_steer,
)

COEFFICIENTS = {"none": "-8,-4,0,4,8", "resid": "-0.4,-0.2,0,0.2,0.4"}
"""Default coefficients by the vector's unit: about ±1 and ±0.5 of the residual norm for a raw
mean difference on the default model (its norm is about 0.12 of the residual), ±0.4 and ±0.2 of
the residual norm for a ``resid`` vector."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    sweep = subparsers.add_parser("sweep", help="score steered generations over layers x coefficients")
    add_model_args(sweep)
    add_vector_to_steer_args(sweep, together=False)
    sweep.add_argument("--coefficients", default=None,
                       help="comma-separated, in the vector's unit (printed; see --normalise and below). Default: "
                            f"{COEFFICIENTS['resid']} for a resid vector, {COEFFICIENTS['none']} for a raw one; a "
                            "unit-norm vector needs them given")
    sweep.add_argument("--prompts", required=True, metavar="FILE")
    sweep.add_argument("--max-new-tokens", type=int, default=40)
    sweep.add_argument("--positions", default="after_prompt", choices=["after_prompt", "all"])
    sweep.add_argument("--readout", metavar="POS_FILE:NEG_FILE",
                       help="also score probe valence: a probe on the unsteered model trained on these "
                            "two corpora (e.g. persona A vs persona B) reads each completion")
    sweep.add_argument("--readout-layer", type=int, default=None,
                       help="layer of the readout probe (default: the first layer swept)")
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

    given = None if args.coefficients is None else numbers(args.coefficients, "--coefficients")
    prompts = load_prompts(args.prompts)
    model, vector, layers, unit = vector_to_steer(args, together=False)
    coefficients = given or default_coefficients(unit["unit"], COEFFICIENTS, "--coefficients")
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
                                                          "coefficient_unit": unit, **result.to_dict()}, indent=2))
    for name in ("vader", "perplexity", "repetition", "distinct_2", "probe_valence"):
        if name not in result.metrics:
            continue
        metric = result.metrics[name]
        ax = plot_heatmap(np.array(metric.mean), row_labels=metric.layers,
                          col_labels=[f"{c:g}" for c in metric.coefficients], annotate=True,
                          cmap="RdBu_r" if name in ("vader", "probe_valence") else "viridis", cbar_label=name,
                          title=f"{name} (mean over {metric.n_items} prompts)")
        ax.set_xlabel(f"coefficient ({UNIT_LABELS[unit['unit']]})")
        ax.set_ylabel("layer")
        save_figure(ax, out / f"sweep_{name}.png")
    vader = result.metrics["vader"]
    for i, layer in enumerate(vader.layers):
        cells = ", ".join(f"{c:g}: {m:+.2f}" for c, m in zip(vader.coefficients, vader.mean[i], strict=True))
        print(f"layer {layer} VADER by coefficient: {cells}")
    print(f"wrote {out / 'sweep.json'} and sweep_*.png")
    return 0
