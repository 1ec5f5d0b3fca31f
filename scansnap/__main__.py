"""Command line: ``python -m scansnap figure N [--out DIR] [--quick]`` and friends."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ._validate import check_out_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scansnap",
        description="Scan and Snap (Tian et al., NeurIPS 2023): regenerate the paper's figures headless.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    figure = commands.add_parser("figure", help="compute a paper figure; write figN.png and figN.json")
    figure.add_argument("number", type=int, help="the paper's figure number")
    figure.add_argument("--out", default=".", help="output folder (default: current folder)")
    figure.add_argument("--quick", action="store_true", help="a smaller, faster version")
    figure.add_argument("--no-progress", action="store_true", help="hide progress bars")
    commands.add_parser("list", help="list the figures that can be regenerated")
    student = commands.add_parser(
        "student-edition", help="write the chapters as student notebooks (solutions removed)")
    student.add_argument("out_dir", help="output folder for the .ipynb files")
    student.add_argument("--book", default="book",
                         help="the book's source folder with ch*.md (default: ./book)")
    student.add_argument("--force", action="store_true",
                         help="write into OUT_DIR even if it already holds files")
    coursework = commands.add_parser(
        "coursework", help="write the chapters' exercises as nbgrader or Otter-Grader assignments")
    coursework.add_argument("tool", choices=["nbgrader", "otter"], help="the grading tool")
    coursework.add_argument("out_dir", help="output folder (nbgrader: the course folder)")
    coursework.add_argument("--book", default="book",
                            help="folder holding the chapters ch*.md (default: book)")
    coursework.add_argument("--force", action="store_true",
                            help="write into OUT_DIR even if it already holds files")
    return parser


def _report_written(write: Callable[[], Iterable[Path]]) -> int:
    """Run a command that writes files: list them, or one error line and exit status 2."""
    try:
        written = list(write())
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "student-edition":
        from .student import write_student_edition

        return _report_written(lambda: write_student_edition(args.out_dir, book=args.book,
                                                             force=args.force))
    if args.command == "coursework":
        from .coursework import write_assignments

        return _report_written(lambda: write_assignments(args.tool, args.out_dir, args.book,
                                                         force=args.force))
    if args.command == "figure":
        try:
            check_out_dir("--out", args.out)  # before the imports and the computation
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    import matplotlib

    matplotlib.use("Agg")
    from . import figures

    if args.command == "list":
        for number in sorted(figures.FIGURES):
            summary = (figures.function(number).__doc__ or "").strip().splitlines()[0:1]
            print(f"figure {number}: {summary[0] if summary else ''}")
        return 0
    try:
        result = figures.make(args.number, quick=args.quick, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as error:  # bad arguments, missing WikiText data
        print(f"error: {error}", file=sys.stderr)
        return 2
    png, js = figures.save(result, args.number, args.out)
    print(f"wrote {png} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
