"""A chapter's graded part, read from its MyST source: the imports cell and the exercises.

The chapters follow one convention (see :mod:`scansnap.student`): an ``## Exercises`` section
of ```` ```{exercise} ★★ Title ```` directives, each followed by a gated solution
(``{solution-start}`` … ``{solution-end}``) whose code cell tagged ``solution`` holds the
reference functions, then — for a coding exercise — a check cell
``checks.chN.check_name(function)``. An exercise without a check is graded by hand (a
derivation, a prediction). Points are the stars: ★ 1, ★★ 2, ★★★ 3.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import jupytext

from ..student import _FENCE, _HINT, _only_imports, _skip_directive, chapter_sources

_CHECK_CALL = re.compile(
    r"^checks\.(?P<module>ch\d+)\.(?P<check>check_\w+)\((?P<answer>\w+)\)\s*;?\s*$")
_SECTION = re.compile(r"^##\s+(?P<title>.+?)\s*$")


@dataclass
class Check:
    """A check cell ``checks.<module>.<check>(<answer>)``."""

    module: str
    check: str
    answer: str

    def call(self, **options: object) -> str:
        """The check call, with keyword options (``points=2``, ``part="…"``) appended."""
        extra = "".join(f", {key}={value!r}" for key, value in options.items())
        return f"checks.{self.module}.{self.check}({self.answer}{extra})"


@dataclass
class Exercise:
    """One exercise: its statement, the reference solution (prose and code) and its check."""

    label: str
    title: str
    stars: int
    statement: str
    solution_prose: list[str] = field(default_factory=list)
    solution_code: str | None = None
    extra_solution_code: list[str] = field(default_factory=list)
    check: Check | None = None
    after: list[tuple[str, str]] = field(default_factory=list)
    """cells after the solution, as ``("markdown" | "code", source)``: run, not graded"""

    @property
    def points(self) -> int:
        return self.stars

    @property
    def autograded(self) -> bool:
        return self.check is not None


@dataclass
class Markdown:
    """Text of the exercise section outside any exercise."""

    text: str


@dataclass
class GradedPart:
    """What an assignment holds: a chapter's imports and its exercise section, in order."""

    name: str
    title: str
    imports: list[str]
    items: list[Markdown | Exercise]

    @property
    def exercises(self) -> list[Exercise]:
        return [item for item in self.items if isinstance(item, Exercise)]

    @property
    def points(self) -> int:
        return sum(exercise.points for exercise in self.exercises)


def read_graded_part(source: str | Path) -> GradedPart:
    """Parse one chapter's ``.md`` into its :class:`GradedPart` (``ValueError`` when the chapter
    has no ``## Exercises`` section or an exercise breaks the convention)."""
    path = Path(source)
    notebook = jupytext.read(path)
    cells = notebook.cells
    start = next((i for i, cell in enumerate(cells) if cell.cell_type == "markdown"
                  and any(line.strip() == "## Exercises" for line in cell.source.splitlines())),
                 None)
    if start is None:
        raise ValueError(f"{path.name} has no '## Exercises' section")
    title = next((line[2:].strip() for cell in cells if cell.cell_type == "markdown"
                  for line in cell.source.splitlines() if line.startswith("# ")), path.stem)
    imports = [cell.source for cell in cells[:start]
               if cell.cell_type == "code" and _only_imports(cell.source)]
    items: list[Markdown | Exercise] = []
    state = _State()
    first = cells[start].source.splitlines()
    cells = cells[start:]
    cells[0] = cells[0].copy()
    cells[0].source = "\n".join(first[[line.strip() for line in first].index("## Exercises") + 1:])
    for cell in cells:
        if cell.cell_type == "markdown":
            if _read_markdown(cell.source, state, items):
                break  # the next ## section (the summary) ends the exercises
        elif cell.cell_type == "code":
            _read_code(cell, state, items, path)
    exercises = [item for item in items if isinstance(item, Exercise)]
    if not exercises:
        raise ValueError(f"{path.name}: no {{exercise}} directive in its exercise section")
    return GradedPart(path.stem, title, imports, items)


def read_book(book: str | Path) -> list[GradedPart]:
    """The graded part of every chapter ``book/ch*.md``, in order."""
    parts = [read_graded_part(source) for source in chapter_sources(book)]
    if not parts:
        raise ValueError(f"book must be a folder holding the chapters ch*.md, got {book}")
    return parts


