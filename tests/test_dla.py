"""Direct logit attribution (``interp_steer.dla``, ``interp-steer dla``). Oracles: contributions plus the
constant sum to the model's own logit difference (the remainder is 0 up to rounding, and on Gemma 2
equals what its soft-capping takes off, computed here from the uncapped logits); the heads add up to
their attention output on every norm layout; the steering delta's contribution equals the vector read
by hand through the final norm's gain and the unembedding; components before the steered layer have
no direct share; a zero coefficient changes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import interp_steer as ist
from interp_steer.cli import main
from interp_steer.directions import SteeringVector, VectorMetadata
from interp_steer.dla import direct_logit_attribution
from interp_steer.generation import format_prompts

PROMPTS = ["Tell me about the harbour.", "Describe a rainy market at dawn.", "What is a lighthouse for?"]
FAMILIES = ["smollm2", "gemma2", "gpt2", "olmo2", "phi3"]


@pytest.fixture(scope="module", params=FAMILIES)
def model(request) -> ist.Model:
    return ist.load_model(f"tiny-random:{request.param}")


def vector(model, layer: int = 1, scale: float = 4.0) -> SteeringVector:
    gen = torch.Generator().manual_seed(3)
    return SteeringVector({layer: scale * torch.randn(model.d_model, generator=gen)},
                          VectorMetadata(model=model.name, d_model=model.d_model))


def attribution(model, coefficient: float = 1.0, **kwargs):
    steering = ist.Steering(vector(model), coefficient, positions="after_prompt")
    return direct_logit_attribution(model, PROMPTS, steering, tokens_a=[70, 71], tokens_b=[90], **kwargs)


def uncapped_metric(model, prompt: str, steering: ist.Steering | None) -> float:
    """The metric from ``ln_final``'s output through W_U and b_U, before any soft-capping."""
    text, lengths = format_prompts(model, [prompt], chat=None, system=None)
    ids = torch.tensor([model.encode(text)[0]])
    seen = {}

    def keep(act, hook):
        seen["out"] = act[0, -1].detach().clone()

    scope = ist.steer(model, steering.vector, steering.coefficient, positions=steering.positions,
                      prompt_end=lengths) if steering else torch.no_grad()
    with torch.no_grad(), scope, model.bridge.hooks(fwd_hooks=[("ln_final.hook_out", keep)]):
        model.hf_model(input_ids=ids)
        logits = seen["out"] @ model.bridge.W_U + model.bridge.b_U
    return float((logits[70] + logits[71]) / 2 - logits[90])


def test_contributions_sum_to_the_models_logit_difference(model):
    result = attribution(model)
    capped = model.hf_model.config.to_dict().get("final_logit_softcapping")
    for p, entry in enumerate(result.prompts):
        for run, steering in (("reference", None), ("steered", ist.Steering(vector(model), 1.0, positions="after_prompt"))):
            record = entry[run]
            linear = record["constant"] + float(np.sum(record["values"]))
            assert linear + record["remainder"] == pytest.approx(record["actual"], abs=1e-9)
            # The linear readout is the uncapped metric; the remainder is exactly what capping changes.
            assert linear == pytest.approx(uncapped_metric(model, PROMPTS[p], steering), rel=1e-4, abs=1e-5)
            if not capped:
                assert abs(record["remainder"]) < 1e-5
            assert record["unexplained_norm"] < 1e-4
        diff = entry["difference"]
        assert diff["sum"] + diff["remainder"] == pytest.approx(diff["total"], rel=1e-6, abs=1e-9)
        np.testing.assert_allclose(diff["value"], diff["direct"] + diff["rescale"], atol=1e-12)


def test_heads_add_up_to_their_attention_output_on_every_norm_layout(model):
    result = attribution(model)
    assert result.has_heads, result.heads_note
    attn = [i for i, c in enumerate(result.components) if c["kind"] == "attn"]
    for entry in result.prompts:
        for run in ("reference", "steered"):
            heads = np.asarray(entry[run]["heads"])
            assert heads.shape == (model.n_layers, model.bridge.cfg.n_heads)
            np.testing.assert_allclose(heads.sum(1) + entry[run]["head_bias"], entry[run]["values"][attn], atol=2e-5)


