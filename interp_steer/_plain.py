"""Forward passes without the bridge's wrappers, for the generation loop.

TransformerBridge wraps every Hugging Face submodule (each block, attention, MLP, norm and linear
layer: about 360 on the default model) in a component that runs its hook points and bookkeeping
on every call. Per decoding step that costs about a fifth of a step on a CPU, whether or not any
hook is active. A *plain view* is the same model as a tree of the original Hugging Face modules,
sharing every parameter and buffer with the bridged one, so its outputs are the bridged model's
bit for bit (``tests/test_plain.py`` checks this on every architecture family).

Hooks still work through it. At the moment a generation runs its forward passes,
:func:`forward_module` looks at what is hooked: hook points at a component's boundary (a block's
input and output, i.e. ``resid_pre`` and ``resid_post``, and the outputs of attention and MLP) are
run by plain PyTorch hooks on the matching plain module, which call the very same hook point, so
its hooks see and change the same tensor as in the bridge. Anything else (a hook inside attention,
``resid_mid``, a PyTorch hook on one of the bridged modules, a model spread over several devices)
makes it return the bridged model, as before.
"""

from __future__ import annotations

import contextlib
import copy
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import torch

# Every per-module hook registry a clone must not share with the module it copies.
_HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)
_CALL_HOOKS = _HOOK_DICTS[:7]

_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# False sends every forward pass through the bridge, as before the plain view (benchmarks compare the two).
enabled = True


class PlainView:
    """The Hugging Face modules under a bridge, unwrapped. ``root`` is a copy of the top model whose
    hook registries are the original's (hooks on the whole model, such as steering's position
    tracking, apply to both); below it every module is a fresh shallow copy with its own registries
    and the same parameters. ``routes`` maps each routable hook point to its plain module."""

    def __init__(self, hf_model: torch.nn.Module):
        from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent
        from transformer_lens.model_bridge.generalized_components.block import BlockBridge

        self._component, self._block = GeneralizedComponent, BlockBridge
        self.routes: dict[int, tuple[Any, torch.nn.Module, str]] = {}
        self.wrapped: list[torch.nn.Module] = []  # the bridged tree's modules, to check for hooks
        self.root = self._clone(hf_model, top=True)

    def _clone(self, module: torch.nn.Module, top: bool = False) -> torch.nn.Module:
        bridged = isinstance(module, self._component)
        inner = module._original_component if bridged else module
        if not top:
            self.wrapped += [module, inner] if bridged else [module]
        clone = copy.copy(inner)
        if not top:
            for name in _HOOK_DICTS:
                if name in inner.__dict__:
                    setattr(clone, name, type(inner.__dict__[name])())
        clone._modules = {name: None if child is None else self._clone(child)
                          for name, child in inner._modules.items()}
        if bridged:
            self.routes[id(module.hook_out)] = (module.hook_out, clone, "out")
            if isinstance(module, self._block):
                self.routes[id(module.hook_in)] = (module.hook_in, clone, "in")
        return clone


def plain_view(model) -> PlainView | None:
    """The model's plain view (built once, then cached), or None where one cannot stand in for the
    bridge: a model spread over several devices, or one whose modules have their ``forward``
    replaced (Accelerate's dispatch and offload hooks do that), or whose bridge computes something
    its own way. While hooks are in place it answers None without deciding, since the bit-identity
    check must run both models bare."""
    if model in _VIEWS:
        return _VIEWS[model]
    hf = model.hf_model
    internal = _bridge_hooks(hf.modules())
    if any(_has_hooks(m, internal) for m in hf.modules()):
        return None  # the check below must see both models bare; decide at a later call
    ok = (len(model.devices) == 1 and model.device.type != "meta"
          and not any("forward" in m.__dict__ for m in hf.modules()))
    view = PlainView(hf) if ok else None
    if view is not None and not _same_logits(hf, view.root, model.device):
        view = None
    _VIEWS[model] = view
    return view


@torch.inference_mode()
def _same_logits(bridged: torch.nn.Module, plain: torch.nn.Module, device: torch.device) -> bool:
    """Whether the two give bit-identical logits on a short input. Most of the bridge's components
    call the Hugging Face module they wrap; a few compute it their own way (GPT-2's joint
    query/key/value attention is split into three products), which rounds differently. The plain
    view stands in only where it changes no bit, so generation never depends on which path ran."""
    vocab = int(bridged.get_output_embeddings().weight.shape[0])
    ids = (torch.arange(1, 8, device=device) * 7919 % vocab)[None]
    return torch.equal(bridged(input_ids=ids).logits, plain(input_ids=ids).logits)


def _has_hooks(module: torch.nn.Module, internal: frozenset[int] = frozenset()) -> bool:
    """Whether anything is hooked on ``module``, leaving out the hooks whose ids are ``internal``."""
    return any(key not in internal for name in _CALL_HOOKS for key in (getattr(module, name, None) or ()))


def _bridge_hooks(modules: Iterable[torch.nn.Module]) -> frozenset[int]:
    """The bridge's own hooks: blocks wire PyTorch hooks on their norms and MLP, once, to capture what
    some hook points (``hook_mlp_in``, a split query/key/value fork) expose. They serve hook points
    the plain view does not route, so they do not stop it."""
    return frozenset(h.id for m in modules for h in getattr(m, "_capture_hook_handles", ()))


def _route(hook_point, plain: torch.nn.Module, kind: str):
    """A PyTorch hook on ``plain`` that runs ``hook_point`` where the bridged component does."""
    if kind == "in":
        def before(_module, args, kwargs):
            # As the block bridge does: the hidden states are the first positional argument or a keyword.
            if args and isinstance(args[0], torch.Tensor):
                return (hook_point(args[0]), *args[1:]), kwargs
            if isinstance(kwargs.get("hidden_states"), torch.Tensor):
                return args, {**kwargs, "hidden_states": hook_point(kwargs["hidden_states"])}
            return None

        return plain.register_forward_pre_hook(before, with_kwargs=True)

    def after(_module, _args, output):
        if isinstance(output, torch.Tensor):
            return hook_point(output)
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
            return (hook_point(output[0]), *output[1:])
        return None

    return plain.register_forward_hook(after)


def _hooked(model, view: PlainView) -> dict[int, Any] | None:
    """The hook points with hooks on them, by id; None when something is hooked that the view
    cannot route (a hook point inside a component, a PyTorch hook on a bridged module)."""
    hooked = {id(h): h for h in model.bridge.hook_dict.values() if _has_hooks(h)}
    internal = _bridge_hooks(view.wrapped)
    if any(key not in view.routes for key in hooked) or any(_has_hooks(m, internal) for m in view.wrapped):
        return None
    return hooked


@contextlib.contextmanager
def forward_module(model) -> Iterator[torch.nn.Module]:
    """The module to run this moment's forward passes on: the plain view, with every active hook
    point routed to it, or the bridged Hugging Face model where that cannot be done. Call
    :func:`plain_view` once before any hook of the call is in place, then this after they are
    (inside a steering scope), and make every forward inside the block."""
    view = _VIEWS.get(model) if enabled else None
    hooked = None if view is None else _hooked(model, view)
    if hooked is None:
        yield model.hf_model
        return
    handles = [_route(*view.routes[key]) for key in hooked]
    try:
        yield view.root
    finally:
        for handle in handles:
            handle.remove()
