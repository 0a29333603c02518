"""Direct logit attribution of steered runs: which components write a logit difference, and how much.

The metric ``m`` is a logit difference at a prompt's final position (the token that predicts the
first generated one): the mean logit of tokens A minus the mean logit of tokens B (or the mean logit
of tokens A alone). The residual stream entering the final norm is a sum of what each component
wrote at that position, which the run's hooks read off exactly by telescoping:

- ``embed``: the residual entering block 0 (token and, where the model has them, position embeddings);
- ``attn`` L: ``resid_mid − resid_pre`` of block L (what its attention branch added, after its
  post-attention norm where the family has one, as Gemma 2/3 and OLMo 2 do);
- ``mlp`` L: ``resid_post − resid_mid``;
- ``steering`` L (at ``resid_pre``/``resid_post``): what the steering hooks changed, read by hooks
  registered just before and just after them (a steering at ``resid_mid`` only changes the MLP's
  input, so it has no direct share of its own: its effect is inside the MLP's write, and
  ``runs["note"]`` says so);
- per head: head h's output ``z_h · W_O[h]`` (through the post-attention norm, its scale frozen, where
  there is one) and the attention output bias; these sum to the ``attn`` component, which is checked.

With the final norm's scale ``σ`` frozen at the run's own value (TransformerLens's ``hook_scale`` of
``ln_final``), the readout is linear in the residual, so each component's direct contribution is its
vector read through ``W_U`` like that and the contributions plus a constant (the norm's and the
unembedding's biases) sum to the model's logit difference exactly. What the linearisation cannot
express — Gemma 2's logit soft-capping — is the ``remainder``: the model's own metric minus that sum,
reported, never folded in. The norm is applied by its own module (RMSNorm, Gemma's ``1 + w``
RMSNorm, LayerNorm): ``norm(c)`` minus ``norm(0)``, times ``c``'s own scale over the run's scale, is
exactly the frozen-scale image of ``c``.

Between two runs (a ``reference``, e.g. unsteered or a mix, and a ``steered`` one) each component's
share of the change ``m_steered − m_reference`` is its contribution in one run minus the other; those
shares sum to the change (plus the change of the remainder). Each share splits into ``direct``, the
change of the component's own write read at the reference run's scale, and ``rescale``, what comes
from the final norm's scale changing between the runs: a component before the steering layer has a
``direct`` share of exactly 0 and can still have a ``rescale`` share. Over several prompts each share
is a mean with a Student-t interval.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp_steer.data import reject_bare_string
from interp_steer.models import Model
from interp_steer.steering import Steering

RUNS = ("reference", "steered")
POINTS = ("pre", "mid", "post")
PARTS = ("value", "direct", "rescale")
HEADS_TOLERANCE = 1e-3
"""Largest relative gap between the heads' sum and the attention component for heads to be reported."""


# ------------------------------------------------------------------------------------- the metric


def _weights(ids_a: list[int], ids_b: list[int]) -> tuple[list[int], Tensor]:
    """The metric as weights over a few vocabulary entries: +1/|A| on A, −1/|B| on B."""
    ids = ids_a + ids_b
    w = torch.tensor([1 / len(ids_a)] * len(ids_a) + [-1 / len(ids_b)] * len(ids_b), dtype=torch.float64)
    return ids, w


# --------------------------------------------------------------------------------- one run's writes


@dataclass
class _Writes:
    """What each component wrote at the final position in one run, ``[d_model]`` vectors."""

    labels: list[tuple[str, int | None, str | None]]  # (kind, layer, point)
    vectors: Tensor  # [components, d]
    heads: Tensor | None  # [layers, heads, d] through any post-attention norm, or None
    head_bias: Tensor | None  # [layers, d]
    heads_gap: float  # largest relative |sum(heads) + bias − attn| over layers
    final: Tensor  # [d] the residual entering the final norm
    scale: Tensor  # [] the final norm's scale at the final position
    logits: Tensor  # [vocab] the model's own logits there
    mid_steered: bool = False  # a steering changed resid_mid (which acts only through the MLP)


