"""The ``interp-steer`` command line: a thin client of the public API.

This module only assembles subcommands. Each one is a module with ``add_parser(subparsers)``: the
core's in :mod:`interp_steer.commands` — ``info`` (what a model looks like), ``extract`` (build a
steering vector), ``locate`` (per-layer probes: where a concept lives), ``geometry`` (cosines and
norms of saved vectors), ``tokens`` (what a vector promotes and suppresses in vocabulary space), ``lens`` (logit lens of
steered and unsteered runs), ``dla`` (direct logit attribution of a steered run), ``steer`` (steered completions), ``sweep`` (layers × coefficients scored on
every text metric), ``ab-eval`` (CAA's A/B test under steering) — and each study's beside the study
(``interp_steer/studies/<study>/cli.py``): ``collide`` (the Creative Collision study), ``score`` (completions
made elsewhere, scored on the collision axes), ``patch``
(activation patching of a collision), ``svf`` (Steering Vector Fields against a vector), ``robustness`` (arXiv 2505.03189's findings); ``rules`` prints the card of every verdict rule the studies use
(:mod:`interp_steer.studies.rules`). A new study adds its own ``cli.py`` and one line below.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import textwrap
from collections.abc import Sequence
from typing import NoReturn

from interp_steer import __version__
from interp_steer._suggest import did_you_mean
from interp_steer.commands import (
    ab_eval,
    dla,
    extract,
    geometry,
    info,
    lens,
    locate,
    steer,
    sweep,
    tokens,
)
from interp_steer.studies.collision import cli as collision_cli
from interp_steer.studies.collision import score_cli
from interp_steer.studies.patching import cli as patching_cli
from interp_steer.studies.robustness import cli as robustness_cli
from interp_steer.studies.rules import cli as rules_cli
from interp_steer.studies.svf import cli as svf_cli

SUBCOMMANDS = (info, extract, locate, geometry, tokens, lens, dla, steer, sweep, collision_cli, score_cli, patching_cli, svf_cli, robustness_cli, rules_cli, ab_eval)
"""The modules whose ``add_parser`` builds each subcommand, in the order ``--help`` lists them."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (which command, what is wrong, where to look),
    exit status 2. Subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {with_suggestion(one_line(message))} (see '{self.prog} --help')\n")

    def parse_known_args(self, args=None, namespace=None):
        parsed, extra = super().parse_known_args(args, namespace)
        # argparse drops a value of exactly "--" (``--seed=--``) and stores [] unconverted.
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            if action.option_strings and action.nargs is None and isinstance(value, list) and not value:
                self.error(f"argument {'/'.join(action.option_strings)}: expected a value, got '--'")
            if action.type is float and isinstance(value, float) and not math.isfinite(value):
                self.error(f"argument {'/'.join(action.option_strings)}: expected a finite number, got {value}")
        return parsed, extra


_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<word>[^']*)'(?P<list> \(choose from (?P<choices>[^)]*)\))")


def with_suggestion(message: str) -> str:
    """argparse's "invalid choice: 'colide' (choose from ...)" with the closest choices named
    before the list (argparse before Python 3.14 names none); other messages unchanged."""
    found = _INVALID_CHOICE.search(message)
    suggestion = found and did_you_mean(found["word"], (c.strip(" '\"") for c in found["choices"].split(",")))
    if not suggestion:
        return message
    return f"{message[: found.start('list')]}; {suggestion}{message[found.start('list') :]}"


def one_line(message: object, limit: int = 600) -> str:
    """An error message as one line: whitespace runs (newlines included) become one space."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        # Bad input (a file, a value, a model spec): one line naming it, and exit status 2.
        # An error that knows its command-line wording (a model spec's, with the known specs
        # listed) keeps its lines.
        wording = getattr(error, "for_command_line", None)
        text = textwrap.indent(wording(), "  ").lstrip() if callable(wording) else one_line(error)
        print(f"interp-steer {args.command}: error: {text}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - a bug: still one line, with the way to the traceback
        if os.environ.get("INTERP_STEER_TRACEBACK"):
            raise
        print(f"interp-steer {args.command}: internal error: {type(error).__name__}: {one_line(error)} "
              "(run again with INTERP_STEER_TRACEBACK=1 to see where, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
