"""Bad or edge inputs a careless user tries (issue 14, item 4): each fails fast, at the public
entry point, with a ValueError/TypeError naming the parameter — not with a long Python loop,
torch's allocator message or a silent NaN."""

import math
import re
import time

import pytest
import torch

from scansnap import SequenceClasses, _validate, lm, population, train
from scansnap.dynamics import _train_bytes, batches
from scansnap.models import Transformer1L, YZModel

GIB = 2**30


@pytest.fixture()
def classes():
    return SequenceClasses()


def refused_fast(call, match):
    """``call()`` raises a ValueError matching ``match`` that quotes the memory needed, in well
    under the 15 s the unbounded version spent building Python sets."""
    start = time.perf_counter()
    with pytest.raises(ValueError, match=match) as error:
        call()
    assert time.perf_counter() - start < 5.0
    assert "GiB of memory" in str(error.value)
    return str(error.value)


# --- sizes and counts are bounded by the machine's memory -------------------------------------
def test_memory_budget_and_message(monkeypatch):
    budget = _validate.memory_budget()
    assert budget is not None and budget > GIB  # every machine this runs on has more than 1 GiB
    monkeypatch.setattr(_validate, "memory_budget", lambda device=None: GIB)
    with pytest.raises(ValueError, match=r"^steps too large: .* about 2 GiB of memory \(2 GiB "
                                         r"for steps\), more than the 1 GiB of the cpu memory here"):
        _validate.check_memory({"steps": 2.0 * GIB, "batch_size": 10.0})
    _validate.check_memory({"steps": 0.5 * GIB})  # under the budget: no error


def test_train_huge_steps_refused(classes):
    message = refused_fast(lambda: train(classes, steps=10**9), "steps")
    assert "1 run(s)" in message


def test_train_huge_grid_refused(classes):
    grid = dict(eta_y=[0.1 * (i + 1) for i in range(1000)],
                eta_z=[0.1 * (i + 1) for i in range(1000)], seeds=list(range(100)))
    message = refused_fast(lambda: train(classes, **grid), "too large for 100000000 run")
    assert "eta_y × eta_z × seeds" in message


def test_population_huge_grid_and_steps_refused(classes):
    refused_fast(lambda: population(classes, steps=10**10), "steps")
    pairs = [(1.0, 0.1 * (i + 1)) for i in range(10**4)]
    refused_fast(lambda: population(classes, pairs=pairs, seeds=list(range(10**4)), steps=10),
                 "too large for 100000000 run")


def test_train_huge_batch_refused(classes, monkeypatch):
    refused_fast(lambda: train(classes, batch_size=10**12), "batch_size")
    # 10**8 examples (27 GB of dense counts) are refused where the machine has less memory
    monkeypatch.setattr(_validate, "memory_budget", lambda device=None: 16 * GIB)
    refused_fast(lambda: train(classes, batch_size=10**8), "batch_size")


def test_memory_estimate_counts_the_snapshots_train_allocates(classes):
    """The estimate's snapshot part is the bytes of the Run's Y, Z and loss, in the run's dtype,
    for the first and last state only (record_every=None) and for a cadence that does not divide
    the steps."""
    for dtype in (torch.float32, torch.float64):
        for record_every in (None, 3):
            run = train(classes, eta_y=[1.0, 2.0], steps=7, batch_size=4, seq_len=8, dtype=dtype,
                        record_every=record_every, progress=False)
            parts = _train_bytes(runs=2, steps=7, record_every=record_every, M=34,
                                 params=("M", 34 * 34), batch_rows=4, dtype=dtype)
            assert parts["steps / record_every"] == sum(t.nbytes for t in (run.Y, run.Z, run.loss))


def test_many_small_yz_runs_fit_a_small_budget(classes, monkeypatch):
    """100 (Y, Z) runs of one step need about 7 MB (snapshots, parameters with their gradients
    and buffers, M × M each): they are not refused under a 64 MiB budget."""
    monkeypatch.setattr(_validate, "memory_budget", lambda device=None: 64 * 2**20)
    run = train(classes, eta_y=[0.01 * (i + 1) for i in range(100)], steps=1, batch_size=2,
                seq_len=8, record_every=None, progress=False)
    assert run.loss.shape == (100, 1)


