"""How far can a steering vector be trusted? The five findings of arXiv 2505.03189 as one study.

:func:`run` takes one model or several and a :class:`~interp_steer.studies.robustness.config.RobustnessConfig`
and returns a :class:`~interp_steer.studies.robustness.result.RobustnessResult`; :func:`robustness`
builds the config from keywords. The inputs are read once (:mod:`.inputs`, through
:mod:`interp_steer.studies.concept`, which the SVF study shares); then per model, one stage per
finding, each its own module (:mod:`.vector`, :mod:`.effects`, :mod:`.sample_size`,
:mod:`.adversarial`, :mod:`.perplexity`; :func:`_one_model` is their table of contents):

0. **Vector.** The concept's examples (two corpora, contrast pairs or A/B questions; default: the
   built-in persona A against persona B) are split by the seed into training and held-out parts.
   A mean-difference vector at one layer (``"auto"``: the best layer of a probe profile over every
   layer, training split only) is rescaled to the layer's mean residual norm.
1. **In- vs out-of-distribution**: every prompt set (in-distribution: the built-in prompts, or the
   held-out A/B questions; out-of-distribution: the built-in ``prompts_ood`` or the user's sets) at
   every coefficient, greedy completions scored by the scorer (VADER by default) or A/B
   probabilities; the effect per item and the OOD/ID ratio at the primary coefficient (Fieller,
   independent samples; standardised effects when the two sets are measured differently).
2. **Sample size**: vectors from random subsets of ``n`` training examples per class, each
   rescaled to the full vector's norm (only the direction varies), applied to the same held-out
   items; a saturating curve through the effects (:mod:`~interp_steer.studies.robustness.saturation`)
   gives the ``n`` reaching 90 % and 95 % of the plateau with bootstrap intervals, next to each
   subset direction's cosine to the full one.
3. **Adversarial reversal**: from each seed prompt, an evolutionary search over token edits and a
   gradient-guided suffix search (:mod:`interp_steer.adversarial`) minimise the steering's signed
   effect on the next-token readout (:mod:`~interp_steer.studies.robustness.readout`), candidates
   scored in batches with steered and unsteered rows side by side. Found inputs are kept with their
   token ids (replayable), their perplexity under the unsteered model against the seed's, and a
   check by generation and the scorer.
4. **Perplexity**: NLL per token of a neutral corpus and of the held-out on-topic texts under the
   steering at every perplexity coefficient; the ratio to unsteered per text, and the coefficients
   where perplexity rises 10 % and 50 %.
5. **Model size**, across models: the same data and settings on each; degradation (perplexity ratio)
   and effect per model, compared on the same texts.

Intervals are 95 %: effects, Student-t over items; ratios of effects, Fieller; perplexity ratios, t
on per-text log ratios (geometric means); fractions, Wilson; sample-size plateaus, bootstrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interp_steer.data import reject_bare_strings
from interp_steer.directions import SteeringVector
from interp_steer.execution import Execution, as_execution
from interp_steer.models import Model, load_model
from interp_steer.studies._common import Stopwatch, settings
from interp_steer.studies._units import UnitRunner
from interp_steer.studies.concept import Pairs, Questions, Scorer, Texts, the_scorer
from interp_steer.studies.robustness.adversarial import measure_adversarial, replay
from interp_steer.studies.robustness.claims import judge_claims
from interp_steer.studies.robustness.config import RobustnessConfig
from interp_steer.studies.robustness.effects import measure_effects
from interp_steer.studies.robustness.inputs import Inputs, describe_concept, load_inputs
from interp_steer.studies.robustness.perplexity import measure_perplexity
from interp_steer.studies.robustness.result import RobustnessResult
from interp_steer.studies.robustness.sample_size import measure_sample_size
from interp_steer.studies.robustness.vector import fit_vector
from interp_steer.units import model_identity, run_key

OodSets = dict[str, Any] | Sequence[Any] | None
"""Out-of-distribution sets: named (a dict) or a list (named by file or position), each a list or a file."""


def run(
    model: Model | str | None | Sequence[Model | str | None],
    config: RobustnessConfig,
    *,
    positive: Texts = None,
    negative: Texts = None,
    pairs: Pairs = None,
    questions: Questions = None,
    prompts: Texts = None,
    ood_prompts: OodSets = None,
    ood_questions: OodSets = None,
    neutral: Texts = None,
    scorer: Scorer | None = None,
    scorer_name: str | None = None,
    device: str | None = None,
    n_devices: int | None = None,
    execution: Execution | None = None,
) -> RobustnessResult:
    """Run the study on one model or several (``model``: a :class:`Model`, a spec for
    :func:`~interp_steer.load_model`, or a list of them, loaded one at a time: finding 5, model size,
    compares them).

    The concept: ``positive`` and ``negative`` texts, ``pairs`` or ``questions`` (A/B, CAA's format),
    each a list or a file; none: the built-in persona A against persona B. ``prompts``: the
    in-distribution prompts for open-ended concepts (default: built-in). ``ood_prompts`` and
    ``ood_questions``: out-of-distribution sets, named (a dict) or as a list (named by file or
    position); none of either: the built-in ``prompts_ood``. ``neutral``: the neutral perplexity
    corpus (default: the built-in baseline passages). ``scorer``: completion texts to numbers
    (default: VADER compound valence). ``device`` and ``n_devices``: where specs are loaded
    (:func:`~interp_steer.load_model`).

    ``execution`` (:class:`~interp_steer.Execution`) says how to run: progress bars, a log line per
    stage, and where work units go. The generations (in- and out-of-distribution sets, sample-size
    subsets, the check of found inputs; one unit per generation batch), the adversarial searches (one
    per seed and method) and the perplexity sweep (one per batch of texts, every coefficient) run as
    work units (:mod:`interp_steer.units`): with a ``store`` directory a re-run skips finished ones
    (``fresh`` discards them); ``backend`` (``"local"``, ``"ray"`` or a backend object for a single
    model) says where they run. Results do not depend on it.
    """
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions,
                        prompts=prompts, neutral=neutral, path_ok=True)
    execution = as_execution(execution)
    clock = Stopwatch(execution.log)
    inputs = load_inputs(config, positive, negative, pairs, questions, prompts, ood_prompts, ood_questions, neutral)
    score, name = the_scorer(scorer, scorer_name)
    concept = describe_concept(config, inputs, score, name)
    specs = list(model) if isinstance(model, (list, tuple)) else [model]
    if not specs:
        raise ValueError("model is an empty list: give a model, a spec, or a list of them")
    store = execution.open_store(_key(specs, config, inputs, device))
    per_model, vectors = [], []
    for k, spec in enumerate(specs):
        if isinstance(spec, Model):  # loaded by the caller: no 0.0 s stage
            loaded = spec
        else:
            loaded = load_model(spec, device=device, n_devices=n_devices)
            clock.lap(f"load_model {loaded.name}")
        with execution.backend_for(loaded) as runner:
            work = UnitRunner(loaded, store, runner, f"m{k}-", execution.progress)
            report, vector = _one_model(loaded, config, inputs, concept, score, work, clock)
        per_model.append(report)
        vectors.append(vector)
    claims = judge_claims(config, per_model)
    return RobustnessResult(config=config, data=inputs.data, concept=concept, models=per_model, vectors=vectors,
                            claims=claims, timings={**clock.total(), **store.reuse_timings()})


def _one_model(model: Model, config: RobustnessConfig, inputs: Inputs, concept: dict[str, Any], score: Scorer,
               work: UnitRunner, clock: Stopwatch) -> tuple[dict[str, Any], SteeringVector]:
    """The vector and findings 1-4 on one model: its report (with its size, for finding 5)."""
    fitted = fit_vector(model, config, inputs, work.progress)
    clock.say(f"{model.name}: steering layer {fitted.layer} ({fitted.rule})")
    clock.lap("vector")
    effects, base = measure_effects(work, config, inputs, fitted.vector, concept, score, clock.say)
    clock.lap("in_vs_out_of_distribution")
    sample_size = measure_sample_size(work, config, inputs, fitted, concept, score, base)
    clock.lap("sample_size")
    adversarial = measure_adversarial(model, config, inputs, fitted, concept, score, work)
    clock.lap("adversarial")
    perplexity = measure_perplexity(model, config, inputs, fitted.vector, work)
    clock.lap("perplexity")
    report = {"model": {"name": model.name, "source": str(model.source), "n_layers": model.n_layers,
                        "d_model": model.d_model, "n_parameters": sum(p.numel() for p in model.hf_model.parameters())},
              "vector": fitted.describe(), "effects": effects, "sample_size": sample_size,
              "adversarial": adversarial, "perplexity": perplexity}
    return report, fitted.vector


def units_key(models: Sequence[Any], config: RobustnessConfig, *, device: str | None = None, positive: Texts = None,
              negative: Texts = None, pairs: Pairs = None, questions: Questions = None, prompts: Texts = None,
              ood_prompts: OodSets = None, ood_questions: OodSets = None, neutral: Texts = None) -> dict[str, Any]:
    """The key of a run's units (:func:`~interp_steer.units.run_key`), found without loading the
    models: each is a :class:`Model` or a spec, loaded on ``device``."""
    reject_bare_strings(positive=positive, negative=negative, pairs=pairs, questions=questions,
                        prompts=prompts, neutral=neutral, path_ok=True)
    inputs = load_inputs(config, positive, negative, pairs, questions, prompts, ood_prompts, ood_questions, neutral)
    return _key(models, config, inputs, device)


def _key(models: Sequence[Any], config: RobustnessConfig, inputs: Inputs, device: str | None) -> dict[str, Any]:
    identities = [model_identity(m if isinstance(m, Model) else (m, "float32", device)) for m in models]
    return run_key(identities, config, inputs.data)


def robustness(
    model: Model | str | None | Sequence[Model | str | None] = None,
    config: RobustnessConfig | None = None,
    *,
    positive: Texts = None,
    negative: Texts = None,
    pairs: Pairs = None,
    questions: Questions = None,
    prompts: Texts = None,
    ood_prompts: OodSets = None,
    ood_questions: OodSets = None,
    neutral: Texts = None,
    scorer: Scorer | None = None,
    scorer_name: str | None = None,
    device: str | None = None,
    n_devices: int | None = None,
    quick: bool = False,
    execution: Execution | None = None,
    **overrides: Any,
) -> RobustnessResult:
    """The study in one call: the settings come from ``config``, or from
    :meth:`RobustnessConfig.quick` when ``quick``, with keyword ``overrides`` of its fields (e.g.
    ``layer=15``, ``subsets=3``); the data, the scorer, where models load and ``execution`` are passed
    to :func:`run`."""
    config = settings(RobustnessConfig, config, quick=quick, **overrides)
    return run(model, config, positive=positive, negative=negative, pairs=pairs, questions=questions, prompts=prompts,
               ood_prompts=ood_prompts, ood_questions=ood_questions, neutral=neutral, scorer=scorer,
               scorer_name=scorer_name, device=device, n_devices=n_devices, execution=execution)


__all__ = ["replay", "robustness", "run", "units_key"]
