"""The SVF study's four verdict rules (``svf.control``, ``svf.backfire``, ``svf.long_form``,
``svf.multi_attribute``), simulated through the very functions the study calls, against the design:
false "reproduced" under every null and false "not reproduced" under every effect at most 5 % plus
Monte Carlo error ``2·√(p(1 − p)/runs)``, at the shipped quick and full sizes.

For each defect issue 29 names, a test reproduces it with the rule the study used before (rebuilt here
from ``rules.paired``, which is unchanged) and shows the new rule does not have it; and the pieces of the
new rules are checked against oracles (brute-force jackknife, Fieller's interval, the exact
unconditional test's size over its nuisance parameter).
"""

from __future__ import annotations

import numpy as np
import pytest

from interp_steer.stats import fieller, mean_and_se
from interp_steer.studies.rules import CODES, REGISTRY, tolerance
from interp_steer.studies.rules.base import one_run
from interp_steer.studies.rules.paired import core as paired_core
from interp_steer.studies.rules.svf import (
    BACKFIRE,
    CONTROL,
    LONG_FORM,
    MULTI,
    backfire_core,
    control_core,
    control_floor,
    jackknife,
    unconditional_pvalues,
)

RULES = (CONTROL, BACKFIRE, LONG_FORM, MULTI)
RUNS = 1000
ROWS = [pytest.param(rule.id, profile, name, id=f"{rule.id}|{profile}|{name}")
        for rule in RULES for profile in rule.profiles for name in rule.dgps]


def test_the_four_svf_verdicts_are_registered():
    assert {"svf.control", "svf.backfire", "svf.long_form", "svf.multi_attribute"} <= set(REGISTRY)
    for rule in RULES:
        assert {"quick", "full"} <= set(rule.profiles)
        assert rule.profiles["quick"]["prompts"] == rule.profiles["full"]["prompts"] == 30  # the 30 built-in prompts


@pytest.mark.parametrize(("rule_id", "profile", "dgp"), ROWS)
def test_error_rates_within_the_design(rule_id, profile, dgp):
    rule = REGISTRY[rule_id]
    rates = rule.simulate(dgp, profile, runs=RUNS, seed=3)
    truth = rule.dgps[dgp].truth
    error = rates["reproduced"] if truth == "null" else rates["not reproduced"]
    assert error <= tolerance(0.05, RUNS), rates


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_codes_decide_as_decide_does(rule):
    rng = np.random.default_rng(5)
    for profile in ("quick", "full"):
        size = rule.profile(profile)
        for dgp in rule.dgps.values():
            batch = dgp.draw(rng, size, 8)
            codes = np.asarray(rule.codes(**batch)).reshape(8)
            assert codes.tolist() == [CODES[rule.decide(**one_run(batch, i)).verdict] for i in range(8)], dgp.name


# ------------------------------------------------------------------------------- long-form (issue item 5)


def _old_long_form(field, vector, fraction=0.25):
    """The rule the study used before: the last third's paired difference, margin 0.25 × (|mean first-third
    effect of the vector| − its se) (``claims.relative_margin``), through ``rules.paired``."""
    mean, se, _ = mean_and_se(vector[..., 0], axis=-1)
    margin = fraction * np.maximum(0, np.abs(mean) - se)
    return paired_core(field[..., 2] - vector[..., 2], margin)["code"]


def test_the_issues_long_form_counter_example():
    """Both decay by half, the field's first-third effect twice the vector's: the field loses twice as
    much and keeps nothing better, yet it is stronger on the last third, so the old rule said
    "reproduced" most of the time; the new one judges retention and stays within 5 %."""
    dgp = LONG_FORM.dgps["null: the issue's counter-example"]
    batch = dgp.draw(np.random.default_rng(0), LONG_FORM.profile("quick"), 4000)
    old = float(np.mean(_old_long_form(batch["field"], batch["vector"]) == 1))
    new = float(np.mean(LONG_FORM.codes(**batch) == 1))
    assert old > 0.5, old
    assert new <= tolerance(0.05, 4000), new


def test_long_form_is_undefined_without_a_significant_first_third():
    rng = np.random.default_rng(1)
    first = rng.normal(0.0, 0.4, 30)  # no effect on the first third
    field = np.stack([first, first, 0.5 * first + 0.3], axis=-1)
    vector = np.stack([rng.normal(0.5, 0.3, 30)] * 3, axis=-1)
    decision = LONG_FORM.decide(field=field, vector=vector)
    assert decision.verdict == "inconclusive" and not decision.numbers["defined"]
    assert "first-third effect of the field" in decision.reason


