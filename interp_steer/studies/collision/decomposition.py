"""Where a mix of the two persona vectors lands: the collision vectors and the residual shifts they
cause at the steering layer and every later layer, decomposed onto ``v_A`` and ``v_B``.

The shift is measured with the grid's own intervention on each prompt's unsteered transcript
(:func:`observed_shifts`); A's share of it is a ratio of means over prompts with Fieller's interval
(:func:`decomposition`)."""

from __future__ import annotations

from typing import Any

import torch

from interp_steer.activations import residual_shifts
from interp_steer.data import reject_bare_strings
from interp_steer.directions import SteeringVector
from interp_steer.fields import SteeringField
from interp_steer.generation import Generation, format_prompts
from interp_steer.models import Model
from interp_steer.stats import ratio_of_means, t_interval
from interp_steer.steering import Steerer, Steering
from interp_steer.studies.collision.config import CollisionConfig
from interp_steer.studies.mixing import collision_vector, decompose
from interp_steer.studies.personas import Personas


def decompose_shifts(model: Model, config: CollisionConfig, personas: Personas, steerers: tuple[Steerer, Steerer],
                     lam: float, prompts: list[str], unsteered: list[Generation]) -> dict[str, Any]:
    """:func:`decomposition` at ``lam`` on the first ``config.decomposition_prompts`` prompts (all
    when ``None``), each with its unsteered completion from the grid (``unsteered[p]``: prompt p's)."""
    reject_bare_strings(prompts=prompts)
    prompts = prompts[: config.decomposition_prompts] if config.decomposition_prompts else prompts
    unsteered = unsteered[: len(prompts)]
    return decomposition(model, personas.v_a, personas.v_b, personas.layer, config, lam, prompts, unsteered, steerers)


def unsteered_transcripts(model: Model, prompts: list[str], completions: list[Generation]) -> tuple[list[list[int]], list[int]]:
    """Each prompt's transcript as the grid's generation saw it (the formatted prompt's token ids
    followed by its completion's) and where its user prompt ends, in the grid's coordinates
    (:func:`~interp_steer.generation.format_prompts`, which :func:`generate` uses)."""
    reject_bare_strings(prompts=prompts, completions=completions)
    _, prompt_ends = format_prompts(model, prompts, chat=None, system=None)
    return [list(g.prompt_ids) + list(g.token_ids) for g in completions], prompt_ends


def observed_shifts(model: Model, transcripts: list[list[int]], prompt_ends: list[int],
                     vectors: list[Any], layers: list[int], *, hook_point: str = "resid_post",
                     batch_size: int = 16) -> list[list[torch.Tensor]]:
    """Per intervention (anything :func:`steer` takes: a vector, or a list of (vector or field,
    coefficient) terms), per transcript ``[tokens, layers, d_model]`` (float64): the residual at
    ``layers`` with the intervention applied as the grid applies it (``positions="after_prompt"``:
    from the prompt's last token on), minus the unsteered residual. Positions before the prompt's
    last token are not steered, and a causal model leaves them unchanged at every layer. The steered
    forwards resume after the blocks no intervention touches (:func:`residual_shifts`)."""
    steerings = [Steering(vector, positions="after_prompt") for vector in vectors]
    return residual_shifts(model, transcripts, steerings, layers, prompt_ends=prompt_ends, hook_point=hook_point,
                           batch_size=batch_size)


