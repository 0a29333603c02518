"""Batched generation with a KV cache, chat templates, seeds, and steering.

:func:`generate` formats each prompt with the model's chat template (``chat=None`` uses it when the
model has one), left-pads a batch, runs one prefill and then one cached step per new token, and
returns the completion text and ids (never the prompt) for every prompt. The forward passes run on
the model's plain view (:mod:`interp_steer._plain`: the same Hugging Face modules without the
bridge's per-component wrappers, with the active hooks routed to it) wherever that gives the bridged
model's outputs bit for bit, and on the bridge otherwise.

Steering (``steering=``) is applied for the whole generation. Its positions are in each prompt's own
token coordinates (0 = the prompt's first token), so padding and the other prompts of a batch do not
move them. ``positions="after_prompt"`` steers from the user prompt's last token on: that token, the
chat template's assistant header (if any) and every generated token. The first generated token is
chosen from the prompt's last position, so it feels the steering with or without a chat template.

Reproducibility: greedy decoding (``temperature=0``) is deterministic. Sampling draws each row from
its own random generator seeded by ``(seed, prompt text, how many times that prompt occurred
before)``, so a prompt's sample depends neither on which prompts share its batch nor on the order of
the list, while repeated prompts get independent samples. The exception the maths imposes: prompts of different lengths
are padded, and padding moves logits in the 7th significant digit, which can very rarely flip a
near-tie; prompts of equal token length (e.g. one prompt repeated across a steering grid) give
bit-identical results in any batch.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp_steer._plain import block_output, forward_module, plain_view, resumed
from interp_steer.data import reject_bare_string
from interp_steer.likelihood import completion_perplexity, target_nll
from interp_steer.models import Model
from interp_steer.steering import RowDeltas, RowMix, Steering


@dataclass(frozen=True)
class Generation:
    """One prompt's completion. ``text`` and ``token_ids`` hold only the generated part."""

    prompt: str
    text: str
    token_ids: tuple[int, ...]
    prompt_ids: tuple[int, ...]
    finished: bool
    """True when generation stopped at an end-of-sequence token, False at ``max_new_tokens``."""
    shared_prefix: int = 0
    """How many of the prompt's tokens came from its batch's shared prefill, where rows with the same
    prompt prefill them once (0: the row prefilled its whole prompt itself). Not part of
    :meth:`to_dict`: it says how the completion was computed, not what it is."""
    perplexity: float | None = field(default=None, compare=False)
    """The completion's perplexity given its prompt under the model without this generation's
    steering, when :func:`generate` was asked for it (``perplexity=True``); None otherwise."""

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "text": self.text, "token_ids": list(self.token_ids),
                "finished": self.finished}

    def to_record(self) -> dict:
        """Everything, for storing and rebuilding it exactly (:meth:`from_record`; the prompt's
        token ids too, which :meth:`to_dict` leaves out)."""
        return {**self.to_dict(), "prompt_ids": list(self.prompt_ids), "shared_prefix": self.shared_prefix,
                "perplexity": self.perplexity}

    @classmethod
    def from_record(cls, record: dict) -> Generation:
        perplexity = record.get("perplexity")
        return cls(record["prompt"], record["text"], tuple(record["token_ids"]), tuple(record["prompt_ids"]),
                   bool(record["finished"]), int(record.get("shared_prefix", 0)),
                   None if perplexity is None else float(perplexity))


def format_prompts(model: Model, prompts: Sequence[str], *, chat: bool | None, system: str | None) -> tuple[list[str], list[int]]:
    """The texts fed to the model and, per prompt, how many tokens the user's prompt itself spans
    (everything after that is "after the prompt"; see :meth:`Model.chat_prompt`)."""
    reject_bare_string(prompts, "prompts")
    use_chat = model.has_chat_template if chat is None else chat
    if use_chat and not model.has_chat_template:
        raise ValueError(f"chat=True but {model.name} has no chat template; pass chat=False")
    texts, prompt_lengths = [], []
    for prompt in prompts:
        if use_chat:
            text, length = model.chat_prompt(prompt, system=system)
        else:
            text, length = prompt, len(model.encode([prompt])[0])
        texts.append(text)
        prompt_lengths.append(length)
    return texts, prompt_lengths


