"""Chapter 1 (the setting, Section 3): Lemma 2's limit ``Xᵀ b_T → c_n`` measured at finite ``T``.

:func:`lemma2_convergence` samples contexts of growing length ``T`` from one class, computes the
attention-weighted context ``Xᵀ b_T`` for a fixed attention row ``z_m`` exactly from the token
counts (no positional encoding, Assumption 1a), and compares it with the limit ``c_n`` of Eqn 5
(:func:`scansnap.theory.attention_limit`). It also checks the finite-``T`` concentration of
Lemma 18: the empirical frequency of each token is within ``√(ln(2/δ) / (2(T − 1)))`` of
``P(l | n)`` with probability at least ``1 − δ``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .. import theory
from .._validate import as_int_list, check_float, check_int, check_tensor
from ..data import SYN_MEDIUM_QUERIES, SequenceClasses, syn_medium, syn_small, weakly_correlated
from ..dynamics import Run
from ..metrics import Assumption2, assumption2, common_mass
from ..models import attention_from_counts
from ..plots import FigureResult, class_color, class_rgb, freeze_layout, new_figure, sequence_rgb

__all__ = ["attention_from_counts", "class_summary", "lemma18_bound", "lemma2_convergence", "ClassExplorer",
           "Assumption2", "assumption2", "assumption2_table", "book_datasets"]


def lemma18_bound(T: Any, delta: float) -> np.ndarray | np.float64:
    """Lemma 18: ``√(ln(2/δ) / (2(T − 1)))``, the deviation of one token's empirical frequency
    among ``T − 1`` i.i.d. contextual tokens from ``P(l | n)`` that holds with probability at
    least ``1 − δ`` (Hoeffding). ``T >= 2``, ``0 < δ < 1``."""
    T = np.asarray(T, dtype=np.float64)
    if not np.all(np.isfinite(T)) or np.any(T < 2):
        raise ValueError("T must be finite and >= 2 (at least one contextual token)")
    delta = check_float("delta", delta, low=0.0, high=1.0, low_open=True)
    if delta >= 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    out = np.sqrt(math.log(2.0 / delta) / (2.0 * (T - 1.0)))
    return np.float64(out) if out.ndim == 0 else out


def lemma2_convergence(
    classes: SequenceClasses,
    Z: torch.Tensor | None = None,
    n: int = 0,
    Ts: Sequence[int] = (10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000),
    batch_size: int = 2_000,
    delta: float = 0.05,
    seed: int = 0,
    fit_min_T: int = 100,
) -> FigureResult:
    """Lemma 2 at finite ``T``: ``‖Xᵀ b_T − c_n‖₁`` and Lemma 18's frequency bound vs ``T``.

    For each ``T`` in ``Ts`` draws ``batch_size`` contexts of class ``n`` (exact token counts),
    computes ``Xᵀ b_T`` with the attention row ``z_{ψ(n)}`` of ``Z`` (default ``Z = 0``) and the
    limit ``c_n`` (Eqn 5). Left panel: mean and 5–95 % band of the ℓ1 gap on log-log axes with a
    fitted slope and a ``T^{-1/2}`` guide. Right panel: the ``(1 − δ)``-quantile over contexts of
    ``|q_l − P(l|n)|`` for the worst token ``l`` of the class's support, against Lemma 18's
    per-token bound; ``data["violation_rate"]`` is the fraction of (context, token) pairs beyond
    the bound (Lemma 18 says at most ``δ``).

    Returns a :class:`~scansnap.plots.FigureResult` whose ``data`` holds ``T``, ``l1_mean``,
    ``l1_q05``, ``l1_q95``, ``slope`` (least-squares slope of log mean gap vs log T over the
    ``T >= fit_min_T``),
    ``freq_quantile``, ``bound``, ``violation_rate`` and ``max_violation_rate``.
    """
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")
    M = classes.M
    Z = torch.zeros(M, M, dtype=torch.float64) if Z is None else check_tensor("Z", Z, shape=(M, M))
    Z = Z.detach().to(torch.float64)
    n = check_int("n", n, low=0, high=classes.K - 1)
    Ts = as_int_list("Ts", list(Ts), low=2)
    batch_size = check_int("batch_size", batch_size, low=1)
    delta = check_float("delta", delta, low=0.0, high=1.0, low_open=True)
    if delta >= 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    seed = check_int("seed", seed, low=0)
    fit_min_T = check_int("fit_min_T", fit_min_T, low=2)
    if sum(T >= fit_min_T for T in Ts) < 2:
        raise ValueError(f"fit_min_T must leave at least two lengths in Ts to fit a slope, "
                         f"got fit_min_T={fit_min_T} for Ts={Ts}")

    probs = classes.probs()
    z_row = Z[int(classes.query_tokens[n])]
    c = theory.attention_limit(probs, Z, classes.query_tokens)[n]  # [M]
    support = probs[n] > 0
    generator = torch.Generator().manual_seed(seed)
    l1_mean, l1_q05, l1_q95, freq_q, rates, max_rates = [], [], [], [], [], []
    for T in Ts:
        counts, _, _ = classes.sample_counts(batch_size, T, generator, n=n)
        v = attention_from_counts(z_row, counts)
        gap = (v - c).abs().sum(-1)
        l1_mean.append(float(gap.mean()))
        l1_q05.append(float(gap.quantile(0.05)))
        l1_q95.append(float(gap.quantile(0.95)))
        dev = (counts[:, support] / (T - 1) - probs[n, support]).abs()  # [B, |supp|]
        freq_q.append(float(dev.max(-1).values.quantile(1 - delta)))
        beyond = dev > float(lemma18_bound(T, delta))
        rates.append(float(beyond.double().mean()))
        max_rates.append(float(beyond.double().mean(0).max()))
    T_arr = np.asarray(Ts, dtype=np.float64)
    fit = T_arr >= fit_min_T
    slope = float(np.polyfit(np.log(T_arr[fit]), np.log(np.asarray(l1_mean)[fit]), 1)[0])
    bound = lemma18_bound(T_arr, delta)

    fig = new_figure(11.0, 3.8)
    ax, bx = fig.subplots(1, 2)
    color = class_color(n)
    ax.fill_between(T_arr, l1_q05, l1_q95, color=color, alpha=0.2, label="5–95 % of contexts")
    ax.loglog(T_arr, l1_mean, "o-", color=color, label=f"mean (slope {slope:.3f} for $T \\geq {fit_min_T}$)")
    guide = l1_mean[0] * (T_arr / T_arr[0]) ** -0.5
    ax.loglog(T_arr, guide, "k--", lw=1, label="$\\propto T^{-1/2}$")
    ax.set_xlabel("sequence length $T$")
    ax.set_ylabel("$\\|X^\\top b_T - c_n\\|_1$")
    ax.set_title(f"Lemma 2: attention over $T-1$ tokens → $c_n$ (class {n + 1})", fontsize="medium")
    ax.legend(fontsize="small", frameon=False)
    bx.loglog(T_arr, bound, "k-", lw=1.5, label=f"Lemma 18 bound, δ = {delta:g}")
    bx.loglog(T_arr, freq_q, "s-", color=color,
              label=f"measured: {1 - delta:.0%} quantile of $\\max_l |q_l - P(l|n)|$")
    bx.set_xlabel("sequence length $T$")
    bx.set_ylabel("frequency error")
    bx.set_title("Empirical token frequencies vs Lemma 18", fontsize="medium")
    bx.legend(fontsize="small", frameon=False)
    for panel in (ax, bx):
        panel.spines[["top", "right"]].set_visible(False)
    data = dict(T=Ts, l1_mean=l1_mean, l1_q05=l1_q05, l1_q95=l1_q95, slope=slope,
                freq_quantile=freq_q, bound=bound.tolist(), violation_rate=rates,
                max_violation_rate=max_rates, delta=delta, batch_size=batch_size, n=n,
                # the numbers the page quotes:
                gap_T128=float(np.interp(np.log(128), np.log(T_arr), l1_mean)),
                gap_last=l1_mean[-1], T_last=Ts[-1], violation=max(rates))
    return FigureResult(fig, data)


def class_summary(classes: SequenceClasses, contexts: torch.Tensor, n: int = 0) -> dict[str, Any]:
    """What chapter 1 quotes of a data set and a sample of its sequences: the vocabulary ``M``,
    the classes ``K``, class ``n``'s probability of one common token (``p_common``), its total
    common mass (``mass_common``), the range of its distinct tokens' probabilities
    (``p_distinct_min``, ``p_distinct_max``) and the share of common tokens among the sampled
    ``contexts`` (``sample_common_share``; token ids ``[B, T−1]``)."""
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")
    n = check_int("n", n, low=0, high=classes.K - 1)
    contexts = check_tensor("contexts", contexts, ndim=2)
    p = classes.probs()[n]  # [M]
    common, distinct = p[classes.common_tokens(n)], p[classes.distinct_tokens(n)]
    return dict(M=classes.M, K=classes.K, p_common=float(common[0]),
                mass_common=float(common.sum()), p_distinct_min=float(distinct.min()),
                p_distinct_max=float(distinct.max()),
                sample_common_share=float(torch.isin(contexts, classes.common_tokens(n))
                                          .double().mean()))


def training_summary(run: Run, n: int = 0, fit_loss: float = 1e-3) -> dict[str, Any]:
    """What chapter 1 quotes of a training run, over its seeds: class ``n``'s attention mass
    on common tokens at the start and end of seed 1 (``mass0``, ``mass1``) and its range over
    the seeds at the end (``mass_lo``, ``mass_hi``), the number of ``seeds`` and ``steps``,
    the first step whose loss is below ``fit_loss`` (``fit_lo``, ``fit_hi`` over the seeds;
    −1 if never) and the distinct tokens (1-based rank within their class) that end with the
    most attention (``top``, e.g. ``"10"``)."""
    classes = run.classes
    mass = common_mass(classes, run.Z)  # [R, S, K]
    below = run.loss < fit_loss  # [R, steps]
    fit = [int(row.nonzero()[0]) if bool(row.any()) else -1 for row in below]
    c_last = run.attention()[:, -1]  # [R, K, M]
    top = sorted({int(c_last[r, k, classes.distinct_tokens(k)].argmax()) + 1
                  for r in range(len(run.configs)) for k in range(classes.K)})
    return dict(mass0=float(mass[0, 0, n]), mass1=float(mass[0, -1, n]),
                mass_lo=float(mass[:, -1, n].min()), mass_hi=float(mass[:, -1, n].max()),
                seeds=len(run.configs), steps=int(run.steps[-1]), fit_lo=min(fit),
                fit_hi=max(fit), top=" or ".join(str(t) for t in top))


class ClassExplorer:
    """A figure of ``P(l | n)`` and a few sampled sequences that redraws fast (for a live control).

    ``explorer.figure`` is a :class:`~matplotlib.figure.Figure`; ``explorer.update(**kwargs)``
    rebuilds the :class:`~scansnap.data.SequenceClasses` from ``kwargs`` (its constructor's
    arguments), redraws both panels in place and returns the classes.
    """

    def __init__(self, num_sequences: int = 4, seq_len: int = 48, seed: int = 0) -> None:
        self.num_sequences = check_int("num_sequences", num_sequences, low=1)
        self.seq_len = check_int("seq_len", seq_len, low=2)
        self.seed = check_int("seed", seed, low=0)
        self.figure = new_figure(9.0, 4.2)
        self.ax_p, self.ax_s = self.figure.subplots(2, 1, height_ratios=[1.2, 1.0])
        blank = np.ones((2, 2, 3))
        self.image_p = self.ax_p.imshow(blank, aspect="auto", interpolation="nearest")
        self.image_s = self.ax_s.imshow(blank, aspect="auto", interpolation="nearest")
        self.ax_p.set_xlabel("token id $l$ (top strip: kind; grey common, coloured distinct, "
                             "black query, purple next)", fontsize="small")
        self.ax_s.set_xlabel("position $t$ (the last two cells: query $x_T$, next token $x_{T+1}$)",
                             fontsize="small")
        self.ax_p.set_ylabel("class $n$", fontsize="small")
        for ax in (self.ax_p, self.ax_s):
            ax.tick_params(labelsize="small")
        self.update()
        freeze_layout(self.figure)  # redraws only change images and labels: keep the layout

    def update(self, **kwargs: Any) -> SequenceClasses:
        classes = SequenceClasses(**kwargs)
        rgb = class_rgb(classes)
        self.image_p.set_data(rgb)
        self.image_p.set_extent((-0.5, classes.M - 0.5, classes.K + 0.5, -0.5))
        stride = math.ceil(classes.K / 8)  # at most about 8 class labels
        shown = [0] + list(range(1, classes.K + 1, stride))
        self.ax_p.set_yticks(shown, ["kind"] + [str(n) for n in shown[1:]])
        self.ax_p.set_title(f"$P(l\\mid n)$ (shade): M = {classes.M} tokens, K = {classes.K} "
                            f"classes, {len(classes.common_tokens(0))} common per class", fontsize="medium")
        g = torch.Generator().manual_seed(self.seed)
        contexts, queries, targets = classes.sample(self.num_sequences, self.seq_len, g)
        seq = sequence_rgb(classes, contexts, queries, targets)
        self.image_s.set_data(seq)
        self.image_s.set_extent((-0.5, seq.shape[1] - 0.5, self.num_sequences - 0.5, -0.5))
        self.ax_s.set_yticks(range(self.num_sequences),
                             [f"seq {b + 1}" for b in range(self.num_sequences)])
        self.ax_s.set_title(f"{self.num_sequences} sampled sequences (T = {self.seq_len})",
                            fontsize="medium")
        return classes


def assumption2_table(datasets: Mapping[str, SequenceClasses]) -> str:
    """An HTML table of Assumption 2 at ``Z = 0`` for each named data set (show it with
    ``IPython.display.HTML``): ``M/K²``, ``max|λ(E)|`` against ``1/K``, ``min|λ(E)|`` against
    ``6/√M``, and whether each condition holds."""
    head = ("data set", "M", "K", "M/K²", "max |λ(E)|", "1/K", "holds", "min |λ(E)|", "6/√M",
            "holds")
    rows = []
    for name, classes in datasets.items():
        a = assumption2(classes)
        cells = (html.escape(name), a.M, a.K, f"{a.M_over_K2:.1f}", f"{a.largest:.3f}",
                 f"{1 / a.K:.3f}", "yes" if a.weak_correlation else "no", f"{a.smallest:.3f}",
                 f"{6 / math.sqrt(a.M):.3f}", "yes" if a.eigenvalue_floor else "no")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    return (f'<table class="table"><thead>{header}</thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def book_datasets() -> dict[str, SequenceClasses]:
    """The synthetic data sets the book trains on, by name: Syn-Small (chapters 1–4, Figs 4–5),
    chapter 3's weakly correlated classes, and the Syn-Medium panels of Fig 6 (chapter 5)."""
    datasets = {"Syn-Small (ch. 1–4)": syn_small(), "ch. 3's classes": weakly_correlated()}
    for q in SYN_MEDIUM_QUERIES:
        datasets[f"Syn-Medium, {q} quer{'y' if q == 1 else 'ies'} (ch. 5)"] = syn_medium(q)
    return datasets
