"""How many examples a mean-difference direction and a probe need before they stop changing:
:func:`sample_size_curve`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from jaxtyping import Float
from threadpoolctl import threadpool_limits

from interp_steer.probes._arrays import (
    ActivationStack,
    check_C,
    check_int,
    check_seed,
    floats,
    json_ready,
    new_probe,
    stack_classes,
    std_over_samples,
)


@dataclass(frozen=True)
class SampleSizeCurve:
    """How the mean-difference direction and a probe settle as the number of examples grows.

    For each ``sizes[i]`` (examples *per class*), ``cosine[i]`` holds, per repeat, the cosine
    between the direction from that many examples and the direction from all of them, and
    ``accuracy[i]`` the accuracy of a probe trained on those examples on every example not drawn.
    ``skipped_sizes`` are the requested sizes that left no held-out example of the smaller class.
    """

    layer_index: int
    layer: int
    sizes: tuple[int, ...]
    skipped_sizes: tuple[int, ...]
    repeats: int
    seed: int
    C: float
    n_positive: int
    n_negative: int
    cosine_mean: tuple[float, ...]
    cosine_std: tuple[float, ...]
    accuracy_mean: tuple[float, ...]
    accuracy_std: tuple[float, ...]
    cosine: tuple[tuple[float, ...], ...]
    accuracy: tuple[tuple[float, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """Every field, as JSON-ready plain Python types."""
        return {f.name: json_ready(getattr(self, f.name)) for f in fields(self)}


def sample_size_curve(
    positive: ActivationStack,
    negative: ActivationStack,
    *,
    layer_index: int,
    sizes: Sequence[int] = (5, 10, 20, 40, 80, 160),
    repeats: int = 10,
    seed: int = 0,
    C: float = 1.0,
) -> SampleSizeCurve:
    """How many examples per class a direction and a probe need, at one layer.

    ``layer_index`` is a position along the layers axis (``0 .. n_layers-1``), not a layer number;
    the result records both. For each ``n`` in ``sizes`` smaller than the smaller class (larger ones
    are skipped and listed in ``skipped_sizes``), ``repeats`` times: draw ``n`` positives and ``n``
    negatives without replacement, take the cosine between their mean difference and the mean
    difference of all the data, and train a probe on them that is scored on every example not
    drawn. A cosine near 1 means more data would barely move the direction. Deterministic given
    ``seed``.
    """
    layer_index = check_int(layer_index, "layer_index", minimum=0)
    repeats = check_int(repeats, "repeats", minimum=1)
    seed = check_seed(seed)
    C = check_C(C)
    if isinstance(sizes, str) or not sizes:
        raise ValueError(
            f"sizes={sizes!r}: give one or more sample sizes per class, e.g. (5, 10, 20)"
        )
    sizes = [check_int(n, "each size", minimum=1) for n in sizes]
    x, y, layer_tuple = stack_classes(positive, negative, None)
    if layer_index >= len(layer_tuple):
        raise ValueError(
            f"layer_index={layer_index} is out of range: the activations have {len(layer_tuple)} "
            f"layers (indices 0..{len(layer_tuple) - 1}, layers {list(layer_tuple)})"
        )
    pos, neg = x[layer_index][y == 1], x[layer_index][y == 0]
    full = pos.mean(axis=0) - neg.mean(axis=0)
    full_norm = float(np.linalg.norm(full))
    if full_norm == 0.0:
        raise ValueError(
            f"positive and negative have identical means at layer index {layer_index}: the "
            "mean-difference direction is zero, so there is nothing to converge to"
        )

    limit = min(len(pos), len(neg))
    kept = [n for n in sizes if n < limit]
    skipped = [n for n in sizes if n >= limit]
    if not kept:
        raise ValueError(
            f"every size in {sizes} needs at least as many examples as the smaller class has "
            f"({limit}), leaving none held out; use sizes below {limit}"
        )
    rng = np.random.default_rng(seed)
    cosine = np.zeros((len(kept), repeats))
    accuracy = np.zeros((len(kept), repeats))
    with threadpool_limits(limits=1, user_api="blas"):  # see probe_layers
        for i, n in enumerate(kept):
            for r in range(repeats):
                drawn_pos = np.zeros(len(pos), dtype=bool)
                drawn_neg = np.zeros(len(neg), dtype=bool)
                drawn_pos[rng.choice(len(pos), n, replace=False)] = True
                drawn_neg[rng.choice(len(neg), n, replace=False)] = True
                diff = pos[drawn_pos].mean(axis=0) - neg[drawn_neg].mean(axis=0)
                norm = float(np.linalg.norm(diff))
                # A zero subsample direction carries no information about the full one.
                cosine[i, r] = float(diff @ full) / (norm * full_norm) if norm > 0 else 0.0
                accuracy[i, r] = _heldout_probe_accuracy(pos, neg, drawn_pos, drawn_neg, C)

    return SampleSizeCurve(
        layer_index=layer_index,
        layer=layer_tuple[layer_index],
        sizes=tuple(kept),
        skipped_sizes=tuple(skipped),
        repeats=repeats,
        seed=seed,
        C=C,
        n_positive=len(pos),
        n_negative=len(neg),
        cosine_mean=floats(cosine.mean(axis=1)),
        cosine_std=floats(std_over_samples(cosine.T)),
        accuracy_mean=floats(accuracy.mean(axis=1)),
        accuracy_std=floats(std_over_samples(accuracy.T)),
        cosine=tuple(floats(row) for row in cosine),
        accuracy=tuple(floats(row) for row in accuracy),
    )


def _heldout_probe_accuracy(
    pos: Float[np.ndarray, "n_pos d"],
    neg: Float[np.ndarray, "n_neg d"],
    drawn_pos: np.ndarray,
    drawn_neg: np.ndarray,
    C: float,
) -> float:
    """Fit a probe on the drawn rows of both classes; accuracy on all rows not drawn."""
    x_train = np.concatenate([pos[drawn_pos], neg[drawn_neg]])
    y_train = np.r_[np.ones(int(drawn_pos.sum()), int), np.zeros(int(drawn_neg.sum()), int)]
    x_test = np.concatenate([pos[~drawn_pos], neg[~drawn_neg]])
    y_test = np.r_[np.ones(int((~drawn_pos).sum()), int), np.zeros(int((~drawn_neg).sum()), int)]
    probe = new_probe(C).fit(x_train, y_train)
    return float(np.mean((probe.decision_function(x_test) > 0) == (y_test == 1)))


__all__ = ["SampleSizeCurve", "sample_size_curve"]
