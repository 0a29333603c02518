"""What the three collision rules share: the study's shipped sizes, the batch helpers their
decisions use, and the constructor of their worlds' tables."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np

from interp_steer.studies.rules.base import (
    DGP,
)

QUICK_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
FULL_ALPHAS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
QUICK_PROMPTS, FULL_PROMPTS = 16, 30
"""The study's shipped sizes (``CollisionConfig.quick()`` and the default config on the 30 built-in
prompts; greedy decoding, one completion per cell). ``tests/test_rules_collision.py`` checks that
they match the config."""


def mixing_module():
    """:mod:`interp_steer.studies.mixing`, imported on first use: it imports torch, and the command
    line's parser imports this registry (``interp-steer --help`` stays light)."""
    from interp_steer.studies import mixing

    return mixing


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """NaN is the intended mean of an all-NaN slice (a cell whose completions are all unscored)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def same_rows(array: np.ndarray, what: str) -> np.ndarray:
    """The one row of an input that a batch of runs shares (``[runs, k]`` or ``[k]``)."""
    array = np.asarray(array)
    if array.ndim == 2:
        if not (array == array[:1]).all():
            raise ValueError(f"{what} must be the same in every run of a batch")
        return array[0]
    return array


def world(name: str, truth: str, description: str, draw, paper: bool = False) -> tuple[str, DGP]:
    """One entry ``(name, DGP)`` of a rule's table of worlds (``dict([world(...), ...])``)."""
    return name, DGP(name, truth, description, draw, paper)
