"""Drawing helpers for the synthetic setting (Section 3): token kinds, ``P(l | n)``, sequences,
attention over tokens. Reused by any chapter that shows the data model or ``c_n``.

Every function draws into a new :class:`matplotlib.figure.Figure` (not registered with pyplot, so
nothing is shown twice or leaks: show it with ``display(fig)`` or hand it to a scrubber), or into
an ``ax`` the caller passes. Token kinds follow the paper's definition (Section 3.2): with
``Ω(l) = {n : P(l | n) > 0}``, a contextual token is *distinct* if ``|Ω(l)| = 1`` and *common* if
``|Ω(l)| > 1``; query and next tokens have their own ids and never appear in a context.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib.style
import matplotlib.colors as mcolors
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from ._validate import check_int, check_tensor
from .data import SequenceClasses
from .dynamics import Run
from .metrics import common_mass

__all__ = ["FigureResult", "TOKEN_KINDS", "KIND_COLORS", "token_kinds", "class_color", "plot_class_probs",
           "plot_sequences", "plot_attention", "plot_run_summary", "class_rgb", "sequence_rgb",
           "new_figure", "BookFigure", "freeze_layout", "BOOK_STYLE", "use_book_style"]

TOKEN_KINDS = ("common", "distinct", "query", "next", "unused")
# Package data (pyproject.toml), found through importlib.resources: no path of the checkout.
BOOK_STYLE = Path(str(resources.files("scansnap").joinpath("scansnap.mplstyle")))
# Okabe-Ito (colour-blind safe), as in the style file; reddish purple marks next tokens, so
# classes use it last.
KIND_COLORS = {"common": "#9a9a9a", "distinct": "#0072B2", "query": "#222222",
               "next": "#CC79A7", "unused": "#ffffff"}
_CLASS_COLORS = ["#0072B2", "#E69F00", "#009E73", "#56B4E9", "#D55E00", "#F0E442", "#000000",
                 "#CC79A7"]


def use_book_style() -> None:
    """Apply the book's figure style (``scansnap.mplstyle``: font sizes readable at the page
    width, the Okabe-Ito colour-blind-safe palette, opaque white backgrounds that stay legible in
    the theme's dark mode) to every figure drawn from now on. Called when this module is
    imported, so every scansnap figure module uses it."""
    matplotlib.style.use(BOOK_STYLE)


use_book_style()


@dataclass
class FigureResult:
    """What every figure function of the book returns: the ``figure`` (a :class:`BookFigure`,
    not registered with pyplot, so a chapter never closes anything) and the JSON-serializable
    ``data`` it drew, which the chapter glues into its prose."""

    figure: Figure
    data: dict[str, Any]

    def _repr_png_(self) -> bytes:
        """Shown as its figure when it is a cell's value (or glued)."""
        return BookFigure._repr_png_(self.figure)

    def __repr__(self) -> str:
        return f"FigureResult(figure={self.figure!r}, data keys={sorted(self.data)})"

    def glue(self, prefix: str) -> None:
        """Glue the numbers of ``data`` (its scalar entries) as ``f"{prefix}_{key}"``."""
        from .gluing import glue_numbers

        glue_numbers(prefix, self.data)


class BookFigure(Figure):
    """A :class:`~matplotlib.figure.Figure` that Jupyter displays as PNG without pyplot.

    IPython shows a plain ``Figure`` as an image only once the inline backend has been activated
    (by a pyplot call or ``%matplotlib inline``); a figure that pyplot never managed would
    otherwise display as ``<Figure size ...>`` text. ``_repr_png_`` renders it directly.
    """

    def _repr_png_(self) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        if not isinstance(self.canvas, FigureCanvasAgg):
            FigureCanvasAgg(self)
        out = io.BytesIO()
        self.savefig(out, format="png", bbox_inches="tight")
        return out.getvalue()


