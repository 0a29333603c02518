"""Every verdict every study prints is a registered rule (:data:`REGISTRY`, by id).

A rule is a pure function of documented arrays with the paper's claim in words, the one
``decide(...)`` the study calls, and ``simulate(dgp, profile, runs, seed)``: the fraction of each
verdict over simulated runs from a data-generating process with a known truth (see
:mod:`interp_steer.studies.rules.base`). ``interp-steer rules`` prints every rule's card: its claim,
its rule, its error rates under each simulated world at the shipped quick and full sizes, its power at
the paper's effect and the smallest effect a run detects.

Rules live by study: :mod:`.collision`, :mod:`.svf` and :mod:`.robustness` are packages of one module
per rule (its simulated worlds beside it, or in a ``*_worlds`` module when they are long);
:mod:`.patching` holds the patching study's one rule; :mod:`.paired` is the one-sample paired rule
several of them share.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from interp_steer.studies.rules.base import (
    CODES,
    DESIGN_RATE,
    DGP,
    VERDICTS,
    Decision,
    Rule,
    noise,
    register,
    tolerance,
    vader_compound,
)

if TYPE_CHECKING:
    from interp_steer.studies.rules.base import REGISTRY

STUDIES = ("robustness", "svf", "collision", "patching")
"""The modules that register rules. They are imported on first use of :data:`REGISTRY` or
:func:`get`, not with this package: the command line imports ``rules.cli`` to build its parser, and
the rules' modules import SciPy (half a second of ``interp-steer --help``)."""


def _registry() -> dict[str, Rule]:
    from interp_steer.studies.rules import base

    for study in STUDIES:
        importlib.import_module(f"{__name__}.{study}")
    return base.REGISTRY


def __getattr__(name: str) -> Any:
    if name == "REGISTRY":
        return _registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get(rule_id: str) -> Rule:
    """The registered rule ``rule_id``, with the known ids in the error."""
    registry = _registry()
    if rule_id not in registry:
        raise ValueError(f"no rule {rule_id!r}; the registered rules are {', '.join(sorted(registry))}")
    return registry[rule_id]


__all__ = ["CODES", "DESIGN_RATE", "DGP", "REGISTRY", "STUDIES", "VERDICTS", "Decision", "Rule", "get", "noise",
           "register", "tolerance", "vader_compound"]
