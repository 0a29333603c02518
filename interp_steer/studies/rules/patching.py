"""The dominance-patching study's one verdict, registered: does a chosen component hold up?

The study ranks every component (attention and MLP outputs per layer, heads) by the change of the
metric it causes when patched from the source run into the mix run, on one half of the prompts, and
reports the top ``k`` on the other half (:mod:`interp_steer.studies.patching.selection`). A chosen
component *holds up* when its normalised effect on the reporting half, ``mean(patched − target) /
mean(source − target)``, has a Fieller interval at the family-wise level ``1 − 0.05 / k``
(Bonferroni over the ``k`` components a fold reports) that excludes 0 with the sign the component
had on the choosing half. That is the claim "this component's effect replicates on prompts that took
no part in choosing it"; it is not one of the paper's claims, so its power is reported against an
assumed effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from interp_steer.stats import fieller
from interp_steer.studies.rules.base import DGP, Decision, Rule, noise, register

CLAIM = ("A component chosen by its effect on one half of the prompts moves the metric the same way on the "
         "other half (its effect replicates on prompts that took no part in choosing it).")

TEXT = ("on the reporting half's prompts, the normalised effect mean(patched − target) / mean(source − target) with "
        "Fieller's interval at the family-wise level 1 − 0.05 / k (Bonferroni over the k components a fold "
        "reports); reproduced ('holds up') when it excludes 0 with the sign the component had on the choosing half; "
        "not reproduced when it excludes 0 with the other sign (the effect reverses); inconclusive otherwise, and "
        "when source and target do not differ significantly (the ratio then has no finite interval)")

NOTES = ("Per component: a fold reports k components, so under no effect at all each wrong 'holds up' is at most "
         "0.05 / k (two-sided interval, one side counts) and the fold's family-wise rate at most 0.05 / 2. The "
         "worlds draw, per prompt, the target metric, a source-target span and the patched metric "
         "target + β × span + noise; the chosen sign is +1. Power is reported at an assumed β of 0.3 (the "
         "component carries 30 % of the source-target difference), noise SD 0.3 and spans of 1 ± 0.3 in the "
         "metric's units; with 8 reporting prompts and k = 8 the family-wise t quantile on 7 d.o.f. is about 4, so "
         "only large, consistent effects hold up. Sizes: the default profile's 16 prompts (8 per half, k = 8), and "
         "32 prompts (16 per half): the profiles 'quick' and 'full' here.")


def _arrays(patched: Any, target: Any, source: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = []
    for name, value in (("patched", patched), ("target", target), ("source", source)):
        a = np.asarray(value, dtype=float)
        if np.isinf(a).any():
            raise ValueError(f"{name} holds ±inf; pass finite metrics (NaN for a prompt that was not run)")
        arrays.append(a)
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"patched, target and source must have the same shape ([prompts], or [runs, prompts]); "
                         f"got {[a.shape for a in arrays]}")
    return arrays[0], arrays[1], arrays[2]


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int (the components a fold reports), got {k!r}")
    return int(k)


def _check_sign(sign: Any) -> np.ndarray:
    s = np.asarray(sign, dtype=float)
    if not np.isin(s, (-1.0, 1.0)).all():
        raise ValueError(f"sign must be +1 or -1 (the component's sign on the choosing half), got {sign!r}")
    return s


def _core(patched: np.ndarray, target: np.ndarray, source: np.ndarray, sign: np.ndarray, k: int,
          overall: float = 0.95) -> dict[str, np.ndarray]:
    """Batch core: ``patched``, ``target``, ``source`` ``[runs, prompts]``, ``sign`` ``[runs]``; the
    family-wise level is ``1 − (1 − overall) / k``."""
    if not 0 < overall < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {overall!r}")
    level = 1 - (1 - overall) / k
    result = fieller(patched - target, source - target, level=level, axis=-1)
    low, high = sign * result.low, sign * result.high
    lo, hi = np.minimum(low, high), np.maximum(low, high)
    bounded = np.isfinite(lo) & np.isfinite(hi)
    code = np.where(bounded & (lo > 0), 1, np.where(bounded & (hi < 0), -1, 0))
    return {"code": code, "estimate": result.estimate, "low": result.low, "high": result.high, "level": level,
            "bounded": bounded}


def _codes(patched: Any, target: Any, source: Any, sign: Any, k: Any, *, level: float = 0.95) -> np.ndarray:
    p, t, s = _arrays(patched, target, source)
    if p.ndim != 2:
        raise ValueError(f"a batch is [runs, prompts]; got shape {p.shape}")
    sign = np.broadcast_to(_check_sign(sign), (p.shape[0],))
    k = _check_k(int(np.asarray(k).flat[0]) if np.ndim(k) else k)
    return _core(p, t, s, sign, k, level)["code"]


def _decide(patched: Any, target: Any, source: Any, sign: Any = 1, k: Any = 1, *, level: float = 0.95) -> Decision:
    """``patched``: the metric with the component patched, per prompt of the reporting half;
    ``target``/``source``: the unpatched mix run's and the source run's metric on the same prompts;
    ``sign``: the component's sign on the choosing half; ``k``: how many components the fold reports."""
    p, t, s = _arrays(patched, target, source)
    if p.ndim != 1:
        raise ValueError(f"patched, target and source must be 1-D [prompts] (one component); got shape {p.shape}")
    sign_value = float(_check_sign(sign))
    k = _check_k(k)
    out = _core(p[None], t[None], s[None], np.array([sign_value]), k, level)
    code = int(out["code"][0])
    verdict = {1: "reproduced", -1: "not reproduced", 0: "inconclusive"}[code]
    estimate, low, high = (float(out[key][0]) for key in ("estimate", "low", "high"))
    fmt = lambda v: "n/a" if not np.isfinite(v) else f"{v:+.3f}"  # noqa: E731
    interval = f"{fmt(estimate)} [{fmt(low)}, {fmt(high)}] ({out['level']:.2%}, family-wise over k = {k})"
    if code == 1:
        reason = f"holds up: the normalised effect on the reporting half {interval} excludes 0 with the chosen sign"
    elif code == -1:
        reason = f"reverses: the normalised effect on the reporting half {interval} excludes 0 with the other sign"
    elif not out["bounded"][0]:
        reason = (f"no finite interval: source and target do not differ significantly on the reporting half "
                  f"(effect {fmt(estimate)})")
    else:
        reason = f"the normalised effect on the reporting half {interval} contains 0"
    numbers = {"verdict": verdict, "holds_up": code == 1, "effect": estimate if np.isfinite(estimate) else None,
               "family_low": low if np.isfinite(low) else None, "family_high": high if np.isfinite(high) else None,
               "family_level": out["level"], "k": k, "sign": sign_value, "n": int(np.isfinite(p - t).sum())}
    return Decision(verdict, reason, numbers)


