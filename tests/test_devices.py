"""Tensors the package makes meet the model's tensors on the model's device.

There is no GPU here, so the model runs on PyTorch's ``meta`` device, which, like CUDA, refuses to mix
its tensors with CPU ones ("Tensor on device cpu is not on the expected device meta!"). Meta tensors
have no values, so :class:`MetaValues` answers every read of one (``int()``, ``bool()``, ``.item()``,
``.tolist()``, ``.cpu()``, ...) with zeros: the Python control flow runs on those stand-in values while
every tensor operation really runs on the meta device, and it also refuses the few mixes that meta
kernels let through but CUDA does not (``gather``/``isin`` with CPU tensors). Where CUDA is available
the same calls run on the GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from accelerate import dispatch_model
from torch import Tensor
from torch.overrides import TorchFunctionMode

import interp_steer as ist
from interp_steer.data import ABQuestion
from interp_steer.directions import SteeringVector, VectorMetadata
from interp_steer.evaluation import ab_eval
from interp_steer.fields import fit_scorer
from interp_steer.models import device_plan, gpu_budgets, load_hf, spread
from interp_steer.models.loading import _wrap
from interp_steer.patching import Patch, PatchMetrics, attribution_patch, exact_patch, prepare
from interp_steer.steering import RowDeltas, RowMix, Steering, steer
from interp_steer.studies.robustness.readout import SteeredReadout, template_ids

_READS = {Tensor.item, Tensor.tolist, Tensor.__bool__, Tensor.__int__, Tensor.__float__, Tensor.__index__,
          Tensor.cpu, Tensor.numpy}
# Copies and indexing accept CPU operands on CUDA (an index or values tensor is moved as needed);
# Module.to asks whether a parameter can be swapped for its moved copy (a query, no arithmetic).
_MAY_MIX = {Tensor.to, Tensor.copy_, Tensor.__getitem__, Tensor.__setitem__, Tensor.index_put_, torch.as_tensor,
            torch.tensor, Tensor.new_tensor, torch._has_compatible_shallow_copy_type}


def _tensors(values):
    for value in values:
        if isinstance(value, Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from _tensors(value)


class MetaValues(TorchFunctionMode):
    """Meta tensors read as zeros; an operation mixing meta and CPU tensors (other than a 0-dim CPU
    scalar, which CUDA accepts too) raises."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _READS and args[0].is_meta:
            return func(torch.zeros(args[0].shape, dtype=args[0].dtype), *args[1:], **kwargs)
        if func is torch.equal and args[0].is_meta:
            return False
        if func is Tensor.to and args[0].is_meta and _to_cpu(*args[1:], **kwargs):
            return torch.zeros(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype)
        if func not in _MAY_MIX:
            tensors = list(_tensors([*args, *kwargs.values()]))
            if any(t.is_meta for t in tensors) and any(not t.is_meta and t.ndim > 0 for t in tensors):
                raise RuntimeError(f"{getattr(func, '__name__', func)} mixes meta and cpu tensors: "
                                   f"{[(t.device.type, tuple(t.shape)) for t in tensors]}")
        return func(*args, **kwargs)


def _to_cpu(*args, **kwargs) -> bool:
    device = kwargs.get("device", next((a for a in args if isinstance(a, (str, torch.device))), None))
    return device is not None and torch.device(device).type == "cpu"


PROMPTS = ["Hi", "Tell me about the harbour at dawn."]
QUESTIONS = [ABQuestion(f"Would you share the {thing}?\n\nChoices:\n(A) Yes\n(B) No", "(A)", "(B)")
             for thing in ("bread", "umbrella with many colours")]
POSITIONS = ["all", "after_prompt", 1, slice(0, None, 2), torch.tensor([False, True, True]),
             torch.tensor([[True, False, True], [False, True, False]])]


def _vector(model) -> SteeringVector:
    gen = torch.Generator().manual_seed(0)
    return SteeringVector({layer: torch.randn(model.d_model, generator=gen) for layer in range(model.n_layers)},
                          VectorMetadata(model=model.name, d_model=model.d_model))


def _field(model):
    """A field fitted on the CPU (as users do), then used to steer the model on its device."""
    gen = torch.Generator().manual_seed(1)
    pos, neg = ({layer: torch.randn(24, model.d_model, generator=gen) + shift for layer in (1, 2)} for shift in (0.5, -0.5))
    return fit_scorer(pos, neg, hidden=(8,), epochs=3, min_accuracy=0.0,
                      metadata={"model": model.name, "hook_point": "resid_post"})


