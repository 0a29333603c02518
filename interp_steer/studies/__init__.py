"""The studies: experiments that compose the core (models, directions, probes, steering, metrics,
patching) and write a result file, figures and a report.

Each study is a sub-package of the same shape (see :mod:`interp_steer.studies.collision`):

- :mod:`.collision` — Creative Collision: two persona vectors mixed over α × λ (:func:`collide`);
- :mod:`.patching` — dominance patching: which components carry a persona through a mix
  (:func:`dominance_patching`).

The core never imports this package; studies import the core and the shared study pieces here.
"""

from interp_steer.studies.collision import CollisionConfig, CollisionResult, collide
from interp_steer.studies.patching import PatchingConfig, PatchingResult, dominance_patching

__all__ = [
    "CollisionConfig",
    "CollisionResult",
    "PatchingConfig",
    "PatchingResult",
    "collide",
    "dominance_patching",
]
