"""The collision study: mixing identities, decomposition and dominance against known answers, the
result's schema, and an end-to-end run on the tiny model."""

from __future__ import annotations

import json
import math

import jsonschema
import numpy as np
import pytest
import torch

import interp_steer as ist
from interp_steer.cli import main
from interp_steer.directions import VectorMetadata
from interp_steer.generation import Generation
from interp_steer.likelihood import token_nll
from interp_steer.metrics import score_generations
from interp_steer.studies.collision import (
    CollisionConfig,
    collide,
    collision_vector,
    common_scale,
    decompose,
    dominance,
    schema,
)

D = 16


def _vector(seed: int, layers=(0, 1), resid=10.0) -> ist.SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    meta = VectorMetadata(model="m", d_model=D, hook_point="resid_post", method="mean_diff",
                          resid_norm={layer: resid for layer in layers})
    return ist.SteeringVector({layer: torch.randn(D, generator=gen) for layer in layers}, meta)


# ------------------------------------------------------------------------------------ mixing


def test_mixing_identities():
    a, b = _vector(0), _vector(1)
    for layer in a.layers:
        assert torch.allclose(collision_vector(a, b, 1.0, 0.7)[layer], 0.7 * a[layer])
        assert torch.allclose(collision_vector(a, b, 0.0, 0.7)[layer], 0.7 * b[layer])
        assert torch.equal(collision_vector(a, b, 0.4, 0.0)[layer], torch.zeros(D))
        assert torch.allclose(collision_vector(a, b, 0.25, 2.0)[layer], 2.0 * (0.25 * a[layer] + 0.75 * b[layer]))


def test_common_scale_gives_both_vectors_the_given_norm():
    a, b = _vector(0), _vector(1) * 5.0
    sa, sb = common_scale(a, b, {0: 3.0, 1: 4.0})
    for layer, target in ((0, 3.0), (1, 4.0)):
        assert sa.norms()[layer] == pytest.approx(target, rel=1e-5)
        assert sb.norms()[layer] == pytest.approx(target, rel=1e-5)
        assert float(torch.nn.functional.cosine_similarity(sa[layer], a[layer], dim=0)) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="different layers"):
        common_scale(a, _vector(2, layers=(0, 2)))


def test_lambda_zero_cells_generate_the_unsteered_text(tiny):
    a, b = _scaled_personas(tiny)
    prompts = ["The harbour at dawn", "A letter arrived"]
    plain = ist.generate(tiny, prompts, max_new_tokens=6, chat=False)
    rows = ist.RowDeltas.from_rows([[(a, 0.0 * 0.3), (b, 0.0 * 0.7)] for _ in prompts])
    zero = ist.generate(tiny, prompts, max_new_tokens=6, chat=False, steering=ist.Steering(rows, positions="after_prompt"))
    assert [g.token_ids for g in zero] == [g.token_ids for g in plain]
    pure_a = ist.RowDeltas.from_rows([[(a, 5.0), (b, 0.0)] for _ in prompts])
    steered = ist.generate(tiny, prompts, max_new_tokens=6, chat=False, steering=ist.Steering(pure_a, positions="after_prompt"))
    assert [g.token_ids for g in steered] != [g.token_ids for g in plain]  # the grid is not a no-op


# ----------------------------------------------------------------------------- decomposition


def test_decomposition_recovers_a_synthetic_mix_exactly():
    gen = torch.Generator().manual_seed(3)
    v_a, v_b = torch.randn(D, generator=gen), torch.randn(D, generator=gen)
    x = torch.stack([0.3 * v_a - 1.7 * v_b, 2.0 * v_a, -0.5 * v_b])
    parts = decompose(x, v_a, v_b)
    np.testing.assert_allclose(parts.coef_a, [0.3, 2.0, 0.0], atol=1e-10)
    np.testing.assert_allclose(parts.coef_b, [-1.7, 0.0, -0.5], atol=1e-10)
    np.testing.assert_allclose(parts.residual_fraction, 0.0, atol=1e-12)  # x was built in float32


def test_decomposition_residual_is_the_orthogonal_part():
    gen = torch.Generator().manual_seed(4)
    v_a, v_b = torch.randn(D, generator=gen).double(), torch.randn(D, generator=gen).double()
    basis, _ = torch.linalg.qr(torch.stack([v_a, v_b], dim=1))
    noise = torch.randn(D, generator=gen).double()
    orthogonal = noise - basis @ (basis.T @ noise)
    x = 1.5 * v_a + 0.5 * v_b + orthogonal
    parts = decompose(x, v_a, v_b)
    assert parts.coef_a[0] == pytest.approx(1.5)
    assert parts.coef_b[0] == pytest.approx(0.5)
    assert parts.residual_fraction[0] == pytest.approx(float(orthogonal.norm() ** 2 / x.norm() ** 2))


def test_decomposition_bad_input():
    v = torch.ones(D)
    with pytest.raises(ValueError, match="parallel"):
        decompose(torch.randn(D), v, 2 * v)
    with pytest.raises(ValueError, match="features"):
        decompose(torch.randn(D + 1), v, torch.randn(D))
    with pytest.raises(ValueError, match="zero vector"):
        decompose(torch.randn(D), v, torch.zeros(D))


