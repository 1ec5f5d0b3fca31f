"""The decoder's dynamics (Section 4, App. D): Fig 8 and the plots of Chapter 3.

Fig 8 compares Lemma 5's exact discrete ``h*(s)`` with Lemma 6's continuous ``h(t)``
(PAPER.md B.7: M = 50 with η_Y ∈ {0.1, 0.2, 0.5, 1, 2}, t ≤ 80; M = 1000 with
η_Y ∈ {0.2, 0.5, 1, 2, 4}, t ≤ 70); Lemma 7 bounds the gap by ``2η_Y/M``. The η_Z in the
paper's panel titles plays no role (Z does not enter h).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from .. import decompose, theory
from .._validate import as_float_list, check_float, check_int
from ..data import SequenceClasses
from ..dynamics import Run
from ..plots import FigureResult, new_figure
from ..widgets import figure_to_png

#: Fig 8's panels: (M, learning rates, horizon).
FIG8_PANELS = ((50, (0.1, 0.2, 0.5, 1.0, 2.0), 80), (1000, (0.2, 0.5, 1.0, 2.0, 4.0), 70))


def h_curves(M: int, etas: Sequence[float], horizon: int, points: int = 400) -> dict[str, Any]:
    """``h*`` at integer steps ``0..horizon`` and ``h`` on a fine grid, for each ``η_Y``
    (Lemmas 5–7), with the largest gap ``max_s h*(s) − h(s)``, the smallest over ``s >= 1``
    (``h*(0) = h(0) = 0``), the gap at ``horizon`` and Lemma 7's bound ``2η_Y/M``."""
    M = check_int("M", M, low=2)
    etas = as_float_list("etas", etas, low=0.0)
    horizon = check_int("horizon", horizon, low=1)
    s = np.arange(horizon + 1)
    t = np.linspace(0, horizon, check_int("points", points, low=2))
    out: dict[str, Any] = {"M": M, "s": s.tolist(), "t": t.tolist(), "curves": []}
    for eta in etas:
        hs = np.asarray(theory.h_star(s, M, eta))
        gap = hs - np.asarray(theory.h(s.astype(float), M, eta))
        out["curves"].append({"eta_y": eta, "h_star": hs.tolist(),
                              "h": np.asarray(theory.h(t, M, eta)).tolist(),
                              "max_gap": float(gap.max()), "min_gap": float(gap[1:].min()),
                              "final_gap": float(gap[-1]), "bound": 2 * eta / M})
    return out


def draw_h_panel(ax: Any, curves: dict[str, Any], every: int = 2) -> None:
    """One Fig 8 panel: ``h`` (lines) and ``h*`` (dots every ``every`` steps)."""
    colors = matplotlib.colormaps["plasma"](np.linspace(0.05, 0.8, len(curves["curves"])))
    s = np.asarray(curves["s"])
    for color, curve in zip(colors, curves["curves"]):
        ax.plot(curves["t"], curve["h"], color=color, lw=1.5,
                label=rf"$\eta_Y={curve['eta_y']:g}$")
        ax.plot(s[::every], np.asarray(curve["h_star"])[::every], "o", color=color, ms=3)
    ax.set_xlabel("t (steps)")
    ax.set_ylabel("h")
    ax.set_title(rf"M = {curves['M']}: $h^*(s)$ (dots) vs $h(t)$ (lines)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")


def fig8(quick: bool = False, progress: bool = False) -> FigureResult:
    """Fig 8: Lemma 5's discrete h* (dots) against Lemma 6's continuous h (lines); M = 50 and
    M = 1000. ``data`` holds both curves and, per η_Y, the largest gap and Lemma 7's bound."""
    fig = new_figure(10, 3.8)
    axes = fig.subplots(1, 2)
    data: dict[str, Any] = {"panels": [], "quick": quick}
    for ax, (M, etas, horizon) in zip(axes, FIG8_PANELS):
        curves = h_curves(M, etas, horizon, points=100 if quick else 400)
        draw_h_panel(ax, curves)
        data["panels"].append(curves)
    fig.suptitle("Fig 8 — the decoder's scale h: exact steps vs continuous solution", fontsize=11)
    return FigureResult(fig, data)


