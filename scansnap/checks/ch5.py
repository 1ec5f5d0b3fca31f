"""Coursework checks for Chapter 5 (the phase transition, Theorem 4 and Fig 6).

- :func:`check_snap_time`: ``t_0 = 2K ln M / η_Y`` (Theorem 4).
- :func:`check_B`: ``B_n(t) = ¼ ln(1 + 4Γ(t)/C_0)`` with ``Γ`` of Eqn 128 (``B_n(0) = 0``).
- :func:`check_fig6_entropy`: the Fig 6 quantity — entropy of ``c_n`` on class ``n``'s
  distinct tokens, renormalized, averaged over classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import metrics, theory
from ..data import SequenceClasses, syn_medium
from . import Case, compare


def _reference_t0(M: int, K: int, eta_y: float) -> float:
    return float(theory.t0(M, K, eta_y))


def check_snap_time(student: Callable[..., Any], *, points: float | None = None,
                    part: str | None = None) -> Any:
    """Check ``student(M, K, eta_y)`` against Theorem 4's ``t_0 = 2 K ln M / η_Y``
    (Fig 3's dotted lines: 276.3, 138.2, 69.1, 27.6 for K = 10, M = 1000)."""
    rng = np.random.default_rng(5)
    cases = [Case("Fig 3, eta_y=0.5", (1000, 10, 0.5)), Case("Fig 3, eta_y=5", (1000, 10, 5.0)),
             Case("smallest vocabulary M=2, K=1", (2, 1, 1.0)),
             Case("tiny eta_y=1e-3", (50, 3, 1e-3))]
    for i in range(4):
        M, K = int(rng.integers(2, 10**5)), int(rng.integers(1, 50))
        cases.append(Case(f"random #{i}: M={M}, K={K}", (M, K, float(rng.uniform(0.05, 20)))))
    return compare("snap_time", student, _reference_t0, cases, rtol=1e-9, atol=0.0,
                   points=points, part=part)


def _reference_B(t: Any, M: int, K: int, eta_y: float, eta_z: float, C0: float) -> np.ndarray:
    return np.asarray(theory.B(t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0), dtype=np.float64)


def _printed_B(t: Any, M: int, K: int, eta_y: float, eta_z: float, C0: float) -> np.ndarray:
    return np.asarray(theory.B_printed(t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0),
                      dtype=np.float64)


def check_B(student: Callable[..., Any], *, points: float | None = None,
            part: str | None = None) -> Any:
    """Check ``student(t, M, K, eta_y, eta_z, C0)`` (``t`` a float64 array) against
    ``B_n(t) = ¼ ln(1 + 4Γ(t)/C_0)``, ``Γ = (η_Z/η_Y) K (M-1)² h(t/K)² / 2`` (Eqns 128–129 with
    ``B_n(0) = 0``): the paper's settings, ``t = 0``, ``η_Z = 0``, a large ``t`` and random ones.
    """
    t_fig3 = np.linspace(0.0, 700.0, 15)

    cases = [
        Case("Fig 3 (M=1000, K=10, eta_y=1, eta_z=0.5, C0=0.00625)", (t_fig3, 1000, 10, 1.0, 0.5, 0.00625)),
        Case("t = 0 must give B = 0 (not the printed 1/4 ln C0)",
             (np.array([0.0]), 1000, 10, 2.0, 0.5, 0.00625)),
        Case("Fig 9 (nu=10, M=100, K=1, C0=1)", (np.linspace(0, 5, 11), 100, 1, 10.0, 1.0, 1.0)),
        Case("eta_z = 0 freezes attention: B = 0", (np.array([1.0, 10.0]), 50, 2, 1.0, 0.0, 0.1)),
        Case("late times (t up to 1e6, snapping)", (np.geomspace(1, 1e6, 7), 1000, 10, 1.0, 0.5, 0.00625)),
    ]
    rng = np.random.default_rng(55)
    for i in range(3):
        M, K = int(rng.integers(2, 5000)), int(rng.integers(1, 30))
        args = (np.sort(rng.uniform(0, 500, 6)), M, K, float(rng.uniform(0.1, 10)),
                float(rng.uniform(0.1, 5)), float(10 ** rng.uniform(-3, 2)))
        cases.append(Case(f"random #{i}: M={M}, K={K}", args))
    printed = (_printed_B, "this is the printed Eqn 129, ¼ ln(C0 + 4Γ), the reference plus ¼ ln C0 "
               "at every t: at t = 0 it gives ¼ ln C0, not 0, because it drops the integral's "
               "lower limit. B_n(t) = η_Z ∫_0^t ξ_n, so B_n(0) = 0: use ¼ ln(1 + 4Γ/C0).")
    return compare("B", student, _reference_B, cases, rtol=1e-7, atol=1e-10, slips=[printed],
                   points=points, part=part)


def _reference_fig6_entropy(classes: SequenceClasses, Z: torch.Tensor) -> torch.Tensor:
    return metrics.distinct_entropy(classes, Z).mean(-1)


def check_fig6_entropy(student: Callable[..., Any], *, points: float | None = None,
                       part: str | None = None) -> Any:
    """Check ``student(classes, Z)`` (``Z [M, M]``) against the Fig 6 quantity: for each class
    ``n``, ``c_n ∝ P(l|n) e^{z_{ψ(n) l}}`` restricted to ``n``'s distinct tokens and
    renormalized; its entropy in nats; averaged over the ``K`` classes (a float)."""
    g = torch.Generator().manual_seed(5)
    cases = []
    for q in (1, 3):
        classes = syn_medium(q)
        M = classes.M
        cases.append(Case(f"zero Z, {q} queries (expect 2.1513)", (classes, torch.zeros(M, M, dtype=torch.float64))))
        cases.append(Case(f"random init scale, {q} queries",
                          (classes, (2 * torch.rand(M, M, generator=g, dtype=torch.float64) - 1) / math.sqrt(M))))
    classes = SequenceClasses(num_queries=2, next_per_query=2)
    M = classes.M
    big = torch.zeros(M, M, dtype=torch.float64)
    big[classes.query_tokens[0], classes.distinct_tokens(0)[3]] = 60.0  # nearly one-hot: overflow-prone
    cases.append(Case("one huge logit (exp overflows float32 without a shift)", (classes, big)))
    common = torch.zeros(M, M, dtype=torch.float64)
    common[:, classes.common_tokens(0)] = 5.0  # common tokens must not enter the entropy
    cases.append(Case("large common-token logits (they must not count)", (classes, common)))
    return compare("fig6_entropy", student, lambda c, Z: float(_reference_fig6_entropy(c, Z)),
                   cases, rtol=1e-6, atol=1e-9, slips=_FIG6_SLIPS, points=points, part=part)


def _entropy_over_whole_support(classes: SequenceClasses, Z: torch.Tensor) -> float:
    return float(torch.special.entr(metrics.attention(classes, Z)).sum(-1).mean())


def _entropy_not_renormalized(classes: SequenceClasses, Z: torch.Tensor) -> float:
    c = metrics.attention(classes, Z)  # [K, M]
    return float(torch.stack([torch.special.entr(c[n, classes.distinct_tokens(n)]).sum()
                              for n in range(classes.K)]).mean())


# The two likely slips, which the paper's authors also ruled out against their released numbers.
_FIG6_SLIPS = [
    (_entropy_over_whole_support, "the entropy of c_n over its whole support: the common tokens "
     "count too. Keep only classes.distinct_tokens(n), renormalize, then take the entropy"),
    (_entropy_not_renormalized, "-Σ c log c over the distinct tokens of the full c_n, without "
     "renormalizing them to sum to 1 first"),
]
