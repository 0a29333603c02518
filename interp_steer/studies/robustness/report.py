"""Figures and ``report.md`` for a robustness study; ``RobustnessResult.save`` calls
:func:`write_outputs`. The report reads a result; the study never needs it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from interp_steer._io import write_json, write_text_atomically
from interp_steer.plotting import save_figure
from interp_steer.studies._common import fmt_interval, fmt_num, fmt_rate, quote
from interp_steer.studies.robustness.saturation import saturation_curve
from interp_steer.units import run_time_text

if TYPE_CHECKING:
    from interp_steer.studies.robustness.result import RobustnessResult


def _errorbars(ax: Axes, xs: Sequence[float | int], cells: Sequence[dict[str, Any]], label: str, **style: Any) -> None:
    mean = np.array([c["mean"] if c.get("mean") is not None else np.nan for c in cells], dtype=float)
    low = np.array([c["low"] if c.get("low") is not None else np.nan for c in cells], dtype=float)
    high = np.array([c["high"] if c.get("high") is not None else np.nan for c in cells], dtype=float)
    err = np.nan_to_num(np.stack([mean - low, high - mean]).clip(min=0))
    ax.errorbar(xs, mean, yerr=err, marker="o", capsize=3, label=label, **style)


def figure_effects(report: dict[str, Any], measure: str) -> Axes:
    """Effect (intended direction positive) against the coefficient, one line per prompt set."""
    _, ax = plt.subplots(figsize=(6, 4))
    sets = report["effects"]["sets"]
    span = max(report["effects"]["coefficients"]) - min(report["effects"]["coefficients"])
    for k, (name, info) in enumerate(sets.items()):
        shift = (k - (len(sets) - 1) / 2) * 0.012 * span  # side by side, so the intervals do not hide each other
        xs = [shift] + [c["coefficient"] + shift for c in info["cells"]]
        cells = [{"mean": 0.0, "low": 0.0, "high": 0.0}] + [c["effect"] for c in info["cells"]]
        order = np.argsort(xs)
        _errorbars(ax, [xs[i] for i in order], [cells[i] for i in order], f"{name} ({info['measure']})")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("coefficient (× mean residual norm)")
    ax.set_ylabel("effect (intended direction > 0)")
    ax.set_title(f"{report['model']['name']}: in- vs out-of-distribution (95 % CI)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def figure_sample_size(report: dict[str, Any]) -> Axes:
    """Mean effect per training-set size with the fitted saturating curve; cosine to the full vector."""
    ss = report["sample_size"]
    _, ax = plt.subplots(figsize=(6, 4))
    ns = [p["n"] for p in ss["per_n"]]
    _errorbars(ax, ns, [p["effect"] for p in ss["per_n"]], "effect at the primary coefficient", color="tab:blue")
    fit = ss["fit"]
    if fit.get("form") and fit.get("k") is not None and fit["e_max"].get("estimate") is not None:
        grid = np.geomspace(min(ns), max(ns), 100)
        curve = saturation_curve(fit["form"], fit["e_max"]["estimate"], fit["k"], grid)
        ax.plot(grid, curve, color="tab:blue", alpha=0.6, label=f"fit ({fit['form']})")
        n90 = fit["n_at"].get("0.9", {}).get("estimate")
        if n90 is not None:
            ax.axvline(n90, color="tab:blue", ls="--", lw=0.8, label=f"n90 = {n90:.0f}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training examples per class")
    ax.set_ylabel("effect")
    twin = ax.twinx()
    twin.plot(ns, [p["cosine_to_full"]["mean"] for p in ss["per_n"]], color="tab:green", marker="s", ls=":",
              label="cosine to the full vector")
    twin.set_ylabel("cosine to the full vector", color="tab:green")
    twin.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{report['model']['name']}: sample size")
    ax.grid(alpha=0.3)
    return ax


def plain_log_y(ax: Axes) -> None:
    """Tick labels of a log y axis as plain numbers (0.9, 1, 1.5), not powers of ten: a ratio near 1
    spans less than a decade, where matplotlib would write 9×10⁻¹ on a minor tick and nothing else."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    low, high = ax.get_ylim()
    ax.yaxis.set_minor_formatter(plain if low > 0 and high / low < 10 else NullFormatter())


