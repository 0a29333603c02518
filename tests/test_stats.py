"""The shared statistics against known answers, and the error rates of the intervals and floors by
simulation (vectorised: every simulation here runs in well under a second)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from interp_steer.patching import normalised_effect
from interp_steer.stats import (
    backfire_rate,
    bootstrap_mean,
    fieller,
    noise_floor,
    proportion_interval,
    ratio_of_means,
    summarise,
    t_interval,
)

# ------------------------------------------------------------------------------- small n


def test_one_value_has_no_interval_and_says_why():
    one = bootstrap_mean([0.5])
    assert one.mean == 0.5 and one.n == 1
    assert math.isnan(one.low) and math.isnan(one.high)
    assert "one value" in one.to_dict()["note"]
    assert "note" not in bootstrap_mean([1.0, 2.0]).to_dict()  # the usual keys stay the usual keys
    single = t_interval([3.0])
    assert math.isnan(single.low) and "one value" in single.note


def test_t_interval_is_the_textbook_one():
    x = np.array([1.0, 2.0, 4.0, 7.0, np.nan])
    got = t_interval(x, level=0.9)
    half = sps.t.ppf(0.95, 3) * np.std(x[:4], ddof=1) / 2
    assert got.n == 4 and got.mean == pytest.approx(3.5)
    assert (got.low, got.high) == pytest.approx((3.5 - half, 3.5 + half))


def test_fieller_is_the_set_a_t_test_does_not_reject():
    rng = np.random.default_rng(0)
    den = 2 + rng.normal(size=12)
    num = 0.7 * den + 0.5 * rng.normal(size=12)
    got = ratio_of_means(num, den)
    assert got.mean == pytest.approx(num.mean() / den.mean())
    for r, inside in ((got.low - 1e-6, False), (got.low + 1e-6, True), (got.high - 1e-6, True), (got.high + 1e-6, False)):
        p = sps.ttest_1samp(num - r * den, 0.0).pvalue
        assert (p >= 0.05) == inside, r


def test_fieller_is_unbounded_when_the_denominator_may_be_zero():
    rng = np.random.default_rng(1)
    den = rng.normal(size=10)  # mean 0: no ratio can be excluded
    got = ratio_of_means(rng.normal(size=10) + 1, den)
    assert math.isnan(got.low) and math.isnan(got.high)
    assert "unbounded" in got.note
    exact = ratio_of_means([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])  # no spread in the denominator: a plain t-interval / 2
    assert exact.mean == pytest.approx(1.0) and exact.low == pytest.approx(t_interval([1, 2, 3]).low / 2)


def test_fieller_is_vectorised_over_cells_and_skips_nan_pairs():
    rng = np.random.default_rng(2)
    num, den = rng.normal(1, 1, size=(20, 3)), rng.normal(3, 1, size=(20, 1))
    num[0, 1] = np.nan
    cells = fieller(num, den, axis=0)
    for j in range(3):
        keep = np.isfinite(num[:, j])
        one = ratio_of_means(num[keep, j], den[keep, 0])
        assert (cells.estimate[j], cells.low[j], cells.high[j]) == pytest.approx((one.mean, one.low, one.high))
    assert cells.n.tolist() == [20, 19, 20]


def test_ratio_of_means_covers_at_small_n():
    """Simulation with a known ratio: n = 16 paired items, numerator and denominator correlated
    (ρ = 0.6), the denominator clearly non-zero (mean 1.5 SDs from 0 per item, so its t-statistic is
    about 6 at n = 16) — the setting of patching's normalised effect. 20 000 runs: the Monte Carlo
    s.e. of a 95 % coverage is 0.0015. An unbounded set counts as a miss (conservative)."""
    rng = np.random.default_rng(3)
    runs, n, true_ratio = 20_000, 16, 0.4
    den = rng.normal(size=(n, runs))
    num = 0.6 * den + 0.8 * rng.normal(size=(n, runs))
    den, num = 1.5 + den, true_ratio * 1.5 + 0.7 * num
    result = fieller(num, den, axis=0)
    covered = result.bounded & (result.low <= true_ratio) & (true_ratio <= result.high)
    assert covered.mean() >= 0.93
    assert covered.mean() == pytest.approx(0.95, abs=0.006)  # Fieller is exact under normality
    assert result.bounded.mean() > 0.999


def test_normalised_effect_is_a_fieller_ratio_of_means():
    patched = np.array([[1.0, 0.5], [3.0, 1.0], [2.0, np.nan]])
    target, source = np.array([0.0, 1.0, 0.5]), np.array([2.0, 3.0, 2.4])
    effect, low, high = normalised_effect(patched, target, source)
    expected = ratio_of_means(patched[:, 0] - target, source - target)
    assert (effect[0], low[0], high[0]) == pytest.approx((expected.mean, expected.low, expected.high))
    assert effect[1] == pytest.approx((0.5 + 0.0) / 2 / ((2 + 2) / 2))  # the NaN prompt is left out
    one, lo, hi = normalised_effect(patched[:1], target[:1], source[:1])
    assert one[0] == 0.5 and np.isnan(lo).all() and np.isnan(hi).all()  # one prompt: no interval
    _, lo, hi = normalised_effect(patched, target, target + np.array([1.0, -1.0, 0.1]))  # runs barely differ
    assert np.isnan(lo).all() and np.isnan(hi).all()


# ------------------------------------------------------------------------------ summaries


def test_perplexity_is_summarised_by_a_geometric_mean():
    ppl = np.array([2.0, 8.0, np.nan])
    geo = summarise(ppl, metric="perplexity")
    assert geo.mean == pytest.approx(4.0) and geo.aggregate == "geometric mean" and geo.n == 2
    assert geo.to_dict()["aggregate"] == "geometric mean"
    assert summarise(ppl, metric="vader").mean == pytest.approx(5.0)
    assert summarise([1.0, 100.0], geometric=True).mean == pytest.approx(10.0)
    assert summarise([np.nan, np.nan], metric="perplexity").n == 0
    with pytest.raises(ValueError, match="positive"):
        summarise([0.0, 1.0], metric="perplexity")


def test_wilson_interval():
    got = proportion_interval(0, 20)
    assert got.mean == 0.0 and got.low == 0.0 and got.high == pytest.approx(0.1611, abs=1e-4)  # textbook value
    half = proportion_interval(10, 20)
    assert half.low == pytest.approx(1 - half.high)


# ------------------------------------------------------------------------------- backfire


def test_backfire_direction_comes_from_the_scorer_and_the_coefficient():
    steered, base = np.array([1.0, 2.0, -1.0, 0.5]), np.zeros(4)
    up = backfire_rate(steered, base, direction=1)
    assert (up.rate.mean, up.n_backfire, up.n_success) == (0.25, 1, 3)
    # a scorer where lower is the target (e.g. toxicity for a detoxifying vector): the same moves flip
    down = backfire_rate(steered, base, direction=-1)
    assert (down.rate.mean, down.n_backfire, down.n_success) == (0.75, 3, 1)
    with pytest.raises(ValueError, match="direction"):
        backfire_rate([1.0], [0.0], direction=0)


def test_backfire_counts_nan_apart_and_respects_the_floor():
    got = backfire_rate([0.5, -0.05, np.nan, -0.5, 0.02], np.zeros(5), floor=0.1)
    assert got.n_nan == 1 and got.rate.n == 4
    assert (got.n_backfire, got.n_success, got.n_within_floor) == (1, 1, 2)
    assert got.rate.mean == 0.25
    payload = got.to_dict()
    assert payload["n_nan"] == 1 and payload["floor"] == 0.1 and payload["mean"] == 0.25


def test_noise_floor_makes_a_no_effect_vector_backfire_five_percent():
    """Pure-noise steering: every completion of a prompt (unsteered seeds a and b, baseline and
    steered) is the prompt's own level plus independent noise. With the floor estimated from the two
    unsteered seeds on 400 prompts, the backfire rate of 200 simulated runs averages ≈ 5 % (the
    design level), against ≈ 50 % with no floor."""
    rng = np.random.default_rng(4)
    runs, prompts = 200, 400
    level = rng.normal(size=(runs, prompts))  # each prompt's own score level
    seed_a, seed_b, base, steered = level + 0.3 * rng.normal(size=(4, runs, prompts))
    rates, naive = [], []
    for r in range(runs):
        floor = noise_floor(seed_a[r], seed_b[r])
        rates.append(backfire_rate(steered[r], base[r], floor=floor).rate.mean)
        naive.append(backfire_rate(steered[r], base[r]).rate.mean)
    assert np.mean(rates) == pytest.approx(0.05, abs=0.01)
    assert np.mean(naive) == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="same shape"):
        noise_floor([1.0], [1.0, 2.0])
