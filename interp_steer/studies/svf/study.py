"""The Steering Vector Fields comparison: a learned field against the static vector, on the same data.

:func:`run` runs the study from a :class:`~interp_steer.studies.svf.config.SvfConfig` and returns a
:class:`~interp_steer.studies.svf.result.SvfResult`, one call per stage (read it as the table of
contents; each stage is its own module: :mod:`.inputs`, :mod:`.fit`, :mod:`.evaluation`,
:mod:`.context`, :mod:`.long_form`, :mod:`.multi_attribute`, :mod:`.claims`); :func:`svf` builds the
config from keywords and calls it. ``result.save(out)`` writes ``svf.json``, the field and the
vector, the figures and ``report.md``. The stages:

1. **Inputs.** A concept from two corpora (default: the built-in persona A, hopeful, against
   persona B, dark), contrast pairs, or CAA-style A/B questions (then split into training and
   held-out questions by the seed); held-out inputs are the built-in prompts (or the user's), which
   take no part in training, or the held-out questions.
2. **Fit** both on the same training rows, read at ``position`` (A/B: the answer letter): the vector
   is the mean difference, rescaled at each layer to that layer's mean residual norm; the field is
   :func:`~interp_steer.fields.fit_scorer` on the same activations, whose step is ``c · ‖h‖ₘ · ĝ(h)``
   with the same norm, so a coefficient moves an activation by the same length either way.
   ``layers="auto"`` fits the field at every candidate layer and keeps the window of adjacent layers
   with the lowest mean held-out scorer loss (training data only).
3. **Evaluate** on the held-out inputs at every coefficient, vector and field steering all chosen
   layers at once from the prompt's last token on: open-ended, one greedy completion per prompt and
   cell scored by the scorer (VADER by default) and by its perplexity under the unsteered model; A/B,
   P(matching answer) from one batched forward per block of questions. The backfire noise floor comes
   from control cells in the same grid: ``floor_draws`` random directions per prompt and coefficient
   size, each as long as the vector's (and the field's) step at the same layers, decoded greedily like
   every other cell (A/B: read like every other cell). It is the symmetrised 95 % quantile of the
   score changes they make (:func:`~interp_steer.studies.rules.svf.control_floor`): greedy text that
   steering leaves unchanged cannot backfire, while any real perturbation changes the text and moves
   the score both ways, so the reference is a perturbation of the same size with no concept in it,
   which then backfires on 5 % of prompts.
4. **Context dependence** of the field per layer: the mean pairwise cosine of its directions at the
   activations it actually steers (each held-out input's unsteered transcript, from the prompt's last
   token on); the vector's is 1 by construction.
5. **Long-form**: the primary cells' completions (vector, field and unsteered, at the primary
   coefficient) continued to ``long_tokens``; the effect on the first, middle and last third of the
   generated tokens.
6. **Multi-attribute**: persona A vs baseline and persona B vs baseline, one field and one vector
   each, read by their own probe readouts; each attribute's effect steered alone and both together.
7. **Claims**, each judged at the primary coefficient by its registered rule (``svf.control``,
   ``svf.backfire``, ``svf.long_form``, ``svf.multi_attribute``: :mod:`interp_steer.studies.rules.svf`).

Intervals (95 %, over held-out prompts or questions): per-cell score means, percentile bootstrap
(:func:`~interp_steer.stats.summarise`); effects, shifts and paired differences, Student-t; backfire
rates, Wilson; perplexity ratios, t on the per-prompt log ratio (geometric means); retentions,
Fieller.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp_steer.data import reject_bare_strings
from interp_steer.execution import Execution, as_execution
from interp_steer.models import Model, load_model
from interp_steer.studies._common import Stopwatch, settings
from interp_steer.studies._units import UnitRunner
from interp_steer.studies.concept import Pairs, Questions, Scorer, Texts, the_scorer
from interp_steer.studies.svf.claims import judge_claims
from interp_steer.studies.svf.config import SvfConfig
from interp_steer.studies.svf.context import measure_context
from interp_steer.studies.svf.evaluation import evaluate_ab, evaluate_open
from interp_steer.studies.svf.fit import fit
from interp_steer.studies.svf.inputs import describe_concept, load_inputs
from interp_steer.studies.svf.long_form import LONG_FORM_AB, measure_long_form
from interp_steer.studies.svf.multi_attribute import measure_multi_attribute
from interp_steer.studies.svf.result import SvfResult
from interp_steer.units import run_key


def run(
    model: Model | str | None,
    config: SvfConfig,
    *,
    positive: Texts = None,
    negative: Texts = None,
    pairs: Pairs = None,
    questions: Questions = None,
    prompts: Texts = None,
    attributes: tuple[Texts, Texts, Texts] | None = None,
    scorer: Scorer | None = None,
    scorer_name: str | None = None,
    execution: Execution | None = None,
) -> SvfResult:
    """Run the SVF comparison; one line per stage (see the module docstring).

    The concept: ``positive`` and ``negative`` texts, or ``pairs`` (contrast pairs), or ``questions``
    (A/B questions, CAA's format; split into training and held-out questions), each a list or a file
    path; none of them: the built-in persona A (positive) and persona B (negative) corpora.
    ``prompts``: held-out open-ended prompts (default: built-in). ``attributes``: the two attribute
    corpora and their baseline for the multi-attribute test (default: built-in persona A, persona B,
    baseline). ``scorer``: completion texts to numbers (default: VADER compound valence).
    ``model`` is a :class:`Model` or a spec for :func:`~interp_steer.load_model`.

    ``execution`` (:class:`~interp_steer.Execution`) says how to run: progress bars, a log line per
    stage, and where work units go. The open-ended grid's generation runs as work units of a few
    prompts × every cell, the A/B grid and the multi-attribute generations as units of one batch each
    (:mod:`interp_steer.units`): with a ``store`` directory a re-run skips finished ones (``fresh``
    discards them); ``backend`` says where they run. The context-dependence forward passes and the
    long-form scoring are light and re-run. Results do not depend on it.
    """
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions,
                        prompts=prompts, path_ok=True)
    execution = as_execution(execution)
    clock = Stopwatch(execution.log)
    if not isinstance(model, Model):  # a model passed in was loaded by the caller: no 0.0 s stage
        model = load_model(model)
        clock.lap("load_model")
    inputs = load_inputs(config, positive, negative, pairs, questions, prompts, attributes)
    score, name = the_scorer(scorer, scorer_name)
    concept = describe_concept(config, inputs, score, name)
    fitted = fit(model, config, inputs, execution.progress)
    clock.say(f"steering layers {list(fitted.field.layers)} ({fitted.rule})")
    clock.lap("fit")
    store = execution.open_store(run_key(model, config, inputs.data))
    with execution.backend_for(model) as runner:
        work = UnitRunner(model, store, runner, "", execution.progress)
        if inputs.mode == "ab":
            evaluation = evaluate_ab(work, config, fitted, inputs.heldout_questions)
        else:
            evaluation = evaluate_open(model, config, fitted, inputs.prompts, score, concept["direction"],
                                       execution.progress, clock.say, store=store, backend=runner)
        clock.lap("evaluation")
        context = measure_context(model, fitted, evaluation.transcripts)
        clock.lap("context_dependence")
        if inputs.mode == "ab":
            long_form = {"status": "skipped", "reason": LONG_FORM_AB}
        else:
            long_form = measure_long_form(model, config, evaluation.long_generations, inputs.prompts, score,
                                          concept["direction"])
        clock.lap("long_form")
        if config.multi_attribute:
            unsteered = evaluation.unsteered_generations if inputs.mode != "ab" else None
            multi = measure_multi_attribute(work, config, fitted, inputs, unsteered)
        else:
            multi = {"status": "skipped", "reason": "multi_attribute=False in the config"}
        clock.lap("multi_attribute")
    claims = judge_claims(config, evaluation.per_prompt, direction=concept["direction"], long_form=long_form,
                          multi=multi, mode=inputs.mode)
    return SvfResult(
        model={"name": model.name, "source": str(model.source), "n_layers": model.n_layers, "d_model": model.d_model},
        config=config, mode=inputs.mode, data=inputs.data, concept=concept, layers=fitted.describe(),
        field=fitted.field, vector=fitted.vector, inputs=evaluation.items, unsteered=evaluation.unsteered,
        cells=evaluation.cells, noise_floor=evaluation.floor, anti_steerable=evaluation.anti_steerable,
        context_dependence=context, long_form=long_form, multi_attribute=multi, claims=claims,
        per_prompt={k: np.asarray(v).tolist() for k, v in evaluation.per_prompt.items()},
        timings={**clock.total(), **store.reuse_timings()},
    )


def units_key(model: Any, config: SvfConfig, *, positive: Texts = None, negative: Texts = None, pairs: Pairs = None,
              questions: Questions = None, prompts: Texts = None,
              attributes: tuple[Texts, Texts, Texts] | None = None) -> dict[str, Any]:
    """The key of a run's units (:func:`~interp_steer.units.run_key`), found without loading the
    model: ``model`` is a :class:`Model` or a ``(spec, dtype, device)`` tuple."""
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions,
                        prompts=prompts, path_ok=True)
    return run_key(model, config, load_inputs(config, positive, negative, pairs, questions, prompts, attributes).data)


def svf(
    model: Model | str | None = None,
    config: SvfConfig | None = None,
    *,
    positive: Texts = None,
    negative: Texts = None,
    pairs: Pairs = None,
    questions: Questions = None,
    prompts: Texts = None,
    attributes: tuple[Texts, Texts, Texts] | None = None,
    scorer: Scorer | None = None,
    scorer_name: str | None = None,
    quick: bool = False,
    execution: Execution | None = None,
    **overrides: Any,
) -> SvfResult:
    """The SVF comparison in one call: the settings come from ``config``, or from
    :meth:`SvfConfig.quick` when ``quick``, with keyword ``overrides`` of its fields (e.g.
    ``layers=(12, 13)``, ``coefficients=(-0.2, 0, 0.2)``); the data, the scorer and ``execution`` are
    passed to :func:`run`."""
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions,
                        prompts=prompts, path_ok=True)
    config = settings(SvfConfig, config, quick=quick, **overrides)
    return run(model, config, positive=positive, negative=negative, pairs=pairs, questions=questions,
               prompts=prompts, attributes=attributes, scorer=scorer, scorer_name=scorer_name, execution=execution)


__all__ = ["run", "svf", "units_key"]
