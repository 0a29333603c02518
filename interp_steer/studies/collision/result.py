"""What a Creative Collision study measured: :class:`CollisionResult` (the content of
``collision.json``), its :class:`Finding` verdicts, and the JSON :func:`schema`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp_steer.directions import SteeringVector
from interp_steer.fields import SteeringField
from interp_steer.probes import Localisation
from interp_steer.studies._common import (
    Judged,
    NotSaved,
    Restored,
    SavedRun,
    load_schema,
    read_result,
    result_header,
)
from interp_steer.studies.collision.config import CollisionConfig, ScoreConfig
from interp_steer.studies.mixing import Dominance

AXES = {
    "moral_valence": ("vader", "probe_valence"),
    "coherence": ("perplexity", "repetition", "distinct_1", "distinct_2"),
    "surface_style": ("style_a", "n_words", "mean_sentence_length", "type_token_ratio",
                      "punctuation_per_word", "exclamations_per_sentence", "reading_ease"),
}
"""Which per-completion metrics make up each evaluation axis (dominance and geometry are derived)."""

SCHEMA_VERSION = 1


class Finding(Judged):
    """One of the paper's findings, judged on this run: ``verdict`` is ``"reproduced"``,
    ``"not reproduced"`` or ``"inconclusive"``; ``summary`` says why, with the numbers."""


@dataclass(frozen=True, eq=False)
class CollisionResult(Restored):
    """Everything a collision study measured. ``to_dict()`` is the content of ``collision.json``
    (schema: ``schema.json`` here, :func:`schema`); :meth:`save` writes it with figures and report;
    :meth:`load` reads a finished run back."""

    model: dict[str, Any]
    config: CollisionConfig
    data: dict[str, Any]
    layer: int
    localisation: Localisation
    geometry: dict[str, Any]
    vector_a: SteeringVector
    vector_b: SteeringVector
    prompts: list[str]
    unsteered: dict[str, Any]
    cells: list[dict[str, Any]]
    per_prompt: dict[str, np.ndarray]  # metric -> [lambdas, alphas, prompts]
    per_prompt_unsteered: dict[str, np.ndarray]  # metric -> [prompts]
    dominance: dict[str, list[Dominance]]  # score -> one per lambda
    coherence: dict[str, Any]
    style: dict[str, Any]
    readout: dict[str, Any]
    decomposition: dict[str, Any]
    findings: list[Finding]
    timings: dict[str, float] = field(default_factory=dict)
    fields: dict[str, Any] | None = None  # method="field": each persona field's form and held-out fit
    field_a: SteeringField | None = None  # method="field": the fields the grid steered with
    field_b: SteeringField | None = None
    generations: list[Any] | None = None
    """Every completion of the grid as :class:`~interp_steer.data.CompletionRecord` (written as
    ``generations.jsonl`` when ``config.save_generations``)."""

    def cell(self, lam: float, alpha: float) -> dict[str, Any]:
        for c in self.cells:
            if math.isclose(c["lambda"], lam) and math.isclose(c["alpha"], alpha):
                return c
        raise KeyError(f"no cell (lambda={lam}, alpha={alpha}); the grid has lambdas {list(self.config.lambdas)} "
                       f"and alphas {list(self.config.alphas)}")

    def __repr__(self) -> str:
        from interp_steer.display import one_line, verdict_counts

        return one_line("CollisionResult", model=self.model.get("name", "?"), layer=self.layer,
                        grid=f"{len(self.config.lambdas)} lambdas x {len(self.config.alphas)} alphas",
                        prompts=len(self.prompts), verdicts=verdict_counts(self.findings))

    def _repr_html_(self) -> str:
        from interp_steer.studies.collision.report import render_html

        return render_html(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            **result_header(SCHEMA_VERSION, self.config, self.model),
            "data": self.data,
            "layer": self.layer,
            "grid": {"alphas": list(self.config.alphas), "lambdas": list(self.config.lambdas),
                     "lambda_units": "mean residual norm at the steering layer",
                     "method": self.config.method,
                     "formula": ("v(alpha, lambda) = lambda * (alpha * vhat_A + (1 - alpha) * vhat_B)"
                                 if self.config.method == "vector" else
                                 "delta(h) = lambda * |h|_m * (alpha * ghat_A(h) + (1 - alpha) * ghat_B(h)), ghat = unit "
                                 "gradient of each persona field's scorer at the activation h")},
            "fields": self.fields,
            "axes": {k: list(v) for k, v in AXES.items()},
            "localisation": self.localisation.to_dict(),
            "geometry": self.geometry,
            "prompts": self.prompts,
            "unsteered": self.unsteered,
            "cells": self.cells,
            "dominance": {score: [d.to_dict() for d in per_lambda] for score, per_lambda in self.dominance.items()},
            "coherence": self.coherence,
            "style_classifier": self.style,
            "readout": self.readout,
            "decomposition": self.decomposition,
            "findings": [f.to_dict() for f in self.findings],
            "timings_s": self.timings,
        }

    def to_frame(self, table: str = "cells"):
        """A tidy table (:mod:`interp_steer.frames`): ``"cells"``, rows (λ, α, metric) with ``value``,
        ``low``, ``high``, ``n`` (the unsteered run is λ = 0, α = NaN); ``"dominance"``, d(α) per
        valence score and λ; ``"findings"``, the verdicts."""
        from interp_steer import frames

        return frames.choose(table, {"cells": lambda: frames.collision_cells_frame(self.to_dict()),
                                     "dominance": lambda: frames.collision_dominance_frame(self.to_dict()),
                                     "findings": lambda: frames.judged_frame(self.findings)})

    def save(self, out: str | Path, *, figures: bool = True) -> dict[str, Path]:
        """Write ``collision.json``, the vectors (and fields), the PNG figures and ``report.md`` under ``out``."""
        # Imported here: the report depends on the result, never the reverse.
        from interp_steer.studies.collision.report import write_outputs

        return write_outputs(self, Path(out), figures=figures)

    @classmethod
    def load(cls, path: str | Path) -> CollisionResult:
        """The result a run saved: ``path`` is its output folder (or its ``collision.json``). The
        vectors (and fields) are read from the ``.safetensors`` files beside it and the completions
        from ``generations.jsonl`` when the run wrote one. ``per_prompt`` and ``per_prompt_unsteered``
        are not in the file: reading them raises :class:`~interp_steer.studies._common.NotSavedError`,
        as does a vector or the completions where their file is absent; each
        :class:`~interp_steer.studies.mixing.Dominance`'s per-prompt ``scaled`` scores are empty.
        Everything else (``to_dict``, ``to_frame``, the display) is as the run left it."""
        run = read_result(path, "collision.json", cls.__name__, SCHEMA_VERSION)
        d = run.data
        if "imported" in d:
            raise ValueError(f"{run.file}: completions scored by `interp-steer score`, not a collision run: load it "
                             "with ImportedResult.load")
        config = CollisionConfig.from_dict(d["config"])
        per_prompt = NotSaved("per_prompt", f"{run.file} holds each cell's mean and interval, not its per-prompt scores")
        return cls.restored(
            model=d["model"], config=config, data=d["data"], layer=d["layer"],
            localisation=_localisation(d["localisation"]), geometry=d["geometry"],
            vector_a=_tensor_file(run, "persona_a.safetensors", SteeringVector, "vector_a"),
            vector_b=_tensor_file(run, "persona_b.safetensors", SteeringVector, "vector_b"),
            prompts=d["prompts"], unsteered=d["unsteered"], cells=d["cells"],
            per_prompt=per_prompt, per_prompt_unsteered=NotSaved("per_prompt_unsteered", per_prompt.why),
            dominance={score: [_dominance(entry) for entry in per_lambda] for score, per_lambda in d["dominance"].items()},
            coherence=d["coherence"], style=d["style_classifier"], readout=d["readout"],
            decomposition=d["decomposition"], findings=[Finding(**f) for f in d["findings"]], timings=d["timings_s"],
            fields=d["fields"],
            field_a=None if d["fields"] is None else _tensor_file(run, "persona_a_field.safetensors", SteeringField, "field_a"),
            field_b=None if d["fields"] is None else _tensor_file(run, "persona_b_field.safetensors", SteeringField, "field_b"),
            generations=_generations(run))


@dataclass(frozen=True)
class SavedGrid(Restored):
    """An imported grid as its result file describes it (:meth:`ImportedResult.load`): the prompts,
    α and λ values, samples and counts of :class:`~interp_steer.studies.collision.imported.ImportedGrid`;
    its completions (``rows``) are not in the file."""

    prompts: list[str]
    alphas: tuple[float, ...]
    lambdas: tuple[float, ...]
    n_samples: int
    n_completions: int
    excluded: list[dict[str, Any]]
    rows: Any = NotSaved("rows", "collision.json of `interp-steer score` holds the scores, not the completions; "
                                 "read them from the file it scored (imported.source)")

    @property
    def cells(self) -> list[tuple[float, float | None]]:
        return [(0.0, None)] + [(lam, alpha) for lam in self.lambdas for alpha in self.alphas]


@dataclass(frozen=True, eq=False)
class ImportedResult(Restored):
    """Completions made elsewhere, scored on the collision study's axes
    (:func:`interp_steer.studies.collision.imported.score`); ``to_dict()`` is the content of its
    ``collision.json`` (this schema, with an ``imported`` block); :meth:`load` reads one back."""

    source: str
    config: ScoreConfig
    grid: Any  # imported.ImportedGrid
    scorer: str | None
    generated_by: list[str]
    unsteered: dict[str, Any]
    cells: list[dict[str, Any]]
    per_prompt: dict[str, np.ndarray]
    per_prompt_unsteered: dict[str, np.ndarray]
    dominance: dict[str, Any]
    coherence: dict[str, Any]
    style: dict[str, Any]
    readout: dict[str, Any]
    localisation: dict[str, Any]
    findings: list[dict[str, Any]]
    notes: dict[str, Any]
    n_lines: int
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from interp_steer import __version__
        grid = self.grid
        expected = len(grid.prompts) * grid.n_samples * len(grid.cells)
        done = grid.n_completions
        return {
            "schema_version": SCHEMA_VERSION, "library_version": __version__,
            "imported": {"source": self.source, "n_lines": self.n_lines, "scored_by": self.scorer,
                         "generated_by": self.generated_by, "alpha_means": self.config.alpha_means,
                         "lambda_units": self.config.lambda_units,
                         "completeness": {"prompts": len(grid.prompts), "samples": grid.n_samples,
                                          "cells": len(grid.cells), "completions": done,
                                          "missing_completions": expected - done},
                         "excluded": grid.excluded, **self.notes},
            "model": {"name": self.scorer or "none (text metrics only)"},
            "config": self.config.to_dict(),
            "seed": self.config.seed,
            "grid": {"alphas": list(grid.alphas), "lambdas": list(grid.lambdas), "lambda_units": self.config.lambda_units},
            "axes": {k: list(v) for k, v in AXES.items()},
            "localisation": self.localisation,
            "prompts": grid.prompts,
            "unsteered": self.unsteered,
            "cells": self.cells,
            "dominance": self.dominance,
            "coherence": self.coherence,
            "style_classifier": self.style,
            "readout": self.readout,
            "findings": self.findings,
            "timings_s": self.timings,
        }

    def to_frame(self, table: str = "cells"):
        """A tidy table (:mod:`interp_steer.frames`), as for the study's own result: ``"cells"`` or
        ``"dominance"`` (strengths where d(α) could not be computed have no rows)."""
        from interp_steer import frames

        return frames.choose(table, {"cells": lambda: frames.collision_cells_frame(self.to_dict()),
                                     "dominance": lambda: frames.collision_dominance_frame(self.to_dict())})

    def _repr_html_(self) -> str:
        from interp_steer.display import block, esc, fields_line, table

        data = self.to_dict()
        done = data["imported"]["completeness"]
        rows = [(esc(f["key"]), esc(f"not judged: {f['missing']}" if "missing" in f else f["verdict"])) for f in self.findings]
        return block("Imported completions, scored on the collision axes",
                     fields_line([("source", self.source), ("scored by", self.scorer or "text metrics only"),
                                  ("prompts", done["prompts"]), ("cells", done["cells"]),
                                  ("missing completions", done["missing_completions"])]),
                     table(["finding", "verdict"], rows))

    def __repr__(self) -> str:
        from interp_steer.display import one_line

        return one_line("ImportedResult", source=self.source, scorer=self.scorer or "none", prompts=len(self.grid.prompts),
                        cells=len(self.cells))

    def save(self, out: str | Path, *, figures: bool = True) -> dict[str, Path]:
        """``collision.json``, ``imported.png`` and ``report.md`` under ``out``."""
        from interp_steer.studies.collision.report import write_imported_outputs

        return write_imported_outputs(self, Path(out), figures=figures)

    @classmethod
    def load(cls, path: str | Path) -> ImportedResult:
        """The result ``interp-steer score`` (or :meth:`save`) wrote: ``path`` is its output folder
        (or its ``collision.json``). The file holds the scores, not the completions: ``per_prompt``,
        ``per_prompt_unsteered`` and ``grid.rows`` raise
        :class:`~interp_steer.studies._common.NotSavedError` (``grid`` is a :class:`SavedGrid`), so the
        figure of :meth:`save` cannot be redrawn (``save(figures=False)`` can); ``to_dict``,
        ``to_frame`` and the display are as the scoring left them."""
        run = read_result(path, "collision.json", cls.__name__, SCHEMA_VERSION)
        d = run.data
        if "imported" not in d:
            raise ValueError(f"{run.file}: a collision run, not completions scored by `interp-steer score`: load it "
                             "with CollisionResult.load")
        imported = dict(d["imported"])
        done = imported["completeness"]
        grid = SavedGrid(d["prompts"], tuple(d["grid"]["alphas"]), tuple(d["grid"]["lambdas"]), done["samples"],
                         done["completions"], imported["excluded"])
        per_prompt = NotSaved("per_prompt", f"{run.file} holds each cell's mean and interval, not its per-prompt scores")
        for key in ("source", "n_lines", "scored_by", "generated_by", "alpha_means", "lambda_units", "completeness",
                    "excluded"):
            imported.pop(key)
        return cls.restored(source=d["imported"]["source"], config=ScoreConfig.from_dict(d["config"]), grid=grid,
                   scorer=d["imported"]["scored_by"], generated_by=d["imported"]["generated_by"],
                   unsteered=d["unsteered"], cells=d["cells"], per_prompt=per_prompt,
                   per_prompt_unsteered=NotSaved("per_prompt_unsteered", per_prompt.why), dominance=d["dominance"],
                   coherence=d["coherence"], style=d["style_classifier"], readout=d["readout"],
                   localisation=d["localisation"], findings=d["findings"], notes=imported,
                   n_lines=d["imported"]["n_lines"], timings=d["timings_s"])


def _tensor_file(run: SavedRun, name: str, kind: type, field_name: str):
    path = run.file_or_none(name)
    return run.not_saved(field_name, name) if path is None else kind.load(path)


def _generations(run: SavedRun):
    from interp_steer.data import load_generations

    path = run.file_or_none("generations.jsonl")
    if path is None:
        return run.not_saved("generations", "generations.jsonl", " (a run writes it with save_generations=True)")
    return load_generations(path)


def _localisation(data: dict[str, Any]) -> Localisation:
    from interp_steer.probes import LayerProfile

    return Localisation({name: LayerProfile.from_dict(p) for name, p in data["concepts"].items()},
                        data["shared_layer"], data["best_layers_indistinguishable"])


def _interval(data: dict[str, Any]):
    from interp_steer.stats import Interval

    return Interval(_number(data["mean"]), _number(data["low"]), _number(data["high"]), data["n"],
                    data.get("note", ""), data.get("aggregate", "mean"))


def _number(value: float | None) -> float:
    return float("nan") if value is None else value


def _numbers(values: list[float | None]) -> tuple[float, ...]:
    return tuple(_number(v) for v in values)


def _dominance(data: dict[str, Any]) -> Dominance:
    """The inverse of :meth:`Dominance.to_dict` (JSON's nulls back to NaN). The file does not hold the
    per-prompt ``scaled`` scores: they are left empty (shape ``(0, 0)``, the field's default)."""
    return Dominance(
        score=data["score"], alphas=tuple(data["alphas"]), curve=_numbers(data["d"]), curve_low=_numbers(data["d_low"]),
        curve_high=_numbers(data["d_high"]), area=_interval(data["area"]), balance_point=_number(data["balance_point"]),
        balance_low=_number(data["balance_low"]), balance_high=_number(data["balance_high"]),
        ends=_interval(data["ends_difference"]), verdict=data["verdict"], reason=data["reason"], scale=data["scale"],
        area_low_90=_number(data["area_90"]["low"]), area_high_90=_number(data["area_90"]["high"]),
        area_se=_number(data["area_se"]), ends_scaled=_interval(data["ends_difference_scaled"]),
        n_dropped=data["n_dropped"])


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``collision.json``."""
    return load_schema(__package__)


__all__ = ["AXES", "SCHEMA_VERSION", "CollisionResult", "Finding", "ImportedResult", "SavedGrid", "schema"]
