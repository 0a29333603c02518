"""Scoped steering: change the residual stream along directions, and remove exactly that afterwards.

``steer(model, vector, coefficient)`` is a context manager. Inside it, every forward pass of the model
(``model.bridge(...)``, ``model.hf_model(...)``, :func:`interp_steer.generate`, a cached or uncached
generation) has ``coefficient * vector[layer]`` added at the vector's hook point for each chosen
layer. On exit, by any path (exception, ``KeyboardInterrupt``, a closed generator), the hooks it
added are removed and nothing else is touched: a user's own hooks survive.

What to add (``vector``):

- a :class:`~interp_steer.directions.SteeringVector` (times ``coefficient``);
- a list of ``(SteeringVector, coefficient)`` terms, summed;
- a :class:`~interp_steer.fields.SteeringField` (times ``coefficient``): at each steered position the
  update is ``coefficient · ‖h‖ₘ · ĝ(h)``, the unit gradient of the field's concept scorer at the
  current activation ``h`` times the layer's mean residual norm (``steps=k``: k smaller steps, each
  re-reading the gradient). Only the scorer is differentiated, on a detached copy of ``h``: no graph
  runs through the model and no gradient reaches its parameters;
- a list of ``(SteeringVector | SteeringField, coefficient)`` terms, summed (fields and vectors mix);
- :class:`RowDeltas`: a different ``[batch, d_model]`` delta per layer for every row of the batch,
  so that a whole grid of coefficients or mixes runs as one batched forward or generation;
- :class:`RowMix`: a per-row coefficient for each of several vectors and fields, the batched form
  for grids that include fields.

Where (``positions``). Every rule is in **each row's own token coordinates: 0 is the row's first real
(non-padding) token**, whatever the padding side and whichever prompts share the batch, so a prompt is
steered at the same tokens alone or batched. Each forward finds every row's first real token from
the ``attention_mask`` the Hugging Face model receives (no mask: every token is real), and the
position of its first token from ``cache_position`` or the KV cache's length, so the rules hold in
:func:`interp_steer.generate`, :func:`interp_steer.ab_eval`, a plain forward inside :func:`steer`
(``model.hf_model(ids, attention_mask=mask)`` or ``model.bridge(ids, attention_mask=mask)``) and
under a KV cache, where a decoding step sees one token at position ``past_length``. A custom 4-D
attention mask (several rows packed into one sequence) carries no padding signal, so packed rows are
steered only by a boolean mask, over absolute positions (other rules refuse a 4-D mask):

- ``"all"``: every position (padding included: it is masked out of attention anyway);
- ``"after_prompt"``: from the **prompt's last token** on (row positions ``>= prompt_end - 1``),
  including every generated token. The first generated token is chosen from the prompt's last
  position, so it already feels the steering, with or without a chat template (with one, the
  assistant header after the user's prompt is steered too). This is CAA's released code, which steers
  from the instruction's last token on. ``prompt_end`` is each row's prompt length in row coordinates
  (no padding added); :func:`interp_steer.generate` and :func:`interp_steer.ab_eval` supply it;
- an ``int`` ``k >= 0``: the row's ``k``-th token;
- a ``slice`` with non-negative ``start``/``stop`` and a positive ``step``; ``stop=None`` runs on
  through every generated token;
- a boolean mask over row positions, ``[length]`` (the same for every row) or ``[batch, length]``;
  positions past its length are not steered.

Negative positions are refused: they count from the end of a sequence, and under a KV cache the end
is not known (every decoding step adds a token). Use ``"after_prompt"`` or a mask instead. The rules
are checked, and turned into each forward's mask, in :mod:`interp_steer.positions`.

How (``operator``):

- ``"add"``: ``x + c v``;
- ``"ablate"``: remove ``c`` times the component of ``x`` along ``v`` (``c = 1`` projects it out);
  with :class:`RowDeltas`, each row uses its own coefficient (see :meth:`RowDeltas.from_rows`);
  vectors only (a field has no single direction to project out);
- ``"add_norm_preserving"``: ``x + c v`` rescaled to the norm ``x`` had.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from interp_steer._device import on_device_of
from interp_steer._types import HookPoint, Operator, Positions
from interp_steer.directions import SteeringVector
from interp_steer.fields import SteeringField
from interp_steer.models import Model
from interp_steer.positions import check_positions, position_mask

OPERATORS: tuple[Operator, ...] = ("add", "ablate", "add_norm_preserving")


@dataclass(frozen=True, eq=False)
class RowDeltas:
    """A per-row delta for each layer: ``deltas[layer]`` is ``[batch, d_model]``.

    Row ``i`` of every batch the model sees inside :func:`steer` gets ``deltas[layer][i]``; the batch
    size must match. Build one from per-row terms with :meth:`from_rows`.

    ``coefficients`` (``[batch]``, optional) is each row's coefficient when its delta is that number
    times one vector; ``operator="ablate"`` needs it (it removes that many times the component along
    the row's direction), the other operators only use the deltas.
    """

    deltas: Mapping[int, Tensor]
    hook_point: HookPoint = "resid_post"
    model: str = ""
    coefficients: Tensor | None = None

    def __post_init__(self) -> None:
        if not self.deltas:
            raise ValueError("RowDeltas needs at least one layer")
        shapes = {tuple(t.shape) for t in self.deltas.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"every layer's deltas must share one [batch, d_model] shape; got {sorted(shapes)}")
        clean = {int(k): torch.as_tensor(v).detach().float() for k, v in sorted(self.deltas.items())}
        object.__setattr__(self, "deltas", clean)
        if self.coefficients is not None:
            coefficients = torch.as_tensor(self.coefficients).detach().float().cpu()
            if coefficients.shape != (self.batch_size,):
                raise ValueError(f"coefficients must be [batch] = [{self.batch_size}], got {list(coefficients.shape)}")
            object.__setattr__(self, "coefficients", coefficients)

    @property
    def batch_size(self) -> int:
        return next(iter(self.deltas.values())).shape[0]

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(self.deltas)

    def rows(self, index: slice | Sequence[int]) -> RowDeltas:
        """The deltas of some rows (for running a long grid in several batches)."""
        coefficients = None if self.coefficients is None else self.coefficients[index]
        return RowDeltas({k: v[index] for k, v in self.deltas.items()}, self.hook_point, self.model, coefficients)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[tuple[SteeringVector, float]]]) -> RowDeltas:
        """One list of ``(vector, coefficient)`` terms per row, summed per layer.

        Every vector must share model, hook point and layers; a row with no terms gets zero. A row
        whose non-zero terms all use one vector has that vector's summed coefficient (what
        ``operator="ablate"`` needs); a row mixing several vectors has none (NaN).
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
        coefficients = torch.zeros(len(rows))
        for i, row in enumerate(rows):
            for vector, coefficient in row:
                for layer in first.layers:
                    deltas[layer][i] += float(coefficient) * vector.directions[layer]
            used = {id(v) for v, c in row if float(c) != 0.0}
            coefficients[i] = sum(float(c) for v, c in row if id(v) in used) if len(used) <= 1 else math.nan
        return cls(deltas, first.hook_point, first.metadata.model, coefficients)


