"""The robustness study: its verdict rules (with simulated error rates), its oracles on synthetic data,
and end-to-end runs on the tiny model (API, A/B mode, replay, CLI, schema, bad inputs)."""

from __future__ import annotations

import json
import math

import jsonschema
import numpy as np
import pytest
import torch

import interp_steer as ist
from interp_steer.cli import main
from interp_steer.data import ABQuestion
from interp_steer.stats import independent_ratio, t_quantile
from interp_steer.studies.robustness import (
    RobustnessConfig,
    SteeredReadout,
    replay,
    robustness,
    schema,
)
from interp_steer.studies.robustness.claims import _perplexity
from interp_steer.studies.robustness.perplexity import _crossing
from interp_steer.studies.robustness.readout import content_ids, indicative_tokens, template_ids

# The verdict rules and their simulated error rates: tests/test_rules_robustness.py.


def test_independent_ratio_matches_its_definition_and_flags_an_unbounded_set():
    rng = np.random.default_rng(3)
    x, y = rng.normal(2, 1, 40), rng.normal(4, 1, 25)
    iv = independent_ratio(x, y)
    t2 = float(t_quantile(0.95, 24)) ** 2
    for r in (iv.low, iv.high):  # the bounds solve (mx - r my)^2 = t^2 (vx + r^2 vy)
        lhs = (x.mean() - r * y.mean()) ** 2
        rhs = t2 * (x.var(ddof=1) / 40 + r**2 * y.var(ddof=1) / 25)
        assert lhs == pytest.approx(rhs, rel=1e-9)
    assert iv.low < x.mean() / y.mean() < iv.high
    flat = independent_ratio(x, rng.normal(0, 1, 10))
    assert math.isnan(flat.low) and flat.note


def test_perplexity_crossing_interpolates_and_reports_beyond_the_grid():
    coefficients = [-0.4, -0.2, 0.0, 0.2, 0.4]
    # log ratios rising linearly in |c| on the positive side only: log(1.1) is reached at c = 0.2 * log(1.1)/0.1
    slope = 0.5
    log_ratio = np.array([[0.0] * 8, [0.0] * 8, [0.0] * 8, [slope * 0.2] * 8, [slope * 0.4] * 8])
    out = _crossing(coefficients, log_ratio, 0.1, 0, seed=0)
    assert out["positive"]["coefficient"] == pytest.approx(math.log1p(0.1) / slope)
    assert out["negative"]["reached"] is False and out["negative"]["coefficient"] is None


# ------------------------------------------------------------------------------ configuration


@pytest.mark.parametrize("overrides, message", [
    ({"coefficients": (0.0,)}, "coefficients"),
    ({"coefficients": (0.0, 0.1)}, "both signs"),
    ({"primary": 0.0}, "primary"),
    ({"layer": "middle"}, "layer"),
    ({"sample_sizes": (8, 4)}, "sample_sizes"),
    ({"heldout_fraction": 1.0}, "heldout_fraction"),
    ({"ood_margin": 1.5}, "ood_margin"),
    ({"n_boot": 10}, "n_boot"),
])
def test_config_refuses_bad_settings(overrides, message):
    with pytest.raises(ValueError, match=message):
        RobustnessConfig(**overrides)


def test_config_round_trips_and_measures_perplexity_at_the_primary_coefficient():
    config = RobustnessConfig(coefficients=(-0.3, 0.0, 0.3), perplexity_coefficients=(0.0, 0.1))
    assert 0.3 in config.perplexity_coefficients
    assert RobustnessConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


# ----------------------------------------------------------------------------- the tiny model

POSITIVE = [f"A bright and hopeful morning number {i}, full of kind words and warm light." for i in range(16)]
NEGATIVE = [f"A grim and hopeless night number {i}, full of cruel words and cold dark." for i in range(16)]
PROMPTS = [f"Tell me about the town square on day {i}." for i in range(6)]
OOD = [f"Write a product review of blender model {i}." for i in range(4)]

TINY = dict(layer=2, coefficients=(-1.0, 0.0, 1.0), perplexity_coefficients=(-1.0, 0.0, 1.0), sample_sizes=(2, 4, 8),
            subsets=2, adversarial_seeds=2, adversarial_budget=12, population=4, suffix_length=2, max_new_tokens=6,
            n_boot=100, folds=2, direction=1, batch_size=16)


@pytest.fixture(scope="module")
def tiny_result(tiny):
    return robustness(tiny, positive=POSITIVE, negative=NEGATIVE, prompts=PROMPTS, ood_prompts={"reviews": OOD},
                      neutral=POSITIVE[:4] + NEGATIVE[:4], **TINY)


