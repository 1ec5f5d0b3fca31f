"""The 1-layer transformer of Section 3 and its reparameterization (Section 3.1).

``Transformer1L`` holds the original parameters (embeddings ``U`` and ``W_Q, W_K, W_V``);
``YZModel`` holds ``Y = U W_Vᵀ Uᵀ`` and ``Z = U W_Q W_Kᵀ Uᵀ / √d`` as free parameters, like the
authors' ``Model2``. Both see the context only through token counts (no positional encoding,
Assumption 1a), and the query token does not attend to itself unless ``include_query``.

:func:`yz_logits` is the one forward pass both use, batched over any leading run dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._validate import check_bool, check_choice, check_dtype, check_int, check_memory, check_tensor
from .data import counts_of

INITS = ("zero", "random")


def init_yz(M: int, init: str, *, generator: torch.Generator | None = None,
            dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial ``(Y, Z)``, each ``[M, M]``: ``"zero"`` is the theory's ``Y(0) = Z(0) = 0``;
    ``"random"`` is PyTorch's default ``nn.Linear`` init ``U(−1/√M, 1/√M)``, as in the authors'
    Fig 6 runs (``Y`` drawn first, then ``Z``, from ``generator``)."""
    if init == "zero":
        return torch.zeros(M, M, dtype=dtype), torch.zeros(M, M, dtype=dtype)
    bound = 1 / math.sqrt(M)
    Y, Z = ((2 * torch.rand(M, M, generator=generator, dtype=dtype) - 1) * bound for _ in range(2))
    return Y, Z


