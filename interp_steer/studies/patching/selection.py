"""Components chosen on one half of the prompts, reported on the other.

Picking the components with the largest effect and then reporting those same effects on the same
prompts overstates them: among many components with no effect at all, the largest measured ones are
large by chance (the winner's curse). Here the prompts are split once, with a seed, into two halves;
in each *fold* the components are ranked on one half (the choosing half) and their effects, with
Fieller intervals, are measured on the other (the reporting half), whose prompts took no part in the
choice. Both folds are run (each half chooses once), so every prompt contributes to a reported
effect and a component that is chosen by both halves has replicated.

A chosen component *holds up* when its interval on the reporting half, at the family-wise level
``1 − (1 − level) / k`` (Bonferroni over the ``k`` components a fold reports), excludes 0 with the
sign it had on the choosing half: under no effect at all, a fold calls anything "holds up" at most
``1 − level`` of the time. That decision is the registered rule ``patching.holds_up``
(:mod:`interp_steer.studies.rules.patching`; ``interp-steer rules patching.holds_up`` prints its card).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interp_steer.patching import normalised_effect
from interp_steer.stats import mean_and_se
from interp_steer.studies.rules.patching import HOLDS_UP


def split_halves(n_prompts: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded random split of ``range(n_prompts)`` into two disjoint halves, each sorted (the second
    gets the odd prompt out). Each half needs two prompts for an interval, so at least four."""
    if n_prompts < 4:
        raise ValueError(f"choosing on one half of the prompts and reporting on the other needs at least 4 prompts "
                         f"(2 per half, the fewest with an interval), got {n_prompts}")
    order = np.random.default_rng(seed).permutation(n_prompts)
    half = n_prompts // 2
    return sorted(order[:half].tolist()), sorted(order[half:].tolist())


def select_and_report(
    patched: Mapping[str, np.ndarray],
    target: np.ndarray,
    source: np.ndarray,
    choose: Sequence[int],
    report: Sequence[int],
    *,
    k: int,
    candidates: Mapping[str, np.ndarray] | None = None,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """The ``k`` components with the largest effect on the ``choose`` prompts, measured on the
    ``report`` prompts.

    ``patched[name]`` is ``[prompts, *cells]``: the metric with one cell patched (NaN where a cell was
    not patched); ``target``/``source`` are ``[prompts]``. Components are ranked by the size of the mean
    change of the metric they cause on the choosing half (the normalised effect's numerator: its
    denominator is the same for every component of a half), among the cells that are finite and move
    there (a cell identical in both runs changes nothing and cannot be chosen); ``candidates[name]``
    (a boolean mask over the cells) restricts the choice further. Each row gives the effect on the
    reporting half with its Fieller interval at ``level`` and, for comparison only, the effect on the
    choosing half (biased away from 0 by the choice)."""
    choose, report = list(choose), list(report)
    if set(choose) & set(report):
        raise ValueError(f"the choosing and reporting prompts overlap at {sorted(set(choose) & set(report))}: "
                         "effects measured on prompts that chose them are biased")
    if not choose or not report:
        raise ValueError("both the choosing and the reporting half need prompts")
    target, source = np.asarray(target, dtype=float), np.asarray(source, dtype=float)
    family = 1 - (1 - level) / k
    pool = []
    for name, values in patched.items():
        values = np.asarray(values, dtype=float)
        change, _, _ = mean_and_se(values[choose] - target[choose].reshape((-1,) + (1,) * (values.ndim - 1)))
        allowed = np.isfinite(change) & (change != 0)
        if candidates is not None and name in candidates:
            allowed &= np.asarray(candidates[name], dtype=bool)
        pool += [(abs(float(change[cell])), name, cell) for cell in zip(*np.nonzero(allowed), strict=True)]
    pool.sort(key=lambda item: -item[0])
    rows = []
    for rank, (_, name, cell) in enumerate(pool[:k], start=1):
        values = np.asarray(patched[name], dtype=float)[(slice(None), *cell)]
        chosen, _, _ = normalised_effect(values[choose], target[choose], source[choose])
        effect, low, high = normalised_effect(values[report], target[report], source[report], level=level)
        _, fw_low, fw_high = normalised_effect(values[report], target[report], source[report], level=family)
        sign = np.sign(chosen)
        # the registered rule decides whether it holds up (no sign on the choosing half: it cannot)
        verdict = (HOLDS_UP.decide(patched=values[report], target=target[report], source=source[report],
                                   sign=float(sign), k=k, level=level).verdict if sign in (-1.0, 1.0) else "inconclusive")
        rows.append({"component": name.removesuffix("_layer"), "index": [int(i) for i in cell], "rank": rank,
                     "selection_effect": float(chosen), "effect": float(effect), "low": float(low), "high": float(high),
                     "family_low": float(fw_low), "family_high": float(fw_high),
                     "holds_up": verdict == "reproduced", "verdict": verdict, "rule": HOLDS_UP.id})
    return rows


__all__ = ["select_and_report", "split_halves"]
