"""A plan on paper: what the full studies would cost on 1B, 8B and 70B models, and how units map to GPUs.

Measured here: how much model work each study's default profile does (tokens generated, tokens
run forward, counted from the configs and the built-in data with the default model's tokenizer and
chat template), and what that work costs on the default model on this CPU (a short timed generation
and forward). Assumed, and printed: the GPU (an H100: 989 TFLOP/s dense bf16, 3.35 TB/s), the
fraction of peak reached (35 % for batched forward passes; decoding limited by reading the weights
once per step at 60 % of the bandwidth), 2·N FLOPs per token forward (6·N with a backward pass), and
bf16 weights (2 bytes per parameter). Nothing here ran on a GPU.

    python benchmarks/plan_scale.py [--samples 50]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

import interp_steer as ist
from interp_steer.studies.collision.config import CollisionConfig
from interp_steer.studies.collision.study import unit_prompts
from interp_steer.studies.patching.config import PatchingConfig
from interp_steer.studies.robustness.config import RobustnessConfig

PEAK_FLOPS = 989e12
BANDWIDTH = 3.35e12
MFU = 0.35
BANDWIDTH_EFFICIENCY = 0.6
GPU_MEMORY = 80e9
SIZES = {"1B": 1.2e9, "8B": 8.0e9, "70B": 70.6e9}
LAYERS = {"1B": 16, "8B": 32, "70B": 80}  # Llama 3.x shapes, for the KV cache
KV_DIM = {"1B": 512, "8B": 1024, "70B": 1024}  # KV heads x head dim


def work(model: ist.Model, samples: int) -> dict[str, dict[str, float]]:
    """Per study: decode steps and rows, and tokens run forward (prefill, scoring, patching)."""
    prompts = ist.load_builtin("prompts")
    prompt_tokens = statistics.mean(len(model.encode([model.chat_prompt(p)[0]])[0]) for p in prompts)
    collision = CollisionConfig()
    cells = 1 + len(collision.lambdas) * len(collision.alphas)
    rows = len(prompts) * cells * samples
    sampled = CollisionConfig(samples=samples) if samples > 1 else collision
    studies = {f"collision (paper: {samples} samples per cell)": {
        "generated": rows * collision.max_new_tokens, "steps": collision.max_new_tokens,
        "rows": rows, "forward": rows * (prompt_tokens + collision.max_new_tokens) * 2,  # prefill + scoring
        "backward": 0.0, "units": math.ceil(len(prompts) / unit_prompts(sampled))}}
    patching = PatchingConfig()
    n_layers, n_heads = model.n_layers, model.bridge.cfg.n_heads
    patches = n_layers * (1 + 1 + 1 + patching.positions + n_heads) + 3 * (n_layers - 1)  # per prompt
    studies["patching (16 prompts, every component)"] = {
        "generated": 0.0, "steps": 0.0, "rows": 0.0,
        "forward": patching.max_prompts * (patches + 2) * prompt_tokens,
        "backward": patching.max_prompts * prompt_tokens, "units": patching.max_prompts}
    robust = RobustnessConfig()
    ood = len(ist.load_builtin("prompts_ood"))
    sizes = len(robust.sample_sizes) + 1
    gen_rows = (len(prompts) + ood) * len(robust.coefficients) + len(prompts) * sizes * robust.subsets
    candidates = robust.adversarial_seeds * 2 * robust.adversarial_budget * 2
    corpus = ist.load_builtin("baseline")
    text_tokens = statistics.mean(len(ids) for ids in model.encode(corpus))
    neutral = min(robust.max_perplexity_texts or len(corpus), len(corpus)) + 60  # + the held-out on-topic texts
    studies["robustness (default profile)"] = {
        "generated": gen_rows * robust.max_new_tokens, "steps": robust.max_new_tokens * 3, "rows": gen_rows,
        "forward": gen_rows * prompt_tokens + candidates * prompt_tokens
        + neutral * len(robust.perplexity_coefficients) * text_tokens,
        # GCG: one gradient per step of 32 candidates (gcg_search's default)
        "backward": robust.adversarial_seeds * robust.adversarial_budget / 32 * prompt_tokens * 2,
        "units": robust.adversarial_seeds * 2 + math.ceil(neutral / (robust.batch_size // 4 or 1))}
    return studies, prompt_tokens


@torch.inference_mode()
def cpu_costs(model: ist.Model) -> tuple[float, float]:
    """Seconds per generated token (64 rows, 16 new tokens) and per forward token, on this machine."""
    prompts = (ist.load_builtin("prompts") * 3)[:64]
    start = time.perf_counter()
    ist.generate(model, prompts, max_new_tokens=16, batch_size=64, progress=False)
    per_generated = (time.perf_counter() - start) / (64 * 16)
    texts = ist.load_builtin("baseline")[:32]
    ids, mask = model.pad(model.encode(texts), padding_side="right")
    start = time.perf_counter()
    model.hf_model(input_ids=ids, attention_mask=mask, logits_to_keep=1)
    per_forward = (time.perf_counter() - start) / int(mask.sum())
    return per_generated, per_forward


def gpu_hours(study: dict[str, float], params: float, batch_rows: int = 256) -> float:
    """Forward and backward passes at MFU; decoding at the larger of its FLOPs and one weight read per step."""
    compute = (2 * params * study["forward"] + 6 * params * study["backward"]) / (PEAK_FLOPS * MFU)
    if study["rows"]:
        waves = math.ceil(study["rows"] / batch_rows)
        step = max(2 * params / (BANDWIDTH * BANDWIDTH_EFFICIENCY), 2 * params * batch_rows / (PEAK_FLOPS * MFU))
        compute += waves * study["steps"] * step
    return compute / 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50, help="collision samples per cell (the paper: 50)")
    args = parser.parse_args()
    model = ist.load_model(device="cpu")
    studies, prompt_tokens = work(model, args.samples)
    per_generated, per_forward = cpu_costs(model)
    params = sum(p.numel() for p in model.hf_model.parameters())
    print(f"default model {model.name}, {params / 1e6:.0f}M parameters; templated prompts {prompt_tokens:.0f} tokens "
          f"on average\nthis CPU ({torch.get_num_threads()} threads): {1e3 * per_generated:.1f} ms per generated token "
          f"(64 rows), {1e3 * per_forward:.2f} ms per forward token\n")
    print(f"{'study':<42} {'units':>5} {'generated':>10} {'forward':>10} {'CPU h, 135M':>11} "
          + " ".join(f"{'H100 h, ' + k:>12}" for k in SIZES))
    for name, study in studies.items():
        cpu = (study["generated"] * per_generated + (study["forward"] + 3 * study["backward"]) * per_forward) / 3600
        print(f"{name:<42} {study['units']:>5} {study['generated']:>10.3g} {study['forward']:>10.3g} {cpu:>11.2f} "
              + " ".join(f"{gpu_hours(study, n):>12.2f}" for n in SIZES.values()))
    print("\nmemory per actor (bf16 weights + a 256-row KV cache of 300 tokens):")
    for key, n in SIZES.items():
        kv = 2 * LAYERS[key] * KV_DIM[key] * 2 * 256 * 300
        need = 2 * n + kv
        print(f"  {key:>4}: {need / 1e9:6.1f} GB -> {math.ceil(need / (0.9 * GPU_MEMORY))} x 80 GB GPU(s) per actor")


if __name__ == "__main__":
    main()
