"""The benchmark tables of the docs' performance page, generated from the benchmarks' own records.

A benchmark run with ``--json benchmarks/results`` writes one record of that run
(``benchmarks/_timing.py``: ``write_record``) as ``benchmarks/results/<benchmark>-<date>.json``:

    {"benchmark", "date" (ISO 8601), "machine": {"cpu", "cores", "torch_threads", "torch", "device", ...},
     "command", "rows": [{"case", "value", "unit", "target", "meets"}], "notes": [...]}

:func:`tables` renders every record as Markdown, one section per benchmark with its latest record
first and the older ones below it; ``docs/performance/index.md`` calls it in a ``python exec="on"``
block when the site is built, so the page shows exactly what the runs measured.
``tests/test_benchmark_records.py`` checks every stored record with :func:`check_record` and renders it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
RECORD_KEYS = ("benchmark", "date", "machine", "command", "rows", "notes")
MACHINE_KEYS = ("cpu", "cores", "torch_threads", "torch", "device")
ROW_KEYS = ("case", "value", "unit", "target", "meets")


def check_record(record: Any, name: str = "record") -> dict[str, Any]:
    """``record`` itself when it has every key a benchmark record needs, else a ValueError naming
    what is missing or of the wrong type."""
    if not isinstance(record, dict):
        raise ValueError(f"{name}: a benchmark record is a JSON object, got {type(record).__name__}")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"{name}: missing keys {missing}; a record has {list(RECORD_KEYS)} "
                         "(write it with benchmarks/_timing.py's write_record)")
    machine = record["machine"]
    if not isinstance(machine, dict) or [k for k in MACHINE_KEYS if k not in machine]:
        raise ValueError(f"{name}: machine must be an object with {list(MACHINE_KEYS)}, got {machine!r}")
    if not isinstance(record["rows"], list) or not record["rows"]:
        raise ValueError(f"{name}: rows must be a non-empty list of measured lines")
    for i, row in enumerate(record["rows"]):
        if not isinstance(row, dict) or [k for k in ROW_KEYS if k not in row]:
            raise ValueError(f"{name}: rows[{i}] must be an object with {list(ROW_KEYS)}, got {row!r}")
        if not isinstance(row["value"], (int, float)) or isinstance(row["value"], bool):
            raise ValueError(f"{name}: rows[{i}].value must be a number, got {row['value']!r}")
    if not isinstance(record["notes"], list):
        raise ValueError(f"{name}: notes must be a list of strings, got {record['notes']!r}")
    return record


def load_records(directory: Path | str = RESULTS) -> list[dict[str, Any]]:
    """Every record under ``directory``, checked, newest first within each benchmark."""
    records = [check_record(json.loads(path.read_text(encoding="utf-8")), path.name)
               for path in sorted(Path(directory).glob("*.json"))]
    return sorted(records, key=lambda r: (r["benchmark"], _reverse(r["date"])))


def _reverse(date: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in date)


def _value(value: float, unit: str) -> str:
    if unit == "s":
        if value >= 1:
            return f"{value:.2f} s"
        if value >= 1e-3:
            return f"{value * 1e3:.2f} ms"
        return f"{value * 1e6:.0f} µs"
    if unit == "ratio":
        return f"{value:.2f}" if value >= 0.1 else f"{value:.2%}"
    return f"{value:g} {unit}"


def _meets(row: dict[str, Any]) -> str:
    if row["target"] is None:
        return ""
    return "yes" if row["meets"] else "**no**"


def _machine(machine: dict[str, Any]) -> str:
    text = (f"{machine['cpu']}, {machine['cores']} cores, {machine['torch_threads']} torch threads, "
            f"torch {machine['torch']}, {machine['device']}")
    if "load_average_1min" in machine:
        text += f", load average {machine['load_average_1min']} at the end"
    return text


def record_table(record: dict[str, Any]) -> str:
    """One record as Markdown: when, where and how it ran, its rows, its notes."""
    check_record(record)
    lines = [f"*{record['date'][:10]}* ({record['date']}) on {_machine(record['machine'])}; "
             f"`{record['command']}`", "",
             "| case | value | target | meets |", "| --- | ---: | --- | --- |"]
    for row in record["rows"]:
        target = "" if row["target"] is None else f"`{row['target']}`"
        lines.append(f"| {row['case']} | {_value(row['value'], row['unit'])} | {target} | {_meets(row)} |")
    if record["notes"]:
        lines += ["", "Notes: " + "; ".join(record["notes"]) + "."]
    return "\n".join(lines) + "\n"


def tables(directory: Path | str = RESULTS) -> str:
    """Markdown for every benchmark with records under ``directory``: its latest record, then the
    older ones under "Earlier runs"."""
    by_benchmark: dict[str, list[dict[str, Any]]] = {}
    for record in load_records(directory):
        by_benchmark.setdefault(record["benchmark"], []).append(record)
    if not by_benchmark:
        return "No benchmark records yet: run a benchmark with `--json benchmarks/results`.\n"
    parts = []
    for name, records in by_benchmark.items():
        latest, *older = records
        parts += [f"### `{name}`", "", "Latest run: " + record_table(latest)]
        if older:
            parts += ["**Earlier runs**", ""]
            parts += ["Run of " + record_table(r) for r in older]
    return "\n".join(parts)


if __name__ == "__main__":
    print(tables())