def test_jackknife_pseudo_values_are_the_leave_one_out_oracle():
    rng = np.random.default_rng(2)
    last, first = rng.normal(0.4, 0.3, 25), rng.normal(0.8, 0.3, 25)
    theta = last.mean() / first.mean()
    loo = np.array([np.delete(last, i).mean() / np.delete(first, i).mean() for i in range(25)])
    pseudo = jackknife(np.array([theta]), loo[None])[0]
    np.testing.assert_allclose(pseudo, 25 * theta - 24 * loo)
    # the rule's estimate is the jackknife estimate of the difference of two retentions
    field = np.stack([first, first, last], axis=-1)
    vector = np.stack([first, first, 0.5 * first], axis=-1)
    numbers = LONG_FORM.decide(field=field, vector=vector).numbers
    np.testing.assert_allclose(numbers["difference"]["mean"], np.mean(pseudo) - 0.5, atol=1e-9)
    assert numbers["retention"]["field"] == pytest.approx(theta)


# -------------------------------------------------------------------------------- control (the margin)


def _old_control(field, vector, fraction=0.25):
    mean, se, _ = mean_and_se(vector, axis=-1)
    return paired_core(field - vector, fraction * np.maximum(0, np.abs(mean) - se))["code"]


def test_the_estimated_margin_correlated_with_the_difference():
    """The issue: in the study the margin comes from the vector's effects on the same prompts, so it is
    correlated with field − vector; simulated jointly at 100 prompts and a true advantage of exactly the
    margin (field = 1.25 × vector; a strong vector, effects anti-correlated over prompts), the old rule's
    false "not reproduced" is 5.6 %, above its 5 %. The new rule tests field − 1.25 × vector per prompt
    and keeps it at its one-sided 2.5 %."""
    dgp = CONTROL.dgps["effect: field exactly 1.25x, strong vector, anti-correlated"]
    batch = dgp.draw(np.random.default_rng(4), CONTROL.profile("prompts_100"), 40000)
    old = float(np.mean(_old_control(batch["field"], batch["vector"]) == -1))
    new = float(np.mean(CONTROL.codes(**batch) == -1))
    assert old > 0.052, old
    assert new <= tolerance(0.025, 40000), new


def test_the_margin_arm_is_fiellers_test_of_the_ratio():
    """Not reproduced by the margin arm exactly when the 95 % interval of mean(field − 1.25 vector) lies
    below 0, which (the vector's effect significant) is Fieller's upper bound of the ratio below 1.25."""
    rng = np.random.default_rng(6)
    for _ in range(200):
        vector = rng.normal(0.5, 0.4, 30)
        field = 0.9 * vector + rng.normal(0, 0.3, 30)
        out = control_core(field, vector, skew=False)
        f = fieller(field, vector)
        if bool(f.bounded):
            assert bool(out["short"][0]) == bool(f.high < 1.25), (float(f.high), out["short_high"])


def test_a_vector_that_does_nothing_asks_only_for_a_field_at_least_as_strong():
    """When the vector does nothing, its relative margin is 0: a field that does nothing either is not
    shown "not reproduced" by the margin arm more than 2.5 % of the time, and a clearly stronger field
    is reproduced."""
    rng = np.random.default_rng(8)
    vector = rng.normal(0.0, 0.4, (4000, 30))
    field = rng.normal(0.0, 0.4, (4000, 30))
    assert np.mean(control_core(field, vector)["short"]) <= tolerance(0.025, 4000)
    assert CONTROL.decide(field=vector[0] + 0.6, vector=vector[0]).verdict == "reproduced"


# ------------------------------------------------------------------------------------- backfire


def test_equal_backfire_rates_on_flags_are_not_reproduced_beyond_the_design():
    """Replaces the t-rule test on differences of 0/1 flags that Hall's skewness correction broke:
    with the real rate (and rarer and more frequent ones), equal rates read "reproduced" at most
    2.5 % plus Monte Carlo error, whatever the correlation of the two methods' flags."""
    for name in ("null: equal rates, 0/1 flags", "null: equal rates 10 %, 0/1 flags", "null: equal rates 30 %, 0/1 flags",
                 "null: equal rates, independent flags"):
        rates = BACKFIRE.simulate(name, "quick", runs=4000, seed=9)
        assert rates["reproduced"] <= tolerance(0.025, 4000), (name, rates)


@pytest.mark.parametrize(("n", "delta"), [(30, 0.0), (30, 0.05), (12, 0.0), (60, 0.05)])
def test_the_exact_unconditional_test_keeps_its_size_at_every_nuisance_value(n, delta):
    """Oracle: the exact rejection probability at the boundary p10 − p01 = delta, summed over every
    outcome the test rejects, on a grid of the nuisance p01 finer than the one the test maximises over
    (and beyond the boundary, p10 − p01 = delta + 0.05)."""
    from scipy.stats import multinomial

    table = unconditional_pvalues(n, delta)
    b, c = np.nonzero(np.isfinite(table) & (table <= 0.025))
    for shift in (0.0, 0.05):
        for q in np.linspace(0, (1 - delta - shift) / 2, 97):
            p = [q + delta + shift, q, max(0.0, 1 - 2 * q - delta - shift)]
            size = multinomial.pmf(np.stack([b, c, n - b - c], axis=-1), n, p).sum()
            assert size <= 0.025 + 1e-6, (q, shift, size)


