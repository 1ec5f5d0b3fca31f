"""The (Y, Z) model on class-grouped count batches: loss and Lemma 1's gradients in closed form.

Facts of the model make this cheap (Section 3.1, Lemma 1): without positional encoding a batch
is a count matrix; an example of class ``n`` has counts only on ``n``'s support (its common
tokens, then its distinct tokens), so only the entries ``z_{ψ(n), l}`` of ``Z`` for ``l`` in the
support and only the rows of ``Y`` of contextual tokens receive gradient; and the distinct rows
of ``Y`` belong to one class each. So the state is kept in blocks — ``Y_common [R, C, M]`` (the
common tokens' rows, ``C = num_common + num_queries·common_per_query``), ``Y_distinct
[R, K, U, M]`` (class ``n``'s distinct rows) and ``Z_query [R, num_queries, M]`` (the rows of
the query tokens) — and the distinct products run grouped by class (examples padded to the
largest class count) instead of densely over ``M × M``. Every other entry keeps its initial
value under SGD and Adam alike (zero gradient, zero moments), as long as there is no weight
decay; :func:`blocks_to_full` writes the blocks back into full matrices. At Fig 6's sizes a
step is bound by memory traffic over ``[runs, B, M]`` tensors, not by FLOPs, so a training loop
hands :func:`grouped_step` a :class:`Workspace` whose buffers the large intermediates reuse.

:func:`grouped_step` equals :func:`scansnap.models.yz_logits` + cross-entropy + autograd to
rounding (``tests/test_dynamics.py`` checks it for SGD and Adam, normalized or not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .data import SequenceClasses


@dataclass(frozen=True)
class Layout:
    """Where the blocks sit in ``Y`` and ``Z`` (the authors' token layout, PAPER.md B.0)."""

    M: int
    K: int
    num_queries: int
    num_common: int  # C: global + per-query common tokens, ids [0, C)
    distinct: int  # U per class, ids [C, C + K·U)
    first_query: int  # the query tokens' rows of Z: [first_query, first_query + num_queries)
    class_common: int  # common tokens one class sees (C_global + common_per_query)
    support: torch.Tensor  # [K, S] common then distinct token ids of each class
    class_query: torch.Tensor  # [K] query block of each class
    block: int  # classes per group: their distinct rows (contiguous) form one block of Y

    @classmethod
    def of(cls, classes: SequenceClasses) -> Layout:
        common = classes.num_common + classes.num_queries * classes.common_per_query
        K, U = classes.K, classes.distinct_per_next
        # Groups of b classes (b divides K) share one [b·U]-row block when U is so small that a
        # batched GEMM of [≈B/K, U] @ [U, M] matrices would be all per-matrix overhead; the zeros
        # of the other classes' columns cost FLOPs, so b·U stays at most _BLOCK_ROWS.
        block = max(b for b in range(1, K + 1) if K % b == 0 and (b == 1 or b * U <= _BLOCK_ROWS))
        return cls(M=classes.M, K=K, num_queries=classes.num_queries, num_common=common,
                   distinct=U, first_query=common + K * U,
                   class_common=classes.num_common + classes.common_per_query,
                   support=classes.support_index, class_query=classes.class_query, block=block)


@dataclass
class Grouping:
    """One class-grouped layout of a step's examples: groups of ``block`` classes (their
    distinct rows of ``Y`` are one ``[b·U]``-row block), ``G`` slots per group, per seed.

    ``order [D·groups·G]`` the example (flat over seeds, ``d·B + b``) in each slot (padding
    repeats the seed's example 0), ``filled [D, groups·G, 1]`` 1 for real slots, ``slot [D·B]``
    each example's slot (flat, ``d·groups·G + s``), ``columns [D, B, U]`` where an example's
    distinct tokens sit in its group's ``b·U`` rows; ``in_order``: the grouped layout is the
    batch itself (one group, or population), so no copies are needed.
    """

    block: int
    groups: int
    order: torch.Tensor
    filled: torch.Tensor
    slot: torch.Tensor
    columns: torch.Tensor
    in_order: bool

    @classmethod
    def of(cls, layout: Layout, n: torch.Tensor, dtype: torch.dtype) -> Grouping:
        """Sort each seed's classes ``n [D, B]`` by group of ``layout.block`` classes, then slot
        j of group k."""
        D, B = n.shape
        block = layout.block
        groups = layout.K // block
        group = n // block  # [D, B]
        per_group = torch.nn.functional.one_hot(group, groups).sum(1)  # [D, groups]
        G = max(int(per_group.max()), 1)
        sorted_group, order = torch.sort(group, dim=1, stable=True)  # [D, B]
        start = torch.cumsum(per_group, 1) - per_group  # first sorted position of each group
        rank = torch.arange(B, device=n.device) - start.gather(1, sorted_group)  # within group
        slot_sorted = sorted_group * G + rank
        slot = torch.empty_like(n).scatter_(1, order, slot_sorted)
        grouped = torch.zeros(D, groups * G, dtype=torch.long, device=n.device)
        grouped.scatter_(1, slot_sorted, order)
        filled = torch.zeros(D, groups * G, 1, dtype=dtype, device=n.device)
        filled.scatter_(1, slot_sorted[..., None], 1.0)
        seeds = torch.arange(D, device=n.device)[:, None]
        U = layout.distinct
        return cls(block=block, groups=groups, order=(seeds * B + grouped).reshape(-1),
                   filled=filled, slot=(seeds * groups * G + slot).reshape(-1),
                   columns=(n % block)[..., None] * U + torch.arange(U, device=n.device),
                   in_order=groups * G == B and bool(
                       (grouped == torch.arange(B, device=n.device)).all()))

    def group(self, distinct: torch.Tensor) -> torch.Tensor:
        """Per-example values on the distinct tokens ``[L, D, B, U]`` → the grouped layout
        ``[L, D, groups, G, b·U]`` (in the group's columns; pads are 0)."""
        L, D, B, U = distinct.shape
        if self.block > 1:
            distinct = distinct.new_zeros(L, D, B, self.block * U).scatter_(
                3, self.columns.expand(L, D, B, U), distinct)
        if not self.in_order:
            distinct = _rows(distinct, self.order, D) * self.filled
        return distinct.reshape(L, D, self.groups, -1, self.block * U)

    def regroup(self, rows: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Per-example rows ``[L, D, B, F]`` → ``[L, D, groups, G, F]`` (pads hold example 0's
        row: they meet zeros on the other side of every product); into ``out`` when given."""
        L, D, _, F = rows.shape
        rows = rows if self.in_order else _rows(rows, self.order, D, out)
        return rows.view(L, D, self.groups, -1, F)

    def ungroup(self, grouped: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Slot rows ``[L, D, groups, G, F]`` → each example's row ``[L, D, B, F]``."""
        L, D, F = grouped.shape[0], grouped.shape[1], grouped.shape[-1]
        grouped = grouped.reshape(L, D, -1, F)
        return grouped if self.in_order else _rows(grouped, self.slot, D, out)

    def slots(self) -> int:
        """``groups · G``: the rows of the grouped layout per run."""
        return self.filled.shape[1]

    def own_columns(self, values: torch.Tensor) -> torch.Tensor:
        """``[L, D, B, b·U]`` in the group's columns → the example's own ``[L, D, B, U]``."""
        if self.block == 1:
            return values
        L, D, B, U = *values.shape[:3], self.columns.shape[-1]
        return values.gather(3, self.columns.expand(L, D, B, U))


@dataclass
class GroupedBatch:
    """One step's examples, per seed ``D`` (batch size ``B``), indexed for :func:`grouped_step`.

    ``log_counts [D, B, S]`` (``-inf`` for absent tokens); ``z_index [D, B·S]`` into the
    flattened ``Z_query [num_queries·M]``; ``common_pos [D, B, C_n]`` the common tokens' rows;
    ``grouping`` the class-grouped layout of the distinct products (:class:`Grouping`, groups of
    ``Layout.block`` classes);
    ``targets [D, B, 1]`` and ``minus_one [D, B, 1]`` (for ``p − e_target``).
    """

    log_counts: torch.Tensor
    z_index: torch.Tensor
    common_pos: torch.Tensor
    grouping: Grouping
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
        return cls(log_counts=counts.log(),
                   z_index=(rows[..., None] * layout.M + support).reshape(D, -1),
                   common_pos=support[..., : layout.class_common],
                   grouping=Grouping.of(layout, n, counts.dtype),
                   targets=targets[..., None],
                   minus_one=counts.new_full((D, B, 1), -1.0),
                   common_in_order=layout.class_common == layout.num_common)


def grouped_step(
    layout: Layout,
    Y_common: torch.Tensor,
    Y_distinct: torch.Tensor,
    Z_query: torch.Tensor,
    batch: GroupedBatch,
    *,
    normalize: bool = True,
    workspace: Workspace | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-run mean cross-entropy ``[R]`` and its gradients ``[∂Y_common, ∂Y_distinct, ∂Z_query]``.

    Runs ``R = L·D`` are ordered with the ``D`` seeds fastest, so each seed's batch serves its
    ``L`` learning-rate pairs by broadcasting. The forward is ``Yᵀ LN(Xᵀ b_T)`` of Section 3.1
    with ``Xᵀ b_T = q ⊙ exp(z_{ψ(n)}) / Σ q ⊙ exp(z_{ψ(n)})`` over the class's support; the
    backward is Lemma 1 (``∂Y = f (p − e_target)ᵀ``, and the softmax-through-LN chain for ``Z``).
    ``workspace``: a :class:`Workspace` a training loop passes on every step to reuse the large
    intermediates' storage (default: fresh tensors); the returned ``∂Y_distinct`` then lives in
    it, valid until the next call.
    """
    D, B, S = batch.log_counts.shape
    R, C, M = Y_common.shape
    L, Cn = R // D, layout.class_common
    Yc = Y_common.view(L, D, C, M)
    Zf = Z_query.view(L, D, -1)
    grouping = batch.grouping
    space = workspace if workspace is not None else Workspace()

    # forward: attention over the support, then the decoder, common rows + class's distinct rows
    w, norm, u = _attention(Zf, batch, normalize)  # Xᵀ b_T and f = LN(Xᵀ b_T)  [L, D, B, S]
    common_pos = batch.common_pos.expand(L, D, B, Cn)
    if batch.common_in_order:  # the class's common tokens are all of them, ids 0..C-1
        u_common = u[..., :Cn]
    else:
        u_common = u.new_zeros(L, D, B, C).scatter_(3, common_pos, u[..., :Cn])  # [L, D, B, C]
    u_distinct = u[..., Cn:]  # [L, D, B, U]
    u_grouped = grouping.group(u_distinct)  # pads are 0                 [L, D, groups, G, b·U]
    Yd = Y_distinct.view(L, D, grouping.groups, -1, M)  # a group's rows are contiguous
    grouped_logits = _bmm(u_grouped, Yd, space.take(  # each example's row of its class's block
        "logits" if grouping.in_order else "grouped logits", (L, D, grouping.slots(), M), u))
    logits = grouping.ungroup(grouped_logits, space.take("logits", (L, D, B, M), u))
    _add_mm(logits, u_common, Yc)  # + the common rows, in place                    [L, D, B, M]
    # one pass for both the loss and its gradient (aten's out= form of torch.softmax: the
    # public one has no out=, and a fresh [L, D, B, M] costs page faults every step)
    p = torch.ops.aten._softmax.out(logits, -1, False, out=space.take("p", logits.shape, logits))
    targets = batch.targets.expand(L, D, B, 1)
    loss = -_log_target(logits, p, targets).view(R, B).mean(-1)

    # backward (Lemma 1): g = ∂J/∂logits = (p − e_target)/B; the 1/B goes on the small factors
    g = p.scatter_add_(-1, targets, batch.minus_one.expand(L, D, B, 1))  # in place  [L, D, B, M]
    g_grouped = grouping.regroup(g, space.take("grouped g", (L, D, grouping.slots(), M), g))
    # (transposes made contiguous first: MKL's batched GEMM is several times slower on views)
    grad_Yc = _mm((u_common.transpose(-1, -2) / B).contiguous(), g)  # [L, D, C, M]
    grad_Yd = _bmm((u_grouped.transpose(-1, -2) / B).contiguous(), g_grouped,
                   space.take("grad Y_distinct", Y_distinct.shape, g))
    du_common = _mm(g, Yc.transpose(-1, -2))  # [L, D, B, C]
    if not batch.common_in_order:
        du_common = du_common.gather(3, common_pos)  # [L, D, B, Cn]
    du_distinct = grouping.own_columns(grouping.ungroup(_mm(g_grouped, Yd.transpose(-1, -2))))
    du = torch.cat([du_common, du_distinct], dim=-1).div_(B)  # ∂J/∂f               [L, D, B, S]
    grad_Z = _attention_backward(Zf, batch, w, norm, u, du)
    return loss, [grad_Yc.reshape(Y_common.shape), grad_Yd.reshape(Y_distinct.shape),
                  grad_Z.reshape(Z_query.shape)]


def _bmm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``a @ b`` batched over the leading dimensions (``a`` contiguous, ``b`` a view of
    contiguous blocks), written into ``out``."""
    rows, inner, cols = a.shape[-2], a.shape[-1], b.shape[-1]
    torch.bmm(a.reshape(-1, rows, inner), b.reshape(-1, inner, cols),
              out=out.view(-1, rows, cols))
    return out.view(*a.shape[:-1], cols)


def expected_step(
    layout: Layout,
    Y_common: torch.Tensor,
    Y_distinct: torch.Tensor,
    Z_query: torch.Tensor,
    batch: GroupedBatch,
    *,
    normalize: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """:func:`grouped_step` for population dynamics (Lemma 2): the fixed "batch" of one example
    per class, ``n = 0..K−1`` (``batch`` built with ``n = arange(K)[None]``), so each example
    meets only its own class's distinct rows and the products are per-class vector–matrix
    ones — far fewer operations than the general grouped layout, which this size is bound by."""
    R, C, M = Y_common.shape
    K, U, Cn = layout.K, layout.distinct, layout.class_common
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
    return loss, [grad_Yc, grad_Yd, grad_Z.view(Z_query.shape)]


def _attention(Zf: torch.Tensor, batch: GroupedBatch, normalize: bool
               ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``w = Xᵀ b_T = softmax(z_{ψ(n)} + log q)`` on each example's support, its norm and
    ``f = LN(w)`` (Section 3.1), from the flat query rows ``Zf [L, D, num_queries·M]``."""
    L, D = Zf.shape[:2]
    _, B, S = batch.log_counts.shape
    z = Zf.gather(2, batch.z_index.expand(L, D, B * S)).view(L, D, B, S)  # z_{ψ(n), l}
    w = torch.softmax(z + batch.log_counts, dim=-1)
    norm = torch.linalg.vector_norm(w, dim=-1, keepdim=True) if normalize else None
    return w, norm, (w / norm if norm is not None else w)


def _attention_backward(Zf: torch.Tensor, batch: GroupedBatch, w: torch.Tensor,
                        norm: torch.Tensor | None, u: torch.Tensor, du: torch.Tensor
                        ) -> torch.Tensor:
    """``∂J/∂Zf`` from ``∂J/∂f`` (Lemma 1's chain through LN and the softmax).

    With LN, ``∂J/∂w = (I − f fᵀ) ∂J/∂f / ‖w‖`` is orthogonal to ``w = ‖w‖ f``, so the softmax's
    ``w ⊙ (∂J/∂w − w·∂J/∂w)`` reduces to ``f ⊙ (∂J/∂f − f (f·∂J/∂f))``."""
    L, D = Zf.shape[:2]
    _, B, S = batch.log_counts.shape
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
_BLOCK_ROWS = 10  # largest b·U of a group of classes (measured: with the products written into a
# Workspace, groups of one class (U = 10) are as fast as or faster than any larger for Fig 6's M)


def _rows(values: torch.Tensor, flat_index: torch.Tensor, D: int,
          out: torch.Tensor | None = None) -> torch.Tensor:
    """Whole rows of ``values [L, D, ..., F]`` (middle dimensions flattened, seeds first) at
    ``flat_index [D·I]`` → ``[L, D, I, F]``: one copy per row, into ``out`` when given."""
    L, F = values.shape[0], values.shape[-1]
    rows = values.reshape(-1, F)
    index = (torch.arange(L, device=values.device)[:, None] * (rows.shape[0] // L)
             + flat_index).reshape(-1)
    if out is None:
        return rows.index_select(0, index).view(L, D, -1, F)
    return torch.index_select(rows, 0, index, out=out.view(-1, F)).view(L, D, -1, F)


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
    """``[Y_common, Y_distinct, Z_query]`` (copies) of full ``Y, Z [R, M, M]``."""
    R, M, C, K, U = Y.shape[0], layout.M, layout.num_common, layout.K, layout.distinct
    q0 = layout.first_query
    return [Y[:, :C].clone(), Y[:, C:q0].reshape(R, K, U, M).clone(),
            Z[:, q0:q0 + layout.num_queries].clone()]


def blocks_to_full(layout: Layout, blocks: list[torch.Tensor], Y: torch.Tensor,
                   Z: torch.Tensor) -> None:
    """Write the blocks into full ``Y, Z [R, M, M]`` in place (the other entries are kept)."""
    Y_common, Y_distinct, Z_query = blocks
    C, q0 = layout.num_common, layout.first_query
    Y[:, :C] = Y_common
    Y[:, C:q0] = Y_distinct.reshape(Y.shape[0], -1, layout.M)
    Z[:, q0:q0 + layout.num_queries] = Z_query
