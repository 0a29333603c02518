"""Steering vector fields: steer along the gradient of a learned concept scorer.

A steering vector assumes the helpful direction is the same everywhere in the residual stream. When
the concept is not a straight line (it curves, or is read off one feature in some contexts and
another feature in others) one fixed vector helps on some inputs and *backfires* on the rest: it
moves them away from the concept. Steering Vector Fields (SVF) replace the vector by a field:

1. **Learn a scorer.** At each layer ``l``, a small differentiable function ``s_l(h)`` of the
   residual ``h`` is trained to output the logit of "this activation is from the positive side"
   (binary cross-entropy on contrastive activations, exactly the data a steering vector is built
   from).
2. **Steer along its gradient.** At every activation the model actually produces, the direction is
   the unit gradient ``ĝ(h) = ∇s_l(h) / ‖∇s_l(h)‖``: the way the scorer says "more positive" *from
   here*. The displacement is ``coefficient · resid_norm[l] · ĝ(h)``, so a coefficient of 0.1
   moves 10 % of a typical residual norm at that layer, the same unit as
   ``SteeringVector.normalised("resid")`` (and the two can be compared at equal coefficients).
   ``steps=k`` takes ``k`` smaller steps, re-reading the gradient after each (a few steps of
   gradient ascent on the scorer rather than one straight jump).

Scorer forms (``form=``), all on per-layer standardised inputs ``x = (h − μ_l) / σ_l``:

- ``"per_layer"``: one MLP per layer, ``d_model → 256 → 64 → 1`` with GELU (a smooth
  non-linearity, so the gradient turns smoothly as ``h`` moves); re-implementation (b) of the
  paper. All layers' MLPs are trained at once as batched matrix products; Adam is element-wise,
  so this is exactly independent training per layer, sharing only the mini-batch order.
- ``"shared"``: one projection ``P: d_model → k`` (``k = 16``) shared by all layers, a per-layer
  scale and shift in that concept space (``z = (P x) * a_l + b_l``), and one head MLP
  ``k → 64 → 1`` shared by all layers; re-implementation (a). All layers are trained jointly (one
  loss summed over layers), so they read the concept in one aligned space, which is what makes
  steering several layers at once coordinated rather than several unrelated pushes.
- ``"linear"``: logistic regression per layer. Its gradient is the same everywhere: the oracle case
  where a field *is* a steering vector (the probe's weights, see below), and a control.

Why standardise, and a consequence. Residual features differ in scale by orders of magnitude
(attention-sink features are hundreds of times larger than the rest), so the scorer sees
``(h − μ)/σ``. The gradient with respect to the *raw* ``h`` is then the gradient in standardised
coordinates divided by ``σ`` feature by feature: for the linear form it is ``w / σ``, not ``w``.
A nearly constant feature (tiny ``σ``) would dominate that direction for no reason, so ``σ`` is
floored at 1 % of the layer's median feature scale.

Honest fitting (:func:`fit_scorer`). A stratified held-out split, chosen with the seed and the same
at every layer (for contrast pairs, whole pairs are held out, so a pair's two halves never sit on
opposite sides of the split); early stopping on the held-out loss, keeping the best epoch's weights
(per layer for the per-layer forms, jointly for ``"shared"``); everything reproducible from the seed
through local generators, with no effect on the global RNG. The report per layer
(:class:`LayerFit`) is measured on the held-out rows: accuracy, AUROC, loss, and the training
accuracy beside it, so overfitting shows. Layers whose held-out accuracy is below
``min_accuracy`` are warned about (:class:`WeakLayerWarning`) and, with ``drop_weak="drop"``,
removed: a scorer at chance has a gradient, but it points at noise. Note that the held-out rows do
choose the stopping epoch, so the held-out accuracy is slightly optimistic; it is still honest
about what a layer cannot do.

Caveats worth keeping in mind: the gradient says where the *scorer* rises, which is the model's
concept only as far as the scorer generalises; it can point off the data manifold where the scorer
was never trained; and a scorer that saturates still has a direction (it is normalised) even where
its gradient is tiny. :func:`context_dependence` measures how much the field actually varies over
a set of activations (mean pairwise cosine of its directions: 1.0 for a steering vector); a field
whose context dependence is near 1 is a steering vector in disguise.

Generation runs under ``torch.inference_mode()``, where no graph can be built. :meth:`direction`
leaves inference mode locally, differentiates the scorer with respect to a detached float32 copy
of ``h`` (the scorer's parameters do not require gradients and the model is never in the graph),
and returns the direction in ``h``'s dtype on ``h``'s device. The scorer is copied once to each
device it meets.

Files: ``field.save(path)`` writes safetensors with self-describing tensor names (per layer
``blocks.{L}.hook_{point}.standardise.mean``, ``...mlp.0.weight`` ``[in, out]``, ...; shared parts
``shared.projection``, ``shared.head.0.weight``, ...) and :class:`FieldMetadata` as JSON in the
header; :meth:`SteeringField.load` validates all of it and raises :class:`FieldFileError`.

The package, one concept a module: :mod:`~interp_steer.fields.scorer` (the scorer and its forms),
:mod:`~interp_steer.fields.metadata` (what a field file records), :mod:`~interp_steer.fields.field`
(:class:`SteeringField`: steering along the gradient, files), :mod:`~interp_steer.fields.fit`
(honest fitting) and :mod:`~interp_steer.fields.diagnostics` (:func:`context_dependence`).
"""

from interp_steer.fields.diagnostics import context_dependence
from interp_steer.fields.field import SteeringField
from interp_steer.fields.fit import (
    DEFAULT_LR,
    WeakLayerWarning,
    fit_field,
    fit_scorer,
    heldout_split,
)
from interp_steer.fields.fit import DROP_WEAK as DROP_WEAK
from interp_steer.fields.metadata import FORMAT as FORMAT
from interp_steer.fields.metadata import FORMAT_VERSION as FORMAT_VERSION
from interp_steer.fields.metadata import FieldFileError, FieldMetadata, LayerFit
from interp_steer.fields.scorer import DEFAULT_HIDDEN, FORMS, ConceptScorer

__all__ = [
    "DEFAULT_HIDDEN",
    "DEFAULT_LR",
    "FORMS",
    "ConceptScorer",
    "FieldFileError",
    "FieldMetadata",
    "LayerFit",
    "SteeringField",
    "WeakLayerWarning",
    "context_dependence",
    "fit_field",
    "fit_scorer",
    "heldout_split",
]
