"""Completions made elsewhere, scored on the collision study's axes: ``interp-steer score``.

A grid of completions labelled by ``(α, λ)`` (a JSONL file, :func:`interp_steer.data.load_generations`;
``collide --save-generations`` writes one) is scored exactly as the study scores its own grid, with the
same functions: per completion, the text metrics (VADER valence, repetition and distinct-n, style
features) and, with a scorer model, the perplexity of the completion given its chat-formatted prompt;
with the persona corpora too, the A-vs-B probe readout, the style classifier, the coherence references
(each persona's corpus scored in windows of the completions' length) and the probe profiles that
judge the shared-layer finding. Per cell: means with intervals over prompts (a prompt's samples are
averaged first); dominance d(α) per strength; the coherence comparisons and the three findings, with
the same calibrated rules.

Grids from the wild are often incomplete. Everything that can be computed is; everything that cannot
says what is missing (``{"missing": "dominance needs both pure ends; α = 0 is absent"}``), and
nothing is dropped silently: ``imported.excluded`` counts the lines left out, each with its reason.

``alpha_means`` says which persona α = 1 is in the file: ``"persona-a"`` (ours: α = 1 is pure A) or
``"persona-b"`` (then α is read as 1 − α, so d(α) comes out on our axis).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp_steer.data import CompletionRecord, load_generations, reject_bare_strings
from interp_steer.execution import Execution, as_execution
from interp_steer.metrics import text_scores
from interp_steer.models import Model
from interp_steer.studies._common import Stopwatch
from interp_steer.studies.collision.coherence import judge_coherence, metric_interval, references
from interp_steer.studies.collision.config import ALPHA_MEANS, ScoreConfig
from interp_steer.studies.collision.readout import describe_readout, fit_readout
from interp_steer.studies.collision.result import Finding, ImportedResult
from interp_steer.studies.collision.sentiment_words import vader_word_counts
from interp_steer.studies.mixing import SCORE_SCALES, dominance, quiet_nan_warnings

DOMINANCE_SCORES = ("vader", "probe_log_odds")
"""The scores whose every completion dominance reads (as the study's)."""
SAMPLE_SCORES = (*DOMINANCE_SCORES, "repetition", "vader_words")
"""Kept per completion for the dominance rule (as the study keeps them)."""
SAMPLE_ONLY = ("vader_words",)
"""Kept per completion only (not a cell metric)."""

# ------------------------------------------------------------------------------------------ the grid


@dataclass(frozen=True, eq=False)
class ImportedGrid:
    """The file's completions arranged as the study's grid: ``cells[0]`` is the unsteered model
    (λ = 0), then every ``(λ, α)`` present with α varying fastest; ``rows[(prompt, cell, sample)]``
    is a completion (missing combinations are absent). ``excluded`` lists what was left out, why."""

    prompts: list[str]
    alphas: tuple[float, ...]
    lambdas: tuple[float, ...]
    n_samples: int
    rows: dict[tuple[int, int, int], CompletionRecord]
    excluded: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cells(self) -> list[tuple[float, float | None]]:
        return [(0.0, None)] + [(lam, alpha) for lam in self.lambdas for alpha in self.alphas]

    @property
    def n_completions(self) -> int:
        return len(self.rows)

    def cell_index(self, lam: float, alpha: float | None) -> int:
        if alpha is None:
            return 0
        return 1 + self.lambdas.index(lam) * len(self.alphas) + self.alphas.index(alpha)


def arrange(records: Sequence[CompletionRecord], *, alpha_means: str = "persona-a") -> ImportedGrid:
    """The grid of ``records`` (α flipped when ``alpha_means="persona-b"``). Samples of a prompt and
    cell are numbered by the file's ``sample`` field."""
    if alpha_means not in ALPHA_MEANS:
        raise ValueError(f"alpha_means must be one of {list(ALPHA_MEANS)}, got {alpha_means!r}")
    if not records:
        raise ValueError("no completions to score")
    flip = alpha_means == "persona-b"

    def alpha_of(r: CompletionRecord) -> float | None:
        # rounded: 1 − 0.7 is 0.30000000000000004 in floating point, and α values are labels
        return None if r.alpha is None else (round(1.0 - r.alpha, 12) if flip else r.alpha)

    seen: dict[tuple, int] = {}
    for r in records:
        key = (r.prompt, alpha_of(r), r.lam, r.sample)
        if key in seen:
            raise ValueError(f"two completions for prompt {r.prompt[:40]!r}, α = {key[1]}, λ = {r.lam:g}, sample "
                             f"{r.sample} (lines {seen[key]} and {r.line}): give repeated samples distinct 'sample' "
                             "numbers, or remove the repeat")
        seen[key] = r.line

    prompts = list(dict.fromkeys(r.prompt for r in records))
    alphas = tuple(sorted({alpha_of(r) for r in records if r.alpha is not None}))
    lambdas = tuple(sorted({r.lam for r in records if r.lam > 0}))
    samples = sorted({r.sample for r in records})
    grid = ImportedGrid(prompts, alphas, lambdas, len(samples), {})
    index = {s: i for i, s in enumerate(samples)}
    for r in records:
        key = (prompts.index(r.prompt), grid.cell_index(r.lam, alpha_of(r)), index[r.sample])
        grid.rows[key] = r
    return grid


# ------------------------------------------------------------------------------------------ scoring


def _generations(model: Model, records: list[CompletionRecord], cap: int) -> tuple[list[Any], dict[str, int]]:
    """Each record as a :class:`~interp_steer.generation.Generation` of the scorer model: the prompt
    chat-formatted as :func:`~interp_steer.generate` formats it; the completion's own token ids when
    the file has them and they come from the scorer model, else the completion re-encoded; cut to
    ``cap`` tokens (its text then the decoded cut, which the readout reads: a degenerate completion of
    thousands of tokens would otherwise cost a quadratic forward and say nothing more)."""
    from interp_steer.generation import Generation, format_prompts

    counts = Counter()
    formatted = {}
    for prompt in dict.fromkeys(r.prompt for r in records):
        text = format_prompts(model, [prompt], chat=None, system=None)[0][0]
        formatted[prompt] = tuple(model.encode([text])[0])
    out = []
    for r in records:
        if r.token_ids is not None and r.model == model.name and all(t < len(model.tokenizer) for t in r.token_ids):
            ids = r.token_ids
            counts["own_token_ids"] += 1
        else:
            ids = tuple(model.tokenizer.encode(r.completion, add_special_tokens=False)) if r.completion else ()
            counts["re_encoded"] += 1
        text = r.completion
        if len(ids) > cap:
            ids = ids[:cap]
            text = model.tokenizer.decode(list(ids), skip_special_tokens=True)  # what the readout reads too
            counts["cut_to_max_completion_tokens"] += 1
        out.append(Generation(r.prompt, text, ids, formatted[r.prompt], True))
    return out, dict(counts)


def _per_prompt(grid: ImportedGrid, flat: dict[str, np.ndarray], order: list[tuple[int, int, int]]):
    """Per-prompt scores like the study's (samples averaged; perplexity geometrically): metric ->
    ``[lambdas, alphas, prompts]`` and the unsteered ``[prompts]``, NaN where a cell is missing; and
    each completion's valence scores, ``[lambdas, alphas, prompts, samples]`` (dominance maps each
    completion to its scale before averaging)."""
    shape = (len(grid.prompts), grid.n_samples, len(grid.cells))
    per_prompt_all, per_sample = {}, {}
    n_l, n_a = len(grid.lambdas), len(grid.alphas)
    with quiet_nan_warnings():
        for name, values in flat.items():
            full = np.full(shape, np.nan)
            for (p, c, s), value in zip(order, values, strict=True):
                full[p, s, c] = value
            if name in SAMPLE_SCORES:
                per_sample[name] = full[:, :, 1:].reshape(len(grid.prompts), grid.n_samples, n_l, n_a).transpose(2, 3, 0, 1)
            if name in SAMPLE_ONLY:
                continue
            if name == "perplexity":
                per_prompt_all[name] = np.exp(np.nanmean(np.log(full), axis=1))
            else:
                per_prompt_all[name] = np.nanmean(full, axis=1)  # [prompts, cells]
    per_prompt = {name: v[:, 1:].reshape(len(grid.prompts), n_l, n_a).transpose(1, 2, 0) for name, v in per_prompt_all.items()}
    return per_prompt, {name: v[:, 0] for name, v in per_prompt_all.items()}, per_sample


def _missing(reason: str) -> dict[str, str]:
    return {"missing": reason}


def _cells(grid: ImportedGrid, per_prompt, unsteered, config: ScoreConfig) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    def samples(cell: int) -> list[str]:
        out = []
        for p in range(len(grid.prompts)):
            record = grid.rows.get((p, cell, 0))
            if record is not None:
                out.append(record.completion)
            if len(out) == config.keep_samples:
                break
        return out

    def present(cell: int) -> int:
        return sum(any((p, cell, s) in grid.rows for s in range(grid.n_samples)) for p in range(len(grid.prompts)))

    unsteered_out = {"metrics": {name: metric_interval(name, v, config.seed) for name, v in unsteered.items()},
                     "samples": samples(0), "n_prompts": present(0)}
    cells = []
    n_a = len(grid.alphas)
    for li, lam in enumerate(grid.lambdas):
        for ai, alpha in enumerate(grid.alphas):
            index = 1 + li * n_a + ai
            if not present(index):
                continue  # a cell no prompt has is not a cell of this grid
            cells.append({"lambda": lam, "alpha": alpha, "mix_norm": None, "n_prompts": present(index),
                          "metrics": {name: metric_interval(name, v[li, ai], config.seed) for name, v in per_prompt.items()},
                          "samples": samples(index)})
    return unsteered_out, cells


def _present(grid: ImportedGrid, lam: float) -> list[float]:
    """The α values with at least one completion at strength ``lam``."""
    li = grid.lambdas.index(lam)
    return [a for ai, a in enumerate(grid.alphas)
            if any(c == 1 + li * len(grid.alphas) + ai for (_, c, _) in grid.rows)]


def _ends_missing(grid: ImportedGrid, lam: float) -> str | None:
    """Why d(α) cannot be computed at ``lam`` from the α values present there, or None."""
    present = _present(grid, lam)
    ends = [a for a in (0.0, 1.0) if a not in present]
    if ends:
        where = "" if all(a not in grid.alphas for a in ends) else f" at λ = {lam:g}"
        return (f"dominance needs both pure ends; α = {' and α = '.join(f'{a:g}' for a in ends)} "
                f"{'is' if len(ends) == 1 else 'are'} absent{where}")
    if len(present) < 3:
        return f"dominance needs a mix between the pure ends; λ = {lam:g} has only α = 0 and α = 1"
    return None


def _dominance(grid: ImportedGrid, per_prompt, per_sample) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """d(α) per strength for VADER and, when scored, the probe readout, on the α values present at
    that strength (each completion mapped to the score's scale before a prompt's are averaged); per λ
    the Dominance or what is missing."""
    objects: dict[str, list[Any]] = {}
    out: dict[str, Any] = {}
    for key, source in (("vader", "vader"), ("probe_valence", "probe_log_odds")):
        if source not in per_prompt:
            out[key] = _missing("the probe readout needs a scorer model and both persona corpora")
            continue
        objects[key], out[key] = [], []
        for li, lam in enumerate(grid.lambdas):
            reason = _ends_missing(grid, lam)
            if reason is None:
                present = _present(grid, lam)
                scores = per_prompt[source][li][[grid.alphas.index(a) for a in present]]
                complete = int(np.isfinite(scores).all(axis=0).sum())
                if complete < 2:
                    reason = f"dominance needs two prompts with every α scored at λ = {lam:g}; {complete} have"
            if reason is not None:
                objects[key].append(None)
                out[key].append({"lambda": lam, **_missing(reason)})
                continue
            completions = per_sample[source][li][[grid.alphas.index(a) for a in present]]
            d = dominance(present, completions, score=source, scale=SCORE_SCALES[source])
            objects[key].append(d)
            out[key].append({"lambda": lam, **d.to_dict()})
    return objects, out


def score(
    generations: str | Path | Sequence[CompletionRecord],
    *,
    scorer: Model | str | None = None,
    persona_a: Sequence[str] | str | Path | None = None,
    persona_b: Sequence[str] | str | Path | None = None,
    baseline: Sequence[str] | str | Path | None = None,
    config: ScoreConfig | None = None,
    source: str | None = None,
    execution: Execution | None = None,
) -> ImportedResult:
    """Score a file (or list) of completions on the collision study's axes (see the module
    docstring). ``scorer``: a :class:`Model` or spec scores perplexity (and, with both persona
    corpora, the probe readout, the coherence references and the probe profiles); None scores the
    text metrics only. Corpora are lists of texts or file paths; the style classifier needs both
    persona corpora, the coherence references a scorer too. ``source`` names where records passed
    as a list came from (a file's path is its own name). ``execution`` gives progress bars and the
    log; scoring runs in this process and stores no work units."""
    reject_bare_strings(generations=generations, persona_a=persona_a, persona_b=persona_b, baseline=baseline,
                        path_ok=True)
    from interp_steer.models import load_model
    from interp_steer.studies.collision.style import StyleClassifier

    config = config or ScoreConfig()
    execution = as_execution(execution)
    if execution.store is not None or execution.backend not in (None, "local"):
        raise ValueError("score runs in this process and keeps no work units: pass Execution(progress=..., log=...) "
                         "without store or backend")
    progress = execution.progress
    clock = Stopwatch(execution.log)
    source = str(generations) if isinstance(generations, (str, Path)) else (source or "list")
    records = load_generations(generations) if isinstance(generations, (str, Path)) else list(generations)
    grid = arrange(records, alpha_means=config.alpha_means)
    order = sorted(grid.rows)
    kept = [grid.rows[k] for k in order]
    texts_out = [r.completion for r in kept]
    flat = {**text_scores(texts_out), "vader_words": vader_word_counts(texts_out)}
    notes: dict[str, Any] = {"empty_completions": sum(not t.strip() for t in texts_out)}
    corpora = _corpora(persona_a, persona_b, baseline, config)
    model = None if scorer is None else (scorer if isinstance(scorer, Model) else load_model(scorer))
    personas = readout = None
    if model is not None:
        from interp_steer.likelihood import completion_perplexity

        gens, counts = _generations(model, kept, config.max_completion_tokens)
        notes["tokens"] = counts
        notes["completion_tokens"] = [len(g.token_ids) for g in gens]
        flat = {"perplexity": completion_perplexity(model, gens), **flat}
        clock.lap("perplexity")
        if corpora.get("baseline") is not None and corpora.get("persona_a") is not None:
            from interp_steer.studies.personas import build_personas

            personas = build_personas(model, corpora["persona_a"], corpora["persona_b"], corpora["baseline"],
                                      position=config.position, folds=config.folds, seed=config.seed,
                                      progress=progress, pooled=True)
            readout = fit_readout(model, config, personas, _texts(corpora), progress)
            # the model reads each completion as perplexity did: cut to max_completion_tokens
            flat["probe_log_odds"] = readout.log_odds(model, [g.text for g in gens])
            flat["probe_valence"] = 1 / (1 + np.exp(-flat["probe_log_odds"]))
            clock.lap("readout")
    else:
        flat["perplexity"] = np.full(len(kept), np.nan)
    style = None
    if corpora.get("persona_a") is not None:
        style = StyleClassifier.fit(corpora["persona_a"], corpora["persona_b"], folds=config.folds, seed=config.seed)
        flat["style_a"] = style.score(texts_out)
    for name in ("probe_valence", "style_a"):  # the schema's metrics, unscored ones as empty intervals
        flat.setdefault(name, np.full(len(kept), np.nan))
    _account(grid, kept, flat, model is not None)
    per_prompt, unsteered, per_sample = _per_prompt(grid, flat, order)
    unsteered_out, cells = _cells(grid, per_prompt, unsteered, config)
    dominance_objects, dominance_out = _dominance(grid, per_prompt, per_sample)
    coherence = _coherence_or_missing(grid, model, corpora, config, per_prompt, unsteered, notes)
    lengths = notes.pop("completion_tokens", None)
    if lengths:
        notes["completion_tokens_max"] = max(lengths)
    findings = _findings(grid, dominance_objects, coherence, per_prompt, per_sample, personas, config)
    clock.lap("scoring")
    return ImportedResult(
        source=source, config=config, grid=grid, scorer=None if model is None else model.name,
        generated_by=sorted({r.model for r in records if r.model}), unsteered=unsteered_out, cells=cells,
        per_prompt=per_prompt, per_prompt_unsteered=unsteered, dominance=dominance_out, coherence=coherence,
        style=style.to_dict() if style is not None else _missing("the style classifier needs both persona corpora"),
        readout=_missing("the probe readout needs a scorer model and all three corpora") if readout is None else
        describe_readout(readout),
        localisation=_missing("localisation needs a scorer model and all three corpora") if personas is None else
        personas.localisation.to_dict(),
        findings=findings, notes=notes, n_lines=len(records), timings=clock.total())


UNSCORED_BECAUSE = {
    "perplexity": "the completion is empty",
    "repetition": "fewer than 3 words (no word 3-gram)",
    "distinct_2": "fewer than 2 words",
    "probe_valence": "the completion is empty",
}


def _account(grid: ImportedGrid, kept: list[CompletionRecord], flat: dict[str, np.ndarray], scored: bool) -> None:
    """Record in ``grid.excluded`` every completion left out of an axis, by line, with the reason
    (its other axes still count); a metric that was not scored at all is not listed per line."""
    for name, reason in UNSCORED_BECAUSE.items():
        values = flat.get(name)
        if values is None or (name == "perplexity" and not scored) or not np.isfinite(values).any():
            continue
        for record, value in zip(kept, values, strict=True):
            if not np.isfinite(value):
                grid.excluded.append({"line": record.line, "metric": name, "reason": reason})


def _texts(corpora: dict[str, list[str] | None]):
    """The study's corpus bundle (the readout and the references read no prompts)."""
    from interp_steer.studies.personas import StudyTexts

    return StudyTexts(corpora["persona_a"], corpora["persona_b"], corpora["baseline"], [])


def _corpora(persona_a, persona_b, baseline, config: ScoreConfig) -> dict[str, list[str] | None]:
    from interp_steer.data import load_corpus

    out: dict[str, list[str] | None] = {}
    for name, value in (("persona_a", persona_a), ("persona_b", persona_b), ("baseline", baseline)):
        if value is None:
            out[name] = None
            continue
        texts = load_corpus(value) if isinstance(value, (str, Path)) else list(value)
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError(f"{name}: pass a file path or a non-empty list of non-empty strings")
        out[name] = texts[: config.max_passages] if config.max_passages else texts
    if (out["persona_a"] is None) != (out["persona_b"] is None):
        raise ValueError("give both persona corpora (persona_a and persona_b) or neither")
    if out["baseline"] is not None and out["persona_a"] is None:
        raise ValueError("a baseline corpus needs both persona corpora beside it")
    return out


def _study_config(grid: ImportedGrid, config: ScoreConfig, window: int) -> Any:
    """What the study's coherence and findings judges read from their config."""
    from types import SimpleNamespace

    return SimpleNamespace(alphas=grid.alphas, lambdas=grid.lambdas, max_new_tokens=window,
                           reference_passages=config.reference_passages, degradation_ratio=config.degradation_ratio,
                           degradation_repetition=config.degradation_repetition, seed=config.seed,
                           folds=config.folds, position=config.position)


def _coherence_or_missing(grid, model, corpora, config, per_prompt, unsteered, notes):
    lacking = []
    if model is None:
        lacking.append("a scorer model (perplexity)")
    if corpora.get("baseline") is None:
        lacking.append("all three corpora (the references are fluent text of each tone)")
    ends = [a for a in (0.0, 1.0) if a not in grid.alphas]
    if ends:
        lacking.append(f"both pure ends (α = {' and '.join(f'{a:g}' for a in ends)} absent)")
    else:
        short = [lam for lam in grid.lambdas if any(a not in _present(grid, lam) for a in (0.0, 1.0))]
        if short:
            lacking.append("both pure ends at every strength (missing at λ = " + ", ".join(f"{x:g}" for x in short) + ")")
    if not grid.lambdas:
        lacking.append("steered completions")
    if lacking:
        return _missing("the coherence comparison needs " + "; ".join(lacking))
    window = config.window or max(notes["completion_tokens"])
    if window < 1:
        return _missing("the coherence comparison needs completions with at least one token (every one is empty)")
    notes["coherence_window_tokens"] = window
    study = _study_config(grid, config, window)
    out = judge_coherence(study, per_prompt, unsteered, references(model, study, _texts(corpora)))
    if not np.isfinite(unsteered["perplexity"]).any():
        out["unsteered_vs_baseline"] = _missing("no unsteered completions (λ = 0) in the file")
    return out


def _findings(grid, dominance_objects, coherence, per_prompt, per_sample, personas, config) -> list[dict[str, Any]]:
    """The study's three findings where they can be judged, else what each needs."""
    from interp_steer.studies.collision import findings as judges

    study = _study_config(grid, config, 0)
    out: list[Finding | dict[str, Any]] = []
    if "missing" in coherence:
        out.append({"key": "dominance", "missing": "the dominance finding is judged at the best non-degraded "
                    "strength, which " + coherence["missing"].replace("the coherence comparison needs", "needs")})
        out.append({"key": "coherence", "missing": coherence["missing"]})
    else:
        lacking = [f"{score} at λ = {grid.lambdas[i]:g}" for score in ("vader", "probe_valence")
                   for i, d in enumerate(dominance_objects.get(score, [None] * len(grid.lambdas))) if d is None]
        if lacking:
            out.append({"key": "dominance", "missing": "the dominance finding needs d(α) at every strength for VADER "
                        "and the probe readout; not computable: " + ", ".join(lacking)})
        else:
            out.append(judges.finding_dominance(study, dominance_objects, coherence, per_sample).to_dict())
        inner = [a for a in grid.alphas if 0 < a < 1]
        top = grid.lambdas[-1]
        mid = min(inner, key=lambda a: abs(a - 0.5)) if inner else None
        if mid is None:
            out.append({"key": "coherence", "missing": "the coherence finding needs a mix between the pure ends"})
        elif mid not in _present(grid, top):
            out.append({"key": "coherence", "missing": f"the coherence finding compares the mix nearest α = 0.5 "
                        f"(α = {mid:g}) with the pure ends at the top strength, but λ = {top:g} has no α = {mid:g}"})
        else:
            out.append(judges.finding_coherence(study, per_prompt, coherence).to_dict())
    if personas is None:
        out.append({"key": "shared_layer", "missing": "the shared-layer finding needs a scorer model and all three "
                    "corpora (probe profiles per layer)"})
    else:
        out.append(judges.finding_shared_layer(personas.localisation, personas.profiles).to_dict())
    return [f if isinstance(f, dict) else f.to_dict() for f in out]


__all__ = ["ImportedGrid", "arrange", "score"]
