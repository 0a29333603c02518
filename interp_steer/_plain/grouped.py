"""Grouped decoding attention: eager attention for one query position per row that multiplies the
query heads sharing a key/value head with it as one block, instead of copying the key/value cache to
every query head (see :mod:`interp_steer._plain` for why, and what it changes: the last bit)."""

from __future__ import annotations

import copy
import sys
from typing import Any

import torch

from interp_steer._plain.switch import grouped_decoding_enabled

# Attention name registered with transformers for the plain view's decoding steps.
GROUPED = "interp_steer_grouped"
# Model families whose eager attention is exactly softmax(q k^T * scaling [soft-capped] + mask) v,
# checked against the grouped form in tests/test_plain.py. Other models keep their own attention.
_GROUPED_FAMILIES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "olmo2"})


def _family(module: torch.nn.Module) -> str | None:
    """``llama`` for a module of ``transformers.models.llama.modeling_llama``; None for other code."""
    parts = type(module).__module__.split(".")
    if len(parts) == 4 and parts[:2] == ["transformers", "models"] and parts[3] == f"modeling_{parts[2]}":
        return parts[2]
    return None


def eager_attention(module: torch.nn.Module):
    """The eager attention function of the module's own modeling file, looked up at every call, as
    the modeling code does (a patched one is the one that runs)."""
    return sys.modules[type(module).__module__].eager_attention_forward


def _pristine_eager(module: torch.nn.Module) -> bool:
    """Whether the module's modeling file still has its own ``eager_attention_forward`` (the grouped
    form reproduces that function, not one a user put in its place)."""
    function = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    return (function is not None and getattr(function, "__module__", None) == type(module).__module__
            and getattr(function, "__name__", None) == "eager_attention_forward")


def use_grouped_attention(hf_model: torch.nn.Module, root: torch.nn.Module) -> Any:
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
    plain_config._attn_implementation = GROUPED
    for module in root.modules():
        if getattr(module, "config", None) is config:
            module.config = plain_config
    return plain_config


def _register_grouped() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(GROUPED, _grouped_attention)
    AttentionMaskInterface.register(GROUPED, eager_mask)  # the same additive mask eager attention gets


def _grouped_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Eager attention for one query position per row without copying the key/value heads: the
    query heads that share a key/value head are multiplied with it as one (heads/groups x d) block.
    Anything else (prefill, dropout, ``fast_path(grouped=False)``) runs the model's own eager attention."""
    batch, heads, length, dim = query.shape
    groups = key.shape[1]
    if not grouped_decoding_enabled() or length != 1 or dropout or heads == groups or heads % groups:
        return eager_attention(module)(module, query, key, value, attention_mask, scaling=scaling,
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
