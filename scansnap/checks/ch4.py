"""Coursework checks for Chapter 4 (fates of tokens): Theorem 3's relative gain and TF-IDF."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import decompose, theory
from . import Case, compare


def check_relative_gain(student: Callable[..., Any], *, points: float | None = None,
                        part: str | None = None) -> Any:
    """``student(c, l, l_prime)`` must return ``r_{l/l'} = c_l² / c_{l'}² − 1`` over the last
    axis of ``c`` (Theorem 3; ``c`` or ``f`` give the same value; the reference is
    :func:`scansnap.theory.relative_gain`)."""
    gen = torch.Generator().manual_seed(7)
    c = torch.rand(34, generator=gen, dtype=torch.float64) + 0.01
    batch = torch.rand(5, 3, 34, generator=gen, dtype=torch.float64) + 0.01
    cases = [Case("one vector, l0 = 19 over l = 10", (c / c.sum(), 19, 10)),
             Case("unnormalized c (the ratio does not care)", (c * 7.5, 3, 12)),
             Case("same token: r = 0", (c, 5, 5)),
             Case("batch [5, 3, 34] (use the last axis)", (batch, 19, 11))]
    return compare("relative_gain", student, theory.relative_gain, cases, rtol=1e-10,
                   atol=1e-12, points=points, part=part,
                   reminder="Reminder: r compares the *squares*, c_l² / c_l'², and subtracts 1.")


def check_tfidf(student: Callable[..., Any], *, points: float | None = None,
                part: str | None = None) -> Any:
    """``student(probs)`` must return TF-IDF scores ``[K, M]``: ``P(l|n) ln(K/|Ω(l)|)`` with
    ``|Ω(l)|`` the number of classes whose ``P(l|n) > 0``, normalized to sum to 1 per class."""
    from ..data import SequenceClasses

    gen = torch.Generator().manual_seed(11)
    random = torch.rand(4, 15, generator=gen, dtype=torch.float64)
    random[random < 0.5] = 0.0
    random[:, 0] = 0.3  # one token in every class
    cases = [Case("Syn-Small", (SequenceClasses().probs(),)),
             Case("2 queries x 2 classes with per-query common tokens",
                  (SequenceClasses(num_queries=2, next_per_query=2, common_per_query=3).probs(),)),
             Case("random sparse P (unnormalized rows)", (random,)),
             Case("class 1 uses only tokens of every class: its row stays zeros",
                  (torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.2, 0.3, 0.5, 0.0], [0.1, 0.1, 0.0, 0.8]],
                                dtype=torch.float64),))]
    return compare("tfidf", student, decompose.tfidf_scores, cases, rtol=1e-9, atol=1e-12,
                   points=points, part=part,
                   reminder="Reminder: a token in every class has idf ln(K/K) = 0; normalize "
                            "each class's scores to sum to 1 at the end; a class whose scores "
                            "are all 0 stays all 0 (no 0/0).")
