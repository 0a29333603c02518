"""Plumbing every study shares: configs that round-trip through JSON, strict JSON output, the
bundled schema, and stage timings."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from interp_steer.data import dataset_hash, load_builtin, reject_bare_string


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


def settings(config_cls: type, config: Any = None, *, quick: bool = False, **overrides: Any) -> Any:
    """The config a study's convenience function runs, built the same way by every study: ``config``
    with keyword ``overrides`` applied (:func:`dataclasses.replace`), or, without one, the class's
    quick settings (``quick=True``, when it has them) or its defaults, with the overrides."""
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{config_cls.__name__}: unknown settings {unknown}; known ones are {sorted(known)}")
    if config is not None:
        if quick:
            raise ValueError(f"quick=True and a config were both given: pass config={config_cls.__name__}.quick(...) "
                             "or drop quick")
        if not isinstance(config, config_cls):
            raise TypeError(f"config: expected a {config_cls.__name__}, got {type(config).__name__}")
        return replace(config, **overrides) if overrides else config
    if quick:
        if not hasattr(config_cls, "quick"):
            raise ValueError(f"{config_cls.__name__} has no quick settings; drop quick=True")
        return config_cls.quick(**overrides)
    return config_cls(**overrides)


def result_header(schema_version: int, config: Any, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """The first keys of a study's result file, in this order: which schema and library wrote it, the
    model (when the study has one), the whole config and its seed."""
    from interp_steer import __version__

    model_key = {} if model is None else {"model": model}
    return {"schema_version": schema_version, "library_version": __version__, **model_key,
            "config": config.to_dict(), "seed": config.seed}


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




def load_items(value: Any, builtin: str | None, loader: Callable[..., list], what: str, kind: type) -> tuple[list, str]:
    """A list as given (checked), a file read with the package's loader, or the built-in data."""
    if value is None:
        if builtin is None:
            raise ValueError(f"{what}: no data given")
        return list(load_builtin(builtin)), f"built-in:{builtin}"
    reject_bare_string(value, what, path_ok=True)
    if isinstance(value, (str, Path)):
        return loader(value), str(value)
    items = list(value)
    if not items or not all(isinstance(t, kind) for t in items):
        raise ValueError(f"{what}: pass a file path or a non-empty list of {kind.__name__}")
    if kind is str and not all(t.strip() for t in items):
        raise ValueError(f"{what}: every text must be non-empty")
    return items, "list"


def describe_items(items: list, source: str, n_available: int) -> dict[str, Any]:
    """Where a data set came from, how much of it was used, and its hash, for a result file."""
    return {"source": source, "n_available": n_available, "n_used": len(items), "sha256": dataset_hash(items)}


def fmt_num(value: Any, digits: int = 3, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def fmt_interval(iv: Mapping[str, Any] | None, digits: int = 3, sign: bool = True) -> str:
    """``mean [low, high]`` of an interval's dict (the mean alone when it has no bounds)."""
    if not iv or iv.get("mean") is None:
        return "n/a"
    if iv.get("low") is None or iv.get("high") is None:
        return fmt_num(iv["mean"], digits, sign)
    return f"{fmt_num(iv['mean'], digits, sign)} [{fmt_num(iv['low'], digits, sign)}, {fmt_num(iv['high'], digits, sign)}]"


def fmt_rate(iv: Mapping[str, Any]) -> str:
    """A proportion's interval as percentages."""
    if iv.get("mean") is None:
        return "n/a"
    return f"{iv['mean']:.0%} [{iv['low']:.0%}, {iv['high']:.0%}]"


def quote(text: str, limit: int = 160) -> str:
    """A generated text for a Markdown table: one line, no pipes, cut at ``limit`` characters."""
    text = " ".join(text.split()).replace("|", "/")
    return f"“{text[:limit]}{'…' if len(text) > limit else ''}”"


def score_texts(score: Callable[[list[str]], Any], texts: list[str]) -> np.ndarray:
    """A user's scorer applied to ``texts``, checked to give one number per text."""
    values = np.asarray(score(list(texts)), dtype=float)
    if values.shape != (len(texts),):
        raise ValueError(f"the scorer returned shape {values.shape} for {len(texts)} texts; it must return one "
                         "number per text")
    return values


__all__ = ["ConfigIO", "Stopwatch", "describe_items", "fmt_interval", "fmt_num", "fmt_rate", "quote", "score_texts", "load_items", "load_schema", "result_header", "settings"]