def freeze_layout(figure: Figure) -> Figure:
    """Lay ``figure`` out once (constrained layout) and keep that layout for later draws.

    For live figures: re-solving the constrained layout costs about as much as drawing, and a
    redraw that only changes data does not need it. Returns ``figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(figure, Figure):
        raise TypeError(f"figure must be a matplotlib Figure, got {type(figure).__name__}")
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()
    figure.set_layout_engine("none")
    return figure


def new_figure(width: float = 6.4, height: float = 3.0) -> Figure:
    """A constrained-layout Figure that pyplot does not manage (display it, or pass it on); it
    displays as PNG in Jupyter whether or not pyplot's inline backend is active."""
    return BookFigure(figsize=(width, height), layout="constrained")


def class_color(n: int) -> str:
    """The colour of class ``n`` (its distinct tokens and its bars) in every plot of the book."""
    return _CLASS_COLORS[check_int("n", n, low=0) % len(_CLASS_COLORS)]


def token_kinds(classes: SequenceClasses) -> list[str]:
    """The kind of every token id ``0..M-1``: ``"common"``, ``"distinct"``, ``"query"``,
    ``"next"`` or ``"unused"`` (a contextual id no class draws), by the paper's ``|Ω(l)|`` rule.

    Note: with ``next_per_query = 1`` a per-query common token is seen by one class only and is
    therefore *distinct* by the paper's definition, although the authors' code calls it common.
    """
    _check_classes(classes)
    omega = (classes.probs() > 0).sum(0)  # |Ω(l)|
    kinds = ["common" if k > 1 else "distinct" if k == 1 else "unused" for k in omega.tolist()]
    for q in classes.query_tokens.tolist():
        kinds[q] = "query"
    for t in classes.next_tokens.tolist():
        kinds[t] = "next"
    return kinds


def _owner(classes: SequenceClasses) -> list[int]:
    """For each token, the class whose distinct token it is (or -1)."""
    probs = classes.probs() > 0
    return [int(col.nonzero()[0]) if int(col.sum()) == 1 else -1 for col in probs.T]


def _token_colors(classes: SequenceClasses) -> list[str]:
    kinds, owner = token_kinds(classes), _owner(classes)
    return [class_color(owner[l]) if kind == "distinct" else KIND_COLORS[kind]
            for l, kind in enumerate(kinds)]


def _kind_strip(ax: Axes, classes: SequenceClasses, y: float, height: float) -> None:
    """A row of coloured cells over the token axis: the kind of each token."""
    for l, color in enumerate(_token_colors(classes)):
        ax.add_patch(Rectangle((l - 0.5, y), 1.0, height, facecolor=color, edgecolor="white",
                               linewidth=0.5, clip_on=False))


