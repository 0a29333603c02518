"""The A-vs-B probe that reads the completions' valence: fitted on the persona corpora (mean-pooled
passages at the A-vs-B best layer) with its own held-out accuracy, and described for the result file.
Shared by the study and by scoring completions made elsewhere (:mod:`.imported`)."""

from __future__ import annotations

from typing import Any

from interp_steer.activations import collect_activations
from interp_steer.data import reject_bare_strings
from interp_steer.models import Model
from interp_steer.probes import ProbeReadout
from interp_steer.studies.collision.config import Settings
from interp_steer.studies.personas import Personas, StudyTexts


def fit_readout(model: Model, config: Settings, personas: Personas, texts: StudyTexts,
             progress: bool | None) -> ProbeReadout:
    """The A-vs-B probe that reads completions: mean-over-token activations at the A-vs-B best layer,
    with its own held-out accuracy on those features (the study's folds and seed)."""
    reject_bare_strings(texts=texts)
    readout_layer = personas.profiles["A vs B"].best_layer
    if config.position == "mean":
        mean_a, mean_b = personas.act_a.at(readout_layer), personas.act_b.at(readout_layer)
    elif personas.pooled_a is not None:  # read in the personas' own forward passes (build_personas(pooled=True))
        mean_a, mean_b = personas.pooled_a.at(readout_layer), personas.pooled_b.at(readout_layer)
    else:
        a_texts, b_texts = texts.persona_a, texts.persona_b
        both = collect_activations(model, a_texts + b_texts, layers=[readout_layer], position="mean", progress=progress)
        pa, pb = both.split(len(a_texts), len(b_texts))
        mean_a, mean_b = pa.values[:, 0], pb.values[:, 0]
    return ProbeReadout.from_activations(mean_a, mean_b, layer=readout_layer, labels=("persona A", "persona B"),
                                         folds=config.folds, seed=config.seed)


READOUT_MEASURED_ON = "persona corpus passages (mean-pooled), not completions"


def describe_readout(readout: ProbeReadout) -> dict[str, Any]:
    """The readout probe and its own accuracy. Not the A-vs-B profile's ``heldout_accuracy``: that
    one scores a layer-choosing procedure on the vectors' features (``position``), this one the fixed
    probe on mean-pooled passages at its layer."""
    return {"layer": readout.layer, "positive": readout.positive_label, "negative": readout.negative_label,
            "train_accuracy": readout.train_accuracy, "heldout_accuracy": readout.heldout_accuracy,
            "heldout_accuracy_std": readout.heldout_accuracy_std, "folds": readout.folds,
            "measured_on": READOUT_MEASURED_ON,
            "cross_validation": "stratified k-fold, shuffled with the study's seed (the probe profiles' folds)",
            "reads": "mean residual over the completion's tokens, unsteered model"}


__all__ = ["READOUT_MEASURED_ON", "describe_readout", "fit_readout"]
