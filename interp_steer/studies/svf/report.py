"""Figures and ``report.md`` for an SVF comparison; ``SvfResult.save`` calls :func:`write_outputs`.
The report reads a result; the study never needs it.

The plot functions take arrays and an optional ``ax`` and return the ``Axes`` (the style of
:mod:`interp_steer.plotting`); only :func:`write_outputs` touches files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from interp_steer._io import write_json, write_text_atomically
from interp_steer.plotting import Numbers, save_figure
from interp_steer.studies._common import fmt_interval as _iv
from interp_steer.studies._common import fmt_num as _num
from interp_steer.studies._common import fmt_rate as _rate
from interp_steer.studies._common import quote as _quote
from interp_steer.units import run_time_text

if TYPE_CHECKING:
    from interp_steer.studies.svf.result import SvfResult

COLOURS = {"vector": "tab:blue", "field": "tab:orange"}
Band = tuple[Numbers, Numbers, Numbers]
"""``(mean, low, high)`` per x value."""


# ------------------------------------------------------------------------------------- figures


def plot_curves(
    x: Numbers,
    curves: Mapping[str, Band],
    *,
    ylabel: str = "",
    xlabel: str = "steering coefficient (× mean residual norm)",
    title: str | None = None,
    reference: float | int | None = 0.0,
    lines: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """One line per label with its interval as error bars (slightly offset so they do not overlap),
    e.g. effect or backfire rate against the coefficient, field vs vector; ``lines=False`` draws the
    points and bars only (for values that do not exist between the x values)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
    x = np.asarray(x, dtype=float)
    width = (np.ptp(x) if x.size > 1 else 1.0) * 0.01
    for k, (label, (mean, low, high)) in enumerate(curves.items()):
        mean, low, high = (np.asarray(v, dtype=float) for v in (mean, low, high))
        if mean.shape != x.shape:
            raise ValueError(f"{label}: {mean.shape[0]} values for {x.size} x values")
        shifted = x + (k - (len(curves) - 1) / 2) * width
        # Clipped at 0: a degenerate interval (e.g. every prompt's effect exactly 0 at c = 0) can sit a
        # rounding error beyond its mean, and matplotlib refuses negative bar lengths.
        error = np.clip(np.vstack([np.where(np.isfinite(low), mean - low, 0),
                                   np.where(np.isfinite(high), high - mean, 0)]), 0, None)
        ax.errorbar(shifted, mean, yerr=error, marker="o", markersize=4, capsize=3, label=label,
                    color=COLOURS.get(label), linestyle="-" if lines else "none")
    if x.size <= 9:
        ax.set_xticks(x, [f"{v:g}" for v in x])
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def plot_context_dependence(layers: Numbers, field: Numbers, *, ax: Axes | None = None,
                            title: str | None = None) -> Axes:
    """The field's context dependence per layer (bars) against the vector's 1.0 (a line)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    positions = np.arange(len(layers))
    values = np.asarray(field, dtype=float)
    bars = ax.bar(positions, values, color=COLOURS["field"], label="field (measured)")
    ax.bar_label(bars, [f"{v:.2f}" for v in values], padding=2, fontsize=8)
    ax.axhline(1.0, color=COLOURS["vector"], linewidth=2, label="vector (1 by construction)")
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_xticks(positions, [str(layer) for layer in layers])
    ax.set_ylim(min(-0.05, float(np.nanmin(values)) - 0.05) if values.size else -0.05, 1.35)
    ax.set_xlabel("layer")
    ax.set_ylabel("mean pairwise cosine of directions")
    ax.set_title(title or "context dependence (1 = one fixed direction)", fontsize=9)
    ax.legend(frameon=False, fontsize=8, loc="upper left", ncol=2)
    ax.grid(alpha=0.3, axis="y")
    return ax


def _band(intervals: Sequence[Mapping[str, Any]]) -> Band:
    def get(key: str) -> list[float]:
        return [float("nan") if iv.get(key) is None else float(iv[key]) for iv in intervals]

    return get("mean"), get("low"), get("high")


def _zero() -> dict[str, float]:
    return {"mean": 0.0, "low": 0.0, "high": 0.0}


def series(result: SvfResult, key: str, method: str, *, with_zero: Mapping[str, float] | None = None) -> tuple[list[float], Band]:
    """The coefficients and one cell statistic (``"shift"``, ``"backfire"``, ...) of one method,
    with ``with_zero`` as the value at coefficient 0 (the unsteered reference) when given."""
    xs, ivs = [], []
    for c in result.config.coefficients:
        if c == 0.0:
            if with_zero is not None:
                xs.append(0.0)
                ivs.append(with_zero)
            continue
        cell = result.cell(method, c)
        if key in cell:
            xs.append(c)
            ivs.append(cell[key])
    return xs, _band(ivs)


def figure_effect(result: SvfResult):
    """Shift of the score vs coefficient (and, for completions, the perplexity ratio), field vs vector."""
    has_ppl = "perplexity_ratio" in result.cells[0]
    fig, axes = plt.subplots(1, 2 if has_ppl else 1, figsize=(11 if has_ppl else 5.5, 3.8), squeeze=False)
    measure = result.concept["measure"]
    curves = {}
    for method in ("vector", "field"):
        xs, band = series(result, "shift", method, with_zero=_zero())
        curves[method] = band
    plot_curves(xs, curves, ylabel=f"{measure}: steered − unsteered (mean, 95 % t)", ax=axes[0, 0],
                title=f"effect on {len(result.inputs)} held-out inputs (positive c should "
                      f"{'raise' if result.concept['direction'] > 0 else 'lower'} {measure})")
    if has_ppl:
        curves = {}
        for method in ("vector", "field"):
            xs, band = series(result, "perplexity_ratio", method, with_zero={"mean": 1.0, "low": 1.0, "high": 1.0})
            curves[method] = band
        plot_curves(xs, curves, ylabel="perplexity ratio, steered / unsteered", reference=1.0,
                    ax=axes[0, 1], title="perplexity harm (under the unsteered model)")
    return fig


def figure_backfire(result: SvfResult) -> Axes:
    curves = {}
    for method in ("vector", "field"):
        xs, band = series(result, "backfire", method)
        curves[method] = band
    floor = result.noise_floor["value"]
    ax = plot_curves(xs, curves, ylabel="backfire rate (Wilson 95 %)", reference=None, lines=False,
                     title=f"inputs moved against the intended direction beyond the floor {floor:.3f}\n"
                           "(a steering that changes nothing: 0 %)")
    ax.set_ylim(-0.02, 1.02)
    ax.axhline(0.05, color="grey", linestyle=":", linewidth=0.8, label="5 %: a random direction of the same length")
    ax.legend(frameon=False, fontsize=8)
    return ax


def figure_context(result: SvfResult) -> Axes:
    cd = result.context_dependence
    return plot_context_dependence(cd["layers"], cd["field"],
                                   title=f"context dependence over {cd['n_inputs']} held-out inputs")


def figure_long_form(result: SvfResult) -> Axes:
    lf = result.long_form
    curves = {m: _band(lf[m]["effect"]) for m in ("vector", "field")}
    ax = plot_curves([1, 2, 3], curves, xlabel="third of the completion", ylabel="effect (intended direction, 95 % t)",
                     title=f"long-form: {lf['tokens']} tokens at c = {lf['coefficient']:g}")
    ax.set_xticks([1, 2, 3], ["first", "middle", "last"])
    return ax


def figure_multi_attribute(result: SvfResult):
    ma = result.multi_attribute
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, k in zip(axes, ("A", "B"), strict=True):
        labels, means, lows, highs, colours = [], [], [], [], []
        for m in ("vector", "field"):
            for part in ("alone", "together"):
                iv = ma["methods"][m][k][part]
                labels.append(f"{m}\n{part}")
                means.append(np.nan if iv["mean"] is None else iv["mean"])
                lows.append(np.nan if iv["low"] is None else iv["low"])
                highs.append(np.nan if iv["high"] is None else iv["high"])
                colours.append(COLOURS[m])
        means, lows, highs = (np.asarray(v, dtype=float) for v in (means, lows, highs))
        error = np.vstack([np.nan_to_num(means - lows), np.nan_to_num(highs - means)])
        ax.bar(range(4), means, yerr=error, color=colours, alpha=0.85, capsize=3)
        ax.set_xticks(range(4), labels, fontsize=8)
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_ylabel("readout log-odds: steered − unsteered")
        info = ma["attributes"][k]
        ax.set_title(f"attribute {k}: {info['label']} vs {info['baseline']}", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    return fig


FIGURES = ("effect", "backfire", "context_dependence", "long_form", "multi_attribute")


def write_outputs(result: SvfResult, out: Path, *, figures: bool = True) -> dict[str, Path]:
    """``svf.json``, ``field.safetensors``, ``vector.safetensors``, the figures and ``report.md``."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["json"] = write_json(out / "svf.json", result.to_dict())
    written["field"] = result.field.save(out / "field.safetensors")
    written["vector"] = result.vector.save(out / "vector.safetensors")
    if figures:
        makers = {"effect": figure_effect, "backfire": figure_backfire, "context_dependence": figure_context}
        if result.long_form.get("status") == "measured":
            makers["long_form"] = figure_long_form
        if result.multi_attribute.get("status") == "measured":
            makers["multi_attribute"] = figure_multi_attribute
        for name, make in makers.items():
            written[name] = save_figure(make(result), out / f"{name}.png")
    written["report"] = out / "report.md"
    write_text_atomically(written["report"], render_report(result, figures=[k for k in FIGURES if k in written]))
    return written


