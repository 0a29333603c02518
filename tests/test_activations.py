"""Activation collection on the tiny model, checked against the bridge's own cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import interp_steer as ist
from conftest import attached_hooks, bridge_cache
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


def test_to_frame_indexes_texts_and_layers(tiny, texts):
    acts = ist.collect_activations(tiny, texts[:3], layers=[0, 2])
    frame = acts.to_frame()
    assert frame.index.names == ["text", "layer"] and frame.shape == (6, tiny.d_model)
    assert np.array_equal(frame.loc[(1, 2)].to_numpy(), acts.at(2)[1].numpy())
    every = ist.collect_activations(tiny, texts[:2], layers=[1], position="all")
    frame = every.to_frame()
    assert frame.index.names == ["text", "token", "layer"] and len(frame) == len(every)
    last_token = frame.loc[1].index.get_level_values("token").max()
    assert np.array_equal(frame.loc[(1, last_token, 1)].to_numpy(), every.per_text()[1][-1, 0].numpy())


@pytest.mark.parametrize("position", ["last", "all"])
def test_streamed_collection_equals_in_memory_and_is_a_real_safetensors_file(tiny, texts, tmp_path, position):
    from safetensors.torch import load_file

    path = tmp_path / "acts.safetensors"
    memory = ist.collect_activations(tiny, texts, layers=[0, 2], position=position, batch_size=3)
    streamed = ist.collect_activations(tiny, texts, layers=[0, 2], position=position, batch_size=3, out=path)
    assert torch.equal(streamed.values, memory.values) and torch.equal(streamed.text_index, memory.text_index)
    assert (streamed.layers, streamed.position, streamed.n_texts, streamed.model_name) == \
        (memory.layers, memory.position, memory.n_texts, memory.model_name)
    plain = load_file(str(path))  # any safetensors reader sees the same tensors
    assert torch.equal(plain["values"], memory.values) and torch.equal(plain["text_index"], memory.text_index)
    assert [p.name for p in tmp_path.iterdir()] == ["acts.safetensors"]  # no temporary file left
    streamed.values[0, 0, 0] += 1.0  # copy-on-write: the file is never changed through the result
    assert torch.equal(ist.Activations.load(path).values, memory.values)
    # Directions and probes take the on-disk result like any other.
    if position == "last":
        half = len(texts) // 2
        pos, neg = streamed.split(half, len(texts) - half)
        mpos, mneg = memory.split(half, len(texts) - half)
        assert torch.equal(ist.from_activations(pos, neg).directions[2], ist.from_activations(mpos, mneg).directions[2])
        from interp_steer.probes import probe_layers

        on_disk, in_memory = probe_layers(pos, neg, folds=3), probe_layers(mpos, mneg, folds=3)
        assert on_disk.accuracy == in_memory.accuracy and on_disk.best_layer == in_memory.best_layer


def test_a_failed_streamed_collection_leaves_no_file(tiny, texts, tmp_path, monkeypatch):
    calls = []
    original = act_module._forward_collect_many

    def fail_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return original(*args, **kwargs)

    monkeypatch.setattr(act_module, "_forward_collect_many", fail_second)
    with pytest.raises(RuntimeError, match="interrupted"):
        ist.collect_activations(tiny, texts, batch_size=2, out=tmp_path / "acts.safetensors")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"\.safetensors"):
        ist.collect_activations(tiny, texts, out=tmp_path / "acts.npy")


def test_activation_files_that_are_not_ones_raise_naming_the_file(tiny, texts, tmp_path):
    path = ist.collect_activations(tiny, texts[:3], layers=[1], out=tmp_path / "a.safetensors") and tmp_path / "a.safetensors"
    whole = path.read_bytes()
    cases = {"truncated.safetensors": whole[:-40], "empty.safetensors": b"", "junk.safetensors": b"\x00\xff" * 50,
             "text.safetensors": b"hello world, not a tensor file"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(act_module.ActivationsFileError, match=name):
            ist.Activations.load(tmp_path / name)
    vector_file = make_vector_file(tmp_path)
    with pytest.raises(act_module.ActivationsFileError, match="not an activations file"):
        ist.Activations.load(vector_file)
    with pytest.raises(act_module.ActivationsFileError, match="no such file"):
        ist.Activations.load(tmp_path / "missing.safetensors")


def make_vector_file(folder):
    from interp_steer.directions import SteeringVector, VectorMetadata

    vector = SteeringVector({0: torch.ones(4)}, VectorMetadata(model="m", d_model=4))
    return vector.save(folder / "vector.safetensors")


PEAK_SCRIPT = """
import resource, sys, threading, time
import interp_steer as ist

