"""The verdict rules of the robustness study (arXiv 2505.03189's five findings).

Each rule is registered in :data:`~interp_steer.studies.rules.base.REGISTRY` under
``robustness.<finding>``; the study's ``claims`` module calls :meth:`Rule.decide` and wraps the
decision in its finding. ``interp-steer rules robustness.ood`` (etc.) prints a rule's card: its error
rates under every simulated world below at the shipped quick and full sizes.

- ``robustness.ood``: Fieller's interval of OOD effect / ID effect per out-of-distribution set
  (standardised effects when the sets are measured differently), gated on a significant ID effect;
- ``robustness.sample_size``: the bootstrap interval of n₉₀, where a saturating curve reaches 90 %
  of its plateau, against the paper's "about 80" (limit 128);
- ``robustness.adversarial``: per seed prompt, did the optimised search reverse the steering, and did
  random edits of the same budget (the control)? McNemar's exact test for "more than random", an
  exact bound for "not much more than random";
- ``robustness.perplexity``: the interval of the mean per-text log perplexity ratio against
  ``log(1 + margin)``;
- ``robustness.model_size``: the same threshold rule on per-text differences of log ratios, smallest
  model minus largest.

One module per rule (:mod:`.ood` with :mod:`.ood_worlds`, :mod:`.sample_size`, :mod:`.adversarial`,
:mod:`.perplexity`, :mod:`.model_size`); :mod:`.threshold` is the rule the last two share and
:mod:`.common` the input check all of them use.
"""

from __future__ import annotations

from interp_steer.studies.rules.robustness.adversarial import (
           ADVERSARIAL,
           smallest_significant_count,
)
from interp_steer.studies.rules.robustness.model_size import MODEL_SIZE
from interp_steer.studies.rules.robustness.ood import OOD, OOD_SCALE, ood_ratio
from interp_steer.studies.rules.robustness.perplexity import PERPLEXITY
from interp_steer.studies.rules.robustness.sample_size import SAMPLE_SIZE
from interp_steer.studies.rules.robustness.threshold import threshold_codes

__all__ = ["ADVERSARIAL", "MODEL_SIZE", "OOD", "OOD_SCALE", "PERPLEXITY", "SAMPLE_SIZE", "ood_ratio",
           "smallest_significant_count", "threshold_codes"]
