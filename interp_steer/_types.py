"""Shape-annotated tensor aliases used across the public API.

Shapes are checked at test time (pytest runs with ``--jaxtyping-packages=interp_steer,...``) and cost
nothing at run time.
"""

from __future__ import annotations

from jaxtyping import Float, Int
from torch import Tensor

Resid = Float[Tensor, "batch d_model"]
"""One residual-stream vector per row."""

LayerResid = Float[Tensor, "rows layers d_model"]
"""Residual-stream vectors read at several layers: one row per text (or per token)."""

Vector = Float[Tensor, " d_model"]
"""A single direction in the residual stream."""

TokenIds = Int[Tensor, "batch seq"]
AttentionMask = Int[Tensor, "batch seq"]

__all__ = ["Resid", "LayerResid", "Vector", "TokenIds", "AttentionMask"]
