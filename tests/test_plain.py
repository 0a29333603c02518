"""The plain view (``interp_steer._plain``): generation, activation collection and perplexity
without the bridge's wrappers must give the bridged model's tokens and numbers exactly, route every
hook it claims to, and fall back where it cannot. Its
decoding steps use grouped-query attention, equal to eager attention to float rounding (tested
directly below); on these models that changes no token.

The oracle is the bridged path itself: ``generate`` with ``forward_module`` replaced by one that
always returns the bridged Hugging Face model (the code path before the plain view existed).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

import interp_steer as ist
import interp_steer.activations as activations
import interp_steer.generation as generation
import interp_steer.likelihood as likelihood
from conftest import attached_hooks
from interp_steer import _plain
from interp_steer._plain import grouped as plain_grouped
from interp_steer._plain import hooks as plain_hooks
from interp_steer._plain import resume as plain_resume
from interp_steer.directions import SteeringVector, VectorMetadata
from interp_steer.steering import RowDeltas, Steering
from interp_steer.tiny_models import FAMILIES

PROMPTS = ["Tell me about the harbour.", "Hi", "Describe a rainy market at dawn, with vendors arriving."]


@pytest.fixture(scope="module", params=list(FAMILIES))
def model(request) -> ist.Model:
    return ist.load_model(f"tiny-random:{request.param}")


def bridged_only():
    """Generation on the bridged model, as before the plain view."""
    return ist.fast_path(False)


@contextlib.contextmanager
def record_modules(calls: list[bool], where=generation):
    """Record, for every forward_module call of the module ``where`` (generation by default),
    whether it chose the plain view."""
    original = where.forward_module

    @contextlib.contextmanager
    def spy(model):
        with original(model) as module:
            calls.append(module is not model.hf_model)
            yield module

    where.forward_module = spy
    try:
        yield
    finally:
        where.forward_module = original


def random_vector(model: ist.Model, hook_point: str, seed: int = 0) -> SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    directions = {layer: 4 * torch.randn(model.d_model, generator=gen) for layer in (1, 2)}
    return SteeringVector(directions, VectorMetadata(model=model.name, d_model=model.d_model, hook_point=hook_point))


def tokens(model: ist.Model, steering: Steering | None = None, **kwargs) -> list[tuple[int, ...]]:
    out = ist.generate(model, PROMPTS, steering=steering, max_new_tokens=8, min_new_tokens=8, progress=False, **kwargs)
    return [g.token_ids for g in out]


def test_plain_forward_equals_bridged_bit_for_bit(model):
    """Where there is a plain view its logits are the bridge's to the bit; GPT-2's bridge computes
    attention its own way (rounding differently), and there the model has none."""
    view = _plain.plain_view(model)
    assert (view is None) == model.name.startswith("tiny-random:gpt2")
    view = view or _plain.PlainView(model.hf_model)
    ids, mask = model.pad(model.encode(generation.format_prompts(model, PROMPTS, chat=None, system=None)[0]),
                          padding_side="left")
    with torch.inference_mode():
        bridged = model.hf_model(input_ids=ids, attention_mask=mask).logits
        plain = view.root(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(plain, bridged) == (_plain.plain_view(model) is not None)
    torch.testing.assert_close(plain, bridged)
    # The view shares the weights: no parameter was copied.
    assert {p.data_ptr() for p in view.root.parameters()} <= {p.data_ptr() for p in model.hf_model.parameters()}


def test_grouped_decoding_attention_matches_eager_and_is_used(model, monkeypatch):
    """A decoding step on the plain view runs grouped-query attention (no eager fallback in any
    layer), within float rounding of the family's own eager attention; the prefill runs eager
    attention and stays the bridge's bit for bit; the bridged model keeps its own config."""
    view = _plain.plain_view(model)
    if view is None:
        assert model.name.startswith("tiny-random:gpt2")
        return
    assert model.hf_model.config._attn_implementation == "eager"
    assert view.grouped_config._attn_implementation == plain_grouped.GROUPED
    fallbacks = []
    eager = plain_grouped.eager_attention
    monkeypatch.setattr(plain_grouped, "eager_attention", lambda module: fallbacks.append(module) or eager(module))
    texts = generation.format_prompts(model, PROMPTS, chat=None, system=None)[0]
    ids, mask = model.pad(model.encode(texts), padding_side="left")

    @torch.inference_mode()
    def run(root, grouped):
        fallbacks.clear()
        with ist.fast_path(grouped=grouped):
            first = root(input_ids=ids, attention_mask=mask, use_cache=True)
            prefill_fallbacks = len(fallbacks)
            nxt = first.logits[:, -1].argmax(-1, keepdim=True)
            longer = torch.cat([mask, torch.ones_like(nxt)], dim=1)
            # Decode well past Gemma's and Mistral's sliding windows.
            logits, cache = [], first.past_key_values
            for _ in range(20):
                out = root(input_ids=nxt, attention_mask=longer, past_key_values=cache, use_cache=True)
                cache, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
                longer = torch.cat([longer, torch.ones_like(nxt)], dim=1)
                logits.append(out.logits)
        return first.logits, torch.cat(logits, 1), prefill_fallbacks, len(fallbacks) - prefill_fallbacks

    prefill, decoded, prefill_eager, decode_eager = run(view.root, True)
    assert prefill_eager == model.n_layers and decode_eager == 0
    exact_prefill, exact_decoded, _, decode_eager = run(view.root, False)
    assert decode_eager == 20 * model.n_layers
    bridged_prefill, bridged_decoded, _, _ = run(model.hf_model, True)
    assert torch.equal(prefill, bridged_prefill) and torch.equal(exact_decoded, bridged_decoded)
    torch.testing.assert_close(decoded, exact_decoded, rtol=1e-5, atol=1e-5)
    assert torch.equal(decoded.argmax(-1), exact_decoded.argmax(-1))


