"""The Creative Collision paper's three findings, judged on one run.

Each finding is a registered rule (:mod:`interp_steer.studies.rules.collision`): a judge here picks
the rule's documented arrays out of what the study computed (per-prompt scores, each completion's
VADER compound and readout log-odds, the probe profiles' held-out scores), calls ``RULE.decide`` and
wraps the decision in a :class:`Finding`: ``"reproduced"``, ``"not reproduced"`` or
``"inconclusive"``, with a summary that shows the numbers behind it and names the rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_steer.probes import Localisation
from interp_steer.studies.collision.config import Settings
from interp_steer.studies.collision.result import Finding
from interp_steer.studies.mixing import Dominance
from interp_steer.studies.rules.collision import (
    COHERENCE,
    DOMINANCE,
    SHARED_LAYER,
    SHARED_MIN_DEPTH,
    SHARED_MIN_PER_CLASS,
)


def judge_findings(config: Settings, dominance: dict[str, list[Dominance]], coherence: dict[str, Any],
                   per_prompt: dict[str, np.ndarray], localisation: Localisation, profiles: dict[str, Any],
                   per_sample: dict[str, np.ndarray]) -> list[Finding]:
    """The three findings in the report's order: dominance, coherence, shared layer. ``per_sample``:
    each completion's ``"vader"`` compound and readout ``"probe_log_odds"``, ``[lambdas, alphas,
    prompts, samples]`` (the dominance rule maps each completion to its scale before averaging), and,
    where the study has them, its ``"repetition"`` rate and ``"vader_words"`` (the words VADER scored)."""
    return [
        finding_dominance(config, dominance, coherence, per_sample),
        finding_coherence(config, per_prompt, coherence),
        finding_shared_layer(localisation, profiles),
    ]


def _rule_line(rule_id: str) -> str:
    return f" (rule `{rule_id}`: `interp-steer rules {rule_id}`)"


def finding_dominance(config: Settings, by_score: dict[str, list[Dominance]], coherence: dict[str, Any],
                      per_sample: dict[str, np.ndarray]) -> Finding:
    """Finding (i): ``collision.dominance`` on VADER at the best non-degraded strength; the same rule on
    the readout's log-odds and at every strength, for the report."""
    li = config.lambdas.index(coherence["best_lambda"])

    def decide(score: str, at: int, scale: str):
        # an imported grid may lack a mix at some strength: the rule reads the mixes present there
        cells = np.asarray(per_sample[score][at], dtype=float)
        present = [i for i in range(len(config.alphas)) if np.isfinite(cells[i]).any()]
        aside = {}  # the degenerate-mix guard's repetition rates; VADER's per-word scale
        if "repetition" in per_sample:
            aside["repetition"] = np.asarray(per_sample["repetition"][at], dtype=float)[present]
        if scale == "vader" and "vader_words" in per_sample:
            aside["sentiment_words"] = np.asarray(per_sample["vader_words"][at], dtype=float)[present]
        return DOMINANCE.decide(alphas=[config.alphas[i] for i in present], scores=cells[present], scale=scale,
                                **aside)

    decision = decide("vader", li, "vader")
    readout = decide("probe_log_odds", li, "log_odds")
    per_lambda = {f"{lam:g}": decide("vader", i, "vader").verdict for i, lam in enumerate(config.lambdas)}
    main: Dominance = by_score["vader"][li]
    numbers = {**decision.numbers, "lambda": coherence["best_lambda"], "score": "vader",
               "balance_point": main.to_dict()["balance_point"],
               "readout_area": by_score["probe_valence"][li].area.to_dict(), "readout_verdict": by_score["probe_valence"][li].verdict,
               "readout_rule_verdict": readout.verdict, "readout_reason": readout.reason,
               "verdicts_per_lambda": {f"{lam:g}": by_score["vader"][i].verdict for i, lam in enumerate(config.lambdas)},
               "rule_verdicts_per_lambda": per_lambda}
    ends = numbers["ends_difference"]
    checked = ("2·artanh of the compound and the valence per sentiment word" if "per_word" in decision.numbers["scales_checked"]
               else "2·artanh of the compound")
    text = (f"{decision.reason}. At λ = {coherence['best_lambda']:g} (the best non-degraded strength), VADER compound: "
            f"A end − B end = {_fmt_plain(ends)}; dominance is relative to the scale it is read on, here "
            f"VADER's raw valence sum (checked on {checked}); balance point α* = "
            f"{_fmt(main.balance_point)}. The same rule on the A-vs-B probe readout's log-odds: {readout.verdict}."
            + _rule_line(DOMINANCE.id))
    return Finding("dominance", DOMINANCE.claim, decision.verdict, text, numbers)


def finding_coherence(config: Settings, per_prompt: dict[str, np.ndarray], coherence: dict[str, Any]) -> Finding:
    """Finding (ii): ``collision.coherence`` at the top strength on the mix nearest α = 0.5."""
    li = len(config.lambdas) - 1
    lam = config.lambdas[li]
    inner = [i for i, a in enumerate(config.alphas) if 0 < a < 1]
    mid = min(inner, key=lambda i: abs(config.alphas[i] - 0.5))
    log_ppl = np.log(per_prompt["perplexity"][li])
    top = coherence["per_lambda"][li]
    repetition = np.asarray(per_prompt["repetition"][li], dtype=float)
    decision = COHERENCE.decide(mid=log_ppl[mid], pure_a=log_ppl[-1], pure_b=log_ppl[0], degraded=bool(top["degraded"]),
                                repetition_mid=repetition[mid], repetition_a=repetition[-1], repetition_b=repetition[0])
    numbers = {**decision.numbers, "lambda": lam, "alpha_mid": config.alphas[mid],
               "repetition": {f"{config.alphas[i]:g}": float(np.nanmean(per_prompt["repetition"][li, i]))
                              for i in (0, mid, len(config.alphas) - 1)}}
    text = f"at the top strength λ = {lam:g}, α = {config.alphas[mid]:g}: {decision.reason}." + _rule_line(COHERENCE.id)
    return Finding("coherence", COHERENCE.claim, decision.verdict, text, numbers)


