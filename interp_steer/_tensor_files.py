"""Self-describing safetensors files: the layout that steering-vector and steering-field files share.

A file holds its tensors and, in the safetensors header, ``format`` (what kind of file it is),
``format_version`` and the metadata as JSON. Each file type checks its own format and metadata;
here are the writing (atomic: a file appears whole or not at all) and the reading (a missing or
damaged file becomes the caller's one-line error).
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