Steerer = SteeringVector | SteeringField


@dataclass(frozen=True, eq=False)
class RowMix:
    """A per-row mix of several vectors and fields: row ``i`` gets ``Σ_t coefficients[i, t] · terms[t]``.

    The batched form of ``[(term, coefficient), ...]`` for grids whose cells differ only in their
    coefficients, e.g. the collision grid ``λ·(α·field_A + (1 − α)·field_B)`` over (α, λ) cells with
    fields, which :class:`RowDeltas` (fixed deltas) cannot express: a field's update depends on the
    activation. Every term must share the model and hook point; a layer is steered when at least one
    term has it. Build one from per-row term lists with :meth:`from_rows`.
    """

    terms: tuple[Steerer, ...]
    coefficients: Tensor  # [batch, n_terms]

    def __post_init__(self) -> None:
        terms = tuple(self.terms)
        if not terms or not all(isinstance(t, (SteeringVector, SteeringField)) for t in terms):
            raise TypeError("RowMix terms must be a non-empty sequence of SteeringVector / SteeringField")
        _check_terms(terms)
        coefficients = torch.as_tensor(self.coefficients).detach().float().cpu()
        if coefficients.ndim != 2 or coefficients.shape[1] != len(terms) or coefficients.shape[0] < 1:
            raise ValueError(f"coefficients must be [batch, {len(terms)} terms], got {list(coefficients.shape)}")
        if not torch.isfinite(coefficients).all():
            raise ValueError("RowMix coefficients contain NaN or inf")
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "coefficients", coefficients)

    @property
    def batch_size(self) -> int:
        return self.coefficients.shape[0]

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted(set().union(*(t.layers for t in self.terms))))

    @property
    def hook_point(self) -> str:
        return self.terms[0].hook_point

    def rows(self, index: slice | Sequence[int]) -> RowMix:
        """The coefficients of some rows (for running a long grid in several batches)."""
        picked = self.coefficients[index if isinstance(index, slice) else list(index)]
        return RowMix(self.terms, picked)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[tuple[Steerer, float]]]) -> RowMix:
        """One list of ``(vector or field, coefficient)`` terms per row; a term absent from a row has
        coefficient 0 there, and a term listed twice in a row adds up."""
        terms: list[Steerer] = []
        for row in rows:
            for term, _ in row:
                if not any(term is t for t in terms):
                    terms.append(term)
        if not terms:
            raise ValueError("from_rows needs at least one (vector or field, coefficient) term")
        coefficients = torch.zeros(len(rows), len(terms))
        for i, row in enumerate(rows):
            for term, c in row:
                coefficients[i, next(k for k, t in enumerate(terms) if t is term)] += float(c)
        return cls(tuple(terms), coefficients)


