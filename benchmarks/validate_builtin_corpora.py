"""Are the built-in persona corpora and their baseline matched, and what do probes read from them?

Surface statistics (no model): words per passage, distinct word types, opening words, VADER.
With ``--probes``: per-layer cross-validated probe accuracy (A vs baseline, B vs baseline, A vs B)
and the cosine between the two persona mean-difference vectors, on the default model. A baseline
that differs from the personas in a surface cue (length, first word) shows up as persona-vs-baseline
probes saturating at almost every layer and a large cos(v_A, v_B).

    python benchmarks/validate_builtin_corpora.py [--baseline PATH] [--probes] [--position last]

(from a checkout, ``PYTHONPATH=.`` makes it use the checkout's package and data.)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import Counter
from pathlib import Path

import interp_steer as ist


def corpus(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]


def surface(texts: list[str]) -> dict:
    words = [t.split() for t in texts]
    counts = [len(w) for w in words]
    first = Counter(w[0] for w in words)
    stats = {
        "mean_words": statistics.mean(counts),
        "sd_words": statistics.pstdev(counts),
        "range": (min(counts), max(counts)),
        "types": len({w for t in texts for w in re.findall(r"[a-z0-9]+(?:['’-][a-z0-9]+)*", t.lower())}),
        "top_first": [(w, round(c / len(texts), 3)) for w, c in first.most_common(4)],
    }
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        return stats
    analyzer = SentimentIntensityAnalyzer()
    stats["vader"] = statistics.mean(analyzer.polarity_scores(t)["compound"] for t in texts)
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="a baseline .jsonl to use instead of the built-in one")
    parser.add_argument("--probes", action="store_true", help="also run per-layer probes on the model")
    parser.add_argument("--position", default="last")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()

    paths = {"A": ist.builtin_path("persona_a"), "B": ist.builtin_path("persona_b"),
             "baseline": Path(args.baseline) if args.baseline else ist.builtin_path("baseline")}
    texts = {name: corpus(path) for name, path in paths.items()}
    for name, items in texts.items():
        print(f"{name:9s}", surface(items))
    if not args.probes:
        return 0

    import torch

    from interp_steer.probes import probe_layers

    model = ist.load_model(args.model)
    acts = ist.collect_activations(model, texts["A"] + texts["B"] + texts["baseline"], position=args.position)
    a, b, base = acts.split(*(len(texts[k]) for k in ("A", "B", "baseline")))
    for label, pos, neg in (("A vs baseline", a, base), ("B vs baseline", b, base), ("A vs B", a, b)):
        profile = probe_layers(pos, neg, folds=5, concept=label)
        saturated = [layer for layer, acc in zip(profile.layers, profile.accuracy, strict=True) if acc >= 0.99]
        i = profile.layers.index(profile.best_layer)
        print(f"{label:14s} layers>=0.99: {len(saturated):2d}/{len(profile.layers)}  best {profile.best_layer} "
              f"(acc {profile.accuracy[i]:.3f}) band {profile.band_low}-{profile.band_high} "
              f"({len(profile.band)} layers)  held-out {profile.heldout_accuracy:.3f}")
        print("    accuracy per layer:", " ".join(f"{x:.2f}" for x in profile.accuracy))
    v_a = a.values.double().mean(0) - base.values.double().mean(0)
    v_b = b.values.double().mean(0) - base.values.double().mean(0)
    cos = torch.nn.functional.cosine_similarity(v_a, v_b, dim=-1)
    print("cos(v_A, v_B) per layer:", " ".join(f"{x:.2f}" for x in cos.tolist()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
