"""Tidy pandas DataFrames of results: what every ``to_frame()`` returns.

A frame is in long ("tidy") format: one row per measured number, one column per thing that tells
the numbers apart, so ``df.query("metric == 'vader'")``, ``df.pivot_table(...)`` and seaborn's
``hue=``/``col=`` work without reshaping. The columns keep the same names and meanings in every
frame (a frame has the ones that apply to it):

``concept``            the concept a probe read (layer profiles)
``layer``              layer number (``blocks.{layer}``), as everywhere in the package
``coefficient``        steering coefficient (sweeps, A/B evaluation, the studies' grids)
``lambda``, ``alpha``  collision strength λ and mix α (α = 1 is pure persona A)
``sweep``              a patching sweep (``resid_layer``, ``attn_layer``, ``heads``, ``resid_position`` ...)
``component``          what a sweep patches: ``resid``, ``attn``, ``mlp``, ``heads`` or a direction
``position_from_end``  token position counted from the last (-1 is the last token)
``head``               attention head index
``metric``             name of the measured quantity (``accuracy``, ``vader``, ``logit_diff`` ...)
``value``              the point estimate: a mean unless ``aggregate`` says otherwise
``low``, ``high``      bounds of its 95 % interval (NaN where none can be estimated)
``n``                  number of items (prompts, texts, folds) the estimate is over
``aggregate``          how ``value`` averages when it is not a mean (``geometric mean``, ``ratio of means``,
                       ``proportion``)
``std``                sample standard deviation over cross-validation folds (layer profiles)
``note``               why an interval is missing or special, where the result says so
``section``, ``group`` where a number sits in a study's JSON (generic study tables)
``key``, ``claim``, ``verdict``, ``summary``   a paper's finding judged on a run

:data:`COLUMNS` holds the same descriptions for programs. Numbers equal the result's own (the
frames are read from ``to_dict()`` or the arrays behind it, never recomputed), and ``df.attrs``
carries the few scalars a table has no row for (best layer, band, shared layer).

pandas is imported here only, so ``import interp_steer`` stays light.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

COLUMNS: dict[str, str] = {
    "concept": "the concept a probe read (layer profiles)",
    "layer": "layer number (blocks.{layer})",
    "coefficient": "steering coefficient",
    "lambda": "collision strength lambda",
    "alpha": "collision mix alpha (1 = pure persona A)",
    "sweep": "a patching sweep",
    "component": "what a sweep patches: resid, attn, mlp, heads or a direction",
    "position_from_end": "token position counted from the last (-1 = last token)",
    "head": "attention head index",
    "metric": "name of the measured quantity",
    "value": "the point estimate: a mean unless `aggregate` says otherwise",
    "low": "lower bound of the 95 % interval (NaN where none)",
    "high": "upper bound of the 95 % interval (NaN where none)",
    "n": "number of items the estimate is over",
    "aggregate": "how `value` averages when it is not a mean",
    "std": "sample standard deviation over cross-validation folds",
    "note": "why an interval is missing or special",
    "section": "top-level part of a study's JSON the number comes from",
    "group": "the path inside that part",
    "key": "a finding's short name",
    "claim": "the paper's claim",
    "verdict": "reproduced, not reproduced or inconclusive",
    "summary": "why, with the numbers",
}

INTERVAL_KEYS = ("mean", "low", "high", "n")


def _pandas():
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - pandas is a dependency
        raise ImportError("to_frame() needs pandas: pip install pandas") from error
    return pd


def _num(value: Any) -> float:
    """A JSON number as float; None (JSON's NaN) as NaN."""
    return math.nan if value is None else float(value)


def is_interval(value: Any) -> bool:
    """Whether a JSON-ready value is an interval dict (:meth:`interp_steer.stats.Interval.to_dict`)."""
    return isinstance(value, Mapping) and {"mean", "low", "high"} <= set(value)


def interval_columns(interval: Mapping[str, Any]) -> dict[str, Any]:
    """``value``, ``low``, ``high``, ``n``, ``aggregate`` and ``note`` of an interval dict."""
    n = interval.get("n")
    return {"value": _num(interval.get("mean")), "low": _num(interval.get("low")),
            "high": _num(interval.get("high")), "n": None if n is None else int(n),
            "aggregate": interval.get("aggregate", "mean"), "note": interval.get("note", "")}


def frame(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], attrs: Mapping[str, Any] | None = None):
    """A DataFrame of ``rows`` with ``columns`` first, in that order (other keys after them);
    integer columns with gaps become pandas' nullable ``Int64``."""
    pd = _pandas()
    df = pd.DataFrame(list(rows))
    if df.empty:
        df = pd.DataFrame(columns=list(columns))
    order = [c for c in columns if c in df.columns] + [c for c in df.columns if c not in columns]
    df = df[order]
    for name in ("layer", "head", "position_from_end", "n"):
        if name not in df.columns:
            continue
        column = df[name]
        # None among ints arrives as object, or as float with NaN: either way an integer column with gaps
        if column.dtype == object or (column.dtype.kind == "f" and bool((column.dropna() % 1 == 0).all())):
            df[name] = column.astype("Int64")
    df.attrs.update(attrs or {})
    return df


