"""Scoped steering: change the residual stream along directions, and remove exactly that afterwards.

``steer(model, vector, coefficient)`` is a context manager. Inside it, every forward pass of the model
(``model.bridge(...)``, ``model.hf_model(...)``, :func:`interp_steer.generate`, a cached or uncached
generation) has ``coefficient * vector[layer]`` added at the vector's hook point for each chosen
layer. On exit, by any path (exception, ``KeyboardInterrupt``, a closed generator), the hooks it
added are removed and nothing else is touched: a user's own hooks survive.

What to add (``vector``):

- a :class:`~interp_steer.directions.SteeringVector` (times ``coefficient``);
- a list of ``(SteeringVector, coefficient)`` terms, summed;
- :class:`RowDeltas`: a different ``[batch, d_model]`` delta per layer for every row of the batch,
  so that a whole grid of coefficients or mixes runs as one batched forward or generation.

Where (``positions``), in absolute token positions (so they stay right under a KV cache, where a
decoding step sees one token at position ``past_length``):

- ``"all"``: every position;
- ``"after_prompt"``: CAA's rule, every position from the end of the user's prompt on, including
  every generated token. The prompt's end per row (``prompt_end``, in padded coordinates) is
  supplied by :func:`interp_steer.generate` and :func:`interp_steer.ab_eval`, or passed explicitly;
- an ``int``, a ``slice`` or a boolean mask over positions (``[seq]`` or ``[batch, seq]``).

How (``operator``):

- ``"add"``: ``x + c v``;
- ``"ablate"``: remove ``c`` times the component of ``x`` along ``v`` (``c = 1`` projects it out);
- ``"add_norm_preserving"``: ``x + c v`` rescaled to the norm ``x`` had.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from interp_steer.directions import SteeringVector
from interp_steer.models import Model

OPERATORS = ("add", "ablate", "add_norm_preserving")


@dataclass(frozen=True, eq=False)
class RowDeltas:
    """A per-row delta for each layer: ``deltas[layer]`` is ``[batch, d_model]``.

    Row ``i`` of every batch the model sees inside :func:`steer` gets ``deltas[layer][i]``; the batch
    size must match. Build one from per-row terms with :meth:`from_rows`.
    """

    deltas: Mapping[int, Tensor]
    hook_point: str = "resid_post"
    model: str = ""

    def __post_init__(self) -> None:
        if not self.deltas:
            raise ValueError("RowDeltas needs at least one layer")
        shapes = {tuple(t.shape) for t in self.deltas.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"every layer's deltas must share one [batch, d_model] shape; got {sorted(shapes)}")
        clean = {int(k): torch.as_tensor(v).detach().float() for k, v in sorted(self.deltas.items())}
        object.__setattr__(self, "deltas", clean)

    @property
    def batch_size(self) -> int:
        return next(iter(self.deltas.values())).shape[0]

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(self.deltas)

    def rows(self, index: slice | Sequence[int]) -> RowDeltas:
        """The deltas of some rows (for running a long grid in several batches)."""
        return RowDeltas({k: v[index] for k, v in self.deltas.items()}, self.hook_point, self.model)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[tuple[SteeringVector, float]]]) -> RowDeltas:
        """One list of ``(vector, coefficient)`` terms per row, summed per layer.

        Every vector must share model, hook point and layers; a row with no terms gets zero.
        """
        vectors = [v for row in rows for v, _ in row]
        if not vectors:
            raise ValueError("from_rows needs at least one (vector, coefficient) term")
        first = vectors[0]
        for other in vectors[1:]:
            first._check_compatible(other, "stack")
            if other.layers != first.layers:
                raise ValueError(f"all vectors must have the same layers: {first.layers} vs {other.layers}")
        deltas = {layer: torch.zeros(len(rows), first.d_model) for layer in first.layers}
        for i, row in enumerate(rows):
            for vector, coefficient in row:
                for layer in first.layers:
                    deltas[layer][i] += float(coefficient) * vector.directions[layer]
        return cls(deltas, first.hook_point, first.metadata.model)


@dataclass(frozen=True)
class Steering:
    """A steering specification, independent of any run: what to add, at which layers and positions.

    Pass it to :func:`generate`, :func:`ab_eval` or use it with :func:`steer`. ``vector`` takes the
    same forms as in :func:`steer`.
    """

    vector: Any
    coefficient: float = 1.0
    layers: int | Sequence[int] | None = None
    positions: Any = "all"
    operator: str = "add"

    def rows(self, index: slice | Sequence[int]) -> Steering:
        """The part of this specification that applies to a slice of rows of a batch."""
        if isinstance(self.vector, RowDeltas):
            return Steering(self.vector.rows(index), self.coefficient, self.layers, self.positions, self.operator)
        return self


@dataclass
class _Plan:
    """The resolved intervention of one :func:`steer` call: per hook name, a delta to broadcast."""

    deltas: dict[str, Tensor]  # hook name -> [d_model] or [batch, d_model], already times coefficient
    positions: Any
    operator: str
    coefficient: float
    prompt_end: Tensor | None
    offset: list[int] = field(default_factory=lambda: [0])  # absolute position of this call's first token


def _resolve(model: Model, vector: Any, coefficient: float, layers: Any) -> tuple[dict[str, Tensor], str]:
    """Turn the accepted ``vector`` forms into {hook name: delta} on the model's device and dtype."""
    if isinstance(vector, SteeringVector):
        terms = [(vector, coefficient)]
    elif isinstance(vector, RowDeltas):
        terms = None
    elif isinstance(vector, Sequence) and vector and all(
        isinstance(t, tuple) and len(t) == 2 and isinstance(t[0], SteeringVector) for t in vector
    ):
        terms = [(v, c * coefficient) for v, c in vector]
    else:
        raise TypeError(
            "steer() takes a SteeringVector, a list of (SteeringVector, coefficient) tuples or "
            f"RowDeltas; got {type(vector).__name__}"
        )
    if terms is not None:
        hook_points = {v.hook_point for v, _ in terms}
        if len(hook_points) != 1:
            raise ValueError(f"all vectors must act at one hook point, got {sorted(hook_points)}")
        for v, _ in terms:
            v.check_model(model)
        available = sorted(set().union(*(v.layers for v, _ in terms)))
        hook_point = terms[0][0].hook_point
        chosen = available if layers is None else list(model.resolve_layers(layers))
        deltas: dict[int, Tensor] = {}
        for layer in chosen:
            parts = [c * v.directions[layer] for v, c in terms if layer in v.directions]
            if not parts:
                raise ValueError(f"layer {layer} is not in the steering vector(s) (they have {available})")
            deltas[layer] = torch.stack(parts).sum(0)
    else:
        if vector.model and vector.model != model.name:
            raise ValueError(f"RowDeltas were built for {vector.model!r}, not {model.name!r}")
        hook_point = vector.hook_point
        chosen = list(vector.layers) if layers is None else list(model.resolve_layers(layers))
        missing = [layer for layer in chosen if layer not in vector.deltas]
        if missing:
            raise ValueError(f"layers {missing} are not in the RowDeltas (they have {list(vector.layers)})")
        deltas = {layer: vector.deltas[layer] * coefficient for layer in chosen}
    out = {}
    for layer, delta in deltas.items():
        if delta.shape[-1] != model.d_model:
            raise ValueError(f"delta for layer {layer} has d_model {delta.shape[-1]}, the model has {model.d_model}")
        out[model.hook_name(layer, hook_point)] = delta.to(model.device, model.dtype)
    return out, hook_point


