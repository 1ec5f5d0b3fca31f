"""Execute one book page (a MyST notebook) outside the book build and report each cell's time.

    .venv/bin/python tools/execute_page.py book/ch3_y_dynamics.md [--out executed.ipynb]

For writing a chapter: faster than a whole `jb build`, and it prints where the time goes. The
first failing cell stops the run with its traceback (exit status 1). Any stderr output is
reported too, since the book build treats it as an error, and so is every ``{glue:...}`` reference
of the page that no cell glued (the build would warn) or whose format spec does not apply to the
glued value.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from myst_nb.core.variables import format_plain_text
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--out", type=Path, help="write the executed notebook here")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    nb = jupytext.read(args.page)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(args.page.parent)}})
    start = time.perf_counter()
    status = 0
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t = time.perf_counter()
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                print(f"cell {index} FAILED:\n{error}")
                status = 1
                break
            stderr = [o.get("text", "") for o in cell.get("outputs", [])
                      if o.get("output_type") == "stream" and o.get("name") == "stderr"]
            first = cell.source.strip().splitlines()[0][:70] if cell.source.strip() else ""
            print(f"cell {index:3d} {time.perf_counter() - t:7.2f} s  {first}")
            if stderr:
                print(f"  STDERR (fails the book build): {''.join(stderr)[:500]}")
                status = 1
    print(f"total {time.perf_counter() - start:.1f} s")
    if status == 0:
        problems = glue_problems(args.page.read_text(), nb)
        for problem in problems:
            print(f"GLUE: {problem}")
        status = 1 if problems else 0
    if args.out:
        nbformat.write(nb, args.out)
    return status


GLUE_REFERENCE = re.compile(r"\{glue(?::(\w+))?\}`([^`]+)`")


def glue_problems(source: str, nb: nbformat.NotebookNode) -> list[str]:
    """The page's glue references that no executed cell provides, or whose ``:format`` spec fails
    on the glued value (text glues are checked through their ``text/plain`` repr)."""
    glued: dict[str, str | None] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None:
                glued[name] = output.get("data", {}).get(
                    "application/papermill.record/text/plain")
    problems = []
    for role, reference in GLUE_REFERENCE.findall(source):
        key, _, spec = reference.partition(":")
        if key not in glued:
            problems.append(f"{{glue{':' + role if role else ''}}}`{reference}`: nothing glued "
                            f"as {key!r}")
            continue
        if role == "text" and spec and glued[key] is not None:
            try:
                format_plain_text(glued[key], spec)  # what the build does with it
            except (ValueError, TypeError) as error:
                problems.append(f"{{glue:text}}`{reference}`: {error} (value {glued[key]})")
    return problems


if __name__ == "__main__":
    sys.exit(main())
