"""Steering directions: the ``SteeringVector`` value object, how to build one, and its files.

Three stages, each usable alone: collect activations (:mod:`interp_steer.activations`), aggregate
them into one direction per layer (the aggregators below), wrap the result in a
:class:`SteeringVector`. :func:`build_vector` does all three in one call.

Aggregators (``method=``), all returning a vector per layer that points from negative to positive:

- ``"mean_diff"`` — CAA: mean(positive) − mean(negative) (paired or not; for pairs this equals the
  mean of the per-pair differences);
- ``"pca"`` — the first principal component of the paired differences, uncentred (the top right
  singular vector of the positive-minus-negative differences, which leans towards their mean), for
  paired data only. This is not representation engineering's PCA reader, which subtracts the
  differences' mean before taking the first component (and whose examples shuffle the order within
  each pair): RepE's component is the axis along which pair differences vary most, whatever their
  mean, while ours is dominated by the mean difference when it is large;
- ``"probe"`` — the weight vector of a logistic-regression probe on the raw activations.

PCA and probe directions have no natural length, so they are scaled to the length of the class-mean
difference projected onto them: every method then moves a mean negative example to a mean positive
one along its own direction, and their norms are comparable. Signs are fixed so the positive class
projects higher.

Files: ``vector.save(path)`` writes safetensors with one ``[d_model]`` tensor per hook name
(``blocks.15.hook_resid_post``) and the metadata as JSON in the header; :meth:`SteeringVector.load`
validates both. :meth:`SteeringVector.to_gguf` writes llama.cpp's control-vector format.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp_steer._tensor_files import check_fits_model, read_safetensors, write_safetensors
from interp_steer._types import HookPoint, LayerDirections, Method, Normalisation, ReadPosition
from interp_steer.activations import Activations, collect_activations
from interp_steer.contrast import ab_contrast_pairs, contrast_texts, position_label
from interp_steer.data import ContrastPair, reject_bare_string
from interp_steer.models import RESID_POINTS, Model

FORMAT = "interp_steer.steering_vector"
FORMAT_VERSION = 1
METHODS: tuple[Method, ...] = ("mean_diff", "pca", "probe")
_HOOK_KEY = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_mid|resid_post)$")


class VectorFileError(ValueError):
    """A steering-vector file is corrupted, incomplete or does not fit the model."""


@dataclass(frozen=True)
class VectorMetadata:
    """Where a vector came from. Everything needed to reproduce it, and to refuse misuse."""

    model: str
    d_model: int
    hook_point: str = "resid_post"
    method: str = "mean_diff"
    position: str = "last"
    n_positive: int = 0
    n_negative: int = 0
    dataset_hash: str = ""
    normalisation: str = "none"
    library_version: str = ""
    resid_norm: Mapping[int, float] = field(default_factory=dict)
    """Mean residual norm per layer over the data the vector was built from (for scaling)."""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["resid_norm"] = {str(k): float(v) for k, v in self.resid_norm.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VectorMetadata:
        """The inverse of :meth:`to_dict`; a field of the wrong type raises :class:`VectorFileError`
        naming it."""
        if not isinstance(data, Mapping):
            raise VectorFileError(f"metadata must be a JSON object, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VectorFileError(f"unknown metadata fields {unknown}; expected a subset of {sorted(known)}")
        if "model" not in data or "d_model" not in data:
            raise VectorFileError("metadata needs 'model' and 'd_model'")
        values = dict(data)
        for name, kind in (("model", str), ("hook_point", str), ("method", str), ("position", str),
                           ("dataset_hash", str), ("normalisation", str), ("library_version", str),
                           ("description", str), ("d_model", int), ("n_positive", int), ("n_negative", int)):
            value = values.get(name)
            if name in values and (not isinstance(value, kind) or isinstance(value, bool)):
                raise VectorFileError(f"metadata field {name!r} must be {'a string' if kind is str else 'an integer'}, "
                                      f"got {type(value).__name__}")
        if values["d_model"] < 1:
            raise VectorFileError(f"metadata field 'd_model' must be positive, got {values['d_model']}")
        norms = values.get("resid_norm", {})
        try:
            values["resid_norm"] = {int(k): float(v) for k, v in norms.items()}
            if any(isinstance(v, bool) for v in norms.values()) or not all(map(math.isfinite, values["resid_norm"].values())):
                raise ValueError("not finite")
        except (AttributeError, TypeError, ValueError) as error:
            raise VectorFileError("metadata field 'resid_norm' must map layer numbers to finite norms "
                                  f"({type(error).__name__})") from None
        return cls(**values)


@dataclass(frozen=True, eq=False)
class SteeringVector:
    """One direction per layer at one hook point, plus metadata. Immutable; algebra returns new vectors.

    ``vector[layer]`` is a float32 ``[d_model]`` tensor. ``a + b``, ``a - b``, ``c * a``, ``a / c``
    and ``-a`` work on vectors from the same model and hook point with the same layers.
    """

    directions: Mapping[int, Tensor]
    metadata: VectorMetadata

    def __post_init__(self) -> None:
        if not self.directions:
            raise ValueError("a SteeringVector needs at least one layer")
        clean: dict[int, Tensor] = {}
        for layer, vector in sorted(self.directions.items()):
            if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
                raise ValueError(f"layer keys must be non-negative integers, got {layer!r}")
            tensor = torch.as_tensor(vector).detach().to("cpu", torch.float32).clone()
            if tensor.shape != (self.metadata.d_model,):
                raise ValueError(
                    f"layer {layer}: vector has shape {tuple(tensor.shape)}, expected "
                    f"({self.metadata.d_model},) for d_model={self.metadata.d_model}"
                )
            if not torch.isfinite(tensor).all():
                raise ValueError(f"layer {layer}: vector contains NaN or inf")
            clean[layer] = tensor
        if self.metadata.hook_point not in RESID_POINTS:
            raise ValueError(f"hook_point {self.metadata.hook_point!r} is not one of {list(RESID_POINTS)}")
        object.__setattr__(self, "directions", MappingProxyType(clean))

    # ------------------------------------------------------------------ access

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(self.directions)

    @property
    def hook_point(self) -> str:
        return self.metadata.hook_point

    @property
    def d_model(self) -> int:
        return self.metadata.d_model

    def __getitem__(self, layer: int) -> Float[Tensor, " d_model"]:
        if layer not in self.directions:
            raise KeyError(f"no direction for layer {layer}; this vector has layers {list(self.layers)}")
        return self.directions[layer].clone()

    def __len__(self) -> int:
        return len(self.directions)

    def __repr__(self) -> str:
        layers = list(self.layers)
        shown = layers if len(layers) <= 6 else [*layers[:3], "...", *layers[-2:]]
        return (f"SteeringVector(model={self.metadata.model!r}, hook={self.hook_point}, "
                f"method={self.metadata.method}, layers={shown})")

    def top_tokens(self, model: Model, k: int = 20, layer: int | Sequence[int] | None = None, *,
                   through_norm: bool = True):
        """The ``k`` tokens this vector promotes and suppresses most at each layer (or the given
        ones), read through the model's final norm (``through_norm``) and unembedding: a tidy
        DataFrame with ``layer``, ``side``, ``rank``, ``token_id``, ``token``, ``value`` (see
        :mod:`interp_steer.vocab`). For a contrast, read ``(v_a - v_b).top_tokens(model)``."""
        from interp_steer.vocab import token_table

        self.check_model(model)
        layers = self.layers if layer is None else ([layer] if isinstance(layer, int) else list(layer))
        missing = [x for x in layers if x not in self.directions]
        if missing:
            raise KeyError(f"this vector has no layer {missing}; its layers are {list(self.layers)}")
        return token_table(model, {x: self.directions[x] for x in layers}, k=k, through_norm=through_norm)

    def _repr_html_(self) -> str:
        from interp_steer.display import vector_html

        return vector_html(self)

    def hook_name(self, layer: int) -> str:
        return f"blocks.{layer}.hook_{self.hook_point}"

    def norms(self) -> dict[int, float]:
        return {layer: float(v.norm()) for layer, v in self.directions.items()}

    def relative_norms(self) -> dict[int, float]:
        """Norm per layer divided by the mean residual norm there (needs ``metadata.resid_norm``)."""
        missing = [layer for layer in self.layers if layer not in self.metadata.resid_norm]
        if missing:
            raise ValueError(f"metadata has no residual norm for layers {missing}; build the vector "
                             "with build_vector/from_activations, or pass resid_norm")
        return {layer: float(v.norm()) / self.metadata.resid_norm[layer] for layer, v in self.directions.items()}

    def select(self, layers: int | Iterable[int]) -> SteeringVector:
        """A vector restricted to some of the layers."""
        wanted = [layers] if isinstance(layers, int) else list(layers)
        missing = [layer for layer in wanted if layer not in self.directions]
        if missing:
            raise KeyError(f"layers {missing} are not in this vector (it has {list(self.layers)})")
        return replace(self, directions={layer: self.directions[layer] for layer in wanted})

    def cosine(self, other: SteeringVector) -> dict[int, float]:
        """Cosine similarity per shared layer."""
        self._check_compatible(other, "compare")
        shared = [layer for layer in self.layers if layer in other.directions]
        if not shared:
            raise ValueError(f"no shared layers: {list(self.layers)} vs {list(other.layers)}")
        return {
            layer: float(torch.nn.functional.cosine_similarity(self.directions[layer], other.directions[layer], dim=0))
            for layer in shared
        }

    def cosine_across_layers(self) -> np.ndarray:
        """Cosine between this vector's directions at every pair of its layers, ``[L, L]``."""
        stacked = torch.stack([v / v.norm().clamp_min(1e-12) for v in self.directions.values()])
        return (stacked @ stacked.T).numpy()

    # ------------------------------------------------------------------ algebra

    def _check_compatible(self, other: SteeringVector, verb: str) -> None:
        if not isinstance(other, SteeringVector):
            raise TypeError(f"cannot {verb} a SteeringVector with {type(other).__name__}")
        mine, theirs = self.metadata, other.metadata
        if mine.model != theirs.model or mine.d_model != theirs.d_model:
            raise ValueError(f"cannot {verb} vectors from different models: {mine.model!r} "
                             f"(d_model {mine.d_model}) vs {theirs.model!r} (d_model {theirs.d_model})")
        if mine.hook_point != theirs.hook_point:
            raise ValueError(f"cannot {verb} vectors at different hook points: {mine.hook_point} vs "
                             f"{theirs.hook_point}")

    def _combine(self, other: SteeringVector, op, symbol: str) -> SteeringVector:
        self._check_compatible(other, "combine")
        if set(self.layers) != set(other.layers):
            raise ValueError(f"cannot combine vectors with different layers {list(self.layers)} and "
                             f"{list(other.layers)}; use .select(...) on both first")
        return self._derived(
            {layer: op(self.directions[layer], other.directions[layer]) for layer in self.layers},
            f"({self.metadata.method} {symbol} {other.metadata.method})",
        )

    def _scaled(self, factor: object, method: str) -> SteeringVector:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor):
            raise TypeError(f"a SteeringVector can only be scaled by a finite number, got {factor!r}")
        return self._derived({layer: v * float(factor) for layer, v in self.directions.items()}, method,
                             keeps_norm=abs(float(factor)) == 1.0)

    def _derived(self, directions: Mapping[int, Tensor], method: str, *, keeps_norm: bool = False) -> SteeringVector:
        # A scaled or combined vector no longer has the norm its normalisation promised, so its
        # coefficients are no longer in that unit: it is raw ("none") unless the norms are unchanged.
        normalisation = self.metadata.normalisation if keeps_norm else "none"
        return SteeringVector(directions, replace(self.metadata, method=method, normalisation=normalisation))

    def __add__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, torch.add, "+")

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, torch.sub, "-")

    def __mul__(self, factor: float | int) -> SteeringVector:
        return self._scaled(factor, self.metadata.method)

    __rmul__ = __mul__

    def __truediv__(self, factor: float | int) -> SteeringVector:
        if factor == 0:
            raise ZeroDivisionError("cannot divide a SteeringVector by zero")
        return self._scaled(1.0 / factor, self.metadata.method)

    def __neg__(self) -> SteeringVector:
        return self._scaled(-1.0, self.metadata.method)

    def normalised(self, how: Normalisation = "unit") -> SteeringVector:
        """``"unit"``: unit norm per layer. ``"resid"``: norm equal to the mean residual norm at that
        layer, so a coefficient of 0.1 means 10 % of a typical residual there.

        The result records ``how`` in ``metadata.normalisation`` (a vector as built records
        ``"none"``): the unit its coefficients are in, which the command line prints and writes.
        Scaling or combining the result (``2 * v``, ``a + b``, :func:`mix`) gives a raw vector again
        (``"none"``), since its norms are no longer the promised ones; ``-v`` keeps the unit.

        ``"resid"`` is this package's convention, not CAA's: CAA rescaled each behaviour's vector at a
        layer to the mean norm of all its behaviours' vectors at that layer (so behaviours compare with
        each other, in units of a typical steering vector rather than of the residual stream).
        """
        if how not in ("unit", "resid"):
            raise ValueError(f"normalisation {how!r}: expected 'unit' or 'resid'")
        target = {layer: 1.0 for layer in self.layers}
        if how == "resid":
            missing = [layer for layer in self.layers if layer not in self.metadata.resid_norm]
            if missing:
                raise ValueError(f"cannot scale to the residual norm: no residual norm for layers {missing}")
            target = {layer: self.metadata.resid_norm[layer] for layer in self.layers}
        out = {}
        for layer, v in self.directions.items():
            norm = float(v.norm())
            if norm == 0.0:
                raise ValueError(f"layer {layer}: cannot normalise a zero vector")
            out[layer] = v * (target[layer] / norm)
        return SteeringVector(out, replace(self.metadata, normalisation=how))

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path) -> Path:
        """Write safetensors: ``blocks.{L}.hook_{point}`` -> ``[d_model]``; metadata in the header."""
        tensors = {self.hook_name(layer): v.contiguous() for layer, v in self.directions.items()}
        return write_safetensors(path, tensors, FORMAT, FORMAT_VERSION, self.metadata.to_dict(), "steering vectors")

    @classmethod
    def load(cls, path: str | Path, model: Model | None = None) -> SteeringVector:
        """Read and validate a file written by :meth:`save`; given a model, refuse a mismatch."""
        path = Path(path)
        header, tensors = read_safetensors(path, VectorFileError)
        if header.get("format") != FORMAT:
            raise VectorFileError(f"{path}: not an interp_steer steering vector (header format "
                                  f"{header.get('format')!r}); was it written by SteeringVector.save?")
        if header.get("format_version") != str(FORMAT_VERSION):
            raise VectorFileError(f"{path}: format version {header.get('format_version')!r}, this "
                                  f"library reads version {FORMAT_VERSION}; upgrade interp_steer")
        try:
            metadata = VectorMetadata.from_dict(json.loads(header["metadata"]))
        except (KeyError, json.JSONDecodeError, TypeError, RecursionError) as error:
            raise VectorFileError(f"{path}: metadata is missing or not valid JSON ({error})") from error
        except VectorFileError as error:
            raise VectorFileError(f"{path}: {error}") from None
        directions = {}
        for key, tensor in tensors.items():
            match = _HOOK_KEY.match(key)
            if not match:
                raise VectorFileError(f"{path}: unexpected tensor {key!r}; keys must look like "
                                      "'blocks.15.hook_resid_post'")
            if match.group(2) != metadata.hook_point:
                raise VectorFileError(f"{path}: tensor {key!r} is at {match.group(2)} but the metadata "
                                      f"says {metadata.hook_point}")
            if tuple(tensor.shape) != (metadata.d_model,):
                raise VectorFileError(f"{path}: tensor {key!r} has shape {tuple(tensor.shape)}, "
                                      f"expected ({metadata.d_model},)")
            directions[int(match.group(1))] = tensor
        if not directions:
            raise VectorFileError(f"{path}: the file holds no vectors")
        try:
            vector = cls(directions, metadata)
        except ValueError as error:
            raise VectorFileError(f"{path}: {error}") from error
        if model is not None:
            vector.check_model(model, source=str(path))
        return vector

    def check_model(self, model: Model, *, source: str = "vector") -> None:
        """Raise if this vector cannot be applied to ``model``."""
        check_fits_model(model, built_on=self.metadata.model, d_model=self.d_model, layers=list(self.layers),
                         source=source, error=VectorFileError, redo="rebuild it on this model")

    def to_gguf(self, path: str | Path, *, model_hint: str | None = None) -> Path:
        """Write llama.cpp's control-vector GGUF (architecture ``controlvector``).

        llama.cpp adds ``direction.{L}`` to the output of layer ``L`` (counting from 0), which is this
        package's ``resid_post`` at layer ``L``; it never steers layer 0. Load it there with
        ``--control-vector FILE`` or ``--control-vector-scaled FILE SCALE``.
        """
        import gguf

        if self.hook_point != "resid_post":
            raise ValueError(f"llama.cpp control vectors act on layer outputs (resid_post); this "
                             f"vector is at {self.hook_point}")
        if 0 in self.directions:
            raise ValueError("llama.cpp control vectors cannot steer layer 0; export "
                             "vector.select([layers without 0]) instead")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = gguf.GGUFWriter(str(path), "controlvector")
        try:
            writer.add_string("controlvector.model_hint", model_hint or self.metadata.model)
            writer.add_uint32("controlvector.layer_count", len(self.directions))
            for layer, vector in self.directions.items():
                writer.add_tensor(f"direction.{layer}", vector.numpy().astype(np.float32))
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
        return path

    @staticmethod
    def read_gguf(path: str | Path) -> dict[int, np.ndarray]:
        """Directions in a llama.cpp control-vector GGUF, by layer (for checking an export)."""
        import gguf

        reader = gguf.GGUFReader(str(path))
        arch = reader.fields.get("general.architecture")
        if arch is None or bytes(arch.parts[arch.data[0]]).decode() != "controlvector":
            raise VectorFileError(f"{path}: not a control-vector GGUF (general.architecture)")
        out = {}
        for tensor in reader.tensors:
            match = re.fullmatch(r"direction\.(\d+)", tensor.name)
            if not match:
                raise VectorFileError(f"{path}: unexpected tensor {tensor.name!r}")
            out[int(match.group(1))] = np.array(tensor.data, dtype=np.float32).reshape(-1)
        return out


