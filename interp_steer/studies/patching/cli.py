"""``interp-steer patch``: dominance patching from the command line."""

from __future__ import annotations

import argparse
import time

from interp_steer.commands.arguments import add_backend_args, add_model_args, integer
from interp_steer.studies.patching.config import PatchingConfig


def add_parser(subparsers) -> argparse.ArgumentParser:
    defaults = PatchingConfig()
    patch = subparsers.add_parser(
        "patch", help="activation patching: which components carry the dominant persona in a mix",
        description="Patch components from a pure-persona run into a mix run. report.md and patching.json keep "
        "two things apart: sanity checks (effects fixed by construction, e.g. the whole residual after the "
        "steering layer restores 1.00, or predicted by cos(v_A, v_B)) and findings (the top --select-top "
        "components chosen on one seeded half of the prompts, reported with Fieller intervals on the other "
        "half, both ways round).",
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
                       help="exact: patch every head; attribution: rank heads by attribution on each half of the prompts and "
                       "patch the top --top-k of each exactly")
    patch.add_argument("--max-prompts", type=int, default=defaults.max_prompts,
                       help=f"prompts to patch (default {defaults.max_prompts}; at least 4: half choose the findings, "
                       "half report them)")
    patch.add_argument("--select-top", type=int, default=defaults.select_top,
                       help=f"components each half chooses and the other reports (default {defaults.select_top})")
    patch.add_argument("--top-k", type=int, default=defaults.top_k,
                       help=f"heads per half patched exactly with --method attribution (default {defaults.top_k})")
    patch.add_argument("--max-passages", type=int, default=48, help="passages per corpus for the vectors")
    patch.add_argument("--positions", type=int, default=12, help="last N prompt positions in the position sweep")
    patch.add_argument("--continuation", default="The", help="text whose first token's log-probability is a metric")
    patch.add_argument("--dla", action="store_true",
                       help="also decompose m_source - m_target (logit difference) into the direct contributions of every "
                       "component, head and the steering delta (dla/ in --out)")
    patch.add_argument("--attention-heads", type=int, default=0, metavar="K",
                       help="also compare source and target attention of the K heads with the largest patching effect "
                       "(attention/ in --out; default 0: off)")
    patch.add_argument("--seed", type=int, default=0, help="seed of the probes' folds and of the prompts' split")
    patch.add_argument("--out", required=True, metavar="DIR")
    add_backend_args(patch)
    patch.set_defaults(handler=_patch)
    return patch


def _patch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from interp_steer.commands.resume import resumable_command
    from interp_steer.studies.patching.study import run

    layer = args.layer if args.layer == "auto" else integer(args.layer, "--layer")
    components = tuple(c.strip() for c in args.components.split(",") if c.strip())
    started = time.perf_counter()
    config = PatchingConfig(alpha=args.alpha, lam=args.lam, source=args.source, layer=layer, components=components,
                            method=args.method, max_prompts=args.max_prompts, select_top=args.select_top,
                            top_k=args.top_k, max_passages=args.max_passages, positions=args.positions,
                            continuation=args.continuation, seed=args.seed, dla=args.dla,
                            attention_heads=args.attention_heads)
    corpora = {"persona_a": args.persona_a, "persona_b": args.persona_b, "baseline": args.baseline,
               "prompts": args.prompts}
    done = resumable_command(args, Path(args.out), config, corpora, run)
    if done is None:
        return 0
    result, written = done
    print(f"\nsteering layer {result.layer}; sanity checks (identities, not findings):")
    for check in result.sanity_checks:
        m = check["measured"]["logit_diff"]
        print(f"  {check['name']}: expected {check['expected']:.3f}, measured {m['effect']:.4f} "
              f"({'holds' if check['holds'] else 'does not hold'})")
    for fold in result.findings["folds"]:
        print(f"findings chosen on half {fold['choose_on'] + 1}, reported on half {fold['report_on'] + 1} (logit difference):")
        for row in fold["components"][:5]:
            print(f"  {row['component']} {row['index']}: {row['effect']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]"
                  f"{'  holds up' if row['holds_up'] else ''}")
    for component, value in result.attribution["correlation_with_exact"].items():
        print(f"  attribution vs exact, {component}: r = {value['pearson_r']:.2f}")
    if "dla" in result.followups:
        dla = result.followups["dla"]
        total = dla.summary()["difference_total"]
        print(f"direct logit attribution of m_source - m_target = {total['mean']:+.3f}; largest shares:")
        for row in dla.top(5):
            print(f"  {row['component']:>22}: {row['mean']:+.3f}")
    if "attention" in result.followups:
        for row in result.followups["attention"].summary():
            print(f"attention of head {row['layer']}.{row['head']}: source vs target total variation "
                  f"{row['tvd']['mean']:.3f} at the final position")
    print(f"wrote {written['json']} and {written['report']} in {time.perf_counter() - started:.0f} s")
    return 0


__all__ = ["add_parser"]
