"""Where concepts live in a model, as resumable work: :func:`localise`.

It computes what :func:`interp_steer.probes.probe_concepts` computes (each concept's activations
collected and probed at every layer, the profiles compared), with each concept one work unit
(:mod:`interp_steer.units`): an :class:`~interp_steer.execution.Execution` with a ``store`` keeps
finished concepts so that a re-run skips them, and its ``backend`` says where they run (``interp-steer
locate`` runs it so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from interp_steer.execution import Execution, as_execution
from interp_steer.models import Model
from interp_steer.probes import LayerProfile, Localisation, compare_profiles, probe_concepts
from interp_steer.units import Unit, run_key, run_units, text_hash


def localise(
    model: Model,
    concepts: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    *,
    layers: int | Sequence[int] | str | None = None,
    position: str | int = "last",
    folds: int = 5,
    seed: int = 0,
    batch_size: int = 16,
    execution: Execution | None = None,
) -> Localisation:
    """Collect activations for each concept's ``(positive_texts, negative_texts)`` on ``model`` and
    :func:`~interp_steer.probes.compare_profiles` them: per-concept layer profiles, and the shared
    layer for two or more.

    Each concept is a work unit (:mod:`interp_steer.units`): ``execution=Execution(store=DIR)``
    keeps finished ones so that a re-run skips them (``fresh=True`` discards them); its ``backend``
    says where they run and ``progress`` shows a bar over the concepts."""
    execution = as_execution(execution)
    if not concepts:
        raise ValueError("concepts is empty: pass {name: (positive_texts, negative_texts)}")
    settings = {"layers": layers if layers is None or isinstance(layers, str) else list(model.resolve_layers(layers)),
                "position": position, "folds": folds, "seed": seed, "batch_size": batch_size}
    items = [{"name": name, "positive": list(positive), "negative": list(negative)}
             for name, (positive, negative) in concepts.items()]
    data = {item["name"]: [text_hash(item["positive"]), text_hash(item["negative"])] for item in items}
    store = execution.open_store(run_key(model, settings, data))
    with execution.backend_for(model) as runner:
        results = run_units(_concept_unit, [Unit(f"concept-{i:03d}", {"name": item["name"], "texts": data[item["name"]]},
                                                 item=item) for i, item in enumerate(items)],
                            model=model, shared=settings, store=store, backend=runner, progress=execution.progress,
                            label="concepts")
    return compare_profiles({item["name"]: LayerProfile.from_dict(result)
                             for item, result in zip(items, results, strict=True)})


def _concept_unit(model: Any, settings: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    """One work unit of :func:`localise`: a concept's activations and layer profile."""
    name = item["name"]
    localisation = probe_concepts(model, {name: (item["positive"], item["negative"])}, layers=settings["layers"],
                                  position=settings["position"], folds=settings["folds"], seed=settings["seed"],
                                  batch_size=settings["batch_size"], progress=False)
    return localisation.profiles[name].to_dict()


__all__ = ["localise"]
