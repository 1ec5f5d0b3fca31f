"""The fates of tokens (Section 5, Section 8): Figs 4 and 5, and the plots of Chapter 4.

Fig 4 follows the authors' ``figure_4_create.py`` (PAPER.md B.2): Syn-Small, zero init, SGD with
momentum 0.9, batch 128, T = 128, seed 2, checkpoints every 2 iterations; rows are iterations
0, 2, 4, 6, 8, 10 and "Final", which in their script is iteration **48** (the last checkpoint of
``range(0, 50, 2)``), columns are tokens 0–19 of class 1 (10 common, then class 1's 10 distinct
tokens, least to most likely). Fig 5 is the same picture with Adam (PAPER.md B.3: no command
was released; we use the Fig 4 command with ``opt.method=adam``).

Our sampler is not the authors' (token-count draws from torch's generator, PAPER.md B.0), so
"seed 2" names a run, not their exact batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import decompose, metrics, theory
from .._validate import as_float_list, check_choice, check_float, check_int, check_tensor
from ..data import SequenceClasses, syn_small
from ..dynamics import Run, population, train
from ..plots import FigureResult, new_figure
from ..widgets import figure_to_png

#: Rows of the authors' Fig 4: iterations 0..10 every 2, then "Final" (= iteration 48 in their script).
FIG4_ITERATIONS = (0, 2, 4, 6, 8, 10)
FIG4_FINAL = 48
FIG4_SEED = 2


def fig4_run(eta_y: float | Sequence[float] = (1.0, 10.0), eta_z: float = 1.0,
             optimizer: str = "sgd", steps: int = 100, batch_size: int = 128,
             seq_len: int = 128, seed: int = FIG4_SEED, record_every: int | None = 2,
             progress: bool | None = None, on_divergence: str = "raise") -> Run:
    """The authors' Syn-Small command (PAPER.md B.1), batched over ``eta_y``: zero init,
    momentum 0.9 (SGD) or PyTorch-default Adam, float32. Returns the :class:`Run`
    (``record_every`` and ``on_divergence`` as in :func:`scansnap.train`)."""
    optimizer = check_choice("optimizer", optimizer, ("sgd", "adam"))
    return train(syn_small(), eta_y=eta_y, eta_z=eta_z, steps=steps, batch_size=batch_size,
                 seq_len=seq_len, optimizer=optimizer, momentum=0.9, init="zero", seeds=[seed],
                 record_every=record_every, dtype=torch.float32, progress=progress,
                 on_divergence=on_divergence)


def attention_rows(run: Run, index: int, iterations: Sequence[int], n: int = 0,
                   tokens: int = 20) -> np.ndarray:
    """``c_n`` over the first ``tokens`` token ids at the given ``iterations`` of run ``index``:
    ``[len(iterations), tokens]`` (each must be a recorded step)."""
    steps = run.steps.tolist()
    missing = [i for i in iterations if i not in steps]
    if missing:
        raise ValueError(f"iterations must be recorded steps of the run, {missing} are not "
                         f"(recorded: {steps[:6]}...)")
    c = run.attention()[index]  # [S, K, M]
    return c[[steps.index(i) for i in iterations], n, :tokens].double().numpy()


def draw_attention_rows(ax: Axes, rows: np.ndarray, labels: Sequence[str], title: str,
                        vmax: float | None = None, num_common: int = 10) -> Any:
    """Fig 4's panel: rows of ``c_1`` as an image, separators after the common and distinct
    blocks (the authors' dashed white lines at 9.5 and 19.5)."""
    image = ax.imshow(rows, aspect="auto", cmap="viridis", vmin=0, vmax=vmax)
    for x in (num_common - 0.5, rows.shape[1] - 0.5):
        ax.axvline(x, color="w", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xticks([0, 5, 10, 15, 19])
    ax.set_xlabel("token id  (0–9 common · 10–19 distinct, class 1)")
    ax.set_title(title, fontsize=10)
    return image


def _panel_data(classes: SequenceClasses, run: Run, index: int, final: int) -> dict[str, Any]:
    steps = run.steps.tolist()
    Z_final, Z_last = run.Z[index, steps.index(final)], run.Z[index, -1]
    out: dict[str, Any] = {"eta_y": run.configs[index][0], "eta_z": run.configs[index][1]}
    for name, Z in (("final", Z_final), ("last", Z_last)):
        out[f"distinct_entropy_{name}"] = float(metrics.distinct_entropy(classes, Z)[0])
        out[f"common_mass_{name}"] = float(metrics.common_mass(classes, Z)[0])
        out[f"max_weight_{name}"] = float(metrics.max_weight(classes, Z)[0])
    out["loss"] = run.loss[index].double().tolist()
    return out


def _attention_figure(run: Run, titles: Sequence[str], final: int,
                      with_loss: bool) -> tuple[Figure, dict[str, Any]]:
    classes = run.classes
    iterations = [*FIG4_ITERATIONS, final]
    labels = [f"Iter {i}" for i in FIG4_ITERATIONS] + [f"Final ({final})"]
    R = len(run.configs)
    ncols = R + int(with_loss)
    fig = new_figure(4.1 * ncols, 3.6)
    axes = fig.subplots(1, ncols)
    rows = [attention_rows(run, i, iterations) for i in range(R)]
    vmax = max(float(r.max()) for r in rows)
    panels = []
    for i, ax in enumerate(axes[:R]):
        image = draw_attention_rows(ax, rows[i], labels, titles[i], vmax=vmax)
        panel = _panel_data(classes, run, i, final)
        panel["c1_rows"] = rows[i].tolist()
        panels.append(panel)
    fig.colorbar(image, ax=list(axes[:R]), shrink=0.8, label=r"$c_{l|1}$")
    if with_loss:
        ax = axes[-1]
        for i in range(R):
            ax.semilogy(run.loss[i].double().numpy().clip(1e-8), label=titles[i])
        ax.set_xlabel("iteration")
        ax.set_ylabel("training loss")
        ax.set_title("loss (first value = ln 34)", fontsize=10)
        ax.legend(fontsize=8)
    data = {"iterations": iterations, "final_iteration": final,
            "last_iteration": int(run.steps[-1]), "tokens": list(range(20)), "panels": panels,
            "seed": run.configs[0][2], "settings": {k: v for k, v in run.settings.items()
                                                    if k in ("optimizer", "momentum", "init",
                                                             "batch_size", "seq_len")}}
    return fig, data


def fig4(quick: bool = False, progress: bool = False, run: Run | None = None) -> FigureResult:
    """Fig 4: c_1 on Syn-Small under SGD, η_Y = η_Z = 1 (left) vs η_Y = 10, η_Z = 1 (right).

    The authors' settings (seed 2, 100 iterations, checkpoints every 2); "Final" = iteration 48 as
    in their ``figure_4_create.py``. ``data`` also holds the sparsity measures at iteration 48
    and at the last iteration, and the loss curves, per panel; and, as scalars to glue, what
    Chapter 4 quotes of them (``distinct_entropy_eta1``, ``loss_10_eta10``, ...: see
    :func:`_fig4_numbers`). ``quick``: 50 iterations, batch 64.
    ``run``: an already computed :func:`fig4_run` (two runs, η_Y = 1 then 10, recording at
    least every 2 steps up to 48) to draw instead of training again.
    """
    if run is None:
        run = fig4_run(steps=50 if quick else 100, batch_size=64 if quick else 128,
                       progress=progress)
    elif not isinstance(run, Run) or len(run.configs) != 2:
        raise ValueError("run must be a Run of fig4_run with two learning rates (eta_y = 1, 10)")
    fig, data = _attention_figure(run, [r"$\eta_Y=\eta_Z=1$", r"$\eta_Y=10,\ \eta_Z=1$"],
                                  FIG4_FINAL, with_loss=True)
    fig.suptitle("Fig 4 — SGD on Syn-Small: attention of class 1 over training", fontsize=11)
    data["quick"] = quick
    data |= _fig4_numbers(run, data["panels"])
    return FigureResult(fig, data)


def _fig4_numbers(run: Run, panels: Sequence[dict[str, Any]],
                  early: int = FIG4_ITERATIONS[-1]) -> dict[str, float]:
    """The scalars Chapter 4 quotes of Fig 4 (class 1): ``*_start`` at iteration 0 (distinct
    entropy, common mass, largest weight); per run, keyed ``*_eta<η_Y>``, the same three at the
    final iteration, the distinct entropy at the last one, its relative ``entropy_drop``, the
    loss at iteration 0 and at ``early`` (10, Fig 4's last early row); ``loss_uniform = ln M``,
    the loss of a zero decoder (uniform over the ``M`` tokens)."""
    classes, Z0 = run.classes, run.Z[0, 0].double()
    start = float(metrics.distinct_entropy(classes, Z0)[0])
    out = {"distinct_entropy_start": start,
           "common_mass_start": float(metrics.common_mass(classes, Z0)[0]),
           "max_weight_start": float(metrics.max_weight(classes, Z0)[0]),
           "loss_uniform": float(np.log(classes.M))}
    for panel in panels:
        eta = f"eta{panel['eta_y']:g}"
        out |= {f"{key}_{eta}": panel[f"{key}_final"]
                for key in ("distinct_entropy", "common_mass", "max_weight")}
        out[f"distinct_entropy_last_{eta}"] = panel["distinct_entropy_last"]
        out[f"entropy_drop_{eta}"] = 1.0 - panel["distinct_entropy_final"] / start
        out[f"loss_start_{eta}"] = panel["loss"][0]
        out[f"loss_{early}_{eta}"] = panel["loss"][early]
    return out


#: Fig 5's learning rates (Adam, η_Y = η_Z).
FIG5_ETAS = (0.1, 0.5, 1.0)


def fig5(quick: bool = False, progress: bool = False) -> FigureResult:
    """Fig 5: c_1 on Syn-Small with Adam at η_Y = η_Z ∈ {0.1, 0.5, 1} (otherwise Fig 4's
    command). Different learning rates pick different subsets of distinct tokens. ``data``
    records, per η, the distinct tokens holding most attention at the final iteration (48) and
    at the last one. ``quick``: 50 iterations, batch 64."""
    classes = syn_small()
    runs = [fig4_run(eta_y=eta, eta_z=eta, optimizer="adam", steps=50 if quick else 100,
                     batch_size=64 if quick else 128, progress=progress) for eta in FIG5_ETAS]
    # Stack the three single-run results into one Run-like view for the shared drawing code.
    run = Run(classes=classes, configs=[r.configs[0] for r in runs], steps=runs[0].steps,
              Y=torch.cat([r.Y for r in runs]), Z=torch.cat([r.Z for r in runs]),
              loss=torch.cat([r.loss for r in runs]), diverged=torch.cat([r.diverged for r in runs]),
              settings=runs[0].settings)
    fig, data = _attention_figure(run, [rf"Adam, $\eta_Y=\eta_Z={eta:g}$" for eta in FIG5_ETAS],
                                  FIG4_FINAL, with_loss=False)
    fig.suptitle("Fig 5 — Adam on Syn-Small: the learning rate picks which distinct tokens win",
                 fontsize=11)
    distinct = classes.distinct_tokens(0)
    for panel, i in zip(data["panels"], range(len(FIG5_ETAS))):
        c = run.attention()[i, :, 0]  # [S, M]
        for name, s in (("final", run.steps.tolist().index(FIG4_FINAL)), ("last", -1)):
            on = c[s, distinct].double()
            order = torch.argsort(on, descending=True)
            panel[f"top3_distinct_{name}"] = distinct[order[:3]].tolist()
    data["etas"] = list(FIG5_ETAS)
    data["quick"] = quick
    return FigureResult(fig, data)


# --- Chapter 4 helpers -------------------------------------------------------------------------
def logit_trajectories(run: Run, index: int = 0, n: int = 0) -> FigureResult:
    """Theorem 2 in a run: ``z_{ψ(n), l}`` over training, common tokens (grey, falling) and
    distinct tokens coloured by ``P(l|n)`` (rising, faster for larger ``P``)."""
    classes = run.classes
    fig = new_figure(6.4, 3.4)
    ax = fig.add_subplot()
    Z = run.Z[index].double()
    steps = run.steps.numpy()
    common = metrics.common_logits(classes, Z)[:, n].numpy()
    distinct = metrics.distinct_logits(classes, Z)[:, n].numpy()
    for j in range(common.shape[1]):
        ax.plot(steps, common[:, j], color="0.55", lw=1, label="common tokens" if j == 0 else None)
    colors = matplotlib.colormaps["viridis"](np.linspace(0.1, 0.95, distinct.shape[1]))
    probs = classes.probs()[n, classes.distinct_tokens(n)].numpy()
    for j in range(distinct.shape[1]):
        ax.plot(steps, distinct[:, j], color=colors[j], lw=1.6,
                label=f"distinct, P={probs[j]:.4f}" if j in (0, distinct.shape[1] - 1) else None)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("iteration")
    ax.set_ylabel(r"$z_{\psi(n),l}$")
    eta_y, eta_z, _ = run.configs[index]
    ax.set_title(rf"attention logits of class {n + 1} ($\eta_Y={eta_y:g}$, $\eta_Z={eta_z:g}$)",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return FigureResult(fig, {"steps": steps.tolist(), "common": common.tolist(),
                              "distinct": distinct.tolist(), "distinct_probs": probs.tolist()})


def attention_frame(classes: SequenceClasses, c: np.ndarray, title: str,
                    ymax: float = 0.2, reference: np.ndarray | None = None) -> Figure:
    """One bar chart of ``c_1`` over tokens 0–19 (a scrubber frame or a live-control figure);
    ``reference`` (e.g. ``P(l|1)``) is drawn as a step outline."""
    fig = new_figure(6.4, 2.6)
    ax = fig.subplots()
    x = np.arange(len(c))
    colors = ["0.6"] * classes.num_common + ["tab:blue"] * (len(c) - classes.num_common)
    ax.bar(x, c, color=colors)
    if reference is not None:
        ax.step(x, reference, where="mid", color="k", lw=1, label=r"$P(l\,|\,1)$ (iteration 0)")
        ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(0, ymax)
    ax.set_xticks([0, 5, 10, 15, 19])
    ax.set_xlabel("token id (grey: common · blue: distinct of class 1)")
    ax.set_ylabel(r"$c_{l|1}$")
    ax.set_title(title, fontsize=10)
    return fig


def attention_scrubber_frames(run: Run, index: int = 0,
                              steps: Sequence[int] | None = None) -> tuple[list[bytes], list[str]]:
    """Frames for a scrubber: ``c_1`` at the recorded ``steps`` (default: all) of run ``index``
    (with ``P(l|1)`` as the reference outline) as PNG bytes, rendered one at a time, and
    their labels."""
    classes = run.classes
    recorded = run.steps.tolist()
    steps = recorded if steps is None else list(steps)
    missing = [t for t in steps if t not in recorded]
    if missing:
        raise ValueError(f"steps must be recorded steps of the run; {missing} are not")
    c = run.attention()[index, :, 0, :20].double().numpy()
    c = c[[recorded.index(t) for t in steps]]
    p = classes.probs()[0, :20].numpy()
    eta_y, eta_z, _ = run.configs[index]
    ymax = float(np.ceil(c.max() * 20) / 20)
    frames = [figure_to_png(attention_frame(
        classes, c[i], rf"$\eta_Y={eta_y:g}$, $\eta_Z={eta_z:g}$: iteration {int(t)}",
        ymax=ymax, reference=p)) for i, t in enumerate(steps)]
    return frames, [str(int(t)) for t in steps]


def _c1_bar_figure(classes: SequenceClasses, figsize: tuple[float, float],
                   p_label: str) -> tuple[Figure, Axes, Any]:
    """The live controls' figure (closed, shown by :func:`scansnap.widgets.live`): ``c_1`` over
    tokens 0–19 as bars of height 0 (grey common, blue distinct) against ``P(l|1)`` (black,
    labelled ``p_label``) and TF-IDF (orange, dashed). Returns ``(figure, axes, bars)``."""
    figure = new_figure(*figsize)
    ax = figure.subplots()
    x = np.arange(20)
    bars = ax.bar(x, np.zeros(20), color=["0.6"] * 10 + ["tab:blue"] * 10)
    ax.step(x, classes.probs()[0, :20].numpy(), where="mid", color="k", lw=1, label=p_label)
    ax.step(x, decompose.tfidf(classes)[0, :20].numpy(), where="mid", color="tab:orange", lw=1,
            ls="--", label="TF-IDF")
    ax.set_xticks([0, 5, 10, 15, 19])
    ax.set_xlabel("token id (grey: common · blue: distinct of class 1)")
    ax.set_ylabel(r"$c_{l|1}$")
    ax.legend(fontsize=8, loc="upper left")
    return figure, ax, bars


class PopulationExplorer:
    """Syn-Small population dynamics (T → ∞, plain gradient steps) for chosen learning rates,
    drawn as ``c_1`` (bars) against ``P(l|1)`` and TF-IDF (see also :class:`TrainingExplorer`).

    ``figure`` is created once; :meth:`update` re-runs :func:`scansnap.population` (float64,
    ``steps`` steps) and changes the bars' heights only, so a redraw is fast (tens of ms).
    """

    def __init__(self, steps: int = 60) -> None:
        self.steps = check_int("steps", steps, low=1, high=2000)
        self.classes = syn_small()
        self.figure, self.ax, self.bars = _c1_bar_figure(self.classes, (6.4, 2.8),
                                                         r"$P(l\,|\,1)$")
        self.ax.set_ylim(0, 0.5)

    def update(self, eta_y: float = 1.0, eta_z: float = 1.0, steps: int | None = None) -> None:
        """Re-run population dynamics and redraw the bars (controls pass keyword values)."""
        eta_y, eta_z = as_float_list("eta_y", eta_y, low=0.0)[0], as_float_list("eta_z", eta_z, low=0.0)[0]
        steps = self.steps if steps is None else check_int("steps", steps, low=1, high=2000)
        run = population(self.classes, eta_y=eta_y, eta_z=eta_z, steps=steps, record_every=None,
                         on_divergence="flag", progress=False)
        c = run.attention()[0, -1, 0, :20].numpy()
        for bar, value in zip(self.bars, c):
            bar.set_height(value)
        H = float(metrics.distinct_entropy(self.classes, run.Z[0, -1])[0])
        self.ax.set_title(rf"population dynamics, {steps} steps, $\eta_Y={eta_y:g}$, "
                          rf"$\eta_Z={eta_z:g}$: distinct entropy {H:.3f}", fontsize=10)


class TrainingExplorer:
    """A live control for Chapter 4: the authors' Syn-Small command (Fig 4's settings: zero
    init, batch 128, T = 128, seed 2, momentum 0.9 for SGD or PyTorch-default Adam) for chosen
    ``η_Y``, ``η_Z`` and optimizer, trained ``steps`` iterations (default 48, Fig 4's "Final");
    ``c_1`` at the end (bars) against ``P(l|1)`` (black) and TF-IDF (orange, dashed).

    ``figure`` is created once; :meth:`update` re-trains (float32, ≈0.05–0.15 s on one core)
    and changes the bars' heights and the title only. A diverging run is flagged in the title.
    """

    def __init__(self, steps: int = FIG4_FINAL, batch_size: int = 128) -> None:
        self.steps = check_int("steps", steps, low=1, high=1000)
        self.batch_size = check_int("batch_size", batch_size, low=1, high=4096)
        self.classes = syn_small()
        self.figure, self.ax, self.bars = _c1_bar_figure(self.classes, (6.6, 2.9),
                                                         r"$P(l\,|\,1)$ (iteration 0)")

    def update(self, eta_y: float = 1.0, eta_z: float = 1.0, optimizer: str = "sgd") -> None:
        """Train and redraw (controls pass keyword values)."""
        eta_y = as_float_list("eta_y", eta_y, low=0.0)[0]
        eta_z = as_float_list("eta_z", eta_z, low=0.0)[0]
        optimizer = check_choice("optimizer", optimizer, ("sgd", "adam"))
        run = fig4_run(eta_y=eta_y, eta_z=eta_z, optimizer=optimizer, steps=self.steps,
                       batch_size=self.batch_size, record_every=None, progress=False,
                       on_divergence="flag")
        label = rf"{optimizer.upper()}, $\eta_Y={eta_y:g}$, $\eta_Z={eta_z:g}$"
        Z = run.Z[0, -1]
        if bool(run.diverged[0]) or not bool(torch.isfinite(Z).all()):
            for bar in self.bars:
                bar.set_height(0.0)
            self.ax.set_title(f"DIVERGED — {label}: lower the learning rates", fontsize=9)
            return
        c = run.attention()[0, -1, 0, :20].double().numpy()
        for bar, value in zip(self.bars, c):
            bar.set_height(value)
        self.ax.set_ylim(0, min(1.05, max(0.2, float(c.max()) * 1.15)))
        H = float(metrics.distinct_entropy(self.classes, Z)[0])
        mass = float(metrics.common_mass(self.classes, Z)[0])
        self.ax.set_title(f"{label}, iteration {self.steps}: distinct entropy {H:.3f}, "
                          f"common mass {mass:.3f}", fontsize=9)


def theorem3_figure(measurements: Sequence[decompose.Theorem3Measurement],
                    titles: Sequence[str]) -> FigureResult:
    """Theorem 3 in runs: top row, ``r_{l0/l}(t)`` measured (solid) against ``r(0) χ_{l0}(t)``
    (dashed) for each other distinct token ``l``; bottom row, ``χ_{l0}`` between Theorem 3's
    bounds ``e^{2 f²(0) B_n}`` and ``e^{2 B_n}`` (when measured)."""
    if len(measurements) != len(titles) or not measurements:
        raise ValueError("measurements and titles must be non-empty and of equal length")
    fig = new_figure(3.6 * len(measurements), 5.6)
    axes = fig.subplots(2, len(measurements), squeeze=False)
    for j, (m, title) in enumerate(zip(measurements, titles)):
        top, bottom = axes[0, j], axes[1, j]
        colors = matplotlib.colormaps["viridis"](np.linspace(0.05, 0.9, m.r.shape[1]))
        for k in range(m.r.shape[1]):
            top.semilogy(m.steps, m.r[:, k].numpy(), color=colors[k], lw=1.4)
            top.semilogy(m.steps, m.predicted[:, k].numpy(), color=colors[k], lw=1, ls="--")
        top.set_title(title, fontsize=9)
        top.set_xlabel("step")
        if j == 0:
            top.set_ylabel(r"$r_{l_0/l}$: measured (—), $r(0)\chi_{l_0}$ (- -)")
        bottom.plot(m.steps, m.chi.numpy(), color="k", lw=1.6, label=r"$\chi_{l_0}$")
        if m.lower is not None:
            bottom.plot(m.steps, m.lower.numpy(), color="tab:blue", ls="--",
                        label=r"$e^{2f_{nl_0}^2(0)B_n}$")
            bottom.plot(m.steps, m.upper.numpy(), color="tab:red", ls=":", label=r"$e^{2B_n}$")
            bottom.set_ylim(0.9, float(m.chi.max()) * 1.6)
        bottom.set_xlabel("step")
        if j == 0:
            bottom.set_ylabel(r"growth factor $\chi_{l_0}$")
        bottom.legend(fontsize=7, loc="upper left")
    data = {title: {"steps": np.asarray(m.steps).tolist(), "r": m.r.tolist(),
                    "predicted": m.predicted.tolist(), "chi": m.chi.tolist()}
            for m, title in zip(measurements, titles)}
    return FigureResult(fig, data)


def lemma4_figure(agreements: dict[str, dict[str, np.ndarray]], tolerance: float) -> FigureResult:
    """Lemma 4 against the measured change of ``Z``: the relative error
    ``‖Ż_Lemma4 − ΔZ‖ / ‖ΔZ‖`` per step (log y) for each labelled
    :func:`scansnap.mechanism.lemma4_agreement` result, with the ``tolerance`` dashed."""
    if not agreements:
        raise ValueError("agreements must not be empty")
    fig = new_figure(7.5, 3.8)
    ax = fig.subplots()
    styles = ["-", "--", ":"]
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, a) in enumerate(agreements.items()):
        ax.semilogy(a["steps"][1:], a["error"][1:], styles[i % 3], lw=1.6,
                    color=colors[(i // 3) % len(colors)], label=label)
    ax.axhline(tolerance, color="k", lw=0.8, ls="--")
    ax.set(xlabel="population step (= time unit)", ylabel="relative error of Eqn 10",
           title="Lemma 4's $\\dot Z$ against the measured change of $Z$")
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    data = {label: {"steps": np.asarray(a["steps"][1:]).tolist(), "error": np.asarray(a["error"][1:]).tolist()}
            for label, a in agreements.items()}
    return FigureResult(fig, {"tolerance": tolerance, "agreements": data})


def four_stages(run: Run, index: int = 0, n: int = 0) -> FigureResult:
    """The paper's four stages (its Fig 2 cartoon) read off a real run, each at a *measured*
    step: (1) step 0, attention = token frequencies; (2) common tokens suppressed: the first
    snapshot where the common mass has made half of its total fall; (3) winners emerge: the first
    where the distinct-token entropy has made 90 % of its total fall; (4) snapped: 99 %. In a real
    run stages 2 and 3 overlap (common tokens fall while the distinct ones spread); the fractions
    only order them. Top: ``c_n`` at the four steps; bottom: common mass and distinct entropy
    over time, with the stages dotted. ``data["stages"]`` holds the four steps, also as the
    scalars ``suppressed``, ``emerged`` and ``snapped``; ``common_mass_end`` is the common mass at
    the last step."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a Run, got {type(run).__name__}")
    classes = run.classes
    index = check_int("index", index, low=0, high=len(run.configs) - 1)
    n = check_int("n", n, low=0, high=classes.K - 1)
    Z = run.Z[index].double()
    steps = run.steps.numpy()
    mass = metrics.common_mass(classes, Z)[:, n].numpy()
    H = metrics.distinct_entropy(classes, Z)[:, n].numpy()
    c = run.attention()[index, :, n].double().numpy()
    common, distinct = classes.common_tokens(n).numpy(), classes.distinct_tokens(n).numpy()
    def first(values: np.ndarray, fraction: float) -> int:
        return int(np.argmax(values <= values[0] - fraction * (values[0] - values[-1])))

    stages = [0, first(mass, 0.5), first(H, 0.9), first(H, 0.99)]
    names = ["1 · frequencies", "2 · common suppressed", "3 · winners emerge", "4 · snapped"]
    fig = new_figure(11, 5.2)
    grid = fig.add_gridspec(2, 4, height_ratios=[1.2, 1])
    support = np.concatenate([common, distinct])
    colors = ["0.6"] * len(common) + ["tab:blue"] * len(distinct)
    top = float(c[:, support].max()) * 1.1
    for k, (s, name) in enumerate(zip(stages, names)):
        ax = fig.add_subplot(grid[0, k])
        ax.bar(np.arange(len(support)), c[s, support], color=colors)
        ax.set(ylim=(0, top), xticks=[], title=f"{name}\n(step {steps[s]})")
        if k == 0:
            ax.set_ylabel(f"$c_{{l|{n + 1}}}$ (grey: common, blue: distinct)")
    ax = fig.add_subplot(grid[1, :])
    ax.plot(steps, mass, color="0.4", lw=2, label="attention mass on common tokens")
    ax.plot(steps, H / H[0], color="tab:blue", lw=2, label="distinct-token entropy / its start")
    for s in stages:
        ax.axvline(steps[s], color="k", ls=":", lw=1)
    ax.set(xlabel="SGD step", ylim=(0, 1.05))
    ax.legend(fontsize=8, loc="lower left")
    data = dict(stages=[int(steps[s]) for s in stages], common_mass=mass.tolist(),
                entropy=H.tolist(), steps=steps.tolist(), common_mass_end=float(mass[-1]))
    data |= {name: int(steps[s]) for name, s in zip(("suppressed", "emerged", "snapped"),
                                                    stages[1:])}
    return FigureResult(fig, data)


# --- What Chapter 4's paragraphs quote (glued by ``scansnap.gluing.glue_numbers``) --------------
def lemma4_summary(agreements: Mapping[str, Mapping[str, np.ndarray]],
                   early_step: int = 20) -> dict[str, Any]:
    """Lemma 4 (Eqn 10) against the measured change of ``Z``, in numbers.

    ``agreements`` maps labels ending in ``", <ratio>:1"`` (``η_Y/η_Z``) to
    :func:`scansnap.mechanism.lemma4_agreement` results. Keys: ``err_<ratio>``, the largest
    relative error of Eqn 10 over every run of that ratio and every step after the first;
    ``growing``, the number of runs whose error at their last step exceeds the error at step
    ``early_step``; ``runs``, the number of runs."""
    if not agreements:
        raise ValueError("agreements must not be empty")
    early_step = check_int("early_step", early_step, low=0)
    worst: dict[str, float] = {}
    growing = 0
    for label, agreement in agreements.items():
        head, sep, ratio = label.rpartition(", ")
        if not sep or not ratio.endswith(":1"):
            raise ValueError(f"agreement labels must end in ', <ratio>:1', got {label!r}")
        key = f"err_{ratio[:-2]}"
        error, steps = np.asarray(agreement["error"]), np.asarray(agreement["steps"])
        worst[key] = max(worst.get(key, -np.inf), float(error[1:].max()))
        at = np.flatnonzero(steps == early_step)
        if at.size == 0:
            raise ValueError(f"early_step {early_step} is not a recorded step of {label!r}")
        growing += bool(error[-1] > error[at[0]])
    return {**worst, "growing": growing, "runs": len(agreements)}


def no_common_token_control(steps: int = 200) -> dict[str, float]:
    """Lemma 4's exact control: with no common token the classes' ``f_n`` are orthogonal, every
    term of Eqn 10 vanishes and ``Z`` must stay at 0 while the decoder learns. Population
    dynamics (one query, three classes, ``η_Y = η_Z = 1``) for ``steps`` steps; keys ``Z_max``
    and ``Y_max``, the largest ``|z|`` and ``|y|`` at the end."""
    steps = check_int("steps", steps, low=1)
    classes = SequenceClasses(num_queries=1, next_per_query=3, num_common=0)
    run = population(classes, eta_y=1.0, eta_z=1.0, steps=steps, record_every=None)
    return {"Z_max": float(run.Z.abs().max()), "Y_max": float(run.Y.abs().max())}


def theorem2_summary(run: Run, index: int = 0, n: int = 0) -> dict[str, Any]:
    """Theorem 2 (fates of tokens) at the end of run ``index``, for class ``n``.

    Keys: ``common_mass0`` and ``common_mass_end``, the attention mass on common tokens at
    ``Z = 0`` and at the end; ``overlap``, the largest ``f_n·f_n'`` (``n' ≠ n``) at ``Z = 0``
    (Assumption 2 wants it small); ``common_max``, the largest common logit at the end (2(b):
    negative); ``distinct_min``, the smallest distinct logit; ``negative_distinct``, how many
    distinct logits end below zero (2(a): none); ``top5_min``, the smallest logit of the five
    likeliest distinct tokens; ``ordered_pairs``, the fraction of neighbours (by ``P(l|n)``)
    whose logits are in the same order as their probabilities."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a Run, got {type(run).__name__}")
    classes = run.classes
    index = check_int("index", index, low=0, high=len(run.configs) - 1)
    n = check_int("n", n, low=0, high=classes.K - 1)
    if classes.K < 2:
        raise ValueError("Theorem 2 needs at least two classes")
    f0 = theory.normalized_attention(classes.probs().double())  # f at Z = 0: P(.|n) normalized
    overlap = max(float(f0[n] @ f0[k]) for k in range(classes.K) if k != n)
    Z_end = run.Z[index, -1].double()
    distinct = metrics.distinct_logits(classes, Z_end)[n]  # least to most likely
    return dict(common_mass0=float(metrics.common_mass(classes, torch.zeros_like(Z_end))[n]),
                common_mass_end=float(metrics.common_mass(classes, Z_end)[n]), overlap=overlap,
                common_max=float(metrics.common_logits(classes, Z_end)[n].max()),
                distinct_min=float(distinct.min()), negative_distinct=int((distinct < 0).sum()),
                top5_min=float(distinct[-5:].min()),
                ordered_pairs=float((distinct[1:] > distinct[:-1]).double().mean()))


def rarest_logit(classes: SequenceClasses, Z: torch.Tensor, n: int = 0) -> torch.Tensor:
    """``z_{ψ(n), l}`` of class ``n``'s rarest distinct token (smallest ``P(l|n)``), over the
    leading dimensions of ``Z [..., M, M]``."""
    n = check_int("n", n, low=0, high=classes.K - 1)
    return metrics.distinct_logits(classes, Z.double())[..., n, 0]


def rarest_token_summary(classes: SequenceClasses, paper: torch.Tensor,
                         large_batch: torch.Tensor, long_context: torch.Tensor,
                         population_logit: float, seq_len: int = 128, long_seq_len: int = 512,
                         n: int = 0) -> dict[str, Any]:
    """Theorem 2(a) for the rarest distinct token: finite ``T`` or sampling noise?

    ``paper``, ``large_batch`` and ``long_context`` are its final logits (:func:`rarest_logit`)
    over seeds at the paper's ``T = seq_len`` and batch, at the same ``T`` with a larger batch,
    and at a longer ``T = long_seq_len``; ``population_logit`` is its logit in population
    dynamics (``T → ∞``).
    Keys: ``paper_max``, ``large_batch_max``, ``long_context_min``, ``population``;
    ``expected``, its expected count among the ``seq_len − 1`` context tokens; ``absent``, the
    probability that a context lacks it; ``verdict``, the sentence the signs support (negative
    at ``seq_len`` whatever the batch and positive at the longer ``T``: finite ``T``)."""
    n = check_int("n", n, low=0, high=classes.K - 1)
    seq_len = check_int("seq_len", seq_len, low=2)
    long_seq_len = check_int("long_seq_len", long_seq_len, low=seq_len + 1)
    paper, large_batch, long_context = (torch.as_tensor(x, dtype=torch.float64)
                                        for x in (paper, large_batch, long_context))
    p_rare = float(classes.probs()[n, classes.distinct_tokens(n)].double().min())
    finite_T = (bool((paper < 0).all()) and bool((large_batch < 0).all())
                and bool((long_context > 0).all()))
    verdict = (f"negative in every seed at T = {seq_len} whatever the batch size, positive at "
               f"T = {long_seq_len}: a finite-T effect, not noise" if finite_T else
               "the batch-size control does not separate noise from finite T here (see the "
               "table)")
    return dict(paper_max=float(paper.max()), large_batch_max=float(large_batch.max()),
                long_context_min=float(long_context.min()), population=float(population_logit),
                expected=(seq_len - 1) * p_rare, absent=(1 - p_rare) ** (seq_len - 1),
                verdict=verdict)


def theorem3_summary(measurements: Mapping[str, decompose.Theorem3Measurement],
                     rtol: float = 1e-4, matched_chi: float = 1.2) -> dict[str, Any]:
    """Theorem 3 (growth of distinct tokens) in numbers, per labelled measurement ``name``
    (:func:`scansnap.decompose.measure_theorem3`). The *rarest* competitor is the ``l`` with the
    largest ``r_{l0/l}(0)``, the *closest* the one with the smallest. Keys:
    ``chi_<name>``, ``χ_{l0}`` at the end; ``r0_rare_<name>``, ``r0_close_<name>``, their
    ``r(0)``; ``err_rare_<name>``, ``err_close_<name>``, ``err_all_<name>``, the largest relative
    error of the identity ``r(t) = r(0) χ_{l0}(t)`` over steps for the rarest, the closest and all
    competitors; ``err_matched_<name>``, the closest's error at the first step with
    ``χ_{l0} ≥ matched_chi`` (runs compared at equal growth; omitted if never reached); and where
    the bounds were measured ``lower_<name>``, ``upper_<name>`` (``e^{2 f²(0) B_n}``, ``e^{2B_n}``
    at the end) and ``bounds_<name>``, the fraction of steps with ``lower ≤ χ ≤ upper`` within a
    relative ``rtol`` (the lower bound is tight at first)."""
    rtol = check_float("rtol", rtol, low=0.0)
    matched_chi = check_float("matched_chi", matched_chi, low=1.0)
    out: dict[str, Any] = {}
    for name, m in measurements.items():
        if not isinstance(m, decompose.Theorem3Measurement):
            raise TypeError(f"measurements must hold Theorem3Measurement, {name!r} is "
                            f"{type(m).__name__}")
        rare, close = int(torch.argmax(m.r[0])), int(torch.argmin(m.r[0]))
        out |= {f"chi_{name}": float(m.chi[-1]), f"r0_rare_{name}": float(m.r[0, rare]),
                f"r0_close_{name}": float(m.r[0, close]),
                f"err_rare_{name}": float(m.rel_error[:, rare].max()),
                f"err_close_{name}": float(m.rel_error[:, close].max()),
                f"err_all_{name}": float(m.rel_error.max())}
        reached = torch.nonzero(m.chi >= matched_chi)
        if len(reached):
            out[f"err_matched_{name}"] = float(m.rel_error[int(reached[0]), close])
        if m.lower is not None and m.upper is not None:
            holds = (m.lower <= m.chi * (1 + rtol)) & (m.chi <= m.upper * (1 + rtol))
            out |= {f"lower_{name}": float(m.lower[-1]), f"upper_{name}": float(m.upper[-1]),
                    f"bounds_{name}": float(holds.double().mean())}
    return out


def common_logits_falling(run: Run, index: int = 0, n: int = 0) -> float:
    """Theorem 3's premise along run ``index``: the fraction of steps at which no common logit
    of class ``n`` rose (``z_{ψ(n),l}(s+1) ≤ z_{ψ(n),l}(s)`` for every common ``l``)."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a Run, got {type(run).__name__}")
    index = check_int("index", index, low=0, high=len(run.configs) - 1)
    n = check_int("n", n, low=0, high=run.classes.K - 1)
    common = metrics.common_logits(run.classes, run.Z[index].double())[:, n]  # [S, C]
    return float((common[1:] <= common[:-1]).all(-1).double().mean())


def adam_summary(result: FigureResult, winners: Mapping[float, Sequence[int]]) -> dict[str, Any]:
    """Fig 5 (Adam) in words and numbers, per learning rate ``η`` of ``result`` (:func:`fig5`):
    ``top_<η>``, the three distinct tokens with the largest weight at the final iteration (a
    list, written "10, 12, 19"); ``mass_<η>``, the attention mass left on common tokens there;
    ``win_<η>``, the most attended distinct token of each seed in ``winners[η]``."""
    etas = result.data.get("etas")
    if etas is None:
        raise ValueError("result must be the FigureResult of fig5 (its data has 'etas')")
    missing = [eta for eta in etas if eta not in winners]
    if missing:
        raise ValueError(f"winners must have an entry for every learning rate; missing {missing}")
    out: dict[str, Any] = {}
    for eta, panel in zip(etas, result.data["panels"]):
        out[f"top_{eta:g}"] = ", ".join(str(t) for t in panel["top3_distinct_final"])
        out[f"mass_{eta:g}"] = float(panel["common_mass_final"])
        out[f"win_{eta:g}"] = ", ".join(str(int(t)) for t in winners[eta])
    return out


def pair_concordance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The fraction of pairs ``i < j`` that ``a`` and ``b`` put in the same strict order
    (``(a_i − a_j)(b_i − b_j) > 0``); ties count as discordant. 1-D, equal length ≥ 2."""
    a = check_tensor("a", torch.as_tensor(a), ndim=1).double()
    b = check_tensor("b", torch.as_tensor(b), shape=[a.shape[0]]).double()
    if a.shape[0] < 2:
        raise ValueError("a and b must hold at least two values")
    i, j = torch.triu_indices(len(a), len(a), offset=1)
    return float(((a[i] - a[j]) * (b[i] - b[j]) > 0).double().mean())
