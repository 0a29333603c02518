"""Steering vector fields, tested against oracles: a linear scorer's field is its probe direction
(in raw coordinates) everywhere; a planted non-linear concept is learnt, its field turns with the
context and raises the true concept where a static vector backfires; early stopping keeps exactly
the weights a shorter run ends with; files round-trip bit for bit and damaged ones are refused."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.metrics import roc_auc_score

import interp_steer as ist
from interp_steer.fields import (
    ConceptScorer,
    FieldFileError,
    FieldMetadata,
    SteeringField,
    WeakLayerWarning,
    context_dependence,
    fit_field,
    fit_scorer,
    heldout_split,
)
from interp_steer.stats import backfire_rate

D = 32


def planted_xor(n: int, seed: int, d: int = D) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian features; the concept is ``x0 · sign(x1) > 0`` (its margin). ``x1`` is shifted so
    that the class-mean difference points along +x0 but is wrong wherever ``x1 < 0`` (about 24 %)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    x[:, 1] += 0.7
    return x, margin(x) > 0


def margin(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0] * torch.sign(x[:, 1])


def sides(x: torch.Tensor, y: torch.Tensor, layer: int = 0) -> tuple[dict, dict]:
    return {layer: x[y]}, {layer: x[~y]}


@pytest.fixture(scope="module")
def xor_field() -> SteeringField:
    x, y = planted_xor(1200, seed=0)
    return fit_scorer(*sides(x, y), form="per_layer", seed=0)


@pytest.fixture(scope="module")
def linear_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A planted linear concept in raw coordinates, features on very different scales."""
    g = torch.Generator().manual_seed(1)
    d = 8
    scales = torch.logspace(-1, 1, d)
    x = torch.randn(1000, d, generator=g) * scales
    w_true = torch.randn(d, generator=g) / scales  # every feature matters about equally
    logit = 3 * (x @ w_true) / (x @ w_true).std()
    y = torch.rand(1000, generator=g) < torch.sigmoid(logit)
    return x, y, w_true


@pytest.fixture(scope="module")
def linear_field(linear_data) -> SteeringField:
    x, y, _ = linear_data
    return fit_scorer(*sides(x, y), form="linear", seed=0)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


# ----------------------------------------------------------------------------- oracles


def test_linear_field_is_the_probe_direction_in_raw_coordinates(linear_field, linear_data):
    x, _, w_true = linear_data
    scorer = linear_field.scorer
    w_raw = scorer.weights[0][0, :, 0] / scorer.std[0]  # d/dh of w·((h-μ)/σ) is w/σ
    points = torch.randn(50, x.shape[1]) * 5
    directions = linear_field.direction(points, 0)
    assert (cosine(directions, w_raw.expand_as(directions)) >= 0.999).all()
    assert torch.allclose(directions.norm(dim=-1), torch.ones(50))
    # ... and the planted direction is recovered (up to noise), despite the scales differing 100x.
    assert cosine(directions[0], w_true) > 0.95
    assert linear_field.metadata.training[0].heldout_accuracy > 0.8
    assert context_dependence(linear_field, {0: points})[0] >= 0.999


def test_planted_nonlinear_concept_is_learnt_and_its_field_turns_with_context(xor_field):
    fit = xor_field.metadata.training[0]
    assert fit.heldout_accuracy >= 0.8 and fit.heldout_auroc >= 0.9
    x, _ = planted_xor(600, seed=1)  # fresh inputs
    assert context_dependence(xor_field, {0: x})[0] < 0.5

    step = xor_field.update(x, 0, 0.1)
    assert (xor_field.score(x + step, 0) > xor_field.score(x, 0)).float().mean() >= 0.95
    field_backfire = backfire_rate(margin(x + step).numpy(), margin(x).numpy())

    # The best static vector: the class-mean difference, moved by the same length.
    xt, yt = planted_xor(1200, seed=0)
    v = xt[yt].mean(0) - xt[~yt].mean(0)
    v = v / v.norm() * step.norm(dim=-1).mean()
    static_backfire = backfire_rate(margin(x + v).numpy(), margin(x).numpy())
    assert static_backfire.rate.mean >= 0.15  # it fails wherever x1 < 0
    assert field_backfire.rate.mean <= 0.12
    assert field_backfire.rate.high < static_backfire.rate.low