# -------------------------------------------------------------------------------------- report


def _data_line(result: SvfResult) -> str:
    d = result.data
    if result.mode == "ab":
        q = d["questions"]
        return (f"A/B questions ({q['source']}): {q['n_train']} train the vector and the field (read at the answer "
                f"letter), {q['n_heldout']} held out ({q['split']}).")
    if result.mode == "pairs":
        return f"Contrast pairs ({d['pairs']['source']}, {d['pairs']['n_used']} pairs), read at `{result.layers['position']}`."
    return (f"Positive texts {d['positive']['source']} ({d['positive']['n_used']}) against negative texts "
            f"{d['negative']['source']} ({d['negative']['n_used']}), read at `{result.layers['position']}`; held-out "
            f"prompts {d['prompts']['source']} ({d['prompts']['n_used']}), which took no part in training.")


def render_report(result: SvfResult, *, figures: Sequence[str] = ()) -> str:
    """The comparison as Markdown: setup, one verdict per claim, the tables behind them, caveats."""
    cfg, lay, concept = result.config, result.layers, result.concept
    measure = concept["measure"]
    lines = [
        f"# Steering Vector Fields vs a steering vector on {result.model['name']}",
        "",
        _data_line(result),
        "",
        f"Both steer layers **{', '.join(str(x) for x in lay['chosen'])}** at once ({lay['rule']}), from each "
        f"prompt's last token on, greedy decoding, {cfg.max_new_tokens} new tokens. Vector: mean difference, rescaled "
        f"at each layer to the training rows' mean residual norm. Field: `{cfg.form}` scorer, steps c · ‖h‖ₘ along "
        f"its unit gradient at every activation, so at equal c both move an activation by the same length. "
        f"Coefficients {', '.join(f'{c:g}' for c in cfg.coefficients)}; the claims are judged at the pre-registered "
        f"primary coefficient **c = {cfg.primary_coefficient:g}** (one cell, no multiplicity); every cell is reported. "
        f"Score: {measure}, direction {concept['direction']:+d} ({concept['direction_source']}). Seed {cfg.seed}, "
        f"profile `{cfg.profile}`.",
        "",
        "## Claims",
        "",
        "| claim | verdict | rule (its card: claim, simulated error rates, power) | evidence |",
        "| --- | --- | --- | --- |",
    ]
    for claim in result.claims:
        rule = claim.numbers.get("rule", "")
        lines.append(f"| {claim.claim} | **{claim.verdict}** | `{rule}` — `interp-steer rules {rule}` | "
                     f"{claim.summary.replace('|', '/')} |")
    lines += ["", "Minimum detectable effects (80 % power, 5 % two-sided) and sample sizes: " + "; ".join(
        f"{c.key}: {_num(c.numbers.get('mde'))} (n = {c.numbers.get('difference', {}).get('n', 0)})" for c in result.claims)
        + ".", "", "The rules:", ""]
    lines += [f"- `{c.numbers.get('rule')}`: {c.numbers.get('rule_text', '')}." for c in result.claims]
    lines += [""]
    lines += _fits_section(result)
    lines += _cells_section(result)
    lines += _context_section(result)
    lines += _long_form_section(result)
    lines += _multi_section(result)
    lines += _caveats(result)
    lines += _samples(result)
    if figures:
        lines += ["", "## Figures", ""]
        for name in figures:
            lines += [f"![{name}]({name}.png)", ""]
    lines += ["", f"Run time: {run_time_text(result.timings)}. Full numbers: `svf.json`."]
    return "\n".join(lines) + "\n"


