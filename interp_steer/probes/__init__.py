"""Per-layer linear probes with honest cross-validation, and layer localisation.

Question: *at which layer is a concept linearly readable from the residual stream?* The answer here
is a :class:`LayerProfile`: for every layer, how well a logistic-regression probe separates
positive from negative examples **on data it was not trained on**, plus the best layer, the band
of layers that are statistically as good as the best, and an honest accuracy for "the best layer".

Why each piece is there:

- **Stratified k-fold cross-validation.** A probe's training accuracy in a 576-dimensional residual
  stream with a few hundred texts is meaningless: with more dimensions than samples, any labelling,
  even a random one, is linearly separable. Every number reported per layer is measured on
  held-out folds; stratification keeps the class ratio equal in every fold. The same folds are
  used at every layer, so layers can be compared fold by fold (paired).
- **The band.** Per-layer accuracies are noisy and neighbouring layers often differ by less than
  that noise, so "the best layer" is a point estimate, not a fact. A layer ``L`` is in the band when
  the mean over folds of ``acc[fold, best] - acc[fold, L]`` is within the 95 % paired-t margin
  ``t(0.975, k-1) * sd / sqrt(k)``: ``L`` is not detectably worse than the best. Read the band as
  "the concept is about equally readable anywhere here". Folds share training data, so the
  differences are not independent and the margin is, if anything, too narrow (Nadeau & Bengio,
  2003): a layer outside the band is not proof of a real difference, but a layer inside it
  certainly is not shown to be worse.
- **Nested cross-validation for the selected layer.** The accuracy *at* the best layer is biased
  upwards: picking the maximum of 30 noisy estimates selects the luckiest one (with random labels
  the max of 30 fold-averaged accuracies sits well above 0.5). ``heldout_accuracy`` repeats the
  whole procedure, layer choice included, inside each outer training set and scores the chosen
  layer on the outer test fold, which took no part in choosing it. It is the honest answer to
  "if I pick a layer this way, how well will a probe there do on new data?"; with random labels it
  is about 0.5, as it should be.
- **Separability along the mean difference.** Steering usually uses the plain mean-difference
  (CAA) direction, not the probe's weights. ``separability`` is the held-out AUROC of the
  projection onto the training folds' ``mean(pos) - mean(neg)``: high when the concept lives along
  that one direction, lower than the probe's AUROC when the probe needs a rotated or rescaled
  direction to read it.

The three verbs, from the smallest input to the largest:

- :func:`probe_layers` probes **one concept's activations** at every layer and returns its
  :class:`LayerProfile` (:mod:`.layers`);
- :func:`compare_profiles` puts **several concepts' profiles** side by side in a
  :class:`Localisation`: a shared layer where all are strong, and whether their best layers are
  distinguishable at all (:mod:`.localisation`);
- :func:`probe_concepts` starts from **a model and each concept's texts**: it collects the
  activations, probes them and compares the profiles (the resumable version, one work unit per
  concept, is :func:`interp_steer.studies.localise`).

:func:`sample_size_curve` shows how many examples a mean-difference direction and a probe need
before they stop changing (:mod:`.sample_size`); :class:`ProbeReadout` is a probe at one layer that
reads a concept from generated text (:mod:`.readout`).

Apart from :func:`probe_concepts` and :class:`ProbeReadout`, all work is on arrays
``[n, n_layers, d_model]`` (numpy, torch or an :class:`Activations`), never on a model, and the
results are frozen dataclasses with ``to_dict()`` for JSON.
"""

from interp_steer.probes._arrays import ActivationStack
from interp_steer.probes.layers import LayerProfile, fold_splits, probe_layers
from interp_steer.probes.localisation import (
    Localisation,
    compare_profiles,
    plot_localisation,
    probe_concepts,
)
from interp_steer.probes.readout import ProbeReadout
from interp_steer.probes.sample_size import SampleSizeCurve, sample_size_curve

__all__ = [
    "ActivationStack",
    "LayerProfile",
    "Localisation",
    "ProbeReadout",
    "SampleSizeCurve",
    "compare_profiles",
    "fold_splits",
    "plot_localisation",
    "probe_concepts",
    "probe_layers",
    "sample_size_curve",
]
