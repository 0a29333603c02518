"""``interp-steer svf``: the Steering Vector Fields comparison from the command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from interp_steer.commands.arguments import (
    add_backend_args,
    add_concept_args,
    add_model_args,
    backend_from_args,
    check_concept_args,
    model_from_args,
    numbers,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    svf = subparsers.add_parser(
        "svf", help="Steering Vector Fields: fit a field and a vector on the same data and compare them on held-out inputs"
    )
    add_model_args(svf)
    add_concept_args(svf, "A/B questions in CAA's format; split into training and held-out questions")
    svf.add_argument("--prompts", metavar="FILE", help="held-out prompts to complete (default: built-in)")
    svf.add_argument("--layers", default=None, help="steering layers, e.g. 12,13,14, or 'auto' (default)")
    svf.add_argument("--coefficients", default=None,
                     help="coefficients in units of the layer's mean residual norm, with 0 and both signs, e.g. -0.1,0,0.1")
    svf.add_argument("--primary", type=float, default=None,
                     help="the coefficient the claims are judged at (default: the largest positive one)")
    svf.add_argument("--form", default=None, choices=["per_layer", "shared", "linear"],
                     help="the field's scorer (default per_layer: an MLP per layer)")
    svf.add_argument("--direction", default=None, choices=["auto", "1", "-1"],
                     help="+1 if positive coefficients should raise the score (VADER), -1 if lower; auto (default): "
                          "from the training texts' scores")
    svf.add_argument("--quick", action="store_true",
                     help="coefficients -0.1,0,0.1, 48 passages per corpus, 32 tokens, 48 long-form tokens: a few minutes "
                          "on a laptop CPU")
    svf.add_argument("--max-new-tokens", type=int, default=None)
    svf.add_argument("--long-tokens", type=int, default=None, help="tokens of the long-form completions (default 128)")
    svf.add_argument("--max-prompts", type=int, default=None, help="use only the first N held-out prompts/questions")
    svf.add_argument("--max-passages", type=int, default=None, help="use only the first N training texts per side")
    svf.add_argument("--no-multi-attribute", action="store_true", help="skip the two-attribute test")
    svf.add_argument("--seed", type=int, default=None, help="seed for splits, fitting, sampling and bootstraps")
    svf.add_argument("--batch-size", type=int, default=None, help="rows per generation batch (default 64)")
    svf.add_argument("--out", default=None, metavar="DIR", help="output directory (default: runs/svf-<timestamp>)")
    add_backend_args(svf)
    svf.set_defaults(handler=_svf)
    return svf


def _layers(text: str | None):
    if text is None or text == "auto":
        return text
    try:
        layers = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        layers = ()
    if not layers:
        raise ValueError(f"--layers {text!r}: expected comma-separated layer numbers such as 12,13,14, or 'auto'")
    return layers


def _svf(args: argparse.Namespace) -> int:
    from interp_steer.commands.resume import already_finished, mark_finished
    from interp_steer.execution import Execution
    from interp_steer.studies.svf.config import SvfConfig
    from interp_steer.studies.svf.study import svf, units_key
    from interp_steer.units import device_type

    check_concept_args(args)
    overrides = {
        "layers": _layers(args.layers),
        "coefficients": tuple(numbers(args.coefficients, "--coefficients")) if args.coefficients is not None else None,
        "primary": args.primary, "form": args.form,
        "direction": None if args.direction is None else (args.direction if args.direction == "auto" else int(args.direction)),
        "max_new_tokens": args.max_new_tokens, "long_tokens": args.long_tokens, "max_prompts": args.max_prompts,
        "max_passages": args.max_passages, "seed": args.seed, "batch_size": args.batch_size,
        "multi_attribute": False if args.no_multi_attribute else None,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    out = Path(args.out) if args.out else Path("runs") / time.strftime("svf-%Y%m%d-%H%M%S")
    started = time.perf_counter()
    config = SvfConfig.quick(**overrides) if args.quick else SvfConfig(**overrides)
    data = {"positive": args.positive, "negative": args.negative, "pairs": args.pairs, "questions": args.questions,
            "prompts": args.prompts}
    key = units_key((args.model, "float32", device_type(args.device)), config, **data)
    if already_finished(args, out, key):
        return 0
    execution = Execution(progress=True, log=lambda line: print(line, flush=True), store=out / "units",
                          backend=backend_from_args(args), fresh=args.fresh)
    model = model_from_args(args)
    print(f"model {model.name}: {model.n_layers} layers, d_model {model.d_model}", flush=True)
    result = svf(model, config, **data, execution=execution)
    written = result.save(out)
    mark_finished(out, key, written)
    cd = result.context_dependence
    print(f"\nlayers {result.layers['chosen']}; context dependence of the field "
          + ", ".join(f"{layer}: {value:.2f}" for layer, value in zip(cd["layers"], cd["field"], strict=True))
          + " (vector: 1 by construction)")
    for claim in result.claims:
        print(f"- {claim.key}: {claim.verdict.upper()} — {claim.summary}")
    figures = [k for k in written if k not in ("json", "report", "field", "vector")]
    print(f"\nwrote {written['json']}, {written['report']}, the field and the vector, and {len(figures)} figures in "
          f"{time.perf_counter() - started:.0f} s")
    return 0


__all__ = ["add_parser"]