def _everything(model, *, gradients: bool = True) -> None:
    """steer + generate (every position rule, cached and not), a per-row ablation, ab_eval, collect,
    exact and attribution patching, steering with a field (alone, several steps, mixed per row with a
    vector) and the adversarial readout (packed, padded, gradients): everything that builds tensors
    to meet the model's. ``gradients=False`` leaves out the two backward passes (meta tensors cannot
    be copied back to the CPU in a backward pass, so a model spread over the CPU and meta runs
    them nowhere)."""
    vector = _vector(model)
    field = _field(model)
    ist.generate(model, PROMPTS, max_new_tokens=3, steering=Steering(field, 0.5, positions="after_prompt", steps=2))
    ist.generate(model, PROMPTS, max_new_tokens=2, steering=Steering(
        RowMix.from_rows([[(field, 0.5), (vector.select([1, 2]), 1.0)], [(field, -0.5)]]), positions=slice(1, None)))
    ab_eval(model, QUESTIONS, field, coefficients=[-1.0, 1.0], layers=[2])
    for positions in POSITIONS:
        ist.generate(model, PROMPTS, max_new_tokens=3, steering=Steering(vector, 2.0, layers=[1], positions=positions))
    ist.generate(model, PROMPTS, max_new_tokens=2, use_cache=False, chat=False,
                 steering=Steering(vector, 2.0, positions="after_prompt"))
    ist.generate(model, PROMPTS, max_new_tokens=2,
                 steering=Steering(RowDeltas.from_rows([[(vector, 1.0)], [(vector, -1.0)]]), operator="ablate"))
    ids, mask = model.pad(model.encode(PROMPTS), padding_side="left")
    with torch.inference_mode(), steer(model, vector, 1.0, positions=slice(1, 3)):
        model.bridge(ids, attention_mask=mask)
    ab_eval(model, QUESTIONS, vector, coefficients=[-1.0, 1.0], layers=[1])
    on_meta = any(device.type == "meta" for device in model.devices)  # "all" needs values: how many tokens
    for position in ("last", "mean") if on_meta else ("last", "mean", "all"):
        ist.collect_activations(model, PROMPTS, layers=[0, 1, 2, 3], position=position)
    metrics = PatchMetrics((1, 2), (3, 4), 5, model.n_layers - 1, torch.ones(model.d_model), 0.0)
    target = (vector.select([1]), 1.0)
    pair = prepare(model, PROMPTS[1], (vector.select([1]), 2.0), target, metrics, components=("resid", "heads"))
    exact_patch(model, pair, target, metrics, [Patch("resid", 2), Patch("resid", 2, position=1),
                                               Patch("heads", 2, head=0),
                                               Patch("resid", 2, direction=torch.ones(model.d_model) / 8)])
    if gradients:
        attribution_patch(model, pair, target, metrics, components=("resid", "heads"))
    # The robustness study's adversarial readout: packed rows under a 4-D mask, padded rows, gradients.
    prefix, tail = template_ids(model)
    readout = SteeredReadout(model, vector.select([1]), 2.0, "tokens", tuple(prefix), tuple(tail), positive=(5, 6),
                             negative=(7, 8), batch_size=8)
    candidates = [[10, 11, 12], [10, 11, 13], [14]]
    readout(candidates)
    readout.score_unshared(candidates)
    if gradients:
        readout.token_gradients(candidates[0], [1])


def test_the_checker_catches_a_device_mix():
    """The oracle itself: a CPU offset added to a device tensor (ab_eval's old bug) is caught."""
    mask = torch.ones(2, 3, dtype=torch.long, device="meta")
    with pytest.raises(RuntimeError, match="cpu"), MetaValues():
        (mask == 0).sum(1) + torch.tensor([4, 5])
    with pytest.raises(RuntimeError, match="mixes meta and cpu"), MetaValues():
        torch.isin(mask, torch.tensor([1, 2]))


