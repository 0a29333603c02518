"""Attention differences between steered runs (``interp_steer.attention``). Oracles: the pattern read is
the one the head applied (its final query's row times the values gives the head's output z); rows
are distributions that respect the causal mask; heads before the steered layer do not change;
identical runs differ by nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import interp_steer as ist
from interp_steer.attention import attention_differences
from interp_steer.directions import SteeringVector, VectorMetadata
from interp_steer.generation import format_prompts

PROMPTS = ["Tell me about the harbour.", "Describe a rainy market at dawn, with its stalls."]


@pytest.fixture(scope="module")
def model() -> ist.Model:
    return ist.load_model("tiny-random")


def steering(model, coefficient: float = 1.0) -> ist.Steering:
    gen = torch.Generator().manual_seed(5)
    v = SteeringVector({1: 6 * torch.randn(model.d_model, generator=gen)},
                       VectorMetadata(model=model.name, d_model=model.d_model))
    return ist.Steering(v, coefficient, positions="after_prompt")


def test_the_pattern_is_what_the_head_applied(model):
    heads = [(2, 0), (3, 1)]
    result = attention_differences(model, PROMPTS[:1], heads, source=steering(model), target=None)
    text, lengths = format_prompts(model, PROMPTS[:1], chat=None, system=None)
    ids = torch.tensor([model.encode(text)[0]])
    seen = {}

    def keep(name):
        def hook(act, hook):
            seen[name] = act[0].detach().clone()
        return hook

    names = [f"blocks.{layer}.attn.{x}" for layer, _ in heads for x in ("v.hook_out", "hook_z")]
    s = steering(model)
    with torch.no_grad(), ist.steer(model, s.vector, s.coefficient, positions="after_prompt", prompt_end=lengths), \
            model.bridge.hooks(fwd_hooks=[(n, keep(n)) for n in names]):
        model.hf_model(input_ids=ids)
    cfg = model.bridge.cfg
    d_head = cfg.d_model // cfg.n_heads
    group = cfg.n_heads // cfg.n_key_value_heads
    for layer, head in heads:
        row = torch.tensor(result.prompts[0]["heads"][f"{layer}.{head}"]["source"])
        values = seen[f"blocks.{layer}.attn.v.hook_out"].reshape(ids.shape[1], -1, d_head)[:, head // group]
        z = seen[f"blocks.{layer}.attn.hook_z"][-1, head]
        torch.testing.assert_close(row @ values, z, rtol=1e-4, atol=1e-5)


def test_rows_are_causal_distributions_and_early_heads_do_not_move(model):
    heads = [(0, 0), (1, 2), (2, 1), (3, 3)]
    result = attention_differences(model, PROMPTS, heads, source=steering(model), target=None, window=6)
    for entry in result.prompts:
        for layer, head in heads:
            record = entry["heads"][f"{layer}.{head}"]
            for run in ("source", "target"):
                assert sum(record[run]) == pytest.approx(1, abs=1e-5)
                window = np.asarray(record[f"window_{run}"])
                assert window.shape == (6, 6) and np.allclose(np.triu(window, 1), 0)
            if layer <= 1:  # steering enters after block 1
                assert record["tvd"] == 0
            assert record["tvd"] == pytest.approx(np.abs(record["delta"]).sum() / 2)
            moved = [abs(m["source"] - m["target"]) for m in record["moved"]]
            assert moved == sorted(moved, reverse=True) and moved[0] == pytest.approx(max(np.abs(record["delta"])))
    late = [entry["heads"]["3.3"]["tvd"] for entry in result.prompts]
    assert max(late) > 0
    summary = {(r["layer"], r["head"]): r for r in result.summary()}
    assert summary[(0, 0)]["tvd"]["mean"] == 0 and summary[(3, 3)]["tvd"]["mean"] == pytest.approx(np.mean(late))


def test_identical_runs_differ_by_nothing_and_outputs_are_written(model, tmp_path):
    same = steering(model)
    result = attention_differences(model, PROMPTS, [(3, 0)], source=same, target=same)
    assert all(entry["heads"]["3.0"]["tvd"] == 0 for entry in result.prompts)
    written = result.save(tmp_path)
    saved = json.loads(written["json"].read_text())
    assert saved["heads"] == [[3, 0]] and saved["runs"]["target"]["coefficient"] == 1.0
    assert written["3.0"].stat().st_size > 0
    from conftest import rendered

    page, _ = rendered(result)
    assert "3.0" in page and "total variation" in page
    frame = result.to_frame()
    assert set(frame.run) == {"source", "target"} and len(frame) == 2 * sum(len(e["tokens"]) for e in result.prompts)


def test_bad_heads_and_settings_are_refused(model):
    with pytest.raises(ValueError, match="outside"):
        attention_differences(model, PROMPTS, [(model.n_layers, 0)], source=None, target=None)
    with pytest.raises(ValueError, match="heads is empty"):
        attention_differences(model, PROMPTS, [], source=None, target=None)
    with pytest.raises(ValueError, match="window"):
        attention_differences(model, PROMPTS, [(0, 0)], source=None, target=None, window=0)
    with pytest.raises(TypeError, match="Steering"):
        attention_differences(model, PROMPTS, [(0, 0)], source="v", target=None)


@pytest.mark.parametrize("top", [2, 7])
def test_top_sets_how_many_positions_are_listed(model, top):
    """``top`` is how many moved positions each prompt's record and the summary list, largest first."""
    result = attention_differences(model, PROMPTS, [(3, 3)], source=steering(model), target=None, top=top)
    assert all(len(entry["heads"]["3.3"]["moved"]) == top for entry in result.prompts)
    (row,) = result.summary()
    moved = [abs(m["mean_delta"]) for m in row["moved_most"]]
    assert len(moved) == top and moved == sorted(moved, reverse=True) and result.to_dict()["top"] == top