# ---------------------------------------------------------------------------------- dominance

ALPHAS = np.linspace(0, 1, 9)


def _scores(response, n_items=12, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    offsets = rng.normal(size=n_items)  # per-prompt baselines cancel in d(α)
    return np.array([[response(a) + o + noise * rng.normal() for o in offsets] for a in ALPHAS])


def test_dominance_is_zero_for_a_linear_response():
    result = dominance(ALPHAS, _scores(lambda a: -0.4 + 0.7 * a))
    assert result.area.mean == pytest.approx(0.0, abs=1e-12)
    assert result.balance_point == pytest.approx(0.5)
    np.testing.assert_allclose(result.curve, ALPHAS, atol=1e-12)
    assert result.verdict == "none"


def test_dominance_is_positive_for_a_response_bent_toward_a():
    result = dominance(ALPHAS, _scores(lambda a: math.sqrt(a), noise=0.05))
    assert result.area.low > 0.1  # ∫ (√α − α) dα = 1/6
    assert result.area.mean == pytest.approx(1 / 6, abs=0.03)
    assert result.balance_point == pytest.approx(0.25, abs=0.05)
    assert result.verdict == "A"
    toward_b = dominance(ALPHAS, _scores(lambda a: a**2, noise=0.05))
    assert toward_b.area.high < 0 and toward_b.verdict == "B"


def test_dominance_needs_separated_ends():
    flat = dominance(ALPHAS, _scores(lambda a: 0.0, noise=0.3))
    assert not flat.ends.excludes_zero
    assert flat.verdict == "none" and "not separated" in flat.reason


def test_dominance_survives_cells_without_scores():
    # e.g. the probe readout when every completion of the grid is empty: no numbers, no crash.
    empty = dominance(ALPHAS, np.full((9, 4), np.nan))
    assert empty.verdict == "none" and empty.ends.n == 0 and math.isnan(empty.area.mean)


def test_dominance_bad_input():
    with pytest.raises(ValueError, match="increase from 0 to 1"):
        dominance([0, 0.5, 0.9], np.zeros((3, 4)))
    with pytest.raises(ValueError, match="alphas, items"):
        dominance(ALPHAS, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="at least 2 items"):
        dominance(ALPHAS, np.zeros((9, 1)))


def test_config_validation():
    with pytest.raises(ValueError, match="alphas must increase"):
        CollisionConfig(alphas=(0.0, 1.0))
    with pytest.raises(ValueError, match="lambdas must be positive"):
        CollisionConfig(lambdas=(0.0, 0.5))
    with pytest.raises(ValueError, match="layer must be"):
        CollisionConfig(layer="best")
    quick = CollisionConfig.quick(seed=3)
    assert quick.profile == "quick" and quick.seed == 3 and CollisionConfig(**quick.to_dict()) == quick


# -------------------------------------------------------------------------------- coherence


def test_coherence_flags_degenerate_text_not_a_change_of_tone(tiny):
    # Property: completions that are fluent text of a persona's tone (held-out passages of its own
    # corpus) are not "degraded" at either end; a looping, degenerate end is.
    from interp_steer.studies.collision.coherence import judge_coherence, references
    from interp_steer.studies.personas import StudyTexts

    n_new = 12
    config = CollisionConfig(alphas=(0.0, 0.5, 1.0), lambdas=(0.3, 0.8), max_new_tokens=n_new)
    a, b, base = (ist.load_builtin(name) for name in ("persona_a", "persona_b", "baseline"))
    prompts = ist.load_builtin("prompts")[:8]
    refs = references(tiny, config, StudyTexts(a[:24], b[:24], base[:24], prompts))
    unsteered = ist.generate(tiny, prompts, max_new_tokens=n_new)

    def as_completions(passages):
        cut = [ids[:n_new] for ids in tiny.encode(passages)]
        return [Generation(g.prompt, tiny.tokenizer.decode(ids), tuple(ids), g.prompt_ids, False)
                for g, ids in zip(unsteered, cut, strict=True)]

    loop = ["and then the door and then the door and then the door and then the door"] * len(prompts)
    ends = {"B": as_completions(b[40:48]), "A": as_completions(a[40:48]), "loop": as_completions(loop)}
    scored = {k: score_generations(tiny, g) for k, g in ends.items()}
    base_scores = score_generations(tiny, unsteered)
    # λ = 0.3: each end is fluent text of its own tone; λ = 0.8: the A end loops.
    grid = {"B": (scored["B"], scored["B"]), "A": (scored["A"], scored["loop"])}
    per_prompt = {metric: np.stack([np.stack([grid["B"][li][metric], (grid["B"][li][metric] + grid["A"][li][metric]) / 2,
                                              grid["A"][li][metric]]) for li in range(2)])
                  for metric in ("perplexity", "repetition", "vader")}
    coherence = judge_coherence(config, per_prompt, base_scores, refs)
    fluent, looping = coherence["per_lambda"]
    assert not fluent["degraded"], fluent["ends"]
    assert looping["degraded"] and looping["ends"]["A"]["degraded"] and not looping["ends"]["B"]["degraded"]
    assert coherence["best_lambda"] == 0.3
    assert fluent["ends"]["A"]["reference"] == "persona A corpus" and fluent["ends"]["B"]["reference"] == "persona B corpus"
    assert {"A", "B", "baseline"} <= set(coherence["reference"])
    # The old yardstick, the unsteered model's own greedy text, would have flagged the tone change alone.
    greedy = np.exp(np.nanmean(np.log(base_scores["perplexity"])))
    own_tone = np.exp(np.nanmean(np.log(scored["A"]["perplexity"])))
    assert own_tone / greedy > config.degradation_ratio


def test_reference_window_is_the_completion_length(tiny):
    from interp_steer.studies.collision.coherence import references
    from interp_steer.studies.personas import StudyTexts

    config = CollisionConfig(max_new_tokens=7, reference_passages=5)
    a = ist.load_builtin("persona_a")
    refs = references(tiny, config, StudyTexts(a[:9], a[9:18], a[18:27], ["p", "q"]))
    ref = refs["A"]
    assert ref.perplexity.shape == (5,) and ref.window == 7
    cut = [ids[:8] for ids in tiny.encode(a[:5])]  # 8 tokens: 7 predictions each
    nll = token_nll(tiny, cut, [1] * 5)
    assert all(len(v) == 7 for v in nll)
    np.testing.assert_allclose(ref.perplexity, [math.exp(float(v.mean())) for v in nll], rtol=1e-5)
    assert ref.to_dict()["perplexity"]["aggregate"] == "geometric mean"


# ------------------------------------------------------------------------------ end to end


def _scaled_personas(model, layers=(1,)):
    a_texts, b_texts, base = (ist.load_builtin(n)[:12] for n in ("persona_a", "persona_b", "baseline"))
    acts = ist.collect_activations(model, a_texts + b_texts + base, layers=list(layers))
    pa, pb, pn = acts.split(12, 12, 12)
    return common_scale(ist.from_activations(pa, pn), ist.from_activations(pb, pn))


def test_readout_from_the_personas_own_forwards_equals_a_separate_collection(tiny):
    """The study reads the passages mean-pooled in the same forward passes as the persona vectors
    (build_personas(pooled=True)); the readout fitted on them is the one a separate collection gives."""
    from interp_steer.studies.collision.readout import fit_readout
    from interp_steer.studies.personas import StudyTexts, build_personas

    texts = StudyTexts(*(ist.load_builtin(n)[:12] for n in ("persona_a", "persona_b", "baseline")), ["Hi", "Ho"])
    config = CollisionConfig(folds=3)
    both = [build_personas(tiny, *texts[:3], folds=3, pooled=pooled) for pooled in (True, False)]
    assert both[0].pooled_a is not None and both[1].pooled_a is None
    assert both[0].pooled_a.position == "mean" and both[0].pooled_a.n_texts == 12
    torch.testing.assert_close(both[0].act_a.values, both[1].act_a.values, rtol=0, atol=0)
    readouts = [fit_readout(tiny, config, personas, texts, False) for personas in both]
    probe = ["A calm morning by the sea.", "The storm broke the old mast."]
    assert np.array_equal(readouts[0].log_odds(tiny, probe), readouts[1].log_odds(tiny, probe))
    assert readouts[0].heldout_accuracy == readouts[1].heldout_accuracy


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("collide")
    result = collide(tiny, quick=True, max_prompts=4, max_passages=20, max_new_tokens=6, lambdas=(0.5, 2.0))
    return result, result.save(out)


def test_collide_writes_valid_json_figures_and_report(tiny_run):
    result, written = tiny_run
    payload = json.loads(written["json"].read_text())
    jsonschema.validate(payload, schema())
    assert len(payload["cells"]) == len(result.config.alphas) * len(result.config.lambdas)
    for name in ("heatmaps", "dominance", "layer_profiles", "decomposition", "geometry"):
        assert written[name].stat().st_size > 5000
    report = written["report"].read_text()
    for finding in result.findings:
        assert f"**{finding.verdict}**" in report
        assert finding.claim in report
    assert ist.SteeringVector.load(written["vector_a"]).norms() == pytest.approx(result.vector_a.norms())


def test_collision_schema_rejects_broken_results(tiny_run):
    payload = json.loads(tiny_run[1]["json"].read_text())
    dominance_finding = payload["findings"][0]
    assert dominance_finding["key"] == "dominance"
    without_mde = {k: v for k, v in dominance_finding["numbers"].items() if k != "mde"}
    for broken in (
        {k: v for k, v in payload.items() if k != "findings"},
        {**payload, "findings": [{**payload["findings"][0], "verdict": "probably"}] + payload["findings"][1:]},
        {**payload, "cells": [{**c, "metrics": {}} for c in payload["cells"]]},
        # the verdict (i) must carry its detectable effect, and the readout say what it was measured on
        {**payload, "findings": [{**dominance_finding, "numbers": without_mde}] + payload["findings"][1:]},
        {**payload, "readout": {**payload["readout"], "measured_on": "completions"}},
        {**payload, "coherence": {k: v for k, v in payload["coherence"].items() if k != "reference"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema())


def test_report_states_the_dominance_rule_from_the_findings_numbers(tiny_run):
    # report.md reads verdict (i), its detectable effect, the equivalence test and the mix counts from
    # the finding's numbers: planted numbers must come out verbatim.
    from dataclasses import replace

    from interp_steer.studies.collision.report import render_report

    result, written = tiny_run
    report = written["report"].read_text()
    for phrase in ("Verdict by the rule:", "this run could detect an area of ±", "on the raw VADER valence scale",
                   "Dominance is relative to a scale", "2·artanh(VADER compound) scale", "Equivalence (TOST at 5 %)",
                   "interior mixes", "not completions", "positions='after_prompt'", "persona A corpus",
                   "`collision.dominance` — `interp-steer rules collision.dominance`",
                   "`collision.coherence` — `interp-steer rules collision.coherence`",
                   "`collision.shared_layer` — `interp-steer rules collision.shared_layer`"):
        assert phrase in report, phrase
    assert "percentile bootstrap" not in report.split("## Findings")[0].split("dominance d(α)")[1]
    finding = result.findings[0]
    planted = {**finding.numbers, "mde": 0.4321, "mixes_above_point": 7, "n_mixes": 9, "verdict": "planted-verdict",
               "equivalence": {**finding.numbers["equivalence"], "inside": True, "bounds": [-0.1234, 0.1234]}}
    fake = replace(result, findings=[replace(finding, numbers=planted)] + result.findings[1:])
    text = render_report(fake, figures=False)
    assert "could detect an area of ±0.432 on the raw VADER valence scale" in text
    assert "d(α) > α at 7 of 9 interior mixes" in text and "**Verdict by the rule: planted-verdict**" in text
    assert "lies inside ±0.123: the effect is significantly smaller than the paper's" in text


def test_dominance_plot_names_the_scale_it_was_computed_on(tiny_run):
    from interp_steer.studies.collision.report import plot_dominance

    result, _ = tiny_run
    fig = plot_dominance(result)
    vader, probe = fig.axes
    assert result.dominance["vader"][0].scale == "vader_raw" and "raw VADER valence" in vader.get_ylabel()
    assert result.dominance["probe_valence"][0].scale == "identity" and "log-odds" in probe.get_ylabel()
    assert "P(A)" not in probe.get_title()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_readout_accuracy_is_the_readouts_own(tiny, tiny_run):
    # Oracle: an independent k-fold cross-validation of a probe on the readout's own features
    # (mean-pooled corpus passages at its layer), with the study's folds and seed.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    result, _ = tiny_run
    readout, config = result.readout, result.config
    n = config.max_passages
    texts = ist.load_builtin("persona_a")[:n] + ist.load_builtin("persona_b")[:n]
    x = ist.collect_activations(tiny, texts, layers=[readout["layer"]], position="mean").values[:, 0].double().numpy()
    y = np.r_[np.ones(n), np.zeros(n)]
    folds = StratifiedKFold(config.folds, shuffle=True, random_state=config.seed)
    expected = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), x, y, cv=folds).mean()
    assert readout["heldout_accuracy"] == pytest.approx(expected)
    assert readout["folds"] == config.folds and readout["measured_on"].endswith("not completions")
    # Not the A-vs-B profile's number: that scores choosing a layer on other (last-token) features.
    assert config.position == "last"
    assert readout["heldout_accuracy"] != pytest.approx(result.localisation.profiles["A vs B"].heldout_accuracy)


def test_decomposition_shift_is_the_grids_intervention(tiny):
    # The shift is measured with the grid's steering (from the prompt's last token on): positions
    # before it do not move at any layer, the steered ones move by exactly the vector at the steering
    # layer, and later layers match an independent unpadded run_with_cache of each transcript alone.
    from interp_steer.studies.collision.decomposition import observed_shifts, unsteered_transcripts

    prompts = ["The harbour at dawn", "A letter arrived for the keeper of the lighthouse"]
    unsteered = ist.generate(tiny, prompts, max_new_tokens=5)
    transcripts, ends = unsteered_transcripts(tiny, prompts, unsteered)
    direction = 3.0 * torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(5))
    vector = ist.SteeringVector({1: direction}, VectorMetadata(model=tiny.name, d_model=tiny.d_model))
    layers = [1, 2, 3]
    shifts = observed_shifts(tiny, transcripts, ends, [vector], layers, batch_size=2)[0]
    assert [s.shape[0] for s in shifts] == [len(t) for t in transcripts]
    names = [tiny.hook_name(layer, "resid_post") for layer in layers]
    for shift, ids, end in zip(shifts, transcripts, ends, strict=True):
        assert end >= 2  # the prompt has positions before its last token
        assert shift[: end - 1].abs().max() < 1e-5  # not steered, and causal: unchanged everywhere
        torch.testing.assert_close(shift[end - 1 :, 0], vector[1].double().expand(len(ids) - end + 1, -1), atol=1e-5, rtol=0)
        assert shift[end - 1 :, 1:].norm() > 1e-3
        with torch.inference_mode():
            _, clean = tiny.bridge.run_with_cache(torch.tensor([ids], device=tiny.device), names_filter=names)
            with ist.steer(tiny, vector, positions="after_prompt", prompt_end=[end]):
                _, steered = tiny.bridge.run_with_cache(torch.tensor([ids], device=tiny.device), names_filter=names)
        alone = torch.stack([(steered[n][0] - clean[n][0]).double().cpu() for n in names], dim=1)
        torch.testing.assert_close(shift, alone, atol=1e-4, rtol=1e-4)


