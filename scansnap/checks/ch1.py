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

import numpy as np
import torch

from ..data import SequenceClasses
from ..setting import attention_from_counts
from . import Case, CheckFailed, compare


def _as_result(name: str, value: Any, shape: tuple[int, ...]) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{name}: return a torch tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise CheckFailed(f"{name}: your output has shape {tuple(value.shape)}, expected {shape} "
                          "(one weight per token of the vocabulary, for every context)")
    return value


def check_attention_from_counts(student: Callable[..., Any]) -> str:
    """Check ``student(z_row, counts)`` → ``Xᵀ b_T`` (``[..., M]``) on random and edge cases.

    Edge cases: tokens absent from the context must get exactly zero weight; a context of one
    repeated token; large logits (a naive ``exp`` overflows); a single 1-D context; ``z = 0``
    (the weights are then the empirical frequencies).
    """

    def wrapped(z_row: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        out = _as_result("attention_from_counts", student(z_row.clone(), counts.clone()),
                         tuple(counts.shape))
        return out

    g = torch.Generator().manual_seed(11)
    classes = SequenceClasses()
    syn_counts, _, _ = classes.sample_counts(6, 128, g)
    cases = [
        Case("Syn-Small counts, z = 0 (weights = empirical frequencies)",
             (torch.zeros(classes.M, dtype=torch.float64), syn_counts)),
        Case("Syn-Small counts, random z_row",
             (torch.randn(classes.M, generator=g, dtype=torch.float64), syn_counts)),
        Case("one context as a 1-D count vector",
             (torch.randn(8, generator=g, dtype=torch.float64),
              torch.tensor([3.0, 0.0, 1.0, 0.0, 0.0, 5.0, 0.0, 2.0], dtype=torch.float64))),
        Case("a context of one repeated token (all weight on it)",
             (torch.randn(5, generator=g, dtype=torch.float64),
              torch.tensor([[0.0, 0.0, 7.0, 0.0, 0.0]], dtype=torch.float64))),
        Case("large logits: z up to 900 (exp overflows unless you shift)",
             (torch.tensor([900.0, 850.0, -900.0, 0.0], dtype=torch.float64),
              torch.tensor([[1.0, 4.0, 2.0, 0.0], [0.0, 1.0, 1.0, 1.0]], dtype=torch.float64))),
        Case("absent token with the largest logit must still get weight 0",
             (torch.tensor([50.0, 0.0, 0.0], dtype=torch.float64),
              torch.tensor([[0.0, 2.0, 1.0]], dtype=torch.float64))),
    ]
    for i in range(3):
        M = int(torch.randint(2, 40, (1,), generator=g))
        counts = torch.poisson(torch.full((4, M), 2.0, dtype=torch.float64), generator=g)
        counts[:, 0] += 1.0  # every context has at least one token
        cases.append(Case(f"random #{i}: M={M}, 4 contexts",
                          (3 * torch.randn(M, generator=g, dtype=torch.float64), counts)))
    return compare("attention_from_counts", wrapped, attention_from_counts, cases,
                   rtol=1e-9, atol=1e-12)


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


def check_predicted_l1_gap(student: Callable[..., Any]) -> str:
    """Check ``student(probs_row, z_row, T)`` (a float) against the delta-method prediction of
    ``E‖Xᵀ b_T − c_n‖₁`` on random and edge cases (``z = 0``: the multinomial case; a one-token
    support: zero gap; tokens outside the support; large logits)."""

    def wrapped(p: torch.Tensor, z: torch.Tensor, T: int) -> float:
        value = student(p.clone(), z.clone(), T)
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise CheckFailed(f"predicted_l1_gap: return one number, got a tensor of shape "
                                  f"{tuple(value.shape)}")
            value = value.item()
        try:
            return float(value)
        except (TypeError, ValueError):
            raise CheckFailed(f"predicted_l1_gap: return a number, got {type(value).__name__}") \
                from None

    g = torch.Generator().manual_seed(12)
    classes = SequenceClasses()
    p1 = classes.probs()[0]
    cases = [
        Case("Syn-Small class 1, z = 0, T = 128",
             (p1, torch.zeros(classes.M, dtype=torch.float64), 128)),
        Case("Syn-Small class 1, z favours distinct tokens, T = 10^4",
             (p1, torch.linspace(-1, 2, classes.M, dtype=torch.float64), 10_000)),
        Case("uniform over 4 tokens, z = 0, T = 2",
             (torch.full((4,), 0.25, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), 2)),
        Case("one-token support: the gap is 0",
             (torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64),
              torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64), 50)),
        Case("large logits (z = 500 on the support): shift before exp",
             (torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
              torch.tensor([500.0, 499.0, 498.0], dtype=torch.float64), 1000)),
    ]
    for i in range(3):
        M = int(torch.randint(2, 30, (1,), generator=g))
        p = torch.rand(M, generator=g, dtype=torch.float64)
        p[torch.rand(M, generator=g) < 0.3] = 0.0
        p[0] += 0.1
        p = p / p.sum()
        T = int(torch.randint(2, 10**5, (1,), generator=g))
        cases.append(Case(f"random #{i}: M={M}, T={T}",
                          (p, torch.randn(M, generator=g, dtype=torch.float64), T)))
    return compare("predicted_l1_gap", wrapped, reference_predicted_l1_gap, cases,
                   rtol=1e-7, atol=1e-12)
