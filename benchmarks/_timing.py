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


@contextlib.contextmanager
def as_before_issue_14() -> Iterator[None]:
    """Undo, inside the block, what issue 14 changed on the path of generation and scoring: every
    forward pass goes through the bridge's wrappers (``interp_steer._plain.enabled = False``:
    generation, perplexity and activation collection), every row of a batch prefills its prompt on
    its own (``generation.sharing_plan`` never shares), and the generation loop's key/value cache
    grows by concatenation (Hugging Face's ``DynamicCache``)."""
    from transformers import DynamicCache

    import interp_steer.generation as generation
    from interp_steer import _plain

    saved = _plain.enabled, generation.sharing_plan, generation._new_cache
    _plain.enabled, generation.sharing_plan = False, lambda *args: None
    generation._new_cache = lambda capacity: DynamicCache()
    try:
        yield
    finally:
        _plain.enabled, generation.sharing_plan, generation._new_cache = saved
