"""The steering field: a fitted concept scorer and its metadata, and steering along the scorer's unit
gradient (:meth:`SteeringField.direction`, :meth:`SteeringField.update`); saved to and loaded from a
validated safetensors file. How a field is fitted is :mod:`interp_steer.fields.fit`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from interp_steer._device import on_device_of
from interp_steer._tensor_files import check_fits_model, read_safetensors, write_safetensors
from interp_steer.fields.metadata import FORMAT, FORMAT_VERSION, FieldFileError, FieldMetadata
from interp_steer.fields.scorer import ConceptScorer
from interp_steer.models import Model


@dataclass(frozen=True, eq=False)
class SteeringField:
    """A concept scorer per layer and its metadata; steering moves along the scorer's unit gradient.

    Immutable in use: :meth:`select` and :meth:`to` return new fields. The scorer is owned (copied
    on construction, parameters frozen); a copy is made once for each other device it is used on.
    """

    scorer: ConceptScorer
    metadata: FieldMetadata

    def __post_init__(self) -> None:
        meta, scorer = self.metadata, self.scorer
        if not isinstance(scorer, ConceptScorer):
            raise TypeError(f"scorer must be a ConceptScorer, got {type(scorer).__name__}")
        mine = (scorer.form, scorer.layers, scorer.d_model, scorer.hidden, scorer.rank, scorer.activation)
        theirs = (meta.form, meta.layers, meta.d_model, meta.hidden, meta.rank, meta.activation)
        if mine != theirs:
            raise ValueError(f"scorer (form, layers, d_model, hidden, rank, activation) = {mine} does not "
                             f"match the metadata's {theirs}")
        owned = scorer.rebuilt()
        for name, tensor in owned.state_dict().items():
            if not torch.isfinite(tensor).all():
                raise ValueError(f"scorer tensor {name!r} contains NaN or inf")
        if not (owned.std > 0).all():
            raise ValueError("scorer standardisation has a non-positive std")
        object.__setattr__(self, "scorer", owned)
        object.__setattr__(self, "_copies", {owned.device: owned})

    # ------------------------------------------------------------------ access

    @property
    def layers(self) -> tuple[int, ...]:
        return self.metadata.layers

    @property
    def hook_point(self) -> str:
        return self.metadata.hook_point

    @property
    def d_model(self) -> int:
        return self.metadata.d_model

    @property
    def form(self) -> str:
        return self.metadata.form

    @property
    def device(self) -> torch.device:
        return self.scorer.device

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        layers = list(self.layers)
        shown = layers if len(layers) <= 6 else [*layers[:3], "...", *layers[-2:]]
        return (f"SteeringField(model={self.metadata.model!r}, hook={self.hook_point}, form={self.form}, "
                f"layers={shown})")

    def hook_name(self, layer: int) -> str:
        return f"blocks.{layer}.hook_{self.hook_point}"

    def top_tokens(self, model: Model, contexts: str | Sequence[str], k: int = 20, layer: int | None = None, *,
                   through_norm: bool = True):
        """The tokens the field's unit gradient promotes and suppresses, at the last-token activation
        of each context (a field's direction depends on where it is applied): a tidy DataFrame with
        ``layer``, ``context``, ``side``, ``rank``, ``token_id``, ``token``, ``value``."""
        from interp_steer.vocab import field_gradient_directions, token_table

        self.check_model(model)
        directions, extra = field_gradient_directions(self, model, contexts, layer=layer)
        table = token_table(model, directions, k=k, through_norm=through_norm, key="direction", extra=extra)
        return table.drop(columns=["direction"])

    def check_model(self, model: Model, *, source: str = "field") -> None:
        """Raise if this field cannot be applied to ``model``."""
        check_fits_model(model, built_on=self.metadata.model, d_model=self.d_model, layers=list(self.layers),
                         source=source, error=FieldFileError, redo="refit it on this model")

    def select(self, layers: int | Iterable[int]) -> SteeringField:
        """A field restricted to some of the layers (in ascending order)."""
        wanted = sorted([layers] if isinstance(layers, int) else set(layers))
        missing = [layer for layer in wanted if layer not in self.layers]
        if missing or not wanted:
            raise KeyError(f"layers {missing or wanted} are not in this field (it has {list(self.layers)})")
        meta = self.metadata
        metadata = replace(meta, layers=tuple(wanted),
                           resid_norm={k: meta.resid_norm[k] for k in wanted},
                           training={k: meta.training[k] for k in wanted if k in meta.training})
        return SteeringField(self.scorer.select(wanted), metadata)

    def to(self, device: torch.device | str) -> SteeringField:
        """A field whose scorer lives on ``device`` (``self`` when it already does).

        Optional: :meth:`direction`, :meth:`update` and :meth:`score` work on tensors on any device
        (the scorer is copied there once and the copy kept); moving first only saves that copy.
        """
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device == self.device:
            return self
        return SteeringField(self._scorer_on(device), self.metadata)

    def _check_width(self, h: Tensor) -> None:
        if h.dim() == 0 or h.shape[-1] != self.d_model:
            raise ValueError(f"activations of shape {tuple(h.shape)}: this field needs [..., {self.d_model}] "
                             f"(d_model of {self.metadata.model!r})")

    def _scorer_on(self, device: torch.device) -> ConceptScorer:
        copies: dict[torch.device, ConceptScorer] = self._copies  # type: ignore[attr-defined]
        if device not in copies:
            copies[device] = self.scorer.rebuilt(device)
        return copies[device]

    # ------------------------------------------------------------------ the field itself

    def score(self, h: Float[Tensor, "*batch d_model"], layer: int) -> Float[Tensor, "*batch"]:
        """The concept logit at each activation (float32, on ``h``'s device; no graph)."""
        self._check_width(h)
        scorer = self._scorer_on(h.device)
        with torch.no_grad():
            return scorer.score(h.detach().to(torch.float32), layer)

    def direction(self, h: Float[Tensor, "*batch d_model"], layer: int) -> Float[Tensor, "*batch d_model"]:
        """Unit gradient of the scorer at every activation (rows with a zero gradient give 0).

        Works inside ``torch.inference_mode()`` and on inference tensors; returns ``h``'s dtype.
        """
        return self._unit_gradient(h, layer).to(h.dtype)

    def _unit_gradient(self, h: Tensor, layer: int) -> Tensor:
        self._check_width(h)
        scorer = self._scorer_on(h.device)
        scorer.index(layer)  # a clear KeyError before any work
        # Leave inference mode locally: generation runs under it, and no graph can be built there.
        # Only the copy ``x`` requires grad, so nothing else (scorer, model) collects a gradient.
        with torch.inference_mode(False), torch.enable_grad():
            x = h.detach().to(torch.float32).clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(scorer.score(x, layer).sum(), x)
        norm = grad.norm(dim=-1, keepdim=True)
        return torch.where(norm > 0, grad / norm.clamp_min(torch.finfo(torch.float32).tiny),
                           torch.zeros_like(grad))

    def update(
        self,
        h: Float[Tensor, "*batch d_model"],
        layer: int,
        coefficient: float | int | Tensor,
        *,
        steps: int = 1,
    ) -> Float[Tensor, "*batch d_model"]:
        """The displacement to add to ``h``: ``coefficient · resid_norm[layer]`` along the field.

        ``steps=1``: ``coefficient · resid_norm · direction(h)``. ``steps=k``: ``k`` steps of a
        ``k``-th of that length, re-reading the direction at each moved point; returns the total move.
        ``coefficient`` is a number or a tensor broadcastable against ``h[..., :1]`` (e.g. one per
        row, ``[batch, 1, 1]`` for a ``[batch, seq, d_model]`` ``h``). A coefficient of 0 gives exactly 0.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if layer not in self.metadata.resid_norm:
            raise KeyError(f"no field at layer {layer}; this field has layers {list(self.layers)}")
        c = on_device_of(coefficient, h, torch.float32)
        try:
            fits = torch.broadcast_shapes(c.shape, h[..., :1].shape) == h[..., :1].shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"coefficient of shape {tuple(c.shape)} does not broadcast against "
                             f"h[..., :1] of shape {tuple(h[..., :1].shape)}; use a number or e.g. "
                             "[batch, 1, 1] for a [batch, seq, d_model] h")
        length = c * (self.metadata.resid_norm[layer] / steps)
        if steps == 1:
            return (length * self._unit_gradient(h, layer)).to(h.dtype)
        start = h.detach().to(torch.float32)
        x = start
        for _ in range(steps):
            x = x + length * self._unit_gradient(x, layer)
        return (x - start).to(h.dtype)

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path) -> Path:
        """Write safetensors: the scorer's tensors under self-describing names; metadata in the header."""
        return write_safetensors(path, self.scorer.to_file_tensors(self.hook_point), FORMAT, FORMAT_VERSION,
                                 self.metadata.to_dict(), "steering fields")

    @classmethod
    def load(cls, path: str | Path, model: Model | None = None) -> SteeringField:
        """Read and validate a file written by :meth:`save`; given a model, refuse a mismatch."""
        path = Path(path)
        header, tensors = read_safetensors(path, FieldFileError, "; re-save the field with SteeringField.save")
        if header.get("format") != FORMAT:
            raise FieldFileError(f"{path}: not an interp_steer steering field (header format "
                                 f"{header.get('format')!r}); was it written by SteeringField.save?")
        if header.get("format_version") != str(FORMAT_VERSION):
            raise FieldFileError(f"{path}: format version {header.get('format_version')!r}, this "
                                 f"library reads version {FORMAT_VERSION}; upgrade interp_steer")
        try:
            metadata = FieldMetadata.from_dict(json.loads(header["metadata"]))
        except FieldFileError as error:
            raise FieldFileError(f"{path}: {error}") from error
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            raise FieldFileError(f"{path}: metadata is missing, not valid JSON or inconsistent "
                                 f"({error}); re-save the field with SteeringField.save") from error
        config = {"hidden": metadata.hidden, "rank": metadata.rank or 16, "activation": metadata.activation}
        with torch.device("meta"):  # shapes only: a corrupted d_model allocates nothing
            expected = ConceptScorer(metadata.form, metadata.layers, metadata.d_model,
                                     **config).file_shapes(metadata.hook_point)
        missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise FieldFileError(f"{path}: tensors do not match the metadata (form {metadata.form!r}, "
                                 f"layers {list(metadata.layers)}): missing {missing[:6]}, unexpected "
                                 f"{unexpected[:6]}; the file is incomplete or was edited")
        for key, shape in expected.items():
            tensor = tensors[key]
            if tuple(tensor.shape) != shape or tensor.dtype != torch.float32:
                raise FieldFileError(f"{path}: tensor {key!r} is {tensor.dtype} {tuple(tensor.shape)}, "
                                     f"expected float32 {shape} (d_model {metadata.d_model}, hidden "
                                     f"{list(metadata.hidden)}, rank {metadata.rank})")
            if not torch.isfinite(tensor).all():
                raise FieldFileError(f"{path}: tensor {key!r} contains NaN or inf")
        scorer = ConceptScorer(metadata.form, metadata.layers, metadata.d_model, **config)
        scorer.load_file_tensors(tensors, metadata.hook_point)
        try:
            loaded = cls(scorer, metadata)
        except ValueError as error:
            raise FieldFileError(f"{path}: {error}") from error
        if model is not None:
            loaded.check_model(model, source=str(path))
        return loaded
