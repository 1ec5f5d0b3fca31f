"""The chapters as an nbgrader course folder (nbgrader 0.9, cell metadata schema 3).

Per chapter, ``source/<chapter>/<chapter>.ipynb`` holds, in the chapter's order:

- read-only cells: a header linking the chapter's page (the reading), the chapter's imports,
  each exercise's statement and the cells that follow its check;
- autograded answer cells: the reference functions, each body between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` (signature, docstring and hint stay for the student);
- autograded test cells: the chapter's check called with ``points=`` (★ 1, ★★ 2, ★★★ 3); its
  value is the points earned (nbgrader's partial credit) and its printed lines — which parts
  pass, and why the others do not — are the student's feedback;
- manually graded answer cells (markdown) for exercises without a check (derivations,
  predictions), holding the reference solution, which ``nbgrader generate_assignment`` replaces
  by "YOUR ANSWER HERE".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat

from .exercises import Exercise, GradedPart, Markdown, SolutionFunction, read_book, split_solution
from .notebooks import SITE, chapter_header, new_notebook, readable, reference_answer

CONFIG = '''\
# nbgrader configuration written by `python -m scansnap coursework nbgrader`.
c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "scansnap"
c.CourseDirectory.assignment_id = ""
# A stub's NotImplementedError is the only error a blank notebook may raise.
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# Each assignment holds only a chapter's exercises: a submission runs in seconds.
c.ExecutePreprocessor.timeout = {timeout}
'''


def write_nbgrader_course(out_dir: str | Path, book: str | Path = "book", *,
                          site: str = SITE, timeout: int = 300) -> list[Path]:
    """Write ``out_dir/nbgrader_config.py`` and ``out_dir/source/<chapter>/<chapter>.ipynb``
    for every chapter of ``book``; return the notebooks' paths."""
    if not (isinstance(timeout, int) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    out = Path(out_dir)
    parts = read_book(book)
    out.mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(CONFIG.format(timeout=timeout), encoding="utf-8")
    written = []
    for part in parts:
        folder = out / "source" / part.name
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{part.name}.ipynb"
        nbformat.write(nbgrader_notebook(part, site=site), target)
        written.append(target)
    return written


def nbgrader_notebook(part: GradedPart, *, site: str = SITE) -> nbformat.NotebookNode:
    """One chapter's nbgrader source notebook."""
    cells = [_cell("markdown", chapter_header(part, site, "nbgrader"), f"{part.name}-header")]
    cells += [_cell("code", source, f"{part.name}-imports-{i}")
              for i, source in enumerate(part.imports)]
    for item in part.items:
        if isinstance(item, Markdown):
            cells.append(_cell("markdown", readable(item.text, part, site),
                               f"{part.name}-text-{len(cells)}"))
        else:
            cells += _exercise_cells(item, lambda text: readable(text, part, site))
    return new_notebook(cells)


def _exercise_cells(exercise: Exercise,
                    readable: Callable[[str], str]) -> list[nbformat.NotebookNode]:
    label = exercise.label
    points = exercise.points
    mark = "point" if points == 1 else "points"
    statement = (f"### Exercise {'★' * exercise.stars} {exercise.title} ({points} {mark}"
                 f"{'' if exercise.autograded else ', graded by hand'})\n\n"
                 f"{readable(exercise.statement)}")
    cells = [_cell("markdown", statement, f"{label}-statement")]
    if exercise.solution_code is not None:
        cells.append(_cell("code", solution_regions(exercise.solution_code), f"{label}-answer",
                           solution=True))
    if exercise.autograded:
        cells.append(_cell("code", exercise.check.call(points=points), f"{label}-check",
                           grade=True, points=points))
    else:
        cells.append(_cell("markdown", readable(reference_answer(exercise)), f"{label}-answer-text",
                           solution=True, grade=True, points=points))
    for kind, source in exercise.after:
        text = source if kind == "code" else readable(source)
        cells.append(_cell(kind, text, f"{label}-after-{len(cells)}"))
    return cells


def solution_regions(source: str) -> str:
    """A solution cell with each function body between nbgrader's solution markers."""
    pieces, _ = split_solution(source)
    if not any(isinstance(piece, SolutionFunction) for piece in pieces):
        return f"### BEGIN SOLUTION\n{source}\n### END SOLUTION"
    lines: list[str] = []
    for piece in pieces:
        if isinstance(piece, SolutionFunction):
            lines += piece.header + [f"{piece.indent}### BEGIN SOLUTION", *piece.body,
                                     f"{piece.indent}### END SOLUTION"]
        else:
            lines.append(piece)
    return "\n".join(lines)


def _cell(kind: str, source: str, grade_id: str, *, solution: bool = False, grade: bool = False,
          points: int = 0) -> nbformat.NotebookNode:
    """A cell with nbgrader metadata: read-only unless it is an answer (``solution``)."""
    cell = (nbformat.v4.new_code_cell(source) if kind == "code"
            else nbformat.v4.new_markdown_cell(source))
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    return cell
