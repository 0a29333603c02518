"""Atomic file output: every file the package writes appears whole or not at all.

A file is written under a temporary name in its own folder and renamed over the target only when
writing succeeded (``os.replace`` is atomic on one file system), so a run that is killed or fails
midway leaves the previous file or none, never a truncated one that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path, *, sync: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block ends
    without an error, removed otherwise. ``sync`` flushes it to disk before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        if sync:
            with open(temp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return Path(path)


def jsonable(value: Any) -> Any:
    """Plain JSON: NaN/inf become null (strict JSON has no NaN), numpy scalars become numbers."""
    import numpy as np  # here, not at the top: the command line's parser imports this module

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
    """Write ``payload`` as strict JSON (see :func:`jsonable`), atomically: a run killed while
    writing leaves the previous file or none, never a truncated one."""
    return write_text_atomically(path, json.dumps(jsonable(payload), indent=1, allow_nan=False))


__all__ = ["atomic_path", "jsonable", "write_json", "write_text_atomically"]
