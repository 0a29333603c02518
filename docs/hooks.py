"""MkDocs hooks: the notebooks in ``notebooks/`` become the tutorials' pages (rendered by
mkdocs-jupyter at ``notebooks/NAME/``, without outputs: CI executes them with nbmake), ``figures/`` holds the figures, and ``docs/`` is importable so that
build-time blocks can ``import _reference``."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

DOCS = Path(__file__).resolve().parent
NOTEBOOKS = DOCS.parent / "notebooks"
FIGURES = DOCS.parent / "figures"


def on_startup(command: str, dirty: bool) -> None:
    if str(DOCS) not in sys.path:
        sys.path.insert(0, str(DOCS))


def on_config(config):
    on_startup("build", False)
    return config


# Before mkdocs-jupyter's own on_files, which turns the notebooks it is shown into pages.
@event_priority(100)
def on_files(files: Files, config) -> Files:
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(File(f"notebooks/{notebook.name}", src_dir=str(NOTEBOOKS.parent), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    # The README's figures, kept once at the repository's top level, are the docs' figures too.
    for figure in sorted(FIGURES.glob("*.png")):
        files.append(File(f"figures/{figure.name}", src_dir=str(FIGURES.parent), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files
