"""What a robustness study measured: :class:`RobustnessResult` (the content of ``robustness.json``)
and the JSON :func:`schema`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_steer._io import jsonable
from interp_steer.directions import SteeringVector
from interp_steer.studies._common import Judged, Restored, load_schema, read_result, result_header
from interp_steer.studies.robustness.config import RobustnessConfig

SCHEMA_VERSION = 1

INTERVALS = ("95 %: effects, Student t over items; OOD/ID ratios, Fieller for independent samples; perplexity ratios, "
             "geometric mean with a t interval on per-text log ratios; perplexity rise points and sample-size plateaus, "
             "percentile bootstrap over texts / items and subsets; fractions, Wilson")


@dataclass(frozen=True, eq=False)
class RobustnessResult(Restored):
    """Everything a robustness study measured. ``models`` holds one report per model (vector,
    effects, sample size, adversarial search, perplexity); ``claims`` the five findings' verdicts.
    ``to_dict()`` is ``robustness.json`` (schema: :func:`schema`); :meth:`save` writes it with each
    model's vector, the figures and ``report.md``; :meth:`load` reads a finished run back."""

    config: RobustnessConfig
    data: dict[str, Any]
    concept: dict[str, Any]
    models: list[dict[str, Any]]
    vectors: list[SteeringVector]
    claims: list[Judged]
    timings: dict[str, float] = field(default_factory=dict)

    def claim(self, key: str) -> Judged:
        for c in self.claims:
            if c.key == key:
                return c
        raise KeyError(f"no claim {key!r}; claims: {[c.key for c in self.claims]}")

    @staticmethod
    def vector_file(index: int) -> str:
        """The file name of model ``index``'s vector in the output directory."""
        return "vector.safetensors" if index == 0 else f"vector_{index}.safetensors"

    def __repr__(self) -> str:
        from interp_steer.display import one_line, verdict_counts

        return one_line("RobustnessResult", models=[m["model"]["name"] for m in self.models],
                        measure=self.concept.get("measure", "?"), verdicts=verdict_counts(self.claims))

    def _repr_html_(self) -> str:
        from interp_steer.display import claims_html

        return claims_html("RobustnessResult", self.claims, [("models", ", ".join(m["model"]["name"] for m in self.models)),
                                                             ("measure", self.concept.get("measure", "?"))])

    def to_dict(self) -> dict[str, Any]:
        # Strict JSON already here, not only in the file: NaN and inf become null.
        return jsonable({
            **result_header(SCHEMA_VERSION, self.config),
            "data": self.data,
            "concept": self.concept,
            "coefficients": {"values": list(self.config.coefficients), "primary": self.config.primary_coefficient,
                             "perplexity": list(self.config.perplexity_coefficients),
                             "units": "the steering layer's mean residual norm (the vector is rescaled to it)"},
            "models": [{**report, "vector_file": self.vector_file(i)} for i, report in enumerate(self.models)],
            "claims": [c.to_dict() for c in self.claims],
            "intervals": INTERVALS,
            "timings_s": self.timings,
        })

    def to_frame(self, table: str = "intervals"):
        """A tidy table (:mod:`interp_steer.frames`): ``"intervals"``, every estimate with an interval
        in the robustness study's JSON, one row each (``section``, ``group``, ``metric`` and identifying
        columns such as ``method`` and ``coefficient``; per-prompt values left out); ``"claims"``, the
        verdicts."""
        from interp_steer import frames

        return frames.choose(table, {"intervals": lambda: frames.intervals_frame(self.to_dict(), skip=("per_prompt",)),
                                     "claims": lambda: frames.judged_frame(self.claims)})

    def save(self, out: str | Path, *, figures: bool = True) -> dict[str, Path]:
        """Write ``robustness.json``, the vectors, the PNG figures and ``report.md`` under ``out``."""
        from interp_steer.studies.robustness.report import write_outputs

        return write_outputs(self, Path(out), figures=figures)

    @classmethod
    def load(cls, path: str | Path) -> RobustnessResult:
        """The result a run saved: ``path`` is its output folder (or its ``robustness.json``), with each
        model's vector read from the file its entry names. The file holds every other field; a vector
        whose file is absent raises :class:`~interp_steer.studies._common.NotSavedError` when used."""
        from interp_steer.studies._common import NotSaved

        run = read_result(path, "robustness.json", cls.__name__, SCHEMA_VERSION)
        d = run.data
        vectors: list[SteeringVector | NotSaved] = []
        for entry in d["models"]:
            found = run.file_or_none(entry["vector_file"])
            vectors.append(run.not_saved(f"vectors[{len(vectors)}]", entry["vector_file"]) if found is None
                           else SteeringVector.load(found))
        models = [{key: value for key, value in entry.items() if key != "vector_file"} for entry in d["models"]]
        return cls.restored(config=RobustnessConfig.from_dict(d["config"]), data=d["data"], concept=d["concept"], models=models,
                   vectors=vectors, claims=[Judged(**c) for c in d["claims"]], timings=d["timings_s"])


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``robustness.json``."""
    return load_schema(__package__)


__all__ = ["SCHEMA_VERSION", "RobustnessResult", "schema"]
