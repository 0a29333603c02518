"""The ``interp-steer`` command line: a thin client of the public API.

Subcommands: ``info`` (what a model looks like), ``demo`` (the README's main job on the default model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from interp_steer import __version__


def _add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, metavar="SPEC",
        help="model spec: default SmolLM2-135M-Instruct (embedded), a hub id, an HF directory, "
        "a .gguf file, or tiny-random[:SEED]",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interp-steer",
        description="Activation steering and interpretability on TransformerLens.",
    )
    parser.add_argument("--version", action="version", version=f"interp-steer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = sub.add_parser("info", help="load a model and print its name, size and hook names")
    _add_model(info)
    info.add_argument("--json", action="store_true", help="print JSON instead of text")

    demo = sub.add_parser(
        "demo", help="per-layer summary of the built-in personas on a model (JSON + PNG)"
    )
    _add_model(demo)
    demo.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    demo.add_argument("--position", default="last", choices=["last", "mean"],
                      help="token position to read (default: the last token)")
    demo.add_argument("--limit", type=int, default=None,
                      help="use only the first N passages of each built-in corpus")
    demo.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    demo.add_argument("--batch-size", type=int, default=16)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return {"info": _info, "demo": _demo}[args.command](args)
    except (ValueError, KeyError, OSError, RuntimeError) as error:
        print(f"interp-steer {args.command}: error: {error}", file=sys.stderr)
        return 2


def _info(args: argparse.Namespace) -> int:
    from interp_steer.models import load_model

    model = load_model(args.model, device=args.device)
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


def _demo(args: argparse.Namespace) -> int:
    from interp_steer.data import load_builtin
    from interp_steer.demo import layer_summary, plot_layer_summary
    from interp_steer.models import load_model
    from interp_steer.plotting import save_figure

    if args.limit is not None and args.limit < 4:
        raise ValueError(f"--limit {args.limit}: at least 4 passages per corpus are needed")
    started = time.perf_counter()
    model = load_model(args.model, device=args.device)
    corpora = {name: load_builtin(name)[: args.limit] for name in ("persona_a", "persona_b", "baseline")}
    print(f"model {model.name}: {model.n_layers} layers, d_model {model.d_model}; "
          f"{sum(map(len, corpora.values()))} built-in passages", flush=True)
    summary = layer_summary(
        model, corpora["persona_a"], corpora["persona_b"], corpora["baseline"],
        position=args.position, seed=args.seed, batch_size=args.batch_size, progress=True,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2))
    figure = save_figure(plot_layer_summary(summary), out / "layer_summary.png")

    print(f"\n{'layer':>5}  {'‖resid‖':>9}  {'cos(vA,vB)':>10}  {'held-out acc':>12}  {'d′':>6}")
    for i, layer in enumerate(summary.layers):
        print(f"{layer:>5}  {summary.resid_norm[i]:>9.1f}  {summary.cosine_ab[i]:>10.3f}  "
              f"{summary.heldout_accuracy[i]:>12.3f}  {summary.heldout_dprime[i]:>6.2f}")
    print(f"\nbest layer for persona A vs B (held-out d′): {summary.best_layer}")
    print(f"wrote {out / 'summary.json'} and {figure} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
