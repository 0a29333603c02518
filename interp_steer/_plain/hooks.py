"""What counts as a hook: PyTorch's per-module and global hook registries, the bridge's own capture
hooks and transformers' inert output-capturing hooks (which do not stop the plain view), and whether
anything is hooked on a model."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import torch

# Every per-module hook registry of nn.Module. A plain module gets empty ones of its own.
HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)
CALL_HOOKS = HOOK_DICTS[:7]
# The registries that hold a hook's function (the with_kwargs / always_called ones hold flags for the
# same keys). Backward hooks do nothing where no gradient is recorded, so they count only under grad.
FORWARD_REGISTRIES = (operator.itemgetter("_forward_hooks"), operator.itemgetter("_forward_pre_hooks"))
BACKWARD_REGISTRIES = (operator.itemgetter("_backward_hooks"), operator.itemgetter("_backward_pre_hooks"))
# PyTorch's hooks on every module: they would fire on the plain modules too, but not as on the bridged ones.
GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                "_global_backward_pre_hooks")


def has_hooks(module: torch.nn.Module, internal: frozenset[int] = frozenset()) -> bool:
    """Whether anything is hooked on ``module``, leaving out the hooks whose ids are ``internal`` and
    transformers' own output-capturing hooks."""
    registries = [getattr(module, name, None) or {} for name in CALL_HOOKS]
    idle = {key for registry in registries for key, hook in registry.items() if inert(hook)}
    return any(key not in internal and key not in idle for registry in registries for key in registry)


def inert(hook: Any) -> bool:
    """transformers installs output-capturing hooks on a model's layers the first time it is asked for
    hidden states or attentions (``run_with_cache`` does), and leaves them there. They act only
    while such a call collects outputs, which no forward here asks for, so they must not stop the
    plain view for the rest of the model's life."""
    return getattr(hook, "__module__", None) == "transformers.utils.output_capturing"


def bridge_hooks(modules: Iterable[torch.nn.Module]) -> frozenset[int]:
    """The bridge's own hooks: blocks wire PyTorch hooks on their norms and MLP, once, to capture what
    some hook points (``hook_mlp_in``, a split query/key/value fork) expose. They serve hook points
    the plain view does not route, so they do not stop it."""
    return frozenset(h.id for m in modules for h in getattr(m, "_capture_hook_handles", ()))


def hooks_anywhere(model) -> bool:
    """Whether anything is hooked on the model's modules (the bridge's own capture hooks left out)
    or on every module at once (a global hook)."""
    hf = model.hf_model
    internal = bridge_hooks(hf.modules())
    return (any(has_hooks(m, internal) for m in hf.modules())
            or any(getattr(torch.nn.modules.module, name, None) for name in GLOBAL_HOOKS))
