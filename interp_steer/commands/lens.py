"""``interp-steer lens``: the logit lens of prompts, unsteered and under a steering vector."""

from __future__ import annotations

import argparse

from interp_steer.commands.arguments import add_model_args, model_and_vector


def add_parser(subparsers) -> argparse.ArgumentParser:
    lens = subparsers.add_parser("lens", help="logit lens of prompts, unsteered and steered: KL to the final layer, "
                                              "ranks of chosen tokens")
    add_model_args(lens)
    lens.add_argument("--vector", required=True, metavar="VEC.safetensors")
    lens.add_argument("--coefficient", type=float, required=True)
    lens.add_argument("--layers", default=None, help="layers of the vector to use (default: all)")
    lens.add_argument("--positions", default="after_prompt", choices=["after_prompt", "all"],
                      help="after_prompt (default) steers the last prompt token, which predicts the first answer token")
    source = lens.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="one prompt")
    source.add_argument("--prompts", metavar="FILE", help="prompt list (JSONL {text} or one per line)")
    lens.add_argument("--tokens", default="", help="comma-separated words of one token each to follow, e.g. ' hope,dark'")
    lens.add_argument("--window", type=int, default=12, help="how many of the last positions to read (default 12)")
    lens.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    lens.add_argument("--no-figures", action="store_true")
    lens.add_argument("--out", required=True, metavar="DIR")
    lens.set_defaults(handler=_lens)
    return lens


def _lens(args: argparse.Namespace) -> int:
    from interp_steer.data import load_prompts
    from interp_steer.lens import steered_lens
    from interp_steer.steering import Steering

    if args.window < 1:
        raise ValueError(f"--window {args.window}: give a positive number of positions")
    words = [w for w in args.tokens.split(",") if w]
    model, vector, layers = model_and_vector(args)
    prompts = [args.prompt] if args.prompt else load_prompts(args.prompts)
    result = steered_lens(model, prompts, Steering(vector, args.coefficient, layers=layers, positions=args.positions),
                          tokens=words, window=args.window, chat=False if args.no_chat else None)
    written = result.save(args.out, figures=not args.no_figures)
    for entry in result.prompts:
        print(f"### {entry['prompt']}")
        for run in ("unsteered", "steered"):
            kl = [row[-1] for row in entry[run]["kl"]]
            print(f"  {run:>9}: final_post top {entry[run]['top_final'][:3]}; KL to final at the last position, "
                  f"first entry {kl[0]:.2f}, middle {kl[len(kl) // 2]:.2f}")
        if words:
            for word, diff in zip(words, entry["logit_diff"], strict=True):
                print(f"  steered - unsteered logit of {word!r} at the last position: final_post {diff[-1]:+.3f}")
    print(f"wrote {written['json']}" + (f" and {len(written) - 1} figures" if len(written) > 1 else ""))
    return 0