def test_no_device_mixing_on_a_meta_model():
    model = ist.load_model("tiny-random", device="meta")
    with MetaValues():
        _everything(model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_everything_runs_on_cuda():
    model = ist.load_model("tiny-random", device="cuda")
    _everything(model)
    # and the GPU agrees with the CPU where values are read
    cpu = ist.load_model("tiny-random", device="cpu")
    vector = _vector(cpu)
    spec = Steering(vector, 3.0, layers=[1], positions="after_prompt")
    on_gpu = ist.generate(model, PROMPTS, max_new_tokens=4, steering=spec)
    on_cpu = ist.generate(cpu, PROMPTS, max_new_tokens=4, steering=spec)
    assert [g.token_ids for g in on_gpu] == [g.token_ids for g in on_cpu]
    a = ab_eval(model, QUESTIONS, vector, coefficients=[-2.0, 2.0], layers=[1])
    b = ab_eval(cpu, QUESTIONS, vector, coefficients=[-2.0, 2.0], layers=[1])
    np.testing.assert_allclose(a.values, b.values, atol=1e-3)


# ----------------------------------------------------------------------------- layers on several devices


def _spread_by_hand(spec: str, first: str, second: str):
    """``spec`` with its embedding, unembedding and first half of the blocks on ``first`` and the rest
    on ``second``, placed by Accelerate's hooks as ``load_model(..., n_devices=k)`` places a model
    over GPUs, so activations cross devices between blocks. ``first`` is Accelerate's main device, so
    that a ``"cpu"`` there runs on the CPU rather than being offloaded. The bridge refuses a
    device map naming ``meta``, so the map is dropped before wrapping: the bridge reads the devices
    from the parameters instead."""
    hf_model, tokenizer, name, source = load_hf(spec)
    half = hf_model.config.num_hidden_layers // 2
    placement = {"model.embed_tokens": first, "lm_head": first, "model.rotary_emb": first, "model.norm": second}
    placement |= {f"model.layers.{i}": first if i < half else second for i in range(hf_model.config.num_hidden_layers)}
    hf_model = dispatch_model(hf_model, placement, main_device=first)
    del hf_model.hf_device_map
    return _wrap(hf_model, tokenizer, name, source, None, torch.float32, False)


def test_no_device_mixing_with_layers_on_two_devices():
    """Every path meets activations on the device of the block they come from: deltas, masks,
    fields, probes and per-layer results made on the embedding's device would mix devices at the
    second half of the blocks."""
    model = _spread_by_hand("tiny-random", "cpu", "meta")
    assert model.devices == (torch.device("cpu"), torch.device("meta"))
    with MetaValues():
        _everything(model, gradients=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_layers_on_the_cpu_and_a_gpu_give_the_one_device_numbers():
    """A real split (the CPU and a GPU, or two GPUs where there are two): everything runs, gradients
    included, and generation and patching agree with the model on one device."""
    second = "cuda:1" if torch.cuda.device_count() > 1 else "cuda:0"
    first = "cuda:0" if second == "cuda:1" else "cpu"
    split = _spread_by_hand("tiny-random", first, second)
    assert len(split.devices) == 2
    _everything(split)
    whole = ist.load_model("tiny-random", device=second)
    vector = _vector(whole)
    spec = Steering(vector, 3.0, layers=[1, 3], positions="after_prompt")
    assert ([g.token_ids for g in ist.generate(split, PROMPTS, max_new_tokens=4, steering=spec)]
            == [g.token_ids for g in ist.generate(whole, PROMPTS, max_new_tokens=4, steering=spec)])
    metrics = PatchMetrics((1, 2), (3, 4), 5, whole.n_layers - 1, torch.ones(whole.d_model), 0.0)
    target = (vector.select([1]), 1.0)
    estimates = [attribution_patch(m, prepare(m, PROMPTS[1], (vector.select([1]), 2.0), target, metrics), target,
                                   metrics) for m in (split, whole)]
    for component in estimates[0]:
        np.testing.assert_allclose(estimates[0][component], estimates[1][component], rtol=1e-3, atol=1e-4)


def test_device_plan_spreads_whole_blocks_in_order():
    """The placement n_devices asks Accelerate for, computed from sizes without GPUs: every block
    whole on one GPU, blocks in layer order over the GPUs, every GPU used, nothing offloaded."""
    hf_model = load_hf("tiny-random")[0]
    plan = device_plan(hf_model, {0: 10**9, 1: 10**9})
    layers = [plan[f"model.layers.{i}"] for i in range(hf_model.config.num_hidden_layers)]
    assert layers == sorted(layers) and set(layers) == {0, 1}
    assert set(plan.values()) == {0, 1}
    assert not any(name.startswith("model.layers.") and name.count(".") > 2 for name in plan)  # no block split


def test_too_small_gpus_are_refused_not_offloaded():
    hf_model = load_hf("tiny-random")[0]
    with pytest.raises(ist.ModelLoadError, match="does not fit on 2 GPU.*whole model.*--n-devices"):
        spread(hf_model, {0: 10_000, 1: 10_000}, "tiny")


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="checks the refusal on a machine with fewer than 2 GPUs")
def test_n_devices_beyond_the_gpus_present_is_a_clear_error():
    with pytest.raises(ValueError, match=r"n_devices=2 .* this machine has (none|1); (drop|use) --n-devices"):
        ist.load_model("tiny-random", n_devices=2)
    with pytest.raises(ValueError, match="cannot go with device='cpu'"):
        gpu_budgets(2, "cpu")
    with pytest.raises(ValueError, match="whole number"):
        gpu_budgets(0)
