"""The edit language: how a search's path from the seed to a candidate is written, replayed and
recomputed (the grammar is listed in :mod:`interp_steer.adversarial`)."""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

Ids = tuple[int, ...]
"""A token sequence as the searches hold it (hashable: the value cache is keyed by it)."""


def as_ids(values: Any, name: str) -> Ids:
    """``values`` as a tuple of token ids, or a one-line error naming the argument ``name``."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of integer token ids, not text; tokenise it first")
    try:
        ids = tuple(operator.index(v) for v in values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of integer token ids, got {values!r:.80}") from None
    negative = [i for i in ids if i < 0]
    if negative:
        raise ValueError(f"{name} must hold non-negative token ids; got {negative[:5]}")
    return ids


def format_tokens(tokens: Sequence[int]) -> str:
    """Tokens as an edit writes them: ``7`` for one, ``[7, 8]`` for several."""
    return str(int(tokens[0])) if len(tokens) == 1 else str([int(t) for t in tokens])


_INT = r"(\d+)"
_LIST = r"\[([\d, ]*)\]"
_EDIT_FORMS = {
    "insert": re.compile(rf"insert (?:{_INT}|{_LIST}) at {_INT}"),
    "substitute": re.compile(rf"substitute {_INT} at {_INT} \(was {_INT}\)"),
    "delete": re.compile(rf"delete {_INT} at {_INT}"),
    "swap": re.compile(rf"swap \[{_INT}:{_INT}\] with \[{_INT}:{_INT}\]"),
    "move": re.compile(rf"move \[{_INT}:{_INT}\] to {_INT}"),
    "crossover": re.compile(rf"crossover at {_INT} with tail {_LIST}"),
}


def _parse_list(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t.strip())


def replay_edits(seed_ids: Sequence[int] | np.ndarray, edits: Sequence[str]) -> list[int]:
    """Apply an edit path (:attr:`SearchResult.edits`) to ``seed_ids`` and return the result.

    Each edit is checked against the sequence it applies to (the token a ``delete`` or
    ``substitute`` names must be there, positions must be in range); a mismatch raises ValueError
    naming the edit. ``replay_edits(r.seed_ids, r.edits) == r.best_ids`` for every result ``r``.
    """
    ids = list(as_ids(seed_ids, "seed_ids"))
    for step, edit in enumerate(edits):
        form = next((k for k, p in _EDIT_FORMS.items() if p.fullmatch(edit)), None)
        if form is None:
            raise ValueError(f"edit {step} ({edit!r}) is not one of the forms: {', '.join(_EDIT_FORMS)}")
        g = _EDIT_FORMS[form].fullmatch(edit).groups()  # type: ignore[union-attr]
        n = len(ids)

        def bad(why: str, step: int = step, edit: str = edit, n: int = n) -> ValueError:
            return ValueError(f"edit {step} ({edit!r}) does not apply to a sequence of length {n}: {why}")

        if form == "insert":
            tokens = (int(g[0]),) if g[0] is not None else _parse_list(g[1])
            p = int(g[2])
            if p > n:
                raise bad("position past the end")
            ids[p:p] = tokens
        elif form == "substitute":
            t, p, old = int(g[0]), int(g[1]), int(g[2])
            if p >= n or ids[p] != old:
                raise bad(f"no token {old} at {p}")
            ids[p] = t
        elif form == "delete":
            t, p = int(g[0]), int(g[1])
            if p >= n or ids[p] != t:
                raise bad(f"no token {t} at {p}")
            del ids[p]
        elif form == "swap":
            a, b, c, d = (int(x) for x in g)
            if not (a < b <= c < d <= n):
                raise bad("the spans must satisfy a < b <= c < d <= length")
            ids = ids[:a] + ids[c:d] + ids[b:c] + ids[a:b] + ids[d:]
        elif form == "move":
            a, b, p = (int(x) for x in g)
            if not (a < b <= n) or p > n - (b - a):
                raise bad("span or target out of range")
            span, rest = ids[a:b], ids[:a] + ids[b:]
            ids = rest[:p] + span + rest[p:]
        else:  # crossover
            p = int(g[0])
            if p > n:
                raise bad("cut past the end")
            ids = ids[:p] + list(_parse_list(g[1]))
    return ids


def diff_edits(seed_ids: Sequence[int] | np.ndarray, ids: Sequence[int] | np.ndarray) -> list[str]:
    """A short edit path from ``seed_ids`` to ``ids`` (inserts, deletes, substitutions only).

    :attr:`SearchResult.edits` is the path the search took, detours included (on a plateau a search
    wanders); this is a minimal-looking alternative from :class:`difflib.SequenceMatcher`, in the
    same grammar, so ``replay_edits(seed_ids, diff_edits(seed_ids, ids)) == list(ids)``. The edits
    run right to left, so every position is a position of the seed.
    """
    a, b = as_ids(seed_ids, "seed_ids"), as_ids(ids, "ids")
    out: list[str] = []
    opcodes = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in reversed(opcodes):
        if tag == "equal":
            continue
        common = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        if j2 - j1 > common:  # tokens of ``ids`` beyond the substituted ones: insert after them
            out.append(f"insert {format_tokens(b[j1 + common : j2])} at {i1 + common}")
        out.extend(f"delete {a[i]} at {i}" for i in reversed(range(i1 + common, i2)))
        out.extend(f"substitute {b[j1 + k]} at {i1 + k} (was {a[i1 + k]})" for k in range(common))
    return out
