"""The settings of a Steering Vector Fields comparison: :class:`SvfConfig` and its two profiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from interp_steer.fields import FORMS
from interp_steer.studies._common import ConfigIO

DEFAULT_COEFFICIENTS = (-0.1, -0.05, 0.0, 0.05, 0.1)
QUICK_COEFFICIENTS = (-0.1, 0.0, 0.1)
DEFAULT_LAYER_BAND = (0.33, 0.75)


@dataclass(frozen=True)
class SvfConfig(ConfigIO):
    """Settings of an SVF comparison; validated on construction, round-trips through JSON
    (``to_dict``/``from_dict``).

    **Layers.** ``layers="auto"`` steers ``n_layers`` adjacent layers chosen on the training data
    only: the field is fitted at every candidate layer (those within ``layer_band``, fractions of the
    model's depth; steering works best in the middle of the network, CAA's layer 13 of 32 and its
    successors', so the band is a prior, not a measurement), and the window of ``n_layers`` adjacent
    layers with the lowest mean held-out loss of the field's scorer is kept (a proper score keeps
    ranking once held-out accuracy saturates). Or a tuple of layer numbers. Vector and field steer
    the same layers at once, from each prompt's last token on, greedy decoding.

    **Coefficients** are in units of each steered layer's mean residual norm (over the training
    rows), for both methods: the vector is rescaled to that norm, the field's step is
    ``c · ‖h‖ₘ · ĝ(h)``; so at equal ``c`` both move every steered activation by the same length.
    They must include 0 (the unsteered reference) and both signs. ``primary`` is the one
    coefficient at which the four claims are judged (``None``: the largest positive one); every
    cell is reported.

    **Data.** ``position`` is where the training texts are read (``"mean"`` over tokens, the first
    left out; A/B questions are always read at the answer letter). ``max_passages`` caps each
    training corpus, ``max_prompts`` the held-out prompts (first items kept). ``question_split`` is
    the fraction of A/B questions held out for evaluation (the rest train).

    **Measures.** ``direction``: +1 when positive coefficients (towards the positive texts) should
    raise the score, −1 when they should lower it, ``"auto"``: the sign of mean score(positive
    texts) − mean score(negative texts), measured on the training texts. ``max_new_tokens`` per
    completion; ``long_tokens`` (>= ``max_new_tokens``) for the long-form run (first vs last third),
    which continues the primary cells' greedy completions. The backfire noise floor comes from
    ``floor_draws`` random directions per prompt and coefficient size, each as long as the vector
    and the field's step at the same layers, decoded greedily like the grid: what a perturbation
    with no concept in it does to the score (a steering that changes nothing backfires on no prompt;
    such a random perturbation on 5 %).

    **Margins** (the smallest effects of interest of the registered rules ``svf.*``,
    :mod:`interp_steer.studies.rules.svf`): ``effect_margin`` is relative — the field must be
    ``1 + effect_margin`` times as strong as the vector (control); ``backfire_margin`` a difference of
    backfire rates; ``retention_margin`` a difference of retentions: together / alone in the
    multi-attribute test, last third / first third in the long-form test.
    """

    layers: str | Sequence[int] = "auto"
    n_layers: int = 3
    layer_band: Sequence[float | int] = DEFAULT_LAYER_BAND
    form: str = "per_layer"
    position: str = "mean"
    coefficients: Sequence[float | int] = DEFAULT_COEFFICIENTS
    primary: float | int | None = None
    direction: str | int = "auto"
    max_new_tokens: int = 40
    long_tokens: int = 128
    floor_draws: int = 2
    max_prompts: int | None = None
    max_passages: int | None = None
    question_split: float | int = 0.5
    multi_attribute: bool = True
    effect_margin: float | int = 0.25
    backfire_margin: float | int = 0.05
    retention_margin: float | int = 0.1
    epochs: int = 50
    folds: int = 5
    batch_size: int = 64
    keep_samples: int = 2
    seed: int = 0
    profile: str = "default"

    def __post_init__(self) -> None:
        coefficients = tuple(float(c) for c in self.coefficients)
        if (len(coefficients) < 3 or 0.0 not in coefficients or not any(c > 0 for c in coefficients)
                or not any(c < 0 for c in coefficients) or list(coefficients) != sorted(set(coefficients))
                or not all(math.isfinite(c) for c in coefficients)):
            raise ValueError(f"coefficients must be distinct and increasing, include 0 (the unsteered reference) and "
                             f"both signs; got {list(coefficients)}")
        primary = max(coefficients) if self.primary is None else float(self.primary)
        if primary not in coefficients or primary == 0.0:
            raise ValueError(f"primary must be one of the non-zero coefficients {[c for c in coefficients if c]}, "
                             f"got {self.primary!r}")
        if isinstance(self.layers, str):
            if self.layers != "auto":
                raise ValueError(f"layers must be 'auto' or a list of layer numbers, got {self.layers!r}")
            layers: str | tuple[int, ...] = "auto"
        else:
            layers = tuple(self.layers)
            if (not layers or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in layers)
                    or list(layers) != sorted(set(layers))):
                raise ValueError(f"layers must be 'auto' or distinct, ascending, non-negative integers; got {list(layers)}")
        band = tuple(float(x) for x in self.layer_band)
        if len(band) != 2 or not 0.0 <= band[0] < band[1] <= 1.0:
            raise ValueError(f"layer_band must be (low, high) fractions of the depth with 0 <= low < high <= 1, got {band}")
        if self.form not in FORMS:
            raise ValueError(f"form {self.form!r}: expected one of {list(FORMS)}")
        if self.position not in ("mean", "last"):
            raise ValueError(f"position must be 'mean' or 'last', got {self.position!r}")
        if self.direction not in ("auto", 1, -1) or isinstance(self.direction, bool):
            raise ValueError(f"direction must be 'auto', 1 or -1, got {self.direction!r}")
        for name in ("n_layers", "max_new_tokens", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if (isinstance(self.long_tokens, bool) or not isinstance(self.long_tokens, int) or self.long_tokens < 3
                or self.long_tokens < self.max_new_tokens):
            raise ValueError(f"long_tokens must be an integer >= 3 (three thirds) and >= max_new_tokens "
                             f"({self.max_new_tokens}): the long-form run continues the primary cells' completions; "
                             f"got {self.long_tokens!r}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        if self.keep_samples < 0:
            raise ValueError(f"keep_samples must be >= 0, got {self.keep_samples}")
        for name in ("max_prompts", "max_passages"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
                raise ValueError(f"{name} must be an integer >= 2 (or None for all), got {value!r}")
        if not 0.0 < self.question_split < 1.0:
            raise ValueError(f"question_split (the held-out fraction of A/B questions) must be in (0, 1), "
                             f"got {self.question_split}")
        if isinstance(self.floor_draws, bool) or not isinstance(self.floor_draws, int) or self.floor_draws < 1:
            raise ValueError(f"floor_draws (random control directions per prompt for the backfire floor) must be a "
                             f"positive integer, got {self.floor_draws!r}")
        for name in ("effect_margin", "backfire_margin", "retention_margin"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.profile not in ("default", "quick"):
            raise ValueError(f"profile must be 'default' or 'quick', got {self.profile!r}")
        object.__setattr__(self, "coefficients", coefficients)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "layer_band", band)

    @property
    def primary_coefficient(self) -> float:
        """The coefficient the claims are judged at (``primary``, or the largest positive one)."""
        return max(self.coefficients) if self.primary is None else float(self.primary)

    @classmethod
    def quick(cls, **overrides: Any) -> SvfConfig:
        """The ``--quick`` profile: coefficients −0.1, 0, 0.1 on all 30 built-in prompts (fewer prompts
        would leave the effects' intervals too wide to say anything on the default model), 48
        passages per training corpus, 32 new tokens, 48 long-form tokens, 3-fold readout probes.
        A few minutes on a 2-core CPU."""
        settings: dict[str, Any] = {"coefficients": QUICK_COEFFICIENTS, "max_passages": 48, "max_new_tokens": 32,
                                    "long_tokens": 48, "folds": 3, "profile": "quick"}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)


__all__ = ["DEFAULT_COEFFICIENTS", "DEFAULT_LAYER_BAND", "QUICK_COEFFICIENTS", "SvfConfig"]
