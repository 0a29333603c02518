"""Resumable work units and the Ray backend (:mod:`interp_steer.units`).

Oracles: a run interrupted after some units and re-run gives the same JSON as an uninterrupted
run and computes no unit twice; a store made with another config or a damaged unit file is never
trusted; Ray actors give the local backend's numbers, and a task that fails once is retried.
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest

import interp_steer as ist
from interp_steer.execution import Execution
from interp_steer.models import normalise_spec
from interp_steer.studies import _units as study_units
from interp_steer.studies.collision import study as collision_study
from interp_steer.studies.collision.config import CollisionConfig
from interp_steer.studies.patching import study as patching_study
from interp_steer.studies.patching.config import PatchingConfig
from interp_steer.units import (
    LocalBackend,
    Unit,
    UnitStore,
    from_json,
    make_backend,
    run_key,
    run_units,
    to_json,
)

SPEC = "tiny-random"
TINY_COLLISION = {"max_prompts": 6, "max_passages": 12, "reference_passages": 4, "max_new_tokens": 5,
                  "unit_prompts": 2, "decomposition_prompts": 2}


@pytest.fixture(scope="module")
def tiny():
    return ist.load_model(SPEC, device="cpu")


def _without_timings(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("timings_s", None)
    return data


def _collide(tiny, units, log=None, **kwargs):
    return collision_study.collide(tiny, quick=True, execution=Execution(store=units, log=log), **TINY_COLLISION,
                                   **kwargs)


def _assert_same_results(first: dict, second: dict) -> None:
    """Two results' dicts are equal, stage timings aside."""
    for result in (first, second):
        result.pop("timings_s", None)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def _counting(monkeypatch, module, name, fail_after=None):
    """Replace ``module.name`` (a unit function) by one that counts its calls and, from call
    ``fail_after + 1`` on, raises like a crash would."""
    original = getattr(module, name)
    original = getattr(original, "__wrapped__", original)  # not a counter set earlier in the test
    calls = []

    def counted(model, shared, item):
        if fail_after is not None and len(calls) >= fail_after:
            raise KeyboardInterrupt("simulated Ctrl-C inside a unit")
        calls.append(item)
        return original(model, shared, item)

    counted.__wrapped__ = original
    monkeypatch.setattr(module, name, counted)
    return calls


# ----------------------------------------------------------------------------- encoding and store


def test_results_round_trip_through_strict_json():
    value = {"a": np.array([[1.5, math.nan], [math.inf, -math.inf]]), "b": np.arange(3), "c": [1, "x", None, True],
             "d": np.float32(0.1), "e": math.nan}
    text = json.dumps(to_json(value), allow_nan=False)
    back = from_json(json.loads(text))
    np.testing.assert_array_equal(back["a"], value["a"])
    assert back["b"].dtype == value["b"].dtype and back["b"].tolist() == [0, 1, 2]
    assert back["c"] == [1, "x", None, True] and back["d"] == float(np.float32(0.1)) and math.isnan(back["e"])
    with pytest.raises(TypeError, match="no JSON form"):
        to_json({"x": object()})


