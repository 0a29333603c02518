"""``interp-steer ab-eval``: CAA's A/B test under steering."""

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

COEFFICIENTS = {"none": "-2,-1,0,1,2", "resid": "-0.2,-0.1,0,0.1,0.2"}
"""Default coefficients by the vector's unit: CAA's multipliers of a raw mean difference, and about
what they come to on the default model (a raw vector there is about 0.12 of the residual norm) for
a ``resid`` vector."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    ab = subparsers.add_parser("ab-eval", help="CAA A/B evaluation: P(matching answer) under steering")
    add_model_args(ab)
    ab.add_argument("--questions", required=True, metavar="FILE")
    add_vector_to_steer_args(ab, together=False)
    ab.add_argument("--coefficients", default=None,
                    help="comma-separated, in the vector's unit (printed; see --normalise and below). Default: "
                         f"{COEFFICIENTS['resid']} for a resid vector, {COEFFICIENTS['none']} (CAA's multipliers) "
                         "for a raw one; a unit-norm vector needs them given")
    ab.add_argument("--limit", type=int, default=None, help="use only the first N questions")
    ab.add_argument("--floor", type=float, default=0.0,
                    help="move of P(matching) against the coefficient that makes a question anti-steerable (default 0)")
    ab.add_argument("--out", required=True, metavar="DIR")
    ab.set_defaults(handler=_ab_eval)
    return ab


def _ab_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from interp_steer.data import load_ab_questions
    from interp_steer.evaluation import ab_eval, anti_steerable_fraction
    from interp_steer.plotting import plot_layer_profile, save_figure

    given = None if args.coefficients is None else numbers(args.coefficients, "--coefficients")
    questions = load_ab_questions(args.questions)[: args.limit]
    model, vector, layers, unit = vector_to_steer(args, together=False)
    coefficients = given or default_coefficients(unit["unit"], COEFFICIENTS, "--coefficients")
    result = ab_eval(model, questions, vector, coefficients, layers)
    anti = anti_steerable_fraction(result, floor=args.floor)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "ab_eval.json", json.dumps({"model": model.name, "questions": args.questions,
                                                  "vector": args.vector, "coefficient_unit": unit,
                                                  **result.to_dict(per_item=True),
                                                  "anti_steerable": anti}, indent=2))
    ax = None
    for i, layer in enumerate(result.layers):
        ax = plot_layer_profile(result.coefficients, result.mean[i], band=(result.low[i], result.high[i]),
                                label=f"layer {layer}", xlabel=f"steering coefficient ({UNIT_LABELS[unit['unit']]})",
                                ylabel="P(matching answer)", ax=ax,
                                title=f"{Path(args.questions).stem}: {len(questions)} questions")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=0.8)
    save_figure(ax, out / "ab_eval.png")
    for i, layer in enumerate(result.layers):
        cells = ", ".join(f"{c:g}: {m:.3f} [{lo:.3f}, {hi:.3f}]" for c, m, lo, hi in
                          zip(result.coefficients, result.mean[i], result.low[i], result.high[i], strict=True))
        print(f"layer {layer}: {cells}")
    for layer, slope in anti["slope"].items():
        print(f"layer {layer}: anti-steerable (negative slope) {slope['mean']:.0%} of {slope['n']} questions")
    print(f"mean P(matching) over all cells {np.mean(result.mean):.3f}; wrote {out / 'ab_eval.json'}")
    return 0
