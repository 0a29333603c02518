"""Steering Vector Fields: a learned, context-dependent field against the static steering vector.

The shape every study follows (see :mod:`interp_steer.studies.collision`):

- :mod:`.config` — :class:`SvfConfig`, validated on construction, ``to_dict``/``from_dict``, and the
  ``quick`` profile;
- :mod:`.study` — :func:`run` (``run(model, config, *, <data>, execution=None) -> SvfResult``, one
  call per stage: the table of contents) and the keyword convenience :func:`svf`;
- :mod:`.result` — :class:`SvfResult` (``to_dict()`` is ``svf.json``, ``save(dir)``, ``to_frame(table)``)
  and :func:`schema`, the JSON Schema in ``schema.json``;
- :mod:`.report` — figures and ``report.md`` from a result (the study never imports it);
- :mod:`.cli` — the ``interp-steer svf`` subcommand.

The stages, one module each: :mod:`.inputs` (the concept and held-out inputs, read by
:mod:`interp_steer.studies.concept`, which the robustness study shares), :mod:`.fit` (vector and
field on the same rows), :mod:`.evaluation` (the grid and the backfire floor's controls),
:mod:`.context` (context dependence), :mod:`.long_form`, :mod:`.multi_attribute`.

The study's own part: :mod:`.claims` (the paper's four claims, each put to its registered rule,
:mod:`interp_steer.studies.rules.svf`: ``svf.control``, ``svf.backfire``, ``svf.long_form``,
``svf.multi_attribute``). :func:`paired_verdict` (the one-sample paired rule these claims once shared,
:mod:`interp_steer.studies.rules.paired`) is still exported here. The field itself is the core's
:mod:`interp_steer.fields`.
"""

from typing import TYPE_CHECKING

from interp_steer._lazy import export_lazily, names_from

if TYPE_CHECKING:
    # The same names, for type checkers and IDEs (tests/test_types.py keeps the two lists equal).
    from interp_steer.studies.rules.paired import RULE, PairedVerdict, paired_verdict
    from interp_steer.studies.svf.claims import CLAIMS
    from interp_steer.studies.svf.config import SvfConfig
    from interp_steer.studies.svf.result import METHODS, Claim, SvfResult, schema
    from interp_steer.studies.svf.study import run, svf


_EXPORTS = {
    **names_from("interp_steer.studies.svf.claims", "CLAIMS"),
    **names_from("interp_steer.studies.svf.config", "SvfConfig"),
    **names_from("interp_steer.studies.svf.result", "METHODS", "Claim", "SvfResult", "schema"),
    **names_from("interp_steer.studies.rules.paired", "RULE", "PairedVerdict", "paired_verdict"),
    **names_from("interp_steer.studies.svf.study", "run", "svf"),
}
export_lazily(globals(), _EXPORTS)  # imported on first use: the command line's parser needs none of it

__all__ = ["CLAIMS", "METHODS", "RULE", "Claim", "PairedVerdict", "SvfConfig", "SvfResult", "paired_verdict", "run",
           "schema", "svf"]
