"""What a dominance-patching run measured: :class:`PatchingResult` (the content of ``patching.json``)
and the JSON :func:`schema`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_steer.studies._common import NotSaved, Restored, load_schema, read_result
from interp_steer.studies.patching.config import PatchingConfig

SCHEMA_VERSION = 2


@dataclass(frozen=True, eq=False)
class PatchingResult(Restored):
    """Normalised effects per component (ratio of means and 95 % Fieller interval over prompts), per metric.

    ``effects`` are the descriptive maps over all prompts; ``sanity_checks`` the effects fixed by
    construction or by the geometry of v_A and v_B (not findings); ``findings`` the headline
    components, each chosen on one half of the prompts and measured on the other."""

    model: dict[str, Any]
    config: PatchingConfig
    layer: int
    prompts: list[str]
    metrics: dict[str, Any]
    runs: dict[str, dict[str, list[float]]]  # source/target -> metric -> per prompt
    effects: dict[str, dict[str, Any]]  # sweep -> metric -> {"effect", "low", "high", axes...}
    attribution: dict[str, Any]
    sanity_checks: list[dict[str, Any]]
    findings: dict[str, Any]  # the held-out selection: halves, rule, and per fold the reported components
    timings: dict[str, float] = field(default_factory=dict)
    followups: dict[str, Any] = field(default_factory=dict)
    """``"dla"``: a :class:`~interp_steer.dla.DlaResult`; ``"attention"``: an
    :class:`~interp_steer.attention.AttentionDifferences` (when the config asked for them)."""

    def __repr__(self) -> str:
        from interp_steer.display import one_line

        held = sum(c["holds_up"] for fold in self.findings.get("folds", []) for c in fold["components"])
        return one_line("PatchingResult", model=self.model.get("name", "?"), layer=self.layer,
                        prompts=len(self.prompts), sweeps=len(self.effects), headline_components_holding_up=held)

    def _repr_html_(self) -> str:
        from interp_steer.studies.patching.report import render_html

        return render_html(self)

    def to_dict(self) -> dict[str, Any]:
        from interp_steer import __version__

        out = {"schema_version": SCHEMA_VERSION, "library_version": __version__, "model": self.model,
                "config": self.config.to_dict(), "layer": self.layer, "prompts": self.prompts,
                "metrics": self.metrics, "runs": self.runs, "effects": self.effects,
                "attribution": self.attribution, "sanity_checks": self.sanity_checks, "findings": self.findings,
                "timings_s": self.timings,
                "effect_definition": "(m_patched - m_target) / (m_source - m_target), ratio of means over "
                                     "prompts, 95% Fieller interval over prompts (null where the source and target runs do not "
                                     "differ significantly)"}
        if self.followups:
            out["followups"] = {}
        if "dla" in self.followups:
            dla = self.followups["dla"]
            out["followups"]["dla"] = {"file": "dla/dla.json", "runs": "steered = source, reference = target",
                                       "metric": dla.metric, "heads_note": dla.heads_note, "summary": dla.summary(),
                                       "top": dla.top(10)}
        if "attention" in self.followups:
            attention = self.followups["attention"]
            out["followups"]["attention"] = {"file": "attention/attention.json", "heads": [list(h) for h in attention.heads],
                                             "chosen_by": "largest |patching effect| of a head over all prompts",
                                             "summary": attention.summary()}
        return out

    def to_frame(self, table: str = "effects"):
        """A tidy table (:mod:`interp_steer.frames`): ``"effects"``, rows (sweep, metric, layer
        [, position_from_end | head]) with the normalised effect and its interval; ``"findings"``,
        the held-out headline components per fold."""
        from interp_steer import frames

        return frames.choose(table, {"effects": lambda: frames.patching_frame(self.to_dict()),
                                     "findings": lambda: frames.patching_findings_frame(self.to_dict())})

    def save(self, out: str | Path, *, figures: bool = True) -> dict[str, Path]:
        """``patching.json``, heatmaps (layer × position, layer × head, layer × component) and ``report.md``."""
        # Imported here: the report depends on the result, never the reverse.
        from interp_steer.studies.patching.report import write_outputs

        return write_outputs(self, Path(out), figures=figures)

    @classmethod
    def load(cls, path: str | Path) -> PatchingResult:
        """The result a run saved: ``path`` is its output folder (or its ``patching.json``), with the
        follow-ups read from ``dla/dla.json`` and ``attention/attention.json`` when the run made them.
        The file holds every other field; a follow-up whose file is absent raises
        :class:`~interp_steer.studies._common.NotSavedError` when used."""
        run = read_result(path, "patching.json", cls.__name__, SCHEMA_VERSION)
        d = run.data
        followups: dict[str, Any] = {}
        for name, entry in d.get("followups", {}).items():
            saved = run.json_beside(entry["file"], name)
            followups[name] = saved if isinstance(saved, NotSaved) else _followup(name, saved)
        return cls.restored(model=d["model"], config=PatchingConfig.from_dict(d["config"]), layer=d["layer"], prompts=d["prompts"],
                   metrics=d["metrics"], runs=d["runs"], effects=d["effects"], attribution=d["attribution"],
                   sanity_checks=d["sanity_checks"], findings=d["findings"], timings=d["timings_s"], followups=followups)


def _followup(name: str, data: dict[str, Any]):
    if name == "dla":
        from interp_steer.dla import DlaResult

        return DlaResult(model=data["model"], metric=data["metric"], runs=data["runs"], components=data["components"],
                         prompts=data["prompts"], n_heads=data["n_heads"], heads_note=data["heads_note"],
                         level=data["level"])
    from interp_steer.attention import AttentionDifferences

    return AttentionDifferences(model=data["model"], heads=[tuple(h) for h in data["heads"]], runs=data["runs"],
                                prompts=data["prompts"], window=data["window"], top=data["top"])


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``patching.json``."""
    return load_schema(__package__)


__all__ = ["SCHEMA_VERSION", "PatchingResult", "schema"]
