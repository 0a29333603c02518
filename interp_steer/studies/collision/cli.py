"""``interp-steer collide``: the Creative Collision study from the command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from interp_steer.commands.arguments import (
    add_backend_args,
    add_model_args,
    integer,
    numbers,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    collide = subparsers.add_parser(
        "collide", help="the Creative Collision study: two persona vectors mixed over alpha x lambda"
    )
    add_model_args(collide)
    collide.add_argument("--quick", action="store_true",
                         help="small grid and prompt set (5 alphas x 2 lambdas, 16 prompts, 48 passages "
                              "per corpus, 32 tokens): a few minutes on a laptop CPU")
    collide.add_argument("--persona-a", metavar="FILE", help="persona A corpus (default: built-in, optimistic)")
    collide.add_argument("--persona-b", metavar="FILE", help="persona B corpus (default: built-in, dark)")
    collide.add_argument("--baseline", metavar="FILE", help="neutral baseline corpus (default: built-in)")
    collide.add_argument("--prompts", metavar="FILE", help="prompts to complete (default: built-in)")
    collide.add_argument("--layer", default="auto", help="steering layer, or 'auto' for the shared layer (default)")
    collide.add_argument("--alphas", default=None, help="mixes, from 0 (pure B) to 1 (pure A), e.g. 0,0.5,1")
    collide.add_argument("--lambdas", default=None,
                         help="strengths in units of the mean residual norm at the layer, e.g. 0.3,0.8")
    collide.add_argument("--position", default=None, choices=["last", "mean"],
                         help="token read to build the persona vectors (default: last)")
    collide.add_argument("--method", default=None, choices=["vector", "field"],
                         help="steer the grid with the persona vectors (default) or with a steering field "
                              "per persona (a learned concept scorer's gradient)")
    collide.add_argument("--field-form", default=None, choices=["per_layer", "shared", "linear"],
                         help="scorer form of the fields with --method field (default: per_layer)")
    collide.add_argument("--max-new-tokens", type=int, default=None)
    collide.add_argument("--samples", type=int, default=None,
                         help="sampled completions per prompt (default: greedy decoding)")
    collide.add_argument("--seed", type=int, default=None, help="seed for sampling, probes and bootstraps")
    collide.add_argument("--max-prompts", type=int, default=None, help="use only the first N prompts")
    collide.add_argument("--max-passages", type=int, default=None, help="use only the first N passages per corpus")
    collide.add_argument("--batch-size", type=int, default=None, help="rows per generation batch (default 128)")
    collide.add_argument("--unit-prompts", type=int, default=None,
                         help="prompts per work unit (default: as many as fill one batch with every cell)")
    collide.add_argument("--save-generations", action="store_true",
                         help="also write every completion as generations.jsonl, the input of interp-steer score")
    collide.add_argument("--out", default=None, metavar="DIR", help="output directory (default: runs/<timestamp>)")
    add_backend_args(collide)
    collide.set_defaults(handler=_collide)
    return collide


def _collide(args: argparse.Namespace) -> int:
    from interp_steer.commands.resume import resumable_command
    from interp_steer.studies.collision.config import CollisionConfig
    from interp_steer.studies.collision.study import run

    layer = args.layer if args.layer == "auto" else integer(args.layer, "--layer")
    overrides = {
        "layer": layer,
        "alphas": tuple(numbers(args.alphas, "--alphas")) if args.alphas is not None else None,
        "lambdas": tuple(numbers(args.lambdas, "--lambdas")) if args.lambdas is not None else None,
        "position": args.position, "max_new_tokens": args.max_new_tokens, "samples": args.samples,
        "seed": args.seed, "max_prompts": args.max_prompts, "max_passages": args.max_passages,
        "batch_size": args.batch_size, "method": args.method, "field_form": args.field_form,
        "unit_prompts": args.unit_prompts, "save_generations": args.save_generations or None,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = CollisionConfig.quick(**overrides) if args.quick else CollisionConfig(**overrides)
    out = Path(args.out) if args.out else Path("runs") / time.strftime("collide-%Y%m%d-%H%M%S")
    started = time.perf_counter()
    corpora = {"persona_a": args.persona_a, "persona_b": args.persona_b, "baseline": args.baseline,
               "prompts": args.prompts}
    done = resumable_command(args, out, config, corpora, run)
    if done is None:
        return 0
    result, written = done
    print(f"\nsteering layer {result.layer}; best usable strength λ = {result.coherence['best_lambda']:g}")
    for finding in result.findings:
        print(f"- {finding.key}: {finding.verdict.upper()} — {finding.summary}")
    print(f"\nwrote {written['json']}, {written['report']} and {sum(path.suffix == '.png' for path in written.values())} figures in "
          f"{time.perf_counter() - started:.0f} s")
    return 0


__all__ = ["add_parser"]
