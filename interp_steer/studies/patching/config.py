"""The settings of a dominance-patching run: :class:`PatchingConfig`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from interp_steer._constants import PATCH_COMPONENTS as COMPONENTS
from interp_steer.studies._common import ConfigIO


@dataclass(frozen=True)
class PatchingConfig(ConfigIO):
    """Settings of a dominance-patching run; validated on construction, round-trips through JSON
    (``to_dict``/``from_dict``).

    ``max_prompts``: the prompts are split into two halves, one choosing the headline components and
    the other reporting them (``select_top`` per half), so at least 4 (two per half, the fewest with an
    interval); the default 16 gives 8 per half. ``top_k``: heads patched exactly with
    ``method="attribution"`` (chosen on each half separately). ``folds``: cross-validation folds of
    the persona probes that choose the steering layer."""

    alpha: float | int = 0.5
    lam: float | int = 0.3
    layer: int | str = "auto"
    source: str = "A"
    components: Sequence[str] = COMPONENTS
    method: str = "exact"
    max_prompts: int = 16
    max_passages: int = 48
    positions: int = 12
    continuation: str = "The"
    top_k: int = 12
    select_top: int = 8
    folds: int = 3
    seed: int = 0
    batch_size: int = 64
    dla: bool = False
    attention_heads: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not (math.isfinite(self.lam) and self.lam > 0):
            raise ValueError(f"lambda must be positive, got {self.lam}")
        if self.source not in ("A", "B"):
            raise ValueError(f"source must be 'A' or 'B', got {self.source!r}")
        if self.method not in ("exact", "attribution"):
            raise ValueError(f"method must be 'exact' or 'attribution', got {self.method!r}")
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown or not self.components:
            raise ValueError(f"components {list(self.components)}: choose from {list(COMPONENTS)}")
        for name in ("max_passages", "positions", "top_k", "select_top", "folds", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not isinstance(self.dla, bool):
            raise ValueError(f"dla must be True or False, got {self.dla!r}")
        if isinstance(self.attention_heads, bool) or not isinstance(self.attention_heads, int) or self.attention_heads < 0:
            raise ValueError(f"attention_heads must be an integer >= 0, got {self.attention_heads!r}")
        if self.attention_heads and "heads" not in self.components:
            raise ValueError("attention_heads needs the heads patched to rank them: add 'heads' to components")
        if self.max_prompts < 4:
            raise ValueError(f"max_prompts must be >= 4 (two halves of at least 2 prompts: one chooses the headline "
                             f"components, the other reports them), got {self.max_prompts}")
        object.__setattr__(self, "components", tuple(self.components))


__all__ = ["PatchingConfig"]
