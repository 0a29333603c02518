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

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens.model_bridge.exceptions import StopAtLayerException

from interp_steer import _plain
from interp_steer._activations_file import ActivationsFileError, RowFile, read_header
from interp_steer._device import on_device_of
from interp_steer._plain import forward_module, plain_view
from interp_steer._types import HookPoint, PaddingSide, ReadPosition
from interp_steer.data import reject_bare_string
from interp_steer.models import Model

Position = ReadPosition  # the name this module has always exported


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

    def __repr__(self) -> str:
        from interp_steer.display import activations_line

        return activations_line(self)

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

    def save(self, path: str | Path) -> Path:
        """Write a ``.safetensors`` file (``values``, ``text_index`` and the rest as JSON in the
        header), atomically; :meth:`load` reads it back memory-mapped."""
        counts = torch.bincount(self.text_index, minlength=self.n_texts).tolist()
        with RowFile(path, counts, len(self.layers), self.values.shape[-1], self._header()) as rows_file:
            for text_i, rows in enumerate(self.per_text()):
                rows_file.write(text_i, rows)
        return Path(path)

    def _header(self) -> dict[str, Any]:
        return {"layers": list(self.layers), "hook_point": self.hook_point, "position": self.position,
                "n_texts": self.n_texts, "model_name": self.model_name}

    @classmethod
    def load(cls, path: str | Path) -> Activations:
        """Activations from a file written by :meth:`save` or ``collect_activations(out=...)``. The
        values are memory-mapped (copy-on-write: changing them never changes the file), so opening
        a file larger than memory is instant and rows are read from disk as they are used."""
        path = Path(path)
        header, data_start = read_header(path)
        meta = header["__metadata__"]
        try:
            info = json.loads(meta["activations"])
            layers = tuple(int(x) for x in info["layers"])
            rows, n_layers, d_model = (int(x) for x in header["values"]["shape"])
            begin, end = (int(x) for x in header["values"]["data_offsets"])
            index_begin, index_end = (int(x) for x in header["text_index"]["data_offsets"])
            position = info["position"]
            if (header["values"]["dtype"], header["text_index"]["dtype"]) != ("F32", "I64") or n_layers != len(layers) \
                    or end - begin != rows * n_layers * d_model * 4 or index_end - index_begin != rows * 8:
                raise ValueError("tensor dtypes or sizes do not match their shapes")
            if data_start + max(end, index_end) > path.stat().st_size:
                raise ValueError("the file is shorter than its header says (truncated?)")
        except (KeyError, TypeError, ValueError) as problem:
            raise ActivationsFileError(f"{path}: not an activations file ({problem}); write one with "
                                       "Activations.save or collect_activations(..., out=PATH)") from problem
        values = np.memmap(path, dtype=np.float32, mode="c", offset=data_start + begin, shape=(rows, n_layers, d_model))
        text_index = np.fromfile(path, dtype="<i8", count=rows, offset=data_start + index_begin)
        return cls(values=torch.from_numpy(values), layers=layers, hook_point=str(info["hook_point"]),
                   position=position, text_index=torch.from_numpy(text_index.astype(np.int64)),
                   n_texts=int(info["n_texts"]), model_name=str(info["model_name"]))

    def to_frame(self):
        """A pandas DataFrame indexed by (text, layer), or (text, token, layer) for ``position="all"``,
        with one column per residual dimension (see :func:`interp_steer.frames.activations_frame`)."""
        from interp_steer.frames import activations_frame

        return activations_frame(self)


