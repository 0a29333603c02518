"""The settings of a robustness study: :class:`RobustnessConfig` and its two profiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from interp_steer.studies._common import ConfigIO

DEFAULT_COEFFICIENTS = (-0.2, -0.1, 0.0, 0.1, 0.2)
QUICK_COEFFICIENTS = (-0.2, 0.0, 0.2)
DEFAULT_PERPLEXITY_COEFFICIENTS = (-0.8, -0.4, -0.2, -0.1, 0.0, 0.1, 0.2, 0.4, 0.8)
DEFAULT_SAMPLE_SIZES = (4, 8, 16, 32, 64, 128)


def _check_coefficients(name: str, values: Sequence[float | int], *, both_signs: bool) -> tuple[float, ...]:
    coefficients = tuple(float(c) for c in values)
    ok = (len(coefficients) >= 2 and 0.0 in coefficients and any(c > 0 for c in coefficients)
          and list(coefficients) == sorted(set(coefficients)) and all(math.isfinite(c) for c in coefficients))
    if ok and both_signs:
        ok = any(c < 0 for c in coefficients)
    if not ok:
        signs = "both signs" if both_signs else "a positive one"
        raise ValueError(f"{name} must be distinct and increasing, include 0 (the unsteered reference) and {signs}; "
                         f"got {list(values)}")
    return coefficients


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class RobustnessConfig(ConfigIO):
    """Settings of a robustness study; validated on construction, round-trips through JSON.

    **Vector.** A mean-difference vector at one ``layer`` (``"auto"``: the best layer of a probe
    profile over every layer, on the training split only), read at ``position`` (``"mean"`` over
    tokens or ``"last"``; A/B questions are read at the answer letter), rescaled to the layer's mean
    residual norm: a coefficient of 0.1 moves every steered activation by 10 % of a typical residual.
    Steering runs from each prompt's last token on, greedy decoding.

    **Split.** ``heldout_fraction`` of the concept's examples (texts, pairs or A/B questions) is held
    out by the seed: held-out texts are the on-topic perplexity corpus; held-out A/B questions are
    the in-distribution items. ``max_passages`` caps each training corpus before the split,
    ``max_prompts`` every prompt set.

    **Effects** (finding 1): every prompt set is generated at every value of ``coefficients``
    (must include 0 and both signs); ``primary`` (default: the largest) is the coefficient the
    findings are judged at. An effect is ``direction · sign(c) · (score(steered) − score(unsteered))``
    per item: positive is the intended direction.

    **Sample size** (finding 2): ``subsets`` random subsets of each size in ``sample_sizes`` (examples
    per class; sizes not below the training split's smaller class are skipped, and the full training
    split is added), each a vector applied at ``primary`` to the first ``sample_size_prompts``
    in-distribution items. ``plateau_limit``: the claim is that 90 % of the plateau is reached by
    about this many examples.

    **Adversarial search** (finding 3): for each of the first ``adversarial_seeds`` in-distribution
    items, an evolutionary search of ``adversarial_budget`` candidates minimising the steering's
    signed effect on the next-token readout, its control (random edits of the same budget: the same
    breeding without selection) and, with ``gcg``, a gradient-guided suffix search (GCG; reported,
    not judged: it has no control). A reversal counts when the effect is below ``−reversal_margin``
    times the mean in-distribution readout effect. The verdict compares the search with its control
    seed by seed, and can say "not reproduced" only from 13 seeds on (no reversal at all).
    ``readout_tokens``: how many promoted and suppressed tokens define the open-ended readout.

    **Perplexity** (finding 4): NLL per token of a neutral corpus (built-in: the baseline passages) and
    of the held-out on-topic texts at each of ``perplexity_coefficients`` (must include 0 and a
    positive value; the primary coefficient is added, since the claim is judged there), each corpus
    capped at ``max_perplexity_texts``.

    **Margins** (smallest effects of interest): ``ood_margin``, an OOD/ID ratio below ``1 − margin``
    is a loss of reliability; ``perplexity_margin``, a relative perplexity rise; ``reversal_margin``
    as above.
    """

    layer: str | int = "auto"
    position: str = "mean"
    coefficients: Sequence[float | int] = DEFAULT_COEFFICIENTS
    primary: float | int | None = None
    perplexity_coefficients: Sequence[float | int] = DEFAULT_PERPLEXITY_COEFFICIENTS
    direction: str | int = "auto"
    heldout_fraction: float | int = 0.25
    sample_sizes: Sequence[int] = DEFAULT_SAMPLE_SIZES
    subsets: int = 5
    sample_size_prompts: int | None = None
    plateau_limit: int = 128
    adversarial_seeds: int = 20
    adversarial_budget: int = 192
    gcg: bool = True
    population: int = 16
    suffix_length: int = 6
    readout_tokens: int = 20
    max_new_tokens: int = 40
    max_prompts: int | None = None
    max_passages: int | None = None
    max_perplexity_texts: int | None = None
    ood_margin: float | int = 0.25
    perplexity_margin: float | int = 0.05
    reversal_margin: float | int = 0.25
    folds: int = 5
    batch_size: int = 64
    n_boot: int = 1000
    keep_samples: int = 2
    seed: int = 0
    profile: str = "default"

    def __post_init__(self) -> None:
        coefficients = _check_coefficients("coefficients", self.coefficients, both_signs=True)
        perplexity = _check_coefficients("perplexity_coefficients", self.perplexity_coefficients, both_signs=False)
        primary = max(coefficients) if self.primary is None else float(self.primary)
        if primary not in coefficients or primary == 0.0:
            raise ValueError(f"primary must be one of the non-zero coefficients {[c for c in coefficients if c]}, "
                             f"got {self.primary!r}")
        if isinstance(self.layer, str):
            if self.layer != "auto":
                raise ValueError(f"layer must be 'auto' or a layer number, got {self.layer!r}")
        else:
            _check_int("layer", self.layer, 0)
        if self.position not in ("mean", "last"):
            raise ValueError(f"position must be 'mean' or 'last', got {self.position!r}")
        if self.direction not in ("auto", 1, -1) or isinstance(self.direction, bool):
            raise ValueError(f"direction must be 'auto', 1 or -1, got {self.direction!r}")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        sizes = tuple(self.sample_sizes)
        if (not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes)
                or list(sizes) != sorted(set(sizes))):
            raise ValueError(f"sample_sizes must be distinct, increasing positive integers; got {list(sizes)}")
        for name, minimum in (("subsets", 1), ("plateau_limit", 1), ("adversarial_seeds", 0),
                              ("adversarial_budget", 2), ("population", 2), ("suffix_length", 1),
                              ("readout_tokens", 1), ("max_new_tokens", 1), ("folds", 2), ("batch_size", 1),
                              ("keep_samples", 0), ("seed", 0)):
            _check_int(name, getattr(self, name), minimum)
        if not isinstance(self.gcg, bool):
            raise ValueError(f"gcg must be True or False, got {self.gcg!r}")
        if self.n_boot != 0:
            _check_int("n_boot", self.n_boot, 100)
        for name in ("max_prompts", "max_passages", "sample_size_prompts", "max_perplexity_texts"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value, 2)
        for name in ("ood_margin", "perplexity_margin", "reversal_margin"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if self.profile not in ("default", "quick"):
            raise ValueError(f"profile must be 'default' or 'quick', got {self.profile!r}")
        object.__setattr__(self, "coefficients", coefficients)
        # The perplexity claim is judged at the primary coefficient, so it is always measured there.
        object.__setattr__(self, "perplexity_coefficients", tuple(sorted({*perplexity, primary})))
        object.__setattr__(self, "sample_sizes", sizes)

    @property
    def primary_coefficient(self) -> float:
        """The coefficient the findings are judged at (``primary``, or the largest)."""
        return max(self.coefficients) if self.primary is None else float(self.primary)

    @classmethod
    def quick(cls, **overrides: Any) -> RobustnessConfig:
        """The ``--quick`` profile: coefficients −0.2, 0, 0.2; 3 subsets per sample size on 12
        prompts; 16 adversarial seeds, each with an evolutionary search and its random-edit control of
        64 candidates (no GCG); 24 new tokens; perplexity at −0.4 … 0.4 on 40 texts per corpus;
        3-fold layer probes; 500 bootstrap replicates. About 5 minutes on a quiet 2-core CPU."""
        settings: dict[str, Any] = {"coefficients": QUICK_COEFFICIENTS, "subsets": 3, "sample_size_prompts": 12,
                                    "adversarial_seeds": 16, "adversarial_budget": 64, "gcg": False, "max_new_tokens": 24,
                                    "perplexity_coefficients": (-0.4, -0.2, 0.0, 0.2, 0.4), "max_perplexity_texts": 40,
                                    "folds": 3, "n_boot": 500, "profile": "quick"}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)


__all__ = ["DEFAULT_COEFFICIENTS", "DEFAULT_PERPLEXITY_COEFFICIENTS", "DEFAULT_SAMPLE_SIZES", "QUICK_COEFFICIENTS",
           "RobustnessConfig"]
