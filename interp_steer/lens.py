"""Logit lens of steered runs: what each layer would predict, with and without a steering.

For each prompt (chat-formatted as :func:`interp_steer.generate` formats it) the residual stream
before every block and after the last one is read through the model's final norm and unembedding
at the prompt's last ``window`` positions, once unsteered and once under the steering. This uses
TransformerLens 4.3's own :func:`~transformer_lens.tools.analysis.logit_lens.logit_lens`: it runs the
bridge with a cache of the residual hooks (the steering's hooks run in the same pass, so the cache
holds the steered residuals), applies the real final norm with recomputed statistics and the real
unembedding, and checks that its last entry reproduces the model's own logits. Per layer and
position the result holds:

- the KL divergence from the final layer's next-token distribution to the layer's, in nats
  (``KL(p_final || p_layer)``; 0 at the final entry by construction);
- the rank (0 = most likely) and probability of chosen tokens;
- at the last position, the steered-minus-unsteered logit of each chosen token and the tokens whose
  logit the steering raises and lowers most, per layer.

Entries are labelled as TransformerLens labels them: ``"{L}_pre"`` is the residual entering block
``L`` and ``"final_post"`` the last block's output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp_steer import vocab
from interp_steer.data import reject_bare_string
from interp_steer.models import Model
from interp_steer.steering import Steering

RUNS = ("unsteered", "steered")


@dataclass(frozen=True, eq=False)
class LensResult:
    """A logit lens of unsteered and steered runs (see the module docstring). Arrays per prompt are
    ``[entries, positions]`` (``positions`` are the prompt's last ``window`` tokens, oldest first)."""

    model: str
    steering: dict[str, Any]
    labels: list[str]
    tokens: list[str]
    token_ids: list[int]
    prompts: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "steering": self.steering, "entries": self.labels, "tokens": self.tokens,
                "token_ids": self.token_ids, "prompts": self.prompts,
                "definitions": {"kl": "KL(p_final || p_entry) in nats, next-token distributions at each position",
                                "rank": "0-based rank of the token in the entry's distribution (0 = most likely)",
                                "logit_diff": "steered minus unsteered logit of the token at the last position",
                                "entries": "'{L}_pre': residual entering block L; 'final_post': after the last block"}}

    def to_frame(self):
        """Tidy rows (prompt, run, entry, position, metric[, token]) with ``value``."""
        from interp_steer.frames import frame

        rows = []
        for p, entry in enumerate(self.prompts):
            for run in RUNS:
                kl = np.asarray(entry[run]["kl"])
                for i, label in enumerate(self.labels):
                    for j, position in enumerate(entry["positions"]):
                        rows.append({"prompt": p, "run": run, "entry": label, "position": position, "metric": "kl",
                                     "token": None, "value": float(kl[i, j])})
                        for t, token in enumerate(self.tokens):
                            for metric in ("rank", "prob"):
                                rows.append({"prompt": p, "run": run, "entry": label, "position": position,
                                             "metric": metric, "token": token,
                                             "value": float(entry[run][metric][t][i][j])})
            for t, token in enumerate(self.tokens):
                for i, label in enumerate(self.labels):
                    rows.append({"prompt": p, "run": "steered_minus_unsteered", "entry": label,
                                 "position": entry["positions"][-1], "metric": "logit_diff", "token": token,
                                 "value": float(entry["logit_diff"][t][i])})
        return frame(rows, ("prompt", "run", "entry", "position", "metric", "token", "value"))

    def save(self, out: str | Path, *, figures: bool = True) -> dict[str, Path]:
        """``lens.json`` and, per prompt, layer × position heatmaps of the KL to the final layer
        (unsteered, steered; log scale) and of the first chosen token's rank."""
        from interp_steer._io import write_json

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = {"json": write_json(out / "lens.json", self.to_dict())}
        if figures:
            for p in range(len(self.prompts)):
                written[f"prompt_{p}"] = self._figure(p, out / f"lens_prompt{p}.png")
        return written

    def _repr_html_(self) -> str:
        from interp_steer.display import lens_html

        return lens_html(self)

    def __repr__(self) -> str:
        from interp_steer.display import one_line

        return one_line("LensResult", model=self.model, prompts=len(self.prompts), entries=len(self.labels),
                        tokens=len(self.tokens))

    def _figure(self, p: int, path: Path) -> Path:
        import matplotlib.pyplot as plt

        from interp_steer.plotting import plot_heatmap, save_figure

        entry = self.prompts[p]
        # log scale: the embedding entry's KL (often 100+ nats) would otherwise wash out every later layer
        panels = [(f"KL to final, {run}", np.log10(1 + np.asarray(entry[run]["kl"])), "log10(1 + KL in nats)", "viridis")
                  for run in RUNS]
        if self.tokens:
            for run in RUNS:
                rank = np.log10(1 + np.asarray(entry[run]["rank"][0], dtype=float))
                panels.append((f"rank of {self.tokens[0]!r}, {run}", rank, "log10(1 + rank)", "magma_r"))
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.18 * len(self.labels) + 2.5))
        labels = [repr(t)[1:-1][:10] for t in entry["position_tokens"]]
        for ax, (title, matrix, unit, cmap) in zip(np.atleast_1d(axes), panels, strict=True):
            plot_heatmap(matrix, row_labels=self.labels, col_labels=labels, title=title, cbar_label=unit, cmap=cmap,
                         vmin=0, ax=ax)
            ax.tick_params(axis="x", labelrotation=90, labelsize=6)
            ax.tick_params(axis="y", labelsize=6)
        fig.suptitle(f"{self.model}: {entry['prompt'][:80]!r}", fontsize=9)
        return save_figure(fig, path)


