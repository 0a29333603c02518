"""Plumbing every study shares: configs that round-trip through JSON, strict JSON output, the
bundled schema, and stage timings."""

from __future__ import annotations

import json
import math
import os
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


# --------------------------------------------------------------------------- loading a finished run

STUDY_FILES = {"collision.json": "interp_steer.studies.collision", "patching.json": "interp_steer.studies.patching",
               "svf.json": "interp_steer.studies.svf", "robustness.json": "interp_steer.studies.robustness"}
"""Each study's result file and the package whose ``schema.json`` describes it."""
_LOADERS = {"collision.json": "CollisionResult.load (ImportedResult.load for `interp-steer score`)",
            "patching.json": "PatchingResult.load", "svf.json": "SvfResult.load", "robustness.json": "RobustnessResult.load"}


class NotSavedError(AttributeError):
    """A loaded result's attribute whose content its output folder does not hold."""


@dataclass(frozen=True)
class NotSaved:
    """Stands, in a result rebuilt by ``load()``, for a field the output folder does not hold;
    reading the field raises :class:`NotSavedError` with ``why`` (see :class:`Restored`)."""

    name: str
    why: str

    def __getattr__(self, attribute: str) -> Any:
        # only for attributes it lacks: one held where no Restored guards it (in a dict) still says why
        raise NotSavedError(f"{self.name} was not saved: {self.why}")


class Restored:
    """Mixed into a study's result: a field that ``load()`` could not restore holds a
    :class:`NotSaved`, and reading it raises :class:`NotSavedError` saying why, never a silent None."""

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if type(value) is NotSaved:
            raise NotSavedError(f"{type(self).__name__}.{name} was not saved: {value.why}")
        return value

    @classmethod
    def restored(cls, **values: Any) -> Any:
        """The dataclass rebuilt from ``values`` (every field without a default), placeholders
        included: not through ``__init__``, whose annotations (checked at test time) name what a
        field holds when read, and a :class:`NotSaved` is never read."""
        from dataclasses import MISSING

        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"{cls.__name__}.restored: unknown fields {unknown}")
        instance = object.__new__(cls)
        for f in fields(cls):
            if f.name in values:
                value = values[f.name]
            elif f.default is not MISSING:
                value = f.default
            elif f.default_factory is not MISSING:
                value = f.default_factory()
            else:
                raise TypeError(f"{cls.__name__}.restored: missing field {f.name!r}")
            object.__setattr__(instance, f.name, value)
        return instance


@dataclass(frozen=True)
class SavedRun:
    """A study's result file as read by :func:`read_result`: its content and the folder beside it."""

    data: dict[str, Any]
    file: Path
    folder: Path

    def file_or_none(self, name: str) -> Path | None:
        path = self.folder / name
        return path if path.is_file() else None

    def not_saved(self, field_name: str, file_name: str, needs: str = "") -> NotSaved:
        return NotSaved(field_name, f"{self.folder} holds no {file_name}{needs}")

    def json_beside(self, name: str, field_name: str) -> dict[str, Any] | NotSaved:
        """A JSON file the result file names (``dla/dla.json``), or a :class:`NotSaved` where it is absent."""
        path = self.file_or_none(name)
        if path is None:
            return self.not_saved(field_name, name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not JSON ({error}); {self.file.name} names it as its {field_name}") from None


def read_result(path: str | Path, file_name: str, result_class: str, schema_version: int) -> SavedRun:
    """Read a study's result file for ``result_class.load``: ``path`` is the output folder that
    ``save()`` or the CLI wrote (holding ``file_name``) or the JSON file itself. The content must be
    this study's (its schema's required keys; the whole schema when ``jsonschema`` is installed) and
    of the schema version this library reads; each failure names the path and what was expected."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected the output folder or the {file_name} file as a str or Path, got {type(path).__name__}")
    path = Path(path)
    expected = f"the output folder of {result_class}.save() (or of the CLI), holding {file_name}, or that file"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder; {result_class}.load expects {expected}")
    file = path / file_name if path.is_dir() else path
    if not file.is_file():
        others = sorted(p.name for p in path.glob("*.json"))
        hint = "".join(f"; it holds {name}: load it with {_LOADERS[name]}" for name in others if name in _LOADERS)
        raise FileNotFoundError(f"{path} holds no {file_name}{hint or ''}; {result_class}.load expects {expected}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{file}: not a JSON result file ({error}); {result_class}.load expects {expected}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: not a study's result (a JSON {type(data).__name__}); {result_class}.load expects {expected}")
    wanted = load_schema(STUDY_FILES[file_name])
    missing = [key for key in _required(wanted, data) if key not in data]
    if missing:
        # the study whose required keys the file has, the most specific one where several fit
        required = {name: _required(load_schema(package), data) for name, package in STUDY_FILES.items()}
        fits = {name: keys for name, keys in required.items() if name != file_name and all(k in data for k in keys)}
        other = max(fits, key=lambda name: len(fits[name]), default=None)
        what = f"it is a {other} result: load it with {_LOADERS[other]}" if other else f"it lacks the keys {missing}"
        raise ValueError(f"{file}: not a {file_name} result ({what})")
    if data.get("schema_version") != schema_version:
        raise ValueError(f"{file}: written with schema version {data.get('schema_version')!r} (library "
                         f"{data.get('library_version', '?')}); this library reads version {schema_version} of {file_name}")
    _validate(data, wanted, file)
    return SavedRun(data, file, file.parent)


def _required(schema: dict, data: dict[str, Any]) -> list[str]:
    """The top-level keys ``schema`` requires of ``data`` (collision's depend on an ``imported`` block:
    its schema's ``if``/``then``/``else``)."""
    if "if" in schema:
        branch = "then" if all(key in data for key in schema["if"].get("required", [])) else "else"
        return [*schema.get("required", []), *schema[branch].get("required", [])]
    return list(schema.get("required", []))


def _validate(data: dict[str, Any], schema: dict, file: Path) -> None:
    """The whole schema, where ``jsonschema`` is installed (the dev extra); without it the required
    keys and the schema version, checked above, are what a load checks."""
    try:
        import jsonschema
    except ImportError:
        return
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise ValueError(f"{file}: does not match its schema at {where}: {error.message}")


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
    """``mean [low, high]`` of an interval's dict (the mean alone when it has no bounds). A bound that
    does not exist reads ``n/a`` whether it is NaN (a fresh result) or null (a loaded one)."""
    if not iv or "mean" not in iv or (iv["mean"] is None and "low" not in iv):
        return "n/a"
    if "low" not in iv or "high" not in iv:
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


__all__ = ["ConfigIO", "NotSaved", "NotSavedError", "Restored", "SavedRun", "Stopwatch", "describe_items", "fmt_interval", "fmt_num", "fmt_rate", "quote", "score_texts", "load_items", "load_schema", "read_result", "result_header", "settings"]
