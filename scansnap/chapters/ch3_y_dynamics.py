"""The decoder's dynamics (Section 4, App. D): Fig 8 and the plots of Chapter 3.

Fig 8 compares Lemma 5's exact discrete ``h*(s)`` with Lemma 6's continuous ``h(t)``
(PAPER.md B.7: M = 50 with η_Y ∈ {0.1, 0.2, 0.5, 1, 2}, t ≤ 80; M = 1000 with
η_Y ∈ {0.2, 0.5, 1, 2, 4}, t ≤ 70); Lemma 7 bounds the gap by ``2η_Y/M``. The η_Z in the
paper's panel titles plays no role (Z does not enter h).

The chapter quotes numbers through small summaries: :func:`setting_summary` (the classes),
:func:`lemma5_errors`, Fig 8's ``data``, :func:`corollary1_summary`, :func:`gamma_summary`
(Lemma 9), :func:`theorem1_summary` / :func:`theorem1_summaries` (Theorem 1 measured) and
:func:`modified_theorem1` (Theorem 1 under Lemma 3's modified update).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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


def _eta_key(eta: float) -> str:
    """``η`` as part of a glue key: ``0.5 → "0p5"``, ``2.0 → "2"``."""
    return f"{eta:g}".replace(".", "p")


def fig8(quick: bool = False, progress: bool = False) -> FigureResult:
    """Fig 8: Lemma 5's discrete h* (dots) against Lemma 6's continuous h (lines); M = 50 and
    M = 1000. ``data`` holds both curves and, per η_Y, the largest gap and Lemma 7's bound; the
    same numbers as scalars for quoting, ``max_gap_M<M>_eta<η>``, ``final_gap_M<M>_eta<η>``
    (at the horizon) and ``bound_M<M>_eta<η>`` (``2η_Y/M``), with ``η`` written as in
    ``0p5`` for 0.5; and over all curves ``worst_bound_fraction`` (the largest gap as a
    fraction of its bound) and ``min_gap`` (the smallest gap after step 0; Lemma 7 says
    ``h* − h >= 0``)."""
    fig = new_figure(10, 3.8)
    axes = fig.subplots(1, 2)
    data: dict[str, Any] = {"panels": [], "quick": quick}
    for ax, (M, etas, horizon) in zip(axes, FIG8_PANELS):
        curves = h_curves(M, etas, horizon, points=100 if quick else 400)
        draw_h_panel(ax, curves)
        data["panels"].append(curves)
        for curve in curves["curves"]:
            key = f"M{M}_eta{_eta_key(curve['eta_y'])}"
            data.update({f"max_gap_{key}": curve["max_gap"],
                         f"final_gap_{key}": curve["final_gap"], f"bound_{key}": curve["bound"]})
    every = [c for panel in data["panels"] for c in panel["curves"]]
    data["worst_bound_fraction"] = max(c["max_gap"] / c["bound"] for c in every)
    data["min_gap"] = min(c["min_gap"] for c in every)
    fig.suptitle("Fig 8 — the decoder's scale h: exact steps vs continuous solution", fontsize=11)
    return FigureResult(fig, data)


# --- Chapter 3 helpers -------------------------------------------------------------------------
def lemma5_errors(rows: dict[str, tuple[torch.Tensor, int]], steps: Any, K: int,
                  eta_y: float) -> dict[str, dict[str, float]]:
    """How far decoupled rows ``w_n = (F^T Y)_n`` (restricted to the next tokens) are from
    Lemma 5: ``w_nn = (M − 1) h*(s)`` and ``w_nj = −h*(s)``, with the population's per-class step
    ``eta_y / K``. ``rows`` maps a name to ``(W [S, K, K], M)``, snapshots at ``steps``.
    Returns, per name, the largest absolute error on the diagonal, off it, and overall, and at
    the last snapshot the entry ``w_12`` (``w_off_final``; NaN if ``K = 1``) and Lemma 5's
    ``h*`` (``h_star_final``; Lemma 5 says ``w_12 = −h*``)."""
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
                     "max": max(diagonal, off_diagonal),
                     "w_off_final": float(W[-1, 0, 1]) if K > 1 else math.nan,
                     "h_star_final": float(hs[-1])}
    return out


def setting_summary(classes: SequenceClasses) -> dict[str, float | int]:
    """The numbers chapter 3 quotes about a setting: ``M``, ``K``, the overlap ``f_1ᵀ f_2`` of
    the first two classes' attention vectors at ``Z = 0`` (Lemma 2: ``f_n = P(·|n)`` normalized;
    NaN if ``K = 1``) and ``beta_floor = M/(M − 1)²``, the ``β_{nn'}`` that Lemma 5 gives even
    for orthonormal ``f_n`` (Theorem 1's ``δ_3`` term, ``|δ_3| < 3/M``)."""
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")
    f = theory.normalized_attention(classes.probs())
    return {"M": classes.M, "K": classes.K,
            "overlap": float(f[0] @ f[1]) if classes.K > 1 else math.nan,
            "beta_floor": classes.M / (classes.M - 1) ** 2}


def corollary1_summary(rows: Sequence[tuple[float, float, float]],
                       halve_from: float = 0.1) -> dict[str, float]:
    """Corollary 1's fitting times measured against :func:`scansnap.decompose.fit_time`: ``rows``
    holds ``(ε, measured steps, predicted steps)``. Returns ``worst``, the largest
    ``|measured − predicted|``, and ``halving``, the measured time at ``halve_from / 2`` over the
    measured time at ``halve_from`` (about 2 when Corollary 1's ``K/(ε η_Y)`` term dominates)."""
    rows = [tuple(float(v) for v in row) for row in rows]
    if not rows or any(len(row) != 3 for row in rows):
        raise ValueError("rows must be a non-empty sequence of (eps, measured, predicted)")
    halve_from = check_float("halve_from", halve_from, low=0.0, low_open=True)
    measured = {eps: seen for eps, seen, _ in rows}
    pick = {target: next((seen for eps, seen in measured.items() if math.isclose(eps, target)),
                         None) for target in (halve_from, halve_from / 2)}
    if None in pick.values():
        raise ValueError(f"halve_from must be an eps of rows whose half is one too, got "
                         f"{halve_from} for eps {sorted(measured)}")
    return {"worst": max(abs(seen - predicted) for _, seen, predicted in rows),
            "halving": pick[halve_from / 2] / pick[halve_from]}


def gamma_summary(M: int, K: int, eta_y: float) -> dict[str, float]:
    """Lemma 9's speed control ``γ(t)`` in numbers: the time of its ``peak``
    (:func:`scansnap.theory.gamma_peak`), ``t0_prime = K ln M/η_Y`` and ``t0 = 2K ln M/η_Y``,
    ``peak_over_t0_prime``, ``gamma_t0_over_peak`` (what is left of the peak at ``t_0``) and,
    well inside each regime, ``γ`` over its leading term (:func:`gamma_stages`):
    ``early_ratio`` at ``t_0'/10`` and ``late_ratio`` at ``10 t_0'``."""
    M, K = check_int("M", M, low=2), check_int("K", K, low=1)
    eta_y = check_float("eta_y", eta_y, low=0.0, low_open=True)
    peak, t0p, t0 = (float(f(M, K, eta_y)) for f in (theory.gamma_peak, theory.t0_prime,
                                                     theory.t0))
    inside = np.array([t0p / 10, 10 * t0p])
    early, late = gamma_stages(inside, M, K, eta_y)
    gamma = theory.gamma(inside, M, K, eta_y)
    return {"peak": peak, "t0_prime": t0p, "t0": t0, "peak_over_t0_prime": peak / t0p,
            "gamma_t0_over_peak": float(theory.gamma(t0, M, K, eta_y)
                                        / theory.gamma(peak, M, K, eta_y)),
            "early_ratio": float(gamma[0] / early[0]), "late_ratio": float(gamma[1] / late[1])}


def theorem1_summary(measurement: decompose.Theorem1Measurement, from_step: int = 30,
                     n: int = 0, partner: int = 1) -> dict[str, float]:
    """Theorem 1 measured (:func:`scansnap.decompose.measure_theorem1`), as the chapter quotes
    it, for class ``n`` and its ``partner`` class ``n'``: ``iota_lo``/``iota_hi``, the range of
    ``ι`` over all classes from step ``from_step`` on (Theorem 1: ≈ 1); ``iota_start`` and
    ``iota_end``, class ``n``'s ``ι`` at the first snapshot after step 0 and at the last;
    ``beta_end``, ``overlap_end`` (``f_nᵀ f_{n'}``), ``e_prime_end`` (``E'_{nn'}``) and
    ``one_minus_e_prime_nn`` (``1 − E'_nn``, the finer prediction for ``ι``) at the last
    snapshot, with ``beta_ratio = β/f_nᵀf_{n'}`` (NaN for orthogonal classes); ``residual_max``
    and ``residual_end``, the largest relative part of ``g`` outside span ``{f_k}`` over the
    snapshots after step 0 and at the last (Theorem 1: 0); ``xi_min``, the smallest ``ξ`` after
    step 0 (Theorem 1(a): > 0); and ``peak_step``, the step at which ``a_nn = γ ι_n`` is
    largest."""
    if not isinstance(measurement, decompose.Theorem1Measurement):
        raise TypeError(f"measurement must be a Theorem1Measurement, "
                        f"got {type(measurement).__name__}")
    K = measurement.iota.shape[1]
    n = check_int("n", n, low=0, high=K - 1)
    partner = check_int("partner", partner, low=0, high=K - 1)
    if partner == n:
        raise ValueError(f"partner must be a class other than n = {n}")
    from_step = check_int("from_step", from_step, low=0)
    late = torch.as_tensor(measurement.steps >= from_step)
    if not bool(late.any()):
        raise ValueError(f"from_step must be at most the last step, "
                         f"{int(measurement.steps[-1])}, got {from_step}")
    if len(measurement.steps) < 2:
        raise ValueError("the measurement needs snapshots after step 0")
    beta = float(measurement.beta[-1, n, partner])
    overlap = float(measurement.overlap[-1, n, partner])
    a_nn = measurement.coefficients[:, n, n]
    return {"iota_lo": float(measurement.iota[late].min()),
            "iota_hi": float(measurement.iota[late].max()),
            "iota_start": float(measurement.iota[1, n]),
            "iota_end": float(measurement.iota[-1, n]),
            "beta_end": beta, "overlap_end": overlap,
            "beta_ratio": beta / overlap if overlap != 0 else math.nan,
            "e_prime_end": float(measurement.e_prime[-1, n, partner]),
            "one_minus_e_prime_nn": float(1 - measurement.e_prime[-1, n, n]),
            "residual_max": float(measurement.residual[1:].max()),
            "residual_end": float(measurement.residual[-1].max()),
            "xi_min": float(measurement.xi[1:].min()),
            "peak_step": float(measurement.steps[int(torch.argmax(a_nn))])}


def theorem1_summaries(measurements: Mapping[Any, decompose.Theorem1Measurement],
                       from_step: int = 30) -> dict[str, float]:
    """:func:`theorem1_summary` of several measurements, keys ``<name>_<key>`` (a tuple name
    such as ``(128, 1024)`` becomes ``128_1024``), and ``xi_min``, the smallest ``ξ`` of all
    (Theorem 1(a) needs it positive in every one)."""
    if not isinstance(measurements, Mapping) or not measurements:
        raise ValueError("measurements must be a non-empty mapping {name: Theorem1Measurement}")
    out: dict[str, float] = {}
    for name, measurement in measurements.items():
        label = "_".join(map(str, name)) if isinstance(name, tuple) else str(name)
        out.update({f"{label}_{key}": value
                    for key, value in theorem1_summary(measurement, from_step).items()})
    out["xi_min"] = min(value for key, value in out.items() if key.endswith("_xi_min"))
    return out


def modified_theorem1(classes: SequenceClasses, eta_y: float, steps: int, n: int = 0,
                      partner: int = 1) -> dict[str, float]:
    """Theorem 1 under Lemma 3's *modified* decoder update
    (:func:`scansnap.decompose.modified_y_dynamics`, ``Z = 0``), for which the theorem is
    derived: after ``steps`` steps, class ``n``'s ``iota = a_nn/γ(t)`` and ``beta = −a_{nn'}/γ(t)``
    from the coordinates of ``g_n`` on the ``f_k`` (the theorem predicts ``β ≈ E'_{nn'}``)."""
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")
    steps = check_int("steps", steps, low=1)
    n = check_int("n", n, low=0, high=classes.K - 1)
    partner = check_int("partner", partner, low=0, high=classes.K - 1)
    if partner == n:
        raise ValueError(f"partner must be a class other than n = {n}")
    f = theory.normalized_attention(classes.probs())
    _, Y = decompose.modified_y_dynamics(classes, eta_y=eta_y, steps=steps)
    a, _ = decompose.coordinates(decompose.backprop_gradient(Y[-1], f, classes.next_tokens), f)
    gamma = float(theory.gamma(steps, classes.M, classes.K, eta_y))
    return {"iota": float(a[n, n] / gamma), "beta": float(-a[n, partner] / gamma)}


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
