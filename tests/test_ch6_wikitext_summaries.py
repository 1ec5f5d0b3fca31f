"""The numbers chapter 6 quotes (scansnap.chapters.ch6_wikitext's *_summary functions), checked
on runs whose entropies and maps are set by hand, against values worked out independently."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from scansnap import lm
from scansnap.chapters import ch6_wikitext as ch6

from test_lm import synthetic_ids, tiny_corpus

L = 8  # the tiny runs' sequence length (bptt)


@pytest.fixture(scope="module")
def base():
    """A real 1-layer run with checkpoints at steps 0, 2, 4, 6 (its numbers are replaced)."""
    return lm.train_lm(synthetic_ids(2000), 1, steps=6, checkpoint_every=2, progress=False,
                       batch_size=4, bptt=L)


def with_(run, **fields):
    return dataclasses.replace(run, **fields)


def one_hot_maps(keys_per_checkpoint, batch=2):
    """probe_maps [S, 1 layer, B, L, L] where every query attends to one key: row i to key
    keys[i] (clipped to i: the causal mask)."""
    maps = torch.zeros(len(keys_per_checkpoint), 1, batch, L, L)
    for s, keys in enumerate(keys_per_checkpoint):
        for i in range(L):
            maps[s, 0, :, i, min(keys[i], i)] = 1.0
    return maps


def test_setting_summary():
    data = ch6.corpus_summary(tiny_corpus())
    quick = ch6.setting_summary(data, "quick", "cpu")
    assert quick["device"] == "CPU" and quick["size"] == "quick"
    assert quick["vocab_size"] == 30 and quick["training_tokens"] == 2000  # corpus_summary's
    batches = len(range(0, 2000 // 20 - 35, 35))  # 20 columns × 35 tokens: 2 full windows
    assert quick["passes"] == pytest.approx(150 / batches)
    assert quick["deep_note"] == ""  # the quick size trains both models 150 steps
    assert quick["paper_gap"] == "The paper uses the full vocabulary."  # capped at 500 words
    assert quick["dropout"] == lm.LMConfig().dropout
    paper = ch6.setting_summary(data, "paper", "cuda")
    assert paper["device"] == "CUDA" and paper["steps"] == 2000
    assert paper["paper_gap"] == "These are the paper's data and vocabulary."
    with pytest.raises(ValueError, match="size"):
        ch6.setting_summary(data, "huge", "cpu")
    with pytest.raises(TypeError, match="device"):
        ch6.setting_summary(data, "ci", 0)
    with pytest.raises(TypeError, match="data"):
        ch6.setting_summary(tiny_corpus(), "ci", "cpu")


def test_fig7_summary(base):
    run = with_(base, entropy=torch.tensor([1.5, 0.6, 0.4, 0.45]),
                entropy_layers=torch.tensor([[1.5], [0.6], [0.4], [0.45]]),
                probe_loss=torch.tensor([3.0, 2.5, 2.0, 1.5]),
                probe_maps=one_hot_maps([[0] * L, [0] * L, [0] * L, list(range(L))]))
    out = ch6.fig7_summary(run, [0, 2, 4, 6, 8], last=2)
    assert out["path"] == "0.60 at 2, 0.40 at 4, 0.45 at 6"  # 8 was not reached: left out
    assert out["below"] == 4 and out["end_step"] == 6
    assert out["flat"] == pytest.approx(0.05, abs=1e-6)  # 0.45 - 0.40 over the last two
    assert (out["window_start"], out["window_end"]) == (4, 6)
    assert out["entropy_start"] == pytest.approx(1.5) and out["layer0_end"] == pytest.approx(0.45)
    assert out["top"] == 1.0  # one-hot rows at the end
    assert out["perplexity"] == pytest.approx(math.exp(1.5), rel=1e-6)
    assert ch6.fig7_summary(run, [0, 6], level=0.3)["below"] == "never"
    with pytest.raises(TypeError, match="run"):
        ch6.fig7_summary("run", [0])


def test_fig10_summary():
    # curves [lr, seed, checkpoint]: η = 1, 2, 3 with one seed, checkpoints 0, 50, 100
    curves = torch.tensor([[[2.0, 1.8, 1.5]], [[2.0, 1.6, 1.6]], [[2.0, 1.4, 1.0]]])
    final = curves[:, :, -1]
    sweep = lm.SweepResult(lrs=[1.0, 2.0, 3.0], seeds=[1], final=final, mean=final.mean(1),
                           std=torch.zeros(3), steps=torch.tensor([0, 50, 100]), curves=curves,
                           last=1, seconds=0.0, config={"steps": 100})
    out = ch6.fig10_summary(sweep)
    assert out["values"] == "1.50, 1.60, 1.00"
    assert out["trend"] == "does not fall at every step of η"  # 1.5 → 1.6 rises
    assert out["curves"] == "not every one falls at every checkpoint"  # η = 2 stays at 1.6
    # in the order of η (each lower than the one before) at 50 but not at 100 (1.6 > 1.5)
    assert (out["ordered"], out["checkpoints"]) == (1, 2)
    assert (out["steps"], out["seeds"], out["last"]) == (100, 1, 1)
    with pytest.raises(TypeError, match="sweep"):
        ch6.fig10_summary([1.0])


def test_variant_summary(base):
    reference = with_(base, entropy=torch.tensor([1.5, 1.2, 0.9, 0.7]))
    variant = with_(base, steps=torch.tensor([0, 2, 4]), entropy=torch.tensor([1.5, 0.45, 0.3]))
    out = ch6.variant_summary(variant, reference)
    assert out == {"steps": 4, "entropy_end": pytest.approx(0.3),
                   "reference_entropy": pytest.approx(0.9), "below": 2}
    longer = with_(base, steps=torch.tensor([0, 2, 4, 8]), entropy=torch.ones(4))
    with pytest.raises(ValueError, match="reference"):
        ch6.variant_summary(longer, reference)


def test_departure_summary(base):
    # every query on itself: all weight at offset 0
    itself = ch6.departure_summary(with_(base, probe_maps=one_hot_maps([list(range(L))] * 4)))
    assert (itself["self"], itself["previous"], itself["farther"]) == (1.0, 0.0, 0.0)
    assert itself["beyond"] == pytest.approx(0.0)
    # every query (with a previous token) on the previous token
    previous = ch6.departure_summary(
        with_(base, probe_maps=one_hot_maps([[max(i - 1, 0) for i in range(L)]] * 4)))
    assert previous["self"] == 0.0  # over rows 1..L-1 (row 0 can only attend to itself)
    assert previous["previous"] == 1.0 and previous["beyond"] == pytest.approx(0.0)
    # uniform causal attention: row i gives 1/(i+1) to each of its keys
    assert itself["uniform_self"] == pytest.approx(sum(1 / (i + 1) for i in range(1, L)) / (L - 1))
    rows = range(5, L)  # the rows that have all offsets 0..5
    assert itself["uniform_offset"] == pytest.approx(sum(1 / (i + 1) for i in rows) / len(rows))
    assert itself["uniform_beyond"] == pytest.approx(
        sum((i - 5) / (i + 1) for i in rows) / len(rows))
    with pytest.raises(ValueError, match="max_offset"):
        ch6.departure_summary(base, max_offset=L)


def test_freezing_summary(base):
    keys = [[0] * L, [0] * L, [0] * L, [0] * 4 + [i for i in range(4, L)]]
    run = with_(base, probe_maps=one_hot_maps(keys))
    out = ch6.freezing_summary(run, [2, 6], last=2)
    # over rows 1..7 (row 0 has one key): rows 4..7 move all their weight between steps 4 and
    # 6, a mean TV distance of 4/7 there and 0 between steps 2 and 4; rows 1..3 keep their top
    # key from step 2 to 6.
    assert out["change"] == pytest.approx((0 + 4 / 7) / 2)
    assert out["agreement"] == pytest.approx(3 / 7) and (out["start"], out["end"]) == (2, 6)
    assert ch6.freezing_summary(run, [0, 4])["agreement"] == 1.0
    with pytest.raises(ValueError, match="between"):
        ch6.freezing_summary(run, [2, 5])


def test_token_share_summary(base, monkeypatch):
    run = with_(base)
    shares = {"<unk>": (torch.tensor([0.2, 0.4, 0.1, 0.3]), 0.2),
              "20 most frequent words": (torch.tensor([0.5, 0.6, 0.3, 0.9]), 0.5),
              "rare words (rank ≥ 500)": (torch.tensor([0.1, 0.1, 0.2, 0.3]), 0.1)}
    monkeypatch.setattr(run, "token_group_shares", lambda layer=0: shares)
    out = ch6.token_share_summary(run)
    # the second half: steps 4 and 6 (≥ 6 / 2 = 3)
    assert out["half"] == 3
    assert out["frequent_verdict"].startswith("swings between 0.60 and 1.80")
    assert (out["unk_low"], out["unk_high"]) == (pytest.approx(0.5), pytest.approx(1.5))
    assert out["rare_mean"] == pytest.approx(2.5) and out["rare_verdict"].startswith("favoured")
    assert out["frequent_min"] == pytest.approx(0.6) and out["frequent_end"] == pytest.approx(1.8)
    shares["20 most frequent words"] = (torch.tensor([0.5, 0.6, 0.3, 0.4]), 0.5)
    assert ch6.token_share_summary(run)["frequent_verdict"].startswith("stays below 1")
    del shares["rare words (rank ≥ 500)"]  # a vocabulary without rare words
    assert math.isnan(ch6.token_share_summary(run)["rare_mean"])
