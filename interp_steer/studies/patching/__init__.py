"""Dominance patching: which components carry a persona's effect through a mix.

The same shape as every study (see :mod:`interp_steer.studies.collision`): :mod:`.config`
(:class:`PatchingConfig`), :mod:`.study` (``run(model, config) -> PatchingResult`` and the keyword
convenience :func:`dominance_patching`), :mod:`.result` (:class:`PatchingResult`, :func:`schema`),
:mod:`.report` (figures and ``report.md``) and :mod:`.cli` (``interp-steer patch``). The patching
mechanics themselves are the core's :mod:`interp_steer.patching`.
"""

from typing import TYPE_CHECKING

from interp_steer._lazy import export_lazily, names_from

if TYPE_CHECKING:
    # The same names, for type checkers and IDEs (tests/test_types.py keeps the two lists equal).
    from interp_steer.studies.patching.config import PatchingConfig
    from interp_steer.studies.patching.result import PatchingResult, schema
    from interp_steer.studies.patching.study import dominance_patching, run


_EXPORTS = {
    **names_from("interp_steer.studies.patching.config", "PatchingConfig"),
    **names_from("interp_steer.studies.patching.result", "PatchingResult", "schema"),
    **names_from("interp_steer.studies.patching.study", "dominance_patching", "run"),
}
export_lazily(globals(), _EXPORTS)  # imported on first use: the command line's parser needs none of it

__all__ = ["PatchingConfig", "PatchingResult", "dominance_patching", "run", "schema"]
