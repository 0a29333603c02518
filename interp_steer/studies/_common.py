"""Plumbing every study shares: configs that round-trip through JSON, strict JSON output, the
bundled schema, and stage timings."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Judged:
    """A paper's claim judged on one run: ``verdict`` is ``"reproduced"``, ``"not reproduced"`` or
    ``"inconclusive"``; ``summary`` says why, with the numbers; ``numbers`` holds what the rule used.
    Each study names its own kind (collision: ``Finding``, svf: ``Claim``)."""

    key: str
    claim: str
    verdict: str
    summary: str
    numbers: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConfigIO:
    """JSON round trip for a study's frozen config dataclass (mix it in):
    ``Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config``."""

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown settings {unknown}; known ones are {sorted(known)}")
        return cls(**data)


def jsonable(value: Any) -> Any:
    """Plain JSON: NaN/inf become null (strict JSON has no NaN), numpy scalars become numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as strict JSON (see :func:`jsonable`)."""
    path.write_text(json.dumps(jsonable(payload), indent=1, allow_nan=False))
    return path


def load_schema(package: str) -> dict:
    """The JSON Schema (draft 2020-12) a study ships as ``schema.json`` in its sub-package."""
    return json.loads(resources.files(package).joinpath("schema.json").read_text(encoding="utf-8"))


class Stopwatch:
    """Stage timings for a study's ``timings_s``: :meth:`lap` closes a stage (seconds since the
    previous lap) and logs one line; :meth:`elapsed` is the time since the start."""

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self.say = log or (lambda _line: None)
        self.timings: dict[str, float] = {}
        self._start = self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(now - self._last, 2)
        self.say(f"{stage}: {now - self._last:.1f} s")
        self._last = now

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def total(self) -> dict[str, float]:
        """The timings with ``total`` (since the start) added."""
        self.timings["total"] = round(self.elapsed(), 2)
        return self.timings


__all__ = ["ConfigIO", "Stopwatch", "jsonable", "load_schema", "write_json"]
