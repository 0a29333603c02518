"""The Creative Collision study: two opposing persona vectors mixed over α and λ (see :mod:`.study`).

- :mod:`.analysis` — mixing, decomposition and dominance, pure functions;
- :mod:`.style` — the surface-style classifier trained on the persona corpora;
- :mod:`.study` — :func:`collide`, its configuration and result;
- :mod:`.report` — figures and ``report.md``.
"""

import json
from importlib import resources

from interp_steer.studies.collision.study import (
    AXES,
    CollisionConfig,
    CollisionResult,
    Finding,
    collide,
)
from interp_steer.studies.mixing import (
    Decomposition,
    Dominance,
    collision_vector,
    common_scale,
    decompose,
    dominance,
)


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``collision.json``."""
    return json.loads(resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8"))


__all__ = [
    "AXES",
    "CollisionConfig",
    "CollisionResult",
    "Decomposition",
    "Dominance",
    "Finding",
    "collide",
    "collision_vector",
    "common_scale",
    "decompose",
    "dominance",
    "schema",
]
