"""GGUF files, de-quantised once into a plain Hugging Face directory (safetensors) under the cache
(:func:`interp_steer.paths.cache_dir`), keyed by the SHA-256 of the GGUF file."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch

from interp_steer._io import atomic_directory
from interp_steer.paths import cache_dir

log = logging.getLogger("interp_steer.models")  # the logger's name from before the models package


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def converted_gguf(path: Path) -> Path:
    """The Hugging Face directory holding ``path``'s de-quantised weights, converted on first use."""
    converted = cache_dir() / "gguf" / _sha256(path)[:24]
    if not (converted / "model.safetensors").is_file():
        convert_gguf(path, converted)
    return converted


def convert_gguf(path: Path, target: Path) -> None:
    """De-quantise a GGUF file once and store it as a plain Hugging Face directory (safetensors).

    Written to a temporary sibling directory and renamed into place, so an interrupted conversion
    never leaves a half-written cache entry; the entry is readable by whoever the umask allows.
    """
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("de-quantising %s (once; cached in %s)", path, target)
    with atomic_directory(target, complete="model.safetensors") as staging:
        kwargs = {"gguf_file": path.name}
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
        hf_model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), dtype=torch.float32, **kwargs
        )
        config = hf_model.config.to_dict()
        config.pop("quantization_config", None)  # the weights are plain floats now
        tied = bool(getattr(hf_model.config, "tie_word_embeddings", False))
        state = {
            key: tensor.detach().contiguous()
            for key, tensor in hf_model.state_dict().items()
            if not (tied and key == "lm_head.weight")
        }
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(str(staging))
        (staging / "interp_steer_source.json").write_text(
            json.dumps({"gguf": str(path), "sha256": _sha256(path)}, indent=2)
        )


__all__ = ["convert_gguf", "converted_gguf"]
