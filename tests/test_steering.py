"""Steering on the tiny model, checked against the model's own cache."""

from __future__ import annotations

import contextlib

import pytest
import torch

import interp_steer as ist
from conftest import attached_hooks
from interp_steer.directions import SteeringVector, VectorMetadata
from interp_steer.generation import generate
from interp_steer.steering import RowDeltas, Steering, steer

LAYER = 1
TEXT = "The ferry leaves the harbour at seven and the gulls follow it."


@pytest.fixture(scope="module")
def vector(tiny):
    gen = torch.Generator().manual_seed(0)
    directions = {layer: torch.randn(tiny.d_model, generator=gen) for layer in range(tiny.n_layers)}
    return SteeringVector(directions, VectorMetadata(model=tiny.name, d_model=tiny.d_model))


def resid(tiny, ids, names):
    with torch.inference_mode():
        _, cache = tiny.bridge.run_with_cache(ids, names_filter=names)
    return {n: cache[n][0].cpu() for n in names}


def ids_of(tiny, text=TEXT):
    return torch.tensor([tiny.encode([text])[0]], device=tiny.device)


def test_coefficient_zero_is_the_baseline(tiny, vector):
    ids = ids_of(tiny)
    with torch.inference_mode():
        clean = tiny.hf_model(ids).logits
        with steer(tiny, vector, 0.0):
            steered = tiny.hf_model(ids).logits
    assert torch.equal(clean, steered)


def test_steered_layer_moves_by_exactly_c_v_and_earlier_layers_do_not(tiny, vector):
    ids = ids_of(tiny)
    names = [f"blocks.{i}.hook_resid_post" for i in range(tiny.n_layers)]
    clean = resid(tiny, ids, names)
    with steer(tiny, vector, 2.5, layers=[LAYER]):
        steered = resid(tiny, ids, names)
    torch.testing.assert_close(steered[names[LAYER]], clean[names[LAYER]] + 2.5 * vector[LAYER], rtol=0, atol=1e-5)
    assert torch.equal(steered[names[0]], clean[names[0]])
    assert not torch.allclose(steered[names[LAYER + 1]], clean[names[LAYER + 1]])


def test_after_prompt_leaves_prompt_positions_untouched(tiny, vector):
    """A prompt of 5 tokens: its last token (4) and everything after it are steered, nothing before."""
    ids = ids_of(tiny)
    name = f"blocks.{LAYER}.hook_resid_post"
    clean = resid(tiny, ids, [name])[name]
    end = 5
    with steer(tiny, vector, 3.0, layers=[LAYER], positions="after_prompt", prompt_end=[end]):
        steered = resid(tiny, ids, [name])[name]
    assert torch.equal(steered[: end - 1], clean[: end - 1])
    torch.testing.assert_close(steered[end - 1 :], clean[end - 1 :] + 3.0 * vector[LAYER], rtol=0, atol=1e-5)


def test_after_prompt_steers_the_first_cached_step(tiny, vector):
    """Under a KV cache the prompt's last token is steered in the prefill (the first generated token
    is read from it) and the next token, at position len(prompt), in the first cached step."""
    from transformers import DynamicCache

    name = f"blocks.{LAYER}.hook_resid_post"
    ids = ids_of(tiny)
    prompt, nxt = ids[:, :-1], ids[:, -1:]
    n = prompt.shape[1]
    seen = {}

    def capture(t, hook):
        seen.setdefault("values", []).append(t[0].cpu().clone())

    def run():
        seen.clear()
        cache = DynamicCache()
        with torch.inference_mode(), tiny.bridge.hooks(fwd_hooks=[(name, capture)]):
            tiny.hf_model(input_ids=prompt, past_key_values=cache, use_cache=True,
                          cache_position=torch.arange(n, device=tiny.device))
            tiny.hf_model(input_ids=nxt, past_key_values=cache, use_cache=True,
                          cache_position=torch.tensor([n], device=tiny.device))
        return seen["values"]

    clean = run()
    with steer(tiny, vector, 2.0, layers=[LAYER], positions="after_prompt", prompt_end=[n]):
        steered = run()
    assert torch.equal(steered[0][: n - 1], clean[0][: n - 1])  # the prompt before its last token: untouched
    torch.testing.assert_close(steered[0][n - 1], clean[0][n - 1] + 2.0 * vector[LAYER], rtol=0, atol=1e-5)
    torch.testing.assert_close(steered[1], clean[1] + 2.0 * vector[LAYER], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("positions", "expected"),
    [(2, [2]), (slice(1, 3), [1, 2]), (torch.tensor([True, False, False, True]), [0, 3])],
)
def test_explicit_positions(tiny, vector, positions, expected):
    ids = ids_of(tiny)
    name = f"blocks.{LAYER}.hook_resid_post"
    clean = resid(tiny, ids, [name])[name]
    with steer(tiny, vector, 1.0, layers=[LAYER], positions=positions):
        steered = resid(tiny, ids, [name])[name]
    moved = [i for i in range(ids.shape[1]) if not torch.equal(steered[i], clean[i])]
    assert moved == expected


