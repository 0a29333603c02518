"""A resumed run says what it reused (issue 31 §3.4): the log names how many units were read back
from the store and what they took to compute when they were made, the result's ``timings_s``
records the counts, and a report's "Run time" line tells this run's wall time from the reused work.
Results saved before the counts existed still report as before."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

import interp_steer as ist
from interp_steer import units
from interp_steer.execution import Execution
from interp_steer.studies.collision import study as collision_study
from interp_steer.studies.collision.report import render_report
from interp_steer.units import MemoryStore, Unit, UnitStore, run_time_text, run_units

TINY_COLLISION = {"max_prompts": 6, "max_passages": 12, "reference_passages": 4, "max_new_tokens": 5,
                  "unit_prompts": 2, "decomposition_prompts": 2}


def _square(model, shared, item):
    return {"y": item * item}


def test_a_store_keeps_each_units_compute_time_and_counts_what_it_reused(tmp_path):
    units = [Unit(f"sq-{i}", {"i": i}, item=i) for i in range(4)]
    first = UnitStore(tmp_path, {"k": 1})
    run_units(_square, units[:3], model=None, store=first, progress=False, label="squares")
    assert first.reuse_timings() == {"units_computed": 3, "units_reused": 0}
    stored = json.loads(first.path("sq-0").read_text())
    assert stored["seconds"] >= 0 and "seconds" not in stored["result"]

    lines = []
    again = UnitStore(tmp_path, {"k": 1}, log=lines.append)
    results = run_units(_square, units, model=None, store=again, progress=False, label="squares")
    assert [r["y"] for r in results] == [0, 1, 4, 9]
    assert re.fullmatch(rf"squares: 3 of 4 units reused from {re.escape(str(tmp_path))} \(their compute: "
                        r"\d+\.\d s\); computing the other 1", lines[-1])
    timings = again.reuse_timings()
    assert timings["units_computed"] == 1 and timings["units_reused"] == 3
    assert timings["units_reused_compute"] == pytest.approx(sum(
        json.loads(again.path(f"sq-{i}").read_text())["seconds"] for i in range(3)), abs=0.01)

    lines.clear()
    run_units(_square, units, model=None, store=UnitStore(tmp_path, {"k": 1}, log=lines.append), progress=False,
              label="squares")
    assert lines[-1].startswith("squares: 4 of 4 units reused") and lines[-1].endswith("; nothing to compute")


def test_units_stored_before_times_were_kept_still_load_and_say_so(tmp_path):
    store = UnitStore(tmp_path, {"k": 1})
    store.save("old", {"i": 0}, {"y": 1})  # no seconds given: as every unit stored before this change
    assert "seconds" not in json.loads(store.path("old").read_text())
    lines = []
    again = UnitStore(tmp_path, {"k": 1}, log=lines.append)
    assert run_units(_square, [Unit("old", {"i": 0}, item=0)], model=None, store=again, progress=False,
                     label="old units")[0] == {"y": 1}
    assert "1 of 1 units reused" in lines[-1] and "their compute time was not recorded" in lines[-1]
    assert again.reuse_timings() == {"units_computed": 0, "units_reused": 1}  # no seconds to claim
    assert run_time_text({"total": 3.2, **again.reuse_timings()}) == (
        "this run: 3 s wall; 1 of 1 units reused from an earlier run (their compute time not recorded)")


def test_the_run_time_text_of_a_run_without_reuse_and_of_an_old_result_is_unchanged():
    assert run_time_text({"total": 165.4}) == "165 s"  # a result saved before the counts existed
    assert run_time_text({"total": 165.4, "units_computed": 12, "units_reused": 0}) == "165 s"
    assert run_time_text({}) == "n/a"
    assert run_time_text({"total": None}) == "n/a"  # NaN saved as null
    assert run_time_text({"total": 165.4, "units_computed": 4, "units_reused": 8, "units_reused_compute": 415.2}) == (
        "this run: 165 s wall; 8 of 12 units reused from an earlier run (their compute: 415 s)")
    assert MemoryStore().reuse_timings() == {"units_computed": 0, "units_reused": 0}


@pytest.fixture(scope="module")
def tiny():
    return ist.load_model("tiny-random", device="cpu")


def test_a_resumed_collision_says_what_it_reused(tiny, tmp_path, monkeypatch):
    # The run key holds a hash of the package's sources; held fixed so that an edit to the checkout
    # while this test runs does not make the second run a different run.
    monkeypatch.setattr(units, "code_fingerprint", lambda: "fixed")
    store = tmp_path / "units"
    first = collision_study.collide(tiny, quick=True, execution=Execution(store=store), **TINY_COLLISION)
    assert first.timings["units_computed"] == 3 and first.timings["units_reused"] == 0
    assert "units reused" not in render_report(first, figures=False)
    # A model passed in was loaded by the caller: the study does not report a 0.0 s load_model stage.
    assert "load_model" not in first.timings

    lines = []
    resumed = collision_study.collide(tiny, quick=True, execution=Execution(store=store, log=lines.append),
                                      **TINY_COLLISION)
    reuse = [line for line in lines if "units reused" in line]
    assert len(reuse) == 1 and re.fullmatch(
        rf"grid units: 3 of 3 units reused from {re.escape(str(store))} \(their compute: \d+\.\d s\); "
        "nothing to compute", reuse[0])
    assert not any(line.startswith("load_model") for line in lines)
    timings = resumed.timings
    assert timings["units_reused"] == 3 and timings["units_computed"] == 0
    assert timings["units_reused_compute"] > 0
    run_time = next(line for line in render_report(resumed, figures=False).splitlines()
                    if line.startswith("Run time:"))
    assert re.fullmatch(r"Run time: this run: \d+ s wall; 3 of 3 units reused from an earlier run \(their compute: "
                        r"\d+ s\)\. Full numbers: `collision\.json`\.", run_time)

    # A result saved before the counts existed (only stage times) still reports, as before.
    old = dataclasses.replace(resumed, timings={k: v for k, v in timings.items() if not k.startswith("units_")})
    assert f"Run time: {timings['total']:.0f} s. Full numbers" in render_report(old, figures=False)
