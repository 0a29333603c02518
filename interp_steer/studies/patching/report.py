"""Figures and ``report.md`` for a dominance-patching run; ``PatchingResult.save`` calls
:func:`write_outputs`. The report reads a result; the study never needs it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np

from interp_steer._io import write_json, write_text_atomically
from interp_steer.patching import METRICS
from interp_steer.plotting import plot_heatmap, save_figure
from interp_steer.units import run_time_text

if TYPE_CHECKING:
    from interp_steer.studies.patching.result import PatchingResult


def write_outputs(result: PatchingResult, out: Path, *, figures: bool = True) -> dict[str, Path]:
    """``patching.json``, the heatmaps (layer × position, layer × head, layer × component), the
    attribution scatter and ``report.md``."""
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": write_json(out / "patching.json", result.to_dict())}
    if figures:
        makers = {"layer_position": plot_layer_position, "layer_head": plot_layer_head,
                  "layer_component": plot_layer_component, "attribution": plot_attribution}
        for name, make in makers.items():
            figure = make(result)
            if figure is not None:  # a sweep that was not run has no figure
                written[name] = save_figure(figure, out / f"{name}.png")
    for name, followup in result.followups.items():  # dla/, attention/
        for key, path in followup.save(out / name, figures=figures).items():
            written[f"{name}_{key}"] = path
    written["report"] = out / "report.md"
    write_text_atomically(written["report"], render_report(result, figures=figures))
    return written


def plot_layer_position(result: PatchingResult):
    if "resid_position" not in result.effects:
        return None
    matrix = np.array(result.effects["resid_position"]["logit_diff"]["effect"], dtype=float)
    width = matrix.shape[1]
    ax = plot_heatmap(matrix, row_labels=list(range(matrix.shape[0])), col_labels=list(range(-width, 0)),
                      cbar_label="normalised effect (logit difference)", vmin=-1, vmax=1,
                      title=f"resid_pre patched from pure {result.config.source}, layer × position\n"
                            f"(black line: the steering layer {result.layer} below it, later layers above)")
    ax.title.set_fontsize(9)
    ax.set_xlabel("position (from the end)")
    ax.set_ylabel("layer")
    ax.axhline(result.layer + 0.5, color="black", linewidth=1)
    return ax


def plot_layer_head(result: PatchingResult):
    if "heads" not in result.effects:
        return None
    matrix = np.array(result.effects["heads"]["logit_diff"]["effect"], dtype=float)
    ax = plot_heatmap(matrix, row_labels=list(range(matrix.shape[0])), col_labels=list(range(matrix.shape[1])),
                      cbar_label="normalised effect (logit difference)", vmin=-1, vmax=1,
                      title="one head's output patched (all positions)" +
                      (f"; each half's top {result.config.top_k} by attribution" if result.config.method == "attribution"
                       else ""))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    return ax


METRIC_TITLES = {"logit_diff": "mean logit of A's tokens − of B's (logit_diff)",
                 "logprob": "log-probability of the continuation token (logprob)",
                 "probe": "A-vs-B probe's logit (probe)"}
"""Each patching metric in words, with its key in ``patching.json``."""


def plot_layer_component(result: PatchingResult):
    """The normalised effect of patching each component, per layer and metric (0: the target run,
    1: the source run)."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(METRICS), figsize=(15, 3.8))
    for ax, metric in zip(axes, METRICS, strict=True):
        for name, label in (("resid_layer", "resid_pre (all positions)"), ("attn_layer", "attention out"),
                            ("mlp_layer", "MLP out"), ("direction_a", "resid along v_A only"),
                            ("direction_b", "resid along v_B only"), ("direction_contrast", "resid along v_A − v_B only")):
            if name not in result.effects:
                continue
            e = result.effects[name][metric]
            effect = np.array(e["effect"], dtype=float)
            x = np.arange(len(effect)) + (1 if name.startswith("direction") else 0)
            line, = ax.plot(x, effect, marker="o", markersize=2, label=label)
            ax.fill_between(x, np.array(e["low"], dtype=float), np.array(e["high"], dtype=float),
                            color=line.get_color(), alpha=0.15, linewidth=0)
        ax.axvline(result.layer, color="black", linewidth=0.8, linestyle=":")
        ax.set_xlabel("layer")
        ax.set_ylabel("normalised effect")
        ax.set_title(METRIC_TITLES.get(metric, metric), fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(-0.5, 1.5)
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False, fontsize=7)
    fig.suptitle(f"patching pure {result.config.source} into the mix α = {result.config.alpha:g}, λ = {result.config.lam:g} "
                 f"(dotted: steering layer {result.layer})", fontsize=10)
    return fig


