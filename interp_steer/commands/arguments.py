"""Argument helpers every subcommand shares, the core's and the studies'."""

from __future__ import annotations

import argparse
import math


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, metavar="SPEC",
        help="model spec: default SmolLM2-135M-Instruct (embedded), a hub id, an HF directory, "
        "a .gguf file, or tiny-random[:FAMILY][:SEED] (FAMILY: llama3, qwen2, gemma2, gpt2, ...)",
    )
    add_device_args(parser)


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """Where the model runs: one device, or its layers spread over several GPUs."""
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--n-devices", type=int, default=None, metavar="K",
                        help="spread the model's layers over the first K GPUs, for a model larger than one "
                             "(default: one device)")


def model_from_args(args: argparse.Namespace):
    """The model of ``--model``, ``--device`` and ``--n-devices``."""
    from interp_steer.models import load_model

    return load_model(args.model, device=args.device, n_devices=args.n_devices)


def numbers(text: str, flag: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected comma-separated numbers such as -2,0,2") from None
    if not values:
        raise ValueError(f"{flag} is empty: give comma-separated numbers such as -2,0,2")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{flag} {text!r}: every number must be finite (no nan or inf)")
    return values


def integer(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected an integer or 'auto'") from None


def model_and_vector(args: argparse.Namespace):
    """The model of ``--model``/``--device``, the vector of ``--vector`` (checked against it) and the
    layers of ``--layers`` (``None``: all the vector's layers)."""
    from interp_steer.directions import SteeringVector

    model = model_from_args(args)
    vector = SteeringVector.load(args.vector, model=model)
    layers = None if args.layers in (None, "all") else list(model.resolve_layers(args.layers))
    return model, vector, layers


def add_steered_prompt_args(parser: argparse.ArgumentParser) -> None:
    """The flags of a steering vector read on prompts (``lens``, ``dla``): the vector, its
    coefficient, layers and positions, the prompts, the chat template and the output folder."""
    parser.add_argument("--vector", required=True, metavar="VEC.safetensors")
    parser.add_argument("--coefficient", type=float, required=True)
    parser.add_argument("--layers", default=None, help="layers of the vector to use (default: all)")
    parser.add_argument("--positions", default="after_prompt", choices=["after_prompt", "all"],
                        help="after_prompt (default) steers the last prompt token, which predicts the first answer token")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="one prompt")
    source.add_argument("--prompts", metavar="FILE", help="prompt list (JSONL {text} or one per line)")
    parser.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--out", required=True, metavar="DIR")


def steered_prompts(args: argparse.Namespace):
    """``(model, steering, prompts, chat)`` from the flags of :func:`add_steered_prompt_args`."""
    from interp_steer.data import load_prompts
    from interp_steer.steering import Steering

    model, vector, layers = model_and_vector(args)
    prompts = [args.prompt] if args.prompt else load_prompts(args.prompts)
    steering = Steering(vector, args.coefficient, layers=layers, positions=args.positions)
    return model, steering, prompts, False if args.no_chat else None


def words(text: str) -> list[str]:
    """Comma-separated words, kept as typed (a leading space is part of a token)."""
    return [w for w in text.split(",") if w]


__all__ = ["add_backend_args", "add_concept_args", "add_device_args", "add_model_args", "add_steered_prompt_args",
           "backend_from_args", "check_concept_args", "integer", "model_and_vector", "model_from_args", "numbers",
           "steered_prompts", "words"]


def add_concept_args(parser: argparse.ArgumentParser, questions_help: str) -> None:
    """The flags that give a study its concept: two corpora, contrast pairs, or A/B questions."""
    concept = parser.add_argument_group("the concept (one of; default: the built-in hopeful vs dark personas)")
    concept.add_argument("--pairs", metavar="FILE", help="contrast pairs, JSONL {positive, negative}")
    concept.add_argument("--positive", metavar="FILE", help="texts with the concept (JSONL {text} or one per line)")
    concept.add_argument("--negative", metavar="FILE", help="texts without it / with its opposite")
    concept.add_argument("--questions", metavar="FILE", help=questions_help)


def check_concept_args(args: argparse.Namespace) -> None:
    """One concept at most, and two corpora only together."""
    if (args.positive is None) != (args.negative is None):
        raise ValueError("--positive and --negative go together (two corpora); or use --pairs or --questions")
    chosen = [flag for flag, given in (("--pairs", args.pairs), ("--positive/--negative", args.positive),
                                       ("--questions", args.questions)) if given]
    if len(chosen) > 1:
        raise ValueError(f"give one concept, not {' and '.join(chosen)}")


def add_backend_args(parser: argparse.ArgumentParser) -> None:
    """Where a study's work units run, and whether stored ones are reused (:mod:`interp_steer.units`)."""
    group = parser.add_argument_group("work units (finished units are kept under OUT/units; a re-run skips them)")
    group.add_argument("--fresh", action="store_true", help="discard finished units in OUT/units and start over")
    group.add_argument("--backend", choices=["local", "ray"], default="local",
                       help="run units in this process (default) or on Ray actors (pip install 'interp_steer[distributed]')")
    group.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                       help="with --backend ray: join this Ray cluster (default: start a local one)")
    group.add_argument("--actors", type=int, default=None, metavar="N", help="with --backend ray: actors (default 1)")
    group.add_argument("--gpus-per-actor", type=float, default=0.0, metavar="G",
                       help="with --backend ray: GPUs each actor reserves (default 0: CPU actors; 2 or more: "
                            "each actor spreads its model over its GPUs, like --n-devices)")
    group.add_argument("--cpus-per-actor", type=float, default=None, metavar="C",
                       help="with --backend ray: CPUs each actor reserves, and its torch threads (default: it "
                            "reserves 1 and runs this process's thread count, which keeps the numbers identical)")


def backend_from_args(args: argparse.Namespace):
    """The backend the flags of :func:`add_backend_args` ask for, as a spec the study makes (and
    closes) once its model is loaded; the flags are checked here, before any work."""
    from interp_steer.units import BackendSpec

    if args.backend == "local" and (args.address is not None or args.actors is not None or args.gpus_per_actor
                                    or args.cpus_per_actor is not None):
        raise ValueError("--address, --actors, --gpus-per-actor and --cpus-per-actor go with --backend ray")
    if args.actors is not None and args.actors < 1:
        raise ValueError(f"--actors must be >= 1, got {args.actors}")
    if args.gpus_per_actor < 0 or (args.cpus_per_actor is not None and args.cpus_per_actor <= 0):
        raise ValueError(f"--gpus-per-actor must be >= 0 and --cpus-per-actor > 0, got {args.gpus_per_actor} and "
                         f"{args.cpus_per_actor}")
    return BackendSpec(args.backend, args.address, args.actors, args.gpus_per_actor, args.cpus_per_actor)