def test_tiny_run_reports_every_finding(tiny_result):
    report = tiny_result.models[0]
    sets = report["effects"]["sets"]
    assert list(sets) == ["in_distribution", "reviews"]
    assert sets["in_distribution"]["n_items"] == len(PROMPTS) and sets["reviews"]["n_items"] == len(OOD)
    assert "reviews" in report["effects"]["ood_over_id"]
    ss = report["sample_size"]
    assert [p["n"] for p in ss["per_n"]] == ss["sizes"] and ss["sizes"][-1] == 12  # 16 - 4 held out
    assert ss["per_n"][-1]["cosine_to_full"]["mean"] == pytest.approx(1.0, abs=1e-5)
    assert [c.key for c in tiny_result.claims] == ["ood", "sample_size", "adversarial", "perplexity", "model_size"]
    assert tiny_result.claim("model_size").verdict == "inconclusive"
    assert "needs ≥ 2 models" in tiny_result.claim("model_size").summary


def test_perplexity_ratio_is_exactly_one_unsteered(tiny_result):
    perplexity = tiny_result.models[0]["perplexity"]
    zero = perplexity["coefficients"].index(0.0)
    for corpus in perplexity["corpora"].values():
        assert corpus["cells"][zero]["ratio"]["mean"] == 1.0
        assert np.all(np.asarray(corpus["per_text_log_ratio"][zero]) == 0.0)


def test_every_adversarial_input_replays_to_its_reported_effect(tiny, tiny_result):
    adv = tiny_result.models[0]["adversarial"]
    vector = tiny_result.vectors[0]
    assert len(adv["searches"]) == 2 * 2
    for entry in adv["searches"]:
        assert entry["evaluations"] <= TINY["adversarial_budget"]
        value = replay(tiny, vector, adv["readout"], entry["content_ids"])
        assert value == pytest.approx(entry["effect"], abs=1e-5)
        assert entry["reversal"] == (entry["effect"] < adv["threshold"])


def test_saved_result_is_valid_and_replays_from_the_files(tiny, tiny_result, tmp_path):
    written = tiny_result.save(tmp_path)
    data = json.loads((tmp_path / "robustness.json").read_text())
    jsonschema.validate(data, schema())
    for name in ("effects", "sample_size", "perplexity", "adversarial"):
        assert written[name].stat().st_size > 0
    report = (tmp_path / "report.md").read_text()
    assert "## Verdicts" in report and "needs ≥ 2 models" in report
    vector = ist.SteeringVector.load(tmp_path / data["models"][0]["vector_file"])
    entry = data["models"][0]["adversarial"]["searches"][-1]
    assert replay(tiny, vector, data["models"][0]["adversarial"]["readout"], entry["content_ids"]) == pytest.approx(
        entry["effect"], abs=1e-5)


def test_readout_batches_equal_single_candidates_and_its_gradient_is_a_linearisation(tiny, tiny_result):
    vector = tiny_result.vectors[0]
    prefix, tail = template_ids(tiny)
    readout = SteeredReadout(tiny, vector, 1.0, "tokens", tuple(prefix), tuple(tail), positive=(5, 6, 7),
                             negative=(8, 9, 10), batch_size=4)
    ids = content_ids(tiny, PROMPTS)
    batched = readout(ids)
    single = np.array([readout([i])[0] for i in ids])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    # The shared path (prefix, common start and heads computed once) gives the full rows' numbers,
    # with ragged candidates, a shared start, and one-token candidates.
    shared = SteeredReadout(tiny, vector, 1.0, "tokens", (11, 12, 13), (14, 15), positive=(5, 6, 7),
                            negative=(8, 9, 10), batch_size=6)
    ragged = [*ids, [21], ids[0][:3] + [30, 31], ids[0][:3] + [32]]
    np.testing.assert_allclose(shared(ragged), shared.score_unshared(ragged), atol=1e-4)
    np.testing.assert_allclose(shared(ragged[-2:]), shared.score_unshared(ragged[-2:]), atol=1e-4)
    grad = readout.token_gradients(ids[0], [len(ids[0]) - 1])
    assert grad.shape == (1, tiny.hf_model.get_input_embeddings().weight.shape[0])
    assert all(p.grad is None for p in tiny.hf_model.parameters())


