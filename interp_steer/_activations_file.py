"""The activations file format (:meth:`interp_steer.activations.Activations.save`,
``collect_activations(..., out=PATH)``): a safetensors file written row by row, straight to disk, and
read back with its header checked."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp_steer._io import atomic_path


class ActivationsFileError(ValueError):
    """An activations file that cannot be read: the message names it and says how to write one."""


FORMAT = "interp_steer.activations"


class RowFile:
    """A safetensors file of ``values [rows, layers, d_model]`` (float32) and ``text_index [rows]``
    written one text at a time, in any order, straight to disk: the header is known up front (every
    text's row count is), so each text's rows go to their place with a seek. Written atomically
    (:func:`interp_steer._io.atomic_path`): renamed into place on success, removed on any error."""

    def __init__(self, path: str | Path, counts: Sequence[int], n_layers: int, d_model: int,
                 info: Mapping[str, Any]):
        self.path = Path(path)
        if self.path.suffix != ".safetensors":
            raise ValueError(f"out={str(path)!r}: activations are written as a .safetensors file; "
                             "give a path ending in .safetensors")
        self.counts = list(counts)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        rows = int(self.starts[-1])
        self.row_bytes = n_layers * d_model * 4
        self.shape = (n_layers, d_model)
        values_end = rows * self.row_bytes
        header = {"values": {"dtype": "F32", "shape": [rows, n_layers, d_model], "data_offsets": [0, values_end]},
                  "text_index": {"dtype": "I64", "shape": [rows], "data_offsets": [values_end, values_end + 8 * rows]},
                  "__metadata__": {"format": FORMAT, "format_version": "1", "activations": json.dumps(dict(info))}}
        encoded = json.dumps(header).encode()
        encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
        self.data_start = 8 + len(encoded)
        self.total = self.data_start + values_end + 8 * rows
        self.index = np.repeat(np.arange(len(self.counts), dtype="<i8"), self.counts)
        self.prefix = struct.pack("<Q", len(encoded)) + encoded
        self.values_end = values_end

    def __enter__(self) -> RowFile:
        self.atomic = atomic_path(self.path)
        self.file = open(self.atomic.__enter__(), "r+b")  # noqa: SIM115 - closed in __exit__
        self.file.write(self.prefix)
        self.file.truncate(self.total)
        self.file.seek(self.data_start + self.values_end)
        self.file.write(self.index.tobytes())
        return self

    def write(self, text_i: int, rows: Tensor) -> None:
        if tuple(rows.shape) != (self.counts[text_i], *self.shape):
            raise ValueError(f"text {text_i}: rows of shape {tuple(rows.shape)}, expected "
                             f"{(self.counts[text_i], *self.shape)}")
        self.file.seek(self.data_start + int(self.starts[text_i]) * self.row_bytes)
        self.file.write(rows.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())

    def __exit__(self, kind, error, traceback) -> None:
        self.file.close()
        self.atomic.__exit__(kind, error, traceback)  # renamed into place, or removed after an error


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """A safetensors file's JSON header and where its data starts."""
    if not path.is_file():
        raise ActivationsFileError(f"{path}: no such file")
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if size > 100_000_000:
                raise ValueError(f"a header of {size} bytes")
            header = json.loads(handle.read(size))
        if not isinstance(header, dict) or header.get("__metadata__", {}).get("format") != FORMAT:
            raise ValueError(f"its header does not say format {FORMAT!r}")
    except (OSError, ValueError, struct.error, UnicodeDecodeError, AttributeError) as problem:
        raise ActivationsFileError(f"{path}: not an activations file ({problem}); write one with "
                                   "Activations.save or collect_activations(..., out=PATH)") from problem
    return header, 8 + size


__all__ = ["FORMAT", "ActivationsFileError", "RowFile", "read_header"]
