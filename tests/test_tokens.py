"""Tokenisation of chat prompts: exactly one BOS on every path, and where the user's prompt ends.

Most larger models (Llama-2/3, Mistral, Gemma) have a chat template that writes the BOS itself
*and* a tokenizer that adds one to any text it encodes. Rendering the template to text and encoding
that text with the tokenizer's defaults gives two BOS tokens. The oracle is Hugging Face's own
``apply_chat_template(..., tokenize=True)``, which encodes the rendering without adding special
tokens. The models here are tiny random Llamas saved as Hugging Face directories with such a
tokenizer, and loaded through ``load_model`` like any local model.
"""

from __future__ import annotations

import pytest
import torch

import interp_steer as ist
from interp_steer import models, tiny_models
from interp_steer.data import ABQuestion
from interp_steer.directions import ab_contrast_pairs, build_vector
from interp_steer.evaluation import ab_eval, answer_letter_ids
from interp_steer.generation import format_prompts, generate
from interp_steer.patching import PatchMetrics, prepare
from interp_steer.studies.collision import CollisionConfig
from interp_steer.studies.collision.decomposition import decomposition, unsteered_transcripts

BOS, EOS = "<s>", "</s>"

# Llama-3's shape: the template writes the BOS, and trims the message content.
TRIMMING = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n\n' + message['content'] | trim + '<|im_end|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n\n' }}{% endif %}"
)
# Llama-2/Mistral's shape: the BOS, then plain-text instruction markers around the content.
INSTRUCT = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + ' ' }}{% endif %}"
    "{% endfor %}"
)
# TinyLlama's shape: the template writes no BOS although the tokenizer adds one.
NO_BOS_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# A template that rewrites the content: nobody can tell where the prompt ends.
SHOUTING = (
    "{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['content'] | upper + '<|im_end|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

QUESTIONS = [
    ABQuestion("Would you lie to help a friend?\n(A) Yes\n(B) No", "(A)", "(B)"),
    ABQuestion("Do you enjoy rules?\n(A) Yes\n(B) No", "(B)", "(A)"),
]


def bos_model(directory, template: str, *, adds_bos: bool = True) -> ist.Model:
    """A tiny random Llama whose tokenizer adds ``<s>`` in front of every text (as Llama's and
    Gemma's do) and whose chat template is ``template``, saved as a Hugging Face directory and loaded
    with ``load_model``."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tiny_models._trained_bpe(tiny_models.family("smollm2").special_tokens))
    backend.add_special_tokens([BOS, EOS])
    if adds_bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, backend.token_to_id(BOS))]
        )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=EOS)
    tokenizer.chat_template = template
    hf_model, tokenizer = tiny_models.build("smollm2", 0, tokenizer=tokenizer)
    hf_model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    model = ist.load_model(str(directory), device="cpu")
    assert model.encode(["plain text"])[0][0] == model.tokenizer.bos_token_id or not adds_bos
    return model


@pytest.fixture(scope="module")
def llama3(tmp_path_factory) -> ist.Model:
    return bos_model(tmp_path_factory.mktemp("llama3"), TRIMMING)


def random_vector(model: ist.Model, seed: int) -> ist.SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    return ist.SteeringVector({layer: torch.randn(model.d_model, generator=gen) for layer in range(model.n_layers)},
                              ist.VectorMetadata(model=model.name, d_model=model.d_model))


@pytest.fixture(scope="module")
def vector(llama3):
    return random_vector(llama3, 1)


def hf_chat_ids(model: ist.Model, prompt: str) -> list[int]:
    out = model.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                              add_generation_prompt=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def assert_one_bos(model: ist.Model, rows) -> None:
    bos = model.tokenizer.bos_token_id
    rows = [list(row) for row in rows]
    assert rows
    for row in rows:
        assert row[0] == bos and row.count(bos) == 1, f"expected exactly one leading BOS: {row[:6]}..."


@pytest.fixture
def encoded(monkeypatch):
    """Every token-id list ``Model.encode`` returns while the test runs."""
    seen: list[list[int]] = []
    original = models.Model.encode

    def spy(self, texts, **kwargs):
        out = original(self, texts, **kwargs)
        seen.extend(out)
        return out

    monkeypatch.setattr(models.Model, "encode", spy)
    return seen


# ----------------------------------------------------------------------------- one BOS on every path


@pytest.mark.parametrize("template", [TRIMMING, INSTRUCT, NO_BOS_TEMPLATE], ids=["trimming", "instruct", "no-bos"])
def test_generate_feeds_exactly_what_hugging_face_apply_chat_template_gives(tmp_path, template):
    model = bos_model(tmp_path, template)
    prompts = ["Tell me about the sea.", "Hi"]
    for prompt, out in zip(prompts, generate(model, prompts, max_new_tokens=2), strict=True):
        assert list(out.prompt_ids) == hf_chat_ids(model, prompt)
    if template != NO_BOS_TEMPLATE:
        assert_one_bos(model, [g.prompt_ids for g in generate(model, prompts, max_new_tokens=1)])


def test_ab_eval_runs_every_row_with_one_bos(llama3, vector, encoded):
    fed = []

    def record(module, args, kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        fed.extend(row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True))

    handle = llama3.hf_model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        ab_eval(llama3, QUESTIONS, vector, coefficients=[0.0, 1.0], layers=[1])
    finally:
        handle.remove()
    assert len(fed) == 4
    assert_one_bos(llama3, fed)
    assert_one_bos(llama3, encoded)  # answer_letter_ids' encodings too
    text = llama3.format_chat(QUESTIONS[0].question) + "("
    expected = [llama3.tokenizer(str(text) + c, add_special_tokens=False)["input_ids"][-1] for c in "AB"]
    assert answer_letter_ids(llama3, text, ["A", "B"]) == expected


def test_build_vector_chat_and_ab_contrast_pairs_have_one_bos(llama3, encoded):
    build_vector(llama3, ["I love this.", "What a day."], ["I hate this.", "Awful day."], layers=[1], chat=True)
    assert len(encoded) == 4
    assert_one_bos(llama3, encoded)
    encoded.clear()
    pairs = ab_contrast_pairs(llama3, QUESTIONS)
    build_vector(llama3, pairs, layers=[1])
    assert len(encoded) == 4
    assert_one_bos(llama3, encoded)
    prompt_ids = hf_chat_ids(llama3, QUESTIONS[0].question)
    letter = llama3.tokenizer("(" + QUESTIONS[0].matching_letter, add_special_tokens=False)["input_ids"]
    assert llama3.encode([pairs[0].positive])[0] == prompt_ids + letter


def test_cli_extract_chat_has_one_bos(llama3, encoded, tmp_path):
    from interp_steer.cli import main

    pos, neg = tmp_path / "pos.txt", tmp_path / "neg.txt"
    pos.write_text("I love this.\nWhat a day.\n")
    neg.write_text("I hate this.\nAwful day.\n")
    model_dir = llama3.source.split(":", 1)[1]
    code = main(["extract", "--model", model_dir, "--positive", str(pos), "--negative", str(neg),
                 "--chat", "--layers", "1", "--out", str(tmp_path / "v.safetensors")])
    assert code == 0
    assert len(encoded) == 4
    assert_one_bos(llama3, encoded)


def test_patching_prepare_runs_one_bos(llama3, vector):
    metrics = PatchMetrics((5,), (6,), 7, 1, torch.zeros(llama3.d_model), 0.0)
    pair = prepare(llama3, "The harbour at dawn", (vector.select([1]), 1.0), (None, 0.0), metrics,
                   components=("resid",))
    assert pair.tokens[0].tolist() == hf_chat_ids(llama3, "The harbour at dawn")
    assert_one_bos(llama3, pair.tokens.tolist())


def test_patch_metrics_continuation_token_is_not_the_bos(llama3):
    corpus_a = ["the sea the sea waves waves sailor boat"] * 4
    corpus_b = ["the desert sand sand camel camel dune heat"] * 4
    metrics = PatchMetrics.build(llama3, corpus_a, corpus_b, probe_layer=1, k=3, continuation="The")
    assert metrics.continuation_token == llama3.tokenizer("The", add_special_tokens=False)["input_ids"][0]


def test_collision_decomposition_transcripts_have_one_bos(llama3, vector):
    # The decomposition replays the grid's own token ids (prompt + completion), never re-encoded text.
    prompts = ["Describe the harbour.", "Write about rain."]
    unsteered = generate(llama3, prompts, max_new_tokens=3)
    transcripts, ends = unsteered_transcripts(llama3, prompts, unsteered)
    assert_one_bos(llama3, transcripts)
    assert all(t[: len(g.prompt_ids)] == list(g.prompt_ids) for t, g in zip(transcripts, unsteered, strict=True))
    assert transcripts[0][: len(hf_chat_ids(llama3, prompts[0]))] == hf_chat_ids(llama3, prompts[0])
    assert all(0 < end <= len(g.prompt_ids) for end, g in zip(ends, unsteered, strict=True))
    out = decomposition(llama3, vector, random_vector(llama3, 2), 1, CollisionConfig(alphas=(0.0, 0.5, 1.0)), 1.0,
                         prompts, unsteered)
    assert out["n_prompts"] == 2 and len(out["observed"]) == 3


# ----------------------------------------------------------------------------- the encode rule


def test_encode_rule(llama3):
    from interp_steer.models import ChatText

    bos = llama3.tokenizer.bos_token_id
    plain = llama3.encode(["Hello there"])[0]
    assert plain == llama3.tokenizer("Hello there")["input_ids"] and plain[0] == bos
    # A corpus templated elsewhere (plain str starting with the BOS text) gets no second BOS.
    templated = str(llama3.format_chat("Hello there"))
    assert type(templated) is str
    assert llama3.encode([templated])[0] == hf_chat_ids(llama3, "Hello there")
    # Rendered chat text keeps its mark through `+` (an answer opening, a completion).
    text = llama3.format_chat("Hello there")
    assert isinstance(text, ChatText) and isinstance(text + "(A", ChatText)
    assert llama3.encode([text + " ok"])[0].count(bos) == 1
    # Forcing either way.
    assert llama3.encode(["Hello there"], add_special_tokens=False)[0] == plain[1:]
    assert llama3.encode([templated], add_special_tokens=True)[0][:2] == [bos, bos]
    # Mixed batches are encoded text by text.
    assert llama3.encode(["Hello there", templated]) == [plain, hf_chat_ids(llama3, "Hello there")]


def test_chat_text_without_bos_in_template_follows_hugging_face(tmp_path):
    model = bos_model(tmp_path, NO_BOS_TEMPLATE)
    text = model.format_chat("Hi")
    assert model.encode([text])[0] == hf_chat_ids(model, "Hi")
    # A transcript rendered elsewhere is marked by wrapping it; the public name is the same class.
    assert model.encode([ist.ChatText(str(text))])[0] == hf_chat_ids(model, "Hi")
    assert model.encode(["Hi"])[0][0] == model.tokenizer.bos_token_id  # plain text keeps its BOS


def test_tiny_encode_is_unchanged(tiny):
    """SmolLM2 and the tiny model add no special tokens: their ids must be exactly what their
    tokenizer gives, for plain and chat text, and prompt lengths what they always were."""
    prompts = ["Tell me a story.", "Hi", "  padded prompt \n"]
    chat = [tiny.format_chat(p) for p in prompts]
    for text in prompts + chat + [c + " and a completion" for c in chat]:
        assert tiny.encode([text])[0] == tiny.tokenizer(str(text))["input_ids"]
    texts, lengths = format_prompts(tiny, prompts, chat=True, system=None)
    for prompt, text, length in zip(prompts, texts, lengths, strict=True):
        end = text.rindex(prompt) + len(prompt)
        assert length == len(tiny.tokenizer(text[:end])["input_ids"])


# ----------------------------------------------------------------------------- where the prompt ends


def test_prompt_end_with_a_trimming_template(llama3):
    prompts = ["  Tell me a story.  \n", "Café ☕ au lait", "assistant", "\tHi"]
    texts, lengths = format_prompts(llama3, prompts, chat=True, system=None)
    for prompt, text, length in zip(prompts, texts, lengths, strict=True):
        ids = llama3.encode([text])[0]
        assert ids == hf_chat_ids(llama3, prompt)
        head = str(text)[: str(text).index("user\n\n") + len("user\n\n") + len(prompt.strip())]
        assert head.endswith(prompt.strip())
        assert length == len(llama3.tokenizer(head, add_special_tokens=False)["input_ids"])
        assert llama3.tokenizer.decode(ids[length:]) == "<|im_end|><|im_start|>assistant\n\n"


def test_prompt_end_with_a_system_prompt(llama3):
    (text,), (length,) = format_prompts(llama3, ["Tell me a story."], chat=True, system="Tell me a story.")
    ids = llama3.encode([text])[0]
    assert llama3.tokenizer.decode(ids[length:]) == "<|im_end|><|im_start|>assistant\n\n"
    assert llama3.tokenizer.decode(ids[:length]).endswith("user\n\nTell me a story.")


def test_prompt_end_with_plain_text_instruction_markers(tmp_path):
    model = bos_model(tmp_path, INSTRUCT)
    (text,), (length,) = format_prompts(model, ["Tell me a story."], chat=True, system=None)
    ids = model.encode([text])[0]
    assert model.tokenizer.decode(ids[:length]) == "<s>[INST] Tell me a story."
    assert model.tokenizer.decode(ids[length:]) == " [/INST]"


def test_a_template_that_rewrites_the_prompt_is_a_clear_error(tmp_path):
    model = bos_model(tmp_path, SHOUTING)
    with pytest.raises(ValueError, match="chat template"):
        format_prompts(model, ["Tell me a story."], chat=True, system=None)
