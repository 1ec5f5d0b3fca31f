"""Every chapter check, tried as a student would (issue 15, item 4).

For each check: the chapter's own reference solution (the book's solution cell, a separate
implementation from the package function the check compares with) passes; a near miss — off by
ten times the check's rtol — is rejected, and the same near miss passes
when the check's rtol is loosened 1000×, so these tests pin every tolerance; each diagnosed
mistake is named. And no check can be fooled or stalled: inputs changed in place, an endless
loop, and returns of the wrong type, shape, dtype or with NaN get plain messages.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from scansnap import checks, decompose, lm, theory
from scansnap.checks import CheckFailed, ch1, ch2, ch3, ch4, ch5, ch6
from scansnap.coursework import read_book

BOOK = Path(__file__).resolve().parent.parent / "book"


def _book_solutions() -> dict[str, Any]:
    """The reference functions of every chapter's solution cells, run from the book's source
    with the chapter's imports (what a student's correct answer looks like)."""
    found: dict[str, Any] = {}
    for part in read_book(BOOK):
        namespace: dict[str, Any] = {}
        for source in part.imports:
            exec(source, namespace)  # noqa: S102 (the book's own cells)
        for exercise in part.exercises:
            if exercise.solution_code:
                exec(exercise.solution_code, namespace)  # noqa: S102
                found[exercise.check.check] = namespace[exercise.check.answer]
    return found


SOLUTIONS = _book_solutions()

CHECKS = {"check_attention_from_counts": ch1, "check_predicted_l1_gap": ch1,
          "check_yz_from_full": ch2, "check_grad_z_row": ch2, "check_h_star": ch3,
          "check_backprop_gradient": ch3, "check_relative_gain": ch4, "check_tfidf": ch4,
          "check_snap_time": ch5, "check_B": ch5, "check_fig6_entropy": ch5,
          "check_causal_attention": ch6}
NEAR = 10.0  # a near miss is off by NEAR × the check's rtol: rejected, but within 1000 × rtol


def _check(name: str):
    return getattr(CHECKS[name], name)


def _map(value: Any, fn) -> Any:
    if isinstance(value, (tuple, list)):
        return type(value)(_map(v, fn) for v in value)
    return fn(value)


def _nudged(solution, relative: float):
    """The solution times (1 + relative): close, but not within the check's tolerance."""
    def student(*args):
        return _map(solution(*args), lambda v: v * (1.0 + relative))
    return student


def _rtol_of(name: str, monkeypatch) -> float:
    seen = []
    module = CHECKS[name]
    original = module.compare

    def spy(*args, **kwargs):
        seen.append(kwargs["rtol"])
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "compare", spy)
    _check(name)(SOLUTIONS[name])
    monkeypatch.setattr(module, "compare", original)
    return seen[0]


def test_every_check_has_its_book_solution():
    assert sorted(SOLUTIONS) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_book_solution_passes(name):
    assert "✓" in _check(name)(SOLUTIONS[name])


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_near_miss_is_rejected_and_pins_the_tolerance(name, monkeypatch):
    module = CHECKS[name]
    near = _nudged(SOLUTIONS[name], NEAR * _rtol_of(name, monkeypatch))
    with pytest.raises(CheckFailed, match="differ beyond rtol"):
        _check(name)(near)
    original = module.compare  # a 1000× looser rtol would let the near miss through

    def loose(*args, **kwargs):
        return original(*args, **{**kwargs, "rtol": 1000 * kwargs["rtol"]})

    monkeypatch.setattr(module, "compare", loose)
    assert "✓" in _check(name)(near)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_inputs_changed_in_place_neither_fool_nor_break_the_check(name):
    """A student's function that zeroes its input tensors and returns what the book's solution
    gives on the zeroed inputs (the 'matching wrong answer') fails; the correct answer followed
    by scribbling NaN over the inputs passes."""
    solution = SOLUTIONS[name]

    def tensors(args):
        return [a for a in args if (isinstance(a, torch.Tensor) and a.is_floating_point())
                or (isinstance(a, np.ndarray) and a.dtype.kind == "f")]

    def fooling(*args):
        for a in tensors(args):
            a[...] = 0
        return solution(*args)

    def messy_but_right(*args):
        out = copy.deepcopy(solution(*args))
        for a in tensors(args):
            a[...] = math.nan
        return out

    assert "✓" in _check(name)(messy_but_right)
    if name in ("check_h_star", "check_snap_time"):
        return  # plain numbers in: nothing to change in place
    with pytest.raises(CheckFailed):
        _check(name)(fooling)


