"""Forward passes without the bridge's wrappers: generation, activation collection and perplexity.

TransformerBridge wraps every Hugging Face submodule (each block, attention, MLP, norm and linear
layer: about 360 on the default model) in a component that runs its hook points and bookkeeping
on every call. Per decoding step that costs about a fifth of a step on a CPU, whether or not any
hook is active. A *plain view* is the same model as a tree of the original Hugging Face modules,
sharing every parameter and buffer with the bridged one, so its outputs are the bridged model's
bit for bit (``tests/test_plain.py`` checks this on every architecture family).

Hooks still work through it. At the moment a generation (or a collection, or a scoring pass) runs its forward passes,
:func:`forward_module` looks at what is hooked: hook points at a component's boundary (a block's
input and output, i.e. ``resid_pre`` and ``resid_post``, and the outputs of attention and MLP) are
run by plain PyTorch hooks on the matching plain module, which call the very same hook point, so
its hooks see and change the same tensor as in the bridge. Anything else (a hook inside attention,
``resid_mid``, a PyTorch hook on one of the bridged modules, a model spread over several devices)
makes it return the bridged model, as before.

One thing differs by design: in a decoding step (one new token per row) the plain view's attention
reads each key/value head once for the query heads that share it (grouped-query attention as a
grouped matrix product) instead of copying the key/value cache to every query head, as the eager
attention the bridge uses does at every step and layer. That copy was a third of a steered grid's
time on the default model. The arithmetic is the same, but a product with three query rows is
rounded by another kernel than three products with one row each, so a step's attention output can
differ from the bridge's in the last bit (about 3e-7); greedy tokens change only where two logits
tie to that precision. A forward of several positions (a prefill, a collection, a perplexity pass)
still runs the model's own eager attention, so it is the bridge's bit for bit; a forward of one
position per row is a decoding step here, and so is the prompt's last token after a shared prefill
when the prompt has no chat template after it. ``grouped = False`` turns it off.
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
# False keeps the model's own eager attention in decoding steps too (bit-identical to the bridge).
grouped = True

# Attention name registered with transformers for the plain view's decoding steps.
_GROUPED = "interp_steer_grouped"
# Model families whose eager attention is exactly softmax(q k^T * scaling [soft-capped] + mask) v,
# checked against the grouped form in tests/test_plain.py. Other models keep their own attention.
_GROUPED_FAMILIES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "olmo2"})


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
        self.blocks: dict[int, torch.nn.Module] = {}  # id of a bridged block -> its plain module
        self.wrapped: list[torch.nn.Module] = []  # the bridged tree's modules, to check for hooks
        self.root = self._clone(hf_model, top=True)
        self.grouped_config = _use_grouped_attention(hf_model, self.root)

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
                self.blocks[id(module)] = clone
        return clone


def _family(module: torch.nn.Module) -> str | None:
    """``llama`` for a module of ``transformers.models.llama.modeling_llama``; None for other code."""
    parts = type(module).__module__.split(".")
    if len(parts) == 4 and parts[:2] == ["transformers", "models"] and parts[3] == f"modeling_{parts[2]}":
        return parts[2]
    return None


def _use_grouped_attention(hf_model: torch.nn.Module, root: torch.nn.Module) -> Any:
    """Point the plain tree at a copy of the model's config that selects grouped decoding attention,
    where the model uses eager attention with fewer key/value heads than query heads and every
    attention module is of a family whose eager attention the grouped form reproduces. The bridged
    model keeps the original config. Returns the copy, or None where nothing changed."""
    config = getattr(hf_model, "config", None)
    attention = [m for m in root.modules() if hasattr(m, "num_key_value_groups")]
    if (config is None or getattr(config, "_attn_implementation", None) != "eager" or not attention
            or not any(m.num_key_value_groups > 1 for m in attention)
            or any(_family(m) not in _GROUPED_FAMILIES for m in attention)):
        return None
    _register_grouped()
    plain_config = copy.copy(config)
    plain_config._attn_implementation = _GROUPED
    for module in root.modules():
        if getattr(module, "config", None) is config:
            module.config = plain_config
    return plain_config


def _register_grouped() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(_GROUPED, _grouped_attention)
    AttentionMaskInterface.register(_GROUPED, eager_mask)  # the same additive mask eager attention gets


_EAGER: dict[type, Any] = {}


def _eager_attention(module: torch.nn.Module):
    """The eager attention function of the module's own modeling file."""
    kind = type(module)
    if kind not in _EAGER:
        import sys

        _EAGER[kind] = sys.modules[kind.__module__].eager_attention_forward
    return _EAGER[kind]


