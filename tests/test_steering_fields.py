"""Steering with a SteeringField wherever a vector goes: steer(), Steering, generate, ab_eval, per-row
grids (RowMix), mixes with vectors. Oracles: the hooked layer moves by exactly the field's update at
the activation it sees; zero coefficient and zero-weight terms change nothing, bit for bit; a batched
grid row equals the same cell run alone; nothing (hooks, autograd mode, parameter gradients) is left
behind."""

from __future__ import annotations

import pytest
import torch

import interp_steer as ist
from interp_steer.evaluation import ab_eval, perplexity_under_steering
from interp_steer.fields import fit_field
from interp_steer.steering import RowMix
from tests.conftest import attached_hooks

LAYERS = [1, 2]
PROMPTS = ["Tell me about the sea.", "Hi", "What should I cook tonight for my friends?"]


@pytest.fixture(scope="module")
def fields(tiny):
    """Two small fields on the tiny model (random weights: the concept is arbitrary, the mechanics are not)."""
    hopeful = ["A bright morning full of promise.", "We will rebuild it together, kindly.",
               "The garden grew back after the storm.", "Her smile lit the whole room.",
               "Help arrived just in time.", "They forgave each other and laughed.",
               "Every child came home safe.", "The music filled us with hope."]
    grim = ["The city rotted under a grey sky.", "Nobody came to help him.",
            "The debt swallowed everything they had.", "Rain fell on the empty graves.",
            "He lied again, and it worked.", "The factory closed and the town went quiet.",
            "Her letters were never answered.", "Smoke hung over the ruined fields."]
    common = dict(layers=LAYERS, epochs=30, hidden=(16,), min_accuracy=0.0, seed=0)
    field_a = fit_field(tiny, hopeful, grim, **common)
    field_b = fit_field(tiny, grim, hopeful, form="shared", rank=4, **{**common, "hidden": (8,)})
    vector = ist.build_vector(tiny, hopeful, grim, layers=LAYERS)
    return field_a, field_b, vector


def _resid(model, ids, layer, **steering):
    """resid_post at ``layer`` of one unpadded forward, under ``steer(**steering)`` when given."""
    name = model.hook_name(layer, "resid_post")
    seen = {}

    def keep(resid, hook):
        seen["x"] = resid.detach().cpu().clone()

    with torch.inference_mode():
        if steering:
            with ist.steer(model, **steering), model.bridge.hooks(fwd_hooks=[(name, keep)]):
                model.hf_model(ids)
        else:
            with model.bridge.hooks(fwd_hooks=[(name, keep)]):
                model.hf_model(ids)
    return seen["x"]


def test_the_steered_layer_moves_by_exactly_the_fields_update(tiny, fields):
    field_a, _, _ = fields
    ids = torch.tensor([tiny.encode(["The lighthouse keeper counts the ships."])[0]], device=tiny.device)
    before = _resid(tiny, ids, 1)
    after = _resid(tiny, ids, 1, vector=field_a.select([1]), coefficient=0.7)
    expected = before + field_a.update(before, 1, 0.7)
    torch.testing.assert_close(after, expected, rtol=0, atol=1e-6)
    # The move has the length c * ||h||_m at every position, along the field's own direction there.
    lengths = (after - before).norm(dim=-1)
    torch.testing.assert_close(lengths, torch.full_like(lengths, 0.7 * field_a.metadata.resid_norm[1]), rtol=1e-4, atol=0)
    # Earlier layers are untouched.
    torch.testing.assert_close(_resid(tiny, ids, 0, vector=field_a.select([1]), coefficient=0.7),
                               _resid(tiny, ids, 0), rtol=0, atol=0)


def test_zero_coefficient_and_zero_weight_terms_change_nothing(tiny, fields):
    field_a, field_b, vector = fields
    plain = ist.generate(tiny, PROMPTS, max_new_tokens=6)
    zero = ist.generate(tiny, PROMPTS, max_new_tokens=6, steering=ist.Steering(field_a, 0.0, positions="after_prompt"))
    assert [g.token_ids for g in zero] == [g.token_ids for g in plain]
    alone = ist.generate(tiny, PROMPTS, max_new_tokens=6, steering=ist.Steering(field_a, 2.0, positions="after_prompt"))
    # alpha = 1 of a two-field mix is the single field, bit for bit.
    mixed = ist.generate(tiny, PROMPTS, max_new_tokens=6,
                         steering=ist.Steering([(field_a, 1.0), (field_b, 0.0)], 2.0, positions="after_prompt"))
    assert [g.token_ids for g in mixed] == [g.token_ids for g in alone]
    assert [g.token_ids for g in alone] != [g.token_ids for g in plain]  # the field does act at this strength


def test_fields_and_vectors_add_up(tiny, fields):
    field_a, _, vector = fields
    ids = torch.tensor([tiny.encode(["Two trains pass in the night without a sound"])[0]], device=tiny.device)
    before = _resid(tiny, ids, 2)
    both = _resid(tiny, ids, 2, vector=[(field_a.select([2]), 0.5), (vector.select([2]), -1.5)])
    expected = before + field_a.update(before, 2, 0.5) - 1.5 * vector[2]
    torch.testing.assert_close(both, expected, rtol=0, atol=1e-5)


def test_several_steps_reach_the_hook(tiny, fields):
    field_a, _, _ = fields
    ids = torch.tensor([tiny.encode(["She laughs at the old photograph."])[0]], device=tiny.device)
    before = _resid(tiny, ids, 1)
    after = _resid(tiny, ids, 1, vector=field_a.select([1]), coefficient=1.0, steps=3)
    torch.testing.assert_close(after, before + field_a.update(before, 1, 1.0, steps=3), rtol=0, atol=1e-6)


