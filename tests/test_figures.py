"""The studies' figures and report text say what they show: cell numbers that tell cells apart,
legends in words, the paper's reference curve drawn where the report tabulates it, plain tick labels,
and one typography (α, λ, ±, √, ≥) in reports and rule cards."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pytest

from interp_steer.plotting import cell_formatter
from interp_steer.studies.rules import REGISTRY

REAL_PERPLEXITIES = [
    3.8878,
    3.8240,
    3.6860,
    3.8555,
    4.2449,
    6.6291,
    5.6712,
    5.3832,
    6.8538,
    10.1880,
]
"""The default model's quick collision grid (λ = 0.3 then 0.8), which the old figure wrote as "4" five times."""


def texts_of(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


# ------------------------------------------------------------------------------ cell numbers


def test_cell_formatter_tells_close_cells_apart():
    write = cell_formatter([3.96, 4.04])
    assert [write(v) for v in (3.96, 4.04)] == ["3.96", "4.04"]
    write = cell_formatter(REAL_PERPLEXITIES)
    shown = [write(v) for v in REAL_PERPLEXITIES]
    assert len(set(shown)) == len(shown) and shown[:5] == ["3.89", "3.82", "3.69", "3.86", "4.24"]
    assert shown[-1] == "10.2"
    write = cell_formatter([95.2, 133.6, 166.0])  # far apart: three significant figures, no more
    assert [write(v) for v in (95.2, 133.6, 166.0)] == ["95.2", "134", "166"]
    write = cell_formatter([4.001, 4.002, np.nan])  # closer than 3 figures show: the range decides
    assert [write(v) for v in (4.001, 4.002, np.nan)] == ["4.001", "4.002", "n/a"]
    assert cell_formatter([0.0, 0.0])(0.0) == "0"
    with pytest.raises(ValueError, match="significant"):
        cell_formatter([1.0], significant=0)


# ------------------------------------------------------------------------------ collision


@pytest.fixture(scope="module")
def collision(tiny):
    from interp_steer.studies.collision import collide

    return collide(
        tiny, quick=True, max_prompts=3, max_passages=20, max_new_tokens=4, lambdas=(0.3, 0.8)
    )


def test_perplexity_heatmap_writes_cells_that_differ_differently(collision):
    from interp_steer.studies.collision.figures import plot_heatmaps

    planted = []
    values = iter(REAL_PERPLEXITIES)
    for cell in collision.cells:  # λ-major, as the grid is laid out
        metrics = {
            **cell["metrics"],
            "perplexity": {**cell["metrics"]["perplexity"], "mean": next(values)},
        }
        planted.append({**cell, "metrics": metrics})
    fig = plot_heatmaps(replace(collision, cells=planted))
    perplexity = next(ax for ax in fig.axes if ax.get_title().startswith("coherence: perplexity"))
    shown = texts_of(perplexity)
    assert sorted(shown) == sorted(
        ["3.89", "3.82", "3.69", "3.86", "4.24", "6.63", "5.67", "5.38", "6.85", "10.2"]
    )
    vader = next(ax for ax in fig.axes if ax.get_title().startswith("moral valence: VADER"))
    image = vader.get_images()[0]  # a diverging map is white at "no lean": centred on 0
    low, high = image.norm.vmin, image.norm.vmax
    assert math.isclose(low, -high)
    plt.close(fig)


def test_heatmap_cells_are_the_saved_cell_means(collision):
    # Oracle: the per-prompt scores the run kept, averaged as the report says (perplexity geometric).
    from interp_steer.studies.collision.figures import cell_means

    for metric in ("vader", "perplexity", "repetition"):
        values = collision.per_prompt[metric]
        with np.errstate(invalid="ignore"):
            expected = (
                np.exp(np.nanmean(np.log(values), axis=-1))
                if metric == "perplexity"
                else np.nanmean(values, axis=-1)
            )
        np.testing.assert_allclose(
            cell_means(collision, metric), expected, rtol=1e-9, equal_nan=True
        )


def test_dominance_legend_says_the_lean_in_words():
    from interp_steer.studies.collision.figures import dominance_label

    assert dominance_label(0.3, 0.13, "none", best=True) == "λ = 0.3 (best usable): area +0.13"
    assert dominance_label(0.8, -0.2, "B", best=False) == "λ = 0.8: area -0.20, leans to B"
    assert dominance_label(0.8, 0.4, "A", best=False).endswith("leans to A")
    assert dominance_label(0.8, float("nan"), "none", best=False) == "λ = 0.8: area n/a"


def test_dominance_figure_draws_the_papers_curve_and_no_leans_none(collision):
    from interp_steer.studies.collision.figures import plot_dominance

    fig = plot_dominance(collision)
    gamma = next(f for f in collision.findings if f.key == "dominance").numbers["paper_gamma"]
    assert gamma == pytest.approx(0.5)
    for ax in fig.axes:
        labels = legend_texts(ax)
        assert not any("leans none" in label or "+nan" in label for label in labels), labels
        paper = [
            line for line in ax.get_lines() if "paper's reference curve" in str(line.get_label())
        ]
        assert len(paper) == 1 and paper[0].get_label().endswith("d(α) = √α")
        x, y = (np.asarray(v, dtype=float) for v in paper[0].get_data())
        np.testing.assert_allclose(y, np.sqrt(x))
        assert x.min() == 0 and x.max() == 1
        assert "the paper's reference curve, d(α) = √α" in labels
    plt.close(fig)


ASCII_MATH = re.compile(r"\+-|\balpha\b|\blambda\b|\bgamma\b|sqrt\(|>=|<=|\^2\b|[0-9]x\b")


def test_collision_report_has_one_typography(collision):
    from interp_steer.studies.collision.report import render_report

    text = render_report(collision, figures=False)
    assert (
        "±" in text and "α" in text and "√" in text
    )  # the rule paragraph is there, in the report's signs
    assert "Rule `collision.dominance`:" in text
    found = ASCII_MATH.findall(text)
    assert not found, found


def card_texts(rule) -> list[str]:
    texts = [rule.claim, rule.text, rule.notes, *rule.inputs.values()]
    return texts + [dgp.description for dgp in rule.dgps.values()]


@pytest.mark.parametrize("rule_id", sorted(REGISTRY))
def test_rule_cards_use_the_reports_typography(rule_id):
    from interp_steer.studies.rules import get

    for text in card_texts(get(rule_id)):
        found = ASCII_MATH.findall(text)
        assert not found, (found, text[:200])


# ------------------------------------------------------------------------------ robustness, svf, patching


def test_robustness_perplexity_axis_reads_as_plain_ratios():
    from interp_steer.studies.robustness.report import figure_perplexity

    def cell(c, mean):
        return {"coefficient": c, "ratio": {"mean": mean, "low": mean * 0.95, "high": mean * 1.05}}

    report = {
        "model": {"name": "m"},
        "perplexity": {
            "corpora": {
                "neutral": {"cells": [cell(0.0, 1.0), cell(1.0, 1.04)]},
                "on_topic": {"cells": [cell(0.0, 1.0), cell(1.0, 0.97)]},
            }
        },
    }
    ax = figure_perplexity(report)
    ax.figure.canvas.draw()
    labels = [
        t.get_text()
        for t in ax.get_yticklabels(minor=False) + ax.get_yticklabels(minor=True)
        if t.get_text()
    ]
    assert labels and not any(
        "10^" in label or "times" in label or "\\" in label for label in labels
    ), labels
    assert "1" in labels
    assert "1.1× and 1.5× unsteered" in legend_texts(ax)
    assert "×" in ax.get_xlabel() and "x mean" not in ax.get_xlabel()
    plt.close(ax.figure)


def test_svf_figures_name_the_unit_and_the_backfire_reference(tiny):
    from interp_steer.studies.svf import svf
    from interp_steer.studies.svf.report import figure_backfire, figure_effect

    result = svf(
        tiny,
        quick=True,
        max_passages=16,
        max_prompts=3,
        max_new_tokens=4,
        long_tokens=6,
        coefficients=(-2.0, 0.0, 2.0),
        folds=3,
        multi_attribute=False,
    )
    ax = figure_backfire(result)
    assert "5 %: a random direction of the same length" in legend_texts(ax)
    assert all(len(line) <= 80 for line in ax.get_title().splitlines())
    assert ax.get_xlabel() == "steering coefficient (× mean residual norm)"
    plt.close(ax.figure)
    fig = figure_effect(result)
    assert "steered − unsteered" in fig.axes[0].get_ylabel()
    plt.close(fig)


def test_patching_component_figure_titles_metrics_in_words_on_whole_layers(tiny):
    from interp_steer.studies.patching import dominance_patching
    from interp_steer.studies.patching.report import (
        METRIC_TITLES,
        plot_layer_component,
        plot_layer_position,
    )

    result = dominance_patching(tiny, max_prompts=4, max_passages=20, layer=1, lam=1.0)
    fig = plot_layer_component(result)
    assert [ax.get_title() for ax in fig.axes] == list(METRIC_TITLES.values())
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = ax.get_xticks()
        assert np.allclose(ticks, np.round(ticks)), ticks
    plt.close(fig)
    ax = plot_layer_position(result)
    assert f"steering layer {result.layer}" in ax.get_title()
    plt.close(ax.figure)
