"""The probes' shared plumbing: activations of two classes checked and stacked, argument checks,
the probe itself (a scaled logistic regression) and small numeric helpers. Used by every module of
:mod:`interp_steer.probes`; nothing here is part of the public API."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from jaxtyping import Float, Int
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from interp_steer.activations import Activations

ActivationStack = np.ndarray | Tensor | Activations
"""Activations of one class, ``[n, n_layers, d_model]``: a numpy array, a tensor or an
:class:`Activations` (whose ``layers`` then name the layers)."""


def new_probe(C: float) -> Pipeline:
    """An unfitted probe: a ``StandardScaler`` and an L2-regularised logistic regression (inverse
    strength ``C``)."""
    # Scaling inside the pipeline means the scaler, like the probe, only ever sees training rows.
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(C=C, solver="lbfgs", max_iter=1000)),
        ]
    )


# --------------------------------------------------------------------------------------------
# Input checking and conversion


def stack_classes(
    positive: ActivationStack, negative: ActivationStack, layers: Sequence[int] | None
) -> tuple[Float[np.ndarray, "layers n d"], Int[np.ndarray, " n"], tuple[int, ...]]:
    """Both classes as one layer-major float64 array (a contiguous [n, d] block per layer) + labels."""
    pos, pos_layers = as_stack(positive, "positive")
    neg, neg_layers = as_stack(negative, "negative")
    if pos.shape[1:] != neg.shape[1:]:
        raise ValueError(
            f"positive is [n, n_layers, d_model] = {list(pos.shape)} but negative is "
            f"{list(neg.shape)}: both need the same layers and d_model (collect them with the same "
            "model and layers=)"
        )
    if pos_layers is not None and neg_layers is not None and pos_layers != neg_layers:
        raise ValueError(
            f"positive was collected at layers {list(pos_layers)} but negative at "
            f"{list(neg_layers)}; collect both at the same layers"
        )
    own = pos_layers if pos_layers is not None else neg_layers
    n_layers = pos.shape[1]
    if layers is None:
        layer_tuple = own if own is not None else tuple(range(n_layers))
    else:
        if isinstance(layers, str):
            raise ValueError(f"layers={layers!r}: give a sequence of layer numbers, e.g. range(6)")
        layer_tuple = tuple(check_int(layer, "each layer", minimum=0) for layer in layers)
        if len(layer_tuple) != n_layers:
            raise ValueError(
                f"layers has {len(layer_tuple)} entries but the activations have {n_layers} "
                "layers; give one layer number per slice of axis 1, or leave layers=None"
            )
        if own is not None and layer_tuple != own:
            raise ValueError(
                f"layers={list(layer_tuple)} disagrees with the Activations' own layers "
                f"{list(own)}; leave layers=None to use them"
            )
    if len(set(layer_tuple)) != len(layer_tuple):
        raise ValueError(
            f"layers {list(layer_tuple)} contain duplicates; each layer must be unique"
        )
    x = np.ascontiguousarray(np.concatenate([pos, neg]).transpose(1, 0, 2))
    y = np.r_[np.ones(len(pos), dtype=np.int64), np.zeros(len(neg), dtype=np.int64)]
    return x, y, layer_tuple


def as_stack(data: ActivationStack, name: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """``data`` as float64 ``[n, n_layers, d_model]`` plus its own layer numbers if it has them."""
    own_layers = None
    if hasattr(data, "values") and hasattr(data, "layers"):  # an Activations, or anything like it
        own_layers = tuple(int(layer) for layer in data.layers)
        data = data.values
    if isinstance(data, Tensor):
        data = data.detach().to("cpu").double().numpy()
    array = np.asarray(data, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(
            f"{name} has shape {list(array.shape)}; expected [n, n_layers, d_model] (for a single "
            "layer's [n, d_model] array, pass x[:, None, :])"
        )
    if array.shape[0] == 0 or array.shape[2] == 0:
        raise ValueError(f"{name} is empty (shape {list(array.shape)}); pass at least one example")
    if own_layers is not None and len(own_layers) != array.shape[1]:
        raise ValueError(f"{name}.layers has {len(own_layers)} entries for {array.shape[1]} layers")
    finite = np.isfinite(array)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=(1, 2))).tolist()
        raise ValueError(
            f"{name} contains {int((~finite).sum())} non-finite values (NaN/inf) in rows "
            f"{bad_rows[:10]}{' ...' if len(bad_rows) > 10 else ''}; drop those rows, or "
            "recollect the activations in float32"
        )
    return array, own_layers


def check_class_sizes(n_positive: int, n_negative: int, folds: int) -> None:
    """Refuse classes too small for ``folds`` outer folds and the nested CV inside them."""
    for name, n in (("positive", n_positive), ("negative", n_negative)):
        if n < folds:
            fix = f"pass folds={n}" if n >= 3 else "add examples"
            raise ValueError(
                f"{name} has {n} examples but folds={folds} needs at least {folds} per class "
                f"(every test fold must hold one of each class); {fix}"
            )
    # Nested CV runs an inner CV on each outer training set, which needs >= 2 of each class.
    smallest = min(n_positive, n_negative)
    if smallest - math.ceil(smallest / folds) < 2:
        raise ValueError(
            f"the smaller class has {smallest} examples: with folds={folds} an outer training set "
            f"keeps only {smallest - math.ceil(smallest / folds)} of them, too few for the nested "
            "layer-selection CV (needs 2); add examples or use folds >= 3"
        )


def check_folds(folds: int) -> int:
    """``folds`` as an int, refused unless it is an integer >= 2."""
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ValueError(
            f"folds={folds!r}: cross-validation needs an integer folds >= 2 (5 is usual)"
        )
    return int(folds)


def check_seed(seed: int) -> int:
    """``seed`` as an int, refused unless it is an integer >= 0."""
    return check_int(seed, "seed", minimum=0)


def check_C(C: float) -> float:
    """``C`` as a float, refused unless it is a positive finite number."""
    if isinstance(C, bool) or not isinstance(C, int | float | np.number) or not 0 < C < math.inf:
        raise ValueError(f"C={C!r}: the inverse regularisation strength must be a positive number")
    return float(C)


def check_int(value: Any, name: str, *, minimum: int) -> int:
    """``value`` as an int, refused (naming it ``name``) unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}={value!r}: expected an integer >= {minimum}")
    return int(value)


# --------------------------------------------------------------------------------------------
# Small numeric helpers


def std_over_samples(values: Float[np.ndarray, "samples items"]) -> Float[np.ndarray, " items"]:
    """Sample standard deviation over axis 0 (0 when there is a single sample, never NaN)."""
    if values.shape[0] < 2:
        return np.zeros(values.shape[1])
    return values.std(axis=0, ddof=1)


def floats(values: np.ndarray) -> tuple[float, ...]:
    """``values`` as a tuple of Python floats."""
    return tuple(float(v) for v in values)


def json_ready(value: Any) -> Any:
    """Tuples, mappings and numpy scalars as the lists, dicts and Python scalars JSON wants."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
