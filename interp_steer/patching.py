"""Activation patching on steered runs: which layers, positions and heads carry a persona's effect.

The setting. The same prompt runs twice with a steering vector added at one layer (after the prompt,
CAA's rule): a **source** run (e.g. steered by pure persona A) and a **target** run (e.g. steered by a
mix of A and B). A patch copies one component's activation from the source run into the target run,
whose own steering stays active, and reads a metric ``m`` at the final position. The normalised
effect

    (m_patched − m_target) / (m_source − m_target)

is how much of the source's metric that component alone restores: 1 all of it, 0 none. Over several
prompts it is a ratio of means (numerator and denominator averaged over prompts, so a prompt whose
two runs barely differ cannot blow it up), with Fieller's interval over prompts (unbounded, reported
as NaN, when the two runs do not differ significantly).

Components (TransformerLens hook names on the bridge):

- ``resid_pre`` per layer × position (``blocks.{l}.hook_resid_pre``), and per layer at all positions;
- ``attn_out`` and ``mlp_out`` per layer, all positions;
- ``heads``: one attention head's output (``blocks.{l}.attn.hook_z``) at all positions;
- ``direction``: only the part of ``resid_pre`` along a direction (e.g. v_A or v_B at that depth),
  which asks whether the parent direction itself carries the effect or what later layers built.

Exact patching runs many patches per forward: row ``r`` of a batch applies patch ``r``, and the
source activations are cached once. :func:`attribution_patch` approximates every effect at once from
one forward and one backward pass of the target run, ``effect ≈ (a_source − a_target) · ∂m/∂a``
(attribution patching), exact when the metric is linear in the patched activation.

Metrics (:class:`PatchMetrics`, all read at the final position): ``logit_diff`` — mean logit of
persona A's indicative tokens minus mean logit of persona B's (:func:`indicative_tokens` derives both
sets from the corpora); ``logprob`` — log-probability of the first token of a fixed continuation;
``probe`` — the log-odds of a persona-A-vs-B logistic probe on the residual at its layer.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp_steer._constants import PATCH_COMPONENTS
from interp_steer._device import on_device_of
from interp_steer._types import PatchMetric, PositionRule
from interp_steer.data import reject_bare_string
from interp_steer.directions import SteeringVector
from interp_steer.models import Model
from interp_steer.stats import fieller
from interp_steer.steering import steer

COMPONENTS = PATCH_COMPONENTS
METRICS: tuple[PatchMetric, ...] = ("logit_diff", "logprob", "probe")
_HOOKS = {"resid": "hook_resid_pre", "attn": "hook_attn_out", "mlp": "hook_mlp_out", "heads": "attn.hook_z"}


# ------------------------------------------------------------------------------------ metrics


def indicative_tokens(model: Model, persona_a: Sequence[str], persona_b: Sequence[str], *, k: int = 20,
                      min_count: int = 3) -> tuple[list[int], list[int]]:
    """The ``k`` tokens most over-represented in each corpus relative to the other: smoothed log-odds
    of a token's frequency in A vs B, among tokens seen at least ``min_count`` times in the favoured
    corpus that start a word and are made of letters (punctuation and word pieces say little about
    a persona)."""
    reject_bare_string(persona_a, "persona_a")
    reject_bare_string(persona_b, "persona_b")
    counts = [Counter(t for ids in model.encode(list(texts)) for t in ids) for texts in (persona_a, persona_b)]
    totals = [sum(c.values()) for c in counts]
    vocab = set(counts[0]) | set(counts[1])

    def log_odds(token: int) -> float:
        fa, fb = ((counts[i][token] + 1) / (totals[i] + len(vocab)) for i in (0, 1))
        return math.log(fa / fb)

    def wordlike(token: int) -> bool:
        text = model.tokenizer.decode([token])
        return text.startswith(" ") and len(text.strip()) >= 3 and text.strip().isalpha()

    scored = sorted((t for t in vocab if wordlike(t)), key=log_odds)
    for_a = [t for t in reversed(scored) if counts[0][t] >= min_count and log_odds(t) > 0][:k]
    for_b = [t for t in scored if counts[1][t] >= min_count and log_odds(t) < 0][:k]
    if not for_a or not for_b:
        raise ValueError("the corpora share their vocabulary too evenly to find indicative tokens; "
                         "lower min_count or pass token ids")
    return for_a, for_b


@dataclass(frozen=True, eq=False)
class PatchMetrics:
    """Differentiable metrics of the final position (see the module docstring).

    ``probe_weight``/``probe_bias`` make the probe's log-odds ``h · w + b`` of the residual ``h`` at
    ``probe_layer`` (a standardising scaler folded in)."""

    tokens_a: tuple[int, ...]
    tokens_b: tuple[int, ...]
    continuation_token: int
    probe_layer: int
    probe_weight: Tensor
    probe_bias: float

    @classmethod
    def build(cls, model: Model, persona_a: Sequence[str], persona_b: Sequence[str], *, probe_layer: int,
              continuation: str = "The", k: int = 20,
              activations: tuple[Tensor, Tensor] | None = None) -> PatchMetrics:
        """Token sets from the corpora, the continuation's first token, and a last-token A-vs-B
        probe at ``probe_layer`` trained on the corpora (``activations``: their last-token
        residuals at that layer, ``[n_a, d]`` and ``[n_b, d]``, if already collected)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        from interp_steer.activations import collect_activations

        tokens_a, tokens_b = indicative_tokens(model, persona_a, persona_b, k=k)
        ids = model.encode([continuation], add_special_tokens=False)[0]  # its first token, not a BOS
        if not ids:
            raise ValueError("continuation is empty: pass text whose first token to score")
        if activations is None:
            acts = collect_activations(model, list(persona_a) + list(persona_b), layers=[probe_layer], position="last")
            x = acts.values[:, 0].double().numpy()
        else:
            x = torch.cat([torch.as_tensor(a) for a in activations]).double().numpy()
            if x.shape[0] != len(persona_a) + len(persona_b):
                raise ValueError(f"activations have {x.shape[0]} rows for {len(persona_a) + len(persona_b)} texts")
        y = np.r_[np.ones(len(persona_a)), np.zeros(len(persona_b))]
        scaler = StandardScaler().fit(x)
        probe = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(x), y)
        weight = probe.coef_[0] / scaler.scale_
        bias = float(probe.intercept_[0] - (probe.coef_[0] * scaler.mean_ / scaler.scale_).sum())
        return cls(tuple(tokens_a), tuple(tokens_b), int(ids[0]), int(probe_layer),
                   torch.tensor(weight, dtype=torch.float32), bias)

    def __call__(self, logits: Float[Tensor, "rows vocab"], resid: Float[Tensor, "rows d_model"]) -> dict[str, Tensor]:
        logits = logits.float()
        a = logits[:, list(self.tokens_a)].mean(-1)
        b = logits[:, list(self.tokens_b)].mean(-1)
        logprob = torch.log_softmax(logits, dim=-1)[:, self.continuation_token]
        probe = resid.float() @ on_device_of(self.probe_weight, resid) + self.probe_bias
        return {"logit_diff": a - b, "logprob": logprob, "probe": probe}

    def to_dict(self, model: Model | None = None) -> dict[str, Any]:
        decode = (lambda ids: [model.tokenizer.decode([t]) for t in ids]) if model else (lambda ids: list(ids))
        return {"tokens_a": decode(self.tokens_a), "tokens_b": decode(self.tokens_b),
                "continuation_token": decode([self.continuation_token])[0], "probe_layer": self.probe_layer}


