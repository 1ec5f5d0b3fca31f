"""Attention metrics of the paper's figures."""

import math

import pytest
import torch

from scansnap import SequenceClasses, metrics


def test_distinct_entropy_at_zero_init():
    """PAPER.md B.4: H = 2.1513 nats for p ∝ 1..10 (the zero-init value of Fig 6)."""
    c = SequenceClasses(num_queries=3, next_per_query=2)
    H = metrics.distinct_entropy(c, torch.zeros(c.M, c.M, dtype=torch.float64))
    p = torch.arange(1, 11, dtype=torch.float64) / 55
    assert torch.allclose(H, -(p * p.log()).sum().expand(c.K))
    assert H[0].item() == pytest.approx(2.1513, abs=1e-4)


def test_integer_Z_is_read_as_float64():
    """An integer Z (e.g. a zero init built with torch.zeros(..., dtype=int)) gives the float64
    values of the same Z, not integer arithmetic."""
    c = SequenceClasses(num_queries=3, next_per_query=2)
    Z = torch.zeros(c.M, c.M, dtype=torch.int64)
    Z[c.query_tokens[0], c.distinct_tokens(0)] = torch.arange(10)
    for metric in (metrics.distinct_entropy, metrics.common_mass, metrics.max_weight):
        torch.testing.assert_close(metric(c, Z), metric(c, Z.double()), rtol=1e-15, atol=0)


def test_entropy_is_renormalized_on_distinct_tokens():
    c = SequenceClasses()
    Z = torch.zeros(c.M, c.M, dtype=torch.float64)
    Z[c.query_tokens[0], c.distinct_tokens(0)] = torch.log(1 / torch.linspace(0.1, 1, 10)).double()
    Z[c.query_tokens[0], :10] = 50.0  # common tokens take almost all the mass
    H = metrics.distinct_entropy(c, Z)
    assert H[0].item() == pytest.approx(math.log(10), abs=1e-10)
    assert metrics.common_mass(c, Z)[0].item() > 0.999


