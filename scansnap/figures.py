"""The paper's figures, by number: which chapter function regenerates each (used by the CLI).

The registry names functions as ``"module:function"`` strings and imports a chapter only when
its figure is asked for, so ``import scansnap`` (and chapter 1) never loads the language-model
stack. Every figure function takes ``quick: bool = False`` (a smaller, faster version for smoke
runs) and ``progress: bool = False`` and returns a :class:`scansnap.plots.FigureResult`;
``python -m scansnap figure N`` writes ``figN.png`` and ``figN.json``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._validate import check_int
from .plots import FigureResult

_CH3 = "scansnap.chapters.ch3_y_dynamics"
_CH4 = "scansnap.chapters.ch4_fates_of_tokens"
_CH5 = "scansnap.chapters.ch5_phase_transition"
_CH6 = "scansnap.chapters.ch6_wikitext"

#: paper figure number → the chapter function that regenerates it
FIGURES: dict[int, str] = {
    3: f"{_CH5}:fig3", 4: f"{_CH4}:fig4", 5: f"{_CH4}:fig5", 6: f"{_CH5}:fig6",
    7: f"{_CH6}:fig7", 8: f"{_CH3}:fig8", 9: f"{_CH5}:fig9", 10: f"{_CH6}:fig10",
    11: f"{_CH5}:fig11", 12: f"{_CH5}:fig12",
}


def function(number: int) -> Callable[..., FigureResult]:
    """The function that regenerates paper figure ``number`` (its chapter imported now)."""
    number = check_int("number", number, low=1)
    if number not in FIGURES:
        raise ValueError(f"number must be one of the regenerated figures {sorted(FIGURES)}, got {number}")
    module, name = FIGURES[number].split(":")
    return getattr(importlib.import_module(module), name)


def make(number: int, *, quick: bool = False, progress: bool = False) -> FigureResult:
    """Compute paper figure ``number``."""
    return function(number)(quick=quick, progress=progress)


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