def resident():  # KiB resident now (not the lifetime peak: model loading must not count)
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() // 1024

model = ist.load_model("tiny-random")
texts = [chr(65 + i % 26) + " lorem ipsum dolor" * 40 for i in range(int(sys.argv[1]))]
assert len({len(ids) for ids in model.encode(texts)}) == 1  # every batch has the same shape
out = sys.argv[2] if sys.argv[2] != "-" else None
ist.collect_activations(model, texts[:1], position="all", progress=False)  # warm up
peak, done = [0], threading.Event()

def watch():
    while not done.is_set():
        peak[0] = max(peak[0], resident())
        time.sleep(0.001)

before = resident()
watcher = threading.Thread(target=watch)
watcher.start()
acts = ist.collect_activations(model, texts, position="all", batch_size=16, progress=False, out=out)
peak[0] = max(peak[0], resident())
done.set()
watcher.join()
print(peak[0] - before, acts.values.numel() * 4 // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc (Linux)")
def test_streaming_keeps_peak_memory_flat(tmp_path):
    """Every-token activations of one batch of texts and of 20 batches: streamed, the process's peak
    memory grows by the same amount (one batch's forward pass) for both; kept in memory, it grows
    by about the data as well. Each runs in a fresh process, whose resident memory is sampled
    every millisecond during the collection (KiB above what it was just before).

    glibc's malloc is pinned to its default static mmap threshold (128 KiB): otherwise it raises the
    threshold after the first large free and serves later forward-pass tensors from its heap, where
    freed memory stays resident (reusable by the process, but counted in RSS) and the measurement
    would see fragmentation instead of what is alive."""
    import os
    import subprocess
    import sys

    def growth(n: int, out: str) -> tuple[int, int]:
        run = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(n), out], capture_output=True, text=True,
                             check=True, env={**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072"})
        grown, data = map(int, run.stdout.split()[-2:])
        return grown, data

    one_batch, _ = growth(16, str(tmp_path / "small.safetensors"))
    streamed, data = growth(320, str(tmp_path / "big.safetensors"))
    kept, _ = growth(320, "-")
    assert data > 50_000  # KiB: the corpus's activations are large against the noise
    print(f"peak growth (KiB): one batch {one_batch}, 20 batches streamed {streamed}, kept {kept}; data {data}")
    assert kept > one_batch + 0.8 * data  # the measurement sees memory that grows with the corpus ...
    assert streamed < one_batch + 0.2 * data, (one_batch, streamed, kept, data)  # ... and streaming does not


@pytest.mark.parametrize("pad_free", [True, False])
def test_several_positions_from_one_collection_equal_each_alone(tiny, texts, pad_free, monkeypatch):
    """collect_positions reads every position in the same forward passes (one per batch), and each
    result is exactly what collect_activations returns for that position alone."""
    positions = ["last", "mean", "all", 1]
    forwards = []
    original = act_module._forward_collect_many
    monkeypatch.setattr(act_module, "_forward_collect_many", lambda *a: forwards.append(1) or original(*a))
    together = ist.collect_positions(tiny, texts, positions, layers=[0, 2], batch_size=3, pad_free=pad_free)
    batches = len(forwards)
    assert batches == len(act_module._plan_batches([len(ids) for ids in tiny.encode(texts)], 3, pad_free))
    assert list(together) == positions
    for position in positions:
        alone = ist.collect_activations(tiny, texts, layers=[0, 2], position=position, batch_size=3, pad_free=pad_free)
        got = together[position]
        assert got.position == position and got.layers == alone.layers and got.n_texts == alone.n_texts
        assert torch.equal(got.values, alone.values) and torch.equal(got.text_index, alone.text_index)
    assert len(forwards) == batches * (1 + len(positions))


@pytest.mark.parametrize(("positions", "match"), [([], "non-empty"), (["last", "last"], "distinct"),
                                                   (["last", "middle"], "position='middle'")])
def test_collect_positions_refuses_bad_positions(tiny, texts, positions, match):
    with pytest.raises(ValueError, match=match):
        ist.collect_positions(tiny, texts, positions)


# --- Residual shifts of steered forwards ---------------------------------------------------------


def _shift_inputs(model: ist.Model):
    """Token sequences of unequal length (padded in a batch), each with its prompt length, and two
    steerings from a prompt's last token on: one vector at layer 1, and per-row deltas at layer 2."""
    from interp_steer.directions import SteeringVector, VectorMetadata
    from interp_steer.steering import RowDeltas, Steering

    sequences = model.encode(["The harbour at dawn, with boats", "Rain.", "A letter arrived for the keeper",
                              "She laughs and the door opens"])
    ends = [3, 1, 4, 2]
    gen = torch.Generator().manual_seed(3)

    def vector(layer):
        return SteeringVector({layer: 3 * torch.randn(model.d_model, generator=gen)},
                              VectorMetadata(model=model.name, d_model=model.d_model, hook_point="resid_post"))

    one, other = vector(1), vector(2)
    rows = RowDeltas.from_rows([[(other, c)] for c in (1.0, -1.0, 0.5, 2.0)])
    return sequences, ends, [Steering(one, positions="after_prompt"), Steering(rows, positions="after_prompt")]


def test_residual_shifts_are_the_steered_minus_the_clean_residual(tiny):
    """Oracle: the bridge's own cache of each sequence alone, steered and clean; the shift is zero
    before the prompt's last token and at layers before the steering."""
    from interp_steer.activations import residual_shifts

    sequences, ends, steerings = _shift_inputs(tiny)
    layers = [0, 1, 2, 3]
    shifts = residual_shifts(tiny, sequences, steerings, layers, prompt_ends=ends, batch_size=3)
    names = [tiny.hook_name(layer) for layer in layers]
    for s, steering in enumerate(steerings):
        for i, (ids, end) in enumerate(zip(sequences, ends, strict=True)):
            one = steering.rows([i]) if steering.n_rows is not None else steering
            with torch.inference_mode():
                _, clean = tiny.bridge.run_with_cache(torch.tensor([ids]), names_filter=names)
                with one.applied(tiny, prompt_end=[end]):
                    _, steered = tiny.bridge.run_with_cache(torch.tensor([ids]), names_filter=names)
            expected = torch.stack([(steered[n][0] - clean[n][0]).double() for n in names], dim=1)
            assert shifts[s][i].shape == (len(ids), len(layers), tiny.d_model)
            torch.testing.assert_close(shifts[s][i], expected, atol=1e-4, rtol=1e-4)
            assert not shifts[s][i][: end - 1].any() and shifts[s][i][end - 1 :].abs().amax() > 0.1
        first = 1 if s == 0 else 2  # the steered block: nothing before its output moves
        assert all(not shifts[s][i][:, :first].any() for i in range(len(sequences)))


@pytest.mark.parametrize("family", ["smollm2", "gemma2", "phi3", "gpt2"])
def test_residual_shifts_resume_after_the_untouched_blocks_bit_for_bit(family, monkeypatch):
    """The steered forwards skip the blocks no steering touches (from the clean forward's output of
    the last one) and give whole forwards' shifts bit for bit; with the fast path off they run whole."""
    from interp_steer import _plain
    from interp_steer.activations import residual_shifts

    model = ist.load_model(f"tiny-random:{family}")
    sequences, ends, steerings = _shift_inputs(model)
    used, resumed = [], _plain.resumed

    def spy(model, layer, output):
        context = resumed(model, layer, output)

        class Recorded:
            def __enter__(self):
                on = context.__enter__()
                used.append((layer, on))
                return on

            def __exit__(self, *exc):
                return context.__exit__(*exc)

        return Recorded()

    monkeypatch.setattr(_plain, "resumed", spy)
    fast = residual_shifts(model, sequences, steerings, [1, 2, 3], prompt_ends=ends, batch_size=3)
    viewed = _plain.plain_view(model) is not None
    assert used == [(1, viewed)] * 4  # two batches x two steerings, after block 1 (the earliest steered)
    with ist.fast_path(False):
        whole = residual_shifts(model, sequences, steerings, [1, 2, 3], prompt_ends=ends, batch_size=3)
    assert all(torch.equal(a, b) for per_fast, per_whole in zip(fast, whole, strict=True)
               for a, b in zip(per_fast, per_whole, strict=True))
    used.clear()
    read_early = residual_shifts(model, sequences, steerings[1:], [0, 3], prompt_ends=ends, batch_size=3)
    assert used == [(0, viewed)] * 2  # layer 0 is read: resume after block 0, not 2
    assert torch.equal(read_early[0][0][:, 1], fast[1][0][:, 2])


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"sequences": []}, ValueError, "non-empty"),
    ({"steerings": []}, ValueError, "steerings is empty"),
    ({"prompt_ends": [1]}, ValueError, "one per sequence"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"layers": []}, ValueError, "layers is empty"),
    ({"layers": [9]}, ValueError, "layer"),
    ({"hook_point": "resid_middle"}, ValueError, "unknown hook point"),
])
def test_residual_shifts_refuse_bad_arguments(tiny, kwargs, error, match):
    from interp_steer.activations import residual_shifts

    sequences, ends, steerings = _shift_inputs(tiny)
    call = {"sequences": sequences, "steerings": steerings, "layers": [1, 2], "prompt_ends": ends, **kwargs}
    with pytest.raises(error, match=match):
        residual_shifts(tiny, call.pop("sequences"), call.pop("steerings"), call.pop("layers"), **call)


