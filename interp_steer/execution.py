"""How a study runs, never what it computes: one small value passed the same way to every study.

Every study's ``run(model, config, *, <data>, execution=None)`` and every convenience function
(``collide``, ``dominance_patching``, ``svf``, ``robustness``, ``score``, ``localise``) takes an
:class:`Execution`. It bundles the five settings that change where and how the work happens and
never the numbers that come out:

- ``progress``: progress bars (``None``: tqdm decides from the terminal; ``False``: none);
- ``log``: a callable receiving one line per stage, with its time, and on a resumed run a line per
  stage that read work units back ("grid units: 8 of 12 units reused from runs/x/units (their
  compute: 415.2 s); computing the other 4"); the result's ``timings_s`` keeps the counts;
- ``store``: a directory of finished work units (:mod:`interp_steer.units`); a re-run with the same
  model, data, config and code reads them back instead of recomputing (resume after a crash);
- ``backend``: where units run: ``"local"`` (default), ``"ray"``, a :class:`~interp_steer.units.BackendSpec`
  or a backend object;
- ``fresh``: discard the stored units first.

Results never depend on any of them (the tests run each study both ways and compare).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp_steer.units import MemoryStore, UnitStore, open_store, own_backend

if TYPE_CHECKING:
    from interp_steer.units import BackendSpec, LocalBackend, RayBackend


@dataclass(frozen=True)
class Execution:
    """Progress, logging, resumable storage, backend and freshness of one run (see the module
    docstring). ``Execution()`` runs in this process, in memory, quietly apart from tqdm's default."""

    progress: bool | None = None
    log: Callable[[str], None] | None = None
    store: str | Path | None = None
    backend: str | BackendSpec | LocalBackend | RayBackend | None = None
    fresh: bool = False

    def __post_init__(self) -> None:
        if self.progress not in (None, True, False):
            raise TypeError(f"Execution(progress={self.progress!r}): give True, False or None")
        if self.log is not None and not callable(self.log):
            raise TypeError(f"Execution(log={self.log!r}): give a callable taking one line of text, e.g. print")
        if isinstance(self.store, str) and not self.store.strip():
            raise ValueError("Execution(store=''): give a directory, or None to keep units in memory")
        if self.fresh and self.store is None:
            raise ValueError("Execution(fresh=True) discards stored units, but no store directory was given")

    def say(self, line: str) -> None:
        """Pass one line to ``log`` (nothing when there is none)."""
        if self.log is not None:
            self.log(line)

    def open_store(self, key: dict[str, Any]) -> UnitStore | MemoryStore:
        """The unit store for the run identified by ``key``: on disk under ``store``, else in memory."""
        return open_store(self.store, key, fresh=self.fresh, log=self.say)

    @contextmanager
    def backend_for(self, model: Any) -> Iterator[Any]:
        """The backend object for ``model``; one made here from a name is closed on the way out."""
        with own_backend(self.backend, model) as made:
            yield made


def as_execution(execution: Execution | None) -> Execution:
    """``execution`` itself, or the default :class:`Execution` for None; anything else is refused."""
    if execution is None:
        return Execution()
    if not isinstance(execution, Execution):
        raise TypeError(f"execution={execution!r}: pass an interp_steer.Execution, e.g. "
                        "Execution(progress=False, store='runs/x/units')")
    return execution


__all__ = ["Execution", "as_execution"]