def _position_mask(plan: _Plan, batch: int, seq: int, device: torch.device) -> Tensor | None:
    """Which of this call's positions to steer, ``[batch, seq]`` bool, or None for all of them."""
    positions = plan.positions
    if isinstance(positions, str) and positions == "all":
        return None
    absolute = torch.arange(seq, device=device) + plan.offset[0]
    if isinstance(positions, str) and positions == "after_prompt":
        if plan.prompt_end is None:
            raise ValueError(
                "positions='after_prompt' needs to know where each prompt ends: use "
                "interp_steer.generate(..., steering=...) or steer(..., prompt_end=tensor_of_indices)"
            )
        prompt_end = plan.prompt_end.to(device)
        if prompt_end.shape[0] != batch:
            raise ValueError(f"prompt_end has {prompt_end.shape[0]} rows but the batch has {batch}")
        return absolute[None, :] >= prompt_end[:, None]
    if isinstance(positions, bool):
        raise TypeError("positions must be 'all', 'after_prompt', an int, a slice or a boolean mask")
    if isinstance(positions, int):
        return (absolute == positions)[None, :].expand(batch, seq)
    if isinstance(positions, slice):
        total = plan.offset[0] + seq
        wanted = torch.zeros(total, dtype=torch.bool, device=device)
        wanted[positions] = True
        return wanted[plan.offset[0]:][None, :].expand(batch, seq)
    if isinstance(positions, Tensor) and positions.dtype == torch.bool:
        mask = positions.to(device)
        index = absolute.clamp_max(mask.shape[-1] - 1)
        inside = absolute < mask.shape[-1]
        picked = mask[..., index] & inside
        return picked.expand(batch, seq) if picked.ndim == 1 else picked
    raise TypeError(
        f"positions={positions!r}: expected 'all', 'after_prompt', an int, a slice or a boolean mask"
    )