Steerable = Steerer | RowDeltas | RowMix | Sequence[tuple[Steerer, float]]
"""What :func:`steer` (and :class:`Steering`) can add: a vector or a field (times the coefficient), a
list of ``(vector or field, coefficient)`` terms (summed), or the per-row forms :class:`RowDeltas`
and :class:`RowMix`. A bare tensor is not one: a vector carries its layers, hook point and model."""


def _check_terms(terms: Sequence[Steerer]) -> None:
    """Every term of a sum acts at one hook point, on one model, with one width."""
    first = terms[0]
    for other in terms[1:]:
        if other.hook_point != first.hook_point:
            raise ValueError(f"all vectors and fields must act at one hook point, got {first.hook_point} "
                             f"and {other.hook_point}")
        if other.metadata.model != first.metadata.model or other.d_model != first.d_model:
            raise ValueError(f"cannot sum steering terms from different models: {first.metadata.model!r} "
                             f"(d_model {first.d_model}) vs {other.metadata.model!r} (d_model {other.d_model})")


@dataclass(frozen=True)
class Steering:
    """A steering specification, independent of any run: what to add, at which layers and positions.

    Pass it to :func:`generate`, :func:`ab_eval` or use it with :func:`steer`. ``vector`` takes the
    same forms as in :func:`steer`, ``positions`` the rules of the module docstring, in each row's
    own token coordinates; ``"after_prompt"`` steers from the prompt's last token on, so the first
    generated token feels it, with or without a chat template. ``steps`` is the number of gradient
    steps for :class:`~interp_steer.fields.SteeringField` terms.
    """

    vector: Steerable
    coefficient: float = 1.0
    layers: int | Sequence[int] | None = None
    positions: Positions = "all"
    operator: Operator = "add"
    steps: int = 1

    def __post_init__(self) -> None:
        check_positions(self.positions)
        _check_steps(self.steps)

    @property
    def n_rows(self) -> int | None:
        """How many rows (prompts) this specification is for, or None when it fits any batch."""
        if isinstance(self.vector, (RowDeltas, RowMix)):
            return self.vector.batch_size
        if isinstance(self.positions, Tensor) and self.positions.ndim == 2:
            return self.positions.shape[0]
        return None

    def applied(self, model: Model, prompt_end: Tensor | Sequence[int] | None = None) -> AbstractContextManager[None]:
        """This specification as a :func:`steer` context on ``model`` (``prompt_end``: each row's
        prompt length, for ``positions="after_prompt"``)."""
        return steer(model, self.vector, self.coefficient, layers=self.layers, positions=self.positions,
                     operator=self.operator, prompt_end=prompt_end, steps=self.steps)

    def untouched_through(self, model: Model) -> int:
        """The last block whose output this steering leaves as it was (-1: none): the block before
        its earliest layer, or that layer's own block when it steers ``resid_post``. Everything up
        to that block's output is the unsteered model's, at every position."""
        vector = self.vector
        terms = _as_terms(vector, 1.0)
        if terms is None:
            assert isinstance(vector, (RowDeltas, RowMix))  # the per-row forms
            layers, hook_point = vector.layers, vector.hook_point
        else:
            layers = sorted(set().union(*(term.layers for term, _ in terms)))
            hook_point = terms[0][0].hook_point
        if self.layers is not None:
            layers = model.resolve_layers(self.layers)
        earliest = min(layers)
        return earliest if hook_point == "resid_post" else earliest - 1

    def rows(self, index: slice | Sequence[int]) -> Steering:
        """The part of this specification that applies to some rows of a batch (per-row deltas and a
        per-row position mask are cut to those rows; the rest applies to every row)."""
        vector = self.vector.rows(index) if isinstance(self.vector, (RowDeltas, RowMix)) else self.vector
        positions = self.positions
        if isinstance(positions, Tensor) and positions.ndim == 2:
            positions = positions[index if isinstance(index, slice) else list(index)]
        return replace(self, vector=vector, positions=positions)


