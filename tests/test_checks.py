"""The coursework-check framework (scansnap.checks.compare): messages a student can act on."""

from __future__ import annotations

import numpy as np
import pytest

from scansnap.checks import Case, CheckFailed, compare

CASES = [Case("small", (np.arange(1.0, 4.0),)), Case("negative", (np.array([-2.0, 0.5]),))]


def square(x):
    return x**2


def test_a_correct_answer_passes():
    assert "all 2 cases match" in compare("square", square, square, CASES)


def test_a_wrong_answer_names_case_index_and_values():
    with pytest.raises(CheckFailed, match=r"square, case 'small': value at index \(0,\) is 2, expected 1"):
        compare("square", lambda x: 2 * x, square, CASES)


def test_known_mistakes_are_named_only_when_they_match():
    slips = [(lambda x: x**3, "you cubed"), (lambda x: 2 * x**2, "you doubled")]
    with pytest.raises(CheckFailed, match="case 'small': .*known mistake: you doubled"):
        compare("square", lambda x: 2 * x**2, square, CASES, slips=slips)
    with pytest.raises(CheckFailed) as error:  # no slip matches: the generic difference
        compare("square", lambda x: x + 1, square, CASES, slips=slips)
    assert "known mistake" not in str(error.value)
    assert "all 2 cases match" in compare("square", square, square, CASES, slips=slips)
