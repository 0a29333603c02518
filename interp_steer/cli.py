"""The ``interp-steer`` command line: a thin client of the public API.

This module only assembles subcommands. Each one is a module with ``add_parser(subparsers)``: the
core's in :mod:`interp_steer.commands` — ``info`` (what a model looks like), ``extract`` (build a
steering vector), ``locate`` (per-layer probes: where a concept lives), ``geometry`` (cosines and
norms of saved vectors), ``steer`` (steered completions), ``sweep`` (layers × coefficients scored on
every text metric), ``ab-eval`` (CAA's A/B test under steering) — and each study's beside the study
(``interp_steer/studies/<study>/cli.py``): ``collide`` (the Creative Collision study), ``patch``
(activation patching of a collision), ``svf`` (Steering Vector Fields against a vector), ``robustness`` (arXiv 2505.03189's findings). A new study adds its own ``cli.py`` and one line below.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from interp_steer import __version__
from interp_steer.commands import ab_eval, extract, geometry, info, locate, steer, sweep
from interp_steer.studies.collision import cli as collision_cli
from interp_steer.studies.patching import cli as patching_cli
from interp_steer.studies.robustness import cli as robustness_cli
from interp_steer.studies.svf import cli as svf_cli

SUBCOMMANDS = (info, extract, locate, geometry, steer, sweep, collision_cli, patching_cli, svf_cli, robustness_cli, ab_eval)
"""The modules whose ``add_parser`` builds each subcommand, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interp-steer",
        description="Activation steering and interpretability on TransformerLens.",
    )
    parser.add_argument("--version", action="version", version=f"interp-steer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def _join_negative_lists(argv: list[str]) -> list[str]:
    """argparse reads ``--coefficients -2,0,2`` as two flags; glue a value that starts with a minus
    and a digit to the flag before it (``--coefficients=-2,0,2``), whichever subcommand's flag it is."""
    out: list[str] = []
    for token in argv:
        previous = out[-1] if out else ""
        if (previous.startswith("--") and previous != "--" and "=" not in previous
                and token[:1] == "-" and token[1:2].isdigit()):
            out[-1] = f"{previous}={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_negative_lists(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except (ValueError, KeyError, OSError, RuntimeError) as error:
        print(f"interp-steer {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
