"""Attention statistics of the WikiText LM's maps (PAPER.md B.8 / Fig 7, B.9 / Fig 10).

Every function takes maps ``[..., L, L]`` (rows: queries, columns: keys, the authors' causal mask
with self included) and averages over the leading axes. The entropy is the authors' measure
(``decoder_wiki.py``: ``-Σ a log(a + 1e-8)``); the others measure how the real model departs from
the theory's assumptions (self-attention, positions, freezing, which tokens win).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .._validate import as_int_list, check_int, check_tensor

__all__ = [
    "ENTROPY_EPS", "TOKEN_GROUPS", "attention_entropy", "row_entropy", "uniform_entropy",
    "uniform_attention", "self_mass", "offset_profile", "top_weight", "top_key_agreement",
    "row_change", "key_mass", "token_group_shares",
]

ENTROPY_EPS = 1e-8  # as the authors' decoder_wiki.py: -sum a log(a + 1e-8)


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean over all leading axes and queries of ``-Σ_k a log(a + 1e-8)`` (decoder_wiki.py)."""
    return -(weights * torch.log(weights + ENTROPY_EPS)).sum(-1).mean()


def _maps(name: str, maps: torch.Tensor) -> torch.Tensor:
    maps = check_tensor(name, maps)
    if maps.ndim < 2 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"{name} must be attention maps [..., L, L], got shape {list(maps.shape)}")
    if maps.shape[-1] < 2:
        raise ValueError(f"{name} must have at least 2 positions, got L = {maps.shape[-1]}")
    return maps