# --- Chapter 3 helpers -------------------------------------------------------------------------
def lemma5_errors(rows: dict[str, tuple[torch.Tensor, int]], steps: Any, K: int,
                  eta_y: float) -> dict[str, dict[str, float]]:
    """How far decoupled rows ``w_n = (F^T Y)_n`` (restricted to the next tokens) are from
    Lemma 5: ``w_nn = (M − 1) h*(s)`` and ``w_nj = −h*(s)``, with the population's per-class step
    ``eta_y / K``. ``rows`` maps a name to ``(W [S, K, K], M)``, snapshots at ``steps``.
    Returns, per name, the largest absolute error on the diagonal, off it, and overall."""
    K = check_int("K", K, low=1)
    eta_y = check_float("eta_y", eta_y, low=0.0, low_open=True)
    steps = np.asarray(steps)
    out = {}
    for name, (W, M) in rows.items():
        W = np.asarray(W, dtype=float)
        if W.shape != (len(steps), K, K):
            raise ValueError(f"rows[{name!r}] must have shape [{len(steps)}, {K}, {K}], "
                             f"got {list(W.shape)}")
        hs = theory.h_star(steps, M, eta_y / K)
        off = ~np.eye(K, dtype=bool)
        diagonal = float(np.abs(np.diagonal(W, axis1=1, axis2=2) - (M - 1) * hs[:, None]).max())
        off_diagonal = float(np.abs(W[:, off] + hs[:, None]).max()) if K > 1 else 0.0
        out[name] = {"diagonal": diagonal, "off_diagonal": off_diagonal,
                     "max": max(diagonal, off_diagonal)}
    return out


def gamma_stages(t: Any, M: int, K: int, eta_y: float) -> tuple[np.ndarray, np.ndarray]:
    """Lemma 9's two regimes of ``γ(t)`` as curves: the leading terms
    ``q η_Y t / K`` (scanning, ``t ≲ t_0' = K ln M/η_Y``) and ``q K ln(M η_Y t/K) / (η_Y t)``
    (snapping, ``t ≳ t_0 = 2K ln M/η_Y``) with ``q = ((M−1)/M)²`` — from ``h ≈ η_Y t/(KM)`` and
    ``e^{Mh} ≈ M η_Y t/K`` in Lemma 6. Returns ``(early, late)``; ``late`` is NaN where
    ``M η_Y t / K <= 1`` (the logarithm is not positive there)."""
    M, K = check_int("M", M, low=2), check_int("K", K, low=1)
    eta = check_float("eta_y", eta_y, low=0.0, low_open=True)
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("t must be a 1-D array of finite times >= 0")
    q = ((M - 1) / M) ** 2
    early = q * eta * t / K
    arg = M * eta * t / K
    with np.errstate(divide="ignore", invalid="ignore"):
        late = np.where(arg > 1, q * K * np.log(np.where(arg > 1, arg, 2.0)) / (eta * t), np.nan)
    return early, late


