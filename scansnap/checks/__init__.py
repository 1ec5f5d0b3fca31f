"""Coursework checks: each takes a student's function or object, compares it with the
reference on random and edge-case inputs, and says what differs in words a student can act on.

A check returns a short success message (and prints it) or raises :class:`CheckFailed` whose
message names the case, the input, and what differs (shape, dtype, value at which index, sign,
tolerance, a known mistake). Chapter checks live in ``checks/ch1.py`` … ``ch6.py``; notebooks call
``checks.ch4.check_<name>(student_function)``.

The same checks grade: ``check_<name>(student, points=2)`` never raises :class:`CheckFailed`;
it prints one line of feedback per part of the exercise and returns the points earned, a share
of ``points`` per part passed (the number nbgrader reads as partial credit), and
``check_<name>(student, part="…")`` checks one part alone (one Otter test case per part).

A check cannot be fooled or stalled by the student's function: the student's function, the
reference and every known-mistake function each get their own deep copy of a case's inputs, so
changing the inputs in place neither fools nor breaks the comparison; and each call of the
student's function runs under a time limit (:data:`TIME_LIMIT` seconds, see
:func:`call_student`).
"""

from __future__ import annotations

import copy
import importlib
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Complex, Real
from typing import Any

import numpy as np
import torch

#: Seconds one call of a student's function may take before the check gives up on it.
TIME_LIMIT = 10.0


class CheckFailed(AssertionError):
    """A student's answer differs from the reference; the message says how."""


class _TimeUp(BaseException):
    """Raised inside the student's code by the alarm; a BaseException so that a student's
    ``except Exception`` cannot swallow it."""


@dataclass
class Case:
    """One input to try: a human-readable ``label`` and the call's ``args``/``kwargs``.

    ``part`` names the part of the exercise the case tests (partial credit is given per part);
    ``output`` selects one output of a function that returns a tuple (``None``: all of them).
    """

    label: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    part: str = ""
    output: int | None = None


def call_student(name: str, student: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any] | None = None, *, label: str = "",
                 time_limit: float | None = None) -> Any:
    """Call ``student`` on deep copies of ``args``/``kwargs`` under a time limit.

    An unfinished stub's ``NotImplementedError`` passes through; any other error, and running
    past ``time_limit`` seconds (default :data:`TIME_LIMIT`), becomes :class:`CheckFailed`.

    Why an alarm signal: a pure-Python infinite loop can only be stopped from outside by an
    exception raised *in* that loop. ``signal.setitimer`` on the main thread does exactly that
    (the handler runs between bytecodes and raises), costs nothing, needs no pickling of the
    student's function (defined in a notebook) and no ``fork`` (unsafe after torch has started
    its thread pool). Notebook kernels, nbgrader, Otter and pytest all run cells on the main
    thread of a POSIX process. Where there is no main-thread alarm (Windows, or a check called
    from a worker thread), the call runs in a daemon thread that is abandoned at the time limit:
    the check still reports the timeout, but the abandoned loop keeps a core busy until the
    kernel restarts — the message says so.
    """
    limit = TIME_LIMIT if time_limit is None else float(time_limit)
    if not (limit > 0 and math.isfinite(limit)):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    args, kwargs = copy.deepcopy((tuple(args), dict(kwargs or {})))
    on_case = f" — on case '{label}'" if label else ""
    timeout = CheckFailed(f"{name} did not return within {limit:g} s{on_case}: look for a loop "
                          "that never ends (a `while` whose condition never changes) or work "
                          "that grows much faster than the inputs")
    try:
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            return _call_with_alarm(student, args, kwargs, limit)
        return _call_in_thread(student, args, kwargs, limit, timeout)
    except NotImplementedError:
        raise  # an unfinished stub: the student edition expects exactly this error
    except _TimeUp:
        raise timeout from None
    except CheckFailed:
        raise
    except Exception as error:  # the student's code failing is information, not a crash
        raise CheckFailed(f"{name} raised {type(error).__name__}: {error}{on_case}") from error