def test_residual_shifts_refuse_per_row_steering_of_another_size(tiny):
    from interp_steer.activations import residual_shifts

    sequences, ends, steerings = _shift_inputs(tiny)
    with pytest.raises(ValueError, match="4 rows but there are 3 sequences"):
        residual_shifts(tiny, sequences[:3], steerings, [2], prompt_ends=ends[:3])


def test_sequence_residuals_are_the_bridge_cache_from_each_start(tiny):
    """Oracle: the bridge's own cache of each token sequence alone, rows from its start on, stacked
    in order; batch size and layer order do not change them."""
    from interp_steer.activations import sequence_residuals

    sequences = [tiny.encode([t])[0] for t in ("The cat sat on the mat today.", "A dog.", "Rain fell all night long")]
    starts = [2, 1, 0]
    layers = [3, 1]
    found = sequence_residuals(tiny, sequences, starts, layers, batch_size=2)
    names = [tiny.hook_name(layer) for layer in layers]
    for layer, name in zip(layers, names, strict=True):
        expected = []
        for ids, start in zip(sequences, starts, strict=True):
            with torch.inference_mode():
                _, cache = tiny.bridge.run_with_cache(torch.tensor([ids]), names_filter=[name])
            expected.append(cache[name][0, start:].float())
        assert found[layer].dtype == torch.float32
        assert found[layer].shape == (sum(len(s) - b for s, b in zip(sequences, starts, strict=True)), tiny.d_model)
        torch.testing.assert_close(found[layer], torch.cat(expected), rtol=1e-5, atol=1e-5)
    one_by_one = sequence_residuals(tiny, sequences, starts, [1], batch_size=1)
    torch.testing.assert_close(one_by_one[1], found[1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="one per sequence"):
        sequence_residuals(tiny, sequences, starts[:2], layers)
    with pytest.raises(ValueError, match="out of range"):
        sequence_residuals(tiny, sequences, starts, [99])