def _grouped_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Eager attention for one query position per row without copying the key/value heads: the
    query heads that share a key/value head are multiplied with it as one (heads/groups x d) block.
    Anything else (prefill, dropout, ``grouped = False``) runs the model's own eager attention."""
    batch, heads, length, dim = query.shape
    groups = key.shape[1]
    if not grouped or length != 1 or dropout or heads == groups or heads % groups:
        return _eager_attention(module)(module, query, key, value, attention_mask, scaling=scaling,
                                        dropout=dropout, **kwargs)
    scaling = module.head_dim ** -0.5 if scaling is None else scaling  # as Gemma's eager attention
    shared = query.reshape(batch, groups, heads // groups, dim)
    weights = torch.matmul(shared, key.transpose(2, 3)).view(batch, heads, 1, -1) * scaling
    softcap = kwargs.get("softcap")
    if softcap is not None:  # Gemma 2's soft-capping, in its order
        weights = torch.tanh(weights / softcap) * softcap
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(weights.view(batch, groups, heads // groups, -1), value)
    return out.view(batch, heads, 1, dim).transpose(1, 2).contiguous(), weights


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
    """Whether anything is hooked on ``module``, leaving out the hooks whose ids are ``internal`` and
    transformers' own output-capturing hooks."""
    registries = [getattr(module, name, None) or {} for name in _CALL_HOOKS]
    inert = {key for registry in registries for key, hook in registry.items() if _inert(hook)}
    return any(key not in internal and key not in inert for registry in registries for key in registry)


def _inert(hook: Any) -> bool:
    """transformers installs output-capturing hooks on a model's layers the first time it is asked for
    hidden states or attentions (``run_with_cache`` does), and leaves them there. They act only
    while such a call collects outputs, which no forward here asks for, so they must not stop the
    plain view for the rest of the model's life."""
    return getattr(hook, "__module__", None) == "transformers.utils.output_capturing"


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
    point routed to it, or the bridged Hugging Face model where that cannot be done. The view is
    built at the first call made while nothing is hooked: a caller that puts its own hooks in place
    (a steering scope) calls :func:`plain_view` once before them, then this after they are. Make
    every forward inside the block."""
    view = plain_view(model) if enabled else None
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


# --- Resuming a forward pass after a block ------------------------------------------------------
#
# Interventions at one layer leave every earlier layer as it was: a steered forward computes blocks
# 0..L exactly as the unsteered forward of the same batch did. ``block_output`` records block L's
# output in one forward; inside ``resumed`` later forwards of the same batch skip blocks 0..L and
# take that output instead, so hooks at block L's output (a steering vector, a reader) and every
# later block run as they would have. Blocks L+1.. then receive the very same tensor, so the outputs
# are the full forward's bit for bit (tests/test_plain.py); the saving is the L+1 skipped blocks.


def _plain_blocks(model, view: PlainView) -> list[torch.nn.Module] | None:
    blocks = getattr(model.bridge, "blocks", None)
    if blocks is None or any(id(b) not in view.blocks for b in blocks):
        return None
    return [view.blocks[id(b)] for b in blocks]


@contextlib.contextmanager
def block_output(model, layer: int) -> Iterator[list[torch.Tensor]]:
    """Record block ``layer``'s output (before any hook at its output changes it) in each forward on
    the plain view inside the block; the yielded list receives one tensor per such forward (none
    where the forwards ran on the bridge)."""
    view = plain_view(model) if enabled else None
    blocks = None if view is None else _plain_blocks(model, view)
    outputs: list[torch.Tensor] = []
    if blocks is None:
        yield outputs
        return

    def record(_module, _args, output):
        # A copy: a later hook may change the block's output in place.
        outputs.append((output[0] if isinstance(output, tuple) else output).detach().clone())

    # Registered before forward_module routes any hook point to this module, so it runs first.
    handle = blocks[layer].register_forward_hook(record)
    try:
        yield outputs
    finally:
        handle.remove()


def _skip(*args, **kwargs):
    return args[0] if args else kwargs["hidden_states"]


@contextlib.contextmanager
def resumed(model, layer: int, output: torch.Tensor | None) -> Iterator[bool]:
    """Inside the block, forwards on the plain view skip blocks ``0..layer`` and take ``output`` as
    block ``layer``'s output (recorded by :func:`block_output` on the same batch); hooks from that
    output on run as usual. Yields whether it is in effect: not without an ``output`` or a plain
    view, nor where a hook point that a skipped part would run has hooks (the embedding, anything in
    blocks ``0..layer`` but block ``layer``'s output), since those would not fire. The decision is
    taken on entry, with the hooks in place then: a reader added inside must read at block ``layer``'s
    output or later. Where it is not in effect, forwards run whole, with the same results."""
    view = plain_view(model) if enabled and output is not None else None
    blocks = None if view is None else _plain_blocks(model, view)
    hooked = None if blocks is None else _hooked(model, view)
    if hooked is None or not _can_skip(view, blocks, layer, hooked):
        yield False
        return
    if any("forward" in block.__dict__ for block in blocks):
        raise RuntimeError("resumed() is already in effect on this model; it does not nest")

    def taken(*args, **kwargs):
        hidden = _skip(*args, **kwargs)
        if hidden.shape != output.shape:
            raise ValueError(f"resuming after block {layer} with an output of shape {list(output.shape)} in a "
                             f"forward whose hidden states are {list(hidden.shape)}: record it on the same batch")
        return output.clone()  # the same record serves every forward; a hook may change its copy in place

    try:
        for block in blocks[:layer]:
            block.forward = _skip
        blocks[layer].forward = taken
        yield True
    finally:
        for block in blocks[: layer + 1]:
            block.__dict__.pop("forward", None)


def _can_skip(view: PlainView, blocks: list[torch.nn.Module], layer: int, hooked: dict[int, Any]) -> bool:
    """Whether no hooked hook point sits where skipping blocks ``0..layer`` would stop it from firing
    or throw its change away: the input embedding, or any module inside those blocks other than
    block ``layer``'s own output."""
    skipped = {id(module) for block in blocks[: layer + 1] for module in block.modules()}
    embedding = view.root.get_input_embeddings()
    for key in hooked:
        _point, module, kind = view.routes[key]
        if module is blocks[layer] and kind == "out":
            continue
        if id(module) in skipped or module is embedding:
            return False
    return True
