"""What an SVF comparison measured: :class:`SvfResult` (the content of ``svf.json``), its
:class:`Claim` verdicts, and the JSON :func:`schema`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_steer.directions import SteeringVector
from interp_steer.fields import SteeringField
from interp_steer.studies._common import Judged, Restored, load_schema, read_result, result_header
from interp_steer.studies.svf.config import SvfConfig

METHODS = ("vector", "field")
"""The two steering methods compared, in the order every table lists them."""

SCHEMA_VERSION = 1


class Claim(Judged):
    """One of the paper's claims, judged on this run: ``verdict`` is ``"reproduced"``,
    ``"not reproduced"`` or ``"inconclusive"``; ``summary`` says why, with the numbers; ``numbers``
    holds every number the rule used (its interval, margin, minimum detectable effect, n)."""


@dataclass(frozen=True, eq=False)
class SvfResult(Restored):
    """Everything an SVF comparison measured. ``to_dict()`` is the content of ``svf.json`` (schema:
    ``schema.json`` here, :func:`schema`); :meth:`save` writes it with the field, the vector, the
    figures and ``report.md``; :meth:`to_frame` gives tidy tables of its numbers; :meth:`load` reads a
    finished run back."""

    model: dict[str, Any]
    config: SvfConfig
    mode: str
    data: dict[str, Any]
    concept: dict[str, Any]
    layers: dict[str, Any]
    field: SteeringField
    vector: SteeringVector
    inputs: list[str]
    unsteered: dict[str, Any]
    cells: list[dict[str, Any]]
    noise_floor: dict[str, Any]
    anti_steerable: dict[str, Any] | None
    context_dependence: dict[str, Any]
    long_form: dict[str, Any]
    multi_attribute: dict[str, Any]
    claims: list[Claim]
    per_prompt: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def cell(self, method: str, coefficient: float | int) -> dict[str, Any]:
        """The summary of one (method, coefficient) cell."""
        for c in self.cells:
            if c["method"] == method and math.isclose(c["coefficient"], coefficient):
                return c
        raise KeyError(f"no cell ({method!r}, {coefficient}); methods {list(METHODS)}, non-zero coefficients "
                       f"{[c for c in self.config.coefficients if c]}")

    def claim(self, key: str) -> Claim:
        for c in self.claims:
            if c.key == key:
                return c
        raise KeyError(f"no claim {key!r}; claims: {[c.key for c in self.claims]}")

    def __repr__(self) -> str:
        from interp_steer.display import one_line, verdict_counts

        return one_line("SvfResult", model=self.model.get("name", "?"), mode=self.mode, measure=self.concept.get("measure", "?"),
                        cells=len(self.cells), verdicts=verdict_counts(self.claims))

    def _repr_html_(self) -> str:
        from interp_steer.display import claims_html

        return claims_html(f"SvfResult: {self.model.get('name', '?')}", self.claims,
                           [("mode", self.mode), ("measure", self.concept.get("measure", "?")),
                            ("layers", self.field.layers), ("prompts", len(self.inputs))])

    def to_dict(self) -> dict[str, Any]:
        return {
            **result_header(SCHEMA_VERSION, self.config, self.model),
            "mode": self.mode,
            "data": self.data,
            "concept": self.concept,
            "layers": self.layers,
            "coefficients": {"values": list(self.config.coefficients), "primary": self.config.primary_coefficient,
                             "units": ("mean residual norm of the training rows at each steered layer; the vector is "
                                       "rescaled to that norm, the field steps c * norm along its unit gradient, so at "
                                       "equal c both move an activation by the same length")},
            "field": self.field.metadata.to_dict(),
            "vector": {**self.vector.metadata.to_dict(), "norms": {str(k): v for k, v in self.vector.norms().items()}},
            "inputs": self.inputs,
            "unsteered": self.unsteered,
            "cells": self.cells,
            "noise_floor": self.noise_floor,
            "anti_steerable": self.anti_steerable,
            "context_dependence": self.context_dependence,
            "long_form": self.long_form,
            "multi_attribute": self.multi_attribute,
            "claims": [c.to_dict() for c in self.claims],
            "per_prompt": self.per_prompt,
            "intervals": INTERVALS,
            "timings_s": self.timings,
        }

    def to_frame(self, table: str = "cells"):
        """A tidy table (:mod:`interp_steer.frames`): ``"cells"``, rows (method, coefficient, metric) of
        the grid's score, shift, effect, backfire rate and perplexity ratio with their intervals;
        ``"intervals"``, every estimate with an interval
        in the SVF study's JSON, one row each (``section``, ``group``, ``metric`` and identifying
        columns such as ``method`` and ``coefficient``; per-prompt values left out); ``"claims"``, the
        verdicts."""
        from interp_steer import frames

        return frames.choose(table, {
            "cells": lambda: frames.intervals_frame({"cells": self.cells}).drop(columns=["section", "group"]),
            "intervals": lambda: frames.intervals_frame(self.to_dict(), skip=("per_prompt",)),
            "claims": lambda: frames.judged_frame(self.claims)})

    def save(self, out: str | Path, *, figures: bool = True) -> dict[str, Path]:
        """Write ``svf.json``, ``field.safetensors``, ``vector.safetensors``, the PNG figures and
        ``report.md`` under ``out``."""
        # Imported here: the report depends on the result, never the reverse.
        from interp_steer.studies.svf.report import write_outputs

        return write_outputs(self, Path(out), figures=figures)

    @classmethod
    def load(cls, path: str | Path) -> SvfResult:
        """The result a run saved: ``path`` is its output folder (or its ``svf.json``), with the field
        and the vector read from ``field.safetensors`` and ``vector.safetensors`` beside it. The file
        holds every other field; where one of those two files is absent, reading that attribute (and
        :meth:`to_dict`, which describes both) raises :class:`~interp_steer.studies._common.NotSavedError`."""
        run = read_result(path, "svf.json", cls.__name__, SCHEMA_VERSION)
        d = run.data
        tensors = {}
        for name, kind in (("field", SteeringField), ("vector", SteeringVector)):
            found = run.file_or_none(f"{name}.safetensors")
            tensors[name] = run.not_saved(name, f"{name}.safetensors") if found is None else kind.load(found)
        return cls.restored(model=d["model"], config=SvfConfig.from_dict(d["config"]), mode=d["mode"], data=d["data"],
                   concept=d["concept"], layers=d["layers"], field=tensors["field"], vector=tensors["vector"],
                   inputs=d["inputs"], unsteered=d["unsteered"], cells=d["cells"], noise_floor=d["noise_floor"],
                   anti_steerable=d["anti_steerable"], context_dependence=d["context_dependence"],
                   long_form=d["long_form"], multi_attribute=d["multi_attribute"],
                   claims=[Claim(**c) for c in d["claims"]], per_prompt=d["per_prompt"], timings=d["timings_s"])


INTERVALS = ("95 % over held-out inputs: cell score means, percentile bootstrap; effects, shifts and the claims' "
             "paired differences, Student t; backfire rates, Wilson; perplexity ratios, geometric mean with a t interval "
             "on the log ratio; retentions, Fieller")


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``svf.json``."""
    return load_schema(__package__)


__all__ = ["METHODS", "SCHEMA_VERSION", "Claim", "SvfResult", "schema"]
