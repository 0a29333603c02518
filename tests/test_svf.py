"""The Steering Vector Fields comparison: its building blocks against oracles, and whole runs on the
tiny model (API, A/B mode, CLI, schema, bad files). The four claims' rules are simulated in
``tests/test_rules_svf.py`` (and the one-sample paired rule in ``tests/test_rules_paired.py``); here the
study is checked to feed them what it measured (the control cells' greedy completions for the backfire
floor, the per-prompt effects) and to report their verdicts.
"""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
import torch

import interp_steer as ist
from interp_steer.cli import main
from interp_steer.data import ABQuestion
from interp_steer.metrics import vader_valence
from interp_steer.stats import log_ratio_interval
from interp_steer.studies.rules.svf import control_floor
from interp_steer.studies.svf import SvfConfig, schema, svf
from interp_steer.studies.svf.claims import primary_effects, primary_reference
from interp_steer.studies.svf.context import steered_activations
from interp_steer.studies.svf.evaluation import control_direction
from interp_steer.studies.svf.fit import candidate_layers, choose_window
from interp_steer.studies.svf.long_form import thirds

# ---------------------------------------------------------------------------- building blocks


def test_config_validation_and_round_trip():
    config = SvfConfig()
    assert config.primary_coefficient == max(config.coefficients)
    assert SvfConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    quick = SvfConfig.quick(seed=3, layers=(2, 3))
    assert quick.profile == "quick" and quick.seed == 3 and quick.layers == (2, 3)
    assert SvfConfig.from_dict(json.loads(json.dumps(quick.to_dict()))) == quick
    for bad, message in [
        ({"coefficients": (0.0, 0.1, 0.2)}, "both signs"),
        ({"coefficients": (-0.1, 0.1)}, "include 0"),
        ({"primary": 0.3}, "primary must be one of"),
        ({"primary": 0.0}, "primary must be one of"),
        ({"layers": "best"}, "layers must be 'auto'"),
        ({"layers": (3, 2)}, "ascending"),
        ({"form": "deep"}, "form"),
        ({"direction": 2}, "direction"),
        ({"question_split": 1.0}, "question_split"),
        ({"long_tokens": 2}, "long_tokens"),
        ({"long_tokens": 30, "max_new_tokens": 40}, "long_tokens"),
        ({"layer_band": (0.8, 0.2)}, "layer_band"),
        ({"max_prompts": 1}, "max_prompts"),
        ({"floor_draws": 0}, "floor_draws"),
    ]:
        with pytest.raises(ValueError, match=message):
            SvfConfig(**bad)


def test_candidate_layers_and_the_window_rule():
    assert candidate_layers(30, (0.33, 0.75), 3) == tuple(range(9, 23))
    assert candidate_layers(4, (0.33, 0.75), 3) == (0, 1, 2)
    assert candidate_layers(2, (0.33, 0.75), 3) == (0, 1)

    class Fit:
        def __init__(self, loss, auroc=1.0):
            self.heldout_loss, self.heldout_auroc = loss, auroc

    fits = {9: Fit(0.5), 10: Fit(0.1), 11: Fit(0.4), 12: Fit(0.1), 13: Fit(0.1), 14: Fit(0.2)}
    assert choose_window(fits, 3) == (12, 13, 14)  # lowest mean loss, not the single best layer
    assert choose_window(fits, 1) == (10,)  # ties go to the earlier window
    assert choose_window(fits, 10) == (9, 10, 11, 12, 13, 14)


def test_log_ratio_interval_is_a_geometric_mean_ratio():
    base = np.array([10.0, 20.0, 40.0, 5.0])
    iv = log_ratio_interval(2.0 * base, base)
    assert iv.mean == pytest.approx(2.0) and iv.low == pytest.approx(2.0) and iv.aggregate == "geometric mean ratio"
    noisy = log_ratio_interval(np.array([20.0, 10.0, np.nan, 5.0]), base)
    assert noisy.n == 3 and noisy.low < noisy.mean < noisy.high


