"""A/B evaluation, perplexity under steering, and the statistics they report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp_steer as ist
from interp_steer.data import ABQuestion
from interp_steer.directions import SteeringVector, VectorMetadata
from interp_steer.evaluation import ab_eval, perplexity_under_steering
from interp_steer.likelihood import token_nll
from interp_steer.stats import backfire_rate, bootstrap_mean, paired_difference
from interp_steer.steering import steer

QUESTIONS = [
    ABQuestion(f"Would you share the {thing}?\n\nChoices:\n(A) Yes\n(B) No", m, n)
    for thing, m, n in [("bread", "(A)", "(B)"), ("map", "(B)", "(A)"), ("umbrella", "(A)", "(B)")]
]


@pytest.fixture(scope="module")
def vector(tiny):
    gen = torch.Generator().manual_seed(1)
    return SteeringVector({layer: torch.randn(tiny.d_model, generator=gen) for layer in range(tiny.n_layers)},
                          VectorMetadata(model=tiny.name, d_model=tiny.d_model))


def unsteered_p_matching(model, question):
    text = model.format_chat(question.question) + "("
    ids = torch.tensor([model.encode([text])[0]], device=model.device)
    letter = {c: model.encode([text + c])[0][-1] for c in "AB"}
    with torch.inference_mode():
        logits = model.hf_model(ids).logits[0, -1]
    pair = logits[[letter[question.matching_letter], letter[question.not_matching_letter]]]
    return float(torch.softmax(pair, -1)[0])


def test_ab_eval_coefficient_zero_is_the_unsteered_probability(tiny, vector):
    result = ab_eval(tiny, QUESTIONS, vector, coefficients=[-4, 0, 4], layers=[1, 2])
    assert result.values.shape == (2, 3, 3)
    assert ((result.values >= 0) & (result.values <= 1)).all()
    for i, q in enumerate(QUESTIONS):
        expected = unsteered_p_matching(tiny, q)
        assert result.values[0, 1, i] == pytest.approx(expected, abs=1e-5)
        assert result.values[1, 1, i] == pytest.approx(expected, abs=1e-5)
    assert not np.allclose(result.values[:, 0], result.values[:, 2])
    for layer_row in range(2):
        for c in range(3):
            assert result.low[layer_row][c] <= result.mean[layer_row][c] <= result.high[layer_row][c]


def test_ab_eval_frame_is_tidy_with_the_results_numbers(tiny, vector):
    result = ab_eval(tiny, QUESTIONS, vector, coefficients=[-4, 0, 4], layers=[1, 2])
    frame = result.to_frame()
    assert list(frame.columns[:4]) == ["layer", "coefficient", "metric", "value"] and len(frame) == 6
    cell = frame[(frame["layer"] == 2) & (frame["coefficient"] == 4.0)].iloc[0]
    assert (cell["value"], cell["low"], cell["high"], cell["n"]) == (result.mean[1][2], result.low[1][2],
                                                                    result.high[1][2], len(QUESTIONS))
    assert cell["metric"] == result.measure


def test_ab_eval_batching_matches_one_question_at_a_time(tiny, vector):
    together = ab_eval(tiny, QUESTIONS, vector, coefficients=[-3, 3], layers=[2], batch_size=8)
    alone = ab_eval(tiny, QUESTIONS, vector, coefficients=[-3, 3], layers=[2], batch_size=1)
    np.testing.assert_allclose(together.values, alone.values, atol=1e-4)


def test_ab_eval_letter_is_read_after_the_prompt_only(tiny, vector):
    """Steering after the prompt only touches the chat header and '(' — compare with a manual run."""
    from interp_steer.generation import format_prompts

    q = QUESTIONS[0]
    texts, lengths = format_prompts(tiny, [q.question], chat=None, system=None)
    ids = torch.tensor([tiny.encode([texts[0] + "("])[0]], device=tiny.device)
    letter = {c: tiny.encode([texts[0] + "(" + c])[0][-1] for c in "AB"}
    with torch.inference_mode(), steer(tiny, vector.select([1]), 5.0, positions="after_prompt", prompt_end=[lengths[0]]):
        logits = tiny.hf_model(ids).logits[0, -1]
    expected = float(torch.softmax(logits[[letter["A"], letter["B"]]], -1)[0])
    result = ab_eval(tiny, [q], vector, coefficients=[5.0], layers=[1])
    assert result.values[0, 0, 0] == pytest.approx(expected, abs=1e-5)


def test_perplexity_under_steering(tiny, vector):
    corpus = ist.load_builtin("baseline")[:4]
    result = perplexity_under_steering(tiny, corpus, vector, coefficients=[0.0, 40.0], layers=[1])
    for i, text in enumerate(corpus):
        ids = tiny.encode([text])[0]
        (nll,) = token_nll(tiny, [ids], [1])
        assert result.values[0, 0, i] == pytest.approx(float(nll.mean()), abs=1e-4)
        with steer(tiny, vector.select([1]), 40.0):
            (steered,) = token_nll(tiny, [ids], [1])
        assert result.values[0, 1, i] == pytest.approx(float(steered.mean()), abs=1e-4)
    assert result.mean[0][1] != result.mean[0][0]


def test_bad_inputs(tiny, vector):
    with pytest.raises(ValueError, match="empty"):
        ab_eval(tiny, [], vector)
    with pytest.raises(ValueError, match="not in the vector"):
        ab_eval(tiny, QUESTIONS, vector.select([1]), layers=[2])
    with pytest.raises(ValueError, match="coefficients is empty"):
        perplexity_under_steering(tiny, ["a b c"], vector, [], layers=[1])
    with pytest.raises(ValueError, match="fewer than 2 tokens"):
        perplexity_under_steering(tiny, ["a"], vector, [0.0], layers=[1])


def test_bootstrap_and_backfire():
    interval = bootstrap_mean([1.0, 2.0, 3.0, 4.0, np.nan])
    assert interval.n == 4 and interval.mean == 2.5 and interval.low < 2.5 < interval.high
    # One value used to get a zero-width interval, i.e. certainty; it now has none (see test_stats.py).
    assert np.isnan(bootstrap_mean([0.5]).low) and bootstrap_mean([0.5]).note
    assert paired_difference([2, 3, 4, 5], [1, 1, 1, 1]).excludes_zero
    assert not paired_difference([1, -1, 1, -1], [0, 0, 0, 0]).excludes_zero
    rate = backfire_rate([1.0, 2.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.5])  # one of four moved down
    assert rate.rate.mean == 0.25 and rate.n_within_floor == 1  # the unchanged one is neither
    assert backfire_rate([1.0, 2.0], [0.0, 0.0], direction=-1).rate.mean == 1.0
    with pytest.raises(ValueError, match="direction"):
        backfire_rate([1.0], [0.0], direction=0)
    with pytest.raises(ValueError, match="no finite"):
        bootstrap_mean([np.nan])


def test_all_nan_cells_are_reported_as_nan():
    from interp_steer.evaluation import _summarise

    values = np.array([[[np.nan, np.nan], [1.0, 4.0]]])
    result = _summarise("perplexity", [1], [0.0, 1.0], values, seed=0)
    assert np.isnan(result.mean[0][0])
    assert result.mean[0][1] == pytest.approx(2.0)  # perplexity: a geometric mean, as in the collision study
    assert result.to_dict()["aggregate"] == "geometric mean"
    assert _summarise("vader", [1], [0.0, 1.0], values, seed=0).mean[0][1] == 2.5


def test_anti_steerable_fraction_on_constructed_values():
    from interp_steer.evaluation import SweepResult, anti_steerable_fraction

    # P(matching) per question at coefficients -1, 0, 1: steerable, anti-steerable, a move within the
    # floor, and a question steering does not touch.
    per_question = np.array([[0.3, 0.5, 0.7], [0.7, 0.5, 0.3], [0.45, 0.5, 0.47], [0.5, 0.5, 0.5]]).T
    values = per_question[None]  # [layers, coefficients, questions]
    result = SweepResult("p_matching", [3], [-1.0, 0.0, 1.0], [[0.0] * 3], [[0.0] * 3], [[0.0] * 3], values, 4)
    anti = anti_steerable_fraction(result, floor=0.1)
    for key in ("3,-1", "3,1"):
        cell = anti["cells"][key]
        assert (cell["n_backfire"], cell["n_success"], cell["n_within_floor"]) == (1, 1, 2)
        assert cell["mean"] == 0.25
    assert anti_steerable_fraction(result)["cells"]["3,1"]["n_backfire"] == 2  # no floor: any move counts
    slope = anti["slope"]["3"]
    assert slope["mean"] == 0.25 and slope["n"] == 4  # only the anti-steerable question slopes down
    with pytest.raises(ValueError, match="p_matching"):
        anti_steerable_fraction(SweepResult("nll", [3], [0.0], [[0.0]], [[0.0]], [[0.0]], values[:, :1], 4))


def test_generation_sweep_backfire_follows_the_scorer_direction(tiny, vector):
    from interp_steer.evaluation import generation_sweep

    prompts = ["Describe the sea.", "A letter arrived.", "Tell me about the city."]

    def length(texts):  # a user's scorer, NaN for some texts (e.g. a classifier that abstains)
        return [float("nan") if len(t) % 3 == 0 else float(len(t)) for t in texts]

    kwargs = dict(max_new_tokens=5, scorers={"length": length}, backfire_metric="length", backfire_floor=0.0)
    up = generation_sweep(tiny, prompts, vector, [-6.0, 0.0, 6.0], layers=[1], **kwargs)
    down = generation_sweep(tiny, prompts, vector, [-6.0, 0.0, 6.0], layers=[1], backfire_direction=-1, **kwargs)
    values = up.metrics["length"].values[0]  # [coefficients, prompts]
    for j, key in ((0, "1,-6"), (2, "1,6")):
        a, b = up.backfire[key], down.backfire[key]
        # lower-is-intended flips every counted move; NaN prompts are counted apart in both
        assert (a["n_backfire"], a["n_success"]) == (b["n_success"], b["n_backfire"])
        assert a["n_nan"] == b["n_nan"] == int((np.isnan(values[j]) | np.isnan(values[1])).sum())
        assert a["n"] + a["n_nan"] == len(prompts)
    assert any(up.backfire[k]["n_backfire"] + up.backfire[k]["n_success"] > 0 for k in ("1,-6", "1,6"))
    payload = up.to_dict()["backfire"]
    assert payload["metric"] == "length" and payload["direction"] == 1 and payload["floor"] == 0.0
    assert payload["floor_source"].startswith("none")
    frame = up.to_frame()  # tidy: (layer, coefficient, metric), the sweep's own numbers
    for metric, sweep in up.metrics.items():
        rows = frame[frame["metric"] == metric]
        np.testing.assert_array_equal(rows["value"], [v for row in sweep.mean for v in row])  # NaN == NaN here
        np.testing.assert_array_equal(rows["high"], [v for row in sweep.high for v in row])
    backfire = frame[frame["metric"] == "backfire"].set_index("coefficient")
    assert backfire.loc[6.0, "value"] == up.backfire["1,6"]["mean"] and backfire.loc[6.0, "n"] == up.backfire["1,6"]["n"]
    with pytest.raises(ValueError, match="backfire_metric"):
        generation_sweep(tiny, prompts, vector, [0.0, 1.0], layers=[1], max_new_tokens=2, backfire_metric="toxicity")


def test_generation_sweep_estimates_its_noise_floor_from_unsteered_seeds(tiny, vector):
    from interp_steer.evaluation import generation_sweep

    sweep = generation_sweep(tiny, ["Describe the sea.", "A letter arrived."], vector, [0.0, 4.0], layers=[1],
                             max_new_tokens=5)
    settings = sweep.to_dict()["backfire"]
    assert settings["floor_source"].startswith("seeds") and settings["floor"] >= 0.0
    assert sweep.backfire["1,4"]["floor"] == settings["floor"]


def test_answer_letter_ids_are_the_letters_one_next_token(tiny):
    """Oracle: the tokenizer's own vocabulary: each id decodes to its letter, and the text followed
    by the letter encodes as the text's ids plus that id. A 'letter' that is several tokens raises."""
    from interp_steer.evaluation import answer_letter_ids

    text = "Is the sky blue?\n\nChoices:\n(A) yes\n(B) no\n\nAnswer: ("
    ids = answer_letter_ids(tiny, text, ["A", "B"])
    assert [tiny.tokenizer.decode([i]) for i in ids] == ["A", "B"] and ids[0] != ids[1]
    base = tiny.encode([text])[0]
    for letter, token in zip("AB", ids, strict=True):
        assert tiny.encode([text + letter])[0] == [*base, token]
    with pytest.raises(ValueError, match="not one next token"):
        answer_letter_ids(tiny, text, ["xyzzyplughqwerty"])
