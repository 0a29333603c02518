"""Dominance patching: which components carry a persona's effect through a mix (see :mod:`.study`)."""

from interp_steer.studies.patching.study import (
    PatchingConfig,
    PatchingResult,
    dominance_patching,
    schema,
)

__all__ = ["PatchingConfig", "PatchingResult", "dominance_patching", "schema"]