def figure_perplexity(report: dict[str, Any]) -> Axes:
    """Perplexity of fixed texts under steering, as a ratio to the unsteered model's, per corpus."""
    _, ax = plt.subplots(figsize=(6, 4))
    for name, corpus in report["perplexity"]["corpora"].items():
        _errorbars(ax, [c["coefficient"] for c in corpus["cells"]], [c["ratio"] for c in corpus["cells"]], name)
    ax.axhline(1, color="grey", lw=0.8)
    for level in (1.1, 1.5):
        ax.axhline(level, color="grey", lw=0.5, ls=":", label="1.1× and 1.5× unsteered" if level == 1.1 else None)
    ax.set_yscale("log")
    plain_log_y(ax)
    ax.set_xlabel("coefficient (× mean residual norm)")
    ax.set_ylabel("perplexity / unsteered (geometric mean)")
    ax.set_title(f"{report['model']['name']}: perplexity under steering")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def figure_adversarial(report: dict[str, Any]) -> Axes:
    adv = report["adversarial"]
    _, ax = plt.subplots(figsize=(6, 4))
    searches = adv["searches"]
    x = np.arange(len(searches))
    ax.bar(x - 0.2, [s["seed_effect"] for s in searches], 0.4, label="seed prompt", color="tab:grey")
    ax.bar(x + 0.2, [s["effect"] for s in searches], 0.4, label="found input",
           color=["tab:red" if s["reversal"] else "tab:blue" for s in searches])
    ax.axhline(adv["threshold"], color="tab:red", ls="--", lw=0.8, label="reversal threshold")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, [f"{s['seed_index']}:{'evo' if s['method'] == 'evolutionary' else 'gcg'}" for s in searches],
                  fontsize=7, rotation=45)
    ax.set_ylabel("readout effect (steering's direction > 0)")
    ax.set_title(f"{report['model']['name']}: adversarial search (red: reversal)")
    ax.legend(fontsize=8)
    return ax


FIGURES = ("effects", "sample_size", "perplexity", "adversarial")


