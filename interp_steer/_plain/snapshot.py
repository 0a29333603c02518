"""What a view mirrors, checked on every use: :class:`Snapshot` holds everything of a bridged model
that its plain view copied or relies on, and says what changed since."""

from __future__ import annotations

import operator
import sys
from collections.abc import Iterable
from itertools import chain, compress
from typing import Any

import torch

from interp_steer._plain.hooks import (
    BACKWARD_REGISTRIES,
    FORWARD_REGISTRIES,
    GLOBAL_HOOKS,
    HOOK_DICTS,
    bridge_hooks,
    has_hooks,
)
from interp_steer._plain.view import Route, readable

# nn.Module attributes that a forward pass never reads: hook registries (read afresh on every use,
# see Snapshot.hooked) and autograd and state-dict bookkeeping.
_NOT_READ = frozenset(HOOK_DICTS) | {"_is_full_backward_hook", "_non_persistent_buffers_set"}
# Attributes that the bridge and transformers rewrite during or around every call, so they say
# nothing about what the model computes: TransformerLens's per-call flags and caches, a hook point's
# lists of its own hook handles, transformers' output-capturing flag and a rotary cache's length.
_BOOKKEEPING = frozenset({
    "_fired_hook_out", "_suppress_next_hook_in", "_pattern", "_attn_scores", "_current_batch_size",
    "_captured_pre_ln_residual", "_capture_hooks_wired", "_stop_at_layer_idx", "_start_at_layer_idx",
    "_start_residual", "fwd_hooks", "bwd_hooks", "ctx", "_output_capturing_hooks_installed", "max_seq_len_cached",
})


class Snapshot:
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
        names = {id(m): readable(name) or "the model" for name, m in hf.named_modules(remove_duplicate=False)}

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
                          for getter in (*FORWARD_REGISTRIES, *BACKWARD_REGISTRIES)]
        registries = (*FORWARD_REGISTRIES, *BACKWARD_REGISTRIES)
        self._allowed = [(i, getter, frozenset(getter(state)))
                         for getter, lengths in zip(registries, self._baseline, strict=True)
                         for i, (state, n) in enumerate(zip(self._wrapped_dicts, lengths, strict=True)) if n]

    def hooked(self, routes: dict[int, Route]) -> tuple[list[Route] | None, str | None]:
        """The routes of the hook points that have hooks now, or None and why the view cannot run
        them: a hooked point it cannot route, a PyTorch hook on a bridged module, a global hook."""
        module_hooks = torch.nn.modules.module
        if any(getattr(module_hooks, name, None) for name in GLOBAL_HOOKS):
            return None, "global module hooks are registered (torch.nn.modules.module.register_module_*_hook)"
        registries = FORWARD_REGISTRIES + (BACKWARD_REGISTRIES if torch.is_grad_enabled() else ())
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
        internal = bridge_hooks(self._wrapped)
        for module in self._wrapped:
            if has_hooks(module, internal):
                hf, _bridge = self._model_parts
                names = {id(m): name for name, m in hf.named_modules(remove_duplicate=False)}
                return readable(names.get(id(module), "")) or type(module).__name__
        self._set_baseline()
        return None


_data_ptr = torch.Tensor.data_ptr


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # noqa: BLE001 - == that raises (a tensor) means: not the same object, changed
        return False


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


def state_copies(model) -> dict[int, tuple[dict, dict]]:
    """A shallow copy of every attribute dictionary the snapshot compares, to find what the bridge
    rewrites by itself while a view is built (its bookkeeping)."""
    from transformer_lens.hook_points import HookPoint

    others = [m for m in model.hf_model.modules() if not isinstance(m, HookPoint)]
    return {id(owner.__dict__): (owner.__dict__, dict(owner.__dict__)) for owner in [*others, *_configs(others)]}


def volatile_names(copies: dict[int, tuple[dict, dict]]) -> dict[int, set[str]]:
    """Per attribute dictionary of :func:`state_copies`, the names whose values changed since the copy."""
    return {key: {k for k in state if k not in then or state[k] is not then[k]}
            for key, (state, then) in copies.items()}