def collect_activations(
    model: Model,
    texts: Sequence[str],
    *,
    layers: int | Sequence[int] | str | None = None,
    position: ReadPosition = "last",
    hook_point: HookPoint = "resid_post",
    batch_size: int = 16,
    pad_free: bool = True,
    padding_side: PaddingSide = "right",
    progress: bool | None = None,
    out: str | Path | None = None,
) -> Activations:
    """Residual activations of ``texts`` at ``layers`` (default: all), as float32 on the CPU.

    ``batch_size`` is the most texts per forward; ``pad_free`` and ``padding_side`` choose how
    batches are formed (see the module docstring; the result does not depend on them beyond float32
    rounding). ``progress=None`` shows a progress bar for more than 64 texts.

    ``out=PATH`` (a ``.safetensors`` file) streams each batch's rows to disk instead of keeping them,
    so memory does not grow with the number of texts (``position="all"`` on a long corpus
    included). The file appears, complete, only when collection succeeds (it is written under a
    temporary name, then renamed); the returned :class:`Activations` reads it memory-mapped (see
    :meth:`Activations.load`), and probes and directions take it like any other.
    """
    reject_bare_string(texts, "texts")
    if out is None:
        return collect_positions(model, texts, [position], layers=layers, hook_point=hook_point,
                                 batch_size=batch_size, pad_free=pad_free, padding_side=padding_side,
                                 progress=progress)[position]
    texts, token_ids, layer_list, hook_names, deepest, batches = _plan(
        model, texts, [position], layers, hook_point, batch_size, pad_free)
    counts = [len(ids) if position == "all" else 1 for ids in token_ids]
    with RowFile(out, counts, len(layer_list), model.d_model, {
            "layers": list(layer_list), "hook_point": hook_point, "position": position,
            "n_texts": len(texts), "model_name": model.name}) as rows_file:
        _run_batches(model, token_ids, batches, hook_names, deepest, [position], padding_side, progress,
                     lambda _position, text_i, rows: rows_file.write(text_i, rows))
    return Activations.load(out)


def collect_positions(
    model: Model,
    texts: Sequence[str],
    positions: Sequence[ReadPosition],
    *,
    layers: int | Sequence[int] | str | None = None,
    hook_point: HookPoint = "resid_post",
    batch_size: int = 16,
    pad_free: bool = True,
    padding_side: PaddingSide = "right",
    progress: bool | None = None,
) -> dict[ReadPosition, Activations]:
    """:func:`collect_activations` at several read positions from the same forward passes:
    ``{position: Activations}``, each exactly what ``collect_activations(..., position=position)``
    returns (e.g. ``["last", "mean"]`` for a last-token probe and a mean-pooled readout at the cost of
    one collection)."""
    reject_bare_string(texts, "texts")
    positions = list(positions)
    if not positions or len(set(map(repr, positions))) != len(positions):
        raise ValueError(f"positions must be a non-empty list of distinct positions, got {positions!r}")
    texts, token_ids, layer_list, hook_names, deepest, batches = _plan(
        model, texts, positions, layers, hook_point, batch_size, pad_free)
    gathered: dict[Position, list[Tensor | None]] = {p: [None] * len(texts) for p in positions}

    def keep(position: Position, text_i: int, rows: Tensor) -> None:
        gathered[position][text_i] = rows

    _run_batches(model, token_ids, batches, hook_names, deepest, positions, padding_side, progress, keep)
    out = {}
    for position, rows_per_text in gathered.items():
        counts = [rows.shape[0] for rows in rows_per_text]
        out[position] = Activations(
            values=torch.cat(rows_per_text, dim=0),
            layers=layer_list,
            hook_point=hook_point,
            position=position,
            text_index=torch.repeat_interleave(torch.arange(len(texts)), torch.tensor(counts)),
            n_texts=len(texts),
            model_name=model.name,
        )
    return out


