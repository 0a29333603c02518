"""A first look at a model: how two personas and a neutral baseline separate, layer by layer.

This is the README's main job until the collision study lands. For each layer it reports the mean
residual norm, the cosine between the two persona directions (each persona's mean minus the
baseline mean, as the collision study builds them), and how well persona A and persona B separate
along their mean-difference direction, measured honestly: the direction and threshold come from
one half of the texts and the separation is measured on the other half.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from interp_steer.activations import collect_activations
from interp_steer.models import Model


@dataclass(frozen=True)
class LayerSummary:
    """Per-layer facts about two personas against a baseline (lists are indexed like ``layers``)."""

    model: str
    layers: list[int]
    position: str
    seed: int
    n_texts: dict[str, int]
    resid_norm: list[float]
    cosine_ab: list[float]
    heldout_accuracy: list[float]
    heldout_dprime: list[float]

    @property
    def best_layer(self) -> int:
        """The layer where held-out A-vs-B separation (d') is largest."""
        return self.layers[int(np.argmax(self.heldout_dprime))]

    def to_dict(self) -> dict:
        return {**asdict(self), "best_layer": self.best_layer}


def layer_summary(
    model: Model,
    persona_a: Sequence[str],
    persona_b: Sequence[str],
    baseline: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    position: str = "last",
    seed: int = 0,
    batch_size: int = 16,
    progress: bool | None = None,
) -> LayerSummary:
    """Summarise, per layer, the residual norm and the geometry and separability of two personas."""
    groups = {"persona_a": list(persona_a), "persona_b": list(persona_b), "baseline": list(baseline)}
    for name, texts in groups.items():
        if len(texts) < 4:
            raise ValueError(f"{name} has {len(texts)} texts; at least 4 are needed for a held-out split")
    acts = collect_activations(
        model,
        [t for texts in groups.values() for t in texts],
        layers=layers,
        position=position,
        batch_size=batch_size,
        progress=progress,
    )
    values = acts.values.double().numpy()
    bounds = np.cumsum([0] + [len(t) for t in groups.values()])
    a, b, base = (values[bounds[i] : bounds[i + 1]] for i in range(3))

    norms = np.linalg.norm(values, axis=-1).mean(axis=0)
    v_a = a.mean(axis=0) - base.mean(axis=0)
    v_b = b.mean(axis=0) - base.mean(axis=0)
    cosine = (v_a * v_b).sum(-1) / (np.linalg.norm(v_a, axis=-1) * np.linalg.norm(v_b, axis=-1))

    rng = np.random.default_rng(seed)
    train_a, test_a = _halves(a, rng)
    train_b, test_b = _halves(b, rng)
    accuracy, dprime = _heldout_separation(train_a, train_b, test_a, test_b)
    return LayerSummary(
        model=model.name,
        layers=list(acts.layers),
        position=str(position),
        seed=seed,
        n_texts={name: len(texts) for name, texts in groups.items()},
        resid_norm=norms.tolist(),
        cosine_ab=cosine.tolist(),
        heldout_accuracy=accuracy.tolist(),
        heldout_dprime=dprime.tolist(),
    )


def _halves(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(len(x))
    half = len(x) // 2
    return x[order[:half]], x[order[half:]]


def _heldout_separation(
    train_a: np.ndarray, train_b: np.ndarray, test_a: np.ndarray, test_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per layer: accuracy and d' of the train-half mean-difference direction on the test half."""
    direction = train_a.mean(axis=0) - train_b.mean(axis=0)  # [layers, d]
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    threshold = 0.5 * ((train_a.mean(0) + train_b.mean(0)) * direction).sum(-1)
    proj_a = np.einsum("nld,ld->nl", test_a, direction)
    proj_b = np.einsum("nld,ld->nl", test_b, direction)
    correct = (proj_a > threshold).sum(0) + (proj_b <= threshold).sum(0)
    accuracy = correct / (len(test_a) + len(test_b))
    pooled = np.sqrt(0.5 * (proj_a.var(0, ddof=1) + proj_b.var(0, ddof=1)))
    dprime = (proj_a.mean(0) - proj_b.mean(0)) / pooled
    return accuracy, dprime


def plot_layer_summary(summary: LayerSummary):
    """Three stacked panels (norm, persona cosine, held-out separation); returns the Figure."""
    import matplotlib.pyplot as plt

    from interp_steer.plotting import plot_layer_profile

    figure, axes = plt.subplots(3, 1, figsize=(6.5, 7.5), sharex=True)
    plot_layer_profile(summary.layers, summary.resid_norm, ylabel="mean ‖resid‖", ax=axes[0],
                       title=f"{summary.model}: personas vs baseline ({summary.position} token)")
    plot_layer_profile(summary.layers, summary.cosine_ab, ylabel="cos(v_A, v_B)", ax=axes[1])
    plot_layer_profile(summary.layers, summary.heldout_accuracy, ylabel="held-out accuracy A vs B",
                       mark=summary.best_layer, ax=axes[2])
    axes[2].set_ylim(0.4, 1.02)
    return figure

