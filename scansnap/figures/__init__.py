"""One function per paper figure, each returning the Figure and the numbers it drew.

Every figure function takes ``quick: bool = False`` (a smaller, faster version for smoke runs)
and ``progress: bool = False`` and returns a :class:`FigureResult`. Chapters draw the figure and
glue numbers from ``result.data``; ``python -m scansnap figure N`` writes ``figN.png`` and
``figN.json``. Figure modules register themselves with :func:`register`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .._validate import check_int


@dataclass
class FigureResult:
    """A paper figure: the matplotlib ``figure`` and the JSON-serializable ``data`` behind it."""

    figure: Figure
    data: dict[str, Any]


FigureFunction = Callable[..., FigureResult]
FIGURES: dict[int, FigureFunction] = {}


def register(number: int) -> Callable[[FigureFunction], FigureFunction]:
    """Register ``function`` as the generator of the paper's figure ``number``."""

    def decorate(function: FigureFunction) -> FigureFunction:
        FIGURES[number] = function
        return function

    return decorate


def make(number: int, *, quick: bool = False, progress: bool = False) -> FigureResult:
    """Compute paper figure ``number``."""
    number = check_int("number", number, low=1)
    if number not in FIGURES:
        raise ValueError(f"number must be one of the regenerated figures {sorted(FIGURES)}, got {number}")
    return FIGURES[number](quick=quick, progress=progress)


def save(result: FigureResult, number: int, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``fig{number}.png`` and ``fig{number}.json`` into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, js = out / f"fig{number}.png", out / f"fig{number}.json"
    result.figure.savefig(png, dpi=120, bbox_inches="tight")
    js.write_text(json.dumps(result.data, indent=1, default=_jsonable))
    return png, js


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


# Figure modules register on import; keep this import last.
from ..chapters import ch6_wikitext  # noqa: E402,F401  (Figs 7 and 10)
from . import phase, tokens, ydynamics  # noqa: E402,F401
