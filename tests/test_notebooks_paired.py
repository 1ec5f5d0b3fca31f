"""Every notebook page of the book has an up-to-date, output-free .ipynb twin (for Colab/Binder).

Chapters and the intro must pair with ipynb; any other page that pairs must keep its twin fresh.
Fix a failure with ``.venv/bin/python tools/sync_notebooks.py`` (see README, "Writing a chapter").
"""

import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import sync_notebooks  # noqa: E402

BOOK = ROOT / "book"
NOTEBOOK_PAGES = sorted([BOOK / "intro.md", *BOOK.glob("ch*.md")])


@pytest.mark.parametrize("page", NOTEBOOK_PAGES, ids=lambda p: p.name)
def test_chapter_is_a_paired_myst_notebook(page):
    notebook = jupytext.read(page)
    assert "kernelspec" in notebook.metadata, f"{page.name}: no kernelspec in the jupytext header"
    formats = str(notebook.metadata.get("jupytext", {}).get("formats", "")).split(",")
    assert "md:myst" in formats and "ipynb" in formats, (
        f"{page.name} is not paired: run `jupytext --set-formats md:myst,ipynb book/{page.name}`")


@pytest.mark.parametrize("page", sync_notebooks.paired_pages(BOOK), ids=lambda p: p.name)
def test_twin_is_up_to_date_and_output_free(page):
    twin = page.with_suffix(".ipynb")
    assert twin.exists(), f"missing {twin.name}: run tools/sync_notebooks.py"
    notebook = nbformat.read(twin, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{twin.name} has outputs: run tools/sync_notebooks.py")
    assert page not in sync_notebooks.stale_twins(BOOK), (
        f"{twin.name} differs from {page.name}: run tools/sync_notebooks.py")


def test_no_orphan_twins():
    for twin in BOOK.glob("*.ipynb"):
        assert twin.with_suffix(".md").exists(), f"{twin.name} has no .md source"
