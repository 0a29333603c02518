"""The Creative Collision paper's three findings, judged on one run.

Each judge reads numbers the study has already computed (dominance per strength, coherence per
strength, per-prompt scores, the probe profiles) and returns a :class:`Finding`: ``"reproduced"``,
``"not reproduced"`` or ``"inconclusive"``, with a summary that shows the numbers behind it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_steer.probes import Localisation
from interp_steer.stats import t_interval
from interp_steer.studies.collision.config import CollisionConfig
from interp_steer.studies.collision.result import Finding
from interp_steer.studies.mixing import Dominance, dominance_verdict


def judge_findings(config: CollisionConfig, dominance: dict[str, list[Dominance]], coherence: dict[str, Any],
                   per_prompt: dict[str, np.ndarray], localisation: Localisation,
                   profiles: dict[str, Any]) -> list[Finding]:
    """The three findings in the report's order: dominance, coherence, shared layer."""
    return [
        _finding_dominance(config, dominance, coherence, per_prompt),
        _finding_coherence(config, per_prompt, coherence),
        _finding_shared_layer(localisation, profiles),
    ]


def _finding_dominance(config, by_score, coherence, per_prompt) -> Finding:
    claim = "The optimistic persona (A) dominates the mix across most of the α range."
    li = config.lambdas.index(coherence["best_lambda"])
    main: Dominance = by_score["vader"][li]
    readout: Dominance = by_score["probe_valence"][li]
    verdict, reason, rule = dominance_verdict(main)
    numbers = {"lambda": coherence["best_lambda"], "score": "vader", **rule,
               "balance_point": main.to_dict()["balance_point"],
               "readout_area": readout.area.to_dict(), "readout_verdict": readout.verdict,
               "readout_rule_verdict": dominance_verdict(readout)[0],
               "verdicts_per_lambda": {f"{lam:g}": by_score["vader"][i].verdict for i, lam in enumerate(config.lambdas)},
               "rule_verdicts_per_lambda": {f"{lam:g}": dominance_verdict(by_score["vader"][i])[0]
                                            for i, lam in enumerate(config.lambdas)}}
    area, ends = main.area, main.ends
    text = (f"{reason}. At λ = {coherence['best_lambda']:g} (the best non-degraded strength), VADER: A end − B end = "
            f"{_fmt_interval(ends, '+.2f')}; on the {main.scale} scale the area between d(α) and "
            f"the diagonal is {_fmt_interval(area)}; balance point α* = "
            f"{_fmt(main.balance_point)}. The A-vs-B probe readout (on its log-odds) gives area "
            f"{_fmt_interval(readout.area)}; the same rule on it: {numbers['readout_rule_verdict']}.")
    return Finding("dominance", claim, verdict, text, numbers)


def _finding_coherence(config, per_prompt, coherence) -> Finding:
    claim = "At high strength, intermediate mixes are more coherent than either pure vector."
    li = len(config.lambdas) - 1
    lam = config.lambdas[li]
    inner = [i for i, a in enumerate(config.alphas) if 0 < a < 1]
    mid = min(inner, key=lambda i: abs(config.alphas[i] - 0.5))
    log_ppl = np.log(per_prompt["perplexity"][li])
    to_b = t_interval(log_ppl[mid] - log_ppl[0])  # paired over prompts
    to_a = t_interval(log_ppl[mid] - log_ppl[-1])
    top = coherence["per_lambda"][li]
    numbers = {"lambda": lam, "alpha_mid": config.alphas[mid],
               "log_perplexity_mid_minus_B": to_b.to_dict(), "log_perplexity_mid_minus_A": to_a.to_dict(),
               "repetition": {f"{config.alphas[i]:g}": float(np.nanmean(per_prompt["repetition"][li, i])) for i in (0, mid, len(config.alphas) - 1)},
               "top_lambda_degraded": top["degraded"]}
    text = (f"at the top strength λ = {lam:g}, log-perplexity of the α = {config.alphas[mid]:g} mix minus the pure "
            f"B end {to_b.mean:+.2f} [{to_b.low:+.2f}, {to_b.high:+.2f}], minus the pure A end {to_a.mean:+.2f} "
            f"[{to_a.low:+.2f}, {to_a.high:+.2f}] (negative = the mix is more fluent).")
    if not top["degraded"]:
        return Finding("coherence", claim, "inconclusive",
                       "the top strength does not degrade the pure ends, so there is nothing for a mix to "
                       "rescue; raise the top λ. " + text, numbers)
    if to_b.high < 0 and to_a.high < 0:
        verdict = "reproduced"
    elif to_b.low > 0 or to_a.low > 0:
        verdict = "not reproduced"
    else:
        verdict = "inconclusive"
    return Finding("coherence", claim, verdict, text, numbers)


def _finding_shared_layer(localisation: Localisation, profiles) -> Finding:
    claim = "Both personas localise best at the same layer (a shared moral-tone substrate)."
    pa, pb = profiles["A vs baseline"], profiles["B vs baseline"]
    n_layers = len(pa.layers)
    wide = max(len(pa.band), len(pb.band)) > n_layers / 2
    same = pa.best_layer in pb.band and pb.best_layer in pa.band
    saturated = {name: sum(a >= 0.99 for a in p.accuracy) for name, p in (("A", pa), ("B", pb))}
    numbers = {"best_layer_a": pa.best_layer, "band_a": list(pa.band), "best_layer_b": pb.best_layer,
               "band_b": list(pb.band), "shared_layer": localisation.shared_layer,
               "best_layer_a_vs_b": profiles["A vs B"].best_layer,
               "heldout_accuracy_a_vs_b": profiles["A vs B"].heldout_accuracy,
               "layers_at_accuracy_0.99": saturated}
    text = (f"A vs baseline peaks at layer {pa.best_layer} (band {pa.band_low}-{pa.band_high}), B vs baseline at "
            f"layer {pb.best_layer} (band {pb.band_low}-{pb.band_high}); A vs B peaks at layer "
            f"{profiles['A vs B'].best_layer} (nested-CV accuracy of choosing a layer this way "
            f"{profiles['A vs B'].heldout_accuracy:.2f}); "
            f"the shared layer is {localisation.shared_layer}.")
    if wide:
        if max(saturated.values()) > n_layers / 2:
            why = (f"the persona-vs-baseline probes are near-perfect at most layers (accuracy >= 0.99 at "
                   f"{saturated['A']} and {saturated['B']} of {n_layers} layers)")
        else:
            why = ("most layers' probe accuracies are within fold-to-fold noise of the best one (the bands span "
                   f"{len(pa.band)} and {len(pb.band)} of {n_layers} layers)")
        return Finding("shared_layer", claim, "inconclusive",
                       f"{why}, so the bands cover over half the model and cannot locate a peak. " + text, numbers)
    verdict = "reproduced" if same else "not reproduced"
    lead = "each best layer lies in the other's band. " if same else "the best layers are outside each other's bands. "
    return Finding("shared_layer", claim, verdict, lead + text, numbers)


def _fmt(value: float) -> str:
    return f"{value:.2f}" if np.isfinite(value) else "n/a"


def _fmt_interval(interval, spec: str = "+.3f") -> str:
    """``mean [low, high]``; an interval that does not exist (e.g. unseparated ends) says so."""
    if not np.isfinite(interval.mean):
        return "n/a"
    if not (np.isfinite(interval.low) and np.isfinite(interval.high)):
        return f"{interval.mean:{spec}} (no finite interval)"
    return f"{interval.mean:{spec}} [{interval.low:{spec}}, {interval.high:{spec}}]"


__all__ = ["judge_findings"]
