"""Chapter 6 (book/ch6_wikitext.md): Fig 7 (PAPER.md B.8) and Fig 10 (App. G, B.9), attention
of the WikiText-2 language model, with the chapter's other figures and explorers.

Figs 7 and 10 train the authors' model (:mod:`scansnap.lm`) on WikiText-2 located by
:func:`scansnap.wikitext.locate` (argument-free: ``$SCANSNAP_WIKITEXT_DIR``, the per-user
cache or a download). Without the training split, the model trains on the validation split
and attention is measured on the test split; ``data["note"]`` says so for the page.

Chapter 6 trains its runs once and draws from them: :func:`draw_fig7`, :func:`draw_fig10`,
:func:`draw_entropy`, :func:`draw_departures`, :func:`draw_token_shares` (each returns a
:class:`~scansnap.plots.FigureResult`: the figure and the numbers drawn); its widgets are
:func:`attention_scrubber` (a static-capable scrubber over checkpoints with a model/layer
selector, PNG frames) and :class:`SentenceExplorer` (the figure and ``update`` of a live control:
type a sentence, see its attention; needs a kernel), built on :func:`sentence_attention`.
The numbers its prose quotes come from :func:`setting_summary`, :func:`fig7_summary`,
:func:`fig10_summary`, :func:`variant_summary`, :func:`departure_summary`,
:func:`freezing_summary` and :func:`token_share_summary` (dicts the page glues with
:func:`scansnap.gluing.glue_numbers`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import lm
from .._validate import as_int_list, check_bool, check_choice, check_int
from ..plots import FigureResult, freeze_layout, new_figure
from ..widgets import LayeredScrubber, figure_to_png, layered_scrubber
from ..wikitext import Corpus, Vocab, load_corpus, tokenize

PAPER_ITERATIONS = (0, 500, 1000, 1500)
FIG10_LRS = (1.0, 2.0, 3.0, 4.0, 5.0)  # App. G: one SGD learning rate for all parameters
DEFAULT_SENTENCE = ("the album was released in the united states in 2010 , and the band "
                    "toured europe after the first single reached the top of the chart .")
_LAYER_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")  # Okabe-Ito, as the book style


def _size(quick: bool, size: str | None) -> str:
    quick = check_bool("quick", quick)
    if size is None:
        return "quick" if quick else "ci"
    return check_choice("size", size, lm.SIZES)


def _check_runs(runs: Mapping[str, lm.LMRun]) -> dict[str, lm.LMRun]:
    if not isinstance(runs, Mapping) or not runs:
        raise TypeError("runs must be a non-empty dict of label -> LMRun")
    for label, run in runs.items():
        if not isinstance(label, str) or not isinstance(run, lm.LMRun):
            raise TypeError(f"runs must map str labels to LMRun, got {label!r}: "
                            f"{type(run).__name__}")
    return dict(runs)


@dataclass
class ChapterRuns:
    """Every run chapter 6 shows: Fig 7's ``one_layer`` and ``three_layers`` models (SGD lr 5),
    the notebook's ``variant`` (layer 0's FFN at lr 10) and the Fig 10 ``sweep`` runs that the
    1-layer run does not already contain. ``all`` lists them for :func:`scansnap.lm.lr_sweep`'s
    ``reuse``; ``seconds`` is the wall time of training them all."""

    one_layer: lm.LMRun
    three_layers: lm.LMRun
    variant: lm.LMRun
    sweep: list[lm.LMRun]
    seconds: float

    @property
    def all(self) -> list[lm.LMRun]:
        return [self.one_layer, self.three_layers, self.variant, *self.sweep]


def train_runs(corpus: Corpus, size: str = "ci", *, seed: int = 1, device: str | None = None,
               workers: int | None = None, **knobs: Any) -> ChapterRuns:
    """Train every run of chapter 6 at ``size`` (:data:`scansnap.lm.SIZES`) side by side
    (:func:`scansnap.lm.train_many`: on a CPU one run per core; each run is exactly the run
    :func:`scansnap.lm.train_lm` trains alone). PAPER.md B.8: SGD, lr 5, clip 0.5.

    The Fig 10 sweep's run at lr 5 with Fig 7's seed is the beginning of Fig 7's 1-layer run
    (:meth:`scansnap.lm.LMConfig.starts`) and is not trained again. ``knobs``: other
    :class:`scansnap.lm.LMConfig` settings shared by every run (the page uses the defaults)."""
    if not isinstance(corpus, Corpus):
        raise TypeError(f"corpus must be a Corpus, got {type(corpus).__name__}")
    size = check_choice("size", size, lm.SIZES)
    cfg = lm.SIZES[size]
    common = knobs | {"seed": seed, "device": device}
    fig7 = [common | {"nlayers": n, "lr": 5.0, "steps": cfg["steps" if n == 1 else "deep_steps"]}
            for n in (1, 3)]
    variant = common | {"lr": 5.0, "ffn_lr": 10.0, "steps": cfg["variant_steps"]}
    one_layer = lm.LMConfig.for_size(size, **fig7[0])
    sweep = []
    for lr in FIG10_LRS:
        for sweep_seed in cfg["sweep_seeds"]:
            job = common | {"lr": lr, "seed": sweep_seed, "steps": cfg["sweep_steps"],
                            "checkpoint_every": cfg["sweep_every"]}
            if not lm.LMConfig.for_size(size, **job).starts(one_layer):
                sweep.append(job)
    start = time.perf_counter()
    runs = lm.train_many(corpus, [*fig7, variant, *sweep], size=size, workers=workers)
    return ChapterRuns(runs[0], runs[1], runs[2], runs[3:], time.perf_counter() - start)


def shown_iterations(run: lm.LMRun) -> list[int]:
    """Fig 7's columns: iterations 0/500/1000/1500 when the run reached 1500 (checkpoints every
    100 include them), else four evenly spaced checkpoints of the shorter run."""
    if not isinstance(run, lm.LMRun):
        raise TypeError(f"run must be an LMRun, got {type(run).__name__}")
    steps = run.steps.tolist()
    if all(s in steps for s in PAPER_ITERATIONS):
        return list(PAPER_ITERATIONS)
    picks = np.linspace(0, len(steps) - 1, 4).round().astype(int)
    return [steps[i] for i in picks]


def _run_data(run: lm.LMRun, shown: list[int]) -> dict[str, Any]:
    return {
        "steps": run.steps.tolist(),
        "loss": run.loss.tolist(),
        "probe_loss": run.probe_loss.tolist(),
        "entropy": run.entropy.tolist(),
        "entropy_layers": run.entropy_layers.tolist(),
        "maps_layer0": [run.map_at(s, 0).tolist() for s in shown],
        "seconds": run.seconds,
        "config": run.summary(),
    }


def draw_fig7(runs: Mapping[str, lm.LMRun], iterations: Sequence[int] | None = None,
              title: str = "") -> FigureResult:
    """Fig 7: one row per run (label → :class:`~scansnap.lm.LMRun`): its layer-0 attention map
    (35×35, the probe chunk's column 0) at ``iterations``, and its layer-0 entropy over training.
    An iteration beyond a run's last checkpoint shows as an empty, labelled panel. ``data``:
    ``iterations`` and, per label, the drawn ``maps`` (None where not run), ``steps`` and
    ``entropy``."""
    runs = _check_runs(runs)
    first = next(iter(runs.values()))
    iterations = (shown_iterations(first) if iterations is None
                  else as_int_list("iterations", iterations, low=0))
    cols = len(iterations)
    drawn: dict[str, Any] = {"iterations": iterations}
    fig = new_figure(3.0 * cols + 3.6, 3.0 * len(runs))
    grid = fig.add_gridspec(len(runs), cols + 1, width_ratios=[1] * cols + [1.3])
    for row, (label, run) in enumerate(runs.items()):
        maps: list[list[list[float]] | None] = []
        for col, step in enumerate(iterations):
            ax = fig.add_subplot(grid[row, col])
            ax.set_xticks([])
            ax.set_yticks([])
            if step > int(run.steps[-1]):  # this run is shorter (e.g. the CI size's 3 layers)
                ax.text(0.5, 0.5, f"iter {step}:\nnot run\nat this size", ha="center",
                        va="center", fontsize=9, color="gray", transform=ax.transAxes)
                ax.set_aspect("equal")
                for spine in ax.spines.values():
                    spine.set_color("lightgray")
                maps.append(None)
            else:
                image = ax.imshow(run.map_at(step, 0).numpy(), cmap="viridis", vmin=0, vmax=1)
                maps.append(run.map_at(step, 0).tolist())
                ax.set_title(f"iter {int(run.steps[(run.steps - step).abs().argmin()])}",
                             fontsize=10)
            if col == 0:
                ax.set_ylabel(f"{label}\nquery position", fontsize=10)
            if row == len(runs) - 1:
                ax.set_xlabel("key position", fontsize=9)
        ax = fig.add_subplot(grid[row, cols])
        ax.plot(run.steps.numpy(), run.entropy.numpy(), marker="o", ms=3)
        ax.set_xlabel("iteration")
        ax.set_ylabel("layer-0 attention entropy")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        drawn[label] = {"maps": maps, "steps": run.steps.tolist(),
                        "entropy": run.entropy.tolist()}
    fig.colorbar(image, ax=fig.axes[:cols], shrink=0.6, label="attention weight")
    if title:
        fig.suptitle(title, fontsize=11)
    return FigureResult(fig, drawn)


def fig7(quick: bool = False, progress: bool = False, *, size: str | None = None,
         seed: int = 1) -> FigureResult:
    """Fig 7: layer-0 attention (35×35) of a 1-layer (top) and 3-layer (bottom) LM over training.

    SGD at constant lr 5, clip 0.5 (PAPER.md B.8). Columns: iterations 0/500/1000/1500 (at the
    "quick" size, four evenly spaced checkpoints of its short run); the last column plots the
    layer-0 attention entropy on the probe batch at every checkpoint. ``data`` holds both runs'
    entropy, losses and the drawn maps.
    """
    progress = check_bool("progress", progress)
    size = _size(quick, size)
    cfg = lm.SIZES[size]
    corpus = load_corpus(max_size=cfg["max_vocab"])
    one, three = lm.train_many(corpus, [  # side by side (progress bars off)
        {"nlayers": n, "lr": 5.0, "seed": seed, "steps": cfg["steps" if n == 1 else "deep_steps"]}
        for n in (1, 3)], size=size)
    runs = {1: one, 3: three}
    shown = shown_iterations(runs[1])
    fig = draw_fig7({"1 layer": runs[1], "3 layers": runs[3]}, shown,
                    f"Fig 7: layer-0 attention on WikiText-2 (SGD lr 5; vocabulary "
                    f"{len(corpus.vocab)}, size '{size}')").figure
    data = {
        "iterations": shown,
        "one_layer": _run_data(runs[1], shown),
        "three_layer": _run_data(runs[3], shown),
        "probe_tokens": runs[1].probe_tokens,
        "vocab_size": len(corpus.vocab),
        "training_split": corpus.training_split,
        "measure_split": corpus.measure_split,
        "note": corpus.note,
        "size": size,
    }
    return FigureResult(fig, data)


def draw_fig10(sweep: lm.SweepResult, title: str = "") -> FigureResult:
    """Fig 10: final layer-0 entropy against the learning rate (error bars: 1 std over seeds when
    there are several), and the seed-mean entropy curve of every learning rate. ``data``: the
    ``lrs``, ``mean``, ``std``, ``steps`` and seed-mean ``curves`` drawn."""
    if not isinstance(sweep, lm.SweepResult):
        raise TypeError(f"sweep must be a SweepResult, got {type(sweep).__name__}")
    fig = new_figure(10, 3.8)
    ax, ax2 = fig.subplots(1, 2)
    if len(sweep.seeds) > 1:
        ax.errorbar(sweep.lrs, sweep.mean.numpy(), yerr=sweep.std.numpy(), marker="o", capsize=4)
    else:
        ax.plot(sweep.lrs, sweep.mean.numpy(), marker="o")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel(f"final layer-0 attention entropy\n(mean of the last {sweep.last} checkpoints)")
    ax.set_xticks(sweep.lrs)
    ax.set_ylim(bottom=0)
    seeds = f"{len(sweep.seeds)} seed{'s' if len(sweep.seeds) > 1 else ''}"
    ax.set_title(title or f"Fig 10: higher lr, sparser attention ({seeds})", fontsize=10)
    ax.grid(alpha=0.3)
    for i, lr in enumerate(sweep.lrs):
        ax2.plot(sweep.steps.numpy(), sweep.curves[i].mean(0).numpy(), marker="o", ms=3,
                 label=f"η={lr:g}")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("layer-0 entropy (seed mean)")
    ax2.set_ylim(bottom=0)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    return FigureResult(fig, {"lrs": sweep.lrs, "mean": sweep.mean.tolist(),
                              "std": sweep.std.tolist(), "steps": sweep.steps.tolist(),
                              "curves": sweep.curves.mean(1).tolist()})


def fig10(quick: bool = False, progress: bool = False, *, size: str | None = None,
          seeds: Sequence[int] | None = None) -> FigureResult:
    """Fig 10 (App. G): final layer-0 attention entropy vs SGD learning rate 1..5, 1-layer LM.

    One constant lr per run, ``seeds`` per lr (default: the size's ``sweep_seeds``; error bars
    1 std over seeds, as the paper's 5 seeds). The final entropy is the mean over the size's
    ``sweep_last`` last checkpoints on the probe batch.
    """
    progress = check_bool("progress", progress)
    size = _size(quick, size)
    corpus = load_corpus(max_size=lm.SIZES[size]["max_vocab"])
    sweep = lm.lr_sweep((1.0, 2.0, 3.0, 4.0, 5.0), seeds, corpus=corpus, size=size,
                        progress=progress)
    fig = draw_fig10(sweep).figure
    data = {
        "lrs": sweep.lrs,
        "seeds": sweep.seeds,
        "mean": sweep.mean.tolist(),
        "std": sweep.std.tolist(),
        "final": sweep.final.tolist(),
        "steps": sweep.steps.tolist(),
        "curves": sweep.curves.tolist(),
        "last": sweep.last,
        "seconds": sweep.seconds,
        "config": sweep.config,
        "vocab_size": len(corpus.vocab),
        "note": corpus.note,
        "size": size,
    }
    return FigureResult(fig, data)


def _layer_views(runs: Mapping[str, lm.LMRun]) -> list[tuple[str, lm.LMRun, int]]:
    """(label, run, layer) for every layer of every run: '1 layer · layer 0', ..."""
    views = []
    for label, run in _check_runs(runs).items():
        for layer in range(run.maps.shape[1]):
            views.append((f"{label} · layer {layer}", run, layer))
    return views


def draw_entropy(runs: Mapping[str, lm.LMRun]) -> FigureResult:
    """Attention entropy on the probe batch over training, every layer of every run, with the
    ceiling of uniform causal attention (:func:`scansnap.lm.uniform_entropy`) for reference.
    ``data``: per label, ``steps`` and ``entropy_layers`` [checkpoint][layer]; ``ceiling``."""
    fig = new_figure(7.5, 3.6)
    ax = fig.subplots()
    styles = ("-", "--", ":", "-.")
    length = None
    drawn: dict[str, Any] = {}
    for r, (label, run) in enumerate(_check_runs(runs).items()):
        length = run.maps.shape[-1]
        drawn[label] = {"steps": run.steps.tolist(),
                        "entropy_layers": run.entropy_layers.tolist()}
        for layer in range(run.entropy_layers.shape[1]):
            ax.plot(run.steps.numpy(), run.entropy_layers[:, layer].numpy(),
                    linestyle=styles[r % len(styles)], color=_LAYER_COLORS[layer % 4], marker="o",
                    ms=2.5, label=f"{label} · layer {layer}")
    ax.axhline(lm.uniform_entropy(length), color="gray", lw=0.8, linestyle="--")
    ax.annotate("uniform causal attention", (0, lm.uniform_entropy(length)), fontsize=8,
                color="gray", xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("iteration")
    ax.set_ylabel("attention entropy (nats)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return FigureResult(fig, drawn | {"ceiling": lm.uniform_entropy(length)})


def _layer0_motion(run: lm.LMRun) -> tuple[list[float], list[float]]:
    """Between consecutive checkpoints of layer 0 (probe batch): the mean total-variation distance
    of its rows, and the fraction of rows whose most-attended key stayed the same."""
    maps = run.probe_maps[:, 0]
    pairs = range(1, len(run.steps))
    return ([lm.row_change(maps[s - 1], maps[s]) for s in pairs],
            [lm.top_key_agreement(maps[s - 1], maps[s]) for s in pairs])


def _share_ratios(run: lm.LMRun, layer: int = 0) -> dict[str, torch.Tensor]:
    """Per token group, the attention share at every checkpoint ÷ the uniform share."""
    return {group: shares / uniform
            for group, (shares, uniform) in run.token_group_shares(layer).items()}


def draw_departures(runs: Mapping[str, lm.LMRun], max_offset: int = 5) -> FigureResult:
    """Where the real model departs from the theory, measured on the probe batch.

    Left: at the last checkpoint, the mean weight on the key ``k`` positions back (``k = 0`` is
    the query itself, which the theory's mask excludes) for every layer of every run: a peak at
    small ``k`` is a *positional* rule, which a model without positional encoding (Assumption 1a)
    could not learn. Right: how much layer 0 still moves between consecutive checkpoints — the
    mean total-variation distance of its rows, and the fraction of rows whose most-attended key
    stayed the same. ``data``: ``profiles`` (per view label, offsets 0..max_offset) and, per
    run label, ``steps`` (after the first), ``change`` and ``same``.
    """
    views = _layer_views(runs)
    drawn: dict[str, Any] = {"profiles": {}}
    max_offset = check_int("max_offset", max_offset, low=0)
    fig = new_figure(11, 3.6)
    ax, ax2 = fig.subplots(1, 2)
    width = 0.8 / len(views)
    offsets = np.arange(max_offset + 1)
    for v, (label, run, layer) in enumerate(views):
        profile = lm.offset_profile(run.probe_maps[-1, layer], max_offset).numpy()
        drawn["profiles"][label] = profile.tolist()
        ax.bar(offsets + (v - (len(views) - 1) / 2) * width, profile, width, label=label)
    ax.set_xticks(offsets, ["self"] + [f"−{k}" for k in offsets[1:]])
    ax.set_xlabel("key position relative to the query")
    ax.set_ylabel("mean attention weight")
    ax.set_title("at each run's last checkpoint", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    for r, (label, run) in enumerate(_check_runs(runs).items()):
        steps = run.steps.numpy()
        change, same = _layer0_motion(run)
        drawn[label] = {"steps": steps[1:].tolist(), "change": change, "same": same}
        color = _LAYER_COLORS[r % 4]
        ax2.plot(steps[1:], change, color=color, marker="o", ms=2.5,
                 label=f"{label} · layer 0: weight moved (row TV distance)")
        ax2.plot(steps[1:], same, color=color, linestyle=":", marker="s", ms=2.5,
                 label=f"{label} · layer 0: same top key as the checkpoint before")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("fraction")
    ax2.set_ylim(0, 1.02)
    ax2.set_title("is layer 0 frozen?", fontsize=10)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7, loc="upper right")
    return FigureResult(fig, drawn)


def draw_token_shares(runs: Mapping[str, lm.LMRun], layer: int = 0) -> FigureResult:
    """Layer ``layer``'s attention share on ``<unk>``, the most frequent and the rare words
    (:meth:`scansnap.lm.LMRun.token_group_shares`) over training, divided by the share uniform
    attention would give: above 1 the layer favours those keys, below 1 it avoids them.
    ``data``: per run label, ``steps`` and per group the drawn ``ratios``."""
    runs = _check_runs(runs)
    fig = new_figure(7.5, 3.6)
    ax = fig.subplots()
    styles = ("-", "--", ":", "-.")
    drawn: dict[str, Any] = {}
    for r, (label, run) in enumerate(runs.items()):
        drawn[label] = {"steps": run.steps.tolist(), "ratios": {}}
        for g, (group, ratio) in enumerate(_share_ratios(run, layer).items()):
            drawn[label]["ratios"][group] = ratio.tolist()
            ax.plot(run.steps.numpy(), ratio.numpy(), linestyle=styles[r % 4],
                    color=_LAYER_COLORS[g % 4], marker="o", ms=2.5, label=f"{label}: {group}")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"layer-{layer} attention share\n÷ share under uniform attention")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return FigureResult(fig, drawn)


def draw_attention(weights: torch.Tensor | np.ndarray, tokens: Sequence[str], title: str = "",
                   *, ax: Any = None) -> FigureResult:
    """One attention map with the tokens on both axes (rows: queries, columns: keys), on a new
    figure or on ``ax``. ``data``: the ``weights`` and ``tokens`` drawn."""
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2 or weights.shape[0] != weights.shape[1]:
        raise ValueError(f"weights must be a square [L, L] map, got shape {list(weights.shape)}")
    if len(tokens) != weights.shape[0]:
        raise ValueError(f"tokens must have one entry per position ({weights.shape[0]}), "
                         f"got {len(tokens)}")
    if ax is None:
        fig = new_figure(5.2, 5.0)
        ax = fig.subplots()
    else:
        fig = ax.figure
    ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
    positions = np.arange(len(tokens))
    labels = [t if len(t) <= 12 else t[:11] + "…" for t in tokens]
    size = 7 if len(tokens) <= 24 else 5.5
    ax.set_yticks(positions, labels, fontsize=size)
    ax.set_xticks(positions, labels, fontsize=size, rotation=90)
    ax.set_xlabel("key (attended token)", fontsize=8)
    ax.set_ylabel("query", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return FigureResult(fig, {"weights": weights.tolist(), "tokens": list(tokens)})


def attention_scrubber(runs: Mapping[str, lm.LMRun]) -> LayeredScrubber:
    """Attention maps (probe chunk, column 0, with its tokens) at every checkpoint, for every
    layer of every run: slider over checkpoints, dropdown over (run, layer). Static-capable.

    The slider runs over all runs' checkpoints; a run that stopped earlier (the CI size's
    3-layer model) shows its last map there, titled as such."""
    views = _layer_views(runs)
    steps = sorted({s for _, run, _ in views for s in run.steps.tolist()})
    frames: dict[str, list[bytes]] = {}
    for label, run, layer in views:
        own = run.steps.tolist()
        # One figure per view, its image and title updated per frame: the tick labels (the
        # probe tokens) are laid out once (frozen constrained layout: about 40 % of a frame).
        fig = freeze_layout(draw_attention(run.maps[0, layer], run.probe_tokens, label).figure)
        ax = fig.axes[0]
        last = None
        frames[label] = []
        for step in steps:
            if step not in own and last is not None:
                frames[label].append(last)  # past this run's end: its last map again
                continue
            s = own.index(step) if step in own else len(own) - 1
            ax.images[0].set_data(run.maps[s, layer].numpy())
            ax.set_title(f"{label}, iteration {own[s]}" + ("" if step in own else
                                                            " (its last checkpoint)"), fontsize=9)
            png = figure_to_png(fig, close=False)
            frames[label].append(png)
            if step not in own:
                last = png
    alt = ("Heat maps of the attention of each query token (rows) over the key tokens "
           "(columns) of one probe chunk of WikiText-2, for the chosen model and layer; "
           "the slider moves through the training checkpoints, and the rows go from "
           "spread out to concentrated on a few keys.")
    return layered_scrubber(frames, steps, description="iteration", selector="model · layer",
                            alt=alt)


@dataclass
class SentenceAttention:
    """Attention of a trained model on one sentence: ``tokens`` and ``weights [layers, L, L]``."""

    tokens: list[str]
    ids: list[int]
    weights: torch.Tensor


def sentence_attention(model: lm.WikiLM, vocab: Vocab, text: str, *,
                       max_len: int = 64) -> SentenceAttention:
    """Tokenize ``text`` (basic_english) and return the model's per-layer attention on it.

    For the live widget: one probe pass on a single short sequence, a few milliseconds on CPU.
    Unknown words show as ``<unk>``; at most ``max_len`` tokens are kept.
    """
    if not isinstance(model, lm.WikiLM):
        raise TypeError(f"model must be a WikiLM, got {type(model).__name__}")
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a Vocab, got {type(vocab).__name__}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    max_len = check_int("max_len", max_len, low=1, high=5000)
    words = tokenize(text)[:max_len]
    if not words:
        raise ValueError("text must contain at least one token")
    ids = vocab(words)
    if max(ids) >= model.ntoken:
        raise ValueError("vocab must match the model: it has more tokens than the model's ntoken")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    _, weights = model.probe(torch.tensor(ids, device=device).unsqueeze(1))  # [layers, 1, L, L]
    model.train(was_training)
    return SentenceAttention(vocab.lookup_tokens(ids), ids, weights[:, 0].cpu())


class SentenceExplorer:
    """A live control's figure and its in-place :meth:`update`: one layer's attention on a typed
    sentence, for one of the trained ``models`` (label → :class:`~scansnap.lm.WikiLM`), with the
    tokens on both axes and the map's entropy (the measure of Fig 7 and Fig 10) in the title.

    ``figure`` is created once; :meth:`update` runs :func:`sentence_attention` (one probe pass,
    milliseconds) and redraws the map. ``depth`` is the deepest model's number of layers (the
    layer choices); at most ``max_len`` tokens are shown. Words outside ``vocab`` show as
    ``<unk>``.
    """

    def __init__(self, models: Mapping[str, lm.WikiLM], vocab: Vocab, *,
                 max_len: int = 40) -> None:
        if not isinstance(models, Mapping) or not models or not all(
                isinstance(m, lm.WikiLM) for m in models.values()):
            raise TypeError("models must be a non-empty dict of label -> WikiLM")
        if not isinstance(vocab, Vocab):
            raise TypeError(f"vocab must be a Vocab, got {type(vocab).__name__}")
        self.models = dict(models)
        self.vocab = vocab
        self.max_len = check_int("max_len", max_len, low=2)
        self.depth = max(m.nlayers for m in self.models.values())
        self.figure = new_figure(6.4, 6.0)
        self.ax = self.figure.subplots()

    def update(self, sentence: str = DEFAULT_SENTENCE, model: str | None = None,
               layer: int = 0) -> SentenceAttention:
        """Draw layer ``layer`` (a model's last layer if it has fewer) of ``model`` (default: the
        first) on ``sentence`` (an empty one shows "."); returns the attention drawn."""
        model = next(iter(self.models)) if model is None else check_choice("model", model,
                                                                           self.models)
        layer = check_int("layer", layer, low=0, high=self.depth - 1)
        if not isinstance(sentence, str):
            raise TypeError(f"sentence must be a str, got {type(sentence).__name__}")
        chosen = self.models[model]
        shown = min(layer, chosen.nlayers - 1)
        result = sentence_attention(chosen, self.vocab, sentence or ".", max_len=self.max_len)
        self.ax.clear()
        unknown = sum(t == "<unk>" for t in result.tokens)
        draw_attention(result.weights[shown], result.tokens,
                       f"{model} · layer {shown}: entropy "
                       f"{lm.attention_entropy(result.weights[shown]).item():.2f} nats"
                       + (f" · {unknown} word(s) outside the vocabulary" if unknown else ""),
                       ax=self.ax)
        return result


def corpus_summary(corpus: Corpus, batch_size: int = 20, bptt: int = 35) -> dict[str, Any]:
    """Numbers the chapter quotes about its data: tokens, vocabulary, ``<unk>`` share, batches."""
    if not isinstance(corpus, Corpus):
        raise TypeError(f"corpus must be a Corpus, got {type(corpus).__name__}")
    tokens = int(corpus.train_ids.numel())
    batches = len(range(0, tokens // batch_size - bptt, bptt))  # train_lm's full windows
    return {"training_split": corpus.training_split, "measure_split": corpus.measure_split,
            "training_tokens": tokens, "measure_tokens": int(corpus.measure_ids.numel()),
            "vocab_size": len(corpus.vocab), "unk_share": corpus.unk_share(),
            "measure_unk_share": corpus.unk_share(corpus.measure_split),
            "batches_per_epoch": batches, "note": corpus.note}


def setting_summary(data: Mapping[str, Any], size: str, device: str) -> dict[str, Any]:
    """What the page quotes about its setting (PAPER.md B.8): ``data`` (:func:`corpus_summary`'s
    dict, which the page has already computed), and the ``size`` name (:data:`scansnap.lm.SIZES`), the ``device`` (upper case, "CPU"/"CUDA"),
    Fig 7's ``steps`` (1 layer) and ``deep_steps`` (3 layers), ``deep_note`` (why the 3-layer run
    is shorter at this size; empty when it is not), ``passes`` (``steps`` over
    ``batches_per_epoch``), the ``dropout`` of every run (:class:`scansnap.lm.LMConfig`'s
    default) and ``paper_gap``: what still separates this run's data from the paper's."""
    if not isinstance(data, Mapping) or "batches_per_epoch" not in data:
        raise TypeError("data must be corpus_summary's dict")
    size = check_choice("size", size, lm.SIZES)
    if not isinstance(device, str):
        raise TypeError(f"device must be a str such as 'cpu' or 'cuda', "
                        f"got {type(device).__name__}")
    cfg = lm.SIZES[size]
    gap = []
    if data["training_split"] != "train":
        gap.append("The paper trains on the full training split, about ten times larger, and "
                   "sees each batch at most once in 1500 steps.")
    if cfg["max_vocab"] is not None:
        gap.append("The paper uses the full vocabulary.")
    deep_note = (" (fewer at this size: a 3-layer step costs about twice a 1-layer one)"
                 if cfg["deep_steps"] < cfg["steps"] else "")
    return dict(data) | {"size": size, "device": device.upper(), "steps": cfg["steps"],
                   "deep_steps": cfg["deep_steps"], "deep_note": deep_note,
                   "passes": cfg["steps"] / data["batches_per_epoch"],
                   "dropout": lm.LMConfig().dropout,
                   "paper_gap": " ".join(gap) or "These are the paper's data and vocabulary."}


def _first_below(run: lm.LMRun, level: float) -> int | str:
    """The first checkpoint whose layer-0 entropy is below ``level``, or "never"."""
    below = (run.entropy < level).nonzero()
    return int(run.steps[below[0, 0]]) if len(below) else "never"


def fig7_summary(run: lm.LMRun, shown: Sequence[int], level: float = 0.5,
                 last: int = 5) -> dict[str, Any]:
    """What the page quotes of one Fig 7 run (PAPER.md B.8: sparse, then stable): layer-0 entropy
    at the start (``entropy_start``) and the end (``entropy_end``, at iteration ``end_step``);
    ``path``, the entropy at the ``shown`` iterations after the first that the run reached, as
    "0.95 at 500, ..."; ``below``, the first iteration with entropy under ``level`` ("never" if
    none); ``flat``, the entropy's range over the ``last`` checkpoints, iterations
    ``window_start``–``window_end``; ``top``, the mean top weight of a query at the end;
    ``loss_start``/``loss_end`` and ``perplexity`` (at the end) on the probe batch;
    ``layer{i}_end``, every layer's entropy at the end; ``seconds`` of training."""
    if not isinstance(run, lm.LMRun):
        raise TypeError(f"run must be an LMRun, got {type(run).__name__}")
    shown = as_int_list("shown", shown, low=0)
    last = check_int("last", last, low=1)
    steps = run.steps.tolist()
    tail = run.entropy[-last:]  # fewer in a very short run
    path = [f"{float(run.entropy[steps.index(s)]):.2f} at {s}" for s in shown[1:] if s in steps]
    return {"entropy_start": float(run.entropy[0]), "entropy_end": float(run.entropy[-1]),
            "end_step": steps[-1], "path": ", ".join(path), "below": _first_below(run, level),
            "flat": float(tail.max() - tail.min()), "window_start": steps[-len(tail)],
            "window_end": steps[-1], "top": lm.top_weight(run.probe_maps[-1, 0]),
            "loss_start": float(run.probe_loss[0]), "loss_end": float(run.probe_loss[-1]),
            "perplexity": float(torch.exp(run.probe_loss[-1])), "seconds": run.seconds,
            **{f"layer{i}_end": h for i, h in enumerate(run.entropy_layers[-1].tolist())}}


