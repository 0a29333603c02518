"""The verdict rules of the Creative Collision study (the paper's findings i–iii), one module each.

Each rule is registered in :data:`~interp_steer.studies.rules.base.REGISTRY`; the study's
:mod:`~interp_steer.studies.collision.findings` calls :meth:`Rule.decide` and wraps the decision in a
:class:`~interp_steer.studies.collision.result.Finding`.

- ``collision.dominance`` (finding i, :mod:`.dominance`): does persona A dominate the mix across most
  of the α range? Judged on per-prompt scores **on a named scale** (:mod:`.scales`): dominance is
  relative to the scale it is read on (any monotone re-expression of the scores bends ``d(α)``), so
  the rule reads VADER's compound on VADER's own raw valence sum (the compound's exact inverse) and
  also on the logistic scale ``2·artanh(c)``, and a verdict counts only when both scales give it.
  Its simulated worlds: :mod:`.dominance_worlds`.
- ``collision.coherence`` (finding ii, :mod:`.coherence`): at the top strength, is the mix nearest
  α = 0.5 more fluent (lower log-perplexity) than both pure ends?
- ``collision.shared_layer`` (finding iii, :mod:`.shared_layer`): do the two personas (each against
  the baseline) peak at the same layer? An equivalence test on the distance between the peaks, from
  the probes' held-out per-example scores. Its simulated worlds: :mod:`.shared_layer_worlds`.

:mod:`.common` holds what the three share (the shipped sizes, batch helpers, the worlds' table entry).
"""

from __future__ import annotations

from interp_steer.studies.rules.collision.coherence import COHERENCE, RARE_MODES, RARE_RATES
from interp_steer.studies.rules.collision.dominance import DOMINANCE
from interp_steer.studies.rules.collision.dominance_worlds import (
    DOMINANCE_BEYOND,
    SATURATING_NULLS,
    SATURATING_RATES,
)
from interp_steer.studies.rules.collision.scales import PAPER_AREA, SCORER_SCALES, paper_gamma
from interp_steer.studies.rules.collision.shared_layer import (
    SHARED_LAYER,
    SHARED_MIN_DEPTH,
    SHARED_MIN_PER_CLASS,
    brier_quality,
    fold_inflation,
)
from interp_steer.studies.rules.collision.shared_layer_worlds import (
    SHARED_WIDTHS,
    separability_curve,
)

__all__ = ["COHERENCE", "DOMINANCE", "DOMINANCE_BEYOND", "PAPER_AREA", "RARE_MODES", "RARE_RATES", "SATURATING_NULLS",
           "SATURATING_RATES", "SCORER_SCALES", "SHARED_LAYER", "SHARED_MIN_DEPTH", "SHARED_MIN_PER_CLASS",
           "SHARED_WIDTHS", "brier_quality", "fold_inflation", "paper_gamma", "separability_curve"]
