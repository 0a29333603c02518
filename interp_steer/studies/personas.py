"""Two persona corpora against a baseline: the inputs and the first stage of the persona studies.

- :func:`study_inputs` loads (or takes) the persona corpora, the baseline and the prompts, keeps the
  first ``max_passages``/``max_prompts`` and describes each for the result file;
- :func:`build_personas` turns the three corpora into persona vectors at every layer, probes each
  layer and picks the steering layer.

The collision study and dominance patching both start here, so they read the same data the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from interp_steer.activations import collect_positions
from interp_steer.data import (
    dataset_hash,
    load_builtin,
    load_corpus,
    load_prompts,
    reject_bare_string,
    reject_bare_strings,
)
from interp_steer.directions import SteeringVector, from_activations
from interp_steer.models import Model
from interp_steer.probes import Localisation, compare_profiles, probe_layers
from interp_steer.studies.mixing import common_scale

Texts = Sequence[str] | str | Path | None
"""A corpus or prompt list: texts, a file path, or ``None`` for the built-in one."""


class StudyTexts(NamedTuple):
    """The texts a persona study reads, after loading and capping."""

    persona_a: list[str]
    persona_b: list[str]
    baseline: list[str]
    prompts: list[str]


def study_inputs(persona_a: Texts, persona_b: Texts, baseline: Texts, prompts: Texts, *,
                 max_passages: int | None, max_prompts: int | None,
                 min_passages: int) -> tuple[dict[str, Any], StudyTexts]:
    """Load (or take) the two persona corpora, the baseline and the prompts (``None``: the built-in
    ones), keep the first ``max_passages``/``max_prompts``, and describe each for the JSON."""
    reject_bare_strings(persona_a=persona_a, persona_b=persona_b, baseline=baseline, prompts=prompts, path_ok=True)
    def corpus(value, builtin: str, loader) -> tuple[list[str], str]:
        if value is None:
            return list(load_builtin(builtin)), f"built-in:{builtin}"
        reject_bare_string(value, builtin, path_ok=True)
        if isinstance(value, (str, Path)):
            return loader(value), str(value)
        items = list(value)
        if not items or not all(isinstance(t, str) and t.strip() for t in items):
            raise ValueError(f"{builtin}: pass a file path or a non-empty list of non-empty strings")
        return items, "list"

    out_texts, data = [], {}
    for name, value, builtin, cap, loader in (
        ("persona_a", persona_a, "persona_a", max_passages, load_corpus),
        ("persona_b", persona_b, "persona_b", max_passages, load_corpus),
        ("baseline", baseline, "baseline", max_passages, load_corpus),
        ("prompts", prompts, "prompts", max_prompts, load_prompts),
    ):
        texts, source = corpus(value, builtin, loader)
        used = texts[:cap] if cap else texts
        minimum = 2 if name == "prompts" else min_passages
        if len(used) < minimum:
            raise ValueError(f"{name} ({source}) has {len(used)} texts; the study needs at least {minimum}")
        data[name] = {"source": source, "n_available": len(texts), "n_used": len(used), "sha256": dataset_hash(used)}
        out_texts.append(used)
    return data, StudyTexts(*out_texts)


@dataclass(frozen=True, eq=False)
class Personas:
    """Two persona vectors against a baseline, their localisation and the chosen steering layer.

    ``raw_a``/``raw_b`` are the mean differences; ``v_a``/``v_b`` the same directions on the common
    scale (unit norm times ``resid_norm[layer]``, the mean residual norm over all three corpora).
    ``profiles`` holds the probe profiles "A vs baseline", "B vs baseline" and "A vs B".
    ``pooled_a``/``pooled_b``: the same passages mean-pooled (``position="mean"``) at every layer, read
    from the same forward passes, when :func:`build_personas` was asked for them (``pooled=True``).
    """

    raw_a: SteeringVector
    raw_b: SteeringVector
    v_a: SteeringVector
    v_b: SteeringVector
    act_a: Any
    act_b: Any
    resid_norm: dict[int, float]
    profiles: dict[str, Any]
    localisation: Localisation
    layer: int
    act_base: Any = None
    pooled_a: Any = None
    pooled_b: Any = None


def build_personas(
    model: Model,
    persona_a: Sequence[str],
    persona_b: Sequence[str],
    baseline: Sequence[str],
    *,
    position: str = "last",
    folds: int = 5,
    seed: int = 0,
    layer: int | str = "auto",
    hashes: tuple[str, str] | None = None,
    progress: bool | None = None,
    on_stage: Callable[[str], Any] | None = None,
    pooled: bool = False,
) -> Personas:
    """Persona vectors at every layer from one collection of the three corpora, per-layer probes, and
    the steering layer (``"auto"``: the shared layer where the weakest of the three profiles is
    strongest). ``on_stage`` is called with ``"persona_vectors"`` and ``"localisation"`` as each ends.
    ``pooled=True`` also reads the persona passages mean-pooled, from the same forward passes."""
    reject_bare_strings(persona_a=persona_a, persona_b=persona_b, baseline=baseline)
    a_texts, b_texts, base_texts = list(persona_a), list(persona_b), list(baseline)
    positions = [position, "mean"] if pooled and position != "mean" else [position]
    read = collect_positions(model, a_texts + b_texts + base_texts, positions, progress=progress)
    acts = read[position]
    act_a, act_b, act_base = acts.split(len(a_texts), len(b_texts), len(base_texts))
    pooled_a, pooled_b = read["mean"].split(len(a_texts), len(b_texts), len(base_texts))[:2] if pooled else (None, None)
    norms = acts.values.norm(dim=-1).mean(0)
    resid_norm = {at: float(norms[i]) for i, at in enumerate(acts.layers)}
    hash_a, hash_b = hashes or (dataset_hash(a_texts), dataset_hash(b_texts))
    raw_a = from_activations(act_a, act_base, metadata={"dataset_hash": hash_a, "description": "persona A - baseline"})
    raw_b = from_activations(act_b, act_base, metadata={"dataset_hash": hash_b, "description": "persona B - baseline"})
    v_a, v_b = common_scale(raw_a, raw_b, resid_norm)
    if on_stage:
        on_stage("persona_vectors")
    profiles = {
        "A vs baseline": probe_layers(act_a, act_base, folds=folds, seed=seed, concept="A vs baseline"),
        "B vs baseline": probe_layers(act_b, act_base, folds=folds, seed=seed, concept="B vs baseline"),
        "A vs B": probe_layers(act_a, act_b, folds=folds, seed=seed, concept="A vs B"),
    }
    localisation = compare_profiles(profiles)
    chosen = localisation.shared_layer if layer == "auto" else model.resolve_layers([layer])[0]
    if on_stage:
        on_stage("localisation")
    return Personas(raw_a, raw_b, v_a, v_b, act_a, act_b, resid_norm, profiles, localisation, int(chosen), act_base,
                    pooled_a, pooled_b)


__all__ = ["Personas", "StudyTexts", "build_personas", "study_inputs"]
