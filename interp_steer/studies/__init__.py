"""The studies: experiments that compose the core (models, directions, probes, steering, metrics,
patching) into a result file, figures and a report.

- :mod:`.collision` — Creative Collision: two persona vectors mixed over α × λ (:func:`collide`);
- :mod:`.patching` — dominance patching: which components carry a persona through a mix
  (:func:`dominance_patching`);
- :mod:`.svf` — Steering Vector Fields: a learned field against the static vector on the same data
  (:func:`svf`);
- :mod:`.robustness` — how far a steering vector can be trusted: the five findings of arXiv
  2505.03189 (:func:`robustness`).

Every study is a sub-package of the same shape:

- ``config.py`` — a frozen config dataclass, validated in ``__post_init__``, with ``to_dict`` and
  ``from_dict`` (a JSON round trip; :class:`~interp_steer.studies._common.ConfigIO`);
- ``study.py`` — ``run(model, config, ...) -> Result``, one call per stage, and a keyword
  convenience that builds the config and calls ``run``;
- ``result.py`` — the result dataclass (``to_dict()`` is the result file, ``save(dir)`` writes it
  with figures and ``report.md``) and ``schema()``, which reads ``schema.json`` beside it;
- ``report.py`` — figures and ``report.md`` from a result; only ``Result.save`` imports it, lazily,
  so a study runs without it;
- ``cli.py`` — ``add_parser(subparsers)``: the study's ``interp-steer`` subcommand and its handler.

Pieces shared by studies live here: :mod:`.personas` (corpora, persona vectors, steering layer),
:mod:`.mixing` (mixing, decomposition, dominance), :mod:`.localisation` (where concepts live, as
resumable work units: :func:`localise`) and :mod:`._common` (data loading, JSON, schema, timings,
report formatting).
The core never imports this package.
"""

from typing import TYPE_CHECKING

from interp_steer._lazy import export_lazily, names_from

if TYPE_CHECKING:
    # The same names, for type checkers and IDEs (tests/test_types.py keeps the two lists equal).
    from interp_steer.studies.collision import CollisionConfig, CollisionResult, collide
    from interp_steer.studies.collision.result import schema as collision_schema
    from interp_steer.studies.localisation import localise
    from interp_steer.studies.patching import PatchingConfig, PatchingResult, dominance_patching
    from interp_steer.studies.patching.result import schema as patching_schema
    from interp_steer.studies.robustness import RobustnessConfig, RobustnessResult, robustness
    from interp_steer.studies.robustness.result import schema as robustness_schema
    from interp_steer.studies.svf import SvfConfig, SvfResult, svf
    from interp_steer.studies.svf.result import schema as svf_schema


_EXPORTS = {
    **{f"{study}_schema": f"interp_steer.studies.{study}.result:schema"
       for study in ("collision", "patching", "robustness", "svf")},
    **names_from("interp_steer.studies.collision", "CollisionConfig", "CollisionResult", "collide"),
    **names_from("interp_steer.studies.patching", "PatchingConfig", "PatchingResult", "dominance_patching"),
    **names_from("interp_steer.studies.robustness", "RobustnessConfig", "RobustnessResult", "robustness"),
    **names_from("interp_steer.studies.svf", "SvfConfig", "SvfResult", "svf"),
    **names_from("interp_steer.studies.localisation", "localise"),
}
export_lazily(globals(), _EXPORTS)  # imported on first use: the command line's parser needs none of it

__all__ = [
    "CollisionConfig",
    "CollisionResult",
    "PatchingConfig",
    "PatchingResult",
    "RobustnessConfig",
    "RobustnessResult",
    "SvfConfig",
    "SvfResult",
    "collide",
    "collision_schema",
    "dominance_patching",
    "localise",
    "patching_schema",
    "robustness",
    "robustness_schema",
    "svf",
    "svf_schema",
]
