"""Pieces both exports share: the assignment's header cell, the notebook, the reference answer
of an exercise graded by hand."""

from __future__ import annotations

import re

import nbformat

from .exercises import Exercise, GradedPart

#: The published book (the chapter pages are ``<SITE>/book/<chapter>.html``); a placeholder
#: until the repository is published, like the launch buttons (see the README).
SITE = "https://scansnap-book.github.io/scansnap-book"


def chapter_header(part: GradedPart, site: str, tool: str) -> str:
    """The assignment's first cell: what it is, where the reading is, how it is graded."""
    auto = sum(e.points for e in part.exercises if e.autograded)
    hand = part.points - auto
    return (f"# {part.title} — exercises\n\n"
            f"The reading for this assignment is the chapter's page: "
            f"[{part.title}]({site.rstrip('/')}/book/{part.name}.html). "
            "This notebook holds only what is graded: the chapter's imports and its exercises "
            "(run the imports cell first).\n\n"
            f"Points: ★ 1, ★★ 2, ★★★ 3 — {part.points} in all, {auto} checked automatically "
            f"({tool}), {hand} graded by hand. A check prints which parts of an exercise pass "
            "and why the others do not; an unfinished function raises `NotImplementedError`.")


_ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<target>[^`]*)`")


def readable(text: str, part: GradedPart, site: str) -> str:
    """MyST roles as plain Markdown (Jupyter does not render them): theorem references and
    pages become links to the book, a glued number points to the chapter's page."""
    page = f"{site.rstrip('/')}/book/{part.name}.html"

    def plain(match: re.Match[str]) -> str:
        role, target = match["role"], match["target"]
        if role == "prf:ref":
            return f"[{target}]({page}#{target})"
        if role == "doc":
            return f"[{target}]({site.rstrip('/')}/book/{target}.html)"
        if role == "glue:text":
            return f"(the value on [the chapter's page]({page}))"
        return target

    return _ROLE.sub(plain, text)


def new_notebook(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                       "name": "python3"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def reference_answer(exercise: Exercise) -> str:
    """An exercise graded by hand: its reference solution as markdown (prose, then any code of
    the solution as a code block) for the grader."""
    prose = "\n".join(exercise.solution_prose).strip()
    code = "".join(f"\n\n```python\n{source}\n```" for source in exercise.extra_solution_code)
    return f"**Reference solution.** {prose}{code}"
