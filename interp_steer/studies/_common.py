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

from interp_steer._io import write_json
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




COMPLETE = "complete.json"


def finished_run(out: Path, key: dict[str, Any]) -> bool:
    """True when ``out`` holds a finished run with this key whose output files are unchanged (what
    a CLI checks before loading the model, so that re-running a finished command does no work)."""
    from interp_steer.units import fingerprint

    try:
        marker = json.loads((out / "units" / COMPLETE).read_text())
        return marker["key_hash"] == fingerprint(key) and bool(marker["files"]) and all(
            _file_sha256(out / name) == digest for name, digest in marker["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def already_finished(args: Any, out: Path, key: dict[str, Any]) -> bool:
    """True (and says so) when ``out`` holds the finished run of ``key`` and ``--fresh`` was not given."""
    if args.fresh or not finished_run(out, key):
        return False
    print(f"{out} already holds this finished run (same model, data, config, code and library versions); nothing "
          "to do. --fresh recomputes it.")
    return True


def mark_finished(out: Path, key: dict[str, Any], written: Mapping[str, Path]) -> None:
    """Record that the run with ``key`` wrote ``written`` under ``out`` (see :func:`finished_run`)."""
    from interp_steer.units import fingerprint

    files = {str(Path(path).relative_to(out)): _file_sha256(Path(path)) for path in written.values()}
    (out / "units").mkdir(parents=True, exist_ok=True)
    write_json(out / "units" / COMPLETE, {"key_hash": fingerprint(key), "files": files})


def _file_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def resumable_command(args: Any, out: Path, config: Any, corpora: Mapping[str, Any],
                      run: Callable[..., Any]) -> tuple[Any, dict[str, Path]] | None:
    """What a study's CLI does around ``run(model, config, **corpora, ...)``: nothing when ``out``
    already holds this finished run (checked before the model is loaded, so it takes seconds);
    else load the model, run on the ``--backend`` with units under ``out/units`` (``--fresh``),
    save, and mark the run finished. Returns ``(result, written)``, or None when there was nothing
    to do."""
    from interp_steer.commands.arguments import backend_from_args, model_from_args
    from interp_steer.studies.personas import study_inputs
    from interp_steer.units import device_type, run_key

    data, _ = study_inputs(**corpora, max_passages=config.max_passages, max_prompts=config.max_prompts,
                           min_passages=config.folds)
    key = run_key((args.model, "float32", device_type(args.device)), config, data)
    if already_finished(args, out, key):
        return None
    model = model_from_args(args)
    print(f"model {model.name}: {model.n_layers} layers, d_model {model.d_model}", flush=True)
    result = run(model, config, **corpora, progress=True, log=lambda line: print(line, flush=True),
                 units=out / "units", backend=backend_from_args(args), fresh=args.fresh)
    written = result.save(out)
    mark_finished(out, key, written)
    return result, written


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


__all__ = ["ConfigIO", "Stopwatch", "describe_items", "fmt_interval", "fmt_num", "fmt_rate", "quote", "score_texts", "load_items", "load_schema"]