def test_recall_vs_threshold_monotone_and_bounded():
    c = SequenceClasses(num_queries=1, next_per_query=2)
    Z = torch.randn(c.M, c.M, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    thresholds = torch.linspace(0.0, 0.2, 9)
    recall = metrics.recall_vs_threshold(c, Z, thresholds)
    assert recall.shape == (9,)
    assert recall[0] == 1.0 and (recall.diff() <= 0).all() and recall[-1] < 1


def test_metric_bad_inputs():
    """Each message starts with the parameter's own name (a mutated name would mislead)."""
    c = SequenceClasses()
    with pytest.raises(ValueError, match=r"^Z must have shape \[\.\.\., M, M\]"):
        metrics.distinct_entropy(c, torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"^Z must have shape \[\.\.\., M, M\]"):
        metrics.distinct_entropy(c, torch.zeros(34))
    with pytest.raises(ValueError, match=r"^Z must have shape \[\.\.\., M, M\]"):
        metrics.distinct_logits(c, torch.zeros(34, 35))
    with pytest.raises(ValueError, match="^Z must contain only finite values"):
        metrics.common_mass(c, torch.full((34, 34), float("nan")))
    with pytest.raises(TypeError, match="^classes must be a SequenceClasses"):
        metrics.distinct_entropy("c", torch.zeros(34, 34))
    with pytest.raises(ValueError, match="^thresholds must be >= 0"):
        metrics.recall_vs_threshold(c, torch.zeros(34, 34), [-0.1])
    with pytest.raises(ValueError, match="^weights must be nonnegative"):
        metrics.entropy(torch.tensor([0.5, -0.1]))
    with pytest.raises(TypeError, match="^weights must be a torch.Tensor"):
        metrics.entropy([0.5, 0.5])


def _attention_by_hand(classes, Z):
    """Eqn 5 typed out: c_{l|n} = P(l|n) e^{z_{psi(n) l}} / sum_l' P(l'|n) e^{z_{psi(n) l'}}."""
    rows = torch.exp(Z[..., classes.query_tokens, :])  # [..., K, M]
    weights = classes.probs().double() * rows
    return weights / weights.sum(-1, keepdim=True)


def test_metrics_on_a_batch_match_eqn5_by_hand():
    """On a batch of 3 random Z (leading dimension), every metric equals its definition computed
    here from Eqn 5 directly, per snapshot, to 1e-12: a wrong reduction axis or softmax dimension
    agrees on a single [M, M] matrix but not on a batch."""
    c = SequenceClasses(num_queries=2, next_per_query=2)
    Z = 0.5 * torch.randn(3, c.M, c.M, generator=torch.Generator().manual_seed(1),
                          dtype=torch.float64)
    c_ref = _attention_by_hand(c, Z)  # [3, K, M]
    torch.testing.assert_close(metrics.attention(c, Z), c_ref, rtol=1e-12, atol=0)
    common = torch.stack([c_ref[:, n, c.common_tokens(n)].sum(-1) for n in range(c.K)], -1)
    torch.testing.assert_close(metrics.common_mass(c, Z), common, rtol=1e-12, atol=0)
    torch.testing.assert_close(metrics.max_weight(c, Z), c_ref.amax(-1), rtol=1e-12, atol=0)
    for n in range(c.K):
        q, distinct = c.query_tokens[n], c.distinct_tokens(n)
        torch.testing.assert_close(metrics.distinct_logits(c, Z)[:, n], Z[:, q, distinct])
        torch.testing.assert_close(metrics.common_logits(c, Z)[:, n], Z[:, q, c.common_tokens(n)])
        p = c_ref[:, n, distinct] / c_ref[:, n, distinct].sum(-1, keepdim=True)
        torch.testing.assert_close(metrics.distinct_entropy(c, Z)[:, n],
                                   -(p * p.log()).sum(-1), rtol=1e-12, atol=0)
    levels = [0.0, 1 / c.M, 2 / c.M]
    soft = torch.softmax(Z[:, c.query_tokens, :], -1)  # over all M tokens (PAPER.md B.5)
    want = torch.stack([torch.stack([(soft[:, n, c.distinct_tokens(n)] >= lv).double().mean(-1)
                                     for n in range(c.K)], -1).mean(-1) for lv in levels], -1)
    torch.testing.assert_close(metrics.recall_vs_threshold(c, Z, levels), want)
    assert 0 < float(want[:, 1].mean()) < 1  # the middle threshold splits the tokens


def test_entropy_renormalizes_its_weights():
    """Unnormalized weights give the entropy of the normalized distribution, along ``dim``."""
    w = torch.tensor([[1.0, 1.0, 2.0], [3.0, 0.0, 0.0]], dtype=torch.float64)
    expected = -(0.25 * math.log(0.25) * 2 + 0.5 * math.log(0.5))
    H = metrics.entropy(w)
    assert H[0].item() == pytest.approx(expected, abs=1e-12)
    assert H[1].item() == pytest.approx(0.0, abs=1e-12)
    H0 = metrics.entropy(w[:, :1], dim=0)  # the column (1, 3): p = (1/4, 3/4)
    assert H0.item() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))


def test_entropy_and_metrics_reject_degenerate_inputs():
    with pytest.raises(ValueError, match="positive sum"):
        metrics.entropy(torch.zeros(2, 3))
    c = SequenceClasses()
    with pytest.raises(TypeError, match="real tensor"):
        metrics.distinct_entropy(c, torch.zeros(c.M, c.M, dtype=torch.complex128))


def test_recall_counts_a_weight_equal_to_the_threshold():
    """A distinct token whose attention equals the threshold passes it (``>=``)."""
    c = SequenceClasses(num_queries=1, next_per_query=1)
    Z = torch.zeros(c.M, c.M, dtype=torch.float64)  # softmax of a zero row: every weight 1/M
    at = metrics.recall_vs_threshold(c, Z, [1 / c.M, 1 / c.M + 1e-12])
    assert at.tolist() == [1.0, 0.0]
