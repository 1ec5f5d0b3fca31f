"""Write the output-free ``.ipynb`` twin of every notebook page in book/ (the ``.md`` is the source).

Colab opens only ``.ipynb`` files, and the launch buttons link a page's ``.ipynb`` twin when it
exists; the book itself is built from the MyST ``.md`` files (the twins are excluded from Sphinx).
A notebook page is a book/*.md whose front matter has a ``kernelspec`` and pairs it with ipynb
(``jupytext: formats: md:myst,ipynb``). Run after editing a chapter:

    .venv/bin/python tools/sync_notebooks.py            # write twins that are missing or stale
    .venv/bin/python tools/sync_notebooks.py --check    # exit 1 listing stale twins (what the test does)

Equivalent jupytext commands: ``jupytext --set-formats md:myst,ipynb book/ch1_setting.md`` once
per new chapter, then ``jupytext --sync book/*.md`` (which, unlike this script, keeps outputs if
you ran the .ipynb in Jupyter: clear them before committing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

BOOK = Path(__file__).resolve().parent.parent / "book"


def paired_pages(book: Path = BOOK) -> list[Path]:
    """The .md pages of ``book`` that declare an ipynb pairing in their jupytext front matter."""
    pages = []
    for path in sorted(book.glob("*.md")):
        metadata = jupytext.read(path).metadata
        formats = str(metadata.get("jupytext", {}).get("formats", ""))
        if "kernelspec" in metadata and "ipynb" in formats.split(","):
            pages.append(path)
    return pages


def twin_notebook(page: Path) -> nbformat.NotebookNode:
    """The output-free notebook the .md ``page`` should be paired with."""
    notebook = jupytext.read(page)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return notebook


def stale_twins(book: Path = BOOK) -> list[Path]:
    """Pages whose .ipynb twin is missing, has outputs, or differs in any cell."""
    stale = []
    for page in paired_pages(book):
        twin = page.with_suffix(".ipynb")
        if not twin.exists() or _cells(nbformat.read(twin, as_version=4)) != _cells(twin_notebook(page)):
            stale.append(page)
    return stale


def _cells(notebook: nbformat.NotebookNode) -> list[tuple]:
    # What a reader of the twin sees: cell kinds, sources, tags, and (for code) no outputs.
    return [(cell.cell_type, cell.source, tuple(cell.metadata.get("tags", [])),
             tuple(cell.get("outputs", [])), cell.get("execution_count"))
            for cell in notebook.cells]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale twins")
    args = parser.parse_args(argv)
    stale = stale_twins()
    if args.check:
        for page in stale:
            print(f"stale or missing: {page.with_suffix('.ipynb').relative_to(BOOK.parent)}")
        return 1 if stale else 0
    for page in stale:
        jupytext.write(twin_notebook(page), page.with_suffix(".ipynb"), fmt="ipynb")
        print(f"wrote {page.with_suffix('.ipynb').relative_to(BOOK.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