@dataclass
class _State:
    exercise: Exercise | None = None
    in_solution: bool = False


def _read_markdown(text: str, state: _State, items: list[Markdown | Exercise]) -> bool:
    """Read one markdown cell; return True at the next ``##`` section."""
    lines = text.splitlines()
    loose: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _FENCE.match(line.strip())
        name = match.group("name") if match else None
        if name == "exercise":
            end = _skip_directive(lines, i, match.group("fence"))
            _flush(loose, items, state)
            state.exercise = _exercise(lines[i:end])
            items.append(state.exercise)
            i = end
            continue
        if name in ("solution-start", "solution-end"):
            state.in_solution = name == "solution-start"
            i = _skip_directive(lines, i, match.group("fence"))
            continue
        if not state.in_solution and _SECTION.match(line):
            _flush(loose, items, state)
            return True
        if state.in_solution:
            if state.exercise is None:
                raise ValueError(f"a solution before any exercise: {line!r}")
            state.exercise.solution_prose.append(line)
        else:
            loose.append(line)
        i += 1
    _flush(loose, items, state)
    return False


def _flush(lines: list[str], items: list[Markdown | Exercise], state: _State) -> None:
    """Text outside solutions: the exercise's own (after its solution) or the section's."""
    text = "\n".join(lines).strip()
    if text and state.exercise is not None:
        state.exercise.after.append(("markdown", text))
    elif text:
        items.append(Markdown(text))
    lines.clear()


def _exercise(block: list[str]) -> Exercise:
    title = block[0].split("}", 1)[1].strip()
    stars = len(re.match(r"^(★*)", title).group(1))
    if not 1 <= stars <= 3:
        raise ValueError(f"an exercise title starts with ★, ★★ or ★★★ (its points), got {title!r}")
    label = next((line.split(":", 2)[2].strip() for line in block[1:-1]
                  if line.startswith(":label:")), "")
    if not label:
        raise ValueError(f"exercise {title!r} has no :label:")
    statement = "\n".join(line for line in block[1:-1] if not re.match(r"^:[\w-]+:", line))
    return Exercise(label, title[stars:].strip(), stars, statement.strip())


def _read_code(cell: dict, state: _State, items: list[Markdown | Exercise], path: Path) -> None:
    exercise = state.exercise
    source = cell.source.strip()
    if exercise is None:
        raise ValueError(f"{path.name}: a code cell before the first exercise: {source[:60]!r}")
    if "solution" in cell.metadata.get("tags", []):
        if exercise.solution_code is not None:
            raise ValueError(f"{path.name}, exercise {exercise.label}: two solution cells")
        exercise.solution_code = source
    elif state.in_solution:
        exercise.extra_solution_code.append(source)
    elif (match := _CHECK_CALL.match(source)) and exercise.check is None:
        exercise.check = Check(match["module"], match["check"], match["answer"])
    else:
        # e.g. a comparison of the student's answer with measurements: part of the exercise,
        # run but not graded
        exercise.after.append(("code", source))


@dataclass
class SolutionFunction:
    """One function of a solution cell: its header (signature, docstring, ``# Hint:``), its
    body, the body's indentation and the hint."""

    header: list[str]
    body: list[str]
    indent: str
    hint: str


def split_solution(source: str) -> tuple[list[str | SolutionFunction], str]:
    """Split a solution cell into the lines outside functions and its functions, in order.

    Returns the pieces and the cell's hint (the first ``# Hint:`` line, or a generic one).
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    hint = next((m.group("hint").strip() for m in map(_HINT.match, lines) if m),
                "complete this function")
    pieces: list[str | SolutionFunction] = []
    cursor = 0
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
        body_nodes = node.body
        if ast.get_docstring(node, clean=False) is not None and len(body_nodes) > 1:
            body_nodes = body_nodes[1:]
        elif ast.get_docstring(node, clean=False) is not None:
            raise ValueError(f"solution function {node.name} has only a docstring")
        body_start = body_nodes[0].lineno - 1
        pieces.extend(lines[cursor:start])
        indent = " " * body_nodes[0].col_offset
        pieces.append(SolutionFunction(lines[start:body_start], lines[body_start:node.end_lineno],
                                       indent, hint))
        cursor = node.end_lineno
    pieces.extend(lines[cursor:])
    return pieces, hint