def _world(beta: float, *, kind: str = "normal", span: tuple[float, float] = (1.0, 0.3), sd: float = 0.3):
    """Per prompt: target ``t ~ N(0, 1)``, span ``d ~ N(span[0], span[1]²)``, source ``t + d``, the
    patched metric ``t + β d + sd · ε`` (``ε`` of ``kind``: normal, t3, or ``"skewed"``, a centred
    exponential); chosen sign +1."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        n = int(profile["prompts"])
        t = rng.standard_normal((runs, n))
        d = span[0] + span[1] * rng.standard_normal((runs, n))
        eps = rng.exponential(1.0, (runs, n)) - 1.0 if kind == "skewed" else noise(rng, kind, (runs, n))
        patched = t + beta * d + sd * eps
        return {"patched": patched, "target": t, "source": t + d, "sign": np.ones(runs), "k": int(profile["k"])}

    return draw


_DGPS = {d.name: d for d in (
    DGP("null: no effect, normal noise", "null", "the patch changes nothing beyond noise (SD 0.3)", _world(0.0)),
    DGP("null: no effect, t3 noise", "null", "heavy-tailed noise (t, 3 d.o.f.)", _world(0.0, kind="t3")),
    DGP("null: no effect, skewed noise", "null", "right-skewed noise", _world(0.0, kind="skewed")),
    DGP("null: no effect, noisy patch (SD 1)", "null", "noise as large as the metric's spread", _world(0.0, sd=1.0)),
    DGP("null: no effect, weak span (1 +- 1)", "null", "source and target barely differ on some prompts",
        _world(0.0, span=(1.0, 1.0))),
    DGP("null: a small effect of the other sign (beta -0.05)", "null", "the component pushes the other way a little",
        _world(-0.05)),
    DGP("effect: beta 0.3, normal noise", "effect", "the component carries 30 % of the span (the assumed effect)",
        _world(0.3), paper=True),
    DGP("effect: beta 0.3, t3 noise", "effect", "the same, heavy-tailed noise", _world(0.3, kind="t3")),
    DGP("effect: beta 0.05, skewed noise", "effect", "a small effect in the chosen direction, skewed noise",
        _world(0.05, kind="skewed")),
)}

HOLDS_UP = register(Rule(
    id="patching.holds_up", claim=CLAIM, text=TEXT,
    inputs={"patched": "[prompts] the metric with the component patched, on the reporting half",
            "target": "[prompts] the unpatched mix run's metric, same prompts",
            "source": "[prompts] the source run's metric, same prompts",
            "sign": "+1 or -1: the component's sign on the choosing half",
            "k": "int: the components a fold reports (Bonferroni)"},
    decide_one=_decide, codes=_codes,
    profiles={"quick": {"prompts": 8, "k": 8}, "full": {"prompts": 16, "k": 8}},
    dgps=_DGPS, notes=NOTES))


__all__ = ["HOLDS_UP"]
