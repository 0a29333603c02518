"""Per-layer probes, bands, localisation and sample-size curves, on synthetic data with known answers."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from scipy import stats

import interp_steer as ist
from interp_steer import probes
from interp_steer.probes import compare_profiles, probe_layers, sample_size_curve
from interp_steer.probes.layers import _band


def planted(
    shifts: dict[int, float],
    *,
    n_pos: int = 40,
    n_neg: int = 40,
    n_layers: int = 6,
    d: int = 16,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Unit Gaussian noise for both classes; positives shifted by ``shifts[layer]`` along a random
    unit direction (a different one per layer) at the layers named in ``shifts``."""
    rng = np.random.default_rng(seed)
    pos = rng.standard_normal((n_pos, n_layers, d))
    neg = rng.standard_normal((n_neg, n_layers, d))
    for layer, shift in shifts.items():
        direction = rng.standard_normal(d)
        pos[:, layer] += shift * direction / np.linalg.norm(direction)
    return pos, neg


@pytest.fixture(scope="module")
def layer3() -> probes.LayerProfile:
    """A strong signal at layer 3 of 6, nowhere else."""
    return probe_layers(*planted({3: 6.0}), concept="joy")


# --------------------------------------------------------------------------------------------
# probe_layers: the planted layer, chance, perfect separation


def test_a_planted_layer_is_found_and_the_others_are_chance(layer3):
    profile = layer3

    assert profile.best_layer == 3
    assert profile.accuracy[3] > 0.95
    for layer in (0, 1, 2, 4, 5):
        assert abs(profile.accuracy[layer] - 0.5) < 0.2, (layer, profile.accuracy)
        assert layer not in profile.band  # clearly worse layers are excluded
    assert profile.band == (3,) and profile.band_low == profile.band_high == 3
    assert profile.heldout_accuracy > 0.9
    assert profile.heldout_layers == (3,) * 5
    assert profile.separability[3] > 0.95


def test_random_labels_give_chance_everywhere_including_the_selected_layer():
    # 100 per class: CV accuracy on random labels scatters by ~0.05 around 0.5 (a little more than
    # binomial: the folds are not independent), so 0.15 is a wide margin.
    pos, neg = planted({}, n_pos=100, n_neg=100, n_layers=6, seed=1)
    profile = probe_layers(pos, neg)
    for accuracy in profile.accuracy:
        assert abs(accuracy - 0.5) < 0.15, profile.accuracy
    # Nested CV: choosing the luckiest layer does not inflate the honest estimate.
    assert abs(profile.heldout_accuracy - 0.5) < 0.15
    assert len(profile.heldout_layers) == profile.folds
    assert profile.heldout_accuracy_std >= 0.0


def test_perfectly_separable_data_scores_one():
    pos, neg = planted({2: 30.0}, n_layers=4)
    profile = probe_layers(pos, neg)
    assert profile.accuracy[2] == 1.0
    assert profile.auroc[2] == 1.0
    assert profile.accuracy_std[2] == 0.0 and profile.auroc_std[2] == 0.0
    assert profile.separability[2] == 1.0
    assert profile.heldout_accuracy == 1.0


def test_separability_is_high_for_a_mean_shift_and_low_when_noise_hides_the_mean_difference():
    pos, neg = planted({1: 3.0}, n_pos=60, n_neg=60, n_layers=3)
    assert probe_layers(pos, neg).separability[1] > 0.95

    # The classes differ along (e0 + e1)/sqrt(2), but e0 also carries huge shared noise: the plain
    # mean-difference direction drowns in it, while a probe learns to read e1 alone.
    rng = np.random.default_rng(1)
    d = 16
    pos = rng.standard_normal((100, 1, d))
    neg = rng.standard_normal((100, 1, d))
    pos[:, 0, 0] += 20.0 * rng.standard_normal(100)
    neg[:, 0, 0] += 20.0 * rng.standard_normal(100)
    pos[:, 0, :2] += 3.0 / np.sqrt(2)
    profile = probe_layers(pos, neg)
    assert profile.auroc[0] > 0.85
    assert profile.separability[0] < profile.auroc[0] - 0.15