def test_a_correct_answer_computed_in_place_passes():
    def relative_gain(c, l, l_prime):
        c **= 2  # squares the caller's tensor: the check's own copy is untouched
        return c[..., l] / c[..., l_prime] - 1

    assert "✓" in ch4.check_relative_gain(relative_gain)


# --- stalls -----------------------------------------------------------------------------------
def test_an_endless_loop_is_stopped_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(checks, "TIME_LIMIT", 0.5)

    def forever(z_row, counts):
        while True:
            try:
                pass
            except Exception:  # a student's blanket except cannot swallow the time limit
                pass

    start = time.perf_counter()
    with pytest.raises(CheckFailed, match=r"did not return within 0.5 s — on case"):
        ch1.check_attention_from_counts(forever)
    assert time.perf_counter() - start < 5
    assert "✓" in ch1.check_attention_from_counts(SOLUTIONS["check_attention_from_counts"])


def test_the_time_limit_outside_the_main_thread_still_reports():
    outcome = {}

    def run():
        try:
            checks.compare("slow", lambda x: time.sleep(1.5) or x, lambda x: x,
                           [checks.Case("one", (1.0,))], time_limit=0.2)
        except CheckFailed as error:
            outcome["message"] = str(error)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert "did not return within 0.2 s" in outcome["message"]
    assert "keeps running in the background" in outcome["message"]


def test_bad_time_limit():
    with pytest.raises(ValueError, match="time_limit"):
        checks.call_student("f", lambda: 1, (), time_limit=-1)


# --- what the student returned ------------------------------------------------------------------
COUNTS = SOLUTIONS["check_attention_from_counts"]


@pytest.mark.parametrize("student, message", [
    (lambda z, q: None, r"you returned None \(did the function forget to `return`"),
    (lambda z, q: "softmax", r"you returned a string 'softmax'"),
    (lambda z, q: COUNTS(z, q).to(torch.complex128), r"complex128 tensor .*complex values"),
    (lambda z, q: COUNTS(z, q)[..., 1:], r"you returned a float64 tensor of shape \(6, 33\); "
                                         r"the reference has shape \(6, 34\)"),
    (lambda z, q: COUNTS(z, q).float(), r"you returned a float32 tensor .* lower-precision"),
    (lambda z, q: (q > 0).long(), r"you returned a int64 tensor .* fractional values"),
    (lambda z, q: COUNTS(z, q) * math.nan, r"contains \d+ NaN or inf value\(s\) \(first at index"),
    (lambda z, q: [1.0, 2.0], r"you returned a list of 2 values; the reference has shape"),
])
def test_wrong_kinds_of_return_are_described(student, message):
    with pytest.raises(CheckFailed, match=message):
        ch1.check_attention_from_counts(student)


@pytest.mark.parametrize("student, message", [
    (lambda p, z, T: None, "you returned None"),
    (lambda p, z, T: "0.1", "you returned a string '0.1'; expected a number"),
    (lambda p, z, T: complex(0.1, 0.2), "complex values"),
    (lambda p, z, T: torch.zeros(3, dtype=torch.float64),
     r"shape \(3,\); the reference has shape \(\)"),
])
def test_a_number_check_describes_wrong_returns(student, message):
    with pytest.raises(CheckFailed, match=message):
        ch1.check_predicted_l1_gap(student)


def test_a_tuple_check_describes_a_single_return():
    with pytest.raises(CheckFailed, match=r"expected a tuple of 2 values \(return the pair"):
        ch2.check_yz_from_full(lambda U, q, k, v: U @ v.T @ U.T)


