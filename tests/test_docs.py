"""The docs site builds in strict mode, its generated reference is current, and the README stays short.

The examples themselves run through Sybil (``conftest.py`` at the repository root): every ``python``
block of ``README.md`` and ``docs/`` is executed in order, and a shown output is compared.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
SKIP = re.compile(r"<!--\s*skip:\s*(?P<action>\w+)(?P<reason>[^\n]*?)-->")


def test_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs toolchain is in the dev extra: pip install -e '.[dev]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    site = tmp_path / "site"
    # What the generated sections must have put on their pages.
    assert "interp-steer collide" in (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert 'id="interp_steer.collect_activations"' in (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert (site / "notebooks" / notebook.stem / "index.html").is_file(), notebook.name


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (ROOT / "docs").rglob("*.md"):
        assert page.relative_to(ROOT / "docs").as_posix() in nav, f"{page} is not in mkdocs.yml's nav"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_skipped_example_says_why(page: Path) -> None:
    for match in SKIP.finditer(page.read_text(encoding="utf-8")):
        if match["action"] == "end":
            continue
        reason = match["reason"].strip()
        assert reason.startswith('"') and len(reason) > 12, (
            f"{page.name}: '<!-- skip: {match['action']} -->' must give its reason in quotes, "
            f"e.g. <!-- skip: next \"needs a CUDA GPU\" -->")


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; the details belong in docs/"


def test_rule_cards_cover_every_simulated_world() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import _reference
    finally:
        sys.path.remove(str(ROOT / "docs"))
    missing = _reference.missing_simulations()
    assert not missing, ("docs/data/rule_cards.json lacks these simulated worlds; re-simulate with "
                         f"`python docs/_reference.py rule-cards`: {missing}")