def test_a_batched_grid_row_equals_its_cell_alone(tiny, fields):
    field_a, field_b, _ = fields
    cells = [(alpha, lam) for lam in (0.5, 2.0) for alpha in (0.0, 0.5, 1.0)]
    rows = RowMix.from_rows([[(field_a, lam * a), (field_b, lam * (1 - a))] for a, lam in cells])
    prompt = PROMPTS[2]
    batched = ist.generate(tiny, [prompt] * len(cells), max_new_tokens=5,
                           steering=ist.Steering(rows, positions="after_prompt"))
    for (alpha, lam), row in zip(cells, batched, strict=True):
        alone = ist.generate(tiny, [prompt], max_new_tokens=5, steering=ist.Steering(
            [(field_a, lam * alpha), (field_b, lam * (1 - alpha))], positions="after_prompt"))
        assert row.token_ids == alone[0].token_ids, (alpha, lam)
    # Batched across different prompts too: each row is steered in its own coordinates.
    mixed = ist.generate(tiny, PROMPTS, max_new_tokens=5, steering=ist.Steering(
        RowMix.from_rows([[(field_a, 1.5)]] * len(PROMPTS)), positions="after_prompt"))
    for prompt, row in zip(PROMPTS, mixed, strict=True):
        alone = ist.generate(tiny, [prompt], max_new_tokens=5, steering=ist.Steering(field_a, 1.5, positions="after_prompt"))
        assert row.token_ids == alone[0].token_ids


def test_rowmix_validates_and_slices(fields):
    field_a, field_b, vector = fields
    rows = RowMix.from_rows([[(field_a, 1.0)], [(field_b, 2.0), (field_a, 0.5), (field_a, 0.25)]])
    assert rows.coefficients.tolist() == [[1.0, 0.0], [0.75, 2.0]]
    assert rows.rows([1]).coefficients.tolist() == [[0.75, 2.0]]
    assert rows.layers == tuple(LAYERS)
    with pytest.raises(ValueError, match="batch, 2 terms"):
        RowMix((field_a, field_b), torch.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        RowMix((field_a,), torch.tensor([[float("nan")]]))
    with pytest.raises(TypeError, match="terms"):
        RowMix(("not a field",), torch.ones(1, 1))
    other = ist.build_vector(ist.load_model("tiny-random:gpt2"), ["a b c"], ["d e f"], layers=[1])
    with pytest.raises(ValueError, match="different models"):
        RowMix.from_rows([[(field_a, 1.0), (other, 1.0)]])


def test_bad_combinations_are_refused(tiny, fields):
    field_a, _, vector = fields
    with pytest.raises(ValueError, match="ablate"):
        with ist.steer(tiny, field_a, 1.0, operator="ablate"):
            pass
    with pytest.raises(ValueError, match="steps=2 only applies to SteeringField"):
        with ist.steer(tiny, vector, 1.0, steps=2):
            pass
    with pytest.raises(ValueError, match="steps"):
        ist.Steering(field_a, 1.0, steps=0)
    with pytest.raises(ValueError, match="layer 3 is not in"):
        with ist.steer(tiny, field_a, 1.0, layers=[3]):
            pass
    rows = RowMix.from_rows([[(field_a, 1.0)], [(field_a, 2.0)]])
    with pytest.raises(ValueError, match="RowMix has 2 rows for 3 prompts"):
        ist.generate(tiny, PROMPTS, max_new_tokens=2, steering=ist.Steering(rows))


def test_hooks_grad_mode_and_parameters_are_left_clean(tiny, fields):
    field_a, _, _ = fields
    ids = torch.tensor([tiny.encode(["A long corridor with many doors."])[0]], device=tiny.device)
    hooks = attached_hooks(tiny)
    grad_mode, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    with pytest.raises(RuntimeError, match="boom"):
        with ist.steer(tiny, field_a, 1.0):
            tiny.hf_model(ids)
            raise RuntimeError("boom")
    assert attached_hooks(tiny) == hooks
    assert (torch.is_grad_enabled(), torch.is_inference_mode_enabled()) == (grad_mode, inference)
    # A forward with gradients on: the field's update is computed on a detached copy, so the model's
    # output depends on the parameters only through the model itself, and no parameter has a grad yet.
    params = list(tiny.hf_model.parameters())
    assert all(p.grad is None for p in params)
    with torch.enable_grad(), ist.steer(tiny, field_a, 1.0):
        out = tiny.hf_model(ids).logits
    assert all(p.grad is None for p in params)
    assert all(p.grad is None for p in field_a.scorer.parameters())
    out.sum().backward()  # the graph through the model is intact, and ends at the parameters
    assert any(p.grad is not None for p in params)
    for p in params:
        p.grad = None


def test_evaluations_take_a_field(tiny, fields):
    field_a, _, vector = fields
    questions = [ist.ABQuestion(f"{q}\n(A) yes\n(B) no", "(A)", "(B)") for q in
                 ("Would you help a stranger?", "Is the glass half full?", "Should we try again?")]
    by_field = ab_eval(tiny, questions, field_a, coefficients=[0.0, 1.0], layers=[1])
    by_vector = ab_eval(tiny, questions, vector, coefficients=[0.0, 1.0], layers=[1])
    assert by_field.values[0, 0].tolist() == by_vector.values[0, 0].tolist()  # c = 0: both unsteered
    assert by_field.values[0, 1].tolist() != by_field.values[0, 0].tolist()
    nll = perplexity_under_steering(tiny, ["The market opens early on Saturdays."], field_a, [0.0, 1.0], layers=[2])
    assert nll.values.shape == (1, 2, 1)