def test_steering_delta_is_the_vector_read_through_the_norm_gain_and_unembedding():
    model = ist.load_model("tiny-random:smollm2")
    result = attribution(model)
    (index,) = [i for i, c in enumerate(result.components) if c["kind"] == "steering"]
    assert result.components[index] == {"kind": "steering", "layer": 1, "point": "post"}
    gain = model.hf_model.model.norm.weight.detach().double()
    w_u = model.hf_model.lm_head.weight.detach().double()  # [vocab, d]
    readout = (w_u[70] + w_u[71]) / 2 - w_u[90]
    v = vector(model).directions[1].double()
    for entry in result.prompts:
        by_hand = float((v * gain) @ readout) / entry["steered"]["scale"]
        assert entry["steered"]["values"][index] == pytest.approx(by_hand, rel=1e-5)
        assert entry["reference"]["values"][index] == 0


def test_components_before_the_steered_layer_have_no_direct_share(model):
    result = attribution(model)
    early = [i for i, c in enumerate(result.components) if c["kind"] == "embed" or
             (c["kind"] in ("attn", "mlp") and c["layer"] <= 1)]
    later = [i for i, c in enumerate(result.components) if c["kind"] in ("attn", "mlp") and c["layer"] >= 2]
    for entry in result.prompts:
        diff = entry["difference"]
        scale = np.abs(entry["reference"]["values"]).max()
        assert np.abs(diff["direct"][early]).max() < 1e-5 * scale
        assert np.abs(diff["direct"][later]).max() > 1e-4 * scale  # the steering reaches later layers
        if entry["steered"]["scale"] != entry["reference"]["scale"]:
            assert np.abs(diff["rescale"][early]).max() > 0


def test_zero_coefficient_changes_nothing_and_tables_hold_the_numbers(tmp_path):
    model = ist.load_model("tiny-random")
    result = attribution(model, coefficient=0.0)
    for entry in result.prompts:
        assert entry["difference"]["total"] == 0
        np.testing.assert_array_equal(entry["difference"]["value"], 0)
    result = attribution(model)
    frame = result.to_frame()
    first = frame[(frame.prompt == 0) & (frame.run == "steered") & (frame.part == "value") & (frame.component != "head")]
    np.testing.assert_allclose(first.value.to_numpy(), result.prompts[0]["steered"]["values"])
    assert str(frame["layer"].dtype) == "Int64" and str(frame["head"].dtype) == "Int64"  # gaps, not floats
    heads = frame[(frame.prompt == 1) & (frame.run == "difference") & (frame.component == "head")]
    assert len(heads) == model.n_layers * model.bridge.cfg.n_heads
    summary = result.summary()
    values = np.array([e["difference"]["value"] for e in result.prompts])
    np.testing.assert_allclose([c["value"]["mean"] for c in summary["components"]], values.mean(0))
    top = result.top(5)
    assert len(top) == 5 and abs(top[0]["mean"]) >= abs(top[-1]["mean"])
    written = result.save(tmp_path)
    saved = json.loads(written["json"].read_text())
    assert saved["summary"]["n_prompts"] == len(PROMPTS) and saved["metric"]["token_ids_a"] == [70, 71]
    assert written["components"].stat().st_size > 0 and written["heads"].stat().st_size > 0
    from conftest import rendered

    page, line = rendered(result)
    assert "Direct logit attribution" in page and top[0]["component"] in page and "DlaResult(" in line


def test_bad_settings_are_refused():
    model = ist.load_model("tiny-random")
    steering = ist.Steering(vector(model), 1.0, positions="after_prompt")
    with pytest.raises(ValueError, match="in both"):
        direct_logit_attribution(model, PROMPTS, steering, tokens_a=[5, 6], tokens_b=[6])
    with pytest.raises(ValueError, match="tokens_a is empty"):
        direct_logit_attribution(model, PROMPTS, steering, tokens_a=[])
    with pytest.raises(ValueError, match="one token each"):
        direct_logit_attribution(model, PROMPTS, steering, tokens_a=["a whole phrase of words"])
    with pytest.raises(ValueError, match="outside"):
        direct_logit_attribution(model, PROMPTS, steering, tokens_a=[10**7])
    with pytest.raises(TypeError, match="Steering"):
        direct_logit_attribution(model, PROMPTS, vector(model), tokens_a=[5])
    with pytest.raises(ValueError, match="non-empty"):
        direct_logit_attribution(model, [" "], steering, tokens_a=[5])