def test_exact_counts_at_30_prompts():
    """At 30 prompts, three vector-only backfires against none are not significant, four are (McNemar's
    exact conditional test would need six: the unconditional test uses the concordant pairs too); no
    discordant prompt at all cannot show the rates within 0.05 of each other (21 % likely at a true
    advantage of 0.05), but a field that backfires on three prompts more than the vector can."""
    table = unconditional_pvalues(30, 0.0)
    assert table[0, 3] > 0.025 and table[0, 4] <= 0.025  # "field fewer" reads the table at (c, b)
    margin = unconditional_pvalues(30, 0.05)
    assert margin[0, 0] == pytest.approx(0.95**30, abs=0.01) and margin[0, 3] <= 0.025


def test_the_floor_makes_a_random_direction_backfire_five_percent_and_no_change_none():
    rng = np.random.default_rng(10)
    reference = rng.standard_t(4, (2000, 30, 2)) * 0.3
    floor = control_floor(reference)
    fresh = rng.standard_t(4, (2000, 30)) * 0.3
    assert np.mean(fresh < -floor[:, None]) == pytest.approx(0.05, abs=0.006)
    zeros = np.zeros((2000, 30))
    out = backfire_core(zeros, zeros, reference)
    assert (out["rate_field"] == 0).all() and (out["code"] != 1).all()
    assert backfire_core(zeros, zeros, reference[:, :, :1] * np.nan)["floor"].size == 2000


def test_backfire_decision_numbers():
    reference = np.random.default_rng(11).normal(0, 0.2, (30, 2))
    vector = np.r_[-np.ones(9), np.full(21, 0.5)]
    field = np.full(30, 0.5)
    decision = BACKFIRE.decide(field=field, vector=vector, reference=reference)
    assert decision.verdict == "reproduced"
    numbers = decision.numbers
    assert numbers["only_vector"] == 9 and numbers["only_field"] == 0 and numbers["rate_field"] == 0
    assert numbers["floor"] == pytest.approx(float(np.quantile(np.abs(reference), 0.9, method="weibull")))
    assert BACKFIRE.decide(field=vector, vector=field, reference=reference).verdict == "not reproduced"


# --------------------------------------------------------------------------------- multi-attribute


def test_multi_attribute_is_undefined_unless_every_solo_effect_is_significant():
    rng = np.random.default_rng(12)
    good = rng.normal(1.5, 1.0, (30, 2))
    weak = good.copy()
    weak[:, 1] = rng.normal(0.0, 1.0, 30)
    decision = MULTI.decide(field_alone=weak, field_together=0.8 * weak, vector_alone=good, vector_together=0.8 * good)
    assert decision.verdict == "inconclusive" and "field B" in decision.reason
    decision = MULTI.decide(field_alone=good, field_together=0.9 * good + rng.normal(0, 0.1, (30, 2)),
                            vector_alone=good, vector_together=0.5 * good + rng.normal(0, 0.1, (30, 2)))
    assert decision.verdict == "reproduced"
    assert decision.numbers["retention_per_attribute"]["vector_A"] == pytest.approx(0.5, abs=0.05)


# ------------------------------------------------------------------------- the red team's findings


def test_backfire_effects_clustered_just_inside_the_floor_do_not_decide_it():
    """Red team F1: both methods backfire on 3 % beyond the true floor (0.69), but 20 % / 30 % of the
    vector's effects sit at -0.62, just inside it; the floor estimated from 60 changes falls below
    0.62 in about a fifth of runs and the cluster then counts. Judged at the estimated floor alone
    (the rule before, still computed as ``code_at_floor``) false "reproduced" is 12-15 %; over the
    floor's 95 % interval it stays within the design, and so does the mirror at the boundary."""
    for name in ("null: equal rates, vector's effects clustered just inside the floor",
                 "null: equal rates, 30 % clustered just inside the floor"):
        batch = BACKFIRE.dgps[name].draw(np.random.default_rng(4), BACKFIRE.profile("quick"), 2000)
        out = backfire_core(**batch)
        assert np.mean(out["code_at_floor"] == 1) > 0.10, name
        assert np.mean(out["code"] == 1) <= tolerance(0.025, 2000), name
    batch = BACKFIRE.dgps["effect: advantage exactly 0.05, field's effects clustered just inside the floor"].draw(
        np.random.default_rng(4), BACKFIRE.profile("quick"), 2000)
    out = backfire_core(**batch)
    assert np.mean(out["code_at_floor"] == -1) > 0.05
    assert np.mean(out["code"] == -1) <= tolerance(0.025, 2000)


