"""Benchmark: a quick collision study on Ray actors against the same run in this process.

Target (issue 13), as ratios measured in this one run on a local Ray cluster: the quick collision
with 1 actor (using the same 2 threads) takes <= 1.25x the local run's wall time, cluster start-up
and the actors' model loading reported apart. Also reported: 2 actors x 1 thread against the local
run's 2 threads (on a 2-core machine there is nothing to gain; this measures the overhead of
splitting the grid, while scaling on real clusters is planned on paper in the README), and whether
each Ray run's collision.json numbers equal the local run's.

    pip install "interp_steer[distributed]"
    python benchmarks/bench_ray.py [--model SPEC] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import interp_steer as ist
from interp_steer.execution import Execution
from interp_steer.studies.collision.config import CollisionConfig
from interp_steer.studies.collision.study import run
from interp_steer.units import RayBackend


def numbers(result) -> str:
    data = result.to_dict()
    data.pop("timings_s")
    return json.dumps(data, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = ist.load_model(args.model, device="cpu")
    spec = model.spec
    config = CollisionConfig.quick()

    start = time.perf_counter()
    local = run(model, config)
    local_s = time.perf_counter() - start
    print(f"{model.name}: quick collision, {len(local.prompts)} prompts, torch threads {args.threads}\n")
    print(f"{'local':<28} {local_s:7.1f} s")

    rows = []
    for actors, threads in ((1, args.threads), (2, max(1, args.threads // 2))):
        start = time.perf_counter()
        backend = RayBackend(spec, actors=actors, cpus_per_actor=threads, threads=threads)
        try:
            startup = time.perf_counter() - start
            start = time.perf_counter()
            result = run(model, config, execution=Execution(backend=backend))
            seconds = time.perf_counter() - start
        finally:
            backend.close()
        same = numbers(result) == numbers(local)
        rows.append((actors, threads, seconds))
        print(f"{f'ray, {actors} actor(s) x {threads} thread(s)':<28} {seconds:7.1f} s   {seconds / local_s:5.2f}x local"
              f"   (cluster start {startup:.1f} s, apart; the actors' model loads are in the run's time; numbers "
              f"equal to local: {'yes' if same else 'NO'})")
    ratio = rows[0][2] / local_s
    print(f"\n{'1 actor / local':<28} {ratio:6.2f}x   target <= 1.25   {'PASS' if ratio <= 1.25 else 'FAIL'}")
    print(f"{'2 actors x 1 thread / local':<28} {rows[1][2] / local_s:6.2f}x   (reported)")


if __name__ == "__main__":
    main()
