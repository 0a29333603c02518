"""Activation patching on steered runs, against identities, TransformerLens's own patching, and the
linear case where attribution patching is exact."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
import torch

import interp_steer as ist
from conftest import attached_hooks
from interp_steer.cli import main
from interp_steer.patching import (
    METRICS,
    Patch,
    PatchMetrics,
    attribution_patch,
    exact_patch,
    normalised_effect,
    prepare,
)
from interp_steer.studies.mixing import collision_vector
from interp_steer.studies.patching import schema
from interp_steer.studies.personas import build_personas

PROMPT = "The harbour at dawn, and the ferry late again"


@pytest.fixture(scope="module")
def setup(tiny):
    a, b, base = (ist.load_builtin(n)[:24] for n in ("persona_a", "persona_b", "baseline"))
    personas = build_personas(tiny, a, b, base, folds=3, layer=1)
    metrics = PatchMetrics.build(tiny, a, b, probe_layer=tiny.n_layers - 1)
    layer = personas.layer
    # One residual norm: far larger than the default model's perturbation (about 0.07 of the norm
    # between pure A and the mix), still inside the range where attribution's linearisation is usable
    # (at 3 norms the logit difference bends and attribution anti-correlates with exact patching).
    source = (personas.v_a.select([layer]) * 1.0, 1.0)
    target = (collision_vector(personas.v_a, personas.v_b, 0.5, 1.0).select([layer]), 1.0)
    pair = prepare(tiny, PROMPT, source, target, metrics)
    return personas, metrics, source, target, pair


def test_the_source_and_target_runs_differ(setup):
    *_, pair = setup
    for metric in METRICS:
        assert pair.source_metrics[metric] != pair.target_metrics[metric]


def test_patching_a_whole_residual_after_the_steering_layer_gives_the_source(tiny, setup):
    personas, metrics, _, target, pair = setup
    layers = range(tiny.n_layers)
    values = exact_patch(tiny, pair, target, metrics, [Patch("resid", at) for at in layers], skip_identical=False)
    for metric in METRICS:
        # Identical runs up to there: the metric itself is unchanged to float32 rounding (a normalised
        # effect would divide that rounding by a span that can be small).
        np.testing.assert_allclose(values[metric][: personas.layer + 1], pair.target_metrics[metric], rtol=1e-5, atol=1e-5)
        assert values[metric][personas.layer + 1] == pytest.approx(pair.source_metrics[metric], rel=1e-5, abs=1e-5)  # the source, restored


def test_patching_nothing_or_a_run_into_itself_changes_nothing(tiny, setup):
    _, metrics, source, target, pair = setup
    patches = [Patch("attn", 2), Patch("mlp", 3), Patch("heads", 2, head=1), Patch("resid", 3, position=-1)]
    same = prepare(tiny, PROMPT, target, target, metrics)
    values = exact_patch(tiny, same, target, metrics, patches, skip_identical=False)
    for metric in METRICS:
        np.testing.assert_allclose(values[metric], same.target_metrics[metric], rtol=1e-5, atol=1e-5)
    # a patch of a slice that is the same in both runs (a position before the steered tokens)
    early = exact_patch(tiny, pair, target, metrics, [Patch("resid", 3, position=0)], skip_identical=False)
    assert early["logit_diff"][0] == pytest.approx(pair.target_metrics["logit_diff"], abs=1e-5)


def test_batched_patching_equals_transformer_lens_patching(tiny, setup):
    # TransformerLens's generic patcher runs one forward per patch; ours many per forward. Under the
    # target's steering (which stays active inside TL's run_with_hooks) both must agree.
    from transformer_lens import patching as tl_patching

    personas, metrics, source, target, pair = setup
    width = pair.tokens.shape[1]
    ours = exact_patch(tiny, pair, target, metrics,
                       [Patch("resid", at, position=p) for at in range(tiny.n_layers) for p in range(width)],
                       skip_identical=False)["logit_diff"].reshape(tiny.n_layers, width)
    prompt_end = [pair.prompt_end]
    with ist.steer(tiny, source[0], positions="after_prompt", prompt_end=prompt_end):
        _, clean = tiny.bridge.run_with_cache(pair.tokens)

    def logit_diff(logits):
        final = logits[:, -1].float()
        return (final[:, list(metrics.tokens_a)].mean(-1) - final[:, list(metrics.tokens_b)].mean(-1)).squeeze(0)

    with ist.steer(tiny, target[0], positions="after_prompt", prompt_end=prompt_end):
        theirs = tl_patching.get_act_patch_resid_pre(tiny.bridge, pair.tokens, clean, logit_diff)
    torch.testing.assert_close(torch.as_tensor(ours, dtype=torch.float32), theirs.float().cpu(), rtol=1e-4, atol=1e-4)


def test_attribution_is_exact_where_the_metric_is_linear(tiny, setup):
    # The probe reads the last layer's residual, which is linear in that layer's MLP output.
    _, metrics, _, target, pair = setup
    last = tiny.n_layers - 1
    estimate = attribution_patch(tiny, pair, target, metrics, ["mlp", "resid", "heads"], metric="probe")
    exact = exact_patch(tiny, pair, target, metrics, [Patch("mlp", last)])["probe"][0] - pair.target_metrics["probe"]
    assert estimate["mlp"][last] == pytest.approx(exact, rel=1e-3, abs=1e-4)
    assert estimate["resid"].shape == (tiny.n_layers, pair.tokens.shape[1])
    assert estimate["heads"].shape == (tiny.n_layers, tiny.bridge.cfg.n_heads)


def test_attribution_tracks_exact_residual_patching(tiny, setup):
    _, metrics, _, target, pair = setup
    width = pair.tokens.shape[1]
    exact = exact_patch(tiny, pair, target, metrics,
                        [Patch("resid", at, position=p) for at in range(tiny.n_layers) for p in range(width)])
    change = exact["logit_diff"] - pair.target_metrics["logit_diff"]
    estimate = attribution_patch(tiny, pair, target, metrics, ["resid"])["resid"].ravel()
    moving = (change != 0) | (estimate != 0)
    assert np.corrcoef(change[moving], estimate[moving])[0, 1] > 0.7


def test_direction_patching_along_the_whole_difference_is_the_full_patch(tiny, setup):
    # Right after the steering layer the two runs differ only along (source delta − target delta), so
    # patching the component along that one direction is the full patch.
    personas, metrics, source, target, pair = setup
    at = personas.layer + 1
    difference = source[0][personas.layer] - target[0][personas.layer]
    along = exact_patch(tiny, pair, target, metrics, [Patch("resid", at, direction=difference / difference.norm())])
    whole = exact_patch(tiny, pair, target, metrics, [Patch("resid", at)])
    assert along["logit_diff"][0] == pytest.approx(whole["logit_diff"][0], abs=1e-4)


def test_hooks_are_removed_even_when_a_patch_fails(tiny, setup):
    _, metrics, _, target, pair = setup
    before = attached_hooks(tiny)
    flags = [p.requires_grad for p in tiny.hf_model.parameters()]
    with pytest.raises(IndexError):
        exact_patch(tiny, pair, target, metrics, [Patch("heads", 2, head=99)])
    assert attached_hooks(tiny) == before
    attribution_patch(tiny, pair, target, metrics, ["resid"])
    assert attached_hooks(tiny) == before
    assert [p.requires_grad for p in tiny.hf_model.parameters()] == flags  # attribution froze them only inside


@pytest.mark.parametrize("patch, message", [
    (Patch("neurons", 1), "unknown component"),
    (Patch("resid", 99), "outside 0.."),
    (Patch("resid", 1, position=500), "outside a"),
])
def test_bad_patches_are_refused(tiny, setup, patch, message):
    _, metrics, _, target, pair = setup
    with pytest.raises(ValueError, match=message):
        exact_patch(tiny, pair, target, metrics, [patch])


def test_normalised_effect_is_a_ratio_of_means():
    patched = np.array([[1.0, 0.5], [3.0, 1.0]])
    effect, low, high = normalised_effect(patched, target=np.array([0.0, 1.0]), source=np.array([2.0, 3.0]))
    np.testing.assert_allclose(effect, [(1 + 2) / 4, (0.5 + 0) / 4])
    assert (low <= effect).all() and (effect <= high).all()
    with pytest.raises(ValueError, match="prompts"):
        normalised_effect(patched, np.zeros(3), np.zeros(3))


def test_patch_cli_writes_json_figures_and_report(tmp_path, capsys):
    out = tmp_path / "patch"
    code = main(["patch", "--model", "tiny-random", "--max-prompts", "4", "--max-passages", "20", "--layer", "1",
                 "--dla", "--attention-heads", "2", "--out", str(out)])
    assert code == 0
    payload = json.loads((out / "patching.json").read_text())
    # The follow-ups ran on the study's own runs: DLA's change of the logit difference is the
    # source minus target metric patching measured, prompt by prompt.
    dla = json.loads((out / "dla" / "dla.json").read_text())
    source, target = payload["runs"]["source"]["logit_diff"], payload["runs"]["target"]["logit_diff"]
    for entry, s, t in zip(dla["prompts"], source, target, strict=True):
        assert entry["difference"]["total"] == pytest.approx(s - t, rel=1e-4, abs=1e-5)
        assert entry["difference"]["sum"] == pytest.approx(s - t, rel=1e-4, abs=1e-5)
    assert payload["followups"]["dla"]["metric"]["tokens_a"] == payload["metrics"]["tokens_a"]
    heads = np.abs(np.array(payload["effects"]["heads"]["logit_diff"]["effect"], dtype=float))
    ranked = [list(divmod(int(i), heads.shape[1])) for i in np.argsort(-np.nan_to_num(heads, nan=-1).ravel(),
                                                                      kind="stable")[:2]]
    assert payload["followups"]["attention"]["heads"] == ranked
    for layer, head in ranked:
        assert (out / "attention" / f"attention_L{layer}H{head}.png").stat().st_size > 3000
    assert (out / "dla" / "dla_components.png").exists()
    report = (out / "report.md").read_text()
    assert "## Direct logit attribution" in report and "## Attention of the heads" in report
    jsonschema.validate(payload, schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**payload, "config": {**payload["config"], "source": "C"}}, schema())
    assert payload["layer"] == 1 and len(payload["prompts"]) == 4
    resid = payload["effects"]["resid_layer"]["logit_diff"]["effect"]
    assert resid[0] == 0 and resid[2] == pytest.approx(1.0, abs=1e-3)
    for name in ("layer_position", "layer_head", "layer_component", "attribution"):
        assert (out / f"{name}.png").stat().st_size > 3000
    assert "Dominance patching" in (out / "report.md").read_text()
    assert main(["patch", "--model", "tiny-random", "--components", "resid,neurons", "--out", str(out)]) == 2
    assert "neurons" in capsys.readouterr().err


def test_attribution_method_patches_the_heads_each_half_chose_and_findings_use_only_those(tiny):
    from interp_steer.studies.patching import dominance_patching

    result = dominance_patching(tiny, max_prompts=4, max_passages=20, layer=1, method="attribution", top_k=3,
                                components=("resid", "heads"))
    heads = np.array(result.effects["heads"]["logit_diff"]["effect"], dtype=float)
    assert heads.shape == (tiny.n_layers, tiny.bridge.cfg.n_heads)
    # each half's top 3 by attribution, the same heads for every prompt; the others were not
    # patched: NaN, not a made-up 0
    assert 3 <= np.isfinite(heads).sum() <= 6
    for fold in result.findings["folds"]:
        assert all(row["component"] == "heads" and np.isfinite(heads[tuple(row["index"])]) for row in fold["components"])


def test_attribution_ranking_uses_only_its_own_prompts():
    from interp_steer.studies.patching.study import attribution_ranking

    rng = np.random.default_rng(0)
    estimates, span = rng.normal(size=(6, 4, 3)), rng.uniform(0.5, 1.5, size=6)
    mine = [0, 2, 5]
    chosen = attribution_ranking(estimates, span, mine, k=4)
    assert len(chosen) == 4
    others = estimates.copy()
    others[[1, 3, 4]] = 100 * rng.normal(size=(3, 4, 3))  # the other prompts, whatever they say
    assert attribution_ranking(others, span, mine, k=4) == chosen
    planted = estimates.copy()
    planted[mine, 3, 1] = 50.0  # a head that is large on these prompts is chosen
    assert 3 * 3 + 1 in attribution_ranking(planted, span, mine, k=1)


# ---------------------------------------------------------------- sanity checks and held-out findings


@pytest.fixture(scope="module")
def study(tiny):
    from interp_steer.studies.patching import dominance_patching

    # λ = 1 (one residual norm): on the tiny random model the runs then differ clearly
    return dominance_patching(tiny, max_prompts=4, max_passages=20, layer=1, lam=1.0)


def test_identities_are_sanity_checks_that_hold_not_findings(study, tmp_path):
    checks = {c["name"]: c for c in study.sanity_checks}
    after = checks["whole residual after the steering layer"]
    assert after["layers"] == list(range(study.layer + 1, study.model["n_layers"]))
    for name in ("whole residual at or before the steering layer", "whole residual after the steering layer",
                 "v_A − v_B part right after the steering layer"):
        check = checks[name]
        assert check["kind"] == "identity" and check["why"]
        for metric in METRICS:
            assert check["measured"][metric]["effect"] == pytest.approx(check["expected"], abs=1e-3), (name, metric)
        assert check["holds"]
    assert after["expected"] == 1.0 and checks["v_A − v_B part right after the steering layer"]["expected"] == 1.0
    # v_A and v_B have the same norm at the steering layer, so the share of their difference along
    # either is (1 − cos) / 2
    for name in ("v_A-only part right after the steering layer", "v_B-only part right after the steering layer"):
        check = checks[name]
        assert check["kind"] == "prediction"
        assert check["expected"] == pytest.approx((1 - check["cosine_ab"]) / 2, abs=1e-6)
        m = check["measured"]["logit_diff"]
        assert m["holds"] == bool(m["low"] <= check["expected"] <= m["high"])
    # no identity is offered as a finding
    for fold in study.findings["folds"]:
        assert fold["components"] and {row["component"] for row in fold["components"]} <= {"attn", "mlp", "heads"}
    report = study.save(tmp_path, figures=False)["report"].read_text()
    findings, sanity = report.index("## Findings"), report.index("## Sanity checks")
    for name in checks:
        assert report.index(name) > sanity
        assert name not in report[findings:sanity]


def test_findings_are_chosen_and_reported_on_disjoint_seeded_halves(study):
    halves = study.findings["halves"]
    n = len(study.prompts)
    assert not set(halves[0]) & set(halves[1]) and sorted(halves[0] + halves[1]) == list(range(n))
    assert min(map(len, halves)) >= 2
    choose_report = [(fold["choose_on"], fold["report_on"]) for fold in study.findings["folds"]]
    assert choose_report == [(0, 1), (1, 0)]  # both ways round
    from interp_steer.studies.patching.selection import split_halves

    assert split_halves(n, study.config.seed) == tuple(halves)  # reproducible from the seed
    assert {tuple(split_halves(16, seed)[0]) for seed in range(5)} != {tuple(split_halves(16, 0)[0])}
    for row in (r for fold in study.findings["folds"] for r in fold["components"]):
        assert (not row["holds_up"]) or (row["family_low"] > 0 or row["family_high"] < 0)
    by_fold = [{(r["component"], tuple(r["index"])): r for r in fold["components"]} for fold in study.findings["folds"]]
    both = study.findings["chosen_by_both"]
    assert {(c["component"], tuple(c["index"])) for c in both} == by_fold[0].keys() & by_fold[1].keys()
    for c in both:
        key = (c["component"], tuple(c["index"]))
        assert c["effects"] == [by_fold[0][key]["effect"], by_fold[1][key]["effect"]]


def test_selection_never_sees_the_reported_values_and_the_report_never_sees_the_chosen_ones():
    from interp_steer.studies.patching.selection import select_and_report

    rng = np.random.default_rng(1)
    target = rng.normal(size=10)
    source = target + 1 + 0.3 * rng.normal(size=10)
    patched = {"mlp_layer": target[:, None] + rng.normal(size=(10, 12)),
               "heads": target[:, None, None] + rng.normal(size=(10, 4, 3))}
    choose, report = [0, 3, 4, 7, 8], [1, 2, 5, 6, 9]
    rows = select_and_report(patched, target, source, choose, report, k=5)
    # other values on the reporting half: the same components are chosen
    moved = {name: values.copy() for name, values in patched.items()}
    for values in moved.values():
        values[report] += 10 * rng.normal(size=values[report].shape)
    again = select_and_report(moved, target, source, choose, report, k=5)
    assert [(r["component"], r["index"]) for r in again] == [(r["component"], r["index"]) for r in rows]
    # the choosing half scaled (the ranking unchanged): the same effects and intervals are reported
    scaled = {name: values.copy() for name, values in patched.items()}
    for values in scaled.values():
        values[choose] = target[choose].reshape((-1,) + (1,) * (values.ndim - 1)) + 3 * (
            values[choose] - target[choose].reshape((-1,) + (1,) * (values.ndim - 1)))
    same = select_and_report(scaled, target, source, choose, report, k=5)
    for a, b in zip(rows, same, strict=True):
        assert (a["component"], a["index"]) == (b["component"], b["index"])
        assert (a["effect"], a["low"], a["high"]) == pytest.approx((b["effect"], b["low"], b["high"]))
    with pytest.raises(ValueError, match="overlap"):
        select_and_report(patched, target, source, [0, 1, 2], [2, 3, 4], k=3)


def test_held_out_effects_of_pure_noise_components_are_centred_at_zero_unlike_same_prompt_ones():
    """Simulation with a known truth: 60 components that do nothing (their patched metric is the
    target's plus noise), 16 prompts whose runs clearly differ. The top 8 chosen on one half,
    sign-aligned with the choice: reported on the same half they look large (the winner's curse);
    reported on the other half they are centred at 0, their 95 % intervals cover 0, and a fold
    calls anything "holds up" in at most about 5 % of runs (Bonferroni over the 8)."""
    from interp_steer.studies.patching.selection import select_and_report, split_halves

    rng = np.random.default_rng(2)
    runs, n, cells, k = 600, 16, 60, 8
    same, held, covered, any_holds = [], [], [], []
    for r in range(runs):
        target = rng.normal(size=n)
        source = target + 1 + 0.5 * rng.normal(size=n)
        patched = {"mlp_layer": target[:, None] + rng.normal(size=(n, cells))}
        rows = select_and_report(patched, target, source, *split_halves(n, r), k=k)
        sign = np.sign([row["selection_effect"] for row in rows])
        same += list(sign * [row["selection_effect"] for row in rows])
        held += list(sign * [row["effect"] for row in rows])
        covered += [row["low"] <= 0 <= row["high"] for row in rows]  # an unbounded interval counts as a miss
        any_holds.append(any(row["holds_up"] for row in rows))
    same, held = np.array(same), np.array(held)
    assert same.mean() > 0.3  # chosen and reported on the same prompts: biased away from 0
    assert abs(held.mean()) < 4 * held.std() / np.sqrt(held.size)  # held out: centred at 0
    assert np.mean(covered) >= 0.93
    assert np.mean(any_holds) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / runs)


def test_patching_json_validates_against_its_schema(study, tmp_path):
    payload = json.loads(study.save(tmp_path, figures=False)["json"].read_text())
    jsonschema.validate(payload, schema())
    assert payload["findings"]["halves"] == study.findings["halves"]
    assert payload["config"]["max_prompts"] == 4
    broken = [
        {k: v for k, v in payload.items() if k != "sanity_checks"},
        {**payload, "findings": {**payload["findings"], "halves": [payload["findings"]["halves"][0]]}},
        {**payload, "findings": {**payload["findings"], "folds": [
            {**fold, "components": [{**row, "component": "resid"} for row in fold["components"]]}
            for fold in payload["findings"]["folds"]]}},
        {**payload, "sanity_checks": [{**c, "kind": "finding"} for c in payload["sanity_checks"]]},
        {**payload, "config": {**payload["config"], "max_prompts": 2}},
    ]
    for bad in broken:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema())


def test_the_default_config_has_enough_prompts_to_split():
    from interp_steer.studies.patching import PatchingConfig

    assert PatchingConfig().max_prompts >= 16
    with pytest.raises(ValueError, match="at least 2 prompts|>= 4"):
        PatchingConfig(max_prompts=3)
    from interp_steer.studies.patching.selection import split_halves

    with pytest.raises(ValueError, match="at least 4 prompts"):
        split_halves(3, 0)


def test_tidy_effects_frame_and_display(study):
    from conftest import as_row, interval_rows, rendered

    frame = study.to_frame()
    n = len(study.prompts)
    for sweep, by_metric in study.effects.items():
        arrays = by_metric["logit_diff"]
        effect = np.asarray(arrays["effect"], dtype=float)
        assert (frame[(frame["sweep"] == sweep) & (frame["metric"] == "logit_diff")].shape[0]) == effect.size
    heads = study.effects["heads"]["logit_diff"]
    got = interval_rows(frame, sweep="heads", metric="logit_diff", layer=1, head=0)
    assert got == [as_row(heads["effect"][1][0], heads["low"][1][0], heads["high"][1][0], n)]
    position = study.effects["resid_position"]["logit_diff"]
    last = interval_rows(frame, sweep="resid_position", metric="logit_diff", layer=2, position_from_end=-1)
    assert last[0][0] == position["effect"][2][-1]
    direction = frame[frame["sweep"] == "direction_contrast"]
    assert direction["layer"].min() == 1  # its axis counts layers from 1
    findings = study.to_frame("findings")
    components = [c for fold in study.findings["folds"] for c in fold["components"]]
    assert len(findings) == len(components) and list(findings["holds_up"]) == [c["holds_up"] for c in components]
    page, line = rendered(study)
    assert "held-out effect" in page and "<img" in page and f"layer={study.layer}" in line


def test_a_saved_run_loads_back(study, tmp_path):
    from test_result_load import assert_round_trip

    assert_round_trip(study, tmp_path / "run", ("effects", "findings"), tmp_path / "again")