def test_unequal_class_sizes_torch_input_and_determinism():
    pos, neg = planted({4: 6.0}, n_pos=25, n_neg=45)
    profile = probe_layers(pos, neg, seed=3)
    assert (profile.n_positive, profile.n_negative) == (25, 45)
    assert profile.best_layer == 4

    as_torch = probe_layers(torch.from_numpy(pos), torch.from_numpy(neg), seed=3)
    assert as_torch == profile
    assert probe_layers(pos, neg, seed=4).accuracy != profile.accuracy  # other folds


def test_activations_input_names_the_layers():
    pos, neg = planted({1: 6.0}, n_layers=3)

    def wrap(values: np.ndarray) -> ist.Activations:
        n = len(values)
        return ist.Activations(
            values=torch.from_numpy(values).float(),
            layers=(2, 5, 7),
            hook_point="resid_post",
            position="last",
            text_index=torch.arange(n),
            n_texts=n,
            model_name="synthetic",
        )

    profile = probe_layers(wrap(pos), wrap(neg))
    assert profile.layers == (2, 5, 7)
    assert profile.best_layer == 5 and profile.band == (5,)
    assert set(profile.heldout_layers) == {5}

    explicit = probe_layers(pos, neg, layers=[10, 20, 30])
    assert explicit.layers == (10, 20, 30) and explicit.best_layer == 20

    with pytest.raises(ValueError, match="disagrees with the Activations' own layers"):
        probe_layers(wrap(pos), wrap(neg), layers=[0, 1, 2])


def test_profile_is_frozen_and_serialises_to_json(layer3):
    profile = layer3
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.best_layer = 0
    data = json.loads(json.dumps(profile.to_dict()))
    assert data["concept"] == "joy"
    assert data["best_layer"] == 3
    assert data["band_low"] == data["band_high"] == 3
    assert data["layers"] == list(range(6))
    for key in ("accuracy", "accuracy_std", "auroc", "auroc_std", "separability"):
        assert isinstance(data[key], list) and len(data[key]) == 6


# --------------------------------------------------------------------------------------------
# The band


def test_two_equally_strong_layers_are_both_in_the_band_and_confidence_breaks_the_tie():
    pos, neg = planted({1: 30.0, 4: 30.0})
    profile = probe_layers(pos, neg)
    assert profile.accuracy[1] == profile.accuracy[4] == 1.0
    assert profile.best_layer == max((1, 4), key=lambda layer: profile.log_likelihood[layer])
    assert profile.band == (1, 4)
    assert (profile.band_low, profile.band_high) == (1, 4)


def test_saturated_accuracy_still_ranks_layers_by_held_out_confidence():
    # Both layers classify perfectly; layer 4 separates the classes far more widely.
    pos, neg = planted({1: 8.0, 4: 40.0})
    profile = probe_layers(pos, neg)
    assert profile.accuracy[1] == profile.accuracy[4] == 1.0
    assert profile.log_likelihood[4] > profile.log_likelihood[1]
    assert profile.best_layer == 4


@pytest.mark.parametrize("seed", range(5))
def test_band_matches_a_paired_t_test(seed):
    # Oracle: L is outside the band exactly when a two-sided paired t-test at 5 % says that L's
    # fold accuracies are below the best layer's.
    rng = np.random.default_rng(seed)
    fold_accuracy = np.clip(0.8 + 0.1 * rng.standard_normal((5, 8)), 0, 1)
    fold_accuracy[:, 0] = 0.95  # best
    fold_accuracy[:, 1] = fold_accuracy[:, 0]  # identical to the best in every fold
    inside = _band(fold_accuracy, 0)
    assert inside[0] and inside[1]
    for layer in range(2, 8):
        p_value = stats.ttest_rel(fold_accuracy[:, 0], fold_accuracy[:, layer]).pvalue
        assert inside[layer] == (p_value >= 0.05), (layer, p_value)