def plot_class_probs(classes: SequenceClasses, *, ax: Axes | None = None,
                     title: str | None = None, annotate: bool | None = None) -> Figure:
    """Heat map of ``P(l | n)`` (classes × all ``M`` token ids) with each token's kind marked.

    A strip above the map colours every token id by kind (common grey, distinct in its class's
    colour, query black, next purple); the query and next token of each class are outlined in its
    row. ``annotate=True`` writes the probabilities in the cells (small vocabularies only).
    """
    _check_classes(classes)
    fig, ax = _figure_and_axes(ax, width=min(9.0, 1.5 + 0.22 * classes.M),
                               height=1.6 + 0.45 * classes.K)
    probs = classes.probs().numpy()
    K, M = probs.shape
    masked = np.ma.masked_equal(probs, 0.0)
    cmap = mcolors.LinearSegmentedColormap.from_list("p", ["#f2f6fb", "#08306b"])
    image = ax.imshow(masked, aspect="auto", cmap=cmap, vmin=0.0, vmax=probs.max(),
                      interpolation="nearest", extent=(-0.5, M - 0.5, K - 0.5, -0.5))
    ax.set_facecolor("#ffffff")
    annotate = False if annotate is None else bool(annotate)
    if annotate:
        for n in range(K):
            for l in np.nonzero(probs[n])[0]:
                dark = probs[n, l] > 0.55 * probs.max()
                ax.text(l, n, f"{probs[n, l]:.3f}".lstrip("0"), ha="center", va="center",
                        fontsize=5.5, rotation=90, color="white" if dark else "#333333")
    for n in range(K):
        for token, color in ((int(classes.query_tokens[n]), KIND_COLORS["query"]),
                             (int(classes.next_tokens[n]), KIND_COLORS["next"])):
            ax.add_patch(Rectangle((token - 0.5, n - 0.5), 1, 1, fill=True, facecolor=color,
                                   alpha=0.85, edgecolor=color))
    _kind_strip(ax, classes, y=-0.5 - 0.55, height=0.45)
    ax.set_ylim(K - 0.5, -1.1)
    ax.set_yticks(range(K), [f"class {n + 1}" for n in range(K)])
    step = 1 if M <= 40 else 5 if M <= 200 else 20
    ax.set_xticks(range(0, M, step))
    ax.tick_params(axis="x", labelsize="x-small")
    ax.set_xlabel("token id $l$")
    ax.set_title(title if title is not None else
                 f"$P(l\\mid n)$: M = {M} tokens, K = {K} classes", fontsize="medium")
    fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="$P(l\\mid n)$")
    handles = [Patch(color=KIND_COLORS["common"], label="common"),
               Patch(color=class_color(0), label="distinct (class colour)"),
               Patch(color=KIND_COLORS["query"], label="query $\\psi(n)$"),
               Patch(color=KIND_COLORS["next"], label="next token $n$")]
    if fig.get_layout_engine() is not None and ax is fig.axes[0]:
        fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize="small",
                   frameon=False)
    else:
        ax.legend(handles=handles, loc="upper right", fontsize="small")
    return fig


def plot_sequences(classes: SequenceClasses, contexts: torch.Tensor, queries: torch.Tensor,
                   targets: torch.Tensor, *, show: int = 24, ax: Axes | None = None,
                   title: str | None = None) -> Figure:
    """Sampled sequences as rows of coloured token cells, each cell labelled with its id.

    The first ``show`` contextual tokens are drawn, then "…", the query token ``x_T`` and the
    next token ``x_{T+1}`` (the label). Colours as in :func:`plot_class_probs`.
    """
    _check_classes(classes)
    contexts = check_tensor("contexts", contexts, ndim=2)
    queries = check_tensor("queries", queries, shape=(contexts.shape[0],))
    targets = check_tensor("targets", targets, shape=(contexts.shape[0],))
    show = check_int("show", show, low=1)
    for name, ids in (("contexts", contexts), ("queries", queries), ("targets", targets)):
        if ids.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= classes.M):
            raise ValueError(f"{name} must hold token ids in [0, {classes.M - 1}]")
    B, L = contexts.shape
    shown = min(show, L)
    colors = _token_colors(classes)
    fig, ax = _figure_and_axes(ax, width=min(12.0, 1.5 + 0.3 * (shown + 4)), height=0.6 + 0.4 * B)

    def cell(x: float, y: int, token: int, edge: str = "white") -> None:
        ax.add_patch(Rectangle((x, y), 0.95, 0.9, facecolor=colors[token], edgecolor=edge))
        rgb = mcolors.to_rgb(colors[token])
        light = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 0.6
        ax.text(x + 0.475, y + 0.45, str(token), ha="center", va="center", fontsize=6.5,
                color="black" if light else "white")

    for b in range(B):
        for t in range(shown):
            cell(t, b, int(contexts[b, t]))
        x = shown
        if shown < L:
            ax.text(x + 0.45, b + 0.45, "…", ha="center", va="center", fontsize=9)
            x += 1
        cell(x + 0.3, b, int(queries[b]))
        ax.text(x + 1.45, b + 0.45, "→", ha="center", va="center", fontsize=9)
        cell(x + 1.9, b, int(targets[b]))
    right = shown + (1 if shown < L else 0) + 3.0
    ax.set_xlim(-0.2, right)
    ax.set_ylim(B, -0.15)
    ax.set_yticks([b + 0.45 for b in range(B)], [f"seq {b + 1}" for b in range(B)],
                  fontsize="small")
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(title if title is not None else
                 f"{B} sampled sequences (T − 1 = {L} contextual tokens; first {shown} shown), "
                 "query $x_T$ → next $x_{T+1}$", fontsize="medium")
    return fig


