"""The ``interp-steer`` command line: a thin client of the public API.

Subcommands: ``info`` (what a model looks like),
``extract`` (build a steering vector), ``locate`` (per-layer probes: where a concept lives),
``geometry`` (cosines and norms of saved vectors), ``steer`` (steered completions), ``sweep``
(layers × coefficients scored on every text metric), ``ab-eval`` (CAA's A/B test under steering),
``collide`` (the Creative Collision study), ``patch`` (activation patching of a collision).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from interp_steer import __version__


def _add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, metavar="SPEC",
        help="model spec: default SmolLM2-135M-Instruct (embedded), a hub id, an HF directory, "
        "a .gguf file, or tiny-random[:SEED]",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interp-steer",
        description="Activation steering and interpretability on TransformerLens.",
    )
    parser.add_argument("--version", action="version", version=f"interp-steer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = sub.add_parser("info", help="load a model and print its name, size and hook names")
    _add_model(info)
    info.add_argument("--json", action="store_true", help="print JSON instead of text")

    extract = sub.add_parser("extract", help="build a steering vector from contrastive data")
    _add_model(extract)
    source = extract.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", metavar="FILE",
                        help='contrast pairs JSONL {"positive","negative"}, or CAA A/B questions JSONL')
    source.add_argument("--positive", metavar="FILE", help="corpus of positive texts (needs --negative)")
    extract.add_argument("--negative", metavar="FILE", help="corpus of negative texts")
    extract.add_argument("--layers", default="all", help="comma-separated layers or 'all' (default)")
    extract.add_argument("--method", default="mean_diff", choices=["mean_diff", "pca", "probe"])
    extract.add_argument("--position", default="last", choices=["last", "mean"])
    extract.add_argument("--chat", action="store_true", help="wrap texts in the model's chat template")
    extract.add_argument("--gguf", metavar="FILE", help="also export a llama.cpp control vector")
    extract.add_argument("--batch-size", type=int, default=16)
    extract.add_argument("--out", required=True, metavar="VEC.safetensors")

    locate = sub.add_parser("locate", help="per-layer probes: where does each concept live?")
    _add_model(locate)
    locate.add_argument("--concept", action="append", required=True, metavar="NAME=POS_FILE:NEG_FILE",
                        help="a concept from two corpora (or NAME=PAIRS_FILE); repeat for several")
    locate.add_argument("--folds", type=int, default=5)
    locate.add_argument("--layers", default="all")
    locate.add_argument("--position", default="last", choices=["last", "mean"])
    locate.add_argument("--seed", type=int, default=0)
    locate.add_argument("--batch-size", type=int, default=16)
    locate.add_argument("--out", required=True, metavar="DIR")

    geometry = sub.add_parser("geometry", help="cosines and norms of saved steering vectors")
    geometry.add_argument("vectors", nargs="+", metavar="VEC", help=".safetensors files")
    geometry.add_argument("--out", required=True, metavar="DIR")
    steer = sub.add_parser("steer", help="generate completions with a steering vector")
    _add_model(steer)
    steer.add_argument("--vector", required=True, metavar="VEC.safetensors")
    steer.add_argument("--coefficient", type=float, required=True)
    steer.add_argument("--layers", default=None, help="layers of the vector to use (default: all)")
    steer.add_argument("--positions", default="after_prompt", choices=["after_prompt", "all"])
    prompt_source = steer.add_mutually_exclusive_group(required=True)
    prompt_source.add_argument("--prompt", help="one prompt")
    prompt_source.add_argument("--prompts", metavar="FILE", help="prompt list (JSONL {text} or one per line)")
    steer.add_argument("--max-new-tokens", type=int, default=60)
    steer.add_argument("--temperature", type=float, default=0.0)
    steer.add_argument("--seed", type=int, default=None)
    steer.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    steer.add_argument("--out", metavar="FILE.json", help="also write the completions as JSON")

    sweep = sub.add_parser("sweep", help="score steered generations over layers x coefficients")
    _add_model(sweep)
    sweep.add_argument("--vector", required=True, metavar="VEC.safetensors")
    sweep.add_argument("--layers", default=None)
    sweep.add_argument("--coefficients", default="-8,-4,0,4,8")
    sweep.add_argument("--prompts", required=True, metavar="FILE")
    sweep.add_argument("--max-new-tokens", type=int, default=40)
    sweep.add_argument("--positions", default="after_prompt", choices=["after_prompt", "all"])
    sweep.add_argument("--readout", metavar="POS_FILE:NEG_FILE",
                       help="also score probe valence: a probe on the unsteered model trained on these "
                            "two corpora (e.g. persona A vs persona B) reads each completion")
    sweep.add_argument("--readout-layer", type=int, default=None,
                       help="layer of the readout probe (default: the vector's first layer)")
    sweep.add_argument("--out", required=True, metavar="DIR")

    collide = sub.add_parser(
        "collide", help="the Creative Collision study: two persona vectors mixed over alpha x lambda"
    )
    _add_model(collide)
    collide.add_argument("--quick", action="store_true",
                         help="small grid and prompt set (5 alphas x 2 lambdas, 16 prompts, 48 passages "
                              "per corpus, 32 tokens): a few minutes on a laptop CPU")
    collide.add_argument("--persona-a", metavar="FILE", help="persona A corpus (default: built-in, optimistic)")
    collide.add_argument("--persona-b", metavar="FILE", help="persona B corpus (default: built-in, dark)")
    collide.add_argument("--baseline", metavar="FILE", help="neutral baseline corpus (default: built-in)")
    collide.add_argument("--prompts", metavar="FILE", help="prompts to complete (default: built-in)")
    collide.add_argument("--layer", default="auto", help="steering layer, or 'auto' for the shared layer (default)")
    collide.add_argument("--alphas", default=None, help="mixes, from 0 (pure B) to 1 (pure A), e.g. 0,0.5,1")
    collide.add_argument("--lambdas", default=None,
                         help="strengths in units of the mean residual norm at the layer, e.g. 0.3,0.8")
    collide.add_argument("--position", default=None, choices=["last", "mean"],
                         help="token read to build the persona vectors (default: last)")
    collide.add_argument("--max-new-tokens", type=int, default=None)
    collide.add_argument("--samples", type=int, default=None,
                         help="sampled completions per prompt (default: greedy decoding)")
    collide.add_argument("--seed", type=int, default=None, help="seed for sampling, probes and bootstraps")
    collide.add_argument("--max-prompts", type=int, default=None, help="use only the first N prompts")
    collide.add_argument("--max-passages", type=int, default=None, help="use only the first N passages per corpus")
    collide.add_argument("--batch-size", type=int, default=None, help="rows per generation batch (default 64)")
    collide.add_argument("--out", default=None, metavar="DIR", help="output directory (default: runs/<timestamp>)")

    patch = sub.add_parser(
        "patch", help="activation patching: which components carry the dominant persona in a mix"
    )
    _add_model(patch)
    patch.add_argument("--persona-a", metavar="FILE", help="persona A corpus (default: built-in)")
    patch.add_argument("--persona-b", metavar="FILE", help="persona B corpus (default: built-in)")
    patch.add_argument("--baseline", metavar="FILE", help="baseline corpus (default: built-in)")
    patch.add_argument("--prompts", metavar="FILE", help="prompts (default: built-in)")
    patch.add_argument("--alpha", type=float, default=0.5, help="share of persona A in the target mix (default 0.5)")
    patch.add_argument("--lambda", dest="lam", type=float, default=0.3,
                       help="strength in units of the residual norm (default 0.3)")
    patch.add_argument("--source", default="A", choices=["A", "B"], help="the pure persona patched from (default A)")
    patch.add_argument("--layer", default="auto", help="steering layer, or 'auto' (the shared layer)")
    patch.add_argument("--components", default="resid,attn,mlp,heads", help="any of resid,attn,mlp,heads")
    patch.add_argument("--method", default="exact", choices=["exact", "attribution"],
                       help="exact: patch every head; attribution: rank heads by attribution, patch the top ones")
    patch.add_argument("--max-prompts", type=int, default=6)
    patch.add_argument("--max-passages", type=int, default=48, help="passages per corpus for the vectors")
    patch.add_argument("--positions", type=int, default=12, help="last N prompt positions in the position sweep")
    patch.add_argument("--continuation", default="The", help="text whose first token's log-probability is a metric")
    patch.add_argument("--seed", type=int, default=0)
    patch.add_argument("--out", required=True, metavar="DIR")

    ab = sub.add_parser("ab-eval", help="CAA A/B evaluation: P(matching answer) under steering")
    _add_model(ab)
    ab.add_argument("--questions", required=True, metavar="FILE")
    ab.add_argument("--vector", required=True, metavar="VEC.safetensors")
    ab.add_argument("--layers", default=None)
    ab.add_argument("--coefficients", default="-2,-1,0,1,2")
    ab.add_argument("--limit", type=int, default=None, help="use only the first N questions")
    ab.add_argument("--out", required=True, metavar="DIR")
    return parser


_NUMBER_LISTS = ("--coefficients", "--alphas", "--lambdas")


def _join_negative_lists(argv: list[str]) -> list[str]:
    """argparse reads ``--coefficients -2,0,2`` as two flags; glue such a value to its flag."""
    out: list[str] = []
    for token in argv:
        if out and out[-1] in _NUMBER_LISTS and token[:1] == "-" and token[1:2].isdigit():
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_negative_lists(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        parser.print_help()
        return 0
    try:
        commands = {"info": _info, "extract": _extract, "locate": _locate,
                    "geometry": _geometry, "steer": _steer, "sweep": _sweep, "ab-eval": _ab_eval,
                    "collide": _collide, "patch": _patch}
        return commands[args.command](args)
    except (ValueError, KeyError, OSError, RuntimeError) as error:
        print(f"interp-steer {args.command}: error: {error}", file=sys.stderr)
        return 2


def _info(args: argparse.Namespace) -> int:
    from interp_steer.models import load_model

    model = load_model(args.model, device=args.device)
    facts = model.describe()
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        if key == "hook_points":
            value = ", ".join(value.values())
        print(f"{key:<{width}}  {value}")
    return 0


def _extract(args: argparse.Namespace) -> int:
    from interp_steer.data import DatasetError, load_ab_questions, load_corpus, load_pairs
    from interp_steer.directions import ab_contrast_pairs, build_vector
    from interp_steer.models import load_model

    if args.positive and not args.negative:
        raise ValueError("--positive needs --negative (or use --pairs)")
    if args.negative and not args.positive:
        raise ValueError("--negative needs --positive (or use --pairs)")
    if not args.out.endswith(".safetensors"):
        raise ValueError(f"--out {args.out}: the vector is written as a .safetensors file")
    model = load_model(args.model, device=args.device)
    chat, position = args.chat, args.position
    if args.pairs:
        first = json.loads(Path(args.pairs).read_text(encoding="utf-8").lstrip().splitlines()[0] or "{}")
        if isinstance(first, dict) and "question" in first:
            # CAA: chat-formatted question, read at the answer letter.
            if args.chat or args.position != "last":
                print("A/B questions are read the CAA way (chat template, answer letter); "
                      "--chat/--position are ignored", file=sys.stderr)
            data = ab_contrast_pairs(model, load_ab_questions(args.pairs))
            chat, position = False, "last"
            kind = f"{len(data)} A/B questions"
        else:
            data = load_pairs(args.pairs)
            kind = f"{len(data)} pairs"
        positive, negative = data, None
    else:
        positive, negative = load_corpus(args.positive), load_corpus(args.negative)
        kind = f"{len(positive)} positive / {len(negative)} negative texts"
    print(f"{model.name}: {kind}, method {args.method}, position {position}"
          f"{' (chat)' if chat else ''}", flush=True)
    try:
        vector = build_vector(model, positive, negative, layers=args.layers, method=args.method,
                              position=position, chat=chat, batch_size=args.batch_size, progress=True)
    except DatasetError:
        raise
    path = vector.save(args.out)
    rel = vector.relative_norms()
    print(f"wrote {path}: layers {list(vector.layers)[0]}..{list(vector.layers)[-1]} "
          f"({len(vector)}), norm / residual norm {min(rel.values()):.3f}..{max(rel.values()):.3f}")
    if args.gguf:
        exported = vector.select([layer for layer in vector.layers if layer > 0])
        print(f"wrote {exported.to_gguf(args.gguf)} (llama.cpp control vector; layer 0 is not steerable there)")
    return 0


def _parse_concept(spec: str) -> tuple[str, list[str], list[str]]:
    from interp_steer.data import load_corpus, load_pairs

    name, sep, files = spec.partition("=")
    if not sep or not name or not files:
        raise ValueError(f"--concept {spec!r}: expected NAME=POS_FILE:NEG_FILE or NAME=PAIRS_FILE")
    if ":" in files and not Path(files).is_file():
        positive, _, negative = files.rpartition(":")
        return name, load_corpus(positive), load_corpus(negative)
    pairs = load_pairs(files)
    return name, [p.positive for p in pairs], [p.negative for p in pairs]


def _locate(args: argparse.Namespace) -> int:
    from interp_steer.models import load_model
    from interp_steer.plotting import save_figure
    from interp_steer.probes import localise, plot_localisation

    parsed = [_parse_concept(spec) for spec in args.concept]
    names = [name for name, _, _ in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"--concept names must be distinct, got {names}")
    model = load_model(args.model, device=args.device)
    concepts = {name: (pos, neg) for name, pos, neg in parsed}
    for name, (pos, neg) in concepts.items():
        print(f"{name}: {len(pos)} positive / {len(neg)} negative texts", flush=True)
    result = localise(model, concepts, layers=args.layers, position=args.position, folds=args.folds,
                      seed=args.seed, batch_size=args.batch_size, progress=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"model": model.name, "n_layers": model.n_layers, "position": args.position,
              "folds": args.folds, "seed": args.seed, **result.to_dict()}
    (out / "locate.json").write_text(json.dumps(report, indent=2))
    save_figure(plot_localisation(result, title=f"{model.name}: where each concept is readable"),
                out / "locate.png")
    for name, profile in result.profiles.items():
        i = profile.layers.index(profile.best_layer)
        print(f"{name}: best layer {profile.best_layer} (band {profile.band_low}..{profile.band_high}), "
              f"CV accuracy {profile.accuracy[i]:.3f} ± {profile.accuracy_std[i]:.3f}, "
              f"nested held-out accuracy {profile.heldout_accuracy:.3f}")
    if result.shared_layer is not None:
        verdict = "indistinguishable" if result.best_layers_indistinguishable else "distinguishable"
        print(f"shared layer: {result.shared_layer}; best layers are {verdict} within their bands")
    print(f"wrote {out / 'locate.json'} and {out / 'locate.png'}")
    return 0


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
    (out / "geometry.json").write_text(json.dumps(report, indent=2))

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


def _numbers(text: str, flag: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected comma-separated numbers such as -2,0,2") from None
    if not values:
        raise ValueError(f"{flag} is empty")
    return values


def _model_and_vector(args: argparse.Namespace):
    from interp_steer.directions import SteeringVector
    from interp_steer.models import load_model

    model = load_model(args.model, device=args.device)
    vector = SteeringVector.load(args.vector, model=model)
    layers = None if args.layers in (None, "all") else list(model.resolve_layers(args.layers))
    return model, vector, layers


def _steer(args: argparse.Namespace) -> int:
    from interp_steer.data import load_prompts
    from interp_steer.generation import generate
    from interp_steer.steering import Steering

    model, vector, layers = _model_and_vector(args)
    prompts = [args.prompt] if args.prompt else load_prompts(args.prompts)
    outputs = generate(model, prompts, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                       seed=args.seed, chat=False if args.no_chat else None,
                       steering=Steering(vector, args.coefficient, layers=layers, positions=args.positions))
    for out in outputs:
        print(f"### {out.prompt}\n{out.text}\n")
    if args.out:
        record = {"model": model.name, "vector": args.vector, "coefficient": args.coefficient,
                  "layers": layers or list(vector.layers), "positions": args.positions,
                  "seed": args.seed, "temperature": args.temperature,
                  "completions": [o.to_dict() for o in outputs]}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2))
        print(f"wrote {args.out}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import numpy as np

    from interp_steer.data import load_prompts
    from interp_steer.evaluation import generation_sweep
    from interp_steer.plotting import plot_heatmap, save_figure

    model, vector, layers = _model_and_vector(args)
    coefficients = _numbers(args.coefficients, "--coefficients")
    prompts = load_prompts(args.prompts)
    readout = None
    if args.readout:
        from interp_steer.data import load_corpus
        from interp_steer.metrics import ProbeReadout

        positive, sep, negative = args.readout.rpartition(":")
        if not sep or not positive:
            raise ValueError(f"--readout {args.readout!r}: expected POS_FILE:NEG_FILE")
        layer = vector.layers[0] if args.readout_layer is None else model.resolve_layers([args.readout_layer])[0]
        readout = ProbeReadout.fit(model, load_corpus(positive), load_corpus(negative), layer=layer,
                                   labels=(Path(positive).stem, Path(negative).stem))
        print(f"probe readout at layer {layer}: {readout.positive_label} vs {readout.negative_label}, "
              f"training accuracy {readout.train_accuracy:.3f}")
    result = generation_sweep(model, prompts, vector, coefficients, layers, readout=readout,
                              max_new_tokens=args.max_new_tokens, positions=args.positions)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps({"model": model.name, "vector": args.vector,
                                                **result.to_dict()}, indent=2))
    for name in ("vader", "perplexity", "repetition", "distinct_2", "probe_valence"):
        if name not in result.metrics:
            continue
        metric = result.metrics[name]
        ax = plot_heatmap(np.array(metric.mean), row_labels=metric.layers,
                          col_labels=[f"{c:g}" for c in metric.coefficients], annotate=True,
                          cmap="RdBu_r" if name in ("vader", "probe_valence") else "viridis", cbar_label=name,
                          title=f"{name} (mean over {metric.n_items} prompts)")
        ax.set_xlabel("coefficient")
        ax.set_ylabel("layer")
        save_figure(ax, out / f"sweep_{name}.png")
    vader = result.metrics["vader"]
    for i, layer in enumerate(vader.layers):
        cells = ", ".join(f"{c:g}: {m:+.2f}" for c, m in zip(vader.coefficients, vader.mean[i], strict=True))
        print(f"layer {layer} VADER by coefficient: {cells}")
    print(f"wrote {out / 'sweep.json'} and sweep_*.png")
    return 0


def _ab_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from interp_steer.data import load_ab_questions
    from interp_steer.evaluation import ab_eval
    from interp_steer.plotting import plot_layer_profile, save_figure

    model, vector, layers = _model_and_vector(args)
    questions = load_ab_questions(args.questions)[: args.limit]
    result = ab_eval(model, questions, vector, _numbers(args.coefficients, "--coefficients"), layers)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab_eval.json").write_text(json.dumps({"model": model.name, "questions": args.questions,
                                                  "vector": args.vector, **result.to_dict(per_item=True)},
                                                 indent=2))
    ax = None
    for i, layer in enumerate(result.layers):
        ax = plot_layer_profile(result.coefficients, result.mean[i], band=(result.low[i], result.high[i]),
                                label=f"layer {layer}", xlabel="steering coefficient",
                                ylabel="P(matching answer)", ax=ax,
                                title=f"{Path(args.questions).stem}: {len(questions)} questions")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=0.8)
    save_figure(ax, out / "ab_eval.png")
    for i, layer in enumerate(result.layers):
        cells = ", ".join(f"{c:g}: {m:.3f} [{lo:.3f}, {hi:.3f}]" for c, m, lo, hi in
                          zip(result.coefficients, result.mean[i], result.low[i], result.high[i], strict=True))
        print(f"layer {layer}: {cells}")
    print(f"mean P(matching) over all cells {np.mean(result.mean):.3f}; wrote {out / 'ab_eval.json'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _collide(args: argparse.Namespace) -> int:
    from interp_steer.models import load_model
    from interp_steer.studies import collide

    layer = args.layer if args.layer == "auto" else _integer(args.layer, "--layer")
    overrides = {
        "layer": layer,
        "alphas": tuple(_numbers(args.alphas, "--alphas")) if args.alphas else None,
        "lambdas": tuple(_numbers(args.lambdas, "--lambdas")) if args.lambdas else None,
        "position": args.position, "max_new_tokens": args.max_new_tokens, "samples": args.samples,
        "seed": args.seed, "max_prompts": args.max_prompts, "max_passages": args.max_passages,
        "batch_size": args.batch_size,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    out = Path(args.out) if args.out else Path("runs") / time.strftime("collide-%Y%m%d-%H%M%S")
    started = time.perf_counter()
    model = load_model(args.model, device=args.device)
    print(f"model {model.name}: {model.n_layers} layers, d_model {model.d_model}", flush=True)
    result = collide(model, persona_a=args.persona_a, persona_b=args.persona_b, baseline=args.baseline,
                     prompts=args.prompts, quick=args.quick, progress=True,
                     log=lambda line: print(line, flush=True), **overrides)
    written = result.save(out)
    print(f"\nsteering layer {result.layer}; best usable strength λ = {result.coherence['best_lambda']:g}")
    for finding in result.findings:
        print(f"- {finding.key}: {finding.verdict.upper()} — {finding.summary}")
    print(f"\nwrote {written['json']}, {written['report']} and {len(written) - 4} figures in "
          f"{time.perf_counter() - started:.0f} s")
    return 0


def _integer(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected an integer or 'auto'") from None


def _patch(args: argparse.Namespace) -> int:
    from interp_steer.models import load_model
    from interp_steer.studies import dominance_patching

    layer = args.layer if args.layer == "auto" else _integer(args.layer, "--layer")
    components = tuple(c.strip() for c in args.components.split(",") if c.strip())
    started = time.perf_counter()
    model = load_model(args.model, device=args.device)
    result = dominance_patching(
        model, persona_a=args.persona_a, persona_b=args.persona_b, baseline=args.baseline, prompts=args.prompts,
        log=lambda line: print(line, flush=True), alpha=args.alpha, lam=args.lam, source=args.source, layer=layer,
        components=components, method=args.method, max_prompts=args.max_prompts, max_passages=args.max_passages,
        positions=args.positions, continuation=args.continuation, seed=args.seed,
    )
    written = result.save(args.out)
    print(f"\nsteering layer {result.layer}; strongest components (logit difference):")
    for row in result.top[:5]:
        print(f"  {row['component']} {row['index']}: {row['effect']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]")
    for component, value in result.attribution["correlation_with_exact"].items():
        print(f"  attribution vs exact, {component}: r = {value['pearson_r']:.2f}")
    print(f"wrote {written['json']} and {written['report']} in {time.perf_counter() - started:.0f} s")
    return 0
