"""Fig 7 (PAPER.md B.8) and Fig 10 (App. G, B.9): attention of the WikiText-2 language model.

Both train the authors' model (:mod:`scansnap.lm`) on WikiText-2 located by
:func:`scansnap.wikitext.locate` (argument-free: ``$SCANSNAP_WIKITEXT_DIR``, the shared folder,
the cache or a download). Without the training split, the model trains on the validation split
and attention is measured on the test split; ``data["note"]`` says so for the page.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import torch

from .. import lm
from .._validate import check_bool, check_choice
from ..wikitext import load_corpus
from . import FigureResult, register

PAPER_ITERATIONS = (0, 500, 1000, 1500)


def _size(quick: bool, size: str | None) -> str:
    quick = check_bool("quick", quick)
    if size is None:
        return "quick" if quick else "ci"
    return check_choice("size", size, lm.SIZES)


def _run_data(run: lm.LMRun, shown: list[int]) -> dict[str, Any]:
    return {
        "steps": run.steps.tolist(),
        "loss": run.loss.tolist(),
        "probe_loss": run.probe_loss.tolist(),
        "entropy": run.entropy.tolist(),
        "entropy_layers": run.entropy_layers.tolist(),
        "maps_layer0": [run.map_at(s, 0).tolist() for s in shown],
        "seconds": run.seconds,
        "config": run.config,
    }


@register(7)
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
    runs = {n: lm.train_lm(corpus, n, lr=5.0, seed=seed, size=size, progress=progress)
            for n in (1, 3)}
    total = runs[1].config["steps"]
    shown = list(PAPER_ITERATIONS) if total >= PAPER_ITERATIONS[-1] else [
        int(round(total * k / 3)) for k in range(4)]

    fig, axes = plt.subplots(2, 5, figsize=(15, 6.2), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.3]})
    for row, n in enumerate((1, 3)):
        run = runs[n]
        for col, step in enumerate(shown):
            ax = axes[row, col]
            ax.imshow(run.map_at(step, 0).numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"iter {int(run.steps[(run.steps - step).abs().argmin()])}", fontsize=10)
            if col == 0:
                ax.set_ylabel(f"{n} layer{'s' if n > 1 else ''}\nquery", fontsize=10)
            if row == 1:
                ax.set_xlabel("key", fontsize=9)
        ax = axes[row, 4]
        ax.plot(run.steps.numpy(), run.entropy.numpy(), marker="o", ms=3)
        ax.set_xlabel("iteration")
        ax.set_ylabel("layer-0 attention entropy")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Fig 7: layer-0 attention on WikiText-2 (SGD lr 5; vocabulary "
                 f"{len(corpus.vocab)}, size '{size}')", fontsize=11)
    fig.tight_layout()
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


@register(10)
def fig10(quick: bool = False, progress: bool = False, *, size: str | None = None,
          seeds: tuple[int, ...] = (1, 2)) -> FigureResult:
    """Fig 10 (App. G): final layer-0 attention entropy vs SGD learning rate 1..5, 1-layer LM.

    One constant lr per run, ``seeds`` per lr (error bars: 1 std over seeds, as the paper's 5
    seeds). The final entropy is the mean over the last 3 checkpoints on the probe batch.
    """
    progress = check_bool("progress", progress)
    size = _size(quick, size)
    corpus = load_corpus(max_size=lm.SIZES[size]["max_vocab"])
    sweep = lm.lr_sweep((1.0, 2.0, 3.0, 4.0, 5.0), seeds, corpus=corpus, size=size,
                        progress=progress)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax.errorbar(sweep.lrs, sweep.mean.numpy(), yerr=sweep.std.numpy(), marker="o", capsize=4)
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("final layer-0 attention entropy")
    ax.set_xticks(sweep.lrs)
    ax.set_title(f"Fig 10: higher lr, sparser attention ({len(sweep.seeds)} seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    for i, lr in enumerate(sweep.lrs):
        ax2.plot(sweep.steps.numpy(), sweep.curves[i].mean(0).numpy(), label=f"η={lr:g}")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("entropy (seed mean)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
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
