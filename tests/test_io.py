"""File permissions and atomicity of everything the package writes (:mod:`interp_steer._io`).

Oracle: a new file's permissions are ``0o666`` less the umask and a new folder's ``0o777`` less the
umask, as for any program that does not ask for private files; a write that fails leaves the
previous file (or none) and no temporary file beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from interp_steer._io import (
    atomic_directory,
    atomic_path,
    current_umask,
    write_json,
    write_text_atomically,
)
from interp_steer.directions import SteeringVector, VectorMetadata
from interp_steer.units import UnitStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                              (0o002, 0o664, 0o775)])
def test_written_files_follow_the_umask(tmp_path, mask, file_mode, dir_mode):
    with umask(mask):
        json_file = write_json(tmp_path / "new" / "results.json", {"a": 1})
        text_file = write_text_atomically(tmp_path / "report.md", "# report\n")
        vector_file = SteeringVector({1: torch.tensor([1.0, 2.0])}, VectorMetadata(model="m", d_model=2)).save(
            tmp_path / "v.safetensors")
        store = UnitStore(tmp_path / "units", {"run": 1})
        store.save("u0", {"x": 1}, {"y": 2.0})
    for path in (json_file, text_file, vector_file, tmp_path / "units" / "u0.unit.json",
                 tmp_path / "units" / "manifest.json"):
        assert mode(path) == file_mode, path
    assert mode(tmp_path / "new") == dir_mode
    assert mode(tmp_path / "units") == dir_mode
    assert list(SteeringVector.load(vector_file).layers) == [1]


def test_the_umask_is_read_without_being_changed():
    with umask(0o027):
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027


def test_a_saved_file_is_readable_by_the_group_under_umask_022(tmp_path):
    with umask(0o022):
        path = write_json(tmp_path / "results.json", {"a": 1})
    assert mode(path) & stat.S_IRGRP and mode(path) & stat.S_IROTH
    assert not mode(path) & (stat.S_IWGRP | stat.S_IWOTH)


@pytest.mark.parametrize(("mask", "file_mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_figures_follow_the_umask(tmp_path, mask, file_mode):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interp_steer.plotting import save_figure

    _, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    with umask(mask):
        path = save_figure(ax, tmp_path / "figure.png")
    assert mode(path) == file_mode
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("mask", "dir_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_staged_folders_follow_the_umask(tmp_path, mask, dir_mode, file_mode):
    # the helper behind the converted-GGUF and tiny-tokenizer caches
    from safetensors.torch import save_file

    with umask(mask), atomic_directory(tmp_path / "cache" / "entry", complete="done.json") as staging:
        save_file({"w": torch.ones(2)}, str(staging / "model.safetensors"))  # safetensors writes 0o600
        (staging / "sub").mkdir()
        (staging / "done.json").write_text("{}")
    entry = tmp_path / "cache" / "entry"
    assert mode(entry) == dir_mode and mode(entry / "sub") == dir_mode
    assert mode(entry / "done.json") == file_mode and mode(entry / "model.safetensors") == file_mode
    assert leftovers(tmp_path / "cache") == []


def test_a_failed_write_leaves_the_previous_file_and_nothing_else(tmp_path):
    target = write_json(tmp_path / "results.json", {"version": 1})
    with pytest.raises(RuntimeError, match="killed"), atomic_path(target) as temp:
        temp.write_text('{"version": 2, "trunc')
        raise RuntimeError("killed midway")
    assert json.loads(target.read_text()) == {"version": 1}
    assert leftovers(tmp_path) == []


def test_a_failed_first_write_leaves_no_file(tmp_path):
    from interp_steer._tensor_files import write_safetensors

    with pytest.raises(ValueError, match="contiguous"), umask(0o022):  # safetensors refuses it midway
        write_safetensors(tmp_path / "v.safetensors", {"a": torch.ones(3, 2).T}, "f", 1, {}, "vectors")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_staged_folder_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "entry", complete="done.json") as staging:
        (staging / "half.bin").write_bytes(b"\0" * 10)
        raise RuntimeError("conversion failed")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_finished_by_another_process_first_is_kept(tmp_path):
    target = tmp_path / "entry"
    with atomic_directory(target, complete="done.json") as staging:
        (staging / "done.json").write_text('{"who": "me"}')
        target.mkdir()  # another process won the race and finished first
        (target / "done.json").write_text('{"who": "them"}')
        (target / "more").write_text("x")  # non-empty: the rename over it fails
    assert json.loads((target / "done.json").read_text()) == {"who": "them"}
    assert leftovers(tmp_path) == []
