"""Argument helpers every subcommand shares, the core's and the studies'."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence


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
    layers of ``--layers`` (``None``: all the vector's layers). For commands that read a vector;
    the ones that steer with it use :func:`vector_to_steer`."""
    from interp_steer.directions import SteeringVector

    model = model_from_args(args)
    vector = SteeringVector.load(args.vector, model=model)
    layers = None if args.layers in (None, "all") else list(model.resolve_layers(args.layers))
    return model, vector, layers


# The units a coefficient can be in: the values of ``VectorMetadata.normalisation``, which
# ``SteeringVector.normalised`` sets ("unit", "resid"); "none" is a vector as built.
UNITS: dict[str, str] = {
    "none": "none (raw): the vector as built, not rescaled (from extract, a difference of mean activations), so "
            "what a coefficient adds depends on the data and the layer",
    "unit": "unit: the vector has norm 1 at each layer, so a coefficient is the L2 norm added to the residual stream",
    "resid": "resid: the vector has the mean residual norm at each layer, so a coefficient is a fraction of a "
             "typical residual there (0.3 adds 30 %)",
}
COEFFICIENT_UNITS_HELP = (
    "Units: a coefficient multiplies the vector as stored, so its unit is the vector file's (extract --normalise: "
    "resid = a fraction of the mean residual norm at the layer, 0.3 adds 30 %; unit = the L2 norm added; none = "
    "raw, a multiple of the extracted mean difference), unless --normalise rescales it here. Every command prints the "
    "unit and writes it to its output file.")


def unit_of(vector) -> str:
    """The unit a coefficient on ``vector`` is in: its ``metadata.normalisation``, with anything this
    library did not write (a file from elsewhere) read as raw."""
    unit = vector.metadata.normalisation
    return unit if unit in UNITS else "none"


def layer_runs(layers: Sequence[int]) -> str:
    """A set of layers written faithfully and briefly: runs of three or more as ``a..b``, e.g.
    ``0..3, 7`` for {0, 1, 2, 3, 7} and ``15, 21`` for {15, 21}."""
    ordered = sorted(set(layers))
    parts: list[str] = []
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
            run = ordered[start:i]
            parts += [f"{run[0]}..{run[-1]}"] if len(run) >= 3 else [str(x) for x in run]
            start = i
    return ", ".join(parts)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 figure``, ``2 figures``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def add_vector_to_steer_args(parser: argparse.ArgumentParser, *, together: bool) -> None:
    """``--vector``, ``--layers`` and ``--normalise`` of a command that steers with a saved vector.
    ``together``: the chosen layers are steered at once (steer, lens, dla), so a vector of several
    layers needs ``--layers``; otherwise each layer is steered on its own (sweep, ab-eval)."""
    parser.add_argument("--vector", required=True, metavar="VEC.safetensors",
                        help="a steering vector file (interp-steer extract, or SteeringVector.save)")
    if together:
        layers_help = ("layers of the vector to steer, all at once: comma-separated, or 'all'. Required when the "
                       "vector holds more than one layer (extract keeps every layer by default); a one-layer vector "
                       "is steered at its layer")
    else:
        layers_help = ("layers of the vector to sweep, each steered on its own: comma-separated, or 'all' "
                       "(default: every layer the vector holds)")
    parser.add_argument("--layers", default=None, help=layers_help)
    parser.add_argument("--normalise", default=None, choices=["resid", "unit"],
                        help="rescale the vector at each layer before steering, so the coefficient is in this unit: "
                             "resid (a fraction of the mean residual norm there) or unit (the L2 norm added); "
                             "default: the vector as stored, in the unit its file records")
    parser.epilog = COEFFICIENT_UNITS_HELP


def vector_to_steer(args: argparse.Namespace, *, together: bool):
    """``(model, vector, layers, unit)`` from :func:`add_vector_to_steer_args`: the vector restricted
    to the layers to steer and rescaled by ``--normalise``, and the record of its unit for the output
    file (:func:`unit_record`), after printing which layers are steered and the unit."""
    from interp_steer.directions import SteeringVector

    model = model_from_args(args)
    vector = SteeringVector.load(args.vector, model=model)
    held = list(vector.layers)
    if args.layers is None and together and len(held) > 1:
        raise ValueError(f"--layers is needed: {args.vector} holds {len(held)} layers ({layer_runs(held)}), and "
                         "steering them all at once is rarely what is meant; give one layer, e.g. "
                         f"--layers {held[len(held) // 2]}, or --layers all to steer every one of them together")
    layers = held if args.layers in (None, "all") else list(model.resolve_layers(args.layers))
    missing = [layer for layer in layers if layer not in held]
    if missing:
        raise ValueError(f"--layers {args.layers}: {args.vector} has no layer {layer_runs(missing)}; "
                         f"it holds {layer_runs(held)}")
    stored = unit_of(vector)
    vector = vector.select(layers)
    if args.normalise is not None:
        try:
            vector = vector.normalised(args.normalise)
        except ValueError as error:
            raise ValueError(f"--normalise {args.normalise}: {error}") from None
    if len(layers) == 1:
        print(f"steering layer {layers[0]} of {args.vector}", flush=True)
    else:
        how = "steering them together" if together else "each steered on its own"
        print(f"{len(layers)} layers of {args.vector}, {how}: {layer_runs(layers)}", flush=True)
    print(f"coefficient unit: {unit_line(vector, stored)}", flush=True)
    return model, vector, layers, unit_record(vector, stored)


