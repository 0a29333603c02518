"""Dominance statistics checked as procedures: simulated runs
with a known truth, error rates against the design (DESIGN.md, principle 8).

The simulated world. Per prompt k, a latent score moves with the mix α:

    z_k(α) = a_k + b_k · f(α) + σ · ε_kα,   a_k ~ N(μ_a, 1), b_k ~ N(separation, 0.5), σ = 1,

(μ_a = 0.5: at 3σ the B end reads P(A) ≈ 0.62 and the A end ≈ 0.97, so the probabilities saturate;
μ_a = −2 in the poorly separated check),

with f(α) = α (no dominance: the truth is linear) or f(α) = √α (the paper's effect, area 1/6). What
the study observes is a probability, P(A) = sigmoid(z) (a probe readout), or VADER-like
c = round(tanh(z / 2), 4) = round(2·sigmoid(z) − 1, 4). ``separation`` is how far apart the pure
ends are in per-cell noise SDs (σ): the mean of b_k. Sizes: the quick profile (16 prompts,
α ∈ {0, .25, .5, .75, 1}) and the full profile (30 prompts, α = 0, 0.125, …, 1).

Every simulation runs the package's own vectorised core (``_dominance_core``), which
:func:`dominance` calls for one run (checked here too). Monte
Carlo tolerance: a rate bounded by p is accepted up to ``p + 2·√(p(1 − p)/runs)``.

Measured with these seeds (runs as in each test) — the numbers for the report:

=======================================  ========  ========
rate (runs: 8000 for "A"/"B", else 4000)   quick     full
=======================================  ========  ========
false "A"/"B", logit or artanh, sep 3      0.049     0.047     (design: 5 % two-sided)
false "A"/"B", logit, sep 1                0.039     0.048
false "A"/"B", raw P (old rule), sep 3     0.25      0.45
=======================================  ========  ========
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import expit

from interp_steer.collision.analysis import _dominance_core, dominance, to_dominance_scale

QUICK = (np.linspace(0, 1, 5), 16)
FULL = (np.linspace(0, 1, 9), 30)
SIZES = {"quick": QUICK, "full": FULL}


def linear(a):
    return a


def paper(a):
    return np.sqrt(a)


def simulate(seed: int, runs: int, size, *, separation: float, curve=linear, intercept: float = 0.5) -> np.ndarray:
    """P(A) per ``[run, alpha, prompt]`` from the latent model in the module docstring."""
    alphas, n_items = size
    rng = np.random.default_rng(seed)
    a = rng.normal(intercept, 1.0, size=(runs, 1, n_items))
    b = rng.normal(separation, 0.5, size=(runs, 1, n_items))
    z = a + b * curve(alphas)[None, :, None] + rng.normal(size=(runs, alphas.size, n_items))
    return expit(z)


def tolerance(p: float, runs: int) -> float:
    return p + 2 * math.sqrt(p * (1 - p) / runs)


def false_dominance(alphas, z) -> np.ndarray:
    """The descriptive verdict of :func:`dominance`: "A" or "B" (area's 95 % interval excludes 0)."""
    area = _dominance_core(alphas, z)["area"]
    return area.bounded & ((area.low > 0) | (area.high < 0))


# ------------------------------------------------------------------- B: the scale of dominance


@pytest.mark.parametrize("name", ["quick", "full"])
def test_linear_latent_gives_false_dominance_at_most_5_percent_on_an_unbounded_scale(name):
    """Linear latent through a sigmoid, well separated ends (3σ): the descriptive "A"/"B" verdict,
    read on the logit of P(A) and on 2·artanh of a VADER-like compound, is wrong ≤ 5 % of the time.
    The old rule — the same area test on the raw probabilities — calls dominance in 25 % (quick)
    and 45 % (full) of the very same runs: saturation bends the mean curve."""
    runs = 8000
    alphas, _ = SIZES[name]
    p = simulate(11, runs, SIZES[name], separation=3.0)
    on_logit = false_dominance(alphas, to_dominance_scale(p, "logit")).mean()
    vader_like = np.round(2 * p - 1, 4)
    on_artanh = false_dominance(alphas, to_dominance_scale(vader_like, "artanh")).mean()
    raw = false_dominance(alphas, p).mean()
    assert on_logit <= tolerance(0.05, runs), on_logit
    assert on_artanh <= tolerance(0.05, runs), on_artanh
    assert raw >= {"quick": 0.15, "full": 0.35}[name], raw  # why the scale matters (old rule)


@pytest.mark.parametrize("name", ["quick", "full"])
def test_false_dominance_stays_at_5_percent_with_poorly_separated_ends(name):
    runs = 8000
    alphas, _ = SIZES[name]
    p = simulate(12, runs, SIZES[name], separation=1.0, intercept=-2.0)
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


def test_public_functions_match_the_simulated_cores():
    """:func:`dominance` on single runs agrees with the batch core the simulations use."""
    alphas, _ = FULL
    for curve, separation in ((linear, 3.0), (paper, 3.0), (paper, 1.0)):
        p = simulate(13, 12, FULL, separation=separation, curve=curve)
        described = false_dominance(alphas, to_dominance_scale(p, "logit"))
        area = _dominance_core(alphas, to_dominance_scale(p, "logit"))["area"]
        for r in range(p.shape[0]):
            dom = dominance(alphas, p[r], scale="logit")
            assert (dom.verdict != "none") == bool(described[r])
            assert dom.area.mean == pytest.approx(area.estimate[r])
            json.dumps(dom.to_dict(), allow_nan=False)
