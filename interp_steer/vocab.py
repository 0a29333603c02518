"""What a direction says in tokens: read it through the model's final norm and unembedding.

A steering direction ``v`` at layer ``L`` is written into the residual stream; the logit lens asks
which tokens the model would promote if that were all the residual held. :func:`direction_logits`
computes ``unembed(norm(v)) - unembed(norm(0))`` with TransformerLens 4.3's own
:func:`~transformer_lens.tools.analysis.logit_lens.logit_readout`, which goes through the real final
norm module (RMSNorm, Gemma's ``1 + w`` RMSNorm, LayerNorm), ``W_U``, ``b_U`` and the adapter's
post-unembedding transform (Gemma 2's soft-capping), so on every architecture the model's own
readout path is used. Subtracting the zero vector's readout removes what does not depend on the
direction (a LayerNorm's bias, the unembedding bias), so a token's value is what the direction
itself adds to its logit.

"Through the norm" (the default) normalises the direction as the final norm would normalise a
residual that is all direction: its scale drops out and the norm's per-dimension gain weights the
dimensions. ``through_norm=False`` reads the raw direction through ``W_U`` (the "direct" readout),
which keeps the direction's scale.

:func:`token_table` lays the result out as a tidy table (one row per layer, side and rank) with the
column names of :mod:`interp_steer.frames`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

SIDES = ("promoted", "suppressed")


def direction_logits(model, vectors: Tensor, *, through_norm: bool = True) -> Tensor:
    """``[n, d_model]`` directions -> ``[n, d_vocab]`` logit changes they cause when read through
    the final norm (``through_norm``) and the unembedding, relative to an empty residual."""
    from transformer_lens.tools.analysis.logit_lens import logit_readout

    if vectors.ndim != 2 or vectors.shape[-1] != model.d_model:
        raise ValueError(f"directions must be [n, d_model={model.d_model}], got shape {tuple(vectors.shape)}")
    if not torch.isfinite(vectors).all():
        raise ValueError("a direction contains NaN or inf")
    stacked = torch.cat([vectors.float(), vectors.new_zeros(1, vectors.shape[-1]).float()])
    param = next(model.hf_model.parameters())
    with torch.inference_mode():
        logits = logit_readout(model.bridge, stacked.to(param.device, param.dtype), apply_ln=through_norm).values
    logits = logits.float().cpu()
    return logits[:-1] - logits[-1]


def token_ids(model, tokens: Sequence[int | str]) -> list[int]:
    """Token ids from ids or from words of one token each (``" hope"``, with its leading space:
    encoded without special tokens, so the word alone)."""
    ids = []
    for token in tokens:
        if isinstance(token, str):
            encoded = list(model.tokenizer.encode(token, add_special_tokens=False))
            if len(encoded) != 1:
                raise ValueError(f"token {token!r} is {len(encoded)} tokens for {model.name} ({encoded}); give words "
                                 "that are one token each (often with a leading space, e.g. ' hope')")
            ids.append(int(encoded[0]))
        elif isinstance(token, (int, np.integer)) and not isinstance(token, bool):
            if not 0 <= int(token) < len(model.tokenizer):
                raise ValueError(f"token id {token} is outside {model.name}'s vocabulary of {len(model.tokenizer)}")
            ids.append(int(token))
        else:
            raise TypeError(f"tokens must be ids or one-token strings, got {token!r}")
    return ids


def _token_text(model, token_id: int) -> str:
    return model.tokenizer.decode([token_id])


def token_table(model, directions: Mapping[Any, Tensor], *, k: int = 20, through_norm: bool = True,
                key: str = "layer", extra: Mapping[Any, Mapping[str, Any]] | None = None):
    """A tidy DataFrame of the ``k`` tokens each direction promotes most and suppresses most:
    columns ``key`` (the direction's label, by default ``layer``), ``side`` (``promoted`` or
    ``suppressed``), ``rank`` (1 = strongest), ``token_id``, ``token`` (decoded), ``value`` (the
    logit change, see :func:`direction_logits`); ``extra[label]`` adds columns to a direction's rows.
    ``attrs``: ``through_norm`` and the model's name."""
    from interp_steer.frames import frame

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    labels = list(directions)
    if not labels:
        raise ValueError("no directions to read")
    logits = direction_logits(model, torch.stack([directions[label].detach().float().cpu() for label in labels]),
                              through_norm=through_norm)
    k = min(k, logits.shape[-1])
    rows = []
    for label, row in zip(labels, logits, strict=True):
        for side, values in zip(SIDES, (torch.topk(row, k), torch.topk(-row, k)), strict=True):
            for rank, (value, token_id) in enumerate(zip(values.values.tolist(), values.indices.tolist(),
                                                         strict=True), start=1):
                rows.append({key: label, **(extra or {}).get(label, {}), "side": side, "rank": rank,
                             "token_id": token_id, "token": _token_text(model, token_id),
                             "value": value if side == "promoted" else -value})
    return frame(rows, (key, "side", "rank", "token_id", "token", "value"),
                 {"through_norm": through_norm, "model": model.name})


def field_gradient_directions(field, model, contexts, *, layer: int | None = None) -> tuple[dict, dict]:
    """The field's unit gradient at each context's last-token activation, per layer: directions
    keyed ``(context index, layer)`` and, for :func:`token_table`'s ``extra``, their columns."""
    from interp_steer.activations import collect_activations

    if isinstance(contexts, str):
        contexts = [contexts]
    layers = list(field.layers) if layer is None else [layer]
    missing = [x for x in layers if x not in field.layers]
    if missing:
        raise KeyError(f"the field has no layer {missing}; its layers are {list(field.layers)}")
    acts = collect_activations(model, list(contexts), layers=layers, hook_point=field.hook_point, progress=False)
    directions, extra = {}, {}
    for li, at in enumerate(layers):
        grads = field.direction(acts.values[:, li].to(field.device), at).detach().float().cpu()
        for ci, grad in enumerate(grads):
            directions[(ci, at)] = grad
            extra[(ci, at)] = {"layer": at, "context": contexts[ci]}
    return directions, extra


__all__ = ["SIDES", "direction_logits", "field_gradient_directions", "token_ids", "token_table"]
