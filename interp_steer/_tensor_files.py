"""Self-describing safetensors files: the layout that steering-vector and steering-field files share.

A file holds its tensors and, in the safetensors header, ``format`` (what kind of file it is),
``format_version`` and the metadata as JSON. Each file type checks its own format and metadata;
here are the writing (atomic: a file appears whole or not at all), the reading (a missing or
damaged file becomes the caller's one-line error) and the check that a file's contents fit a model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from interp_steer._io import atomic_path


def write_safetensors(path: str | Path, tensors: Mapping[str, Tensor], format_name: str, version: int,
                      metadata: Mapping[str, Any], what: str) -> Path:
    """A self-describing safetensors file: ``tensors`` and a header with ``format``,
    ``format_version`` and the metadata as JSON (the layout of vector and field files)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: {what} are saved as .safetensors files")
    header = {"format": format_name, "format_version": str(version), "metadata": json.dumps(dict(metadata))}
    with atomic_path(path) as temp:
        save_file(dict(tensors), str(temp), metadata=header)
    return path


def read_safetensors(path: Path, error: type[ValueError], fix: str = "") -> tuple[dict[str, str], dict[str, Tensor]]:
    """Header and tensors of a safetensors file; a missing or damaged file raises ``error`` naming
    it (with ``fix`` appended)."""
    from safetensors import safe_open

    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as problem:  # safetensors raises several types for a damaged file
        raise error(f"{path}: not a readable safetensors file ({problem}){fix}") from problem
    return header, tensors


def check_fits_model(model: Any, *, built_on: str, d_model: int, layers: list[int], source: str,
                     error: type[ValueError], redo: str) -> None:
    """Raise ``error`` if what was built on ``built_on`` (width ``d_model``, at ``layers``) cannot be
    applied to ``model``: another width, another model (``redo`` says how to fix it, e.g. "rebuild
    it on this model"), or a layer the model does not have."""
    if d_model != model.d_model:
        raise error(f"{source} was built on {built_on!r} with d_model {d_model}, but {model.name!r} has d_model "
                    f"{model.d_model}")
    if built_on != model.name:
        raise error(f"{source} was built on {built_on!r}, not on {model.name!r}; {redo}")
    too_deep = [layer for layer in layers if layer >= model.n_layers]
    if too_deep:
        raise error(f"{source} has layers {too_deep}, but {model.name!r} has only {model.n_layers} layers")
