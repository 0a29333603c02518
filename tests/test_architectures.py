"""The architecture matrix: every core path on a tiny random model of every supported family.

Each family (``interp_steer.tiny_models.FAMILIES``) is a few-layer random network of that family's
Hugging Face class with a tokenizer that follows the family's BOS/EOS/padding rules and chat
template. The checks are oracles, not snapshots: Hugging Face's own hidden states, the bridge's own
cache, coefficient-0 identities and patching identities.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import pytest
import torch

import interp_steer as ist
from conftest import attached_hooks
from interp_steer import generation
from interp_steer.data import ABQuestion
from interp_steer.directions import SteeringVector, VectorMetadata
from interp_steer.evaluation import ab_eval
from interp_steer.generation import format_prompts, generate
from interp_steer.patching import METRICS, Patch, PatchMetrics, exact_patch, prepare
from interp_steer.steering import RowDeltas, Steering, steer
from interp_steer.studies.robustness.readout import SteeredReadout, content_ids, template_ids
from interp_steer.tiny_models import FAMILIES

LAYER = 1
PROMPTS = ["Tell me about the harbour.", "Hi", "Describe a rainy market at dawn, with vendors arriving."]
TEXTS = [
    "The lighthouse keeper counts the ships.",
    "Rain.",
    "A long corridor with many doors, each painted a different colour, and a clock at the end.",
    "She laughs.",
    "Two trains pass in the night without a sound",
]
QUESTIONS = [
    ABQuestion(f"Would you share the {thing}?\n\nChoices:\n(A) Yes\n(B) No", m, n)
    for thing, m, n in [("bread", "(A)", "(B)"), ("map", "(B)", "(A)"), ("umbrella", "(A)", "(B)")]
]
# The tokens branch makes encode()/format_prompts() drop the BOS a template already wrote.


@pytest.fixture(scope="module", params=list(FAMILIES))
def arch(request) -> tuple[str, ist.Model]:
    return request.param, ist.load_model(f"tiny-random:{request.param}")


@pytest.fixture(scope="module")
def model(arch) -> ist.Model:
    return arch[1]


@pytest.fixture(scope="module")
def fam(arch):
    return FAMILIES[arch[0]]


@pytest.fixture(scope="module")
def vector(model) -> SteeringVector:
    gen = torch.Generator().manual_seed(0)
    directions = {layer: torch.randn(model.d_model, generator=gen) for layer in range(model.n_layers)}
    return SteeringVector(directions, VectorMetadata(model=model.name, d_model=model.d_model))


@pytest.fixture(scope="module")
def personas():
    return ist.load_builtin("persona_a")[:16], ist.load_builtin("persona_b")[:16]


@pytest.fixture(scope="module")
def persona_vector(model, personas) -> SteeringVector:
    return ist.build_vector(model, *personas)


# ----------------------------------------------------------------------------- construction


def test_family_conventions_survive_wrapping(model, fam):
    tok = model.tokenizer
    assert type(model.hf_model).__name__ == fam.model_class
    assert (model.n_layers, model.d_model) == (4, 64)
    assert tok.bos_token == fam.bos and tok.eos_token == fam.eos
    assert tok.pad_token == (fam.pad or fam.eos)  # families without one pad with EOS
    assert (tok("a")["input_ids"][0] == tok.bos_token_id) == fam.adds_bos
    assert model.has_chat_template == (fam.chat_template is not None)
    stops = {tok.eos_token_id, *tok.convert_tokens_to_ids(list(fam.stop))}
    configured = model.hf_model.generation_config.eos_token_id
    assert set(configured if isinstance(configured, list) else [configured]) == stops


def test_chat_prompts_are_tokenised_as_hugging_face_does_with_at_most_one_bos(model, fam):
    # The reference is the tokenizer's own apply_chat_template(tokenize=True): the rendered template
    # carries its special tokens and nothing is added on top (a template that writes the BOS gets
    # exactly one; Phi-3's, which writes none, gets none although its tokenizer adds one to plain text).
    tok = model.tokenizer
    if not model.has_chat_template:
        texts, _ = format_prompts(model, PROMPTS, chat=None, system=None)
        assert model.encode(texts) == [tok(t)["input_ids"] for t in texts]
        return
    texts, _ = format_prompts(model, PROMPTS, chat=None, system=None)
    for prompt, ids in zip(PROMPTS, model.encode(texts), strict=True):
        reference = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                            add_generation_prompt=True)
        reference = reference["input_ids"] if isinstance(reference, dict) or hasattr(reference, "keys") else reference
        assert ids == list(reference)
        if tok.bos_token_id is not None and fam.uses_bos:
            assert ids.count(tok.bos_token_id) == (1 if fam.template_writes_bos else 0), tok.convert_ids_to_tokens(ids[:3])


def test_the_prompt_ends_where_the_template_tail_begins(model):
    # After the prompt comes the template's tail (end of turn, assistant header): the same tokens for
    # every prompt, even one the template trims or one that is a word of the header.
    prompts = [*PROMPTS, "  Tell me about the harbour. \n", "assistant", "model"]
    texts, lengths = format_prompts(model, prompts, chat=None, system=None)
    ids = model.encode(texts)
    assert len({len(row) - n for row, n in zip(ids, lengths, strict=True)}) == 1
    for prompt, row, n in zip(prompts, ids, lengths, strict=True):
        assert model.tokenizer.decode(row[:n]).rstrip().endswith(prompt.strip())


# ----------------------------------------------------------------------------- activations


def test_residuals_equal_hugging_face_hidden_states(model):
    """Raw weights: resid_post L is HF's hidden_states[L + 1]; HF's last entry has the final norm."""
    text = "The ferry leaves the harbour at seven and the gulls follow it."
    ids = torch.tensor(model.encode([text]), device=model.device)
    with torch.inference_mode():
        hidden = [h.cpu() for h in model.hf_model(ids, output_hidden_states=True).hidden_states]
        post = ist.collect_activations(model, [text], position="all")
        pre = ist.collect_activations(model, [text], position="all", hook_point="resid_pre")
        last = model.bridge.ln_final(post.values[:, -1].to(model.device)).cpu()
    assert len(hidden) == model.n_layers + 1
    for layer in range(model.n_layers - 1):
        torch.testing.assert_close(post.values[:, layer], hidden[layer + 1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last, hidden[-1][0], rtol=1e-5, atol=1e-5)
    # resid_pre 0 is the embedding as the block sees it (Gemma's scaled by sqrt(d_model), GPT-2's
    # with positions added): HF's hidden_states[0].
    for layer in range(model.n_layers):
        torch.testing.assert_close(pre.values[:, layer], hidden[layer][0], rtol=1e-5, atol=1e-5)


def test_padding_does_not_change_activations(model):
    single = ist.collect_activations(model, TEXTS, layers=[0, 3], position="all", batch_size=1)
    for side in ("left", "right"):
        padded = ist.collect_activations(model, TEXTS, layers=[0, 3], position="all", batch_size=8,
                                         pad_free=False, padding_side=side)
        torch.testing.assert_close(padded.values, single.values, rtol=1e-4, atol=1e-4)


def test_build_vector_from_two_corpora(model, personas, persona_vector):
    positive, negative = personas
    plain = persona_vector
    assert plain.layers == tuple(range(model.n_layers))
    for layer in plain.layers:
        assert plain[layer].shape == (model.d_model,)
        assert torch.isfinite(plain[layer]).all() and plain[layer].norm() > 0
    if not model.has_chat_template:
        with pytest.raises(ValueError, match="no chat template"):
            ist.build_vector(model, positive, negative, layers=[LAYER], chat=True)
        return
    chat = ist.build_vector(model, positive, negative, layers=[LAYER], chat=True)
    assert chat.layers == (LAYER,) and torch.isfinite(chat[LAYER]).all()
    assert not torch.allclose(chat[LAYER], plain[LAYER])  # read at the template's last token instead


# ----------------------------------------------------------------------------- steering


def _resid(model, ids, names):
    with torch.inference_mode():
        _, cache = model.bridge.run_with_cache(ids, names_filter=names)
    return {n: cache[n][0].cpu() for n in names}


@pytest.mark.parametrize("positions", ["all", slice(2, 5)])
def test_steered_layer_moves_by_exactly_c_v_and_earlier_layers_do_not(model, vector, positions):
    ids = torch.tensor(model.encode([model.format_chat(PROMPTS[0]) if model.has_chat_template else PROMPTS[0]]), device=model.device)
    names = [f"blocks.{i}.hook_resid_post" for i in range(model.n_layers)]
    clean = _resid(model, ids, names)
    with steer(model, vector, 2.5, layers=[LAYER], positions=positions):
        steered = _resid(model, ids, names)
    moved = torch.zeros(ids.shape[1], dtype=torch.bool)
    moved[positions if isinstance(positions, slice) else slice(None)] = True
    expected = clean[names[LAYER]] + 2.5 * vector[LAYER] * moved[:, None]
    torch.testing.assert_close(steered[names[LAYER]], expected, rtol=0, atol=1e-5)
    assert torch.equal(steered[names[0]], clean[names[0]])
    assert not torch.allclose(steered[names[LAYER + 1]], clean[names[LAYER + 1]])
    assert attached_hooks(model) == 0


def test_zero_coefficient_reproduces_greedy_generation(model, vector):
    plain = generate(model, PROMPTS, max_new_tokens=8)
    zero = generate(model, PROMPTS, max_new_tokens=8, steering=Steering(vector, 0.0, positions="after_prompt"))
    assert [g.token_ids for g in zero] == [g.token_ids for g in plain]
    strong = generate(model, PROMPTS, max_new_tokens=8, steering=Steering(vector, 30.0, layers=[LAYER]))
    assert [g.token_ids for g in strong] != [g.token_ids for g in plain]


def test_cached_uncached_and_one_at_a_time_generation_agree(model, vector):
    spec = Steering(vector, 4.0, layers=[LAYER], positions="after_prompt")
    cached = generate(model, PROMPTS, max_new_tokens=8, steering=spec)
    uncached = generate(model, PROMPTS, max_new_tokens=8, steering=spec, use_cache=False)
    assert [g.token_ids for g in uncached] == [g.token_ids for g in cached]
    alone = [generate(model, [p], max_new_tokens=8, steering=spec)[0] for p in PROMPTS]
    assert [g.token_ids for g in alone] == [g.token_ids for g in cached]


def test_shared_prompt_prefixes_give_the_unshared_tokens(model, vector):
    """A steering grid (each prompt in several rows at several coefficients) prefills each prompt's
    unsteered part once: the same greedy tokens, and the same samples, as prefilling every row; the
    rows say how much was shared, and steering that touches the prompt turns sharing off."""
    prompts = [p for p in PROMPTS for _ in range(4)]
    rows = RowDeltas.from_rows([[(vector, c)] for _ in PROMPTS for c in (-6.0, 0.0, 3.0, 6.0)])
    for spec, sampling in ((Steering(rows, layers=[LAYER], positions="after_prompt"), {}), (None, {}),
                           (Steering(rows, layers=[LAYER], positions="after_prompt"), {"temperature": 1.0, "seed": 3})):
        shared, alone = (generate(model, prompts, max_new_tokens=6, batch_size=8, steering=spec,
                                  share_prefixes=share, **sampling) for share in (True, False))
        assert [g.token_ids for g in shared] == [g.token_ids for g in alone]
        assert all(g.shared_prefix > 0 for g in shared) and all(g.shared_prefix == 0 for g in alone)
        assert all(g.shared_prefix < len(g.prompt_ids) for g in shared)
    touching = generate(model, prompts, max_new_tokens=2, batch_size=8, steering=Steering(rows, layers=[LAYER]))
    assert all(g.shared_prefix == 0 for g in touching)


@pytest.mark.parametrize("hook_point", ["resid_post", "resid_pre", "resid_mid"])
def test_perplexity_kept_from_generation_is_the_unsteered_models(model, hook_point, monkeypatch):
    """generate(..., perplexity=True) scores each completion under the unsteered model from the
    outputs generation kept below the steering: the perplexity completion_perplexity computes
    afterwards, to float rounding, for shared and unshared prefixes, steering from the prompt's end or
    at every position, and rows that stop early; only the blocks after the steering run again, and
    where nothing can be kept (resid_mid, whose hook is inside a block; GPT-2's bridge) the completions
    are scored whole, with the same numbers."""
    from interp_steer import _plain
    from interp_steer.likelihood import completion_perplexity

    gen = torch.Generator().manual_seed(1)
    steer_at = SteeringVector({layer: 6 * torch.randn(model.d_model, generator=gen) for layer in (1, 2)},
                              VectorMetadata(model=model.name, d_model=model.d_model, hook_point=hook_point))
    prompts = [p for p in PROMPTS for _ in range(3)]
    rows = RowDeltas.from_rows([[(steer_at, c)] for _ in PROMPTS for c in (0.0, -1.0, 1.0)])
    resumes: list[tuple[int, bool]] = []
    original = _plain.resumed

    @contextlib.contextmanager
    def spy(*args):
        with original(*args) as on:
            resumes.append((args[1], on))
            yield on

    monkeypatch.setattr("interp_steer.generation.resumed", spy)
    # Several passes per batch (2 rows each), and rows that stop early: the second token some row
    # generates becomes an end-of-sequence token.
    monkeypatch.setattr(generation, "_unsteered_perplexity",
                        functools.partial(generation._unsteered_perplexity, rows_per_pass=2))
    early = generate(model, prompts, max_new_tokens=7, batch_size=5, steering=Steering(rows, positions="after_prompt"))
    row = next(i for i, g in enumerate(early) if len(g.token_ids) >= 3)
    stop = early[row].token_ids[1]
    monkeypatch.setattr(generation, "_stop_ids", lambda _model: {stop})
    for spec, share in ((Steering(rows, positions="after_prompt"), True), (Steering(rows, positions="after_prompt"), False),
                        (Steering(rows, layers=[2]), True), (None, True)):
        resumes.clear()
        out = generate(model, prompts, max_new_tokens=7, batch_size=5, steering=spec, share_prefixes=share,
                       perplexity=True)
        expected = completion_perplexity(model, out)
        np.testing.assert_allclose([g.perplexity for g in out], expected, rtol=2e-4)
        if spec is not None and spec.positions == "after_prompt":
            assert out[row].finished and len(out[row].token_ids) <= 2 and not all(g.finished for g in out)
        kept = _plain.plain_view(model) is not None and (hook_point != "resid_mid" or spec is None)
        first = model.n_layers - 1 if spec is None else spec.untouched_through(model)
        assert resumes == ([(first, True)] * 5 if kept else [])  # batches of 5 and 4 rows, 2 rows a pass
    assert Steering(rows).untouched_through(model) == (1 if hook_point == "resid_post" else 0)
    assert Steering(rows, layers=[2]).untouched_through(model) == (2 if hook_point == "resid_post" else 1)
    assert attached_hooks(model) == 0


# ----------------------------------------------------------------------------- A/B evaluation


def _unsteered_p_matching(model, question):
    (text,), _ = format_prompts(model, [question.question], chat=None, system=None)
    ids = model.encode([text + "("])[0]
    letter = {c: model.encode([text + "(" + c])[0][-1] for c in "AB"}
    with torch.inference_mode():
        logits = model.hf_model(torch.tensor([ids], device=model.device)).logits[0, -1]
    pair = logits[[letter[question.matching_letter], letter[question.not_matching_letter]]]
    return float(torch.softmax(pair, -1)[0])


def test_ab_eval_gives_probabilities_and_coefficient_zero_is_unsteered(model, vector):
    result = ab_eval(model, QUESTIONS, vector, coefficients=[-4, 0, 4], layers=[LAYER])
    assert result.values.shape == (1, 3, len(QUESTIONS))
    assert ((result.values >= 0) & (result.values <= 1)).all()
    for i, question in enumerate(QUESTIONS):
        assert result.values[0, 1, i] == pytest.approx(_unsteered_p_matching(model, question), abs=1e-5)
    assert not np.allclose(result.values[0, 0], result.values[0, 2])


def test_adversarial_readout_packs_rows_into_one_sequence_without_changing_them(model, fam, vector):
    # The robustness study's readout packs candidates' shared heads as a trie and their
    # (unsteered, steered) tails into one sequence under a 4-D mask, after the chat template's
    # cached prefix; every row must score what it scores alone in a padded batch.
    prefix, tail = template_ids(model)
    ids = content_ids(model, PROMPTS)
    candidates = [*ids, ids[0][:2] + [30, 31], ids[0][:2] + [32], ids[2][:-1] + [5], [21]]
    readout = SteeredReadout(model, vector.select([LAYER]), 2.0, "tokens", tuple(prefix), tuple(tail),
                             positive=(5, 6, 7), negative=(8, 9, 10), batch_size=8)
    window = getattr(model.hf_model.config, "sliding_window", None)
    longest = len(prefix) + max(map(len, candidates)) + len(tail)
    assert readout._can_pack(candidates) == (not window or longest <= window)
    np.testing.assert_allclose(readout(candidates), readout.score_unshared(candidates), atol=1e-5)
    assert not np.allclose(readout.score_unshared(candidates), 0.0)


# ----------------------------------------------------------------------------- patching


@pytest.fixture(scope="module")
def patching(model, personas, persona_vector):
    positive, negative = personas
    metrics = PatchMetrics.build(model, positive, negative, probe_layer=model.n_layers - 1, k=5)
    persona = persona_vector.select([LAYER])
    source, target = (persona, 3.0), (persona, -3.0)
    # "after_prompt" steers from the prompt's last token on, so the runs differ with or without a
    # chat template (GPT-2 has none): the read position itself is steered.
    return metrics, source, target, prepare(model, PROMPTS[0], source, target, metrics, positions="after_prompt")


def test_patching_a_run_into_itself_changes_nothing(model, patching):
    metrics, _, target, _ = patching
    same = prepare(model, PROMPTS[0], target, target, metrics, positions="all")
    patches = [Patch("attn", 2), Patch("mlp", 3), Patch("heads", 2, head=1), Patch("resid", 3, position=-1),
               Patch("resid", 2)]
    values = exact_patch(model, same, target, metrics, patches, skip_identical=False)
    for metric in METRICS:
        np.testing.assert_allclose(values[metric], same.target_metrics[metric], rtol=1e-5, atol=1e-5)


def test_head_patches_index_heads(model, patching):
    # Patching assumes hook_z is [batch, position, head, d_head] in every family (fused-qkv ones too).
    metrics, _, target, pair = patching
    cfg = model.bridge.cfg
    z = pair.source_cache[f"blocks.{LAYER + 1}.attn.hook_z"]
    assert z.shape == (1, pair.tokens.shape[1], cfg.n_heads, cfg.d_head)
    values = exact_patch(model, pair, target, metrics, [Patch("heads", LAYER + 1, head=h) for h in range(cfg.n_heads)])
    assert (values["logit_diff"] != pair.target_metrics["logit_diff"]).all()


def test_whole_residual_patch_after_the_steering_layer_restores_the_source(model, patching):
    metrics, _, target, pair = patching
    values = exact_patch(model, pair, target, metrics, [Patch("resid", at) for at in range(model.n_layers)],
                         skip_identical=False)
    for metric in METRICS:
        span = pair.source_metrics[metric] - pair.target_metrics[metric]
        assert span != 0
        # The runs agree up to there, and the next layer's patch is the source: the metric to float32
        # rounding (not the normalised effect, which divides that rounding by a span that can be small).
        np.testing.assert_allclose(values[metric][: LAYER + 1], pair.target_metrics[metric], rtol=1e-5, atol=1e-5)
        assert values[metric][LAYER + 1] == pytest.approx(pair.source_metrics[metric], rel=1e-5, abs=1e-5)  # the source, restored


def test_the_readme_table_has_one_well_formed_row_per_family():
    from interp_steer.tiny_models import markdown_table

    header, rule, *rows = markdown_table().splitlines()
    cells = header.count("|")
    assert rule.count("|") == cells and len(rows) == len(FAMILIES)
    for row, name in zip(rows, FAMILIES, strict=True):
        assert row.replace("\\|", "").count("|") == cells  # escaped pipes stay inside their cell
        assert f"`tiny-random:{name}`" in row or (name == "smollm2" and "`tiny-random`" in row)
