"""The threshold rule ``robustness.perplexity`` and ``robustness.model_size`` share: the 95 % interval
(t, with Hall's skewness correction) of a mean of per-text log ratios against ``log(1 + margin)``,
and its decision in words."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from interp_steer.stats import skew_corrected_interval
from interp_steer.studies.rules.base import (
    VERDICTS,
    Decision,
    json_number,
)
from interp_steer.studies.rules.paired import mde


def threshold_codes(d: np.ndarray, bound: Any) -> dict[str, np.ndarray]:
    """The threshold rule on a batch ``d [runs, items]`` (NaNs left out) against ``bound`` (per run or
    scalar): code 1 when the 95 % interval of the mean lies above ``bound``, −1 below, 0 otherwise
    (and with fewer than two items). The interval is the t interval with Hall's skewness correction
    (:func:`~interp_steer.stats.skew_corrected_interval`)."""
    d = np.asarray(d, dtype=float)
    if np.isinf(d).any():
        raise ValueError("the log ratios hold infinite values: pass finite numbers (NaN for a missing text)" + INF_HINT)
    mean, se, n, low, high = skew_corrected_interval(d, level=0.95)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: n < 2 anyway
        spread = np.nanmax(d, axis=-1) - np.nanmin(d, axis=-1) if np.shape(d)[-1] else np.zeros(np.shape(d)[:-1])
    # Identical values (spread 0): a zero-width interval is no evidence, so no verdict.
    valid = (n >= 2) & np.isfinite(se) & (spread > 0)
    bound = np.broadcast_to(np.asarray(bound, dtype=float), mean.shape)
    code = np.where(valid & (low > bound), 1, np.where(valid & (high < bound), -1, 0))
    return {"code": code, "mean": mean, "se": se, "n": n, "low": low, "high": high, "bound": bound,
            "mde": mde(se, n), "spread": spread}


def threshold_decision(d: np.ndarray, margin: float, *, what: str, more: str, units: str) -> Decision:
    """The threshold rule on one run's ``d`` (log ratios), its reason in ratios (``what`` names the
    quantity, ``more`` says what exceeding the margin means, ``units`` what ``d`` is over)."""
    out = {k: v[0] if isinstance(v, np.ndarray) and v.ndim else v
           for k, v in threshold_codes(d[None], math.log1p(margin)).items()}
    code, n = int(out["code"]), int(out["n"])

    def ratio(x: float) -> str:
        return f"{math.exp(x):.3f}" if np.isfinite(x) else "n/a"

    interval = f"x{ratio(out['mean'])} [{ratio(out['low'])}, {ratio(out['high'])}]"
    rise = f"{1 + margin:.2f} (a rise of {margin:.0%})"
    why = {1: f"{what} {interval}: significantly more than {rise}",
           -1: f"{what} {interval}: significantly less than {rise}",
           0: f"{what} {interval}: cannot tell from {rise}"}[code]
    if n < 2:
        why = f"fewer than two {units} with a perplexity ({n}): no interval"
    elif not out["spread"] > 0:
        why = (f"every one of the {n} {units} has the same log ratio ({out['mean']:.4g}): a zero-width interval is not "
               f"evidence (a constant is more likely a bug, e.g. one value copied, than a measurement); no interval")
    detect = (f"; this run could detect ±{out['mde']:.3f} in log ratio (n = {n} {units})"
              if np.isfinite(out["mde"]) and out["spread"] > 0 else "")
    verdict = VERDICTS[code]
    numbers = {"verdict": verdict, "difference": {"mean": json_number(out["mean"]), "low": json_number(out["low"]),
                                                  "high": json_number(out["high"]), "n": n, "level": 0.95},
               "ratio": {"mean": json_number(math.exp(out["mean"])) if np.isfinite(out["mean"]) else None,
                         "low": json_number(math.exp(out["low"])) if np.isfinite(out["low"]) else None,
                         "high": json_number(math.exp(out["high"])) if np.isfinite(out["high"]) else None},
               "se": json_number(out["se"]), "margin": margin, "bound": math.log1p(margin), "mde": json_number(out["mde"]),
               "more": more}
    return Decision(verdict, why + detect, numbers)


INF_HINT = ("; an infinite log ratio is a degenerate text (the strongest evidence of a rise, so it must not be dropped): "
             "replace it by a large finite value, e.g. the largest finite one, and report that you did")