def test_dla_command_writes_json_and_figures(tmp_path, capsys):
    model = ist.load_model("tiny-random")
    path = vector(model).save(tmp_path / "v.safetensors")
    word = model.tokenizer.decode([70])
    assert main(["dla", "--model", "tiny-random", "--vector", str(path), "--coefficient", "2", "--prompt", PROMPTS[0],
                 "--tokens-a", word, "--reference-coefficient", "1", "--top", "4", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "largest shares" in printed and printed.count("\n  ") == 4
    saved = json.loads((tmp_path / "out" / "dla.json").read_text())
    assert {"kind": "steering", "layer": 1, "point": "post"} in saved["components"]
    assert saved["runs"]["reference"]["coefficient"] == 1.0 and saved["runs"]["steered"]["coefficient"] == 2.0
    assert (tmp_path / "out" / "dla_components.png").exists()


def test_default_model_contributions_sum_within_a_thousandth(smol):
    words = [" hope", " bright", " dark", " cold"]
    gen = torch.Generator().manual_seed(0)
    v = SteeringVector({12: 8 * torch.randn(smol.d_model, generator=gen)},
                       VectorMetadata(model=smol.name, d_model=smol.d_model))
    result = direct_logit_attribution(smol, PROMPTS[:2], ist.Steering(v, 1.0, positions="after_prompt"),
                                      tokens_a=words[:2], tokens_b=words[2:])
    assert result.has_heads
    for entry in result.prompts:
        diff = entry["difference"]
        assert abs(diff["sum"] - diff["total"]) <= 1e-3 * abs(diff["total"])


def test_a_field_and_a_mix_are_attributed_like_a_vector(tiny):
    """A field's update depends on the activation it meets; its delta is still read at its hook, and
    the shares still add up. A mix of two vectors is one steering delta at each of their layers."""
    texts = ist.load_builtin("persona_a")[:12], ist.load_builtin("persona_b")[:12]
    field = ist.fit_field(tiny, *texts, layers=[2], form="linear", seed=0, progress=False)
    for steering in (ist.Steering(field, 4.0, positions="after_prompt"),
                     ist.Steering(ist.mix(vector(tiny), vector(tiny, layer=1, scale=-2.0), 0.3), 1.0, positions="all")):
        result = direct_logit_attribution(tiny, PROMPTS[:2], steering, tokens_a=[70], tokens_b=[90])
        steered = [c for c in result.components if c["kind"] == "steering"]
        assert len(steered) == 1
        for entry in result.prompts:
            diff = entry["difference"]
            assert diff["sum"] == pytest.approx(diff["total"], rel=1e-5, abs=1e-7)
            assert entry["steered"]["values"][result.components.index(steered[0])] != 0


def test_a_steering_at_resid_mid_acts_through_the_mlp_and_has_no_direct_share(tiny):
    """The bridge's resid_mid hook is the MLP norm's input: what a steering adds there reaches the
    residual stream only through the MLP, so the MLP's write is exactly its own output (hook_mlp_out)."""
    gen = torch.Generator().manual_seed(1)
    v = SteeringVector({1: 4 * torch.randn(tiny.d_model, generator=gen)},
                       VectorMetadata(model=tiny.name, d_model=tiny.d_model, hook_point="resid_mid"))
    steering = ist.Steering(v, 1.0, positions="all")
    result = direct_logit_attribution(tiny, PROMPTS[:1], steering, tokens_a=[70], tokens_b=[90])
    assert not any(c["kind"] == "steering" for c in result.components) and "resid_mid" in result.runs["note"]
    from interp_steer.dla import _capture

    text, lengths = format_prompts(tiny, PROMPTS[:1], chat=None, system=None)
    ids = torch.tensor([tiny.encode(text)[0]])
    writes = _capture(tiny, ids, steering, lengths[0])
    seen = {}
    with torch.no_grad(), ist.steer(tiny, v, 1.0, positions="all"), tiny.bridge.hooks(
            fwd_hooks=[("blocks.1.hook_mlp_out", lambda act, hook: seen.update(out=act[0, -1].double()))]):
        tiny.hf_model(input_ids=ids)
    mlp = writes.vectors[writes.labels.index(("mlp", 1, None))]
    torch.testing.assert_close(mlp, seen["out"], rtol=1e-5, atol=1e-6)
    entry = result.prompts[0]["difference"]
    assert entry["sum"] == pytest.approx(entry["total"], rel=1e-5, abs=1e-7)
