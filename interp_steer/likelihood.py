"""How likely a model finds a text: per-token negative log-likelihood and perplexity.

| score | function | scale | better / more |
| --- | --- | --- | --- |
| perplexity | :func:`completion_perplexity` | ≥ 1 | lower = more fluent, under the *unsteered* model |
| reference perplexity | :func:`sequence_perplexity` | ≥ 1 | the same for token sequences on their own (e.g. corpus passages cut to a completion's length) |
| token NLL | :func:`token_nll` | ≥ 0 | each token's ``-log p`` from a position on (what the A/B evaluation and the robustness study read) |

Every function here scores token ids under ``model`` as it is: call them outside any ``steer`` block
to score under the unsteered model. They read completions as token ids (a
:class:`~interp_steer.generation.Generation`, or anything with ``prompt_ids`` and ``token_ids``), so
generation can score its own completions with them (``generate(perplexity=True)``) and the text
metrics (:mod:`interp_steer.metrics`) build on them, while this module depends on neither.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp_steer._plain import forward_module
from interp_steer.data import reject_bare_string
from interp_steer.models import Model


@runtime_checkable
class Completion(Protocol):
    """A completion as token ids: its prompt's and its own (what :func:`completion_perplexity`
    reads of a :class:`~interp_steer.generation.Generation`)."""

    @property
    def prompt_ids(self) -> Sequence[int]: ...

    @property
    def token_ids(self) -> Sequence[int]: ...


def completion_perplexity(model: Model, generations: Sequence[Completion], *, batch_size: int = 16) -> np.ndarray:
    """Perplexity of each completion given its prompt, under ``model`` as it is (call it outside any
    ``steer`` block to score under the unsteered model). NaN for an empty completion.

    Completions of the same prompt (a steering grid has one per cell) share one forward of the
    prompt: its key/value cache is copied to every completion, so the prompt is read once instead of
    once per cell. Results equal a full forward of prompt + completion to float rounding."""
    reject_bare_string(generations, "generations")
    out = np.full(len(generations), np.nan)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, g in enumerate(generations):
        if g.token_ids:
            groups.setdefault(tuple(g.prompt_ids), []).append(i)
    for prompt_ids, members in groups.items():
        prefix = _prefix(model, list(prompt_ids))
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            nll = _completion_nll(model, prefix, len(prompt_ids), [list(generations[i].token_ids) for i in chunk])
            for i, values in zip(chunk, nll, strict=True):
                out[i] = math.exp(float(values.mean()))
    return out


@torch.inference_mode()
def _prefix(model: Model, prompt_ids: list[int]) -> tuple[Any, torch.Tensor]:
    """The prompt's key/value cache and its next-token log-probabilities."""
    from transformers import DynamicCache

    if not prompt_ids:
        raise ValueError("a completion needs a non-empty prompt to be scored")
    cache = DynamicCache()
    prompt = torch.tensor([prompt_ids], device=model.device)
    with forward_module(model) as hf:
        logits = hf(input_ids=prompt, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    return cache, torch.log_softmax(logits[0, -1].float(), dim=-1)


@torch.inference_mode()
def _completion_nll(model: Model, prefix: tuple[Any, torch.Tensor], width: int, completions: list[list[int]]) -> list[torch.Tensor]:
    """NLL of every token of each completion after a shared prompt of ``width`` tokens."""
    cache, first_logprobs = prefix
    rows = copy.deepcopy(cache)
    rows.batch_repeat_interleave(len(completions))
    ids, mask = model.pad(completions, padding_side="right")
    full_mask = torch.cat([torch.ones(len(completions), width, dtype=mask.dtype, device=mask.device), mask], dim=1)
    positions = torch.arange(width, width + ids.shape[1], device=ids.device).expand(len(completions), -1)
    with forward_module(model) as hf:
        logits = hf(input_ids=ids, attention_mask=full_mask, position_ids=positions, past_key_values=rows,
                    use_cache=True, cache_position=torch.arange(width, width + ids.shape[1], device=ids.device)).logits
    result = []
    for row, completion in enumerate(completions):
        later = target_nll(logits[row, : len(completion) - 1], ids[row, 1 : len(completion)])
        result.append(torch.cat([-first_logprobs[completion[0]].reshape(1), later]).cpu())
    return result


def target_nll(logits: Float[Tensor, "*positions vocab"], targets: Int[Tensor, "*positions"]) -> Float[Tensor, "*positions"]:
    """``-log softmax(logits)[target]`` at each position, in float32 whatever the model's dtype."""
    return -torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None])[..., 0]


@torch.inference_mode()
def token_nll(model: Model, sequences: Sequence[Sequence[int]], score_from: Sequence[int]) -> list[torch.Tensor]:
    """Negative log-likelihood of each token at or after ``score_from[i]`` in each sequence
    (right-padded batch; the first token of a sequence has no prediction and is never scored)."""
    ids, mask = model.pad(sequences, padding_side="right")
    with forward_module(model) as hf:
        logits = hf(input_ids=ids, attention_mask=mask, use_cache=False).logits
    nll = target_nll(logits[:, :-1], ids[:, 1:])
    result = []
    for row, (seq, start) in enumerate(zip(sequences, score_from, strict=True)):
        first = max(int(start), 1)
        result.append(nll[row, first - 1 : len(seq) - 1].cpu())
    return result


def sequence_perplexity(model: Model, sequences: Sequence[Sequence[int]], *, batch_size: int = 16) -> np.ndarray:
    """Perplexity of each token sequence on its own (no prompt), under ``model`` as it is: ``exp`` of
    the mean NLL of every token after the first (the first has no prediction; a BOS the tokenizer
    adds is that first token). Use it to score reference text, e.g. a corpus cut to a completion's
    length; NaN for a sequence of fewer than two tokens."""
    out = np.full(len(sequences), np.nan)
    for start in range(0, len(sequences), batch_size):
        chunk = [list(s) for s in sequences[start : start + batch_size]]
        scored = [i for i, s in enumerate(chunk) if len(s) >= 2]
        if scored:
            nll = token_nll(model, [chunk[i] for i in scored], [1] * len(scored))
            for i, values in zip(scored, nll, strict=True):
                out[start + i] = math.exp(float(values.mean()))
    return out


__all__ = ["Completion", "completion_perplexity", "sequence_perplexity", "target_nll", "token_nll"]
