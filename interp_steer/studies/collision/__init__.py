"""The Creative Collision study: two opposing persona vectors mixed over α and λ.

The shape every study follows:

- :mod:`.config` — :class:`CollisionConfig`, validated on construction, ``to_dict``/``from_dict``;
- :mod:`.study` — :func:`run` (``run(model, config) -> CollisionResult``, one call per stage) and the
  keyword convenience :func:`collide`;
- :mod:`.result` — :class:`CollisionResult` (``to_dict()`` is ``collision.json``, ``save(dir)``) and
  :func:`schema`, the JSON Schema in ``schema.json``;
- :mod:`.report` — figures and ``report.md`` from a result (the study never imports it);
- :mod:`.cli` — the ``interp-steer collide`` subcommand.

Completions made elsewhere: :mod:`.imported` (:func:`score`: an ``(α, λ)``-labelled JSONL file scored on
the same axes, with the study's own functions, into an :class:`ImportedResult`) and :mod:`.score_cli`
(``interp-steer score``).

Collision's own parts: :mod:`.findings` (the paper's three findings, judged by the registered rules
``collision.dominance``, ``collision.coherence`` and ``collision.shared_layer`` of
:mod:`interp_steer.studies.rules.collision`, exported here as :data:`dominance_rule`,
:data:`coherence_rule` and :data:`shared_layer_rule`) and :mod:`.style` (the surface-style
classifier). The mixing arithmetic (:func:`collision_vector`, :func:`decompose`, :func:`dominance`)
lives in :mod:`interp_steer.studies.mixing`, shared with dominance patching.
"""

from typing import TYPE_CHECKING

from interp_steer._lazy import export_lazily, names_from

if TYPE_CHECKING:
    # The same names, for type checkers and IDEs (tests/test_types.py keeps the two lists equal).
    from interp_steer.studies.collision.config import CollisionConfig, ScoreConfig
    from interp_steer.studies.collision.imported import score
    from interp_steer.studies.collision.result import (
        AXES,
        CollisionResult,
        Finding,
        ImportedResult,
        schema,
    )
    from interp_steer.studies.collision.study import collide, run
    from interp_steer.studies.mixing import (
        Decomposition,
        Dominance,
        collision_vector,
        common_scale,
        decompose,
        dominance,
        to_dominance_scale,
    )
    from interp_steer.studies.rules.collision import COHERENCE as coherence_rule
    from interp_steer.studies.rules.collision import DOMINANCE as dominance_rule
    from interp_steer.studies.rules.collision import SHARED_LAYER as shared_layer_rule


_EXPORTS = {
    **names_from("interp_steer.studies.collision.config", "CollisionConfig", "ScoreConfig"),
    **names_from("interp_steer.studies.collision.imported", "score"),
    **names_from("interp_steer.studies.collision.result", "AXES", "CollisionResult", "Finding", "ImportedResult",
                 "schema"),
    **names_from("interp_steer.studies.collision.study", "collide", "run"),
    **names_from("interp_steer.studies.mixing", "Decomposition", "Dominance", "collision_vector", "common_scale", "decompose", "dominance", "to_dominance_scale"),
    "dominance_rule": "interp_steer.studies.rules.collision:DOMINANCE",
    "coherence_rule": "interp_steer.studies.rules.collision:COHERENCE",
    "shared_layer_rule": "interp_steer.studies.rules.collision:SHARED_LAYER",
}
export_lazily(globals(), _EXPORTS)  # imported on first use: the command line's parser needs none of it

__all__ = [
    "AXES",
    "CollisionConfig",
    "CollisionResult",
    "Decomposition",
    "Dominance",
    "Finding",
    "ImportedResult",
    "ScoreConfig",
    "coherence_rule",
    "collide",
    "collision_vector",
    "common_scale",
    "decompose",
    "dominance",
    "dominance_rule",
    "run",
    "schema",
    "score",
    "shared_layer_rule",
    "to_dominance_scale",
]