def test_operators(tiny, vector):
    ids = ids_of(tiny)
    name = f"blocks.{LAYER}.hook_resid_post"
    clean = resid(tiny, ids, [name])[name]
    unit = vector[LAYER] / vector[LAYER].norm()
    with steer(tiny, vector, 1.0, layers=[LAYER], operator="ablate"):
        ablated = resid(tiny, ids, [name])[name]
    torch.testing.assert_close(ablated @ unit, torch.zeros(ids.shape[1]), rtol=0, atol=1e-4)
    torch.testing.assert_close(ablated, clean - (clean @ unit)[:, None] * unit, rtol=0, atol=1e-5)
    with steer(tiny, vector, 3.0, layers=[LAYER], operator="add_norm_preserving"):
        kept = resid(tiny, ids, [name])[name]
    torch.testing.assert_close(kept.norm(dim=-1), clean.norm(dim=-1), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(kept, clean)


def test_several_vectors_sum(tiny, vector):
    ids = ids_of(tiny)
    name = f"blocks.{LAYER}.hook_resid_post"
    other = vector * -0.5 + vector * 2.0
    with steer(tiny, [(vector, 1.0), (other, 2.0)], layers=[LAYER]):
        both = resid(tiny, ids, [name])[name]
    with steer(tiny, vector, 1.0 + 2.0 * 1.5, layers=[LAYER]):
        single = resid(tiny, ids, [name])[name]
    torch.testing.assert_close(both, single, rtol=0, atol=1e-4)


def test_per_row_deltas_equal_the_loop_of_single_runs(tiny, vector):
    ids = ids_of(tiny).repeat(4, 1)
    coefficients = [0.0, 1.0, -2.0, 4.0]
    rows = RowDeltas.from_rows([[(vector, c)] for c in coefficients])
    with torch.inference_mode():
        with steer(tiny, rows, layers=[LAYER, 2]):
            batched = tiny.hf_model(ids).logits
        for i, c in enumerate(coefficients):
            with steer(tiny, vector, c, layers=[LAYER, 2]):
                single = tiny.hf_model(ids[:1]).logits
            torch.testing.assert_close(batched[i], single[0], rtol=0, atol=1e-4)


def test_ablate_with_row_deltas_uses_each_rows_coefficient(tiny, vector):
    """Row i of an ablating grid equals the single-vector ablation with row i's coefficient."""
    ids = ids_of(tiny)
    name = f"blocks.{LAYER}.hook_resid_post"
    coefficients = [0.0, 0.5, 1.0, -2.0]
    # A zero-coefficient term of another vector does not make a row ambiguous.
    rows = RowDeltas.from_rows([[(vector, c), (vector * -1.0, 0.0)] for c in coefficients])
    with torch.inference_mode(), steer(tiny, rows, layers=[LAYER], operator="ablate"):
        _, cache = tiny.bridge.run_with_cache(ids.repeat(len(coefficients), 1), names_filter=[name])
    clean = resid(tiny, ids, [name])[name]
    unit = vector[LAYER] / vector[LAYER].norm()
    for i, c in enumerate(coefficients):
        with steer(tiny, vector, c, layers=[LAYER], operator="ablate"):
            single = resid(tiny, ids, [name])[name]
        torch.testing.assert_close(cache[name][i].cpu(), single, rtol=0, atol=1e-5)
        # and the oracle itself: c times the component along v is gone
        torch.testing.assert_close(cache[name][i].cpu(), clean - c * (clean @ unit)[:, None] * unit, rtol=0, atol=1e-4)


def test_row_deltas_must_match_the_batch(tiny, vector):
    rows = RowDeltas.from_rows([[(vector, 1.0)], [(vector, 2.0)]])
    with pytest.raises(ValueError, match="2 rows but the batch has 3"), steer(tiny, rows):
        tiny.hf_model(ids_of(tiny).repeat(3, 1))
    assert attached_hooks(tiny) == 0


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_hooks_removed_on_any_exit_and_user_hooks_survive(tiny, vector, error):
    tiny.bridge.add_hook("blocks.0.hook_resid_post", lambda t, hook: t)
    try:
        before = attached_hooks(tiny)
        pre_hooks = len(tiny.hf_model._forward_pre_hooks)
        with pytest.raises(type(error)), steer(tiny, vector, 1.0):
            assert attached_hooks(tiny) > before
            raise error
        assert attached_hooks(tiny) == before
        assert len(tiny.hf_model._forward_pre_hooks) == pre_hooks
    finally:
        tiny.bridge.reset_hooks(including_permanent=True)


def test_bad_steering_requests(tiny, vector):
    with pytest.raises(ValueError, match="operator"), steer(tiny, vector, operator="multiply"):
        pass
    with pytest.raises(TypeError, match="SteeringVector"), steer(tiny, torch.zeros(tiny.d_model)):
        pass
    foreign = SteeringVector({1: torch.ones(tiny.d_model)}, VectorMetadata(model="gpt2", d_model=tiny.d_model))
    with pytest.raises(ValueError, match="gpt2"), steer(tiny, foreign):
        pass
    with pytest.raises(ValueError, match="not in the steering vector"), steer(tiny, vector.select([1]), layers=[2]):
        pass
    with pytest.raises(ValueError, match="needs to know where each prompt ends"):
        with steer(tiny, vector, positions="after_prompt"):
            tiny.hf_model(ids_of(tiny))
    # Negative positions count from an end that a KV cache does not know: refused up front.
    for bad in (-1, slice(-3, None), slice(0, -1)):
        with pytest.raises(ValueError, match="unknown while generating"), steer(tiny, vector, positions=bad):
            pass
        with pytest.raises(ValueError, match="unknown while generating"):
            Steering(vector, positions=bad)
    with pytest.raises(ValueError, match="ablate.*each row's coefficient.*mix several vectors"):
        with steer(tiny, RowDeltas.from_rows([[(vector, 1.0), (vector * 2.0, 1.0)]]), operator="ablate"):
            pass
    with pytest.raises(ValueError, match="ablate.*built from deltas alone"):
        with steer(tiny, RowDeltas({LAYER: torch.ones(1, tiny.d_model)}), operator="ablate"):
            pass
    assert attached_hooks(tiny) == 0


# ----------------------------------------------------------------------------- generation

PROMPTS = ["Tell me about the harbour.", "Hi", "Describe a rainy market at dawn, with vendors arriving."]


def test_zero_steering_reproduces_unsteered_text(tiny, vector):
    plain = generate(tiny, PROMPTS, max_new_tokens=10)
    zero = generate(tiny, PROMPTS, max_new_tokens=10, steering=Steering(vector, 0.0, positions="after_prompt"))
    assert [g.token_ids for g in plain] == [g.token_ids for g in zero]
    strong = generate(tiny, PROMPTS, max_new_tokens=10, steering=Steering(vector, 30.0, layers=[LAYER]))
    assert [g.token_ids for g in plain] != [g.token_ids for g in strong]


@pytest.mark.parametrize("steering", [None, "vector"])
def test_cached_and_uncached_generation_agree(tiny, vector, steering):
    spec = None if steering is None else Steering(vector, 4.0, layers=[LAYER], positions="after_prompt")
    cached = generate(tiny, PROMPTS, max_new_tokens=12, steering=spec)
    uncached = generate(tiny, PROMPTS, max_new_tokens=12, steering=spec, use_cache=False)
    assert [g.token_ids for g in cached] == [g.token_ids for g in uncached]


def test_generation_returns_only_the_completion(tiny):
    (out,) = generate(tiny, ["Write one line."], max_new_tokens=6)
    assert out.prompt == "Write one line."
    assert 1 <= len(out.token_ids) <= 6
    assert out.text == tiny.tokenizer.decode(list(out.token_ids), skip_special_tokens=True)
    assert out.prompt_ids == tuple(tiny.encode([tiny.format_chat("Write one line.")])[0])


def test_sampling_is_reproducible_and_independent_of_batching(tiny):
    a = generate(tiny, PROMPTS, max_new_tokens=8, temperature=1.0, seed=7)
    b = generate(tiny, PROMPTS[::-1], max_new_tokens=8, temperature=1.0, seed=7, batch_size=1)
    assert [g.token_ids for g in a] == [g.token_ids for g in b[::-1]]
    c = generate(tiny, PROMPTS, max_new_tokens=8, temperature=1.0, seed=8)
    assert [g.token_ids for g in a] != [g.token_ids for g in c]
    twice = generate(tiny, [PROMPTS[0], PROMPTS[0]], max_new_tokens=8, temperature=1.0, seed=7)
    assert twice[0].token_ids == a[0].token_ids and twice[1].token_ids != twice[0].token_ids


def test_sample_ids_share_random_streams_across_rows(tiny):
    # A grid repeats each prompt once per cell; with sample ids, every cell of a prompt draws the same
    # random numbers (common random numbers), and different ids draw different ones.
    rows = [PROMPTS[0]] * 3
    same = generate(tiny, rows, max_new_tokens=8, temperature=1.0, seed=7, sample_ids=[0, 0, 1])
    assert same[0].token_ids == same[1].token_ids != same[2].token_ids
    with pytest.raises(ValueError, match="sample_ids has 2 entries for 3 prompts"):
        generate(tiny, rows, max_new_tokens=2, temperature=1.0, seed=7, sample_ids=[0, 1])


def test_greedy_generation_of_equal_length_prompts_ignores_the_batch(tiny):
    by_length: dict[int, list[str]] = {}
    for pair in ist.load_builtin("moral_pairs"):
        by_length.setdefault(len(tiny.encode([tiny.format_chat(pair.positive)])[0]), []).append(pair.positive)
    prompts = max(by_length.values(), key=len)[:3]
    assert len(prompts) == 3
    together = generate(tiny, prompts, max_new_tokens=10)
    alone = [generate(tiny, [p], max_new_tokens=10)[0] for p in prompts]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]


