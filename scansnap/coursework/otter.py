"""The chapters as Otter-Grader assignment notebooks (Otter 7, the v1 notebook format).

Per chapter, ``<chapter>.ipynb`` holds an assignment-config cell, a header linking the chapter's
page (the reading), the chapter's imports and one question per exercise:

- an autograded question for each coding exercise: the reference functions with each body
  between ``# BEGIN SOLUTION NO PROMPT`` and ``# END SOLUTION`` and a prompt block that leaves
  the student ``raise NotImplementedError(<hint>)``; then one exception-based test case per part
  of the exercise, each calling the chapter's check for that part, so the question's points
  (★ 1, ★★ 2, ★★★ 3) are shared among its parts and a failing part's explanation is the
  test's message;
- a manually graded question for each exercise without a check, its reference answer in a
  solution block.

``otter assign <chapter>.ipynb dist/`` turns it into the student and autograder versions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import nbformat

from ..checks import parts_of
from .exercises import Exercise, GradedPart, Markdown, SolutionFunction, read_book, split_solution
from .notebooks import SITE, chapter_header, new_notebook, readable, reference_answer

#: What Otter Generate installs in the grading image (Gradescope): the package, from the
#: repository (placeholder until published), and the imports cells' one extra.
REQUIREMENTS = ("scansnap @ git+https://github.com/scansnap-book/scansnap-book", "myst-nb==1.4.0")


def write_otter_assignments(out_dir: str | Path, book: str | Path = "book", *,
                            site: str = SITE) -> list[Path]:
    """Write ``out_dir/<chapter>.ipynb``, one Otter assignment per chapter of ``book``."""
    out = Path(out_dir)
    parts = read_book(book)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for part in parts:
        target = out / f"{part.name}.ipynb"
        nbformat.write(otter_notebook(part, site=site), target)
        written.append(target)
    return written


def otter_notebook(part: GradedPart, *, site: str = SITE) -> nbformat.NotebookNode:
    """One chapter's Otter assignment notebook."""
    requirements = "".join(f"\n  - {line}" for line in REQUIREMENTS)
    config = (f"# ASSIGNMENT CONFIG\nname: {part.name}\ninit_cell: true\ncheck_all_cell: false\n"
              f"export_cell:\n  pdf: false\n  run_tests: false\nrequirements:{requirements}\n"
              "tests:\n  files: false\n  ok_format: false\n")
    header = chapter_header(part, site, "Otter-Grader")
    cells = [_raw(config), nbformat.v4.new_markdown_cell(header)]
    cells += [nbformat.v4.new_code_cell(source) for source in part.imports]
    for item in part.items:
        if isinstance(item, Markdown):
            cells.append(nbformat.v4.new_markdown_cell(readable(item.text, part, site)))
        else:
            cells += _question(item, lambda text: readable(text, part, site))
    return new_notebook(cells)


def question_name(exercise: Exercise) -> str:
    """The exercise's label as an Otter question name (``ch1-ex-counts`` → ``ch1_ex_counts``)."""
    return exercise.label.replace("-", "_")


def _question(exercise: Exercise,
              readable: Callable[[str], str]) -> list[nbformat.NotebookNode]:
    manual = "" if exercise.autograded else "manual: true\n"
    cells = [_raw(f"# BEGIN QUESTION\nname: {question_name(exercise)}\n"
                  f"points: {exercise.points}\n{manual}"),
             nbformat.v4.new_markdown_cell(
                 f"### Exercise {'★' * exercise.stars} {exercise.title}\n\n"
                 f"{readable(exercise.statement)}")]
    if exercise.solution_code is not None:
        cells += [_raw("# BEGIN SOLUTION"),
                  nbformat.v4.new_code_cell(solution_with_prompt(exercise.solution_code)),
                  _raw("# END SOLUTION")]
    if exercise.autograded:
        cells.append(_raw("# BEGIN TESTS"))
        cells += [nbformat.v4.new_code_cell(source) for source in test_sources(exercise)]
        cells.append(_raw("# END TESTS"))
    else:
        cells += [_raw("# BEGIN SOLUTION"),
                  nbformat.v4.new_markdown_cell(readable(reference_answer(exercise))),
                  _raw("# END SOLUTION")]
    cells.append(_raw("# END QUESTION"))
    for kind, source in exercise.after:
        cells.append(nbformat.v4.new_code_cell(source) if kind == "code"
                     else nbformat.v4.new_markdown_cell(readable(source)))
    return cells


def test_sources(exercise: Exercise) -> list[str]:
    """One exception-based Otter test per part of the exercise's check."""
    check = exercise.check
    function = getattr(importlib.import_module(f"scansnap.checks.{check.module}"), check.check)
    sources = []
    for i, part in enumerate(parts_of(function)):
        options = {"part": part} if part else {}
        sources.append(f"def test_{i}({check.answer}):\n"
                       "    from scansnap import checks\n\n"
                       f"    {check.call(**options)}\n")
    return sources


def solution_with_prompt(source: str) -> str:
    """A solution cell in Otter's markup: each function body is the solution (removed in the
    student version), and a prompt block gives the student a stub that raises
    ``NotImplementedError`` with the chapter's hint."""
    pieces, hint = split_solution(source)
    if not any(isinstance(piece, SolutionFunction) for piece in pieces):
        return (f"# BEGIN SOLUTION NO PROMPT\n{source}\n# END SOLUTION\n"
                f'""" # BEGIN PROMPT\nraise NotImplementedError({hint!r})\n""" # END PROMPT')
    lines: list[str] = []
    for piece in pieces:
        if isinstance(piece, SolutionFunction):
            pad = piece.indent
            lines += piece.header + [f"{pad}# BEGIN SOLUTION NO PROMPT", *piece.body,
                                     f"{pad}# END SOLUTION",
                                     f'{pad}""" # BEGIN PROMPT',
                                     f"{pad}raise NotImplementedError({piece.hint!r})",
                                     f'{pad}""" # END PROMPT']
        else:
            lines.append(piece)
    return "\n".join(lines)


def _raw(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_raw_cell(source)
