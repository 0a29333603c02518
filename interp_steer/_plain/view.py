"""The plain view: the Hugging Face modules under a bridge, unwrapped into a tree of shallow copies
that share every parameter and buffer with the bridged model."""

from __future__ import annotations

from typing import Any

import torch

from interp_steer._plain.grouped import use_grouped_attention
from interp_steer._plain.hooks import HOOK_DICTS

# A hook point the view can run: the point, the plain module whose boundary sees its tensor, and
# which boundary ("in": the first argument or ``hidden_states``; "out": the output or its first item).
Route = tuple[Any, torch.nn.Module, str]


class PlainView:
    """The Hugging Face modules under a bridge, unwrapped. ``root`` is a copy of the top model whose
    hook registries are the original's (hooks on the whole model, such as steering's position
    tracking, apply to both); below it every module is a fresh shallow copy with its own registries
    and the same parameters. ``routes`` maps each routable hook point (by id) to its plain module:
    the candidates when built, only those the bridge was seen to fire alike once :func:`plain_view`
    has checked them."""

    def __init__(self, hf_model: torch.nn.Module):
        from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent
        from transformer_lens.model_bridge.generalized_components.block import BlockBridge

        self._component, self._block = GeneralizedComponent, BlockBridge
        self.routes: dict[int, Route] = {}
        self.blocks: dict[int, torch.nn.Module] = {}  # id of a bridged block -> its plain module
        self.root = self._clone(hf_model, top=True)
        self.grouped_config = use_grouped_attention(hf_model, self.root)

    def _clone(self, module: torch.nn.Module, top: bool = False) -> torch.nn.Module:
        bridged = isinstance(module, self._component)
        inner = module._modules.get("_original_component") if bridged else module
        if inner is None:
            raise Unviewable(f"the bridge component {type(module).__name__} wraps no module")
        clone = _shallow_copy(inner)
        if not top:
            for name in HOOK_DICTS:
                if name in inner.__dict__:
                    setattr(clone, name, type(inner.__dict__[name])())
        clone._modules = {name: None if child is None else self._clone(child)
                          for name, child in inner._modules.items()}
        if bridged:
            self.routes[id(module.hook_out)] = (module.hook_out, clone, "out")
            if isinstance(module, self._block):
                self.routes[id(module.hook_in)] = (module.hook_in, clone, "in")
                self.blocks[id(module)] = clone
        return clone


class Unviewable(Exception):
    """The bridged model has something a plain view cannot mirror; the message says what."""


def _shallow_copy(module: torch.nn.Module) -> torch.nn.Module:
    """``copy.copy`` without pickling's ``__getstate__`` (which a parametrized module refuses): a new
    object of the same class whose attributes are the same objects."""
    clone = type(module).__new__(type(module))
    clone.__dict__.update(module.__dict__)
    return clone


def readable(name: str) -> str:
    """``model.layers.0._original_component.mlp`` as the user reaches it: ``model.layers.0.mlp``."""
    return name.replace("._original_component", "").replace("_original_component.", "")
