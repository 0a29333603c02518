"""Stage 2 of the SVF comparison: the vector and the field fitted on the same training rows, at the
layers given or chosen on the training data only (``layers="auto"``)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from interp_steer.activations import Activations, collect_activations
from interp_steer.directions import SteeringVector, from_activations, position_label
from interp_steer.fields import SteeringField, WeakLayerWarning, fit_scorer
from interp_steer.models import Model
from interp_steer.studies.concept import training_texts
from interp_steer.studies.svf.config import SvfConfig
from interp_steer.studies.svf.inputs import Inputs


@dataclass(frozen=True, eq=False)
class Fitted:
    """The vector and the field at the chosen layers, and how the layers were chosen."""

    field: SteeringField
    vector: SteeringVector
    candidates: tuple[int, ...]
    fits: dict[int, Any]  # layer -> LayerFit, every candidate
    rule: str
    position: str
    paired: bool
    training: dict[str, tuple[list[str], Activations]]  # side -> (texts, activations at the candidates)
    resid_norm: dict[int, float]  # every candidate layer's step unit

    def describe(self) -> dict[str, Any]:
        chosen = list(self.field.layers)
        weak = [layer for layer in chosen if self.fits[layer].heldout_accuracy < 0.6]
        return {"chosen": chosen, "candidates": list(self.candidates), "rule": self.rule,
                "position": self.position, "paired": self.paired,
                "fits": {str(layer): fit.to_dict() for layer, fit in sorted(self.fits.items())},
                "weak_chosen_layers": weak,
                "resid_norm": {str(k): v for k, v in sorted(self.resid_norm.items())}}


def candidate_layers(n_layers_model: int, band: Sequence[float], at_least: int) -> tuple[int, ...]:
    """Layers ``floor(low · n) .. ceil(high · n) − 1`` (``band`` as fractions of the depth), widened
    by neighbours on both sides until there are ``at_least`` of them (or every layer)."""
    low = max(0, math.floor(band[0] * n_layers_model))
    high = min(n_layers_model, max(low + 1, math.ceil(band[1] * n_layers_model)))
    while high - low < min(at_least, n_layers_model):
        if low > 0:
            low -= 1
        if high - low < at_least and high < n_layers_model:
            high += 1
    return tuple(range(low, high))


def choose_window(fits: dict[int, Any], size: int) -> tuple[int, ...]:
    """The ``size`` adjacent layers (of ``fits``' keys, consecutive integers) with the lowest mean
    held-out loss; ties to the higher mean held-out AUROC, then the earlier window."""
    layers = sorted(fits)
    size = min(size, len(layers))
    best, best_key = None, None
    for start in range(len(layers) - size + 1):
        window = layers[start : start + size]
        if window[-1] - window[0] != size - 1:
            continue
        key = (float(np.mean([fits[x].heldout_loss for x in window])),
               -float(np.mean([fits[x].heldout_auroc for x in window])), start)
        if best_key is None or key < best_key:
            best, best_key = tuple(window), key
    if best is None:
        raise ValueError(f"no {size} adjacent layers among {layers}")
    return best


def fit(model: Model, config: SvfConfig, inputs: Inputs, progress: bool | None) -> Fitted:
    """Training activations at the candidate layers (one collection for both sides), the field at
    every candidate, the layer window, and the vector from the very same rows."""
    if config.layers == "auto":
        candidates = candidate_layers(model.n_layers, config.layer_band, config.n_layers)
    else:
        candidates = tuple(model.resolve_layers(list(config.layers)))
    pos_texts, neg_texts, digest, paired, position = training_texts(
        model, inputs.mode, config.position, positive=inputs.positive, negative=inputs.negative, pairs=inputs.pairs,
        questions=inputs.train_questions)
    acts = collect_activations(model, pos_texts + neg_texts, layers=list(candidates), position=position,
                               progress=progress)
    pos, neg = acts.split(len(pos_texts), len(neg_texts))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakLayerWarning)  # weak chosen layers are reported, not warned about
        field = fit_scorer(pos, neg, form=config.form, epochs=config.epochs, paired=paired, seed=config.seed,
                           drop_weak="keep",
                           metadata={"dataset_hash": digest, "position": position_label(position, False),
                                     "description": "svf study: positive vs negative"})
    fits = dict(field.metadata.training)
    norms = dict(field.metadata.resid_norm)
    if config.layers == "auto":
        chosen = choose_window(fits, config.n_layers)
        band = config.layer_band
        rule = (f"auto: the {len(chosen)} adjacent layers with the lowest mean held-out loss of the field's scorer "
                f"among layers {candidates[0]}-{candidates[-1]} ({band[0]:g}-{band[1]:g} of the depth), on the "
                "training data only")
    else:
        chosen = candidates
        rule = "given"
    field = field.select(list(chosen))
    raw = from_activations(pos, neg, metadata={"dataset_hash": digest, "description": "svf study: mean difference"})
    raw = raw.select(list(chosen))
    # The vector's unit is the field's: the same rows' mean residual norm, so equal c, equal step length.
    scaled = SteeringVector(raw.directions, replace(raw.metadata, resid_norm=dict(field.metadata.resid_norm)))
    vector = scaled.normalised("resid")
    training = {"positive": (pos_texts, pos), "negative": (neg_texts, neg)}
    return Fitted(field, vector, candidates, fits, rule, position_label(position, False), paired, training, norms)


__all__ = ["Fitted", "candidate_layers", "choose_window", "fit"]
