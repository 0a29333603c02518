"""Directions: planted-direction recovery, hand computations, signs, algebra, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import interp_steer as ist
from interp_steer.activations import Activations
from interp_steer.directions import (
    SteeringVector,
    VectorFileError,
    VectorMetadata,
    from_activations,
    mean_diff,
    mix,
)

D = 32


def planted(n=120, layers=3, d=D, shift=3.0, seed=0, paired=True):
    """Activations whose positive class is shifted along a known unit direction at every layer."""
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(d, generator=gen)
    direction /= direction.norm()
    base = torch.randn(n, layers, d, generator=gen) * 2.0
    noise = torch.randn(n, layers, d, generator=gen) * 0.5
    pos = base + shift * direction + noise if paired else torch.randn(n, layers, d, generator=gen) + shift * direction
    neg = base if paired else torch.randn(n, layers, d, generator=gen)
    return wrap(pos), wrap(neg), direction


def wrap(values, layers=None):
    layers = tuple(range(values.shape[1])) if layers is None else layers
    return Activations(values=values.float(), layers=layers, hook_point="resid_post", position="last",
                       text_index=torch.arange(values.shape[0]), n_texts=values.shape[0], model_name="synthetic")


@pytest.mark.parametrize(("method", "n"), [("mean_diff", 120), ("pca", 120), ("probe", 2500)])
def test_planted_direction_is_recovered(method, n):
    # A logistic probe estimates its direction with more noise (it also fits the shared
    # variance between pairs), so it gets more samples to reach the same accuracy.
    pos, neg, direction = planted(n=n)
    vector = from_activations(pos, neg, method=method)
    for layer in vector.layers:
        cosine = torch.nn.functional.cosine_similarity(vector[layer], direction, dim=0)
        assert cosine > 0.99, (method, layer, float(cosine))


@pytest.mark.parametrize("method", ["mean_diff", "pca", "probe"])
def test_positive_side_scores_higher(method):
    pos, neg, _ = planted(seed=3)
    vector = from_activations(pos, neg, method=method)
    for i, layer in enumerate(vector.layers):
        assert (pos.values[:, i] @ vector[layer]).mean() > (neg.values[:, i] @ vector[layer]).mean()
    flipped = from_activations(neg, pos, method=method)
    for layer in vector.layers:
        assert torch.nn.functional.cosine_similarity(vector[layer], flipped[layer], dim=0) < -0.99


def test_mean_difference_equals_hand_computation():
    pos = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]])
    neg = torch.tensor([[[0.0, 1.0]], [[0.0, 3.0]], [[3.0, 2.0]]])
    vector = from_activations(wrap(pos), wrap(neg), method="mean_diff")
    torch.testing.assert_close(vector[0], torch.tensor([2.0 - 1.0, 3.0 - 2.0]))
    assert vector.metadata.n_positive == 2 and vector.metadata.n_negative == 3


def test_pca_and_probe_are_scaled_like_the_mean_gap():
    pos, neg, direction = planted(shift=4.0)
    md = from_activations(pos, neg, method="mean_diff")
    for method in ("pca", "probe"):
        other = from_activations(pos, neg, method=method)
        for layer in md.layers:
            unit = other[layer] / other[layer].norm()
            # The length is the class-mean gap projected on the method's own direction.
            torch.testing.assert_close(other[layer].norm(), md[layer] @ unit, rtol=1e-4, atol=1e-5)


def test_pca_requires_pairs():
    pos, _, _ = planted(n=10)
    neg, _, _ = planted(n=12)
    with pytest.raises(ValueError, match="paired"):
        from_activations(pos, neg, method="pca")
    with pytest.raises(ValueError, match="method"):
        from_activations(pos, pos, method="median")


def make_vector(values: dict[int, list[float]], model="m", hook="resid_post", **meta) -> SteeringVector:
    d = len(next(iter(values.values())))
    return SteeringVector({k: torch.tensor(v) for k, v in values.items()},
                          VectorMetadata(model=model, d_model=d, hook_point=hook, **meta))


def test_algebra_and_identities():
    a = make_vector({3: [1.0, 2.0], 5: [0.0, 1.0]})
    b = make_vector({3: [3.0, -1.0], 5: [2.0, 2.0]})
    torch.testing.assert_close((a + b)[3], torch.tensor([4.0, 1.0]))
    torch.testing.assert_close((a - b)[5], torch.tensor([-2.0, -1.0]))
    torch.testing.assert_close((2 * a)[3], torch.tensor([2.0, 4.0]))
    torch.testing.assert_close((a * 2)[3], (2 * a)[3])
    torch.testing.assert_close((a / 2)[3], torch.tensor([0.5, 1.0]))
    torch.testing.assert_close((-a)[5], torch.tensor([0.0, -1.0]))
    assert all(n == 0.0 for n in (a - a).norms().values())
    for layer in a.layers:
        assert torch.equal(mix(a, b, 1.0)[layer], a[layer])
        assert torch.equal(mix(a, b, 0.0)[layer], b[layer])
        torch.testing.assert_close(mix(a, b, 0.25)[layer], 0.25 * a[layer] + 0.75 * b[layer])
    with pytest.raises(ValueError, match="alpha"):
        mix(a, b, 1.5)


def test_immutability():
    a = make_vector({3: [1.0, 2.0]})
    a[3][0] = 100.0  # a copy: the vector itself does not change
    assert a[3][0] == 1.0
    with pytest.raises(TypeError):
        a.directions[4] = torch.zeros(2)
    with pytest.raises(AttributeError):
        a.metadata = None


def test_combining_incompatible_vectors_raises():
    a = make_vector({3: [1.0, 2.0]})
    with pytest.raises(ValueError, match="different models"):
        a + make_vector({3: [1.0, 2.0]}, model="other")
    with pytest.raises(ValueError, match="different hook points"):
        a + make_vector({3: [1.0, 2.0]}, hook="resid_pre")
    with pytest.raises(ValueError, match="different layers"):
        a + make_vector({4: [1.0, 2.0]})
    with pytest.raises(TypeError):
        a * "two"


def test_bad_vectors_are_refused():
    with pytest.raises(ValueError, match="shape"):
        SteeringVector({0: torch.zeros(3)}, VectorMetadata(model="m", d_model=2))
    with pytest.raises(ValueError, match="NaN"):
        make_vector({0: [float("nan"), 1.0]})
    with pytest.raises(ValueError, match="at least one layer"):
        SteeringVector({}, VectorMetadata(model="m", d_model=2))
    with pytest.raises(ValueError, match="zero vector"):
        make_vector({0: [0.0, 0.0]}).normalised("unit")


def test_normalisation():
    a = make_vector({1: [3.0, 4.0], 2: [0.0, 2.0]}, resid_norm={1: 10.0, 2: 20.0})
    assert a.normalised("unit").norms() == pytest.approx({1: 1.0, 2: 1.0})
    assert a.normalised("resid").norms() == pytest.approx({1: 10.0, 2: 20.0})
    assert a.relative_norms() == pytest.approx({1: 0.5, 2: 0.1})
    assert a.normalised("unit").metadata.normalisation == "unit"


def test_scaling_or_combining_a_normalised_vector_makes_it_raw_again():
    """The recorded unit is a promise about the norms (the command line prints and writes it), so
    what breaks the promise drops it; negation and selecting layers keep it."""
    a = make_vector({1: [3.0, 4.0], 2: [0.0, 2.0]}, resid_norm={1: 10.0, 2: 20.0}).normalised("resid")
    b = make_vector({1: [1.0, 0.0], 2: [0.0, 1.0]}, resid_norm={1: 10.0, 2: 20.0}).normalised("resid")
    for derived in (2 * a, a / 3, a + b, a - b, mix(a, b, 0.5)):
        assert derived.metadata.normalisation == "none"
    for kept in (-a, a.select([1]), a * 1, a * -1):
        assert kept.metadata.normalisation == "resid"
        assert kept.norms() == pytest.approx({layer: a.metadata.resid_norm[layer] for layer in kept.layers})


def test_geometry():
    a = make_vector({1: [1.0, 0.0], 2: [0.0, 1.0], 3: [1.0, 1.0]})
    b = make_vector({1: [1.0, 0.0], 2: [1.0, 0.0], 3: [-1.0, -1.0]})
    assert a.cosine(b) == pytest.approx({1: 1.0, 2: 0.0, 3: -1.0})
    matrix = a.cosine_across_layers()
    assert matrix.shape == (3, 3)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-6)
    assert matrix[0, 1] == pytest.approx(0.0, abs=1e-6)


def test_save_load_round_trip_is_exact(tmp_path):
    pos, neg, _ = planted()
    vector = from_activations(pos, neg, metadata={"dataset_hash": "abc", "description": "planted"})
    path = vector.save(tmp_path / "v.safetensors")
    loaded = SteeringVector.load(path)
    assert loaded.layers == vector.layers
    for layer in vector.layers:
        assert torch.equal(loaded[layer], vector[layer])
    assert loaded.metadata == vector.metadata
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        assert sorted(handle.keys()) == [f"blocks.{i}.hook_resid_post" for i in range(3)]
        assert json.loads(handle.metadata()["metadata"])["method"] == "mean_diff"


def test_corrupted_and_foreign_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    vector = make_vector({1: [1.0, 2.0]})
    good = vector.save(tmp_path / "good.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(good.read_bytes()[:40])
    with pytest.raises(VectorFileError, match="not a readable safetensors"):
        SteeringVector.load(broken)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign))
    with pytest.raises(VectorFileError, match="not an interp_steer steering vector"):
        SteeringVector.load(foreign)
    header = {"format": "interp_steer.steering_vector", "format_version": "1",
              "metadata": json.dumps(vector.metadata.to_dict())}
    wrong_shape = tmp_path / "shape.safetensors"
    save_file({"blocks.1.hook_resid_post": torch.zeros(3)}, str(wrong_shape), metadata=header)
    with pytest.raises(VectorFileError, match="shape"):
        SteeringVector.load(wrong_shape)
    wrong_key = tmp_path / "key.safetensors"
    save_file({"layer1": torch.zeros(2)}, str(wrong_key), metadata=header)
    with pytest.raises(VectorFileError, match="unexpected tensor"):
        SteeringVector.load(wrong_key)
    with pytest.raises(VectorFileError, match="no such file"):
        SteeringVector.load(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match=".safetensors"):
        vector.save(tmp_path / "v.pt")


def test_model_mismatch_is_refused(tmp_path, tiny):
    other = make_vector({1: [1.0, 2.0]}, model=tiny.name)
    path = other.save(tmp_path / "small.safetensors")
    with pytest.raises(VectorFileError, match="d_model"):
        SteeringVector.load(path, model=tiny)
    wrong_model = SteeringVector({1: torch.ones(tiny.d_model)}, VectorMetadata(model="gpt2", d_model=tiny.d_model))
    with pytest.raises(VectorFileError, match="built on 'gpt2'"):
        SteeringVector.load(wrong_model.save(tmp_path / "gpt2.safetensors"), model=tiny)
    too_deep = SteeringVector({9: torch.ones(tiny.d_model)}, VectorMetadata(model=tiny.name, d_model=tiny.d_model))
    with pytest.raises(VectorFileError, match="only 4 layers"):
        SteeringVector.load(too_deep.save(tmp_path / "deep.safetensors"), model=tiny)


def test_gguf_export_reads_back(tmp_path):
    import gguf

    vector = make_vector({1: [1.0, -2.0, 0.5], 4: [0.25, 0.0, 3.0]})
    path = vector.to_gguf(tmp_path / "v.gguf", model_hint="llama")
    read = SteeringVector.read_gguf(path)
    assert sorted(read) == [1, 4]
    for layer in vector.layers:
        np.testing.assert_array_equal(read[layer], vector[layer].numpy())
    reader = gguf.GGUFReader(str(path))
    count = reader.fields["controlvector.layer_count"]
    assert int(count.parts[count.data[0]][0]) == 2
    hint = reader.fields["controlvector.model_hint"]
    assert bytes(hint.parts[hint.data[0]]).decode() == "llama"
    with pytest.raises(ValueError, match="layer 0"):
        make_vector({0: [1.0, 2.0]}).to_gguf(tmp_path / "zero.gguf")


def test_build_vector_on_the_tiny_model(tiny):
    pairs = ist.load_builtin("moral_pairs")[:12]
    vector = ist.build_vector(tiny, pairs, layers=[1, 3])
    assert vector.layers == (1, 3) and vector.metadata.model == tiny.name
    assert vector.metadata.dataset_hash == ist.dataset_hash(pairs)
    acts_pos = ist.collect_activations(tiny, [p.positive for p in pairs], layers=[1, 3])
    acts_neg = ist.collect_activations(tiny, [p.negative for p in pairs], layers=[1, 3])
    expected = mean_diff(acts_pos.values, acts_neg.values).float()
    torch.testing.assert_close(vector[3], expected[1], rtol=1e-5, atol=1e-6)
    chat = ist.build_vector(tiny, pairs, layers=[1], chat=True)
    assert not torch.allclose(chat[1], vector[1])
    assert "chat" in chat.metadata.position


def test_html_display_lists_norms_per_layer_and_the_samples():
    from conftest import rendered

    vector = make_vector({2: [3.0, 4.0], 5: [0.0, 1.0]}, n_positive=7, n_negative=9, resid_norm={2: 10.0})
    page, line = rendered(vector)
    assert "7 positive / 9 negative" in page and "<td style='text-align:left'>5</td>" in page
    assert "<td style='text-align:left'>0.5</td>" in page  # norm 5 over a mean residual norm of 10
    assert line == repr(vector)
