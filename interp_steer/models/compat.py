"""What ``load_model`` refuses, before or after building a bridge: models that are not decoder-only
causal LMs, bridges without residual hooks or with a recurrent state, and a bridge whose cached
forward ignores the cache; and the architectures the test suite runs on."""

from __future__ import annotations

import re
from typing import Any

import torch

from interp_steer.models.spec import TINY_FAMILY_TABLE, ModelLoadError


def cache_renamed() -> bool:
    """Whether the installed transformers passes the key/value cache to attention as ``cache``
    (5.24 renamed it from ``past_key_values``), which TransformerLens 4.3's attention bridge does not
    read. pyproject pins transformers below 5.24; this notices an install that overrode the pin."""
    import transformers

    major, minor = (int(part) for part in re.findall(r"\d+", transformers.__version__)[:2])
    return (major, minor) >= (5, 24)


@torch.inference_mode()
def check_bridge_cache(hf_model: Any, name: str) -> None:
    """Refuse a bridge whose cached forward ignores the cache: a token decoded after a cached prefix
    must get the logits a full forward gives it. Otherwise every cached generation that runs through
    the bridge (GPT-2, ``resid_mid`` steering, hooks inside attention) would attend to the new token
    alone and print fluent-looking nonsense."""
    vocab = int(hf_model.get_output_embeddings().weight.shape[0])
    device = next(hf_model.parameters()).device
    ids = (torch.arange(1, 6, device=device) * 7919 % vocab)[None]
    full = hf_model(input_ids=ids).logits[0, -1].float()
    prefix = hf_model(input_ids=ids[:, :-1], use_cache=True)
    step = hf_model(input_ids=ids[:, -1:], past_key_values=prefix.past_key_values, use_cache=True).logits[0, -1].float()
    # A gross mismatch, not rounding: a step that ignores its cache gets logits of another context,
    # while bfloat16 rounding moves them by well under a percent.
    if float((step - full).norm() / full.norm().clamp_min(1e-12)) > 0.05:
        from importlib.metadata import version

        raise ModelLoadError(
            f"{name}: TransformerLens {version('transformer-lens')}'s bridge ignores the key/value cache "
            f"under transformers {version('transformers')} (5.24 renamed past_key_values to cache), so "
            f"cached generation through it would attend to each new token alone. Install a supported "
            f"transformers: pip install 'transformers>=5.9,<5.24'"
        )


def tested_architectures() -> list[str]:
    """Hugging Face model classes the test suite runs every path on (one tiny model per family)."""
    return sorted({family.model_class for family in TINY_FAMILY_TABLE.values()})


def unsupported(name: str, hf_model: Any, why: str) -> str:
    """The message that refuses ``name`` (its class ``hf_model``) for the reason ``why``, naming the
    tested architectures."""
    return (
        f"{name} ({type(hf_model).__name__}) cannot be used with interp_steer: {why}. interp_steer "
        f"steers decoder-only transformer language models; these architectures are tested: "
        f"{', '.join(tested_architectures())}. Other decoder-only transformers that TransformerLens's "
        "TransformerBridge supports (e.g. Mixtral, GPT-NeoX) load, but are untested."
    )


def check_architecture(hf_model: Any, name: str) -> None:
    """Refuse, before building a bridge, models whose forward pass is not a causal LM's."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = hf_model.config
    if getattr(config, "is_encoder_decoder", False):
        raise ModelLoadError(unsupported(name, hf_model, "it is an encoder-decoder model"))
    if type(hf_model).__name__ not in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()):
        raise ModelLoadError(unsupported(name, hf_model, "it is not a causal language model"))


__all__ = ["cache_renamed", "check_architecture", "check_bridge_cache", "tested_architectures", "unsupported"]
