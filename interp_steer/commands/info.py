"""``interp-steer info``: show what a model looks like: name, size, hook names."""

from __future__ import annotations

import argparse
import json

from interp_steer.commands.arguments import add_model_args, model_from_args


def add_parser(subparsers) -> argparse.ArgumentParser:
    info = subparsers.add_parser("info", help="load a model and print its name, size and hook names")
    add_model_args(info)
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(handler=_info)
    return info


def _info(args: argparse.Namespace) -> int:

    model = model_from_args(args)
    facts = model.describe()
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        if key == "hook_points":
            value = ", ".join(value.values())
        print(f"{key:<{width}}  {value}")
    return 0
