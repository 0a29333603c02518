"""The held-out separation used by the demo, on synthetic data with a known answer."""

from __future__ import annotations

import numpy as np

from interp_steer.demo import _heldout_separation


def planted(shift: float, n: int = 200, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    direction = np.zeros(d)
    direction[3] = 1.0
    a = rng.normal(size=(n, 1, d)) + shift * direction
    b = rng.normal(size=(n, 1, d))
    return a[: n // 2], b[: n // 2], a[n // 2 :], b[n // 2 :]


def test_separable_classes_are_separated():
    accuracy, dprime = _heldout_separation(*planted(shift=8.0))
    assert accuracy[0] > 0.99
    assert 6.0 < dprime[0] < 10.0  # d' recovers the planted shift (unit noise)


def test_identical_classes_give_chance():
    accuracy, dprime = _heldout_separation(*planted(shift=0.0, n=2000))
    assert abs(accuracy[0] - 0.5) < 0.06
    assert abs(dprime[0]) < 0.3
