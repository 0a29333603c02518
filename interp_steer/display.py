"""How results show themselves in Jupyter: ``_repr_html_`` (a summary, a table, a small inline
figure) and a compact one-line ``__repr__``.

Everything here reads what a result already holds; nothing runs a model or recomputes a number.
Figures are drawn on a bare :class:`matplotlib.figure.Figure` (not through pyplot, so nothing is
left open or shown twice) and embedded as base64 PNG.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

VERDICT_COLOURS = {"reproduced": "#1a7f37", "not reproduced": "#cf222e", "inconclusive": "#9a6700"}


def esc(value: Any) -> str:
    return html.escape(str(value))


def number(value: Any, digits: int = 3) -> str:
    """A number for a table: ``g`` format, ``–`` for missing or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}"
    return esc(value)


def interval(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    return f"{number(value, digits)} [{number(low, digits)}, {number(high, digits)}]"


def layers_text(layers: Sequence[int]) -> str:
    """``0–29`` for a contiguous run, else the list shortened in the middle."""
    layers = list(layers)
    if len(layers) > 2 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}–{layers[-1]}"
    shown = layers if len(layers) <= 6 else [*layers[:3], "…", *layers[-2:]]
    return ", ".join(map(str, shown))


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """An HTML table; cells are already-escaped HTML."""
    head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verdict(text: str) -> str:
    colour = VERDICT_COLOURS.get(text, "inherit")
    return f"<b style='color:{colour}'>{esc(text)}</b>"


