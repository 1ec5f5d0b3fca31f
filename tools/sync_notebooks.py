"""Write the output-free ``.ipynb`` twin of every notebook page in book/ (the ``.md`` is the source).

Colab opens only ``.ipynb`` files, and the launch buttons link a page's ``.ipynb`` twin when it
exists; the book itself is built from the MyST ``.md`` files (the twins are excluded from Sphinx).
A notebook page is a book/*.md whose front matter has a ``kernelspec`` and pairs it with ipynb
(``jupytext: formats: md:myst,ipynb``). Run after editing a chapter:

    .venv/bin/python tools/sync_notebooks.py            # write twins that are missing or stale
    .venv/bin/python tools/sync_notebooks.py --check    # exit 1 listing stale twins (what the test does)

A twin is the page with two changes: code outputs cleared, and every ```` ```{include} ```` block
replaced by the file it includes (Colab does not resolve MyST includes, so the chapter's goals,
``book/_goals/*.md``, would otherwise show as a bare directive); an admonition that wraps an
include becomes a bold title over the included text. Because the twin is not a verbatim copy,
never run ``jupytext --sync`` on a page with an include: it would write the expansion back into
the .md. Pair a new chapter once with ``jupytext --set-formats md:myst,ipynb book/chN_name.md``,
then use this script.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import textwrap
from pathlib import Path

import jupytext
import nbformat

BOOK = Path(__file__).resolve().parent.parent / "book"
INCLUDE = re.compile(r"^(`{3,})\{include\}\s+(\S+)[ \t]*\n\1[ \t]*$", re.M)
LITERALINCLUDE = re.compile(r"^(`{3,})\{literalinclude\}\s+(\S+)[ \t]*\n((?:[ \t]*:[\w-]+:[^\n]*\n)*)\1[ \t]*$",
                            re.M)
ADMONITION = re.compile(r"^(:{3,})\{admonition\}[ \t]*([^\n]*)\n((?:[ \t]*:[\w-]+:[^\n]*\n)*)(.*?)^\1[ \t]*$",
                        re.M | re.S)


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
        elif cell.cell_type == "markdown" and (INCLUDE.search(cell.source)
                                               or LITERALINCLUDE.search(cell.source)):
            cell.source = expand_includes(cell.source, page.parent)
    return notebook


def expand_includes(markdown: str, folder: Path) -> str:
    """``markdown`` with each ```` ```{include} path ```` block replaced by that file's text
    (path relative to ``folder``), and each admonition around an include turned into a bold
    title followed by the included text."""

    def unwrap(match: re.Match) -> str:
        body = match[4]
        return f"**{match[2].strip()}**\n\n{body.strip()}" if INCLUDE.search(body) else match[0]

    def include(match: re.Match) -> str:
        target = folder / match[2]
        if not target.is_file():
            raise FileNotFoundError(f"{{include}} target {target} does not exist")
        return target.read_text(encoding="utf-8").strip()

    def literalinclude(match: re.Match) -> str:
        target = folder / match[2]
        if not target.is_file():
            raise FileNotFoundError(f"{{literalinclude}} target {target} does not exist")
        options = dict(re.findall(r":([\w-]+):[ \t]*([^\n]*)", match[3]))
        source = target.read_text(encoding="utf-8")
        if "pyobject" in options:
            source = python_object_source(source, options["pyobject"].strip())
        caption = f"*{options['caption'].strip()}*\n\n" if "caption" in options else ""
        return f"{caption}```python\n{source.rstrip()}\n```"

    markdown = LITERALINCLUDE.sub(literalinclude, markdown)
    return INCLUDE.sub(include, ADMONITION.sub(unwrap, markdown)).rstrip()


def python_object_source(source: str, name: str) -> str:
    """The source of the class, function or method ``name`` (dotted, e.g. ``Model.forward``)
    in the Python ``source``, as Sphinx's ``literalinclude :pyobject:`` shows it."""
    body = ast.parse(source).body
    node = None
    for part in name.split("."):
        node = next((n for n in body if isinstance(n, (ast.ClassDef, ast.FunctionDef))
                     and n.name == part), None)
        if node is None:
            raise ValueError(f"no Python object {name!r} in the included file")
        body = node.body
    lines = source.splitlines()
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    return textwrap.dedent("\n".join(lines[start:node.end_lineno]))


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