def test_a_store_reuses_its_own_units_and_never_trusts_others(tmp_path):
    lines = []
    key = {"config": {"lambdas": [0.3]}, "data": "abc"}
    store = UnitStore(tmp_path, key, log=lines.append)
    store.save("u-0", {"i": 0}, {"x": np.array([1.0, 2.0])})
    store.save("u-1", {"i": 1}, {"x": np.array([3.0])})
    again = UnitStore(tmp_path, key, log=lines.append)
    assert again.load("u-0", {"i": 0})["x"].tolist() == [1.0, 2.0]
    assert again.load("u-0", {"i": 5}) is None  # other inputs under the same id
    # A damaged file is recomputed, and says so.
    path = again.path("u-1")
    path.write_text(path.read_text()[:-20])
    assert again.load("u-1", {"i": 1}) is None
    assert any("damaged" in line for line in lines)
    # A changed number inside an intact file fails the checksum.
    stored = json.loads(again.path("u-0").read_text())
    stored["result"]["x"]["data"][0] = 9.0
    again.path("u-0").write_text(json.dumps(stored))
    assert again.load("u-0", {"i": 0}) is None
    # Another config: nothing is reused, and the message names what differs.
    store.save("u-0", {"i": 0}, {"x": np.array([1.0])})
    other = UnitStore(tmp_path, {**key, "config": {"lambdas": [0.5]}}, log=lines.append)
    assert other.load("u-0", {"i": 0}) is None
    assert "config.lambdas" in lines[-1] and "not reusing" in lines[-1]
    # --fresh discards units even under the same key.
    other.save("u-0", {"i": 0}, {"x": np.array([1.0])})
    assert UnitStore(tmp_path, other.key, fresh=True).load("u-0", {"i": 0}) is None
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_run_units_returns_results_in_order_and_skips_stored_ones(tmp_path):
    calls = []

    def square(model, shared, item):
        calls.append(item)
        return {"y": item * item + shared}

    units = [Unit(f"sq-{i}", {"i": i}, item=i) for i in range(5)]
    store = UnitStore(tmp_path, {"k": 1})
    first = run_units(square, units[:3], model=None, shared=10, store=store, progress=False)
    assert [r["y"] for r in first] == [10, 11, 14] and calls == [0, 1, 2]
    second = run_units(square, units, model=None, shared=10, store=UnitStore(tmp_path, {"k": 1}), progress=False)
    assert [r["y"] for r in second] == [10, 11, 14, 19, 26] and calls == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="distinct"):
        run_units(square, [units[0], units[0]], model=None, progress=False)


def test_the_model_key_is_known_before_loading(tiny):
    assert tiny.spec == normalise_spec(SPEC) == normalise_spec("tiny-random:smollm2:0")
    config = PatchingConfig()
    assert run_key(tiny, config, {"d": 1}) == run_key((SPEC, "float32", tiny.device), config, {"d": 1})
    assert run_key((SPEC, "float32"), config, {"d": 1}) != run_key(("tiny-random:1", "float32"), config, {"d": 1})


def test_backend_arguments_are_checked(tiny, monkeypatch):
    assert isinstance(make_backend("local", tiny), LocalBackend)
    with pytest.raises(ValueError, match="go with --backend ray"):
        make_backend("local", tiny, actors=2)
    with pytest.raises(ValueError, match="'local' or 'ray'"):
        make_backend("dask", tiny)
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match=r"interp_steer\[distributed\]"):
        make_backend("ray", tiny)


# ----------------------------------------------------------------------------- studies


