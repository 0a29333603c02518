"""``interp-steer rules``: the card of every verdict rule the studies use (claim, rule, simulated error
rates per data-generating process and profile, power at the paper's effect, detectable effect)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

DEFAULT_RUNS = 1000


def add_parser(subparsers) -> argparse.ArgumentParser:
    rules = subparsers.add_parser(
        "rules", help="the verdict rules: claims, simulated error rates, power",
        description="Print the card of each verdict rule the studies use: the paper's claim, the rule, and the "
                    "fraction of each verdict over simulated runs from every registered data-generating process "
                    "(nulls, where 'reproduced' is the error, and effects, where 'not reproduced' is) at the "
                    "shipped quick and full sizes. Simulations are seeded: the same command prints the same numbers.")
    rules.add_argument("ids", nargs="*", metavar="ID", help="rule ids (default: every rule); e.g. collision.dominance")
    rules.add_argument("--json", action="store_true", help="print the cards as JSON")
    rules.add_argument("--list", action="store_true", help="list the rule ids and claims only (no simulation)")
    rules.add_argument("--summary", action="store_true",
                       help="one Markdown table row per rule: its worst simulated error rates and its power")
    rules.add_argument("--runs", type=int, default=DEFAULT_RUNS, metavar="N",
                       help=f"simulated runs per DGP and profile (default {DEFAULT_RUNS}; expensive rules use "
                            "fewer, in proportion to their cost)")
    rules.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    rules.set_defaults(handler=_rules)
    return rules


def _rules(args: argparse.Namespace) -> int:
    from interp_steer.studies.rules import REGISTRY, get

    if args.runs < 1:
        raise ValueError(f"--runs must be >= 1, got {args.runs}")
    ids = list(args.ids) or sorted(REGISTRY)
    chosen = [get(rule_id) for rule_id in ids]
    if args.list:
        rows = [{"id": r.id, "claim": r.claim, "rule": r.text} for r in chosen]
        if args.json:
            print(json.dumps(rows, indent=2, ensure_ascii=False))
        else:
            for row in rows:
                print(f"{row['id']}: {row['claim']}")
        return 0
    cards = []
    for rule in chosen:
        if not args.json:
            print(f"simulating {rule.id} ...", file=sys.stderr, flush=True)
        cards.append(rule.card(runs=args.runs, seed=args.seed))
    if args.json:
        print(json.dumps(cards, indent=2, ensure_ascii=False, allow_nan=False, default=_finite))
    elif args.summary:
        print(summary_table(cards))
    else:
        print("\n\n".join(format_card(card) for card in cards))
    return 0


def _finite(value: Any) -> Any:
    raise TypeError(f"not JSON-serialisable: {value!r}")


def summary_table(cards: list[dict[str, Any]]) -> str:
    """One Markdown row per card: the worst false "reproduced" over its nulls and the worst false "not
    reproduced" over its effects (each with the DGP and profile where it occurs), and the power at
    the paper's effect per profile."""
    def worst(card: dict[str, Any], truth: str) -> str:
        rows = [r for r in card["simulations"] if r["truth"] == truth]
        top = max(rows, key=lambda r: r["error"])
        return f"{top['error']:.3f} ({top['profile']}: {top['dgp']})"

    lines = ["| rule | worst false \"reproduced\" (nulls) | worst false \"not reproduced\" (effects) | power (quick / full) |",
             "| --- | --- | --- | --- |"]
    for card in cards:
        power = " / ".join(f"{card['power_at_paper_effect'].get(p, float('nan')):.2f}" for p in ("quick", "full"))
        lines.append(f"| `{card['id']}` | {worst(card, 'null')} | {worst(card, 'effect')} | {power} |")
    runs = sorted({c["runs"] for c in cards})
    lines.append(f"\n{', '.join(map(str, runs))} simulated runs per row (seed {cards[0]['seed']}); the design is at most "
                 f"{cards[0]['design_rate']:.0%} plus Monte Carlo error.")
    return "\n".join(lines)


def format_card(card: dict[str, Any]) -> str:
    """A card as text: claim, rule, then one line per profile and DGP with the verdict fractions."""
    lines = [f"== {card['id']} ==", f"claim: {card['claim']}", f"rule:  {card['rule']}"]
    if card["settings"]:
        lines.append("settings: " + ", ".join(f"{k}={v}" for k, v in card["settings"].items()))
    lines.append(f"simulated: {card['runs']} runs per row, seed {card['seed']}; an error rate passes at "
                 f"≤ {card['design_rate']:.0%} + Monte Carlo error ({card['tolerance']:.3f})")
    header = f"  {'profile':<7} {'truth':<6} {'repr.':>6} {'not r.':>6} {'incon.':>6} {'error':>6}     DGP"
    lines.append(header)
    for row in card["simulations"]:
        flag = "ok" if row["within_design"] else "OVER"
        lines.append(f"  {row['profile']:<7} {row['truth']:<6} {row['reproduced']:>6.3f} {row['not reproduced']:>6.3f} "
                     f"{row['inconclusive']:>6.3f} {row['error']:>6.3f} {flag:<4} {row['dgp']}"
                     + ("  [paper's effect: power]" if row["paper"] else ""))
    power = ", ".join(f"{k} {v:.2f}" for k, v in card["power_at_paper_effect"].items())
    lines.append(f"power at the paper's effect: {power}")
    if card["detectable_effect"]:
        detect = ", ".join(f"{k} {'n/a' if v is None else format(v, '.3g')}" for k, v in card["detectable_effect"].items())
        lines.append(f"smallest detectable effect (median over simulated runs, 80 % power): {detect}")
    if card["notes"]:
        lines.append(f"notes: {card['notes']}")
    return "\n".join(lines)


__all__ = ["add_parser", "format_card", "summary_table"]
