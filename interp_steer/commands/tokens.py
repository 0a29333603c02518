"""``interp-steer tokens``: the tokens a steering vector promotes and suppresses at each layer."""

from __future__ import annotations

import argparse
import json

from interp_steer._io import write_text_atomically
from interp_steer.commands.arguments import add_model_args, model_and_vector


def add_parser(subparsers) -> argparse.ArgumentParser:
    tokens = subparsers.add_parser("tokens", help="the tokens a vector promotes and suppresses, per layer (logit lens)")
    tokens.add_argument("vector", metavar="VEC", help="a .safetensors steering vector")
    tokens.add_argument("--minus", metavar="VEC_B", help="read the contrast VEC - VEC_B instead")
    add_model_args(tokens)
    tokens.add_argument("--k", type=int, default=20, help="tokens per side and layer (default 20)")
    tokens.add_argument("--layers", default=None, help="layers of the vector to read (default: all)")
    tokens.add_argument("--raw", action="store_true",
                        help="read through the unembedding only, not through the final norm first")
    tokens.add_argument("--out", metavar="FILE.json", help="also write the table as JSON records")
    tokens.set_defaults(handler=_tokens)
    return tokens


def _tokens(args: argparse.Namespace) -> int:
    from interp_steer.directions import SteeringVector

    if args.k < 1:
        raise ValueError(f"--k {args.k}: give a positive number of tokens")
    model, vector, layers = model_and_vector(args)
    if args.minus:
        vector = vector - SteeringVector.load(args.minus, model=model)
    table = vector.top_tokens(model, k=args.k, layer=layers, through_norm=not args.raw)
    how = "unembedding only" if args.raw else "final norm and unembedding"
    print(f"{model.name}: tokens {'of the contrast ' if args.minus else ''}read through the {how}")
    for layer, rows in table.groupby("layer", sort=True):
        for side in ("promoted", "suppressed"):
            words = rows[rows["side"] == side].sort_values("rank")["token"].map(repr)
            print(f"layer {layer:>3} {side:>10}: {' '.join(words)}")
    if args.out:
        record = {"model": model.name, "vector": args.vector, "minus": args.minus, "through_norm": not args.raw,
                  "k": args.k, "rows": table.to_dict(orient="records")}
        write_text_atomically(args.out, json.dumps(record, indent=1, ensure_ascii=False))
        print(f"wrote {args.out}")
    return 0