# 20 runs × 20 000 examples: dense logits [runs × batch, M] take 109 MB, one batch 5 MB
_MANY_RUNS_BIG_BATCH = dict(eta_y=[0.01 * (i + 1) for i in range(20)], steps=1, batch_size=20_000,
                            seq_len=8, record_every=None, progress=False)


@pytest.mark.parametrize("path", [dict(residual=True), dict(weight_decay=0.1)])
def test_autograd_path_counts_its_logits_per_run(classes, monkeypatch, path):
    """residual=True and weight decay train through autograd on logits [runs × batch, M]: the
    bound counts them per run, so many runs of a big batch are refused under a 64 MiB budget."""
    monkeypatch.setattr(_validate, "memory_budget", lambda device=None: 64 * 2**20)
    message = refused_fast(lambda: train(classes, **path, **_MANY_RUNS_BIG_BATCH), "batch_size")
    assert "20 run(s)" in message


def test_grouped_path_counts_its_logits_per_run(classes, monkeypatch):
    monkeypatch.setattr(_validate, "memory_budget", lambda device=None: 64 * 2**20)
    refused_fast(lambda: train(classes, **_MANY_RUNS_BIG_BATCH), "batch_size")


def test_train_full_model_huge_width_refused(classes):
    refused_fast(lambda: train(classes, model="full", init="random", d=10**6), r"\bd too large")


def test_sequence_classes_huge_counts_refused():
    message = refused_fast(lambda: SequenceClasses(num_queries=10**6), "num_queries")
    assert "K = 1000000" in message
    refused_fast(lambda: SequenceClasses(distinct_per_next=10**9), "M = ")


def test_sampling_huge_batches_refused(classes):
    refused_fast(lambda: classes.sample(10**12, 128), "batch_size")
    refused_fast(lambda: classes.sample(10, 10**12), "batch_size × seq_len")
    refused_fast(lambda: classes.sample_counts(10**12, 128), "batch_size")
    refused_fast(lambda: classes.sample_support_counts(10**12, 128), "batch_size")
    counts, _, _ = classes.sample_counts(4, 10**12)  # huge T costs nothing for counts
    assert torch.equal(counts.sum(1), torch.full((4,), 10.0**12 - 1, dtype=torch.float64))


def test_models_huge_sizes_refused():
    refused_fast(lambda: YZModel(10**9), r"\bM too large")  # a 10⁹ vocabulary
    refused_fast(lambda: Transformer1L(34, d=10**6), r"\bd \(W_Q")
    refused_fast(lambda: Transformer1L(10**9, d=128), r"M × d")


def test_train_lm_huge_vocabulary_refused():
    ids = torch.arange(2000) % 30
    refused_fast(lambda: lm.train_lm(ids, 1, vocab_size=10**9, steps=2, progress=False,
                                     batch_size=4, bptt=8), "vocab_size")


def test_train_lm_huge_steps_and_bad_data_refused():
    ids = torch.arange(2000) % 30
    kw = dict(progress=False, batch_size=4, bptt=8)
    refused_fast(lambda: lm.train_lm(ids, 1, steps=10**13, **kw), r"steps \(a loss per step")
    with pytest.raises(ValueError, match="measure_ids"):
        lm.train_lm(ids, 1, steps=2, measure_ids=torch.zeros(0, dtype=torch.long), **kw)
    with pytest.raises(TypeError, match="measure_ids"):
        lm.train_lm(ids, 1, steps=2, measure_ids=[1, 2, 3], **kw)
    with pytest.raises(ValueError, match="max_vocab"):
        lm.train_lm(None, 1, steps=2, max_vocab=1, **kw)
    from test_lm import tiny_corpus

    with pytest.raises(ValueError, match="last must be at most"):
        lm.lr_sweep((1.0,), corpus=tiny_corpus(), steps=6, checkpoint_every=3, last=4)
    with pytest.raises(TypeError, match="corpus must be a Corpus"):
        lm.lr_sweep((1.0,), corpus=ids, steps=6)


