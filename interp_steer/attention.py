"""Attention differences between two steered runs of the same prompt, for chosen heads.

Patching says which heads carry an effect; their attention patterns say what those heads read. For
each prompt and head this runs a ``source`` and a ``target`` steering (either may be None:
unsteered) and reads the head's attention pattern (``blocks.{L}.attn.hook_pattern``, the softmax the
head actually applied, so its rows sum to 1 and respect the causal and sliding-window masks). At the
final query position (the one that predicts the first generated token) it reports the source and
target rows over every key position, their difference, the total variation distance
``½ Σ |source − target|`` (0: the head reads the same positions; 1: disjoint ones) and the key positions
whose attention changes most, with their tokens. The last ``window`` queries × keys are kept for
figures: source, target and difference heatmaps per head.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp_steer.data import reject_bare_string
from interp_steer.models import Model
from interp_steer.steering import Steering

RUNS = ("source", "target")


def _patterns(model: Model, ids: torch.Tensor, steering: Steering | None, prompt_end: int,
              layers: set[int]) -> dict[int, torch.Tensor]:
    """``layer -> [heads, queries, keys]`` attention patterns of one run."""
    seen: dict[int, torch.Tensor] = {}

    def keeper(layer: int):
        def keep(pattern: torch.Tensor, hook) -> None:
            seen[layer] = pattern[0].detach().float().cpu()
        return keep

    scope = contextlib.nullcontext() if steering is None else steering.applied(model, [prompt_end])
    hooks = [(f"blocks.{layer}.attn.hook_pattern", keeper(layer)) for layer in sorted(layers)]
    with torch.no_grad(), scope, model.bridge.hooks(fwd_hooks=hooks):
        model.hf_model(input_ids=ids, logits_to_keep=1)
    return seen


@dataclass(frozen=True, eq=False)
class AttentionDifferences:
    """Per prompt and head (``"L.H"``): the final query's attention over keys in both runs, the
    positions whose attention changed most and the total variation distance; the last ``window``
    queries × keys of both patterns for figures. ``summary`` averages the distance over prompts and
    lists the ``top`` positions that moved most."""

    model: str
    heads: list[tuple[int, int]]
    runs: dict[str, Any]
    prompts: list[dict[str, Any]]
    window: int
    top: int = 5

    def summary(self) -> list[dict[str, Any]]:
        """Per head: mean total variation distance at the final query over prompts with a t interval,
        and the key positions (counted from the end) whose attention moved most on average."""
        from interp_steer.stats import t_interval

        rows = []
        for layer, head in self.heads:
            key = f"{layer}.{head}"
            tvd = t_interval([p["heads"][key]["tvd"] for p in self.prompts])
            # Align on positions from the end: prompts differ in length, their endings (the chat
            # template's assistant header) line up.
            width = min(len(p["heads"][key]["delta"]) for p in self.prompts)
            deltas = np.array([p["heads"][key]["delta"][-width:] for p in self.prompts])
            mean = deltas.mean(0)
            order = np.argsort(-np.abs(mean))[: self.top]
            rows.append({"layer": layer, "head": head, "tvd": tvd.to_dict(),
                         "moved_most": [{"position_from_end": int(i - width), "mean_delta": float(mean[i])}
                                        for i in order]})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "heads": [list(h) for h in self.heads], "runs": self.runs, "window": self.window,
                "top": self.top, "prompts": self.prompts, "summary": self.summary(),
                "definitions": {"delta": "source minus target attention of the final query to each key position",
                                "tvd": "total variation distance between the two final-query rows, 0 to 1",
                                "moved": "key positions with the largest |delta| (position, token, source, target)"}}

    def to_frame(self):
        """Tidy rows ``(prompt, layer, head, position, token, run, value)``: the final query's
        attention to each key position in each run."""
        from interp_steer.frames import frame

        rows = []
        for p, entry in enumerate(self.prompts):
            for layer, head in self.heads:
                record = entry["heads"][f"{layer}.{head}"]
                for run in RUNS:
                    for position, (token, value) in enumerate(zip(entry["tokens"], record[run], strict=True)):
                        rows.append({"prompt": p, "layer": layer, "head": head, "position": position, "token": token,
                                     "run": run, "value": value})
        return frame(rows, ("prompt", "layer", "head", "position", "token", "run", "value"), {"model": self.model})

    def save(self, out: str | Path, *, figures: bool = True, prompt: int = 0) -> dict[str, Path]:
        """``attention.json`` and, for one prompt, a figure per head: source, target and difference
        over the last ``window`` queries × keys."""
        from interp_steer._io import write_json

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = {"json": write_json(out / "attention.json", self.to_dict())}
        if figures:
            for layer, head in self.heads:
                written[f"{layer}.{head}"] = self._figure(prompt, layer, head, out / f"attention_L{layer}H{head}.png")
        return written

    def _figure(self, p: int, layer: int, head: int, path: Path) -> Path:
        import matplotlib.pyplot as plt

        from interp_steer.plotting import plot_heatmap, save_figure

        entry = self.prompts[p]
        record = entry["heads"][f"{layer}.{head}"]
        source, target = np.asarray(record["window_source"]), np.asarray(record["window_target"])
        labels = [repr(t)[1:-1][:10] for t in entry["tokens"][-source.shape[1]:]]
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
        bound = float(np.abs(source - target).max()) or 1.0
        top = float(max(source.max(), target.max())) or 1.0  # one scale for both runs
        for ax, (title, matrix, kwargs) in zip(axes, (
                (f"source ({self.runs['source']['label']})", source, {"vmin": 0, "vmax": top, "cmap": "viridis"}),
                (f"target ({self.runs['target']['label']})", target, {"vmin": 0, "vmax": top, "cmap": "viridis"}),
                ("source − target", source - target, {"vmin": -bound, "vmax": bound, "cmap": "RdBu_r"})), strict=True):
            plot_heatmap(matrix, row_labels=labels, col_labels=labels, title=title, cbar_label="attention", ax=ax,
                         **kwargs)
            ax.set_xlabel("key")
            ax.set_ylabel("query")
            ax.tick_params(axis="x", labelrotation=90, labelsize=6)
            ax.tick_params(axis="y", labelsize=6)
            ax.invert_yaxis()
        fig.suptitle(f"{self.model}, head {layer}.{head}: {entry['prompt'][:70]!r}", fontsize=9)
        return save_figure(fig, path)

    def _repr_html_(self) -> str:
        from interp_steer.display import attention_html

        return attention_html(self)

    def __repr__(self) -> str:
        from interp_steer.display import one_line

        return one_line("AttentionDifferences", model=self.model, heads=len(self.heads), prompts=len(self.prompts))


def _label(steering: Steering | None, label: str | None) -> dict[str, Any]:
    from interp_steer.lens import describe_steering

    if steering is None:
        return {"label": label or "unsteered"}
    return {"label": label or f"{type(steering.vector).__name__} × {steering.coefficient:g}",
            **describe_steering(steering)}


def attention_differences(model: Model, prompts: Sequence[str], heads: Sequence[tuple[int, int]], *,
                          source: Steering | None, target: Steering | None, window: int = 12, top: int = 5,
                          chat: bool | None = None, labels: tuple[str, str] | None = None) -> AttentionDifferences:
    """The attention of each ``(layer, head)`` in ``heads`` under the ``source`` and the ``target``
    steering (None: unsteered) on each prompt (chat-formatted as :func:`interp_steer.generate` formats
    it; see the module docstring). ``top``: how many most-changed key positions to list per head;
    ``labels``: names of the two runs for figures (e.g. ``("pure A", "mix α = 0.5")``)."""
    reject_bare_string(prompts, "prompts")
    from interp_steer.generation import format_prompts

    prompts = list(prompts)
    if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise ValueError("prompts must be a non-empty list of non-empty strings")
    heads = [(int(layer), int(head)) for layer, head in heads]
    if not heads:
        raise ValueError("heads is empty: give (layer, head) pairs")
    n_heads = int(model.bridge.cfg.n_heads)
    for layer, head in heads:
        if not (0 <= layer < model.n_layers and 0 <= head < n_heads):
            raise ValueError(f"head ({layer}, {head}) is outside {model.n_layers} layers × {n_heads} heads")
    for name, value in (("window", window), ("top", top)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, spec in (("source", source), ("target", target)):
        if spec is not None and not isinstance(spec, Steering):
            raise TypeError(f"{name} must be an interp_steer.Steering or None, got {type(spec).__name__}")
    texts, prompt_lengths = format_prompts(model, prompts, chat=chat, system=None)
    layers = {layer for layer, _ in heads}
    model.bridge.eval()
    entries = []
    for prompt, text, length in zip(prompts, texts, prompt_lengths, strict=True):
        ids = model.encode([text])[0]
        tensor = torch.tensor([ids], device=model.device)
        runs = {run: _patterns(model, tensor, spec, length, layers) for run, spec in zip(RUNS, (source, target),
                                                                                        strict=True)}
        tokens = [model.tokenizer.decode([t]) for t in ids]
        width = min(window, len(ids))
        record: dict[str, Any] = {}
        for layer, head in heads:
            rows = {run: runs[run][layer][head, -1] for run in RUNS}
            delta = rows["source"] - rows["target"]
            order = torch.argsort(-delta.abs())[: min(top, len(ids))].tolist()
            record[f"{layer}.{head}"] = {
                "source": rows["source"].tolist(), "target": rows["target"].tolist(), "delta": delta.tolist(),
                "tvd": float(delta.abs().sum() / 2),
                "moved": [{"position": i, "position_from_end": i - len(ids), "token": tokens[i],
                           "source": float(rows["source"][i]), "target": float(rows["target"][i])} for i in order],
                "window_source": runs["source"][layer][head, -width:, -width:].tolist(),
                "window_target": runs["target"][layer][head, -width:, -width:].tolist(),
            }
        entries.append({"prompt": prompt, "tokens": tokens, "heads": record})
    return AttentionDifferences(model=model.name, heads=heads, runs={"source": _label(source, labels and labels[0]),
                                                                    "target": _label(target, labels and labels[1])},
                                prompts=entries, window=window, top=top)


__all__ = ["AttentionDifferences", "attention_differences"]
