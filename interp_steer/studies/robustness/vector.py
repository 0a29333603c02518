"""Stage 0 of the robustness study, per model: the steering vector, a mean difference of the
training split at one layer (given, or the best layer of a probe profile over every layer, training
split only), rescaled to the layer's mean residual norm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from interp_steer.activations import collect_activations
from interp_steer.directions import SteeringVector, from_activations, position_label
from interp_steer.models import Model
from interp_steer.probes import probe_layers
from interp_steer.studies.concept import training_texts
from interp_steer.studies.robustness.config import RobustnessConfig
from interp_steer.studies.robustness.inputs import Inputs


@dataclass(frozen=True, eq=False)
class Fitted:
    """The study's vector at its layer, and the training activations the sample-size stage subsets."""

    vector: SteeringVector  # the full training split, normalised to the layer's residual norm
    layer: int
    rule: str
    positive: torch.Tensor  # training activations at the layer, [n, d]
    negative: torch.Tensor
    paired: bool
    profile: dict[str, Any] | None

    def describe(self) -> dict[str, Any]:
        return {"layer": self.layer, "rule": self.rule, "norm": float(self.vector.directions[self.layer].norm()),
                "resid_norm": self.vector.metadata.resid_norm[self.layer], "n_positive": int(self.positive.shape[0]),
                "n_negative": int(self.negative.shape[0]), "paired": self.paired, "probe_profile": self.profile}


def fit_vector(model: Model, config: RobustnessConfig, inputs: Inputs, progress: bool | None) -> Fitted:
    """The mean-difference vector of the training split at the given layer, or (``"auto"``) at the
    best layer of a probe profile over every layer on the training split only."""
    pos_texts, neg_texts, digest, paired, position = training_texts(
        model, inputs.mode, config.position, positive=inputs.train_positive, negative=inputs.train_negative,
        pairs=inputs.train_pairs, questions=inputs.train_questions)
    if config.layer == "auto":
        layers = list(range(model.n_layers))
    else:
        if config.layer >= model.n_layers:
            raise ValueError(f"layer {config.layer} is out of range: {model.name} has layers 0..{model.n_layers - 1}")
        layers = [int(config.layer)]
    acts = collect_activations(model, pos_texts + neg_texts, layers=layers, position=position, progress=progress)
    pos, neg = acts.split(len(pos_texts), len(neg_texts))
    profile = None
    if config.layer == "auto":
        folds = min(config.folds, len(pos_texts), len(neg_texts))
        fit = probe_layers(pos, neg, folds=folds, seed=config.seed, concept="robustness")
        layer = int(fit.best_layer)
        rule = f"auto: best layer of a {folds}-fold probe profile over all layers, training split only"
        profile = {"best_layer": layer, "band": list(fit.band), "accuracy": list(fit.accuracy),
                   "heldout_accuracy": fit.heldout_accuracy}
    else:
        layer, rule = int(config.layer), "given"
    raw = from_activations(pos, neg, metadata={"dataset_hash": digest, "position": position_label(position, False),
                                               "description": "robustness study: mean difference, training split"})
    vector = raw.select([layer]).normalised("resid")
    index = list(acts.layers).index(layer)
    return Fitted(vector, layer, rule, pos.values[:, index].float(), neg.values[:, index].float(), paired, profile)


__all__ = ["Fitted", "fit_vector"]
