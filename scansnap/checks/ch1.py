"""Coursework checks for Chapter 1 (the setting, Section 3, Lemma 2).

- :func:`check_attention_from_counts`: ``Xᵀ b_T`` from an attention row ``z_m`` and the context's
  token counts (the model sees a sequence only through its counts, Assumption 1a).
- :func:`check_predicted_l1_gap`: the delta-method prediction of ``E‖Xᵀ b_T − c_n‖₁`` at large
  ``T`` (the constant in front of Lemma 2's ``T^{-1/2}`` rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..data import SequenceClasses
from ..models import attention_from_counts
from . import Case, compare


WEIGHTS, ABSENT, OVERFLOW = ("the weights", "absent tokens get weight 0",
                             "logits in the hundreds do not overflow")


def check_attention_from_counts(student: Callable[..., Any], *, points: float | None = None,
                                part: str | None = None) -> Any:
    """Check ``student(z_row, counts)`` → ``Xᵀ b_T`` (``[..., M]``) on random and edge cases.

    Three parts, as the exercise states them: the weights (contexts where every token is
    present: random ones, ``z = 0`` where they are the empirical frequencies, a single 1-D
    context); tokens absent from the context get exactly zero weight (Syn-Small contexts, a
    context of one repeated token, an absent token with the largest logit); logits in the
    hundreds neither overflow nor underflow.
    ``points``/``part``: see :func:`scansnap.checks.compare`.
    """
    g = torch.Generator().manual_seed(11)
    classes = SequenceClasses()
    syn_counts, _, _ = classes.sample_counts(6, 128, g)
    cases = [
        Case("every token present, z = 0 (weights = empirical frequencies)",
             (torch.zeros(classes.M, dtype=torch.float64), syn_counts + 1.0), part=WEIGHTS),
        Case("Syn-Small counts (most tokens absent), z = 0",
             (torch.zeros(classes.M, dtype=torch.float64), syn_counts), part=ABSENT),
        Case("Syn-Small counts (most tokens absent), random z_row",
             (torch.randn(classes.M, generator=g, dtype=torch.float64), syn_counts), part=ABSENT),
        Case("one context as a 1-D count vector",
             (torch.randn(8, generator=g, dtype=torch.float64),
              torch.tensor([3.0, 1.0, 1.0, 2.0, 4.0, 5.0, 1.0, 2.0], dtype=torch.float64)),
             part=WEIGHTS),
        Case("absent tokens in a 1-D context get weight 0",
             (torch.randn(8, generator=g, dtype=torch.float64),
              torch.tensor([3.0, 0.0, 1.0, 0.0, 0.0, 5.0, 0.0, 2.0], dtype=torch.float64)),
             part=ABSENT),
        Case("a context of one repeated token (all weight on it)",
             (torch.randn(5, generator=g, dtype=torch.float64),
              torch.tensor([[0.0, 0.0, 7.0, 0.0, 0.0]], dtype=torch.float64)), part=ABSENT),
        Case("absent token with the largest logit must still get weight 0",
             (torch.tensor([50.0, 0.0, 0.0], dtype=torch.float64),
              torch.tensor([[0.0, 2.0, 1.0]], dtype=torch.float64)), part=ABSENT),
        Case("large logits: z up to 900 (exp overflows unless you shift)",
             (torch.tensor([900.0, 850.0, -900.0, 0.5], dtype=torch.float64),
              torch.tensor([[1.0, 4.0, 2.0, 1.0], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)),
             part=OVERFLOW),
        Case("large negative logits: z down to -800 (exp underflows to 0/0 unless you shift)",
             (torch.tensor([-800.0, -801.0, -805.0], dtype=torch.float64),
              torch.tensor([[2.0, 1.0, 3.0]], dtype=torch.float64)), part=OVERFLOW),
    ]
    for i in range(3):
        M = int(torch.randint(2, 40, (1,), generator=g))
        counts = torch.poisson(torch.full((4, M), 2.0, dtype=torch.float64), generator=g)
        counts += 1.0  # every token present: absent tokens are the other part's concern
        cases.append(Case(f"random #{i}: M={M}, 4 contexts",
                          (3 * torch.randn(M, generator=g, dtype=torch.float64), counts),
                          part=WEIGHTS))
    return compare("attention_from_counts", student, attention_from_counts, cases,
                   rtol=1e-9, atol=1e-12, points=points, part=part)


def reference_predicted_l1_gap(probs_row: torch.Tensor, z_row: torch.Tensor, T: int) -> float:
    """Delta method for ``E‖Xᵀ b_T − c‖₁`` with ``T − 1`` i.i.d. tokens from ``probs_row``.

    With ``w = e^{z}``, ``S = Σ P_l w_l`` and ``c_l = P_l w_l / S``, a frequency error ``δq``
    moves ``Xᵀ b_T`` by ``δc_l = (w_l δq_l − c_l ⟨w, δq⟩) / S``; with ``Cov(δq) =
    (diag(P) − PPᵀ)/(T − 1)`` its variance is ``σ_l² = [w_l² P_l (1 − 2c_l) + c_l² Σ_k w_k² P_k]
    / (S² (T − 1))``, and ``E|N(0, σ²)| = σ √(2/π)``: the gap is ``√(2/π) Σ_l σ_l``.
    """
    p = probs_row.to(torch.float64)
    z = z_row.to(torch.float64)
    support = p > 0
    p, z = p[support], z[support]
    w = torch.exp(z - z.max())  # the common factor e^{-max z} cancels in every ratio below
    S = (p * w).sum()
    c = p * w / S
    var = (w**2 * p * (1 - 2 * c) + c**2 * (w**2 * p).sum()) / (S**2 * (T - 1))
    return float(math.sqrt(2 / math.pi) * var.clamp_min(0).sqrt().sum())


MULTINOMIAL, REWEIGHTED = "z = 0 (the multinomial case)", "any z (the reweighted case)"
PARTS = {"check_attention_from_counts": (WEIGHTS, ABSENT, OVERFLOW),
         "check_predicted_l1_gap": (MULTINOMIAL, REWEIGHTED)}


def check_predicted_l1_gap(student: Callable[..., Any], *, points: float | None = None,
                           part: str | None = None) -> Any:
    """Check ``student(probs_row, z_row, T)`` (a float) against the delta-method prediction of
    ``E‖Xᵀ b_T − c_n‖₁`` on random and edge cases, in two parts: ``z = 0`` (the multinomial
    case, including a one-token support whose gap is 0) and any ``z`` (tokens outside the
    support, large logits). ``points``/``part``: see :func:`scansnap.checks.compare`."""

    g = torch.Generator().manual_seed(12)
    classes = SequenceClasses()
    p1 = classes.probs()[0]
    cases = [
        Case("Syn-Small class 1, z = 0, T = 128",
             (p1, torch.zeros(classes.M, dtype=torch.float64), 128), part=MULTINOMIAL),
        Case("uniform over 4 tokens, z = 0, T = 2",
             (torch.full((4,), 0.25, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), 2),
             part=MULTINOMIAL),
        Case("one-token support, z = 0: the gap is 0",
             (torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64),
              torch.zeros(3, dtype=torch.float64), 50), part=MULTINOMIAL),
        Case("Syn-Small class 1, z favours distinct tokens, T = 10^4",
             (p1, torch.linspace(-1, 2, classes.M, dtype=torch.float64), 10_000),
             part=REWEIGHTED),
        Case("one-token support, any z: the gap is 0",
             (torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64),
              torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64), 50), part=REWEIGHTED),
        Case("large logits (z = 500 on the support): shift before exp",
             (torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
              torch.tensor([500.0, 499.0, 498.0], dtype=torch.float64), 1000), part=REWEIGHTED),
    ]
    for i in range(3):
        M = int(torch.randint(2, 30, (1,), generator=g))
        p = torch.rand(M, generator=g, dtype=torch.float64)
        p[torch.rand(M, generator=g) < 0.3] = 0.0
        p[0] += 0.1
        p = p / p.sum()
        T = int(torch.randint(2, 10**5, (1,), generator=g))
        cases.append(Case(f"random #{i}: M={M}, T={T}",
                          (p, torch.randn(M, generator=g, dtype=torch.float64), T),
                          part=REWEIGHTED))
    return compare("predicted_l1_gap", student, reference_predicted_l1_gap, cases,
                   rtol=1e-7, atol=1e-12, points=points, part=part)
