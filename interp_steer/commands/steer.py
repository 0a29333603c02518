"""``interp-steer steer``: steered completions."""

from __future__ import annotations

import argparse
import json

from interp_steer._io import write_text_atomically
from interp_steer.commands.arguments import (
    add_model_args,
    add_vector_to_steer_args,
    vector_to_steer,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    steer = subparsers.add_parser("steer", help="generate completions with a steering vector")
    add_model_args(steer)
    add_vector_to_steer_args(steer, together=True)
    steer.add_argument("--coefficient", type=float, required=True,
                       help="steering strength, in the vector's unit (printed; see --normalise and below)")
    steer.add_argument("--positions", default="after_prompt", choices=["after_prompt", "all"],
                       help="after_prompt (default) steers from the prompt's last token on, every generated token "
                            "included; all steers the whole prompt too")
    prompt_source = steer.add_mutually_exclusive_group(required=True)
    prompt_source.add_argument("--prompt", help="one prompt")
    prompt_source.add_argument("--prompts", metavar="FILE", help="prompt list (JSONL {text} or one per line)")
    steer.add_argument("--max-new-tokens", type=int, default=60)
    steer.add_argument("--temperature", type=float, default=0.0)
    steer.add_argument("--seed", type=int, default=None)
    steer.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    steer.add_argument("--out", metavar="FILE.json", help="also write the completions as JSON")
    steer.set_defaults(handler=_steer)
    return steer


def _steer(args: argparse.Namespace) -> int:
    from interp_steer.data import load_prompts
    from interp_steer.generation import generate
    from interp_steer.steering import Steering

    prompts = [args.prompt] if args.prompt else load_prompts(args.prompts)
    model, vector, layers, unit = vector_to_steer(args, together=True)
    outputs = generate(model, prompts, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                       seed=args.seed, chat=False if args.no_chat else None,
                       steering=Steering(vector, args.coefficient, layers=layers, positions=args.positions))
    for out in outputs:
        print(f"### {out.prompt}\n{out.text}\n")
    if args.out:
        record = {"model": model.name, "vector": args.vector, "coefficient": args.coefficient,
                  "coefficient_unit": unit, "layers": layers, "positions": args.positions,
                  "seed": args.seed, "temperature": args.temperature,
                  "completions": [o.to_dict() for o in outputs]}
        write_text_atomically(args.out, json.dumps(record, indent=2))
        print(f"wrote {args.out}")
    return 0
