"""Stage 5 of the SVF comparison: does the effect last? The primary cells' completions (vector, field
and unsteered, at the primary coefficient) continued to ``long_tokens``, scored on their first,
middle and last third of generated tokens. A/B questions have no long completion to follow."""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_steer.data import reject_bare_strings
from interp_steer.generation import Generation
from interp_steer.models import Model
from interp_steer.stats import ratio_of_means, summarise, t_interval
from interp_steer.studies._common import score_texts
from interp_steer.studies.concept import Scorer
from interp_steer.studies.svf.config import SvfConfig

LONG_FORM_AB = ("A/B mode reads the concept as P(matching answer), which has no open-ended score to follow over a "
                "long completion; run with --positive/--negative or --pairs for it")


def thirds(model: Model, generation: Generation) -> list[str]:
    """The generated tokens (end-of-sequence and other special tokens dropped) cut into three equal
    parts by count, each decoded; empty strings when there are fewer than three tokens."""
    special = set(model.tokenizer.all_special_ids)
    ids = [t for t in generation.token_ids if t not in special]
    if len(ids) < 3:
        return ["", "", ""]
    a, b = len(ids) // 3, 2 * len(ids) // 3
    return [model.tokenizer.decode(part, skip_special_tokens=True) for part in (ids[:a], ids[a:b], ids[b:])]


def measure_long_form(model: Model, config: SvfConfig, outputs: list[Generation], prompts: list[str], score: Scorer,
               direction: int) -> dict[str, Any]:
    """The effect on the first, middle and last third of the long completions at the primary
    coefficient (``outputs``: per prompt, unsteered, vector, field; see :func:`~interp_steer.studies.svf.evaluation.evaluate_open`)."""
    reject_bare_strings(prompts=prompts)
    c = config.primary_coefficient
    cells = [("unsteered", 0.0), ("vector", c), ("field", c)]
    parts = [thirds(model, g) for g in outputs]
    flat = [text for p in parts for text in p]
    values = score_texts(score, [t if t.strip() else "" for t in flat]).reshape(len(prompts), len(cells), 3)
    empty = np.array([[not t.strip() for t in p] for p in parts]).reshape(len(prompts), len(cells), 3)
    values = np.where(empty, np.nan, values)
    sign = 1 if c > 0 else -1
    effects = {method: (values[:, k] - values[:, 0]) * direction * sign for k, (method, _) in enumerate(cells) if k}
    out: dict[str, Any] = {"status": "measured", "coefficient": c, "tokens": config.long_tokens,
                           "parts": ["first third", "middle third", "last third"],
                           "unsteered_score": [summarise(values[:, 0, t], seed=config.seed).to_dict() for t in range(3)],
                           "n_words": {m: float(np.mean([len(g.text.split()) for g in outputs[k :: len(cells)]]))
                                       for k, (m, _) in enumerate(cells)},
                           "samples": {m: [outputs[i * len(cells) + k].text for i in range(min(config.keep_samples, len(prompts)))]
                                       for k, (m, _) in enumerate(cells)},
                           "definition": ("effect per third: (score of that third of the steered completion − score of the "
                                          "same third of the unsteered one) · direction · sign(c); thirds by generated "
                                          "token count; decay = last − first; retention = mean(last) / mean(first) "
                                          "(Fieller), what the long-form claim is judged on")}
    for method, e in effects.items():
        out[method] = {"effect": [t_interval(e[:, t]).to_dict() for t in range(3)],
                       "decay": t_interval(e[:, 2] - e[:, 0]).to_dict(),
                       "retention": ratio_of_means(e[:, 2], e[:, 0]).to_dict()}
    out["per_prompt"] = {method: e.tolist() for method, e in effects.items()}
    return out


__all__ = ["LONG_FORM_AB", "measure_long_form", "thirds"]