def write_outputs(result: RobustnessResult, out: Path, *, figures: bool = True) -> dict[str, Path]:
    """``robustness.json``, each model's vector, the figures and ``report.md``."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"json": write_json(out / "robustness.json", result.to_dict())}
    for i, vector in enumerate(result.vectors):
        written[f"vector_{i}"] = vector.save(out / result.vector_file(i))
    names: list[str] = []
    if figures:
        for i, report in enumerate(result.models):
            suffix = "" if i == 0 else f"_{i}"
            makers = {"effects": lambda r: figure_effects(r, result.concept["measure"]),
                      "sample_size": figure_sample_size, "perplexity": figure_perplexity}
            if report["adversarial"].get("searches"):
                makers["adversarial"] = figure_adversarial
            for name, make in makers.items():
                written[name + suffix] = save_figure(make(report), out / f"{name}{suffix}.png")
                names.append(name + suffix)
    written["report"] = out / "report.md"
    write_text_atomically(written["report"], render_report(result, figures=names))
    return written


# -------------------------------------------------------------------------------------- report


def render_report(result: RobustnessResult, *, figures: Sequence[str] = ()) -> str:
    first = result.models[0]
    c = result.config
    lines = [f"# Steering robustness: {', '.join(r['model']['name'] for r in result.models)}", "",
             "The five findings of *Patterns and Mechanisms of Contrastive Activation Engineering* (arXiv 2505.03189), "
             f"re-tested on this vector and data ({c.profile} profile, seed {c.seed}).", "",
             f"Concept: {_concept_line(result)}", "",
             f"Vector: mean difference at layer {first['vector']['layer']} ({first['vector']['rule']}), rescaled to the "
             f"layer's mean residual norm {first['vector']['resid_norm']:.1f}; coefficients {list(c.coefficients)} "
             f"(primary {c.primary_coefficient:g}), steering from each prompt's last token on, greedy decoding.", "",
             "## Verdicts", "", "| finding | verdict | why | rule |", "| --- | --- | --- | --- |"]
    for claim in result.claims:
        rule = claim.numbers.get("rule", "")
        card = f"`{rule}` — `interp-steer rules {rule}`" if rule else ""
        lines.append(f"| {claim.claim} | **{claim.verdict}** | {claim.summary.replace('|', '/')} | {card} |")
    lines += ["", "Each verdict is a registered rule (`interp_steer/studies/rules/robustness/`, one module per finding); its card, with the rule "
              "in words and its simulated error rates and power at the shipped sizes, is printed by the command beside "
              "it. Findings 1-4 are judged on the first model.", ""]
    for i, report in enumerate(result.models):
        lines += _model_section(result, report, i)
    for name in figures:
        lines += [f"![{name}]({name}.png)", ""]
    lines += ["## Caveats", "", *_caveats(result), "", f"Run time: {run_time_text(result.timings)}.", ""]
    return "\n".join(lines)


def _concept_line(result: RobustnessResult) -> str:
    d = result.data
    con = result.concept
    if "questions" in d:
        src = f"A/B questions {d['questions']['source']} ({d['questions']['n_train']} train, {d['questions']['n_heldout']} held out)"
    elif "pairs" in d:
        src = f"contrast pairs {d['pairs']['source']} ({d['pairs']['n_train']} train, {d['pairs']['n_heldout']} held out)"
    else:
        src = (f"{d['positive']['source']} against {d['negative']['source']} ({d['positive']['n_train']} + "
               f"{d['negative']['n_train']} training texts, {d['positive']['n_heldout']} + {d['negative']['n_heldout']} held out)")
    return f"{src}; measured by {con['measure']} ({con['direction_source']})."


def _model_section(result: RobustnessResult, report: dict[str, Any], index: int) -> list[str]:
    m = report["model"]
    lines = [f"## {m['name']} ({m['n_parameters'] / 1e6:.0f}M parameters, {m['n_layers']} layers)", "",
             "### 1. In- vs out-of-distribution", "",
             "| set | measure | items | unsteered | effect at the primary coefficient | OOD/ID ratio |",
             "| --- | --- | --- | --- | --- | --- |"]
    effects = report["effects"]
    for name, info in effects["sets"].items():
        ratio = effects["ood_over_id"].get(name)
        ratio_text = "—" if ratio is None else (fmt_interval(ratio, 2, False) + ("" if ratio.get("scale") == "raw effects"
                                                                                else " (standardised)"))
        lines.append(f"| {name} | {info['measure']} | {info['n_items']} | {fmt_interval(info['unsteered'])} | "
                     f"{fmt_interval(info['primary_effect'])} | {ratio_text} |")
    ss = report["sample_size"]
    fit = ss["fit"]
    lines += ["", "### 2. Sample size", "",
              f"{ss['subsets']} random subsets per size, each direction rescaled to the full vector's norm, applied at "
              f"c = {ss['coefficient']:g} to {ss['n_items']} in-distribution items.", "",
              "| n per class | effect | cosine to the full vector (mean, min) |", "| --- | --- | --- |"]
    for p in ss["per_n"]:
        lines.append(f"| {p['n']}{' (all)' if p['is_full_split'] else ''} | {fmt_interval(p['effect'])} | "
                     f"{p['cosine_to_full']['mean']:.3f}, {p['cosine_to_full']['min']:.3f} |")
    levels = ", ".join(f"n{float(q) * 100:.0f} = {fmt_num(v['estimate'], 0)} [{fmt_num(v['low'], 0)}, {fmt_num(v['high'], 0)}]"
                       for q, v in fit["n_at"].items())
    union = (fit.get("n_at_union") or {}).get("0.9") or {}
    union_text = (f" Over every form (each form's own bootstrap interval, their union: what the verdict reads): n90 in "
                  f"[{fmt_num(union.get('low'), 0)}, {fmt_num(union.get('high'), 0)}]." if union else "")
    lines += ["", f"Fit: {fit.get('form') or 'none'}; plateau {fmt_interval(fit['e_max'])}; {levels}.{union_text}"
              + (f" Note: {fit['note']}" if fit.get("note") else ""), ""]
    adv = report["adversarial"]
    lines += ["### 3. Adversarial reversal", ""]
    if adv.get("status") == "skipped":
        lines += [adv["reason"], ""]
    else:
        names = {"evolutionary": "evolutionary edits", "gcg": "gradient-guided suffix"}
        methods = [names.get(m, m) for m in adv.get("per_method", {})] + (["random edits (control)"]
                                                                            if adv.get("control") else [])
        lines += [f"{adv['n_seeds']} seed prompts × ({', '.join(methods)}), {adv['budget_per_search']} "
                  f"candidates each, vocabulary of {adv['vocabulary_size']} tokens. Readout: {adv['readout']['kind']} "
                  f"(in-distribution readout effect {fmt_interval(adv['in_distribution_readout_effect'])}); "
                  f"{adv['threshold_rule']} ({adv['threshold']:+.3f}). Seeds with a reversal: "
                  f"{fmt_rate(adv['seeds_with_reversal'])} (any search); by method: "
                  + ", ".join(f"{m} {fmt_rate(r)}" for m, r in adv.get("per_method", {}).items())
                  + (f"; control ({adv['control']['definition']}): "
                     f"{fmt_rate(adv['control']['seeds_with_reversal'])}. The verdict compares the "
                     f"{adv['paired']['search_method']} search with the control, seed by seed."
                     if adv.get("control") else ".")
                  + (f" Seeds already below the threshold unedited (not counted): {adv['seeds_already_reversed']}."
                     if adv.get("seeds_already_reversed") else ""), "",
                  "| seed | search | seed effect | found effect | reversal | perplexity seed → found | generation check | input |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for s in [*adv["searches"], *(adv.get("control") or {}).get("searches", [])]:
            check = s.get("generation_check")
            check_text = "—" if not check else f"{check['effect']:+.2f}"
            lines.append(f"| {s['seed_index']} | {s['method']} | {s['seed_effect']:+.3f} | {s['effect']:+.3f} | "
                         f"{'yes' if s['reversal'] else 'no'} | {s['perplexity']['seed']:.0f} → {s['perplexity']['found']:.0f} | "
                         f"{check_text} | {quote(s['text'], 120)} |")
        lines += ["", "Replay any row with `interp_steer.studies.robustness.replay(model, vector, readout, content_ids)`.", ""]
    lines += ["### 4. Perplexity", "", "| corpus | unsteered | " + " | ".join(f"c = {x:g}" for x in report["perplexity"]["coefficients"])
              + " | +10 % at c | +50 % at c |",
              "| --- | --- | " + " | ".join("---" for _ in report["perplexity"]["coefficients"]) + " | --- | --- |"]
    for name, corpus in report["perplexity"]["corpora"].items():
        rises = []
        for key in ("10%", "50%"):
            side = corpus["rise"][key]["positive"]
            rises.append("beyond the grid" if not side or not side["reached"] else
                         f"{side['coefficient']:.3f} [{fmt_num(side['low'], 3)}, {fmt_num(side['high'], 3)}]")
        lines.append(f"| {name} ({corpus['n_texts']} texts) | {corpus['unsteered_perplexity']:.1f} | "
                     + " | ".join(fmt_interval(cell["ratio"], 3, False) for cell in corpus["cells"])
                     + f" | {rises[0]} | {rises[1]} |")
    lines.append("")
    return lines


def _caveats(result: RobustnessResult) -> list[str]:
    c = result.config
    out = []
    if len(result.models) < 2:
        out.append("- One model: finding 5 needs at least two (`--models SPEC,SPEC`).")
    else:
        out.append("- Finding 5 compares the smallest and the largest model, which differ in more than size (family, "
                   "training data, tokenizer): its verdict is about these models, not about size alone.")
    if c.profile == "quick":
        out.append("- Quick profile: few items, subsets and search candidates; intervals are wide and the sample-size "
                   "curve may not reach the paper's 80-100 examples.")
    largest = max(result.models[0]["sample_size"]["sizes"])
    if largest < c.plateau_limit:
        out.append(f"- The training split has {largest} examples per class, fewer than the plateau limit "
                   f"{c.plateau_limit}: a plateau beyond the data cannot be confirmed.")
    out.append("- The adversarial readout is the steering's next-token behaviour (A/B: the answer letter); a reversal "
               "there need not reverse a whole generated text, which the generation check reports.")
    out.append("- Effects on generated text use one greedy completion per item and cell; the scorer's own noise "
               "(VADER on short texts) widens every interval.")
    return out


__all__ = ["FIGURES", "render_report", "write_outputs"]
