"""``Result.load(out_dir)`` for every study (issue 31 §3.2): a finished run read back from its output
folder gives the same tables, the same display and, saved again, the same JSON byte for byte. The
round trip of each study runs beside that study's own fixture (``test_collision.py``,
``test_score.py``, ``test_patching.py``, ``test_svf.py``, ``test_robustness.py``) through
:func:`assert_round_trip`; this module checks what a load refuses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas.testing as pdt
import pytest

from interp_steer.studies._common import NotSaved, NotSavedError, Restored, read_result
from interp_steer.studies.collision.result import CollisionResult, ImportedResult
from interp_steer.studies.patching.result import PatchingResult
from interp_steer.studies.robustness.result import RobustnessResult
from interp_steer.studies.svf.result import SvfResult

FILES = {CollisionResult: "collision.json", ImportedResult: "collision.json", PatchingResult: "patching.json",
         SvfResult: "svf.json", RobustnessResult: "robustness.json"}


def assert_round_trip(result, out: Path, tables: tuple[str, ...], copy_to: Path):
    """``result`` saved in ``out`` (without figures, unless it already is), loaded back from the folder
    and from the file: equal frames, a display, and the JSON saved again identical. Returns the load."""
    name = FILES[type(result)]
    if not (out / name).is_file():
        result.save(out, figures=False)
    loaded = type(result).load(out)
    assert type(loaded).load(out / name).to_dict() == loaded.to_dict()
    for table in tables:
        pdt.assert_frame_equal(loaded.to_frame(table), result.to_frame(table))
    page = loaded._repr_html_()
    assert page.startswith("<div>") and page.endswith("</div>")
    assert repr(loaded) == repr(result)
    written = loaded.save(copy_to, figures=False)
    assert written["json"].read_bytes() == (out / name).read_bytes()
    return loaded


class _Thing(Restored):
    def __init__(self):
        self.kept = 1
        self.lost = NotSaved("lost", "the folder holds no lost.bin")


def test_a_field_that_was_not_saved_says_so_when_read():
    thing = _Thing()
    assert thing.kept == 1
    with pytest.raises(NotSavedError, match=r"_Thing.lost was not saved: the folder holds no lost.bin"):
        _ = thing.lost
    assert not hasattr(thing, "lost")  # an AttributeError: getattr(x, name, default) keeps working
    in_a_dict = {"dla": NotSaved("dla", "no dla/dla.json")}["dla"]
    with pytest.raises(NotSavedError, match="dla was not saved: no dla/dla.json"):
        in_a_dict.summary()


def test_a_missing_folder_or_file_is_named_with_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'nowhere'}: no such file or folder; CollisionResult.load "
                       r"expects the output folder of CollisionResult.save\(\) \(or of the CLI\), holding collision.json"):
        CollisionResult.load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path} holds no svf.json; SvfResult.load expects"):
        SvfResult.load(tmp_path)


def test_a_folder_or_file_of_another_study_says_which_load_reads_it(tmp_path):
    from interp_steer.studies.svf.result import schema

    required = {key: None for key in schema()["required"]}
    (tmp_path / "svf.json").write_text(json.dumps(required))
    with pytest.raises(FileNotFoundError, match="holds no patching.json; it holds svf.json: load it with SvfResult.load"):
        PatchingResult.load(tmp_path)
    shutil.copy(tmp_path / "svf.json", tmp_path / "renamed.json")
    with pytest.raises(ValueError, match=r"renamed.json: not a robustness.json result \(it is a svf.json result: load "
                       "it with SvfResult.load\\)"):
        RobustnessResult.load(tmp_path / "renamed.json")


def test_a_file_that_is_not_a_result_or_of_another_version_is_refused(tmp_path):
    from interp_steer.studies.patching.result import SCHEMA_VERSION, schema

    bad = tmp_path / "patching.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=rf"{bad}: not a JSON result file"):
        PatchingResult.load(tmp_path)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a study's result"):
        PatchingResult.load(bad)
    bad.write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    with pytest.raises(ValueError, match=r"not a patching.json result \(it lacks the keys \['library_version'"):
        PatchingResult.load(bad)
    payload = {key: None for key in schema()["required"]} | {"schema_version": 99, "library_version": "9.9"}
    bad.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=f"written with schema version 99 \\(library 9.9\\); this library reads version "
                       f"{SCHEMA_VERSION} of patching.json"):
        PatchingResult.load(bad)
    bad.write_text(json.dumps({**payload, "schema_version": SCHEMA_VERSION}))
    with pytest.raises(ValueError, match=f"{bad}: does not match its schema at "):
        read_result(bad, "patching.json", "PatchingResult", SCHEMA_VERSION)