@pytest.mark.parametrize("hook_point", ["resid_pre", "resid_post"])
@pytest.mark.parametrize("positions", ["all", "after_prompt"])
def test_steered_generation_identical_and_plain(model, hook_point, positions):
    steering = Steering(random_vector(model, hook_point), 1.0, positions=positions)
    calls: list[bool] = []
    with record_modules(calls):
        plain = tokens(model, steering)
    with bridged_only():
        bridged = tokens(model, steering)
        unsteered = tokens(model)
    assert plain == bridged
    assert plain != unsteered  # the steering acted, so the routed hooks ran
    # Every forward pass of this generation runs on the plain view, where the model has one.
    assert calls and all(calls) == (_plain.plain_view(model) is not None) and len(set(calls)) == 1
    assert attached_hooks(model) == 0
    view = _plain.plain_view(model)
    assert view is None or not any(plain_hooks.has_hooks(m) for m in view.root.modules() if m is not view.root)


def test_per_row_steering_and_sampling_identical(model):
    v1, v2 = random_vector(model, "resid_post", 1), random_vector(model, "resid_post", 2)
    rows = RowDeltas.from_rows([[(v1, 1.0)], [(v2, 0.5)], [(v1, -1.0), (v2, 1.0)]])
    steering = Steering(rows, positions="after_prompt")
    plain = tokens(model, steering, temperature=0.8, seed=3)
    with bridged_only():
        assert plain == tokens(model, steering, temperature=0.8, seed=3)


def test_resid_mid_steering_falls_back_identically(model):
    steering = Steering(random_vector(model, "resid_mid"), 1.0)
    calls: list[bool] = []
    with record_modules(calls):
        plain = tokens(model, steering)
    with bridged_only():
        assert plain == tokens(model, steering)
    assert calls and not any(calls)  # resid_mid lies inside a block: no plain module boundary


@pytest.mark.parametrize("name", ["hook_resid_post", "hook_resid_pre", "hook_attn_out", "hook_mlp_out"])
def test_user_hooks_see_the_same_calls(model, name):
    """A hook of the user's own runs on the plain view exactly as in the bridge (or the generation
    falls back to the bridge): same calls, same shapes, same tokens."""
    def run() -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], list[bool]]:
        seen: list[tuple[int, ...]] = []
        calls: list[bool] = []

        def hook(value, hook):
            seen.append(tuple(value.shape))
            return value * 1.5

        with record_modules(calls), model.bridge.hooks(fwd_hooks=[(f"blocks.1.{name}", hook)]):
            out = tokens(model)
        return seen, out, calls

    plain_seen, plain_out, calls = run()
    with bridged_only():
        bridged_seen, bridged_out, _ = run()
    assert plain_seen == bridged_seen and plain_out == bridged_out
    assert len(plain_seen) == 8  # one prefill and seven cached steps
    if _plain.plain_view(model) is not None and (name in ("hook_resid_post", "hook_resid_pre")
                                                  or model.name == "tiny-random:0"):
        assert all(calls), "block boundaries (and, on the Llama family, attention and MLP outputs) route"