def fig10_summary(sweep: lm.SweepResult) -> dict[str, Any]:
    """What the page quotes of Fig 10 (App. G; Theorem 4's prediction: a larger learning rate,
    sparser attention): the sweep's ``steps``, ``seeds`` per learning rate and ``last``
    checkpoints averaged into the final entropy; ``values``, the seed-mean final entropies in
    the order of the learning rates ("0.91, 0.75, ..."); ``trend``, whether they fall at every
    step of η; ``curves``, whether every seed-mean curve falls at every checkpoint; ``ordered``,
    at how many of the ``checkpoints`` after step 0 the curves are in the order of η."""
    if not isinstance(sweep, lm.SweepResult):
        raise TypeError(f"sweep must be a SweepResult, got {type(sweep).__name__}")
    mean_curves = sweep.curves.mean(1)  # [lr, checkpoint], seed mean
    later = mean_curves[:, 1:]
    ordered = (later[1:] < later[:-1]).all(0)
    monotone = bool((sweep.mean[1:] < sweep.mean[:-1]).all())
    falling = bool((mean_curves.diff(dim=1) < 0).all())
    return {"steps": sweep.config["steps"], "seeds": len(sweep.seeds), "last": sweep.last,
            "values": ", ".join(f"{h:.2f}" for h in sweep.mean.tolist()),
            "trend": ("falls at every step of η" if monotone
                      else "does not fall at every step of η"),
            "curves": ("every one falls" if falling
                       else "not every one falls at every checkpoint"),
            "ordered": int(ordered.sum()), "checkpoints": ordered.numel()}


