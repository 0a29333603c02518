"""The settings of a dominance-patching run: :class:`PatchingConfig`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from interp_steer.patching import COMPONENTS
from interp_steer.studies._common import ConfigIO


@dataclass(frozen=True)
class PatchingConfig(ConfigIO):
    """Settings of a dominance-patching run; validated on construction, round-trips through JSON
    (``to_dict``/``from_dict``)."""

    alpha: float | int = 0.5
    lam: float | int = 0.3
    layer: int | str = "auto"
    source: str = "A"
    components: Sequence[str] = COMPONENTS
    method: str = "exact"
    max_prompts: int = 6
    max_passages: int = 48
    positions: int = 12
    continuation: str = "The"
    top_k: int = 12
    folds: int = 3
    seed: int = 0
    batch_size: int = 64

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
        for name in ("max_prompts", "max_passages", "positions", "top_k", "folds", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        object.__setattr__(self, "components", tuple(self.components))


__all__ = ["PatchingConfig"]