def _keep(store: dict[str, Tensor], name: str):
    # float64 on the CPU: differences of the model's values are then exact (a bf16 model's too), and
    # layers spread over several devices meet in one place
    def hook(act: Tensor, hook) -> None:
        store[name] = act[:, -1].detach().double().cpu()
    return hook


def _apply(module: torch.nn.Module, rows: Tensor) -> Tensor:
    """``module`` on ``rows`` ([n, features]) in the module's own device and dtype; float64 CPU out."""
    weight = next(module.parameters(), None)
    device, dtype = (weight.device, weight.dtype) if weight is not None else (rows.device, torch.float32)
    with torch.no_grad():
        return module(rows.to(device, dtype)[None])[0].double().cpu()


def _post_norm(model: Model, layer: int) -> str | None:
    """The hook prefix of the norm on the attention branch's output, where the family has one."""
    return f"blocks.{layer}.ln1_post" if f"blocks.{layer}.ln1_post.hook_scale" in model.bridge.hook_dict else None


def _capture(model: Model, ids: Tensor, steering: Steering | None, prompt_end: int) -> _Writes:
    n = model.n_layers
    points = [f"blocks.{layer}.hook_resid_{p}" for layer in range(n) for p in POINTS]
    zs = [f"blocks.{layer}.attn.hook_z" for layer in range(n)]
    norms = [f"{p}.hook_scale" for p in (_post_norm(model, layer) for layer in range(n)) if p]
    before: dict[str, Tensor] = {}
    after: dict[str, Tensor] = {}
    other: dict[str, Tensor] = {}
    scope = contextlib.nullcontext() if steering is None else steering.applied(model, [prompt_end])
    # Hooks run in the order they were added: "before" ones see each point as the steering finds it,
    # "after" ones as it leaves it.
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=[(p, _keep(before, p)) for p in points]):
        with scope, model.bridge.hooks(fwd_hooks=[(p, _keep(after, p)) for p in points] +
                                       [(x, _keep(other, x)) for x in [*zs, *norms, "ln_final.hook_in",
                                                                       "ln_final.hook_scale"]]):
            logits = model.hf_model(input_ids=ids, logits_to_keep=1).logits[0, -1]
    labels: list[tuple[str, int | None, str | None]] = [("embed", None, None)]
    vectors = [before[points[0]][0]]
    mid_steered = False
    for layer in range(n):
        pre, mid, post = (f"blocks.{layer}.hook_resid_{p}" for p in POINTS)
        # The bridge's resid_mid hook is the MLP norm's input: a change there feeds the MLP but is not
        # added to the residual stream (the block keeps its own copy), so it has no direct share of its
        # own; its effect is in the MLP's write, which is resid_post minus the residual at resid_mid.
        mid_steered = mid_steered or bool((after[mid] != before[mid]).any())
        for kind, point, value in (("steering", "pre", after[pre] - before[pre]),
                                   ("attn", None, before[mid] - after[pre]),
                                   ("mlp", None, before[post] - before[mid]),
                                   ("steering", "post", after[post] - before[post])):
            labels.append((kind, layer, point))
            vectors.append(value[0])
        if layer + 1 < n:  # the same tensor flows from one block to the next: nothing may be added there
            link = before[f"blocks.{layer + 1}.hook_resid_pre"] - after[post]
            if link.abs().max() > 0:
                labels.append(("between blocks", layer, None))
                vectors.append(link[0])
    stacked = torch.stack(vectors)
    heads, bias, gap = _head_writes(model, other, stacked, labels)
    return _Writes(labels, stacked, heads, bias, gap, other["ln_final.hook_in"][0],
                   other["ln_final.hook_scale"].reshape(-1)[0], logits.detach().double().cpu(), mid_steered)