def gamma_figure(M: int, K: int, etas: Sequence[float], horizon: float,
                 measured: dict[float, tuple[np.ndarray, np.ndarray]] | None = None,
                 stages_eta: float | None = None) -> FigureResult:
    """``γ(t)`` (Lemma 9) for several ``η_Y`` with ``t_0' = K ln M/η_Y`` (dotted) and
    ``t_0 = 2K ln M/η_Y`` (dashed) marked; ``measured`` maps ``η_Y`` to ``(steps, a_nn)``
    (Theorem 1's measured ``γ ι_n``) drawn as circles. With ``stages_eta`` a second, log-log
    panel shows ``γ`` for that ``η_Y`` against Lemma 9's two regimes (:func:`gamma_stages`)."""
    M, K = check_int("M", M, low=2), check_int("K", K, low=1)
    etas = as_float_list("etas", etas, low=0.0)
    if stages_eta is not None:
        stages_eta = check_float("stages_eta", stages_eta, low=0.0, low_open=True)
    if stages_eta is None:
        fig = new_figure(6.8, 3.6)
        ax = fig.subplots()
    else:
        fig = new_figure(10.4, 3.6)
        ax, ax_log = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.35, 1]})
    t = np.linspace(0, horizon, 600)
    colors = matplotlib.colormaps["viridis"](np.linspace(0.05, 0.8, len(etas)))
    data = {"M": M, "K": K, "t": t.tolist(), "gamma": {}, "t0_prime": {}, "t0": {}}
    for color, eta in zip(colors, etas):
        data["gamma"][eta] = theory.gamma(t, M, K, eta).tolist()
        data["t0_prime"][eta], data["t0"][eta] = float(theory.t0_prime(M, K, eta)), float(theory.t0(M, K, eta))
        ax.plot(t, theory.gamma(t, M, K, eta), color=color, lw=1.6, label=rf"$\eta_Y={eta:g}$")
        ax.axvline(float(theory.t0_prime(M, K, eta)), color=color, ls=":", lw=1)
        ax.axvline(float(theory.t0(M, K, eta)), color=color, ls="--", lw=1)
        if measured and eta in measured:
            steps, values = measured[eta]
            ax.plot(steps, values, "o", color=color, ms=3.5, mfc="none")
    ax.set_xlabel("t (steps)")
    ax.set_ylabel(r"$\gamma(t)$")
    ax.set_title(rf"speed control $\gamma(t)$, M={M}, K={K}: dotted $t_0'=K\ln M/\eta_Y$, "
                 r"dashed $t_0=2K\ln M/\eta_Y$" + (r", circles: measured $\gamma\iota_n$"
                                                   if measured else ""), fontsize=9)
    ax.legend(fontsize=8)
    if stages_eta is not None:
        eta = stages_eta
        t0p, t0 = float(theory.t0_prime(M, K, eta)), float(theory.t0(M, K, eta))
        tl = np.geomspace(t0p / 200, t0p * 200, 400)
        early, late = gamma_stages(tl, M, K, eta)
        ax_log.loglog(tl, theory.gamma(tl, M, K, eta), color="k", lw=1.8, label=r"$\gamma(t)$")
        ax_log.loglog(tl[tl <= t0p * 3], early[tl <= t0p * 3], color="tab:blue", ls="--", lw=1.2,
                      label=r"scanning: $q\,\eta_Y t/K$")
        ax_log.loglog(tl[tl >= t0p / 3], late[tl >= t0p / 3], color="tab:red", ls="--", lw=1.2,
                      label=r"snapping: $q\,K\ln(M\eta_Y t/K)/(\eta_Y t)$")
        ax_log.axvline(t0p, color="k", ls=":", lw=1)
        ax_log.axvline(t0, color="k", ls="--", lw=1)
        peak = float(theory.gamma_peak(M, K, eta))
        ax_log.plot([peak], [float(theory.gamma(peak, M, K, eta))], "v", color="k", ms=6,
                    label="peak")
        ax_log.set_ylim(float(theory.gamma(tl[0], M, K, eta)) / 2,
                        float(theory.gamma(peak, M, K, eta)) * 3)
        ax_log.set_xlabel("t (steps, log scale)")
        ax_log.set_title(rf"two stages (Lemma 9), $\eta_Y={eta:g}$, $q=((M-1)/M)^2$", fontsize=9)
        ax_log.legend(fontsize=7, loc="lower center")
        data["gamma_peak"] = peak
    return FigureResult(fig, data)


