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
from interp_steer.studies.collision import (
    CollisionConfig,
    collide,
    collision_vector,
    common_scale,
    decompose,
    dominance,
    dominance_verdict,
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


# ------------------------------------------------------------------------------ end to end


def _scaled_personas(model):
    a_texts, b_texts, base = (ist.load_builtin(n)[:12] for n in ("persona_a", "persona_b", "baseline"))
    acts = ist.collect_activations(model, a_texts + b_texts + base, layers=[1])
    pa, pb, pn = acts.split(12, 12, 12)
    return common_scale(ist.from_activations(pa, pn), ist.from_activations(pb, pn))


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
    for broken in (
        {k: v for k, v in payload.items() if k != "findings"},
        {**payload, "findings": [{**payload["findings"][0], "verdict": "probably"}] + payload["findings"][1:]},
        {**payload, "cells": [{**c, "metrics": {}} for c in payload["cells"]]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema())


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


def test_findings_follow_their_numbers(tiny_run):
    result, _ = tiny_run
    findings = {f.key: f for f in result.findings}
    dom = result.dominance["vader"][result.config.lambdas.index(result.coherence["best_lambda"])]
    # The finding is dominance_verdict's (tests/test_dominance_rule.py): "A" alone no longer suffices
    # for "reproduced" (A must also lead at most mixes), and "B" or unseparated ends decide it.
    finding = findings["dominance"]
    assert finding.verdict == dominance_verdict(dom)[0] == finding.numbers["verdict"]
    if finding.verdict == "reproduced":
        assert dom.verdict == "A"
    if dom.verdict == "B":
        assert finding.verdict == "not reproduced"
    if not dom.ends_scaled.excludes_zero:
        assert finding.verdict == "inconclusive"
    assert "could detect an area of" in finding.summary and "mde" in finding.numbers
    coherence = findings["coherence"]
    if not result.coherence["per_lambda"][-1]["degraded"]:
        assert coherence.verdict == "inconclusive"


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