def variant_summary(variant: lm.LMRun, reference: lm.LMRun, level: float = 0.5) -> dict[str, Any]:
    """The notebook's variant (layer 0's FFN at lr 10, see the errata) against the plain lr-5
    ``reference`` run: the variant's last iteration ``steps``, its layer-0 entropy there
    (``entropy_end``) and the reference's at the same iteration (``reference_entropy``), and
    ``below``, the variant's first iteration with entropy under ``level`` ("never" if none)."""
    for name, run in (("variant", variant), ("reference", reference)):
        if not isinstance(run, lm.LMRun):
            raise TypeError(f"{name} must be an LMRun, got {type(run).__name__}")
    end = int(variant.steps[-1])
    steps = reference.steps.tolist()
    if end not in steps:
        raise ValueError(f"reference must have a checkpoint at the variant's last iteration {end}")
    return {"steps": end, "entropy_end": float(variant.entropy[-1]),
            "reference_entropy": float(reference.entropy[steps.index(end)]),
            "below": _first_below(variant, level)}


def departure_summary(run: lm.LMRun, max_offset: int = 5) -> dict[str, Any]:
    """Where layer 0's attention goes at the last checkpoint (probe batch), against the theory's
    Assumption 1a (no positions) and its mask (no self-attention): ``self``, the mean weight a
    query puts on itself; ``previous``, on the token before it; ``farther``, on each of the
    tokens 2..``max_offset`` back (mean); ``beyond``, on keys farther back than ``max_offset``
    (offsets over the queries that have them all, :func:`scansnap.lm.offset_profile`); and the
    same for uniform causal attention: ``uniform_self``, ``uniform_offset`` (every offset gets
    the same), ``uniform_beyond``."""
    if not isinstance(run, lm.LMRun):
        raise TypeError(f"run must be an LMRun, got {type(run).__name__}")
    max_offset = check_int("max_offset", max_offset, low=2, high=run.maps.shape[-1] - 1)
    maps = run.probe_maps[-1, 0]
    profile = lm.offset_profile(maps, max_offset)
    uniform = lm.uniform_attention(run.maps.shape[-1])
    uniform_profile = lm.offset_profile(uniform, max_offset)
    return {"self": lm.self_mass(maps), "previous": float(profile[1]),
            "farther": float(profile[2:].mean()), "beyond": float(1 - profile.sum()),
            "uniform_self": lm.self_mass(uniform), "uniform_offset": float(uniform_profile[0]),
            "uniform_beyond": float(1 - uniform_profile.sum())}


