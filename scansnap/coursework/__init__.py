"""Coursework in the grading tools instructors run, generated from the one book source.

- :func:`~scansnap.coursework.nbgrader.write_nbgrader_course`: an nbgrader course folder
  (``nbgrader_config.py``, ``source/<chapter>/<chapter>.ipynb``);
- :func:`~scansnap.coursework.otter.write_otter_assignments`: one Otter-Grader assignment
  notebook per chapter.

An assignment holds what is graded — the chapter's imports cell and its exercise section (read
by :mod:`scansnap.coursework.exercises`), with a link to the chapter's page for the reading — so
grading a submission takes seconds. ``python -m scansnap coursework nbgrader|otter OUT``.
"""

from __future__ import annotations

from pathlib import Path

from .._validate import check_bool, check_out_dir
from .exercises import GradedPart, read_book, read_graded_part
from .nbgrader import write_nbgrader_course
from .otter import write_otter_assignments


def write_assignments(tool: str, out_dir: str | Path, book: str | Path = "book", *,
                      force: bool = False) -> list[Path]:
    """Write every chapter's assignment for ``tool`` (``"nbgrader"`` or ``"otter"``).

    An ``out_dir`` that already holds files is refused unless ``force`` (they may be overwritten).
    """
    writers = {"nbgrader": write_nbgrader_course, "otter": write_otter_assignments}
    if tool not in writers:
        raise ValueError(f"tool must be one of {sorted(writers)}, got {tool!r}")
    check_out_dir("out_dir", out_dir, force=check_bool("force", force))
    return writers[tool](out_dir, book)


__all__ = ["GradedPart", "read_book", "read_graded_part", "write_assignments",
           "write_nbgrader_course", "write_otter_assignments"]