# --- activations -------------------------------------------------------------------------------------


def activations_frame(acts):
    """One row per (text, layer) — per (text, token, layer) for ``position="all"`` — and one column
    per residual dimension (``0 .. d_model-1``, named ``dim``): the wide layout activations are
    analysed in (PCA, probes), indexed the tidy way."""
    pd = _pandas()
    values = acts.values.detach().float().cpu().numpy()
    rows, n_layers, d_model = values.shape
    text = np.repeat(acts.text_index.cpu().numpy(), n_layers)
    layer = np.tile(np.asarray(acts.layers), rows)
    if acts.position == "all":
        token = np.concatenate([np.arange(c) for c in np.bincount(acts.text_index.cpu().numpy(),
                                                                   minlength=acts.n_texts)])
        index = pd.MultiIndex.from_arrays([text, np.repeat(token, n_layers), layer], names=["text", "token", "layer"])
    else:
        index = pd.MultiIndex.from_arrays([text, layer], names=["text", "layer"])
    df = pd.DataFrame(values.reshape(rows * n_layers, d_model), index=index,
                      columns=pd.RangeIndex(d_model, name="dim"))
    df.attrs.update({"hook_point": acts.hook_point, "position": acts.position, "model": acts.model_name})
    return df


# --- probes ------------------------------------------------------------------------------------------

_PROFILE_METRICS = {"accuracy": "accuracy_std", "auroc": "auroc_std", "separability": None, "log_likelihood": None}


def profile_rows(profile) -> list[dict[str, Any]]:
    rows = []
    for metric, std_name in _PROFILE_METRICS.items():
        values = getattr(profile, metric)
        stds = getattr(profile, std_name) if std_name else [math.nan] * len(values)
        for layer, value, std in zip(profile.layers, values, stds, strict=True):
            rows.append({"concept": profile.concept, "layer": int(layer), "metric": metric, "value": float(value),
                         "std": float(std), "n": profile.folds, "in_band": layer in profile.band,
                         "best": layer == profile.best_layer})
    return rows


PROFILE_COLUMNS = ("concept", "layer", "metric", "value", "std", "n", "in_band", "best")


def profile_frame(profile):
    """Rows (concept, layer, metric): cross-validated ``accuracy`` and ``auroc`` (``std`` over the
    ``n`` folds), ``separability`` and ``log_likelihood``; ``in_band``/``best`` mark the band and
    the best layer. ``attrs``: best layer, band, held-out accuracy of the layer choice."""
    return frame(profile_rows(profile), PROFILE_COLUMNS, {
        "best_layer": profile.best_layer, "band": list(profile.band),
        "heldout_accuracy": profile.heldout_accuracy, "heldout_accuracy_std": profile.heldout_accuracy_std})


def localisation_frame(localisation):
    """Every concept's :func:`profile_frame` rows stacked; ``attrs``: the shared layer and each
    concept's best layer and band."""
    rows = [row for profile in localisation.profiles.values() for row in profile_rows(profile)]
    return frame(rows, PROFILE_COLUMNS, {
        "shared_layer": localisation.shared_layer,
        "best_layers_indistinguishable": localisation.best_layers_indistinguishable,
        "best_layer": {name: p.best_layer for name, p in localisation.profiles.items()},
        "band": {name: list(p.band) for name, p in localisation.profiles.items()}})


# --- sweeps ------------------------------------------------------------------------------------------

