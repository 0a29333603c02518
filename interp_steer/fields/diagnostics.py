"""How much a field is a field: whether its direction actually changes over a set of activations."""

from __future__ import annotations

from collections.abc import Mapping

from jaxtyping import Float
from torch import Tensor

from interp_steer.activations import Activations
from interp_steer.fields.field import SteeringField


def context_dependence(
    field: SteeringField,
    activations: Mapping[int, Float[Tensor, "rows d_model"]] | Activations,
) -> dict[int, float]:
    """Per layer, the mean pairwise cosine between the field's directions at the given activations.

    1.0 means the field is one fixed direction there (a steering vector, or the linear form); lower
    values mean the direction depends on the context; about 0 means unrelated directions. Computed
    as ``(‖Σ ĝ‖² − n) / (n (n − 1))`` over the ``n`` unit directions (self-pairs excluded; rows with a
    zero gradient left out). ``activations``: ``{layer: [n, d_model]}`` for some of the field's
    layers, or an :class:`Activations` holding all of them.
    """
    if isinstance(activations, Activations):
        missing = [layer for layer in field.layers if layer not in activations.layers]
        if missing:
            raise KeyError(f"the activations were not collected at the field's layers {missing} "
                           f"(collected: {list(activations.layers)})")
        rows = {layer: activations.at(layer) for layer in field.layers}
    else:
        rows = dict(activations)
        unknown = [layer for layer in rows if layer not in field.layers]
        if unknown or not rows:
            raise KeyError(f"layers {unknown or '[]'} are not in this field (it has {list(field.layers)})")
    out = {}
    for layer, x in sorted(rows.items()):
        if x.dim() != 2:
            raise ValueError(f"layer {layer}: expected [n, d_model] activations, got {tuple(x.shape)}")
        g = field.direction(x, layer).double()
        norms = g.norm(dim=-1, keepdim=True)
        g = g[norms.squeeze(-1) > 0] / norms[norms.squeeze(-1) > 0]  # renormalise in float64
        n = g.shape[0]
        if n < 2:
            raise ValueError(f"layer {layer}: need at least 2 rows with a non-zero gradient, got {n}")
        total = g.sum(dim=0)
        out[layer] = float((total @ total - n) / (n * (n - 1)))
    return out
