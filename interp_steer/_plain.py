"""The fast path: forward passes without the bridge's wrappers, for generation, activation
collection and perplexity. Everything about it lives in this module; the rest of the package calls
:func:`plain_view`, :func:`forward_module`, :func:`block_output` and :func:`resumed`, and users switch
it with :func:`fast_path` (``interp_steer.fast_path``). Studies never call it directly.

TransformerBridge wraps every Hugging Face submodule (each block, attention, MLP, norm and linear
layer: about 360 on the default model) in a component that runs its hook points and bookkeeping on
every call. Per decoding step that costs about a fifth of a step on a CPU, whether or not any hook is
active. A *plain view* is the same model as a tree of the original Hugging Face modules, sharing every
parameter and buffer with the bridged one (each plain module is a shallow copy of the original, so
both hold the very same ``_parameters`` and ``_buffers`` dictionaries), so its outputs are the bridged
model's bit for bit (``tests/test_plain.py`` checks this on every architecture family).

**It never computes another model than the one the user holds.** The view is a copy, so it is checked
against what it was copied from on every use (:class:`_Snapshot`): the module tree (every module's
type and children), every attribute of every module (a patched ``forward``, ``training``, a swapped
weight tensor, a changed ``scaling``), the configs the modules read, the bridge's classes, and the
``eager_attention_forward`` that grouped decoding attention stands in for. Anything changed since the
view was built (a LoRA adapter, an SAE spliced in, an ablation wrapper, ``train()``, ``.to(dtype)``,
``torch.nn.utils.parametrize``) makes it build the view again (and check it against the bridge again)
before the next forward; a model it cannot mirror (a patched ``forward`` anywhere, Accelerate's
dispatch hooks, a bridge component that computes its own way, several devices) runs on the bridge.
In-place edits of a weight (``weight.data.mul_(2)``) need no check: the view holds the same tensor.
The check costs about a hundredth of a decoding step (``benchmarks/bench_fast_path_check.py``).

**Hooks fire exactly where the bridge fires them.** When the view is built, one forward of the bridged
model with a recording hook on every hook point shows which points the bridge's own forward fires
and with which tensors; a hook point is *routable* only where a boundary of a plain module (a
component's output, a block's input) sees exactly those tensors in the plain forward. At the moment
a generation (or a collection, or a scoring pass) runs, :func:`forward_module` runs each hooked,
routable point from a PyTorch hook on its plain module, which calls the very same hook point, so its
hooks see and change the same tensor as in the bridge. A hook on any other point (inside attention,
``resid_mid``, a rotary embedding's output, Phi-3's fused ``qkv``: points the bridge fires elsewhere or
never), a PyTorch hook on a bridged module, or a global module hook makes it return the bridged
model. The first time a model runs on the bridge for any of these reasons, one line on the logger
``interp_steer.fast_path`` (level INFO) says why.

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
when the prompt has no chat template after it. ``fast_path(grouped=False)`` turns it off.

Upstream private names this module relies on are listed in the README ("What the fast path relies on").
"""

from __future__ import annotations

import contextlib
import copy
import logging
import operator
import sys
import weakref
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import chain, compress
from typing import Any

import torch

_log = logging.getLogger("interp_steer.fast_path")

# Every per-module hook registry of nn.Module. A plain module gets empty ones of its own.
_HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)
_CALL_HOOKS = _HOOK_DICTS[:7]
# The registries that hold a hook's function (the with_kwargs / always_called ones hold flags for the
# same keys). Backward hooks do nothing where no gradient is recorded, so they count only under grad.
_FORWARD_REGISTRIES = (operator.itemgetter("_forward_hooks"), operator.itemgetter("_forward_pre_hooks"))
_BACKWARD_REGISTRIES = (operator.itemgetter("_backward_hooks"), operator.itemgetter("_backward_pre_hooks"))
# nn.Module attributes that a forward pass never reads: hook registries (read afresh on every use,
# see _Snapshot.hooked) and autograd and state-dict bookkeeping.
_NOT_READ = frozenset(_HOOK_DICTS) | {"_is_full_backward_hook", "_non_persistent_buffers_set"}
# Attributes that the bridge and transformers rewrite during or around every call, so they say
# nothing about what the model computes: TransformerLens's per-call flags and caches, a hook point's
# lists of its own hook handles, transformers' output-capturing flag and a rotary cache's length.
_BOOKKEEPING = frozenset({
    "_fired_hook_out", "_suppress_next_hook_in", "_pattern", "_attn_scores", "_current_batch_size",
    "_captured_pre_ln_residual", "_capture_hooks_wired", "_stop_at_layer_idx", "_start_at_layer_idx",
    "_start_residual", "fwd_hooks", "bwd_hooks", "ctx", "_output_capturing_hooks_installed", "max_seq_len_cached",
})
# PyTorch's hooks on every module: they would fire on the plain modules too, but not as on the bridged ones.
_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks")