SWEEP_COLUMNS = ("layer", "coefficient", "metric", "value", "low", "high", "n", "aggregate")


def sweep_rows(sweep, metric: str | None = None) -> list[dict[str, Any]]:
    from interp_steer.stats import GEOMETRIC_METRICS

    aggregate = "geometric mean" if sweep.measure in GEOMETRIC_METRICS else "mean"
    rows = []
    for i, layer in enumerate(sweep.layers):
        for j, coefficient in enumerate(sweep.coefficients):
            rows.append({"layer": int(layer), "coefficient": float(coefficient), "metric": metric or sweep.measure,
                         "value": float(sweep.mean[i][j]), "low": float(sweep.low[i][j]),
                         "high": float(sweep.high[i][j]), "n": int(sweep.n_items), "aggregate": aggregate})
    return rows


def sweep_frame(sweep):
    """Rows (layer, coefficient): the measure's mean over items with its 95 % bootstrap interval."""
    return frame(sweep_rows(sweep), SWEEP_COLUMNS)


def generation_sweep_frame(sweep):
    """Rows (layer, coefficient, metric) for every scored metric, plus ``backfire`` (the rate
    against coefficient 0, as a proportion with its interval) where it was computed."""
    rows = [row for name, result in sweep.metrics.items() for row in sweep_rows(result, name)]
    for cell, backfire in sweep.backfire.items():
        layer, coefficient = cell.split(",")
        rows.append({"layer": int(layer), "coefficient": float(coefficient), "metric": "backfire",
                     **interval_columns(backfire)})
    return frame(rows, SWEEP_COLUMNS)


# --- studies -----------------------------------------------------------------------------------------


def judged_frame(judged: Iterable[Any]):
    """One row per finding: ``key``, ``claim``, ``verdict``, ``summary``."""
    return frame(({"key": j.key, "claim": j.claim, "verdict": j.verdict, "summary": j.summary} for j in judged),
                 ("key", "claim", "verdict", "summary"))


CELL_COLUMNS = ("lambda", "alpha", "metric", "value", "low", "high", "n", "aggregate", "note")


def collision_cells_frame(data: Mapping[str, Any]):
    """Rows (λ, α, metric) of a collision's ``collision.json`` content: every cell's metrics over
    prompts, and the unsteered run as λ = 0 with α missing (NaN)."""
    rows = [{"lambda": 0.0, "alpha": math.nan, "metric": metric, **interval_columns(iv)}
            for metric, iv in data["unsteered"]["metrics"].items()]
    rows += [{"lambda": float(cell["lambda"]), "alpha": float(cell["alpha"]), "metric": metric,
              **interval_columns(iv)} for cell in data["cells"] for metric, iv in cell["metrics"].items()]
    return frame(rows, CELL_COLUMNS, {"layer": data.get("layer")})


def collision_dominance_frame(data: Mapping[str, Any]):
    """Rows (metric, λ, α): dominance d(α) with its interval, per valence score and strength."""
    rows = []
    for score, per_lambda in data["dominance"].items():
        if "missing" in per_lambda:  # imported completions: a score that could not be computed
            continue
        for lam, dominance in zip(data["grid"]["lambdas"], per_lambda, strict=True):
            if "missing" in dominance:
                continue
            for alpha, d, low, high in zip(dominance["alphas"], dominance["d"], dominance["d_low"],
                                           dominance["d_high"], strict=True):
                rows.append({"lambda": float(lam), "alpha": float(alpha), "metric": f"dominance_{score}",
                             "value": _num(d), "low": _num(low), "high": _num(high)})
    return frame(rows, CELL_COLUMNS[:6])


PATCH_COLUMNS = ("sweep", "component", "metric", "layer", "position_from_end", "head", "value", "low", "high",
                 "n", "aggregate")


