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

from interp_steer.studies.rules.base import (
    CODES,
    DESIGN_RATE,
    DGP,
    REGISTRY,
    VERDICTS,
    Decision,
    Rule,
    noise,
    register,
    tolerance,
    vader_compound,
)

STUDIES = ("robustness", "svf", "collision", "patching")
"""The modules that register rules, imported here so that :data:`REGISTRY` is complete on import."""

for _study in STUDIES:
    importlib.import_module(f"{__name__}.{_study}")


def get(rule_id: str) -> Rule:
    """The registered rule ``rule_id``, with the known ids in the error."""
    if rule_id not in REGISTRY:
        raise ValueError(f"no rule {rule_id!r}; the registered rules are {', '.join(sorted(REGISTRY))}")
    return REGISTRY[rule_id]


__all__ = ["CODES", "DESIGN_RATE", "DGP", "REGISTRY", "STUDIES", "VERDICTS", "Decision", "Rule", "get", "noise",
           "register", "tolerance", "vader_compound"]