def test_decomposition_resumes_after_the_steering_layer_with_the_same_shifts(tiny, monkeypatch):
    """The steered forwards of the decomposition skip the blocks up to the steering layer (they are
    the clean forward's) and measure exactly the shifts that whole forwards measure."""
    import contextlib

    from interp_steer import _plain
    from interp_steer.studies.collision.decomposition import observed_shifts, unsteered_transcripts

    prompts = ["The harbour at dawn", "A letter arrived for the keeper of the lighthouse", "Rain."]
    unsteered = ist.generate(tiny, prompts, max_new_tokens=5)
    transcripts, ends = unsteered_transcripts(tiny, prompts, unsteered)
    v_a, v_b = _scaled_personas(tiny, layers=(1, 2, 3))
    mixes = [collision_vector(v_a, v_b, alpha, 2.0).select([2]) for alpha in (0.0, 0.5, 1.0)]
    used, resumed = [], _plain.resumed

    @contextlib.contextmanager
    def spy(*args):
        with resumed(*args) as on:
            used.append(on)
            yield on

    monkeypatch.setattr(_plain, "resumed", spy)
    fast = observed_shifts(tiny, transcripts, ends, mixes, [2, 3], batch_size=2)
    assert used == [True] * 6  # two batches x three mixes
    with ist.fast_path(False):  # whole forwards through the bridge
        whole = observed_shifts(tiny, transcripts, ends, mixes, [2, 3], batch_size=2)
    assert used[6:] == [False] * 6
    for per_mix_fast, per_mix_whole in zip(fast, whole, strict=True):
        for a, b in zip(per_mix_fast, per_mix_whole, strict=True):
            assert torch.equal(a, b)


