"""The patching study's one verdict, ``patching.holds_up``: the rule the study calls, its inputs, and
that it decides what the study's selection reports."""

from __future__ import annotations

import numpy as np
import pytest

from interp_steer.patching import normalised_effect
from interp_steer.studies.patching.selection import select_and_report
from interp_steer.studies.rules import REGISTRY, get
from interp_steer.studies.rules.patching import HOLDS_UP


def test_it_is_registered_with_its_claim():
    assert REGISTRY["patching.holds_up"] is HOLDS_UP is get("patching.holds_up")
    assert "replicates" in HOLDS_UP.claim and "Bonferroni" in HOLDS_UP.text


def test_it_decides_as_the_family_wise_fieller_interval_says():
    """Oracle: the normalised effect's Fieller interval at 1 − 0.05/k, computed by the core patching
    function, on planted effects of both signs and none."""
    rng = np.random.default_rng(0)
    seen = set()
    for trial in range(200):
        n, k = 8, int(rng.integers(1, 9))
        target = rng.standard_normal(n)
        source = target + 1 + 0.3 * rng.standard_normal(n)
        beta = rng.choice([-0.6, -0.1, 0.0, 0.1, 0.6])
        patched = target + beta * (source - target) + 0.3 * rng.standard_normal(n)
        sign = float(rng.choice([-1.0, 1.0]))
        _, low, high = normalised_effect(patched, target, source, level=1 - 0.05 / k)
        expected = ("reproduced" if sign * low > 0 and sign * high > 0
                    else "not reproduced" if sign * low < 0 and sign * high < 0 else "inconclusive")
        decision = HOLDS_UP.decide(patched=patched, target=target, source=source, sign=sign, k=k)
        assert decision.verdict == expected, (trial, low, high, sign)
        assert decision.numbers["holds_up"] == (expected == "reproduced")
        seen.add(expected)
    assert seen == {"reproduced", "not reproduced", "inconclusive"}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"patched": [1.0, np.inf, 2.0]}, "patched holds ±inf"),
    ({"patched": [1.0, 2.0]}, "same shape"),
    ({"sign": 0}, "sign must be"),
    ({"k": 0}, "k must be a positive int"),
    ({"k": 2.5}, "k must be a positive int"),
])
def test_it_refuses_inputs_it_would_misread(kwargs, match):
    inputs = {"patched": [1.0, 2.0, 3.0], "target": [0.0, 0.1, 0.2], "source": [1.0, 1.2, 1.1], "sign": 1, "k": 3}
    with pytest.raises(ValueError, match=match):
        HOLDS_UP.decide(**{**inputs, **kwargs})


def test_the_studys_selection_reports_the_rules_verdict():
    rng = np.random.default_rng(4)
    n = 12
    target = rng.standard_normal(n)
    source = target + 2 + 0.2 * rng.standard_normal(n)
    cells = np.zeros((n, 6))
    cells[:, 2] = 0.8  # a component that carries 80 % of the span, consistently
    patched = {"attn_layer": target[:, None] + cells * (source - target)[:, None] + 0.05 * rng.standard_normal((n, 6))}
    choose, report = list(range(0, n, 2)), list(range(1, n, 2))
    rows = select_and_report(patched, target, source, choose, report, k=3)
    assert all(row["rule"] == "patching.holds_up" for row in rows)
    assert all(row["holds_up"] == (row["verdict"] == "reproduced") for row in rows)
    top = rows[0]
    assert top["index"] == [2] and top["holds_up"]
    again = HOLDS_UP.decide(patched=patched["attn_layer"][report, 2], target=target[report], source=source[report],
                            sign=1, k=3)
    assert again.verdict == top["verdict"]
