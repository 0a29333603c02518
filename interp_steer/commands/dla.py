"""``interp-steer dla``: direct logit attribution of a logit difference, steered against a reference run."""

from __future__ import annotations

import argparse
import math

from interp_steer.commands.arguments import (
    add_model_args,
    add_steered_prompt_args,
    plural,
    steered_prompts,
    words,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    dla = subparsers.add_parser(
        "dla", help="direct logit attribution: which components, heads and the steering delta write a logit difference",
        description="Decompose m = mean logit(--tokens-a) - mean logit(--tokens-b) at each prompt's final position into "
        "the direct contributions of the embedding, every attention and MLP output, every head and the steering delta, "
        "with the final norm's scale frozen at each run's value, for a reference run (unsteered, or the same vector at "
        "--reference-coefficient) and the steered run. dla.json holds per prompt and mean values with intervals and "
        "the remainder the frozen-scale readout misses (logit soft-capping).")
    add_model_args(dla)
    add_steered_prompt_args(dla)
    dla.add_argument("--tokens-a", required=True, help="comma-separated words of one token each whose mean logit counts "
                     "positively, e.g. ' hope, bright'")
    dla.add_argument("--tokens-b", default="", help="words whose mean logit counts negatively (default: none)")
    dla.add_argument("--reference-coefficient", type=float, default=None,
                     help="the reference run steers by the same vector at this coefficient (default: unsteered)")
    dla.add_argument("--top", type=int, default=10, help="components to print (default 10)")
    dla.set_defaults(handler=_dla)
    return dla


def _dla(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from interp_steer.dla import direct_logit_attribution

    if args.top < 1:
        raise ValueError(f"--top {args.top}: give a positive number of components")
    tokens_a, tokens_b = words(args.tokens_a), words(args.tokens_b)
    if not tokens_a:
        raise ValueError("--tokens-a is empty: give at least one word of one token")
    model, steering, prompts, chat = steered_prompts(args)
    reference = None if args.reference_coefficient is None else replace(steering, coefficient=args.reference_coefficient)
    result = direct_logit_attribution(model, prompts, steering, tokens_a=tokens_a, tokens_b=tokens_b,
                                      reference=reference, chat=chat)
    written = result.save(args.out, figures=not args.no_figures)
    summary = result.summary()
    total, parts = summary["difference_total"], summary["difference_sum"]
    print(f"{len(prompts)} prompt(s); steered - reference logit difference {total['mean']:+.4f}, "
          f"sum of the direct shares {parts['mean']:+.4f}, remainder {summary['difference_remainder']['mean']:+.2g}")
    if not result.has_heads:
        print(f"heads: {result.heads_note}")
    print("largest shares (chosen on these prompts), with the direct part (the component's own write changing):")
    for row in result.top(args.top):
        bounds = "" if not math.isfinite(row["low"]) else f" [{row['low']:+.3f}, {row['high']:+.3f}]"
        print(f"  {row['component']:>22}: {row['mean']:+.4f}{bounds}  direct {row['direct']:+.4f}")
    print(f"wrote {written['json']}" + (f" and {plural(len(written) - 1, 'figure')}" if len(written) > 1 else ""))
    return 0
