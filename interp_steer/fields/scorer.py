"""The concept scorer: ``s_l(h)``, a small differentiable function of the residual at each layer.

The three forms (``"per_layer"``, ``"shared"``, ``"linear"``) and why inputs are standardised are
described in :mod:`interp_steer.fields`. :class:`ConceptScorer` holds every layer's parameters
stacked, evaluates one layer (:meth:`ConceptScorer.score`, what a field differentiates) or all at
once (:meth:`ConceptScorer.forward_stacked`, what training runs), and maps its tensors to and from
the names a field file stores them under.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from interp_steer._constants import FIELD_FORMS
from interp_steer._types import FieldForm, ScorerActivation

FORMS = FIELD_FORMS
DEFAULT_HIDDEN: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {"per_layer": (256, 64), "shared": (64,), "linear": ()}
)
ACTIVATIONS = {"gelu": F.gelu, "silu": F.silu}
"""The scorer's non-linearities by name (the metadata names one; a file records it)."""
_STD_FLOOR = 1e-2  # sigma is floored at this fraction of the layer's median feature scale


class ConceptScorer(nn.Module):
    """Concept logit ``s_l(h)`` at each of ``layers``; float32, parameters stacked over layers.

    Treat it as read-only once wrapped in a :class:`SteeringField`. Internal layout (the file
    layout is described in the module docstring): buffers ``mean``/``std`` ``[L, d]``; for the
    per-layer forms ``weights.j`` ``[L, in, out]`` and ``biases.j`` ``[L, out]``; for ``"shared"``
    ``projection`` ``[d, k]``, ``scale``/``shift`` ``[L, k]`` and an unstacked head.
    """

    def __init__(
        self,
        form: FieldForm,
        layers: Sequence[int],
        d_model: int,
        *,
        hidden: Sequence[int] | None = None,
        rank: int = 16,
        activation: ScorerActivation = "gelu",
    ) -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"form {form!r}: expected one of {list(FORMS)}")
        hidden = DEFAULT_HIDDEN[form] if hidden is None else tuple(hidden)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"hidden sizes must be positive integers, got {hidden!r}")
        if form == "linear" and hidden:
            raise ValueError(f"the linear form has no hidden layers; got hidden={hidden!r}")
        if form == "shared" and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise ValueError(f"rank (the concept-space size) must be a positive integer, got {rank!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r}: expected one of {list(ACTIVATIONS)}")
        layers = tuple(layers)
        if not layers or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in layers):
            raise ValueError(f"layers must be a non-empty sequence of non-negative integers, got {layers!r}")
        if list(layers) != sorted(set(layers)):
            raise ValueError(f"layers must be distinct and ascending, got {list(layers)}")
        self.form, self.layers, self.d_model = form, layers, int(d_model)
        self.hidden, self.activation = hidden, activation
        self.rank = int(rank) if form == "shared" else 0
        self._index = {layer: i for i, layer in enumerate(layers)}
        n = len(layers)
        self.register_buffer("mean", torch.zeros(n, d_model))
        self.register_buffer("std", torch.ones(n, d_model))
        if form == "shared":
            self.projection = nn.Parameter(torch.zeros(d_model, self.rank))
            self.scale = nn.Parameter(torch.ones(n, self.rank))
            self.shift = nn.Parameter(torch.zeros(n, self.rank))
            sizes = (self.rank, *hidden, 1)
            lead: tuple[int, ...] = ()
        else:
            sizes = (d_model, *hidden, 1)
            lead = (n,)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.zeros(*lead, a, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(*lead, b)) for b in sizes[1:]])

    # ------------------------------------------------------------------ evaluation

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def index(self, layer: int) -> int:
        if layer not in self._index:
            raise KeyError(f"no scorer for layer {layer}; this field has layers {list(self.layers)}")
        return self._index[layer]

    def score(self, h: Float[Tensor, "*batch d_model"], layer: int) -> Float[Tensor, "*batch"]:
        """Concept logits of float32 ``h`` (on the scorer's device) at ``layer``; differentiable."""
        i = self.index(layer)
        z = (h.reshape(-1, self.d_model) - self.mean[i]) / self.std[i]
        if self.form == "shared":
            z = (z @ self.projection) * self.scale[i] + self.shift[i]
            z = self._mlp(z, list(self.weights), list(self.biases))
        else:
            z = self._mlp(z, [w[i] for w in self.weights], [b[i] for b in self.biases])
        return z.reshape(h.shape[:-1])

    def forward_stacked(self, x: Float[Tensor, "layers rows d_model"]) -> Float[Tensor, "layers rows"]:
        """Logits of every layer at once (training): ``x[i]`` is read at ``layers[i]``."""
        z = (x - self.mean[:, None]) / self.std[:, None]
        if self.form == "shared":
            z = (z @ self.projection) * self.scale[:, None] + self.shift[:, None]
            return self._mlp(z, list(self.weights), list(self.biases))
        act = ACTIVATIONS[self.activation]
        last = len(self.weights) - 1
        for j, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = torch.baddbmm(b[:, None, :], z, w)
            if j < last:
                z = act(z)
        return z.squeeze(-1)

    def _mlp(self, z: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
        act = ACTIVATIONS[self.activation]
        for j, (w, b) in enumerate(zip(weights, biases, strict=True)):
            z = torch.addmm(b, z, w) if z.dim() == 2 else z @ w + b
            if j < len(weights) - 1:
                z = act(z)
        return z.squeeze(-1)

    # ------------------------------------------------------------------ construction

    def config(self) -> dict[str, Any]:
        return {"form": self.form, "layers": self.layers, "d_model": self.d_model,
                "hidden": self.hidden, "rank": self.rank or 16, "activation": self.activation}

    def _stacked(self, name: str) -> bool:
        """Whether state entry ``name`` has one slice per layer (leading dimension = layers)."""
        return self.form != "shared" or name in ("mean", "std", "scale", "shift")

    def initialise(self, rows: Float[Tensor, "layers rows d_model"], generator: torch.Generator) -> None:
        """Standardisation from ``rows`` (training rows only) and PyTorch-style uniform weights."""
        with torch.no_grad():
            self.mean.copy_(rows.mean(dim=1))
            std = rows.std(dim=1, correction=0)
            floor = (_STD_FLOOR * std.median(dim=1, keepdim=True).values).clamp_min(1e-6)
            self.std.copy_(torch.maximum(std, floor))
            for w, b in zip(self.weights, self.biases, strict=True):
                bound = 1.0 / math.sqrt(w.shape[-2])
                w.copy_((torch.rand(w.shape, generator=generator) * 2 - 1) * bound)
                b.copy_((torch.rand(b.shape, generator=generator) * 2 - 1) * bound)
            if self.form == "shared":
                bound = 1.0 / math.sqrt(self.d_model)
                self.projection.copy_((torch.rand(self.projection.shape, generator=generator) * 2 - 1) * bound)

    def rebuilt(self, device: torch.device | str | None = None) -> ConceptScorer:
        """A detached float32 copy on ``device`` (default: this one), parameters frozen.

        Made outside inference mode, so the copy can sit in an autograd graph even when this one
        was loaded or moved under ``torch.inference_mode()``.
        """
        with torch.inference_mode(False), torch.no_grad():
            copy = ConceptScorer(**self.config())
            copy.load_state_dict({k: v.detach().to(torch.float32) for k, v in self.state_dict().items()})
            copy = copy.to(self.device if device is None else device)
        return copy.requires_grad_(False)

    def select(self, layers: Sequence[int]) -> ConceptScorer:
        """The scorer restricted to ``layers`` (shared parts kept whole)."""
        rows = torch.tensor([self.index(layer) for layer in layers], device=self.device)
        state = {k: v.index_select(0, rows) if self._stacked(k) else v for k, v in self.state_dict().items()}
        out = ConceptScorer(**{**self.config(), "layers": tuple(layers)}).to(self.device)
        out.load_state_dict(state)
        return out.requires_grad_(False)

    # ------------------------------------------------------------------ file layout

    @staticmethod
    def _file_part(name: str, form: str) -> str:
        kind, _, j = name.partition(".")
        if kind in ("mean", "std"):
            return f"standardise.{kind}"
        if kind in ("scale", "shift"):
            return f"concept.{kind}"
        if kind == "projection":
            return "projection"
        suffix = "weight" if kind == "weights" else "bias"
        return f"head.{j}.{suffix}" if form == "shared" else f"mlp.{j}.{suffix}"

    def _file_entries(self, hook_point: str) -> Iterator[tuple[str, str, int | None]]:
        """``(file name, state name, layer index or None)`` for every tensor in a file."""
        for name in self.state_dict():
            part = self._file_part(name, self.form)
            if self._stacked(name):
                for i, layer in enumerate(self.layers):
                    yield f"blocks.{layer}.hook_{hook_point}.{part}", name, i
            else:
                yield f"shared.{part}", name, None

    def file_shapes(self, hook_point: str) -> dict[str, tuple[int, ...]]:
        """The file's tensor names and shapes (works on a ``meta``-device skeleton: no memory)."""
        state = self.state_dict()
        return {key: tuple(state[name].shape[1:] if i is not None else state[name].shape)
                for key, name, i in self._file_entries(hook_point)}

    def to_file_tensors(self, hook_point: str) -> dict[str, Tensor]:
        """Tensors under their file names (fresh CPU copies: safetensors refuses shared storage)."""
        state = {k: v.detach().to("cpu", torch.float32) for k, v in self.state_dict().items()}
        return {key: (state[name][i] if i is not None else state[name]).clone().contiguous()
                for key, name, i in self._file_entries(hook_point)}

    def load_file_tensors(self, tensors: Mapping[str, Tensor], hook_point: str) -> None:
        """Fill this scorer from :meth:`to_file_tensors`'s layout (names and shapes already checked)."""
        parts: dict[str, list[Tensor]] = {}
        for key, name, _ in self._file_entries(hook_point):  # per-layer slices come in layer order
            parts.setdefault(name, []).append(tensors[key])
        self.load_state_dict({name: torch.stack(p) if self._stacked(name) else p[0]
                              for name, p in parts.items()})
