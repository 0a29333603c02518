"""Timing shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, which puts this
folder on the import path)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """``fn`` once to warm up, then the median of ``repeats`` timed calls."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# The collision's settings as they were before issue 14: one prompt of the default grid per batch.
COLLISION_BEFORE_ISSUE_14 = {"batch_size": 64}


@contextlib.contextmanager
def as_before_issue_14() -> Iterator[None]:
    """Undo, inside the block, what issue 14 changed on the path of generation and scoring: every
    forward pass goes through the bridge's wrappers (``interp_steer.fast_path(False)``:
    generation, perplexity and activation collection; with no plain view no forward resumes after a
    block, so the decomposition runs whole forwards and ``generate(..., perplexity=True)`` keeps
    nothing and scores its completions with a whole forward, as ``score_generations`` did), every
    row of a batch prefills its prompt on its own (``generation.sharing_plan`` never shares), the
    generation loop's key/value cache grows by concatenation (Hugging Face's ``DynamicCache``), and the
    collision reads its mean-pooled readout in a collection of its own. (The collision's settings
    change too: run it with ``COLLISION_BEFORE_ISSUE_14``.)"""
    from transformers import DynamicCache

    import interp_steer as ist
    import interp_steer.generation as generation
    import interp_steer.studies.collision.study as collision

    saved = generation.sharing_plan, generation._new_cache, collision.build_personas
    build_personas = collision.build_personas
    generation.sharing_plan = lambda *args: None
    generation._new_cache = lambda capacity: DynamicCache()
    collision.build_personas = lambda *args, **kwargs: build_personas(*args, **{**kwargs, "pooled": False})
    try:
        with ist.fast_path(False):
            yield
    finally:
        generation.sharing_plan, generation._new_cache, collision.build_personas = saved
