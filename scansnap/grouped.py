"""The (Y, Z) model on class-grouped count batches: loss and Lemma 1's gradients in closed form.

Facts of the model make this cheap (Section 3.1, Lemma 1): without positional encoding a batch
is a count matrix; an example of class ``n`` has counts only on ``n``'s support (its ``S``
common and distinct tokens), so only the entries ``z_{ψ(n), l}`` of ``Z`` for ``l`` in the
support and only the rows of ``Y`` of contextual tokens receive gradient. So the state is kept
in two blocks — ``Y_context [R, C + K·U, M]`` (the rows of the common tokens,
``C = num_common + num_queries·common_per_query``, then of the ``K·U`` distinct tokens) and
``Z_query [R, num_queries, M]`` (the rows of the query tokens) — and each example's logits
are the sum of its ``S`` rows of ``Y`` instead of a product over ``M × M``. Every other entry
keeps its initial value under SGD and Adam alike (zero gradient, zero moments), as long as there
is no weight decay; :func:`blocks_to_full` writes the blocks back into full matrices. At Fig 6's
sizes a step is bound by memory traffic over ``[runs, B, M]`` tensors, so a training loop hands
:func:`grouped_step` a :class:`Workspace` whose buffers the large intermediates reuse.

:func:`grouped_step` equals :func:`scansnap.models.yz_logits` + cross-entropy + autograd to
rounding (``tests/test_dynamics.py`` checks it for SGD and Adam, normalized or not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .data import SequenceClasses
from .models import context_attention


@dataclass(frozen=True)
class Layout:
    """Where the blocks sit in ``Y`` and ``Z`` (the authors' token layout, PAPER.md B.0)."""

    M: int
    K: int
    num_queries: int
    num_common: int  # C: global + per-query common tokens, ids [0, C)
    distinct: int  # U per class, ids [C, C + K·U)
    first_query: int  # the contextual rows of Y end here; the query tokens' rows of Z start here
    class_common: int  # common tokens one class sees (C_global + common_per_query)
    support: torch.Tensor  # [K, S] common then distinct token ids of each class
    class_query: torch.Tensor  # [K] query block of each class

    @classmethod
    def of(cls, classes: SequenceClasses) -> Layout:
        common = classes.num_common + classes.num_queries * classes.common_per_query
        K, U = classes.K, classes.distinct_per_next
        return cls(M=classes.M, K=K, num_queries=classes.num_queries, num_common=common,
                   distinct=U, first_query=common + K * U,
                   class_common=classes.num_common + classes.common_per_query,
                   support=classes.support_index, class_query=classes.class_query)


@dataclass
class GroupedBatch:
    """One step's examples, per seed ``D`` (batch size ``B``), indexed for :func:`grouped_step`.

    ``counts [D, B, S]`` of the support tokens; ``support [D, B, S]`` each example's
    support, i.e. its rows of ``Y_context``; ``z_index [D, B·S]`` into the flattened
    ``Z_query [num_queries·M]``; ``common_pos [D, B, C_n]`` the common tokens' rows;
    ``targets [D, B, 1]`` and ``minus_one [D, B, 1]`` (for ``p − e_target``).
    """

    counts: torch.Tensor
    support: torch.Tensor
    z_index: torch.Tensor
    common_pos: torch.Tensor
    targets: torch.Tensor
    minus_one: torch.Tensor
    common_in_order: bool  # every class sees exactly the common tokens 0..C-1: no scatter

    @classmethod
    def build(cls, layout: Layout, n: torch.Tensor, counts: torch.Tensor,
              targets: torch.Tensor) -> GroupedBatch:
        """From classes ``n [D, B]``, support counts ``[D, B, S]`` and targets ``[D, B]``."""
        D, B = n.shape
        support = layout.support.to(n.device)[n]  # [D, B, S]
        rows = layout.class_query.to(n.device)[n]  # [D, B]
        return cls(counts=counts, support=support,
                   z_index=(rows[..., None] * layout.M + support).reshape(D, -1),
                   common_pos=support[..., : layout.class_common],
                   targets=targets[..., None],
                   minus_one=counts.new_full((D, B, 1), -1.0),
                   common_in_order=layout.class_common == layout.num_common)


def grouped_step(
    layout: Layout,
    Y_context: torch.Tensor,
    Z_query: torch.Tensor,
    batch: GroupedBatch,
    *,
    normalize: bool = True,
    workspace: Workspace | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-run mean cross-entropy ``[R]`` and its gradients ``[∂Y_context, ∂Z_query]``.

    Runs ``R = L·D`` are ordered with the ``D`` seeds fastest, so each seed's batch serves its
    ``L`` learning-rate pairs by broadcasting. The forward is ``Yᵀ LN(Xᵀ b_T)`` of Section 3.1
    with ``Xᵀ b_T = q ⊙ exp(z_{ψ(n)}) / Σ q ⊙ exp(z_{ψ(n)})`` over the class's support ``S``
    tokens: each example's logits are the sum of its ``S`` rows of ``Y`` weighted by ``f``
    (``embedding_bag``, which never forms the ``[.., S, M]`` gathered rows). The backward is
    Lemma 1 (``∂Y = f (p − e_target)ᵀ``, and the softmax-through-LN chain for ``Z``): ``∂Y``
    as one dense product over the contextual rows (``f`` scattered to ``[B, C + K·U]``) —
    more multiply-adds than the support needs, but a GEMM with an inner dimension of ``B``,
    where per-class products of ``U`` rows run far from the core's peak (and need examples
    regrouped by class) — and ``∂J/∂f`` likewise while the rows are few next to ``S``.
    ``workspace``: a :class:`Workspace` a training loop passes on every step to reuse the large
    intermediates' storage (default: fresh tensors); the returned ``∂Y_context`` then lives in
    it, valid until the next call.
    """
    D, B, S = batch.counts.shape
    R, rows, M = Y_context.shape
    L = R // D
    Zf = Z_query.view(L, D, -1)
    space = workspace if workspace is not None else Workspace()

    # forward: attention over the support, then the decoder: Σ_s f_s · Y[support_s]
    w, norm, u = _attention(Zf, batch, normalize)  # Xᵀ b_T and f = LN(Xᵀ b_T)  [L, D, B, S]
    run_rows = torch.arange(R, device=u.device).view(L, D, 1, 1) * rows
    bags = (run_rows + batch.support).view(-1, S)  # each example's rows of Y_context [R·B, S]
    # ∂J/∂f on the support: a dense product over every contextual row while those are few
    # (a GEMM runs near peak), else the gradient of embedding_bag's weights (S rows each)
    sparse_du = rows > _DENSE_ROWS_PER_SUPPORT * S
    weights = u.reshape(-1, S).detach().requires_grad_(sparse_du)
    with torch.enable_grad():
        graph = torch.nn.functional.embedding_bag(bags, Y_context.view(-1, M), mode="sum",
                                                  per_sample_weights=weights)  # [R·B, M]
    logits = graph.detach().view(L, D, B, M)
    # one pass for both the loss and its gradient (aten's out= form of torch.softmax: the
    # public one has no out=, and a fresh [L, D, B, M] costs page faults every step)
    p = torch.ops.aten._softmax.out(logits, -1, False, out=space.take("p", logits.shape, logits))
    targets = batch.targets.expand(L, D, B, 1)
    loss = -_log_target(logits, p, targets).view(R, B).mean(-1)

    # backward (Lemma 1): g = ∂J/∂logits = (p − e_target)/B; the 1/B goes on the small factors
    g = p.scatter_add_(-1, targets, batch.minus_one.expand(L, D, B, 1))  # in place  [L, D, B, M]
    support = batch.support.expand(L, D, B, S)
    f_rows = space.take("f rows", (L, D, B, rows), u).zero_().scatter_(3, support, u / B)
    grad_Y = torch.bmm(f_rows.view(R, B, rows).transpose(1, 2), g.view(R, B, M),
                       out=space.take("grad Y", Y_context.shape, g))  # f gᵀ  [R, rows, M]
    if sparse_du:
        du = torch.autograd.grad(graph, weights, g.view(-1, M))[0].view(L, D, B, S).div_(B)
    else:
        g_Y = torch.bmm(g.view(R, B, M), Y_context.transpose(1, 2),
                        out=space.take("g Y", (R, B, rows), g))  # on every row    [R, B, rows]
        du = g_Y.view(L, D, B, rows).gather(3, support).div_(B)  # on the support [L, D, B, S]
    grad_Z = _attention_backward(Zf, batch, w, norm, u, du)
    return loss, [grad_Y, grad_Z.reshape(Z_query.shape)]


def expected_step(
    layout: Layout,
    Y_context: torch.Tensor,
    Z_query: torch.Tensor,
    batch: GroupedBatch,
    *,
    normalize: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """:func:`grouped_step` for population dynamics (Lemma 2): the fixed "batch" of one example
    per class, ``n = 0..K−1`` (``batch`` built with ``n = arange(K)[None]``), so each example
    meets only its own class's distinct rows and the products are per-class vector–matrix
    ones — far fewer operations than the general step's, which this size is bound by."""
    R, M = Y_context.shape[0], layout.M
    C, K, U, Cn = layout.num_common, layout.K, layout.distinct, layout.class_common
    Y_common, Y_distinct = Y_context[:, :C], Y_context[:, C:].view(R, K, U, M)  # views
    Zf = Z_query.view(R, 1, -1)
    w, norm, u = _attention(Zf, batch, normalize)  # [R, 1, K, S]
    u = u.view(R, K, -1)
    if batch.common_in_order:
        u_common = u[..., :Cn]
    else:
        u_common = u.new_zeros(R, K, C).scatter_(2, batch.common_pos.view(1, K, Cn).expand(R, K, Cn),
                                                 u[..., :Cn])
    u_distinct = u[..., Cn:, None]  # [R, K, U, 1]
    logits = _mm(u_distinct.transpose(-1, -2), Y_distinct).view(R, K, M)
    _add_mm(logits, u_common, Y_common)  # [R, K, M]
    log_p = torch.log_softmax(logits, dim=-1)
    targets = batch.targets.view(1, K, 1).expand(R, K, 1)
    loss = -log_p.gather(-1, targets).view(R, K).mean(-1)
    g = log_p.exp_().scatter_add_(-1, targets, batch.minus_one.view(1, K, 1).expand(R, K, 1))
    g /= K  # ∂J/∂logits = (p − e_target)/K                                           [R, K, M]
    grad_Yc = _mm(u_common.transpose(-1, -2), g)  # [R, C, M]
    grad_Yd = u_distinct * g[:, :, None, :]  # each class's own rows: f_n (p − e_n)ᵀ  [R, K, U, M]
    du_common = _mm(g, Y_common.transpose(-1, -2))  # [R, K, C]
    if not batch.common_in_order:
        du_common = du_common.gather(2, batch.common_pos.view(1, K, Cn).expand(R, K, Cn))
    du_distinct = _mm(Y_distinct, g[..., None]).view(R, K, U)
    du = torch.cat([du_common, du_distinct], dim=-1).view(R, 1, K, -1)
    grad_Z = _attention_backward(Zf, batch, w, norm, u.view(R, 1, K, -1), du)
    return loss, [torch.cat([grad_Yc, grad_Yd.view(R, K * U, M)], 1), grad_Z.view(Z_query.shape)]


def _attention(Zf: torch.Tensor, batch: GroupedBatch, normalize: bool
               ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``w = Xᵀ b_T = softmax(z_{ψ(n)} + log q)`` on each example's support, its norm and
    ``f = LN(w)`` (Section 3.1), from the flat query rows ``Zf [L, D, num_queries·M]``."""
    L, D = Zf.shape[:2]
    _, B, S = batch.counts.shape
    z = Zf.gather(2, batch.z_index.expand(L, D, B * S)).view(L, D, B, S)  # z_{ψ(n), l}
    w = context_attention(z, batch.counts)  # models' formula on the support
    norm = torch.linalg.vector_norm(w, dim=-1, keepdim=True) if normalize else None
    return w, norm, (w / norm if norm is not None else w)


def _attention_backward(Zf: torch.Tensor, batch: GroupedBatch, w: torch.Tensor,
                        norm: torch.Tensor | None, u: torch.Tensor, du: torch.Tensor
                        ) -> torch.Tensor:
    """``∂J/∂Zf`` from ``∂J/∂f`` (Lemma 1's chain through LN and the softmax).

    With LN, ``∂J/∂w = (I − f fᵀ) ∂J/∂f / ‖w‖`` is orthogonal to ``w = ‖w‖ f``, so the softmax's
    ``w ⊙ (∂J/∂w − w·∂J/∂w)`` reduces to ``f ⊙ (∂J/∂f − f (f·∂J/∂f))``."""
    L, D = Zf.shape[:2]
    _, B, S = batch.counts.shape
    if norm is not None:
        dz = u * torch.addcmul(du, u, torch.linalg.vecdot(u, du).unsqueeze(-1), value=-1.0)
    else:
        dz = w * (du - torch.linalg.vecdot(w, du).unsqueeze(-1))  # [L, D, B, S]
    return torch.zeros_like(Zf).scatter_add_(2, batch.z_index.expand(L, D, B * S),
                                             dz.reshape(L, D, B * S))


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched ``a @ b``; tiny matrices (population dynamics: one example per class) as one
    broadcast multiply-and-sum, which beats a batched GEMM's per-matrix overhead there."""
    if a.shape[-2] * a.shape[-1] * b.shape[-1] <= _TINY:
        return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)
    return a @ b


def _add_mm(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``out += a @ b`` in place (batched over the leading dimensions), as one GEMM pass."""
    if a.shape[-2] * a.shape[-1] * b.shape[-1] <= _TINY:
        out += _mm(a, b)
        return
    rows, inner, cols = a.shape[-2], a.shape[-1], b.shape[-1]
    out.view(-1, rows, cols).baddbmm_(a.reshape(-1, rows, inner), b.reshape(-1, inner, cols))


def _log_target(logits: torch.Tensor, p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log p[target]`` from the softmax ``p``; where ``p[target]`` underflowed to 0, from the
    logits (``logit[target] − logsumexp``), as ``log_softmax`` would give."""
    log_p = p.gather(-1, targets).log()
    lost = log_p == -math.inf
    if bool(lost.any()):
        exact = logits.gather(-1, targets) - torch.logsumexp(logits, -1, keepdim=True)
        log_p = torch.where(lost, exact, log_p)
    return log_p


_TINY = 1024  # multiply-adds per matrix below which _mm broadcasts
_DENSE_ROWS_PER_SUPPORT = 8  # measured (Fig 6's panels, 1 thread): the dense ∂J/∂f is faster for
# M = 33, 79, 125 (rows/S = 1.5, 3.5, 5.5), embedding_bag's own gradient for M = 240 (10.5)


class Workspace:
    """Storage for one training loop's large per-step intermediates, reused from step to step.

    A fresh tensor of tens of MB costs the operating system's page faults on every step (more
    than the copy into it); with a workspace each named buffer is allocated once, at its
    largest size. The buffers are overwritten by the next step: nothing returned aliases them.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialized contiguous tensor of ``shape`` (dtype and device of ``like``)."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if (buffer is None or buffer.numel() < size or buffer.dtype != like.dtype
                or buffer.device != like.device):
            # a little headroom: the grouped layouts' padding varies from step to step
            buffer = torch.empty(size + size // 4, dtype=like.dtype, device=like.device)
            self._buffers[name] = buffer
        return buffer[:size].view(shape)


def full_to_blocks(layout: Layout, Y: torch.Tensor, Z: torch.Tensor) -> list[torch.Tensor]:
    """``[Y_context, Z_query]`` (copies) of full ``Y, Z [R, M, M]``: the contextual tokens' rows
    of ``Y`` and the query tokens' rows of ``Z``."""
    q0 = layout.first_query
    return [Y[:, :q0].clone(), Z[:, q0:q0 + layout.num_queries].clone()]


def blocks_to_full(layout: Layout, blocks: list[torch.Tensor], Y: torch.Tensor,
                   Z: torch.Tensor) -> None:
    """Write the blocks into full ``Y, Z [R, M, M]`` in place (the other entries are kept)."""
    Y_context, Z_query = blocks
    q0 = layout.first_query
    Y[:, :q0] = Y_context
    Z[:, q0:q0 + layout.num_queries] = Z_query
