"""Activation collection on the tiny model, checked against the bridge's own cache."""

from __future__ import annotations

import pytest
import torch
from conftest import attached_hooks, bridge_cache

import interp_steer as ist
from interp_steer import activations as act_module


@pytest.mark.parametrize("point", ["resid_post", "resid_pre", "resid_mid"])
def test_values_equal_the_bridge_cache(tiny, texts, point):
    layers = [0, 2, 3]
    acts = ist.collect_activations(tiny, texts, layers=layers, hook_point=point, batch_size=3)
    names = [f"blocks.{layer}.hook_{point}" for layer in layers]
    assert acts.hook_names == names
    for i, text in enumerate(texts):
        cache = bridge_cache(tiny, text, names)
        for j, name in enumerate(names):
            torch.testing.assert_close(acts.values[i, j], cache[name][-1], rtol=1e-5, atol=1e-5)


def test_positions_mean_all_and_index(tiny, texts):
    names = ["blocks.1.hook_resid_post"]
    mean = ist.collect_activations(tiny, texts, layers=[1], position="mean", batch_size=4)
    with_first = ist.collect_activations(tiny, texts, layers=[1], position="mean_with_first", batch_size=4)
    every = ist.collect_activations(tiny, texts, layers=[1], position="all", batch_size=4)
    second = ist.collect_activations(tiny, texts, layers=[1], position=1, batch_size=4)
    first_from_end = ist.collect_activations(tiny, texts, layers=[1], position=-2, batch_size=4)
    groups = every.per_text()
    assert len(every) == sum(len(ids) for ids in tiny.encode(texts))
    for i, text in enumerate(texts):
        resid = bridge_cache(tiny, text, names)[names[0]]
        torch.testing.assert_close(groups[i][:, 0], resid, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(with_first.values[i, 0], resid.mean(0), rtol=1e-5, atol=1e-5)
        # "mean" leaves the first token out, except in a one-token text (there is nothing else).
        rest = resid[1:] if resid.shape[0] > 1 else resid
        torch.testing.assert_close(mean.values[i, 0], rest.mean(0), rtol=1e-5, atol=1e-5)
        if resid.shape[0] >= 2:
            torch.testing.assert_close(second.values[i, 0], resid[1], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(first_from_end.values[i, 0], resid[-2], rtol=1e-5, atol=1e-5)


def test_index_outside_a_text_raises_naming_it(tiny, texts):
    with pytest.raises(IndexError, match=r"texts\[1\]"):
        ist.collect_activations(tiny, texts, layers=[0], position=5)


@pytest.mark.parametrize("position", ["last", "mean", "mean_with_first", "all"])
def test_batch_size_and_padding_side_do_not_change_results(tiny, texts, position):
    # Equal-length texts so that pad-free batches really hold several texts.
    texts = texts + [t.upper() for t in texts] + [t[::-1] for t in texts]
    single = ist.collect_activations(tiny, texts, layers=[0, 3], position=position, batch_size=1)
    for bs in (2, 5, 64):
        pad_free = ist.collect_activations(tiny, texts, layers=[0, 3], position=position, batch_size=bs)
        assert torch.equal(pad_free.values, single.values)  # bit-identical, see the docstring
        assert torch.equal(pad_free.text_index, single.text_index)
        for side in ("right", "left"):
            padded = ist.collect_activations(
                tiny, texts, layers=[0, 3], position=position, batch_size=bs, pad_free=False, padding_side=side
            )
            torch.testing.assert_close(padded.values, single.values, rtol=1e-5, atol=1e-5)
            assert torch.equal(padded.text_index, single.text_index)


@pytest.mark.parametrize("side", ["right", "left"])
def test_mean_pooling_ignores_the_first_token(side):
    # The default mean is the mean of tokens 1..n-1 of each text: whatever the first token's
    # residual is (an attention sink, or a BOS), and wherever the padding is, it does not move.
    from interp_steer.activations import _reduce

    lengths = [5, 2, 1, 7]
    width = max(lengths)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1 if side == "right" else 0
        if side == "left":
            mask[row, width - n :] = 1
    resid = torch.randn(len(lengths), width, 6)
    first = mask.argmax(dim=1)
    sink = resid.clone()
    sink[torch.arange(len(lengths)), first] *= 1e4
    pooled = _reduce(resid, mask, "mean")
    several = torch.tensor(lengths) > 1  # a one-token text keeps its only token
    torch.testing.assert_close(_reduce(sink, mask, "mean")[several], pooled[several])
    for row, n in enumerate(lengths):
        real = resid[row][mask[row].bool()]
        expected = real[1:].mean(0) if n > 1 else real[0]
        torch.testing.assert_close(pooled[row], expected)
        torch.testing.assert_close(_reduce(resid, mask, "mean_with_first")[row], real.mean(0))
    # The explicit option does see the first token.
    assert not torch.allclose(_reduce(sink, mask, "mean_with_first"), _reduce(resid, mask, "mean_with_first"))


@pytest.mark.parametrize("position", ["mean", "mean_with_first"])
def test_mean_pooling_accumulates_in_float32_for_bfloat16_models(position):
    # Summing 100 bfloat16 rows in bfloat16 is off by ~1e-2; the pooled mean must equal the float32
    # mean of the (exactly upcast) per-token rows.
    model = ist.load_model("tiny-random", dtype="bfloat16")
    texts = ["A long corridor with many doors, each painted a different colour. " * 4, "She laughs."]
    pooled = ist.collect_activations(model, texts, layers=[1, 3], position=position)
    every = ist.collect_activations(model, texts, layers=[1, 3], position="all")
    assert pooled.values.dtype == every.values.dtype == torch.float32
    for i, rows in enumerate(every.per_text()):
        expected = (rows[1:] if position == "mean" else rows).double().mean(0).float()
        torch.testing.assert_close(pooled.values[i], expected, rtol=1e-6, atol=1e-6)


def test_batch_plans():
    from interp_steer.activations import _plan_batches

    lengths = [3, 5, 3, 3, 5, 1]
    assert _plan_batches(lengths, 2, pad_free=True) == [[1, 4], [0, 2], [3], [5]]
    assert _plan_batches(lengths, 4, pad_free=False) == [[1, 4, 0, 2], [3, 5]]
    for plan in (_plan_batches(lengths, 3, True), _plan_batches(lengths, 3, False)):
        assert sorted(i for batch in plan for i in batch) == list(range(len(lengths)))


def test_rows_follow_input_order(tiny, texts):
    forward = ist.collect_activations(tiny, texts, layers=[2])
    backward = ist.collect_activations(tiny, texts[::-1], layers=[2])
    torch.testing.assert_close(backward.values.flip(0), forward.values, rtol=0, atol=1e-5)


def test_layer_order_is_kept_and_at_selects_by_layer(tiny, texts):
    acts = ist.collect_activations(tiny, texts, layers=[3, 0])
    assert acts.layers == (3, 0)
    both = ist.collect_activations(tiny, texts, layers=[0, 3])
    torch.testing.assert_close(acts.at(3), both.at(3))
    torch.testing.assert_close(acts.values[:, 1], both.values[:, 0])
    with pytest.raises(KeyError, match="not collected"):
        acts.at(1)


def test_truncation_skips_later_layers_and_keeps_user_hooks(tiny, texts):
    fired = []
    handle_name = "blocks.3.hook_resid_post"
    tiny.bridge.add_hook(handle_name, lambda t, hook: fired.append(hook.name))
    try:
        before = attached_hooks(tiny)
        ist.collect_activations(tiny, texts, layers=[1])
        assert fired == []  # the forward stopped after layer 1
        assert attached_hooks(tiny) == before  # the user's hook is still there, ours are gone
        ist.collect_activations(tiny, texts, layers=[3])
        assert fired  # the user's hook fires when the forward reaches it
    finally:
        tiny.bridge.reset_hooks(including_permanent=True)
    assert attached_hooks(tiny) == 0


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_no_hook_left_behind_on_any_exit(tiny, texts, monkeypatch, error):
    def explode(*args, **kwargs):
        raise error

    before = attached_hooks(tiny)
    monkeypatch.setattr(act_module, "_reduce", explode)
    with pytest.raises(type(error)):
        ist.collect_activations(tiny, texts, layers=[0, 2])
    assert attached_hooks(tiny) == before == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layers": [4]}, ValueError, "out of range"),
        ({"layers": [-5]}, ValueError, "out of range"),
        ({"layers": [1, 1]}, ValueError, "twice"),
        ({"layers": "one"}, ValueError, "comma-separated"),
        ({"layers": []}, ValueError, "empty"),
        ({"hook_point": "resid_pots"}, ValueError, "unknown hook point"),
        ({"position": "first"}, ValueError, "position="),
        ({"batch_size": 0}, ValueError, "batch_size"),
    ],
)
def test_bad_arguments_raise_clearly(tiny, texts, kwargs, error, match):
    with pytest.raises(error, match=match):
        ist.collect_activations(tiny, texts, **kwargs)


