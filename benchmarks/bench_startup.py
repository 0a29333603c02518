"""Benchmark: start-up, in whole processes (issue 14, item 2).

Medians of ``--repeats`` runs each, alternating:
- ``interp-steer --help`` (target <= 1.5 s) and ``python -c "import interp_steer"`` (target <= 2 s):
  neither imports torch, transformers or TransformerLens (the package's names are imported on
  first use);
- ``python -c "import interp_steer as ist; ist.load_model()"`` on the embedded default model, warm
  (the de-quantised GGUF already cached) against cold (an empty cache directory, so the GGUF file is
  de-quantised again); target: warm <= 0.3x cold.

    python benchmarks/bench_startup.py [--repeats 3] [--skip-cold] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import add_json_option, now, row, write_record


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cold", action="store_true", help="leave out the cold loads (tens of seconds each)")
    add_json_option(parser)
    args = parser.parse_args()
    started = now()

    cli = str(Path(sys.executable).with_name("interp-steer"))
    load = [sys.executable, "-c", "import interp_steer as ist; ist.load_model()"]
    timed(load)  # makes sure the warm cache exists
    runs: dict[str, list[float]] = {"help": [], "import": [], "warm": [], "cold": []}
    for _ in range(args.repeats):
        runs["help"].append(timed([cli, "--help"]))
        runs["import"].append(timed([sys.executable, "-c", "import interp_steer"]))
        runs["warm"].append(timed(load))
        if not args.skip_cold:
            cache = tempfile.mkdtemp(prefix="interp-steer-cold-")
            try:
                runs["cold"].append(timed(load, {"INTERP_STEER_CACHE": cache}))
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in runs.items() if v}
    print(f"interp-steer --help     {median['help']:6.2f} s   (target <= 1.5 s)")
    print(f"import interp_steer     {median['import']:6.2f} s   (target <= 2 s)")
    print(f"load_model(), warm      {median['warm']:6.2f} s")
    if "cold" in median:
        print(f"load_model(), cold      {median['cold']:6.2f} s   warm/cold {median['warm'] / median['cold']:.2f} "
              "(target <= 0.3)")
    rows = [row("interp-steer --help", median["help"], "s", "<= 1.5", median["help"] <= 1.5),
            row("import interp_steer", median["import"], "s", "<= 2", median["import"] <= 2),
            row("load_model(), warm", median["warm"], "s")]
    if "cold" in median:
        ratio = median["warm"] / median["cold"]
        rows += [row("load_model(), cold (empty cache)", median["cold"], "s"),
                 row("load_model(): warm / cold", ratio, "ratio", "<= 0.3", ratio <= 0.3)]
    write_record(args.json, "bench_startup", rows, started=started,
                 notes=[f"whole processes, medians of {args.repeats}", *args.note])


if __name__ == "__main__":
    main()