# ------------------------------------------------------------------------------ runs and hooks


@dataclass(frozen=True)
class Patch:
    """One patch: copy ``component`` at ``layer`` (and ``position`` / ``head``, None = all) from the
    source run; ``direction`` (a unit vector) restricts it to the part of ``resid_pre`` along it."""

    component: str
    layer: int
    position: int | None = None
    head: int | None = None
    direction: Tensor | None = None


def _hook_name(component: str, layer: int) -> str:
    return f"blocks.{layer}.{_HOOKS[component]}"


def _final_readout(metrics: PatchMetrics, store: dict[str, Tensor]):
    """Hook that keeps the probe layer's residual at the final position."""
    def read(resid: Tensor, hook) -> None:
        store["resid"] = resid[:, -1]
    return (f"blocks.{metrics.probe_layer}.hook_resid_post", read)


def _forward(model: Model, tokens: Tensor, steering: SteeringVector | None, coefficient: float, prompt_end: int,
             metrics: PatchMetrics, hooks: list, *, grad: bool = False) -> dict[str, Tensor]:
    """One forward of ``tokens`` (all rows the same prompt) under steering and extra hooks; metrics per row."""
    store: dict[str, Tensor] = {}
    scope = (steer(model, steering, coefficient, positions="after_prompt", prompt_end=[prompt_end] * tokens.shape[0])
             if steering is not None else contextlib.nullcontext())
    with scope, model.bridge.hooks(fwd_hooks=[*hooks, _final_readout(metrics, store)]):
        with torch.enable_grad() if grad else torch.inference_mode():
            logits = model.hf_model(input_ids=tokens, logits_to_keep=1).logits[:, -1]
            return metrics(logits, store["resid"])


def _cache(model: Model, tokens: Tensor, steering, coefficient, prompt_end, metrics, names: Sequence[str]):
    """Metrics and the listed activations of one run."""
    saved: dict[str, Tensor] = {}
    values = _forward(model, tokens, steering, coefficient, prompt_end, metrics,
                      [(n, _keeper(saved, n, clone=True)) for n in names])
    return {k: float(v[0]) for k, v in values.items()}, saved


