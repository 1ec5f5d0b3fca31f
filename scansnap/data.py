"""The synthetic data model of Section 3.2: sequence classes with common and distinct tokens.

A class ``n`` fixes the query (last) token ``ψ(n)`` and the next token; its ``T − 1`` contextual
tokens are drawn i.i.d. from ``P(l | n)``. Token ids follow the authors' ``Dataset2`` layout
(PAPER.md B.0), so results line up with their released code:

``[0, C)`` global common · ``num_queries × common_per_query`` per-query common (one block per
query) · ``K × distinct_per_next`` distinct tokens (one block per class) · the ``num_queries``
query tokens · the ``K`` next tokens.

Class ``n`` belongs to query ``n // next_per_query``.
"""

from __future__ import annotations

import torch

from ._validate import check_dtype, check_float, check_int, check_memory


class SequenceClasses:
    """The distribution of sequence classes ``s_n = (P(l | n), ψ(n), n)`` (Section 3.2).

    Syn-Small (the paper's Fig 4/5 setting) is ``SequenceClasses()``: M = 34, K = 2, each class
    with its own query. The Fig 6 family is ``SequenceClasses(num_queries=q, next_per_query=2)``.

    Parameters mirror the authors' ``dataset2.*`` options: ``num_queries`` (``num_last``),
    ``next_per_query`` (``num_next_per_last``), ``num_common`` (global common tokens),
    ``common_per_query`` (``num_common_per_last``), ``distinct_per_next``
    (``num_unique_per_next``), ``common_weight`` (``common_unnormalized_prob``) and
    ``distinct_weights = (lo, hi)``: the distinct tokens' unnormalized weights are
    ``linspace(lo, hi, distinct_per_next)``, so the last token of each block is the most likely.
    """

    def __init__(
        self,
        num_queries: int = 2,
        next_per_query: int = 1,
        num_common: int = 10,
        common_per_query: int = 0,
        distinct_per_next: int = 10,
        common_weight: float = 1.0,
        distinct_weights: tuple[float, float] = (0.1, 1.0),
    ) -> None:
        self.num_queries = check_int("num_queries", num_queries, low=1)
        self.next_per_query = check_int("next_per_query", next_per_query, low=1)
        self.num_common = check_int("num_common", num_common, low=0)
        self.common_per_query = check_int("common_per_query", common_per_query, low=0)
        self.distinct_per_next = check_int("distinct_per_next", distinct_per_next, low=0)
        self.common_weight = check_float("common_weight", common_weight, low=0.0, low_open=True)
        if not isinstance(distinct_weights, (tuple, list)) or len(distinct_weights) != 2:
            raise TypeError("distinct_weights must be a pair (lo, hi) of positive numbers")
        lo = check_float("distinct_weights[0]", distinct_weights[0], low=0.0, low_open=True)
        hi = check_float("distinct_weights[1]", distinct_weights[1], low=lo)
        self.distinct_weights = (lo, hi)
        if self.num_common + self.common_per_query + self.distinct_per_next == 0:
            raise ValueError(
                "a class needs at least one contextual token: num_common + common_per_query + "
                "distinct_per_next must be >= 1"
            )

        self.K = self.num_queries * self.next_per_query
        first_query_common = self.num_common
        first_distinct = first_query_common + self.num_queries * self.common_per_query
        first_query = first_distinct + self.K * self.distinct_per_next
        first_next = first_query + self.num_queries
        self.M = first_next + self.K
        check_memory({f"num_queries × next_per_query (K = {self.K} classes) or the token counts "
                      f"(M = {self.M})": 3 * 8 * self.K * self.M})  # P(l | n) [K, M] and copies

        classes = torch.arange(self.K)
        self.class_query = classes // self.next_per_query  # which query block a class uses
        self.query_tokens = first_query + self.class_query  # ψ(n) as token ids
        self.next_tokens = first_next + classes

        U, Cq = self.distinct_per_next, self.common_per_query
        self._distinct = first_distinct + classes[:, None] * U + torch.arange(U)  # [K, U]
        global_common = torch.arange(self.num_common).expand(self.K, -1)
        query_common = first_query_common + self.class_query[:, None] * Cq + torch.arange(Cq)
        self._common = torch.cat([global_common, query_common], dim=1)  # [K, C + Cq]
        self._support = torch.cat([self._common, self._distinct], dim=1)  # [K, C + Cq + U]

        probs = torch.zeros(self.K, self.M, dtype=torch.float64)
        rows = classes[:, None]
        probs[rows, self._common] = self.common_weight
        probs[rows, self._distinct] = torch.linspace(lo, hi, U, dtype=torch.float64)
        self._probs = probs / probs.sum(dim=1, keepdim=True)
        # The count sampler's chain: token j of the support takes Binomial(left, p_j / Σ_{i≥j} p_i).
        p = self._probs.gather(1, self._support)  # [K, S]
        remaining_mass = p.flip(1).cumsum(1).flip(1)
        self._binomial_shares = (p / remaining_mass).clamp(0.0, 1.0)  # rounding only: mass >= p

    # --- the distribution -------------------------------------------------------------------
    def probs(self) -> torch.Tensor:
        """``P(l | n)`` as a float64 tensor ``[K, M]`` over the whole vocabulary (rows sum to 1)."""
        return self._probs.clone()

    def distinct_tokens(self, n: int) -> torch.Tensor:
        """Token ids of class ``n``'s distinct block (``G_DT(n)``), least to most likely."""
        return self._distinct[self._check_class(n)].clone()

    def common_tokens(self, n: int) -> torch.Tensor:
        """Token ids of the common tokens class ``n`` sees: global, then its query's block.

        In the authors' layout a per-query common token is shared by the ``next_per_query``
        classes of that query; with ``next_per_query = 1`` it is, by the paper's definition
        (``|Ω(l)| = 1``), distinct — it is still listed here, as the authors' code labels it.
        """
        return self._common[self._check_class(n)].clone()

    @property
    def distinct_index(self) -> torch.Tensor:
        """``[K, distinct_per_next]``: row ``n`` holds :meth:`distinct_tokens` of ``n``."""
        return self._distinct.clone()

    @property
    def common_index(self) -> torch.Tensor:
        """``[K, num_common + common_per_query]``: row ``n`` holds :meth:`common_tokens` of ``n``."""
        return self._common.clone()

    @property
    def support_index(self) -> torch.Tensor:
        """``[K, S]``: row ``n`` holds every token class ``n`` can draw, its common tokens then
        its distinct ones (``S = num_common + common_per_query + distinct_per_next``)."""
        return self._support.clone()

    # --- sampling ---------------------------------------------------------------------------
    def sample(
        self, batch_size: int, seq_len: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token-level sequences, as the authors' ``Dataset2`` draws them.

        Each example picks its class uniformly, draws ``seq_len − 1`` contextual tokens i.i.d.
        from ``P(· | n)``, puts ``ψ(n)`` last and the next token as target. ``seq_len`` is ``T``
        (the full length including the query). Returns ``contexts [B, T−1]``, ``queries [B]``
        and ``targets [B]`` as int64 token ids.
        """
        batch_size, seq_len = self._check_sizes(batch_size, seq_len, self.M, tokens=True)
        generator = _check_generator(generator)
        n = torch.randint(self.K, (batch_size,), generator=generator)
        contexts = torch.multinomial(self._probs[n], seq_len - 1, replacement=True,
                                     generator=generator)
        return contexts, self.query_tokens[n], self.next_tokens[n]

    def sample_counts(
        self,
        batch_size: int,
        seq_len: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        *,
        n: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The same distribution seen through token counts: ``counts [B, M]``, queries, targets.

        Without positional encoding the model sees the context only through its count vector
        (Assumption 1a), so a multinomial draw of the counts is exact. It is drawn as a chain of
        conditional binomials over the class's support, so its cost does not grow with ``T``.
        ``n`` draws every example from that class (default: classes uniformly at random).
        """
        self._check_sizes(batch_size, seq_len, self.M + 2 * self._support.shape[1])
        dtype = check_dtype(dtype)
        n, support_counts = self.sample_support_counts(batch_size, seq_len, generator, dtype=dtype,
                                                       n=n)
        counts = torch.zeros(len(n), self.M, dtype=dtype)
        counts.scatter_(1, self._support[n], support_counts)
        return counts, self.query_tokens[n], self.next_tokens[n]

    def sample_support_counts(
        self,
        batch_size: int,
        seq_len: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        *,
        n: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The draw behind :meth:`sample_counts`, kept on each class's support: the classes
        ``n [B]`` and the counts ``[B, S]`` of the tokens ``support_index[n]`` (every other
        token has count 0). Class-grouped training works in this form (Lemma 1: only these
        entries of ``Y`` and ``Z`` receive gradient). ``n`` fixes the class of every example."""
        batch_size, seq_len = self._check_sizes(batch_size, seq_len, 2 * self._support.shape[1])
        dtype = check_dtype(dtype)
        generator = _check_generator(generator)
        if n is None:
            n = torch.randint(self.K, (batch_size,), generator=generator)
        else:
            n = torch.full((batch_size,), self._check_class(n), dtype=torch.long)
        shares = self._binomial_shares[n]  # [B, S]
        left = torch.full((batch_size,), float(seq_len - 1), dtype=torch.float64)
        counts = torch.empty(batch_size, shares.shape[1], dtype=torch.float64)
        for j in range(shares.shape[1]):
            drawn = torch.binomial(left, shares[:, j], generator=generator)
            counts[:, j] = drawn
            left -= drawn
        return n, counts.to(dtype)

    # --- helpers ----------------------------------------------------------------------------
    def _check_class(self, n: int) -> int:
        return check_int("n", n, low=0, high=self.K - 1)

    def _check_sizes(self, batch_size: int, seq_len: int, row: int, *, tokens: bool = False
                     ) -> tuple[int, int]:
        """Valid sizes whose tensors fit in memory: ``row`` float64 entries per example, plus the
        ``seq_len − 1`` int64 token ids when ``tokens``."""
        batch_size = check_int("batch_size", batch_size, low=1)
        seq_len = check_int("seq_len", seq_len, low=2)
        check_memory({"batch_size": 8.0 * batch_size * row,
                      "batch_size × seq_len": 8.0 * batch_size * (seq_len - 1) * tokens})
        return batch_size, seq_len

    def __repr__(self) -> str:
        return (
            f"SequenceClasses(num_queries={self.num_queries}, next_per_query={self.next_per_query}, "
            f"num_common={self.num_common}, common_per_query={self.common_per_query}, "
            f"distinct_per_next={self.distinct_per_next}, common_weight={self.common_weight}, "
            f"distinct_weights={self.distinct_weights})  # M={self.M}, K={self.K}"
        )


def counts_of(contexts: torch.Tensor, M: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Token counts ``[B, M]`` of token-id sequences ``contexts [B, L]`` (``Xᵀ 1`` per row)."""
    if contexts.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"contexts must hold integer token ids, got dtype {contexts.dtype}")
    counts = torch.zeros(*contexts.shape[:-1], M, dtype=dtype)
    return counts.scatter_add_(-1, contexts, torch.ones_like(contexts, dtype=dtype))


def _check_generator(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


# --- The book's data sets -----------------------------------------------------------------------
#: Fig 6's panels: Syn-Medium with 1, 3, 5 or 10 queries (PAPER.md B.2)
SYN_MEDIUM_QUERIES = (1, 3, 5, 10)


def syn_small() -> SequenceClasses:
    """Syn-Small (PAPER.md B.1): K = 2 classes, each with its own query, 10 common tokens,
    10 distinct tokens per class with weights ``linspace(0.1, 1, 10)``; M = 34."""
    return SequenceClasses()


def syn_medium(num_queries: int) -> SequenceClasses:
    """Syn-Medium (PAPER.md B.2), one panel of Fig 6: ``num_queries`` queries with 2 next
    tokens each, the authors' defaults otherwise (M = 33, 79, 125, 240 for 1, 3, 5, 10)."""
    return SequenceClasses(num_queries=num_queries, next_per_query=2)


def weakly_correlated() -> SequenceClasses:
    """Chapter 3's weakly correlated classes (Assumption 2): one query shared by K = 3 classes,
    2 light common tokens (weight 0.5), 20 distinct tokens per class; M = 66."""
    return SequenceClasses(num_queries=1, next_per_query=3, num_common=2, common_per_query=0,
                           distinct_per_next=20, common_weight=0.5)