# ----------------------------------------------------------------------------- aggregators


def mean_diff(positive: Float[Tensor, "n_positive layers d_model"],
              negative: Float[Tensor, "n_negative layers d_model"]) -> LayerDirections:
    """``[n_pos, L, d]``, ``[n_neg, L, d]`` -> ``[L, d]``: mean(positive) − mean(negative)."""
    return positive.double().mean(0) - negative.double().mean(0)


def pca_diff(positive: Float[Tensor, "n_positive layers d_model"],
             negative: Float[Tensor, "n_negative layers d_model"]) -> LayerDirections:
    """First principal component of the paired differences (uncentred), per layer -> ``[L, d]``."""
    if positive.shape != negative.shape:
        raise ValueError(f"pca needs paired data: positive {tuple(positive.shape)} vs negative "
                         f"{tuple(negative.shape)}; use method='mean_diff' or 'probe' for unpaired sets")
    diffs = (positive.double() - negative.double()).transpose(0, 1)  # [L, n, d]
    _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
    return _orient_and_scale(vh[:, 0, :], positive, negative)


def probe_direction(positive: Float[Tensor, "n_positive layers d_model"],
                    negative: Float[Tensor, "n_negative layers d_model"], *, C: float = 1.0,
                    seed: int = 0) -> LayerDirections:
    """Logistic-regression weight vector per layer (positive scores higher) -> ``[L, d]``."""
    from sklearn.linear_model import LogisticRegression

    x = torch.cat([positive, negative]).double().numpy()
    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    weights = []
    for layer in range(x.shape[1]):
        clf = LogisticRegression(C=C, max_iter=2000, random_state=seed)
        clf.fit(x[:, layer], y)
        weights.append(clf.coef_[0])
    return _orient_and_scale(torch.tensor(np.stack(weights)), positive, negative)


