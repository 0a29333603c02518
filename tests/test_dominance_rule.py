"""Dominance statistics (:func:`interp_steer.studies.mixing.dominance`) checked as procedures: the
descriptive "A"/"B" call on simulated runs with a known truth, the scales they are read on, and the
samples axis. The verdict rule on finding (i) built on them, ``collision.dominance``, is tested in
``tests/test_rules_collision.py``.

The simulated world. Per prompt k, a latent score moves with the mix α:

    z_k(α) = a_k + b_k · α + σ · ε_kα,   a_k ~ N(μ_a, 1), b_k ~ N(separation, 0.5), σ = 1,

with no dominance (the truth is linear in α). What the study observes is a probability,
P(A) = sigmoid(z) (a probe readout), a compound made as round(tanh(z / 2), 4), or VADER's compound
round(z / √(z² + 15), 4) of a raw valence sum z. Sizes: the quick profile (16 prompts,
α ∈ {0, .25, .5, .75, 1}) and the full profile (30 prompts, α = 0, 0.125, …, 1). Monte Carlo
tolerance: a rate bounded by p is accepted up to ``p + 2·√(p(1 − p)/runs)``.

Measured with these seeds (8000 runs): false "A"/"B" (the area's 95 % interval excludes 0, a 5 %
two-sided test) is 0.049 / 0.047 (quick / full) on the logit of P(A) or on 2·artanh of a tanh(z/2)
compound, and on the raw probabilities (no scale) 0.25 / 0.45. A raw VADER valence sum linear from
0 to +6 read on 2·artanh (the old scale) is called "A" 0.30 / 0.54 of the time; on VADER's exact
inverse 0.051 / 0.049 (20 000 runs).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import expit

from interp_steer.studies.mixing import (
    VADER_CLIP,
    _dominance_core,
    dominance,
    to_dominance_scale,
)
from interp_steer.studies.rules.base import tolerance, vader_compound

QUICK = (np.linspace(0, 1, 5), 16)
FULL = (np.linspace(0, 1, 9), 30)
SIZES = {"quick": QUICK, "full": FULL}


def simulate(seed: int, runs: int, size, *, separation: float, intercept: float = 0.5) -> np.ndarray:
    """The latent ``z`` per ``[run, alpha, prompt]`` from the model in the module docstring."""
    alphas, n_items = size
    rng = np.random.default_rng(seed)
    a = rng.normal(intercept, 1.0, size=(runs, 1, n_items))
    b = rng.normal(separation, 0.5, size=(runs, 1, n_items))
    return a + b * alphas[None, :, None] + rng.normal(size=(runs, alphas.size, n_items))


def false_dominance(alphas, z) -> np.ndarray:
    """The descriptive verdict of :func:`dominance`: "A" or "B" (area's 95 % interval excludes 0)."""
    area = _dominance_core(alphas, z)["area"]
    return area.bounded & ((area.low > 0) | (area.high < 0))


@pytest.mark.parametrize("name", ["quick", "full"])
def test_linear_latent_gives_false_dominance_at_most_5_percent_on_its_own_scale(name):
    """Linear latent, well separated ends (3σ): the descriptive "A"/"B" call read on the scale that
    undoes the scorer (logit of a sigmoid, 2·artanh of a tanh(z/2) compound, VADER's exact inverse
    of its compound) is wrong ≤ 5 % of the time; on the raw probabilities saturation bends the mean
    curve and it is wrong 25 % (quick) and 45 % (full) of the time."""
    runs = 8000
    alphas, _ = SIZES[name]
    z = simulate(11, runs, SIZES[name], separation=3.0)
    p = expit(z)
    on_logit = false_dominance(alphas, to_dominance_scale(p, "logit")).mean()
    on_artanh = false_dominance(alphas, to_dominance_scale(np.round(np.tanh(z / 2), 4), "artanh")).mean()
    raw = false_dominance(alphas, p).mean()
    assert on_logit <= tolerance(0.05, runs), on_logit
    assert on_artanh <= tolerance(0.05, runs), on_artanh
    assert raw >= {"quick": 0.15, "full": 0.35}[name], raw  # why the scale matters


@pytest.mark.parametrize("name", ["quick", "full"])
def test_vader_is_read_on_its_exact_inverse_not_on_artanh(name):
    """VADER's compound is s / √(s² + 15), not tanh(s / 2): a raw valence sum exactly linear in α
    from 0 to +6 is called "A" far more than 5 % of the time on 2·artanh (the old scale) and within
    the 5 % on the exact inverse (a 5 % two-sided test: 0.051 / 0.049 at these seeds)."""
    runs = 20000
    alphas, _ = SIZES[name]
    compound = vader_compound(simulate(12, runs, SIZES[name], separation=6.0, intercept=0.0))
    exact = false_dominance(alphas, to_dominance_scale(compound, "vader_raw")).mean()
    old = false_dominance(alphas, to_dominance_scale(compound, "artanh")).mean()
    assert exact <= tolerance(0.05, runs), exact
    assert old >= {"quick": 0.25, "full": 0.45}[name], old


@pytest.mark.parametrize("name", ["quick", "full"])
def test_false_dominance_stays_at_5_percent_with_poorly_separated_ends(name):
    runs = 8000
    alphas, _ = SIZES[name]
    p = expit(simulate(12, runs, SIZES[name], separation=1.0, intercept=-2.0))
    assert false_dominance(alphas, to_dominance_scale(p, "logit")).mean() <= tolerance(0.05, runs)


def test_scales():
    p = np.array([0.0, 0.5, 0.9, 1.0, np.nan])
    logit = to_dominance_scale(p, "logit")
    assert logit[1] == 0 and logit[2] == pytest.approx(math.log(9)) and np.isfinite(logit[[0, 3]]).all()
    assert np.isnan(logit[4])
    c = np.array([-1.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(to_dominance_scale(c, "artanh")[1:3], [0.0, math.log(3)])
    assert to_dominance_scale(c, "artanh")[3] == pytest.approx(2 * math.atanh(0.9999))  # VADER's rounding
    with pytest.raises(ValueError, match="probabilities"):
        to_dominance_scale([1.5], "logit")
    with pytest.raises(ValueError, match="unknown scale"):
        to_dominance_scale([0.5], "probit")
    with pytest.raises(ValueError, match="needs scores in"):
        to_dominance_scale([1.5], "vader_raw")


def test_vader_raw_inverts_vaders_own_normalisation():
    """Oracle: vaderSentiment's own normalize (s / √(s² + 15), rounded to 4 decimals as
    polarity_scores does) read back through the inverse gives the raw sum, to the rounding."""
    from vaderSentiment.vaderSentiment import normalize

    raw = np.array([-40.0, -7.5, -1.0, -0.05, 0.0, 0.3, 2.0, 4.4, 12.0, 60.0])
    compound = np.array([round(normalize(s), 4) for s in raw])
    back = to_dominance_scale(compound, "vader_raw")
    slope = np.sqrt(15.0) / (1 - np.clip(compound, -VADER_CLIP, VADER_CLIP) ** 2) ** 1.5  # ds/dc
    assert np.all(np.abs(back - raw) <= slope * 0.5e-4 + 1e-12)
    np.testing.assert_allclose(back[np.abs(raw) <= 12], raw[np.abs(raw) <= 12], atol=0.05)
    # ±1 (a sum beyond VADER's 4 decimals) reads as ±0.9999: a raw sum of ±274, a lower bound
    assert to_dominance_scale([1.0, -1.0], "vader_raw") == pytest.approx([273.84, -273.84], abs=0.01)


def test_each_completion_is_mapped_before_a_cells_completions_are_averaged():
    """Oracle: with a samples axis, dominance reads the mean over a cell's completions of each one's
    raw valence sum, not the inverse of the mean compound (not the same: the inverse is not linear)."""
    alphas = np.linspace(0, 1, 5)
    rng = np.random.default_rng(3)
    raw = rng.normal(0.0, 4.0, (5, 6, 4)) + 5 * alphas[:, None, None]
    compound = vader_compound(raw)
    dom = dominance(alphas, compound, scale="vader_raw")
    expected = to_dominance_scale(compound, "vader_raw").mean(axis=-1)
    np.testing.assert_allclose(dom.scaled, expected)
    assert not np.allclose(dom.scaled, to_dominance_scale(compound.mean(axis=-1), "vader_raw"))
    np.testing.assert_allclose(dom.scaled, raw.mean(axis=-1), atol=0.05)
    # a cell whose completions are all unscored leaves its prompt out; a single NaN completion does not
    compound[2, 1, :] = np.nan
    compound[3, 2, 0] = np.nan
    partial = dominance(alphas, compound, scale="vader_raw")
    assert partial.n_dropped == 1 and partial.scaled.shape == (5, 5)


def test_dominance_agrees_with_the_batched_core():
    alphas, _ = FULL
    z = simulate(13, 12, FULL, separation=3.0)
    p = expit(z)
    core = _dominance_core(alphas, to_dominance_scale(p, "logit"))
    described = false_dominance(alphas, to_dominance_scale(p, "logit"))
    for r in range(p.shape[0]):
        dom = dominance(alphas, p[r], scale="logit")
        assert (dom.verdict != "none") == bool(described[r])
        assert dom.area.mean == pytest.approx(core["area"].estimate[r])
        json.dumps(dom.to_dict(), allow_nan=False)


def test_dominance_survives_empty_scores():
    alphas, _ = QUICK
    empty = dominance(alphas, np.full((5, 4), np.nan))
    assert empty.verdict == "none" and empty.n_dropped == 4 and empty.to_dict()["area"]["mean"] is None