def test_decomposition_share_is_a_ratio_of_means(tiny):
    from interp_steer.studies.collision.decomposition import (
        decomposition,
        observed_shifts,
        unsteered_transcripts,
    )

    prompts = ["The harbour at dawn", "A letter arrived", "Rain on the old roof of the mill", "She laughs."]
    unsteered = ist.generate(tiny, prompts, max_new_tokens=6)
    v_a, v_b = _scaled_personas(tiny, layers=(1, 2, 3))
    config = CollisionConfig(alphas=(0.0, 0.5, 1.0))
    out = decomposition(tiny, v_a, v_b, 1, config, 2.0, prompts, unsteered)
    assert "after_prompt" in out["measured_on"] and "steered positions" in out["measured_on"]
    transcripts, ends = unsteered_transcripts(tiny, prompts, unsteered)
    mix = collision_vector(v_a, v_b, 0.5, 2.0).select([1])
    shifts = observed_shifts(tiny, transcripts, ends, [mix], [1, 2, 3])[0]
    differs = 0
    for i, layer in enumerate((1, 2, 3)):
        row = out["observed"][1]["layers"][i]
        per_prompt = decompose(torch.stack([s[e - 1 :, i].mean(0) for s, e in zip(shifts, ends, strict=True)]),
                               v_a[layer], v_b[layer])
        a, b = per_prompt.coef_a, per_prompt.coef_b
        assert row["coef_a"]["mean"] == pytest.approx(a.mean(), abs=1e-6)
        assert row["share_a"] == pytest.approx(a.mean() / (a + b).mean(), rel=1e-6)
        assert row["share_a_interval"]["mean"] == row["share_a"] and row["share_a_interval"]["n"] == len(prompts)
        differs += not math.isclose(row["share_a"], float(np.mean(a / (a + b))), rel_tol=1e-3)
    assert differs  # on this case the old mean of per-prompt ratios is a different number


