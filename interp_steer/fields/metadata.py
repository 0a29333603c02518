"""What a steering-field file records beside its tensors: where the field came from, how its scorer
is shaped, and how well each layer fitted (:class:`FieldMetadata`, :class:`LayerFit`); the file's
format name and version, and :class:`FieldFileError` for a file that does not hold up."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from interp_steer.fields.scorer import ACTIVATIONS, FORMS
from interp_steer.models import RESID_POINTS

FORMAT = "interp_steer.steering_field"
FORMAT_VERSION = 1


class FieldFileError(ValueError):
    """A steering-field file is corrupted, incomplete or does not fit the model."""


@dataclass(frozen=True)
class LayerFit:
    """How one layer's scorer did. ``heldout_*`` are measured on the held-out rows (which took no
    part in the weights, though they chose the stopping epoch); ``best_epoch`` is the kept epoch
    (1-based), ``epochs_run`` how many ran before early stopping."""

    heldout_accuracy: float
    heldout_auroc: float
    heldout_loss: float
    train_accuracy: float
    best_epoch: int
    epochs_run: int
    n_train: int
    n_val: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerFit:
        if not isinstance(data, Mapping):
            raise TypeError(f"a layer's training report must be an object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        unknown, missing = sorted(set(data) - set(names)), sorted(set(names) - set(data))
        if unknown or missing:
            raise ValueError(f"training report fields: unknown {unknown}, missing {missing}")
        ints = {"best_epoch", "epochs_run", "n_train", "n_val"}
        return cls(**{n: int(data[n]) if n in ints else float(data[n]) for n in names})


_SETTING_TYPES = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class FieldMetadata:
    """Where a field came from, how its scorer is shaped, and how well it fitted.

    ``resid_norm[layer]`` is the mean residual norm over the rows the field was fitted on (both
    classes; the step unit of :meth:`SteeringField.update`); ``training[layer]`` the held-out report;
    ``settings`` the fitting hyperparameters (seed, split, epochs, ...), enough to refit it;
    ``dropped_layers`` the held-out accuracy of layers removed as weak.
    """

    model: str
    d_model: int
    layers: tuple[int, ...]
    form: str = "per_layer"
    hidden: tuple[int, ...] = (256, 64)
    rank: int = 0
    activation: str = "gelu"
    hook_point: str = "resid_post"
    position: str = "last"
    n_positive: int = 0
    n_negative: int = 0
    dataset_hash: str = ""
    library_version: str = ""
    resid_norm: Mapping[int, float] = field(default_factory=dict)
    training: Mapping[int, LayerFit] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    dropped_layers: Mapping[int, float] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"form {self.form!r}: expected one of {list(FORMS)}")
        if self.hook_point not in RESID_POINTS:
            raise ValueError(f"hook_point {self.hook_point!r} is not one of {list(RESID_POINTS)}")
        if self.d_model < 1:
            raise ValueError(f"d_model must be positive, got {self.d_model}")
        if not self.layers or list(self.layers) != sorted(set(self.layers)) or min(self.layers) < 0:
            raise ValueError(f"layers must be distinct, ascending and non-negative, got {list(self.layers)}")
        if set(self.resid_norm) != set(self.layers):
            raise ValueError(f"resid_norm has layers {sorted(self.resid_norm)}, the field has "
                             f"{list(self.layers)}; every layer needs its residual norm (the step unit)")
        bad = {k: v for k, v in self.resid_norm.items() if not (math.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"resid_norm must be positive and finite, got {bad}")
        if self.training and set(self.training) != set(self.layers):
            raise ValueError(f"training report has layers {sorted(self.training)}, the field has "
                             f"{list(self.layers)}")
        if any(h < 1 for h in self.hidden) or (self.form == "linear" and self.hidden):
            raise ValueError(f"hidden sizes {list(self.hidden)} must be positive (and empty for the "
                             "linear form)")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r}: expected one of {list(ACTIVATIONS)}")
        if self.form == "shared" and self.rank < 1:
            raise ValueError(f"the shared form needs rank >= 1, got {self.rank}")
        if self.form != "shared" and self.rank != 0:
            raise ValueError(f"rank is only meaningful for the shared form (0 otherwise), got {self.rank}")
        for key, value in self.settings.items():
            if not isinstance(value, _SETTING_TYPES):
                raise ValueError(f"setting {key!r} must be a JSON scalar, got {type(value).__name__}")
        object.__setattr__(self, "resid_norm", dict(sorted(self.resid_norm.items())))
        object.__setattr__(self, "training", dict(sorted(self.training.items())))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layers"] = list(self.layers)
        out["hidden"] = list(self.hidden)
        out["resid_norm"] = {str(k): float(v) for k, v in self.resid_norm.items()}
        out["training"] = {str(k): v.to_dict() for k, v in self.training.items()}
        out["settings"] = dict(self.settings)
        out["dropped_layers"] = {str(k): float(v) for k, v in self.dropped_layers.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldMetadata:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FieldFileError(f"unknown metadata fields {unknown}; expected a subset of {sorted(known)}")
        values = dict(data)
        for name in ("d_model", "rank", "n_positive", "n_negative"):
            if name in values:
                values[name] = int(values[name])
        for name in ("layers", "hidden"):
            if name in values:
                values[name] = tuple(int(x) for x in values[name])
        values["resid_norm"] = {int(k): float(v) for k, v in values.get("resid_norm", {}).items()}
        values["training"] = {int(k): LayerFit.from_dict(v) for k, v in values.get("training", {}).items()}
        values["dropped_layers"] = {int(k): float(v) for k, v in values.get("dropped_layers", {}).items()}
        values["settings"] = dict(values.get("settings", {}))
        return cls(**values)
