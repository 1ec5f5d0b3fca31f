"""The WikiText LM (PAPER.md B.8): model, attention probe, training loop, sweep, sentence attention."""

from __future__ import annotations

import math
import time

import pytest
import torch

from scansnap import lm
from scansnap.wikitext import Vocab, build_vocab


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
    start = time.perf_counter()
    run = lm.train_lm(ids, 1, lr=1.0, steps=60, checkpoint_every=20, seed=3, progress=False,
                      batch_size=8, bptt=12)
    assert time.perf_counter() - start < 20
    assert run.steps.tolist() == [0, 20, 40, 60]
    assert run.loss[-1] < run.loss[0] - 0.5 and run.probe_loss[-1] < run.probe_loss[0] - 0.5
    assert run.train_loss.shape == (60,)
    assert run.entropy.shape == (4,) and bool(torch.isfinite(run.entropy).all())
    torch.testing.assert_close(run.entropy, run.entropy_layers[:, 0])
    assert 0 < run.entropy[0] < math.log(12)
    assert run.maps.shape == (4, 1, 12, 12)
    assert run.map_at(41).shape == (12, 12)
    assert run.config["probe_index"] <= ids.numel() // 8 - 13
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
    assert run.config["ffn_lr"] == 2.0


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


def test_sentence_attention_fast():
    vocab = build_vocab([["the", "cat", "sat", "on", "mat", "."]])
    torch.manual_seed(0)
    model = lm.WikiLM(len(vocab), 3).eval()
    out = lm.sentence_attention(model, vocab, "The cat sat on the mat, said Zork.")
    assert out.tokens[:3] == ["the", "cat", "sat"] and "<unk>" in out.tokens
    L = len(out.tokens)
    assert out.weights.shape == (3, L, L)
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(3, L))
    start = time.perf_counter()
    for _ in range(5):
        lm.sentence_attention(model, vocab, "the cat sat on the mat " * 5)
    assert (time.perf_counter() - start) / 5 < 0.15
    with pytest.raises(ValueError, match="text"):
        lm.sentence_attention(model, vocab, "   ")
    with pytest.raises(TypeError, match="vocab"):
        lm.sentence_attention(model, {"the": 1}, "the")