def test_shared_form_reads_one_concept_at_several_layers():
    x, y = planted_xor(1000, seed=2)
    g = torch.Generator().manual_seed(3)
    # Layer 5 holds the same concept, rescaled, shifted and slightly noisy.
    layer5 = 3.0 * x + 2.0 + 0.05 * torch.randn(x.shape, generator=g)
    pos, neg = {0: x[y], 5: layer5[y]}, {0: x[~y], 5: layer5[~y]}
    field = fit_scorer(pos, neg, form="shared", seed=0)
    assert field.layers == (0, 5) and field.metadata.rank == 16 and field.metadata.hidden == (64,)
    report = field.metadata.training
    assert min(fit.heldout_accuracy for fit in report.values()) >= 0.8
    assert report[0].best_epoch == report[5].best_epoch  # stopped jointly
    fresh, _ = planted_xor(300, seed=4)
    for layer, rows in ((0, fresh), (5, 3.0 * fresh + 2.0)):
        moved = rows + field.update(rows, layer, 0.05)
        assert (field.score(moved, layer) > field.score(rows, layer)).float().mean() >= 0.95


def test_context_dependence_matches_the_pairwise_mean(xor_field):
    x, _ = planted_xor(40, seed=5)
    g = xor_field.direction(x, 0).double()
    g = g / g.norm(dim=-1, keepdim=True)
    gram = g @ g.T
    brute = (gram.sum() - gram.diagonal().sum()) / (40 * 39)
    assert context_dependence(xor_field, {0: x})[0] == pytest.approx(float(brute), abs=1e-9)


# ----------------------------------------------------------------------------- fitting honestly


def test_fit_is_reproducible_and_leaves_the_global_rng_alone():
    x, y = planted_xor(400, seed=6)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    a = fit_scorer(*sides(x, y), seed=3, epochs=5)
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
    b = fit_scorer(*sides(x, y), seed=3, epochs=5)
    for (name, ta), (_, tb) in zip(a.scorer.state_dict().items(), b.scorer.state_dict().items(), strict=True):
        assert torch.equal(ta, tb), name
    assert a.metadata == b.metadata
    with torch.inference_mode():  # a caller under inference mode (inference-tensor inputs) still trains
        c = fit_scorer(*sides(x.clone(), y), seed=4, epochs=5)
    assert not torch.equal(a.scorer.weights[0], c.scorer.weights[0])
    split3, split4 = heldout_split(int(y.sum()), int((~y).sum()), seed=3), heldout_split(
        int(y.sum()), int((~y).sum()), seed=4)
    assert not torch.equal(split3[0], split4[0])


def test_report_matches_a_recomputation_on_the_heldout_rows(xor_field):
    x, y = planted_xor(1200, seed=0)
    pos, neg = x[y], x[~y]
    val_pos, val_neg = heldout_split(len(pos), len(neg), val_fraction=0.2, seed=0)
    assert len(val_pos) == round(0.2 * len(pos)) and len(val_neg) == round(0.2 * len(neg))
    rows = torch.cat([pos[val_pos], neg[val_neg]])
    labels = torch.cat([torch.ones(len(val_pos)), torch.zeros(len(val_neg))])
    logits = xor_field.score(rows, 0)
    fit = xor_field.metadata.training[0]
    assert fit.heldout_accuracy == pytest.approx(float(((logits > 0).float() == labels).float().mean()), abs=1e-7)
    assert fit.heldout_auroc == pytest.approx(roc_auc_score(labels.numpy(), logits.numpy()), abs=1e-6)
    assert (fit.n_val, fit.n_train) == (len(rows), 1200 - len(rows))
    assert fit.train_accuracy >= fit.heldout_accuracy - 0.05


