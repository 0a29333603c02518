"""``interp-steer locate``: per-layer probes: where does each concept live."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interp_steer._io import write_text_atomically
from interp_steer.commands.arguments import (
    add_backend_args,
    add_model_args,
    backend_from_args,
    model_from_args,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    locate = subparsers.add_parser("locate", help="per-layer probes: where does each concept live?")
    add_model_args(locate)
    locate.add_argument("--concept", action="append", required=True, metavar="NAME=POS_FILE:NEG_FILE",
                        help="a concept from two corpora (or NAME=PAIRS_FILE); repeat for several")
    locate.add_argument("--folds", type=int, default=5)
    locate.add_argument("--layers", default="all")
    locate.add_argument("--position", default="last", choices=["last", "mean"])
    locate.add_argument("--seed", type=int, default=0)
    locate.add_argument("--batch-size", type=int, default=16)
    locate.add_argument("--out", required=True, metavar="DIR")
    add_backend_args(locate)
    locate.set_defaults(handler=_locate)
    return locate


def _parse_concept(spec: str) -> tuple[str, list[str], list[str]]:
    from interp_steer.data import load_corpus, load_pairs

    name, sep, files = spec.partition("=")
    if not sep or not name or not files:
        raise ValueError(f"--concept {spec!r}: expected NAME=POS_FILE:NEG_FILE or NAME=PAIRS_FILE")
    if ":" in files and not Path(files).is_file():
        positive, _, negative = files.rpartition(":")
        return name, load_corpus(positive), load_corpus(negative)
    pairs = load_pairs(files)
    return name, [p.positive for p in pairs], [p.negative for p in pairs]


def _locate(args: argparse.Namespace) -> int:
    from interp_steer.execution import Execution
    from interp_steer.plotting import save_figure
    from interp_steer.probes import plot_localisation
    from interp_steer.studies.localisation import localise

    parsed = [_parse_concept(spec) for spec in args.concept]
    names = [name for name, _, _ in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"--concept names must be distinct, got {names}")
    model = model_from_args(args)
    concepts = {name: (pos, neg) for name, pos, neg in parsed}
    for name, (pos, neg) in concepts.items():
        print(f"{name}: {len(pos)} positive / {len(neg)} negative texts", flush=True)
    out = Path(args.out)
    # No log: locate prints only its own lines (a store made for other inputs is replaced quietly).
    execution = Execution(progress=True, store=out / "units", backend=backend_from_args(args), fresh=bool(args.fresh))
    result = localise(model, concepts, layers=args.layers, position=args.position, folds=args.folds,
                      seed=args.seed, batch_size=args.batch_size, execution=execution)
    out.mkdir(parents=True, exist_ok=True)
    report = {"model": model.name, "n_layers": model.n_layers, "position": args.position,
              "folds": args.folds, "seed": args.seed, **result.to_dict()}
    write_text_atomically(out / "locate.json", json.dumps(report, indent=2))
    save_figure(plot_localisation(result, title=f"{model.name}: where each concept is readable"),
                out / "locate.png")
    for name, profile in result.profiles.items():
        i = profile.layers.index(profile.best_layer)
        print(f"{name}: best layer {profile.best_layer} (band {profile.band_low}..{profile.band_high}), "
              f"CV accuracy {profile.accuracy[i]:.3f} ± {profile.accuracy_std[i]:.3f}, "
              f"nested held-out accuracy {profile.heldout_accuracy:.3f}")
    if result.shared_layer is not None:
        verdict = "indistinguishable" if result.best_layers_indistinguishable else "distinguishable"
        print(f"shared layer: {result.shared_layer}; best layers are {verdict} within their bands")
    print(f"wrote {out / 'locate.json'} and {out / 'locate.png'}")
    return 0