def _check_steps(steps: object) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}: the number of gradient steps of a field must be an int >= 1")


@dataclass(frozen=True, eq=False)
class _LayerDelta:
    """What one hook adds: a fixed part (vectors, already times their coefficients; ``[d_model]`` or
    ``[batch, d_model]``) plus each field's update at the activation the hook sees."""

    static: Tensor | None
    fields: tuple[tuple[SteeringField, int, float | Tensor], ...] = ()  # (field, layer, number or [batch])
    steps: int = 1

    @property
    def rows(self) -> int | None:
        """The batch size this delta is for, or None when it fits any batch."""
        if self.static is not None and self.static.ndim == 2:
            return self.static.shape[0]
        sizes = [c.shape[0] for _, _, c in self.fields if isinstance(c, Tensor)]
        return sizes[0] if sizes else None

    def __call__(self, resid: Tensor) -> Tensor:
        """The delta for ``resid [batch, seq, d_model]``: ``[d_model]``, ``[batch, 1, d_model]`` or,
        with fields, ``[batch, seq, d_model]``."""
        total = None
        if self.static is not None:
            static = on_device_of(self.static, resid)
            total = static[:, None, :] if static.ndim == 2 else static
        for field_, layer, coefficient in self.fields:
            c = on_device_of(coefficient, resid)[:, None, None] if isinstance(coefficient, Tensor) else coefficient
            update = field_.update(resid, layer, c, steps=self.steps)
            total = update if total is None else total + update
        assert total is not None  # _resolve never plans a layer with neither part
        return total


@dataclass
class _Plan:
    """The resolved intervention of one :func:`steer` call, and what the current forward told it."""

    deltas: dict[str, _LayerDelta]  # hook name -> what to add there
    positions: Positions
    operator: Operator
    coefficient: float | Tensor  # a number, or [batch] per-row coefficients (RowDeltas, for ablate)
    prompt_end: Tensor | None
    # Set by the pre-hook on every forward: the absolute position of the call's first token (an int,
    # or a 1-element tensor so that reading cache_position costs no device sync), each row's first
    # real token in those absolute coordinates ([batch], None when there is no padding mask), and the
    # position mask, built by the first hook that needs it and shared by the others.
    offset: int | Tensor = 0
    starts: Tensor | None = None
    mask: Tensor | None = field(default=None, repr=False)


def _as_terms(vector: Steerable, coefficient: float) -> list[tuple[Steerer, float | Tensor]] | None:
    """The ``(vector or field, coefficient)`` terms of the accepted forms; None for per-row forms."""
    if isinstance(vector, (SteeringVector, SteeringField)):
        return [(vector, coefficient)]
    if isinstance(vector, (RowDeltas, RowMix)):
        return None
    if isinstance(vector, Sequence) and vector and all(
        isinstance(t, tuple) and len(t) == 2 and isinstance(t[0], (SteeringVector, SteeringField)) for t in vector
    ):
        return [(v, c * coefficient) for v, c in vector]
    raise TypeError(
        "steer() takes a SteeringVector, a SteeringField, a list of (vector or field, coefficient) tuples, "
        f"RowDeltas or RowMix; got {type(vector).__name__}"
    )


