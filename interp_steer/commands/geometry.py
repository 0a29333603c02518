"""``interp-steer geometry``: cosines and norms of saved steering vectors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interp_steer._io import write_text_atomically


def add_parser(subparsers) -> argparse.ArgumentParser:
    geometry = subparsers.add_parser("geometry", help="cosines and norms of saved steering vectors")
    geometry.add_argument("vectors", nargs="+", metavar="VEC", help=".safetensors files")
    geometry.add_argument("--out", required=True, metavar="DIR")
    geometry.set_defaults(handler=_geometry)
    return geometry


def _geometry(args: argparse.Namespace) -> int:
    import numpy as np

    from interp_steer.directions import SteeringVector
    from interp_steer.plotting import plot_heatmap, plot_layer_profile, save_figure

    vectors = {Path(p).stem: SteeringVector.load(p) for p in args.vectors}
    if len(vectors) != len(args.vectors):
        raise ValueError("two vector files share a file name; rename one so results can be told apart")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(vectors)
    report: dict = {"vectors": {}, "cosine": {}}
    for name, vector in vectors.items():
        entry = {"model": vector.metadata.model, "method": vector.metadata.method,
                 "hook_point": vector.hook_point, "layers": list(vector.layers),
                 "norm": [vector.norms()[layer] for layer in vector.layers],
                 "cosine_across_layers": vector.cosine_across_layers().round(6).tolist()}
        if vector.metadata.resid_norm:
            entry["norm_over_resid"] = [vector.relative_norms()[layer] for layer in vector.layers]
        report["vectors"][name] = entry
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            cos = vectors[a].cosine(vectors[b])
            report["cosine"][f"{a} vs {b}"] = {"layers": list(cos), "cosine": list(cos.values())}
    write_text_atomically(out / "geometry.json", json.dumps(report, indent=2))

    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for pair, values in report["cosine"].items():
        plot_layer_profile(values["layers"], values["cosine"], label=pair, ylabel="cosine", ax=axes[0])
    if not report["cosine"]:
        axes[0].set_axis_off()
    for name, entry in report["vectors"].items():
        key = "norm_over_resid" if "norm_over_resid" in entry else "norm"
        plot_layer_profile(entry["layers"], entry[key], label=name,
                           ylabel="‖v‖ / mean ‖resid‖" if key == "norm_over_resid" else "‖v‖", ax=axes[1])
    save_figure(figure, out / "geometry.png")
    first = names[0]
    layers = report["vectors"][first]["layers"]
    heat = plot_heatmap(np.array(report["vectors"][first]["cosine_across_layers"]), row_labels=layers,
                        col_labels=layers, vmin=-1, vmax=1, cbar_label="cosine",
                        title=f"{first}: cosine between layers")
    save_figure(heat, out / "cosine_across_layers.png")
    for pair, values in report["cosine"].items():
        print(f"{pair}: mean cosine {np.mean(values['cosine']):.3f} over {len(values['layers'])} layers")
    print(f"wrote {out / 'geometry.json'}, {out / 'geometry.png'}, {out / 'cosine_across_layers.png'}")
    return 0
