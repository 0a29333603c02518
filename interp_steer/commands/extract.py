"""``interp-steer extract``: build a steering vector from contrastive data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from interp_steer.commands.arguments import (
    UNITS,
    add_model_args,
    layer_runs,
    model_from_args,
    plural,
    unit_line,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    extract = subparsers.add_parser("extract", help="build a steering vector from contrastive data")
    add_model_args(extract)
    source = extract.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", metavar="FILE",
                        help='contrast pairs JSONL {"positive","negative"}, or CAA A/B questions JSONL')
    source.add_argument("--positive", metavar="FILE", help="corpus of positive texts (needs --negative)")
    extract.add_argument("--negative", metavar="FILE", help="corpus of negative texts")
    extract.add_argument("--layers", default="all",
                         help="layers to extract at: comma-separated, or 'all' (default: every layer, from one forward "
                              "pass; steer, lens and dla then need --layers to pick the one(s) to steer)")
    extract.add_argument("--normalise", default="none", choices=list(UNITS),
                         help="the unit the vector is stored in, which is the unit of every coefficient used with it "
                              "later: resid (norm = the mean residual norm at each layer, so a coefficient of 0.3 "
                              "adds 30%% of a typical residual, as in the Python examples' normalised('resid')), "
                              "unit (norm 1: a coefficient is the L2 norm added), or none (default: raw, the "
                              "difference of means as measured)")
    extract.add_argument("--method", default="mean_diff", choices=["mean_diff", "pca", "probe"])
    extract.add_argument("--position", default="last", choices=["last", "mean"])
    extract.add_argument("--chat", action="store_true", help="wrap texts in the model's chat template")
    extract.add_argument("--gguf", metavar="FILE", help="also export a llama.cpp control vector")
    extract.add_argument("--batch-size", type=int, default=16)
    extract.add_argument("--out", required=True, metavar="VEC.safetensors")
    extract.set_defaults(handler=_extract)
    return extract


def _extract(args: argparse.Namespace) -> int:
    from interp_steer.data import DatasetError, load_ab_questions, load_corpus, load_pairs
    from interp_steer.directions import ab_contrast_pairs, build_vector

    if args.positive and not args.negative:
        raise ValueError("--positive needs --negative (or use --pairs)")
    if args.negative and not args.positive:
        raise ValueError("--negative needs --positive (or use --pairs)")
    if not args.out.endswith(".safetensors"):
        raise ValueError(f"--out {args.out}: the vector is written as a .safetensors file")
    model = model_from_args(args)
    chat, position = args.chat, args.position
    if args.pairs:
        first = json.loads(Path(args.pairs).read_text(encoding="utf-8").lstrip().splitlines()[0] or "{}")
        if isinstance(first, dict) and "question" in first:
            # CAA: chat-formatted question, read at the answer letter.
            if args.chat or args.position != "last":
                print("A/B questions are read the CAA way (chat template, answer letter); "
                      "--chat/--position are ignored", file=sys.stderr)
            data = ab_contrast_pairs(model, load_ab_questions(args.pairs))
            chat, position = False, "last"
            kind = f"{len(data)} A/B questions"
        else:
            data = load_pairs(args.pairs)
            kind = f"{len(data)} pairs"
        positive, negative = data, None
    else:
        positive, negative = load_corpus(args.positive), load_corpus(args.negative)
        kind = f"{len(positive)} positive / {len(negative)} negative texts"
    print(f"{model.name}: {kind}, method {args.method}, position {position}"
          f"{' (chat)' if chat else ''}", flush=True)
    try:
        vector = build_vector(model, positive, negative, layers=args.layers, method=args.method,
                              position=position, chat=chat, batch_size=args.batch_size, progress=True)
    except DatasetError:
        raise
    rel = vector.relative_norms()
    if args.normalise != "none":
        vector = vector.normalised(args.normalise)
    path = vector.save(args.out)
    every = " (every layer)" if len(vector) == model.n_layers else ""
    print(f"wrote {path}: {plural(len(vector), 'layer')}{every}: {layer_runs(vector.layers)}; raw norm / mean "
          f"residual norm {min(rel.values()):.3f}..{max(rel.values()):.3f}")
    print(f"coefficient unit: {unit_line(vector, args.normalise)}")
    if len(vector) > 1:
        print("steer, lens and dla steer the layers given by --layers at once (required with several layers); "
              "sweep and ab-eval steer each layer on its own")
    if args.gguf:
        exported = vector.select([layer for layer in vector.layers if layer > 0])
        print(f"wrote {exported.to_gguf(args.gguf)} (llama.cpp control vector; layer 0 is not steerable there)")
    return 0