def _resolve(model: Model, vector: Steerable, coefficient: float, layers: int | Sequence[int] | None,
             operator: Operator, steps: int = 1) -> tuple[dict[str, _LayerDelta], float | Tensor]:
    """Turn the accepted ``vector`` forms into {hook name: what to add} on the model's device and
    dtype, and the coefficient ``ablate`` removes (per row for RowDeltas)."""
    terms = _as_terms(vector, coefficient)
    removed: float | Tensor = coefficient
    if isinstance(vector, RowMix):  # per-row coefficients: term t scales column t
        terms = [(term, vector.coefficients[:, t] * coefficient) for t, term in enumerate(vector.terms)]
    has_field = terms is not None and any(isinstance(t, SteeringField) for t, _ in terms)
    if has_field and operator == "ablate":
        raise ValueError("operator='ablate' needs one direction to project out; a SteeringField's direction "
                         "changes with the activation. Use 'add' or 'add_norm_preserving' with fields")
    if steps != 1 and not has_field:
        raise ValueError(f"steps={steps} only applies to SteeringField terms (the number of gradient steps); "
                         "a vector's update is one fixed step")
    if isinstance(vector, RowMix) and operator == "ablate":
        raise ValueError("operator='ablate' with per-row coefficients needs RowDeltas.from_rows "
                         "([[(vector, c)] for c in ...]), one vector per row")
    if terms is not None:
        _check_terms([t for t, _ in terms])
        for term, _ in terms:
            term.check_model(model)
        available = sorted(set().union(*(t.layers for t, _ in terms)))
        hook_point = terms[0][0].hook_point
        chosen = available if layers is None else list(model.resolve_layers(layers))
        plan: dict[int, _LayerDelta] = {}
        for layer in chosen:
            static = [c[:, None] * t.directions[layer] if isinstance(c, Tensor) else c * t.directions[layer]
                      for t, c in terms if isinstance(t, SteeringVector) and layer in t.directions]
            fields = tuple((t, layer, c) for t, c in terms if isinstance(t, SteeringField) and layer in t.layers)
            if not static and not fields:
                raise ValueError(f"layer {layer} is not in the steering vector(s) or field(s) (they have {available})")
            total = torch.stack(static).sum(0) if static else None
            plan[layer] = _LayerDelta(None if total is None else on_device_of(total, model.device, model.dtype),
                                      fields, steps)
    else:
        assert isinstance(vector, RowDeltas)  # every other form has terms (RowMix's are per row)
        if vector.model and vector.model != model.name:
            raise ValueError(f"RowDeltas were built for {vector.model!r}, not {model.name!r}")
        hook_point = vector.hook_point
        chosen = list(vector.layers) if layers is None else list(model.resolve_layers(layers))
        missing = [layer for layer in chosen if layer not in vector.deltas]
        if missing:
            raise ValueError(f"layers {missing} are not in the RowDeltas (they have {list(vector.layers)})")
        plan = {layer: _LayerDelta(on_device_of(vector.deltas[layer] * coefficient, model.device, model.dtype))
                for layer in chosen}
        if operator == "ablate":
            known = vector.coefficients
            if known is None or bool(known.isnan().any()):
                which = ("they were built from deltas alone" if known is None else
                         f"rows {known.isnan().nonzero().flatten().tolist()[:10]} mix several vectors")
                raise ValueError(
                    f"operator='ablate' with RowDeltas needs each row's coefficient, but {which}: ablation "
                    "removes c times the component along one direction. Build them with "
                    "RowDeltas.from_rows([[(vector, c)] for c in ...]), one vector per row"
                )
            removed = on_device_of(known * coefficient, model.device, model.dtype)
    out = {}
    for layer, delta in plan.items():
        width = delta.static.shape[-1] if delta.static is not None else delta.fields[0][0].d_model
        if width != model.d_model:
            raise ValueError(f"delta for layer {layer} has d_model {width}, the model has {model.d_model}")
        out[model.hook_name(layer, hook_point)] = delta
    return out, removed


