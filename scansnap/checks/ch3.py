"""Coursework checks for Chapter 3 (Y dynamics): Lemma 5's recursion and Theorem 1's gradient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import decompose, theory
from . import Case, compare


def _h_star_reference(s: int, M: int, eta_y: float) -> np.ndarray:
    return np.asarray(theory.h_star(np.arange(s + 1), M, eta_y))


def check_h_star(student: Callable[..., Any], *, points: float | None = None,
                 part: str | None = None) -> Any:
    """``student(s, M, eta_y)`` must return ``[h*(0), ..., h*(s)]`` (Lemma 5: ``h*(0) = 0``,
    ``h*(k) = h*(k−1) + η_Y / ((M−1) + e^{M h*(k−1)})``) as an array of length ``s + 1``."""
    rng = np.random.default_rng(3)
    cases = [Case("M=50, eta_y=0.5, 80 steps", (80, 50, 0.5)),
             Case("s=0: only h*(0)", (0, 50, 0.5)),
             Case("M=2 (smallest vocabulary)", (10, 2, 1.0)),
             Case("M=1000, eta_y=4, 200 steps", (200, 1000, 4.0))]
    for i in range(3):
        cases.append(Case(f"random #{i + 1}", (int(rng.integers(1, 60)), int(rng.integers(3, 400)),
                                               float(rng.uniform(0.05, 3.0)))))
    return compare("h_star", student, _h_star_reference, cases, rtol=1e-9, atol=1e-12,
                   points=points, part=part)


def check_backprop_gradient(student: Callable[..., Any], *, points: float | None = None,
                            part: str | None = None) -> Any:
    """``student(Y, f, targets)`` must return ``g [K, M]`` with rows ``Y (e_n − softmax(Yᵀ f_n))``
    (Theorem 1, Eqn 9; logits are ``Yᵀ u``, i.e. ``u @ Y``)."""
    gen = torch.Generator().manual_seed(5)

    def random_case(M: int, K: int, label: str, scale: float = 1.0) -> Case:
        Y = torch.randn(M, M, generator=gen, dtype=torch.float64) * scale
        c = torch.rand(K, M, generator=gen, dtype=torch.float64)
        f = c / c.norm(dim=-1, keepdim=True)
        targets = torch.randperm(M, generator=gen)[:K]
        return Case(label, (Y, f, targets))

    M = 6
    zero = Case("Y = 0: the gradient is 0", (torch.zeros(M, M, dtype=torch.float64),
                                              torch.eye(M, dtype=torch.float64)[:2],
                                              torch.tensor([4, 5])))
    asym = torch.zeros(M, M, dtype=torch.float64)
    asym[0, 5] = 3.0  # only a token-0 → output-5 weight: checks Y vs Yᵀ
    transposed = Case("non-symmetric Y (are you using Y or Yᵀ?)",
                      (asym, torch.eye(M, dtype=torch.float64)[:2], torch.tensor([5, 4])))
    cases = [zero, transposed, random_case(8, 2, "random M=8, K=2"),
             random_case(20, 4, "random M=20, K=4"),
             random_case(12, 3, "large logits (overflow-safe softmax)", scale=60.0)]
    return compare("backprop_gradient", student, decompose.backprop_gradient, cases,
                   rtol=1e-8, atol=1e-10, points=points, part=part,
                   reminder="Reminder: α_n = softmax(Yᵀ f_n) is `f @ Y` row by row, and "
                            "g_n = Y (e_n − α_n) is `(e − α) @ Y.T`.")