# --------------------------------------------------------------------------------------------
# compare_profiles


def test_compare_profiles_concepts_peaking_at_the_same_layer():
    a = probe_layers(*planted({3: 6.0}, seed=1))
    b = probe_layers(*planted({3: 6.0}, seed=2))
    where = compare_profiles({"a": a, "b": b})
    assert where.shared_layer == 3
    assert where.best_layers_indistinguishable is True
    assert where.layers == tuple(range(6))


def test_compare_profiles_concepts_peaking_apart_share_the_layer_where_both_are_good():
    # a peaks at 1, b at 3; both are fairly readable at 2, where neither is at its best.
    a = probe_layers(*planted({1: 8.0, 2: 3.0}, seed=1))
    b = probe_layers(*planted({3: 8.0, 2: 3.0}, seed=2))
    assert (a.best_layer, b.best_layer) == (1, 3)
    where = compare_profiles({"a": a, "b": b})
    assert where.shared_layer == 2
    assert where.best_layers_indistinguishable is False


def test_compare_profiles_single_concept_and_schema(layer3):
    profile = layer3
    where = compare_profiles({"joy": profile})
    assert where.shared_layer is None and where.best_layers_indistinguishable is None

    data = json.loads(json.dumps(where.to_dict()))
    assert set(data) == {"concepts", "shared_layer", "best_layers_indistinguishable"}
    assert list(data["concepts"]) == ["joy"]
    concept = data["concepts"]["joy"]
    assert {"accuracy", "accuracy_std", "auroc", "best_layer"} <= set(concept)
    assert isinstance(concept["best_layer"], int)
    assert data["shared_layer"] is None and data["best_layers_indistinguishable"] is None

    two = compare_profiles({"a": profile, "b": profile}).to_dict()
    assert json.loads(json.dumps(two)) == two
    assert isinstance(two["shared_layer"], int)
    assert isinstance(two["best_layers_indistinguishable"], bool)


def test_compare_profiles_rejects_empty_and_mismatched_layers():
    with pytest.raises(ValueError, match="empty"):
        compare_profiles({})
    pos, neg = planted({1: 6.0}, n_layers=3)
    a = probe_layers(pos, neg)
    b = probe_layers(pos, neg, layers=[4, 5, 6])
    with pytest.raises(ValueError, match="different layers"):
        compare_profiles({"a": a, "b": b})


# --------------------------------------------------------------------------------------------
# sample_size_curve


def test_direction_converges_with_more_examples():
    pos, neg = planted({1: 3.0}, n_pos=200, n_neg=220, n_layers=2, d=32)
    curve = sample_size_curve(pos, neg, layer_index=1, sizes=(5, 10, 20, 40, 80, 160, 200, 500))
    assert curve.sizes == (5, 10, 20, 40, 80, 160)
    assert curve.skipped_sizes == (200, 500)  # 200 would leave no positive held out
    assert all(np.diff(curve.cosine_mean) > 0), curve.cosine_mean
    assert curve.cosine_mean[-1] > 0.95
    assert curve.accuracy_mean[-1] > curve.accuracy_mean[0]
    assert curve.accuracy_mean[-1] > 0.85
    assert len(curve.cosine) == len(curve.accuracy) == 6
    assert all(len(row) == curve.repeats == 10 for row in curve.cosine + curve.accuracy)
    assert curve.cosine_std[0] > curve.cosine_std[-1]
    data = json.loads(json.dumps(curve.to_dict()))
    assert data["sizes"] == [5, 10, 20, 40, 80, 160] and data["layer"] == 1


def test_sample_size_curve_is_reproducible_by_seed():
    pos, neg = planted({0: 2.0}, n_pos=60, n_neg=60, n_layers=1)
    kwargs = {"layer_index": 0, "sizes": (5, 20), "repeats": 4}
    first = sample_size_curve(pos, neg, seed=7, **kwargs)
    assert sample_size_curve(pos, neg, seed=7, **kwargs) == first
    other = sample_size_curve(pos, neg, seed=8, **kwargs)
    assert other.cosine != first.cosine and other.accuracy != first.accuracy