def test_observed_shift_at_the_steering_layer_is_the_collision_vector(tiny_run):
    # The residual at the steering layer moves by exactly λ(α v̂_A + (1 − α) v̂_B) at every position:
    # the decomposition must return those coefficients with no residual.
    result, _ = tiny_run
    lam = result.decomposition["lambda"]
    for entry in result.decomposition["observed"]:
        first = entry["layers"][0]
        assert first["layer"] == result.layer
        assert first["coef_a"]["mean"] == pytest.approx(lam * entry["alpha"], abs=1e-4)
        assert first["coef_b"]["mean"] == pytest.approx(lam * (1 - entry["alpha"]), abs=1e-4)
        assert first["residual_fraction"]["mean"] < 1e-8
    for entry in result.decomposition["collision_vectors"]:
        assert entry["coef_a"] == pytest.approx(lam * entry["alpha"], abs=1e-6)


def test_cells_are_the_grid_and_pure_ends_match_single_vector_steering(tiny, tiny_run):
    result, _ = tiny_run
    lam = result.config.lambdas[-1]
    prompt = result.prompts[0]
    alone = ist.generate(tiny, [prompt], max_new_tokens=result.config.max_new_tokens,
                         steering=ist.Steering(result.vector_a.select([result.layer]), lam, positions="after_prompt"))
    assert result.cell(lam, 1.0)["samples"][0] == alone[0].text
    with pytest.raises(KeyError, match="no cell"):
        result.cell(0.123, 0.5)