def _call_with_alarm(student: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                     limit: float) -> Any:
    def time_up(signum: int, frame: Any) -> None:
        raise _TimeUp

    previous = signal.signal(signal.SIGALRM, time_up)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, limit)
    start = time.monotonic()
    try:
        return student(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:  # an alarm someone else had set (e.g. a test timeout) keeps running
            remaining = max(outer_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, outer_interval)


def _call_in_thread(student: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                    limit: float, timeout: CheckFailed) -> Any:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = student(*args, **kwargs)
        except BaseException as error:  # handed back to the caller's thread below
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise CheckFailed(f"{timeout} (the unfinished call keeps running in the background "
                          "until you restart the kernel)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def compare(
    name: str,
    student: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[Case],
    *,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    slips: Sequence[tuple[Callable[..., Any], str]] = (),
    reminder: str = "",
    time_limit: float | None = None,
    points: float | None = None,
    part: str | None = None,
) -> Any:
    """Call ``student`` and ``reference`` on every case and compare the outputs.

    Outputs may be numbers, numpy arrays, torch tensors or tuples of them. The first
    difference raises :class:`CheckFailed` with an actionable message; a return of the wrong
    type, shape or dtype, or with NaN/inf, is described as what it is. ``slips`` names known
    mistakes: ``(wrong, explanation)`` pairs, where ``wrong`` takes the reference's arguments and
    computes the mistaken answer; when a case differs from the reference but matches ``wrong``,
    the message is ``explanation`` instead of the generic difference. ``reminder`` is appended
    to every wrong-value message.

    ``part`` runs only the cases of that part. ``points`` switches to grading: nothing is
    raised but a stub's ``NotImplementedError``; one feedback line per part is printed and the
    points earned are returned, ``points × (parts passed) / (parts)``.
    """
    if not callable(student):
        raise CheckFailed(f"{name}: expected a function, got {describe(student)}")
    parts = list(dict.fromkeys(case.part for case in cases))
    if part is not None:
        if part not in parts:
            raise ValueError(f"part must be one of {parts}, got {part!r}")
        cases = [case for case in cases if case.part == part]
        parts = [part]
    if points is None:
        for case in cases:
            _check_case(name, student, reference, case, rtol, atol, slips, reminder, time_limit)
        message = (f"✓ {name}: all {len(cases)} cases match the reference "
                   f"(rtol={rtol:g}, atol={atol:g})")
        print(message)
        return message
    if not (points >= 0 and math.isfinite(points)):
        raise ValueError(f"points must be a finite number >= 0, got {points!r}")
    passed = 0
    for each in parts:
        try:
            for case in (c for c in cases if c.part == each):
                _check_case(name, student, reference, case, rtol, atol, slips, reminder,
                            time_limit)
        except CheckFailed as failure:
            print(f"✗ {_part_title(name, each)}: {failure}")
            continue
        passed += 1
        print(f"✓ {_part_title(name, each)}: matches the reference")
    earned = points * passed / len(parts)
    print(f"{name}: {passed} of {len(parts)} part(s) correct, {earned:g} of {points:g} points")
    return earned


def parts_of(check: Callable[..., Any]) -> tuple[str, ...]:
    """The parts of a chapter check, in order (``("",)``: one part), from its module's
    ``PARTS`` table: what ``check(student, part=…)`` accepts."""
    module = importlib.import_module(check.__module__)
    return tuple(getattr(module, "PARTS", {}).get(check.__name__, ("",)))


def grade_failure(name: str, failure: CheckFailed, points: float) -> float:
    """Grading mode for a check that failed before its comparison (e.g. a diagnosis): the
    feedback line and zero points."""
    print(f"✗ {name}: {failure}")
    print(f"{name}: 0 of {points:g} points")
    return 0.0


def _part_title(name: str, part: str) -> str:
    return f"{name} — {part}" if part else name


def _check_case(name: str, student: Callable[..., Any], reference: Callable[..., Any], case: Case,
                rtol: float, atol: float, slips: Sequence[tuple[Callable[..., Any], str]],
                reminder: str, time_limit: float | None) -> None:
    got = call_student(name, student, case.args, case.kwargs, label=case.label,
                       time_limit=time_limit)
    expected = _own_copy_call(reference, case)
    if case.output is not None:
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise CheckFailed(f"{name}, case '{case.label}': {_tuple_wanted(len(expected))}, "
                              f"you returned {describe(got)}")
        got, expected = got[case.output], expected[case.output]
    label = case.label if case.output is None else f"{case.label}, output {case.output}"
    try:
        _compare_values(name, label, got, expected, rtol, atol)
    except _WrongValue as mismatch:
        for wrong, explanation in slips:
            mistaken = _own_copy_call(wrong, case)
            if case.output is not None:
                mistaken = mistaken[case.output]
            try:
                _compare_values(name, label, got, mistaken, rtol, atol)
            except CheckFailed:
                continue
            raise CheckFailed(f"{name}, case '{case.label}': your answer differs from the "
                              f"reference and matches a known mistake: {explanation}") from None
        raise CheckFailed(f"{mismatch}\n{reminder}" if reminder else str(mismatch)) from None


def _own_copy_call(function: Callable[..., Any], case: Case) -> Any:
    args, kwargs = copy.deepcopy((case.args, case.kwargs))
    return function(*args, **kwargs)


class _WrongValue(CheckFailed):
    """The student returned a well-formed answer whose values differ."""


def describe(value: Any) -> str:
    """What a value is, in the words of a message to a student: ``None``, a string, a float32
    tensor of shape (3, 4), …"""
    if value is None:
        return "None (did the function forget to `return` its result?)"
    if isinstance(value, str):
        return f"a string {value[:40]!r}"
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a numpy {value.dtype} array of shape {value.shape}"
    if isinstance(value, (bool, np.bool_)):
        return f"the bool {value}"
    if isinstance(value, (Real, Complex, np.generic)):
        return f"the {type(value).__name__} {value!r}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} values"
    return f"a {type(value).__name__}"


def _compare_values(name: str, label: str, got: Any, expected: Any, rtol: float,
                    atol: float) -> None:
    where = f"{name}, case '{label}'"
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise CheckFailed(f"{where}: {_tuple_wanted(len(expected))}, you returned "
                              f"{describe(got)}")
        for i, (g, e) in enumerate(zip(got, expected)):
            _compare_values(name, f"{label}, output {i}", g, e, rtol, atol)
        return
    expected_array = _as_array(expected)
    got_array = _student_array(where, got, expected, expected_array)
    if got_array.shape != expected_array.shape:
        raise CheckFailed(f"{where}: you returned {describe(got)}; the reference has shape "
                          f"{expected_array.shape}")
    finite = np.isfinite(got_array)
    if not finite.all() and np.isfinite(expected_array).all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        at = f" (first at index {index})" if index else ""
        raise CheckFailed(f"{where}: your output contains {int((~finite).sum())} NaN or inf "
                          f"value(s){at}: look for exp overflow, log of 0 or division by zero")
    close = np.isclose(got_array, expected_array, rtol=rtol, atol=atol)
    if close.all():
        return
    index = tuple(int(i) for i in np.argwhere(~close)[0])
    g, e = got_array[index], expected_array[index]
    hint = ""
    if np.allclose(got_array, -expected_array, rtol=rtol, atol=atol):
        hint = " — every entry has the opposite sign: check the sign convention (ascent vs descent)"
    elif (e != 0 and g != 0 and math.isfinite(g / e)
          and np.allclose(got_array * (e / g), expected_array, rtol=rtol, atol=atol)):
        hint = (f" — off by a constant factor (expected = {e / g:.4g} × yours): check a "
                "normalization")
    at = f" at index {index}" if index else ""
    raise _WrongValue(f"{where}: value{at} is {g:.10g}, expected {e:.10g} "
                      f"({int((~close).sum())} of {close.size} entries differ beyond "
                      f"rtol={rtol:g}, atol={atol:g}){hint}")


def _tuple_wanted(length: int) -> str:
    together = "return the pair" if length == 2 else f"return all {length}"
    return f"expected a tuple of {length} values ({together} at once: `return a, b`)"


def _student_array(where: str, got: Any, expected: Any, expected_array: np.ndarray) -> np.ndarray:
    """The student's output as float64, or CheckFailed saying plainly what it is instead."""
    if got is None or isinstance(got, (str, bytes, dict, set)) or callable(got):
        raise CheckFailed(f"{where}: you returned {describe(got)}; expected {_kind(expected)}")
    if isinstance(got, torch.Tensor):
        dtype = got.dtype
        if dtype.is_complex:
            raise CheckFailed(f"{where}: you returned {describe(got)} (complex values); the "
                              "answer is real: look for a log or sqrt of a negative number")
        if not dtype.is_floating_point and _is_floating(expected):
            raise CheckFailed(f"{where}: you returned {describe(got)}; the answer has "
                              "fractional values: compute in float64 (integer or bool dtypes "
                              "truncate)")
        if dtype in (torch.float32, torch.float16, torch.bfloat16) and _is_float64(expected):
            raise CheckFailed(f"{where}: you returned {describe(got)}; the inputs are float64 "
                              "and so is the answer: a lower-precision step (e.g. "
                              "torch.tensor(..., dtype=torch.float32) or .float()) loses the "
                              "precision the check needs")
        return got.detach().cpu().to(torch.float64).numpy()
    try:
        array = np.asarray(got)
    except Exception:  # an object numpy cannot turn into an array
        raise CheckFailed(f"{where}: you returned {describe(got)}; expected "
                          f"{_kind(expected)}") from None
    if array.dtype.kind == "c":
        raise CheckFailed(f"{where}: you returned {describe(got)} (complex values); the answer "
                          "is real: look for a log or sqrt of a negative number")
    if array.dtype.kind not in "fiub":
        raise CheckFailed(f"{where}: you returned {describe(got)}; expected {_kind(expected)}")
    if array.dtype.kind in "iub" and _is_floating(expected) and isinstance(got, np.ndarray):
        raise CheckFailed(f"{where}: you returned {describe(got)}; the answer has fractional "
                          "values: compute in float64 (integer or bool dtypes truncate)")
    if array.dtype in (np.float32, np.float16) and _is_float64(expected):
        raise CheckFailed(f"{where}: you returned {describe(got)}; the inputs are float64 and "
                          "so is the answer: a lower-precision step loses the precision the "
                          "check needs")
    return array.astype(np.float64)


def _kind(expected: Any) -> str:
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        return describe(expected)
    return "a number (a float)"


def _is_floating(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dtype.is_floating_point
    return np.asarray(value).dtype.kind == "f"


def _is_float64(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dtype == torch.float64
    return isinstance(value, np.ndarray) and value.dtype == np.float64


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


__all__ = ["TIME_LIMIT", "Case", "CheckFailed", "call_student", "compare", "describe",
           "grade_failure", "parts_of", "ch1", "ch2", "ch3", "ch4", "ch5", "ch6"]

# Chapter modules use the framework above; keep this import last.
from . import ch1, ch2, ch3, ch4, ch5, ch6  # noqa: E402
