"""The registry of verdict rules, checked as a whole (each study's own rule tests are in
``tests/test_rules_<study>.py``): every verdict the studies print is registered, every rule's batched
core decides exactly as its ``decide`` does, and a fast simulation of every rule under every
registered data-generating process stays within the design's error rates at the shipped sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from interp_steer.cli import main
from interp_steer.studies.rules import (
    CODES,
    DESIGN_RATE,
    DGP,
    REGISTRY,
    Decision,
    Rule,
    get,
    tolerance,
)
from interp_steer.studies.rules.base import one_run

EXPECTED = {
    "collision.dominance", "collision.coherence", "collision.shared_layer",
    "svf.control", "svf.backfire", "svf.long_form", "svf.multi_attribute",
    "robustness.ood", "robustness.sample_size", "robustness.adversarial", "robustness.perplexity",
    "robustness.model_size", "patching.holds_up",
}
FAST_RUNS = 400
FAST_RUNS_OF = {"robustness.sample_size": 40}
"""Rules whose run refits a bootstrap (0.05-0.15 s): 40 runs per world here, whatever their ``cost``
(which sets their card's runs: 200 for robustness.sample_size)."""


def test_every_verdict_the_studies_print_is_registered():
    assert EXPECTED <= set(REGISTRY), sorted(EXPECTED - set(REGISTRY))


RULES = sorted(REGISTRY)
ROWS = [pytest.param(rule_id, profile, dgp, id=f"{rule_id}|{profile}|{dgp}")
        for rule_id in RULES for profile in REGISTRY[rule_id].profiles for dgp in REGISTRY[rule_id].dgps]


@pytest.mark.parametrize("rule_id", RULES)
def test_a_rule_card_has_what_a_reader_needs(rule_id):
    rule = get(rule_id)
    assert rule.claim and rule.text and rule.inputs
    assert {"quick", "full"} <= set(rule.profiles)
    truths = {d.truth for d in rule.dgps.values()}
    assert truths == {"null", "effect"} and sum(d.paper for d in rule.dgps.values()) == 1


@pytest.mark.parametrize("rule_id", RULES)
def test_the_batched_core_decides_as_decide_does(rule_id):
    """``codes`` (what simulations run) and ``decide`` (what the study calls) agree run by run, on
    runs drawn from every registered DGP at both profiles."""
    rule = get(rule_id)
    rng = np.random.default_rng(7)
    runs = 6 if rule.cost <= 1 else 2
    for profile in rule.profiles:
        size = rule.profile(profile)
        for dgp in rule.dgps.values():
            batch = dgp.draw(rng, size, runs)
            codes = np.asarray(rule.codes(**batch)).reshape(runs)
            decided = [CODES[rule.decide(**one_run(batch, i)).verdict] for i in range(runs)]
            assert codes.tolist() == decided, (profile, dgp.name)


@pytest.mark.parametrize(("rule_id", "profile", "dgp"), ROWS)
def test_every_rule_keeps_its_error_rates_in_a_fast_simulation(rule_id, profile, dgp):
    """False "reproduced" under each null, false "not reproduced" under each effect, at most 5 % plus
    Monte Carlo error (the full simulations, with more runs, are on each rule's card)."""
    rule = get(rule_id)
    runs = FAST_RUNS_OF.get(rule_id, max(40, int(FAST_RUNS / rule.cost)))
    rates = rule.simulate(dgp, profile, runs=runs, seed=11)
    assert abs(sum(rates[v] for v in CODES) - 1) < 1e-9
    truth = rule.dgps[dgp].truth
    error = rates["reproduced"] if truth == "null" else rates["not reproduced"]
    assert error <= tolerance(DESIGN_RATE, runs), rates


def test_simulate_takes_a_users_own_world_one_run_at_a_time():
    """A reviewer's DGP is a plain callable drawing one run; the rule's decide runs on each."""
    rule = get("robustness.perplexity")
    calls = []

    def world(rng, profile):
        calls.append(profile["neutral_texts"])
        return {"log_ratios": rng.normal(np.log(1.3), 0.1, profile["neutral_texts"])}

    rates = rule.simulate(world, "full", runs=30, seed=0)
    assert calls == [120] * 30 and rates["reproduced"] == 1.0
    assert rule.simulate(world, {"neutral_texts": 3}, runs=5)["runs"] == 5


def test_registering_checks_the_rule_can_be_simulated():
    def decide(x):
        return Decision("inconclusive", "", {})

    def draw(rng, profile, runs):
        return {"x": np.zeros((runs, 2))}

    base = dict(id="test.rule", claim="c", text="t", inputs={"x": "[2]"}, decide_one=decide,
                codes=lambda x: np.zeros(len(x)), profiles={"quick": {}, "full": {}})
    from interp_steer.studies.rules import register

    with pytest.raises(ValueError, match="null DGP and one effect DGP"):
        register(Rule(**base, dgps={"n": DGP("n", "null", "", draw, paper=True)}))
    with pytest.raises(ValueError, match="exactly one DGP must be marked paper"):
        register(Rule(**base, dgps={"n": DGP("n", "null", "", draw), "e": DGP("e", "effect", "", draw)}))
    with pytest.raises((ValueError, TypeError), match="truth"):  # TypeError from the test-time type checker
        DGP("x", "maybe", "", draw)
    with pytest.raises(ValueError, match="verdict must be one of"):
        Decision("probably", "", {})
    assert "test.rule" not in REGISTRY


def test_decide_refuses_inputs_the_rule_does_not_take():
    with pytest.raises(TypeError, match=r"unknown inputs \['log_ratio'\]"):
        get("robustness.perplexity").decide(log_ratio=[0.1, 0.2])
    with pytest.raises(ValueError, match="no rule 'collision.dominanse'"):
        get("collision.dominanse")


def test_the_command_line_lists_every_rule_with_its_card(capsys):
    assert main(["rules", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {row["id"] for row in listed} == set(REGISTRY) and all(row["claim"] and row["rule"] for row in listed)
    # full cards (every world simulated) for the rules whose runs are cheap; the card code is the same for
    # all, and every world of the expensive ones is simulated by the fast simulation test above
    cheap = sorted(rule_id for rule_id, rule in REGISTRY.items() if rule.cost <= 1)
    assert len(cheap) >= len(REGISTRY) - 2
    assert main(["rules", *cheap, "--json", "--runs", "40"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in cards] == cheap
    for card in cards:
        assert card["claim"] and card["rule"] and card["simulations"]
        assert set(card["power_at_paper_effect"]) == set(REGISTRY[card["id"]].profiles)
    assert main(["rules", "robustness.perplexity", "--runs", "40"]) == 0
    text = capsys.readouterr().out
    assert "== robustness.perplexity ==" in text and "power at the paper's effect" in text