def _same_shape(before: torch.Tensor, after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    before, after = _maps("before", before), _maps("after", after)
    if before.shape != after.shape:
        raise ValueError(f"before and after must have the same shape, got {list(before.shape)} and "
                         f"{list(after.shape)}")
    return before, after


def row_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each attention row, ``-Σ_k a log(a + 1e-8)``:
    ``[..., L, L]`` → ``[..., L]``."""
    weights = _maps("weights", weights)
    return -(weights * torch.log(weights + ENTROPY_EPS)).sum(-1)


def uniform_entropy(length: int) -> float:
    """Mean row entropy of *uniform* causal attention over ``length`` positions, self included:
    row ``i`` spreads over ``i + 1`` keys, so the mean is ``(1/L) Σ_i ln(i+1) = ln(L!)/L`` —
    the ceiling of :func:`attention_entropy` for the authors' mask."""
    length = check_int("length", length, low=1)
    return math.lgamma(length + 1) / length


def uniform_attention(length: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniform causal attention ``[L, L]``, self included: row ``i`` puts ``1/(i+1)`` on keys
    ``0..i`` — the content-blind baseline of the statistics below (e.g. ``self_mass`` of it is
    the self-weight a rule ignoring the tokens would give)."""
    length = check_int("length", length, low=1)
    uniform = torch.ones(length, length, dtype=dtype).tril()  # [L, L]
    return uniform / uniform.sum(-1, keepdim=True)


def self_mass(maps: torch.Tensor) -> float:
    """Mean weight a query puts on *itself* (the diagonal), over rows ``1..L-1`` and all leading
    axes (row 0 can attend only to itself). The theory's query never attends to itself."""
    maps = _maps("maps", maps)
    return float(maps.diagonal(dim1=-2, dim2=-1)[..., 1:].mean())


def offset_profile(maps: torch.Tensor, max_offset: int = 5) -> torch.Tensor:
    """Mean weight on the key ``k`` positions back (``k = 0`` self, ``1`` the previous token, ...),
    ``k = 0..max_offset``, over the rows ``i >= max_offset`` (which have all these keys) and all
    leading axes. A content-only rule (the theory: no positional encoding) has no reason to favour
    any offset; a peak at small ``k`` is a positional rule."""
    maps = _maps("maps", maps)
    L = maps.shape[-1]
    max_offset = check_int("max_offset", max_offset, low=0, high=L - 1)
    rows = torch.arange(max_offset, L)
    return torch.stack([maps[..., rows, rows - k].mean() for k in range(max_offset + 1)])


def top_weight(maps: torch.Tensor) -> float:
    """Mean over rows ``1..L-1`` (and leading axes) of each row's largest weight: 1 is one-hot."""
    maps = _maps("maps", maps)
    return float(maps[..., 1:, :].amax(-1).mean())


def top_key_agreement(before: torch.Tensor, after: torch.Tensor) -> float:
    """Fraction of rows ``1..L-1`` whose most-attended key is the same in ``before`` and ``after``
    (two maps of the same queries, e.g. two checkpoints): 1 means the attended tokens froze."""
    before, after = _same_shape(before, after)
    return float((before[..., 1:, :].argmax(-1) == after[..., 1:, :].argmax(-1)).float().mean())


def row_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """Mean total-variation distance ``½ Σ_k |a_k - b_k|`` between matching rows ``1..L-1``:
    0 when nothing moved, 1 when every row moved all its weight elsewhere."""
    before, after = _same_shape(before, after)
    return float(0.5 * (before[..., 1:, :] - after[..., 1:, :]).abs().sum(-1).mean())


def key_mass(maps: torch.Tensor, key_ids: torch.Tensor, ids: Sequence[int]) -> tuple[float, float]:
    """Share of attention on keys whose token id is in ``ids``, and the same share under uniform
    causal attention (the baseline a content-blind rule would give).

    ``maps [..., B, L, L]`` with ``key_ids [B, L]`` (the token at each key position; transpose a
    run's ``probe_ids``). Rows ``1..L-1`` are averaged. With the vocabulary sorted by frequency
    (:func:`scansnap.wikitext.build_vocab`), ``ids=range(1, 21)`` are the 20 most frequent words
    and ``ids=[0]`` is ``<unk>``.
    """
    maps = _maps("maps", maps)
    key_ids = check_tensor("key_ids", key_ids, ndim=2)
    if maps.ndim < 3 or tuple(maps.shape[-3:-1]) != tuple(key_ids.shape):
        raise ValueError(f"key_ids must be [B, L] matching maps [..., B, L, L], got "
                         f"{list(key_ids.shape)} and {list(maps.shape)}")
    ids = as_int_list("ids", ids, low=0)
    chosen = torch.isin(key_ids, torch.tensor(ids)).to(maps.dtype)  # [B, L]
    mass = (maps[..., 1:, :] * chosen[:, None, :]).sum(-1).mean()
    uniform = uniform_attention(maps.shape[-1], maps.dtype)  # [L, L]
    baseline = (uniform[1:] @ chosen.T).mean()  # [L-1, B]
    return float(mass), float(baseline)


TOKEN_GROUPS = {"<unk>": (0, 1), "20 most frequent words": (1, 21),
                "rare words (rank ≥ 500)": (500, None)}


def token_group_shares(maps: torch.Tensor, key_ids: torch.Tensor, vocab_size: int,
                       groups: Mapping[str, tuple[int, int | None]] = TOKEN_GROUPS
                       ) -> dict[str, tuple[torch.Tensor, float]]:
    """For each group of vocabulary ranks ``[lo, hi)`` (ids are frequency ranks, ``<unk>`` is 0;
    ``hi=None``: to the end of a ``vocab_size`` vocabulary), the attention share of the group's
    keys in every map of ``maps [S, B, L, L]`` (e.g. one layer at every checkpoint; ``[S]``) and
    under uniform causal attention (:func:`key_mass`, ``key_ids [B, L]``).

    Groups with no rank inside the vocabulary are left out. A share above the uniform one means
    the layer favours those tokens. The theory's common tokens (seen before many different next
    tokens) are best approximated in text by the most frequent words, its distinct tokens by rare
    ones. :meth:`scansnap.lm.LMRun.token_group_shares` applies it to a run's probe batch."""
    maps = _maps("maps", maps)
    if maps.ndim != 4:
        raise ValueError(f"maps must be [S, B, L, L], got shape {list(maps.shape)}")
    vocab_size = check_int("vocab_size", vocab_size, low=1)
    out = {}
    for name, (lo, hi) in groups.items():
        lo = check_int(f"groups[{name!r}] start", lo, low=0)
        hi = vocab_size if hi is None else min(check_int(f"groups[{name!r}] end", hi, low=0),
                                               vocab_size)
        ids = list(range(lo, hi))
        if not ids:  # e.g. rank >= 500 in a smaller vocabulary: left out
            continue
        shares = [key_mass(step_maps, key_ids, ids) for step_maps in maps]
        out[name] = (torch.tensor([m for m, _ in shares]), shares[0][1])
    return out