def test_unroutable_hook_falls_back_to_the_bridge(model):
    """A hook inside a block (resid_mid, attention pattern) is not at a component boundary: the
    generation runs on the bridge, so the hook still fires."""
    fired: list[str] = []
    names = ["blocks.1.hook_resid_mid", "blocks.1.attn.hook_pattern"]

    def hook(value, hook):
        fired.append(hook.name)

    calls: list[bool] = []
    with record_modules(calls), model.bridge.hooks(fwd_hooks=[(n, hook) for n in names if n in model.bridge.hook_dict]):
        tokens(model)
    assert calls and not any(calls)
    assert fired


def test_torch_hook_on_a_bridged_module_falls_back(model):
    """A PyTorch hook someone put on one of the bridged model's modules would not run on the plain
    view's copy of it, so generation stays on the bridge."""
    seen: list[int] = []
    handle = model.hf_model.lm_head.register_forward_hook(lambda m, a, out: seen.append(1))
    calls: list[bool] = []
    try:
        with record_modules(calls):
            tokens(model)
    finally:
        handle.remove()
    assert calls and not any(calls) and len(seen) == 8


def test_no_view_for_a_model_with_replaced_forwards():
    """Accelerate's dispatch replaces ``forward`` on modules (device moves, offloading): the plain
    view would skip that, so there is none."""
    from accelerate.hooks import ModelHook, add_hook_to_module

    model = ist.load_model("tiny-random")
    add_hook_to_module(model.hf_model.model.layers[0], ModelHook())
    assert _plain.plain_view(model) is None
    with _plain.forward_module(model) as module:
        assert module is model.hf_model


def test_first_generation_under_hooks_still_gets_the_view():
    """The bit-identity check needs both models bare: a first generation under the user's hooks
    (or steering) must neither run it with hooks on (which would fire them on its input) nor give up
    the view for good."""
    model = ist.load_model("tiny-random")
    fired: list[int] = []

    def hook(value, hook):
        fired.append(value.shape[0])

    with model.bridge.hooks(fwd_hooks=[("blocks.1.hook_resid_post", hook)]):
        assert _plain.plain_view(model) is None  # undecided while hooked, not cached
        tokens(model)
    assert set(fired) == {len(PROMPTS)}  # only the generation's own rows reached the hook
    assert _plain.plain_view(model) is not None


COLLECTED = ["Tell me about the harbour at dawn.", "Hi", "A quiet one", "Describe a rainy market, with vendors arriving."]


def collections(model: ist.Model, hook_point: str) -> dict[tuple, torch.Tensor]:
    """Activations at the first and last layer (the forward stops at the last one's hook) for every
    read position, padding side and batching."""
    return {(pad_free, side, position): ist.collect_activations(
                model, COLLECTED, layers=[0, model.n_layers - 1], position=position, hook_point=hook_point,
                pad_free=pad_free, padding_side=side, batch_size=3, progress=False).values
            for pad_free in (True, False) for side in ("right", "left") for position in ("last", "mean", "all", 1)}


@pytest.mark.parametrize("hook_point", ["resid_pre", "resid_mid", "resid_post"])
def test_collection_identical_and_plain(model, hook_point):
    """Activation collection runs on the plain view where the model has one (its hooks routed, the
    forward cut short at the deepest layer) and gives the bridge's activations to the bit, padded
    batches on either side included; ``resid_mid`` lies inside a block and stays on the bridge."""
    calls: list[bool] = []
    with record_modules(calls, activations):
        plain = collections(model, hook_point)
    with bridged_only():
        bridged = collections(model, hook_point)
    assert plain.keys() == bridged.keys() and all(torch.equal(plain[k], bridged[k]) for k in plain)
    routed = _plain.plain_view(model) is not None and hook_point != "resid_mid"
    assert calls and set(calls) == {routed}
    assert attached_hooks(model) == 0
    view = _plain.plain_view(model)  # and no routing hook is left on the plain modules
    assert view is None or not any(plain_hooks.has_hooks(m) for m in view.root.modules() if m is not view.root)


def test_collection_under_steering_identical(model):
    """The collision study's decomposition collects inside a steering scope (from each prompt's end
    on): the steering's hooks and the collection's both route, with the bridge's results."""
    _plain.plain_view(model)  # built before the steering's hooks, as the study's earlier stages do
    texts = generation.format_prompts(model, PROMPTS, chat=None, system=None)[0]
    ends = generation.format_prompts(model, PROMPTS, chat=None, system=None)[1]
    vector = random_vector(model, "resid_post")

    def run() -> torch.Tensor:
        with ist.steer(model, vector, positions="after_prompt", prompt_end=ends):
            return ist.collect_activations(model, texts, layers=[1, 2], position="all", pad_free=False,
                                           progress=False).values

    calls: list[bool] = []
    with record_modules(calls, activations):
        plain = run()
    with bridged_only():
        bridged = run()
        unsteered = ist.collect_activations(model, texts, layers=[1, 2], position="all", progress=False).values
    assert torch.equal(plain, bridged) and not torch.equal(plain, unsteered)
    assert calls and set(calls) == {_plain.plain_view(model) is not None}


