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
decay; :func:`blocks_to_full` writes the blocks back into full matrices.

:func:`grouped_step` equals :func:`scansnap.models.yz_logits` + cross-entropy + autograd to
rounding (``tests/test_dynamics.py`` checks it for SGD and Adam, normalized or not).
"""

from __future__ import annotations

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

    @classmethod
    def of(cls, classes: SequenceClasses) -> Layout:
        common = classes.num_common + classes.num_queries * classes.common_per_query
        return cls(M=classes.M, K=classes.K, num_queries=classes.num_queries, num_common=common,
                   distinct=classes.distinct_per_next,
                   first_query=common + classes.K * classes.distinct_per_next,
                   class_common=classes.num_common + classes.common_per_query,
                   support=classes.support_index, class_query=classes.class_query)


@dataclass
class GroupedBatch:
    """One step's examples, per seed ``D`` (batch size ``B``), indexed for :func:`grouped_step`.

    ``log_counts [D, B, S]`` (``-inf`` for absent tokens); ``z_index [D, B·S]`` into the
    flattened ``Z_query [num_queries·M]``; ``common_pos [D, B, C_n]`` the common tokens' rows;
    ``order [D, K·G]`` the example in each slot of the class-grouped layout (``G`` slots per
    class, padding repeats example 0), ``filled [D, K·G, 1]`` 1 for real slots, ``slot [D, B]``
    each example's slot; ``targets [D, B]``.
    """

    log_counts: torch.Tensor
    z_index: torch.Tensor
    common_pos: torch.Tensor
    order: torch.Tensor
    filled: torch.Tensor
    slot: torch.Tensor
    targets: torch.Tensor

    @classmethod
    def build(cls, layout: Layout, n: torch.Tensor, counts: torch.Tensor,
              targets: torch.Tensor) -> GroupedBatch:
        """From classes ``n [D, B]``, support counts ``[D, B, S]`` and targets ``[D, B]``."""
        D, B = n.shape
        support = layout.support.to(n.device)[n]  # [D, B, S]
        rows = layout.class_query.to(n.device)[n]  # [D, B]
        z_index = (rows[..., None] * layout.M + support).reshape(D, -1)
        # Class-grouped slots: sort each seed's examples by class, then slot j of class k.
        per_class = torch.nn.functional.one_hot(n, layout.K).sum(1)  # [D, K]
        G = max(int(per_class.max()), 1)
        sorted_n, order = torch.sort(n, dim=1, stable=True)  # [D, B]
        start = torch.cumsum(per_class, 1) - per_class  # first sorted position of each class
        rank = torch.arange(B, device=n.device) - start.gather(1, sorted_n)  # rank within class
        slot_sorted = sorted_n * G + rank
        slot = torch.empty_like(n).scatter_(1, order, slot_sorted)
        grouped = torch.zeros(D, layout.K * G, dtype=torch.long, device=n.device)
        grouped.scatter_(1, slot_sorted, order)
        filled = torch.zeros(D, layout.K * G, 1, dtype=counts.dtype, device=n.device)
        filled.scatter_(1, slot_sorted[..., None], 1.0)
        return cls(log_counts=counts.log(), z_index=z_index,
                   common_pos=support[..., : layout.class_common], order=grouped,
                   filled=filled, slot=slot, targets=targets)


def grouped_step(
    layout: Layout,
    Y_common: torch.Tensor,
    Y_distinct: torch.Tensor,
    Z_query: torch.Tensor,
    batch: GroupedBatch,
    *,
    normalize: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-run mean cross-entropy ``[R]`` and its gradients ``[∂Y_common, ∂Y_distinct, ∂Z_query]``.

    Runs ``R = L·D`` are ordered with the ``D`` seeds fastest, so each seed's batch serves its
    ``L`` learning-rate pairs by broadcasting. The forward is ``Yᵀ LN(Xᵀ b_T)`` of Section 3.1
    with ``Xᵀ b_T = q ⊙ exp(z_{ψ(n)}) / Σ q ⊙ exp(z_{ψ(n)})`` over the class's support; the
    backward is Lemma 1 (``∂Y = f (p − e_target)ᵀ``, and the softmax-through-LN chain for ``Z``).
    """
    D, B, S = batch.log_counts.shape
    R, C, M = Y_common.shape
    L, K, U, Cn = R // D, layout.K, layout.distinct, layout.class_common
    slots = batch.order.shape[1]
    Yc = Y_common.view(L, D, C, M)
    Yd = Y_distinct.view(L, D, K, U, M)
    Zf = Z_query.view(L, D, -1)

    # forward: attention over the support, then the decoder, common rows + class's distinct rows
    z = Zf.gather(2, batch.z_index.expand(L, D, B * S)).view(L, D, B, S)  # z_{ψ(n), l}
    w = torch.softmax(z + batch.log_counts, dim=-1)  # Xᵀ b_T on the support        [L, D, B, S]
    norm = torch.linalg.vector_norm(w, dim=-1, keepdim=True) if normalize else None
    u = w / norm if normalize else w  # f = LN(Xᵀ b_T)                               [L, D, B, S]
    common_pos = batch.common_pos.expand(L, D, B, Cn)
    u_common = u.new_zeros(L, D, B, C).scatter_(3, common_pos, u[..., :Cn])  # [L, D, B, C]
    order = batch.order[..., None]
    u_grouped = u[..., Cn:].gather(2, order.expand(L, D, slots, U)) * batch.filled
    u_grouped = u_grouped.view(L, D, K, -1, U)  # pads are 0                       [L, D, K, G, U]
    logits = u_common @ Yc  # [L, D, B, M]
    logits += _rows(u_grouped @ Yd, batch.slot)  # each example's row of its class's block
    log_p = torch.log_softmax(logits, dim=-1)
    targets = batch.targets[..., None].expand(L, D, B, 1)
    loss = -log_p.gather(-1, targets).mean((-1, -2)).reshape(R)

    # backward (Lemma 1): g = ∂J/∂logits = (p − e_target)/B
    g = log_p.exp_()  # p, in place: log_p is no longer needed                      [L, D, B, M]
    g.scatter_add_(-1, targets, g.new_full((1,), -1.0).expand(L, D, B, 1)).div_(B)
    g_grouped = _rows(g, batch.order).view(L, D, K, -1, M)  # [L, D, K, G, M]
    # (transposes made contiguous first: MKL's batched GEMM is several times slower on views)
    grad_Yc = u_common.transpose(-1, -2).contiguous() @ g  # [L, D, C, M]
    grad_Yd = u_grouped.transpose(-1, -2).contiguous() @ g_grouped  # [L, D, K, U, M]
    du_common = (g @ Yc.transpose(-1, -2)).gather(3, common_pos)  # [L, D, B, Cn]
    du_distinct = _rows(g_grouped @ Yd.transpose(-1, -2), batch.slot)  # [L, D, B, U]
    du = torch.cat([du_common, du_distinct], dim=-1)  # ∂J/∂f                       [L, D, B, S]
    dw = (du - u * (u * du).sum(-1, keepdim=True)) / norm if normalize else du  # through LN
    dz = w * (dw - (w * dw).sum(-1, keepdim=True))  # through the softmax           [L, D, B, S]
    grad_Z = torch.zeros_like(Zf).scatter_add_(2, batch.z_index.expand(L, D, B * S),
                                               dz.reshape(L, D, B * S))
    return loss, [grad_Yc.reshape(Y_common.shape), grad_Yd.reshape(Y_distinct.shape),
                  grad_Z.reshape(Z_query.shape)]


def _rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``out[l, d, i] = values[l, d, index[d, i]]`` for ``values [L, D, ..., F]`` whose middle
    dimensions flatten to the indexed axis and ``index [D, I]``: whole rows, one copy each."""
    L, D, F = values.shape[0], values.shape[1], values.shape[-1]
    rows = values.reshape(L, -1, F)
    per_seed = rows.shape[1] // D
    flat = (torch.arange(D, device=index.device)[:, None] * per_seed + index).reshape(-1)
    return rows.index_select(1, flat).view(L, D, index.shape[1], F)


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
