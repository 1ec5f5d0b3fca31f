"""Coursework checks for Chapter 2 (the reparameterization, Section 3.1, Lemma 1).

- :func:`check_yz_from_full`: ``Y = U W_Vᵀ Uᵀ`` and ``Z = U W_Q W_Kᵀ Uᵀ / √d``.
- :func:`check_grad_z_row`: Lemma 1's closed-form gradient of the loss with respect to the query
  row ``z_m`` (Eqn 4), computed from the context's token counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..data import SequenceClasses
from ..models import full_to_yz
from . import Case, compare


Y_PART, Z_PART = "Y = U W_Vᵀ Uᵀ", "Z = U W_Q W_Kᵀ Uᵀ / √d"
PARTS = {"check_yz_from_full": (Y_PART, Z_PART)}


def check_yz_from_full(student: Callable[..., Any], *, points: float | None = None,
                       part: str | None = None) -> Any:
    """Check ``student(U, W_Q, W_K, W_V)`` → ``(Y, Z)`` (each ``[M, M]``) on random shapes and
    edge cases (``d = 1``; ``M = 2``; non-symmetric ``W``'s, where a transpose in the wrong
    place shows; ``d > M`` and ``d < M``), in two parts: ``Y`` and ``Z``.
    ``points``/``part``: see :func:`scansnap.checks.compare`."""

    g = torch.Generator().manual_seed(21)

    def params(M: int, d: int, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
        return tuple(scale * torch.randn(*shape, generator=g, dtype=torch.float64)
                     for shape in ((M, d), (d, d), (d, d), (d, d)))

    inputs = [("width d = 1", params(5, 1)), ("vocabulary M = 2", params(2, 3)),
              ("Syn-Small size M = 34, d = 16 (d < M)", params(34, 16)),
              ("d = 64 > M = 10", params(10, 64)),
              ("W_Q = W_K = I, W_V = 0: Y = 0, Z = U Uᵀ / √d",
               (torch.randn(6, 4, generator=g, dtype=torch.float64),
                torch.eye(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64),
                torch.zeros(4, 4, dtype=torch.float64)))]
    for i in range(3):
        M, d = (int(v) for v in torch.randint(2, 40, (2,), generator=g))
        inputs.append((f"random #{i}: M={M}, d={d}", params(M, d, 0.5)))
    cases = [Case(label, args, part=part, output=output)
             for output, part in enumerate((Y_PART, Z_PART)) for label, args in inputs]
    return compare("yz_from_full", student, full_to_yz, cases, rtol=1e-9, atol=1e-12,
                   points=points, part=part)


def reference_grad_z_row(Y: torch.Tensor, z_row: torch.Tensor, counts: torch.Tensor,
                         target: int) -> torch.Tensor:
    """Eqn 4 (Lemma 1) for the loss ``−log softmax(Yᵀ LN(Xᵀ b))_target`` of one sequence:
    ``∂loss/∂z_m = (diag(v) − v vᵀ) (P^⊥_v / ‖v‖) Y (α − e_target)`` with ``v = Xᵀ b`` (so that
    ``Xᵀ diag(b) X = diag(v)``); the ``− v vᵀ`` term vanishes against ``P^⊥_v``."""
    Y, z, q = (t.to(torch.float64) for t in (Y, z_row, counts))
    v = torch.softmax(z + torch.log(q), dim=0)
    norm = torch.linalg.vector_norm(v)
    u = v / norm
    alpha = torch.softmax(Y.T @ u, dim=0)
    err = alpha.clone()
    err[target] -= 1.0
    s = Y @ err
    g = (s - u * (u @ s)) / norm  # P^⊥_v s / ‖v‖
    return v * g - v * (v @ g)


def check_grad_z_row(student: Callable[..., Any], *, points: float | None = None,
                     part: str | None = None) -> Any:
    """Check ``student(Y, z_row, counts, target)`` → ``∂loss/∂z_m`` (``[M]``) against Lemma 1
    (Eqn 4) on random and edge cases: absent tokens (gradient exactly 0 there), a context of a
    single token type (``v`` one-hot: the gradient vanishes), large attention logits, ``Y = 0``
    (the gradient vanishes: the decoder cannot tell tokens apart).
    ``points``/``part``: see :func:`scansnap.checks.compare`."""

    g = torch.Generator().manual_seed(22)
    classes = SequenceClasses()
    M = classes.M
    counts, _, targets = classes.sample_counts(1, 128, g)
    Y_rand = torch.randn(M, M, generator=g, dtype=torch.float64)
    cases = [
        Case("Syn-Small context, random Y, z = 0",
             (Y_rand, torch.zeros(M, dtype=torch.float64), counts[0], int(targets[0]))),
        Case("Syn-Small context, random Y and z",
             (Y_rand, torch.randn(M, generator=g, dtype=torch.float64), counts[0],
              int(targets[0]))),
        Case("Y = 0: no signal, the gradient is 0",
             (torch.zeros(M, M, dtype=torch.float64), torch.randn(M, generator=g,
                                                                   dtype=torch.float64),
              counts[0], int(targets[0]))),
        Case("a context of one token type (v one-hot): the gradient is 0",
             (torch.randn(4, 4, generator=g, dtype=torch.float64),
              torch.randn(4, generator=g, dtype=torch.float64),
              torch.tensor([0.0, 9.0, 0.0, 0.0], dtype=torch.float64), 2)),
        Case("large attention logits (z up to 700)",
             (torch.randn(5, 5, generator=g, dtype=torch.float64),
              torch.tensor([700.0, 699.0, 0.0, -700.0, 698.5], dtype=torch.float64),
              torch.tensor([1.0, 2.0, 3.0, 1.0, 1.0], dtype=torch.float64), 0)),
    ]
    for i in range(3):
        m = int(torch.randint(2, 20, (1,), generator=g))
        q = torch.poisson(torch.full((m,), 1.5, dtype=torch.float64), generator=g)
        q[0] += 1.0
        cases.append(Case(f"random #{i}: M={m}",
                          (torch.randn(m, m, generator=g, dtype=torch.float64),
                           2 * torch.randn(m, generator=g, dtype=torch.float64), q,
                           int(torch.randint(m, (1,), generator=g)))))
    return compare("grad_z_row", student, reference_grad_z_row, cases, rtol=1e-7, atol=1e-10,
                   points=points, part=part)

