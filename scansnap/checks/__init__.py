"""Coursework checks: each takes a student's function or object, compares it with the
reference on random and edge-case inputs, and says what differs in words a student can act on.

A check returns a short success message (and prints it) or raises :class:`CheckFailed` whose
message names the case, the input, and what differs (shape, dtype, value at which index, sign,
tolerance). Chapter checks live in ``checks/ch1.py`` … ``ch6.py``; notebooks call
``checks.ch4.check_<name>(student_function)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


class CheckFailed(AssertionError):
    """A student's answer differs from the reference; the message says how."""


@dataclass
class Case:
    """One input to try: a human-readable ``label`` and the call's ``args``/``kwargs``."""

    label: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def compare(
    name: str,
    student: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[Case],
    *,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    slips: Sequence[tuple[Callable[..., Any], str]] = (),
) -> str:
    """Call ``student`` and ``reference`` on every case and compare the outputs.

    Outputs may be numbers, numpy arrays, torch tensors or tuples of them. The first
    difference raises :class:`CheckFailed` with an actionable message. ``slips`` names known
    mistakes: ``(wrong, explanation)`` pairs, where ``wrong`` takes the reference's arguments and
    computes the mistaken answer; when a case differs from the reference but matches ``wrong``,
    the message is ``explanation`` instead of the generic difference.
    """
    if not callable(student):
        raise CheckFailed(f"{name}: expected a function, got {type(student).__name__}")
    for case in cases:
        try:
            got = student(*case.args, **case.kwargs)
        except NotImplementedError:
            raise  # an unfinished stub: the student edition expects exactly this error
        except Exception as error:  # the student's code failing is information, not a crash
            raise CheckFailed(
                f"{name} raised {type(error).__name__}: {error} — on case '{case.label}'"
            ) from error
        expected = reference(*case.args, **case.kwargs)
        try:
            _compare_values(name, case.label, got, expected, rtol, atol)
        except CheckFailed as mismatch:
            for wrong, explanation in slips:
                try:
                    _compare_values(name, case.label, got, wrong(*case.args, **case.kwargs),
                                    rtol, atol)
                except CheckFailed:
                    continue
                raise CheckFailed(f"{name}, case '{case.label}': your answer differs from the "
                                  f"reference and matches a known mistake: {explanation}") from None
            raise
    message = f"✓ {name}: all {len(cases)} cases match the reference (rtol={rtol:g}, atol={atol:g})"
    print(message)
    return message


def _compare_values(name: str, label: str, got: Any, expected: Any, rtol: float, atol: float) -> None:
    where = f"{name}, case '{label}'"
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise CheckFailed(f"{where}: expected a tuple of {len(expected)} values, got "
                              f"{type(got).__name__}" + (f" of {len(got)}" if isinstance(got, (tuple, list)) else ""))
        for i, (g, e) in enumerate(zip(got, expected)):
            _compare_values(name, f"{label}, output {i}", g, e, rtol, atol)
        return
    expected_array = _as_array(expected)
    try:
        got_array = _as_array(got)
    except (TypeError, ValueError):
        raise CheckFailed(f"{where}: expected a number or array, got {type(got).__name__}") from None
    if got_array.shape != expected_array.shape:
        raise CheckFailed(f"{where}: your output has shape {got_array.shape}, the reference "
                          f"has shape {expected_array.shape}")
    if not np.all(np.isfinite(got_array)) and np.all(np.isfinite(expected_array)):
        raise CheckFailed(f"{where}: your output contains NaN or inf (look for exp overflow "
                          "or division by zero)")
    close = np.isclose(got_array, expected_array, rtol=rtol, atol=atol)
    if close.all():
        return
    index = tuple(int(i) for i in np.argwhere(~close)[0])
    g, e = got_array[index], expected_array[index]
    hint = ""
    if np.allclose(got_array, -expected_array, rtol=rtol, atol=atol):
        hint = " — every entry has the opposite sign: check the sign convention (ascent vs descent)"
    elif e != 0 and g != 0 and math.isfinite(g / e) and np.allclose(got_array * (e / g), expected_array, rtol=rtol, atol=atol):
        hint = f" — off by a constant factor (expected = {e / g:.4g} × yours): check a normalization"
    at = f" at index {index}" if index else ""
    raise CheckFailed(f"{where}: value{at} is {g:.6g}, expected {e:.6g} "
                      f"({int((~close).sum())} of {close.size} entries differ beyond rtol={rtol:g}, "
                      f"atol={atol:g}){hint}")


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    array = np.asarray(value, dtype=np.float64)
    return array


__all__ = ["Case", "CheckFailed", "compare", "ch1", "ch2", "ch3", "ch4", "ch5", "ch6"]

# Chapter modules use the framework above; keep this import last.
from . import ch1, ch2, ch3, ch4, ch5, ch6  # noqa: E402