def unit_line(vector, stored: str) -> str:
    """One line: the unit a coefficient on ``vector`` is in, where it came from and, for a raw or
    unit vector, what a coefficient of 1 is as a fraction of the mean residual norm."""
    unit = unit_of(vector)
    origin = ("as stored in the file" if unit == stored
              else f"rescaled by --normalise; the file holds {stored}")
    if vector.metadata.normalisation not in UNITS:
        origin += f" (its normalisation {vector.metadata.normalisation!r} is unknown here, read as raw)"
    text = f"{UNITS[unit]} ({origin})"
    relative = relative_norms(vector)
    if unit != "resid" and relative:
        shown = ", ".join(f"{value:.3g} at layer {layer}" for layer, value in list(relative.items())[:4])
        more = ", ..." if len(relative) > 4 else ""
        text += f"; a coefficient of 1 adds this fraction of the mean residual norm: {shown}{more}"
    return text


def relative_norms(vector) -> dict[int, float]:
    """``‖v‖ / mean ‖resid‖`` per layer, or ``{}`` where the file has no residual norms."""
    try:
        return vector.relative_norms()
    except ValueError:
        return {}


def unit_record(vector, stored: str) -> dict:
    """What the output files record about the unit of their coefficients."""
    unit = unit_of(vector)
    return {"unit": unit, "meaning": UNITS[unit], "file_unit": stored,
            "rescaled": unit != stored,
            "norm_over_resid": {str(layer): value for layer, value in relative_norms(vector).items()}}


def default_coefficients(unit: str, defaults: Mapping[str, str], flag: str) -> list[float]:
    """The default of ``flag`` for a vector in ``unit``: a coefficient's sensible size depends on it
    (``defaults`` maps ``"none"`` and ``"resid"`` to one list each); printed, since it was not typed."""
    if unit not in defaults:
        raise ValueError(f"{flag} has no default for a {unit}-normalised vector (the L2 norm that moves a model "
                         f"depends on its residual norms): give {flag}, or use --normalise resid for the "
                         f"default {defaults['resid']}")
    values = numbers(defaults[unit], flag)
    print(f"{flag} (the default for a {unit} vector): {', '.join(f'{c:g}' for c in values)}")
    return values


UNIT_LABELS = {"none": "× the raw vector", "unit": "L2 norm", "resid": "× mean residual norm"}
"""How a figure's coefficient axis names its unit."""


def add_steered_prompt_args(parser: argparse.ArgumentParser) -> None:
    """The flags of a steering vector read on prompts (``lens``, ``dla``): the vector, its
    coefficient, layers and positions, the prompts, the chat template and the output folder."""
    add_vector_to_steer_args(parser, together=True)
    parser.add_argument("--coefficient", type=float, required=True,
                        help="steering strength, in the vector's unit (see --normalise and below)")
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

    prompts = [args.prompt] if args.prompt else load_prompts(args.prompts)
    model, vector, layers, _ = vector_to_steer(args, together=True)
    steering = Steering(vector, args.coefficient, layers=layers, positions=args.positions)
    return model, steering, prompts, False if args.no_chat else None


def words(text: str) -> list[str]:
    """Comma-separated words, kept as typed (a leading space is part of a token)."""
    return [w for w in text.split(",") if w]


__all__ = ["COEFFICIENT_UNITS_HELP", "UNITS", "add_backend_args", "add_concept_args", "add_device_args",
           "add_model_args", "add_steered_prompt_args", "add_vector_to_steer_args", "backend_from_args",
           "check_concept_args", "default_coefficients", "UNIT_LABELS", "integer", "layer_runs", "model_and_vector",
           "model_from_args", "numbers", "plural", "relative_norms", "steered_prompts", "unit_line", "unit_of",
           "unit_record", "vector_to_steer", "words"]


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
