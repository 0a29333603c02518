"""``interp-steer score``: completions made elsewhere, scored on the collision study's axes."""

from __future__ import annotations

import argparse
import time

from interp_steer.studies.collision.config import ALPHA_MEANS, ScoreConfig


def add_parser(subparsers) -> argparse.ArgumentParser:
    defaults = ScoreConfig()
    score = subparsers.add_parser(
        "score", help="score completions made elsewhere ((alpha, lambda)-labelled JSONL) on the collision axes",
        description="Read JSONL with one completion per line ({prompt, completion, alpha, lambda[, sample, model, "
        "token_ids]}; lambda 0 or absent: unsteered) and compute the collision study's axes per cell with intervals "
        "over prompts, dominance d(alpha), the coherence comparisons and the findings, as far as the grid and the "
        "inputs allow; what cannot be computed says what it needs. Without --scorer-model only the text metrics "
        "are scored; with it, perplexity too, and with the three corpora the probe readout, the coherence "
        "references and the probe profiles. collide --save-generations writes this format.")
    score.add_argument("--generations", required=True, metavar="FILE", help="JSONL of completions")
    score.add_argument("--scorer-model", default=None, metavar="SPEC",
                       help="model that scores perplexity and the readout ('default': the embedded model; omit for "
                       "text metrics only)")
    score.add_argument("--device", default=None, help="device of the scorer model")
    score.add_argument("--persona-a", metavar="FILE", help="persona A corpus (α = 1 on our axis)")
    score.add_argument("--persona-b", metavar="FILE", help="persona B corpus")
    score.add_argument("--baseline", metavar="FILE", help="neutral baseline corpus")
    score.add_argument("--builtin-corpora", action="store_true",
                       help="use the built-in persona and baseline corpora (the collision study's defaults)")
    score.add_argument("--alpha-means", default="persona-a", choices=list(ALPHA_MEANS),
                       help="which persona alpha = 1 is in the file (default persona-a; persona-b flips alpha)")
    score.add_argument("--lambda-units", default=defaults.lambda_units, help="what lambda means in the file (reported)")
    score.add_argument("--max-passages", type=int, default=defaults.max_passages, help="passages used per corpus")
    score.add_argument("--window", type=int, default=None,
                       help="tokens per coherence-reference passage (default: the longest completion)")
    score.add_argument("--seed", type=int, default=0)
    score.add_argument("--no-figures", action="store_true")
    score.add_argument("--out", required=True, metavar="DIR")
    score.set_defaults(handler=_score)
    return score


def _score(args: argparse.Namespace) -> int:
    from interp_steer.data import load_generations
    from interp_steer.execution import Execution
    from interp_steer.studies.collision.imported import score

    started = time.perf_counter()
    records = load_generations(args.generations)  # file:line errors before any model loads
    corpora = {"persona_a": args.persona_a, "persona_b": args.persona_b, "baseline": args.baseline}
    if args.builtin_corpora:
        if any(corpora.values()):
            raise ValueError("--builtin-corpora replaces --persona-a/--persona-b/--baseline: give one or the other")
        from interp_steer.data import builtin_path

        corpora = {name: builtin_path(name) for name in corpora}
    config = ScoreConfig(alpha_means=args.alpha_means, lambda_units=args.lambda_units, seed=args.seed,
                         max_passages=args.max_passages, window=args.window)
    scorer = None
    if args.scorer_model is not None:
        from interp_steer.models import load_model

        scorer = load_model(None if args.scorer_model == "default" else args.scorer_model, device=args.device)
    result = score(records, scorer=scorer, config=config, source=args.generations,
                   execution=Execution(progress=False, log=print), **corpora)
    written = result.save(args.out, figures=not args.no_figures)
    done = result.to_dict()["imported"]["completeness"]
    print(f"{result.n_lines} completions: {done['prompts']} prompts, {done['cells']} cells, "
          f"{done['missing_completions']} combinations missing")
    for finding in result.findings:
        status = f"not judged ({finding['missing']})" if "missing" in finding else finding["verdict"].upper()
        print(f"- {finding['key']}: {status}")
    print(f"wrote {written['json']} and {written['report']} in {time.perf_counter() - started:.0f} s")
    return 0


__all__ = ["add_parser"]
