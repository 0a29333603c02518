"""The types of the public API: tensor shapes and the fixed sets of string options.

Tensor shapes are jaxtyping annotations, checked at test time (pytest runs with
``--jaxtyping-packages=interp_steer,beartype.beartype``) and free at run time. A dimension named
``_like_this`` is documentation only: it is not bound across the arguments of one call.

The string options (operators, hook points, position rules, aggregation methods) are ``Literal``
types, so that a type checker or an IDE refuses ``operator="addd"`` before anything runs. At run time
each function checks its own option and refuses a wrong one with the choices and the fix (design
principle 2); those messages are what users see, and the tests check them. So under the tests'
beartype these names stand for ``str`` (a ``Literal`` there would answer first, with beartype's
message instead of the function's): :data:`CHOICES` keeps each ``Literal``'s values, and
``tests/test_types.py`` checks them against the sets the functions enforce.

What can be steered (``Steerable``) is defined beside the classes it names, in
:mod:`interp_steer.steering`: this module imports nothing from the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

from jaxtyping import Bool, Float, Int
from torch import Tensor

Resid = Float[Tensor, "batch d_model"]
"""One residual-stream vector per row."""

LayerResid = Float[Tensor, "rows layers d_model"]
"""Residual-stream vectors read at several layers: one row per text (or per token)."""

Vector = Float[Tensor, " d_model"]
"""A single direction in the residual stream."""

LayerDirections = Float[Tensor, "layers d_model"]
"""One direction per layer, in the order of the activations' layers."""

TokenIds = Int[Tensor, "batch seq"]
AttentionMask = Int[Tensor, "batch seq"]

Operator = Literal["add", "ablate", "add_norm_preserving"]
"""How :func:`~interp_steer.steer` changes the residual stream (``steering.OPERATORS``)."""

HookPoint = Literal["resid_pre", "resid_mid", "resid_post"]
"""The residual-stream hook points of a block (``models.RESID_POINTS``)."""

PositionRule = Literal["all", "after_prompt"]
"""The named steering position rules (see :mod:`interp_steer.steering`)."""

Method = Literal["mean_diff", "pca", "probe"]
"""How contrast activations become a direction (``directions.METHODS``)."""

ReadPositionName = Literal["last", "mean", "mean_with_first", "all"]
"""The named read positions of :func:`~interp_steer.collect_activations`."""

FieldForm = Literal["per_layer", "shared", "linear"]
"""The shapes of a field's concept scorer (``_constants.FIELD_FORMS``)."""

ScorerActivation = Literal["gelu", "silu"]
"""The nonlinearity of a field's concept scorer (``fields.scorer.ACTIVATIONS``)."""

Normalisation = Literal["unit", "resid"]
"""How :meth:`~interp_steer.SteeringVector.normalised` scales each layer's direction."""

WeakLayers = Literal["warn", "drop", "keep"]
"""What :func:`~interp_steer.fit_scorer` does with layers its scorer cannot read (``fields.fit.DROP_WEAK``)."""

PaddingSide = Literal["left", "right"]
"""Which side a batch of token sequences is padded on."""

PatchMetric = Literal["logit_diff", "logprob", "probe"]
"""What an activation patch measures (``patching.METRICS``)."""

CHOICES: dict[str, tuple[str, ...]] = {
    "Operator": get_args(Operator),
    "HookPoint": get_args(HookPoint),
    "PositionRule": get_args(PositionRule),
    "Method": get_args(Method),
    "ReadPositionName": get_args(ReadPositionName),
    "FieldForm": get_args(FieldForm),
    "ScorerActivation": get_args(ScorerActivation),
    "Normalisation": get_args(Normalisation),
    "WeakLayers": get_args(WeakLayers),
    "PaddingSide": get_args(PaddingSide),
    "PatchMetric": get_args(PatchMetric),
}
"""The values of each string-option ``Literal`` (at run time the names below stand for ``str``)."""

if not TYPE_CHECKING:
    # What the tests' beartype checks: any string, which the function then checks with its own
    # message (see the module docstring).
    Operator = HookPoint = PositionRule = Method = ReadPositionName = FieldForm = ScorerActivation = str
    Normalisation = WeakLayers = PaddingSide = PatchMetric = str

ReadPosition = ReadPositionName | int
"""Where :func:`~interp_steer.collect_activations` reads each text: a named position or a token
index (negative counts from the end)."""

PositionMask = Bool[Tensor, " _length"] | Bool[Tensor, "_batch _length"]
"""A boolean steering mask over row positions: the same for every row, or one row per prompt."""

Positions = PositionRule | int | slice | PositionMask
"""Where :func:`~interp_steer.steer` acts, in each row's own token coordinates: a named rule, the
``k``-th token, a slice, or a boolean mask (see :mod:`interp_steer.steering`)."""

__all__ = [
    "CHOICES",
    "AttentionMask",
    "FieldForm",
    "HookPoint",
    "LayerDirections",
    "LayerResid",
    "Method",
    "Normalisation",
    "Operator",
    "PaddingSide",
    "PatchMetric",
    "PositionMask",
    "PositionRule",
    "Positions",
    "ReadPosition",
    "ReadPositionName",
    "Resid",
    "ScorerActivation",
    "TokenIds",
    "Vector",
    "WeakLayers",
]
