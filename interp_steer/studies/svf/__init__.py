"""Steering Vector Fields: a learned, context-dependent field against the static steering vector.

The shape every study follows (see :mod:`interp_steer.studies.collision`):

- :mod:`.config` — :class:`SvfConfig`, validated on construction, ``to_dict``/``from_dict``, and the
  ``quick`` profile;
- :mod:`.study` — :func:`run` (``run(model, config) -> SvfResult``, one call per stage) and the
  keyword convenience :func:`svf`;
- :mod:`.result` — :class:`SvfResult` (``to_dict()`` is ``svf.json``, ``save(dir)``, ``to_frame()``)
  and :func:`schema`, the JSON Schema in ``schema.json``;
- :mod:`.report` — figures and ``report.md`` from a result (the study never imports it);
- :mod:`.cli` — the ``interp-steer svf`` subcommand.

The study's own parts: :mod:`.rule` (the one tested verdict rule, :func:`paired_verdict`) and
:mod:`.claims` (the paper's four claims, each put to that rule). The field itself is the core's
:mod:`interp_steer.fields`.
"""

from interp_steer.studies.svf.claims import CLAIMS
from interp_steer.studies.svf.config import SvfConfig
from interp_steer.studies.svf.result import METHODS, Claim, SvfResult, schema
from interp_steer.studies.svf.rule import RULE, PairedVerdict, paired_verdict
from interp_steer.studies.svf.study import run, svf

__all__ = ["CLAIMS", "METHODS", "RULE", "Claim", "PairedVerdict", "SvfConfig", "SvfResult", "paired_verdict", "run",
           "schema", "svf"]
