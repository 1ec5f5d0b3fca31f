"""The WikiText LM (PAPER.md B.8), scansnap.lm: model, attention probe, statistics, training loop, sweep."""

from __future__ import annotations

import math

import pytest
import torch

from scansnap import lm
from scansnap.wikitext import Vocab


def tiny_model(nlayers: int = 2, ntoken: int = 50, seed: int = 0) -> lm.WikiLM:
    torch.manual_seed(seed)
    return lm.WikiLM(ntoken, nlayers, d_model=16, d_hid=16, dropout=0.1).eval()


def manual_forward(model: lm.WikiLM, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(QKᵀ/√d + mask) by hand, post-LN, one head: the reference for the probe."""
    L = src.size(0)
    x = model.embedding(src) * math.sqrt(model.d_model) + model.pos_encoder.pe[:L]
    x = x.transpose(0, 1)  # [B, L, d]
    mask = torch.full((L, L), float("-inf")).triu(1)
    maps = []
    for layer in model.layers:
        attn = layer.self_attn
        q, k, v = (x @ attn.in_proj_weight.T + attn.in_proj_bias).chunk(3, dim=-1)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.size(-1)) + mask, dim=-1)
        maps.append(a)
        x = layer.norm1(x + attn.out_proj(a @ v))
        x = layer.norm2(x + layer.linear2(torch.relu(layer.linear1(x))))
    return model.decoder(x).transpose(0, 1), torch.stack(maps)


def test_probe_equals_manual_attention_and_model_output():
    model = tiny_model(nlayers=2)
    src = torch.randint(0, 50, (35, 3))
    logits, maps = model.probe(src)
    assert maps.shape == (2, 3, 35, 35)
    ref_logits, ref_maps = manual_forward(model, src)
    torch.testing.assert_close(maps, ref_maps, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(model(src), logits, rtol=1e-4, atol=1e-5)  # eval fast path
    model.train()
    with torch.no_grad():
        torch.manual_seed(0)  # dropout off by hand: p=0 must give the same output in train mode
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        for layer in model.layers:
            layer.self_attn.dropout = 0.0
        torch.testing.assert_close(model(src), logits, rtol=1e-4, atol=1e-5)  # SDPA training path


def test_probe_maps_are_the_real_forward_attention():
    """The probe returns the attention of forward() itself: capture each attention module's
    input during a plain forward (no weights requested, the fused kernel) and rebuild its
    weights from the module's own projections."""
    model = tiny_model(nlayers=3)
    src = torch.randint(0, 50, (20, 4))
    inputs = []
    handles = [layer.self_attn.register_forward_pre_hook(
        lambda _m, args, kwargs: inputs.append(args[0].detach()), with_kwargs=True)
        for layer in model.layers]
    with torch.no_grad():
        logits = model(src)
    for handle in handles:
        handle.remove()
    probe_logits, maps = model.probe(src)
    assert len(inputs) == 3
    for i, (layer, x) in enumerate(zip(model.layers, inputs)):
        attn = layer.self_attn
        q, k, _ = (x.transpose(0, 1) @ attn.in_proj_weight.T + attn.in_proj_bias).chunk(3, dim=-1)
        torch.testing.assert_close(maps[i], lm.causal_attention(q, k), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probe_logits, logits, rtol=1e-4, atol=1e-5)  # SDPA vs explicit
    assert not any(layer.self_attn._forward_hooks or layer.self_attn._forward_pre_hooks
                   for layer in model.layers)  # the probe removes its hooks


def test_config_validated_once_and_unknown_knobs_named():
    config = lm.LMConfig.for_size("quick", lr=2.0)
    assert config.steps == lm.SIZES["quick"]["steps"] and config.lr == 2.0
    assert config.device == "cpu"
    with pytest.raises(Exception):
        config.lr = 3.0  # frozen
    with pytest.raises(TypeError, match="learning_rate"):
        lm.train_lm(synthetic_ids(2000), 1, learning_rate=1.0, steps=2, progress=False)
    with pytest.raises(ValueError, match="dropout"):
        lm.LMConfig(dropout=1.5)
    with pytest.raises(ValueError, match="checkpoint_every"):
        lm.LMConfig(checkpoint_every=0)
    with pytest.raises(ValueError, match="probe_index"):
        lm.train_lm(synthetic_ids(2000), 1, steps=2, probe_index=10**6, progress=False,
                    batch_size=4, bptt=8)


def test_mask_is_causal_and_includes_self():
    mask = lm.causal_mask(4)
    assert torch.equal(mask == 0, torch.ones(4, 4, dtype=torch.bool).tril())
    _, maps = tiny_model(nlayers=1).probe(torch.randint(0, 50, (12, 2)))
    upper = torch.ones(12, 12, dtype=torch.bool).triu(1)
    assert bool((maps[..., upper] == 0).all())  # no future keys
    assert bool((maps.diagonal(dim1=-2, dim2=-1) > 0).all())  # self is attended
    assert torch.allclose(maps[..., 0, 0], torch.ones(()))  # first query sees only itself
    torch.testing.assert_close(maps.sum(-1), torch.ones(1, 2, 12))


def test_init_as_authors():
    torch.manual_seed(0)
    model = lm.WikiLM(1000, 1)
    assert model.embedding.weight.abs().max() <= 0.1 and model.decoder.weight.abs().max() <= 0.1
    assert model.embedding.weight.std() > 0.05  # uniform(-0.1, 0.1), std 0.0577
    assert bool((model.decoder.bias == 0).all())
    attn = model.layers[0].self_attn
    assert bool((attn.in_proj_bias == 0).all()) and bool((attn.out_proj.bias == 0).all())
    bound = math.sqrt(6 / (200 + 600))  # xavier_uniform of the [600, 200] in_proj
    assert attn.in_proj_weight.abs().max() <= bound
    assert model.layers[0].norm_first is False  # post-LN


def test_attention_entropy():
    uniform = torch.full((2, 5, 4), 0.25)
    assert abs(lm.attention_entropy(uniform).item() - math.log(4)) < 1e-6
    onehot = torch.eye(4).expand(2, 4, 4)
    assert lm.attention_entropy(onehot).item() < 1e-6


def synthetic_ids(n: int = 6000, vocab: int = 30, seed: int = 0) -> torch.Tensor:
    """A learnable stream: mostly a fixed cycle of tokens with some noise."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.arange(n) % vocab
    noise = torch.rand(n, generator=g) < 0.1
    return torch.where(noise, torch.randint(0, vocab, (n,), generator=g), ids)


def test_tiny_training_run_learns_and_records():
    ids = synthetic_ids()
    run = lm.train_lm(ids, 1, lr=1.0, steps=60, checkpoint_every=20, seed=3, progress=False,
                      batch_size=8, bptt=12)
    assert run.steps.tolist() == [0, 20, 40, 60]
    assert run.loss[-1] < run.loss[0] - 0.5 and run.probe_loss[-1] < run.probe_loss[0] - 0.5
    assert run.train_loss.shape == (60,)
    assert run.entropy.shape == (4,) and bool(torch.isfinite(run.entropy).all())
    torch.testing.assert_close(run.entropy, run.entropy_layers[:, 0])
    assert 0 < run.entropy[0] < math.log(12)
    assert run.maps.shape == (4, 1, 12, 12)
    assert run.probe_maps.shape == (4, 1, 8, 12, 12) and run.probe_ids.shape == (12, 8)
    torch.testing.assert_close(run.maps, run.probe_maps[:, :, 0], rtol=0, atol=0)
    assert run.map_at(41).shape == (12, 12)
    assert run.config.probe_index <= ids.numel() // 8 - 13
    # same seed → same run; another seed → another run
    again = lm.train_lm(ids, 1, lr=1.0, steps=20, checkpoint_every=20, seed=3, progress=False,
                        batch_size=8, bptt=12)
    torch.testing.assert_close(again.train_loss, run.train_loss[:20])
    other = lm.train_lm(ids, 1, lr=1.0, steps=20, checkpoint_every=20, seed=4, progress=False,
                        batch_size=8, bptt=12)
    assert not torch.equal(other.train_loss, run.train_loss[:20])


def test_ffn_lr_group_and_multilayer():
    ids = synthetic_ids(3000)
    run = lm.train_lm(ids, 2, lr=1.0, ffn_lr=2.0, steps=10, checkpoint_every=5, progress=False,
                      batch_size=4, bptt=8)
    assert run.maps.shape == (3, 2, 8, 8) and run.entropy_layers.shape == (3, 2)
    assert run.config.ffn_lr == 2.0


def test_train_lm_bad_inputs():
    ids = synthetic_ids(2000)
    kw = dict(steps=2, progress=False, batch_size=4, bptt=8)
    with pytest.raises(ValueError, match="nlayers"):
        lm.train_lm(ids, 0, **kw)
    with pytest.raises(ValueError, match="lr"):
        lm.train_lm(ids, 1, lr=-1.0, **kw)
    with pytest.raises(ValueError, match="lr"):
        lm.train_lm(ids, 1, lr=float("nan"), **kw)
    with pytest.raises(TypeError, match="steps"):
        lm.train_lm(ids, 1, steps=1.5, progress=False)
    with pytest.raises(ValueError, match="clip"):
        lm.train_lm(ids, 1, clip=0.0, **kw)
    with pytest.raises(ValueError, match="size"):
        lm.train_lm(ids, 1, size="huge", **kw)
    with pytest.raises(ValueError, match="device"):
        lm.train_lm(ids, 1, device="tpu", **kw)
    with pytest.raises(TypeError, match="corpus_or_ids"):
        lm.train_lm([1, 2, 3], 1, **kw)
    with pytest.raises(ValueError, match="vocab_size"):
        lm.train_lm(ids, 1, vocab_size=3, **kw)
    with pytest.raises(ValueError, match="too short"):
        lm.train_lm(ids[:20], 1, **kw)
    with pytest.raises(ValueError, match="ntoken"):
        lm.WikiLM(1)


def test_lr_sweep_shapes():
    ids = synthetic_ids(2000)
    from scansnap.wikitext import Corpus, Location

    corpus = Corpus({"train": ids}, Vocab(("<unk>",) + tuple(f"w{i}" for i in range(1, 30))),
                    "train", "train", "synthetic", Location("folder", __import__("pathlib").Path("."),
                                                            ("train",), "test"))
    sweep = lm.lr_sweep((0.5, 1.0), (1, 2), corpus=corpus, steps=6, last=2, progress=False,
                        checkpoint_every=3, batch_size=4, bptt=8)
    assert sweep.final.shape == (2, 2) and sweep.mean.shape == (2,) and sweep.std.shape == (2,)
    assert sweep.curves.shape == (2, 2, 3) and sweep.steps.tolist() == [0, 3, 6]
    torch.testing.assert_close(sweep.final, sweep.curves[..., -2:].mean(-1))
    with pytest.raises(ValueError, match="lrs"):
        lm.lr_sweep((1.0, -2.0), corpus=corpus, steps=2)


# --------------------------------------------------------------------------------------------
# Attention statistics, the size switch, sweep reuse (chapter 6)
# --------------------------------------------------------------------------------------------


def test_causal_attention_is_the_probe_map():
    model = tiny_model(nlayers=1)
    src = torch.randint(0, 50, (9, 2))
    _, maps = model.probe(src)
    x = (model.embedding(src) * math.sqrt(model.d_model) + model.pos_encoder.pe[:9]).transpose(0, 1)
    attn = model.layers[0].self_attn
    q, k, _ = (x @ attn.in_proj_weight.T + attn.in_proj_bias).chunk(3, dim=-1)
    torch.testing.assert_close(lm.causal_attention(q, k), maps[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="q and k"):
        lm.causal_attention(torch.zeros(2, 3, 4), torch.zeros(2, 4, 4))


def test_uniform_entropy_is_the_ceiling():
    L = 35
    uniform = torch.ones(L, L).tril()
    uniform = uniform / uniform.sum(-1, keepdim=True)
    assert abs(lm.attention_entropy(uniform).item() - lm.uniform_entropy(L)) < 1e-5
    assert abs(lm.uniform_entropy(L) - math.lgamma(36) / 35) < 1e-12
    assert lm.uniform_entropy(1) == 0.0
    torch.testing.assert_close(lm.uniform_attention(L, torch.float32), uniform)
    assert lm.uniform_attention(L).dtype == torch.float64
    assert lm.self_mass(lm.uniform_attention(L)) == pytest.approx(
        sum(1 / (i + 1) for i in range(1, L)) / (L - 1))
    with pytest.raises(ValueError, match="length"):
        lm.uniform_attention(0)
    torch.testing.assert_close(lm.row_entropy(uniform), torch.log(torch.arange(1.0, L + 1)),
                               rtol=1e-5, atol=1e-5)
    random = torch.softmax(torch.randn(4, L, L) + lm.causal_mask(L), -1)
    assert lm.attention_entropy(random).item() < lm.uniform_entropy(L)


def test_map_statistics_on_hand_made_maps():
    L = 6
    eye = torch.eye(L)  # every query attends to itself
    prev = torch.zeros(L, L)
    prev[0, 0] = 1.0
    prev[torch.arange(1, L), torch.arange(0, L - 1)] = 1.0  # ... to the previous token
    assert lm.self_mass(eye) == 1.0 and lm.self_mass(prev) == 0.0
    torch.testing.assert_close(lm.offset_profile(prev, 2), torch.tensor([0.0, 1.0, 0.0]))
    assert lm.top_weight(prev) == 1.0
    assert lm.top_key_agreement(eye, eye) == 1.0 and lm.top_key_agreement(eye, prev) == 0.0
    assert lm.row_change(eye, eye) == 0.0 and lm.row_change(eye, prev) == 1.0
    half = 0.5 * (eye + prev)
    assert abs(lm.row_change(eye, half) - 0.5) < 1e-7
    batch = torch.stack([eye, prev])  # leading axes are averaged over
    assert lm.self_mass(batch) == 0.5
    with pytest.raises(ValueError, match="maps"):
        lm.self_mass(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="max_offset"):
        lm.offset_profile(eye, L)
    with pytest.raises(ValueError, match="same shape"):
        lm.row_change(eye, torch.eye(L + 1))


def test_chapter_size_switch(monkeypatch):
    monkeypatch.delenv(lm.SIZE_ENV, raising=False)
    assert lm.chapter_size() == "ci"
    monkeypatch.setenv(lm.SIZE_ENV, "paper")
    assert lm.chapter_size() == "paper"
    monkeypatch.setenv(lm.SIZE_ENV, "huge")
    with pytest.raises(ValueError, match=lm.SIZE_ENV):
        lm.chapter_size()
    for size in lm.SIZES.values():
        assert size["steps"] % size["checkpoint_every"] == 0
        assert {"sweep_steps", "sweep_every", "sweep_seeds", "sweep_last", "variant_steps",
                "deep_steps"} <= set(size)
    assert lm.SIZES["paper"]["max_vocab"] is None and lm.SIZES["paper"]["steps"] >= 1500


def test_default_device():
    assert lm.default_device("ci") == lm.default_device("quick") == "cpu"
    assert lm.default_device("paper") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="size"):
        lm.default_device("huge")


def tiny_corpus(n: int = 2000):
    from pathlib import Path

    from scansnap.wikitext import Corpus, Location

    ids = synthetic_ids(n)
    return Corpus({"train": ids}, Vocab(("<unk>",) + tuple(f"w{i}" for i in range(1, 30))),
                  "train", "train", "synthetic", Location("folder", Path("."), ("train",), "test"))


def test_sweep_reuses_a_longer_run_exactly():
    corpus = tiny_corpus()
    kw = dict(checkpoint_every=3, batch_size=4, bptt=8)
    long = lm.train_lm(corpus, 1, lr=1.0, seed=2, steps=9, progress=False, **kw)
    sweep = lm.lr_sweep((0.5, 1.0), (2,), corpus=corpus, steps=6, last=2, progress=False,
                        reuse=[long], **kw)
    assert sweep.reused == [(1.0, 2)]
    fresh = lm.lr_sweep((1.0,), (2,), corpus=corpus, steps=6, last=2, progress=False, **kw)
    assert fresh.reused == []
    torch.testing.assert_close(sweep.curves[1], fresh.curves[0], rtol=0, atol=0)  # bit-identical
    # another seed, lr, dropout or a run with other checkpoints is not reused
    for other in (dict(seed=3), dict(lr=0.5, dropout=0.1)):
        run = lm.train_lm(corpus, 1, **({"lr": 1.0, "seed": 2} | other), steps=6, progress=False,
                          **kw)
        assert lm.lr_sweep((1.0,), (2,), corpus=corpus, steps=6, progress=False, reuse=[run],
                           **kw).reused == []
    with pytest.raises(TypeError, match="reuse"):
        lm.lr_sweep((1.0,), corpus=corpus, steps=6, reuse=long, **kw)


def test_key_mass_against_a_baseline():
    L = 4
    key_ids = torch.tensor([[5, 0, 5, 7], [1, 1, 1, 1]])
    first = torch.zeros(2, L, L)
    first[..., 0] = 1.0  # every query on key 0
    mass, baseline = lm.key_mass(first, key_ids, [5])
    assert mass == pytest.approx(0.5)  # column 0 holds a 5 in batch 0 only
    # uniform rows 1..3 of batch 0 see 5 among {5,0}, {5,0,5}, {5,0,5,7}: 1/2, 2/3, 2/4
    assert baseline == pytest.approx((1 / 2 + 2 / 3 + 2 / 4) / 3 / 2)
    assert lm.key_mass(first, key_ids, [0, 1, 5, 7]) == pytest.approx((1.0, 1.0))
    with pytest.raises(ValueError, match="key_ids"):
        lm.key_mass(first, key_ids[:, :3], [5])


def test_paper_size_runs_on_the_real_data(monkeypatch):
    """The paper-size switch end to end, a few steps: full vocabulary, the real WikiText-2 files
    (``SCANSNAP_WIKITEXT_DIR``; skipped without them), CUDA when present, otherwise the CPU."""
    from scansnap import wikitext

    try:
        corpus = wikitext.load_corpus(download=False)
    except wikitext.WikiTextNotFound as error:
        pytest.skip(f"no WikiText-2 here: {error}")
    ci_vocab = lm.SIZES["ci"]["max_vocab"]
    run = lm.train_lm(corpus, 1, size="paper", steps=3, checkpoint_every=1, progress=False)
    assert len(corpus.vocab) > ci_vocab  # the full vocabulary, not the CI cap
    assert run.steps.tolist() == [0, 1, 2, 3]
    assert torch.isfinite(run.probe_loss).all() and torch.isfinite(run.entropy).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_train_lm_on_cuda():
    """device='cuda' trains on the GPU and returns CPU tensors; the run learns as on the CPU
    (dropout masks come from the device's generator, so the two runs differ in detail)."""
    ids = synthetic_ids()
    kw = dict(lr=1.0, steps=60, checkpoint_every=20, seed=3, progress=False, batch_size=8,
              bptt=12)
    gpu = lm.train_lm(ids, 1, device="cuda", **kw)
    assert gpu.config.device == "cuda" and gpu.probe_maps.device.type == "cpu"
    assert next(gpu.model.parameters()).device.type == "cpu"
    cpu = lm.train_lm(ids, 1, device="cpu", **kw)
    assert abs(float(gpu.loss[-1] - cpu.loss[-1])) < 0.5 * float(cpu.loss[0] - cpu.loss[-1])


def test_train_many_side_by_side_is_each_run_alone():
    """Runs trained in worker processes are bit-identical to the same runs trained here, come
    back in the order of the jobs, and a sweep over them needs no training of its own."""
    corpus = tiny_corpus()
    kw = dict(steps=6, checkpoint_every=3, batch_size=4, bptt=8)
    jobs = [dict(kw, lr=0.5, seed=2), dict(kw, nlayers=2, lr=1.0, seed=2), dict(kw, lr=1.0, seed=2)]
    side_by_side = lm.train_many(corpus, jobs, workers=2)
    alone = lm.train_many(corpus, jobs, workers=1)
    assert [r.config.nlayers for r in side_by_side] == [1, 2, 1]
    for a, b in zip(side_by_side, alone):
        assert a.config == b.config
        torch.testing.assert_close(a.train_loss, b.train_loss, rtol=0, atol=0)
        torch.testing.assert_close(a.probe_maps, b.probe_maps, rtol=0, atol=0)
    sweep = lm.lr_sweep((0.5, 1.0), (2,), corpus=corpus, steps=6, last=2, progress=False,
                        reuse=side_by_side, **{k: v for k, v in kw.items() if k != "steps"})
    assert sweep.reused == [(0.5, 2), (1.0, 2)]
    with pytest.raises(TypeError, match="jobs"):
        lm.train_many(corpus, dict(kw))
    with pytest.raises(ValueError, match="workers"):
        lm.train_many(corpus, jobs, workers=0)
    with pytest.raises(TypeError, match="learning_rate"):
        lm.train_many(corpus, [{"learning_rate": 1.0}])


def test_linear_cross_entropy_is_torchs_loss_and_gradients():
    """The fused decoder + cross-entropy equals nn.Linear + nn.CrossEntropyLoss in value and in
    every gradient (float64), and WikiLM.loss is the forward's cross-entropy."""
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(12, 5, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(7, 5, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(7, dtype=torch.float64, generator=g, requires_grad=True)
    targets = torch.randint(0, 7, (12,), generator=g)
    ours = lm.linear_cross_entropy(hidden, weight, bias, targets)
    grads = torch.autograd.grad(2.5 * ours, (hidden, weight, bias))
    ref = torch.nn.functional.cross_entropy(hidden @ weight.T + bias, targets)
    ref_grads = torch.autograd.grad(2.5 * ref, (hidden, weight, bias))
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lm.linear_cross_entropy, (hidden, weight, bias, targets))
    model = tiny_model(nlayers=2)
    src, tgt = torch.randint(0, 50, (9, 3)), torch.randint(0, 50, (27,))
    with torch.no_grad():
        torch.testing.assert_close(model.loss(src, tgt), torch.nn.functional.cross_entropy(
            model(src).view(-1, 50), tgt), rtol=1e-5, atol=1e-6)