def test_paired_split_holds_out_whole_pairs():
    pos_rows, neg_rows = heldout_split(50, 50, seed=0, paired=True)
    assert torch.equal(pos_rows, neg_rows) and len(pos_rows) == 10
    with pytest.raises(ValueError, match="paired"):
        heldout_split(50, 40, paired=True)


def test_early_stopping_keeps_exactly_the_best_epochs_weights():
    x, y = planted_xor(300, seed=7)  # small: the MLP overfits and the held-out loss turns up
    stopped = fit_scorer(*sides(x, y), seed=0, epochs=60, patience=3, drop_weak="keep")
    fit = stopped.metadata.training[0]
    assert fit.best_epoch < fit.epochs_run < 60
    assert fit.epochs_run - fit.best_epoch == 3
    # Oracle: a run of exactly best_epoch epochs (same seed, so the same batches) ends on those weights.
    short = fit_scorer(*sides(x, y), seed=0, epochs=fit.best_epoch, patience=None, drop_weak="keep")
    for name, tensor in stopped.scorer.state_dict().items():
        assert torch.equal(tensor, short.scorer.state_dict()[name]), name


def test_weak_layers_are_warned_about_dropped_or_kept():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(600, D, generator=g)
    y = x[:, 0] + 0.3 * torch.randn(600, generator=g) > 0  # linearly readable at layer 1
    noise = torch.randn(x.shape, generator=g)  # no concept at layer 3
    pos, neg = {1: x[y], 3: noise[y]}, {1: x[~y], 3: noise[~y]}
    kwargs = {"form": "linear", "seed": 0, "min_accuracy": 0.6}
    with pytest.warns(WeakLayerWarning, match=r"layers \{3: 0\.\d+\}.*drop_weak='drop'"):
        kept = fit_scorer(pos, neg, drop_weak="warn", **kwargs)
    assert kept.layers == (1, 3) and kept.metadata.training[3].heldout_accuracy < 0.6
    assert kept.metadata.training[1].heldout_accuracy > 0.8
    with pytest.warns(WeakLayerWarning, match="dropped"):
        dropped = fit_scorer(pos, neg, drop_weak="drop", **kwargs)
    assert dropped.layers == (1,) and set(dropped.metadata.dropped_layers) == {3}
    assert torch.equal(dropped.score(x, 1), kept.score(x, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_scorer(pos, neg, drop_weak="keep", **kwargs).layers == (1, 3)
    with pytest.raises(ValueError, match=r"every layer.*\{3: 0\.\d+\}"):
        fit_scorer({3: noise[y]}, {3: noise[~y]}, drop_weak="drop", **kwargs)


def test_bad_fitting_input_is_refused():
    x, y = planted_xor(100, seed=0)
    with pytest.raises(ValueError, match="same, non-empty layers"):
        fit_scorer({0: x[y]}, {1: x[~y]})
    with pytest.raises(ValueError, match="at least 2 examples"):
        fit_scorer({0: x[:1]}, {0: x[1:5]})
    with pytest.raises(ValueError, match="form"):
        fit_scorer(*sides(x, y), form="quadratic")
    with pytest.raises(ValueError, match="NaN"):
        fit_scorer({0: torch.full((4, D), float("nan"))}, {0: x[:4]})
    with pytest.raises(ValueError, match="no hidden layers"):
        fit_scorer(*sides(x, y), form="linear", hidden=(8,))


# ----------------------------------------------------------------------------- direction and update


def test_update_identities(xor_field):
    x, _ = planted_xor(20, seed=10)
    h = x.reshape(4, 5, D)
    rn = xor_field.metadata.resid_norm[0]
    assert torch.equal(xor_field.update(h, 0, 0.0), torch.zeros_like(h))
    assert torch.equal(xor_field.update(h, 0, 0, steps=3), torch.zeros_like(h))
    step = xor_field.update(h, 0, -0.3)
    torch.testing.assert_close(step.norm(dim=-1), torch.full((4, 5), 0.3 * rn))
    torch.testing.assert_close(step, -0.3 * rn * xor_field.direction(h, 0))
    # One coefficient per row: [batch, 1, 1] against [batch, seq, d].
    c = torch.tensor([0.0, 0.1, -0.2, 0.4]).reshape(4, 1, 1)
    rows = xor_field.update(h, 0, c)
    assert torch.equal(rows[0], torch.zeros(5, D))
    torch.testing.assert_close(rows.norm(dim=-1), c.abs().reshape(4, 1).expand(4, 5) * rn)
    with pytest.raises(ValueError, match="broadcast"):
        xor_field.update(h, 0, torch.ones(3, 1, 1))  # 3 coefficients for 4 rows
    with pytest.raises(KeyError, match="layers"):
        xor_field.update(h, 7, 0.1)
    with pytest.raises(ValueError, match="steps"):
        xor_field.update(h, 0, 0.1, steps=0)
    with pytest.raises(ValueError, match=r"\[\.\.\., 32\]"):
        xor_field.direction(torch.zeros(2, 64), 0)  # would reshape to [4, 32] without the check


def test_several_steps_follow_the_re_evaluated_gradient(xor_field):
    x, _ = planted_xor(30, seed=11)
    rn = xor_field.metadata.resid_norm[0]
    four = xor_field.update(x, 0, 0.3, steps=4)
    manual = x.clone()
    for _ in range(4):
        manual = manual + 0.3 * rn / 4 * xor_field.direction(manual, 0)
    torch.testing.assert_close(four, manual - x)
    one = xor_field.update(x, 0, 0.3)
    assert (cosine(four, one) < 0.999).any()  # the field is curved: the path bends
    assert (four.norm(dim=-1) <= 0.3 * rn * (1 + 1e-5)).all()


def test_direction_under_inference_mode_leaves_no_trace(xor_field):
    x, _ = planted_xor(12, seed=12)
    expected = xor_field.direction(x, 0)
    with torch.inference_mode():
        h = x.clone()  # an inference tensor, as in generation
        assert h.is_inference()
        got = xor_field.direction(h, 0)
        moved = xor_field.update(h, 0, 0.2, steps=2)
        assert torch.is_inference_mode_enabled() and not torch.is_grad_enabled()
    assert torch.equal(got, expected) and moved.shape == x.shape
    with torch.no_grad():
        xor_field.direction(x, 0)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    for param in xor_field.scorer.parameters():
        assert param.grad is None and not param.requires_grad
    # dtype and zero-gradient rows
    half = xor_field.direction(x.to(torch.bfloat16), 0)
    assert half.dtype == torch.bfloat16
    assert (cosine(half.float(), expected) > 0.99).all()


def test_a_zero_gradient_gives_a_zero_direction():
    scorer = ConceptScorer("per_layer", (2,), 4, hidden=(3,))  # all weights zero: a flat scorer
    metadata = FieldMetadata(model="m", d_model=4, layers=(2,), form="per_layer", hidden=(3,),
                             resid_norm={2: 1.5})
    flat = SteeringField(scorer, metadata)
    assert torch.equal(flat.direction(torch.randn(3, 4), 2), torch.zeros(3, 4))
    assert torch.equal(flat.update(torch.randn(3, 4), 2, 1.0), torch.zeros(3, 4))


def test_a_hooked_forward_of_the_tiny_model(tiny, fitted_on_tiny):
    field = fitted_on_tiny
    layer = field.layers[0]
    ids = torch.tensor([tiny.encode(["The market opens early."])[0]], device=tiny.device)
    params = list(tiny.hf_model.parameters())

    def run(coefficient: float) -> torch.Tensor:
        def hook(resid, hook):
            return resid + field.update(resid, layer, coefficient)

        with torch.inference_mode(), tiny.bridge.hooks(fwd_hooks=[(field.hook_name(layer), hook)]):
            return tiny.bridge(ids)

    with torch.inference_mode():
        baseline = tiny.bridge(ids)
    assert torch.equal(run(0.0), baseline)
    assert not torch.allclose(run(0.5), baseline)
    assert all(p.grad is None for p in params)
    field.check_model(tiny)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_direction_on_cuda(xor_field):
    x, _ = planted_xor(16, seed=13)
    with torch.inference_mode():
        got = xor_field.direction(x.cuda().half(), 0)
        step = xor_field.update(x.cuda(), 0, torch.full((16, 1), 0.1, device="cuda"), steps=2)
    assert got.device.type == "cuda" and got.dtype == torch.float16
    assert (cosine(got.float().cpu(), xor_field.direction(x, 0)) > 0.99).all()
    torch.testing.assert_close(step.cpu(), xor_field.update(x, 0, 0.1, steps=2), rtol=1e-4, atol=1e-4)
    moved = xor_field.to("cuda")
    assert moved.device.type == "cuda" and moved.to("cuda") is moved


# ----------------------------------------------------------------------------- fit_field on a model


@pytest.fixture(scope="module")
def fitted_on_tiny(tiny) -> SteeringField:
    pairs = ist.load_builtin("moral_pairs")[:12]
    return fit_field(tiny, pairs, layers=[1, 3], drop_weak="keep", epochs=5)


def test_fit_field_on_pairs_and_on_two_lists(tiny, fitted_on_tiny):
    pairs = ist.load_builtin("moral_pairs")[:12]
    field = fitted_on_tiny
    meta = field.metadata
    assert field.layers == (1, 3) and meta.model == tiny.name and meta.d_model == tiny.d_model
    assert meta.dataset_hash == ist.dataset_hash(pairs) and meta.settings["paired"] is True
    assert set(meta.resid_norm) == {1, 3} and all(v > 0 for v in meta.resid_norm.values())
    assert (meta.n_positive, meta.n_negative) == (12, 12) and set(meta.training) == {1, 3}
    positive = ["I love this.", "What a lovely day.", "Great work, thank you!", "This is wonderful."]
    negative = ["I hate this.", "What an awful day.", "Terrible work.", "This is dreadful.", "Ugh."]
    lists = fit_field(tiny, positive, negative, layers=2, chat=True, drop_weak="keep", epochs=3,
                      form="shared")
    assert lists.layers == (2,) and lists.form == "shared" and "chat" in lists.metadata.position
    assert lists.metadata.settings["paired"] is False
    assert lists.metadata.dataset_hash == ist.dataset_hash([*positive, "\x00", *negative])
    with pytest.raises(ValueError, match="all"):
        fit_field(tiny, positive, negative, layers=2, position="all")


# ----------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def fields_by_form(xor_field, linear_field) -> dict[str, SteeringField]:
    x, y = planted_xor(200, seed=14)
    shared = fit_scorer({0: x[y], 4: 2 * x[y]}, {0: x[~y], 4: 2 * x[~y]}, form="shared", epochs=3,
                        drop_weak="keep", metadata={"model": "synthetic", "description": "xor"})
    return {"per_layer": xor_field, "linear": linear_field, "shared": shared}


@pytest.mark.parametrize("form", ["per_layer", "linear", "shared"])
def test_save_load_round_trip_is_exact(fields_by_form, form, tmp_path):
    field = fields_by_form[form]
    path = field.save(tmp_path / f"{form}.safetensors")
    loaded = SteeringField.load(path)
    assert loaded.metadata == field.metadata and loaded.layers == field.layers
    x = torch.randn(25, field.d_model) * 3
    for layer in field.layers:
        assert torch.equal(loaded.score(x, layer), field.score(x, layer))
        assert torch.equal(loaded.direction(x, layer), field.direction(x, layer))
    with safe_open(str(path), framework="pt") as handle:
        names = list(handle.keys())
    layer = field.layers[0]
    assert f"blocks.{layer}.hook_resid_post.standardise.mean" in names
    assert (("shared.projection" in names) == (form == "shared"))


def _rewrite(src, dst, *, header=None, tensors=None):
    with safe_open(str(src), framework="pt") as handle:
        meta = dict(handle.metadata())
        data = {k: handle.get_tensor(k) for k in handle.keys()}
    save_file(tensors(data) if tensors else data, str(dst), metadata=header(meta) if header else meta)
    return dst


def _edit_metadata(edit):
    def header(meta):
        content = json.loads(meta["metadata"])
        edit(content)
        return {**meta, "metadata": json.dumps(content)}

    return header


def test_damaged_files_are_refused(fields_by_form, tmp_path):
    field = fields_by_form["per_layer"]
    good = field.save(tmp_path / "good.safetensors")
    key = "blocks.0.hook_resid_post.mlp.1.weight"

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    cases = {
        truncated: "not a readable",
        _rewrite(good, tmp_path / "tag.safetensors", header=lambda m: {**m, "format": "other"}): "not an interp_steer",
        _rewrite(good, tmp_path / "version.safetensors", header=lambda m: {**m, "format_version": "9"}): "version",
        _rewrite(good, tmp_path / "missing.safetensors",
                 tensors=lambda t: {k: v for k, v in t.items() if k != key}): "missing.*mlp.1.weight",
        _rewrite(good, tmp_path / "shape.safetensors",
                 tensors=lambda t: {**t, key: torch.zeros(3, 3)}): "shape|expected float32",
        _rewrite(good, tmp_path / "nan.safetensors",
                 tensors=lambda t: {**t, key: torch.full_like(t[key], float("nan"))}): "NaN",
        _rewrite(good, tmp_path / "unknown.safetensors",
                 header=_edit_metadata(lambda c: c.update(colour="blue"))): "unknown metadata fields",
        _rewrite(good, tmp_path / "layers.safetensors",
                 header=_edit_metadata(lambda c: c.update(layers=[0, 1]))): "missing",
        _rewrite(good, tmp_path / "hidden.safetensors",
                 header=_edit_metadata(lambda c: c.update(hidden=[128, 64]))): "expected float32",
        _rewrite(good, tmp_path / "linear.safetensors",
                 header=_edit_metadata(lambda c: c.update(form="linear"))): "linear form",
        _rewrite(good, tmp_path / "huge.safetensors",
                 header=_edit_metadata(lambda c: c.update(d_model=10**9))): "expected float32",
        _rewrite(good, tmp_path / "extra.safetensors",
                 tensors=lambda t: {**t, "shared.projection": torch.zeros(D, 16)}): "unexpected",
        tmp_path / "absent.safetensors": "no such file",
    }
    for path, message in cases.items():
        with pytest.raises(FieldFileError, match=message) as caught:
            SteeringField.load(path)
        assert path.name in str(caught.value)


def test_load_refuses_a_model_it_does_not_fit(fields_by_form, fitted_on_tiny, tiny, tmp_path):
    synthetic = fields_by_form["per_layer"].save(tmp_path / "synthetic.safetensors")
    with pytest.raises(FieldFileError, match="d_model"):
        SteeringField.load(synthetic, model=tiny)
    on_tiny = fitted_on_tiny.save(tmp_path / "tiny.safetensors")
    assert SteeringField.load(on_tiny, model=tiny).layers == (1, 3)
    renamed = SteeringField(fitted_on_tiny.scorer, replace(fitted_on_tiny.metadata, model="other-model"))
    with pytest.raises(FieldFileError, match="not on"):
        SteeringField.load(renamed.save(tmp_path / "other.safetensors"), model=tiny)


def test_select_keeps_the_scores(fields_by_form):
    field = fields_by_form["shared"]
    x = torch.randn(10, D)
    one = field.select([4])
    assert one.layers == (4,) and set(one.metadata.training) == {4}
    assert torch.equal(one.score(x, 4), field.score(x, 4))
    with pytest.raises(KeyError, match="not in this field"):
        field.select([2])
    assert field.to("cpu") is field


def test_public_names_are_exported():
    for name in ("SteeringField", "FieldMetadata", "FieldFileError", "fit_field", "fit_scorer",
                 "context_dependence"):
        assert getattr(ist, name) is not None and name in ist.__all__
