"""The paper's closed forms (Tian, Wang, Chen, Du, NeurIPS 2023), exact in float64.

Sections map to the paper: Lemma 2 (the T→∞ attention ``c`` and its ℓ2-normalized ``f``),
Lemma 1 (closed-form gradients), Lemmas 5–7 (``h_star``, ``h``), the speed-control coefficient
``gamma``, Theorem 3 (growth factor bounds) and Theorem 4 (``B``, ``t0``).
"""

from __future__ import annotations

import torch

from ._validate import check_tensor


def attention_limit(probs: torch.Tensor, Z: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Lemma 2 / Eqn 5: ``c_{l|n} = P(l|n) exp(z_{ψ(n) l}) / Σ_l' P(l'|n) exp(z_{ψ(n) l'})``.

    ``probs`` is ``[K, M]`` (P(l|n)), ``Z`` is ``[..., M, M]`` and ``queries`` ``[K]`` holds ψ(n).
    Returns ``c`` of shape ``[..., K, M]``; tokens outside a class's support get exactly 0.
    Overflow-safe: the maximum logit over the support is subtracted first.
    """
    probs = check_tensor("probs", probs, ndim=2)
    Z = check_tensor("Z", Z)
    K, M = probs.shape
    if Z.ndim < 2 or Z.shape[-2:] != (M, M):
        raise ValueError(f"Z must have shape [..., {M}, {M}] to match probs, got {list(Z.shape)}")
    if queries.shape != (K,):
        raise ValueError(f"queries must have shape [{K}], got {list(queries.shape)}")
    rows = Z[..., queries, :]  # [..., K, M]: z_{ψ(n), ·}
    support = probs > 0
    masked = rows.masked_fill(~support, float("-inf"))
    shifted = torch.exp(masked - masked.amax(dim=-1, keepdim=True))
    weights = probs.to(Z.dtype) * shifted
    return weights / weights.sum(dim=-1, keepdim=True)


def normalized_attention(c: torch.Tensor) -> torch.Tensor:
    """``f_n = c_n / ||c_n||_2`` (Lemma 2 notation; the input of the decoder as T→∞)."""
    c = check_tensor("c", c)
    return c / torch.linalg.vector_norm(c, dim=-1, keepdim=True)