def test_bad_texts_raise(tiny):
    with pytest.raises(ValueError, match="empty"):
        ist.collect_activations(tiny, [])
    with pytest.raises(TypeError, match="single string"):
        ist.collect_activations(tiny, "just one")
    with pytest.raises(ValueError, match=r"texts\[1\] is an empty string"):
        ist.collect_activations(tiny, ["fine", ""])


def test_nan_activations_are_reported():
    broken = ist.load_model("tiny-random:1")
    with torch.no_grad():
        broken.hf_model.model.layers[1].mlp.down_proj.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite"):
        ist.collect_activations(broken, ["a sentence"], layers=[2])


def test_returns_float32_on_cpu(tiny, texts):
    acts = ist.collect_activations(tiny, texts, layers=[0])
    assert acts.values.dtype == torch.float32
    assert acts.values.device.type == "cpu"
    assert acts.values.shape == (len(texts), 1, tiny.d_model)
    assert acts.n_texts == len(texts) and acts.model_name == tiny.name


def test_split_groups_texts(tiny, texts):
    every = ist.collect_activations(tiny, texts, layers=[1], position="all")
    first, rest = every.split(2, len(texts) - 2)
    assert first.n_texts == 2 and rest.n_texts == len(texts) - 2
    torch.testing.assert_close(torch.cat([first.values, rest.values]), every.values)
    assert rest.text_index.min() == 0 and rest.text_index.max() == len(texts) - 3
    alone = ist.collect_activations(tiny, texts[2:], layers=[1], position="all")
    torch.testing.assert_close(rest.values, alone.values)
    with pytest.raises(ValueError, match="add up"):
        every.split(1, 1)