# (enabled, grouped), set by fast_path() for the current thread / task.
_SWITCH: ContextVar[tuple[bool, bool]] = ContextVar("interp_steer_fast_path", default=(True, True))


@contextlib.contextmanager
def fast_path(enabled: bool = True, *, grouped: bool = True) -> Iterator[None]:
    """Switch the fast path inside the ``with`` block (this thread or task only; blocks nest).

    ``enabled=False`` runs every forward pass of generation, activation collection and perplexity
    through the bridge's wrappers, as before the plain view existed: slower, with the same results.
    ``grouped=False`` keeps the plain view but runs the model's own eager attention in decoding steps
    too, so that every logit is the bridge's to the bit (grouped decoding attention rounds a step's
    attention output differently in the last bit; see the module docstring)::

        with interp_steer.fast_path(False):
            reference = interp_steer.generate(model, prompts)
    """
    for name, value in (("enabled", enabled), ("grouped", grouped)):
        if not isinstance(value, bool):
            raise TypeError(f"fast_path({name}={value!r}): expected True or False")
    token = _SWITCH.set((enabled, grouped))
    try:
        yield
    finally:
        _SWITCH.reset(token)


# Attention name registered with transformers for the plain view's decoding steps.
_GROUPED = "interp_steer_grouped"
# Model families whose eager attention is exactly softmax(q k^T * scaling [soft-capped] + mask) v,
# checked against the grouped form in tests/test_plain.py. Other models keep their own attention.
_GROUPED_FAMILIES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "olmo2"})


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
        self.grouped_config = _use_grouped_attention(hf_model, self.root)

    def _clone(self, module: torch.nn.Module, top: bool = False) -> torch.nn.Module:
        bridged = isinstance(module, self._component)
        inner = module._modules.get("_original_component") if bridged else module
        if inner is None:
            raise _Unviewable(f"the bridge component {type(module).__name__} wraps no module")
        clone = _shallow_copy(inner)
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


class _Unviewable(Exception):
    """The bridged model has something a plain view cannot mirror; the message says what."""


def _shallow_copy(module: torch.nn.Module) -> torch.nn.Module:
    """``copy.copy`` without pickling's ``__getstate__`` (which a parametrized module refuses): a new
    object of the same class whose attributes are the same objects."""
    clone = type(module).__new__(type(module))
    clone.__dict__.update(module.__dict__)
    return clone


def _family(module: torch.nn.Module) -> str | None:
    """``llama`` for a module of ``transformers.models.llama.modeling_llama``; None for other code."""
    parts = type(module).__module__.split(".")
    if len(parts) == 4 and parts[:2] == ["transformers", "models"] and parts[3] == f"modeling_{parts[2]}":
        return parts[2]
    return None


def _eager_attention(module: torch.nn.Module):
    """The eager attention function of the module's own modeling file, looked up at every call, as
    the modeling code does (a patched one is the one that runs)."""
    return sys.modules[type(module).__module__].eager_attention_forward


def _pristine_eager(module: torch.nn.Module) -> bool:
    """Whether the module's modeling file still has its own ``eager_attention_forward`` (the grouped
    form reproduces that function, not one a user put in its place)."""
    function = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    return (function is not None and getattr(function, "__module__", None) == type(module).__module__
            and getattr(function, "__name__", None) == "eager_attention_forward")


