"""Validation on third-party data that is not in the repository (skips cleanly when absent).

- ``pairs/morality.jsonl`` (305 moral contrast pairs): per-layer probe localisation;
- ``caa_ab/corrigible-neutral-HHH.jsonl``: a CAA vector read at the answer letter, and how its
  direction compares across layers.

    python benchmarks/validate_shared_data.py [--data ../shared/datasets] [--model SPEC]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import interp_steer as ist
from interp_steer.directions import ab_contrast_pairs
from interp_steer.probes import probe_layers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    data = Path(args.data)
    morality = data / "pairs" / "morality.jsonl"
    corrigible = data / "caa_ab" / "corrigible-neutral-HHH.jsonl"
    if not morality.is_file() and not corrigible.is_file():
        print(f"skipped: no shared datasets under {data}")
        return 0
    model = ist.load_model(args.model)
    if morality.is_file():
        pairs = ist.load_pairs(morality)
        acts = ist.collect_activations(model, [p.positive for p in pairs] + [p.negative for p in pairs])
        pos, neg = acts.split(len(pairs), len(pairs))
        profile = probe_layers(pos, neg, concept="morality")
        i = profile.layers.index(profile.best_layer)
        print(f"morality ({len(pairs)} pairs): best layer {profile.best_layer} "
              f"(band {profile.band_low}-{profile.band_high}), CV accuracy {profile.accuracy[i]:.3f}, "
              f"nested held-out accuracy {profile.heldout_accuracy:.3f}")
    if corrigible.is_file():
        questions = ist.load_ab_questions(corrigible)
        vector = ist.build_vector(model, ab_contrast_pairs(model, questions), layers="all")
        rel = vector.relative_norms()
        cos = vector.cosine_across_layers()
        middle = model.n_layers // 2
        print(f"corrigibility CAA vector ({len(questions)} questions): norm/resid at layer {middle} "
              f"{rel[middle]:.3f}; cosine layer {middle} vs {middle + 1}: {cos[middle, middle + 1]:.3f}, "
              f"vs layer 5: {cos[middle, 5]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
