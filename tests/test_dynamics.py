"""Batched training and the T→∞ population dynamics against the paper's predictions (PAPER.md D)."""

import math

import pytest
import torch

from scansnap import SequenceClasses, metrics, population, theory, train


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


def test_momentum_matches_torch_sgd(syn_small):
    """Our vectorized SGD equals torch.optim.SGD on the same batches (one run)."""
    from scansnap.models import YZModel

    run = train(syn_small, eta_y=0.7, eta_z=0.3, steps=5, batch_size=8, seq_len=16,
                init="random", seeds=7, record_every=None)
    model = YZModel(34)
    with torch.no_grad():
        model.Y.copy_(run.Y[0, 0])
        model.Z.copy_(run.Z[0, 0])
    opt = torch.optim.SGD([{"params": [model.Y], "lr": 0.7}, {"params": [model.Z], "lr": 0.3}],
                          momentum=0.9)
    data = torch.Generator().manual_seed(7)
    for _ in range(5):
        counts, queries, targets = syn_small.sample_counts(8, 16, data)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model.forward_counts(counts, queries), targets).backward()
        opt.step()
    torch.testing.assert_close(run.Z[0, -1], model.Z.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(run.Y[0, -1], model.Y.detach(), rtol=1e-10, atol=1e-12)


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
    data = torch.Generator().manual_seed(4)  # seed 4's stream: its batches, in order
    for step in range(3):
        counts, _, targets = syn_small.sample_counts(4, 8, data)
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
    ],
)
def test_bad_training_arguments(syn_small, kwargs, error, word):
    with pytest.raises(error, match=word):
        train(syn_small, **{"steps": 2, **kwargs})


def test_bad_classes_argument():
    with pytest.raises(TypeError, match="classes"):
        train("syn-small")
    with pytest.raises(TypeError, match="classes"):
        population(None)