def figure(draw: Callable[[Any], None], size: tuple[float, float] = (4.8, 2.6), dpi: int = 90) -> str:
    """``draw(fig)`` on a fresh figure, returned as an inline ``<img>``; empty if drawing fails
    (a display must never raise)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    try:
        draw(fig)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
    except Exception as error:  # noqa: BLE001 - a failed figure is shown as a note, not raised
        return f"<p><i>(figure not drawn: {esc(type(error).__name__)}: {esc(error)})</i></p>"
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='figure' src='data:image/png;base64,{data}'/>"


def block(title: str, *parts: str) -> str:
    return f"<div><b>{esc(title)}</b>{''.join(parts)}</div>"


def fields_line(pairs: Sequence[tuple[str, Any]]) -> str:
    return "<p>" + " · ".join(f"{esc(k)}: <code>{esc(v)}</code>" for k, v in pairs) + "</p>"


# --- per result ----------------------------------------------------------------------------------------


def vector_html(vector) -> str:
    meta = vector.metadata
    norms = vector.norms()
    resid = meta.resid_norm
    rows = [(str(layer), number(norms[layer]),
             number(norms[layer] / resid[layer]) if resid.get(layer) else "–") for layer in vector.layers]
    counts = f"{meta.n_positive} positive / {meta.n_negative} negative"
    return block("SteeringVector",
                 fields_line([("model", meta.model), ("hook", vector.hook_point), ("method", meta.method),
                              ("position", meta.position), ("samples", counts),
                              ("normalisation", meta.normalisation)]),
                 table(["layer", "norm", "norm / mean residual norm"], rows))


def _draw_profiles(profiles) -> Callable[[Any], None]:
    def draw(fig) -> None:
        ax = fig.subplots()
        for profile in profiles:
            (line,) = ax.plot(profile.layers, profile.accuracy, marker="o", markersize=2, label=profile.concept)
            ax.axvspan(min(profile.band) - 0.4, max(profile.band) + 0.4, color=line.get_color(), alpha=0.12)
            ax.axvline(profile.best_layer, color=line.get_color(), linestyle="--", linewidth=0.8)
        ax.set_xlabel("layer")
        ax.set_ylabel("CV accuracy")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=7)
    return draw


def profile_summary(profile) -> tuple[str, ...]:
    at = profile.layers.index(profile.best_layer)
    return (esc(profile.concept), str(profile.best_layer), esc(f"{min(profile.band)}–{max(profile.band)}"),
            f"{number(profile.accuracy[at])} ± {number(profile.accuracy_std[at], 2)}",
            f"{number(profile.heldout_accuracy)} ± {number(profile.heldout_accuracy_std, 2)}",
            f"{profile.n_positive} / {profile.n_negative}")


PROFILE_HEADER = ["concept", "best layer", "band", "accuracy at best (± sd over folds)",
                  "held-out accuracy of the choice", "positive / negative"]


def profile_html(profile) -> str:
    return block(f"LayerProfile ({profile.folds}-fold CV, layers {layers_text(profile.layers)})",
                 table(PROFILE_HEADER, [profile_summary(profile)]), figure(_draw_profiles([profile])))


def localisation_html(localisation) -> str:
    shared = "–" if localisation.shared_layer is None else localisation.shared_layer
    together = {None: "–", True: "yes", False: "no"}[localisation.best_layers_indistinguishable]
    return block("Localisation",
                 fields_line([("shared layer", shared), ("best layers indistinguishable", together)]),
                 table(PROFILE_HEADER, [profile_summary(p) for p in localisation.profiles.values()]),
                 figure(_draw_profiles(list(localisation.profiles.values()))))


def judged_table(judged) -> str:
    return table(["finding", "verdict", "why"], [(esc(j.claim), verdict(j.verdict), esc(j.summary)) for j in judged])


def verdict_counts(judged) -> str:
    counts: dict[str, int] = {}
    for j in judged:
        counts[j.verdict] = counts.get(j.verdict, 0) + 1
    return ", ".join(f"{n} {v}" for v, n in counts.items()) or "no findings"


def claims_html(title: str, claims, pairs: Sequence[tuple[str, Any]]) -> str:
    return block(title, fields_line([*pairs, ("verdicts", verdict_counts(claims))]), judged_table(claims))


def one_line(kind: str, **parts: Any) -> str:
    """``Kind(a=1, b='x')``: a compact repr."""
    return f"{kind}(" + ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in parts.items()) + ")"


def dla_html(result) -> str:
    summary = result.summary()
    total, shares, rest = (summary[f"difference_{k}"] for k in ("total", "sum", "remainder"))
    rows = [(esc(r["component"]), interval(r["mean"], r["low"], r["high"]), number(r["direct"])) for r in result.top(10)]

    def draw(fig) -> None:
        ax = fig.add_subplot()
        parts = {c["kind"]: [] for c in summary["components"] if c["kind"] in ("attn", "mlp")}
        for c in summary["components"]:
            if c["kind"] in parts:
                parts[c["kind"]].append((c["layer"], c["value"]["mean"]))
        for kind, points in parts.items():
            ax.plot(*zip(*points, strict=True), marker=".", label=kind)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlabel("layer")
        ax.set_ylabel("share of Δm")
        ax.legend(fontsize=7)

    return block("Direct logit attribution",
                 fields_line([("model", result.model), ("prompts", summary["n_prompts"]),
                              ("Δm (steered − reference)", f"{total['mean']:+.4f}"),
                              ("sum of shares", f"{shares['mean']:+.4f}"), ("remainder", f"{rest['mean']:+.2g}"),
                              ("heads", "yes" if result.has_heads else result.heads_note)]),
                 table(["largest shares (these prompts)", "mean [95 % interval]", "direct part"], rows), figure(draw))


def lens_html(result) -> str:
    rows = []
    for entry in result.prompts:
        kl = {run: entry[run]["kl"] for run in ("unsteered", "steered")}
        middle = len(result.labels) // 2
        diffs = ", ".join(f"{esc(repr(t))} {d[-1]:+.2f}" for t, d in zip(result.tokens, entry["logit_diff"], strict=True))
        rows.append((esc(entry["prompt"][:60]), number(kl["unsteered"][middle][-1]), number(kl["steered"][middle][-1]),
                     esc(" ".join(entry["steered"]["top_final"][:3])), diffs or "–"))
    return block("Logit lens of a steered run",
                 fields_line([("model", result.model), ("steering", result.steering.get("kind")),
                              ("coefficient", result.steering.get("coefficient")), ("entries", len(result.labels))]),
                 table(["prompt", f"KL to final at {result.labels[len(result.labels) // 2]}, unsteered", "steered",
                        "steered top tokens", "Δ logit at the output"], rows))


def attention_html(result) -> str:
    rows = [(f"{r['layer']}.{r['head']}", interval(r["tvd"]["mean"], r["tvd"]["low"], r["tvd"]["high"]),
             esc(", ".join(f"{m['position_from_end']}: {m['mean_delta']:+.3f}" for m in r["moved_most"][:3])))
            for r in result.summary()]
    return block("Attention differences",
                 fields_line([("model", result.model), ("source", result.runs["source"]["label"]),
                              ("target", result.runs["target"]["label"]), ("prompts", len(result.prompts))]),
                 table(["head", "total variation at the final query", "moved most (from the end)"], rows))


def activations_line(acts) -> str:
    """One line for :class:`~interp_steer.activations.Activations`: never the values themselves."""
    return one_line("Activations", shape=tuple(acts.values.shape), dtype=str(acts.values.dtype).removeprefix("torch."),
                    model=acts.model_name, hook=acts.hook_point, layers=layers_text(acts.layers), position=acts.position,
                    texts=acts.n_texts)


def sweep_line(sweep) -> str:
    """One line for an A/B or perplexity sweep (:class:`~interp_steer.evaluation.SweepResult`)."""
    return one_line("SweepResult", measure=sweep.measure, shape=tuple(sweep.values.shape), layers=layers_text(sweep.layers),
                    coefficients=[float(c) for c in sweep.coefficients], items=sweep.n_items)


def _draw_sweep(sweep, ylabel: str) -> Callable[[Any], None]:
    def draw(fig) -> None:
        ax = fig.subplots()
        for i, layer in enumerate(sweep.layers):
            (line,) = ax.plot(sweep.coefficients, sweep.mean[i], marker="o", markersize=3, label=f"layer {layer}")
            ax.fill_between(sweep.coefficients, sweep.low[i], sweep.high[i], color=line.get_color(), alpha=0.15)
        ax.set_xlabel("coefficient")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(sweep.layers) <= 8:
            ax.legend(frameon=False, fontsize=7)
    return draw


def sweep_html(sweep) -> str:
    """A sweep's mean and 95 % interval per layer × coefficient, as a table and a figure."""
    rows = [(str(layer), *(interval(sweep.mean[i][j], sweep.low[i][j], sweep.high[i][j])
                           for j in range(len(sweep.coefficients)))) for i, layer in enumerate(sweep.layers)]
    return block(f"SweepResult: {sweep.measure}",
                 fields_line([("layers", layers_text(sweep.layers)), ("coefficients", len(sweep.coefficients)),
                              ("items", sweep.n_items), ("interval", "95 % bootstrap over items")]),
                 table(["layer \\ coefficient", *(f"{c:g}" for c in sweep.coefficients)], rows),
                 figure(_draw_sweep(sweep, sweep.measure)))