def _keeper(store: dict[str, Tensor], name: str, *, clone: bool):
    """A hook that stores its activation under ``name`` (the bridge reports aliased hook points,
    such as ``hook_resid_pre``, under their canonical names, so the key comes from us)."""
    def keep(act: Tensor, hook) -> Tensor | None:
        if clone:
            store[name] = act.detach().clone()
            return None
        # Returned, so that what flows on is exactly the tensor whose gradient we will ask for.
        store[name] = act
        return act
    return keep


def _patch_hooks(patches: Sequence[Patch], source: dict[str, Tensor]) -> list:
    """One hook per hook point touched; row ``r`` of the batch applies ``patches[r]``."""
    by_name: dict[str, list[tuple[int, Patch]]] = {}
    for row, patch in enumerate(patches):
        by_name.setdefault(_hook_name(patch.component, patch.layer), []).append((row, patch))

    def make(name: str, rows: list[tuple[int, Patch]]):
        src = source[name][0]

        def hook(act: Tensor, hook) -> Tensor:
            act = act.clone()
            for row, patch in rows:
                where = slice(None) if patch.position is None else patch.position
                if patch.head is not None:
                    act[row, :, patch.head] = src[:, patch.head]
                elif patch.direction is not None:
                    u = on_device_of(patch.direction, act, act.dtype)
                    diff = (src[where] - act[row, where]) @ u
                    act[row, where] = act[row, where] + diff[..., None] * u
                else:
                    act[row, where] = src[where]
            return act

        return hook

    return [(name, make(name, rows)) for name, rows in by_name.items()]


@dataclass(frozen=True)
class RunPair:
    """A prompt's source and target runs: their metrics and the source activations to patch from."""

    tokens: Tensor
    prompt_end: int
    source_metrics: dict[str, float]
    target_metrics: dict[str, float]
    source_cache: dict[str, Tensor]
    target_cache: dict[str, Tensor]

    def differs(self, patch: Patch) -> bool:
        """Whether the patched slice differs between the runs; a patch of an identical slice cannot
        change anything (e.g. every component before the steering layer), so it need not be run."""
        name = _hook_name(patch.component, patch.layer)
        src, tgt = self.source_cache[name][0], self.target_cache[name][0]
        if patch.head is not None:
            src, tgt = src[:, patch.head], tgt[:, patch.head]
        elif patch.position is not None:
            src, tgt = src[patch.position], tgt[patch.position]
        return not torch.equal(src, tgt)


def prepare(model: Model, prompt: str, source: tuple[SteeringVector | None, float],
            target: tuple[SteeringVector | None, float], metrics: PatchMetrics, components: Sequence[str] = COMPONENTS,
            *, chat: bool | None = None, positions: PositionRule = "after_prompt") -> RunPair:
    """Run the prompt under the source and the target steering; cache what patches will need.

    ``positions``: steer ``"after_prompt"`` (from the user prompt's last token on, CAA's rule; with
    the chat template that includes the assistant header) or ``"all"`` positions."""
    if positions not in ("after_prompt", "all"):
        raise ValueError(f"positions must be 'after_prompt' or 'all', got {positions!r}")
    from interp_steer.generation import format_prompts

    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown components {unknown}; choose from {list(COMPONENTS)}")
    texts, prompt_lengths = format_prompts(model, [prompt], chat=chat, system=None)
    if positions == "all":
        prompt_lengths = [0]
    tokens = torch.tensor([model.encode(texts)[0]], device=model.device)
    names = [_hook_name(c, layer) for c in components for layer in range(model.n_layers)]
    source_metrics, cache = _cache(model, tokens, *source, prompt_lengths[0], metrics, names)
    target_metrics, target_cache = _cache(model, tokens, *target, prompt_lengths[0], metrics, names)
    return RunPair(tokens, prompt_lengths[0], source_metrics, target_metrics, cache, target_cache)