def test_row_deltas_in_generation_match_single_runs(tiny, vector):
    coefficients = [0.0, 3.0, -3.0, 6.0]
    rows = RowDeltas.from_rows([[(vector, c)] for c in coefficients])
    grid = generate(tiny, [PROMPTS[0]] * 4, max_new_tokens=8,
                    steering=Steering(rows, layers=[LAYER], positions="after_prompt"))
    for c, out in zip(coefficients, grid, strict=True):
        (single,) = generate(tiny, [PROMPTS[0]], max_new_tokens=8,
                             steering=Steering(vector, c, layers=[LAYER], positions="after_prompt"))
        assert out.token_ids == single.token_ids


def test_generation_argument_errors(tiny, vector):
    with pytest.raises(ValueError, match="seed"):
        generate(tiny, PROMPTS, temperature=0.7)
    with pytest.raises(ValueError, match="non-empty"):
        generate(tiny, [])
    with pytest.raises(ValueError, match="rows for 3 prompts"):
        generate(tiny, PROMPTS, steering=Steering(RowDeltas.from_rows([[(vector, 1.0)]])))
    with pytest.raises(TypeError, match="Steering"):
        generate(tiny, PROMPTS, steering=vector)


def test_min_new_tokens_holds_back_the_end_token(tiny):
    free = generate(tiny, PROMPTS, max_new_tokens=12)
    held = generate(tiny, PROMPTS, max_new_tokens=12, min_new_tokens=12)
    assert all(len(g.token_ids) == 12 for g in held)
    for a, b in zip(free, held, strict=True):
        if a.finished:  # identical until the point where the free run chose to stop
            assert b.token_ids[: len(a.token_ids) - 1] == a.token_ids[:-1]
    with pytest.raises(ValueError, match="min_new_tokens"):
        generate(tiny, PROMPTS, max_new_tokens=3, min_new_tokens=4)