def patching_frame(data: Mapping[str, Any]):
    """Rows (sweep, metric, layer[, position_from_end | head]) of ``patching.json``'s effects:
    the normalised effect (ratio of means over ``n`` prompts) and its 95 % Fieller interval."""
    n = len(data["prompts"])
    rows = []
    for sweep, by_metric in data["effects"].items():
        axes = by_metric["axes"]
        component = sweep.removesuffix("_layer").removesuffix("_position")
        for metric, arrays in by_metric.items():
            if metric == "axes":
                continue
            effect, low, high = (np.asarray(arrays[k], dtype=float) for k in ("effect", "low", "high"))
            for at in np.ndindex(effect.shape):
                row: dict[str, Any] = {"sweep": sweep, "component": component, "metric": metric}
                for axis, i in zip(axes, at, strict=True):
                    if axis == "layer (from 1)":
                        row["layer"] = i + 1
                    elif axis == "position_from_end":
                        row["position_from_end"] = i - effect.shape[-1]
                    else:
                        row[axis] = i
                rows.append({**row, "value": effect[at], "low": low[at], "high": high[at], "n": n,
                             "aggregate": "ratio of means"})
    return frame(rows, PATCH_COLUMNS, {"layer": data["layer"]})


_IDENTIFIERS = ("key", "model", "method", "coefficient", "lambda", "alpha", "layer", "n", "name", "set", "corpus")


def _identifiers(entry: Any) -> dict[str, Any]:
    """The scalar fields that tell a list entry apart (a model entry's ``model`` is its name)."""
    if not isinstance(entry, Mapping):
        return {}
    found = {}
    for key in _IDENTIFIERS:
        value = entry.get(key)
        if key == "model" and isinstance(value, Mapping):
            value = value.get("name")
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            found[_column(key)] = value
    return found


def _column(identifier: str) -> str:
    return "at_n" if identifier == "n" else identifier  # ``n`` is the interval's own count


def intervals_frame(data: Mapping[str, Any], *, skip: Sequence[str] = ()):
    """Every interval in a study's JSON content, one row each: ``section`` (the top-level key),
    ``group`` (the path below it), ``metric`` (the interval's own key), the identifying fields of
    list entries it sits in (``method``, ``coefficient`` ...; ``at_n`` for a sample size, since
    ``n`` is the interval's own count; ``item`` is the position in a list of intervals) and the interval's ``value``/``low``/``high``/``n``. The generic table of the
    robustness and SVF studies, whose results nest differently per stage."""
    rows: list[dict[str, Any]] = []

    def walk(node: Any, path: list[str], ids: dict[str, Any]) -> None:
        if is_interval(node):
            rows.append({"section": path[0], "group": "/".join(path[1:-1]), "metric": path[-1], **ids,
                         **interval_columns(node)})
        elif isinstance(node, Mapping):
            for key, child in node.items():
                walk(child, [*path, str(key)], ids)
        elif isinstance(node, list):
            for i, child in enumerate(node):
                found = _identifiers(child)
                if is_interval(child):  # a list of intervals (e.g. per third of a text): the key is the metric
                    walk(child, path, {**ids, "item": i})
                elif found:
                    walk(child, path, {**ids, **found})
                else:
                    walk(child, [*path, f"[{i}]"], ids)

    for key, value in data.items():
        if key not in skip:
            walk(value, [key], {})
    return frame(rows, ("section", "group", "metric", *map(_column, _IDENTIFIERS), "item",
                        "value", "low", "high", "n", "aggregate", "note"))


HELDOUT_COLUMNS = ("fold", "rank", "component", "layer", "head", "metric", "value", "low", "high", "family_low",
                   "family_high", "holds_up")


def patching_findings_frame(data: Mapping[str, Any]):
    """Rows (fold, rank): each headline component chosen on one half of the prompts, with its
    effect measured on the other half and the family-wise interval (``holds_up``)."""
    findings = data["findings"]
    rows = []
    for fold, entry in enumerate(findings.get("folds", [])):
        for c in entry["components"]:
            index = list(c["index"])
            rows.append({"fold": fold, "rank": c["rank"], "component": c["component"], "layer": index[0],
                         "head": index[1] if c["component"] == "heads" else None,
                         "metric": findings["metric"], "value": _num(c["effect"]), "low": _num(c["low"]),
                         "high": _num(c["high"]), "family_low": _num(c["family_low"]),
                         "family_high": _num(c["family_high"]), "holds_up": bool(c["holds_up"])})
    return frame(rows, HELDOUT_COLUMNS)


def choose(table: str, tables: Mapping[str, Any]):
    """``tables[table]()``, or a ValueError naming the tables there are."""
    if table not in tables:
        raise ValueError(f"table={table!r} is not one of this result's tables: {', '.join(map(repr, tables))}")
    return tables[table]()
