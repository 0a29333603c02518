"""``interp-steer robustness``: how far can a steering vector be trusted (arXiv 2505.03189's five findings)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from interp_steer.commands.arguments import (
    add_backend_args,
    add_concept_args,
    add_device_args,
    backend_from_args,
    check_concept_args,
    numbers,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    rob = subparsers.add_parser(
        "robustness", help="re-test a steering vector on the five findings of arXiv 2505.03189: in- vs out-of-"
                           "distribution, sample size, adversarial reversal, perplexity, model size")
    rob.add_argument("--models", "--model", dest="models", default=None, metavar="SPEC[,SPEC...]",
                     help="one model spec or several, comma-separated (default: the embedded SmolLM2-135M-Instruct); "
                          "several are compared on finding 5")
    add_device_args(rob)
    add_concept_args(rob, "A/B questions in CAA's format; the held-out ones are the in-distribution items")
    rob.add_argument("--prompts", metavar="FILE", help="in-distribution prompts (default: built-in)")
    rob.add_argument("--ood-prompts", metavar="FILE", nargs="+", default=None,
                     help="out-of-distribution prompt sets, one file each (default: built-in prompts_ood)")
    rob.add_argument("--ood-questions", metavar="FILE", nargs="+", default=None,
                     help="out-of-distribution A/B question sets, one file each")
    rob.add_argument("--neutral", metavar="FILE", help="neutral perplexity corpus (default: built-in baseline passages)")
    rob.add_argument("--layer", default=None, help="steering layer number, or 'auto' (default: the best probe layer)")
    rob.add_argument("--coefficients", default=None,
                     help="coefficients in units of the layer's mean residual norm, with 0 and both signs, e.g. -0.2,0,0.2")
    rob.add_argument("--primary", type=float, default=None, help="the coefficient the findings are judged at "
                                                                 "(default: the largest)")
    rob.add_argument("--perplexity-coefficients", default=None, help="coefficients of the perplexity sweep")
    rob.add_argument("--direction", default=None, choices=["auto", "1", "-1"],
                     help="+1 if positive coefficients should raise the score (VADER), -1 if lower; auto (default)")
    rob.add_argument("--sample-sizes", default=None, help="training examples per class, e.g. 4,8,16,32,64,128")
    rob.add_argument("--subsets", type=int, default=None, help="random subsets per sample size (default 5)")
    rob.add_argument("--adversarial-seeds", type=int, default=None, help="seed prompts for the adversarial search")
    rob.add_argument("--adversarial-budget", type=int, default=None, help="candidates per search (default 192)")
    rob.add_argument("--quick", action="store_true",
                     help="3 coefficients, 3 subsets on 12 prompts, 16 adversarial seeds x (search + random control) x 64 candidates, no GCG, 24 tokens")
    rob.add_argument("--max-new-tokens", type=int, default=None)
    rob.add_argument("--max-prompts", type=int, default=None, help="use only the first N items of every prompt set")
    rob.add_argument("--max-passages", type=int, default=None, help="use only the first N texts per training corpus")
    rob.add_argument("--seed", type=int, default=None, help="seed for splits, subsets, searches and bootstraps")
    rob.add_argument("--batch-size", type=int, default=None, help="rows per batch (default 64)")
    rob.add_argument("--out", default=None, metavar="DIR", help="output directory (default: runs/robustness-<timestamp>)")
    add_backend_args(rob)
    rob.set_defaults(handler=_robustness)
    return rob


def _layer(text: str | None):
    if text is None or text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--layer {text!r}: expected a layer number such as 15, or 'auto'") from None


def _ints(text: str | None, flag: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    values = numbers(text, flag)
    if any(v != int(v) for v in values):
        raise ValueError(f"{flag} {text!r}: expected whole numbers such as 4,8,16")
    return tuple(int(v) for v in values)


def _robustness(args: argparse.Namespace) -> int:
    from interp_steer.commands.resume import already_finished, mark_finished
    from interp_steer.execution import Execution
    from interp_steer.models import load_model
    from interp_steer.studies.robustness.config import RobustnessConfig
    from interp_steer.studies.robustness.study import robustness, units_key

    check_concept_args(args)
    overrides = {
        "layer": _layer(args.layer),
        "coefficients": tuple(numbers(args.coefficients, "--coefficients")) if args.coefficients is not None else None,
        "perplexity_coefficients": (tuple(numbers(args.perplexity_coefficients, "--perplexity-coefficients"))
                                    if args.perplexity_coefficients is not None else None),
        "primary": args.primary,
        "direction": None if args.direction is None else (args.direction if args.direction == "auto" else int(args.direction)),
        "sample_sizes": _ints(args.sample_sizes, "--sample-sizes"), "subsets": args.subsets,
        "adversarial_seeds": args.adversarial_seeds, "adversarial_budget": args.adversarial_budget,
        "max_new_tokens": args.max_new_tokens, "max_prompts": args.max_prompts, "max_passages": args.max_passages,
        "seed": args.seed, "batch_size": args.batch_size,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    specs = [s.strip() for s in args.models.split(",")] if args.models else [None]
    if any(s == "" for s in specs):
        raise ValueError(f"--models {args.models!r}: an empty spec between commas")
    out = Path(args.out) if args.out else Path("runs") / time.strftime("robustness-%Y%m%d-%H%M%S")
    started = time.perf_counter()
    # Several models are loaded one at a time by the study (each freed before the next); one is loaded
    # here so that a bad spec fails before any work.
    config = RobustnessConfig.quick(**overrides) if args.quick else RobustnessConfig(**overrides)
    data = {"positive": args.positive, "negative": args.negative, "pairs": args.pairs, "questions": args.questions,
            "prompts": args.prompts, "ood_prompts": args.ood_prompts, "ood_questions": args.ood_questions,
            "neutral": args.neutral}
    key = units_key(specs, config, device=args.device, **data)
    if already_finished(args, out, key):
        return 0
    execution = Execution(progress=True, log=lambda line: print(line, flush=True), store=out / "units",
                          backend=backend_from_args(args), fresh=args.fresh)
    models = [load_model(specs[0], device=args.device, n_devices=args.n_devices)] if len(specs) == 1 else specs
    result = robustness(models, config, device=args.device, n_devices=args.n_devices, **data, execution=execution)
    written = result.save(out)
    mark_finished(out, key, written)
    print()
    for claim in result.claims:
        print(f"- {claim.key}: {claim.verdict.upper()} — {claim.summary}")
    figures = [k for k in written if k not in ("json", "report") and not k.startswith("vector")]
    print(f"\nwrote {written['json']}, {written['report']}, {len(result.vectors)} vector(s) and {len(figures)} figures "
          f"in {time.perf_counter() - started:.0f} s")
    return 0


__all__ = ["add_parser"]