def finding_shared_layer(localisation: Localisation, profiles: dict[str, Any]) -> Finding:
    """Finding (iii): ``collision.shared_layer`` on the two persona-vs-baseline profiles' held-out scores."""
    pa, pb = profiles["A vs baseline"], profiles["B vs baseline"]
    n_layers = len(pa.layers)
    saturated = {name: sum(a >= 0.99 for a in p.accuracy) for name, p in (("A", pa), ("B", pb))}
    context = {"best_layer_a": pa.best_layer, "band_a": list(pa.band), "best_layer_b": pb.best_layer,
               "band_b": list(pb.band), "shared_layer": localisation.shared_layer,
               "best_layer_a_vs_b": profiles["A vs B"].best_layer,
               "heldout_accuracy_a_vs_b": profiles["A vs B"].heldout_accuracy,
               "layers_at_accuracy_0.99": saturated}
    profile_text = (f"By accuracy, A vs baseline peaks at layer {pa.best_layer} (band {pa.band_low}-{pa.band_high}), "
                    f"B vs baseline at layer {pb.best_layer} (band {pb.band_low}-{pb.band_high})")
    if saturated["A"] > n_layers / 2 or saturated["B"] > n_layers / 2:
        profile_text += (f"; the probes are near-perfect at most layers (accuracy ≥ 0.99 at {saturated['A']} and "
                         f"{saturated['B']} of {n_layers} layers)")
    if getattr(pa, "heldout_scores", None) is None or getattr(pb, "heldout_scores", None) is None:
        reason = ("the probe profiles carry no per-example held-out scores (a profile read back from JSON), so the "
                  "distance between the peaks has no interval")
        return Finding("shared_layer", SHARED_LAYER.claim, "inconclusive",
                       f"{reason}. {profile_text}." + _rule_line(SHARED_LAYER.id),
                       {"verdict": "inconclusive", "reason": reason, "rule": SHARED_LAYER.id, **context})
    depth = max(pa.layers) - min(pa.layers) + 1
    smallest = min(int(min(np.bincount(np.asarray(p.heldout_labels, dtype=int), minlength=2))) for p in (pa, pb))
    if depth < SHARED_MIN_DEPTH or smallest < SHARED_MIN_PER_CLASS:
        reason = (f"the rule needs at least {SHARED_MIN_DEPTH} layers and {SHARED_MIN_PER_CLASS} passages per class; "
                  f"this model has {depth} layers and the smaller class {smallest} passages")
        return Finding("shared_layer", SHARED_LAYER.claim, "inconclusive",
                       f"{reason}. {profile_text}." + _rule_line(SHARED_LAYER.id),
                       {"verdict": "inconclusive", "reason": reason, "rule": SHARED_LAYER.id, **context})
    folds = {f"folds_{key}": ids for key, ids in (("a", _fold_ids(pa)), ("b", _fold_ids(pb))) if ids is not None}
    if len(folds) < 2:
        folds = {}
    decision = SHARED_LAYER.decide(scores_a=pa.heldout_scores, labels_a=pa.heldout_labels,
                                   scores_b=pb.heldout_scores, labels_b=pb.heldout_labels, layers=list(pa.layers),
                                   **folds)
    numbers = {**decision.numbers, **context}
    text = f"{decision.reason}. {profile_text}." + _rule_line(SHARED_LAYER.id)
    return Finding("shared_layer", SHARED_LAYER.claim, decision.verdict, text, numbers)


def _fold_ids(profile: Any) -> np.ndarray | None:
    """The cross-validation fold that held out each of a profile's examples (the rows of its
    ``heldout_scores``), rebuilt from its labels, fold count and seed as ``probe_layers`` split them;
    None for a profile that does not say how it was split."""
    from interp_steer.probes import fold_splits

    folds, seed = getattr(profile, "folds", None), getattr(profile, "seed", None)
    if not isinstance(folds, int) or not isinstance(seed, int):
        return None
    labels = np.asarray(profile.heldout_labels, dtype=int)
    ids = np.full(labels.size, -1)
    for fold, (_, test) in enumerate(fold_splits(labels, folds, seed)):
        ids[test] = fold
    return ids


def _fmt(value: float) -> str:
    return f"{value:.2f}" if np.isfinite(value) else "n/a"


def _fmt_plain(interval: dict[str, Any]) -> str:
    """``mean [low, high]`` of a JSON interval (``None`` where it does not exist)."""
    mean, low, high = interval.get("mean"), interval.get("low"), interval.get("high")
    if mean is None:
        return "n/a"
    if low is None or high is None:
        return f"{mean:+.2f} (no interval)"
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


__all__ = ["finding_coherence", "finding_dominance", "finding_shared_layer", "judge_findings"]
