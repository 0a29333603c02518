"""Reference sections of the docs generated from the code itself, so they cannot drift from it.

Each function returns Markdown and is called from a ``python exec="on"`` block (markdown-exec) when
the site is built:

- :func:`cli_reference`: every subcommand's ``--help``, from the parser the command line uses;
- :func:`config_table`: a study's settings, their defaults and the quick profile's values, from its
  config dataclass;
- :func:`rule_cards` and :func:`rules_summary`: the verdict rules' claims and decision rules from the
  registry, with the error rates of their simulated worlds from ``docs/data/rule_cards.json``
  (``python docs/_reference.py rule-cards`` re-simulates them; ``tests/test_docs.py`` fails when
  the registry has a world the file lacks).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
RULE_CARDS = DOCS / "data" / "rule_cards.json"

STUDY_CONFIGS = {
    "collision": ("interp_steer.studies.collision.config", "CollisionConfig"),
    "patching": ("interp_steer.studies.patching.config", "PatchingConfig"),
    "svf": ("interp_steer.studies.svf.config", "SvfConfig"),
    "robustness": ("interp_steer.studies.robustness.config", "RobustnessConfig"),
}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subparsers here and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    """Every subcommand's help text, as ``interp-steer COMMAND --help`` prints it at 100 columns."""
    from interp_steer.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parser = build_parser()
        parts = ["## `interp-steer`", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in _subcommands(parser).items():
            parts += [f"## `interp-steer {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(parts)


def _config_class(study: str) -> type:
    import importlib

    if study not in STUDY_CONFIGS:
        raise ValueError(f"config_table: unknown study {study!r}; known: {sorted(STUDY_CONFIGS)}")
    module, name = STUDY_CONFIGS[study]
    return getattr(importlib.import_module(module), name)


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "`" + ", ".join(_shown(v).strip("`") for v in value) + "`" if value else "`()`"
    if isinstance(value, dict):
        return "`" + json.dumps(value, ensure_ascii=False) + "`"
    if value is None:
        return "`None`"
    return f"`{value!r}`" if isinstance(value, str) else f"`{value}`"


def config_table(study: str) -> str:
    """A study's settings: name, type, default, and the quick profile's value where it differs."""
    cls = _config_class(study)
    default = cls()
    quick = cls.quick() if hasattr(cls, "quick") else None
    header = "| setting | type | default |" + (" quick profile |" if quick is not None else "")
    lines = [header, "| --- | --- | --- |" + (" --- |" if quick is not None else "")]
    for field in dataclasses.fields(cls):
        value = getattr(default, field.name)
        row = f"| `{field.name}` | `{str(field.type).replace(' | ', ' or ')}` | {_shown(value)} |"
        if quick is not None:
            quick_value = getattr(quick, field.name)
            row += f" {_shown(quick_value) if quick_value != value else 'same'} |"
        lines.append(row)
    return "\n".join(lines)


def _stored_cards() -> dict[str, Any]:
    return json.loads(RULE_CARDS.read_text(encoding="utf-8"))


def missing_simulations() -> list[str]:
    """The (rule, profile, world) triples the registry has and ``rule_cards.json`` lacks."""
    from interp_steer.studies.rules import REGISTRY

    stored = {(c["id"], r["profile"], r["dgp"]) for c in _stored_cards()["cards"] for r in c["simulations"]}
    wanted = {(rule.id, profile, dgp) for rule in REGISTRY.values() for profile in rule.profiles for dgp in rule.dgps}
    return sorted(f"{i} / {p} / {d}" for i, p, d in wanted - stored)


def _rate(value: float) -> str:
    return f"{value:.3f}"


def rule_cards(prefix: str) -> str:
    """The cards of every rule whose id starts with ``prefix``: claim and rule from the registry, every
    simulated world with the fraction of each verdict, the power at the paper's effect."""
    from interp_steer.studies.rules import REGISTRY

    stored_file = _stored_cards()
    stored = {c["id"]: c for c in stored_file["cards"]}
    parts = []
    for rule_id in sorted(r for r in REGISTRY if r.startswith(prefix)):
        rule, card = REGISTRY[rule_id], stored[rule_id]
        rows = {(r["profile"], r["dgp"]): r for r in card["simulations"]}
        parts += [f"### `{rule_id}`", "", f"**Claim.** {rule.claim}", "", f"**Rule.** {rule.text}", ""]
        if rule.inputs:
            parts += ["**Inputs.**", ""] + [f"- `{name}`: {what}" for name, what in rule.inputs.items()] + [""]
        parts += [f"Simulated worlds ({card['runs']} runs each, seed {card['seed']}; an error rate within the "
                  f"design is at most {card['design_rate']:.0%} plus Monte Carlo error, {card['tolerance']:.3f}):", "",
                  "| profile | truth | world | reproduced | not reproduced | inconclusive | error |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
        for profile in rule.profiles:
            for name, dgp in rule.dgps.items():
                row = rows[(profile, name)]
                mark = " (paper's effect: power)" if dgp.paper else ""
                flag = "" if row["within_design"] else " **over**"
                parts.append(f"| {profile} | {dgp.truth} | {name}{mark} | {_rate(row['reproduced'])} | "
                             f"{_rate(row['not reproduced'])} | {_rate(row['inconclusive'])} | "
                             f"{_rate(row['error'])}{flag} |")
        power = ", ".join(f"{k} {v:.2f}" for k, v in card["power_at_paper_effect"].items())
        parts += ["", f"Power at the paper's effect: {power}."]
        if rule.notes:
            parts += ["", f"*Notes.* {rule.notes}"]
        parts.append("")
    parts.append(f"*Rates simulated on {stored_file['date']} ({stored_file['command']}); "
                 f"`interp-steer rules ID` re-simulates one card.*")
    return "\n".join(parts)


def rules_summary() -> str:
    """One row per rule: its worst error rates over its worlds and its power (``interp-steer rules --summary``)."""
    from interp_steer.studies.rules.cli import summary_table

    stored = _stored_cards()
    return summary_table(stored["cards"]) + f" Simulated on {stored['date']}."


def simulate_rule_cards(runs: int | None = None) -> None:
    """Re-simulate every card into ``docs/data/rule_cards.json`` (minutes: the sample-size rule alone
    takes about 8 on 2 cores)."""
    import interp_steer
    from interp_steer.studies.rules import REGISTRY
    from interp_steer.studies.rules.cli import DEFAULT_RUNS

    runs = runs or DEFAULT_RUNS
    cards = []
    for rule_id in sorted(REGISTRY):
        print(f"simulating {rule_id} ...", file=sys.stderr, flush=True)
        cards.append(REGISTRY[rule_id].card(runs=runs, seed=0))
    data = {"command": f"python docs/_reference.py rule-cards (runs={runs}, seed 0)",
            "date": datetime.date.today().isoformat(), "library_version": interp_steer.__version__, "cards": cards}
    RULE_CARDS.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:2] != ["rule-cards"]:
        sys.exit("usage: python docs/_reference.py rule-cards [RUNS]")
    simulate_rule_cards(int(sys.argv[2]) if len(sys.argv) > 2 else None)