def init_full(M: int, d: int, *, generator: torch.Generator | None = None,
              dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    """Initial ``(U, W_Q, W_K, W_V)`` of the full model: ``U [M, d] ~ N(0, 1/d)`` (nearly
    orthonormal rows for large ``d``), each ``W [d, d]`` as PyTorch's ``nn.Linear``,
    ``U(−1/√d, 1/√d)``; drawn in that order from ``generator``."""
    bound = 1 / math.sqrt(d)
    U = torch.randn(M, d, generator=generator, dtype=dtype) * bound
    return (U, *((2 * torch.rand(d, d, generator=generator, dtype=dtype) - 1) * bound
                 for _ in range(3)))


def attention_from_counts(z_row: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``Xᵀ b_T`` from the attention row ``z_m`` (``[M]``) and context token counts ``[..., M]``.

    Without positional encoding ``b_t ∝ exp(z_{m x_t})``, so summing over the positions that hold
    token ``l`` gives ``(Xᵀ b_T)_l = q_l e^{z_{ml}} / Σ_{l'} q_{l'} e^{z_{ml'}}`` (Section 3,
    Lemma 2's proof). Tokens with zero count get exactly zero; overflow-safe.
    """
    z_row = check_tensor("z_row", z_row, ndim=1)
    counts = check_tensor("counts", counts)
    if counts.shape[-1] != z_row.shape[0]:
        raise ValueError(f"counts must have shape [..., {z_row.shape[0]}] to match z_row, "
                         f"got {list(counts.shape)}")
    if bool((counts < 0).any()):
        raise ValueError("counts must be nonnegative")
    if bool((counts.sum(-1) <= 0).any()):
        raise ValueError("counts must have at least one token in every context (a positive sum)")
    dtype = torch.promote_types(z_row.dtype, torch.float32)
    return context_attention(z_row.to(dtype), counts.to(dtype))


def context_attention(rows: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``Xᵀ b_T = q ⊙ exp(z_m) / Σ q ⊙ exp(z_m)`` for attention rows and counts ``[..., N]``
    (any set of ``N`` tokens: the vocabulary, or a class's support in the fast training path):
    log(0) = −inf gives absent tokens exactly zero weight inside one overflow-safe softmax.
    Unvalidated (:func:`attention_from_counts` is the checked entry point)."""
    return torch.softmax(rows + torch.log(counts), dim=-1)  # [..., M]


def yz_logits(
    Y: torch.Tensor,
    Z: torch.Tensor,
    counts: torch.Tensor,
    queries: torch.Tensor,
    *,
    normalize: bool = True,
    residual: bool = False,
) -> torch.Tensor:
    """Output logits ``Yᵀ LN(Xᵀ b_T)`` (Section 3.1) from context token counts.

    Shapes: ``Y, Z [..., M, M]``, ``counts [..., B, M]``, ``queries [..., B]`` → ``[..., B, M]``
    (``counts`` and ``queries`` broadcast against the leading dimensions of ``Z``).
    With counts ``q_l`` the attention-weighted context is ``Xᵀ b = q ⊙ exp(z_m) / Σ q ⊙ exp(z_m)``
    (the query row ``z_m`` of ``Z``); tokens with zero count get zero weight. ``residual`` adds
    the query's one-hot before normalizing (Section 7); ``normalize`` is the ℓ2 normalization LN.
    """
    M = Z.shape[-1]
    index = queries.unsqueeze(-1).expand(*Z.shape[:-2], queries.shape[-1], M)  # [..., B, M]
    rows = torch.gather(Z, -2, index)  # z_{x_T, ·} of every example           [..., B, M]
    v = context_attention(rows, counts)  # Xᵀ b_T                              [..., B, M]
    if residual:  # Section 7
        v = v + nn.functional.one_hot(queries, M).to(v.dtype)  #                  [..., B, M]
    if normalize:  # LN
        v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)  #              [..., B, M]
    return v @ Y  # logits: (Yᵀ LN(Xᵀ b_T))ᵀ                                  [..., B, M]


class YZModel(nn.Module):
    """The reparameterized model with free ``Y`` and ``Z`` (Section 3.1; the authors' ``Model2``).

    ``init="zero"`` is the theory's ``Y(0) = Z(0) = 0``; ``init="random"`` is PyTorch's default
    ``nn.Linear`` init, ``U(−1/√M, 1/√M)``, as in the authors' Fig 6 runs.
    """

    def __init__(
        self,
        M: int,
        *,
        init: str = "zero",
        normalize: bool = True,
        residual: bool = False,
        include_query: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.M = check_int("M", M, low=2)
        init = check_choice("init", init, INITS)
        self.normalize = check_bool("normalize", normalize)
        self.residual = check_bool("residual", residual)
        self.include_query = check_bool("include_query", include_query)
        dtype = check_dtype(dtype)
        check_memory({"M": 2.0 * self.M**2 * dtype.itemsize})  # Y and Z [M, M]
        Y, Z = init_yz(self.M, init, generator=generator, dtype=dtype)
        self.Y = nn.Parameter(Y)
        self.Z = nn.Parameter(Z)

    def forward(self, contexts: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, M]`` for token-id ``contexts [B, T−1]`` and ``queries [B]``."""
        return self.forward_counts(self._counts(contexts, queries), queries)

    def forward_counts(self, counts: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, M]`` from context counts ``[B, M]`` (exact: no positional encoding)."""
        return yz_logits(self.Y, self.Z, counts.to(self.Y.dtype), queries,
                         normalize=self.normalize, residual=self.residual)

    def attention(self, contexts: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Attention ``b_{tT}`` over the positions of ``contexts`` (``[B, T−1]``), Section 3."""
        _check_tokens(contexts, queries, self.M)
        scores = self.Z[queries[:, None], contexts]
        return torch.softmax(scores, dim=-1)

    def _counts(self, contexts: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        _check_tokens(contexts, queries, self.M)
        counts = counts_of(contexts, self.M, dtype=self.Y.dtype)
        if self.include_query:
            counts = counts + nn.functional.one_hot(queries, self.M).to(counts.dtype)
        return counts


class Transformer1L(nn.Module):
    """The 1-layer, 1-head transformer of Section 3 with parameters ``U, W_Q, W_K, W_V``.

    ``U [M, d]`` holds the token embeddings. Its forward pass is written in the original
    parameters (Eqn 1–2): attention ``softmax(u_{x_T}ᵀ W_Q W_Kᵀ u_{x_t} / √d)`` over the
    contextual tokens, ``ũ_T = Uᵀ LN(Xᵀ b_T)`` and logits ``u_lᵀ W_V ũ_T``; :meth:`to_yz` gives
    the equivalent ``(Y, Z)``. Init: ``U ~ N(0, 1/d)`` (nearly orthonormal rows for large
    ``d``), ``W_·`` as PyTorch's ``nn.Linear``, ``U(−1/√d, 1/√d)``.
    """

    def __init__(
        self,
        M: int,
        d: int = 128,
        *,
        normalize: bool = True,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.M = check_int("M", M, low=2)
        self.d = check_int("d", d, low=1)
        self.normalize = check_bool("normalize", normalize)
        dtype = check_dtype(dtype)
        check_memory({"M × d (U)": float(self.M * self.d * dtype.itemsize),
                      "d (W_Q, W_K, W_V)": 3.0 * self.d**2 * dtype.itemsize})
        self.U, self.W_Q, self.W_K, self.W_V = (
            nn.Parameter(p) for p in init_full(self.M, self.d, generator=generator, dtype=dtype))

    def to_yz(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``Y = U W_Vᵀ Uᵀ`` and ``Z = U W_Q W_Kᵀ Uᵀ / √d`` (Section 3.1)."""
        return full_to_yz(self.U, self.W_Q, self.W_K, self.W_V)

    def forward(self, contexts: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, M]`` computed in the original parameters (not through ``to_yz``)."""
        _check_tokens(contexts, queries, self.M)
        keys = self.U[contexts]  # u_{x_t}                                      [B, T−1, d]
        query = self.U[queries]  # u_{x_T}                                      [B, d]
        scores = torch.einsum("bd,de,fe,btf->bt", query, self.W_Q, self.W_K, keys)
        b = torch.softmax(scores / math.sqrt(self.d), dim=-1)  # b_{tT}, Eqn 1     [B, T−1]
        v = torch.zeros(len(b), self.M, dtype=b.dtype)
        v = v.scatter_add(-1, contexts, b)  # Xᵀ b_T: weights summed per token     [B, M]
        if self.normalize:  # LN
            v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)  #          [B, M]
        u_tilde = v @ self.U  # ũ_T = Uᵀ LN(Xᵀ b_T)                             [B, d]
        return u_tilde @ self.W_V.T @ self.U.T  # logits u_lᵀ W_V ũ_T, Eqn 2   [B, M]

    def attention(self, contexts: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Attention ``b_{tT}`` over the positions of ``contexts`` (``[B, T−1]``)."""
        _, Z = self.to_yz()
        return torch.softmax(Z[queries[:, None], contexts], dim=-1)


def full_to_yz(
    U: torch.Tensor, W_Q: torch.Tensor, W_K: torch.Tensor, W_V: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Y = U W_Vᵀ Uᵀ``, ``Z = U W_Q W_Kᵀ Uᵀ / √d``, batched over leading dimensions."""
    d = U.shape[-1]
    Ut = U.transpose(-1, -2)
    Y = U @ W_V.transpose(-1, -2) @ Ut
    Z = U @ W_Q @ W_K.transpose(-1, -2) @ Ut / math.sqrt(d)
    return Y, Z


def _check_tokens(contexts: torch.Tensor, queries: torch.Tensor, M: int) -> None:
    contexts = check_tensor("contexts", contexts, ndim=2)
    queries = check_tensor("queries", queries, shape=(contexts.shape[0],))
    for name, ids in (("contexts", contexts), ("queries", queries)):
        if ids.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= M):
            raise ValueError(f"{name} must hold token ids in [0, {M - 1}]")
