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
    c = SequenceClasses()
    with pytest.raises(ValueError, match="Z"):
        metrics.distinct_entropy(c, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="Z"):
        metrics.common_mass(c, torch.full((34, 34), float("nan")))
    with pytest.raises(TypeError, match="classes"):
        metrics.distinct_entropy("c", torch.zeros(34, 34))
    with pytest.raises(ValueError, match="thresholds"):
        metrics.recall_vs_threshold(c, torch.zeros(34, 34), [-0.1])
    with pytest.raises(ValueError, match="nonnegative"):
        metrics.entropy(torch.tensor([0.5, -0.1]))


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
