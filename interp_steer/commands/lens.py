"""``interp-steer lens``: the logit lens of prompts, unsteered and under a steering vector."""

from __future__ import annotations

import argparse

from interp_steer.commands.arguments import (
    add_model_args,
    add_steered_prompt_args,
    plural,
    steered_prompts,
    words,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    lens = subparsers.add_parser("lens", help="logit lens of prompts, unsteered and steered: KL to the final layer, "
                                              "ranks of chosen tokens")
    add_model_args(lens)
    add_steered_prompt_args(lens)
    lens.add_argument("--tokens", default="", help="comma-separated words of one token each to follow, e.g. ' hope,dark'")
    lens.add_argument("--window", type=int, default=12, help="how many of the last positions to read (default 12)")
    lens.set_defaults(handler=_lens)
    return lens


def _lens(args: argparse.Namespace) -> int:
    from interp_steer.lens import steered_lens

    if args.window < 1:
        raise ValueError(f"--window {args.window}: give a positive number of positions")
    followed = words(args.tokens)
    model, steering, prompts, chat = steered_prompts(args)
    result = steered_lens(model, prompts, steering, tokens=followed, window=args.window, chat=chat)
    written = result.save(args.out, figures=not args.no_figures)
    for entry in result.prompts:
        print(f"### {entry['prompt']}")
        for run in ("unsteered", "steered"):
            kl = [row[-1] for row in entry[run]["kl"]]
            print(f"  {run:>9}: final_post top {entry[run]['top_final'][:3]}; KL to final at the last position, "
                  f"first entry {kl[0]:.2f}, middle {kl[len(kl) // 2]:.2f}")
        for word, diff in zip(followed, entry["logit_diff"], strict=True):
            print(f"  steered - unsteered logit of {word!r} at the last position: final_post {diff[-1]:+.3f}")
    print(f"wrote {written['json']}" + (f" and {plural(len(written) - 1, 'figure')}" if len(written) > 1 else ""))
    return 0