def plot_attribution(result: PatchingResult):
    if "resid_position" not in result.effects or "resid" not in result.attribution:
        return None
    exact = np.array(result.effects["resid_position"]["logit_diff"]["effect"], dtype=float).ravel()
    estimate = np.array(result.attribution["resid"], dtype=float).ravel()
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.scatter(exact, estimate, s=8, alpha=0.6)
    ax.plot([-1, 1.5], [-1, 1.5], color="grey", linestyle=":")
    r = result.attribution["correlation_with_exact"].get("resid", {}).get("pearson_r", float("nan"))
    ax.set_title(f"attribution vs exact, resid layer × position (r = {r:.2f})", fontsize=9)
    ax.set_xlabel("exact normalised effect")
    ax.set_ylabel("attribution estimate")
    ax.grid(alpha=0.3)
    return fig


def _followups_section(result: PatchingResult, *, figures: bool) -> list[str]:
    """Direct logit attribution and attention differences, when the run made them."""
    lines: list[str] = []
    if "dla" in result.followups:
        dla = result.followups["dla"]
        summary = dla.summary()
        total, parts, rest = (summary[f"difference_{k}"] for k in ("total", "sum", "remainder"))
        lines += ["", "## Direct logit attribution (source − target)", "",
                  f"The logit difference changes by {total['mean']:+.3f} [{total['low']:+.3f}, {total['high']:+.3f}] from "
                  f"the target run to the source run (mean over {summary['n_prompts']} prompts, 95 % t interval). With the "
                  f"final norm's scale frozen at each run's value, the direct shares of the components, heads and "
                  f"steering delta sum to {parts['mean']:+.3f}; the remainder (what the linear readout misses) is "
                  f"{rest['mean']:+.2g}. A share's *direct* part is the change of the component's own write; the rest "
                  "comes from the final norm rescaling everything. Largest shares (picked on these prompts: a "
                  "description, not a held-out finding):", "",
                  "| component | share | 95 % interval | direct part |", "| --- | --- | --- | --- |"]
        lines += [f"| {row['component']} | {row['mean']:+.3f} | [{_num(row['low'], '+.3f')}, {_num(row['high'], '+.3f')}] "
                  f"| {row['direct']:+.3f} |" for row in dla.top(10)]
        if dla.heads_note:
            lines += ["", f"Heads: {dla.heads_note}."]
        if figures:
            lines += ["", "![DLA per layer](dla/dla_components.png)"]
    if "attention" in result.followups:
        attention = result.followups["attention"]
        lines += ["", "## Attention of the heads with the largest patching effect", "",
                  "Source vs target attention of the final query (the position that predicts the first answer token): "
                  "total variation distance (0: same positions read, 1: disjoint), mean over prompts with 95 % t "
                  "interval, and the key positions whose attention moved most on average.", "",
                  "| head | total variation | moved most (position from end: source − target) |", "| --- | --- | --- |"]
        for row in attention.summary():
            tvd = row["tvd"]
            moved = ", ".join(f"{m['position_from_end']}: {m['mean_delta']:+.3f}" for m in row["moved_most"][:3])
            lines.append(f"| {row['layer']}.{row['head']} | {tvd['mean']:.3f} [{_num(tvd['low'])}, {_num(tvd['high'])}] "
                         f"| {moved} |")
        if figures:
            lines += [""] + [f"![head {layer}.{head}](attention/attention_L{layer}H{head}.png)"
                             for layer, head in attention.heads]
    return lines