def test_an_interrupted_collision_resumes_to_the_same_numbers_without_redoing_units(tiny, tmp_path, monkeypatch):
    whole = _collide(tiny, tmp_path / "whole" / "units")
    whole.save(tmp_path / "whole", figures=False)
    calls = _counting(monkeypatch, collision_study, "_grid_unit", fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        _collide(tiny, tmp_path / "resumed" / "units")
    assert len(calls) == 2
    assert len(list((tmp_path / "resumed" / "units").glob("grid-*.unit.json"))) == 2
    calls = _counting(monkeypatch, collision_study, "_grid_unit")
    resumed = _collide(tiny, tmp_path / "resumed" / "units")
    resumed.save(tmp_path / "resumed", figures=False)
    assert [c[0] for c in calls] == [resumed.prompts[4]]  # only the third unit ran
    assert _without_timings(tmp_path / "resumed" / "collision.json") == _without_timings(tmp_path / "whole" / "collision.json")
    # Nothing left to do: a third run computes no unit at all.
    calls.clear()
    _collide(tiny, tmp_path / "resumed" / "units")
    assert calls == []
    # Another config never reuses them.
    lines = []
    _collide(tiny, tmp_path / "resumed" / "units", lambdas=(0.3, 0.6), log=lines.append)
    assert len(calls) == 3 and any("not reusing" in line and "config.lambdas" in line for line in lines)


def test_patching_resumes_per_prompt(tiny, tmp_path, monkeypatch):
    config = PatchingConfig(max_prompts=4, max_passages=12, method="attribution", top_k=2, components=("attn", "heads"))
    whole = patching_study.run(tiny, config, execution=Execution(store=tmp_path / "a"))
    calls = _counting(monkeypatch, patching_study, "_prompt_unit", fail_after=5)
    with pytest.raises(KeyboardInterrupt):
        patching_study.run(tiny, config, execution=Execution(store=tmp_path / "b"))
    calls = _counting(monkeypatch, patching_study, "_prompt_unit")
    resumed = patching_study.run(tiny, config, execution=Execution(store=tmp_path / "b"))
    assert len(calls) == 3  # 4 prompts + 4 head passes, 5 done before the interruption
    a, b = whole.to_dict(), resumed.to_dict()
    a.pop("timings_s", None), b.pop("timings_s", None)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_a_finished_command_does_no_work_when_run_again(tmp_path, monkeypatch, capsys):
    from interp_steer import cli
    from interp_steer import models as models_module

    argv = ["collide", "--model", SPEC, "--quick", "--max-prompts", "4", "--max-passages", "12", "--max-new-tokens",
            "4", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    report = (tmp_path / "report.md").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run loaded the model again")

    monkeypatch.setattr(models_module, "load_model", refuse)
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "already holds this finished run" in capsys.readouterr().out
    assert (tmp_path / "report.md").read_text() == report
    # An edited output means the run is not finished any more: it is redone (here: refused model).
    (tmp_path / "report.md").write_text("edited")
    assert cli.main(argv) == 1  # the refusal is an unexpected error to the CLI: one line, status 1
    assert "loaded the model again" in capsys.readouterr().err


# ----------------------------------------------------------------------------- Ray


def _fails_once(model, shared, item):
    """A unit that raises the first time it runs for an item (a marker file remembers, across actors)."""
    marker = Path(shared) / f"tried-{item}"
    if not marker.exists():
        marker.write_text("x")
        raise RuntimeError(f"transient failure on item {item}")
    return {"item": item, "vocab": int(model.tokenizer.vocab_size)}


@pytest.fixture(scope="module")
def ray_backend(tiny):
    pytest.importorskip("ray")
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors cannot import the tests by name
    backend = make_backend("ray", tiny, actors=2)
    yield backend
    backend.close()


def test_ray_actors_retry_a_failed_task(ray_backend, tiny, tmp_path):
    units = [Unit(f"u-{i}", {"i": i}, item=i) for i in range(3)]
    results = run_units(_fails_once, units, model=tiny, shared=str(tmp_path), backend=ray_backend, progress=False)
    assert [r["item"] for r in results] == [0, 1, 2]
    assert all(r["vocab"] == tiny.tokenizer.vocab_size for r in results)


def test_ray_gives_the_local_numbers(ray_backend, tiny, tmp_path):
    config = CollisionConfig.quick(**TINY_COLLISION)
    local = collision_study.run(tiny, config).to_dict()
    on_ray = collision_study.run(tiny, config, execution=Execution(backend=ray_backend, store=tmp_path / "c")).to_dict()
    for result in (local, on_ray):
        result.pop("timings_s")
    assert json.dumps(local, sort_keys=True) == json.dumps(on_ray, sort_keys=True)
    patching = PatchingConfig(max_prompts=4, max_passages=12, components=("attn", "heads"))
    local = patching_study.run(tiny, patching).to_dict()
    on_ray = patching_study.run(tiny, patching, execution=Execution(backend=ray_backend)).to_dict()
    _assert_same_results(local, on_ray)


def test_a_key_sees_every_number_of_its_computed_inputs():
    from types import MappingProxyType

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from interp_steer.units import fingerprint, numeric

    base = np.zeros(2000)
    nudged = base.copy()
    nudged[1500] = 1e-9  # a repr would elide it
    assert fingerprint(numeric(MappingProxyType({1: base}))) != fingerprint(numeric(MappingProxyType({1: nudged})))
    x = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    fits = [make_pipeline(StandardScaler(), LogisticRegression()).fit(x + shift, y) for shift in (0.0, 1.0)]
    assert fingerprint(numeric(fits[0])) != fingerprint(numeric(fits[1]))
    with pytest.raises(TypeError, match="cannot key"):
        numeric(len)


def test_ray_actors_must_run_on_the_drivers_kind_of_device(tiny):
    with pytest.raises(ValueError, match="would run on cuda"):
        make_backend("ray", tiny, gpus_per_actor=1)


def test_packed_rows_are_steered_only_by_a_boolean_position_mask(tiny):
    import torch

    from interp_steer.steering import steer

    vector = ist.SteeringVector({1: torch.ones(tiny.d_model)}, ist.VectorMetadata(model=tiny.name, d_model=tiny.d_model))
    ids = torch.tensor([[5, 6, 7]])
    mask = torch.zeros(1, 1, 3, 3)
    with steer(tiny, vector, positions="after_prompt", prompt_end=[2]), pytest.raises(ValueError, match="attention mask"):
        tiny.hf_model(input_ids=ids, attention_mask=mask)


def test_robustness_units_resume(tiny, tmp_path, monkeypatch):
    import sys

    from interp_steer.studies.robustness import adversarial as robustness_adversarial
    from interp_steer.studies.robustness import perplexity as robustness_perplexity
    from interp_steer.studies.robustness import study as robustness_study

    sys.path.insert(0, str(Path(__file__).parent))
    from test_robustness import NEGATIVE, OOD, POSITIVE, PROMPTS, TINY

    kwargs = {"positive": POSITIVE, "negative": NEGATIVE, "prompts": PROMPTS, "ood_prompts": {"r": OOD},
              "neutral": POSITIVE[:4] + NEGATIVE[:4], **TINY}
    whole = robustness_study.robustness(tiny, **kwargs).to_dict()
    searches = _counting(monkeypatch, robustness_adversarial, "_search_unit", fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        robustness_study.robustness(tiny, execution=Execution(store=tmp_path), **kwargs)
    searches = _counting(monkeypatch, robustness_adversarial, "_search_unit")
    perplexity = _counting(monkeypatch, robustness_perplexity, "_perplexity_unit")
    resumed = robustness_study.robustness(tiny, execution=Execution(store=tmp_path), **kwargs).to_dict()
    # Three searches per seed (evolutionary, GCG, the random-edit control); one finished before the kill.
    assert len(searches) == TINY["adversarial_seeds"] * 3 - 1 and perplexity
    _assert_same_results(whole, resumed)
    searches.clear()
    perplexity.clear()
    generations = _counting(monkeypatch, study_units, "_generation_unit")
    robustness_study.robustness(tiny, execution=Execution(store=tmp_path), **kwargs)
    assert searches == [] and perplexity == [] and generations == []


def test_robustness_generations_resume_mid_stage(tiny, tmp_path, monkeypatch):
    """Killed inside the in/out-of-distribution generation (a unit per generation batch), the re-run
    starts from the next batch and ends with the uninterrupted run's numbers; A/B sets likewise."""
    import sys

    from interp_steer.studies.robustness import study as robustness_study

    sys.path.insert(0, str(Path(__file__).parent))
    from test_robustness import NEGATIVE, OOD, POSITIVE, PROMPTS, TINY

    kwargs = {"positive": POSITIVE, "negative": NEGATIVE, "prompts": PROMPTS, "ood_prompts": {"r": OOD},
              "neutral": POSITIVE[:4] + NEGATIVE[:4], **{**TINY, "batch_size": 6, "adversarial_seeds": 0}}
    every = _counting(monkeypatch, study_units, "_generation_unit")
    whole = robustness_study.robustness(tiny, **kwargs).to_dict()
    assert len(every) > 3  # several batches: ID and OOD sets, then the sample-size subsets
    done = _counting(monkeypatch, study_units, "_generation_unit", fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        robustness_study.robustness(tiny, execution=Execution(store=tmp_path / "open"), **kwargs)
    first = [tuple(item["prompts"]) for item in done]
    again = _counting(monkeypatch, study_units, "_generation_unit")
    resumed = robustness_study.robustness(tiny, execution=Execution(store=tmp_path / "open"), **kwargs).to_dict()
    assert len(first) == 2 and len(again) == len(every) - 2
    _assert_same_results(whole, resumed)

    from interp_steer.data import ABQuestion

    questions = [ABQuestion(f"Question {i}: do you help with the {w}?\n\n(A) Yes\n(B) No", "(A)" if i % 2 else "(B)",
                            "(B)" if i % 2 else "(A)") for i, w in enumerate("bread lamp rope bell owl cart door".split())]
    ab = {"questions": questions, "ood_questions": {"other": questions[:4]},
          **{**TINY, "direction": "auto", "batch_size": 6, "adversarial_seeds": 0}}
    every = _counting(monkeypatch, study_units, "_ab_unit")
    whole = robustness_study.robustness(tiny, **ab).to_dict()
    assert len(every) > 2
    _counting(monkeypatch, study_units, "_ab_unit", fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        robustness_study.robustness(tiny, execution=Execution(store=tmp_path / "ab"), **ab)
    again = _counting(monkeypatch, study_units, "_ab_unit")
    resumed = robustness_study.robustness(tiny, execution=Execution(store=tmp_path / "ab"), **ab).to_dict()
    assert len(again) == len(every) - 1
    _assert_same_results(whole, resumed)


def test_svf_and_locate_units_are_reused(tiny, tmp_path, monkeypatch):
    from interp_steer import probes
    from interp_steer.execution import Execution
    from interp_steer.studies import localisation
    from interp_steer.studies.svf import evaluation as svf_evaluation
    from interp_steer.studies.svf import study as svf_study

    settings = {"max_passages": 16, "max_prompts": 6, "max_new_tokens": 5, "long_tokens": 7,
                "coefficients": (-3.0, 0.0, 3.0), "folds": 3, "multi_attribute": False}
    whole = svf_study.svf(tiny, quick=True, **settings).to_dict()
    grid = _counting(monkeypatch, svf_evaluation, "_grid_unit", fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        svf_study.svf(tiny, quick=True, execution=Execution(store=tmp_path / "svf"), **settings)
    grid = _counting(monkeypatch, svf_evaluation, "_grid_unit")
    resumed = svf_study.svf(tiny, quick=True, execution=Execution(store=tmp_path / "svf"), **settings).to_dict()
    assert len(grid) == 1  # 6 prompts in units of 4: the second unit only
    _assert_same_results(whole, resumed)

    # A/B mode with the multi-attribute stage: its A/B grid and its generations are units too.
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_svf import QUESTIONS

    ab = {"questions": QUESTIONS, "layers": (1,), "coefficients": (-2.0, 0.0, 2.0), "max_passages": 16,
          "max_new_tokens": 5, "folds": 3, "batch_size": 8}
    every = _counting(monkeypatch, study_units, "_generation_unit")
    whole = svf_study.svf(tiny, **ab).to_dict()
    assert len(every) > 1
    _counting(monkeypatch, study_units, "_generation_unit", fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        svf_study.svf(tiny, execution=Execution(store=tmp_path / "svf-ab"), **ab)
    grids = _counting(monkeypatch, study_units, "_ab_unit")
    generations = _counting(monkeypatch, study_units, "_generation_unit")
    resumed = svf_study.svf(tiny, execution=Execution(store=tmp_path / "svf-ab"), **ab).to_dict()
    assert grids == [] and len(generations) == len(every) - 1  # the A/B grid was done; the generations went on
    _assert_same_results(whole, resumed)

    concepts = {"tone": (ist.load_builtin("persona_a")[:8], ist.load_builtin("persona_b")[:8]),
                "other": (ist.load_builtin("persona_a")[8:16], ist.load_builtin("baseline")[:8])}
    stored = Execution(store=tmp_path / "locate")
    first = localisation.localise(tiny, concepts, folds=2, execution=stored)
    calls = _counting(monkeypatch, localisation, "_concept_unit")
    again = localisation.localise(tiny, concepts, folds=2, execution=stored)
    assert calls == [] and again.to_dict() == first.to_dict()
    assert localisation.localise(tiny, concepts, folds=2).to_dict() == first.to_dict()
    assert probes.probe_concepts(tiny, concepts, folds=2).to_dict() == first.to_dict()  # the units change nothing


def test_execution_refuses_what_it_cannot_honour(tmp_path):
    with pytest.raises(ValueError, match="no store directory"):
        Execution(fresh=True)
    # Wrong kinds are refused (under pytest the type checker speaks first, outside it Execution's own check).
    with pytest.raises(TypeError):
        Execution(log="print")
    with pytest.raises(TypeError):
        Execution(progress="yes")
    # Our own message, as a user sees it outside pytest's type checker.
    from interp_steer.execution import as_execution

    with pytest.raises(TypeError, match="pass an interp_steer.Execution"):
        inspect.unwrap(as_execution)({"progress": False})
    lines = []
    store = Execution(store=tmp_path / "units", log=lines.append).open_store({"run": 1})
    assert (tmp_path / "units").is_dir() and type(store).__name__ == "UnitStore"
    assert type(Execution().open_store({"run": 1})).__name__ == "MemoryStore"
