"""Did-you-mean: the known names closest to a misspelt one, for error messages (a subcommand on the
command line, a model spec)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``choices`` that ``word`` probably meant, best first, compared without case:
    those that start with ``word`` (a name cut short: ``smollm`` for ``smollm2-135m-instruct``),
    then difflib's close matches (a typo: ``colide`` for ``collide``). None for an empty word."""
    choices = list(dict.fromkeys(choices))
    key = word.strip().lower()
    if not key:
        return []
    by_key = {choice.lower(): choice for choice in choices}
    found = [
        choice for choice in choices if choice.lower().startswith(key) and choice.lower() != key
    ]
    found += [
        by_key[match] for match in difflib.get_close_matches(key, list(by_key), n=n, cutoff=0.6)
    ]
    return list(dict.fromkeys(found))[:n]


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """``"did you mean 'collide'?"`` (or ``'a' or 'b'``) for the :func:`close_matches`; ``""`` when
    none is close."""
    matches = close_matches(word, choices, n)
    if not matches:
        return ""
    quoted = [f"'{match}'" for match in matches]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"did you mean {listed}?"


__all__ = ["close_matches", "did_you_mean"]