def freezing_summary(run: lm.LMRun, between: Sequence[int], last: int = 5) -> dict[str, Any]:
    """Does layer 0 freeze (Theorem 4's snapping freezes the pattern, not only its entropy)?
    ``change``: the mean total-variation distance a row moves between consecutive checkpoints,
    over the ``last`` such pairs; ``agreement``: the fraction of the probe batch's queries whose
    most-attended key is the same at the two iterations ``between`` (``start``, ``end``)."""
    if not isinstance(run, lm.LMRun):
        raise TypeError(f"run must be an LMRun, got {type(run).__name__}")
    between = as_int_list("between", between, low=0)
    last = check_int("last", last, low=1)
    steps = run.steps.tolist()
    if len(between) != 2 or not all(s in steps for s in between):
        raise ValueError(f"between must be two of the run's checkpoint iterations, got {between}")
    maps = run.probe_maps[:, 0]
    change, _ = _layer0_motion(run)
    late = change[-last:]
    start, end = between
    return {"start": start, "end": end, "change": sum(late) / len(late),
            "agreement": lm.top_key_agreement(maps[steps.index(start)], maps[steps.index(end)])}


def token_share_summary(run: lm.LMRun, layer: int = 0) -> dict[str, Any]:
    """Which tokens layer ``layer`` favours (the theory: common tokens are suppressed, distinct
    ones win, Theorem 2), as attention share ÷ uniform share (:func:`draw_token_shares`). From
    iteration ``half`` (half the run) on: ``frequent_verdict`` on the 20 most frequent words
    (avoided, favoured, or swinging), ``unk_low``/``unk_high``, the range of ``<unk>``'s ratio,
    ``rare_mean``, the rare words' mean ratio (nan if the vocabulary has none), and
    ``rare_verdict``; over the whole run: the frequent words' ``frequent_min`` and their ratio at
    the end, ``frequent_end``."""
    if not isinstance(run, lm.LMRun):
        raise TypeError(f"run must be an LMRun, got {type(run).__name__}")
    ratios = _share_ratios(run, layer)
    second_half = run.steps >= run.steps[-1] / 2
    frequent = ratios["20 most frequent words"]
    late = frequent[second_half]
    if bool((late < 1).all()):
        verdict = "stays below 1: the most frequent words are avoided, as the theory predicts"
    elif bool((late > 1).all()):
        verdict = "stays above 1: the most frequent words are favoured, against the theory"
    else:
        verdict = (f"swings between {late.min():.2f} and {late.max():.2f}, on both sides of "
                   "1: no consistent suppression")
    rare = [group for group in ratios if group.startswith("rare")]
    rare_mean = float(ratios[rare[0]][second_half].mean()) if rare else float("nan")
    unk = ratios["<unk>"][second_half]
    return {"half": int(run.steps[-1]) // 2, "frequent_verdict": verdict,
            "unk_low": float(unk.min()), "unk_high": float(unk.max()), "rare_mean": rare_mean,
            "rare_verdict": ("favoured, in the direction the theory predicts for distinct tokens"
                             if rare_mean > 1 else
                             "not favoured, against the theory's prediction for distinct tokens"),
            "frequent_min": float(frequent.min()), "frequent_end": float(frequent[-1])}