def test_perplexity_identical_and_plain(model):
    """Completion perplexity (prompt prefix shared) and sequence perplexity run on the plain view
    with the bridge's values to the bit."""
    outputs = ist.generate(model, PROMPTS * 2, max_new_tokens=6, min_new_tokens=6, progress=False)
    sequences = model.encode(COLLECTED)

    def run() -> tuple[np.ndarray, np.ndarray]:
        return likelihood.completion_perplexity(model, outputs), likelihood.sequence_perplexity(model, sequences)

    calls: list[bool] = []
    with record_modules(calls, likelihood):
        plain = run()
    with bridged_only():
        bridged = run()
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(plain, bridged, strict=True))
    assert np.isfinite(plain[0]).all() and calls and set(calls) == {_plain.plain_view(model) is not None}


def test_room_cache_gives_dynamic_cache_logits(model):
    """The generation loop's cache (written in place, ``interp_steer._cache``) gives Hugging Face's
    concatenating cache's logits to the bit: after a prefill, after rows are selected (a shared
    prefill's copy), and past its initial room, where it grows."""
    from transformers import DynamicCache

    from interp_steer._cache import room_cache

    texts = generation.format_prompts(model, PROMPTS, chat=None, system=None)[0]
    ids, mask = model.pad(model.encode(texts), padding_side="left")
    rows = torch.tensor([0, 1, 1, 2, 0])

    @torch.inference_mode()
    def run(cache) -> torch.Tensor:
        with _plain.forward_module(model) as hf:
            logits = [hf(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True).logits[:, -1]]
            cache.batch_select_indices(rows)
            longer = mask[rows]
            for _ in range(6):
                step = logits[-1][rows if len(logits) == 1 else slice(None)].argmax(-1, keepdim=True)
                longer = torch.cat([longer, torch.ones_like(step)], dim=1)
                logits.append(hf(input_ids=step, attention_mask=longer, past_key_values=cache,
                                 use_cache=True).logits[:, -1])
        return torch.cat(logits)

    cache = room_cache(ids.shape[1] + 2)
    assert torch.equal(run(cache), run(DynamicCache()))
    layer = cache.layers[0]  # the keys handed to attention are a view of the layer's room
    assert layer.keys.shape[-2] == ids.shape[1] + 6 and layer.keys.data_ptr() == layer._room[0].data_ptr()


def test_room_cache_refuses_states_of_another_batch_and_grows_geometrically():
    """An in-place write would broadcast one row's states over the batch where concatenation
    raises: the room layer raises too. Past its room it doubles, so later steps write in place."""
    from interp_steer._cache import RoomLayer

    layer = RoomLayer(capacity=4)
    layer.update(torch.zeros(2, 3, 4, 8), torch.zeros(2, 3, 4, 8))
    with pytest.raises(ValueError, match="batch, heads"):
        layer.update(torch.ones(1, 3, 1, 8), torch.ones(1, 3, 1, 8))
    keys, values = layer.update(torch.ones(2, 3, 1, 8), 2 * torch.ones(2, 3, 1, 8))
    room = layer._room[0]
    assert keys.shape == (2, 3, 5, 8) and room.shape[-2] == 10 and float(keys[..., 4, :].sum()) == 48
    for _ in range(5):
        keys, values = layer.update(torch.ones(2, 3, 1, 8), torch.ones(2, 3, 1, 8))
    assert layer._room[0] is room and keys.shape[-2] == 10 and torch.equal(values[..., 4, :], 2 * torch.ones(2, 3, 8))


def _skipped_calls(view: _plain.PlainView, model: ist.Model, upto: int) -> tuple[list[str], list]:
    """Record calls of every submodule of the plain blocks 0..upto (what resuming must not run)."""
    calls: list[str] = []
    handles = [module.register_forward_pre_hook(lambda *_args, name=name: calls.append(name))
               for i, block in enumerate(plain_resume._plain_blocks(model, view)[: upto + 1])
               for name, module in block.named_modules(prefix=f"block{i}") if module is not block]
    return calls, handles


