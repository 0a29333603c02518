"""Every Python example of ``README.md`` and ``docs/`` runs under pytest, as a reader would run it.

Sybil collects each Markdown page; its ``python`` blocks run in order in one namespace per page
(so a page reads as one session). A block directly followed by a ``text title="Output"`` block must
print exactly that (``...`` matches anything, as in doctest's ELLIPSIS; trailing spaces are ignored).
A block that cannot run in CI is preceded by ``<!-- skip: next "why it cannot run here" -->``
(Sybil's skip directive; ``tests/test_docs.py`` checks that every skip gives its reason). Blocks with
any other info string (``python exec="on"``, executed by markdown-exec when the site is built, or
``console``) are not run here.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sybil import Document, Example, Region, Sybil
from sybil.evaluators.python import pad
from sybil.parsers.markdown import SkipParser
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

ROOT = Path(__file__).resolve().parent
OUTPUT_INFO = 'text title="Output"'
_INFO = re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE)
_CHECKER = doctest.OutputChecker()


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


class ExampleOutputMismatch(AssertionError):
    """A docs example printed something other than the output its page shows."""


class PythonWithOutputParser:
    """``python`` blocks, each paired with the ``text title="Output"`` block right after it, if any."""

    def __init__(self) -> None:
        self.lexer = RawFencedCodeBlockLexer(info_pattern=_INFO)

    def __call__(self, document: Document) -> Iterable[Region]:
        blocks = list(self.lexer(document))
        for i, block in enumerate(blocks):
            if block.lexemes["info"].strip() != "python":
                continue
            expected = None
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            if (following is not None and following.lexemes["info"].strip() == OUTPUT_INFO
                    and not document.text[block.end:following.start].strip()):
                expected = str(following.lexemes["source"])
            region = Region(block.start, block.end, (block.lexemes["source"], expected), self.evaluate)
            yield region

    @staticmethod
    def evaluate(example: Example) -> None:
        __tracebackhide__ = True
        source, expected = example.parsed
        code = compile(pad(str(source), example.line + source.line_offset), example.path, "exec", dont_inherit=True)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(code, example.namespace)
        example.namespace.pop("__builtins__", None)
        if expected is None:
            return
        want, got = _normalise(expected), _normalise(printed.getvalue())
        if not _CHECKER.check_output(want, got, doctest.ELLIPSIS):
            raise ExampleOutputMismatch(
                f"{example.path}, line {example.line}: the example printed\n{got}\nbut the page shows\n{want}")


def _page_setup(namespace: dict) -> None:
    # Each page runs in its own empty working directory, so the files its examples write (vectors,
    # run folders) land there and are removed afterwards; figures go to files, no window opens.
    import matplotlib

    matplotlib.use("Agg")
    workdir = tempfile.TemporaryDirectory(prefix="interp_steer_docs_")
    namespace["__docs_state__"] = (workdir, os.getcwd())
    os.chdir(workdir.name)


def _page_teardown(namespace: dict) -> None:
    import matplotlib.pyplot as plt

    plt.close("all")
    workdir, previous = namespace.pop("__docs_state__")
    os.chdir(previous)
    workdir.cleanup()


pytest_collect_file = Sybil(
    parsers=[PythonWithOutputParser(), SkipParser()],
    patterns=["README.md", "docs/**/*.md"],
    path=str(ROOT),
    setup=_page_setup,
    teardown=_page_teardown,
    name="docs",
).pytest()
