"""``report.md`` (and the files beside it) for a collision study; ``CollisionResult.save`` calls
:func:`write_outputs`. The report reads a result; the study never needs it. The figures are drawn in
:mod:`interp_steer.studies.collision.figures` (their plot functions are importable from here too).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_steer._io import write_json, write_text_atomically
from interp_steer.plotting import save_figure
from interp_steer.studies.collision.figures import (
    FIGURES,
    cell_means,
    plot_decomposition,
    plot_dominance,
    plot_geometry,
    plot_heatmaps,
    plot_imported,
    plot_layer_profiles,
    write_figures,
)
from interp_steer.units import run_time_text

if TYPE_CHECKING:
    from interp_steer.studies.collision.result import CollisionResult


def write_outputs(result: CollisionResult, out: Path, *, figures: bool = True) -> dict[str, Path]:
    """``collision.json``, ``persona_a.safetensors``/``persona_b.safetensors`` (and, with fields,
    ``persona_a_field.safetensors``/``persona_b_field.safetensors``), the figures, ``report.md``."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["json"] = write_json(out / "collision.json", result.to_dict())
    written["vector_a"] = result.vector_a.save(out / "persona_a.safetensors")
    written["vector_b"] = result.vector_b.save(out / "persona_b.safetensors")
    if result.config.save_generations and result.generations is not None:
        from interp_steer.data import save_generations

        written["generations"] = save_generations(out / "generations.jsonl", result.generations)
    if result.field_a is not None and result.field_b is not None:
        written["field_a"] = result.field_a.save(out / "persona_a_field.safetensors")
        written["field_b"] = result.field_b.save(out / "persona_b_field.safetensors")
    if figures:
        written.update(write_figures(result, out))
    written["report"] = out / "report.md"
    write_text_atomically(written["report"], render_report(result, figures=figures))
    return written


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _iv(metric: dict[str, Any], digits: int = 2) -> str:
    return f"{_num(metric['mean'], digits)} [{_num(metric['low'], digits)}, {_num(metric['high'], digits)}]"