def test_resuming_after_a_block_gives_the_whole_forwards_readings_bit_for_bit(model):
    """A steered forward that resumes after block 1 from the clean forward's output of the same batch
    reads the same tensors as a whole steered forward, at the steered block and after it, without
    running blocks 0 and 1; a hook on a skipped block turns resuming off (its readings stay right),
    and an output of another batch is refused."""
    view = _plain.plain_view(model)
    if view is None:  # GPT-2: no plain view, so nothing is skipped and the forwards run whole
        with _plain.resumed(model, 1, torch.zeros(1)) as on:
            assert not on
        return
    texts = generation.format_prompts(model, PROMPTS, chat=None, system=None)[0]
    ids, mask = model.pad(model.encode(texts), padding_side="right")
    names = [model.hook_name(layer, "resid_post") for layer in (1, 2, 3)]
    vector = random_vector(model, "resid_post").select([1])
    ends = [3, 1, 5]

    def read(hook_names=names):
        return activations._forward_collect(model, ids, mask, hook_names, hook_names[-1], "all")

    with _plain.block_output(model, 1) as recorded:
        clean = read()
    assert len(recorded) == 1 and recorded[0].shape == (*ids.shape, model.d_model)
    with ist.steer(model, vector, positions="after_prompt", prompt_end=ends):
        whole = read()
        calls, handles = _skipped_calls(view, model, 1)
        try:
            with _plain.resumed(model, 1, recorded[0]) as on:
                resumed = read()
        finally:
            for handle in handles:
                handle.remove()
    assert on and calls == []
    for name in names:
        assert torch.equal(resumed[name], whole[name])
    assert not torch.equal(whole[names[0]], clean[names[0]])  # the steering did act at block 1
    # Reading block 0's output needs block 0: resuming steps aside.
    early = [model.hook_name(0, "resid_post"), *names]
    with ist.steer(model, vector, positions="after_prompt", prompt_end=ends):
        expected = read(early)
        with model.bridge.hooks(fwd_hooks=[(early[0], lambda t, hook: t)]), \
                _plain.resumed(model, 1, recorded[0]) as on:
            got = read(early)
    assert not on and all(torch.equal(got[n], expected[n]) for n in early)
    # So does a hook inside a skipped block (its attention output), which would otherwise not fire.
    inner = next(name for name in model.bridge.hook_dict if name.startswith("blocks.0.") and "attn" in name
                 and name.endswith("hook_out") and id(model.bridge.hook_dict[name]) in view.routes)
    with model.bridge.hooks(fwd_hooks=[(inner, lambda t, hook: t)]), _plain.resumed(model, 1, recorded[0]) as on:
        assert not on
    # A hook that changes block 1's output in place changes neither the record nor the next forward.
    kept = recorded[0].clone()

    def in_place(t, hook):
        t += 1.0
        return t

    with ist.steer(model, vector, positions="after_prompt", prompt_end=ends):
        with model.bridge.hooks(fwd_hooks=[(names[0], in_place)]), _plain.resumed(model, 1, recorded[0]) as on:
            read()
        assert on and torch.equal(recorded[0], kept)
        with _plain.resumed(model, 1, recorded[0]):
            assert all(torch.equal(read()[name], whole[name]) for name in names)
            with pytest.raises(RuntimeError, match="does not nest"), _plain.resumed(model, 1, recorded[0]):
                pass
    with _plain.resumed(model, 1, recorded[0][:1]), pytest.raises(ValueError, match="same batch"):
        read()
    assert not any(plain_hooks.has_hooks(m) for m in view.root.modules())
    assert all("forward" not in block.__dict__ for block in plain_resume._plain_blocks(model, view))


def test_transformers_output_capturing_hooks_do_not_stop_the_plain_view():
    """Asking the model for hidden states (run_with_cache does) makes transformers install
    output-capturing hooks on its layers, which stay. They act only while a call collects outputs,
    so the plain view must still stand in afterwards, with the same tokens."""
    model = ist.load_model("tiny-random:3")
    before = tokens(model)
    ids = torch.tensor(model.encode(["The ferry leaves at seven."]), device=model.device)
    with torch.inference_mode():
        model.hf_model(ids, output_hidden_states=True)
    assert any(plain_hooks.inert(hook) for m in model.hf_model.modules() for hook in m._forward_hooks.values())
    calls: list[bool] = []
    with record_modules(calls):
        after = tokens(model)
    assert calls and all(calls) and after == before
    with bridged_only():
        assert tokens(model) == before
