"""The phase transition (Section 6, App. F–G): Theorem 4, Figs 3, 6, 9, 11 and 12, and the
scan-then-snap picture in real runs.

Theory figures use :mod:`scansnap.theory` (``B_n`` from the exact ``h`` of Lemma 6, Eqn 129 with
``B_n(0) = 0``); the paper never gives ``C_0 = ρ_0^4/K`` (PAPER.md A.8, B.6–B.7), so every
theory figure takes ``C0`` and states the value it used in ``data["C0"]``. Sweep figures use
:func:`scansnap.chapters.ch5_phase_transition.sweep.fig6_sweep` and accept an already computed ``sweep=`` so a page that runs
the sweep once can draw Figs 6, 11 and 12 from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ... import metrics, theory
from ..._validate import as_float_list, as_int_list, check_bool, check_float, check_int
from ...data import SequenceClasses, syn_medium
from ...dynamics import Run, train
from ...mechanism import init_overlap_C0
from ...plots import FigureResult, new_figure
from ...widgets import figure_to_png
from . import authors
from .sweep import SEEDS, Sweep, fig6_sweep, key_label, swept_index

#: Fig 3's C_0: ρ_0 = 0.5, K = 10 (PAPER.md B.6 [R]; reproduces the figure's ~600 scale).
FIG3_C0 = 0.5**4 / 10
#: Fig 9's C_0 (PAPER.md B.7 [R]: with K = 1 it reproduces both panels' y-ranges).
FIG9_C0 = 1.0
FIG9_K = 1
_COLORS = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _check_positive(name: str, value: Any) -> float:
    return check_float(name, value, low=0.0, low_open=True)


# --- Theorem 4 ------------------------------------------------------------------------------
def theorem4_figure(M: int = 1000, K: int = 10, eta_y: float = 1.0, eta_z: float = 0.5,
                    C0: float = FIG3_C0, t_max: float | None = None,
                    num: int = 400) -> FigureResult:
    """Theorem 4: ``B_n(t)`` from the exact ``h`` (Eqn 129 with ``B_n(0) = 0``) against its two
    asymptotic regimes — scanning, ``¼ ln(1 + 2(M-1)²η_Yη_Z t²/(K M² C_0))`` (``O(ln t)``) and
    snapping, ``¼ ln(1 + 2K(M-1)²(η_Z/η_Y) ln²(Mη_Y t/K)/(M² C_0))`` (``O(ln ln t)``) — on a
    log-``t`` axis with ``t_0' = K ln M/η_Y`` and ``t_0 = 2K ln M/η_Y`` marked (left), and the
    slope ``dB_n/d ln t`` against ``½`` and ``1/(2 ln(Mη_Y t/K))`` (right). The printed Eqn 129
    (``B_n(0) = ¼ ln C_0``) is drawn dotted. ``t`` runs log-spaced to ``t_max``
    (default ``1000 t_0``).
    """
    M, K = check_int("M", M, low=2), check_int("K", K, low=1)
    eta_y, eta_z = _check_positive("eta_y", eta_y), _check_positive("eta_z", eta_z)
    C0 = _check_positive("C0", C0)
    num = check_int("num", num, low=10)
    T0, T0p = float(theory.t0(M, K, eta_y)), float(theory.t0_prime(M, K, eta_y))
    t_max = 1000 * T0 if t_max is None else _check_positive("t_max", t_max)
    t = np.geomspace(t_max * 1e-6, t_max, num)
    args = dict(M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0)
    Bt, Bscan, Bsnap = theory.B(t, **args), theory.B_scanning(t, **args), theory.B_snapping(t, **args)
    Bprinted = theory.B_printed(t, **args)
    slope = theory.dB_dlog_t(t, **args)
    late = 1 / (2 * np.log(np.maximum(M * eta_y * t / K, math.e)))

    fig = new_figure(11, 4.2)
    (ax, bx) = fig.subplots(1, 2)
    ax.plot(t, Bt, color="k", lw=2.2, label=r"$B_n(t)$, exact $h$ (Eqn 129, $B_n(0)=0$)")
    ax.plot(t, Bscan, "--", color=_COLORS[0], label=r"scanning: $O(\ln t)$")
    snap_ok = t >= T0p
    ax.plot(t[snap_ok], Bsnap[snap_ok], "--", color=_COLORS[1], label=r"snapping: $O(\ln\ln t)$")
    ax.plot(t, Bprinted, ":", color="0.45", label=r"as printed: $\frac{1}{4}\ln(C_0+4\Gamma)$")
    top = float(Bt.max()) * 1.25
    for x, name in ((T0p, r"$t_0'$"), (T0, r"$t_0$")):
        ax.axvline(x, color="0.6", ls=":", lw=1)
        ax.text(x, top * 0.97, name, ha="center", va="top", fontsize=10,
                bbox=dict(fc="white", ec="none", pad=1))
    ax.set(xscale="log", xlabel="t (steps)", ylabel=r"$B_n(t)$", ylim=(min(0, float(Bprinted.min())) - 0.05, top),
           title=f"Theorem 4: M={M}, K={K}, $\\eta_Y$={eta_y:g}, $\\eta_Z$={eta_z:g}, $C_0$={C0:.3g}")
    ax.legend(fontsize=8, loc="lower right")
    bx.plot(t, slope, color="k", lw=2.2, label=r"$dB_n/d\ln t$")
    bx.axhline(0.5, color=_COLORS[0], ls="--", label=r"$\frac{1}{2}$ (scanning)")
    bx.plot(t[snap_ok], late[snap_ok], "--", color=_COLORS[1], label=r"$1/(2\ln(M\eta_Y t/K))$ (snapping)")
    for x in (T0p, T0):
        bx.axvline(x, color="0.6", ls=":", lw=1)
    bx.set(xscale="log", xlabel="t (steps)", ylabel=r"$dB_n/d\ln t$", ylim=(0, 0.6),
           title="the slope: ½ while scanning, → 0 after snapping")
    bx.legend(fontsize=8, loc="upper right")
    i0 = int(np.argmin(abs(t - T0)))
    data = dict(M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0, t0=T0, t0_prime=T0p, t=t, B=Bt,
                B_scanning=Bscan, B_snapping=Bsnap, B_printed=Bprinted, slope=slope,
                B_at_t0=float(theory.B(T0, **args)), slope_at_t0=float(slope[i0]),
                B_printed_at_0=float(theory.B_printed(0.0, **args)))
    return FigureResult(fig, data)


# --- Theorem 4 against the dynamics ----------------------------------------------------------
def theorem4_dynamics_figure(checks: dict[str, dict[str, Any]]) -> FigureResult:
    """Theorem 4 in its own setting: for each ``mechanism.theorem4_check`` result (one per
    label), the simulated budget ``B_n`` (solid), the common logit's fall ``−z`` (dotted),
    Eqn 129 (dashed) and its scanning (``t < t_0'``) and snapping (``t >= t_0``) asymptotes
    (grey) over ``t/t_0`` (left, log–log), and the ratio Eqn 129 / simulated ``B_n`` (right).
    ``data`` holds the ratios per label."""
    if not isinstance(checks, dict) or not checks:
        raise TypeError("checks must be a non-empty dict label -> mechanism.theorem4_check(...)")
    fig = new_figure(11, 4.2)
    (ax, bx) = fig.subplots(1, 2)
    data: dict[str, Any] = {}
    for i, (label, c) in enumerate(checks.items()):
        col = _COLORS[i % 10]
        x = c["t_over_t0"]
        ax.plot(x, c["B"], color=col, lw=2, label=f"{label}: simulated $B_n$")
        ax.plot(x, c["fall"], ":", color=col, lw=1.5)
        ax.plot(x, c["B129"], "--", color=col, lw=1.2)
        scan, snap = c["t"] < c["t0_prime"], c["t"] >= c["t0"]
        ax.plot(x[scan], c["B_scanning"][scan], "-.", color="0.5", lw=0.8)
        ax.plot(x[snap], c["B_snapping"][snap], "-.", color="0.5", lw=0.8)
        bx.plot(x, c["B129"] / c["B"], color=col, lw=2, label=label)
        data[label] = dict(t_over_t0=x.tolist(), B129_over_B=(c["B129"] / c["B"]).tolist(),
                           B129_over_fall=(c["B129"] / c["fall"]).tolist())
    for axis in (ax, bx):
        axis.axvline(1.0, color="0.6", ls=":", lw=1)
        axis.axvline(0.5, color="0.8", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel=r"$t / t_0$", ylabel="logit units",
           title="solid: simulated $B_n$; dotted: $-z_{\\mathrm{common}}$; dashed: Eqn 129;\n"
                 "grey dash-dot: its scanning and snapping asymptotes")
    ax.legend(fontsize=8, loc="upper left")
    bx.axhline(1.0, color="k", lw=0.8)
    bx.set(xscale="log", yscale="log", xlabel=r"$t / t_0$", ylabel="Eqn 129 / simulated $B_n$",
           title=r"the ratio (1 = Theorem 4 exact; dotted lines: $t_0'$, $t_0$)")
    bx.legend(fontsize=8)
    return FigureResult(fig, data)


def theorem4_table(checks: dict[str, dict[str, Any]], at: Sequence[float]) -> str:
    """A Markdown table of Eqn 129 / simulated ``B_n`` and Eqn 129 / ``(−z)`` at the ``t/t_0``
    values ``at`` (each must be on every check's grid)."""
    points = as_float_list("at", at, low=0.0)
    head = "| setting | " + " | ".join(f"$t/t_0 = {p:g}$" for p in points) + " |"
    lines = [head, "|---" * (len(points) + 1) + "|"]
    for label, c in checks.items():
        idx = [int(np.argmin(np.abs(c["t_over_t0"] - p))) for p in points]
        if not all(math.isclose(c["t_over_t0"][k], p) for k, p in zip(idx, points)):
            raise ValueError(f"at must lie on the t/t0 grid of {label!r}")
        cells = [f"{c['B129'][k] / c['B'][k]:.2f} / {c['B129'][k] / c['fall'][k]:.2f}"
                 for k in idx]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def theorem4_summary(*checks: dict[str, Any]) -> dict[str, float]:
    """What the chapter quotes of ``mechanism.theorem4_check`` results (Theorem 4, Eqns 13 and
    129, against the simulated dynamics), pooled over the given checks and all their times:

    * ``ratio_lo``, ``ratio_hi``: extremes of Eqn 129 / simulated ``B_n``; ``ratio_fall_lo``,
      ``ratio_fall_hi``: of Eqn 129 / the common logit's fall ``−z_{ml}``;
    * ``drift_lo``, ``drift_hi``: per check, (Eqn 129 / ``B_n``) at the first time over the same
      at the last time; ``flatness``: the largest per-check (max − min)/mean of Eqn 129 / ``B_n``;
    * ``fall_error``: largest ``|fall/((1 − f_{nl}²) B_n) − 1|`` (Lemma 4 → Theorem 2(b));
      ``fall_end_lo``, ``fall_end_hi``: extremes of ``fall/((1 − f²) B_n)`` at the last time;
      ``fall_over_B_median``: the median of ``fall/B_n``;
    * ``gamma_error``: largest ``|γι/γ(t) − 1|`` (Theorem 1's measured coefficient against
      Lemma 6); ``gamma_ratio_max``: largest ``γι/γ(t)``;
    * ``kappa_error``: largest ``|B_n/(κΓ) − 1|`` (Lemma 3's ``β``, ``mechanism.lemma3_xi_factor``);
    * ``f_common_sq_max``: largest ``f_{nl}²`` of the common token;
    * ``scanning_excess``: largest (scanning asymptote / Eqn 129) − 1 for ``t < t_0'/3``;
      ``snapping_lo``, ``snapping_hi``: extremes of snapping asymptote / Eqn 129 for
      ``t ≥ 10 t_0``;
    * ``B_end_K{K}``: the simulated ``B_n`` at the last time, per number of classes ``K``
      (the checks must then have distinct ``K``)."""
    if not checks or not all(isinstance(c, dict) and "B129" in c for c in checks):
        raise TypeError("checks must be one or more mechanism.theorem4_check(...) results")

    def pooled(values: Any) -> np.ndarray:
        return np.concatenate([np.ravel(v) for v in values])

    ratio = [c["B129"] / c["B"] for c in checks]
    ratio_fall = pooled(c["B129"] / c["fall"] for c in checks)
    mechanism_ratio = [c["fall"] / (c["B"] * (1 - c["f_common_sq"])) for c in checks]
    drift = [r[0] / r[-1] for r in ratio]
    gamma_ratio = pooled(c["gamma"] / c["gamma_theory"] for c in checks)
    early = [c["t"] < c["t0_prime"] / 3 for c in checks]
    late = [c["t_over_t0"] >= 10 for c in checks]
    scanning = pooled(c["B_scanning"][e] / c["B129"][e] for c, e in zip(checks, early))
    snapping = pooled(c["B_snapping"][s] / c["B129"][s] for c, s in zip(checks, late))
    if not scanning.size or not snapping.size:
        raise ValueError("each check's grid must reach below t0'/3 and beyond 10 t0")
    out = dict(ratio_lo=float(pooled(ratio).min()), ratio_hi=float(pooled(ratio).max()),
               ratio_fall_lo=float(ratio_fall.min()), ratio_fall_hi=float(ratio_fall.max()),
               drift_lo=float(min(drift)), drift_hi=float(max(drift)),
               flatness=float(max(np.ptp(r) / r.mean() for r in ratio)),
               fall_error=float(np.abs(pooled(mechanism_ratio) - 1).max()),
               fall_end_lo=float(min(m[-1] for m in mechanism_ratio)),
               fall_end_hi=float(max(m[-1] for m in mechanism_ratio)),
               fall_over_B_median=float(np.median(pooled(c["fall"] / c["B"] for c in checks))),
               gamma_error=float(np.abs(gamma_ratio - 1).max()),
               gamma_ratio_max=float(gamma_ratio.max()),
               kappa_error=float(np.abs(pooled(c["B"] / c["B_lemma3"] for c in checks) - 1).max()),
               f_common_sq_max=float(pooled(c["f_common_sq"] for c in checks).max()),
               scanning_excess=float(scanning.max() - 1),
               snapping_lo=float(snapping.min()), snapping_hi=float(snapping.max()))
    for c in checks:
        key = f"B_end_K{c['trajectory'].classes.K}"
        if key in out:
            raise ValueError(f"checks must have distinct K to report {key}")
        out[key] = float(c["B"][-1])
    return out


def closed_form_summary(closed: FigureResult, other_C0: float = 1.0) -> dict[str, float]:
    """What the chapter quotes of :func:`theorem4_figure` (Theorem 4's regimes in the slope
    ``dB_n/d ln t`` of Eqn 129): ``t0``, ``t0_prime``, ``C0``; ``slope_scanning``, the mean
    slope over the figure's ``1 < t < t_0'/2`` (Theorem 4 predicts ½ once ``4Γ >> C_0``);
    ``slope_at_t0``; ``slope_late_max``, the largest slope beyond ``100 t_0``; ``slope_at_1``,
    the slope at ``t = 1``; and, with ``C_0 = other_C0`` at the same rates,
    ``slope_at_1_other`` and ``slope_max_other`` (the largest on the figure's grid)."""
    if not isinstance(closed, FigureResult) or "slope" not in closed.data:
        raise TypeError("closed must be the FigureResult of theorem4_figure(...)")
    other_C0 = _check_positive("other_C0", other_C0)
    d = closed.data
    t, slope = d["t"], d["slope"]
    rates = dict(M=d["M"], K=d["K"], eta_y=d["eta_y"], eta_z=d["eta_z"])
    scanning = (t > 1) & (t < d["t0_prime"] / 2)
    return dict(t0=d["t0"], t0_prime=d["t0_prime"], C0=d["C0"],
                slope_scanning=float(slope[scanning].mean()), slope_at_t0=d["slope_at_t0"],
                slope_late_max=float(slope[t > 100 * d["t0"]].max()),
                slope_at_1=float(theory.dB_dlog_t(1.0, **rates, C0=d["C0"])),
                slope_at_1_other=float(theory.dB_dlog_t(1.0, **rates, C0=other_C0)),
                slope_max_other=float(theory.dB_dlog_t(t, **rates, C0=other_C0).max()))


def printed_constant_check(t: Any, M: int, K: int, eta_y: float, eta_z: float,
                           C0: float) -> dict[str, Any]:
    """The erratum on Eqn 129's constant: Eqn 13 integrated numerically
    (:func:`integrate_common_logit`, ``z_numeric``) against ``−B_n`` of the corrected Eqn 129
    (``B_n(0) = 0``) and of the printed ``¼ ln(C_0 + 4Γ)``; ``error_corrected`` and
    ``error_printed`` are the largest absolute differences over the times ``t``."""
    z_numeric = integrate_common_logit(t, M, K, eta_y, eta_z, C0)
    args = dict(M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0)
    t = np.asarray(t, dtype=np.float64)
    return dict(t=t, z_numeric=z_numeric,
                error_corrected=float(np.abs(z_numeric + theory.B(t, **args)).max()),
                error_printed=float(np.abs(z_numeric + theory.B_printed(t, **args)).max()))


def gamma_peak_summary(vocabularies: Sequence[int], K: int = 10,
                       eta_y: float = 1.0) -> dict[str, float]:
    """Where Lemma 6's speed coefficient ``γ`` peaks (:func:`scansnap.theory.gamma_peak`)
    relative to Theorem 4's ``t_0' = K ln M/η_Y``: ``lo`` and ``hi``, the extremes of
    ``t_peak/t_0'`` over the vocabulary sizes ``vocabularies``."""
    sizes = as_int_list("vocabularies", vocabularies, low=2)
    K, eta_y = check_int("K", K, low=1), _check_positive("eta_y", eta_y)
    ratios = [float(theory.gamma_peak(M, K, eta_y) / theory.t0_prime(M, K, eta_y)) for M in sizes]
    return dict(lo=min(ratios), hi=max(ratios))


# --- Fig 3 ----------------------------------------------------------------------------------
def fig3(quick: bool = False, progress: bool = False, *, C0: float = FIG3_C0,
         eta_y: Sequence[float] = (0.5, 1.0, 2.0, 5.0), eta_z: float = 0.5, M: int = 1000,
         K: int = 10, t_max: float = 700.0) -> FigureResult:
    """Fig 3: the growth factor ``χ(t) = e^{2 B_n(t)}`` (Theorem 3's upper bound with Theorem 4's
    ``B_n``), ``K = 10``, ``M = 1000``, ``η_Z = 0.5``, ``η_Y ∈ {0.5, 1, 2, 5}``, ``t ∈ [0, 700]``,
    dotted ``t_0 = 2K ln M/η_Y``. ``C_0`` is not given by the paper: the default ``ρ_0 = 0.5``,
    ``C_0 = ρ_0^4/K = 0.00625`` reproduces its ~600 scale (PAPER.md B.6, unverified)."""
    check_bool("quick", quick), check_bool("progress", progress)
    C0 = _check_positive("C0", C0)
    etas = as_float_list("eta_y", eta_y, low=0.0)
    eta_z = _check_positive("eta_z", eta_z)
    M, K = check_int("M", M, low=2), check_int("K", K, low=1)
    t_max = _check_positive("t_max", t_max)
    t = np.linspace(0.0, t_max, 201 if quick else 701)
    fig = new_figure(6.4, 4.2)
    ax = fig.subplots()
    curves, t0s = [], []
    for i, ey in enumerate(etas):
        chi = theory.chi(t, M=M, K=K, eta_y=ey, eta_z=eta_z, C0=C0)
        T0 = float(theory.t0(M, K, ey))
        ax.plot(t, chi, color=_COLORS[i % 10], lw=2, label=f"$\\eta_Y$ = {ey:g}")
        if T0 <= t_max:
            ax.axvline(T0, color=_COLORS[i % 10], ls=":", lw=1.3)
        curves.append(chi)
        t0s.append(T0)
    ax.set(xlabel="t (steps)", ylabel=r"growth factor $\chi(t)=e^{2B_n(t)}$", xlim=(0, t_max),
           title=f"Fig 3: K={K}, M={M}, $\\eta_Z$={eta_z:g}, $C_0$={C0:.3g} (dotted: $t_0$)")
    ax.legend(loc="upper left")
    data = dict(C0=C0, M=M, K=K, eta_z=eta_z, eta_y=etas, t=t, chi=np.array(curves), t0=t0s,
                chi_final=[float(c[-1]) for c in curves])
    return FigureResult(fig, data)


def fig3_summary(f3: FigureResult, other_C0: Sequence[float] = (1.0,)) -> dict[str, float]:
    """What the chapter quotes of :func:`fig3` (Theorem 3's ``χ = e^{2B_n}`` with Eqn 129), with
    ``{e}`` each ``η_Y`` as in :func:`~.sweep.key_label` (``0.5 → 0p5``): ``t0_eta{e}`` and
    ``chi_end_eta{e}`` (``χ`` at the last time, ``t_max``); ``C0`` and ``overlap``, the overlap
    ``ρ_0^{-2} = (K C_0)^{-1/2}`` that this ``C_0 = ρ_0^4/K`` needs; ``C0_admissible = 1/K``,
    the smallest ``C_0`` an overlap ``≤ 1`` allows, and ``chi_admissible_lo``/``_hi``, the
    extremes of ``χ(t_max)`` there; ``chi_printed_hi``, the largest ``χ(t_max)`` of the printed
    Eqn 129 at ``C0``, and ``chi_printed_0`` its ``χ(0) = √C_0``; ``order_holds``, for how
    many of ``C0_tried`` values (``C0``, ``1/K`` and ``other_C0``) ``χ(t_max)`` strictly
    decreases as ``η_Y`` grows (insight (c))."""
    if not isinstance(f3, FigureResult) or "chi_final" not in f3.data:
        raise TypeError("f3 must be the FigureResult of fig3(...)")
    d = f3.data
    others = as_float_list("other_C0", other_C0, low=0.0)
    rates = sorted(d["eta_y"])
    t_max = float(d["t"][-1])

    def chi_end(C0: float, formula: Any = theory.B) -> np.ndarray:
        return np.array([math.exp(2 * float(formula(t_max, M=d["M"], K=d["K"], eta_y=ey,
                                                    eta_z=d["eta_z"], C0=C0))) for ey in rates])

    admissible = chi_end(1 / d["K"])
    tried = [d["C0"], 1 / d["K"], *others]
    out = {f"t0_eta{key_label(ey)}": t0 for ey, t0 in zip(d["eta_y"], d["t0"])}
    out |= {f"chi_end_eta{key_label(ey)}": c for ey, c in zip(d["eta_y"], d["chi_final"])}
    return out | dict(
        C0=d["C0"], overlap=1 / math.sqrt(d["K"] * d["C0"]), C0_admissible=1 / d["K"],
        chi_admissible_lo=float(admissible.min()), chi_admissible_hi=float(admissible.max()),
        chi_printed_hi=float(chi_end(d["C0"], theory.B_printed).max()),
        chi_printed_0=math.exp(2 * float(theory.B_printed(0.0, M=d["M"], K=d["K"],
                                                          eta_y=rates[0], eta_z=d["eta_z"],
                                                          C0=d["C0"]))),
        order_holds=sum(bool(np.all(np.diff(chi_end(C0)) < 0)) for C0 in tried),
        C0_tried=len(tried))


# --- Fig 9 ----------------------------------------------------------------------------------
FIG9_PANELS = ({"nu": 10.0, "M": 100, "eta_z": (0.5, 1.0, 2.0, 4.0, 8.0), "t_max": 5.0},
               {"nu": 1.0, "M": 10000, "eta_z": (0.5, 1.0, 2.0, 4.0, 8.0), "t_max": 50.0})


def fig9(quick: bool = False, progress: bool = False, *, C0: float = FIG9_C0,
         K: int = FIG9_K) -> FigureResult:
    """Fig 9: ``B_n(t)`` at fixed ``ν = η_Y/η_Z`` — (ν = 10, M = 100), ``η_Z ∈ {0.5,…,8}``,
    ``t ≤ 5``; (ν = 1, M = 10000), ``t ≤ 50``. A dot marks ``B_n(t_0)``: the same for every
    ``η_Z`` (Eqns 132–133). ``K = 1``, ``C_0 = 1`` are inferred (PAPER.md B.7 [R]); with
    ``C_0 = 1`` the printed and corrected ``B_n`` coincide. (The caption's ``ν = η_Z/η_Y`` is a
    typo for the text's ``ν = η_Y/η_Z``.)"""
    check_bool("quick", quick), check_bool("progress", progress)
    C0 = _check_positive("C0", C0)
    K = check_int("K", K, low=1)
    fig = new_figure(11, 4.0)
    axes = fig.subplots(1, 2)
    panels = []
    for ax, spec in zip(axes, FIG9_PANELS):
        t = np.linspace(0.0, spec["t_max"], 101 if quick else 501)
        out = dict(nu=spec["nu"], M=spec["M"], K=K, t=t, eta_z=list(spec["eta_z"]), B=[],
                   t0=[], B_at_t0=[])
        for i, ez in enumerate(spec["eta_z"]):
            ey = spec["nu"] * ez
            Bt = theory.B(t, M=spec["M"], K=K, eta_y=ey, eta_z=ez, C0=C0)
            T0 = float(theory.t0(spec["M"], K, ey))
            B0 = float(theory.B(T0, M=spec["M"], K=K, eta_y=ey, eta_z=ez, C0=C0))
            ax.plot(t, Bt, color=_COLORS[i], lw=2, label=f"$\\eta_Z$={ez:g}, $\\eta_Y$={ey:g}")
            if T0 <= spec["t_max"]:
                ax.plot([T0], [B0], "o", color=_COLORS[i], ms=7, mec="k")
            out["B"].append(Bt), out["t0"].append(T0), out["B_at_t0"].append(B0)
        ax.set(xlabel="t (steps)", ylabel=r"$B_n(t)$", xlim=(0, spec["t_max"]),
               title=f"$\\nu=\\eta_Y/\\eta_Z$={spec['nu']:g}, M={spec['M']} (dot: $B_n(t_0)$)")
        ax.legend(fontsize=8, loc="lower right")
        out["B"] = np.array(out["B"])
        panels.append(out)
    fig.suptitle(f"Fig 9: K={K}, $C_0$={C0:g}", fontsize=11)
    return FigureResult(fig, dict(C0=C0, K=K, panels=panels))


def fig9_summary(f9: FigureResult) -> dict[str, float]:
    """What the chapter quotes of :func:`fig9` (the invariance of ``B_n(t_0)`` at fixed
    ``ν = η_Y/η_Z``, Eqns 132–133), per panel ``ν`` (``{nu}`` as in :func:`~.sweep.key_label`):
    ``B_t0_nu{nu}``, ``B_n(t_0)`` of its smallest ``η_Z``, and ``B_end_nu{nu}_eta_z_min`` /
    ``_eta_z_max``, ``B_n`` at the panel's last time for its smallest and largest ``η_Z``;
    ``B_t0_spread``, the largest spread (max − min) of ``B_n(t_0)`` within a panel."""
    if not isinstance(f9, FigureResult) or "panels" not in f9.data:
        raise TypeError("f9 must be the FigureResult of fig9(...)")
    out = {}
    for p in f9.data["panels"]:
        lo, hi = int(np.argmin(p["eta_z"])), int(np.argmax(p["eta_z"]))
        nu = key_label(p["nu"])
        out[f"B_t0_nu{nu}"] = float(p["B_at_t0"][lo])
        out[f"B_end_nu{nu}_eta_z_min"] = float(p["B"][lo][-1])
        out[f"B_end_nu{nu}_eta_z_max"] = float(p["B"][hi][-1])
    out["B_t0_spread"] = float(max(np.ptp(p["B_at_t0"]) for p in f9.data["panels"]))
    return out


# --- Fig 6 ----------------------------------------------------------------------------------
def _sweep_for(quick: bool, progress: bool, inits: Sequence[str]) -> Sweep:
    seeds = (1, 2, 3) if quick else SEEDS
    return fig6_sweep(seeds=seeds, inits=tuple(inits), progress=progress)


def _panel_axes(n_rows: int, n_cols: int, height: float = 3.3) -> tuple[Figure, np.ndarray]:
    fig = new_figure(3.6 * n_cols, height * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    return fig, axes


def draw_fig6_panel(ax: Axes, sweep: Sweep, num_queries: int, init: str = "random",
                    error: str = "sem", legend: bool = True) -> None:
    """One Fig 6 panel: mean distinct-token entropy vs ``η_Y/η_Z`` (log x), one line per ``η_Z``,
    error bars ``error`` ∈ {"sem", "std"} over seeds, dashed line at ratio 1."""
    if error not in ("sem", "std"):
        raise ValueError(f"error must be 'sem' or 'std', got {error!r}")
    st = sweep.stats(num_queries, init)
    K, M = next((k, m) for q, k, m in sweep.panels if q == num_queries)
    for i, ez in enumerate(sweep.eta_z):
        ax.errorbar(sweep.ratios, st["mean"][i], yerr=st[error][i], marker="o", ms=4, capsize=3,
                    color=_COLORS[i % 10], label=f"$\\eta_Z$={ez:g}")
    ax.axvline(1.0, color="0.5", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xticks(sweep.ratios, [f"{r:g}" for r in sweep.ratios])
    ax.minorticks_off()
    ax.set(xlabel=r"$\eta_Y/\eta_Z$", title=f"#last/next = {num_queries}/{K} (M={M}), {init} init")
    if legend:
        ax.legend(fontsize=8)


def fig6_vs_authors_figure(sweep: Sweep) -> FigureResult:
    """The book's Fig 6 (random init, mean ± per-seed std, filled) overlaid on the authors'
    released numbers (open squares, their ``±``), one panel per ``num_queries``; ``data`` is
    :func:`scansnap.authors.compare`."""

    comparison = authors.compare(sweep, "random")
    fig, axes = _panel_axes(1, len(sweep.panels), height=3.4)
    for ax, (q, _, _) in zip(axes[0], sweep.panels):
        draw_fig6_panel(ax, sweep, q, "random", error="std", legend=ax is axes[0, 0])
        for i, ez in enumerate(sweep.eta_z):
            cells = [r for r in comparison["records"] if r["num_queries"] == q and r["eta_z"] == ez]
            ax.errorbar([r["ratio"] * 1.06 for r in cells], [r["mean"] for r in cells],
                        yerr=[r["pm"] for r in cells], fmt="s", mfc="white", ms=5, capsize=2,
                        color=_COLORS[i % 10], lw=1)
    axes[0, 0].set_ylabel("distinct-token entropy (nats)")
    fig.suptitle("Fig 6: the book (filled, ± per-seed std) and the authors' released numbers "
                 "(open squares, their ±)", fontsize=10)
    return FigureResult(fig, comparison)


def fig6(quick: bool = False, progress: bool = False, *, sweep: Sweep | None = None,
         inits: Sequence[str] = ("random", "zero")) -> FigureResult:
    """Fig 6: entropy of ``c_n`` on each class's distinct tokens (renormalized, averaged over
    classes) after 100 SGD steps vs ``η_Y/η_Z``, one line per ``η_Z``, mean ± standard error over
    seeds (the paper's ± is the per-seed std, PAPER.md B.4; both are in ``data``). Top row: the
    authors' random init (the paper's figure); bottom row: the theory's zero init.

    Without ``quick`` this is the paper's full sweep, 640 runs per init (:func:`fig6_sweep`);
    ``quick`` uses seeds 1–3. Pass a precomputed ``sweep`` to draw it without re-running.
    ``data`` is exactly ``{"panels": [{"num_queries", "K", "M", "cells": [{"eta_z", "ratio",
    "init", "mean", "sem", "std", "n"}, ...]}, ...]}``; the run settings are
    ``sweep.to_json()["settings"]`` and the structural checks :func:`scansnap.chapters.ch5_phase_transition.sweep.structural_checks`.
    """
    quick, progress = check_bool("quick", quick), check_bool("progress", progress)
    if sweep is None:
        sweep = _sweep_for(quick, progress, inits)
    elif not isinstance(sweep, Sweep):
        raise TypeError(f"sweep must be a Sweep from scansnap.fig6_sweep, got {type(sweep).__name__}")
    fig, axes = _panel_axes(len(sweep.inits), len(sweep.panels))
    for r, init in enumerate(sweep.inits):
        for c, (q, _, _) in enumerate(sweep.panels):
            draw_fig6_panel(axes[r, c], sweep, q, init, legend=(c == 0))
        axes[r, 0].set_ylabel("distinct-token entropy (nats)")
    # one y-range per row so panels compare at a glance
    for r in range(len(sweep.inits)):
        lo = min(a.get_ylim()[0] for a in axes[r])
        hi = max(a.get_ylim()[1] for a in axes[r])
        for a in axes[r]:
            a.set_ylim(lo, hi)
    fig.suptitle(f"Fig 6: {sweep.num_runs} runs, {len(sweep.seeds)} seeds, mean ± s.e.m.",
                 fontsize=11)
    # exactly the schema (no other keys): settings and checks live on the Sweep
    return FigureResult(fig, {"panels": sweep.to_json()["panels"]})


# --- Figs 11 and 12 -------------------------------------------------------------------------
def _recall_figure(sweep: Sweep, vary: str, eta_z: float, ratio: float,
                   init: str) -> FigureResult:
    fig, axes = _panel_axes(1, len(sweep.panels), height=3.2)
    panels = []
    ez_i = swept_index("eta_z", sweep.eta_z, eta_z)
    r_i = swept_index("ratio", sweep.ratios, ratio)
    for ax, (q, K, M) in zip(axes[0], sweep.panels):
        rec = sweep.recall[(q, init)].mean(axis=2)  # [n_eta_z, n_ratios, L]: mean over seeds
        x = sweep.thresholds[q]
        lines = ([(f"$\\eta_Y/\\eta_Z$={r:g}", rec[ez_i, j]) for j, r in enumerate(sweep.ratios)]
                 if vary == "ratio" else
                 [(f"$\\eta_Z$={e:g}", rec[i, r_i]) for i, e in enumerate(sweep.eta_z)])
        for k, (label, y) in enumerate(lines):
            ax.plot(x, y, color=_COLORS[k % 10], lw=2, label=label)
        ax.axvline(1 / M, color="0.5", ls=":", lw=1)
        ax.set(xlabel="threshold", ylim=(-0.02, 1.02), title=f"#last/next = {q}/{K} (M={M})")
        ax.tick_params(axis="x", labelsize=8)
        panels.append(dict(num_queries=q, K=K, M=M, thresholds=x,
                           curves={label: y for label, y in lines}))
    axes[0, 0].set_ylabel("recall of distinct tokens")
    axes[0, 0].legend(fontsize=8)
    fixed = f"$\\eta_Z$={eta_z:g}" if vary == "ratio" else f"$\\eta_Y/\\eta_Z$={ratio:g}"
    fig.suptitle(f"recall vs threshold, {init} init, {fixed}, mean over {len(sweep.seeds)} seeds "
                 "(dotted: 1/M)", fontsize=11)
    return FigureResult(fig, dict(vary=vary, eta_z=eta_z, ratio=ratio, init=init, panels=panels))


def fig11(quick: bool = False, progress: bool = False, *, sweep: Sweep | None = None,
          eta_z: float = 1.0, init: str = "random") -> FigureResult:
    """Fig 11 (App. G): recall of distinct tokens vs threshold, one line per ``η_Y/η_Z``, at
    ``η_Z = eta_z`` (the paper does not say which; 1 here), mean over seeds, one panel per
    Fig 6 vocabulary. The attention thresholded is ``softmax(z_m)`` over all ``M`` tokens (an
    inference, :func:`scansnap.metrics.recall_vs_threshold`)."""
    quick, progress = check_bool("quick", quick), check_bool("progress", progress)
    sweep = _sweep_for(quick, progress, (init,)) if sweep is None else sweep
    return _recall_figure(sweep, "ratio", eta_z, 1.0, init)


def fig12(quick: bool = False, progress: bool = False, *, sweep: Sweep | None = None,
          ratio: float = 1.0, init: str = "random") -> FigureResult:
    """Fig 12 (App. G): recall of distinct tokens vs threshold, one line per ``η_Z``, at
    ``η_Y/η_Z = ratio`` (the paper does not say which; 1 here), mean over seeds."""
    quick, progress = check_bool("quick", quick), check_bool("progress", progress)
    sweep = _sweep_for(quick, progress, (init,)) if sweep is None else sweep
    return _recall_figure(sweep, "eta_z", 1.0, ratio, init)


# --- scan then snap in real runs ------------------------------------------------------------
def scan_snap_runs(num_queries: int = 1, eta_z: Sequence[float] = (0.5, 1.0, 2.0, 3.0),
                   ratio: float = 1.0, seeds: Sequence[int] = tuple(range(1, 11)),
                   steps: int = 100, init: str = "zero",
                   dtype: torch.dtype = torch.float64) -> Run:
    """Real SGD runs for the scan-then-snap picture: Syn-Medium with ``num_queries`` queries
    (2 classes each), ``η_Y = ratio · η_Z`` for each ``η_Z``, momentum 0.9, batch 128,
    ``T = 128``, a snapshot every step (PAPER.md D.15). Returns the :class:`Run`: the pairs
    ``(ratio·η_Z, η_Z)`` × seeds, one batched :func:`train` program (read it with
    :meth:`Run.by_pair`)."""
    q = check_int("num_queries", num_queries, low=1)
    etas = as_float_list("eta_z", eta_z, low=0.0)
    ratio = _check_positive("ratio", ratio)
    seed_list = as_int_list("seeds", seeds, low=0)
    classes = syn_medium(q)
    return train(classes, pairs=[(ratio * ez, ez) for ez in etas], seeds=seed_list, steps=steps,
                 init=init, record_every=1, dtype=dtype, progress=False)


def scan_snap_summary(run: Run) -> dict[str, np.ndarray]:
    """Per-``η_Z`` seed means over steps of a :func:`scan_snap_runs` run: ``entropy [E, S]``
    (distinct-token entropy averaged over classes), ``dominant [E, S]`` (``z_{ψ(n), l_0}`` of the
    most likely distinct token ``l_0``, minus its initial value, averaged over classes),
    ``common [E, S]`` (mean common-token logit change), plus ``steps`` and ``eta_z``."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a Run, got {type(run).__name__}")
    classes = run.classes
    H = run.by_pair(metrics.distinct_entropy(classes, run.Z).mean(-1))  # [E, N, S]
    dl = metrics.distinct_logits(classes, run.Z)[..., -1]  # [R, S, K]: l0 = most likely distinct
    dom = run.by_pair((dl - dl[:, :1]).mean(-1))  # [E, N, S]
    cl = metrics.common_logits(classes, run.Z)
    com = run.by_pair((cl - cl[:, :1]).mean((-1, -2)))  # [E, N, S]
    eta_y, eta_z = (np.array(axis) for axis in zip(*run.pairs))
    ratios = np.unique(eta_y / eta_z)
    if len(ratios) != 1:
        raise ValueError(f"run must have one ratio eta_y/eta_z (a scan_snap_runs run), got {ratios}")
    return dict(steps=run.steps.numpy(), eta_z=eta_z, ratio=float(ratios[0]), entropy=H.mean(1).numpy(),
                entropy_sem=(H.std(1) / math.sqrt(H.shape[1])).numpy(), dominant=dom.mean(1).numpy(),
                common=com.mean(1).numpy())


def scan_snap_figure(run: Run, C0: float | None = None, momentum: float = 0.0) -> FigureResult:
    """Scan then snap in real runs: the distinct-token entropy (left) and the dominant distinct
    token's logit gain ``Δz(t) = z_{m l_0}(t) - z_{m l_0}(0)`` (right, log-``t``) against
    Theorem 4's ``B_n(t)``, the bound of Theorem 3 (``χ_{l_0} = e^{2Δz} ≤ e^{2B_n}``),
    evaluated with the run's ``M``, ``K`` and rates ``η/(1-momentum)`` (``momentum=0``: the raw
    rates, one theory time unit per SGD step). ``C0`` defaults to :func:`init_overlap_C0`.
    ``data`` holds :func:`scan_snap_summary`, ``C0``, ``rho0``, ``momentum``, ``B_theory [E, S]``
    and the scalars the chapter quotes (seed means; ``lo``/``hi``: the smallest/largest
    ``η_Z``): ``entropy_start`` (mean over ``η_Z`` at step 0); ``entropy_end_lo``/``_hi`` at
    the last step; ``late_over_early``, the largest ``|H(mid) − H(end)| / (H(0) − H(mid))``
    with ``mid`` the middle snapshot (after the snap the entropy barely moves); ``t90_lo``/
    ``_hi``, the extremes over ``η_Z`` of the first step at which the dominant gain reaches
    90 % of its final value; ``dominant_end_lo``/``_hi`` and ``B_end_lo``/``_hi``, the final
    gain ``Δz`` and Eqn 129's ``B_n`` at the last step; ``exceeds``, for how many of the
    ``num_eta_z`` rates the final gain exceeds ``B_n``."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a Run, got {type(run).__name__}")
    momentum = check_float("momentum", momentum, low=0.0, high=0.999)
    s = scan_snap_summary(run)
    classes = run.classes
    rho0, C0_init = init_overlap_C0(classes)
    C0 = C0_init if C0 is None else _check_positive("C0", C0)
    steps = s["steps"]
    fig = new_figure(11, 4.0)
    (ax, bx) = fig.subplots(1, 2)
    theory_B = []
    for i, ez in enumerate(s["eta_z"]):
        col = _COLORS[i % 10]
        ax.plot(steps, s["entropy"][i], color=col, lw=2, label=f"$\\eta_Z$={ez:g}")
        ax.fill_between(steps, s["entropy"][i] - s["entropy_sem"][i],
                        s["entropy"][i] + s["entropy_sem"][i], color=col, alpha=0.2, lw=0)
        bx.plot(steps[1:], s["dominant"][i, 1:], color=col, lw=2, label=f"$\\eta_Z$={ez:g}")
        eff_y, eff_z = s["ratio"] * ez / (1 - momentum), ez / (1 - momentum)
        Bt = theory.B(steps.astype(np.float64), M=classes.M, K=classes.K, eta_y=eff_y,
                      eta_z=eff_z, C0=C0)
        bx.plot(steps[1:], Bt[1:], ls="--", color=col, lw=1.3)
        theory_B.append(Bt)
    ax.axhline(math.log(classes.distinct_per_next), color="0.5", ls=":", lw=1,
               label="uniform over distinct")
    ax.set(xlabel="SGD step", ylabel="distinct-token entropy (nats)",
           title=f"M={classes.M}, K={classes.K}, $\\eta_Y/\\eta_Z$={s['ratio']:g}: falls, then freezes")
    ax.legend(fontsize=8)
    bx.set(xscale="log", xlabel="SGD step (log scale)", ylabel=r"$z_{m l_0}(t)-z_{m l_0}(0)$",
           title=rf"dominant token's logit (solid) vs $B_n(t)$, $C_0$={C0:.3g} (dashed)")
    bx.legend(fontsize=8, loc="upper left")
    B_theory = np.array(theory_B)
    data = dict(s, C0=float(C0), rho0=float(rho0), momentum=momentum, B_theory=B_theory)
    return FigureResult(fig, data | _scan_snap_numbers(s, B_theory))


def _scan_snap_numbers(s: dict[str, Any], B_theory: np.ndarray) -> dict[str, Any]:
    """The scalars of :func:`scan_snap_figure`'s ``data`` (documented there)."""
    H, dz, steps = s["entropy"], s["dominant"], s["steps"]
    lo, hi = int(np.argmin(s["eta_z"])), int(np.argmax(s["eta_z"]))
    mid = len(steps) // 2
    t90 = [int(steps[np.argmax(row >= 0.9 * row[-1])]) for row in dz]
    late_over_early = np.abs(H[:, mid] - H[:, -1]) / (H[:, 0] - H[:, mid])
    return dict(entropy_start=float(H[:, 0].mean()), entropy_end_lo=float(H[lo, -1]),
                entropy_end_hi=float(H[hi, -1]), late_over_early=float(late_over_early.max()),
                t90_lo=min(t90), t90_hi=max(t90), dominant_end_lo=float(dz[lo, -1]),
                dominant_end_hi=float(dz[hi, -1]), B_end_lo=float(B_theory[lo, -1]),
                B_end_hi=float(B_theory[hi, -1]),
                exceeds=int((dz[:, -1] > B_theory[:, -1]).sum()), num_eta_z=len(dz))


# --- helpers for the chapter's widgets and the erratum ---------------------------------------
def integrate_common_logit(t: Any, M: int, K: int, eta_y: float, eta_z: float,
                           C0: float) -> np.ndarray:
    """Integrate App. F's Eqn 13, ``ż = -C_0^{-1} η_Z γ(t) e^{4z}``, ``z(0) = 0``, numerically
    (scipy ``solve_ivp``, LSODA, rtol 1e-10) at the increasing times ``t`` — the check that the
    closed form is ``z(t) = -B_n(t)`` with ``B_n(0) = 0`` (PAPER.md D.10), not the printed
    ``-¼ ln(C_0 + 4Γ)``."""
    from scipy.integrate import solve_ivp

    M, K = check_int("M", M, low=2), check_int("K", K, low=1)
    eta_y, eta_z = _check_positive("eta_y", eta_y), check_float("eta_z", eta_z, low=0.0)
    C0 = _check_positive("C0", C0)
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size < 1 or np.any(t < 0) or np.any(np.diff(t) <= 0):
        raise ValueError("t must be a 1-d array of increasing times >= 0")

    def rhs(time: float, z: np.ndarray) -> np.ndarray:
        return -eta_z * float(theory.gamma(time, M, K, eta_y)) * np.exp(4 * z) / C0

    sol = solve_ivp(rhs, (0.0, float(t[-1])), [0.0], t_eval=t, method="LSODA", rtol=1e-10,
                    atol=1e-12)
    if not sol.success:  # pragma: no cover
        raise RuntimeError(f"integration failed: {sol.message}")
    return sol.y[0]


class BExplorer:
    """A live control's figure and its in-place :meth:`update`: ``B_n(t)`` (left, with ``t_0'``
    and ``t_0`` marked) and ``χ(t) = e^{2B_n}`` (right) on ``[0, t_max]``."""

    def __init__(self, t_max: float = 700.0) -> None:
        self.t_max = _check_positive("t_max", t_max)
        self.t = np.linspace(0.0, self.t_max, 400)
        t = self.t
        self.figure = new_figure(10, 3.6)
        self.ax, self.bx = self.figure.subplots(1, 2)
        ax, bx = self.ax, self.bx
        (self.b_line,) = ax.plot(t, t, color="k", lw=2, label=r"$B_n(t)$")
        (self.scan_line,) = ax.plot(t, t, "--", color=_COLORS[0], lw=1.2, label="scanning asymptote")
        (self.snap_line,) = ax.plot(t, t, "--", color=_COLORS[1], lw=1.2, label="snapping asymptote")
        (self.c_line,) = bx.plot(t, t, color=_COLORS[2], lw=2)
        self.marks = [a.axvline(0, color="0.5", ls=":", lw=1) for a in (ax, ax, bx)]
        ax.set(xlabel="t (steps)", ylabel=r"$B_n(t)$", xlim=(0, self.t_max))
        bx.set(xlabel="t (steps)", ylabel=r"$\chi(t)=e^{2B_n(t)}$", xlim=(0, self.t_max))
        ax.legend(fontsize=8, loc="lower right")

    def update(self, M: int, K: int, eta_y: float, eta_z: float, C0: float) -> None:
        """Redraw for new parameters: only line data, limits and titles change (fast)."""
        t, ax, bx = self.t, self.ax, self.bx
        args = dict(M=int(M), K=int(K), eta_y=float(eta_y), eta_z=float(eta_z), C0=float(C0))
        Bt = theory.B(t, **args)
        self.b_line.set_ydata(Bt)
        self.scan_line.set_ydata(theory.B_scanning(t, **args))
        T0p, T0 = float(theory.t0_prime(int(M), int(K), eta_y)), float(theory.t0(int(M), int(K), eta_y))
        self.snap_line.set_ydata(np.where(t >= T0p, theory.B_snapping(t, **args), np.nan))
        self.c_line.set_ydata(np.exp(2 * Bt))
        for mark, x in zip(self.marks, (T0p, T0, T0)):
            mark.set_xdata([x, x])
        top = float(Bt.max())
        ax.set_ylim(0, 1.3 * top + 1e-9)
        bx.set_ylim(0, 1.1 * math.exp(2 * top) + 1e-9)
        ax.set_title(f"$t_0'$={T0p:.1f}, $t_0$={T0:.1f}, $B_n(t_0)$="
                     f"{float(theory.B(T0, **args)):.3f}", fontsize=10)
        bx.set_title(f"$\\chi$({self.t_max:g}) = {math.exp(2 * float(Bt[-1])):.3g}", fontsize=10)


def fig6_explorer_frames(sweep: Sweep) -> tuple[list[bytes], list[str]]:
    """One frame per Fig 6 panel: heat maps of the mean distinct-token entropy over
    (``η_Z`` × ``η_Y/η_Z``), each cell annotated with mean ± s.e.m., one map per init, on a
    shared colour scale. Returns ``(PNG frames, labels)`` for :func:`scansnap.widgets.scrubber`."""
    if not isinstance(sweep, Sweep):
        raise TypeError(f"sweep must be a Sweep, got {type(sweep).__name__}")
    means = [sweep.stats(q, i)["mean"] for q, _, _ in sweep.panels for i in sweep.inits]
    lo, hi = min(float(m.min()) for m in means), max(float(m.max()) for m in means)
    frames, labels = [], []
    for q, K, M in sweep.panels:
        fig = new_figure(4.6 * len(sweep.inits), 3.8)
        axes = fig.subplots(1, len(sweep.inits), squeeze=False)
        for ax, init in zip(axes[0], sweep.inits):
            st = sweep.stats(q, init)
            im = ax.imshow(st["mean"], cmap="viridis", vmin=lo, vmax=hi, origin="lower",
                           aspect="auto")
            for i in range(len(sweep.eta_z)):
                for j in range(len(sweep.ratios)):
                    v = st["mean"][i, j]
                    ax.text(j, i, f"{v:.3f}\n±{st['sem'][i, j]:.3f}", ha="center", va="center",
                            fontsize=8, color="white" if v < (lo + hi) / 2 else "black")
            ax.set_xticks(range(len(sweep.ratios)), [f"{r:g}" for r in sweep.ratios])
            ax.set_yticks(range(len(sweep.eta_z)), [f"{e:g}" for e in sweep.eta_z])
            ax.set(xlabel=r"$\eta_Y/\eta_Z$", ylabel=r"$\eta_Z$", title=f"{init} init")
        fig.colorbar(im, ax=axes[0].tolist(), label="entropy (nats)", shrink=0.9)
        fig.suptitle(f"#last/next = {q}/{K}, M = {M}: mean ± s.e.m. over {len(sweep.seeds)} seeds",
                     fontsize=11)
        frames.append(figure_to_png(fig))
        labels.append(f"{q}/{K} (M={M})")
    return frames, labels


def training_frames(run: Run, eta_z: float, seed: int, every: int = 4,
                    klass: int = 0) -> tuple[list[bytes], list[str]]:
    """Frames for a scrubber over training steps of a :func:`scan_snap_runs` run: ``c_n`` of
    class ``klass`` over its support (common tokens grey, distinct tokens coloured, least to
    most likely) at every ``every``-th snapshot, and the distinct-token entropy so far."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a Run, got {type(run).__name__}")
    every = check_int("every", every, low=1)
    classes = run.classes
    klass = check_int("klass", klass, low=0, high=classes.K - 1)
    eta_z, seed = check_float("eta_z", eta_z), check_int("seed", seed)
    idx = [i for i, c in enumerate(run.configs) if math.isclose(c[1], eta_z) and c[2] == seed]
    if not idx:
        raise ValueError(f"(eta_z, seed) = ({eta_z}, {seed}) is not in the run")
    Z = run.Z[idx[0]]  # [S, M, M]
    c = metrics.attention(classes, Z)[:, klass]  # [S, M]
    support = torch.cat([classes.common_tokens(klass), classes.distinct_tokens(klass)])
    c = c[:, support].numpy()
    H = metrics.distinct_entropy(classes, Z)[:, klass].numpy()
    n_common = classes.common_index.shape[1]
    colors = ["0.6"] * n_common + [matplotlib.colormaps["viridis"](x) for x in np.linspace(0.1, 0.9, len(support) - n_common)]
    steps = run.steps.numpy()
    frames, labels = [], []
    top = float(c.max()) * 1.1
    for s in list(range(0, len(steps), every)) + ([len(steps) - 1] if (len(steps) - 1) % every else []):
        fig = new_figure(10, 3.2)
        ax, bx = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=[1.6, 1]))
        ax.bar(range(len(support)), c[s], color=colors)
        ax.axvline(n_common - 0.5, color="k", lw=0.8)
        ax.set(ylim=(0, top), xlabel="token (left: common, right: distinct, least → most likely)",
               ylabel=f"$c_{{l|{klass + 1}}}$", xticks=[],
               title=f"step {steps[s]}: common mass {c[s, :n_common].sum():.2f}")
        bx.plot(steps[: s + 1], H[: s + 1], color="k", lw=2)
        bx.set(xlim=(0, steps[-1]), ylim=(min(H.min(), 1.5) - 0.05, math.log(classes.distinct_per_next) + 0.05),
               xlabel="step", ylabel="distinct-token entropy", title=f"$\\eta_Z$={eta_z:g}, seed {seed}")
        frames.append(figure_to_png(fig))
        labels.append(f"t={steps[s]}")
    return frames, labels