def test_the_floor_interval_covers_the_population_floor():
    """Oracle: the order-statistic interval covers the 90 % quantile of |N(0, 1)| at least 95 % of the
    time at 60 and at 12 changes, and is the binomial ranks' (60 changes: ranks 50 and 59)."""
    from scipy.stats import norm

    from interp_steer.studies.rules.svf import floor_interval

    rng = np.random.default_rng(13)
    truth = norm.ppf(0.95)
    for m in (60, 12):
        low, high, _, _, _ = floor_interval(rng.standard_normal((4000, m)))
        assert np.mean((low <= truth) & (truth <= high)) >= 0.95 - 0.007, m
    from scipy.stats import binom

    _, _, lo, u, _ = floor_interval(rng.standard_normal((1, 60)))
    lo, u = int(lo[0]), int(u[0])  # the ranks: the tightest with each tail's probability at most 2.5 %
    assert binom.cdf(lo - 1, 60, 0.9) <= 0.025 < binom.cdf(lo, 60, 0.9)
    assert binom.sf(u - 1, 60, 0.9) <= 0.025 < binom.sf(u - 2, 60, 0.9)


def test_control_needs_the_field_itself_to_move_the_score():
    """Red team F4: a field that moves the wrong way less than the vector, or not at all, is less
    harmful, not stronger control: the difference is above 0 (the rule before said "reproduced") but
    the verdict is not "reproduced"."""
    rng = np.random.default_rng(14)
    vector = -0.6 + 0.3 * rng.standard_normal(30)
    for field in (-0.1 + 0.3 * rng.standard_normal(30), np.zeros(30)):
        out = control_core(field, vector)
        assert bool(out["above"][0]) and not bool(out["moves"][0])
        decision = CONTROL.decide(field=field, vector=vector)
        assert decision.verdict != "reproduced" and "not above 0" in decision.reason
    assert CONTROL.decide(field=vector + 1.2, vector=vector).verdict == "reproduced"


def test_long_form_is_not_liberal_when_one_first_third_is_weak():
    """Red team F3: equal retention (2), first-third effects 0.5 and 0.15: the ratio's jackknife
    interval (the rule before: ``low > 0`` after the gate) read "reproduced" 5.9 %; the
    denominator-free form stays within the design on the same runs."""
    batch = LONG_FORM.dgps["null: equal retention 2, the vector's first third weak"].draw(
        np.random.default_rng(4), LONG_FORM.profile("quick"), 3000)
    from interp_steer.studies.rules.svf import long_form_core

    out = long_form_core(**batch)
    assert np.mean(out["gate"] & (out["low"] > 0)) > 0.05
    assert np.mean(out["code"] == 1) <= tolerance(0.025, 3000)


@pytest.mark.parametrize(("rule", "inputs", "match"), [
    (CONTROL, {"field": np.r_[np.inf, np.ones(29)], "vector": np.ones(30)}, "field holds ±inf"),
    (CONTROL, {"field": np.ones((15, 2)), "vector": np.ones(30)}, "field must be 1-D"),
    (BACKFIRE, {"field": np.ones(30), "vector": np.ones(30), "reference": np.full((30, 2), np.inf)},
     "reference holds ±inf"),
    (BACKFIRE, {"field": np.ones(30), "vector": np.ones(30), "reference": np.ones((20, 2))}, "one row per prompt"),
    (LONG_FORM, {"field": np.ones((2, 30, 3)), "vector": np.ones((2, 30, 3))}, "field must be 2-D"),
    (LONG_FORM, {"field": np.ones((30, 3)), "vector": np.r_[np.ones((29, 3)), [[1, 1, -np.inf]]]},
     "vector holds ±inf"),
    (MULTI, {"field_alone": np.ones((30, 2)), "field_together": np.where(np.arange(60).reshape(30, 2) < 5, np.inf, 1.0),
             "vector_alone": np.ones((30, 2)), "vector_together": np.ones((30, 2))}, "field_together holds ±inf"),
    (MULTI, {"field_alone": np.ones((30, 2)), "field_together": np.ones((29, 2)), "vector_alone": np.ones((30, 2)),
             "vector_together": np.ones((30, 2))}, "same shape"),
])
def test_the_rules_refuse_infinite_values_and_wrong_shapes_by_name(rule, inputs, match):
    """Red team F6/F7: ±inf was dropped like an unscored prompt, and wrong shapes were raveled or sliced."""
    with pytest.raises(ValueError, match=match):
        rule.decide(**inputs)


def test_a_setting_must_be_one_number():
    from interp_steer.studies.rules.svf.common import check_setting

    with pytest.raises(ValueError, match="margin must be one number"):
        check_setting(np.array([0.25, 0.5]), "margin", 0.0, np.inf)