def _use_grouped_attention(hf_model: torch.nn.Module, root: torch.nn.Module) -> Any:
    """Point the plain tree at a copy of the model's config that selects grouped decoding attention,
    where the model uses eager attention with fewer key/value heads than query heads and every
    attention module is of a family whose (unpatched) eager attention the grouped form reproduces.
    The bridged model keeps the original config. Returns the copy, or None where nothing changed."""
    config = getattr(hf_model, "config", None)
    attention = [m for m in root.modules() if hasattr(m, "num_key_value_groups")]
    if (config is None or getattr(config, "_attn_implementation", None) != "eager" or not attention
            or not any(m.num_key_value_groups > 1 for m in attention)
            or any(_family(m) not in _GROUPED_FAMILIES or not _pristine_eager(m) for m in attention)):
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


def _grouped_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Eager attention for one query position per row without copying the key/value heads: the
    query heads that share a key/value head are multiplied with it as one (heads/groups x d) block.
    Anything else (prefill, dropout, ``fast_path(grouped=False)``) runs the model's own eager attention."""
    batch, heads, length, dim = query.shape
    groups = key.shape[1]
    if not _SWITCH.get()[1] or length != 1 or dropout or heads == groups or heads % groups:
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


# --- What a view mirrors, checked on every use ---------------------------------------------------