def test_two_models_are_compared_on_the_same_texts(tiny):
    other = ist.load_model("tiny-random:qwen2")
    result = robustness([tiny, other], positive=POSITIVE, negative=NEGATIVE, prompts=PROMPTS, ood_prompts={"r": OOD},
                        neutral=POSITIVE[:4] + NEGATIVE[:4], **{**TINY, "adversarial_seeds": 0})
    assert [r["model"]["name"] for r in result.models] == [tiny.name, other.name]
    finding = result.claim("model_size")
    assert finding.numbers["difference"]["n"] == 8  # per neutral text, both models
    assert {finding.numbers["smallest"], finding.numbers["largest"]} == {tiny.name, other.name}
    assert len(result.vectors) == 2 and result.claim("adversarial").verdict == "inconclusive"


def test_ab_questions_mode(tiny):
    questions = [ABQuestion(f"Question {i}: do you help?\n\n(A) Yes\n(B) No", "(A)" if i % 2 else "(B)",
                            "(B)" if i % 2 else "(A)") for i in range(10)]
    result = robustness(tiny, questions=questions, ood_questions={"other": questions[:3]},
                        **{**TINY, "direction": "auto"})
    sets = result.models[0]["effects"]["sets"]
    assert sets["in_distribution"]["kind"] == "questions" and sets["in_distribution"]["measure"] == "P(matching answer)"
    assert result.models[0]["effects"]["ood_over_id"]["other"]["scale"] == "raw effects"
    adv = result.models[0]["adversarial"]
    for entry in adv["searches"]:
        readout = adv["readouts_per_seed"][entry["seed_index"]]
        assert replay(tiny, result.vectors[0], readout, entry["content_ids"]) == pytest.approx(entry["effect"], abs=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"ood_prompts": {"empty": []}}, "non-empty list"),
    ({"sample_sizes": (64, 128)}, "sample_sizes"),
    ({"positive": POSITIVE}, "go together"),
    ({"pairs": [], "questions": []}, "one concept"),
])
def test_bad_inputs_are_refused_with_a_clear_message(tiny, kwargs, message):
    base = dict(positive=POSITIVE, negative=NEGATIVE, prompts=PROMPTS)
    if "pairs" in kwargs or "positive" in kwargs:
        base = {"prompts": PROMPTS}
    with pytest.raises(ValueError, match=message):
        robustness(tiny, **{**TINY, **base, **kwargs})


