"""Numbers into the prose: the package glues what a paragraph quotes, so a chapter's hidden
cells call one function instead of keeping books (myst-nb's ``glue``; the page writes
``{glue:text}`prefix_name:.3f``` and formats there)."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Number
from typing import Any

import numpy as np

QUOTABLE = (Number, str)


def glue_numbers(prefix: str, numbers: Mapping[str, Any]) -> Mapping[str, Any]:
    """Glue every number or string of ``numbers`` as ``f"{prefix}_{name}"`` (not displayed);
    other entries (lists, arrays, figures) are skipped. Returns ``numbers``."""
    from myst_nb import glue

    if not isinstance(prefix, str) or not prefix.isidentifier():
        raise ValueError(f"prefix must be an identifier-like string, got {prefix!r}")
    for name, value in numbers.items():
        if isinstance(value, np.generic):  # glued as its repr, "np.float64(0.5)", which the
            value = value.item()  # page's format spec cannot read
        if isinstance(value, QUOTABLE) and not isinstance(value, bool):
            glue(f"{prefix}_{name}", value, display=False)
    return numbers
