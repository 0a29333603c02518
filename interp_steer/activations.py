"""Collect residual-stream activations, batched and padding-correct.

One forward pass per batch, hooks only on the residual points that are read, and the forward is cut
short right after the deepest requested layer (TransformerLens's ``StopAtLayerException``, the same
mechanism as ``stop_at_layer``), so reading layer 10 of a 30-layer model costs about a third of a
full pass. Texts are tokenised exactly as the model's own tokenizer does by default (no extra BOS),
and the rows are returned in the input order.

Batching: by default (``pad_free=True``) a batch only holds texts of the same token length, so no
row is ever padded and a text's activations are bit-identical whatever the batch size or the other
texts (on CPU; see the package docstring on MKL). The one exception is a one-token text run alone:
its matrix products have a single row, which MKL computes with a matrix-vector routine rather than a
matrix product, so it agrees with the same text in a batch only to float32 rounding. Padding changes the length of the reductions in
attention, which moves results in the 7th significant digit. For long, varied texts on a GPU,
``pad_free=False`` packs length-sorted texts into padded batches instead (attention-masked, position
ids derived from the mask, either padding side): fewer forwards, same results to float32 rounding.

Read positions (``position=``):

- ``"last"``: the last real token of each text (padding never counts);
- ``"mean"``: the mean over each text's real tokens **after the first** (a one-token text keeps its
  only token);
- ``"mean_with_first"``: the mean over all of a text's real tokens, the first included;
- ``"all"``: every real token; rows are tokens, ``text_index`` says which text each came from;
- an integer ``k``: the ``k``-th real token (negative counts from the end, ``-1`` is ``"last"``).

Why ``"mean"`` leaves out the first token: position 0 is an attention sink. Every later token
attends to it, and from some layer on its residual carries massive activations that have little to
do with its own content. On the default model (SmolLM2-135M-Instruct, no BOS token, so position 0
is the text's first word) its norm is about 22,700 at layers 11-27, 30-160 times that of any other
token; averaged over a 70-token passage it still makes up 44-83 % of the pooled vector's norm, and
the pooled vectors with and without it have a cosine of only 0.73-0.93 per text. A mean that
includes it is largely a scaled copy of the sink, which differs between texts by their first word
and by 1/length: cues, not content. Probes barely notice (they standardise each feature; built-in
persona A vs B: mean CV accuracy over layers 0.895 with it, 0.894 without), but mean-difference
directions do: the persona A-minus-B direction pooled with it has a cosine of only 0.78-0.95 with
the one pooled without it at layers 11-20, because the two corpora open with different words. On
models whose tokenizer adds a BOS token, position 0 is that BOS, identical in every text (it attends
only to itself), so including it adds nothing but a length-dependent offset. Leaving the first token
out is the right default either way; the only loss, on models without BOS, is the first word's own
contribution. ``"mean_with_first"`` keeps the plain mean for comparison and for code that needs it.

Reductions are computed in float32 whatever the model's dtype: a mean summed in bfloat16 keeps 8
significant bits (on the tiny model, errors of 9e-3 on values of about 2), more than many
differences between concepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens.model_bridge.exceptions import StopAtLayerException

from interp_steer._device import on_device_of
from interp_steer.models import Model

Position = Literal["last", "mean", "mean_with_first", "all"] | int


@dataclass(frozen=True, eq=False)
class Activations:
    """Residual-stream activations of ``n_texts`` texts at several layers.

    ``values[r, i]`` is row ``r`` read at ``layers[i]`` (hook ``blocks.{layer}.hook_{hook_point}``).
    A row is a text, except for ``position="all"`` where a row is a token of text
    ``text_index[r]``.
    """

    values: Float[Tensor, "rows layers d_model"]
    layers: tuple[int, ...]
    hook_point: str
    position: str | int
    text_index: Int[Tensor, " rows"]
    n_texts: int
    model_name: str

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def hook_names(self) -> list[str]:
        return [f"blocks.{layer}.hook_{self.hook_point}" for layer in self.layers]

    def at(self, layer: int) -> Float[Tensor, "rows d_model"]:
        """The rows read at one layer (by layer number, not by position in ``layers``)."""
        if layer not in self.layers:
            raise KeyError(f"layer {layer} was not collected; collected layers: {list(self.layers)}")
        return self.values[:, self.layers.index(layer)]

    def split(self, *counts: int) -> list[Activations]:
        """Consecutive groups of texts, e.g. ``pos, neg = acts.split(n_pos, n_neg)`` after one
        collection over ``positive + negative``."""
        if sum(counts) != self.n_texts or any(c < 1 for c in counts):
            raise ValueError(f"counts {list(counts)} must be positive and add up to {self.n_texts} texts")
        groups, start = [], 0
        for count in counts:
            rows = (self.text_index >= start) & (self.text_index < start + count)
            groups.append(replace(self, values=self.values[rows], text_index=self.text_index[rows] - start,
                                  n_texts=count))
            start += count
        return groups

    def per_text(self) -> list[Float[Tensor, "tokens layers d_model"]]:
        """Rows grouped by text (one row each unless ``position="all"``)."""
        counts = torch.bincount(self.text_index, minlength=self.n_texts).tolist()
        return list(torch.split(self.values, counts))


def collect_activations(
    model: Model,
    texts: Sequence[str],
    *,
    layers: int | Sequence[int] | str | None = None,
    position: str | int = "last",
    hook_point: str = "resid_post",
    batch_size: int = 16,
    pad_free: bool = True,
    padding_side: str = "right",
    progress: bool | None = None,
) -> Activations:
    """Residual activations of ``texts`` at ``layers`` (default: all), as float32 on the CPU.

    ``batch_size`` is the most texts per forward; ``pad_free`` and ``padding_side`` choose how
    batches are formed (see the module docstring; the result does not depend on them beyond float32
    rounding). ``progress=None`` shows a progress bar for more than 64 texts.
    """
    texts = _check_texts(texts)
    layer_list = model.resolve_layers(layers)
    hook_names = [model.hook_name(layer, hook_point) for layer in layer_list]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    _check_position(position)

    token_ids = model.encode(texts)
    _check_lengths(texts, token_ids, position)
    deepest = hook_names[max(range(len(layer_list)), key=lambda i: layer_list[i])]
    batches = _plan_batches([len(ids) for ids in token_ids], batch_size, pad_free)

    gathered: list[Tensor | None] = [None] * len(texts)
    show = len(texts) > 64 if progress is None else progress
    bar = tqdm(total=len(texts), desc="activations", unit="text", disable=not show, leave=False,
               mininterval=1.0)
    try:
        for batch in batches:
            ids, mask = model.pad([token_ids[i] for i in batch], padding_side=padding_side)
            per_layer = _forward_collect(model, ids, mask, hook_names, deepest, position)
            stacked = torch.stack([per_layer[name] for name in hook_names], dim=1)
            lengths = mask.sum(dim=1).tolist() if position == "all" else [1] * len(batch)
            for text_i, rows in zip(batch, torch.split(stacked, lengths), strict=True):
                gathered[text_i] = rows
            bar.update(len(batch))
    finally:
        bar.close()

    values = torch.cat(gathered, dim=0)
    counts = [rows.shape[0] for rows in gathered]
    if not torch.isfinite(values).all():
        bad = sorted({i for i, rows in enumerate(gathered) if not torch.isfinite(rows).all()})
        raise FloatingPointError(
            f"non-finite activations (NaN/inf) for texts {bad[:10]}; the model or its dtype is "
            "numerically unstable here: try dtype='float32'"
        )
    text_index = torch.repeat_interleave(torch.arange(len(texts)), torch.tensor(counts))
    return Activations(
        values=values,
        layers=layer_list,
        hook_point=hook_point,
        position=position,
        text_index=text_index,
        n_texts=len(texts),
        model_name=model.name,
    )


def _plan_batches(lengths: list[int], batch_size: int, pad_free: bool) -> list[list[int]]:
    """Text indices per forward: longest first; equal lengths only when ``pad_free``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if not pad_free:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and lengths[batches[-1][0]] == lengths[i]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _forward_collect(
    model: Model,
    ids: Tensor,
    mask: Tensor,
    hook_names: list[str],
    deepest: str,
    position: Position,
) -> dict[str, Tensor]:
    """One forward pass that reduces each hooked residual to the requested positions on the fly."""
    found: dict[str, Tensor] = {}

    def reader(name: str):
        # Keyed by the requested name: the bridge may call the hook point by its canonical
        # alias (``blocks.L.hook_out`` for ``hook_resid_post``).
        def read(tensor: Tensor, hook) -> Tensor:
            found[name] = _reduce(tensor, mask, position).float().cpu()
            if name == deepest:
                raise StopAtLayerException(tensor)  # nothing later is needed: stop here
            return tensor

        return read

    hooks = [(name, reader(name)) for name in hook_names]
    with torch.inference_mode(), model.bridge.hooks(fwd_hooks=hooks):
        model.bridge(ids, attention_mask=mask, return_type=None)
    missing = [n for n in hook_names if n not in found]
    assert not missing, f"hooks did not fire: {missing}"
    return found