def render_report(result: CollisionResult, *, figures: bool = True) -> str:
    """The study as Markdown: setup, the three findings with verdicts, the tables behind them."""
    cfg, g = result.config, result.geometry
    li = g["layers"].index(result.layer)
    lines = [
        f"# Creative Collision on {result.model['name']}",
        "",
        f"Persona A ({result.data['persona_a']['source']}, {result.data['persona_a']['n_used']} passages) and persona B "
        f"({result.data['persona_b']['source']}, {result.data['persona_b']['n_used']}) against the baseline "
        f"({result.data['baseline']['source']}, {result.data['baseline']['n_used']}); "
        f"{len(result.prompts)} prompts, {'greedy decoding' if not cfg.samples else f'{cfg.samples} samples per prompt (T={cfg.temperature:g}, top-p {cfg.top_p:g})'}, "
        f"{cfg.max_new_tokens} new tokens, seed {cfg.seed}, profile `{cfg.profile}`.",
        "",
        f"Steering layer **{result.layer}** ({'shared layer, `--layer auto`' if cfg.layer == 'auto' else 'chosen by hand'}), "
        f"vectors read at the {cfg.position} token, mixed as v(α, λ) = λ · (α · v̂_A + (1 − α) · v̂_B) with both "
        f"v̂ rescaled to the mean residual norm there ({g['resid_norm'][li]:.1f}); cos(v_A, v_B) = {g['cosine'][li]:.3f} "
        f"at this layer ({min(g['cosine']):.2f}–{max(g['cosine']):.2f} across layers). α ∈ {{{', '.join(f'{a:g}' for a in cfg.alphas)}}}, "
        f"λ ∈ {{{', '.join(f'{x:g}' for x in cfg.lambdas)}}}. {INTERVALS}",
        *_fields_lines(result),
        "",
        "## Findings",
        "",
        "| finding | verdict | rule (its card: `interp-steer rules ID`) | evidence |",
        "| --- | --- | --- | --- |",
    ]
    for finding in result.findings:
        rule = finding.numbers.get("rule")
        card = f"`{rule}` — `interp-steer rules {rule}`" if rule else "—"
        lines.append(f"| {finding.claim} | **{finding.verdict}** | {card} | {finding.summary} |")
    lines += _dominance_section(result)
    lines += ["", "## Cautions", ""]
    lines.append(
        f"- The two persona vectors point mostly the same way (cosine {g['cosine'][li]:.2f} at the steering layer): "
        "both contain the same \"story passage, not neutral text\" component, and only "
        f"|v̂_A − v̂_B| / |v̂_A + v̂_B| = {g['contrast_fraction'][li]:.2f} of them is the contrast between the personas. "
        "Every mix therefore pushes the model towards narrative text; the α axis only moves the smaller contrast part."
    )
    mix_norms = [c["mix_norm"] / c["lambda"] for c in result.cells
                 if math.isclose(c["alpha"], 0.5) and c["mix_norm"] is not None]
    if mix_norms:
        lines.append(
            f"- A half-and-half mix has {mix_norms[0]:.2f}× the norm of a pure end at the same λ (the vectors are not "
            "parallel), so a mix is slightly weaker steering; keep that in mind when reading coherence."
        )
    lines.append(f"- The best λ is picked on these same prompts ({result.coherence['rule']}).")
    if result.coherence["best_lambda_is_degraded"]:
        lines.append("- Every strength in the grid degrades the text; the smallest one was used. Lower `--lambdas`.")
    lines += _coherence_section(result)
    u = result.unsteered["metrics"]
    lines += ["", f"Unsteered: VADER {_iv(u['vader'])}, probe P(A) {_iv(u['probe_valence'])}, perplexity "
              f"{_iv(u['perplexity'], 1)}, repetition {_iv(u['repetition'])}.", ""]
    lines += ["## Cells", "", "| λ | α | VADER | probe P(A) | perplexity | repetition | distinct-2 | style P(A) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in result.cells:
        m = c["metrics"]
        lines.append(f"| {c['lambda']:g} | {c['alpha']:g} | {_iv(m['vader'])} | {_iv(m['probe_valence'])} | "
                     f"{_iv(m['perplexity'], 1)} | {_num(m['repetition']['mean'])} | {_num(m['distinct_2']['mean'])} | "
                     f"{_num(m['style_a']['mean'])} |")
    lines += ["", f"Style classifier: {result.style['kind']}, cross-validated accuracy on the corpora "
              f"{result.style['cv_accuracy']:.2f} ± {result.style['cv_accuracy_std']:.2f}. {_readout_line(result.readout)}", ""]
    d = result.decomposition
    lines += ["## Decomposition", "",
              f"Observed shift at λ = {d['lambda']:g}, measured on {d['measured_on']}; written as "
              "a · v_A + b · v_B + residual at each layer. A's share is mean(a) / mean(a + b) over prompts (a ratio "
              "of means). \"Between ends\" places "
              "a mix's share between the pure ends' shares at the same layer (α at the steering layer; above α "
              "means A's component survives propagation better than B's).", "",
              "| α | share at layer " + str(d["layer"]) + " | share at last layer | between ends at last layer "
              "| residual fraction at last layer |",
              "| --- | --- | --- | --- | --- |"]
    for entry in d["observed"]:
        first, last = entry["layers"][0], entry["layers"][-1]
        lines.append(f"| {entry['alpha']:g} | {_num(first['share_a'])} | {_num(last['share_a'])} | "
                     f"{_num(last['share_between_ends'])} | {_num(last['residual_fraction']['mean'])} |")
    drift = d["observed"][0]["layers"][-1]["share_a"]
    if abs(drift) > 0.1:
        lines += ["", f"Even pure B's shift has an A share of {drift:.2f} at the last layer: later layers tilt every "
                  "shift, so read the \"between ends\" column, not the raw share, for dominance."]
    lines += ["", "## Sample completions", ""]
    lines.append(f"Unsteered: {' / '.join(_quote(t) for t in result.unsteered['samples'])}")
    lines.append("")
    top = cfg.lambdas[-1]
    best = result.coherence["best_lambda"]
    for lam in dict.fromkeys((best, top)):
        for alpha in (0.0, 0.5, 1.0):
            try:
                c = result.cell(lam, alpha)
            except KeyError:
                continue
            lines.append(f"- λ={lam:g}, α={alpha:g}: {' / '.join(_quote(t) for t in c['samples'])}")
    if figures:
        lines += ["", "## Figures", ""]
        for name in FIGURES:
            lines.append(f"![{name}]({name}.png)")
            lines.append("")
    lines += ["", f"Run time: {run_time_text(result.timings)}. Full numbers: `collision.json`."]
    return "\n".join(lines) + "\n"


INTERVALS = ("Intervals (95 %): per-cell means, percentile bootstrap over prompts (perplexity: geometric mean); "
             "dominance d(α) and its area, Fieller intervals (t quantiles) of ratios of per-prompt means on the "
             "named unbounded scale, the area's numerator per prompt also with Hall's skewness correction; paired "
             "differences (pure ends) and decomposition coefficients, t-intervals over prompts; mix vs ends (finding "
             "ii), t-intervals with Hall's skewness correction; the distance between the persona peaks (finding iii), "
             "a 90 % bootstrap over held-out examples, spread for the training folds' own variation as estimated from "
             "the folds; A's decomposition share, Fieller.")


def _fields_lines(result: CollisionResult) -> list[str]:
    """With ``method="field"``: the grid steered with persona fields, not the vectors above."""
    if result.fields is None:
        return []
    f = result.fields
    fits = "; ".join(f"{key} ({f[key]['description']}): held-out accuracy {f[key]['heldout_accuracy']:.2f}, "
                     f"AUROC {f[key]['heldout_auroc']:.2f}" for key in ("A", "B"))
    return ["", f"**Steered with fields, not vectors** (`--method field`): a `{f['form']}` concept scorer per persona "
            f"(persona vs baseline) at layer {f['layer']}, fitted on the same passages; each row adds "
            "λ · ‖h‖ₘ · (α · ĝ_A(h) + (1 − α) · ĝ_B(h)), ĝ the unit gradient of a scorer at the activation h. "
            f"Fits on their own held-out passages: {fits}. The vector geometry and decomposition basis below are "
            "still the persona vectors'."]


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _dominance_section(result: CollisionResult) -> list[str]:
    """Finding (i) as the rule decided it, read from the finding's own numbers (never recomputed)."""
    finding = next(f for f in result.findings if f.key == "dominance")
    nb = finding.numbers
    area, a90, eq = nb["area"], nb["area_90"], nb["equivalence"]
    scale = scale_label(nb["score"], nb["scale"])
    smaller = ("lies inside ±{b:.3f}: the effect is significantly smaller than the paper's" if eq["inside"]
               else "does not lie inside ±{b:.3f}: an effect as large as the paper's is not ruled out")
    dropped = f", {nb['n_dropped']} left out for unscored cells" if nb["n_dropped"] else ""
    names = nb.get("scales_checked", [nb["scale"]])
    checked = (" The verdict on each scale checked: " + "; ".join(
        f"{scale_label(nb['score'], name)}: {nb['scale_verdicts'][name]}" for name in names)
        + "; a verdict counts only when they agree.") if len(names) > 1 else ""
    lines = ["", "## Dominance verdict (finding i)", "",
             f"- **Verdict by the rule: {nb['verdict']}** (rule `{nb['rule']}`, its card: `interp-steer rules "
             f"{nb['rule']}`; VADER at λ = {nb['lambda']:g}, on the {scale}; {nb['n_items']} prompts{dropped}).",
             f"- **Dominance is relative to a scale**: d(α) bends under any monotone re-expression of the scores, so "
             f"the numbers below are on the {scale}.{checked}",
             f"- **Detectable effect:** this run could detect an area of ±{_num(nb['mde'], 3)} on the {scale} "
             f"(80 % power, 5 % two-sided). The paper's effect (d(α) = α^{nb['paper_gamma']:g}) is an area of "
             f"{nb['margin_on_grid']:.3f} on this grid; power against it {_rate(nb['power_at_paper_effect'])}.",
             f"- **Area** between d(α) and the diagonal: {_num(area['estimate'], 3)} [{_num(area['low'], 3)}, "
             f"{_num(area['high'], 3)}] (95 %).",
             f"- **Equivalence (TOST at 5 %):** the area's 90 % interval [{_num(a90['low'], 3)}, {_num(a90['high'], 3)}] "
             + smaller.format(b=eq["bounds"][1]) + ".",
             f"- **Across most of the α range:** d(α) > α at {nb['mixes_above_point']} of {nb['n_mixes']} interior mixes "
             f"(point estimates; a majority is {nb['majority']}), significantly above at {nb['mixes_above']}, "
             f"significantly below at {nb['mixes_below']}; significantly below the paper's curve at "
             f"{nb['mixes_below_paper']}.",
             *_rank_lines(nb),
             *_guard_lines(nb),
             f"- The same rule on the probe readout's log-odds: {nb['readout_rule_verdict']}; per strength on VADER: "
             + ", ".join(f"λ = {lam}: {v}" for lam, v in nb["rule_verdicts_per_lambda"].items()) + ".",
             "", "| α | d(α) [95 %] | paper's d(α) | vs the diagonal |", "| --- | --- | --- | --- |"]
    for mix in nb["mixes"]:
        lines.append(f"| {mix['alpha']:g} | {_num(mix['d'])} [{_num(mix['d_low'])}, {_num(mix['d_high'])}] | "
                     f"{mix['paper_d']:.2f} | {mix['vs_diagonal']} |")
    lines += ["", f"Rule `{nb['rule']}`: {nb.get('rule_text', '')}"]
    return lines


def _rank_lines(nb: dict[str, Any]) -> list[str]:
    """The scale-free rank check "reproduced" also needs, as the rule's numbers record it."""
    rank = nb.get("rank_check")
    if not rank:
        return []
    if not rank["mirror_pairs"]:
        told = "undefined: no inner mix has its mirror 1 − α on the grid, so the rule cannot say reproduced"
    else:
        told = (f"per prompt, P(mix α above pure B) − P(pure A above mix 1 − α) averages {_num(rank['mean'])} "
                f"[{_num(rank['low'])}, {_num(rank['high'])}] (95 %) over {rank['n']} prompts: "
                + ("above 0, A leans on every monotone scale" if rank["passes"]
                   else "not above 0, so no scale-free lean to A is shown"))
    return [f"- **Scale-free rank check** (reproduced needs it, as well as every fixed scale): {told}."]


def _guard_lines(nb: dict[str, Any]) -> list[str]:
    """The dominance rule's degenerate-mix guards, as its numbers record them."""
    guards = nb.get("guards") or {}
    if not guards:
        return []
    parts = [f"{g['what']}: {_num(g['inner_mixes'])} at the inner mixes, {_num(g['ends'])} at the pure ends"
             f"{' (significantly more: the verdict is inconclusive)' if g['fired'] else ''}" for g in guards.values()]
    return ["- **Degenerate mixes** (the paper's own low mid-mix perplexities came from degenerate text): "
            + "; ".join(parts) + "."]


def _coherence_section(result: CollisionResult) -> list[str]:
    """Each pure end against fluent text of its own tone (the persona corpora scored by the unsteered model)."""
    co = result.coherence
    ref = co["reference"]
    window = ref["A"]["window_tokens"]
    lines = ["", "## Coherence by strength", "",
             f"References: fluent text of each tone, scored by the unsteered model in windows of {window} scored tokens "
             "(each passage's first tokens, the completions' length): perplexity (geometric mean over passages) "
             + ", ".join(f"{name} {_num(r['perplexity']['mean'], 1)}" for name, r in
                         (("persona A corpus", ref["A"]), ("persona B corpus", ref["B"]), ("baseline", ref["baseline"])))
             + "; repetition " + ", ".join(f"{_num(r['repetition']['mean'])}" for r in (ref["A"], ref["B"], ref["baseline"]))
             + f" ({ref['A']['n_passages']} passages each). The unsteered model's completions read at "
             f"{_num(co['unsteered_vs_baseline']['perplexity_ratio'])}× the baseline corpus's perplexity (greedy text is "
             "usually far more predictable than written prose, so ratios well below 1 are normal).", "",
             "| λ | degraded | PPL B end / B corpus | PPL A end / A corpus | repetition B / A (corpus B / A) | VADER A − B |",
             "| --- | --- | --- | --- | --- | --- |"]
    for s in co["per_lambda"]:
        b, a = s["ends"]["B"], s["ends"]["A"]
        lines.append(f"| {s['lambda']:g} | {'yes' if s['degraded'] else 'no'} | {_num(b['perplexity_ratio'])} | "
                     f"{_num(a['perplexity_ratio'])} | {_num(b['repetition'])} / {_num(a['repetition'])} "
                     f"({_num(b['reference_repetition'])} / {_num(a['reference_repetition'])}) | "
                     f"{_iv(s['vader_a_minus_b'])} |")
    return lines


def _readout_line(readout: dict[str, Any]) -> str:
    return (f"Probe readout: layer {readout['layer']}; its own {readout['folds']}-fold cross-validated accuracy "
            f"{_num(readout['heldout_accuracy'])} ± {_num(readout['heldout_accuracy_std'])}, measured on "
            f"{readout['measured_on']} (training accuracy {_num(readout['train_accuracy'])}).")


def scale_label(score: str, scale: str) -> str:
    """The scale a dominance curve is computed on, in words (for axes and text)."""
    if scale == "vader_raw":
        return "raw VADER valence scale (s = √15·c/√(1 − c²), the compound's exact inverse)"
    if scale == "artanh":
        return "2·artanh(VADER compound) scale" if score == "vader" else f"2·artanh({score}) scale"
    if scale == "per_word":
        return "VADER valence per sentiment word (the raw sum over the number of words VADER scored)"
    if scale == "logit":
        return f"logit({score}) scale"
    return "probe log-odds scale" if score.endswith("log_odds") else f"{score} scale (as measured)"


def _quote(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return f"“{text[:limit]}{'…' if len(text) > limit else ''}”"


def render_html(result: CollisionResult) -> str:
    """The notebook display of a result (``_repr_html_``): its findings and the VADER α × λ heatmap."""
    from interp_steer.display import block, fields_line, figure, judged_table, verdict_counts

    def draw(fig) -> None:
        ax = fig.subplots()
        matrix = cell_means(result, "vader")
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", origin="lower")
        fig.colorbar(image, ax=ax, label="VADER valence")
        ax.set_xticks(range(len(result.config.alphas)), [f"{a:g}" for a in result.config.alphas], fontsize=7)
        ax.set_yticks(range(len(result.config.lambdas)), [f"{x:g}" for x in result.config.lambdas], fontsize=7)
        ax.set_xlabel("α (0 = pure B, 1 = pure A)")
        ax.set_ylabel("λ")

    return block(f"CollisionResult: {result.model.get('name', '?')}, layer {result.layer}",
                 fields_line([("grid", f"{len(result.config.lambdas)} λ × {len(result.config.alphas)} α"),
                              ("prompts", len(result.prompts)), ("method", result.config.method),
                              ("verdicts", verdict_counts(result.findings))]),
                 judged_table(result.findings), figure(draw, size=(4.8, 3.0)))


__all__ = ["plot_decomposition", "plot_dominance", "plot_geometry", "plot_heatmaps", "plot_imported",
           "plot_layer_profiles", "render_html", "render_report", "write_outputs"]


# ------------------------------------------------------------------------ imported completions (score)


def render_imported_report(result, *, figures: bool = True) -> str:
    """What the imported grid holds, what was left out and why, every axis per cell present, and
    each part of the study that could or could not be computed."""
    data = result.to_dict()
    imported, grid = data["imported"], result.grid
    done = imported["completeness"]
    lines = [f"# Imported completions scored on the collision axes ({result.source})", "",
             f"{result.n_lines} lines: {done['prompts']} prompts × {done['samples']} sample(s) on a grid of the "
             f"unsteered model and {len(grid.lambdas)} strengths × {len(grid.alphas)} mixes, {len(result.cells)} of "
             f"whose steered cells hold completions; {done['missing_completions']} prompt × cell × sample "
             f"combinations of that grid have none. Scored by "
             f"{result.scorer or 'no model (text metrics only)'}; generated by {', '.join(result.generated_by) or 'unknown'}. "
             f"α = 1 in the file is {result.config.alpha_means} (d(α) is reported with α = 1 = persona A); λ is "
             f"{result.config.lambda_units}.", ""]
    if imported.get("empty_completions"):
        lines += [f"{imported['empty_completions']} completions are empty (scored as the study scores them: no "
                  "perplexity, VADER 0).", ""]
    if imported.get("tokens"):
        lines += ["Tokens for the model-based scores: " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                                                    for k, v in imported["tokens"].items()) + ".", ""]
    lines += ["| λ | α | prompts | VADER | probe P(A) | perplexity | repetition | distinct-2 |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = [("unsteered", "–", data["unsteered"].get("n_prompts"), data["unsteered"]["metrics"])]
    rows += [(f"{c['lambda']:g}", f"{c['alpha']:g}", c["n_prompts"], c["metrics"]) for c in result.cells]
    for lam, alpha, n, metrics in rows:
        lines.append(f"| {lam} | {alpha} | {n} | " + " | ".join(
            _iv(metrics[m]) for m in ("vader", "probe_valence", "perplexity", "repetition", "distinct_2")) + " |")
    lines += ["", "## Dominance", ""]
    for key, entries in data["dominance"].items():
        if "missing" in entries:
            lines.append(f"- {key}: not computed — {entries['missing']}.")
            continue
        for entry in entries:
            if "missing" in entry:
                lines.append(f"- {key}, λ = {entry['lambda']:g}: not computed — {entry['missing']}.")
            else:
                lines.append(f"- {key}, λ = {entry['lambda']:g}: area {_iv(entry['area'])}, leans {entry['verdict']} "
                             f"({entry['n_items']} prompts with every α, {entry['n_dropped']} left out).")
    lines += ["", "## Coherence", ""]
    coherence = data["coherence"]
    if "missing" in coherence:
        lines.append(f"Not computed: {coherence['missing']}.")
    else:
        for row in coherence["per_lambda"]:
            lines.append(f"- λ = {row['lambda']:g}: {'degraded' if row['degraded'] else 'usable'}; VADER A end − B end "
                         f"{_iv(row['vader_a_minus_b'])}.")
        lines.append(f"- best usable strength: λ = {coherence['best_lambda']:g}.")
    lines += ["", "## Findings", ""]
    for finding in data["findings"]:
        if "missing" in finding:
            lines.append(f"- **{finding['key']}**: not judged — {finding['missing']}.")
        else:
            rule = finding["numbers"].get("rule")
            card = f" (rule `{rule}`, its card: `interp-steer rules {rule}`)" if rule else ""
            lines.append(f"- **{finding['key']}**: {finding['verdict'].upper()}{card} — {finding['summary']}")
    if imported["excluded"]:
        from collections import Counter

        counts = Counter((e["metric"], e["reason"]) for e in imported["excluded"])
        lines += ["", "## Left out of an axis", "", "Each completion below still counts on its other axes; "
                  "`collision.json` lists every line."]
        lines += [f"- {metric}: {n} completion(s), {reason}" for (metric, reason), n in counts.items()]
    if figures:
        lines += ["", "![cells](imported.png)"]
    lines += ["", "Full numbers: `collision.json` (its `imported` block says what the file held)."]
    return "\n".join(lines) + "\n"


def write_imported_outputs(result, out: Path, *, figures: bool = True) -> dict[str, Path]:
    """``collision.json``, ``imported.png`` and ``report.md`` of an imported grid."""
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": write_json(out / "collision.json", result.to_dict())}
    if figures:
        written["figure"] = save_figure(plot_imported(result), out / "imported.png")
    written["report"] = write_text_atomically(out / "report.md", render_imported_report(result, figures=figures))
    return written