class _Snapshot:
    """Everything of a bridged model that its plain view copied or relies on, as it was when the view
    was built; :meth:`change` says what differs now. It runs before every use, so it compares at C
    speed: per module its type and how many attributes it has, the identity of each attribute it
    reads (grouped by attribute names, one ``itemgetter`` per group), the identity of each child
    module, and the same for the configs the modules hold. The original modules share their
    ``_parameters`` and ``_buffers`` dictionaries with the view, so a replaced or converted tensor
    is seen by both without a check; the bridge components' own are compared.

    ``volatile`` holds, per attribute dictionary (by id), the names whose values changed while the
    view was built and checked: the bridge's per-call bookkeeping, which must not count as a change."""

    def __init__(self, model, volatile: dict[int, set[str]]):
        from transformer_lens.hook_points import HookPoint
        from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

        hf = model.hf_model
        self._model_parts = (model.hf_model, model.bridge)
        modules = list(hf.modules())
        points = [m for m in modules if isinstance(m, HookPoint)]
        others = [m for m in modules if not isinstance(m, HookPoint)]
        configs = _configs(others)
        self._modules, self._types = modules, list(map(type, modules))
        self._dicts = [m.__dict__ for m in modules] + [c.__dict__ for c in configs]
        self._lengths = list(map(len, self._dicts))
        self._keys = [frozenset(state) for state in self._dicts]  # to say what changed, and to settle
        groups: dict[tuple[str, ...], list[dict]] = {}
        for owner in [*modules, *configs]:
            state = owner.__dict__
            skip = volatile.get(id(state), set())
            if isinstance(owner, HookPoint):  # a hook point's own state matters only in a patched forward
                keys = tuple(k for k in state if k == "forward")
            elif isinstance(owner, torch.nn.Module):
                shared = owner is hf  # the root shares the top model's hook registries: they must stay its
                keys = tuple(k for k in state if k not in _BOOKKEEPING and k not in skip
                             and (shared or k not in _NOT_READ))
            else:
                keys = tuple(k for k in state if k not in skip)
            if keys:
                groups.setdefault(keys, []).append(state)
        self._groups = [(operator.itemgetter(*keys), states, list(map(operator.itemgetter(*keys), states)))
                        for keys, states in groups.items()]
        self._containers = [m._modules for m in others]
        self._contents = [dict(c) for c in self._containers]
        # Every parameter and buffer, and where its data lives: the view shares the original modules'
        # dictionaries, but a bridge component may compute with its own tensors (Phi-3's split of the
        # fused gate/up projection), so a replaced or converted tensor is a change to check again.
        self._tensor_dicts = [m._parameters for m in others] + [m._buffers for m in others]
        self._tensors = list(chain.from_iterable(map(dict.values, self._tensor_dicts)))
        self._is_tensor = [isinstance(t, torch.Tensor) for t in self._tensors]
        self._pointers = list(map(_data_ptr, compress(self._tensors, self._is_tensor)))
        classes = {type(m) for m in modules if isinstance(m, (GeneralizedComponent, HookPoint))}
        self._methods = [(cls, name, getattr(cls, name)) for cls in classes for name in ("forward", "__call__")]
        # Grouped decoding attention stands in for each attention family's eager function.
        attention = {type(m) for m in others if hasattr(m, "num_key_value_groups")}
        self._globals = [(vars(sys.modules[cls.__module__]), "eager_attention_forward",
                          vars(sys.modules[cls.__module__]).get("eager_attention_forward")) for cls in attention
                         if cls.__module__ in sys.modules]
        # Hook registries, read afresh at every use: hook points, and the bridged modules below the top.
        self._points = [p.__dict__ for p in points]
        self._point_ids = [id(p) for p in points]
        for point in model.bridge.hook_dict.values():  # a point the tree no longer holds can still be hooked
            if id(point) not in self._point_ids:
                self._points.append(point.__dict__)
                self._point_ids.append(id(point))
        self._named = {id(p): p for p in [*points, *model.bridge.hook_dict.values()]}
        self._wrapped = [m for m in others if m is not hf]
        self._wrapped_dicts = [m.__dict__ for m in self._wrapped]
        self._baseline: list[list[int]] = []
        self._allowed: list[tuple[int, Any, frozenset]] = []
        self._set_baseline()

    def change(self, model) -> str | None:
        """None where the model is as it was; else what changed, in words."""
        hf, bridge = self._model_parts
        if model.hf_model is not hf or model.bridge is not bridge:
            return "the model's modules were replaced"
        try:
            if (list(map(type, self._modules)) == self._types
                    and list(map(len, self._dicts)) == self._lengths
                    and all(list(map(getter, states)) == then for getter, states, then in self._groups)
                    and all(map(operator.eq, self._contents, self._containers))
                    and self._same_tensors()
                    and all(getattr(cls, name) is value for cls, name, value in self._methods)
                    and all(space.get(name) is value for space, name, value in self._globals)):
                return None
        except Exception:  # noqa: BLE001 - a changed value whose == raises (a tensor, an array) is a change
            pass
        return None if self._settle() else self._explain()

    def _same_tensors(self) -> bool:
        now = list(chain.from_iterable(map(dict.values, self._tensor_dicts)))
        return (len(now) == len(self._tensors) and all(map(operator.is_, now, self._tensors))
                and list(map(_data_ptr, compress(now, self._is_tensor))) == self._pointers)

    def _settle(self) -> bool:
        """Whether the only change is bookkeeping that appeared or went (transformers' flag after its
        first output-capturing call, the bridge's per-call fields): then take the new lengths and
        report no change. Everything else stays as it was compared."""
        lengths = list(map(len, self._dicts))
        for state, keys, length, now in zip(self._dicts, self._keys, self._lengths, lengths, strict=True):
            if now != length and not (set(state) ^ keys) <= _BOOKKEEPING:
                return False
        try:
            same = (list(map(type, self._modules)) == self._types
                    and all(list(map(getter, states)) == then for getter, states, then in self._groups)
                    and all(map(operator.eq, self._contents, self._containers))
                    and self._same_tensors()
                    and all(getattr(cls, name) is value for cls, name, value in self._methods)
                    and all(space.get(name) is value for space, name, value in self._globals))
        except Exception:  # noqa: BLE001 - as in change()
            return False
        if same:
            self._lengths, self._keys = lengths, [frozenset(state) for state in self._dicts]
        return same

    def _explain(self) -> str:
        """What :meth:`change` found, named as the user reaches it (slow; only after a change)."""
        hf, _bridge = self._model_parts
        names = {id(m): _readable(name) or "the model" for name, m in hf.named_modules(remove_duplicate=False)}

        def name_of(state: dict) -> str:
            for module in self._modules:
                if module.__dict__ is state:
                    return names.get(id(module), type(module).__name__)
            return f"the config ({state.get('model_type') or 'of a component'})"

        for module, kind in zip(self._modules, self._types, strict=True):
            if type(module) is not kind:
                return f"{names.get(id(module), kind.__name__)} changed class ({kind.__name__} -> {type(module).__name__})"
        for state, keys in zip(self._dicts, self._keys, strict=True):
            added, removed = sorted(set(state) - keys), sorted(keys - set(state))
            if "forward" in added:
                return f"{name_of(state)} has its forward replaced"
            if added or removed:
                return (f"{name_of(state)} had attributes " + " and ".join(
                    f"{what} ({', '.join(names)})" for what, names in (("added", added), ("removed", removed)) if names))
        for getter, states, then in self._groups:
            for state, value, old in zip(states, map(getter, states), then, strict=True):
                if not _same(value, old):
                    keys = getter.__reduce__()[1]
                    changed = [k for k, a, b in zip(keys, value if len(keys) > 1 else (value,),
                                                    old if len(keys) > 1 else (old,), strict=True) if not _same(a, b)]
                    return f"{name_of(state)}.{changed[0] if changed else '?'} was changed"
        for then, now in zip(self._contents, self._containers, strict=True):
            if not _same(then, now):
                owner = next((m for m in self._modules if m.__dict__.get("_modules") is now), None)
                differs = sorted(set(then) ^ set(now) | {k for k in set(then) & set(now) if then[k] is not now[k]})
                return f"{names.get(id(owner), 'a module')}: {', '.join(differs)} replaced, added or removed"
        if not self._same_tensors():
            for module in self._modules:
                for kind in ("_parameters", "_buffers"):
                    for key, tensor in module.__dict__.get(kind, {}).items():
                        position = next((i for i, t in enumerate(self._tensors) if t is tensor), None)
                        if position is None:
                            return f"{names.get(id(module), type(module).__name__)}.{key} was replaced"
                        if isinstance(tensor, torch.Tensor) and tensor.data_ptr() != self._pointers[
                                sum(self._is_tensor[:position])]:
                            return f"{names.get(id(module), type(module).__name__)}.{key} was moved or converted"
            return "a parameter or buffer was removed"
        for cls, name, value in self._methods:
            if getattr(cls, name) is not value:
                return f"{cls.__name__}.{name} was replaced"
        for space, name, value in self._globals:
            if space.get(name) is not value:
                return f"{space.get('__name__')}.{name} was replaced"
        return "the model changed"

    def _set_baseline(self) -> None:
        """The hooks that sit on the bridged modules now and do not stop the view (the bridge's own
        capture hooks, transformers' inert output-capturing hooks): later uses compare against them."""
        self._baseline = [list(map(len, map(getter, self._wrapped_dicts)))
                          for getter in (*_FORWARD_REGISTRIES, *_BACKWARD_REGISTRIES)]
        registries = (*_FORWARD_REGISTRIES, *_BACKWARD_REGISTRIES)
        self._allowed = [(i, getter, frozenset(getter(state)))
                         for getter, lengths in zip(registries, self._baseline, strict=True)
                         for i, (state, n) in enumerate(zip(self._wrapped_dicts, lengths, strict=True)) if n]

    def hooked(self, routes: dict[int, Route]) -> tuple[list[Route] | None, str | None]:
        """The routes of the hook points that have hooks now, or None and why the view cannot run
        them: a hooked point it cannot route, a PyTorch hook on a bridged module, a global hook."""
        module_hooks = torch.nn.modules.module
        if any(getattr(module_hooks, name, None) for name in _GLOBAL_HOOKS):
            return None, "global module hooks are registered (torch.nn.modules.module.register_module_*_hook)"
        registries = _FORWARD_REGISTRIES + (_BACKWARD_REGISTRIES if torch.is_grad_enabled() else ())
        counts = [list(map(len, map(getter, self._wrapped_dicts))) for getter in registries]
        if (counts != self._baseline[: len(counts)]
                or not all(getter(self._wrapped_dicts[i]).keys() <= keys for i, getter, keys in self._allowed
                           if getter in registries)):
            found = self._module_hook()
            if found is not None:
                return None, f"a PyTorch hook is on the bridged module {found}"
        counts = [list(map(len, map(getter, self._points))) for getter in registries]
        hooked = {i for lengths in counts if any(lengths) for i in compress(range(len(lengths)), lengths)}
        found = []
        for i in sorted(hooked):
            key = self._point_ids[i]
            if key not in routes:
                return None, (f"hook point {self._point_name(key)} has hooks, and the plain view cannot run it "
                              "where the bridge does (the bridge fires it inside a component, or not at all)")
            found.append(routes[key])
        return found, None

    def _point_name(self, key: int) -> str:
        """A hook point's name and its aliases, as ``bridge.hook_dict`` spells them."""
        _hf, bridge = self._model_parts
        names = [name for name, point in bridge.hook_dict.items() if id(point) == key]
        return " / ".join(names) or str(getattr(self._named.get(key), "name", None) or "(unnamed)")

    def _module_hook(self) -> str | None:
        """The name of a bridged module with a hook that matters (slow; only when the registries
        differ from the baseline), else None after taking the present hooks as the new baseline."""
        internal = _bridge_hooks(self._wrapped)
        for module in self._wrapped:
            if _has_hooks(module, internal):
                hf, _bridge = self._model_parts
                names = {id(m): name for name, m in hf.named_modules(remove_duplicate=False)}
                return _readable(names.get(id(module), "")) or type(module).__name__
        self._set_baseline()
        return None


