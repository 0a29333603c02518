"""One-line reprs and notebook displays of the objects a user prints: never a tensor or an array dump
(issue 31 §3.6)."""

from __future__ import annotations

import torch

import interp_steer as ist
from interp_steer.data import ABQuestion
from interp_steer.directions import SteeringVector, VectorMetadata
from interp_steer.evaluation import ab_eval, generation_sweep

QUESTIONS = [ABQuestion(f"Would you share the {thing}?\n\nChoices:\n(A) Yes\n(B) No", "(A)", "(B)")
             for thing in ("bread", "map", "umbrella")]


def _vector(model: ist.Model) -> SteeringVector:
    gen = torch.Generator().manual_seed(1)
    return SteeringVector({layer: torch.randn(model.d_model, generator=gen) for layer in range(model.n_layers)},
                          VectorMetadata(model=model.name, d_model=model.d_model))


def test_activations_repr_is_one_line_with_the_shape_not_the_values(tiny, texts):
    for position in ("last", "all"):
        acts = ist.collect_activations(tiny, texts, layers=[1, 2, 3], position=position)
        line = repr(acts)
        assert "\n" not in line and len(line) < 200 and "tensor(" not in line
        assert line.startswith("Activations(") and f"shape={tuple(acts.values.shape)}" in line
        for part in ("dtype='float32'", f"model={tiny.name!r}", "hook='resid_post'", "layers='1–3'",
                     f"position={position!r}", f"texts={len(texts)}"):
            assert part in line


def test_ab_sweep_repr_is_one_line_and_its_display_shows_every_cell(tiny):
    from conftest import rendered

    result = ab_eval(tiny, QUESTIONS, _vector(tiny), coefficients=[-4, 0, 4], layers=[1, 2])
    page, line = rendered(result)
    assert line == ("SweepResult(measure='p_matching', shape=(2, 3, 3), layers='1, 2', coefficients=[-4.0, 0.0, 4.0], "
                    "items=3)")
    assert page.count("<tr>") == 1 + 2 and "<img" in page  # header + one row per layer, and the curves
    assert f"{result.mean[1][2]:.3g}" in page


def test_generation_sweep_repr_is_one_line_and_its_display_shows_the_metrics(tiny):
    from conftest import rendered

    sweep = generation_sweep(tiny, ["Tell me about rain.", "Describe a market."], _vector(tiny), [-2.0, 0.0, 2.0],
                             layers=[1], max_new_tokens=3, backfire_floor=0.0)
    page, line = rendered(sweep)
    assert line == f"GenerationSweep(layers='1', coefficients=[-2.0, 0.0, 2.0], prompts=2, metrics={len(sweep.metrics)})"
    assert page.count("<tr>") == 1 + 3 and "backfire rate" in page and "<img" in page
    backfire = sweep.backfire["1,2"]
    assert f"{backfire['mean']:.3g} [" in page
