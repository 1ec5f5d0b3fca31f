"""Batched training and the T→∞ population dynamics against the paper's predictions (PAPER.md D)."""

import math

import pytest
import torch

from scansnap import SequenceClasses, metrics, population, theory, train
from scansnap.dynamics import Run, batches
from scansnap import grouped
from scansnap.grouped import GroupedBatch, Layout, expected_step, full_to_blocks, grouped_step
from scansnap.models import YZModel, yz_logits


@pytest.fixture(scope="module")
def syn_small():
    return SequenceClasses()


@pytest.fixture(scope="module")
def fig4_runs(syn_small):
    """The authors' Syn-Small SGD setting: zero init, momentum 0.9, batch 128, T=128."""
    return train(syn_small, eta_y=[1.0, 10.0], eta_z=1.0, steps=100, seeds=[2], record_every=2)


def test_run_layout(fig4_runs, syn_small):
    run = fig4_runs
    assert run.configs == [(1.0, 1.0, 2), (10.0, 1.0, 2)]
    assert run.loss.shape == (2, 100)
    assert run.steps.tolist() == list(range(0, 101, 2))
    assert run.Z.shape == run.Y.shape == (2, 51, 34, 34)
    assert run.attention().shape == (2, 51, 2, 34)
    assert run.index(eta_y=10.0) == [1]


def test_loss_at_zero_init_is_log_M(fig4_runs):
    """D.12: iteration 0 is exactly ln 34 (uniform prediction); it then falls steeply."""
    assert torch.allclose(fig4_runs.loss[:, 0], torch.tensor(math.log(34), dtype=torch.float64),
                          rtol=0, atol=1e-12)
    assert (fig4_runs.loss[:, 10] < 0.1 * math.log(34)).all()
    # a faster decoder lowers the loss faster early on
    assert fig4_runs.loss[1, 1:5].mean() < fig4_runs.loss[0, 1:5].mean()


def test_theorem2_signs_syn_small(fig4_runs, syn_small):
    """D.7 / Theorem 2: common logits fall below 0, top distinct logits rise, ordered by P(l|n)."""
    Z = fig4_runs.Z[0, -1]
    assert (metrics.common_logits(syn_small, Z) < 0).all()
    top5 = metrics.distinct_logits(syn_small, Z)[:, -5:]
    assert (top5 > 0).all()
    assert (top5.diff(dim=-1) > 0).all(), "top distinct logits not increasing in P(l|n)"
    mass = metrics.common_mass(syn_small, fig4_runs.Z[0])
    assert mass[0, 0].item() == pytest.approx(10 / 15.5, abs=1e-12)
    assert mass[-1, 0] <= 0.5


def test_fig4_larger_eta_y_ends_less_sparse(fig4_runs, syn_small):
    """D.13: η_Y = 10 ends with higher distinct entropy, more common mass, lower max weight."""
    Z = fig4_runs.Z[:, -1]
    H = metrics.distinct_entropy(syn_small, Z)[:, 0]
    mass = metrics.common_mass(syn_small, Z)[:, 0]
    top = metrics.max_weight(syn_small, Z)[:, 0]
    assert H[1] > H[0] and mass[1] > mass[0] and top[1] < top[0]


def test_zero_row_sums_under_sgd_and_not_adam(syn_small):
    """D.2: with zero init and SGD (momentum or not) every row of Y and Z sums to 0; rows of
    Z of tokens never used as a query stay exactly 0. Adam breaks the row sums."""
    for momentum in (0.0, 0.9):
        run = train(syn_small, eta_y=1.0, eta_z=1.0, steps=30, momentum=momentum,
                    record_every=10)
        assert run.Y.sum(-1).abs().max() < 1e-10 and run.Z.sum(-1).abs().max() < 1e-10
        not_queries = torch.ones(34, dtype=torch.bool)
        not_queries[syn_small.query_tokens] = False
        assert (run.Z[..., not_queries, :] == 0).all()
    adam = train(syn_small, eta_y=0.1, eta_z=0.1, steps=30, optimizer="adam", record_every=None)
    assert adam.Z[:, -1].sum(-1).abs().max() > 1e-3
    assert adam.Y[:, -1].sum(-1).abs().max() > 1e-3