def test_an_error_in_the_student_code_is_reported_not_raised():
    with pytest.raises(CheckFailed, match=r"h_star raised ZeroDivisionError: .* — on case"):
        ch3.check_h_star(lambda s, M, eta_y: 1 / 0)
    with pytest.raises(NotImplementedError):  # a stub is not a wrong answer
        ch3.check_h_star(lambda s, M, eta_y: (_ for _ in ()).throw(NotImplementedError("stub")))


def test_a_non_function_is_described():
    with pytest.raises(CheckFailed, match="expected a function, got a float64 tensor"):
        ch6.check_causal_attention(torch.zeros(2, dtype=torch.float64))


# --- partial credit ---------------------------------------------------------------------------
def test_partial_credit_per_part_with_feedback(capsys):
    def naive(z_row, counts):  # right weights, right zeros, but exp overflows
        w = counts * torch.exp(z_row)
        return w / w.sum(-1, keepdim=True)

    assert ch1.check_attention_from_counts(naive, points=3) == pytest.approx(2.0)
    printed = capsys.readouterr().out
    assert "✓ attention_from_counts — the weights" in printed
    assert "✓ attention_from_counts — absent tokens get weight 0" in printed
    assert "✗ attention_from_counts — logits in the hundreds do not overflow" in printed
    assert "NaN or inf" in printed and "2 of 3 part(s) correct, 2 of 3 points" in printed
    assert ch1.check_attention_from_counts(COUNTS, points=3) == 3.0
    with pytest.raises(NotImplementedError):  # grading a stub: the error nbgrader scores 0
        ch1.check_attention_from_counts(
            lambda z, q: (_ for _ in ()).throw(NotImplementedError()), points=3)


def test_one_part_alone_and_the_parts_table():
    for name in CHECKS:
        check = _check(name)
        parts = checks.parts_of(check)
        for part in parts:
            if part:
                assert "✓" in check(SOLUTIONS[name], part=part)
        assert check(SOLUTIONS[name], points=len(parts)) == len(parts)
    with pytest.raises(ValueError, match="part must be one of"):
        ch2.check_yz_from_full(SOLUTIONS["check_yz_from_full"], part="W")
    with pytest.raises(ValueError, match="points must be"):
        ch2.check_yz_from_full(SOLUTIONS["check_yz_from_full"], points=-1)


def test_parts_of_ch2_grade_y_and_z_separately():
    def z_transposed(U, W_Q, W_K, W_V):
        return U @ W_V.T @ U.T, U @ W_K @ W_Q.T @ U.T / math.sqrt(U.shape[1])

    assert ch2.check_yz_from_full(z_transposed, points=1) == 0.5
    assert "✓" in ch2.check_yz_from_full(z_transposed, part=ch2.Y_PART)
    with pytest.raises(CheckFailed, match="output 1"):
        ch2.check_yz_from_full(z_transposed, part=ch2.Z_PART)


def test_multinomial_part_of_the_l1_gap():
    def multinomial_only(p, z, T):  # ignores z: right only at z = 0
        return float(math.sqrt(2 / (math.pi * (T - 1)))
                     * torch.sqrt(p * (1 - p)).sum())

    assert ch1.check_predicted_l1_gap(multinomial_only, points=3) == pytest.approx(1.5)


# --- each diagnosed mistake, named ---------------------------------------------------------------
def test_ch3_reminder_on_a_transposed_gradient():
    with pytest.raises(CheckFailed, match=r"(?s)non-symmetric Y.*Reminder: α_n = softmax"):
        ch3.check_backprop_gradient(lambda Y, f, t: decompose.backprop_gradient(Y.T, f, t))


def test_ch4_reminders():
    with pytest.raises(CheckFailed, match=r"(?s)differ beyond.*Reminder: r compares the \*squares"):
        ch4.check_relative_gain(lambda c, l, lp: c[..., l] / c[..., lp] - 1)
    with pytest.raises(CheckFailed, match=r"(?s)Reminder: a token in every class has idf"):
        ch4.check_tfidf(lambda probs: probs / probs.sum(-1, keepdim=True))


