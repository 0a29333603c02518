"""Finding 2 of the robustness study, sample size: vectors from random subsets of ``n`` training
examples per class, each rescaled to the full vector's norm (only the direction varies), applied to
the same held-out items; a saturating curve through the effects
(:mod:`~interp_steer.studies.robustness.saturation`) gives the ``n`` reaching 90 % and 95 % of the
plateau."""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_steer.directions import SteeringVector
from interp_steer.stats import t_interval
from interp_steer.studies._units import UnitRunner, steered_ab
from interp_steer.studies.concept import Scorer
from interp_steer.studies.robustness.config import RobustnessConfig
from interp_steer.studies.robustness.effects import generate_scored
from interp_steer.studies.robustness.inputs import ID, Inputs
from interp_steer.studies.robustness.saturation import fit_saturation
from interp_steer.studies.robustness.vector import Fitted


def measure_sample_size(work: UnitRunner, config: RobustnessConfig, inputs: Inputs, fitted: Fitted,
                        concept: dict[str, Any], score: Scorer, base: dict[str, np.ndarray]) -> dict[str, Any]:
    kind, items = inputs.sets[ID]
    items = items[: config.sample_size_prompts or None]
    n_items = len(items)
    limit = min(fitted.positive.shape[0], fitted.negative.shape[0])
    sizes = [n for n in config.sample_sizes if n < limit] + [limit]
    skipped = [n for n in config.sample_sizes if n >= limit]
    layer = fitted.layer
    full = fitted.vector.directions[layer]
    norm = float(full.norm())
    rng = np.random.default_rng(config.seed)
    vectors, cosines = [], np.zeros((len(sizes), config.subsets))
    for i, n in enumerate(sizes):
        for r in range(config.subsets):
            if n == limit and r > 0:  # the full split: every subset is the same vector
                vectors.append(vectors[-1])
                cosines[i, r] = cosines[i, 0]
                continue
            if fitted.paired:
                chosen = rng.choice(fitted.positive.shape[0], n, replace=False)
                pos_rows, neg_rows = chosen, chosen
            else:
                pos_rows = rng.choice(fitted.positive.shape[0], n, replace=False)
                neg_rows = rng.choice(fitted.negative.shape[0], n, replace=False)
            if n == limit:
                # The full split: every row of both classes (labelled by the smaller class's count).
                pos_rows, neg_rows = np.arange(fitted.positive.shape[0]), np.arange(fitted.negative.shape[0])
            diff = fitted.positive[pos_rows].mean(0) - fitted.negative[neg_rows].mean(0)
            unit = diff / diff.norm().clamp_min(1e-12)
            cosines[i, r] = float(unit @ full / norm)
            vectors.append(SteeringVector({layer: unit * norm}, fitted.vector.metadata))
    c = config.primary_coefficient
    distinct = {id(v): v for v in vectors}
    order = list(distinct)
    direction = 1 if kind == "questions" else concept["direction"]
    if kind == "prompts":
        rows = [[(distinct[k], c)] for _ in items for k in order]
        values, _ = generate_scored(work, "sample-size", config, [p for p in items for _ in order], rows, score)
        steered = values.reshape(n_items, len(order))
    else:
        rows = [[(distinct[k], c)] for _ in items for k in order]
        steered, _, _ = steered_ab(work, "sample-size-ab", items, rows, len(order), batch_size=config.batch_size)
    zero = list(config.coefficients).index(0.0)
    unsteered = base[ID][:n_items, zero]
    column = {k: j for j, k in enumerate(order)}
    effects = np.zeros((len(sizes), config.subsets, n_items))
    for i in range(len(sizes)):
        for r in range(config.subsets):
            j = column[id(vectors[i * config.subsets + r])]
            effects[i, r] = direction * np.sign(c) * (steered[:, j] - unsteered)
    fit = fit_saturation(sizes, effects, n_boot=config.n_boot, seed=config.seed)
    per_n = [{"n": n, "is_full_split": n == limit,
              "rows": [int(fitted.positive.shape[0]), int(fitted.negative.shape[0])] if n == limit else [n, n], "effect": t_interval(effects[i].mean(0)).to_dict(),
              "subset_effects": effects[i].mean(1).tolist(), "cosine_to_full": {
                  "mean": float(cosines[i].mean()), "min": float(cosines[i].min()), "values": cosines[i].tolist()}}
             for i, n in enumerate(sizes)]
    return {"coefficient": c, "n_items": n_items, "subsets": config.subsets, "sizes": sizes,
            "skipped_sizes": skipped, "per_n": per_n, "fit": fit.to_dict(), "plateau_limit": config.plateau_limit,
            "effects": effects.tolist(),
            "unit": "examples per class (pairs for paired data)",
            "design": ("each subset's direction is rescaled to the full vector's norm, so only the direction varies; "
                       "effects at the primary coefficient on the first in-distribution items, against the same "
                       "unsteered completions")}


__all__ = ["measure_sample_size"]
