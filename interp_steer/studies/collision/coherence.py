"""Coherence of the grid's pure ends against fluent text of their own tone.

Each pure end (α = 0: all B; α = 1: all A) at each strength λ is compared with its persona's corpus cut
to the completions' length and scored the same way by the unsteered model (:func:`references`): a
strength is *degraded* when a pure end's perplexity is more than ``degradation_ratio`` times the
corpus's (Welch interval on the log ratio) or its repetition rate exceeds the corpus's by more than
``degradation_repetition``; :func:`judge_coherence` picks the best usable strength. Shared by the
study and by scoring completions made elsewhere (:mod:`.imported`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps

from interp_steer.data import reject_bare_strings
from interp_steer.likelihood import sequence_perplexity
from interp_steer.metrics import repetition_rate
from interp_steer.models import Model
from interp_steer.stats import summarise, t_interval
from interp_steer.studies.collision.config import Settings
from interp_steer.studies.mixing import quiet_nan_warnings
from interp_steer.studies.personas import StudyTexts


def metric_interval(name: str, values: np.ndarray, seed: int) -> dict[str, Any]:
    """Mean and 95 % bootstrap interval over prompts; perplexity as a geometric mean (:func:`summarise`)."""
    values = np.asarray(values, dtype=float)
    if np.isnan(values).all():
        return {"mean": None, "low": None, "high": None, "n": 0}
    return summarise(values, metric=name, seed=seed).to_dict()


PURE_ENDS = {"B": 0, "A": -1}
"""Each pure end's α index; each is judged against the reference of the same key (its persona's corpus)."""


@dataclass(frozen=True, eq=False)
class Reference:
    """Fluent text of one tone scored like a completion: per passage, the perplexity (unsteered
    model) and repetition rate of its first ``window`` scored tokens."""

    corpus: str
    perplexity: np.ndarray
    repetition: np.ndarray
    window: int

    def to_dict(self) -> dict[str, Any]:
        return {"corpus": self.corpus, "n_passages": int(self.perplexity.size), "window_tokens": self.window,
                "perplexity": summarise(self.perplexity, metric="perplexity").to_dict(),
                "repetition": t_interval(self.repetition).to_dict()}


def references(model: Model, config: Settings, texts: StudyTexts) -> dict[str, Reference]:
    """Coherence references: the persona corpora (and the baseline) cut to the completions' length.

    Each passage is cut to its first ``max_new_tokens + 1`` tokens (counting a BOS the tokenizer
    adds) and every token after the first is scored, so a passage, like a completion, contributes
    ``max_new_tokens`` predictions; the repetition rate is read on the same window's text."""
    reject_bare_strings(texts=texts)
    window = config.max_new_tokens
    out = {}
    for key, (corpus, passages) in {"A": ("persona A corpus", texts.persona_a), "B": ("persona B corpus", texts.persona_b),
                                    "baseline": ("baseline corpus", texts.baseline)}.items():
        passages = passages[: config.reference_passages] if config.reference_passages else passages
        cut = [ids[: window + 1] for ids in model.encode(passages)]
        repetition = np.array([repetition_rate(model.tokenizer.decode(ids, skip_special_tokens=True)) for ids in cut])
        out[key] = Reference(corpus, sequence_perplexity(model, cut), repetition, window)
    return out


def _log_ratio(log_ppl: np.ndarray, reference: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """``mean(log_ppl) − mean(reference)`` (the log of a ratio of geometric means) with Welch's
    t-interval: the completions and the reference passages are independent samples."""
    a, b = log_ppl[np.isfinite(log_ppl)], reference[np.isfinite(reference)]
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan"), float("nan")
    estimate = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return estimate, float("nan"), float("nan")
    interval = _sps.ttest_ind(a, b, equal_var=False).confidence_interval(confidence_level=level)
    return estimate, float(interval.low), float(interval.high)


def _judge_end(log_ppl: np.ndarray, repetition: np.ndarray, reference: Reference,
              config: Settings) -> dict[str, Any]:
    """One pure end at one strength against fluent text of its tone: the ratio of geometric-mean
    perplexities (with Welch's interval), the repetition excess, and whether it is degraded. NaN
    perplexity (every completion empty) counts as degraded."""
    reference_log_ppl = np.log(reference.perplexity)
    log_ratio, low, high = _log_ratio(log_ppl, reference_log_ppl)
    with quiet_nan_warnings():  # geometric means; NaN where nothing was scored
        perplexity, reference_perplexity = (math.exp(float(np.nanmean(x))) for x in (log_ppl, reference_log_ppl))
        rep, ref_rep = float(np.nanmean(repetition)), float(np.nanmean(reference.repetition))
    ratio = math.exp(log_ratio)
    degraded = not ratio <= config.degradation_ratio or rep > ref_rep + config.degradation_repetition
    return {"reference": reference.corpus, "perplexity": perplexity, "reference_perplexity": reference_perplexity,
            "perplexity_ratio": ratio, "perplexity_ratio_low": math.exp(low), "perplexity_ratio_high": math.exp(high),
            "repetition": rep, "reference_repetition": ref_rep, "repetition_excess": rep - ref_rep,
            "degraded": bool(degraded)}


def judge_coherence(config: Settings, per_prompt: dict[str, np.ndarray], unsteered: dict[str, np.ndarray],
               references: dict[str, Reference]) -> dict[str, Any]:
    """Per strength: whether each pure end reads worse than fluent text of its own tone (the persona
    corpora as references, :func:`_judge_end`), and which strength is the best usable one (the
    non-degraded strength whose pure ends differ most in VADER valence)."""
    log_ppl = np.log(per_prompt["perplexity"])  # [lambdas, alphas, prompts]
    strengths = []
    for li, lam in enumerate(config.lambdas):
        ends = {label: _judge_end(log_ppl[li, ai], per_prompt["repetition"][li, ai], references[label], config)
                for label, ai in PURE_ENDS.items()}
        separation = t_interval(per_prompt["vader"][li, -1] - per_prompt["vader"][li, 0])  # paired over prompts
        strengths.append({"lambda": lam, "degraded": any(e["degraded"] for e in ends.values()), "ends": ends,
                          "vader_a_minus_b": separation.to_dict()})
    usable = [s for s in strengths if not s["degraded"]]
    best = max(usable, key=lambda s: s["vader_a_minus_b"]["mean"]) if usable else strengths[0]
    return {"reference": {key: ref.to_dict() for key, ref in references.items()},
            "unsteered_vs_baseline": _judge_end(np.log(unsteered["perplexity"]), unsteered["repetition"],
                                               references["baseline"], config),
            "per_lambda": strengths, "best_lambda": best["lambda"], "best_lambda_is_degraded": not usable,
            "rule": (f"degraded: a pure end's perplexity (geometric mean over prompts) > {config.degradation_ratio:g}× "
                     f"that of fluent text of its own tone (the persona's corpus: A's for the A end, B's for the B end; "
                     f"geometric mean over passages) or its repetition rate > the corpus's + {config.degradation_repetition:g}; "
                     f"the corpora are scored by the unsteered model in windows of {config.max_new_tokens} scored tokens "
                     "(each passage's first tokens), the completions' length; "
                     "best: the non-degraded strength with the largest mean VADER(A end) − VADER(B end)")}


__all__ = ["PURE_ENDS", "Reference", "judge_coherence", "metric_interval", "references"]
