"""``interp-steer patch``: dominance patching from the command line."""

from __future__ import annotations

import argparse
import time

from interp_steer.commands.arguments import add_model_args, integer


def add_parser(subparsers) -> argparse.ArgumentParser:
    patch = subparsers.add_parser(
        "patch", help="activation patching: which components carry the dominant persona in a mix"
    )
    add_model_args(patch)
    patch.add_argument("--persona-a", metavar="FILE", help="persona A corpus (default: built-in)")
    patch.add_argument("--persona-b", metavar="FILE", help="persona B corpus (default: built-in)")
    patch.add_argument("--baseline", metavar="FILE", help="baseline corpus (default: built-in)")
    patch.add_argument("--prompts", metavar="FILE", help="prompts (default: built-in)")
    patch.add_argument("--alpha", type=float, default=0.5, help="share of persona A in the target mix (default 0.5)")
    patch.add_argument("--lambda", dest="lam", type=float, default=0.3,
                       help="strength in units of the residual norm (default 0.3)")
    patch.add_argument("--source", default="A", choices=["A", "B"], help="the pure persona patched from (default A)")
    patch.add_argument("--layer", default="auto", help="steering layer, or 'auto' (the shared layer)")
    patch.add_argument("--components", default="resid,attn,mlp,heads", help="any of resid,attn,mlp,heads")
    patch.add_argument("--method", default="exact", choices=["exact", "attribution"],
                       help="exact: patch every head; attribution: rank heads by attribution, patch the top ones")
    patch.add_argument("--max-prompts", type=int, default=6)
    patch.add_argument("--max-passages", type=int, default=48, help="passages per corpus for the vectors")
    patch.add_argument("--positions", type=int, default=12, help="last N prompt positions in the position sweep")
    patch.add_argument("--continuation", default="The", help="text whose first token's log-probability is a metric")
    patch.add_argument("--seed", type=int, default=0)
    patch.add_argument("--out", required=True, metavar="DIR")
    patch.set_defaults(handler=_patch)
    return patch


def _patch(args: argparse.Namespace) -> int:
    from interp_steer.models import load_model
    from interp_steer.studies.patching.study import dominance_patching

    layer = args.layer if args.layer == "auto" else integer(args.layer, "--layer")
    components = tuple(c.strip() for c in args.components.split(",") if c.strip())
    started = time.perf_counter()
    model = load_model(args.model, device=args.device)
    result = dominance_patching(
        model, persona_a=args.persona_a, persona_b=args.persona_b, baseline=args.baseline, prompts=args.prompts,
        log=lambda line: print(line, flush=True), alpha=args.alpha, lam=args.lam, source=args.source, layer=layer,
        components=components, method=args.method, max_prompts=args.max_prompts, max_passages=args.max_passages,
        positions=args.positions, continuation=args.continuation, seed=args.seed,
    )
    written = result.save(args.out)
    print(f"\nsteering layer {result.layer}; strongest components (logit difference):")
    for row in result.top[:5]:
        print(f"  {row['component']} {row['index']}: {row['effect']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]")
    for component, value in result.attribution["correlation_with_exact"].items():
        print(f"  attribution vs exact, {component}: r = {value['pearson_r']:.2f}")
    print(f"wrote {written['json']} and {written['report']} in {time.perf_counter() - started:.0f} s")
    return 0


__all__ = ["add_parser"]
