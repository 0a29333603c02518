"""Where interp_steer keeps files of its own on disk (below every module that writes there: the
models' converted GGUF weights, the tiny models' tokenizers)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of the on-disk cache (converted GGUF weights)."""
    root = os.environ.get("INTERP_STEER_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "interp_steer"


__all__ = ["cache_dir"]