@pytest.mark.parametrize("spec", ["tiny-random", "tiny-random:llama3", "tiny-random:gemma2"])
def test_the_prompt_end_is_found_whatever_the_template_does_to_the_prompt(spec):
    # Llama 3 and Gemma templates trim the content, so a prompt with surrounding whitespace is not
    # in the formatted text; "assistant" and "model" also occur in the assistant header. What follows
    # the prompt is the template's tail, the same number of tokens for every prompt.
    from interp_steer.generation import format_prompts

    model = ist.load_model(spec)
    prompts = ["Tell me about the harbour.", "  Tell me about the harbour. \n", "assistant", "model"]
    texts, lengths = format_prompts(model, prompts, chat=True, system=None)
    ids = model.encode(texts)
    tails = {len(row) - n for row, n in zip(ids, lengths, strict=True)}
    assert len(tails) == 1
    for prompt, row, n in zip(prompts, ids, lengths, strict=True):
        assert model.tokenizer.decode(row[:n]).rstrip().endswith(prompt.strip())
    (out,) = generate(model, ["  Tell me about the harbour. \n"], max_new_tokens=2)
    assert len(out.token_ids) >= 1


# ----------------------------------------------------------------------------- positions in row coordinates

RAGGED = ["Hi", "Tell me about the harbour.", "Describe a rainy market at dawn, with vendors arriving."]
_ROW_MASK = torch.rand(len(RAGGED), 40, generator=torch.Generator().manual_seed(3)) < 0.3
POSITION_KINDS = {
    "int": 2,
    "slice": slice(1, 8, 2),
    "open_slice": slice(3, None),
    "mask_1d": _ROW_MASK[1],
    "mask_2d": _ROW_MASK,
    "after_prompt": "after_prompt",
}