def residual_shifts(
    model: Model,
    sequences: Sequence[Sequence[int]],
    steerings: Sequence[Any],
    layers: Sequence[int],
    *,
    prompt_ends: Sequence[int] | None = None,
    hook_point: HookPoint = "resid_post",
    batch_size: int = 16,
) -> list[list[Tensor]]:
    """What each steering does to the residual stream of some token sequences: per steering, per
    sequence, ``[tokens, layers, d_model]`` in float64, the residual at ``layers`` (``hook_point``,
    columns in the order given) in a forward of the sequence under the steering minus the residual in
    the clean forward of the same batch. Sequences run in right-padded batches of ``batch_size``, in
    order; ``prompt_ends[i]`` is sequence ``i``'s prompt length, for ``positions="after_prompt"``.

    ``steerings`` are :class:`~interp_steer.steering.Steering` specifications (this module sits below
    steering, so any object with their ``applied``, ``rows``, ``n_rows`` and ``untouched_through``
    will do); a per-row one (:class:`~interp_steer.steering.RowDeltas`) has one row per sequence.

    A steering leaves every block before its earliest layer as the clean forward computed it (block
    ``steering.untouched_through(model)`` and those before it), so with ``hook_point="resid_post"``
    the steered forwards of a batch resume after the last block that no steering touches and no
    requested layer reads, from the clean forward's output of that block, instead of computing those
    blocks again (:func:`interp_steer._plain.resumed`, on the fast path). The shifts are the whole
    forwards' bit for bit (``tests/test_activations.py``); other hook points run whole forwards.
    """
    sequences = [list(sequence) for sequence in sequences]
    steerings = list(steerings)
    if not sequences or any(not sequence for sequence in sequences):
        raise ValueError("sequences must be a non-empty list of non-empty token id lists")
    if not steerings:
        raise ValueError("steerings is empty: pass at least one Steering")
    if prompt_ends is not None and len(prompt_ends) != len(sequences):
        raise ValueError(f"prompt_ends has {len(prompt_ends)} entries for {len(sequences)} sequences: one per sequence")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: expected an int >= 1")
    for i, steering in enumerate(steerings):
        rows = getattr(steering, "n_rows", None)
        if rows is not None and rows != len(sequences):
            raise ValueError(f"steerings[{i}] has {rows} rows but there are {len(sequences)} sequences: "
                             "a per-row steering needs one row per sequence")
    layers = list(model.resolve_layers(list(layers)))
    hook_names = [model.hook_name(layer, hook_point) for layer in layers]
    deepest = hook_names[layers.index(max(layers))]
    untouched = min(steering.untouched_through(model) for steering in steerings)
    first = min(min(layers), untouched) if hook_point == "resid_post" and untouched >= 0 else None
    shifts: list[list[Tensor]] = [[] for _ in steerings]
    for start in range(0, len(sequences), batch_size):
        rows = sequences[start : start + batch_size]
        ends = None if prompt_ends is None else list(prompt_ends[start : start + batch_size])
        batch = slice(start, start + len(rows))
        ids, mask = model.pad(rows, padding_side="right")
        with contextlib.nullcontext([]) if first is None else _plain.block_output(model, first) as recorded:
            clean = _token_residuals(model, ids, mask, hook_names, deepest)
        for out, steering in zip(shifts, steerings, strict=True):
            steering = steering.rows(batch) if steering.n_rows is not None else steering
            with steering.applied(model, prompt_end=ends), \
                    _plain.resumed(model, first or 0, recorded[0] if recorded else None):
                steered = _token_residuals(model, ids, mask, hook_names, deepest)
            out += list(torch.split(steered - clean, [len(r) for r in rows]))
    return shifts


@torch.inference_mode()
def sequence_residuals(model: Model, sequences: Sequence[Sequence[int]], starts: Sequence[int], layers: Sequence[int],
                       *, hook_point: HookPoint = "resid_post", batch_size: int = 16) -> dict[int, Float[Tensor, "rows d_model"]]:
    """The unsteered residuals at ``layers`` of token-id ``sequences`` from token ``starts[i]`` of
    sequence ``i`` to its end, stacked over sequences in order: ``{layer: [rows, d_model]}`` (float32).
    Batches are right-padded and the forward stops at the deepest layer; ``starts`` is where a
    reader's interest begins, e.g. ``max(1, prompt_end - 1)`` for the positions a steering with
    ``positions="after_prompt"`` acts on (the prompt's last token on, never the attention sink)."""
    if len(starts) != len(sequences):
        raise ValueError(f"starts has {len(starts)} entries for {len(sequences)} sequences: one per sequence")
    model.resolve_layers(list(layers))  # an out-of-range layer fails before any forward
    names = [model.hook_name(layer, hook_point) for layer in layers]
    deepest = names[int(np.argmax(list(layers)))]
    kept: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    for first in range(0, len(sequences), batch_size):
        rows, begin = [list(r) for r in sequences[first : first + batch_size]], starts[first : first + batch_size]
        ids, mask = model.pad(rows, padding_side="right")
        found = _forward_collect(model, ids, mask, names, deepest, "all")
        for layer, name in zip(layers, names, strict=True):
            for tokens, start in zip(torch.split(found[name], [len(r) for r in rows]), begin, strict=True):
                kept[layer].append(tokens[start:])
    return {layer: torch.cat(parts) for layer, parts in kept.items()}


def _token_residuals(model: Model, ids: Tensor, mask: Tensor, hook_names: list[str], deepest: str) -> Tensor:
    """``[real tokens of every row, layers, d_model]`` in float64, rows in order."""
    found = _forward_collect(model, ids, mask, hook_names, deepest, "all")
    return torch.stack([found[name] for name in hook_names], dim=1).double()


