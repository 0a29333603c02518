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
from interp_steer.studies._common import Judged, load_schema, result_header
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
class CollisionResult:
    """Everything a collision study measured. ``to_dict()`` is the content of ``collision.json``
    (schema: ``schema.json`` here, :func:`schema`); :meth:`save` writes it with figures and report."""

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


@dataclass(frozen=True, eq=False)
class ImportedResult:
    """Completions made elsewhere, scored on the collision study's axes
    (:func:`interp_steer.studies.collision.imported.score`); ``to_dict()`` is the content of its
    ``collision.json`` (this schema, with an ``imported`` block)."""

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
        return {
            "schema_version": SCHEMA_VERSION, "library_version": __version__,
            "imported": {"source": self.source, "n_lines": self.n_lines, "scored_by": self.scorer,
                         "generated_by": self.generated_by, "alpha_means": self.config.alpha_means,
                         "lambda_units": self.config.lambda_units,
                         "completeness": {"prompts": len(grid.prompts), "samples": grid.n_samples,
                                          "cells": len(grid.cells), "completions": len(grid.rows),
                                          "missing_completions": expected - len(grid.rows)},
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


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``collision.json``."""
    return load_schema(__package__)


__all__ = ["AXES", "SCHEMA_VERSION", "CollisionResult", "Finding", "ImportedResult", "schema"]