def exact_patch(model: Model, pair: RunPair, target: tuple[SteeringVector | None, float], metrics: PatchMetrics,
                patches: Sequence[Patch], *, batch_size: int = 64, skip_identical: bool = True) -> dict[str, np.ndarray]:
    """Metric value of the target run under each patch (``[len(patches)]`` per metric), many patches
    per forward. Patches of slices identical in both runs are not run (their value is the target's)
    unless ``skip_identical=False``."""
    for patch in patches:
        if patch.component not in COMPONENTS:
            raise ValueError(f"unknown component {patch.component!r}; choose from {list(COMPONENTS)}")
        if not 0 <= patch.layer < model.n_layers:
            raise ValueError(f"patch layer {patch.layer} is outside 0..{model.n_layers - 1}")
        if patch.position is not None and not -pair.tokens.shape[1] <= patch.position < pair.tokens.shape[1]:
            raise ValueError(f"patch position {patch.position} is outside a {pair.tokens.shape[1]}-token prompt")
        if _hook_name(patch.component, patch.layer) not in pair.source_cache:
            raise ValueError(f"the source run did not cache {patch.component}; prepare() it with that component")
    out: dict[str, np.ndarray] = {name: np.full(len(patches), pair.target_metrics[name]) for name in METRICS}
    # A patch of a slice that is identical in both runs leaves the target run as it is: skip it.
    todo = [i for i, patch in enumerate(patches) if not skip_identical or pair.differs(patch)]
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        chunk = [patches[i] for i in rows]
        tokens = pair.tokens.expand(len(chunk), -1)
        values = _forward(model, tokens, *target, pair.prompt_end, metrics, _patch_hooks(chunk, pair.source_cache))
        for name in METRICS:
            out[name][rows] = values[name].detach().cpu().numpy()
    return out


def attribution_patch(model: Model, pair: RunPair, target: tuple[SteeringVector | None, float], metrics: PatchMetrics,
                      components: Sequence[str] = COMPONENTS, *, metric: PatchMetric = "logit_diff") -> dict[str, np.ndarray]:
    """Linear estimates of every patch's change of ``metric`` from one forward and one backward pass
    of the target run: ``resid`` ``[layers, positions]``, ``attn``/``mlp`` ``[layers]`` (all
    positions), ``heads`` ``[layers, heads]``."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: choose from {list(METRICS)}")
    saved: dict[str, Tensor] = {}

    def start_graph(act: Tensor, hook) -> Tensor:
        # Parameters are frozen (see below), so the graph starts here: every later activation is a
        # differentiable function of this leaf, and one backward reaches all of them.
        return act.detach().requires_grad_(True)

    names = [_hook_name(c, layer) for c in components for layer in range(model.n_layers)]
    hooks = [("blocks.0.hook_resid_pre", start_graph)] + [(n, _keeper(saved, n, clone=False)) for n in names]
    with _no_grad_params(model):
        values = _forward(model, pair.tokens, *target, pair.prompt_end, metrics, hooks, grad=True)
        grads = torch.autograd.grad(values[metric].sum(), [saved[n] for n in names], allow_unused=True)
    estimates: dict[str, list[Tensor]] = {c: [] for c in components}
    for name, grad in zip(names, grads, strict=True):
        component = next(c for c in components if name.endswith(_HOOKS[c]))
        act = saved[name].detach()
        grad = torch.zeros_like(act) if grad is None else grad
        product = ((pair.source_cache[name] - act) * grad)[0]  # [pos, d] or [pos, heads, d_head]
        if component == "resid":
            estimates[component].append(product.sum(-1))
        elif component == "heads":
            estimates[component].append(product.sum(dim=(0, 2)))
        else:
            estimates[component].append(product.sum())
    # One array per component, on the CPU: layers spread over GPUs give their estimates on their own.
    return {c: torch.stack([t.detach().cpu() for t in v]).numpy() for c, v in estimates.items()}


def normalised_effect(patched: np.ndarray, target: np.ndarray, source: np.ndarray, *, level: float = 0.95,
                      seed: int | None = None, resamples: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratio-of-means normalised effect over prompts with Fieller's interval
    (:func:`interp_steer.stats.fieller`): ``mean(patched − target) / mean(source − target)``.

    ``patched`` is ``[prompts, *cells]``; ``target``/``source`` are ``[prompts]``. Returns
    ``(effect, low, high)`` shaped like the cells. The bounds are NaN where the source and target
    runs do not differ significantly (the ratio then has no finite interval), for cells that were not
    patched (NaN throughout) and with a single prompt. ``seed``/``resamples`` are accepted and
    ignored: the interval is closed-form (it was a percentile bootstrap, which under-covers ratios at
    a few dozen prompts)."""
    del seed, resamples
    patched = np.asarray(patched, dtype=float)
    target, source = np.asarray(target, dtype=float), np.asarray(source, dtype=float)
    if patched.shape[0] != target.size or target.shape != source.shape:
        raise ValueError(f"patched has {patched.shape[0]} prompts, target {target.size}, source {source.size}")
    expand = (slice(None),) + (None,) * (patched.ndim - 1)
    result = fieller(patched - target[expand], (source - target)[expand], level=level, axis=0)
    return result.estimate, result.low, result.high


@contextlib.contextmanager
def _no_grad_params(model: Model) -> Iterator[None]:
    """Parameters need no gradients for attribution; turning them off saves the backward's weight work."""
    flags = [(p, p.requires_grad) for p in model.hf_model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


__all__ = ["COMPONENTS", "METRICS", "Patch", "PatchMetrics", "RunPair", "attribution_patch", "exact_patch",
           "indicative_tokens", "normalised_effect", "prepare"]
