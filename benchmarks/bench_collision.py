"""Benchmark: the whole Creative Collision study as before issue 14 and now, alternating, in one run.

"Before" undoes, for its run only, what issue 14 changed on the study's path
(``_timing.as_before_issue_14``, ``_timing.COLLISION_BEFORE_ISSUE_14``): every forward pass goes
through the bridge's wrappers (generation, perplexity, the readout and every activation
collection), every row of a grid prefills its prompt on its own, the generation loop's key/value
cache grows by concatenation, each batch holds one prompt's 46 cells (64 rows at most), the
readout's mean-pooled passages are collected in a pass of their own, completions are scored for
perplexity by a second forward of the whole model, and the decomposition's steered forwards
recompute the blocks before the steering layer.
"Now" is the library as it is: shared prompt prefixes on the plain view (whose decoding steps use
grouped-query attention, with the cache written in place), two prompts per batch, the readout read
in the persona vectors' own forward passes, perplexity from the blocks after the steering layer
only (generation keeps the unsteered outputs below it), and the decomposition resuming after the
steering layer. Grouped attention equals eager attention to float rounding, and perplexity from
generation equals a whole forward's to float rounding, so the benchmark reports whether
``collision.json`` is identical (timings and batch size aside) and, where not, how many
(cell, prompt) rows have any score changed, by how much at most, and whether every finding's verdict
is the same. Prints each stage's time and the whole run's ratio (issue 14's target for the default
collision: >= 1.3x), and a control: localisation runs the same code in both, so its ratio says
whether the shared machine's speed changed between the two runs. ``--override FIELD=VALUE`` changes
a config field (``max_prompts=10``).

    python benchmarks/bench_collision.py [--model SPEC] [--profile default|quick] [--repeats 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from dataclasses import replace

import numpy as np
from _timing import COLLISION_BEFORE_ISSUE_14, as_before_issue_14

import interp_steer as ist
from interp_steer.execution import Execution
from interp_steer.studies.collision import CollisionConfig, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--profile", choices=["quick", "default"], default="default")
    parser.add_argument("--override", action="append", default=[], metavar="FIELD=JSON",
                        help="a CollisionConfig field, e.g. max_prompts=10 (repeatable)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    overrides = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.override)}
    config = CollisionConfig.quick(**overrides) if args.profile == "quick" else CollisionConfig(**overrides)
    model = ist.load_model(args.model, device="cpu")

    # "Before" runs the settings of before issue 14 where the user did not set them.
    before_config = replace(config, **{k: v for k, v in COLLISION_BEFORE_ISSUE_14.items() if k not in overrides})

    def once(before: bool) -> tuple[float, dict]:
        started = time.perf_counter()
        label = "before" if before else "now"
        with as_before_issue_14() if before else contextlib.nullcontext():
            result = run(model, before_config if before else config, execution=Execution(
                progress=False, log=lambda line: print(f"[{label}] {line}", flush=True)))
        total = time.perf_counter() - started
        stages = dict(result.to_dict().get("timings_s", {}))
        return total, {"stages": stages, "result": result}

    times: dict[str, list[float]] = {"before": [], "now": []}
    last: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name in times:
            seconds, info = once(name == "before")
            times[name].append(seconds)
            last[name] = info
    med = {name: statistics.median(t) for name, t in times.items()}

    def comparable(result) -> str:
        data = result.to_dict()
        data.pop("timings_s", None)
        data["config"].pop("batch_size", None)  # a setting of speed, not of what is computed
        return json.dumps(data, sort_keys=True, default=str)

    print(f"{model.name}: collision, {args.profile} profile {overrides or ''}, medians of {args.repeats}")
    for stage in last["now"]["stages"]:
        print(f"  {stage:<28} before {last['before']['stages'].get(stage, float('nan')):7.1f} s   "
              f"now {last['now']['stages'][stage]:7.1f} s")
    print(f"whole run: before {med['before']:.1f} s, now {med['now']:.1f} s: "
          f"{med['before'] / med['now']:.2f}x (target >= 1.3x)")
    # Localisation (the probes' cross-validation) runs the same code in both: on a steady machine its
    # ratio is 1, and a ratio far from 1 says the machine's speed changed between the two runs.
    control = last["before"]["stages"].get("localisation", float("nan")) / last["now"]["stages"].get("localisation", float("nan"))
    print(f"control, localisation (the same code in both): before / now {control:.2f} (1.00 on a steady machine); "
          f"the whole run's ratio net of that drift: {med['before'] / med['now'] / control:.2f}x")
    before, now = last["before"]["result"], last["now"]["result"]
    print(f"collision.json identical (timings aside): {comparable(before) == comparable(now)}")
    changed = sum(~np.isclose(before.per_prompt[k], now.per_prompt[k], rtol=0, atol=0, equal_nan=True)
                  for k in before.per_prompt).astype(bool)
    print(f"(cell, prompt) rows with any score changed: {int(changed.sum())} of {changed.size}; "
          f"verdicts identical: {[f.verdict for f in before.findings] == [f.verdict for f in now.findings]}")
    for key in before.per_prompt:
        a, b = np.asarray(before.per_prompt[key], float), np.asarray(now.per_prompt[key], float)
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
        if np.nanmax(relative, initial=0.0) > 0:
            print(f"  {key}: largest relative change {np.nanmax(relative):.1e} "
                  f"({int(np.sum(relative > 0))} of {relative.size} values)")


if __name__ == "__main__":
    main()