def _apply(resid: Tensor, delta: Tensor, operator: str, coefficient: float) -> Tensor:
    delta = delta[:, None, :] if delta.ndim == 2 else delta  # per-row deltas broadcast over positions
    if operator == "add":
        return resid + delta
    if operator == "add_norm_preserving":
        steered = resid + delta
        return steered * (resid.norm(dim=-1, keepdim=True) / steered.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    # ablate: delta is coefficient * v; remove coefficient times the projection on v.
    unit = delta / delta.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    sign = 1.0 if coefficient >= 0 else -1.0
    return resid - abs(coefficient) * sign * (resid * unit).sum(-1, keepdim=True) * unit


@contextlib.contextmanager
def steer(
    model: Model,
    vector: Any,
    coefficient: float = 1.0,
    *,
    layers: int | Sequence[int] | None = None,
    positions: Any = "all",
    operator: str = "add",
    prompt_end: Tensor | Sequence[int] | None = None,
) -> Iterator[None]:
    """Steer every forward pass of ``model`` inside the ``with`` block (see the module docstring).

    ``layers`` defaults to every layer the vector has. ``prompt_end`` (absolute index of the first
    position after the prompt, per row) is only needed for ``positions="after_prompt"`` outside
    :func:`generate`.
    """
    if operator not in OPERATORS:
        raise ValueError(f"operator={operator!r}: expected one of {list(OPERATORS)}")
    if isinstance(coefficient, bool) or not isinstance(coefficient, (int, float)):
        raise TypeError(f"coefficient must be a number, got {coefficient!r}")
    deltas, _ = _resolve(model, vector, float(coefficient), layers)
    ends = None if prompt_end is None else torch.as_tensor(prompt_end, dtype=torch.long)
    plan = _Plan(deltas, positions, operator, float(coefficient), ends)
    with _steering_hooks(model, plan):
        yield


@contextlib.contextmanager
def _steering_hooks(model: Model, plan: _Plan) -> Iterator[_Plan]:
    def make_hook(delta: Tensor):
        def hook(resid: Tensor, hook) -> Tensor:
            batch, seq, _ = resid.shape
            if delta.ndim == 2 and delta.shape[0] != batch:
                raise ValueError(f"RowDeltas have {delta.shape[0]} rows but the batch has {batch}; "
                                 "run one row of deltas per prompt")
            steered = _apply(resid, delta, plan.operator, plan.coefficient)
            mask = _position_mask(plan, batch, seq, resid.device)
            return steered if mask is None else torch.where(mask[..., None], steered, resid)

        return hook

    def track_offset(module, args, kwargs) -> None:
        # The absolute position of this call's first token: HF passes cache_position in
        # generation; a manual cached call has past_key_values; a plain call starts at 0.
        cache_position = kwargs.get("cache_position")
        past = kwargs.get("past_key_values")
        if cache_position is not None:
            plan.offset[0] = int(cache_position.reshape(-1)[0])
        elif past is not None and hasattr(past, "get_seq_length"):
            plan.offset[0] = int(past.get_seq_length())
        else:
            plan.offset[0] = 0

    handle = model.hf_model.register_forward_pre_hook(track_offset, with_kwargs=True)
    try:
        with model.bridge.hooks(fwd_hooks=[(name, make_hook(d)) for name, d in plan.deltas.items()]):
            yield plan
    finally:
        handle.remove()


__all__ = ["OPERATORS", "RowDeltas", "Steering", "steer"]

