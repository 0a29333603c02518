"""Finding 4 of the robustness study, perplexity: the NLL per token of a neutral corpus and of the
held-out on-topic texts under the steering at every perplexity coefficient; the ratio to unsteered
per text, and the coefficients where perplexity rises 10 % and 50 %."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from interp_steer.directions import SteeringVector
from interp_steer.evaluation import perplexity_under_steering
from interp_steer.models import Model
from interp_steer.stats import log_ratio_interval
from interp_steer.studies._units import UnitRunner
from interp_steer.studies.robustness.config import RobustnessConfig
from interp_steer.studies.robustness.inputs import Inputs
from interp_steer.units import fingerprint, numeric


def measure_perplexity(model: Model, config: RobustnessConfig, inputs: Inputs, vector: SteeringVector,
                       work: UnitRunner) -> dict[str, Any]:
    coefficients = list(config.perplexity_coefficients)
    zero = coefficients.index(0.0)
    out: dict[str, Any] = {"coefficients": coefficients, "corpora": {}}
    cap = config.max_perplexity_texts
    corpora = (("neutral", inputs.neutral[:cap]), ("on_topic", inputs.heldout_texts[:cap]))
    size = config.batch_size // 4 or 1  # texts per unit: one batch of every coefficient
    items = [{"corpus": name, "texts": texts[start : start + size]}
             for name, texts in corpora for start in range(0, len(texts), size)]
    shared = {"config": config, "vector": vector}
    results = work.run(_perplexity_unit, "perplexity", shared, fingerprint(numeric(shared)), items)
    for name, texts in corpora:
        nll = np.concatenate([r["nll"] for item, r in zip(items, results, strict=True) if item["corpus"] == name],
                             axis=1)  # [coefficients, texts]
        log_ratio = nll - nll[zero]
        cells = [{"coefficient": c, "ratio": log_ratio_interval(np.exp(nll[j]), np.exp(nll[zero])).to_dict()}
                 for j, c in enumerate(coefficients)]
        out["corpora"][name] = {"n_texts": len(texts), "unsteered_perplexity": float(np.exp(nll[zero].mean())),
                                "cells": cells, "per_text_log_ratio": log_ratio.tolist(),
                                "rise": {f"{int(round(100 * level))}%": _crossing(coefficients, log_ratio, level,
                                                                                  config.n_boot, config.seed)
                                         for level in (0.1, 0.5)}}
    return out


def _perplexity_unit(model: Model, shared: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """One work unit: the NLL per token of a batch of texts at every perplexity coefficient."""
    config = shared["config"]
    sweep = perplexity_under_steering(model, item["texts"], shared["vector"], list(config.perplexity_coefficients),
                                      batch_size=len(item["texts"]), seed=config.seed)
    return {"nll": np.asarray(sweep.values[0], dtype=np.float64)}


def _crossing(coefficients: list[float], log_ratio: np.ndarray, level: float, n_boot: int, seed: int) -> dict[str, Any]:
    """Per sign of the coefficient, the smallest |c| at which the geometric-mean perplexity ratio
    reaches ``1 + level`` (linear interpolation of the mean log ratio in |c|), with a percentile
    bootstrap interval over texts; ``None`` where the grid never reaches it."""
    target = math.log1p(level)
    out = {}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, log_ratio.shape[1], size=(n_boot, log_ratio.shape[1])) if n_boot else None
    for side, sign in (("positive", 1), ("negative", -1)):
        idx = sorted([j for j, c in enumerate(coefficients) if c * sign > 0 or c == 0], key=lambda j: abs(coefficients[j]))
        xs = np.array([abs(coefficients[j]) for j in idx])
        if len(xs) < 2:
            out[side] = None
            continue

        def cross(curve: np.ndarray, xs: np.ndarray = xs) -> float:
            above = np.nonzero(curve >= target)[0]
            if not above.size or above[0] == 0:
                return float("nan") if not above.size else 0.0
            k = above[0]
            return float(xs[k - 1] + (target - curve[k - 1]) * (xs[k] - xs[k - 1]) / (curve[k] - curve[k - 1]))

        point = cross(np.nanmean(log_ratio[idx], axis=1))
        low = high = float("nan")
        if draws is not None:
            # A replicate that never reaches the level crosses "beyond the grid": +inf, so order
            # statistics (no interpolation) give an unbounded upper end instead of NaN.
            boot = np.array([cross(np.nanmean(log_ratio[idx][:, d], axis=1)) for d in draws])
            boot = np.where(np.isfinite(boot), boot, np.inf)
            low = float(np.percentile(boot, 2.5, method="lower"))
            high = float(np.percentile(boot, 97.5, method="higher"))
        out[side] = {"coefficient": point if math.isfinite(point) else None, "low": low, "high": high,
                     "reached": math.isfinite(point), "largest_tested": float(xs[-1])}
    return out


__all__ = ["measure_perplexity"]