def _frozen(model: Model, prefix: str, vectors: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
    """``(norm(c) − norm(0)) · s(c) / scale`` for each row ``c`` (the norm's image of ``c`` with its
    scale frozen at ``scale``), and ``norm(0)`` (its bias, zero for RMSNorm)."""
    module = model.bridge.get_submodule(prefix)
    seen: dict[str, Tensor] = {}

    def keep(act: Tensor, hook) -> None:
        seen["scale"] = act.detach()

    rows = torch.cat([vectors, vectors.new_zeros(1, vectors.shape[-1])])
    with model.bridge.hooks(fwd_hooks=[(f"{prefix}.hook_scale", keep)]):
        out = _apply(module, rows)
    own = seen["scale"].reshape(-1, 1).double().cpu()
    return (out[:-1] - out[-1]) * own[:-1] / scale.reshape(()), out[-1]


def _head_writes(model: Model, other: dict[str, Tensor], vectors: Tensor, labels) -> tuple[Tensor | None, Tensor | None, float]:
    """Each head's write into the residual and each layer's attention bias, checked against the
    ``attn`` components; ``(None, None, gap)`` when they do not add up (the output is not linear in
    the heads)."""
    heads, biases, gap = [], [], 0.0
    for layer in range(model.n_layers):
        z = other[f"blocks.{layer}.attn.hook_z"][0]  # [heads, d_head]
        n_heads, d_head = z.shape
        masked = z.new_zeros(n_heads + 1, n_heads, d_head)
        index = torch.arange(n_heads)
        masked[index, index] = z  # row h holds head h alone; the last row is all zeros (the bias)
        out = _apply(model.bridge.blocks[layer].attn.o, masked.reshape(n_heads + 1, n_heads * d_head))
        per_head, bias = out[:-1] - out[-1], out[-1]
        post = _post_norm(model, layer)
        if post is not None:
            frozen, offset = _frozen(model, post, torch.cat([per_head, bias[None]]),
                                     other[f"{post}.hook_scale"].reshape(-1)[0])
            per_head, bias = frozen[:-1], frozen[-1] + offset
        attn = vectors[labels.index(("attn", layer, None))]
        gap = max(gap, float((per_head.sum(0) + bias - attn).abs().max() / attn.abs().max().clamp_min(1e-12)))
        heads.append(per_head)
        biases.append(bias)
    if gap > HEADS_TOLERANCE:
        return None, None, gap
    return torch.stack(heads), torch.stack(biases), gap


# ---------------------------------------------------------------------------------- the readout


def _readout(model: Model, writes: _Writes, ids: list[int], w: Tensor) -> dict[str, Any]:
    """Each write's contribution to the metric with the final norm's scale frozen at the run's."""
    rows = [writes.vectors]
    if writes.heads is not None:
        rows += [writes.heads.reshape(-1, writes.heads.shape[-1]), writes.head_bias]
    frozen, offset = _frozen(model, "ln_final", torch.cat(rows), writes.scale)
    with torch.no_grad():
        columns = model.bridge.W_U[:, ids].double().cpu()
        u = columns @ w
        values = frozen.double().cpu() @ u
        constant = float((offset.double().cpu() @ columns + model.bridge.b_U[ids].double().cpu()) @ w)
    actual = float(writes.logits[ids].double().cpu() @ w)
    n = writes.vectors.shape[0]
    out = {"values": values[:n].numpy(), "constant": constant, "actual": actual, "scale": float(writes.scale),
           "remainder": actual - constant - float(values[:n].sum()),
           "unexplained_norm": float((writes.final - writes.vectors.sum(0)).norm())}
    if writes.heads is not None:
        layers, n_heads = writes.heads.shape[:2]
        out["heads"] = values[n : n + layers * n_heads].reshape(layers, n_heads).numpy()
        out["head_bias"] = values[n + layers * n_heads :].numpy()
    return out


# --------------------------------------------------------------------------------------- the result


def _interval(values: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """Mean over prompts (axis 0) with a Student-t interval; NaN bounds with one prompt."""
    from interp_steer.stats import mean_and_se, t_quantile

    mean, se, n = mean_and_se(values, axis=0)
    half = t_quantile(level, np.maximum(n - 1, 1)) * se
    return {"mean": mean, "low": mean - half, "high": mean + half}


def _component_name(kind: str, layer: int | None, point: str | None) -> str:
    if kind == "embed":
        return "embed"
    return f"{kind} {layer}" + (f" ({point})" if point else "")


@dataclass(frozen=True, eq=False)
class DlaResult:
    """Direct logit attribution of a reference and a steered run per prompt (see the module
    docstring). ``prompts[p][run]`` hold per-component contributions (``values``, in the order of
    ``components``), the ``constant``, the model's ``actual`` metric, the ``remainder`` and the final
    norm's ``scale``; ``prompts[p]["difference"]`` the shares of ``m_steered − m_reference``
    (``value`` = ``direct`` + ``rescale``). ``heads`` are ``[layers, heads]`` per run, or absent with
    ``heads_note`` saying why."""

    model: str
    metric: dict[str, Any]
    runs: dict[str, Any]
    components: list[dict[str, Any]]
    prompts: list[dict[str, Any]]
    n_heads: int
    heads_note: str | None
    level: float = 0.95

    @property
    def has_heads(self) -> bool:
        return self.heads_note is None

    def _stack(self, run: str, key: str) -> np.ndarray:
        return np.array([np.asarray(p[run][key], dtype=float) for p in self.prompts])

    def summary(self) -> dict[str, Any]:
        """Means over prompts with intervals: per component, each run's contribution and the
        difference's shares; the totals; and per head (when available)."""
        out: dict[str, Any] = {"n_prompts": len(self.prompts), "level": self.level, "components": []}
        stats = {run: _interval(self._stack(run, "values"), self.level) for run in RUNS}
        parts = {part: _interval(self._stack("difference", part), self.level) for part in PARTS}
        for i, component in enumerate(self.components):
            row = dict(component)
            for run in RUNS:
                row[run] = {k: float(v[i]) for k, v in stats[run].items()}
            for part in PARTS:
                row[part] = {k: float(v[i]) for k, v in parts[part].items()}
            out["components"].append(row)
        for key in ("actual", "remainder", "scale"):
            out[key] = {run: {k: float(v) for k, v in _interval(np.array([p[run][key] for p in self.prompts]),
                                                                   self.level).items()} for run in RUNS}
        totals = np.array([[p["difference"]["total"], p["difference"]["sum"], p["difference"]["remainder"]]
                           for p in self.prompts])
        for j, key in enumerate(("total", "sum", "remainder")):
            out[f"difference_{key}"] = {k: float(v) for k, v in _interval(totals[:, j], self.level).items()}
        if self.has_heads:
            for key in ("heads", "heads_direct"):
                heads = _interval(self._stack("difference", key), self.level)
                out[key] = {k: v.tolist() for k, v in heads.items()}
        return out

    def top(self, k: int = 10, *, part: str = "value") -> list[dict[str, Any]]:
        """The ``k`` components (heads included, when available) with the largest mean share of the
        difference by size (``part``: the whole share, or its ``direct`` part), with their
        intervals and, under ``direct``, the mean direct part. Chosen and measured on the same
        prompts: a description of these prompts, not a held-out estimate."""
        if part not in ("value", "direct"):
            raise ValueError(f"part must be 'value' or 'direct', got {part!r}")
        summary = self.summary()
        rows = [{"component": _component_name(c["kind"], c["layer"], c["point"]), **c[part],
                 "direct": c["direct"]["mean"]} for c in summary["components"]]
        if self.has_heads:
            heads, direct = summary["heads" if part == "value" else "heads_direct"], summary["heads_direct"]
            for layer, row in enumerate(heads["mean"]):
                for head in range(len(row)):
                    rows.append({"component": f"head {layer}.{head}", "mean": row[head],
                                 "low": heads["low"][layer][head], "high": heads["high"][layer][head],
                                 "direct": direct["mean"][layer][head]})
        rows = [r for r in rows if np.isfinite(r["mean"]) and r["mean"] != 0]
        return sorted(rows, key=lambda r: -abs(r["mean"]))[:k]

    def to_dict(self) -> dict[str, Any]:
        from interp_steer._io import jsonable

        return jsonable({"model": self.model, "metric": self.metric, "runs": self.runs, "components": self.components,
                         "n_heads": self.n_heads, "heads_note": self.heads_note, "level": self.level,
                         "prompts": self.prompts, "summary": self.summary(),
                         "definitions": {
                             "metric": "mean logit of tokens_a minus mean logit of tokens_b at the prompt's final position",
                             "values": "each component's direct contribution, final norm scale frozen at the run's value",
                             "constant": "what no component writes: the final norm's and the unembedding's biases",
                             "remainder": "actual − constant − sum(values): what the frozen-scale linear readout misses "
                                          "(logit soft-capping); 0 up to float rounding otherwise",
                             "difference.value": "a component's contribution in the steered run minus the reference run",
                             "difference.direct": "the change of the component's write, read at the reference run's scale",
                             "difference.rescale": "value − direct: from the final norm's scale changing between the runs",
                         }})

    def to_frame(self):
        """Tidy rows ``(prompt, run, component, layer, head, point, part, value)``: ``run`` is
        ``reference``, ``steered`` or ``difference`` (with ``part`` value/direct/rescale); heads have
        ``component="head"``."""
        from interp_steer.frames import frame

        rows = []
        for p, entry in enumerate(self.prompts):
            for run in (*RUNS, "difference"):
                parts = PARTS if run == "difference" else ("value",)
                for part in parts:
                    values = entry[run]["values" if run != "difference" else part]
                    for c, value in zip(self.components, values, strict=True):
                        rows.append({"prompt": p, "run": run, "component": c["kind"], "layer": c["layer"],
                                     "head": None, "point": c["point"], "part": part, "value": float(value)})
                if self.has_heads:
                    grid = entry[run]["heads"]
                    for layer, row in enumerate(grid):
                        for head, value in enumerate(row):
                            rows.append({"prompt": p, "run": run, "component": "head", "layer": layer, "head": head,
                                         "point": None, "part": "value", "value": float(value)})
        return frame(rows, ("prompt", "run", "component", "layer", "head", "point", "part", "value"),
                     {"model": self.model, "metric": self.metric})

    def save(self, out: str | Path, *, figures: bool = True) -> dict[str, Path]:
        """``dla.json`` and figures: per layer, the attention and MLP shares of the difference with
        intervals (``dla_components.png``) and the heads' mean shares (``dla_heads.png``)."""
        from interp_steer._io import write_json

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = {"json": write_json(out / "dla.json", self.to_dict())}
        if figures:
            written["components"] = self._components_figure(out / "dla_components.png")
            if self.has_heads:
                written["heads"] = self._heads_figure(out / "dla_heads.png")
        return written

    def _components_figure(self, path: Path) -> Path:
        import matplotlib.pyplot as plt

        from interp_steer.plotting import save_figure

        summary = self.summary()
        fig, ax = plt.subplots(figsize=(8, 3.6))
        layers = sorted({c["layer"] for c in self.components if c["layer"] is not None})
        for offset, kind, colour in ((-0.2, "attn", "tab:blue"), (0.2, "mlp", "tab:orange")):
            rows = {c["layer"]: c["value"] for c in summary["components"] if c["kind"] == kind}
            x = np.array(layers) + offset
            mean = np.array([rows[layer]["mean"] for layer in layers])
            err = np.array([[rows[layer]["mean"] - rows[layer]["low"], rows[layer]["high"] - rows[layer]["mean"]]
                            for layer in layers]).T
            ax.bar(x, mean, width=0.4, color=colour, label=kind, yerr=np.nan_to_num(err), capsize=1.5)
        for c in summary["components"]:
            if c["kind"] == "steering" and c["value"]["mean"] != 0:
                ax.bar(c["layer"], c["value"]["mean"], width=0.25, color="tab:red", label="steering delta")
        embed = next(c for c in summary["components"] if c["kind"] == "embed")
        ax.bar(-1, embed["value"]["mean"], width=0.4, color="grey", label="embed")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlabel("layer (−1: embedding)")
        ax.set_ylabel("share of Δ logit difference")
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
        diff = summary["difference_total"]
        ax.set_title(f"{self.model}: shares of Δm = {diff['mean']:+.3f} (steered − reference), "
                     f"{len(self.prompts)} prompt(s)", fontsize=9)
        return save_figure(fig, path)

    def _heads_figure(self, path: Path) -> Path:
        from interp_steer.plotting import plot_heatmap, save_figure

        grid = np.asarray(self.summary()["heads"]["mean"])
        bound = float(np.nanmax(np.abs(grid))) or 1.0
        ax = plot_heatmap(grid, row_labels=list(range(grid.shape[0])), col_labels=list(range(grid.shape[1])),
                          title="heads: mean share of Δ logit difference", cbar_label="logit difference",
                          vmin=-bound, vmax=bound)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        return save_figure(ax, path)

    def _repr_html_(self) -> str:
        from interp_steer.display import dla_html

        return dla_html(self)

    def __repr__(self) -> str:
        from interp_steer.display import one_line

        diff = self.summary()["difference_total"]
        return one_line("DlaResult", model=self.model, prompts=len(self.prompts),
                        delta=f"{diff['mean']:+.3f}", heads=self.has_heads)


# ----------------------------------------------------------------------------------------- the API


def _difference(reference: dict[str, Any], steered: dict[str, Any]) -> dict[str, Any]:
    ratio = steered["scale"] / reference["scale"]
    out: dict[str, Any] = {}
    for key in ("values", "heads"):
        if key not in reference:
            continue
        s, r = steered[key], reference[key]
        value = s - r
        # direct: (L(c_s) − L(c_r)) / σ_r, with L(c) = contribution · σ of its own run
        direct = s * ratio - r
        if key == "values":
            out["value"], out["direct"], out["rescale"] = value, direct, value - direct
        else:
            out["heads"], out["heads_direct"] = value, direct
    out["total"] = steered["actual"] - reference["actual"]
    out["sum"] = float(out["value"].sum())
    out["remainder"] = steered["remainder"] - reference["remainder"]
    return out


def direct_logit_attribution(model: Model, prompts: Sequence[str], steering: Steering, *,
                             tokens_a: Sequence[int | str], tokens_b: Sequence[int | str] = (),
                             reference: Steering | None = None, chat: bool | None = None,
                             level: float = 0.95) -> DlaResult:
    """Direct logit attribution of ``m = mean logit(tokens_a) − mean logit(tokens_b)`` at each
    prompt's final position, in a ``reference`` run (unsteered when None) and under ``steering``, and
    of the change between them (see the module docstring). ``tokens_*`` are ids or words of one
    token each; ``tokens_b`` may be empty (then ``m`` is the mean logit of ``tokens_a``). Prompts are
    chat-formatted as :func:`interp_steer.generate` formats them; ``"after_prompt"`` steers from
    their last token on."""
    reject_bare_string(prompts, "prompts")
    from interp_steer.generation import format_prompts
    from interp_steer.lens import describe_steering
    from interp_steer.vocab import token_ids

    prompts = list(prompts)
    if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise ValueError("prompts must be a non-empty list of non-empty strings")
    for name, spec in (("steering", steering), ("reference", reference)):
        if spec is None and name == "reference":
            continue
        if not isinstance(spec, Steering):
            raise TypeError(f"{name} must be an interp_steer.Steering, got {type(spec).__name__}")
        if spec.n_rows not in (None, 1):
            raise ValueError(f"{name}: a per-row steering (RowDeltas, RowMix) must be for one row: DLA runs one "
                             "prompt at a time")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    ids_a, ids_b = token_ids(model, tokens_a), token_ids(model, tokens_b)
    if not ids_a:
        raise ValueError("tokens_a is empty: the metric needs at least one token")
    if set(ids_a) & set(ids_b):
        raise ValueError(f"tokens {sorted(set(ids_a) & set(ids_b))} are in both tokens_a and tokens_b")
    ids, w = _weights(ids_a, ids_b) if ids_b else (ids_a, torch.full((len(ids_a),), 1 / len(ids_a), dtype=torch.float64))
    texts, prompt_lengths = format_prompts(model, prompts, chat=chat, system=None)
    model.bridge.eval()
    entries, labels, gaps, mid_steered = [], None, [], False
    for prompt, text, length in zip(prompts, texts, prompt_lengths, strict=True):
        tokens = torch.tensor([model.encode([text])[0]], device=model.device)
        entry: dict[str, Any] = {"prompt": prompt}
        for run, spec in zip(RUNS, (reference, steering), strict=True):
            writes = _capture(model, tokens, spec, length)
            if labels is None:
                labels = writes.labels
            elif writes.labels != labels:  # a "between blocks" write appeared in one run only
                raise RuntimeError(f"components differ between runs: {writes.labels} vs {labels}")
            gaps.append(writes.heads_gap)
            mid_steered = mid_steered or writes.mid_steered
            entry[run] = _readout(model, writes, ids, w)
        if ("heads" in entry["reference"]) != ("heads" in entry["steered"]):
            for run in RUNS:
                entry[run].pop("heads", None)
                entry[run].pop("head_bias", None)
        entry["difference"] = _difference(entry["reference"], entry["steered"])
        entries.append(entry)
    # Steering terms that are zero in every run of every prompt are not components of these runs.
    keep = [i for i, (kind, _, _) in enumerate(labels)
            if kind != "steering" or any(e[run]["values"][i] != 0 for e in entries for run in RUNS)]
    has_heads = all("heads" in e["reference"] for e in entries)
    for e in entries:
        for run in RUNS:
            e[run]["values"] = e[run]["values"][keep]
        for part in PARTS:
            e["difference"][part] = e["difference"][part][keep]
        for block in (*RUNS, "difference"):
            if not has_heads:
                for key in ("heads", "head_bias", "heads_direct"):
                    e[block].pop(key, None)
    note = None if has_heads else (
        f"the heads' outputs do not add up to the attention outputs (largest relative gap {max(gaps):.2g} > "
        f"{HEADS_TOLERANCE}): this family's attention output is not linear in its heads")
    metric = {"tokens_a": [model.tokenizer.decode([t]) for t in ids_a],
              "tokens_b": [model.tokenizer.decode([t]) for t in ids_b], "token_ids_a": ids_a, "token_ids_b": ids_b,
              "heads_gap": max(gaps)}
    components = [{"kind": labels[i][0], "layer": labels[i][1], "point": labels[i][2]} for i in keep]
    runs = {"reference": None if reference is None else describe_steering(reference),
            "steered": describe_steering(steering)}
    if mid_steered:
        runs["note"] = ("a steering at resid_mid changes the MLP's input only (the hook is the MLP norm's input; the "
                        "block adds the MLP's output to its own copy of the residual), so it has no direct share: "
                        "its effect is inside the MLP's")
    return DlaResult(model=model.name, metric=metric, runs=runs,
                     components=components, prompts=entries, n_heads=int(model.bridge.cfg.n_heads),
                     heads_note=note, level=level)


__all__ = ["DlaResult", "direct_logit_attribution"]
