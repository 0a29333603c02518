"""Token readouts of directions (``interp_steer.vocab``, ``SteeringVector.top_tokens``, the ``tokens``
command). Oracles: an unembedding column read back names its own token first; the values equal the
Hugging Face modules' own final norm and ``lm_head``; the contrast of two vectors is the difference
of their readouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import interp_steer as ist
from interp_steer.cli import main
from interp_steer.directions import SteeringVector, VectorMetadata
from interp_steer.vocab import direction_logits

FAMILIES = ["smollm2", "gemma2", "phi3", "gpt2"]


@pytest.fixture(scope="module", params=FAMILIES)
def model(request) -> ist.Model:
    return ist.load_model(f"tiny-random:{request.param}")


def unembedding(model) -> torch.Tensor:
    """``[d_vocab, d_model]``: the output embedding, one row per token."""
    return model.hf_model.get_output_embeddings().weight.detach().float()


def vector(model, directions: dict[int, torch.Tensor]) -> SteeringVector:
    return SteeringVector(directions, VectorMetadata(model=model.name, d_model=model.d_model))


def test_an_unembedding_row_names_its_own_token_first(model):
    rows = unembedding(model)
    token = int(rows.norm(dim=-1).argmax())  # by Cauchy-Schwarz no other row scores higher against it
    table = vector(model, {1: rows[token], 2: -rows[token]}).top_tokens(model, k=5, through_norm=False)
    first = table[table["rank"] == 1].set_index(["layer", "side"])
    assert first.loc[(1, "promoted"), "token_id"] == token and first.loc[(2, "suppressed"), "token_id"] == token
    assert first.loc[(1, "promoted"), "token"] == model.tokenizer.decode([token])
    assert len(table) == 2 * 2 * 5 and (table.groupby(["layer", "side"])["rank"].max() == 5).all()


@pytest.mark.parametrize("family", ["smollm2", "gpt2"])
def test_values_equal_the_models_own_norm_and_unembedding(family):
    """Through the norm: lm_head(norm(v)) - lm_head(norm(0)) with the Hugging Face modules themselves;
    raw: lm_head(v) - lm_head(0)."""
    model = ist.load_model(f"tiny-random:{family}")
    hf = model.hf_model
    final_norm = hf.model.norm if family == "smollm2" else hf.transformer.ln_f
    with torch.no_grad():  # a final norm with a non-trivial gain and bias, so the test can tell them apart
        final_norm.weight.mul_(torch.linspace(0.5, 2.0, model.d_model))
        if getattr(final_norm, "bias", None) is not None:
            final_norm.bias.add_(0.3)
    v = torch.randn(3, model.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        head = hf.get_output_embeddings()
        zero = torch.zeros(1, model.d_model)
        expected = head(final_norm(v)) - head(final_norm(zero))
        raw = head(v) - head(zero)
    torch.testing.assert_close(direction_logits(model, v), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(direction_logits(model, v, through_norm=False), raw, rtol=1e-5, atol=1e-5)
    # An RMS norm ignores a direction's scale; the raw readout scales with it.
    torch.testing.assert_close(direction_logits(model, 7 * v[:1]), direction_logits(model, v[:1]), rtol=1e-4, atol=1e-4) \
        if family == "smollm2" else None
    torch.testing.assert_close(direction_logits(model, 7 * v[:1], through_norm=False),
                               7 * direction_logits(model, v[:1], through_norm=False), rtol=1e-4, atol=1e-4)


def test_contrast_and_layer_selection(model):
    gen = torch.Generator().manual_seed(1)
    a = vector(model, {0: torch.randn(model.d_model, generator=gen), 3: torch.randn(model.d_model, generator=gen)})
    b = vector(model, {0: torch.randn(model.d_model, generator=gen), 3: torch.randn(model.d_model, generator=gen)})
    table = (a - b).top_tokens(model, k=3, layer=3, through_norm=False)
    assert set(table["layer"]) == {3}
    raw = direction_logits(model, a.directions[3][None] - b.directions[3][None], through_norm=False)[0]
    assert list(table[table["side"] == "promoted"]["token_id"]) == raw.topk(3).indices.tolist()
    with pytest.raises(KeyError, match="no layer"):
        a.top_tokens(model, layer=2)
    with pytest.raises(ValueError, match="k must be"):
        a.top_tokens(model, k=0)
    other = SteeringVector({0: torch.ones(model.d_model)}, VectorMetadata(model="another-model", d_model=model.d_model))
    with pytest.raises(ist.VectorFileError, match="another-model"):
        other.top_tokens(model)


def test_a_fields_gradient_is_read_per_context(tiny):
    texts = ist.load_builtin("persona_a")[:12], ist.load_builtin("persona_b")[:12]
    field = ist.fit_field(tiny, *texts, layers=[2], form="linear", seed=0, progress=False)
    contexts = ["The sea was calm.", "Night fell over the ruins."]
    table = field.top_tokens(tiny, contexts, k=4)
    assert set(table["context"]) == set(contexts) and set(table["layer"]) == {2} and len(table) == 2 * 2 * 4
    acts = ist.collect_activations(tiny, contexts, layers=[2], progress=False)
    grad = field.direction(acts.values[:, 0], 2).detach()
    expected = direction_logits(tiny, grad)[1].topk(4).indices.tolist()
    rows = table[(table["context"] == contexts[1]) & (table["side"] == "promoted")]
    assert list(rows["token_id"]) == expected


def test_tokens_command_prints_and_writes_the_table(tmp_path, capsys):
    model = ist.load_model("tiny-random")
    gen = torch.Generator().manual_seed(2)
    path = vector(model, {1: torch.randn(model.d_model, generator=gen), 2: torch.randn(model.d_model, generator=gen)}) \
        .save(tmp_path / "v.safetensors")
    other = vector(model, {1: torch.randn(model.d_model, generator=gen), 2: torch.randn(model.d_model, generator=gen)}) \
        .save(tmp_path / "w.safetensors")
    out = tmp_path / "tokens.json"
    assert main(["tokens", str(path), "--model", "tiny-random", "--k", "3", "--minus", str(other), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "layer   1   promoted:" in printed and "layer   2 suppressed:" in printed
    record = json.loads(out.read_text())
    assert record["through_norm"] is True and len(record["rows"]) == 2 * 2 * 3
    table = (SteeringVector.load(path) - SteeringVector.load(other)).top_tokens(model, k=3)
    assert [r["token_id"] for r in record["rows"]] == list(table["token_id"])
    assert main(["tokens", str(path), "--model", "tiny-random", "--k", "0"]) == 2


MORALITY = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "pairs" / "morality.jsonl"


@pytest.mark.skipif(not MORALITY.exists(), reason=f"third-party data not on this machine ({MORALITY})")
def test_a_vector_from_outside_data_promotes_tokens_of_its_own_tone(smol):
    """Moral minus immoral actions (third-party pairs, not in the repository): read at the last
    layers, the tokens the direction suppresses are more negative in valence (VADER) than the tokens it
    promotes. A sign error anywhere in the readout would swap the two sides."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    vector = ist.build_vector(smol, ist.load_pairs(MORALITY), layers=[25, 29], progress=False)
    table = vector.top_tokens(smol, k=30)
    for layer in (25, 29):
        valence = {side: [vader.polarity_scores(t.strip())["compound"]
                          for t in table[(table.layer == layer) & (table.side == side)].token]
                   for side in ("promoted", "suppressed")}
        assert sum(valence["suppressed"]) / 30 < sum(valence["promoted"]) / 30 - 0.05, (layer, valence)
        assert sum(v < -0.3 for v in valence["suppressed"]) >= 5  # words like ' revenge', ' kill', ' worse'
