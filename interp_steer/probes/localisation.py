"""Several concepts' layer profiles side by side: :func:`compare_profiles` (from profiles already
computed) and :func:`probe_concepts` (from a model and each concept's texts), plus their figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from interp_steer.activations import collect_activations
from interp_steer.models import Model
from interp_steer.probes.layers import LayerProfile, pick_layer, probe_layers


@dataclass(frozen=True)
class Localisation:
    """Several concepts' layer profiles side by side (all computed on the same layers).

    With two or more concepts, ``shared_layer`` is the layer where the *weakest* concept's mean CV
    accuracy is highest (all jointly readable; ties, e.g. all at 1.0, go to the layer where the
    weakest held-out log-likelihood is highest), and ``best_layers_indistinguishable`` says whether
    every concept's best layer lies in every other concept's band. Both are ``None`` for one
    concept.
    """

    profiles: Mapping[str, LayerProfile]
    shared_layer: int | None
    best_layers_indistinguishable: bool | None

    @property
    def layers(self) -> tuple[int, ...]:
        return next(iter(self.profiles.values())).layers

    def __repr__(self) -> str:
        from interp_steer.display import one_line

        return one_line("Localisation", concepts={n: p.best_layer for n, p in self.profiles.items()},
                        shared_layer=self.shared_layer,
                        best_layers_indistinguishable=self.best_layers_indistinguishable)

    def _repr_html_(self) -> str:
        from interp_steer.display import localisation_html

        return localisation_html(self)

    def to_dict(self) -> dict[str, Any]:
        """``{"concepts": {name: profile.to_dict()}, "shared_layer", "best_layers_indistinguishable"}``."""
        return {
            "concepts": {name: profile.to_dict() for name, profile in self.profiles.items()},
            "shared_layer": self.shared_layer,
            "best_layers_indistinguishable": self.best_layers_indistinguishable,
        }

    def to_frame(self):
        """Every concept's profile rows (concept, layer, metric) stacked (:mod:`interp_steer.frames`)."""
        from interp_steer.frames import localisation_frame

        return localisation_frame(self)


def compare_profiles(profiles: Mapping[str, LayerProfile]) -> Localisation:
    """Compare concepts' layer profiles: a layer where all are strong, and whether they peak apart.

    ``profiles`` maps a concept name to its :func:`probe_layers` result; all must cover the same
    layers. ``shared_layer`` maximises the minimum over concepts of mean CV accuracy (ties go to the
    highest minimum log-likelihood, then the earlier layer). ``best_layers_indistinguishable`` is
    True when each concept's best layer is in every other concept's band, i.e. the data cannot tell
    their peaks apart. Both are ``None`` for a single concept.
    """
    if not isinstance(profiles, Mapping) or not profiles:
        raise ValueError(
            "profiles is empty: pass {concept_name: probe_layers(...)} for 1+ concepts"
        )
    for name, profile in profiles.items():
        if not isinstance(profile, LayerProfile):
            raise TypeError(
                f"profiles[{name!r}] is {type(profile).__name__}, expected LayerProfile"
            )
    names = list(profiles)
    layers = profiles[names[0]].layers
    for name in names[1:]:
        if profiles[name].layers != layers:
            raise ValueError(
                f"profiles cover different layers: {names[0]!r} has {list(layers)}, {name!r} has "
                f"{list(profiles[name].layers)}; compute them on the same layers"
            )
    frozen = MappingProxyType(dict(profiles))
    if len(names) == 1:
        return Localisation(profiles=frozen, shared_layer=None, best_layers_indistinguishable=None)

    accuracy = np.array([profiles[name].accuracy for name in names])  # [concepts, layers]
    loglik = np.array([profiles[name].log_likelihood for name in names])
    shared = layers[pick_layer(accuracy.min(axis=0), loglik.min(axis=0))]
    indistinguishable = all(
        profiles[a].best_layer in profiles[b].band for a in names for b in names if a != b
    )
    return Localisation(
        profiles=frozen, shared_layer=shared, best_layers_indistinguishable=indistinguishable
    )


def probe_concepts(
    model: Model,
    concepts: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    *,
    layers: int | Sequence[int] | str | None = None,
    position: str | int = "last",
    folds: int = 5,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool | None = False,
) -> Localisation:
    """Collect activations for each concept's ``(positive_texts, negative_texts)`` on ``model``, probe
    them at every layer (:func:`probe_layers`) and :func:`compare_profiles` them: per-concept layer
    profiles, and the shared layer for two or more.

    Everything runs here, one concept after another; :func:`interp_steer.studies.localise` does the
    same as resumable work units (one per concept), in this process or on a Ray backend.
    ``progress``: a progress bar over each concept's activation batches."""
    if not concepts:
        raise ValueError("concepts is empty: pass {name: (positive_texts, negative_texts)}")
    profiles = {}
    for name, (positive, negative) in concepts.items():
        positive, negative = list(positive), list(negative)
        acts = collect_activations(model, positive + negative, layers=layers, position=position,
                                   batch_size=batch_size, progress=progress)
        pos, neg = acts.split(len(positive), len(negative))
        profiles[name] = probe_layers(pos, neg, folds=folds, seed=seed, concept=name)
    return compare_profiles(profiles)


def plot_localisation(localisation: Localisation, *, title: str | None = None, ax: Any = None) -> Any:
    """Held-out accuracy per layer for each concept (band: ±1 std over folds; dashed: best layer;
    black: the shared layer). Returns the ``Axes``."""
    from interp_steer.plotting import plot_layer_profile

    for name, profile in localisation.profiles.items():
        mean, std = np.array(profile.accuracy), np.array(profile.accuracy_std)
        ax = plot_layer_profile(profile.layers, mean, band=(mean - std, mean + std),
                                mark=profile.best_layer, label=f"{name} (best {profile.best_layer})",
                                ylabel="held-out probe accuracy", title=title, ax=ax)
    if localisation.shared_layer is not None:
        ax.axvline(localisation.shared_layer, color="black", linewidth=1.2,
                   label=f"shared layer {localisation.shared_layer}")
        ax.legend(frameon=False, fontsize=8)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    return ax


__all__ = ["Localisation", "compare_profiles", "plot_localisation", "probe_concepts"]
