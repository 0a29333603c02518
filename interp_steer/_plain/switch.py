"""The fast path's switch: :func:`fast_path` turns the plain view, or only its grouped decoding
attention, off for a block of code, in this thread or task only.

Grouped decoding attention reads each key/value head once for the query heads that share it, where
the eager attention the bridge uses copies it to every query head; the arithmetic is the same, but
another kernel rounds it, so a decoding step's attention output can differ from the bridge's in the
last bit (about 3e-7). ``fast_path(grouped=False)`` keeps the plain view without it. The whole
story is in :mod:`interp_steer._plain`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

# (enabled, grouped), set by fast_path() for the current thread / task.
_SWITCH: ContextVar[tuple[bool, bool]] = ContextVar("interp_steer_fast_path", default=(True, True))


def fast_path_enabled() -> bool:
    """Whether forward passes may run on the plain view here (``fast_path(False)`` says no)."""
    return _SWITCH.get()[0]


def grouped_decoding_enabled() -> bool:
    """Whether decoding steps on the plain view may use grouped attention (``grouped=False`` says no)."""
    return _SWITCH.get()[1]


@contextlib.contextmanager
def fast_path(enabled: bool = True, *, grouped: bool = True) -> Iterator[None]:
    """Switch the fast path inside the ``with`` block (this thread or task only; blocks nest).

    ``enabled=False`` runs every forward pass of generation, activation collection and perplexity
    through the bridge's wrappers, as before the plain view existed: slower, with the same results.
    ``grouped=False`` keeps the plain view but runs the model's own eager attention in decoding steps
    too, so that every logit is the bridge's to the bit (grouped decoding attention rounds a step's
    attention output differently in the last bit; see the module docstring)::

        with interp_steer.fast_path(False):
            reference = interp_steer.generate(model, prompts)
    """
    for name, value in (("enabled", enabled), ("grouped", grouped)):
        if not isinstance(value, bool):
            raise TypeError(f"fast_path({name}={value!r}): expected True or False")
    token = _SWITCH.set((enabled, grouped))
    try:
        yield
    finally:
        _SWITCH.reset(token)
