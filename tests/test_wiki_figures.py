"""Chapter 6's figures and widgets (scansnap.chapters.ch6_wikitext) on tiny runs: shapes, frames,
links, the numbers each figure returns."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest
import torch
from ipywidgets.embed import embed_data

from scansnap import lm
from scansnap.chapters import ch6_wikitext as ch6
from scansnap.plots import FigureResult
from scansnap.widgets import live
from scansnap.wikitext import build_vocab

from test_lm import synthetic_ids, tiny_corpus


@pytest.fixture(scope="module")
def runs():
    kw = dict(steps=6, checkpoint_every=2, progress=False, batch_size=4, bptt=8)
    ids = synthetic_ids(2000)
    return {"1 layer": lm.train_lm(ids, 1, **kw), "2 layers": lm.train_lm(ids, 2, **kw)}


def test_static_figures(runs):
    before = len(plt.get_fignums())
    one = runs["1 layer"]
    assert ch6.shown_iterations(one) == [0, 2, 4, 6]
    results = (ch6.draw_fig7(runs, title="t"), ch6.draw_entropy(runs),
               ch6.draw_departures(runs, max_offset=3), ch6.draw_token_shares(runs))
    for result in results:
        assert isinstance(result, FigureResult) and result.figure.axes
    fig7, entropy, departures, shares = (r.data for r in results)
    # each returns the numbers it drew
    assert fig7["iterations"] == [0, 2, 4, 6]
    torch.testing.assert_close(torch.tensor(fig7["1 layer"]["maps"][2]), one.map_at(4, 0))
    torch.testing.assert_close(torch.tensor(entropy["2 layers"]["entropy_layers"]),
                               runs["2 layers"].entropy_layers)
    assert entropy["ceiling"] == pytest.approx(lm.uniform_entropy(8))
    torch.testing.assert_close(torch.tensor(departures["profiles"]["2 layers · layer 1"]),
                               lm.offset_profile(runs["2 layers"].probe_maps[-1, 1], 3))
    assert departures["1 layer"]["change"][0] == pytest.approx(
        lm.row_change(one.probe_maps[0, 0], one.probe_maps[1, 0]))
    group = "20 most frequent words"
    frequent, uniform = one.token_group_shares()[group]
    torch.testing.assert_close(torch.tensor(shares["1 layer"]["ratios"][group]),
                               frequent / uniform)
    result = ch6.draw_attention(one.maps[-1, 0], one.probe_tokens, "x")
    assert len(result.figure.axes[0].get_yticklabels()) == 8
    assert result.data["tokens"] == one.probe_tokens
    assert len(plt.get_fignums()) == before  # pyplot manages none of them
    with pytest.raises(ValueError, match="tokens"):
        ch6.draw_attention(torch.eye(3), ["a", "b"])
    with pytest.raises(TypeError, match="runs"):
        ch6.draw_fig7({})


def test_token_group_shares(runs):
    run = runs["2 layers"]
    shares = run.token_group_shares(layer=1, groups={"all": (0, None), "none": (30, None),
                                                     "low": (0, 5)})
    torch.testing.assert_close(shares["all"][0], torch.ones(len(run.steps)))
    assert shares["all"][1] == pytest.approx(1.0) and "none" not in shares
    assert 0 < shares["low"][1] < 1 and shares["low"][0].shape == (len(run.steps),)
    with pytest.raises(ValueError, match="layer"):
        run.token_group_shares(layer=2)
    with pytest.raises(ValueError, match="maps"):
        lm.token_group_shares(run.probe_maps[0, 0], run.probe_ids.T, 30)  # [B, L, L], not [S, ...]


def test_fig10_from_a_sweep():
    sweep = lm.lr_sweep((0.5, 1.0), (1, 2), corpus=tiny_corpus(), steps=4, last=2,
                        progress=False, checkpoint_every=2, batch_size=4, bptt=8)
    result = ch6.draw_fig10(sweep)
    assert len(result.figure.axes) == 2
    assert result.data["lrs"] == [0.5, 1.0]
    torch.testing.assert_close(torch.tensor(result.data["mean"]), sweep.mean)
    with pytest.raises(TypeError, match="sweep"):
        ch6.draw_fig10({"lrs": [1]})


def test_attention_scrubber_links_every_stack(runs):
    box = ch6.attention_scrubber(runs)
    assert list(box.dropdown.options) == ["1 layer · layer 0", "2 layers · layer 0",
                                          "2 layers · layer 1"]
    assert len(box.stacks) == 3 and all(len(s.children) == 4 for s in box.stacks)
    assert list(box.slider.options) == ["0", "2", "4", "6"]
    assert isinstance(box.children[0].children[0], widgets.Play)  # the browser test's layout
    parts = {"play": box.play, "slider": box.slider, "dropdown": box.dropdown,
             "outer": box.children[1], **{f"stack{i}": s for i, s in enumerate(box.stacks)}}
    names = {f"IPY_MODEL_{w.model_id}": name for name, w in parts.items()}
    state = embed_data(views=[box])["manager_state"]["state"]
    links = {(names[m["state"]["source"][0]], m["state"]["source"][1],
              names[m["state"]["target"][0]], m["state"]["target"][1])
             for m in state.values() if m["model_name"] == "LinkModel"
             # the state holds every widget of this test process: keep the links of this box
             and {m["state"]["source"][0], m["state"]["target"][0]} & names.keys()}
    assert links == {("play", "value", "slider", "index"), ("dropdown", "index", "outer",
                                                             "selected_index")} | {
        ("slider", "index", f"stack{i}", "selected_index") for i in range(3)}


def test_scrubber_and_fig7_with_a_shorter_run(runs):
    short = lm.train_lm(synthetic_ids(2000), 1, steps=2, checkpoint_every=2, progress=False,
                        batch_size=4, bptt=8)
    box = ch6.attention_scrubber({"long": runs["1 layer"], "short": short})
    assert list(box.slider.options) == ["0", "2", "4", "6"]
    images = [image.value for image in box.stacks[1].children]
    assert images[2] == images[3] != images[1]  # the last map, repeated past the run's end
    result = ch6.draw_fig7({"long": runs["1 layer"], "short": short})
    assert any("not run" in text.get_text() for ax in result.figure.axes for text in ax.texts)
    assert result.data["short"]["maps"][2:] == [None, None]  # iterations 4 and 6: not run


def test_sentence_attention():
    vocab = build_vocab([["the", "cat", "sat", "on", "mat", "."]])
    torch.manual_seed(0)
    model = lm.WikiLM(len(vocab), 3).eval()
    out = ch6.sentence_attention(model, vocab, "The cat sat on the mat, said Zork.")
    assert out.tokens[:3] == ["the", "cat", "sat"] and "<unk>" in out.tokens
    L = len(out.tokens)
    assert out.weights.shape == (3, L, L)
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(3, L))
    with pytest.raises(ValueError, match="text"):
        ch6.sentence_attention(model, vocab, "   ")
    with pytest.raises(TypeError, match="vocab"):
        ch6.sentence_attention(model, {"the": 1}, "the")


def test_sentence_explorer_updates_in_place():
    vocab = build_vocab([["the", "cat", "sat", "on", "mat", "."]])
    torch.manual_seed(0)
    models = {"1 layer": lm.WikiLM(len(vocab), 1).eval(),
              "3 layers": lm.WikiLM(len(vocab), 3).eval()}
    explorer = ch6.SentenceExplorer(models, vocab)
    assert explorer.depth == 3
    drawn = explorer.update("the mat sat on a zork .", "3 layers", 2)
    expected = ch6.sentence_attention(models["3 layers"], vocab, "the mat sat on a zork .")
    torch.testing.assert_close(drawn.weights, expected.weights)
    image = explorer.ax.images[0].get_array()
    torch.testing.assert_close(torch.as_tensor(image.data, dtype=torch.float32),
                               expected.weights[2])  # the figure shows the chosen layer
    assert "3 layers · layer 2" in explorer.ax.get_title()
    assert "2 word(s) outside the vocabulary" in explorer.ax.get_title()  # "a", "zork"
    explorer.update("the cat", "1 layer", 2)  # layer 2 of a 1-layer model: shows its last
    assert explorer.ax.get_title().startswith("1 layer · layer 0")
    with pytest.raises(TypeError, match="models"):
        ch6.SentenceExplorer({"m": object()}, vocab)
    with pytest.raises(ValueError, match="model"):
        explorer.update("the cat", "2 layers")
    with pytest.raises(ValueError, match="layer"):
        explorer.update("the cat", "1 layer", 3)
    with pytest.raises(TypeError, match="sentence"):
        explorer.update(None)


def test_sentence_explorer_as_a_live_widget():
    """The page's wiring: live() over the explorer's update redraws its figure on every change
    and reports no error; the static page shows the default state."""
    vocab = build_vocab([["the", "cat", "sat", "on", "mat", "."]])
    torch.manual_seed(0)
    models = {"1 layer": lm.WikiLM(len(vocab), 1).eval(),
              "3 layers": lm.WikiLM(len(vocab), 3).eval()}
    explorer = ch6.SentenceExplorer(models, vocab)
    box = live(explorer.update,
               {"sentence": widgets.Text("the cat sat on the mat .", continuous_update=False),
                "model": widgets.Dropdown(options=list(explorer.models)),
                "layer": widgets.Dropdown(options=list(range(explorer.depth)))},
               figure=explorer.figure)
    first = box.image.value
    assert bytes(first[:4]) == b"\x89PNG"
    box.controls["model"].value = "3 layers"
    box.controls["layer"].value = 2
    box.controls["sentence"].value = "the mat sat on a zork ."
    assert box.image.value != first and box.error.layout.display == "none"
    assert len(box.redraw_seconds) == 4  # the first draw and one per change
    box.controls["model"].value = "1 layer"  # layer 2 of a 1-layer model: shows its last
    assert box.error.layout.display == "none"


def test_corpus_summary():
    summary = ch6.corpus_summary(tiny_corpus())
    assert summary["training_tokens"] == 2000 and summary["vocab_size"] == 30
    assert summary["batches_per_epoch"] == len(range(0, 100 - 35, 35))


def test_chapter_runs_cover_the_sweep():
    """train_runs trains each run of the page once: the sweep then trains nothing, and its lr-5
    curve is the start of Fig 7's 1-layer run."""
    corpus = tiny_corpus()
    trained = ch6.train_runs(corpus, "quick", batch_size=4, bptt=8)
    size = lm.SIZES["quick"]
    assert trained.one_layer.config.steps == size["steps"]
    assert trained.three_layers.config.nlayers == 3
    assert trained.variant.config.ffn_lr == 10.0
    assert sorted(r.config.lr for r in trained.sweep) == [1.0, 2.0, 3.0, 4.0]  # lr 5: run 1
    sweep = lm.lr_sweep(ch6.FIG10_LRS, corpus=corpus, size="quick", reuse=trained.all,
                        progress=False, workers=1, batch_size=4, bptt=8)
    assert sweep.reused == [(lr, 1) for lr in ch6.FIG10_LRS]
    torch.testing.assert_close(sweep.curves[-1, 0],
                               trained.one_layer.entropy[: len(sweep.steps)], rtol=0, atol=0)
    with pytest.raises(TypeError, match="corpus"):
        ch6.train_runs(synthetic_ids(), "quick")
