"""Stage 6 of the SVF comparison: two attributes at once. Persona A vs baseline and persona B vs
baseline, one field and one vector each at the study's layers, read by their own probe readouts;
each attribute's effect steered alone and both together (does steering one attribute survive
steering the other?)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from interp_steer.activations import Activations, collect_activations
from interp_steer.data import reject_bare_strings
from interp_steer.directions import SteeringVector, from_activations, position_label
from interp_steer.fields import SteeringField, WeakLayerWarning, fit_scorer
from interp_steer.generation import Generation
from interp_steer.models import Model
from interp_steer.probes import ProbeReadout
from interp_steer.stats import ratio_of_means, t_interval
from interp_steer.studies._units import UnitRunner, steered_generations
from interp_steer.studies.svf.config import SvfConfig
from interp_steer.studies.svf.fit import Fitted
from interp_steer.studies.svf.inputs import Inputs
from interp_steer.studies.svf.result import METHODS


def measure_multi_attribute(work: UnitRunner, config: SvfConfig, fitted: Fitted, inputs: Inputs,
                     unsteered: list[Generation] | None) -> dict[str, Any]:
    """Two attributes (A vs baseline, B vs baseline), a field and a vector each at the study's layers,
    read by their own probe readouts (log-odds, mean-pooled completion at the middle steering layer,
    unsteered model): each attribute's effect steered alone and with the other at once. The unsteered
    completions are the evaluation's own (``unsteered``) when there are some. The generations run as
    work units of one batch each."""
    model, progress = work.model, work.progress
    texts = dict(zip(("A", "B", "baseline"), inputs.attributes, strict=True))
    layers = list(fitted.field.layers)
    readout_layer = layers[len(layers) // 2]
    acts = _attribute_activations(model, config, fitted, texts, layers, progress)
    if config.position == "mean":
        pooled = {k: a.at(readout_layer) for k, a in acts.items()}
    else:
        every = [t for k in ("A", "B", "baseline") for t in texts[k]]
        parts = collect_activations(model, every, layers=[readout_layer], position="mean",
                                    progress=progress).split(*(len(texts[k]) for k in ("A", "B", "baseline")))
        pooled = {k: part.values[:, 0] for k, part in zip(("A", "B", "baseline"), parts, strict=True)}
    attributes = {}
    for key in ("A", "B"):
        field, vector = _fit_pair(config, acts[key], acts["baseline"], key)
        readout = ProbeReadout.from_activations(pooled[key], pooled["baseline"], layer=readout_layer,
                                                labels=(inputs.data[f"attribute_{key.lower()}"]["source"],
                                                        inputs.data["baseline"]["source"]), folds=config.folds,
                                                seed=config.seed)
        attributes[key] = {"field": field, "vector": vector, "readout": readout, "n": len(texts[key])}
    c = config.primary_coefficient
    steered = [(f"{m}_{k}", ((m, k),)) for m in METHODS for k in ("A", "B")] + \
              [(f"{m}_AB", ((m, "A"), (m, "B"))) for m in METHODS]
    cells = ([] if unsteered else [("unsteered", ())]) + steered
    every_term = [(attributes[k][m], 0.0) for m in METHODS for k in ("A", "B")]  # each term appears in the mix
    rows = [every_term + [(attributes[k][m], c) for m, k in terms] for _ in inputs.prompts for _, terms in cells]
    prompts = inputs.prompts
    outputs = steered_generations(work, "multi-attribute", [p for p in prompts for _ in cells], rows,
                                  max_new_tokens=config.max_new_tokens, batch_size=config.batch_size, mix=True)
    if unsteered:  # the evaluation's unsteered completions, as cell 0 of every prompt
        outputs = [g for i, base in enumerate(unsteered) for g in [base, *outputs[i * len(cells) : (i + 1) * len(cells)]]]
        cells = [("unsteered", ()), *cells]
    n_c = len(cells)
    scored = readout_log_odds(model, [attributes["A"]["readout"], attributes["B"]["readout"]], [g.text for g in outputs])
    log_odds = {k: values.reshape(len(prompts), n_c) for k, values in zip(("A", "B"), scored, strict=True)}
    index = {name: j for j, (name, _) in enumerate(cells)}
    sign = 1 if c > 0 else -1
    per_prompt: dict[str, Any] = {}
    out: dict[str, Any] = {"status": "measured", "coefficient": c, "readout_layer": readout_layer,
                           "attributes": {}, "methods": {},
                           "definition": ("effect of attribute k = (readout_k log-odds of the steered completion - of the "
                                          "unsteered one) * sign(c); alone: steer k only; together: steer both at c; "
                                          "retention = mean(together) / mean(alone) (Fieller); off-target: the other "
                                          "attribute's readout when k alone is steered")}
    for k, info in attributes.items():
        r = info["readout"]
        out["attributes"][k] = {"label": r.positive_label, "n_passages": info["n"], "baseline": r.negative_label,
                                "readout": {"layer": r.layer, "heldout_accuracy": r.heldout_accuracy,
                                            "heldout_accuracy_std": r.heldout_accuracy_std, "folds": r.folds,
                                            "train_accuracy": r.train_accuracy,
                                            "measured_on": "attribute and baseline passages (mean-pooled), not completions"},
                                "field_heldout_accuracy": {str(layer): fit.heldout_accuracy for layer, fit in
                                                           info["field"].metadata.training.items()}}
    # How much the two attributes share: the vectors' cosine per layer (both contain "story, not neutral text").
    out["cosine_vectors_a_b"] = {str(k): v for k, v in attributes["A"]["vector"].cosine(attributes["B"]["vector"]).items()}
    for m in METHODS:
        entry = {}
        for k in ("A", "B"):
            other = "B" if k == "A" else "A"
            base = log_odds[k][:, 0]
            alone = (log_odds[k][:, index[f"{m}_{k}"]] - base) * sign
            together = (log_odds[k][:, index[f"{m}_AB"]] - base) * sign
            off = (log_odds[other][:, index[f"{m}_{k}"]] - log_odds[other][:, 0]) * sign
            per_prompt[f"{m}_{k}_alone"] = alone.tolist()
            per_prompt[f"{m}_{k}_together"] = together.tolist()
            entry[k] = {"alone": t_interval(alone).to_dict(), "together": t_interval(together).to_dict(),
                        "retention": ratio_of_means(together, alone).to_dict(),
                        "off_target": t_interval(off).to_dict()}
        out["methods"][m] = entry
    out["samples"] = {name: [outputs[i * n_c + j].text for i in range(min(config.keep_samples, len(prompts)))]
                      for j, (name, _) in enumerate(cells)}
    out["per_prompt"] = per_prompt
    return out


def _attribute_activations(model: Model, config: SvfConfig, fitted: Fitted, texts: dict[str, list[str]],
                           layers: list[int], progress: bool | None) -> dict[str, Activations]:
    """The attribute and baseline corpora at ``layers`` (read at ``position``), reusing the training
    activations of a side whose texts are the same (the default: persona A and B are the concept's
    two sides), and collecting the rest in one pass."""
    reused: dict[str, Activations] = {}
    for key in ("A", "B", "baseline"):
        for side_texts, side_acts in fitted.training.values():
            if side_texts == texts[key] and fitted.position == position_label(config.position, False):
                index = [side_acts.layers.index(layer) for layer in layers]
                reused[key] = replace(side_acts, values=side_acts.values[:, index], layers=tuple(layers))
                break
    missing = [key for key in ("A", "B", "baseline") if key not in reused]
    if missing:
        every = [t for key in missing for t in texts[key]]
        parts = collect_activations(model, every, layers=layers, position=config.position,
                                    progress=progress).split(*(len(texts[key]) for key in missing))
        reused.update(zip(missing, parts, strict=True))
    return reused


def readout_log_odds(model: Model, readouts: Sequence[ProbeReadout], texts: list[str]) -> list[np.ndarray]:
    """:meth:`ProbeReadout.log_odds` of several readouts at one layer from a single collection
    (NaN for empty texts)."""
    reject_bare_strings(texts=texts)
    layer = readouts[0].layer
    if any(r.layer != layer for r in readouts):
        raise ValueError(f"readouts at different layers {[r.layer for r in readouts]}; score them one by one")
    out = [np.full(len(texts), np.nan) for _ in readouts]
    keep = [i for i, t in enumerate(texts) if t.strip()]
    if keep:
        acts = collect_activations(model, [texts[i] for i in keep], layers=[layer], position="mean")
        features = acts.values[:, 0].double().numpy()
        for values, readout in zip(out, readouts, strict=True):
            values[keep] = readout.pipeline.decision_function(features)
    return out


def _fit_pair(config: SvfConfig, positive: Activations, baseline: Activations,
              key: str) -> tuple[SteeringField, SteeringVector]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakLayerWarning)
        field = fit_scorer(positive, baseline, form=config.form, epochs=config.epochs, seed=config.seed,
                           drop_weak="keep", metadata={"description": f"svf study: attribute {key} vs baseline"})
    raw = from_activations(positive, baseline, metadata={"description": f"svf study: attribute {key} - baseline"})
    vector = SteeringVector(raw.directions, replace(raw.metadata, resid_norm=dict(field.metadata.resid_norm)))
    return field, vector.normalised("resid")


__all__ = ["measure_multi_attribute", "readout_log_odds"]
