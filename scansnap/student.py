"""The student edition: chapters with solutions removed, generated from the one source.

Chapters mark solutions with sphinx-exercise's gated directives (``{solution-start}`` …
``{solution-end}``) or a plain ``{solution}`` block. In the student edition:

- all solution prose and any code inside a solution is removed;
- a code cell tagged ``solution`` becomes a stub: each function keeps its signature and
  docstring, and its body becomes ``raise NotImplementedError(<the "# Hint:" line>)``;
- check cells, which follow the solution block, stay as they are; ``{exercise}`` directives
  become plain markdown headings (Jupyter does not render MyST directives);
- outputs are cleared.

``python -m scansnap student-edition OUT_DIR [--book BOOK]`` writes one ``.ipynb`` per chapter of
the book's source folder ``BOOK`` (default: ``book`` in the current folder, i.e. run it from a
checkout of the repository; the installed package holds no chapters).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat

from ._validate import check_bool, check_out_dir

BOOK = Path("book")  # relative to the current folder: the chapters are not part of the package
_FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\s*\{(?P<name>[\w-]+)\}")
_HINT = re.compile(r"^\s*#\s*Hint:\s*(?P<hint>.+)$")


@dataclass
class Removed:
    """What was taken out of one chapter: solution prose lines and solution code bodies."""

    prose: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    stubs: list[str] = field(default_factory=list)


def chapter_sources(book: str | Path = BOOK) -> list[Path]:
    """The chapters' MyST sources, ``book/ch*.md``, in order."""
    folder = Path(book)
    if not folder.is_dir():
        raise ValueError(f"book must be an existing folder holding the chapters (ch*.md), got "
                         f"{folder.resolve()}: run from the repository's root or pass its book/ "
                         "folder (--book)")
    return sorted(folder.glob("ch[0-9]*.md"))


def student_notebook(source: str | Path) -> tuple[nbformat.NotebookNode, Removed]:
    """The student version of one chapter and a record of what was removed."""
    notebook = jupytext.read(Path(source))
    removed = Removed()
    cells = []
    in_solution = False
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            kept, in_solution = _strip_solution_prose(cell.source, in_solution, removed)
            if kept.strip():
                cell.source = kept
                cells.append(cell)
            continue
        tags = cell.metadata.get("tags", [])
        if "solution" in tags:
            cell.source = _stub(cell.source, removed)
            cell.metadata["tags"] = [t for t in tags if t != "solution"] + ["exercise-stub"]
            cells.append(cell)
        elif in_solution:
            removed.code.append(cell.source)
        else:
            cells.append(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.cells = cells
    notebook.metadata.pop("jupytext", None)
    return notebook, removed


def write_student_edition(out_dir: str | Path, book: str | Path = BOOK, *,
                          force: bool = False) -> list[Path]:
    """Write the student notebook of every chapter into ``out_dir``; return their paths.

    An ``out_dir`` that already holds files (a student's notebooks, say) is refused unless
    ``force``: the notebooks would be overwritten.
    """
    out = check_out_dir("out_dir", out_dir, force=check_bool("force", force))
    sources = chapter_sources(book)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        notebook, _ = student_notebook(source)
        target = out / f"{source.stem}.ipynb"
        nbformat.write(notebook, target)
        written.append(target)
    if not written:
        raise ValueError(f"no chapters (ch*.md) found in {book}")
    return written


def _strip_solution_prose(text: str, in_solution: bool, removed: Removed) -> tuple[str, bool]:
    """Drop gated-solution spans and ``{solution}`` blocks from one markdown cell."""
    kept: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _FENCE.match(line.strip())
        name = match.group("name") if match else None
        if name == "solution-start":
            in_solution = True
            i = _skip_directive(lines, i, match.group("fence"))
            continue
        if name == "solution-end":
            in_solution = False
            i = _skip_directive(lines, i, match.group("fence"))
            continue
        if name == "exercise" and not in_solution:
            end = _skip_directive(lines, i, match.group("fence"))
            kept.extend(_exercise_as_markdown(lines[i:end]))
            i = end
            continue
        if name == "solution" and not in_solution:
            end = _skip_directive(lines, i, match.group("fence"))
            removed.prose.extend(lines[i:end])
            i = end
            continue
        if in_solution:
            removed.prose.append(line)
        else:
            kept.append(line)
        i += 1
    return "\n".join(kept), in_solution


def _exercise_as_markdown(block: list[str]) -> list[str]:
    """An ``{exercise}`` directive as plain markdown (Jupyter does not render MyST directives)."""
    title = block[0].split("}", 1)[1].strip()
    body = [line for line in block[1:-1] if not re.match(r"^:[\w-]+:", line)]
    return [f"### Exercise: {title}" if title else "### Exercise", ""] + body


def _skip_directive(lines: list[str], start: int, fence: str) -> int:
    """Index just past the directive that opens at ``lines[start]`` with ``fence``."""
    for j in range(start + 1, len(lines)):
        if lines[j].strip() == fence:
            return j + 1
    raise ValueError(f"unclosed directive opened by {lines[start]!r}")


def _stub(source: str, removed: Removed) -> str:
    """Replace each function body in a solution cell by ``raise NotImplementedError(hint)``."""
    tree = ast.parse(source)
    lines = source.splitlines()
    hint = next((m.group("hint").strip() for m in map(_HINT.match, lines) if m),
                "complete this function")
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    removed.code.append(source)
    if not functions:
        removed.stubs.append("# your code here")
        return f"# Your answer here.\nraise NotImplementedError({hint!r})\n"
    parts = []
    for function in functions:
        docstring = ast.get_docstring(function, clean=False)
        start = min([function.lineno] + [d.lineno for d in function.decorator_list])
        header = lines[start - 1:function.body[0].lineno - 1]
        body_indent = " " * function.body[0].col_offset
        stub = list(header)
        if docstring is not None:
            first = function.body[0]
            stub += lines[first.lineno - 1:first.end_lineno]
        stub.append(f"{body_indent}raise NotImplementedError({hint!r})")
        parts.append("\n".join(stub))
        removed.stubs.append(parts[-1])
    return "\n\n\n".join(parts) + "\n"


def exercise_section(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The chapter's import cells plus every cell from its first exercise on.

    Exercises are self-contained by convention (they use only the imports cell and their own
    cells), so this is what a student's run of the exercises needs — without re-running the
    chapter's experiments.
    """
    first = next((i for i, cell in enumerate(notebook.cells)
                  if cell.cell_type == "markdown" and "### Exercise" in cell.source), None)
    if first is None:
        raise ValueError("the notebook has no exercise (no '### Exercise' heading)")
    imports = [cell for cell in notebook.cells[:first]
               if cell.cell_type == "code" and _only_imports(cell.source)]
    section = nbformat.v4.new_notebook(metadata=notebook.metadata)
    section.cells = imports + notebook.cells[first:]
    return section


def execute_exercises(notebook: nbformat.NotebookNode, timeout: int = 300) -> list[tuple[int, str]]:
    """Run :func:`exercise_section` in a fresh kernel, continuing past errors.

    Returns ``(cell index, error name)`` for every cell that raised.
    """
    from nbclient import NotebookClient

    section = exercise_section(notebook)
    NotebookClient(section, timeout=timeout, allow_errors=True, kernel_name="python3").execute()
    errors = []
    for index, cell in enumerate(section.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                errors.append((index, output.ename))
    return errors


def _only_imports(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics
        return False
    return bool(tree.body) and all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in tree.body)
