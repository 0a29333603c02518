"""Logit lens of steered runs (``interp_steer.lens``, ``interp-steer lens``). Oracles: the final entry
is the model's own next-token distribution (KL 0 there), with and without the steering; entries
before the steered layer are untouched by it; a zero coefficient changes nothing; ranks agree
with the probabilities."""

from __future__ import annotations

import json

import pytest
import torch

import interp_steer as ist
from interp_steer.cli import main
from interp_steer.directions import SteeringVector, VectorMetadata
from interp_steer.generation import format_prompts
from interp_steer.lens import steered_lens

PROMPTS = ["Tell me about the harbour.", "Describe a rainy market at dawn."]


@pytest.fixture(scope="module", params=["smollm2", "gemma2", "gpt2"])
def model(request) -> ist.Model:
    return ist.load_model(f"tiny-random:{request.param}")


def one_token_words(model, n: int = 2) -> list[str]:
    """Words that encode to exactly one token (and back) on this model's tokenizer."""
    words = []
    for token_id in range(50, 1000):
        word = model.tokenizer.decode([token_id])
        if word.strip() and model.tokenizer.encode(word, add_special_tokens=False) == [token_id]:
            words.append(word)
        if len(words) == n:
            return words
    raise AssertionError("no one-token words found")


def random_vector(model, layer: int = 1) -> SteeringVector:
    gen = torch.Generator().manual_seed(0)
    return SteeringVector({layer: 4 * torch.randn(model.d_model, generator=gen)},
                          VectorMetadata(model=model.name, d_model=model.d_model))


def test_the_final_entry_is_the_models_own_output_with_and_without_steering(model):
    steering = ist.Steering(random_vector(model), 1.5, positions="all")
    words = one_token_words(model)
    result = steered_lens(model, PROMPTS[:1], steering, tokens=words, window=4)
    entry = result.prompts[0]
    assert result.labels[-1] == "final_post" and result.labels[0] == "0_pre" and len(result.labels) == model.n_layers + 1
    text = format_prompts(model, PROMPTS[:1], chat=None, system=None)[0][0]
    ids = torch.tensor([model.encode([text])[0]])
    with torch.no_grad():
        plain = torch.log_softmax(model.hf_model(input_ids=ids).logits[0, -1].float(), -1)
        with ist.steer(model, steering.vector, steering.coefficient, positions="all"):
            steered = torch.log_softmax(model.hf_model(input_ids=ids).logits[0, -1].float(), -1)
    for run, expected in (("unsteered", plain), ("steered", steered)):
        assert entry[run]["kl"][-1] == [0.0] * 4
        for t, token_id in enumerate(result.token_ids):
            assert entry[run]["prob"][t][-1][-1] == pytest.approx(float(expected[token_id].exp()), rel=1e-4, abs=1e-7)
            assert entry[run]["rank"][t][-1][-1] == int((expected > expected[token_id]).sum())
        assert entry[run]["top_final"][0] == model.tokenizer.decode([int(expected.argmax())])
    # The vector is added at block 1's output: entries 0_pre and 1_pre cannot see it, 2_pre on can.
    for i in (0, 1):
        assert all(d[i] == 0 for d in entry["logit_diff"])
        assert [p[i] for p in entry["steered"]["prob"]] == [p[i] for p in entry["unsteered"]["prob"]]
    assert any(d[2] != 0 for d in entry["logit_diff"])


def test_zero_coefficient_changes_nothing_and_the_frame_holds_the_numbers(model):
    words = one_token_words(model, 1)
    result = steered_lens(model, PROMPTS, ist.Steering(random_vector(model), 0.0), tokens=words, window=3)
    for entry in result.prompts:
        assert entry["steered"]["kl"] == entry["unsteered"]["kl"] and entry["steered"]["rank"] == entry["unsteered"]["rank"]
        assert all(v == 0 for v in entry["logit_diff"][0])
    frame = result.to_frame()
    kl = frame[(frame["metric"] == "kl") & (frame["run"] == "unsteered") & (frame["prompt"] == 1)]
    assert len(kl) == len(result.labels) * 3
    assert kl[kl["entry"] == "0_pre"]["value"].tolist() == result.prompts[1]["unsteered"]["kl"][0]
    from conftest import rendered

    page, _ = rendered(result)
    assert PROMPTS[1][:20] in page and "+0.00" in page


def test_words_of_several_tokens_and_bad_settings_are_refused(model):
    steering = ist.Steering(random_vector(model), 1.0)
    with pytest.raises(ValueError, match="one token each"):
        steered_lens(model, PROMPTS[:1], steering, tokens=["antidisestablishmentarianism"])
    with pytest.raises(ValueError, match="window"):
        steered_lens(model, PROMPTS[:1], steering, window=0)
    with pytest.raises(ValueError, match="prompts"):
        steered_lens(model, [], steering)


def test_lens_command_writes_json_and_figures(tmp_path, capsys):
    model = ist.load_model("tiny-random")
    path = random_vector(model, layer=2).save(tmp_path / "v.safetensors")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    out = tmp_path / "lens"
    word = one_token_words(model, 1)[0]
    assert main(["lens", "--model", "tiny-random", "--vector", str(path), "--coefficient", "2", "--prompts", str(prompts),
                 "--tokens", word, "--window", "4", "--out", str(out)]) == 0
    payload = json.loads((out / "lens.json").read_text())
    assert payload["tokens"] == [word] and len(payload["prompts"]) == 2 and payload["entries"][-1] == "final_post"
    assert all(row[-1] == 0 for row in payload["prompts"][0]["steered"]["kl"][-1:])
    assert (out / "lens_prompt0.png").stat().st_size > 5000 and (out / "lens_prompt1.png").exists()
    assert "final_post" in capsys.readouterr().out