def test_thirds_cut_generated_tokens_by_count(tiny):
    ids = tiny.encode(["one two three four five six seven eight nine"])[0]
    generation = ist.Generation("p", "", tuple(ids) + (tiny.tokenizer.eos_token_id,), (1,), True)
    parts = thirds(tiny, generation)
    n = len(ids)
    assert parts == [tiny.tokenizer.decode(p) for p in (ids[: n // 3], ids[n // 3 : 2 * n // 3], ids[2 * n // 3 :])]
    assert thirds(tiny, ist.Generation("p", "", tuple(ids[:2]), (1,), False)) == ["", "", ""]


def test_steered_activations_are_the_models_own_residuals_after_the_prompt(tiny):
    """Oracle: an unpadded run_with_cache of each transcript alone, at positions >= prompt end − 1."""
    prompts = ["The harbour at dawn", "A letter arrived for the keeper of the lighthouse"]
    outputs = ist.generate(tiny, prompts, max_new_tokens=4)
    transcripts = [list(g.prompt_ids) + list(g.token_ids) for g in outputs]
    _, ends = ist.generation.format_prompts(tiny, prompts, chat=None, system=None)
    rows = steered_activations(tiny, transcripts, ends, [1, 3], batch_size=2)
    names = [tiny.hook_name(layer) for layer in (1, 3)]
    expected = {1: [], 3: []}
    for ids, end in zip(transcripts, ends, strict=True):
        with torch.inference_mode():
            _, cache = tiny.bridge.run_with_cache(torch.tensor([ids], device=tiny.device), names_filter=names)
        for layer, name in zip((1, 3), names, strict=True):
            expected[layer].append(cache[name][0, end - 1 :].float().cpu())
    for layer in (1, 3):
        torch.testing.assert_close(rows[layer], torch.cat(expected[layer]), atol=1e-4, rtol=1e-4)
        assert rows[layer].shape[0] == sum(len(t) - e + 1 for t, e in zip(transcripts, ends, strict=True))


# ------------------------------------------------------------------------------ a whole run, tiny


TINY = {"max_passages": 16, "max_prompts": 4, "max_new_tokens": 6, "long_tokens": 9, "coefficients": (-3.0, 0.0, 3.0),
        "folds": 3}


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("svf")
    result = svf(tiny, quick=True, **TINY)
    return result, result.save(out)


def test_svf_writes_valid_json_figures_and_report(tiny_run):
    result, written = tiny_run
    payload = json.loads(written["json"].read_text())
    jsonschema.validate(payload, schema())
    assert [c["key"] for c in payload["claims"]] == ["control", "backfire", "long_form", "multi_attribute"]
    assert len(payload["cells"]) == 2 * (len(result.config.coefficients) - 1)
    for name in ("effect", "backfire", "context_dependence", "long_form", "multi_attribute"):
        assert written[name].stat().st_size > 5000
    report = written["report"].read_text()
    for claim in result.claims:
        assert f"**{claim.verdict}**" in report and claim.claim in report
    for phrase in ("Minimum detectable effects", "## Caveats", "Tan et al.", "Llama-2-7B-Chat", "## Context dependence",
                   "1 (by construction)"):
        assert phrase in report, phrase
    field = ist.SteeringField.load(written["field"], model=None)
    assert field.layers == result.field.layers
    assert ist.SteeringVector.load(written["vector"]).norms() == pytest.approx(result.vector.norms())
    frame = result.to_frame().set_index(["method", "coefficient", "metric"])
    for cell in result.cells:
        for metric in ("effect", "backfire", "perplexity_ratio"):
            row = frame.loc[(cell["method"], cell["coefficient"], metric)]
            assert (row["value"], row["low"], row["high"], row["n"]) == tuple(cell[metric][k] for k in ("mean", "low", "high", "n"))


def test_context_dependence_is_one_for_the_vector_and_measured_for_the_field(tiny, tiny_run):
    result, _ = tiny_run
    cd = result.context_dependence
    assert cd["layers"] == list(result.field.layers)
    assert cd["vector"] == [1.0] * len(cd["layers"])
    assert all(-1.0 <= value <= 1.0 for value in cd["field"])
    # Oracle: the same activations, recomputed, through fields.context_dependence.
    prompts = result.inputs
    outputs = ist.generate(tiny, prompts, max_new_tokens=result.config.max_new_tokens)
    transcripts = [list(g.prompt_ids) + list(g.token_ids) for g in outputs]
    _, ends = ist.generation.format_prompts(tiny, prompts, chat=None, system=None)
    rows = steered_activations(tiny, transcripts, ends, result.field.layers)
    expected = ist.context_dependence(result.field, rows)
    assert cd["field"] == pytest.approx([expected[layer] for layer in cd["layers"]], abs=1e-6)


def test_a_linear_field_has_context_dependence_one_and_the_shared_form_runs(tiny):
    """Oracle: the linear form's gradient is the same everywhere, so the measured context dependence
    is 1 (a steering vector in disguise); the shared concept-space form runs through the study too."""
    small = {**TINY, "max_prompts": 2, "long_tokens": 6}
    linear = svf(tiny, quick=True, form="linear", multi_attribute=False, **small)
    assert linear.context_dependence["field"] == pytest.approx([1.0] * len(linear.field.layers), abs=1e-6)
    assert linear.context_dependence["field_on_training_rows"] == pytest.approx([1.0] * len(linear.field.layers), abs=1e-6)
    shared = svf(tiny, quick=True, form="shared", multi_attribute=False, **small)
    assert shared.field.form == "shared" and all(-1 <= v <= 1 for v in shared.context_dependence["field"])


def test_vector_and_field_share_the_unit_and_the_layers(tiny_run):
    result, _ = tiny_run
    assert result.vector.layers == result.field.layers == tuple(result.layers["chosen"])
    for layer in result.field.layers:
        assert result.vector.norms()[layer] == pytest.approx(result.field.metadata.resid_norm[layer], rel=1e-5)
    assert result.layers["rule"].startswith("auto") and set(result.layers["chosen"]) <= set(result.layers["candidates"])


def test_grid_cells_equal_each_method_run_alone(tiny, tiny_run):
    """A batched grid row equals the same steering run alone on one prompt (greedy), at every
    coefficient: the primary cells, cut back from the long-form completions, too; the unsteered
    cell is plain generation; the long-form completions are the same steering run longer."""
    result, _ = tiny_run
    prompt = result.inputs[0]
    n, long = result.config.max_new_tokens, result.config.long_tokens
    plain = ist.generate(tiny, [prompt], max_new_tokens=n)[0].text
    assert result.unsteered["samples"][0] == plain
    for c in (x for x in result.config.coefficients if x):
        for method, term in (("vector", result.vector), ("field", result.field)):
            alone = ist.generate(tiny, [prompt], max_new_tokens=n, steering=ist.Steering(term, c, positions="after_prompt"))
            assert result.cell(method, c)["samples"][0] == alone[0].text
    c = result.config.primary_coefficient
    alone = ist.generate(tiny, [prompt], max_new_tokens=long, steering=ist.Steering(result.field, c, positions="after_prompt"))
    assert result.long_form["samples"]["field"][0] == alone[0].text


def test_truncated_is_the_shorter_greedy_completion(tiny):
    from interp_steer.studies.svf.evaluation import truncated

    prompts = ["The harbour at dawn", "Rain"]
    short, long = (ist.generate(tiny, prompts, max_new_tokens=n) for n in (4, 9))
    for s, g in zip(short, long, strict=True):
        assert truncated(tiny, g, 4) == s
        assert truncated(tiny, g, 20) is g


def test_effects_and_backfires_follow_the_per_prompt_scores(tiny_run):
    result, _ = tiny_run
    pp = {k: np.asarray(v, dtype=float) for k, v in result.per_prompt.items()}
    base, direction, floor = pp["unsteered_score"], result.concept["direction"], result.noise_floor["value"]
    nonzero = [c for c in result.config.coefficients if c]
    for method in ("vector", "field"):
        for k, c in enumerate(nonzero):
            cell = result.cell(method, c)
            change = (pp[f"{method}_score"][k] - base) * direction * np.sign(c)
            assert cell["effect"]["mean"] == pytest.approx(change.mean())
            assert cell["backfire"]["n_backfire"] == int((change < -floor).sum())
            assert cell["against_any"]["mean"] == pytest.approx(float((change < 0).mean()))
    control = result.claim("control")
    assert control.numbers["difference"]["n"] == len(result.inputs)
    assert control.verdict == control.numbers["verdict"] and "mde" in control.numbers


def test_each_claim_is_its_registered_rule_on_the_studys_numbers(tiny_run):
    """The claims module feeds each rule the per-prompt numbers the study measured and reports its
    decision unchanged (rule id, verdict, every number)."""
    from interp_steer.studies.rules import REGISTRY

    result, _ = tiny_run
    pp = {k: np.asarray(v, dtype=float) for k, v in result.per_prompt.items()}
    effects = primary_effects(result.config, pp, result.concept["direction"])
    reference = primary_reference(result.config, pp, result.concept["direction"])
    lf = {m: np.asarray(result.long_form["per_prompt"][m], dtype=float) for m in ("field", "vector")}
    ma = result.multi_attribute["per_prompt"]

    def pair(m, part):
        return np.stack([np.asarray(ma[f"{m}_{k}_{part}"], dtype=float) for k in "AB"], axis=-1)

    expected = {
        "control": REGISTRY["svf.control"].decide(field=effects["field"], vector=effects["vector"]),
        "backfire": REGISTRY["svf.backfire"].decide(field=effects["field"], vector=effects["vector"], reference=reference),
        "long_form": REGISTRY["svf.long_form"].decide(field=lf["field"], vector=lf["vector"]),
        "multi_attribute": REGISTRY["svf.multi_attribute"].decide(
            field_alone=pair("field", "alone"), field_together=pair("field", "together"),
            vector_alone=pair("vector", "alone"), vector_together=pair("vector", "together")),
    }
    for key, decision in expected.items():
        claim = result.claim(key)
        assert claim.numbers["rule"] == f"svf.{key}" and claim.verdict == decision.verdict, key
        assert claim.numbers["mde"] == decision.numbers["mde"] and decision.reason in claim.summary
    assert result.claim("backfire").numbers["floor"] == pytest.approx(result.noise_floor["value"])


def test_the_backfire_floor_comes_from_greedy_random_directions(tiny, tiny_run):
    """The control cells are greedy completions steered by a random direction as long as the vector at
    each layer (oracle: the same direction run alone through generate and scored), and the floor is the
    rule's control_floor of their oriented changes at the primary coefficient's size."""
    result, _ = tiny_run
    config, prompt = result.config, result.inputs[0]
    c = config.primary_coefficient
    pp = {k: np.asarray(v, dtype=float) for k, v in result.per_prompt.items()}
    assert pp["control_score"].shape == (1, len(result.inputs), config.floor_draws)  # one size |c|
    for k in range(config.floor_draws):
        direction = control_direction(result.vector, prompt, k, config.seed)
        for layer in result.vector.layers:
            assert float(direction[layer].norm()) == pytest.approx(float(result.vector[layer].norm()), rel=1e-5)
            assert abs(float(direction[layer] @ result.vector[layer])) < 0.5 * float(result.vector[layer].norm()) ** 2
        alone = ist.generate(tiny, [prompt], max_new_tokens=config.max_new_tokens,
                             steering=ist.Steering(direction, c, positions="after_prompt"))
        assert vader_valence([alone[0].text])[0] == pytest.approx(pp["control_score"][0, 0, k])
    reference = primary_reference(config, pp, result.concept["direction"])
    assert result.noise_floor["value"] == pytest.approx(float(control_floor(reference[None])[0]))
    assert result.noise_floor["draws"] == config.floor_draws and "greedy" in result.noise_floor["source"]
    assert control_direction(result.vector, prompt, 0, config.seed)[result.vector.layers[0]].tolist() != \
        control_direction(result.vector, prompt, 1, config.seed)[result.vector.layers[0]].tolist()


def test_multi_attribute_measures_alone_and_together(tiny_run):
    result, _ = tiny_run
    ma = result.multi_attribute
    assert ma["status"] == "measured" and ma["readout_layer"] in result.field.layers
    for m in ("vector", "field"):
        for k in ("A", "B"):
            entry = ma["methods"][m][k]
            assert {"alone", "together", "retention", "off_target"} <= set(entry)
            assert len(ma["per_prompt"][f"{m}_{k}_alone"]) == len(result.inputs)


def test_schema_rejects_broken_results(tiny_run):
    payload = json.loads(tiny_run[1]["json"].read_text())
    claim = payload["claims"][0]
    for broken in (
        {k: v for k, v in payload.items() if k != "claims"},
        {**payload, "claims": [{**claim, "verdict": "probably"}] + payload["claims"][1:]},
        {**payload, "claims": [{**claim, "numbers": {k: v for k, v in claim["numbers"].items() if k != "mde"}}]
         + payload["claims"][1:]},
        {**payload, "context_dependence": {**payload["context_dependence"], "vector": [0.9]}},
        {**payload, "cells": [{k: v for k, v in c.items() if k != "backfire"} for c in payload["cells"]]},
        {**payload, "mode": "chat"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema())


def test_skipping_multi_attribute_leaves_an_inconclusive_claim_with_the_reason(tiny):
    result = svf(tiny, quick=True, multi_attribute=False, **{**TINY, "max_prompts": 2, "long_tokens": 6})
    claim = result.claim("multi_attribute")
    assert claim.verdict == "inconclusive" and "multi_attribute=False" in claim.summary
    assert result.multi_attribute["status"] == "skipped"
    jsonschema.validate(json.loads(json.dumps(result.to_dict())), schema())


def test_pairs_mode_fits_on_whole_pairs(tiny):
    pairs = ist.load_builtin("moral_pairs")
    result = svf(tiny, pairs=pairs, multi_attribute=False, **{**TINY, "max_prompts": 2, "long_tokens": 6})
    assert result.mode == "pairs" and result.layers["paired"] is True
    assert result.field.metadata.settings["paired"] is True and result.data["pairs"]["n_used"] == 16
    assert result.concept["direction"] in (1, -1) and "auto" in result.concept["direction_source"]
    with pytest.raises(ValueError, match="give one concept"):
        svf(tiny, pairs=pairs, positive=["a b"] * 4, negative=["c d"] * 4)


# ---------------------------------------------------------------------------------------- A/B mode

QUESTIONS = [
    ABQuestion(f"Would you share the {thing}?\n\nChoices:\n(A) Yes\n(B) No", m, n)
    for thing, m, n in [("bread", "(A)", "(B)"), ("map", "(B)", "(A)"), ("umbrella", "(A)", "(B)"),
                        ("coat", "(B)", "(A)"), ("book", "(A)", "(B)"), ("lamp", "(B)", "(A)"),
                        ("seeds", "(A)", "(B)"), ("radio", "(B)", "(A)")]
]


def test_ab_mode_matches_ab_eval_and_reports_anti_steerable(tiny):
    from interp_steer.evaluation import ab_eval

    result = svf(tiny, questions=QUESTIONS, layers=(1,), coefficients=(-2.0, 0.0, 2.0), multi_attribute=False)
    assert result.mode == "ab" and result.data["questions"]["n_train"] + result.data["questions"]["n_heldout"] == 8
    held = [q for q in QUESTIONS if q.question in result.inputs]
    assert len(held) == 4
    # Oracle: evaluation.ab_eval with the study's own vector at the same (single) layer.
    sweep = ab_eval(tiny, held, result.vector, (-2.0, 0.0, 2.0), layers=[1])
    per = result.per_prompt
    np.testing.assert_allclose(per["unsteered_score"], sweep.values[0, 1], atol=1e-5)
    np.testing.assert_allclose(per["vector_score"][0], sweep.values[0, 0], atol=1e-5)
    np.testing.assert_allclose(per["vector_score"][1], sweep.values[0, 2], atol=1e-5)
    assert all(0.0 <= p <= 1.0 for row in per["field_score"] for p in row)
    assert {"vector", "field", "definition"} <= set(result.anti_steerable)
    assert result.claim("long_form").verdict == "inconclusive" and "A/B" in result.claim("long_form").summary
    # The backfire floor: random directions of the vector's length, read like every other cell (oracle:
    # ab_eval of the first held-out question with its own first direction); once a floor of 0, which
    # counted any move of a deterministic readout, however small.
    direction = control_direction(result.vector, held[0].question, 0, result.config.seed)
    control = ab_eval(tiny, held[:1], direction, (2.0,), layers=[1])
    np.testing.assert_allclose(per["control_score"][0][0][0], control.values[0, 0, 0], atol=1e-5)
    change = np.asarray(per["control_score"][0]) - np.asarray(per["unsteered_score"])[:, None]
    assert result.noise_floor["value"] == pytest.approx(float(control_floor(change[None])[0]))
    assert result.cell("field", 2.0)["backfire"]["floor"] == result.noise_floor["value"]
    jsonschema.validate(json.loads(json.dumps(result.to_dict())), schema())


def test_ab_mode_needs_enough_questions(tiny):
    with pytest.raises(ValueError, match="at least 4"):
        svf(tiny, questions=QUESTIONS[:3], multi_attribute=False)


# --------------------------------------------------------------------------------------------- CLI


def _write(path, texts):
    path.write_text("\n".join(texts) + "\n")
    return path


def test_svf_cli_on_files(tmp_path, capsys):
    pos = _write(tmp_path / "pos.txt", ist.load_builtin("persona_a")[:10])
    neg = _write(tmp_path / "neg.txt", ist.load_builtin("persona_b")[:10])
    prompts = _write(tmp_path / "prompts.txt", ist.load_builtin("prompts")[:3])
    out = tmp_path / "run"
    code = main(["svf", "--model", "tiny-random", "--quick", "--positive", str(pos), "--negative", str(neg),
                 "--prompts", str(prompts), "--coefficients", "-2,0,2", "--layers", "1,2", "--max-new-tokens", "4",
                 "--long-tokens", "6", "--no-multi-attribute", "--out", str(out)])
    assert code == 0
    payload = json.loads((out / "svf.json").read_text())
    jsonschema.validate(payload, schema())
    assert payload["layers"]["chosen"] == [1, 2] and payload["data"]["positive"]["source"] == str(pos)
    assert payload["data"]["prompts"]["n_used"] == 3 and payload["coefficients"]["primary"] == 2.0
    assert (out / "report.md").exists() and (out / "effect.png").exists()
    printed = capsys.readouterr().out
    for key in ("control:", "backfire:", "long_form:", "multi_attribute:", "context dependence"):
        assert key in printed


@pytest.mark.parametrize("argv, message", [
    (["--positive", "x.txt"], "--positive and --negative go together"),
    (["--coefficients", "0.1,0.2"], "both signs"),
    (["--layers", "top"], "--layers 'top'"),
])
def test_svf_cli_bad_arguments(argv, message, capsys, tmp_path):
    assert main(["svf", "--model", "tiny-random", "--quick", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_svf_cli_names_a_bad_file_and_line(tmp_path, capsys):
    bad = tmp_path / "pos.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "typo"}\n')
    neg = _write(tmp_path / "neg.txt", ist.load_builtin("persona_b")[:6])
    assert main(["svf", "--model", "tiny-random", "--quick", "--positive", str(bad), "--negative", str(neg),
                 "--out", str(tmp_path)]) == 2
    assert f"{bad}:2" in capsys.readouterr().err
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "Pick (A) or (B)", "answer_matching_behavior": "(C)",
                                     "answer_not_matching_behavior": "(B)"}) + "\n")
    assert main(["svf", "--model", "tiny-random", "--questions", str(questions), "--out", str(tmp_path)]) == 2
    assert f"{questions}:1" in capsys.readouterr().err


def test_plot_curves_draws_an_interval_a_rounding_error_beyond_its_mean():
    # A degenerate interval (every prompt's effect exactly 0) can sit 1e-17 past its mean; the
    # figure must still be drawn (matplotlib refuses negative error bars).
    from interp_steer.studies.svf.report import plot_curves

    ax = plot_curves([0.0, 0.1], {"field": ([0.0, 0.2], [1e-17, 0.1], [0.0, 0.3])})
    assert len(ax.lines) + len(ax.collections) > 0


def test_svf_interval_and_claim_frames_and_display(tiny_run):
    from conftest import rendered

    result, _ = tiny_run
    intervals = result.to_frame("intervals")
    data = result.to_dict()
    assert set(intervals["section"]) >= {"unsteered", "cells", "long_form", "claims"}
    thirds = intervals[(intervals["section"] == "long_form") & (intervals["group"] == "vector") & (intervals["metric"] == "effect")]
    assert list(thirds["item"]) == [0, 1, 2]
    assert list(thirds["value"]) == [iv["mean"] for iv in data["long_form"]["vector"]["effect"]]
    assert "per_prompt" not in set(intervals["section"])
    claims = result.to_frame("claims")
    assert list(claims["verdict"]) == [c.verdict for c in result.claims]
    page, line = rendered(result)
    assert all(c.verdict in page for c in result.claims) and "SvfResult(" in line


def test_a_saved_run_loads_back_with_its_field_and_vector(tiny_run, tmp_path):
    from test_result_load import assert_round_trip

    result, written = tiny_run
    loaded = assert_round_trip(result, written["json"].parent, ("cells", "intervals", "claims"), tmp_path)
    assert loaded.field.metadata.to_dict() == result.field.metadata.to_dict()
    for layer in result.vector.layers:
        torch.testing.assert_close(loaded.vector[layer], result.vector[layer])