def gradient_frame(classes: SequenceClasses, g: np.ndarray, predicted: np.ndarray,
                   step: int, ylim: tuple[float, float]) -> Figure:
    """A scrubber frame: the back-propagated gradient ``g_1/γ(t)`` over context tokens (bars)
    and Theorem 1's shape ``f_1 − Σ_{n'} (f_1ᵀf_{n'}) f_{n'}`` (black outline)."""
    fig = new_figure(6.8, 2.7)
    ax = fig.subplots()
    support = torch.nonzero(classes.probs().sum(0) > 0).flatten().numpy()
    x = np.arange(len(support))
    common = set(classes.common_index.flatten().tolist())
    colors = ["0.55" if int(tok) in common else matplotlib.colormaps["tab10"](
        int((classes.distinct_index == int(tok)).nonzero()[0, 0])) for tok in support]
    ax.bar(x, g[support], color=colors, width=0.9)
    ax.step(x, predicted[support], where="mid", color="k", lw=1,
            label=r"Theorem 1: $\mathbf{f}_1-\sum_{n'}(\mathbf{f}_1^\top\mathbf{f}_{n'})\mathbf{f}_{n'}$")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylim(*ylim)
    ax.set_xlabel("context token (grey: common · colours: distinct tokens of classes 1, 2, 3)")
    ax.set_ylabel(r"$Y(e_1-\alpha_1)\,/\,\gamma(t)$")
    ax.set_title(f"back-propagated gradient of class 1 at step {step}", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def gradient_scrubber_frames(run: Run, index: int = 0,
                             every: int = 1) -> tuple[list[bytes], list[str]]:
    """Frames for Chapter 3's scrubber: ``g_1/γ(t)`` at the run's snapshots (every ``every``-th,
    step 0 skipped: ``g = 0`` there) against Theorem 1's predicted shape, rendered to PNG bytes
    one at a time (no figure stays open)."""
    classes = run.classes
    Y, Z = run.Y[index].double(), run.Z[index].double()
    f = theory.normalized_attention(theory.attention_limit(classes.probs(), Z, classes.query_tokens))
    g = decompose.backprop_gradient(Y, f, classes.next_tokens)[:, 0]  # [S, M]
    gram = f @ f.transpose(-1, -2)
    off = gram[:, 0].clone()
    off[:, 0] = 0
    shape = f[:, 0] - (off[:, :, None] * f).sum(1)  # f_1 − Σ_{n'≠1} (f_1ᵀf_n') f_n'
    eta_y = run.configs[index][0]
    steps = run.steps.numpy()
    gam = np.asarray(theory.gamma(steps.astype(float), classes.M, classes.K, eta_y))
    scale = np.where(gam > 0, gam, 1.0)[:, None]
    g = g.numpy() / scale  # g_1 / γ(t): the theorem predicts a fixed shape
    predicted = np.broadcast_to(shape.numpy(), g.shape)
    chosen = list(range(1, len(steps), every))
    lo = min(float(g[chosen].min()), float(predicted[chosen].min())) * 1.1
    hi = max(float(g[chosen].max()), float(predicted[chosen].max())) * 1.1
    frames = [figure_to_png(gradient_frame(classes, g[s], predicted[s], int(steps[s]),
                                           (lo, hi)))
              for s in chosen]
    return frames, [str(int(steps[s])) for s in chosen]


def theorem1_figure(measurement: decompose.Theorem1Measurement, title: str) -> FigureResult:
    """Theorem 1 measured: ``ι_n`` over time (left; ≈ 1 predicted) and ``β_{nn'}`` over time
    against ``f_nᵀf_{n'}`` and ``E'_{nn'}`` (right), for class 1 and its partners."""
    fig = new_figure(9.6, 3.3)
    left, right = fig.subplots(1, 2)
    steps = measurement.steps
    keep = measurement.gamma > 0
    K = measurement.iota.shape[1]
    for n in range(K):
        left.plot(steps[keep], measurement.iota[keep, n].numpy(), lw=1.4, label=f"n={n + 1}")
    left.axhline(1, color="k", lw=0.8, ls="--")
    left.set_xlabel("t (steps)")
    left.set_ylabel(r"$\iota_n = a_{nn}/\gamma(t)$")
    left.set_title(r"$\iota_n$ (Theorem 1: $\approx 1$)", fontsize=10)
    left.legend(fontsize=8)
    colors = matplotlib.colormaps["tab10"]
    for k in range(1, K):
        right.plot(steps[keep], measurement.beta[keep, 0, k].numpy(), color=colors(k), lw=1.4,
                   label=rf"$\beta_{{1{k + 1}}}$ measured")
        right.axhline(float(measurement.overlap[0, 0, k]), color=colors(k), ls="--", lw=1,
                      label=rf"$f_1^\top f_{k + 1}$")
        right.axhline(float(measurement.e_prime[0, 0, k]), color=colors(k), ls=":", lw=1,
                      label=rf"$E'_{{1{k + 1}}}$")
    right.set_xlabel("t (steps)")
    right.set_ylabel(r"$\beta_{1n'}$")
    right.set_title(r"$\beta_{1n'}$ (Theorem 1: $\approx E'_{1n'}\approx f_1^\top f_{n'}$)",
                    fontsize=10)
    right.legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=11)
    return FigureResult(fig, {"steps": np.asarray(steps[keep]).tolist(),
                              "iota": measurement.iota[keep].tolist(),
                              "beta_1": measurement.beta[keep, 0].tolist(),
                              "overlap_1": measurement.overlap[0, 0].tolist(),
                              "e_prime_1": measurement.e_prime[0, 0].tolist()})