def _orient_and_scale(directions: LayerDirections, positive: Float[Tensor, "n_positive layers d_model"],
                      negative: Float[Tensor, "n_negative layers d_model"]) -> LayerDirections:
    """Unit directions, flipped so the positive mean projects higher, scaled by the projected mean gap."""
    unit = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    gap = (mean_diff(positive, negative) * unit).sum(-1, keepdim=True)  # signed projected gap
    return unit * gap  # a negative gap flips the direction, and the length is |gap|


_AGGREGATORS = {"mean_diff": mean_diff, "pca": pca_diff, "probe": probe_direction}


def from_activations(
    positive: Activations,
    negative: Activations,
    *,
    method: Method = "mean_diff",
    metadata: Mapping[str, Any] | None = None,
) -> SteeringVector:
    """Aggregate collected activations (same layers, hook point and position) into a vector."""
    if method not in _AGGREGATORS:
        raise ValueError(f"method {method!r}: expected one of {list(METHODS)}")
    if positive.layers != negative.layers or positive.hook_point != negative.hook_point:
        raise ValueError("positive and negative activations must be read at the same layers and hook point")
    if positive.position == "all" or negative.position == "all":
        raise ValueError("position='all' gives one row per token; aggregate with 'last', 'mean' or an index")
    pos, neg = positive.values, negative.values
    stacked = _AGGREGATORS[method](pos, neg).float()
    norms = torch.cat([pos, neg]).norm(dim=-1).mean(0)
    from interp_steer import __version__

    info = {
        "model": positive.model_name,
        "d_model": int(pos.shape[-1]),
        "hook_point": positive.hook_point,
        "method": method,
        "position": str(positive.position),
        "n_positive": int(pos.shape[0]),
        "n_negative": int(neg.shape[0]),
        "library_version": __version__,
        "resid_norm": {layer: float(norms[i]) for i, layer in enumerate(positive.layers)},
        **(metadata or {}),
    }
    directions = {layer: stacked[i] for i, layer in enumerate(positive.layers)}
    return SteeringVector(directions, VectorMetadata(**info))