@torch.inference_mode()
def decomposition(model: Model, v_a: SteeringVector, v_b: SteeringVector, layer: int, config: CollisionConfig,
                   lam: float, prompts: list[str], unsteered: list[Generation],
                   steerers: tuple[Steerer, Steerer] | None = None) -> dict[str, Any]:
    """(a) each collision vector of the grid at ``lam``, and (b) the observed residual shift it
    causes at the steering layer and every later layer, decomposed onto ``v_A``/``v_B`` there.
    With fields (``steerers``), (a) is empty (a mix of fields is no fixed vector) and (b) measures
    the shift the fields' mix causes, still decomposed onto the persona vectors.

    The shift is measured with the grid's own intervention (:func:`observed_shifts`) on each
    prompt's unsteered transcript, averaged over the steered positions (the prompt's last token
    and every later one), per prompt. A's share is a ratio of means over prompts,
    ``mean(a) / mean(a + b)`` with Fieller's interval: a mean of per-prompt ratios would let a
    prompt whose shift is nearly orthogonal to both vectors (``a + b`` near 0) dominate it.
    """
    reject_bare_strings(prompts=prompts)
    transcripts, prompt_ends = unsteered_transcripts(model, prompts, unsteered)
    later = list(range(layer, model.n_layers))
    with_fields = steerers is not None and isinstance(steerers[0], SteeringField)
    if with_fields:
        mixes = [[(steerers[0], lam * alpha), (steerers[1], lam * (1 - alpha))] for alpha in config.alphas]
    else:
        mixes = [collision_vector(v_a, v_b, alpha, lam).select([layer]) for alpha in config.alphas]
    vectors, observed = [], []
    shifts_per_mix = observed_shifts(model, transcripts, prompt_ends, mixes, later, hook_point=v_a.hook_point)
    for alpha, mixed, shifts in zip(config.alphas, mixes, shifts_per_mix, strict=True):
        if not with_fields:
            parts = decompose(mixed[layer], v_a[layer], v_b[layer])
            vectors.append({"alpha": alpha, "coef_a": float(parts.coef_a[0]), "coef_b": float(parts.coef_b[0]),
                            "residual_fraction": float(parts.residual_fraction[0])})
        shift = torch.stack([s[end - 1 :].mean(0) for s, end in zip(shifts, prompt_ends, strict=True)])  # [prompts, layers, d]
        per_layer = []
        for i, at in enumerate(later):
            parts = decompose(shift[:, i], v_a[at], v_b[at])
            share = ratio_of_means(parts.coef_a, parts.coef_a + parts.coef_b)
            per_layer.append({
                "layer": at,
                "coef_a": t_interval(parts.coef_a).to_dict(),
                "coef_b": t_interval(parts.coef_b).to_dict(),
                "share_a": share.mean,
                "share_a_interval": share.to_dict(),
                "residual_fraction": t_interval(parts.residual_fraction).to_dict(),
                "shift_norm": float(shift[:, i].norm(dim=-1).mean()),
                "cosine_ab": parts.cosine_ab,
            })
        observed.append({"alpha": alpha, "layers": per_layer})
    # Later layers can tilt every shift towards one parent (pure B's shift picks up an A share too),
    # so the share that speaks to dominance is where a mix sits between the pure ends' shares, the
    # representational analogue of d(α): α at the steering layer by construction.
    for i in range(len(later)):
        low, high = observed[0]["layers"][i]["share_a"], observed[-1]["layers"][i]["share_a"]
        for entry in observed:
            row = entry["layers"][i]
            row["share_between_ends"] = (row["share_a"] - low) / (high - low) if high != low else float("nan")
    return {"lambda": lam, "layer": layer, "n_prompts": len(prompts), "steered_with": "fields" if with_fields else "vectors",
            "collision_vectors": vectors, "observed": observed,
            "basis": "v_A and v_B at each layer, on the common scale (coefficient 1 = one mean residual norm)",
            "measured_on": DECOMPOSITION_MEASURED_ON,
            "intervals": ("coef_a, coef_b, residual_fraction: 95 % t-intervals over prompts; share_a = mean(a) / "
                          "mean(a + b) over prompts with a 95 % Fieller interval (share_a_interval)")}


DECOMPOSITION_MEASURED_ON = (
    "each prompt's unsteered transcript (its formatted prompt and unsteered completion, as the grid's token ids), "
    "with the collision vector added as in the grid (positions='after_prompt': from the prompt's last token on); "
    "the shift is the steered minus the unsteered residual, averaged over those steered positions, per prompt")


__all__ = ["DECOMPOSITION_MEASURED_ON", "decompose_shifts", "decomposition", "observed_shifts", "unsteered_transcripts"]
