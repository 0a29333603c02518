"""Activation patching on steered runs, against identities, TransformerLens's own patching, and the
linear case where attribution patching is exact."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
import torch
from conftest import attached_hooks

import interp_steer as ist
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
    code = main(["patch", "--model", "tiny-random", "--max-prompts", "2", "--max-passages", "20", "--layer", "1",
                 "--out", str(out)])
    assert code == 0
    payload = json.loads((out / "patching.json").read_text())
    jsonschema.validate(payload, schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**payload, "config": {**payload["config"], "source": "C"}}, schema())
    assert payload["layer"] == 1 and len(payload["prompts"]) == 2
    resid = payload["effects"]["resid_layer"]["logit_diff"]["effect"]
    assert resid[0] == 0 and resid[2] == pytest.approx(1.0, abs=1e-3)
    for name in ("layer_position", "layer_head", "layer_component", "attribution"):
        assert (out / f"{name}.png").stat().st_size > 3000
    assert "Dominance patching" in (out / "report.md").read_text()
    assert main(["patch", "--model", "tiny-random", "--components", "resid,neurons", "--out", str(out)]) == 2
    assert "neurons" in capsys.readouterr().err


def test_attribution_method_patches_the_same_top_heads_for_every_prompt(tiny):
    from interp_steer.studies.patching import dominance_patching

    result = dominance_patching(tiny, max_prompts=2, max_passages=20, layer=1, method="attribution", top_k=3,
                                components=("resid", "heads"))
    heads = np.array(result.effects["heads"]["logit_diff"]["effect"], dtype=float)
    assert heads.shape == (tiny.n_layers, tiny.bridge.cfg.n_heads)
    assert np.isfinite(heads).sum() == 3  # the others were not patched: NaN, not a made-up 0
    assert all(row["component"] != "heads" or np.isfinite(heads[tuple(row["index"])]) for row in result.top)
