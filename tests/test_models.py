"""The full 1-layer transformer, its (Y, Z) reparameterization and Lemma 2."""

import math

import pytest
import torch

from scansnap import SequenceClasses, theory
from scansnap.models import Transformer1L, YZModel


def test_full_and_yz_logits_identical():
    """Section 3.1: the original model's logits equal Yᵀ LN(Xᵀ b) with its (Y, Z)."""
    c = SequenceClasses()
    g = torch.Generator().manual_seed(0)
    full = Transformer1L(c.M, d=16, generator=g)
    contexts, queries, _ = c.sample(32, 50, g)
    yz = YZModel(c.M)
    with torch.no_grad():
        yz.Y.copy_(full.to_yz()[0])
        yz.Z.copy_(full.to_yz()[1])
    torch.testing.assert_close(full(contexts, queries), yz(contexts, queries), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(full.attention(contexts, queries), yz.attention(contexts, queries))


def test_yz_forward_matches_token_level_attention():
    """Counting tokens is exact without positional encoding: compare with explicit b_t."""
    c = SequenceClasses()
    g = torch.Generator().manual_seed(1)
    model = YZModel(c.M, init="random", generator=g)
    contexts, queries, _ = c.sample(8, 20, g)
    b = model.attention(contexts, queries)  # [B, T-1]
    v = torch.zeros(8, c.M, dtype=torch.float64).scatter_add(1, contexts, b)
    expected = (v / v.norm(dim=1, keepdim=True)) @ model.Y
    torch.testing.assert_close(model(contexts, queries), expected, rtol=1e-12, atol=1e-12)


def test_zero_init_predicts_uniform():
    c = SequenceClasses()
    contexts, queries, targets = c.sample(4, 10, torch.Generator().manual_seed(0))
    logits = YZModel(c.M)(contexts, queries)
    loss = torch.nn.functional.cross_entropy(logits, targets)
    assert loss.item() == pytest.approx(math.log(c.M), abs=1e-14)


def test_random_init_is_pytorch_linear_range():
    model = YZModel(100, init="random", generator=torch.Generator().manual_seed(0))
    assert model.Y.abs().max() <= 0.1 and model.Z.abs().max() <= 0.1
    assert model.Y.abs().max() > 0.09


def test_lemma2_convergence_in_T():
    """Lemma 2: Xᵀ b_T → c_{m,n} as T grows, the L1 error shrinking like T^(-1/2)."""
    c = SequenceClasses()
    model = YZModel(c.M, init="random", generator=torch.Generator().manual_seed(3))
    target_c = theory.attention_limit(c.probs(), model.Z.detach(), c.query_tokens)
    errors = []
    for T in (32, 512, 8192):
        counts, queries, targets = c.sample_counts(256, T, torch.Generator().manual_seed(T))
        z = model.Z.detach()[queries]
        w = counts * torch.exp(z)
        v = w / w.sum(1, keepdim=True)
        n = targets - c.next_tokens[0]
        errors.append((v - target_c[n]).abs().sum(1).mean().item())
    assert errors[0] > errors[1] > errors[2]
    # 16x more tokens per step: the error should fall ~4x (allow 3x-5.5x)
    for a, b in zip(errors, errors[1:]):
        assert 3.0 < a / b < 5.5, errors


def test_lemma18_frequency_bound():
    """Empirical frequencies lie within sqrt(ln(2/δ)/(2(T−1))) w.p. ≥ 1−δ (per token)."""
    c = SequenceClasses()
    T, delta = 200, 0.05
    counts, _, targets = c.sample_counts(2000, T, torch.Generator().manual_seed(5))
    q = counts / (T - 1)
    P = c.probs()[targets - c.next_tokens[0]]
    outside = ((q - P).abs() > math.sqrt(math.log(2 / delta) / (2 * (T - 1)))).double().mean(0)
    assert outside.max().item() <= delta


@pytest.mark.parametrize(
    "call,error",
    [
        (lambda: YZModel(1), ValueError),
        (lambda: YZModel(10, init="ones"), ValueError),
        (lambda: YZModel(10, normalize="yes"), TypeError),
        (lambda: Transformer1L(10, d=0), ValueError),
        (lambda: YZModel(5)(torch.tensor([[0, 7]]), torch.tensor([0])), ValueError),
        (lambda: YZModel(5)(torch.tensor([[0.0, 1.0]]), torch.tensor([0])), TypeError),
        (lambda: YZModel(5)(torch.tensor([[0, 1]]), torch.tensor([0, 1])), ValueError),
    ],
)
def test_bad_model_inputs(call, error):
    with pytest.raises(error):
        call()