def _reduce(
    resid: Float[Tensor, "batch seq d_model"], mask: Int[Tensor, "batch seq"], position: Position
) -> Tensor:
    mask = on_device_of(mask, resid)  # the block's device, which is not the input's on a model spread over GPUs
    if position in ("mean", "mean_with_first"):
        keep = mask.bool()
        if position == "mean":
            # Drop each row's first real token (whatever the padding side), unless it is the only one.
            rows = torch.arange(resid.shape[0], device=resid.device)
            keep = keep.clone()
            keep[rows, mask.argmax(dim=1)] = mask.sum(dim=1) == 1
        # Zeroing is exact in any dtype; the sum accumulates in float32 (see the module docstring).
        total = resid.masked_fill(~keep.unsqueeze(-1), 0).sum(dim=1, dtype=torch.float32)
        return total / keep.sum(dim=1, keepdim=True).to(torch.float32)
    if position == "all":
        return resid[mask.bool()]
    # Index the k-th real token of each row whatever the padding side: real tokens are the
    # contiguous run where mask == 1, starting at `first`.
    lengths = mask.sum(dim=1)
    first = mask.argmax(dim=1)
    k = -1 if position == "last" else int(position)
    offset = first + (k if k >= 0 else lengths + k)
    return resid[torch.arange(resid.shape[0], device=resid.device), offset]


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not a single string: wrap it as [text]")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: pass at least one text")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        if not text:
            raise ValueError(f"texts[{i}] is an empty string; remove it or give it content")
    return texts


def _check_position(position: object) -> None:
    if isinstance(position, bool) or not (
        position in ("last", "mean", "mean_with_first", "all") or isinstance(position, int)
    ):
        raise ValueError(
            f"position={position!r}: expected 'last', 'mean' (first token left out), "
            "'mean_with_first', 'all' or an integer token index"
        )


def _check_lengths(texts: list[str], token_ids: list[list[int]], position: Position) -> None:
    for i, ids in enumerate(token_ids):
        if not ids:
            raise ValueError(f"texts[{i}] ({texts[i]!r}) tokenises to nothing")
        if isinstance(position, int) and not -len(ids) <= position < len(ids):
            raise IndexError(
                f"position={position} is outside texts[{i}], which has {len(ids)} tokens "
                f"({texts[i][:40]!r}); use a smaller index or position='last'"
            )


__all__ = ["Activations", "Position", "collect_activations"]