def _dominance_inputs(raw, alphas=ALPHAS):
    """What finding (i) reads, from raw VADER valence sums ``raw [alphas, prompts]``: each completion's
    compound (one per cell, greedy), at two strengths, and the Dominance objects the report shows."""
    from interp_steer.studies.rules.base import vader_compound

    compound = vader_compound(raw)[..., None]
    per_sample = {"vader": np.stack([compound, compound]), "probe_log_odds": np.stack([raw[..., None]] * 2)}
    by_score = {"vader": [dominance(alphas, compound, scale="vader_raw")] * 2,
                "probe_valence": [dominance(alphas, raw)] * 2}
    return per_sample, by_score


@pytest.mark.parametrize(("curve", "lo", "hi", "noise", "expected"), [
    (np.sqrt, -2.0, 2.0, 0.7, "reproduced"),         # the paper's d(α) = √α on VADER's raw scale (noise enough
                                                     # for the scale-free rank check to see the bend)
    (lambda a: a, -2.0, 2.0, 0.05, "not reproduced"),  # linear: smaller than the paper's effect
    (np.square, -2.0, 2.0, 0.05, "not reproduced"),    # B dominates
    (lambda a: a, 0.0, 8.0, 0.05, "inconclusive"),     # linear raw sum, asymmetric ends: reads as A on 2·artanh only
])
def test_dominance_finding_on_constructed_grids(curve, lo, hi, noise, expected):
    """Oracle: raw valence sums with a known shape in α, read through VADER's compound; the finding's
    verdict is known by construction (the old finding, on 2·artanh alone, called the last one
    "reproduced")."""
    from types import SimpleNamespace

    from interp_steer.studies.collision.findings import finding_dominance

    rng = np.random.default_rng(0)
    raw = (lo + rng.normal(0, 0.3, 24)) + rng.normal(hi - lo, 0.1, 24) * curve(ALPHAS)[:, None] \
        + noise * rng.normal(size=(9, 24))
    per_sample, by_score = _dominance_inputs(raw)
    config = SimpleNamespace(alphas=tuple(ALPHAS), lambdas=(0.3, 0.8))
    finding = finding_dominance(config, by_score, {"best_lambda": 0.8}, per_sample)
    assert finding.verdict == expected, finding.summary
    assert finding.numbers["rule"] == "collision.dominance" and finding.numbers["lambda"] == 0.8
    assert finding.numbers["scale"] == "vader_raw" and "relative to the scale" in finding.summary
    assert set(finding.numbers["rule_verdicts_per_lambda"].values()) == {expected}
    assert "`interp-steer rules collision.dominance`" in finding.summary


def test_dominance_finding_reads_only_the_mixes_a_strength_has():
    """An imported grid may lack a mix at one strength: the rule reads the mixes present there."""
    from types import SimpleNamespace

    from interp_steer.studies.collision.findings import finding_dominance

    rng = np.random.default_rng(1)
    raw = -2 + rng.normal(4, 0.1, 24) * np.sqrt(ALPHAS)[:, None] + 0.7 * rng.normal(size=(9, 24))
    per_sample, by_score = _dominance_inputs(raw)
    per_sample["vader"][0, 3] = np.nan  # λ = 0.3 has no α = 0.375
    config = SimpleNamespace(alphas=tuple(ALPHAS), lambdas=(0.3, 0.8))
    finding = finding_dominance(config, by_score, {"best_lambda": 0.3}, per_sample)
    assert finding.verdict == "reproduced" and finding.numbers["n_mixes"] == 6


