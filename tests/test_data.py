"""SequenceClasses: the authors' token layout (PAPER.md B.0) and the two samplers."""

import math

import pytest
import torch

from scansnap import SequenceClasses
from scansnap.data import counts_of


def test_syn_small_layout():
    c = SequenceClasses()
    assert (c.M, c.K) == (34, 2)
    assert c.query_tokens.tolist() == [30, 31] and c.next_tokens.tolist() == [32, 33]
    assert c.distinct_tokens(0).tolist() == list(range(10, 20))
    assert c.distinct_tokens(1).tolist() == list(range(20, 30))
    assert c.common_tokens(1).tolist() == list(range(10))


@pytest.mark.parametrize("q,M", [(1, 33), (3, 79), (5, 125), (10, 240)])
def test_fig6_family_sizes(q, M):
    c = SequenceClasses(num_queries=q, next_per_query=2)
    assert (c.M, c.K) == (M, 2 * q)
    # two classes share each query (|ψ⁻¹(m)| = 2)
    assert torch.equal(c.query_tokens[0::2], c.query_tokens[1::2])


def test_probs_exact():
    P = SequenceClasses().probs()
    assert P.dtype == torch.float64
    torch.testing.assert_close(P.sum(1), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-15)
    # weights 1 (x10 common) and linspace(0.1, 1, 10) (sum 5.5): common 1/15.5 each
    assert P[0, 0].item() == pytest.approx(1 / 15.5, abs=1e-15)
    assert P[0, 10].item() == pytest.approx(0.1 / 15.5, abs=1e-15)
    assert P[0, 19].item() == pytest.approx(P[0, 0].item(), abs=1e-15)
    assert P[0, 20:].abs().sum() == 0 and P[1, 10:20].abs().sum() == 0


def test_per_query_common_tokens_shared_within_query():
    c = SequenceClasses(num_queries=2, next_per_query=2, num_common=3, common_per_query=4)
    assert c.common_tokens(0).tolist() == c.common_tokens(1).tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert c.common_tokens(2).tolist() == [0, 1, 2, 7, 8, 9, 10]
    assert c.M == 3 + 8 + 4 * 10 + 2 + 4


def test_sample_shapes_and_semantics():
    c = SequenceClasses()
    g = torch.Generator().manual_seed(0)
    contexts, queries, targets = c.sample(64, 128, g)
    assert contexts.shape == (64, 127) and queries.shape == targets.shape == (64,)
    n = targets - c.next_tokens[0]
    assert torch.equal(queries, c.query_tokens[n])
    P = c.probs()
    assert bool((P[n[:, None], contexts] > 0).all()), "a context token outside its class support"


def test_token_and_count_samplers_agree_in_distribution():
    """Both samplers draw T−1 i.i.d. tokens from P(·|n): compare mean counts per class."""
    c = SequenceClasses()
    B, T = 4000, 64
    contexts, _, targets = c.sample(B, T, torch.Generator().manual_seed(1))
    counts_tok = counts_of(contexts, c.M)
    counts, _, targets2 = c.sample_counts(B, T, torch.Generator().manual_seed(2))
    assert torch.equal(counts.sum(1), torch.full((B,), T - 1.0, dtype=torch.float64))
    P = c.probs()
    for n in range(c.K):
        expected = (T - 1) * P[n]
        sd = torch.sqrt((T - 1) * P[n] * (1 - P[n]))
        for got, tgt in ((counts_tok, targets), (counts, targets2)):
            rows = got[tgt == c.next_tokens[n]]
            z = (rows.mean(0) - expected) / (sd / math.sqrt(len(rows)) + 1e-12)
            assert z.abs().max() < 5, f"class {n}: mean counts off by {z.abs().max():.1f} s.e."
    # the class is uniform
    assert abs((targets2 == c.next_tokens[0]).double().mean().item() - 0.5) < 0.03


@pytest.mark.parametrize(
    "kwargs,error,word",
    [
        (dict(num_queries=0), ValueError, "num_queries"),
        (dict(num_queries=1.5), TypeError, "num_queries"),
        (dict(next_per_query=True), TypeError, "next_per_query"),
        (dict(num_common=-1), ValueError, "num_common"),
        (dict(common_weight=float("nan")), ValueError, "common_weight"),
        (dict(common_weight=0.0), ValueError, "common_weight"),
        (dict(distinct_weights=(1.0, 0.1)), ValueError, "distinct_weights"),
        (dict(distinct_weights=0.5), TypeError, "distinct_weights"),
        (dict(num_common=0, distinct_per_next=0), ValueError, "contextual token"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, word):
    with pytest.raises(error, match=word):
        SequenceClasses(**kwargs)


def test_bad_sampling_arguments():
    c = SequenceClasses()
    with pytest.raises(ValueError, match="seq_len"):
        c.sample(4, 1)
    with pytest.raises(ValueError, match="batch_size"):
        c.sample_counts(0, 8)
    with pytest.raises(TypeError, match="generator"):
        c.sample(4, 8, generator=123)
    with pytest.raises(ValueError, match="n must be"):
        c.distinct_tokens(2)


def test_sample_counts_dtype_checked():
    classes = SequenceClasses()
    with pytest.raises(ValueError, match="dtype must be one of"):
        classes.sample_counts(4, 8, dtype="float16x")
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        classes.sample_support_counts(4, 8, dtype=32)
    assert classes.sample_counts(4, 8, dtype="float32")[0].dtype == torch.float32


def test_sample_counts_of_one_class():
    """``n=`` draws every example from that class: counts on its support only, mean counts
    ``(T − 1) P(l|n)`` (4 standard errors), and the class is validated."""
    classes = SequenceClasses()
    B, T, n = 4000, 65, 1
    counts, queries, targets = classes.sample_counts(B, T, torch.Generator().manual_seed(3), n=n)
    assert (queries == classes.query_tokens[n]).all() and (targets == classes.next_tokens[n]).all()
    p = classes.probs()[n]
    assert (counts[:, p == 0] == 0).all() and (counts.sum(-1) == T - 1).all()
    se = ((T - 1) * p * (1 - p) / B).sqrt()
    assert ((counts.mean(0) - (T - 1) * p).abs() <= 4 * se + 1e-12).all()
    with pytest.raises(ValueError, match="n must"):
        classes.sample_counts(4, 8, n=2)