def _num(value: Any, spec: str = ".3f") -> str:
    return "—" if value is None or not np.isfinite(value) else format(value, spec)


def render_report(result: PatchingResult, *, figures: bool = True) -> str:
    """The run as Markdown: the two runs' metrics, the findings (components chosen on one half of the
    prompts, reported on the other), the sanity checks (identities and geometric predictions, kept
    apart from the findings), attribution against exact patching, and the figures."""
    cfg = result.config
    lines = [f"# Dominance patching on {result.model['name']}", "",
             f"Source: pure persona {cfg.source} at λ = {cfg.lam:g}; target: the mix α = {cfg.alpha:g} (share of A) at "
             f"the same λ; steering layer {result.layer}, after the prompt; {len(result.prompts)} prompts. Effect = "
             "(m_patched − m_target) / (m_source − m_target) at the final position (1: the component alone carries "
             "the source's effect), ratio of means over prompts with 95 % Fieller intervals (*unbounded* where the "
             "source and target runs do not differ significantly on those prompts: the ratio then has no finite "
             "interval).", "",
             "| metric | source | target |", "| --- | --- | --- |"]
    for m in METRICS:
        lines.append(f"| {m} | {np.mean(result.runs['source'][m]):+.3f} | {np.mean(result.runs['target'][m]):+.3f} |")
    lines += ["", *_findings_section(result), "", *_sanity_section(result), ""]
    for name, label in (("direction_a", "v_A"), ("direction_b", "v_B"), ("direction_contrast", "v_A − v_B")):
        if name in result.effects:
            e = result.effects[name]["logit_diff"]
            lines.append(f"At the last layer (a cell fixed in advance, all prompts), the part along {label} "
                         f"carries {_effect(e, -1)}.")
    corr = result.attribution.get("correlation_with_exact", {})
    if corr:
        lines += ["", "Attribution patching against exact patching (Pearson r over cells that move, all prompts): " +
                  ", ".join(f"{c} {v['pearson_r']:.2f} ({v['cells']} cells)" for c, v in corr.items()) + "."]
    if figures:
        lines += ["", "## Maps (all prompts; descriptive: a cell picked from them by size is not a finding)", "",
                  "![layer × component](layer_component.png)", "", "![layer × position](layer_position.png)", "",
                  "![layer × head](layer_head.png)", "", "![attribution vs exact](attribution.png)"]
    lines += _followups_section(result, figures=figures)
    lines += ["", f"Run time: {run_time_text(result.timings)}. Full numbers: `patching.json`."]
    return "\n".join(lines) + "\n"


