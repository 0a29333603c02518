"""Timing shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, which puts this
folder on the import path)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """``fn`` once to warm up, then the median of ``repeats`` timed calls."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# The collision's settings as they were before issue 14: one prompt of the default grid per batch.
COLLISION_BEFORE_ISSUE_14 = {"batch_size": 64}


@contextlib.contextmanager
def as_before_issue_14() -> Iterator[None]:
    """Undo, inside the block, what issue 14 changed on the path of generation and scoring: every
    forward pass goes through the bridge's wrappers (``interp_steer.fast_path(False)``:
    generation, perplexity and activation collection; with no plain view no forward resumes after a
    block, so the decomposition runs whole forwards and ``generate(..., perplexity=True)`` keeps
    nothing and scores its completions with a whole forward, as ``score_generations`` did), every
    row of a batch prefills its prompt on its own (``generation.sharing_plan`` never shares), the
    generation loop's key/value cache grows by concatenation (Hugging Face's ``DynamicCache``), and the
    collision reads its mean-pooled readout in a collection of its own. (The collision's settings
    change too: run it with ``COLLISION_BEFORE_ISSUE_14``.)"""
    from transformers import DynamicCache

    import interp_steer as ist
    import interp_steer.generation as generation
    import interp_steer.studies.collision.study as collision

    saved = generation.sharing_plan, generation._new_cache, collision.build_personas
    build_personas = collision.build_personas
    generation.sharing_plan = lambda *args: None
    generation._new_cache = lambda capacity: DynamicCache()
    collision.build_personas = lambda *args, **kwargs: build_personas(*args, **{**kwargs, "pooled": False})
    try:
        with ist.fast_path(False):
            yield
    finally:
        generation.sharing_plan, generation._new_cache, collision.build_personas = saved


# ----------------------------------------------------------------------------- machine-readable records
#
# ``--json PATH`` on a benchmark writes one record of its run (docs/_benchmarks.py renders every record
# under benchmarks/results/ on the docs' performance page; tests/test_benchmark_records.py checks them):
# {"benchmark", "date", "machine": {...}, "command", "rows": [{"case", "value", "unit", "target",
# "meets"}], "notes"}. A PATH that is a directory gets ``<benchmark>-<date>.json`` inside it.

RECORD_KEYS = ("benchmark", "date", "machine", "command", "rows", "notes")
ROW_KEYS = ("case", "value", "unit", "target", "meets")


def add_json_option(parser) -> None:
    """``--json PATH`` and ``--note TEXT`` on a benchmark's argument parser."""
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the run as a JSON record to PATH (a directory: "
                             "PATH/<benchmark>-<date>.json), as benchmarks/results/ keeps them")
    parser.add_argument("--note", action="append", default=[], metavar="TEXT",
                        help="a note stored with the record (repeatable), e.g. what else ran on the machine")


def _cpu_model() -> str:
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> dict:
    """The machine a run measured: CPU model, cores this process may use, torch's threads and
    version, the device the model ran on, and the 1-minute load average (a shared machine reads high)."""
    import os

    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": _cpu_model(), "cores": cores, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": device}
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


def row(case: str, value: float, unit: str, target: str | None = None, meets: bool | None = None) -> dict:
    """One measured line of a record: ``target`` as text (``"<= 1.05"``), ``meets`` whether it holds
    (None without a target)."""
    return {"case": case, "value": round(float(value), 6), "unit": unit, "target": target,
            "meets": None if target is None else bool(meets)}


def write_record(path: str | None, benchmark: str, rows: list[dict], notes: list[str] | None = None,
                 device: str = "cpu", started: str | None = None) -> None:
    """Write one run as a JSON record to ``path`` (nothing when ``path`` is None); ``started`` is the
    run's ISO date and time (now when None)."""
    import datetime
    import json
    import shlex
    import sys
    from pathlib import Path

    if path is None:
        return
    date = started or datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    record = {"benchmark": benchmark, "date": date, "machine": machine_info(device),
              "command": shlex.join(["python", *sys.argv]), "rows": rows, "notes": list(notes or [])}
    target = Path(path)
    if target.is_dir():
        target = target / f"{benchmark}-{date[:10]}.json"
    target.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"record written to {target}")


def now() -> str:
    """The current date and time, ISO 8601 with the time zone (a record's ``date``)."""
    import datetime

    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