def test_collide_cli_on_files(tmp_path, capsys):
    files = {}
    for name in ("persona_a", "persona_b", "baseline", "prompts"):
        path = tmp_path / f"{name}.txt"
        path.write_text("\n".join(ist.load_builtin(name)[:10]) + "\n")
        files[name] = path
    out = tmp_path / "run"
    code = main(["collide", "--model", "tiny-random", "--quick", "--persona-a", str(files["persona_a"]),
                 "--persona-b", str(files["persona_b"]), "--baseline", str(files["baseline"]),
                 "--prompts", str(files["prompts"]), "--max-prompts", "3", "--max-new-tokens", "4",
                 "--alphas", "0,0.5,1", "--lambdas", "0.5,1", "--layer", "2", "--out", str(out)])
    assert code == 0
    payload = json.loads((out / "collision.json").read_text())
    jsonschema.validate(payload, schema())
    assert payload["layer"] == 2 and payload["data"]["persona_a"]["source"] == str(files["persona_a"])
    assert payload["data"]["prompts"]["n_used"] == 3
    assert (out / "report.md").exists()
    assert "shared_layer:" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--layer", "top"], "--layer 'top'"),
    (["--alphas", "0.2,1"], "alphas must increase"),
    (["--lambdas", "-1,2"], "lambdas must be positive"),
])
def test_collide_cli_bad_arguments(argv, message, capsys, tmp_path):
    assert main(["collide", "--model", "tiny-random", "--quick", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_collide_names_a_bad_corpus_line(tmp_path, capsys):
    bad = tmp_path / "a.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "typo"}\n')
    assert main(["collide", "--model", "tiny-random", "--quick", "--persona-a", str(bad), "--out", str(tmp_path)]) == 2
    assert f"{bad}:2" in capsys.readouterr().err


def test_shared_layer_finding_from_the_probes_held_out_scores():
    """Oracle: profiles whose held-out scores peak at known layers; a profile without per-example
    scores (read back from JSON) cannot be judged; saturated accuracies are named."""
    from types import SimpleNamespace

    from interp_steer.probes import Localisation
    from interp_steer.studies.collision.findings import finding_shared_layer

    labels = np.r_[np.ones(40, dtype=int), np.zeros(40, dtype=int)]

    def profile(peak, accuracy=0.9, scores=True):
        rng = np.random.default_rng(peak)
        margin = 0.5 + 3 * np.exp(-((np.arange(10) - peak) ** 2) / 2.0)
        held = np.where(labels[:, None] == 1, 1.0, -1.0) * (margin + 0.3 * rng.normal(size=(80, 10)))
        return SimpleNamespace(layers=tuple(range(10)), accuracy=[accuracy] * 10, best_layer=peak, band=(peak,),
                               band_low=peak, band_high=peak, heldout_accuracy=0.9, heldout_labels=labels,
                               heldout_scores=held if scores else None)

    localisation = Localisation(profiles={}, shared_layer=5, best_layers_indistinguishable=None)
    same = finding_shared_layer(localisation, {"A vs baseline": profile(6), "B vs baseline": profile(6),
                                               "A vs B": profile(5)})
    assert same.verdict == "reproduced" and same.numbers["k"] == 1 and same.numbers["interval"] == [0, 0]
    assert same.numbers["rule"] == "collision.shared_layer" and "interp-steer rules collision.shared_layer" in same.summary
    apart = finding_shared_layer(localisation, {"A vs baseline": profile(8, 0.995), "B vs baseline": profile(2, 1.0),
                                                "A vs B": profile(5)})
    assert apart.verdict == "not reproduced" and "near-perfect" in apart.summary
    unknown = finding_shared_layer(localisation, {"A vs baseline": profile(6, scores=False),
                                                  "B vs baseline": profile(6), "A vs B": profile(5)})
    assert unknown.verdict == "inconclusive" and "no per-example held-out scores" in unknown.summary


def test_the_runs_findings_carry_their_rules(tiny_run):
    result, written = tiny_run
    assert [f.numbers["rule"] for f in result.findings] == ["collision.dominance", "collision.coherence",
                                                            "collision.shared_layer"]
    assert all(f.numbers["verdict"] == f.verdict for f in result.findings)
    assert result.localisation.profiles["A vs baseline"].heldout_scores is not None
    dominance, coherence, shared = result.findings
    # the study passes the rules' optional inputs: VADER's word counts, the repetition rates
    assert dominance.numbers["scales_checked"] == ["vader_raw", "artanh", "per_word"]
    assert set(dominance.numbers["guards"]) == {"neutral", "repetition"}
    assert coherence.numbers["repetition_guard"] is not None
    # the tiny model has 4 layers, fewer than the shared-layer rule needs: inconclusive, saying why
    assert shared.verdict == "inconclusive" and "at least 10 layers" in shared.numbers["reason"]


def test_the_shared_layer_finding_rebuilds_the_probes_folds():
    """The folds passed to the rule are the ones probe_layers held each example out in."""
    from interp_steer.probes import Localisation, fold_splits, probe_layers
    from interp_steer.studies.collision.findings import _fold_ids, finding_shared_layer

    rng = np.random.default_rng(0)
    bump = np.exp(-((np.arange(12) - 7) ** 2) / 2.0)[None, :, None]
    pos, neg = rng.normal(size=(30, 12, 6)) + 0.6 + bump, rng.normal(size=(30, 12, 6))
    profile = probe_layers(pos, neg, folds=3, seed=4)
    ids = _fold_ids(profile)
    for fold, (_, test) in enumerate(fold_splits(profile.heldout_labels, 3, 4)):
        assert (ids[test] == fold).all()
    localisation = Localisation(profiles={}, shared_layer=7, best_layers_indistinguishable=None)
    finding = finding_shared_layer(localisation, {"A vs baseline": profile, "B vs baseline": profile, "A vs B": profile})
    assert finding.numbers["spread"]["source"].startswith("estimated")


# ------------------------------------------------------------------------- method="field"


@pytest.fixture(scope="module")
def tiny_field_run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("collide_field")
    result = collide(tiny, quick=True, max_prompts=3, max_passages=20, max_new_tokens=5, lambdas=(0.5, 2.0),
                     method="field")
    return result, result.save(out)


def test_collide_with_fields_writes_a_valid_result(tiny_field_run):
    result, written = tiny_field_run
    payload = json.loads(written["json"].read_text())
    jsonschema.validate(payload, schema())
    assert payload["config"]["method"] == "field" and payload["grid"]["method"] == "field"
    assert all(cell["mix_norm"] is None for cell in payload["cells"])
    for key in ("A", "B"):
        assert 0.0 <= payload["fields"][key]["heldout_accuracy"] <= 1.0
    assert payload["decomposition"]["steered_with"] == "fields" and payload["decomposition"]["collision_vectors"] == []
    assert "Steered with fields, not vectors" in written["report"].read_text()


def test_field_grid_cells_are_the_fields_mix(tiny, tiny_field_run):
    # Each cell of the batched grid is the text of that cell's mix of the two fields run alone, and
    # the saved fields are the ones steered with.
    result, written = tiny_field_run
    prompt, n = result.prompts[0], result.config.max_new_tokens
    for lam in result.config.lambdas:
        for alpha in (0.0, 0.5, 1.0):
            alone = ist.generate(tiny, [prompt], max_new_tokens=n, steering=ist.Steering(
                [(result.field_a, lam * alpha), (result.field_b, lam * (1 - alpha))], positions="after_prompt"))
            assert result.cell(lam, alpha)["samples"][0] == alone[0].text, (lam, alpha)
    assert result.field_a.metadata.resid_norm == {result.layer: result.geometry["resid_norm"][
        result.geometry["layers"].index(result.layer)]}
    loaded = ist.SteeringField.load(written["field_a"], model=tiny)
    h = torch.randn(3, tiny.d_model)
    assert torch.equal(loaded.direction(h, result.layer), result.field_a.direction(h, result.layer))


def test_collision_config_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="method must be one of"):
        CollisionConfig(method="fields")
    with pytest.raises(ValueError, match="field_form must be one of"):
        CollisionConfig(method="field", field_form="deep")


def test_tidy_frames_hold_the_results_own_numbers_and_the_display_shows_the_verdicts(tiny_run):
    from conftest import as_row, interval_rows, rendered

    result, _ = tiny_run
    cells = result.to_frame()
    metrics = list(result.unsteered["metrics"])
    assert len(cells) == (len(result.cells) + 1) * len(metrics)
    for cell in [*result.cells[:3], result.cells[-1]]:
        for metric in metrics:
            expected = cell["metrics"][metric]
            got = interval_rows(cells, **{"lambda": cell["lambda"], "alpha": cell["alpha"], "metric": metric})
            assert got == [as_row(*(expected.get(k) for k in ("mean", "low", "high", "n")))]
    unsteered = cells[cells["alpha"].isna()]
    assert set(unsteered["lambda"]) == {0.0} and list(unsteered["metric"]) == metrics
    # One pivot gives the α × λ grid the report's heatmap shows.
    grid = cells[cells["metric"] == "vader"].dropna(subset=["alpha"]).pivot(index="lambda", columns="alpha", values="value")
    assert grid.shape == (len(result.config.lambdas), len(result.config.alphas))
    dominance = result.to_frame("dominance")
    first = result.dominance["vader"][0].to_dict()
    rows = dominance[(dominance["metric"] == "dominance_vader") & (dominance["lambda"] == result.config.lambdas[0])]
    assert [None if v != v else v for v in rows["value"]] == first["d"]
    findings = result.to_frame("findings")
    assert list(findings["verdict"]) == [f.verdict for f in result.findings]
    with pytest.raises(ValueError, match="'cells', 'dominance', 'findings'"):
        result.to_frame("cell")
    page, line = rendered(result)
    for finding in result.findings:
        assert finding.verdict in page and finding.claim.replace("'", "&#x27;") in page
    assert "<img" in page and "verdicts=" in line


def test_a_saved_run_loads_back_with_its_vectors(tiny_run, tmp_path):
    from test_result_load import assert_round_trip

    from interp_steer.studies._common import NotSavedError

    result, written = tiny_run
    loaded = assert_round_trip(result, written["json"].parent, ("cells", "dominance", "findings"), tmp_path)
    for name in ("vector_a", "vector_b"):
        for layer in result.vector_a.layers:
            torch.testing.assert_close(getattr(loaded, name)[layer], getattr(result, name)[layer])
    assert loaded.localisation.to_dict() == result.localisation.to_dict() and loaded.field_a is None
    with pytest.raises(NotSavedError, match="per_prompt was not saved: .*collision.json holds each cell's mean"):
        _ = loaded.per_prompt
    with pytest.raises(NotSavedError, match="generations was not saved: .* holds no generations.jsonl"):
        _ = loaded.generations