def build_vector(
    model: Model,
    positive: Sequence[str] | Sequence[ContrastPair],
    negative: Sequence[str] | None = None,
    *,
    layers: int | Sequence[int] | str | None = None,
    method: Method = "mean_diff",
    position: ReadPosition = "last",
    hook_point: HookPoint = "resid_post",
    chat: bool = False,
    batch_size: int = 16,
    progress: bool | None = None,
) -> SteeringVector:
    """Collect activations and aggregate them into a :class:`SteeringVector` in one call.

    Pass contrast pairs as ``positive`` (and no ``negative``), or two lists of texts. ``chat=True``
    wraps every text in the model's chat template as a user turn.
    """
    reject_bare_string(positive, "positive")
    reject_bare_string(negative, "negative")
    pos_texts, neg_texts, digest, _ = contrast_texts(model, positive, negative, chat=chat)
    if method == "pca" and len(pos_texts) != len(neg_texts):
        raise ValueError(f"pca needs paired data: {len(pos_texts)} positive vs {len(neg_texts)} negative texts")
    # One collection for both sides: equal-length texts share batches across the two sets.
    both = collect_activations(model, pos_texts + neg_texts, layers=layers, position=position,
                               hook_point=hook_point, batch_size=batch_size, progress=progress)
    pos, neg = both.split(len(pos_texts), len(neg_texts))
    extra = {"dataset_hash": digest, "position": position_label(position, chat)}
    return from_activations(pos, neg, method=method, metadata=extra)


def mix(a: SteeringVector, b: SteeringVector, alpha: float) -> SteeringVector:
    """``alpha * a + (1 - alpha) * b``; ``alpha`` in [0, 1] moves from pure ``b`` to pure ``a``."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} is outside [0, 1]")
    mixed = a * alpha + b * (1.0 - alpha)
    return SteeringVector(mixed.directions, replace(mixed.metadata, method=f"mix({alpha:g})"))


__all__ = [
    "METHODS",
    "SteeringVector",
    "VectorFileError",
    "VectorMetadata",
    "ab_contrast_pairs",
    "build_vector",
    "from_activations",
    "mean_diff",
    "mix",
    "pca_diff",
    "probe_direction",
]