def _findings_section(result: PatchingResult) -> list[str]:
    f = result.findings
    halves = f["halves"]
    lines = ["## Findings: components chosen on one half of the prompts, reported on the other", "",
             f"The {len(result.prompts)} prompts were split at random (seed {f['seed']}) into halves of "
             f"{len(halves[0])} and {len(halves[1])} (`findings.halves` in `patching.json`). Each half in turn chose "
             f"the {f['k']} components (attention and MLP outputs per layer, heads) that moved the {f['metric']} most; "
             "their effects below are measured on the *other* half, which took no part in the choice. The effect on "
             "the choosing half is shown only to compare: it is biased away from 0 by the choice. *Holds up*: the "
             f"interval at the family-wise level {f['family_level']:.4f} (Bonferroni over the {f['k']}) excludes 0 "
             "with the sign seen on the choosing half (rule `patching.holds_up`, its card: "
             "`interp-steer rules patching.holds_up`)."]
    for fold in f["folds"]:
        lines += ["", f"Chosen on half {fold['choose_on'] + 1}, reported on half {fold['report_on'] + 1} "
                  f"({len(halves[fold['report_on']])} prompts):", "",
                  "| rank | component | layer / head | held-out effect | 95 % interval | on the choosing half | holds up |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in fold["components"]:
            lines.append(f"| {row['rank']} | {row['component']} | {', '.join(map(str, row['index']))} | "
                         f"{row['effect']:+.2f} | {_interval(row['low'], row['high'])} | {row['selection_effect']:+.2f} | "
                         f"{'yes' if row['holds_up'] else 'no'} |")
        if not fold["components"]:
            lines.append("| – | no component moved the metric on the choosing half | | | | | |")
    both = ", ".join(f"{_component_name(c['component'], c['index'])} ({c['effects'][0]:+.2f}, {c['effects'][1]:+.2f})"
                     + (" ✓" if all(c["holds_up"]) else "") for c in f["chosen_by_both"])
    lines += ["", f"Chosen by both halves (held-out effect in each fold; ✓ holds up in both): {both or 'none'}."]
    return lines


def _sanity_section(result: PatchingResult) -> list[str]:
    lines = ["## Sanity checks (fixed by construction or by geometry; not findings)", "",
             "These effects follow from how the runs are built, whatever the model computes: they test the "
             "patching machinery, and say nothing about which components carry the persona. Measured on all "
             "prompts; *holds* means for all three metrics."]
    if not result.sanity_checks:
        return lines + ["", "None: the residual stream was not patched (components without `resid`)."]
    lines += ["", "| check | layers | expected | measured (logit diff, worst layer) | holds | why |",
              "| --- | --- | --- | --- | --- | --- |"]
    for check in result.sanity_checks:
        m = check["measured"]["logit_diff"]
        span = (f"{check['layers'][0]}–{check['layers'][-1]}" if len(check["layers"]) > 1 else str(check["layers"][0]))
        if check["kind"] == "prediction":
            expected = f"{check['expected']:.3f} predicted from cos(v_A, v_B) = {check['cosine_ab']:.3f}"
        else:
            expected = f"{check['expected']:.2f} ± {check['tolerance']:g}"
        measured = f"{m['effect']:.4f} {_interval(m['low'], m['high'], digits=4)} at layer {m['layer']}"
        failing = [metric for metric, v in check["measured"].items() if not v["holds"]]
        holds = "yes" if check["holds"] else f"no ({', '.join(failing)})"
        lines.append(f"| {check['name']} | {span} | {expected} | {measured} | {holds} | {check['why']} |")
    return lines


def _interval(low: float | None, high: float | None, *, digits: int = 2) -> str:
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return "unbounded"
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]"


def _component_name(component: str, index: list[int]) -> str:
    return f"head L{index[0]}H{index[1]}" if component == "heads" else f"{component} L{index[0]}"


def _effect(e: dict, at: int) -> str:
    return f"{e['effect'][at]:+.2f} {_interval(e['low'][at], e['high'][at])}"


def render_html(result: PatchingResult) -> str:
    """The notebook display of a result (``_repr_html_``): held-out components and layer × component effects."""
    from interp_steer.display import block, esc, fields_line, figure, interval, table

    findings = result.findings
    rows = []
    for fold, entry in enumerate(findings.get("folds", [])):
        for c in entry["components"]:
            name = c["component"] + "".join(f"[{i}]" for i in c["index"])
            rows.append((str(fold), str(c["rank"]), esc(name), interval(c["effect"], c["low"], c["high"]),
                         "yes" if c["holds_up"] else "no"))

    def draw(fig) -> None:
        ax = fig.subplots()
        names = [n for n in ("resid_layer", "attn_layer", "mlp_layer") if n in result.effects]
        matrix = np.array([result.effects[n]["logit_diff"]["effect"] for n in names], dtype=float)
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        fig.colorbar(image, ax=ax, label="normalised effect")
        ax.set_yticks(range(len(names)), [n.removesuffix("_layer") for n in names])
        ax.set_xlabel("layer")

    return block(f"PatchingResult: {result.model.get('name', '?')}, steering layer {result.layer}",
                 fields_line([("prompts", len(result.prompts)), ("metric", findings.get("metric", "?"))]),
                 table(["fold", "rank", "component", "held-out effect [95 %]", "holds up"], rows),
                 figure(draw, size=(4.8, 2.2)))


__all__ = ["plot_attribution", "plot_layer_component", "plot_layer_head", "plot_layer_position", "render_html", "render_report",
           "write_outputs"]