_data_ptr = torch.Tensor.data_ptr


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # noqa: BLE001 - == that raises (a tensor) means: not the same object, changed
        return False


def _readable(name: str) -> str:
    """``model.layers.0._original_component.mlp`` as the user reaches it: ``model.layers.0.mlp``."""
    return name.replace("._original_component", "").replace("_original_component.", "")


def _configs(modules: Iterable[torch.nn.Module]) -> list[Any]:
    """The distinct config objects the modules hold (Hugging Face's and the bridge's), with the
    configs nested in them (a text config inside a multimodal one)."""
    found: dict[int, Any] = {}
    todo = [m.__dict__.get("config") for m in modules]
    while todo:
        config = todo.pop()
        if config is None or id(config) in found or not hasattr(config, "__dict__") \
                or isinstance(config, (torch.nn.Module, torch.Tensor, type)):
            continue
        found[id(config)] = config
        todo += [value for value in vars(config).values() if type(value).__name__.endswith("Config")]
    return list(found.values())


def _state_copies(model) -> dict[int, tuple[dict, dict]]:
    """A shallow copy of every attribute dictionary the snapshot compares, to find what the bridge
    rewrites by itself while a view is built (its bookkeeping)."""
    from transformer_lens.hook_points import HookPoint

    others = [m for m in model.hf_model.modules() if not isinstance(m, HookPoint)]
    return {id(owner.__dict__): (owner.__dict__, dict(owner.__dict__)) for owner in [*others, *_configs(others)]}