def _plan(model: Model, texts: Sequence[str], positions: list[ReadPosition], layers: int | Sequence[int] | str | None,
          hook_point: HookPoint, batch_size: int, pad_free: bool) -> tuple[list[str], list[list[int]], tuple[int, ...], list[str], str, list[list[int]]]:
    """Checked inputs of a collection: texts, their token ids, layers, hook names, the deepest hook
    (where the forward stops) and the batches."""
    texts = _check_texts(texts)
    layer_list = model.resolve_layers(layers)
    hook_names = [model.hook_name(layer, hook_point) for layer in layer_list]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    for position in positions:
        _check_position(position)
    token_ids = model.encode(texts)
    for position in positions:
        _check_lengths(texts, token_ids, position)
    deepest = hook_names[max(range(len(layer_list)), key=lambda i: layer_list[i])]
    return texts, token_ids, layer_list, hook_names, deepest, _plan_batches([len(ids) for ids in token_ids], batch_size, pad_free)


def _run_batches(model: Model, token_ids: list[list[int]], batches: list[list[int]], hook_names: list[str],
                 deepest: str, positions: list[Position], padding_side: PaddingSide, progress: bool | None,
                 take: Callable[[Position, int, Tensor], None]) -> None:
    """Run every batch and hand each text's rows ``[rows, layers, d_model]`` at each position to
    ``take(position, text, rows)``; non-finite activations raise, naming the texts, after the last batch."""
    show = len(token_ids) > 64 if progress is None else progress
    bar = tqdm(total=len(token_ids), desc="activations", unit="text", disable=not show, leave=False,
               mininterval=1.0)
    bad: set[int] = set()
    try:
        for batch in batches:
            ids, mask = model.pad([token_ids[i] for i in batch], padding_side=padding_side)
            found = _forward_collect_many(model, ids, mask, hook_names, deepest, positions)
            for position in positions:
                stacked = torch.stack([found[position][name] for name in hook_names], dim=1)
                lengths = mask.sum(dim=1).tolist() if position == "all" else [1] * len(batch)
                for text_i, rows in zip(batch, torch.split(stacked, lengths), strict=True):
                    if not torch.isfinite(rows).all():
                        bad.add(text_i)
                    take(position, text_i, rows)
            bar.update(len(batch))
    finally:
        bar.close()
    if bad:
        raise FloatingPointError(
            f"non-finite activations (NaN/inf) for texts {sorted(bad)[:10]}; the model or its dtype is "
            "numerically unstable here: try dtype='float32'"
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
    return _forward_collect_many(model, ids, mask, hook_names, deepest, [position])[position]


def _forward_collect_many(
    model: Model,
    ids: Tensor,
    mask: Tensor,
    hook_names: list[str],
    deepest: str,
    positions: Sequence[Position],
) -> dict[Position, dict[str, Tensor]]:
    """One forward pass that reduces each hooked residual to every requested read position."""
    found: dict[Position, dict[str, Tensor]] = {position: {} for position in positions}

    def reader(name: str):
        # Keyed by the requested name: the bridge may call the hook point by its canonical
        # alias (``blocks.L.hook_out`` for ``hook_resid_post``).
        def read(tensor: Tensor, hook) -> Tensor:
            for position in positions:
                found[position][name] = _reduce(tensor, mask, position).float().cpu()
            if name == deepest:
                raise StopAtLayerException(tensor)  # nothing later is needed: stop here
            return tensor

        return read

    hooks = [(name, reader(name)) for name in hook_names]
    plain_view(model)  # built (once) before this call's own hooks are in place
    with torch.inference_mode(), model.bridge.hooks(fwd_hooks=hooks), forward_module(model) as hf:
        if hf is model.hf_model:
            model.bridge(ids, attention_mask=mask, return_type=None)
        else:
            # The plain view (see interp_steer._plain): the same hooks, without the bridge's wrappers.
            with contextlib.suppress(StopAtLayerException):
                hf(input_ids=ids, attention_mask=mask, position_ids=_bridge_positions(model, mask),
                   use_cache=False, logits_to_keep=1)
    missing = [n for n in hook_names if n not in found[positions[0]]]
    assert not missing, f"hooks did not fire: {missing}"
    return found


def _bridge_positions(model: Model, mask: Tensor) -> Tensor | None:
    """The position ids the bridge's forward gives a padded batch: derived from the mask (each row's
    real tokens count from 0, whatever the padding side), except for models that derive their own
    (mRoPE, positions computed from the mask inside the model), which get none, as from the bridge."""
    accepts = getattr(model.bridge, "_accepts_derived_position_ids", None)
    if accepts is not None and not accepts():
        return None
    return (mask.cumsum(-1) - 1).clamp_min(0)


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
    reject_bare_string(texts, "texts")
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


__all__ = ["Activations", "ActivationsFileError", "Position", "collect_activations", "collect_positions",
           "residual_shifts", "sequence_residuals"]
