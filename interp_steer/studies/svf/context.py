"""Stage 4 of the SVF comparison: how much the field's direction depends on the context, measured at
the activations it actually steers (each held-out input's unsteered transcript, from the prompt's
last token on); the vector's is 1 by construction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from interp_steer.activations import sequence_residuals
from interp_steer.fields import context_dependence
from interp_steer.models import Model
from interp_steer.studies.svf.fit import Fitted


def steered_activations(model: Model, transcripts: list[list[int]], prompt_ends: list[int], layers: Sequence[int],
                        hook_point: str = "resid_post", batch_size: int = 16) -> dict[int, torch.Tensor]:
    """Residuals at ``layers`` of each transcript at the positions a steering with
    ``positions="after_prompt"`` acts on (from the prompt's last token on; never the first token,
    the attention sink), stacked over transcripts: ``{layer: [rows, d_model]}``, unsteered."""
    return sequence_residuals(model, transcripts, [max(1, end - 1) for end in prompt_ends], layers,
                              hook_point=hook_point, batch_size=batch_size)


def measure_context(model: Model, fitted: Fitted, transcripts: tuple[list[list[int]], list[int]]) -> dict[str, Any]:
    """The field's context dependence per layer at the activations it steers, how far its directions
    sit from the vector's, and two diagnostics: the same measure on the training rows (where the
    scorer was fitted) and how large the steered activations are against the training rows' norm
    (a scorer read far outside its data tends to a fixed gradient)."""
    field = fitted.field
    rows = steered_activations(model, transcripts[0], transcripts[1], field.layers, field.hook_point)
    dependence = context_dependence(field, rows)
    training = {layer: torch.cat([acts.at(layer) for _, acts in fitted.training.values()]) for layer in field.layers}
    on_training = context_dependence(field, training)
    layers = list(field.layers)
    to_vector = []
    for layer in layers:
        g = field.direction(rows[layer], layer).double()
        unit = fitted.vector[layer].double() / fitted.vector[layer].double().norm()
        to_vector.append(float((g @ unit).mean()))
    return {"layers": layers, "field": [dependence[layer] for layer in layers], "vector": [1.0] * len(layers),
            "vector_note": "1 by construction: a steering vector has one direction everywhere (not measured)",
            "cosine_field_to_vector": to_vector, "n_rows": {str(layer): int(rows[layer].shape[0]) for layer in layers},
            "n_inputs": len(transcripts[0]), "measured_on": CONTEXT_MEASURED_ON,
            "field_on_training_rows": [on_training[layer] for layer in layers],
            "activation_norm_ratio": [float(rows[layer].norm(dim=-1).mean() / field.metadata.resid_norm[layer])
                                      for layer in layers],
            "definition": "mean pairwise cosine between the field's unit directions over all measured activations "
                          "(self-pairs excluded): (|sum g|² − n) / (n (n − 1))"}


CONTEXT_MEASURED_ON = ("the unsteered transcript of every held-out input (formatted prompt and greedy completion; A/B: "
                       "the formatted question and '('), at the positions the steering acts on: from the prompt's last "
                       "token on, never a text's first token (the attention sink)")


__all__ = ["CONTEXT_MEASURED_ON", "measure_context", "steered_activations"]