def test_ch5_printed_B_is_named():
    with pytest.raises(CheckFailed, match="known mistake: this is the printed Eqn 129"):
        ch5.check_B(lambda t, M, K, eta_y, eta_z, C0: theory.B_printed(
            t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0))


def test_ch5_fig6_slips_are_named():
    with pytest.raises(CheckFailed, match="known mistake: the entropy of c_n over its whole"):
        ch5.check_fig6_entropy(ch5._entropy_over_whole_support)
    with pytest.raises(CheckFailed, match="known mistake: -Σ c log c over the distinct tokens"):
        ch5.check_fig6_entropy(ch5._entropy_not_renormalized)


def test_generic_hints_sign_and_factor():
    gap = SOLUTIONS["check_grad_z_row"]
    with pytest.raises(CheckFailed, match="opposite sign"):
        ch2.check_grad_z_row(lambda *a: -gap(*a))
    with pytest.raises(CheckFailed, match=r"off by a constant factor \(expected = 0.5 × yours\)"):
        ch5.check_snap_time(lambda M, K, eta_y: 4 * K * math.log(M) / eta_y)


# --- chapter 6: the causal attention check ------------------------------------------------------
def _scores(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])


def test_ch6_accepts_an_independent_correct_implementation():
    def row_by_row(q, k):  # each query's softmax over keys 0..i, one row at a time
        L = q.shape[-2]
        out = torch.zeros(*q.shape[:-1], L, dtype=q.dtype)
        s = _scores(q, k)
        for i in range(L):
            out[..., i, : i + 1] = torch.softmax(s[..., i, : i + 1], dim=-1)
        return out

    assert "✓" in ch6.check_causal_attention(row_by_row)


@pytest.mark.parametrize("student, named", [
    (lambda q, k: torch.softmax(_scores(q, k), dim=-1), "a later position. Mask the keys"),
    (lambda q, k: torch.softmax(_scores(q, k).masked_fill(
        torch.ones(q.shape[-2], q.shape[-2], dtype=torch.bool).triu(0), -math.inf), dim=-1)
        .nan_to_num(0.0), "every query gives itself zero weight"),
    (lambda q, k: torch.softmax(_scores(q, k) + lm.causal_mask(q.shape[-2]).double(), dim=-2)
        .tril(), "your columns sum to 1, not your rows"),
    (lambda q, k: torch.softmax(_scores(q, k) * torch.where(
        torch.ones(q.shape[-2], q.shape[-2], dtype=torch.bool).triu(1), -math.inf, 1.0), dim=-1),
     "your weights contain NaN or inf"),
    (lambda q, k: torch.exp(_scores(q, k) + lm.causal_mask(q.shape[-2]).double()),
     "each row \\(one query\\) must sum to 1"),
    (lambda q, k: torch.softmax(q @ k.transpose(-2, -1) + lm.causal_mask(q.shape[-2]).double(),
                                dim=-1), "must be divided by √d"),
    (lambda q, k: torch.softmax(_scores(q, k) + lm.causal_mask(q.shape[-2]).double(),
                                dim=-1).float(), "return the weights as a float64 torch.Tensor"),
])
def test_ch6_names_each_diagnosed_mistake(student, named):
    with pytest.raises(CheckFailed, match=named):
        ch6.check_causal_attention(student)


def test_ch6_graded_diagnosis_gives_zero_with_feedback(capsys):
    unmasked = lambda q, k: torch.softmax(_scores(q, k), dim=-1)  # noqa: E731
    assert ch6.check_causal_attention(unmasked, points=2) == 0.0
    assert "✗ causal_attention: causal_attention: query" in capsys.readouterr().out
    assert ch6.check_causal_attention(SOLUTIONS["check_causal_attention"], points=2) == 2.0


def test_an_outer_alarm_survives_the_time_limit():
    import signal

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    signal.setitimer(signal.ITIMER_REAL, 0.8)
    try:
        assert "✓" in checks.compare("square", lambda x: x**2, np.square,
                                     [checks.Case("small", (np.arange(3.0),))])
        time.sleep(1.5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired == [True]