def _apply(resid: Tensor, delta: Tensor, operator: Operator, coefficient: float | Tensor) -> Tensor:
    """``delta`` is ``[d_model]``, ``[batch, 1, d_model]`` (per row) or ``[batch, seq, d_model]`` (fields)."""
    if operator == "add":
        return resid + delta
    if operator == "add_norm_preserving":
        steered = resid + delta
        return steered * (resid.norm(dim=-1, keepdim=True) / steered.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    # ablate: delta is c * v (per row for RowDeltas); remove c times the projection on v. The sign of
    # the unit vector does not matter: the projection times the unit is the same either way.
    unit = delta / delta.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    if isinstance(coefficient, Tensor):
        coefficient = on_device_of(coefficient, resid)[:, None, None]
    return resid - coefficient * (resid * unit).sum(-1, keepdim=True) * unit


@contextlib.contextmanager
def steer(
    model: Model,
    vector: Steerable,
    coefficient: float = 1.0,
    *,
    layers: int | Sequence[int] | None = None,
    positions: Positions = "all",
    operator: Operator = "add",
    prompt_end: Tensor | Sequence[int] | None = None,
    steps: int = 1,
) -> Iterator[None]:
    """Steer every forward pass of ``model`` inside the ``with`` block (see the module docstring).

    ``layers`` defaults to every layer the vector has. ``positions`` are in each row's own token
    coordinates (0 = its first real token). ``positions="after_prompt"`` steers from the prompt's last
    token on (row positions ``>= prompt_end - 1``), so the first generated token feels the steering;
    ``prompt_end`` (each row's prompt length, without padding) is needed for it outside
    :func:`generate` and :func:`ab_eval`. ``steps``: how many gradient steps a
    :class:`~interp_steer.fields.SteeringField` takes (their sizes add up to one step of ``steps=1``).
    """
    if operator not in OPERATORS:
        raise ValueError(f"operator={operator!r}: expected one of {list(OPERATORS)}")
    if isinstance(coefficient, bool) or not isinstance(coefficient, (int, float)):
        raise TypeError(f"coefficient must be a number, got {coefficient!r}")
    check_positions(positions)
    _check_steps(steps)
    if isinstance(positions, str) and positions == "after_prompt" and prompt_end is None:
        raise ValueError(
            "positions='after_prompt' needs to know where each prompt ends: use "
            "interp_steer.generate(..., steering=...) or steer(..., prompt_end=[prompt length per row])"
        )
    deltas, removed = _resolve(model, vector, float(coefficient), layers, operator, steps)
    ends = None if prompt_end is None else on_device_of(prompt_end, model.device, torch.long).reshape(-1)
    if isinstance(positions, Tensor):
        positions = on_device_of(positions, model.device)
    plan = _Plan(deltas, positions, operator, removed, ends)
    with _steering_hooks(model, plan):
        yield


@contextlib.contextmanager
def _steering_hooks(model: Model, plan: _Plan) -> Iterator[_Plan]:
    needs_rows = not (isinstance(plan.positions, str) and plan.positions == "all")

    def make_hook(delta: _LayerDelta):
        rows = delta.rows

        def hook(resid: Tensor, hook) -> Tensor:
            batch, seq, _ = resid.shape
            if rows is not None and rows != batch:
                raise ValueError(f"the per-row steering (RowDeltas / RowMix) has {rows} rows but the batch "
                                 f"has {batch}; run one row per prompt")
            steered = _apply(resid, delta(resid), plan.operator, plan.coefficient)
            if not needs_rows:
                return steered
            if plan.mask is None or plan.mask.shape != (batch, seq):
                plan.mask = position_mask(plan.positions, plan.offset, plan.starts, plan.prompt_end, batch, seq,
                                          resid.device)
            return torch.where(on_device_of(plan.mask, resid)[..., None], steered, resid)

        return hook

    names = list(inspect.signature(model.hf_model.forward).parameters)

    def track_call(module, args, kwargs) -> None:
        # Where this call's tokens sit: HF passes cache_position in generation; a manual cached call
        # has past_key_values; a plain call starts at 0. The bridge passes input_ids positionally.
        call = {**dict(zip(names, args, strict=False)), **kwargs}
        cache_position, past = call.get("cache_position"), call.get("past_key_values")
        if cache_position is not None:
            plan.offset = cache_position.reshape(-1)[:1]
        elif past is not None and hasattr(past, "get_seq_length"):
            plan.offset = int(past.get_seq_length())
        else:
            plan.offset = 0
        plan.mask = None
        plan.starts = None
        mask = call.get("attention_mask")
        if needs_rows and isinstance(mask, Tensor) and mask.ndim == 4 and isinstance(plan.positions, Tensor):
            return  # packed rows under a custom 4-D mask, steered by a boolean mask over absolute positions
        if needs_rows and mask is not None:
            if not isinstance(mask, Tensor) or mask.ndim != 2:
                raise ValueError(
                    f"steering positions other than 'all' need a [batch, length] attention mask to find "
                    f"each row's first real token; got {getattr(mask, 'shape', type(mask).__name__)}"
                )
            # Each row's first real token: the number of leading masked-out positions. The mask spans
            # the cached prefix too, so this is in the same absolute coordinates as offset.
            plan.starts = (mask != 0).cumsum(-1).eq(0).sum(-1)

    handle = model.hf_model.register_forward_pre_hook(track_call, with_kwargs=True)
    try:
        with model.bridge.hooks(fwd_hooks=[(name, make_hook(d)) for name, d in plan.deltas.items()]):
            yield plan
    finally:
        handle.remove()


__all__ = ["OPERATORS", "RowDeltas", "RowMix", "Steerable", "Steerer", "Steering", "steer"]
