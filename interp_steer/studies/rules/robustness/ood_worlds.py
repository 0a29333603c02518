"""The simulated worlds of ``robustness.ood``: sets of per-item (effect, unsteered score) pairs on the
scorers' own scales, with the OOD shift solved for an exact true ratio."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import optimize as _opt

from interp_steer.studies.rules.base import (
    DGP,
    noise,
    vader_compound,
)

# The simulated worlds of the OOD rule. A "set" draws per-item (effect, unsteered score) pairs at a
# steering shift ``delta`` on its own scale; its truth is the expected effect (standardised: over the
# population mean absolute deviation of its unsteered scores from their median), computed once by
# Monte Carlo with common random numbers, so that the OOD shift can be solved for an exact true ratio.


class _Set:
    """One prompt set's scores: ``kind`` "normal"/"t3" (effects ``delta + sd · noise``, unsteered
    ``sd_u · noise``), "vader" (raw VADER valence ``mu + tau z`` unsteered and ``mu + delta + tau (rho z +
    sqrt(1 - rho²) w)`` steered, each 0 with probability ``p0`` (no sentiment word), through VADER's
    ``s / √(s² + 15)`` rounded to 4 decimals) or "prob" (A/B: ``P = sigmoid(l)`` unsteered and
    ``sigmoid(l + delta + eta)`` steered, ``l ~ N(mu, tau)``, ``eta ~ N(0, 0.7)``)."""

    def __init__(self, kind: str, mu: float = 0.0, sd: float = 1.0, tau: float = 2.0, p0: float = 0.25) -> None:
        self.kind, self.mu, self.sd, self.tau, self.p0 = kind, mu, sd, tau, p0

    def draw(self, rng: np.random.Generator, size: Any, delta: float) -> tuple[np.ndarray, np.ndarray]:
        if self.kind in ("normal", "t3"):
            return delta + self.sd * noise(rng, self.kind, size), self.sd * noise(rng, self.kind, size)
        z, w = rng.standard_normal(size), rng.standard_normal(size)
        if self.kind == "vader":
            rho, p0 = 0.5, self.p0
            raw_u = np.where(rng.random(size) < p0, 0.0, self.mu + self.tau * z)
            raw_s = np.where(rng.random(size) < p0, 0.0,
                             self.mu + delta + self.tau * (rho * z + math.sqrt(1 - rho * rho) * w))
            unsteered = vader_compound(raw_u)
            return vader_compound(raw_s) - unsteered, unsteered
        if self.kind == "prob":
            logit = self.mu + self.tau * z
            unsteered = 1 / (1 + np.exp(-logit))
            return 1 / (1 + np.exp(-(logit + delta + 0.7 * w))) - unsteered, unsteered
        raise ValueError(self.kind)

    def truth(self, delta: float, standardised: bool) -> float:
        """The expected effect at ``delta`` (standardised: over the unsteered scores' population scale)."""
        effect, unsteered = self.draw(np.random.default_rng(20240529), 400_000, delta)
        value = float(effect.mean())
        if standardised:
            value /= float(np.mean(np.abs(unsteered - np.median(unsteered))))
        return value


@functools.cache
def _ood_shift(world: str, ratio: float) -> float:
    """The OOD set's shift giving a true OOD/ID ratio of exactly ``ratio`` in ``world``."""
    spec = _OOD_WORLDS[world]
    target = ratio * spec["id"].truth(spec["id_delta"], spec["standardise"])
    ood = spec["ood"]
    if ood.kind in ("normal", "t3") and not spec["standardise"]:
        return target
    return float(_opt.brentq(lambda d: ood.truth(d, spec["standardise"]) - target, -20.0, 20.0, xtol=1e-6))


_OOD_WORLDS: dict[str, dict[str, Any]] = {
    # ID effect of 1 SD of its per-item effects, OOD sets as noisy.
    "normal": {"id": _Set("normal"), "id_delta": 1.0, "ood": _Set("normal"), "standardise": False},
    # The OOD set twice as noisy as the ID set (the quick run measured 1.5x).
    "unequal": {"id": _Set("normal"), "id_delta": 1.0, "ood": _Set("normal", sd=2.0), "standardise": False},
    "t3": {"id": _Set("t3"), "id_delta": 1.0, "ood": _Set("t3"), "standardise": False},
    # VADER compound: ID prompts near neutral (raw 0.5), OOD ones already positive (raw 2.5: reviews),
    # where the compound saturates; a third of a raw unit per shift step.
    "vader": {"id": _Set("vader", mu=0.5), "id_delta": 1.5, "ood": _Set("vader", mu=2.5), "standardise": False},
    # A/B questions on both sides: ID around P = 0.5, OOD near the ceiling (P about 0.8).
    "probabilities": {"id": _Set("prob", mu=0.0, tau=1.5), "id_delta": 1.5, "ood": _Set("prob", mu=1.5, tau=1.5),
                      "standardise": False},
    # A/B ID questions against open-ended OOD prompts scored by VADER: standardised, with a large ID
    # effect, where the scales' own uncertainty matters most.
    "standardised": {"id": _Set("prob", mu=0.0, tau=1.0), "id_delta": 3.0, "ood": _Set("vader", mu=0.5),
                     "standardise": True},
    "standardised, t3": {"id": _Set("t3", sd=0.3), "id_delta": 1.8, "ood": _Set("t3", sd=0.6), "standardise": True},
    # As "standardised", with most OOD texts scoring exactly 0 (no sentiment word): the scale rests on
    # few items (red team: false "reproduced" 5.6 % at 60 % zeros, 9.6 % at 80 % before the guard).
    "standardised, VADER 60 % zeros": {"id": _Set("prob", mu=0.0, tau=1.0), "id_delta": 3.0,
                                       "ood": _Set("vader", mu=0.5, p0=0.6), "standardise": True},
    "standardised, VADER 80 % zeros": {"id": _Set("prob", mu=0.0, tau=1.0), "id_delta": 3.0,
                                       "ood": _Set("vader", mu=0.5, p0=0.8), "standardise": True},
}


def _ood_world(world: str, ratio: float, *, sets: int = 1, id_delta: float | None = None,
               ood_sd: float | None = None) -> Callable[..., dict[str, Any]]:
    """Draw ``runs`` runs of ``world`` with a true OOD/ID ratio of ``ratio`` on every one of ``sets``
    OOD sets, at the profile's sizes (``n_id`` ID items, ``n_ood`` items per set)."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        spec = dict(_OOD_WORLDS[world])
        if id_delta is not None:
            spec["id_delta"] = id_delta
        if ood_sd is not None:
            spec["ood"] = _Set(spec["ood"].kind, spec["ood"].mu, ood_sd, spec["ood"].tau)
        shift = (_ood_shift(world, ratio) if id_delta is None and ood_sd is None
                 else ratio * spec["id_delta"])  # the overrides are for normal worlds only
        n_id, n_ood = int(profile["n_id"]), [int(n) for n in profile["n_ood"]] * sets
        id_e, id_u = spec["id"].draw(rng, (runs, n_id), spec["id_delta"])
        ood_e = np.full((runs, len(n_ood), max(n_ood)), np.nan)
        ood_u = np.full_like(ood_e, np.nan)
        for k, n in enumerate(n_ood):
            ood_e[:, k, :n], ood_u[:, k, :n] = spec["ood"].draw(rng, (runs, n), shift)
        return {"id_effects": id_e, "ood_effects": ood_e, "id_unsteered": id_u, "ood_unsteered": ood_u,
                "standardise": spec["standardise"]}

    return draw


def ood_dgps(margin: float) -> dict[str, DGP]:
    """The OOD rule's worlds by name, its nulls at a true ratio of ``1 - margin`` (the rule's bound)."""
    bound = 1 - margin
    described = {
        "normal": "normal per-item effects, ID effect 1 SD, equal SDs",
        "unequal": "normal, the OOD set's per-item SD twice the ID set's",
        "t3": "t (3 d.o.f.) per-item effects and unsteered scores",
        "vader": "VADER compound (s/√(s²+15), 4 decimals, a quarter of texts with no sentiment word): ID prompts "
                 "near neutral, OOD ones already positive where the compound saturates",
        "probabilities": "A/B P(matching): ID questions around 0.5, OOD ones near the ceiling",
        "standardised": "A/B probabilities in distribution, VADER out of it: standardised effects, a large ID effect",
        "standardised, t3": "standardised t (3 d.o.f.) effects and unsteered scores, a large ID effect",
        "standardised, VADER 60 % zeros": "as 'standardised', with 60 % of OOD texts scoring exactly 0 (no sentiment "
                                          "word), so the scale rests on a few items",
        "standardised, VADER 80 % zeros": "as 'standardised', with 80 % of OOD texts scoring exactly 0: the scale "
                                          "usually rests on fewer than 8 items (then inconclusive)",
    }
    dgps = {}
    for truth in ("null", "effect"):
        for world, text in described.items():
            name = f"{truth}: ratio exactly {bound:g}, {world}"
            error = "reproduced" if truth == "null" else "not reproduced"
            dgps[name] = DGP(name, truth, f"{text}; the boundary ratio, least favourable for a false '{error}'",
                             _ood_world(world, bound))
        name = f"{truth}: ratio exactly {bound:g}, two OOD sets"
        dgps[name] = DGP(name, truth, "normal, two OOD sets of 15 items, both at the boundary ratio",
                         _ood_world("normal", bound, sets=2))
    dgps["null: ratio 1 (carries over fully)"] = DGP(
        "null: ratio 1 (carries over fully)", "null", "normal, the OOD effect equals the ID effect",
        _ood_world("normal", 1.0))
    dgps["null: no effect anywhere"] = DGP(
        "null: no effect anywhere", "null", "normal, ID and OOD effects both 0 (no reliability to lose)",
        _ood_world("normal", 0.0, id_delta=0.0))
    dgps["null: steering backfires in distribution"] = DGP(
        "null: steering backfires in distribution", "null",
        "normal, ID effect -1 SD (against the intended direction), OOD effect +0.5 SD: a negative ratio, but no "
        "reliable ID effect", _ood_world("normal", -0.5, id_delta=-1.0))
    dgps["effect: OOD effect 0, ID effect 0.7 SD"] = DGP(
        "effect: OOD effect 0, ID effect 0.7 SD", "effect",
        "the paper's finding (steering nearly fails out of distribution) at the default run's sizes: ID effect 0.7 SD "
        "of its per-item effects (the quick run measured +0.23 with SD 0.33), OOD effect 0 with 1.5× the ID SD",
        _ood_world("normal", 0.0, id_delta=0.7, ood_sd=1.5), paper=True)
    dgps["effect: OOD effect 0, ID effect 1.5 SD"] = DGP(
        "effect: OOD effect 0, ID effect 1.5 SD", "effect", "as above with a stronger ID effect (1.5 SD)",
        _ood_world("normal", 0.0, id_delta=1.5, ood_sd=1.5))
    return dgps
