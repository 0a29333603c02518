"""The benchmark records behind the docs' performance tables (``benchmarks/results/``,
``docs/_benchmarks.py``): every stored record is complete and renders, and a benchmark's
``--json`` writer produces records that do."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))


@pytest.fixture(scope="module")
def renderer():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import _benchmarks
    finally:
        sys.path.remove(str(ROOT / "docs"))
    return _benchmarks


@pytest.fixture(scope="module")
def timing():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _timing
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return _timing


def test_there_are_records():
    assert RECORDS, "benchmarks/results/ holds no records: run a benchmark with --json benchmarks/results"


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: p.name)
def test_every_record_is_complete_and_renders(path: Path, renderer) -> None:
    record = json.loads(path.read_text(encoding="utf-8"))
    renderer.check_record(record, path.name)
    assert path.name.startswith(f"{record['benchmark']}-{record['date'][:10]}")
    text = renderer.record_table(record)
    for row in record["rows"]:
        assert f"| {row['case']} |" in text
    whole = renderer.tables()
    assert f"### `{record['benchmark']}`" in whole and record["date"] in whole


def test_an_incomplete_record_is_refused_by_name(renderer) -> None:
    record = {"benchmark": "b", "date": "2026-01-01T00:00:00+00:00", "command": "python b.py", "notes": [],
              "machine": {"cpu": "x", "cores": 2, "torch_threads": 2, "torch": "2", "device": "cpu"},
              "rows": [{"case": "c", "value": 1.0, "unit": "s", "target": None, "meets": None}]}
    renderer.check_record(record)
    with pytest.raises(ValueError, match=r"r\.json: missing keys \['machine'\]"):
        renderer.check_record({k: v for k, v in record.items() if k != "machine"}, "r.json")
    with pytest.raises(ValueError, match=r"rows\[0\]\.value must be a number"):
        renderer.check_record({**record, "rows": [{**record["rows"][0], "value": "fast"}]})
    with pytest.raises(ValueError, match="rows must be a non-empty list"):
        renderer.check_record({**record, "rows": []})


def test_latest_record_comes_first(tmp_path: Path, renderer, timing, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["benchmarks/bench_x.py", "--json", str(tmp_path)])
    rows = [timing.row("a case", 0.5, "ratio", "<= 1", True), timing.row("a time", 0.0042, "s")]
    timing.write_record(str(tmp_path), "bench_x", rows, notes=["older"], started="2026-01-01T10:00:00+00:00")
    timing.write_record(str(tmp_path), "bench_x", rows, notes=["newer"], started="2026-02-01T10:00:00+00:00")
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["bench_x-2026-01-01.json", "bench_x-2026-02-01.json"]
    for path in tmp_path.iterdir():
        record = renderer.check_record(json.loads(path.read_text()), path.name)
        assert record["command"] == f"python benchmarks/bench_x.py --json {tmp_path}"
        assert record["rows"][0] == {"case": "a case", "value": 0.5, "unit": "ratio", "target": "<= 1", "meets": True}
    text = renderer.tables(tmp_path)
    assert text.index("Notes: newer.") < text.index("Earlier runs") < text.index("Notes: older.")
    assert "| a case | 0.50 | `<= 1` | yes |" in text and "| a time | 4.20 ms |  |  |" in text