def generate(
    model: Model,
    prompts: Sequence[str],
    *,
    steering: Steering | None = None,
    max_new_tokens: int = 40,
    min_new_tokens: int = 0,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    batch_size: int = 16,
    chat: bool | None = None,
    system: str | None = None,
    use_cache: bool = True,
    progress: bool | None = None,
    sample_ids: Sequence[int] | None = None,
    share_prefixes: bool = True,
    perplexity: bool = False,
) -> list[Generation]:
    """Complete every prompt; see the module docstring. ``steering`` is a :class:`Steering`
    (a :class:`RowDeltas` or a ``[batch, length]`` position mask inside it needs one row per prompt);
    its positions count from each prompt's first token, and ``"after_prompt"`` steers from the
    prompt's last token on, so the first generated token is steered too (chat template or not).
    End-of-sequence tokens cannot be chosen before ``min_new_tokens`` tokens (as in Hugging Face's
    ``generate``).

    ``sample_ids`` (sampling only) names the random stream of each row instead of the prompt's
    occurrence count: rows with the same prompt and sample id draw the same random numbers, so a
    steering grid compares its cells on common random numbers.

    ``share_prefixes``: rows of a batch with the same prompt (a steering grid's cells) prefill the
    unsteered part of that prompt once and copy its key/value cache to each other (see
    :func:`sharing_plan`); each row's :attr:`Generation.shared_prefix` says how many of its tokens
    came from a shared prefill. Steering that touches prompt positions before the prompt's last
    token (``positions="all"``, an index, a slice or a mask) turns it off for the call.

    ``perplexity=True`` also scores every completion given its prompt under the model without this
    call's steering (:attr:`Generation.perplexity`, what
    :func:`~interp_steer.likelihood.completion_perplexity` computes, to float rounding). Steering
    changes nothing up to the output of the block before its first layer, so those outputs are kept
    as generation computes them and only the later blocks run again, unsteered (see
    :func:`_unsteered_perplexity`); where that cannot be done the completions are scored afterwards."""
    reject_bare_string(prompts, "prompts")
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError("prompts must be a non-empty list of non-empty strings")
    if max_new_tokens < 1 or not 0 <= min_new_tokens <= max_new_tokens:
        raise ValueError(f"need 1 <= max_new_tokens and 0 <= min_new_tokens <= max_new_tokens; got "
                         f"{max_new_tokens}, {min_new_tokens}")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1; got {temperature}, {top_p}")
    if temperature > 0 and seed is None:
        raise ValueError("sampling (temperature > 0) needs a seed, so that results can be reproduced")
    if steering is not None and not isinstance(steering, Steering):
        raise TypeError(f"steering must be a Steering(...) specification, got {type(steering).__name__}")
    if steering is not None and steering.n_rows not in (None, len(prompts)):
        what = (f"{type(steering.vector).__name__} has" if isinstance(steering.vector, (RowDeltas, RowMix))
                else "the position mask has")
        raise ValueError(f"{what} {steering.n_rows} rows for {len(prompts)} prompts")

    if sample_ids is not None and len(sample_ids) != len(prompts):
        raise ValueError(f"sample_ids has {len(sample_ids)} entries for {len(prompts)} prompts")
    texts, prompt_lengths = format_prompts(model, prompts, chat=chat, system=system)
    streams = _row_generators(seed, prompts, model.device, sample_ids) if temperature > 0 else []
    token_ids = model.encode(texts)
    batches = _batches(token_ids, batch_size)
    # Where each row's steering starts, in its own token coordinates: the shared prefill stops before it.
    positions_rule = None if steering is None else steering.positions
    if not (share_prefixes and use_cache) or not (positions_rule is None or (
            isinstance(positions_rule, str) and positions_rule == "after_prompt")):
        steered_from = None
    elif positions_rule is None:
        steered_from = [len(ids) - 1 for ids in token_ids]  # the last token gives each row its logits
    else:
        steered_from = [length - 1 for length in prompt_lengths]
    # The last block whose outputs no steering changes: kept for scoring (perplexity=True).
    untouched = None if not perplexity else model.n_layers - 1 if steering is None else steering.untouched_through(model)
    results: list[Generation | None] = [None] * len(prompts)
    show = len(batches) > 2 if progress is None else progress
    for batch in tqdm(batches, desc="generate", unit="batch", disable=not show, leave=False):
        ids, mask = model.pad([token_ids[i] for i in batch], padding_side="left")
        generators = [streams[i] for i in batch] if temperature > 0 else None
        scope: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if steering is not None:
            # prompt_end is in each row's own coordinates: steer() finds the padding from the mask.
            scope = steering.rows(batch).applied(model, [prompt_lengths[i] for i in batch])
        plan = None if steered_from is None else sharing_plan([token_ids[i] for i in batch],
                                                              [steered_from[i] for i in batch])
        new, finished, scores = _decode(model, ids, mask, generators, max_new_tokens=max_new_tokens,
                                        min_new_tokens=min_new_tokens, temperature=temperature,
                                        top_p=top_p, use_cache=use_cache, scope=scope, plan=plan,
                                        score_after=untouched)
        made = [Generation(
            prompt=prompts[i],
            text=model.tokenizer.decode(new[row], skip_special_tokens=True),
            token_ids=tuple(new[row]),
            prompt_ids=tuple(token_ids[i]),
            finished=finished[row],
            shared_prefix=0 if plan is None else max(0, plan.length - (ids.shape[1] - len(token_ids[i]))),
        ) for row, i in enumerate(batch)]
        if perplexity and scores is None:  # nothing kept to resume from: score the completions whole
            scores = completion_perplexity(model, made).tolist()
        for row, i in enumerate(batch):
            results[i] = made[row] if scores is None else replace(made[row], perplexity=float(scores[row]))
    return results