def _fits_section(result: SvfResult) -> list[str]:
    lay = result.layers
    lines = ["## Training fits", "",
             "The field's scorer per candidate layer, on its held-out split of the training rows (these rows chose the "
             "stopping epoch, and the chosen layers were picked by this loss, so the chosen layers' numbers are slightly "
             "optimistic).", "",
             "| layer | chosen | held-out accuracy | held-out AUROC | held-out loss | train accuracy | residual norm |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for layer, fit in lay["fits"].items():
        chosen = int(layer) in lay["chosen"]
        norm = lay["resid_norm"].get(layer)
        lines.append(f"| {layer} | {'**yes**' if chosen else ''} | {_num(fit['heldout_accuracy'])} | "
                     f"{_num(fit['heldout_auroc'])} | {_num(fit['heldout_loss'])} | {_num(fit['train_accuracy'])} | "
                     f"{_num(norm, 1) if norm is not None else ''} |")
    if lay["weak_chosen_layers"]:
        lines += ["", f"**Weak layers chosen** (held-out accuracy below 0.6): {lay['weak_chosen_layers']}: the field points "
                  "at noise there."]
    return lines + [""]


def _cells_section(result: SvfResult) -> list[str]:
    measure = result.concept["measure"]
    ab = result.mode == "ab"
    floor = result.noise_floor
    u = result.unsteered
    lines = ["## Every coefficient", "",
             f"Unsteered: {measure} {_iv(u['score'])}"
             + (f", perplexity {_iv(u['perplexity'], 1, False)}" if "perplexity" in u else "") + ". "
             f"Noise floor for backfires: {_num(floor['value'])} at |c| = {floor['coefficient']:g}"
             + ("" if len(floor["by_coefficient"]) < 2 else " (" + ", ".join(
                 f"{_num(v)} at |c| = {k}" for k, v in floor["by_coefficient"].items()) + ")")
             + f" ({floor['source']}).", "",
             f"| c | method | {measure} | shift | effect (intended direction) | backfire rate | moved against at all |"
             + ("" if ab else " perplexity ratio |"),
             "| --- | --- | --- | --- | --- | --- | --- |" + ("" if ab else " --- |")]
    for cell in result.cells:
        row = (f"| {cell['coefficient']:g} | {cell['method']} | {_iv(cell['score'])} | {_iv(cell['shift'])} | "
               f"{_iv(cell['effect'])} | {_rate(cell['backfire'])} | {_rate(cell['against_any'])} |")
        if not ab:
            row += f" {_iv(cell.get('perplexity_ratio'), 2, False)} |"
        lines.append(row)
    lines += ["", "\"Moved against at all\" counts any move against the intended direction, with no floor: descriptive "
              "only, since with greedy decoding any change of text moves the score, so a perturbation with no concept "
              "in it reaches up to about half the inputs there (a steering that changes nothing: none). Each cell's "
              "backfire rate uses the floor of its coefficient's size."]
    if result.anti_steerable:
        a = result.anti_steerable
        lines += ["", f"Anti-steerable questions ({a['definition']}): vector {_rate(a['vector'])}, field "
                  f"{_rate(a['field'])}."]
    return lines + [""]


def _context_section(result: SvfResult) -> list[str]:
    cd = result.context_dependence
    lines = ["## Context dependence", "",
             f"Measured on {cd['measured_on']} ({cd['n_inputs']} inputs). {cd['definition']}. The vector's is "
             f"{cd['vector_note']}. Diagnostics: the same measure on the training rows the scorer was fitted on, and "
             "the steered activations' mean norm in units of the training rows' (the step unit).", "",
             "| layer | field | vector | mean cos(field direction, vector) | field on training rows | activation norm / "
             "training norm | activations |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for i, layer in enumerate(cd["layers"]):
        lines.append(f"| {layer} | {_num(cd['field'][i])} | 1 (by construction) | {_num(cd['cosine_field_to_vector'][i])} | "
                     f"{_num(cd['field_on_training_rows'][i])} | {_num(cd['activation_norm_ratio'][i], 2)} | "
                     f"{cd['n_rows'][str(layer)]} |")
    if min(cd["field"]) > 0.9:
        lines += ["", "The field's directions barely change with the context here (above 0.9 at every layer): on these "
                  "inputs it acts almost as one fixed direction, a steering vector in disguise, so large differences "
                  "from the vector are not expected."]
        if min(cd["field_on_training_rows"]) > 0.9:
            epochs = sorted({result.layers["fits"][str(layer)]["best_epoch"] for layer in cd["layers"]})
            lines[-1] += (" It is as constant on its own training rows, so this is what the scorer learned (an almost "
                          f"linear function; early stopping kept epoch(s) {', '.join(map(str, epochs))}), not an "
                          "artefact of reading it on other activations.")
    return lines + [""]


def _long_form_section(result: SvfResult) -> list[str]:
    lf = result.long_form
    if lf.get("status") != "measured":
        return ["## Long-form", "", f"Not measured: {lf.get('reason')}.", ""]
    lines = ["## Long-form", "", f"{lf['tokens']} new tokens at c = {lf['coefficient']:g}; {lf['definition']}.", "",
             "| method | first third | middle third | last third | decay (last − first) | retention (last / first) | words |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in ("vector", "field"):
        e = lf[m]["effect"]
        retention = _iv(lf[m]["retention"], 2, False) if "retention" in lf[m] else ""
        lines.append(f"| {m} | {_iv(e[0])} | {_iv(e[1])} | {_iv(e[2])} | {_iv(lf[m]['decay'])} | {retention} | "
                     f"{lf['n_words'][m]:.0f} |")
    return lines + ["", f"Unsteered words per completion: {lf['n_words']['unsteered']:.0f}.", ""]


def _multi_section(result: SvfResult) -> list[str]:
    ma = result.multi_attribute
    if ma.get("status") != "measured":
        return ["## Multi-attribute", "", f"Not measured: {ma.get('reason')}.", ""]
    lines = ["## Multi-attribute", "", f"{ma['definition']}; c = {ma['coefficient']:g}, readouts at layer "
             f"{ma['readout_layer']}.", ""]
    for k, info in ma["attributes"].items():
        r = info["readout"]
        lines.append(f"- Attribute {k}: {info['label']} vs {info['baseline']} ({info['n_passages']} passages); readout's own "
                     f"{r['folds']}-fold accuracy {_num(r['heldout_accuracy'], 2)} ± {_num(r['heldout_accuracy_std'], 2)} "
                     f"({r['measured_on']}).")
    lines += ["", "| method | attribute | alone | together | retention (Fieller) | off-target (other alone) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for m in ("vector", "field"):
        for k in ("A", "B"):
            e = ma["methods"][m][k]
            lines.append(f"| {m} | {k} | {_iv(e['alone'], 2)} | {_iv(e['together'], 2)} | "
                         f"{_iv(e['retention'], 2, False)} | {_iv(e['off_target'], 2)} |")
    return lines + [""]


def _caveats(result: SvfResult) -> list[str]:
    cfg = result.config
    lines = ["## Caveats", "",
             "- The paper's setting differs: Llama-2-7B-Chat and Qwen3-14B on Model-Written-Evals behaviours (reported; "
             "its authors released no code). This field follows the public re-implementations "
             f"(`{cfg.form}`: " + ("an MLP per layer, d → 256 → 64 → 1" if cfg.form == "per_layer" else
                                   "a shared concept space with a per-layer scale and shift" if cfg.form == "shared"
                                   else "logistic regression per layer, a control whose field is a vector")
             + "). The paper gives no backfire numbers; the per-input anti-steerable fraction of Tan et al. "
             "(arXiv 2407.12404) is the comparable measure, and the backfire rate here is its open-ended analogue.",
             "- The scorer is trained on one row per training text "
             + (f"(read at `{result.layers['position']}`)" if result.mode != "ab" else "(the answer letter)")
             + " and applied to every steered token's activation: its gradient there is an extrapolation, which is "
             "exactly what context dependence measures but also a reason a field can point off the data manifold.",
             "- Layers were chosen on the training data (the field's held-out split); the held-out inputs took no part.",
             f"- One greedy completion per prompt and cell; intervals are over {len(result.inputs)} held-out inputs. "
             "Coefficients are in units of the training rows' mean residual norm"
             + (" (mean-pooled rows: smaller than a single token's norm)." if result.layers["position"] == "mean" else "."),
             ]
    if result.concept["measure"] == "vader":
        lines.append("- VADER reads words, not the model's state: degenerate, repetitive text scores near 0 and can look "
                     "like a move towards neutral. Read the perplexity ratios and the samples beside the effects.")
    if result.layers["weak_chosen_layers"]:
        lines.append("- Some chosen layers are weak (held-out accuracy < 0.6): their field direction is close to noise.")
    floor = result.noise_floor
    if result.mode != "ab" and result.concept["measure"] == "vader" and floor["value"] > 0.5:
        lines.append(f"- The backfire noise floor is large ({floor['value']:.2f} on VADER's [-1, 1] scale): a random "
                     "direction of the same length moves the score that much on 5 % of prompts (any change of greedy "
                     "text moves VADER), so only large reversals count as backfires and low rates for both methods are "
                     "expected.")
    ma = result.multi_attribute
    if ma.get("status") == "measured":
        shares = [ma["methods"][m][k]["off_target"]["mean"] / ma["methods"][m][k]["alone"]["mean"]
                  for m in ("vector", "field") for k in ("A", "B")
                  if ma["methods"][m][k]["alone"]["mean"] and ma["methods"][m][k]["off_target"]["mean"] is not None]
        if shares and max(shares) > 0.5:
            lines.append(f"- The two attributes overlap: steering one alone moves the other's readout by up to "
                         f"{max(shares):.0%} of its own effect (the built-in personas are both story passages against a "
                         "neutral baseline; their vectors' cosine is shown in `svf.json`), so \"together\" is partly "
                         "the same push twice and retentions above 1 are expected.")
    return lines + [""]


def _samples(result: SvfResult) -> list[str]:
    if result.mode == "ab":
        return []
    lines = ["## Sample completions", "", f"Unsteered: {' / '.join(_quote(t) for t in result.unsteered['samples'])}", ""]
    for c in result.config.coefficients:
        if c == 0.0:
            continue
        for m in ("vector", "field"):
            texts = result.cell(m, c)["samples"]
            if texts:
                lines.append(f"- c = {c:g}, {m}: {' / '.join(_quote(t) for t in texts)}")
    return lines


__all__ = ["FIGURES", "plot_context_dependence", "plot_curves", "render_report", "series", "write_outputs"]