def test_cli_writes_the_outputs(tmp_path, capsys):
    pos, neg, prompts = tmp_path / "pos.txt", tmp_path / "neg.txt", tmp_path / "prompts.txt"
    pos.write_text("\n".join(POSITIVE))
    neg.write_text("\n".join(NEGATIVE))
    prompts.write_text("\n".join(PROMPTS))
    ood = tmp_path / "reviews.txt"
    ood.write_text("\n".join(OOD))
    out = tmp_path / "out"
    argv = ["robustness", "--model", "tiny-random", "--positive", str(pos), "--negative", str(neg),
            "--prompts", str(prompts), "--ood-prompts", str(ood), "--layer", "2", "--coefficients", "-1,0,1",
            "--perplexity-coefficients", "0,1", "--sample-sizes", "2,4", "--subsets", "2",
            "--adversarial-seeds", "1", "--adversarial-budget", "8", "--max-new-tokens", "4", "--direction", "1",
            "--out", str(out)]
    code = main(argv)
    assert code == 0, capsys.readouterr().err
    data = json.loads((out / "robustness.json").read_text())
    jsonschema.validate(data, schema())
    assert "reviews" in data["models"][0]["effects"]["sets"]
    assert "- ood:" in capsys.readouterr().out
    # The same command again finds its finished outputs and stops; another OOD file does not.
    assert main(argv) == 0 and "already holds this finished run" in capsys.readouterr().out
    ood.write_text("\n".join(OOD[:-1]))
    assert main(argv) == 0 and "already holds" not in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--layer", "x"], "--layer"),
    (["--coefficients", "0"], "coefficients"),
    (["--sample-sizes", "2.5,4"], "--sample-sizes"),
    (["--positive", "p.txt"], "go together"),
])
def test_cli_bad_arguments(argv, message, capsys, tmp_path):
    assert main(["robustness", "--model", "tiny-random", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------ verdicts on synthetic reports


@pytest.mark.parametrize("rise, verdict", [(1.3, "reproduced"), (1.001, "not reproduced"), (1.05, "inconclusive")])
def test_perplexity_verdict_needs_more_than_a_negligible_rise(rise, verdict):
    rng = np.random.default_rng(5)
    log_ratio = math.log(rise) + rng.normal(0, 0.01, 60)
    report = {"perplexity": {"coefficients": [0.0, 0.2],
                             "corpora": {"neutral": {"per_text_log_ratio": [[0.0] * 60, log_ratio.tolist()],
                                                     "rise": {}}}}}
    config = RobustnessConfig(coefficients=(-0.2, 0.0, 0.2))
    assert _perplexity(config, report).verdict == verdict


def test_perplexity_crossing_bootstrap_is_unbounded_when_some_replicates_never_reach_the_level():
    rng = np.random.default_rng(6)
    coefficients = [0.0, 0.2, 0.4]
    # Mean log ratio ends right at log(1.1): about half the replicates reach it inside the grid.
    top = math.log1p(0.1) + rng.normal(0, 0.05, 40)
    log_ratio = np.stack([np.zeros(40), top / 2, top])
    side = _crossing(coefficients, log_ratio, 0.1, 400, seed=0)["positive"]
    assert math.isfinite(side["low"]) and side["high"] == math.inf


def test_token_readout_is_positive_on_its_own_prompts_for_either_sign(tiny, tiny_result):
    vector = tiny_result.vectors[0]
    prefix, tail = template_ids(tiny)
    for c in (1.0, -1.0):
        promoted, suppressed, _ = indicative_tokens(tiny, vector, c, PROMPTS, 5)
        readout = SteeredReadout(tiny, vector, c, "tokens", tuple(prefix), tuple(tail), positive=tuple(promoted),
                                 negative=tuple(suppressed))
        assert np.mean(readout(content_ids(tiny, PROMPTS))) > 0


@pytest.mark.parametrize("family", ["gemma2", "mistral"])
def test_packed_rows_equal_padded_rows_on_sliding_window_families(family):
    # The tiny sliding-window families' windows (8, 16 tokens) are shorter than any templated row,
    # so the architecture matrix scores them padded; with a window as long as a real model's
    # (Gemma 2: 4096), the packed path runs and must match (soft-capping, window masks included).
    model = ist.load_model(f"tiny-random:{family}")
    model.hf_model.config.sliding_window = 4096
    for module in model.hf_model.modules():
        if getattr(module, "sliding_window", None) is not None:
            module.sliding_window = 4096
    vector = ist.SteeringVector({1: torch.randn(model.d_model, generator=torch.Generator().manual_seed(0))},
                                ist.VectorMetadata(model=model.name, d_model=model.d_model))
    prefix, tail = template_ids(model)
    ids = content_ids(model, PROMPTS[:3])
    candidates = [*ids, ids[0][:2] + [30, 31], ids[0][:2] + [32], [21]]
    readout = SteeredReadout(model, vector, 2.0, "tokens", tuple(prefix), tuple(tail), positive=(5, 6, 7),
                             negative=(8, 9, 10), batch_size=8)
    assert readout._can_pack(candidates)
    np.testing.assert_allclose(readout(candidates), readout.score_unshared(candidates), atol=1e-5)


def test_every_interval_is_a_row_of_the_tidy_frame_and_the_display_names_the_verdicts(tiny_result):
    from conftest import rendered

    frame = tiny_result.to_frame()
    found = []

    def walk(node):  # an independent count of the intervals in robustness.json
        if isinstance(node, dict) and {"mean", "low", "high"} <= set(node):
            found.append(node["mean"])
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tiny_result.to_dict())
    assert len(frame) == len(found) > 20
    assert sorted(frame["value"].fillna(-99)) == sorted(-99 if v is None else v for v in found)
    assert set(frame["model"].dropna()) == {tiny_result.models[0]["model"]["name"]}
    per_n = frame[(frame["group"].str.endswith("sample_size/per_n")) & (frame["metric"] == "effect")]
    assert list(per_n["at_n"]) == tiny_result.models[0]["sample_size"]["sizes"]
    page, line = rendered(tiny_result)
    assert all(c.verdict in page for c in tiny_result.claims) and "RobustnessResult(" in line


def test_a_saved_run_loads_back_with_its_vectors(tiny_result, tmp_path):
    from test_result_load import assert_round_trip

    from interp_steer.studies._common import NotSavedError

    loaded = assert_round_trip(tiny_result, tmp_path / "run", ("intervals", "claims"), tmp_path / "again")
    assert loaded.vectors[0].norms() == tiny_result.vectors[0].norms()
    (tmp_path / "run" / "vector.safetensors").unlink()
    with pytest.raises(NotSavedError, match=r"vectors\[0\] was not saved: .* holds no vector.safetensors"):
        type(tiny_result).load(tmp_path / "run").vectors[0].norms()