def batch_rows(model: Model, prompts: Sequence[str], *, batch_size: int = 16, chat: bool | None = None,
               system: str | None = None) -> list[list[int]]:
    """The prompt indices of each batch :func:`generate` forms (the longest prompts first,
    ``batch_size`` at a time). A batch's completions depend only on its rows, so work split along
    these batches (one :func:`generate` call per batch, in this order) equals one call's."""
    reject_bare_string(prompts, "prompts")
    texts, _ = format_prompts(model, list(prompts), chat=chat, system=system)
    return _batches(model.encode(texts), batch_size)


def _batches(token_ids: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass(frozen=True)
class SharingPlan:
    """A batch's shared prefill: ``rows`` are the distinct prompts' first rows (prefilled once, on
    their first ``length`` padded positions), ``copy`` which of those each row's cache comes from."""

    rows: tuple[int, ...]
    copy: tuple[int, ...]
    length: int


def sharing_plan(token_ids: Sequence[Sequence[int]], steered_from: Sequence[int]) -> SharingPlan | None:
    """How a left-padded batch of ``token_ids`` shares prefills: rows with identical ids need their
    positions before ``steered_from`` (each row's first steered position, in its own coordinates)
    computed once. The cut is one padded position for the whole batch, the smallest unsteered span;
    None when no two rows share a prompt or nothing can be cut."""
    first: dict[tuple[int, ...], int] = {}
    owner = [first.setdefault(tuple(ids), row) for row, ids in enumerate(token_ids)]
    if len(first) == len(token_ids):
        return None
    width = max(len(ids) for ids in token_ids)
    length = min(width - len(ids) + start for ids, start in zip(token_ids, steered_from, strict=True))
    if length < 1:
        return None
    rows = tuple(sorted(first.values()))
    return SharingPlan(rows, tuple(rows.index(o) for o in owner), length)


def _stop_ids(model: Model) -> set[int]:
    ids = {model.tokenizer.eos_token_id}
    configured = getattr(getattr(model.hf_model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return {i for i in ids if i is not None}


def _row_generators(
    seed: int, prompts: Sequence[str], device: torch.device, sample_ids: Sequence[int] | None = None
) -> list[torch.Generator]:
    """One random stream per prompt, keyed by (seed, text, occurrence or sample id) rather than by
    position."""
    seen: dict[str, int] = {}
    streams = []
    for row, prompt in enumerate(prompts):
        occurrence = seen.get(prompt, 0) if sample_ids is None else int(sample_ids[row])
        seen[prompt] = seen.get(prompt, 0) + 1
        key = hashlib.sha256(f"{seed}\x00{occurrence}\x00{prompt}".encode()).digest()
        streams.append(torch.Generator(device=device).manual_seed(int.from_bytes(key[:8], "little") >> 1))
    return streams


def _new_cache(capacity: int):
    """The generation loop's key/value cache: room for ``capacity`` positions, written in place
    (:mod:`interp_steer._cache`)."""
    from interp_steer._cache import room_cache

    return room_cache(capacity)


@torch.inference_mode()
def _decode(
    model: Model,
    ids: Tensor,
    mask: Tensor,
    generators: list[torch.Generator] | None,
    *,
    max_new_tokens: int,
    min_new_tokens: int,
    temperature: float,
    top_p: float,
    use_cache: bool,
    scope: contextlib.AbstractContextManager,
    plan: SharingPlan | None = None,
    score_after: int | None = None,
) -> tuple[list[list[int]], list[bool], list[float] | None]:
    """Greedy or sampled completions of a left-padded batch, steered by ``scope`` (entered here, after
    the shared prefill, which ``plan`` keeps to unsteered positions). With ``score_after`` (the last
    block the steering leaves as it was), also each completion's unsteered perplexity, or None where
    the block's outputs could not be kept."""
    plain_view(model)  # built (once) before this call's own hooks are in place
    stop = torch.tensor(sorted(_stop_ids(model)), device=ids.device)
    batch, width = ids.shape
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    cache = _new_cache(width + max_new_tokens) if use_cache else None
    start = 0
    if plan is not None:
        rows = torch.tensor(plan.rows, device=ids.device)
        with forward_module(model) as hf:
            hf(input_ids=ids[rows, : plan.length], attention_mask=mask[rows, : plan.length],
               position_ids=positions[rows, : plan.length], past_key_values=cache, use_cache=True,
               cache_position=torch.arange(plan.length, device=ids.device), logits_to_keep=1)
        cache.batch_select_indices(torch.tensor(plan.copy, device=ids.device))
        start = plan.length
    # The bridge's wrappers cost about a fifth of a decoding step; its plain view (same weights, the
    # same hooks routed to it) gives the same tokens without them. See interp_steer._plain.
    keep = score_after is not None and score_after >= 0 and use_cache
    # The recording hook goes in before forward_module routes the steering's hooks: it sees each
    # forward's output of block score_after as the unsteered model computes it.
    with scope, block_output(model, score_after) if keep else contextlib.nullcontext([]) as kept, \
            forward_module(model) as hf:
        out, finished, fed, mask, positions = _continue(
            model, hf, ids, mask, positions, cache, start, generators, stop, max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens, temperature=temperature, top_p=top_p, use_cache=use_cache)
    scores = None
    if kept:
        scores = _unsteered_perplexity(model, fed, mask, positions, cache, start, width, score_after,
                                       torch.cat(kept, dim=1), out)
    return out, finished, scores


def _continue(model: Model, hf, ids: Tensor, mask: Tensor, positions: Tensor, cache, start: int,
              generators: list[torch.Generator] | None, stop: Tensor, *, max_new_tokens: int, min_new_tokens: int,
              temperature: float, top_p: float, use_cache: bool
              ) -> tuple[list[list[int]], list[bool], Tensor, Tensor, Tensor]:
    """The prefill from padded position ``start`` on (the cache holds the positions before it) and
    the decoding loop. Returns the completions, whether each finished, and the ids, mask and
    position ids of every position fed to the model."""
    batch, width = ids.shape
    logits = hf(input_ids=ids[:, start:], attention_mask=mask, position_ids=positions[:, start:],
                past_key_values=cache, use_cache=use_cache,
                cache_position=torch.arange(start, width, device=ids.device), logits_to_keep=1).logits[:, -1]
    done = torch.zeros(batch, dtype=torch.bool, device=ids.device)
    out: list[list[int]] = [[] for _ in range(batch)]
    for step in range(max_new_tokens):
        logits = logits.float()
        if step < min_new_tokens:
            logits[:, stop] = float("-inf")
        token = _choose(logits, temperature, top_p, generators)
        token = torch.where(done, torch.full_like(token, model.pad_token_id), token)
        for row in range(batch):
            if not done[row]:
                out[row].append(int(token[row]))
        done |= torch.isin(token, stop)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones(batch, 1, dtype=mask.dtype, device=mask.device)], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
        ids = torch.cat([ids, token[:, None]], dim=1)
        if use_cache:
            logits = hf(input_ids=token[:, None], attention_mask=mask, position_ids=positions[:, -1:],
                        past_key_values=cache, use_cache=True,
                        cache_position=torch.tensor([width + step], device=ids.device)).logits[:, -1]
        else:
            logits = hf(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                        cache_position=torch.arange(ids.shape[1], device=ids.device),
                        logits_to_keep=1).logits[:, -1]
    finished = [bool(row and row[-1] in set(stop.tolist())) for row in out]
    return out, finished, ids, mask, positions


@torch.inference_mode()
def _unsteered_perplexity(model: Model, ids: Tensor, mask: Tensor, positions: Tensor, cache, start: int, width: int,
                          block: int, outputs: Tensor, completions: list[list[int]], rows_per_pass: int = 16) -> list[float]:
    """Each completion's perplexity under the unsteered model, from a generation that kept the output
    of ``block`` (unchanged by its steering) at every position it computed, ``start`` on.

    The cache holds, before ``start``, the shared prefill's keys and values: unsteered at every
    layer. A forward that resumes after ``block`` from the kept outputs (:func:`interp_steer._plain.resumed`)
    runs only the later blocks, unsteered, and reads the logits that predict each completion token
    (from the prompt's last position on). ``ids``, ``mask`` and ``positions`` cover every position fed
    (``width`` is the padded prompt's)."""
    from transformers import DynamicCache

    end = ids.shape[1]
    assert outputs.shape[1] == end - start, (outputs.shape, start, end)
    prefix = [] if start == 0 else [(layer.keys[..., :start, :], layer.values[..., :start, :]) for layer in cache.layers]
    scores: list[float] = []
    for first in range(0, ids.shape[0], rows_per_pass):
        rows = slice(first, first + rows_per_pass)
        past = None
        if prefix:
            past = DynamicCache()
            for index, (keys, values) in enumerate(prefix):
                past.update(keys[rows], values[rows], index)
        with resumed(model, block, outputs[rows]), forward_module(model) as hf:
            logits = hf(input_ids=ids[rows, start:], attention_mask=mask[rows], position_ids=positions[rows, start:],
                        past_key_values=past, use_cache=past is not None,
                        cache_position=torch.arange(start, end, device=ids.device), logits_to_keep=end - width + 1).logits
        for row, completion in enumerate(completions[rows]):
            targets = torch.tensor(completion, device=logits.device)
            scores.append(float(target_nll(logits[row, : len(completion)], targets).mean().exp()))
    return scores


def _choose(logits: Tensor, temperature: float, top_p: float, generators: list[torch.Generator] | None) -> Tensor:
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, index = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass strictly above each token
        sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)  # always keeps the top token
        probs = torch.zeros_like(probs).scatter(-1, index, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return torch.stack([torch.multinomial(probs[row], 1, generator=g)[0] for row, g in enumerate(generators)])


__all__ = ["Generation", "batch_rows", "format_prompts", "generate"]