class HExplorer:
    """A live control for Chapter 3: Fig 8 and γ(t) from the closed forms for any ``M``, ``K``
    and ``η_Y``. The figure is created once; :meth:`update` only replaces line data."""

    def __init__(self, horizon: int = 80) -> None:
        self.horizon = check_int("horizon", horizon, low=2, high=5000)
        self.figure = new_figure(9.6, 3.2)
        (self.ax_h, self.ax_g) = self.figure.subplots(1, 2)
        self.t = np.linspace(0, self.horizon, 300)
        self.s = np.arange(self.horizon + 1)
        (self.h_line,) = self.ax_h.plot([], [], lw=1.6, label="h(t) (Lemma 6)")
        (self.hs_dots,) = self.ax_h.plot([], [], "o", ms=3, label="h*(s) (Lemma 5)")
        (self.g_line,) = self.ax_g.plot([], [], lw=1.6, color="tab:green")
        self.t0p = self.ax_g.axvline(0, ls=":", color="k", lw=1, label=r"$t_0'=K\ln M/\eta_Y$")
        self.t0 = self.ax_g.axvline(0, ls="--", color="k", lw=1, label=r"$t_0=2K\ln M/\eta_Y$")
        self.ax_h.set_xlabel("t (steps)")
        self.ax_h.set_ylabel("h")
        self.ax_h.legend(fontsize=8, loc="lower right")
        self.ax_g.set_xlabel("t (steps)")
        self.ax_g.set_ylabel(r"$\gamma(t)$")
        self.ax_g.legend(fontsize=8, loc="upper right")
        for ax in (self.ax_h, self.ax_g):
            ax.set_xlim(0, self.horizon)

    def update(self, M: int = 50, K: int = 1, eta_y: float = 1.0) -> None:
        """Recompute ``h``, ``h*`` and ``γ`` (controls pass keyword values)."""
        M, K = check_int("M", M, low=2), check_int("K", K, low=1)
        eta_y = as_float_list("eta_y", eta_y, low=0.0)[0]
        h = np.asarray(theory.h(self.t, M, eta_y))
        hs = np.asarray(theory.h_star(self.s, M, eta_y))
        g = np.asarray(theory.gamma(self.t, M, K, eta_y))
        self.h_line.set_data(self.t, h)
        self.hs_dots.set_data(self.s[::2], hs[::2])
        self.g_line.set_data(self.t, g)
        for line, value in ((self.t0p, theory.t0_prime(M, K, eta_y)), (self.t0, theory.t0(M, K, eta_y))):
            line.set_xdata([float(value)] * 2)
        gap = float((hs - np.asarray(theory.h(self.s.astype(float), M, eta_y))).max())
        self.ax_h.set_ylim(0, max(hs.max(), h.max()) * 1.08 + 1e-12)
        self.ax_g.set_ylim(0, g.max() * 1.1 + 1e-12)
        self.ax_h.set_title(rf"M={M}, $\eta_Y={eta_y:g}$: max gap {gap:.2e} ≤ 2η/M = {2 * eta_y / M:.2e}",
                            fontsize=9)
        self.ax_g.set_title(rf"$\gamma(t)$, K={K}", fontsize=9)