def test_sample_size_curve_rejects_bad_arguments():
    pos, neg = planted({0: 2.0}, n_pos=30, n_neg=30, n_layers=2)
    with pytest.raises(ValueError, match="layer_index=2 is out of range"):
        sample_size_curve(pos, neg, layer_index=2)
    with pytest.raises(ValueError, match="use sizes below 30"):
        sample_size_curve(pos, neg, layer_index=0, sizes=(30, 40))
    with pytest.raises(ValueError, match="identical means"):
        sample_size_curve(pos, pos.copy(), layer_index=0)


# --------------------------------------------------------------------------------------------
# Bad input fails loudly, saying what was expected


def test_too_few_examples_per_class():
    pos, neg = planted({}, n_pos=3, n_neg=40)
    with pytest.raises(ValueError, match="positive has 3 examples but folds=5 needs at least 5"):
        probe_layers(pos, neg)
    # Enough for the outer folds, too few for the nested layer selection inside them.
    pos, neg = planted({}, n_pos=3, n_neg=40)
    with pytest.raises(ValueError, match="too few for the nested"):
        probe_layers(pos, neg, folds=2)


def test_shape_mismatch_and_wrong_rank():
    pos, _ = planted({}, d=16)
    _, neg = planted({}, d=8)
    with pytest.raises(ValueError, match=r"same layers and d_model"):
        probe_layers(pos, neg)
    pos, neg = planted({}, n_layers=3)
    with pytest.raises(ValueError, match=r"expected \[n, n_layers, d_model\]"):
        probe_layers(pos[:, 0], neg[:, 0])
    with pytest.raises(ValueError, match="layers has 2 entries but the activations have 3"):
        probe_layers(pos, neg, layers=[0, 1])
    with pytest.raises(ValueError, match="duplicates"):
        probe_layers(pos, neg, layers=[0, 1, 1])


def test_non_finite_values_are_reported_with_their_rows():
    pos, neg = planted({})
    neg[7, 2, 3] = np.nan
    neg[9, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"negative contains 2 non-finite values .* rows \[7, 9\]"):
        probe_layers(pos, neg)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"folds": 1}, "folds >= 2"), ({"C": 0.0}, "positive number"), ({"seed": -1}, "seed=-1")],
)
def test_bad_settings(kwargs, match):
    pos, neg = planted({})
    with pytest.raises(ValueError, match=match):
        probe_layers(pos, neg, **kwargs)


def test_profile_frames_and_displays(layer3):
    from conftest import rendered

    frame = layer3.to_frame()
    assert len(frame) == 4 * len(layer3.layers)
    accuracy = frame[frame["metric"] == "accuracy"]
    assert list(accuracy["value"]) == list(layer3.accuracy) and list(accuracy["std"]) == list(layer3.accuracy_std)
    assert list(accuracy[accuracy["best"]]["layer"]) == [3] and list(accuracy[accuracy["in_band"]]["layer"]) == list(layer3.band)
    assert frame.attrs["best_layer"] == 3 and frame.attrs["heldout_accuracy"] == layer3.heldout_accuracy
    other = probe_layers(*planted({1: 6.0}), concept="calm")
    together = probes.Localisation({"joy": layer3, "calm": other}, shared_layer=1, best_layers_indistinguishable=False)
    both = together.to_frame()
    assert len(both) == 2 * len(frame) and set(both["concept"]) == {"joy", "calm"}
    assert both.attrs["shared_layer"] == 1 and both.attrs["best_layer"] == {"joy": 3, "calm": 1}
    page, line = rendered(layer3)
    assert "joy" in page and "<img" in page and "best_layer=3" in line
    page, line = rendered(together)
    assert "calm" in page and "shared layer" in page and "'joy': 3" in line