def generation_sweep_line(sweep) -> str:
    return one_line("GenerationSweep", layers=layers_text(sweep.layers),
                    coefficients=[float(c) for c in sweep.coefficients], prompts=len(sweep.prompts),
                    metrics=len(sweep.metrics))


def generation_sweep_html(sweep) -> str:
    """Every metric's mean per (layer, coefficient) cell, the backfire rate where computed, and the
    first metric's curve."""
    names = list(sweep.metrics)
    rows = []
    for i, layer in enumerate(sweep.layers):
        for j, coefficient in enumerate(sweep.coefficients):
            backfire = sweep.backfire.get(f"{layer},{coefficient:g}")
            rows.append((str(layer), f"{coefficient:g}", *(number(sweep.metrics[n].mean[i][j]) for n in names),
                         "–" if backfire is None else interval(backfire["mean"], backfire["low"], backfire["high"])))
    parts = [fields_line([("prompts", len(sweep.prompts)), ("layers", layers_text(sweep.layers)),
                          ("backfire on", sweep.backfire_settings.get("metric", "–"))]),
             table(["layer", "coefficient", *names, "backfire rate"], rows)]
    if names:
        parts.append(figure(_draw_sweep(sweep.metrics[names[0]], names[0])))
    return block("GenerationSweep", *parts)