def plot_attention(classes: SequenceClasses, c: torch.Tensor, *, ax: Axes | None = None,
                   classes_to_show: Sequence[int] | None = None, ymax: float | None = None,
                   title: str | None = None, reference: torch.Tensor | None = None) -> Figure:
    """Bars of the attention ``c_n`` (Eqn 5) over the contextual tokens, one panel per class.

    ``c``: ``[K, M]`` (e.g. ``theory.attention_limit`` or ``Run.attention()[r, s]``). Common tokens
    are grey, distinct tokens in their class's colour; ``reference`` (``[K, M]``, e.g. ``P(l|n)``,
    the attention at ``Z = 0``) is drawn as black ticks. ``ymax`` fixes the y-range (scrubber
    frames must share it).
    """
    _check_classes(classes)
    c = check_tensor("c", c, shape=(classes.K, classes.M))
    if reference is not None:
        reference = check_tensor("reference", reference, shape=(classes.K, classes.M))
    shown = list(range(classes.K)) if classes_to_show is None else [
        check_int("classes_to_show[i]", n, low=0, high=classes.K - 1) for n in classes_to_show]
    if not shown:
        raise ValueError("classes_to_show must not be empty")
    kinds, colors = token_kinds(classes), _token_colors(classes)
    contextual = [l for l, kind in enumerate(kinds) if kind in ("common", "distinct")]
    if ax is None:
        fig = new_figure(width=min(12.0, 2.0 + 0.22 * len(contextual)),
                         height=0.6 + 1.6 * len(shown))
        axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0]
    else:
        if len(shown) != 1:
            raise ValueError("pass ax only with a single class in classes_to_show")
        fig, axes = ax.figure, [ax]
    values = c.detach().double().cpu().numpy()
    top = ymax if ymax is not None else 1.08 * float(values[shown][:, contextual].max())
    x = np.arange(len(contextual))
    for panel, n in zip(axes, shown):
        panel.bar(x, values[n, contextual], width=0.8,
                  color=[colors[l] if values[n, l] > 0 else "#dddddd" for l in contextual])
        if reference is not None:
            ref = reference.detach().double().cpu().numpy()[n, contextual]
            panel.scatter(x, ref, marker="_", s=60, color="black", linewidths=1.2,
                          label="$P(l\\mid n)$ (the attention at $Z=0$)", zorder=3)
        panel.set_ylim(0, top)
        panel.set_ylabel(f"class {n + 1}\n$c_{{l\\mid {n + 1}}}$", color=class_color(n))
        panel.spines[["top", "right"]].set_visible(False)
    axes[-1].set_xticks(x, [str(l) for l in contextual], fontsize="x-small")
    axes[-1].set_xlabel("contextual token id $l$ (grey: common, coloured: distinct)")
    if title is not None:
        axes[0].set_title(title, fontsize="medium", loc="left")
    if reference is not None:
        axes[0].legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False,
                       borderaxespad=0.1)
    return fig


def _figure_and_axes(ax: Axes | None, *, width: float, height: float) -> tuple[Figure, Axes]:
    if ax is None:
        fig = new_figure(width, height)
        return fig, fig.add_subplot()
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax.figure, ax


def _check_classes(classes: object) -> None:
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")


