"""Building a view, once per state of the model, and checking it against the bridge: the same
logits to the bit (a prefill and a cached decoding step), and which hook points the plain forward
sees exactly where the bridge fires them (the routable ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from interp_steer._plain.snapshot import Snapshot, state_copies, volatile_names
from interp_steer._plain.switch import fast_path
from interp_steer._plain.view import PlainView, Route, Unviewable, readable


@dataclass
class Entry:
    """A model's plain view (None where it cannot stand in), the snapshot it is checked against, and
    why there is no view."""

    view: PlainView | None
    snapshot: Snapshot
    reason: str | None  # why there is no view


def _unviewable(model) -> str | None:
    """Why no plain view can mirror this model, or None."""
    if len(model.devices) != 1 or model.device.type == "meta":
        return "the model is spread over several devices (or not loaded)"
    for name, module in model.hf_model.named_modules(remove_duplicate=False):
        if "forward" in module.__dict__:
            return f"{readable(name) or 'the model'} has its forward replaced (a patch, or Accelerate's dispatch hooks)"
    return None


def build(model) -> Entry:
    """Build the model's plain view and check it against the bridge (run while nothing is hooked)."""
    copies = state_copies(model)
    reason = _unviewable(model)
    view = None
    if reason is None:
        try:
            view = PlainView(model.hf_model)
        except Unviewable as error:
            reason = str(error)
    if view is not None:
        ids = _probe_ids(model)
        # The checks draw no random numbers of the user's (dropout, in train mode).
        with _own_random_state(model.device):
            try:
                same = _same_logits(model.hf_model, view.root, ids)
            except Exception as error:  # noqa: BLE001 - the user's own call will meet it on the bridge
                view, reason = None, f"a check forward raised {type(error).__name__}: {error}"
            else:
                if not same:
                    view, reason = None, ("the bridge computes some component its own way (its logits differ "
                                          "from the Hugging Face modules')")
                else:
                    view.routes = _fired_routes(model, view, ids[:1, :7])
    return Entry(view, Snapshot(model, volatile_names(copies)), reason)


def _own_random_state(device: torch.device):
    """Random draws inside the block leave the global generators (CPU, and the model's device) as they were."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device], device_type=device.type)


def _probe_ids(model) -> torch.Tensor:
    """Two rows of 24 token ids (longer than the tiny models' sliding windows)."""
    vocab = int(model.hf_model.get_output_embeddings().weight.shape[0])
    return (torch.arange(1, 49, device=model.device) * 7919 % vocab).view(2, 24)


@torch.inference_mode()
def _same_logits(bridged: torch.nn.Module, plain: torch.nn.Module, ids: torch.Tensor) -> bool:
    """Whether the two give bit-identical logits on a short batch (one row left-padded) and in a
    cached decoding step after it (with the model's own attention). Most of the bridge's components
    call the Hugging Face module they wrap; some compute it their own way (TransformerLens
    re-implements attention; GPT-2's joint query/key/value projection is split into three products,
    Phi-3's fused gate/up projection into two), and a change to the Hugging Face modules that such a
    component does not read shows here. The plain view stands in only where it changes no bit, so
    generation never depends on which path ran."""
    from transformers import DynamicCache

    mask = torch.ones_like(ids)
    mask[1, :5] = 0
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    steps = []
    with fast_path(grouped=False):  # the plain view's decoding step as eager attention computes it
        for module in (bridged, plain):
            torch.manual_seed(0)  # the same dropout masks in both, in train mode (inside the caller's fork)
            cache = DynamicCache()
            first = module(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                           use_cache=True).logits
            token = first[:, -1:].argmax(-1) if not steps else steps[0][2]
            longer = torch.cat([mask, torch.ones_like(token)], dim=1)
            step = module(input_ids=token, attention_mask=longer, position_ids=positions[:, -1:] + 1,
                          past_key_values=cache, use_cache=True).logits
            steps.append((first[mask.bool()], step, token))
    (first_a, step_a, _), (first_b, step_b, _) = steps
    return _identical(first_a, first_b) and _identical(step_a, step_b)


def _identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal to the bit, NaN where the other is NaN (a left-padded row's padding can be NaN in float64)."""
    return a.shape == b.shape and a.dtype == b.dtype and bool(((a == b) | (a.isnan() & b.isnan())).all())


def _boundary(kind: str, args: tuple, kwargs: dict, output: Any = None) -> torch.Tensor | None:
    """The tensor a bridged component hooks at this boundary of its wrapped module: the first
    positional argument or ``hidden_states`` coming in, the output or its first item going out."""
    if kind == "in":
        if args and isinstance(args[0], torch.Tensor):
            return args[0]
        hidden = kwargs.get("hidden_states")
        return hidden if isinstance(hidden, torch.Tensor) else None
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


@torch.inference_mode()
def _fired_routes(model, view: PlainView, ids: torch.Tensor) -> dict[int, Route]:
    """The candidate routes whose plain boundary sees, in a plain forward, exactly the tensors the
    bridge's own forward fires the hook point with (same count, same values): one forward of each
    with a recording hook on every hook point (a TransformerLens hook, so that points the bridge
    fires only when hooked fire) and on every candidate boundary."""
    from transformer_lens.hook_points import HookPoint

    fired: dict[int, list] = {}
    points = {id(p): p for p in [*model.hf_model.modules(), *model.bridge.hook_dict.values()]
              if isinstance(p, HookPoint)}

    def recorder(key: int):
        # A PyTorch hook sees the tensor before any conversion of the hook point's (as the boundary does).
        def record(_point, _args, tensor):
            fired.setdefault(key, []).append(_copy(tensor if isinstance(tensor, torch.Tensor) else None))

        return record

    added, raw = [], []
    try:
        for key, point in points.items():
            added.append((point, point.add_hook(_ignore)))  # a point the bridge fires only when hooked fires now
            raw.append(point.register_forward_hook(recorder(key)))
        torch.manual_seed(0)
        model.hf_model(input_ids=ids)
    finally:
        for handle in raw:
            handle.remove()
        for point, handle in added:
            handle.hook.remove()
            point.fwd_hooks[:] = [h for h in point.fwd_hooks if h is not handle]
    seen: dict[int, list] = {key: [] for key in view.routes}

    def watcher(key: int, kind: str):
        if kind == "in":
            return lambda _module, args, kwargs: seen[key].append(_copy(_boundary("in", args, kwargs)))
        return lambda _module, args, kwargs, output: seen[key].append(_copy(_boundary("out", args, kwargs, output)))

    handles = []
    try:
        for key, (_point, plain, kind) in view.routes.items():
            register = plain.register_forward_pre_hook if kind == "in" else plain.register_forward_hook
            handles.append(register(watcher(key, kind), with_kwargs=True))
        torch.manual_seed(0)
        view.root(input_ids=ids)
    finally:
        for handle in handles:
            handle.remove()
    return {key: route for key, route in view.routes.items() if _alike(fired.get(key, []), seen[key])}


def _ignore(tensor, hook) -> None:
    return None


def _copy(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach().clone()


def _alike(bridged: list, plain: list) -> bool:
    return bool(bridged) and len(bridged) == len(plain) and all(
        a is not None and b is not None and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
        for a, b in zip(bridged, plain, strict=True))