def _volatile(copies: dict[int, tuple[dict, dict]]) -> dict[int, set[str]]:
    return {key: {k for k in state if k not in then or state[k] is not then[k]}
            for key, (state, then) in copies.items()}


# --- Deciding, once per state of the model ------------------------------------------------------


@dataclass
class _Entry:
    view: PlainView | None
    snapshot: _Snapshot
    reason: str | None  # why there is no view


_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TOLD: weakref.WeakSet = weakref.WeakSet()  # models whose first fall-back was logged


def _current(model) -> tuple[PlainView | None, str | None]:
    """The model's plain view, checked against the model (and built again where it changed), or None
    and why not (None as the reason where the switch is off)."""
    if not _SWITCH.get()[0]:
        return None, None
    entry = _VIEWS.get(model)
    if entry is not None:
        changed = entry.snapshot.change(model)
        if changed is None:
            return entry.view, entry.reason
        _log.debug("%s: %s since its plain view was built; building it again", _name(model), changed)
        del _VIEWS[model]
        why = f"{changed} since the plain view was built"
    else:
        why = "the plain view is not built yet"
    if _hooks_anywhere(model):
        # The check against the bridge runs both models bare; decide at a later call without hooks.
        return None, f"{why}, and it is built only while nothing is hooked"
    entry = _build(model)
    _VIEWS[model] = entry
    return entry.view, entry.reason