def test_realistic_sizes_pass(classes):
    """The bound refuses only what cannot fit: the paper's settings still run."""
    run = train(classes, steps=3, batch_size=128, seq_len=128, seeds=[1, 2], progress=False)
    assert run.loss.shape == (2, 3)
    parts = _train_bytes(
        runs=16 * 5, steps=1000, record_every=2, M=34, params=("M", 34 * 34), batch_rows=5 * 128,
        dtype=torch.float32)  # a Fig 6 panel: 16 pairs × 5 seeds
    assert sum(parts.values()) < _validate.memory_budget()


# --- train_lm detects divergence, like train -------------------------------------------------
def synthetic_ids(n=4000, vocab=30):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, vocab, (n,), generator=g)


LM_KW = dict(checkpoint_every=10, seed=3, progress=False, batch_size=4, bptt=8)


@pytest.mark.parametrize("lr", [1e4, 1e30])
def test_train_lm_raises_on_divergence(lr):
    with pytest.raises(FloatingPointError, match=re.escape(f"lr={lr:g}")) as error:
        lm.train_lm(synthetic_ids(), 1, lr=lr, steps=200, **LM_KW)
    assert "by step 10" in str(error.value)  # stopped at the first checkpoint, not at the end


def test_train_lm_flags_divergence_when_asked():
    run = lm.train_lm(synthetic_ids(), 1, lr=1e30, steps=20, on_divergence="flag", **LM_KW)
    assert run.diverged and not torch.isfinite(run.train_loss).all()
    blown = lm.train_lm(synthetic_ids(), 1, lr=1e4, steps=20, on_divergence="flag", **LM_KW)
    assert blown.diverged and torch.isfinite(blown.train_loss).all()  # finite, but blown up
    assert float(blown.train_loss.max()) > lm.BLOW_UP_FACTOR * math.log(30)


def test_train_lm_healthy_run_not_flagged():
    run = lm.train_lm(synthetic_ids(), 1, lr=5.0, steps=20, **LM_KW)  # the authors' lr
    assert not run.diverged
    assert float(run.train_loss.max()) < lm.BLOW_UP_FACTOR * math.log(30)


def test_train_lm_bad_on_divergence():
    with pytest.raises(ValueError, match="on_divergence"):
        lm.train_lm(synthetic_ids(), 1, steps=2, on_divergence="ignore", **LM_KW)


# --- dtype, device and seed errors are ours, not torch's --------------------------------------
@pytest.mark.parametrize("entry", [train, population])
def test_dtype_device_seed_checked(classes, entry):
    with pytest.raises(ValueError, match=r"seeds must be an integer in \[0, 9223372036854775807\]"):
        entry(classes, seeds=2**70)
    with pytest.raises(ValueError, match=r"dtype must be one of \('float32', 'float64'\)"):
        entry(classes, dtype="float16x")
    with pytest.raises(ValueError, match=r"dtype must be one of"):
        entry(classes, dtype=torch.int64)
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        entry(classes, dtype=64)
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        entry(classes, device="tpu")
    with pytest.raises(TypeError, match="device must be a str"):
        entry(classes, device=0.5)


def test_dtype_names_and_largest_seed_accepted(classes):
    run = train(classes, steps=2, seeds=[0, 2**63 - 1], dtype="float32", device="cpu",
                progress=False)
    assert run.Z.dtype == torch.float32 and run.seeds.tolist() == [0, 2**63 - 1]


def test_seed_checked_in_batches_and_train_lm(classes):
    with pytest.raises(ValueError, match="seed must be an integer in"):
        next(batches(classes, 2**70, 4, 8))
    with pytest.raises(ValueError, match="seed must be an integer in"):
        lm.train_lm(synthetic_ids(), 1, steps=2, **(LM_KW | {"seed": 2**70}))
    with pytest.raises(ValueError, match="device must be one of"):
        lm.train_lm(synthetic_ids(), 1, steps=2, device="tpu", **LM_KW)


def test_model_dtype_checked():
    with pytest.raises(ValueError, match="dtype must be one of"):
        YZModel(34, dtype="float16x")
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        Transformer1L(34, 8, dtype="float64".encode())
    assert Transformer1L(34, 8, dtype="float32").U.dtype == torch.float32
