"""Atomic file output: every file the package writes appears whole or not at all.

A file is written under a temporary name in its own folder and renamed over the target only when
writing succeeded (``os.replace`` is atomic on one file system), so a run that is killed or fails
midway leaves the previous file or none, never a truncated one that looks complete. Folders that
are filled in one go (a converted model, a tokenizer) are staged and renamed the same way.

Permissions are those of any new file: ``0o666`` (folders ``0o777``) less the user's umask, so
outputs in a shared lab folder are readable by the group under the usual umask 022. They are set
on the finished file, whatever the writer chose: ``tempfile.mkstemp`` makes the temporary file
owner-only (``0o600``), and so does safetensors' ``save_file``, and the rename would carry that
over.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux's
    ``/proc/self/status``); elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permissions of an ordinary new file: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """The permissions of an ordinary new folder: ``0o777`` less the umask."""
    return 0o777 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, sync: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block ends
    without an error, removed otherwise. ``sync`` flushes it to disk before the rename. The
    finished file has an ordinary new file's permissions (:func:`file_mode`)."""
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
        os.chmod(temp, file_mode())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(target: str | Path, *, complete: str) -> Iterator[Path]:
    """A temporary folder beside ``target`` to fill; renamed to ``target`` when the block ends
    without an error, removed in every case. ``complete`` names the file whose presence in
    ``target`` means it is finished: a rename that fails because another process finished
    ``target`` first is not an error. The folder and everything in it get an ordinary new
    folder's or file's permissions (:func:`folder_mode`, :func:`file_mode`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        yield staging
        files, folders = file_mode(), folder_mode()
        for root, dirs, names in os.walk(staging):
            os.chmod(root, folders)
            for name in names:
                os.chmod(os.path.join(root, name), files)
            for name in dirs:
                os.chmod(os.path.join(root, name), folders)
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / complete).is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


__all__ = [
    "atomic_directory",
    "atomic_path",
    "current_umask",
    "file_mode",
    "folder_mode",
    "jsonable",
    "write_json",
    "write_text_atomically",
]
