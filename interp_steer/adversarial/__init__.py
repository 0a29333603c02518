"""Budgeted searches for token sequences that minimise a black-box objective.

The searches here know nothing about models or steering: they see token-id lists and an
:class:`Objective`, a callable that scores a *batch* of candidate sequences, one float each, lower
is better. NaN marks a candidate the objective cannot score (too long, malformed, ...): it is paid
for, remembered, and never chosen. A robustness study wires a model in by writing the objective;
for example, the signed steering effect of a prompt (steered minus unsteered readout, oriented so
that ``> 0`` means the steering works) with ``threshold=0.0`` asks "is there a prompt within this
budget for which the steering reverses?". One batched forward per call is the caller's job; if a
batch is too large for memory, the objective splits it itself.

Two searches:

- :func:`evolutionary_search` needs nothing but values. A population grows from the seed; each
  generation breeds children from tournament-selected parents by one-point crossover (cut-and-splice
  on token lists) and the mutations in :data:`MUTATIONS` (insert, substitute, delete, swap two spans,
  move a span), keeps the ``elite`` best parents unchanged, and scores every new child of the
  generation in **one** objective call (``batch=False``: one call per child, same results).
- :func:`gcg_search` is greedy coordinate gradient (Zou et al., 2023) over a suffix appended to the
  seed. It needs a :class:`GradientObjective`, whose ``token_gradients`` is the derivative of the
  objective with respect to the one-hot token at each suffix position: the first-order estimate of
  what each single-token swap would do. Each step ranks the swaps by that estimate, scores a random
  sample of the ``top_k`` per position in one call, and moves to the best one if it truly improves.

And their control, :func:`random_search`: the evolutionary search with selection switched off (the
same breeding, the same budget, parents and survivors drawn at random), so that "the search found an
input below the threshold" can be compared with "random edits of the same budget did too".

Budget. ``budget`` counts candidates scored, the seed included, across all calls; it is never
exceeded (the last batch is cut short). Every value is cached by sequence: a candidate met again
costs nothing and is never sent to the objective twice, so the searches also stop on their own once
they find nothing new to score (``stop_reason`` says why a search ended). Gradient calls are not
part of the budget; :attr:`SearchResult.gradient_calls` counts them.

Reproducibility. All randomness comes from ``np.random.default_rng(seed)`` and none of it depends on
how candidates are batched, so a deterministic objective gives identical results for identical
arguments, with ``batch=True`` or ``False``.

Edits. :attr:`SearchResult.edits` is the path from the seed to the best candidate, one operation per
entry, each in the coordinates of the sequence it applies to:

- ``insert 7 at 3`` / ``insert [7, 8] at 3`` — tokens inserted before position 3;
- ``substitute 7 at 3 (was 5)``;
- ``delete 5 at 3``;
- ``swap [a:b] with [c:d]`` — exchange two spans (``b <= c``);
- ``move [a:b] to p`` — cut a span out, then insert it at ``p`` of what remains;
- ``crossover at 3 with tail [7, 8]`` — keep the first 3 tokens, then the tail of another parent.

:func:`replay_edits` applies such a path to the seed (and checks it on the way), so the path can be
audited, or cut short to ask which edit made the difference.

The package, one concept a module: :mod:`~interp_steer.adversarial.search` (the objective, the
result, the budget's bookkeeping), :mod:`~interp_steer.adversarial.edits` (the edit language),
:mod:`~interp_steer.adversarial.evolutionary` (the evolutionary search and its random control) and
:mod:`~interp_steer.adversarial.gcg` (GCG).
"""

from interp_steer.adversarial.edits import Ids, diff_edits, replay_edits
from interp_steer.adversarial.evolutionary import MUTATIONS, evolutionary_search, random_search
from interp_steer.adversarial.gcg import gcg_search
from interp_steer.adversarial.search import GradientObjective, Objective, SearchResult

__all__ = [
    "MUTATIONS",
    "GradientObjective",
    "Ids",
    "Objective",
    "SearchResult",
    "diff_edits",
    "evolutionary_search",
    "gcg_search",
    "random_search",
    "replay_edits",
]
