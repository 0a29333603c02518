"""Benchmark: exact residual patching batched against one forward per patch, and the cost of
attribution patching.

Targets (issue 6), as ratios measured in this one run on a 12-token prompt:
- exact ``resid_pre`` patching over all layers × positions, many patches per forward with the
  source activations cached once, >= 5x faster than TransformerLens's ``get_act_patch_resid_pre``
  (one forward per patch) under the same steering;
- attribution patching of every component (resid, attn, mlp, heads) <= 3 forward-pass equivalents
  (one target forward is the unit).

    python benchmarks/bench_patching.py [--model SPEC] [--repeats 3]
"""

from __future__ import annotations

import argparse

import torch
from _timing import median_seconds

import interp_steer as ist
from interp_steer.patching import Patch, PatchMetrics, attribution_patch, exact_patch, prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from transformer_lens import patching as tl_patching

    model = ist.load_model(args.model, device="cpu")
    a, b, base = (ist.load_builtin(n)[:24] for n in ("persona_a", "persona_b", "baseline"))
    layer = model.n_layers // 2
    v_a = ist.build_vector(model, a, base, layers=[layer]).normalised("resid")
    v_b = ist.build_vector(model, b, base, layers=[layer]).normalised("resid")
    metrics = PatchMetrics.build(model, a, b, probe_layer=model.n_layers - 1)
    prompt = "The ferry left the harbour at seven and the island slowly came"
    tokens = model.encode([prompt])[0][:12]
    prompt = model.tokenizer.decode(tokens)
    source, target = (v_a * 0.3, 1.0), ((v_a * 0.5 + v_b * 0.5) * 0.3, 1.0)
    pair = prepare(model, prompt, source, target, metrics, chat=False, positions="all")
    width = pair.tokens.shape[1]
    patches = [Patch("resid", at, position=p) for at in range(model.n_layers) for p in range(width)]
    print(f"{model.name}: {model.n_layers} layers x {width} positions = {len(patches)} patches")

    def ours():
        exact_patch(model, pair, target, metrics, patches, skip_identical=False)

    with ist.steer(model, source[0], positions="all"):
        _, clean = model.bridge.run_with_cache(pair.tokens)

    def logit_diff(logits):
        final = logits[:, -1].float()
        return (final[:, list(metrics.tokens_a)].mean(-1) - final[:, list(metrics.tokens_b)].mean(-1)).squeeze(0)

    def one_per_patch():
        with ist.steer(model, target[0], positions="all"):
            tl_patching.get_act_patch_resid_pre(model.bridge, pair.tokens, clean, logit_diff)

    def forward():
        with ist.steer(model, target[0], positions="all"), torch.inference_mode():
            model.hf_model(input_ids=pair.tokens)

    def attribution():
        attribution_patch(model, pair, target, metrics, ["resid", "attn", "mlp", "heads"])

    t_ours = median_seconds(ours, args.repeats)
    t_loop = median_seconds(one_per_patch, 1)
    t_forward = median_seconds(forward, 5 * args.repeats)
    t_attr = median_seconds(attribution, args.repeats)
    print(f"exact resid patching, batched:        {t_ours:7.2f} s")
    print(f"exact resid patching, one per forward: {t_loop:7.2f} s (transformer_lens.patching)")
    print(f"speed-up: {t_loop / t_ours:.1f}x (target >= 5)")
    print(f"attribution patching of all components: {t_attr / t_forward:.2f} forward-pass equivalents (target <= 3)")


if __name__ == "__main__":
    main()
