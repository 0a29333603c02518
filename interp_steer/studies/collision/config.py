"""The settings of a Creative Collision study: :class:`CollisionConfig` and its two profiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from interp_steer._constants import FIELD_FORMS
from interp_steer.studies._common import ConfigIO

DEFAULT_ALPHAS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
DEFAULT_LAMBDAS = (0.1, 0.2, 0.3, 0.5, 0.8)
QUICK_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
QUICK_LAMBDAS = (0.3, 0.8)
METHODS = ("vector", "field")

Settings = Any
"""What the readout, coherence and findings stages read from their config: a :class:`CollisionConfig`,
or, for imported completions (:mod:`.imported`), the same attributes (``alphas``, ``lambdas``,
``max_new_tokens``, ``reference_passages``, ``degradation_ratio``, ``degradation_repetition``,
``folds``, ``seed``, ``position``) on an imported grid that :class:`CollisionConfig` cannot describe
(a pure end missing, two mixes only)."""


@dataclass(frozen=True)
class CollisionConfig(ConfigIO):
    """Settings of a collision study; validated on construction, round-trips through JSON
    (``to_dict``/``from_dict``).

    ``lambdas`` are in units of the mean residual norm at the steering layer. ``samples=None`` means
    greedy decoding; ``samples=N`` draws N samples per prompt (``temperature``, ``top_p``) on common
    random numbers across cells. ``max_prompts``/``max_passages`` cap the prompt list and each corpus
    (first items kept); ``decomposition_prompts`` caps the prompts whose residual shifts are
    decomposed (``None``: all).

    A strength is *degraded* when either pure end reads worse than fluent text **of its own tone**:
    its perplexity (geometric mean over prompts) exceeds ``degradation_ratio`` times that of the
    persona's own corpus (A's passages for the A end, B's for the B end), or its repetition rate
    exceeds the corpus's by more than ``degradation_repetition``. The corpus passages are scored by
    the unsteered model in a window of ``max_new_tokens`` scored tokens, the completions' length;
    ``reference_passages`` caps how many passages per corpus are scored (``None``: all used).

    ``method`` is what the grid steers with: ``"vector"`` (the persona vectors, the paper's setting)
    or ``"field"`` (a :class:`~interp_steer.fields.SteeringField` per persona, persona vs baseline,
    fitted at the steering layer on the same activations, of form ``field_form``; the grid mixes the
    two fields as ``λ·(α·field_A + (1 − α)·field_B)``, each a step of ``‖h‖ₘ`` per unit coefficient, the
    vectors' common scale), so the dominance question can be asked of both.

    ``unit_prompts``: prompts per work unit of the grid (each unit generates and scores every cell of
    its prompts; ``None``: as many as fill one batch of ``batch_size`` rows: two prompts of the
    default grid's 46 cells, whose 92 rows decode 1.19x faster than two batches of 46 on a 2-core CPU,
    since each step reads the weights once for more rows). Units are what a resumed
    run skips and what Ray actors receive (:mod:`interp_steer.units`).

    ``save_generations``: ``save()`` also writes every completion of the grid as ``generations.jsonl``
    (the format ``interp-steer score`` reads), so generation and analysis can be split.
    """

    layer: int | str = "auto"
    alphas: Sequence[float | int] = DEFAULT_ALPHAS
    lambdas: Sequence[float | int] = DEFAULT_LAMBDAS
    position: str = "last"
    max_new_tokens: int = 40
    samples: int | None = None
    temperature: float | int = 0.8
    top_p: float | int = 0.95
    seed: int = 0
    max_prompts: int | None = None
    max_passages: int | None = None
    batch_size: int = 128
    folds: int = 5
    degradation_ratio: float | int = 2.0
    degradation_repetition: float | int = 0.2
    reference_passages: int | None = None
    keep_samples: int = 2
    decomposition_prompts: int | None = None
    method: str = "vector"
    field_form: str = "per_layer"
    unit_prompts: int | None = None
    profile: str = "default"
    save_generations: bool = False

    def __post_init__(self) -> None:
        alphas = tuple(float(a) for a in self.alphas)
        lambdas = tuple(float(x) for x in self.lambdas)
        if len(alphas) < 3 or alphas[0] != 0.0 or alphas[-1] != 1.0 or any(b <= a for a, b in zip(alphas, alphas[1:], strict=False)):
            raise ValueError(f"alphas must increase from 0 to 1, both included, with at least one mix between; got {list(alphas)}")
        if not lambdas or any(not math.isfinite(x) or x <= 0 for x in lambdas) or list(lambdas) != sorted(set(lambdas)):
            raise ValueError(f"lambdas must be positive, distinct and increasing (λ = 0 is always run as the "
                             f"unsteered reference); got {list(lambdas)}")
        if not (self.layer == "auto" or (isinstance(self.layer, int) and not isinstance(self.layer, bool) and self.layer >= 0)):
            raise ValueError(f"layer must be 'auto' or a layer number, got {self.layer!r}")
        if self.position not in ("last", "mean"):
            raise ValueError(f"position must be 'last' or 'mean', got {self.position!r}")
        for name in ("max_new_tokens", "batch_size", "folds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("samples", "max_prompts", "max_passages", "decomposition_prompts", "reference_passages",
                     "unit_prompts"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None), got {value}")
        if self.samples is not None and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError("sampling needs temperature > 0 and 0 < top_p <= 1")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        if self.field_form not in FIELD_FORMS:
            raise ValueError(f"field_form must be one of {list(FIELD_FORMS)}, got {self.field_form!r}")
        if self.degradation_ratio <= 1:
            raise ValueError(f"degradation_ratio must be > 1, got {self.degradation_ratio}")
        object.__setattr__(self, "alphas", alphas)
        object.__setattr__(self, "lambdas", lambdas)

    @classmethod
    def quick(cls, **overrides: Any) -> CollisionConfig:
        """The ``--quick`` profile: 5 mixes × 2 strengths, 16 prompts (8 of them decomposed), 48
        passages per corpus (16 of each scored as the coherence reference), 32 new tokens, 3-fold
        probes. Sixteen prompts is about the fewest that still separates the pure ends' valence on
        the default model; the whole run takes 2–3 minutes on a 2-core CPU."""
        settings: dict[str, Any] = {"alphas": QUICK_ALPHAS, "lambdas": QUICK_LAMBDAS, "max_prompts": 16,
                                    "max_passages": 48, "max_new_tokens": 32, "folds": 3,
                                    "decomposition_prompts": 8, "reference_passages": 16, "profile": "quick"}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)


ALPHA_MEANS = ("persona-a", "persona-b")


@dataclass(frozen=True)
class ScoreConfig(ConfigIO):
    """Settings of :func:`score`. ``alpha_means``: which persona α = 1 is in the file.
    ``lambda_units``: what the file's λ means (reported, not used). ``window``: tokens per
    coherence-reference passage (``None``: the longest scored completion, the study's
    ``max_new_tokens`` when any completion reached it). ``max_completion_tokens``: longer completions
    are cut to this many tokens for the model-based scores (the count is reported). The others are
    the collision study's settings of the same names (and defaults, :class:`CollisionConfig`)."""

    alpha_means: str = "persona-a"
    lambda_units: str = "as labelled in the file"
    seed: int = 0
    folds: int = 3
    position: str = "last"
    max_passages: int | None = 48
    reference_passages: int | None = 16
    degradation_ratio: float | int = 2.0
    degradation_repetition: float | int = 0.2
    keep_samples: int = 2
    window: int | None = None
    max_completion_tokens: int = 512

    def __post_init__(self) -> None:
        if self.alpha_means not in ALPHA_MEANS:
            raise ValueError(f"alpha_means must be one of {list(ALPHA_MEANS)}, got {self.alpha_means!r}")
        for name in ("folds", "keep_samples", "max_completion_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("window", "max_passages", "reference_passages"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")



__all__ = ["ALPHA_MEANS", "ScoreConfig", "CollisionConfig", "DEFAULT_ALPHAS", "DEFAULT_LAMBDAS", "QUICK_ALPHAS", "QUICK_LAMBDAS"]