def _row_rule(positions, i):
    return positions[i : i + 1] if isinstance(positions, torch.Tensor) and positions.ndim == 2 else positions


@pytest.mark.parametrize("kind", POSITION_KINDS)
def test_positions_in_a_forward_do_not_depend_on_padding_or_the_batch(tiny, vector, kind):
    """Oracle: each prompt's steered logits are the same alone and in a ragged batch, padded left or
    right, through the Hugging Face model (with position ids) or the bridge (which derives them)."""
    positions = POSITION_KINDS[kind]
    tokens = tiny.encode(RAGGED)
    prompt_end = [max(1, len(t) - 2) for t in tokens]  # a prompt followed by a two-token answer

    def run_alone(i, steered=True):
        scope = steer(tiny, vector, 4.0, layers=[LAYER], positions=_row_rule(positions, i),
                      prompt_end=prompt_end[i : i + 1]) if steered else contextlib.nullcontext()
        with torch.inference_mode(), scope:
            return tiny.hf_model(torch.tensor([tokens[i]], device=tiny.device)).logits[0].cpu()

    alone = [run_alone(i) for i in range(len(tokens))]
    assert any(not torch.allclose(run_alone(i, False), alone[i]) for i in range(len(tokens)))  # it steers
    for side in ("left", "right"):
        ids, mask = tiny.pad(tokens, padding_side=side)
        runs = {
            "hf_model": lambda: tiny.hf_model(input_ids=ids, attention_mask=mask,  # noqa: B023
                                              position_ids=(mask.cumsum(-1) - 1).clamp_min(0)).logits,  # noqa: B023
            "bridge": lambda: tiny.bridge(ids, attention_mask=mask),  # noqa: B023
        }
        for how, run in runs.items():
            with torch.inference_mode(), steer(tiny, vector, 4.0, layers=[LAYER], positions=positions,
                                               prompt_end=prompt_end):
                logits = run()
            for i in range(len(tokens)):
                torch.testing.assert_close(logits[i][mask[i].bool()].cpu(), alone[i], rtol=0, atol=1e-4,
                                           msg=lambda m: f"{side}-padded {how}, row {i}: {m}")  # noqa: B023


@pytest.mark.parametrize("kind", POSITION_KINDS)
def test_positions_in_generation_do_not_depend_on_the_batch(tiny, vector, kind):
    """Oracle: under the KV cache and left padding, each prompt generates the same steered tokens
    alone as in a batch with longer and shorter prompts."""
    spec = Steering(vector, 6.0, layers=[LAYER], positions=POSITION_KINDS[kind])
    together = generate(tiny, RAGGED, max_new_tokens=5, chat=False, steering=spec)
    alone = [generate(tiny, [p], max_new_tokens=5, chat=False, steering=spec.rows([i]))[0]
             for i, p in enumerate(RAGGED)]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]


@pytest.mark.parametrize("chat", [True, False])
def test_after_prompt_steers_the_first_generated_token(tiny, vector, chat):
    """The first new token is read from the prompt's last position, so after_prompt must steer it,
    with or without a chat template."""
    plain = generate(tiny, PROMPTS, max_new_tokens=1, chat=chat)
    steered = generate(tiny, PROMPTS, max_new_tokens=1, chat=chat,
                       steering=Steering(vector, 30.0, layers=[LAYER], positions="after_prompt"))
    for a, b in zip(plain, steered, strict=True):
        assert a.token_ids[0] != b.token_ids[0]