def plain_view(model) -> PlainView | None:
    """The model's plain view (built at the first call made while nothing is hooked, and again after
    any change to the model), or None where the fast path is off or a view cannot stand in for the
    bridge: see the module docstring. While hooks are in place a missing view is not built (the check
    against the bridge must run both models bare): a caller that puts its own hooks in place calls
    this once before them."""
    return _current(model)[0]


def _name(model) -> str:
    return str(getattr(model, "name", None) or type(model).__name__)


def _hooks_anywhere(model) -> bool:
    hf = model.hf_model
    internal = _bridge_hooks(hf.modules())
    return (any(_has_hooks(m, internal) for m in hf.modules())
            or any(getattr(torch.nn.modules.module, name, None) for name in _GLOBAL_HOOKS))


def _unviewable(model) -> str | None:
    """Why no plain view can mirror this model, or None."""
    if len(model.devices) != 1 or model.device.type == "meta":
        return "the model is spread over several devices (or not loaded)"
    for name, module in model.hf_model.named_modules(remove_duplicate=False):
        if "forward" in module.__dict__:
            return f"{_readable(name) or 'the model'} has its forward replaced (a patch, or Accelerate's dispatch hooks)"
    return None


def _build(model) -> _Entry:
    copies = _state_copies(model)
    reason = _unviewable(model)
    view = None
    if reason is None:
        try:
            view = PlainView(model.hf_model)
        except _Unviewable as error:
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
    return _Entry(view, _Snapshot(model, _volatile(copies)), reason)


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


def _hooked(model, view: PlainView) -> tuple[list[Route] | None, str | None]:
    """The routes of the hooked hook points, or None and why the view cannot run them now."""
    entry = _VIEWS.get(model)
    if entry is None or entry.view is not view:
        return None, "the plain view was built again meanwhile"
    return entry.snapshot.hooked(view.routes)


def _fell_back(model, reason: str | None) -> None:
    """One log line the first time a model runs on the bridge for a reason other than the switch."""
    if reason is None or model in _TOLD:
        return
    _TOLD.add(model)
    _log.info("%s: forward passes run through the bridge's wrappers (slower, same results): %s",
              _name(model), reason)


@contextlib.contextmanager
def forward_module(model) -> Iterator[torch.nn.Module]:
    """The module to run this moment's forward passes on: the plain view, with every active hook
    point routed to it, or the bridged Hugging Face model where that cannot be done. The view is
    built (or built again, after a change) at a call made while nothing is hooked: a caller that puts
    its own hooks in place (a steering scope) calls :func:`plain_view` once before them, then this
    after they are. Make every forward inside the block."""
    view, reason = _current(model)
    routes = None
    if view is not None:
        routes, reason = _hooked(model, view)
    if routes is None:
        _fell_back(model, reason)
        yield model.hf_model
        return
    handles = [_route(*route) for route in routes]
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
    view = plain_view(model)
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
    view = plain_view(model) if output is not None else None
    blocks = None if view is None else _plain_blocks(model, view)
    hooked = None if blocks is None else _hooked(model, view)[0]
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


def _can_skip(view: PlainView, blocks: list[torch.nn.Module], layer: int, hooked: list[Route]) -> bool:
    """Whether no hooked hook point sits where skipping blocks ``0..layer`` would stop it from firing
    or throw its change away: the input embedding, or any module inside those blocks other than
    block ``layer``'s own output."""
    skipped = {id(module) for block in blocks[: layer + 1] for module in block.modules()}
    embedding = view.root.get_input_embeddings()
    for _point, module, kind in hooked:
        if module is blocks[layer] and kind == "out":
            continue
        if id(module) in skipped or module is embedding:
            return False
    return True
