"""The verdict rules of the Steering Vector Fields comparison: ``svf.control``, ``svf.backfire``,
``svf.long_form`` and ``svf.multi_attribute``.

Each rule takes the per-prompt numbers of *both* methods (never a precomputed difference or margin),
so that a simulation feeds it what the study measures and exercises the whole procedure: margins
estimated from the vector's own effects, the backfire floor estimated from the control perturbation,
retentions estimated as ratios. The study's ``claims`` module calls :meth:`Rule.decide`.

Every rule reads one 95 % interval of the field's advantage (or, for backfires, two exact one-sided
2.5 % tests): **reproduced** when it lies above 0; **not reproduced** when it shows the advantage
below the smallest effect of interest (which includes "the vector does better"); **inconclusive**
otherwise. Each arm is a one-sided 2.5 % test at its boundary, so false "reproduced" is designed at
≤ 2.5 % and false "not reproduced" at ≤ 2.5 % (control: two arms with different boundaries, ≤ 5 %
together); the simulations (``interp-steer rules svf.control`` ..., ``tests/test_rules_svf.py``) stay
within 4 % under every world here (the scorers' real scales, heavy tails, skew, unequal variances),
which leaves room for worlds nobody simulated.

- ``svf.control``: per prompt the two effects (move of the score in the intended direction);
  "reproduced" also needs the field's own mean effect significantly above 0. The
  smallest effect of interest is relative (the field ``1 + margin`` times as strong as the vector);
  it is tested per prompt as ``field − (1 + margin)·vector`` (Fieller's test of the ratio), never
  through a margin estimated from the vector's mean, whose noise is correlated with the difference.
- ``svf.backfire``: per prompt the two effects and the changes a content-free perturbation of the
  same length makes (a random direction, decoded greedily like the grid). The floor is their
  symmetrised 95 % quantile; a prompt backfires when its effect is below −floor. The paired 0/1 flags
  are judged by exact unconditional tests (Tango's score ordering, the nuisance maximised over), and
  a verdict counts only when it holds at every floor in the floor's distribution-free 95 % interval.
- ``svf.long_form``: retention, last third ÷ first third, per method; decided on the denominator-free
  form mean(last f)·mean(first v) − mean(last v)·mean(first f) (and the same minus margin·mean(first
  f)·mean(first v)) by the jackknife over prompts; the difference of retentions by the jackknife is
  reported. Undefined,
  so inconclusive, unless both methods' first-third effects are significantly in the intended
  direction.
- ``svf.multi_attribute``: retention, together ÷ alone, per attribute and method, averaged over the
  two attributes; the difference by the jackknife; gated on every solo effect being significant.

One module per rule (:mod:`.control`, :mod:`.backfire`, :mod:`.long_form`, :mod:`.multi_attribute`),
each with its simulated worlds; :mod:`.retention` is the jackknife retention rule the last two share,
:mod:`.scorers` the simulated scorers' bounded scales, :mod:`.common` the level, shipped sizes and
input checks all four use.
"""

from __future__ import annotations

from interp_steer.studies.rules.svf.backfire import (
    BACKFIRE,
    backfire_core,
    control_floor,
    floor_interval,
    unconditional_pvalues,
)
from interp_steer.studies.rules.svf.common import REAL
from interp_steer.studies.rules.svf.control import CONTROL, control_core
from interp_steer.studies.rules.svf.long_form import LONG_FORM, long_form_core
from interp_steer.studies.rules.svf.multi_attribute import MULTI, multi_core
from interp_steer.studies.rules.svf.retention import jackknife, retention_core

__all__ = ["BACKFIRE", "CONTROL", "LONG_FORM", "MULTI", "REAL", "backfire_core", "control_core", "control_floor",
           "floor_interval", "jackknife", "long_form_core", "multi_core", "retention_core", "unconditional_pvalues"]