def _lens(model: Model, ids: torch.Tensor, window: int) -> tuple[torch.Tensor, list[str]]:
    """``[entries, window, vocab]`` float32 logits of the accumulated residual stream."""
    from transformer_lens.tools.analysis.logit_lens import logit_lens

    result = logit_lens(model.bridge, ids, positions=(-window, None), return_type="logits")
    return result.values[:, 0].float().cpu(), list(result.labels)


def steered_lens(model: Model, prompts: Sequence[str], steering: Steering, *, tokens: Sequence[str] = (),
                 window: int = 12, top: int = 10, chat: bool | None = None) -> LensResult:
    """The logit lens of each prompt, unsteered and under ``steering`` (a :class:`Steering`: a
    vector, a mix of vectors or a field, at its layers and positions; ``"after_prompt"`` steers the
    last prompt token, the one that predicts the first generated token). ``tokens`` are words of one
    token each to follow; ``window`` is how many of the last positions to read; ``top`` how many
    tokens to list as raised and lowered most by the steering at the last position."""
    reject_bare_string(prompts, "prompts")
    from interp_steer.generation import format_prompts

    prompts = list(prompts)
    if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise ValueError("prompts must be a non-empty list of non-empty strings")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    if not isinstance(steering, Steering):
        raise TypeError(f"steering must be an interp_steer.Steering, got {type(steering).__name__}")
    if steering.n_rows not in (None, 1):
        raise ValueError("a per-row steering (RowDeltas, RowMix) must be for one row: the lens runs one prompt at a time")
    token_ids = vocab.token_ids(model, tokens)
    texts, prompt_lengths = format_prompts(model, prompts, chat=chat, system=None)
    entries, labels = [], None
    model.bridge.eval()
    for prompt, text, length in zip(prompts, texts, prompt_lengths, strict=True):
        ids = torch.tensor([model.encode([text])[0]], device=model.device)
        width = min(window, ids.shape[1])
        unsteered, labels = _lens(model, ids, width)
        with steering.applied(model, [length]):
            steered, _ = _lens(model, ids, width)
        entries.append(_describe(model, prompt, ids[0].tolist(), width, unsteered, steered, token_ids, top))
    return LensResult(model=model.name, steering=describe_steering(steering), labels=labels, tokens=list(tokens),
                      token_ids=token_ids, prompts=entries)


def _describe(model: Model, prompt: str, ids: list[int], width: int, unsteered: torch.Tensor, steered: torch.Tensor,
              token_ids: list[int], top: int) -> dict[str, Any]:
    positions = list(range(len(ids) - width, len(ids)))
    entry: dict[str, Any] = {"prompt": prompt, "positions": positions,
                             "position_tokens": [model.tokenizer.decode([ids[p]]) for p in positions]}
    for run, logits in zip(RUNS, (unsteered, steered), strict=True):
        logp = torch.log_softmax(logits, dim=-1)
        final = logp[-1:]
        kl = (final.exp() * (final - logp)).sum(-1).clamp_min(0)  # [entries, positions]
        record: dict[str, Any] = {"kl": kl.tolist(), "rank": [], "prob": [],
                                  "top_final": [model.tokenizer.decode([int(i)]) for i in logp[-1, -1].topk(5).indices]}
        for t in token_ids:
            record["rank"].append((logp > logp[..., t : t + 1]).sum(-1).tolist())
            record["prob"].append(logp[..., t].exp().tolist())
        entry[run] = record
    diff = steered[:, -1] - unsteered[:, -1]  # [entries, vocab]
    entry["logit_diff"] = [diff[:, t].tolist() for t in token_ids]
    k = min(top, diff.shape[-1])
    entry["raised"] = [[model.tokenizer.decode([int(i)]) for i in row.topk(k).indices] for row in diff]
    entry["lowered"] = [[model.tokenizer.decode([int(i)]) for i in (-row).topk(k).indices] for row in diff]
    if not math.isfinite(float(diff.abs().max())):
        raise FloatingPointError("the steered run's logits are not finite: lower the coefficient")
    return entry


def describe_steering(steering: Steering) -> dict[str, Any]:
    vector = steering.vector
    layers = steering.layers
    return {"kind": type(vector).__name__, "coefficient": steering.coefficient,
            "layers": None if layers is None else ([layers] if isinstance(layers, int) else list(layers)),
            "positions": steering.positions if isinstance(steering.positions, (str, int)) else "custom",
            "operator": steering.operator,
            # The unit the coefficient is in (a vector's normalisation: "none", "unit" or "resid"; a
            # field's coefficient is always in units of the layer's mean residual norm).
            "unit": getattr(getattr(vector, "metadata", None), "normalisation", None)
            if not hasattr(vector, "scorer") else "resid"}


__all__ = ["LensResult", "steered_lens"]