def plot_run_summary(run: Run, runs: Sequence[int] | None = None,
                     labels: Sequence[str] | None = None) -> Figure:
    """Training loss (left, log scale) and each class's attention mass on common tokens
    (right; ``metrics.common_mass`` at every snapshot, Theorem 2's prediction: it falls) for
    the runs ``runs`` of a :class:`~scansnap.dynamics.Run` (default: all; diverged runs are drawn
    up to the step where they diverged)."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a scansnap Run, got {type(run).__name__}")
    R = run.loss.shape[0]
    chosen = list(range(R)) if runs is None else [check_int("runs[i]", r, low=0, high=R - 1)
                                                 for r in runs]
    if labels is not None and len(labels) != len(chosen):
        raise ValueError(f"labels must have one entry per run: got {len(labels)} for "
                         f"{len(chosen)} runs")
    names = list(labels) if labels is not None else [
        f"$\\eta_Y$={run.configs[r][0]:g}, $\\eta_Z$={run.configs[r][1]:g}" for r in chosen]
    fig = new_figure(11.0, 3.4)
    ax, bx = fig.subplots(1, 2)
    steps = np.arange(run.loss.shape[1])
    line_styles = ["-", "--", ":", "-."]
    for i, (r, name) in enumerate(zip(chosen, names)):
        loss = run.loss[r].double().numpy()
        finite = np.isfinite(loss)
        color = _CLASS_COLORS[(i + 2) % len(_CLASS_COLORS)] if len(chosen) > 1 else "#333333"
        ax.semilogy(steps[finite], np.maximum(loss[finite], 1e-16), color=color, label=name)
        if not finite.all():
            first = int(np.argmin(finite))
            ax.axvline(first, color=color, ls=":", lw=1)
            ax.text(first, ax.get_ylim()[1] if ax.get_ylim()[1] > 0 else 1.0, " diverged",
                    color=color, fontsize="small", va="top")
        Z = run.Z[r]
        ok = torch.isfinite(Z).flatten(1).all(1)
        mass = common_mass(run.classes, Z[ok]).double().numpy()  # [S_ok, K]
        for n in range(run.classes.K):
            bx.plot(run.steps[ok].numpy(), mass[:, n], line_styles[n % 4], color=color,
                    label=f"{name}, class {n + 1}" if len(chosen) > 1 else f"class {n + 1}")
    ax.set_xlabel("step $t$")
    ax.set_ylabel("training loss (batch)")
    ax.set_title("Loss")
    bx.set_xlabel("step $t$")
    bx.set_ylabel("$\\sum_{l \\in G_{CT}} c_{l\\mid n}$")
    bx.set_title("Attention mass on common tokens")
    bx.set_ylim(0, 1.02)
    for panel in (ax, bx):
        panel.spines[["top", "right"]].set_visible(False)
        panel.legend(fontsize="small", frameon=False)
    return fig


def class_rgb(classes: SequenceClasses) -> np.ndarray:
    """``P(l | n)`` as an RGB image ``[K + 1, M, 3]`` for fast redraws: row 0 is the token-kind
    strip; row ``n + 1`` shades each token of class ``n``'s support in its kind's colour by
    ``P(l | n) / max P`` and marks the class's query (black) and next token (purple)."""
    _check_classes(classes)
    probs = classes.probs().numpy()
    colors = np.array([mcolors.to_rgb(c) for c in _token_colors(classes)])  # [M, 3]
    image = np.ones((classes.K + 1, classes.M, 3))
    image[0] = colors
    shade = (probs / probs.max())[:, :, None]  # [K, M, 1]
    image[1:] = 1.0 - shade * (1.0 - colors[None])
    for n in range(classes.K):
        image[n + 1, int(classes.query_tokens[n])] = mcolors.to_rgb(KIND_COLORS["query"])
        image[n + 1, int(classes.next_tokens[n])] = mcolors.to_rgb(KIND_COLORS["next"])
    return image


def sequence_rgb(classes: SequenceClasses, contexts: torch.Tensor, queries: torch.Tensor,
                 targets: torch.Tensor) -> np.ndarray:
    """Sequences as an RGB image ``[B, L + 3, 3]``: the contextual tokens coloured by kind, a
    white gap, the query token and the next token (fast-redraw version of
    :func:`plot_sequences`)."""
    _check_classes(classes)
    colors = np.array([mcolors.to_rgb(c) for c in _token_colors(classes)])
    B, L = contexts.shape
    image = np.ones((B, L + 3, 3))
    image[:, :L] = colors[contexts.numpy()]
    image[:, L + 1] = colors[queries.numpy()]
    image[:, L + 2] = colors[targets.numpy()]
    return image
