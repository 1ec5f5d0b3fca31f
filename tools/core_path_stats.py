"""Measure how much a reader meets on each chapter's core path (issue 11, CONVENTIONS.md §2).

The core path is what a first-time reader reads top to bottom: every part of the chapter except
the ``## Going deeper: …`` sections, the ``:::{dropdown}`` blocks, and the ``## Exercises``
section (its solutions are dropdowns too). For each chapter it counts

* prose words (math spans, roles' targets and directive option lines removed; a math span
  counts as one word),
* glued numbers (``{glue:text}``, ``{glue}``, ``{glue:figure}`` and ``{glue:math}`` references),
* visible code lines (code cells not tagged remove-cell/hide-cell/hide-input), the longest
  visible code cell, and the widest visible code line.

    python tools/core_path_stats.py book/ch1_setting.md book/ch2_reparameterization.md
    python tools/core_path_stats.py --json book/ch*.md
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

GLUE = re.compile(r"\{glue(?::(?:text|figure|math))?\}`[^`]*`")
DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.S)
INLINE_MATH = re.compile(r"\$[^$\n]+\$")
ROLE = re.compile(r"\{[\w:-]+\}`([^`<]*)(?:<[^`]*>)?`")
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*")
HIDDEN_TAGS = ("remove-cell", "hide-cell", "hide-input", "remove-input")
SKIPPED_SECTIONS = ("going deeper", "exercises")


@dataclass
class PathStats:
    page: str
    words: int
    glued_numbers: int
    visible_code_lines: int
    longest_visible_cell: int
    widest_visible_line: int


def core_path(source: str) -> tuple[list[str], list[list[str]]]:
    """Split a MyST chapter into the core path's prose lines and its visible code cells."""
    prose: list[str] = []
    cells: list[list[str]] = []
    lines = source.split("\n")
    if lines and lines[0] == "---":  # jupytext front matter
        lines = lines[lines.index("---", 1) + 1:]
    skipping_section = False
    dropdown_fence: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        heading = re.match(r"^(#{1,2}) (.*)", line)
        if heading and dropdown_fence is None:
            skipping_section = heading[2].lower().startswith(SKIPPED_SECTIONS)
        if line.startswith("```{code-cell}"):
            index, body, tags = _code_cell(lines, index)
            if not (skipping_section or dropdown_fence or set(tags) & set(HIDDEN_TAGS)):
                cells.append(body)
            continue
        fence = re.match(r"^(:{3,}|`{3,})\{dropdown\}", line)
        if fence and dropdown_fence is None:
            dropdown_fence = fence[1]
        elif dropdown_fence is not None and line.strip() == dropdown_fence:
            dropdown_fence = None
        elif not (skipping_section or dropdown_fence):
            prose.append(line)
        index += 1
    return prose, cells


def _code_cell(lines: list[str], start: int) -> tuple[int, list[str], list[str]]:
    """Parse the code cell opening at ``start``: (index after it, its code lines, its tags)."""
    end = lines.index("```", start + 1)
    body = lines[start + 1:end]
    tags: list[str] = []
    if body and body[0].startswith("---"):  # YAML options block
        close = body.index("---", 1)
        options = "\n".join(body[1:close])
        tags = re.findall(r"[\w-]+", options.split("tags:", 1)[1].split("\n")[0]) if "tags:" in options else []
        body = body[close + 1:]
    while body and body[0].startswith(":"):
        tag_line = re.match(r":tags:\s*\[(.*)\]", body[0])
        if tag_line:
            tags += [t.strip() for t in tag_line[1].split(",")]
        body = body[1:]
    while body and not body[0].strip():
        body = body[1:]
    return end + 1, body, tags


def count_words(prose: list[str]) -> int:
    text = "\n".join(line for line in prose
                     if not re.match(r"^\s*(:[\w-]+:|```|:::|\(.*\)=$)", line))
    text = DISPLAY_MATH.sub(" MATH ", text)
    text = INLINE_MATH.sub(" MATH ", text)
    text = GLUE.sub(" NUMBER ", text)
    text = ROLE.sub(r" \1 ", text)
    return len(WORD.findall(text))


def stats(page: Path) -> PathStats:
    prose, cells = core_path(page.read_text(encoding="utf-8"))
    code = [line for cell in cells for line in cell]
    return PathStats(
        page=page.name,
        words=count_words(prose),
        glued_numbers=len(GLUE.findall("\n".join(prose))),
        visible_code_lines=len(code),
        longest_visible_cell=max((len(cell) for cell in cells), default=0),
        widest_visible_line=max((len(line) for line in code), default=0),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", type=Path, nargs="+")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    rows = [stats(page) for page in args.pages]
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=1))
        return 0
    print(f"{'page':32} {'words':>6} {'glued':>6} {'code':>5} {'cell':>5} {'width':>6}")
    for row in rows:
        print(f"{row.page:32} {row.words:6d} {row.glued_numbers:6d} {row.visible_code_lines:5d} "
              f"{row.longest_visible_cell:5d} {row.widest_visible_line:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
