"""Benchmark: interp_steer side by side with steering-vectors and repeng, in one run (issue 14, item 3).

Every line is the same work done by each library on the same weights (the default model unless
``--model``), timed alternately with medians of ``--repeats`` (of ``2 * repeats + 1`` for steered
generation, which takes seconds):

- extraction: a mean-difference vector at 6 layers from 120 contrast pairs (240 texts; the last
  token of each), ours against steering-vectors' ``train_steering_vector``; and the first principal
  component, ours (``method="pca"``) against repeng's ``ControlVector.train`` (``pca_diff``). Each
  peer's vector is compared with ours by cosine per layer; steering-vectors' mean difference is the
  same quantity as ours and must agree to cosine >= 0.999;
- steered generation: a batch of 8 chat prompts, 32 greedy tokens, one vector at one layer added at
  every position (what both peers do), ours against steering-vectors' ``apply`` around Hugging Face
  ``generate`` and repeng's ``ControlModel``; the greedy tokens are compared;
- a grid of 16 (coefficient, mix) cells for one prompt: ours as one batched call with a delta per
  row, against each peer's natural loop (one ``generate`` per cell).

Tokenising the prompts and decoding the completions is inside every timing, since our
``generate`` does both. Targets: every ratio peer / ours >= 1.0, and >= 4 on the grid.

The peers are not dependencies. Install them without their dependencies (both pin versions our
core cannot use: steering-vectors 0.12.2 wants transformers < 5, repeng 0.4.0 numpy < 2):

    pip install --no-deps -r benchmarks/peers.txt
    python benchmarks/bench_peers.py [--model SPEC] [--repeats 3] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

import interp_steer as ist
from interp_steer.models import load_hf
from interp_steer.steering import RowDeltas, Steering


def import_peers():
    """steering-vectors and repeng, or a message saying how to install them."""
    if not hasattr(np, "float_"):
        # repeng 0.4.0 (its latest release) names np.float_ in a type hint; NumPy 2 removed that
        # alias of float64. Restoring it is the only change needed to import repeng under NumPy 2.
        np.float_ = np.float64
    try:
        import repeng
        import steering_vectors
    except ImportError as missing:
        sys.exit(f"bench_peers needs the peer libraries ({missing.name} is missing): "
                 "pip install --no-deps -r benchmarks/peers.txt")
    return steering_vectors, repeng


def timed(cases: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, float], dict[str, object]]:
    """Each case once to warm up, then ``repeats`` rounds alternating between them: median seconds
    and each case's last result."""
    results = {name: fn() for name, fn in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, results


def min_cosine(ours: dict[int, torch.Tensor], theirs: dict[int, torch.Tensor]) -> float:
    """The smallest cosine over the layers between two vectors given per layer."""
    return min(float(torch.nn.functional.cosine_similarity(ours[k].double(), torch.as_tensor(theirs[k]).double(), 0))
               for k in ours)


def min_abs_cosine(ours: dict[int, torch.Tensor], theirs: dict[int, torch.Tensor]) -> float:
    """As :func:`min_cosine` for directions whose sign is arbitrary (principal components)."""
    return min(abs(float(torch.nn.functional.cosine_similarity(ours[k].double(), torch.as_tensor(theirs[k]).double(), 0)))
               for k in ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="collection batch size, for every library")
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    sv, repeng = import_peers()

    model = ist.load_model(args.model, device="cpu")
    hf, tokenizer, _, _ = load_hf(args.model)
    # repeng wraps the decoder layers of the model it is given in place; it gets its own copy.
    control = repeng.ControlModel(copy.deepcopy(hf), [model.n_layers // 2])
    stop = tokenizer.eos_token_id

    # ---- extraction ---------------------------------------------------------------------------
    positive, negative = ist.load_builtin("persona_a"), ist.load_builtin("baseline")
    pairs = list(zip(positive, negative, strict=True))
    layers = sorted({round(x) for x in np.linspace(model.n_layers / 7, model.n_layers * 6 / 7, 6)})  # fewer on small models
    bs = args.batch_size

    def theirs_mean():
        vector = sv.train_steering_vector(hf, tokenizer, pairs, layers=layers, batch_size=bs)
        return vector.layer_activations

    def theirs_pca():
        dataset = [repeng.DatasetEntry(positive=p, negative=n) for p, n in pairs]
        return repeng.ControlVector.train(hf, tokenizer, dataset, hidden_layers=layers, batch_size=bs,
                                          method="pca_diff").directions

    extraction = {
        "ours mean_diff": lambda: ist.build_vector(model, positive, negative, layers=layers, batch_size=bs,
                                                   progress=False).directions,
        "steering-vectors mean": theirs_mean,
        "ours pca": lambda: ist.build_vector(model, positive, negative, layers=layers, batch_size=bs,
                                             method="pca", progress=False).directions,
        "repeng pca_diff": theirs_pca,
    }
    ext_time, vectors = timed(extraction, args.repeats)
    # repeng's pca_diff is scikit-learn's PCA, which centres the differences first; ours is the
    # uncentred component (the mean difference's direction when the pairs agree). The same centred
    # component of our own activations says whether the two read the same activations.
    acts = ist.collect_activations(model, positive + negative, layers=layers, batch_size=bs, progress=False)
    diffs = (acts.values[: len(pairs)] - acts.values[len(pairs):]).double().transpose(0, 1)
    centred = torch.linalg.svd(diffs - diffs.mean(1, keepdim=True), full_matrices=False)[2][:, 0]
    vectors["ours, centred pca"] = dict(zip(layers, centred, strict=True))

    # ---- steered generation -------------------------------------------------------------------
    layer = model.n_layers // 2
    v_a = ist.build_vector(model, positive[:48], negative[:48], layers=[layer], progress=False)
    v_b = ist.build_vector(model, ist.load_builtin("persona_b")[:48], negative[:48], layers=[layer], progress=False)
    scale = 0.3 * v_a.metadata.resid_norm[layer] / v_a.norms()[layer]
    prompts = ist.load_builtin("prompts")[:8]
    n = args.new_tokens

    def hf_generate(texts: list[str], model=hf) -> list[list[int]]:
        enc = tokenizer(texts, padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=stop)
        new = out[:, enc["input_ids"].shape[1]:]
        tokenizer.batch_decode(new, skip_special_tokens=True)
        return new.tolist()

    def repeng_generate(texts: list[str]) -> list[list[int]]:
        return hf_generate(texts, control)

    def sv_vector(vector: ist.SteeringVector):
        return sv.SteeringVector(layer_activations={k: d.clone() for k, d in vector.directions.items()})

    def repeng_vector(vector: ist.SteeringVector):
        return repeng.ControlVector(model_type=hf.config.model_type,
                                    directions={k: d.numpy() for k, d in vector.directions.items()})

    chat = [model.format_chat(p) for p in prompts]

    def ours_generate(rows: list[str], steering: Steering) -> list[list[int]]:
        return [list(g.token_ids) for g in ist.generate(model, rows, steering=steering, min_new_tokens=n,
                                                  max_new_tokens=n, batch_size=len(rows), progress=False)]

    def sv_steered():
        with sv_vector(v_a).apply(hf, multiplier=scale):
            return hf_generate(chat)

    def repeng_steered():
        control.set_control(repeng_vector(v_a), coeff=scale)
        try:
            return repeng_generate(chat)
        finally:
            control.reset()

    generation = {
        "ours": lambda: ours_generate(prompts, Steering(v_a, scale, positions="all")),
        "steering-vectors": sv_steered,
        "repeng": repeng_steered,
    }
    gen_time, generated = timed(generation, 2 * args.repeats + 1)  # a few seconds each: more rounds against noise

    # ---- grid ---------------------------------------------------------------------------------
    alphas = [0.0, 1 / 3, 2 / 3, 1.0]
    cells = [(lam * scale, a) for lam in (0.5, 1.0, 1.5, 2.0) for a in alphas]
    one = prompts[:1]

    def ours_grid():
        rows = RowDeltas.from_rows([[(v_a, c * a), (v_b, c * (1 - a))] for c, a in cells])
        return ours_generate(one * len(cells), Steering(rows, positions="all"))

    def sv_grid():
        out = []
        for c, a in cells:
            with sv_vector(ist.mix(v_a, v_b, a)).apply(hf, multiplier=c):
                out += hf_generate(chat[:1])
        return out

    def repeng_grid():
        out = []
        for c, a in cells:
            control.set_control(repeng_vector(ist.mix(v_a, v_b, a)), coeff=c)
            try:
                out += repeng_generate(chat[:1])
            finally:
                control.reset()
        return out

    grid = {"ours": ours_grid, "steering-vectors": sv_grid, "repeng": repeng_grid}
    grid_time, grid_tokens = timed(grid, args.repeats)

    # ---- report -------------------------------------------------------------------------------
    def same(a, b) -> str:
        return f"{sum(x == y for x, y in zip(a, b, strict=True))}/{len(a)} rows identical"

    print(f"{model.name}, torch threads {torch.get_num_threads()}, medians of {args.repeats} "
          f"({2 * args.repeats + 1} for steered generation)\n")
    print(f"extraction: {len(pairs)} pairs ({2 * len(pairs)} texts), layers {layers}, batch {bs}")
    print(f"generation: {len(prompts)} prompts, {n} greedy tokens, layer {layer}, every position")
    print(f"grid: {len(cells)} (coefficient, mix) cells x 1 prompt, {n} tokens\n")
    rows = [
        ("extraction, mean difference", "steering-vectors", ext_time["steering-vectors mean"], ext_time["ours mean_diff"],
         f"cosine {min_cosine(vectors['ours mean_diff'], vectors['steering-vectors mean']):.6f} (min over layers)", 1.0),
        ("extraction, PCA", "repeng", ext_time["repeng pca_diff"], ext_time["ours pca"],
         f"cosine {min_cosine(vectors['ours pca'], vectors['repeng pca_diff']):.4f}; with the centred "
         f"component of our activations {min_abs_cosine(vectors['ours, centred pca'], vectors['repeng pca_diff']):.6f}", 1.0),
        ("steered generation", "steering-vectors", gen_time["steering-vectors"], gen_time["ours"],
         same(generated["ours"], generated["steering-vectors"]), 1.0),
        ("steered generation", "repeng", gen_time["repeng"], gen_time["ours"],
         same(generated["ours"], generated["repeng"]), 1.0),
        ("grid of 16 cells", "steering-vectors", grid_time["steering-vectors"], grid_time["ours"],
         same(grid_tokens["ours"], grid_tokens["steering-vectors"]), 4.0),
        ("grid of 16 cells", "repeng", grid_time["repeng"], grid_time["ours"],
         same(grid_tokens["ours"], grid_tokens["repeng"]), 4.0),
    ]
    print(f"{'line':<28} {'peer':<17} {'peer s':>7} {'ours s':>7} {'peer/ours':>9}  target  agreement")
    for line, peer, t_peer, t_ours, agreement, target in rows:
        ratio = t_peer / t_ours
        verdict = "PASS" if ratio >= target else "FAIL"
        print(f"{line:<28} {peer:<17} {t_peer:7.2f} {t_ours:7.2f} {ratio:9.2f}  >={target:<4g} {verdict}  {agreement}")


if __name__ == "__main__":
    main()