def test_batched_equals_one_at_a_time(syn_small):
    """Every (eta_y, eta_z, seed) combination batched gives the same result as alone."""
    kwargs = dict(steps=15, batch_size=16, seq_len=32, init="random", record_every=5)
    batched = train(syn_small, eta_y=[0.5, 2.0], eta_z=[0.0, 1.0], seeds=[3, 4], **kwargs)
    assert len(batched.configs) == 8
    for i, (ey, ez, seed) in enumerate(batched.configs):
        alone = train(syn_small, eta_y=ey, eta_z=ez, seeds=seed, **kwargs)
        torch.testing.assert_close(batched.Z[i], alone.Z[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(batched.Y[i], alone.Y[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(batched.loss[i], alone.loss[0], rtol=1e-10, atol=1e-12)


def test_eta_z_zero_freezes_attention(syn_small):
    run = train(syn_small, eta_y=1.0, eta_z=0.0, steps=10, init="random", seeds=1)
    assert torch.equal(run.Z[0, 0], run.Z[0, -1]) and not torch.equal(run.Y[0, 0], run.Y[0, -1])


def _torch_reference(classes, run, optimizer, seed, steps, batch_size, seq_len, *, residual=False,
                     **opt_kwargs):
    """One run replayed with YZModel + a torch.optim optimizer on the same batches."""
    model = YZModel(classes.M, residual=residual)
    with torch.no_grad():
        model.Y.copy_(run.Y[0, 0])
        model.Z.copy_(run.Z[0, 0])
    eta_y, eta_z, _ = run.configs[0]
    opt = optimizer([{"params": [model.Y], "lr": eta_y}, {"params": [model.Z], "lr": eta_z}],
                    **opt_kwargs)
    stream = batches(classes, seed, batch_size, seq_len)
    for _ in range(steps):
        counts, queries, targets = next(stream)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model.forward_counts(counts, queries), targets).backward()
        opt.step()
    return model.Y.detach(), model.Z.detach()


def test_momentum_matches_torch_sgd(syn_small):
    """Our vectorized SGD equals torch.optim.SGD on the same batches (one run)."""
    run = train(syn_small, eta_y=0.7, eta_z=0.3, steps=30, batch_size=8, seq_len=16,
                init="random", seeds=7, record_every=None)
    Y, Z = _torch_reference(syn_small, run, torch.optim.SGD, 7, 30, 8, 16, momentum=0.9)
    torch.testing.assert_close(run.Z[0, -1], Z, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(run.Y[0, -1], Y, rtol=1e-10, atol=1e-12)


def test_adam_matches_torch_adam(syn_small):
    """Adam (bias correction included) equals torch.optim.Adam on the same batches."""
    run = train(syn_small, eta_y=0.05, eta_z=0.2, steps=30, batch_size=8, seq_len=16,
                init="random", seeds=5, optimizer="adam", betas=(0.8, 0.99), eps=1e-6,
                record_every=None)
    Y, Z = _torch_reference(syn_small, run, torch.optim.Adam, 5, 30, 8, 16, betas=(0.8, 0.99),
                            eps=1e-6)
    torch.testing.assert_close(run.Z[0, -1], Z, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(run.Y[0, -1], Y, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weight_decay_matches_torch(syn_small, optimizer):
    """weight_decay adds +λp to the gradient (it shrinks the weights), as torch.optim does."""
    kwargs = dict(momentum=0.9) if optimizer == "sgd" else {}
    run = train(syn_small, eta_y=0.3, eta_z=0.3, steps=20, batch_size=8, seq_len=16,
                init="random", seeds=2, optimizer=optimizer, weight_decay=0.5,
                record_every=None, **kwargs)
    ref = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    Y, Z = _torch_reference(syn_small, run, ref, 2, 20, 8, 16, weight_decay=0.5, **kwargs)
    torch.testing.assert_close(run.Z[0, -1], Z, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(run.Y[0, -1], Y, rtol=1e-9, atol=1e-11)
    plain = train(syn_small, eta_y=0.3, eta_z=0.3, steps=20, batch_size=8, seq_len=16,
                  init="random", seeds=2, optimizer=optimizer, record_every=None, **kwargs)
    assert run.Y[0, -1].norm() < plain.Y[0, -1].norm()


def test_residual_training_matches_torch_sgd(syn_small):
    """residual=True (Section 7: the query's one-hot added before LN) through train and through
    YZModel + torch.optim.SGD on the same batches."""
    run = train(syn_small, eta_y=0.5, eta_z=0.5, steps=10, batch_size=8, seq_len=16,
                init="random", seeds=3, residual=True, record_every=None)
    Y, Z = _torch_reference(syn_small, run, torch.optim.SGD, 3, 10, 8, 16, residual=True,
                            momentum=0.9)
    torch.testing.assert_close(run.Z[0, -1], Z, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(run.Y[0, -1], Y, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("common_per_query,distinct_per_next",
                         [(0, 10), (3, 10), (0, 30), (2, 4), (0, 1)])
@pytest.mark.parametrize("dense_rows_per_support", [0, 10**6], ids=["sparse du", "dense du"])
def test_grouped_step_equals_autograd(normalize, common_per_query, distinct_per_next,
                                      dense_rows_per_support, monkeypatch):
    """The support-restricted closed form (Lemma 1) gives yz_logits' loss and autograd's
    gradients, also with per-query common tokens, one or many distinct tokens per class, and
    several seeds × learning-rate pairs — with ∂J/∂f from embedding_bag's gradient or from
    the dense product (which path a size takes is a speed choice)."""
    monkeypatch.setattr(grouped, "_DENSE_ROWS_PER_SUPPORT", dense_rows_per_support)
    classes = SequenceClasses(num_queries=3, next_per_query=2, common_per_query=common_per_query,
                              distinct_per_next=distinct_per_next)
    layout, M, D, L, B = Layout.of(classes), classes.M, 2, 3, 24
    g = torch.Generator().manual_seed(0)
    Y, Z = (torch.randn(L * D, M, M, generator=g, dtype=torch.float64) for _ in range(2))
    draws = [classes.sample_support_counts(B, 20, g) for _ in range(D)]
    n = torch.stack([d[0] for d in draws])
    support_counts = torch.stack([d[1] for d in draws])
    batch = GroupedBatch.build(layout, n, support_counts, classes.next_tokens[n])
    loss, grads = grouped_step(layout, *full_to_blocks(layout, Y, Z), batch, normalize=normalize)

    counts = torch.zeros(D, B, M, dtype=torch.float64).scatter_(2, classes.support_index[n],
                                                               support_counts)
    leaves = [t.clone().requires_grad_(True) for t in (Y, Z)]
    logits = yz_logits(leaves[0].view(L, D, M, M), leaves[1].view(L, D, M, M), counts,
                       classes.query_tokens[n], normalize=normalize)
    ref = torch.nn.functional.cross_entropy(
        logits.reshape(-1, M), classes.next_tokens[n].expand(L, D, B).reshape(-1),
        reduction="none").view(L * D, B).mean(-1)
    dY, dZ = torch.autograd.grad(ref.sum(), leaves)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, full_to_blocks(layout, dY, dZ)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # every entry outside the blocks has exactly zero gradient (why the blocks suffice)
    outside = torch.ones(M, M, dtype=torch.bool)
    outside[: layout.first_query] = False
    assert (dY[:, outside] == 0).all()
    q0 = layout.first_query
    assert (dZ[:, :q0] == 0).all() and (dZ[:, q0 + classes.num_queries:] == 0).all()


def test_grouped_step_loss_when_the_target_probability_underflows():
    """float32 logits hundreds apart: p[target] underflows to 0, and the loss still equals
    cross-entropy's log_softmax (the logsumexp branch of the step), finite and large."""
    classes = SequenceClasses()
    layout, M = Layout.of(classes), classes.M
    g = torch.Generator().manual_seed(0)
    n, support_counts = classes.sample_support_counts(8, 20, g, dtype=torch.float32)
    Y = torch.zeros(1, M, M)
    Y[0, : layout.first_query, 0] = 300.0  # every context pushes token 0, never a target
    Z = torch.zeros(1, M, M)
    batch = GroupedBatch.build(layout, n[None], support_counts[None], classes.next_tokens[n][None])
    loss, _ = grouped_step(layout, *full_to_blocks(layout, Y, Z), batch)
    counts = torch.zeros(8, M).scatter_(1, classes.support_index[n], support_counts)
    logits = yz_logits(Y[0], Z[0], counts, classes.query_tokens[n])
    assert float(torch.softmax(logits, -1).gather(1, classes.next_tokens[n][:, None]).max()) == 0
    want = torch.nn.functional.cross_entropy(logits, classes.next_tokens[n])
    torch.testing.assert_close(loss, want[None], rtol=1e-5, atol=0)
    assert bool(torch.isfinite(loss).all()) and float(loss) > 100


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("common_per_query,distinct_per_next", [(0, 10), (3, 10), (2, 4)])
def test_expected_step_equals_grouped_step(normalize, common_per_query, distinct_per_next):
    """Population dynamics' lean step (one example per class) gives the general class-grouped
    step's loss and gradients (which the test above checks against autograd)."""
    classes = SequenceClasses(num_queries=3, next_per_query=2, common_per_query=common_per_query,
                              distinct_per_next=distinct_per_next)
    layout, M, K = Layout.of(classes), classes.M, classes.K
    g = torch.Generator().manual_seed(1)
    Y, Z = (torch.randn(5, M, M, generator=g, dtype=torch.float64) for _ in range(2))
    n = torch.arange(K)[None]
    batch = GroupedBatch.build(layout, n, classes.probs().gather(1, layout.support)[None],
                               classes.next_tokens[n])
    blocks = full_to_blocks(layout, Y, Z)
    loss, grads = expected_step(layout, *blocks, batch, normalize=normalize)
    want_loss, want_grads = grouped_step(layout, *blocks, batch, normalize=normalize)
    torch.testing.assert_close(loss, want_loss, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, want_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_yz_logits_residual_branch():
    """residual=True adds the query's one-hot to Xᵀb before the ℓ2 normalization (Section 7)."""
    classes = SequenceClasses()
    g = torch.Generator().manual_seed(1)
    Y, Z = (torch.randn(34, 34, generator=g, dtype=torch.float64) for _ in range(2))
    counts, queries, _ = classes.sample_counts(5, 12, g)
    got = yz_logits(Y, Z, counts, queries, residual=True)
    for b in range(5):
        a = counts[b] * torch.exp(Z[queries[b]])
        v = a / a.sum()
        v[queries[b]] += 1.0
        torch.testing.assert_close(got[b], (v / v.norm()) @ Y, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(got, yz_logits(Y, Z, counts, queries))


def test_init_stream_is_independent_of_data_stream(syn_small):
    """A seed's random init does not consume or copy its data stream: zero and random init see
    the same batches, and the init is not the data generator's first draw."""
    seen = {}
    for init in ("zero", "random"):
        batches_seen = []
        run = train(syn_small, steps=3, batch_size=4, seq_len=8, init=init, seeds=6,
                    record_every=None,
                    observe=lambda step, params, batch, out=batches_seen: out.append(batch[0]))
        seen[init] = (run, batches_seen)
    for a, b in zip(seen["zero"][1], seen["random"][1]):
        assert torch.equal(a, b)
    first = next(batches(syn_small, 6, 4, 8))[0]
    assert torch.equal(seen["random"][1][0][0], first)
    data = torch.Generator().manual_seed(6)
    bound = 1 / math.sqrt(34)
    as_if_data = (2 * torch.rand(34, 34, generator=data, dtype=torch.float64) - 1) * bound
    assert not torch.allclose(seen["random"][0].Y[0, 0], as_if_data)


def test_explicit_pairs_equal_product_runs(syn_small):
    """pairs=[(η_Y, η_Z), ...] runs exactly those pairs × seeds; each equals its product run."""
    kwargs = dict(steps=8, batch_size=8, seq_len=16, init="random", record_every=4)
    run = train(syn_small, pairs=[(2.0, 1.0), (0.5, 0.25)], seeds=[1, 2], **kwargs)
    assert run.configs == [(2.0, 1.0, 1), (2.0, 1.0, 2), (0.5, 0.25, 1), (0.5, 0.25, 2)]
    assert run.pairs == [(2.0, 1.0), (0.5, 0.25)]
    assert run.by_pair(run.loss).shape == (2, 2, 8)
    with pytest.raises(ValueError, match="product"):
        run.grid(run.loss)
    alone = train(syn_small, eta_y=0.5, eta_z=0.25, seeds=2, **kwargs)
    torch.testing.assert_close(run.Z[3], alone.Z[0], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="pairs"):
        train(syn_small, eta_y=1.0, pairs=[(1.0, 1.0)], steps=2)
    with pytest.raises(TypeError, match="pairs"):
        train(syn_small, pairs=[(1.0,)], steps=2)


def test_run_select_and_concat(syn_small):
    """select/concat keep configs and tensors together; grid_shape is read from the configs, so
    a concatenation is a grid exactly when its runs form one (no metadata to fake)."""
    kwargs = dict(eta_z=[1.0, 3.0], seeds=[1, 2], steps=4, record_every=None)
    a, b = train(syn_small, eta_y=1.0, **kwargs), train(syn_small, eta_y=2.0, **kwargs)
    both = Run.concat([a, b])
    assert both.configs == a.configs + b.configs
    assert both.grid_shape == (2, 2, 2)
    torch.testing.assert_close(both.grid(both.Z)[1, 0, 1], b.Z[1])
    ragged = Run.concat([a, b.select([0])])  # 5 runs: not a grid
    with pytest.raises(ValueError, match="product"):
        ragged.grid(ragged.loss)
    picked = both.select(both.index(seed=2))
    assert picked.configs == [(1.0, 1.0, 2), (1.0, 3.0, 2), (2.0, 1.0, 2), (2.0, 3.0, 2)]
    assert picked.grid_shape == (2, 2, 1)
    torch.testing.assert_close(picked.Y[2], b.Y[1])
    with pytest.raises(TypeError, match="Run"):
        Run.concat([])
    with pytest.raises(ValueError, match="indices"):
        both.select([8])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_train_and_population_on_cuda(syn_small):
    """device='cuda' runs the same program on the GPU: same result as on the CPU (float64)."""
    kwargs = dict(eta_y=[1.0, 2.0], eta_z=1.0, steps=10, batch_size=16, seq_len=32,
                  init="random", seeds=[1, 2], record_every=5)
    cpu, gpu = train(syn_small, **kwargs), train(syn_small, device="cuda", **kwargs)
    torch.testing.assert_close(gpu.Z, cpu.Z, rtol=1e-9, atol=1e-11)
    assert gpu.Z.device.type == "cpu"
    pop = population(syn_small, eta_y=2.0, eta_z=1.0, steps=20, device="cuda")
    torch.testing.assert_close(pop.Z, population(syn_small, eta_y=2.0, eta_z=1.0, steps=20).Z,
                               rtol=1e-9, atol=1e-11)


def test_observe_sees_each_step_before_its_update(syn_small):
    """train's observe hook gets the parameters before each update and the step's batch; the
    trajectory is the same with or without it."""
    kwargs = dict(eta_y=[0.5, 1.0], steps=3, batch_size=4, seq_len=8, init="random",
                  seeds=[3, 4], record_every=1)
    seen = []

    def observe(step, params, batch):
        seen.append((step, [p.clone() for p in params], batch))

    run = train(syn_small, observe=observe, **kwargs)
    assert [s for s, _, _ in seen] == [0, 1, 2]
    for step, (Y, Z), (counts, queries, targets) in seen:
        assert torch.equal(Y, run.Y[:, step]) and torch.equal(Z, run.Z[:, step])
        assert counts.shape == (2, 4, syn_small.M) and queries.shape == targets.shape == (2, 4)
    stream = batches(syn_small, 4, 4, 8)  # seed 4's batches, in order
    for step in range(3):
        counts, _, targets = next(stream)
        assert torch.equal(seen[step][2][0][1], counts) and torch.equal(seen[step][2][2][1], targets)
    plain = train(syn_small, **kwargs)
    assert torch.equal(run.Z, plain.Z) and torch.equal(run.loss, plain.loss)
    with pytest.raises(TypeError, match="observe"):
        train(syn_small, observe="print", **kwargs)


def test_full_model_training_moves_attention(syn_small):
    """The original parameterization is cubic in its weights: at rate 1 with momentum it
    diverges (see the next test), at 0.3 it trains and suppresses the common tokens."""
    run = train(syn_small, eta_y=0.3, eta_z=0.3, steps=40, model="full", d=64, init="random",
                seeds=1, record_every=None)
    mass = metrics.common_mass(syn_small, run.Z[0])
    assert mass[-1].max() < mass[0].min() - 0.05
    assert run.loss[0, -5:].mean() < 0.5 * run.loss[0, 0]


def test_theorem3_identity_along_population_dynamics(syn_small):
    """D.8: r_{l/l'|n}(t) = r(0)·exp(2Δz_l) along T→∞ dynamics with η_Y ≫ η_Z (ratio 10).

    Measured on the distinct tokens of class 0 against the least likely one (l'); the relative
    error stays below 1% while the logits move by up to 0.37.
    """
    run = population(syn_small, eta_y=1.0, eta_z=0.1, steps=2000, record_every=100)
    f = theory.normalized_attention(run.attention()[0])  # [S, K, M]
    idx = syn_small.distinct_index
    f_d = torch.gather(f, -1, idx.expand(f.shape[0], *idx.shape))
    z_d = metrics.distinct_logits(syn_small, run.Z[0])
    r = f_d[..., 1:] ** 2 / f_d[..., :1] ** 2 - 1
    predicted = r[0] * torch.exp(2 * (z_d[..., 1:] - z_d[0, :, 1:]))
    assert z_d[-1, 0, -1] - z_d[0, 0, -1] > 0.3
    assert ((r - predicted) / predicted).abs().max() < 1e-2


def test_population_loss_decreases_and_matches_initial_value(syn_small):
    run = population(syn_small, eta_y=1.0, eta_z=1.0, steps=50, record_every=None)
    assert run.loss[0, 0].item() == pytest.approx(math.log(34), abs=1e-12)
    assert (run.loss[0].diff() <= 1e-12).all()


def test_scan_then_snap_entropy_over_time(syn_small):
    """D.15: distinct entropy starts at 2.151 and falls over iterations ~10–50, then flattens:
    |ΔH(50→100)| < 0.3 |ΔH(0→50)| (η_Z = 1, zero init, Syn-Small SGD)."""
    run = train(syn_small, eta_y=1.0, eta_z=[1.0, 2.0], steps=100, seeds=2, record_every=50)
    H = metrics.distinct_entropy(syn_small, run.Z).mean(-1)  # [R, 3]
    assert H[:, 0].allclose(torch.tensor(2.1513, dtype=torch.float64), atol=1e-4)
    assert ((H[:, 2] - H[:, 1]).abs() < 0.3 * (H[:, 1] - H[:, 0]).abs()).all()


def test_adam_learning_rates_steer_attention(syn_small):
    """D.16 (smoke): Adam at different rates ends in different shapes of c_1."""
    run = train(syn_small, eta_y=[0.1, 0.5, 1.0], eta_z=None or [0.1], steps=50,
                optimizer="adam", seeds=2, record_every=None)
    c1 = run.attention()[:, -1, 0, 10:20]
    assert (c1[0] - c1[2]).abs().max() > 0.01


def test_divergence_is_raised_or_flagged(syn_small):
    with pytest.raises(FloatingPointError, match="diverged"):
        train(syn_small, eta_y=1e308, eta_z=1e308, steps=5, init="random", momentum=0.9)
    with pytest.raises(FloatingPointError, match="diverged"):
        train(syn_small, eta_y=1.0, eta_z=1.0, steps=40, model="full", d=64, init="random")
    run = train(syn_small, eta_y=[1.0, 1e308], eta_z=1e308, steps=5, init="random",
                on_divergence="flag")
    assert run.diverged.tolist() == [False, True]


def test_one_diverging_run_among_finite_ones_raises(syn_small):
    """on_divergence='raise' raises when any run of the batch diverges, not only when all do;
    'flag' marks only that run and leaves the others' results as if they ran alone."""
    kwargs = dict(eta_z=1.0, steps=6, init="random", seeds=[1, 2], record_every=None)
    with pytest.raises(FloatingPointError, match=r"1 run\(s\) diverged"):
        train(syn_small, eta_y=[0.5, 1e308, 2.0], **(kwargs | dict(seeds=[1])))
    run = train(syn_small, eta_y=[0.5, 1e308, 2.0], on_divergence="flag", **kwargs)
    assert run.diverged.tolist() == [False, False, True, True, False, False]
    alone = train(syn_small, eta_y=2.0, **kwargs)
    torch.testing.assert_close(run.Z[4:], alone.Z, rtol=1e-10, atol=1e-12)


def test_large_learning_rate_stays_finite(syn_small):
    run = train(syn_small, eta_y=100.0, eta_z=100.0, steps=20, record_every=None)
    assert torch.isfinite(run.loss).all() and not run.diverged.any()


@pytest.mark.parametrize(
    "kwargs,error,word",
    [
        (dict(eta_y=-1.0), ValueError, "eta_y"),
        (dict(eta_z=float("nan")), ValueError, "eta_z"),
        (dict(eta_y=float("inf")), ValueError, "eta_y"),
        (dict(eta_y="fast"), TypeError, "eta_y"),
        (dict(eta_z=[]), ValueError, "eta_z"),
        (dict(steps=0), ValueError, "steps"),
        (dict(steps=2.5), TypeError, "steps"),
        (dict(seq_len=1), ValueError, "seq_len"),
        (dict(batch_size=-3), ValueError, "batch_size"),
        (dict(optimizer="rmsprop"), ValueError, "optimizer"),
        (dict(init="ones"), ValueError, "init"),
        (dict(momentum=1.5), ValueError, "momentum"),
        (dict(seeds=[1, 1]), ValueError, "seeds"),
        (dict(seeds=-1), ValueError, "seeds"),
        (dict(record_every=0), ValueError, "record_every"),
        (dict(model="gpt"), ValueError, "model"),
        (dict(model="full", init="zero"), ValueError, "init"),
        (dict(on_divergence="ignore"), ValueError, "on_divergence"),
        (dict(betas=(0.9,)), TypeError, "betas"),
        (dict(model="full", init="random", d=0), ValueError, r"^d must be an integer in"),
        (dict(pairs=[]), TypeError, "pairs"),
        (dict(weight_decay=-0.1), ValueError, "weight_decay"),
        (dict(eps=0.0), ValueError, "eps"),
        (dict(normalize="yes"), TypeError, "normalize"),
        (dict(pairs=[(1.0, -1.0)]), ValueError, r"pairs\[0\]\[1\] \(eta_z\)"),
    ],
)
def test_bad_training_arguments(syn_small, kwargs, error, word):
    with pytest.raises(error, match=word):
        train(syn_small, **{"steps": 2, **kwargs})


@pytest.mark.parametrize("kwargs,error,word", [
    (dict(steps=0), ValueError, "steps"),
    (dict(eta_y=-1.0), ValueError, "eta_y"),
    (dict(normalize=1), TypeError, "normalize"),
])
def test_bad_population_arguments(syn_small, kwargs, error, word):
    with pytest.raises(error, match=word):
        population(syn_small, **{"steps": 2, **kwargs})


def test_bad_classes_argument():
    with pytest.raises(TypeError, match="classes"):
        train("syn-small")
    with pytest.raises(TypeError, match="classes"):
        population(None)


def test_select_refuses_negative_indices_and_by_pair_refuses_other_orders(syn_small):
    """select takes indices 0..R-1 only (a negative one is a mistake, not "from the end");
    by_pair refuses runs that are not pairs × seeds with seeds fastest, e.g. reordered ones."""
    run = train(syn_small, eta_y=[1.0, 2.0], seeds=[1, 2], steps=2, record_every=None)
    assert run.by_pair(run.loss).shape == (2, 2, 2)
    with pytest.raises(ValueError, match="indices"):
        run.select([-1])
    reordered = run.select([1, 0, 2, 3])  # seed 2 before seed 1 in the first pair only
    with pytest.raises(ValueError, match=r"pairs × seeds with seeds fastest"):
        reordered.by_pair(reordered.loss)


def test_batches_bad_arguments(syn_small):
    """batches() validates its sizes when the first batch is drawn, naming the parameter."""
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(syn_small, 1, 0, 8))
    with pytest.raises(ValueError, match="seq_len"):
        next(batches(syn_small, 1, 4, 1))


def test_settings_record_what_was_run(syn_small):
    """Run.settings records the configuration that later readers rely on (the optimizer and
    momentum for growth budgets, kind and normalize for Lemma 2 checks, the product grid)."""
    run = train(syn_small, eta_y=[0.1, 0.2], eta_z=0.3, seeds=[4, 5], steps=2, batch_size=4,
                seq_len=8, optimizer="adam", momentum=0.5, betas=(0.8, 0.95), eps=1e-7,
                init="random", normalize=False, residual=True, weight_decay=0.01,
                record_every=None)
    assert run.settings == dict(kind="train", optimizer="adam", momentum=0.5, init="random",
                                model="yz", d=128, batch_size=4, seq_len=8, normalize=False,
                                residual=True, weight_decay=0.01, betas=(0.8, 0.95), eps=1e-7,
                                grid=([0.1, 0.2], [0.3], [4, 5]))
    pop = population(syn_small, eta_y=1.0, eta_z=[0.5, 1.0], steps=2, normalize=False)
    assert pop.settings == dict(kind="population", optimizer="sgd", momentum=0.0, init="zero",
                                model="yz", normalize=False, grid=([1.0], [0.5, 1.0], [1]))
    assert "grid" not in train(syn_small, pairs=[(1.0, 1.0)], steps=1).settings


def test_full_model_default_width_is_the_authors_d(syn_small):
    """model="full" defaults to width d = 128, the authors' decoder_only.py d=128 (PAPER.md)."""
    shapes = []
    train(syn_small, eta_y=0.1, eta_z=0.1, steps=1, model="full", init="random",
          record_every=None, observe=lambda step, params, batch: shapes.append(
              [tuple(p.shape) for p in params]))
    assert shapes == [[(1, 34, 128), (1, 128, 128), (1, 128, 128), (1, 128, 128)]]


@pytest.mark.parametrize("dynamics", ["train", "population"])
def test_float32_runs_match_float64(syn_small, dynamics):
    """dtype=torch.float32 runs in single precision end to end (snapshots and losses are
    float32) and follows the float64 trajectory to single-precision accuracy (from zero init:
    a random init draws other numbers in another dtype)."""
    kwargs = dict(eta_y=[1.0, 3.0], eta_z=1.0, steps=20, seeds=[1, 2], record_every=10)
    if dynamics == "train":
        kwargs |= dict(batch_size=16, seq_len=32)
    fn = train if dynamics == "train" else population
    single, double = fn(syn_small, dtype=torch.float32, **kwargs), fn(syn_small, **kwargs)
    for got, want in [(single.Y, double.Y), (single.Z, double.Z), (single.loss, double.loss)]:
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want.float(), rtol=1e-3, atol=1e-4)
        assert not torch.equal(got.double(), want)  # really computed in single precision


def test_progress_bar_names_the_runs(syn_small, capsys):
    """progress=True shows a bar labelled with the kind of dynamics and the number of runs;
    progress=False (and the default for a small job) shows nothing."""
    train(syn_small, eta_y=[1.0, 2.0], steps=3, progress=True, record_every=None)
    assert "train (2 runs)" in capsys.readouterr().err
    population(syn_small, steps=3, progress=True)
    assert "population (1 runs)" in capsys.readouterr().err
    train(syn_small, steps=3, record_every=None)
    train(syn_small, steps=3, progress=False, record_every=None)
    assert capsys.readouterr().err == ""


def test_select_and_concat_keep_the_settings_they_share(syn_small):
    """select keeps the runs' settings but not a declared grid (a reordering of a grid's runs is
    no grid); concat keeps only the settings all its runs share."""
    run = train(syn_small, eta_y=[1.0, 2.0], eta_z=[1.0, 2.0], seeds=[1, 2], steps=2,
                record_every=None)
    shuffled = run.select([1, 0, 2, 3, 4, 5, 6, 7])  # seeds swapped in the first pair only
    assert shuffled.settings == {k: v for k, v in run.settings.items() if k != "grid"}
    with pytest.raises(ValueError, match="product"):
        shuffled.grid(shuffled.loss)
    other = train(syn_small, eta_y=3.0, seeds=[1, 2], steps=2, momentum=0.0, record_every=None)
    both = Run.concat([run, other])
    assert "momentum" not in both.settings and "grid" not in both.settings
    assert both.settings["kind"] == "train" and both.settings["optimizer"] == "sgd"


def test_run_repr_summarizes_the_runs(syn_small):
    run = train(syn_small, eta_y=[1.0, 1e308], eta_z=1e308, steps=5, init="random",
                record_every=2, on_divergence="flag")
    assert repr(run) == "Run(R=2 runs, S=4 snapshots of steps 0..5, M=34, diverged=1)"


def test_observe_on_the_autograd_path(syn_small):
    """observe works the same on the autograd path (residual here): each step's index, the
    parameters before its update and the step's batch."""
    seen = []
    run = train(syn_small, eta_y=0.5, steps=3, batch_size=4, seq_len=8, init="random", seeds=3,
                residual=True, record_every=1,
                observe=lambda step, params, batch: seen.append(
                    (step, [t.clone() for t in params], batch)))
    assert [step for step, _, _ in seen] == [0, 1, 2]
    stream = batches(syn_small, 3, 4, 8)
    for step, (Y, Z), (counts, _, targets) in seen:
        assert torch.equal(Y, run.Y[:, step]) and torch.equal(Z, run.Z[:, step])
        want_counts, _, want_targets = next(stream)
        assert torch.equal(counts[0], want_counts) and torch.equal(targets[0], want_targets)


@pytest.mark.parametrize("normalize", [True, False])
def test_population_loss_is_the_expected_loss_of_lemma2(syn_small, normalize):
    """population's loss[:, t] is J = −(1/K) Σ_n log softmax(Yᵀ f_n)[next token of n] at
    snapshot t, with f_n = c_n (Eqn 5), ℓ2-normalized when normalize=True; each run moves at its
    own η_Y (the first step from zero init is η_Y times the same gradient)."""
    run = population(syn_small, eta_y=[1.0, 3.0], eta_z=2.0, steps=6, normalize=normalize)
    assert run.configs == [(1.0, 2.0, 1), (3.0, 2.0, 1)]
    f = run.attention()  # [R, S, K, M]
    if normalize:
        f = f / f.norm(dim=-1, keepdim=True)
    log_p = torch.log_softmax(f @ run.Y, dim=-1)  # [R, S, K, M]
    nxt = syn_small.next_tokens
    J = -log_p[..., torch.arange(syn_small.K), nxt].mean(-1)  # [R, S]
    torch.testing.assert_close(run.loss, J[:, :-1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(run.Y[1, 1], 3.0 * run.Y[0, 1], rtol=1e-12, atol=1e-15)


def test_random_init_is_uniform_within_the_documented_bound(syn_small):
    """init="random": Y, Z ~ U(±1/√M) for the (Y, Z) model; for the full model U ~ N(0, 1/d)
    and W_Q, W_K, W_V ~ U(±1/√d). Each seed's draw is reproducible."""
    run = train(syn_small, steps=1, init="random", seeds=[1, 2], record_every=None)
    bound = 1 / math.sqrt(34)
    for W in (run.Y[:, 0], run.Z[:, 0]):
        assert W.abs().max() < bound and W.abs().max() > 0.95 * bound
        assert abs(W.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    first = []
    kwargs = dict(eta_y=0.1, eta_z=0.1, steps=1, model="full", d=64, init="random", seeds=4,
                  record_every=None)
    for _ in range(2):
        train(syn_small, observe=lambda step, params, batch: first.append(
            [t.clone() for t in params]), **kwargs)
    (U, W_Q, W_K, W_V), again = first
    for a, b in zip(first[0], again):
        assert torch.equal(a, b)
    assert abs(U.std().item() - 1 / 8) < 0.05 / 8
    for W in (W_Q, W_K, W_V):
        assert W.abs().max() < 1 / 8 and W.abs().max() > 0.95 / 8
