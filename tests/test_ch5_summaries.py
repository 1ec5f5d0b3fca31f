"""Chapter 5's summaries: the numbers the page glues, each checked against an independent
computation (hand-made inputs with known answers, or the theory evaluated another way)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from scansnap import theory  # noqa: E402
from scansnap.chapters import ch5_phase_transition as ch5  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- Theorem 4 against the dynamics ----------------------------------------------------------
def fake_check(K: int, B: list[float], fall: list[float], scale: float = 1.0) -> dict:
    """A theorem4_check-shaped result on t/t0 = 0.1, 0.15, 1, 10, 100 (t0 = 2, t0' = 1), with
    Eqn 129 = 2·scale everywhere, f² = 0.5, and asymptotes chosen per time."""
    ratio = np.array([0.1, 0.15, 1.0, 10.0, 100.0])
    n = len(ratio)
    return dict(t=2.0 * ratio, t_over_t0=ratio, t0=2.0, t0_prime=1.0,
                B=np.array(B), fall=np.array(fall), B129=np.full(n, 2.0 * scale),
                B_scanning=np.array([2.1, 2.2, 9.0, 9.0, 9.0]) * scale,
                B_snapping=np.array([9.0, 9.0, 9.0, 1.8, 2.4]) * scale,
                B_lemma3=np.array(B) * 1.25, gamma=np.array([1.0, 1.1, 0.9, 1.0, 1.0]),
                gamma_theory=np.ones(n), f_common_sq=np.full(n, 0.5),
                trajectory=SimpleNamespace(classes=SimpleNamespace(K=K)))


def test_theorem4_summary_on_hand_made_checks():
    a = fake_check(2, B=[1.0, 2.0, 4.0, 2.0, 1.0], fall=[0.5, 1.0, 2.0, 1.0, 0.55])
    b = fake_check(4, B=[2.0, 2.0, 2.0, 2.0, 2.0], fall=[1.0, 1.0, 1.0, 1.0, 1.0])
    out = ch5.theorem4_summary(a, b)
    # Eqn 129 / B: a gives 2, 1, 0.5, 1, 2; b gives 1 throughout
    assert (out["ratio_lo"], out["ratio_hi"]) == (0.5, 2.0)
    assert (out["drift_lo"], out["drift_hi"]) == (1.0, 1.0)  # a: 2/2, b: 1/1
    assert out["flatness"] == pytest.approx(1.5 / 1.3)  # a: (2 - 0.5) / mean(2, 1, .5, 1, 2)
    # fall / ((1 - f²) B) = 2 fall / B: a gives 1, 1, 1, 1, 1.1; b gives 1
    assert out["fall_error"] == pytest.approx(0.1)
    assert (out["fall_end_lo"], out["fall_end_hi"]) == pytest.approx((1.0, 1.1))
    assert out["ratio_fall_hi"] == pytest.approx(4.0)  # a at the first time: 2 / 0.5
    assert out["fall_over_B_median"] == pytest.approx(0.5)
    assert out["gamma_error"] == pytest.approx(0.1) and out["gamma_ratio_max"] == 1.1
    assert out["kappa_error"] == pytest.approx(0.2)  # B / (1.25 B) - 1
    assert out["f_common_sq_max"] == 0.5
    # scanning window t < t0'/3 = 1/3 holds t = 0.2 and 0.3: 2.1 / 2 and 2.2 / 2
    assert out["scanning_excess"] == pytest.approx(0.1)
    assert (out["snapping_lo"], out["snapping_hi"]) == pytest.approx((0.9, 1.2))
    assert (out["B_end_K2"], out["B_end_K4"]) == (1.0, 2.0)
    assert all(type(v) in (float, int) for v in out.values())  # glue renders plain numbers


def test_theorem4_summary_on_the_real_dynamics():
    from scansnap import mechanism

    grid = np.geomspace(0.1, 1000, 9)
    check = mechanism.theorem4_check(mechanism.theorem4_classes(2), 1.0, 0.01, grid)
    out = ch5.theorem4_summary(check)
    ratio = [b129 / b for b129, b in zip(check["B129"], check["B"])]
    assert (out["ratio_lo"], out["ratio_hi"]) == pytest.approx((min(ratio), max(ratio)))
    assert out["B_end_K2"] == check["B"][-1]
    assert out["fall_error"] < 0.05  # Theorem 2(b) holds to the percent in its own setting


def test_theorem4_summary_rejects_bad_input():
    a = fake_check(2, B=[1.0] * 5, fall=[0.5] * 5)
    with pytest.raises(TypeError, match="checks"):
        ch5.theorem4_summary()
    with pytest.raises(TypeError, match="checks"):
        ch5.theorem4_summary({"B": 1})
    with pytest.raises(ValueError, match="distinct K"):
        ch5.theorem4_summary(a, fake_check(2, B=[1.0] * 5, fall=[0.5] * 5))
    late_only = {k: (v[2:] if isinstance(v, np.ndarray) else v) for k, v in a.items()}
    with pytest.raises(ValueError, match="grid"):
        ch5.theorem4_summary(late_only)


# --- the closed form ------------------------------------------------------------------------
def log_slope(t: float, **args) -> float:
    """dB/d ln t by a central difference in ln t (independent of theory.dB_dlog_t)."""
    h = 1e-5
    return float((theory.B(t * math.exp(h), **args) - theory.B(t * math.exp(-h), **args)) / (2 * h))


def test_closed_form_summary_against_finite_differences():
    args = dict(M=1000, K=10, eta_y=1.0, eta_z=0.5)
    closed = ch5.theorem4_figure(**args, C0=ch5.FIG3_C0, num=200)
    out = ch5.closed_form_summary(closed, other_C0=1.0)
    assert out["t0"] == pytest.approx(2 * 10 * math.log(1000))
    assert out["t0_prime"] == pytest.approx(10 * math.log(1000))
    assert out["slope_at_1"] == pytest.approx(log_slope(1.0, **args, C0=ch5.FIG3_C0), rel=1e-6)
    assert out["slope_at_1_other"] == pytest.approx(log_slope(1.0, **args, C0=1.0), rel=1e-6)
    nearest = min(closed.data["t"], key=lambda t: abs(t - out["t0"]))  # the figure's grid
    assert out["slope_at_t0"] == pytest.approx(log_slope(nearest, **args, C0=ch5.FIG3_C0),
                                               rel=1e-6)
    assert abs(out["slope_scanning"] - 0.5) < 0.02  # Theorem 4: ½ while scanning
    late = [log_slope(t, **args, C0=ch5.FIG3_C0) for t in (150 * out["t0"], 900 * out["t0"])]
    assert max(late) <= out["slope_late_max"] < 0.05
    assert out["slope_max_other"] < 0.5 and out["slope_at_1_other"] < out["slope_at_1"]
    with pytest.raises(ValueError, match="other_C0"):
        ch5.closed_form_summary(closed, other_C0=0.0)
    with pytest.raises(TypeError, match="closed"):
        ch5.closed_form_summary(ch5.fig3(quick=True))


def test_printed_constant_check_is_the_missing_quarter_log_C0():
    out = ch5.printed_constant_check(np.linspace(0.0, 200.0, 11), M=1000, K=10, eta_y=1.0,
                                     eta_z=0.5, C0=ch5.FIG3_C0)
    assert out["error_corrected"] < 1e-7
    assert out["error_printed"] == pytest.approx(abs(0.25 * math.log(ch5.FIG3_C0)), abs=1e-7)
    with pytest.raises(ValueError, match="t must"):
        ch5.printed_constant_check([2.0, 1.0], M=1000, K=10, eta_y=1.0, eta_z=0.5, C0=1.0)


def test_gamma_peak_summary_against_a_grid_search():
    ratios = []
    for M in (33, 1000):
        t = np.linspace(1e-3, 3.0, 300_001) * theory.t0_prime(M, 10, 1.0)
        ratios.append(t[np.argmax(theory.gamma(t, M, 10, 1.0))] / theory.t0_prime(M, 10, 1.0))
    out = ch5.gamma_peak_summary([33, 1000], K=10, eta_y=1.0)
    assert (out["lo"], out["hi"]) == pytest.approx((min(ratios), max(ratios)), abs=1e-4)
    with pytest.raises(ValueError, match="vocabularies"):
        ch5.gamma_peak_summary([1])


# --- Figs 3 and 9 ---------------------------------------------------------------------------
def test_fig3_summary():
    f3 = ch5.fig3(quick=True)
    out = ch5.fig3_summary(f3, other_C0=[1.0])
    for ey, key in ((0.5, "0p5"), (1.0, "1"), (2.0, "2"), (5.0, "5")):
        assert out[f"t0_eta{key}"] == pytest.approx(20 * math.log(1000) / ey)
        assert out[f"chi_end_eta{key}"] == pytest.approx(math.exp(2 * theory.B(
            700.0, M=1000, K=10, eta_y=ey, eta_z=0.5, C0=ch5.FIG3_C0)))
    assert out["overlap"] == pytest.approx(1 / 0.5**2)  # rho0 = 0.5
    assert out["C0_admissible"] == pytest.approx(0.1)
    assert out["chi_printed_0"] == pytest.approx(math.sqrt(ch5.FIG3_C0))
    # the printed B_n is B_n + ¼ ln C0, so its chi is sqrt(C0) times the corrected one
    largest = max(out[f"chi_end_eta{k}"] for k in ("0p5", "1", "2", "5"))
    assert out["chi_printed_hi"] == pytest.approx(largest * math.sqrt(ch5.FIG3_C0))
    at_admissible = [math.exp(2 * theory.B(700.0, M=1000, K=10, eta_y=ey, eta_z=0.5, C0=0.1))
                     for ey in (0.5, 1.0, 2.0, 5.0)]
    assert out["chi_admissible_lo"] == pytest.approx(min(at_admissible))
    assert out["chi_admissible_hi"] == pytest.approx(max(at_admissible))
    assert (out["order_holds"], out["C0_tried"]) == (3, 3)  # insight (c) at each C0
    with pytest.raises(ValueError, match="other_C0"):
        ch5.fig3_summary(f3, other_C0=[-1.0])
    with pytest.raises(TypeError, match="f3"):
        ch5.fig3_summary(ch5.fig9(quick=True))


def test_fig9_summary():
    out = ch5.fig9_summary(ch5.fig9(quick=True))
    # nu = 10, M = 100, eta_Z = 0.5: t0 = 2 ln 100 / 5
    expected = theory.B(2 * math.log(100) / 5.0, M=100, K=1, eta_y=5.0, eta_z=0.5, C0=1.0)
    assert out["B_t0_nu10"] == pytest.approx(float(expected))
    assert out["B_t0_spread"] < 1e-12  # Eqns 132–133: B_n(t0) does not depend on eta_Z
    assert out["B_end_nu10_eta_z_max"] == pytest.approx(
        float(theory.B(5.0, M=100, K=1, eta_y=80.0, eta_z=8.0, C0=1.0)))
    assert out["B_end_nu1_eta_z_min"] == pytest.approx(
        float(theory.B(50.0, M=10000, K=1, eta_y=0.5, eta_z=0.5, C0=1.0)))
    with pytest.raises(TypeError, match="f9"):
        ch5.fig9_summary(ch5.fig3(quick=True))


# --- the Fig 6 sweep ------------------------------------------------------------------------
def hand_sweep() -> ch5.Sweep:
    """Two panels (1 and 3 queries), eta_Z 0.5, 1, 3 × ratios 1, 2, 10, two seeds, both inits,
    with entropies chosen so that every quoted number is known by hand."""
    base = np.array([[2.0, 2.1, 2.2], [1.8, 1.9, 2.0], [1.5, 1.6, 1.7]])  # [eta_z, ratio]
    spread = np.array([-0.1, 0.1])  # seed offsets: mean = base
    q3 = np.array([[2.0, 1.9, 2.1], [1.9, 1.8, 2.0], [1.7, 1.75, 1.8]])  # min at ratio 2 for 1/2
    entropy = {(1, "random"): base[..., None] + spread, (3, "random"): q3[..., None] + spread,
               (1, "zero"): base[..., None] + spread + 0.3, (3, "zero"): q3[..., None] + spread}
    entropy[(3, "zero")][2, 2] += 0.05  # zero init differs by 0.05 in one cell
    recall = {}
    for q in (1, 3):
        start = np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4], [0.3, 0.2, 0.1]])  # [eta_z, ratio]
        end = start - np.array([[0.3, 0.3, 0.3], [0.1, 0.2, 0.4], [0.05, 0.05, 0.05]])
        curve = np.linspace(start, end, 5, axis=-1)  # [eta_z, ratio, threshold]
        recall[(q, "random")] = np.repeat(curve[:, :, None, :], 2, axis=2)
    return ch5.Sweep(panels=[(1, 2, 33), (3, 6, 79)], eta_z=[0.5, 1.0, 3.0],
                     ratios=[1.0, 2.0, 10.0], seeds=[1, 2], inits=["random", "zero"],
                     entropy=entropy, recall=recall, thresholds={}, seconds={},
                     settings=dict(momentum=0.9))


def test_fig6_summary_on_a_hand_made_sweep():
    out = ch5.fig6_summary(hand_sweep(), "random", other_init="zero")
    assert out["mean_q1_ez0p5_r1"] == pytest.approx(2.0)
    assert out["mean_q1_ez3_r10"] == pytest.approx(1.7)
    assert out["mean_q3_ez3_r2"] == pytest.approx(1.75)
    assert len([k for k in out if k.startswith("mean_")]) == 18
    # curves with eta_Z >= 1 in panels with >= 3 queries: q3 rows 1 and 3; only row 1 dips at 2
    assert (out["min_at_2"], out["min_curves"]) == (1, 2)
    # check 1 (ratio 1 falls in eta_Z) holds in both panels; check 2 (H(10) > H(2), q >= 3,
    # eta_Z >= 1) twice; check 3 (q = 1: H(10) > H(1)) three times
    assert (out["checks_random_passed"], out["checks_random_total"]) == (7, 7)
    assert out["init_diff_q1"] == pytest.approx(0.3)
    assert out["init_diff_q3"] == pytest.approx(0.05)
    assert out["init_diff_multi"] == out["init_diff_q3"]
    weights = np.arange(1, 11) / 55  # Z = 0: attention on distinct tokens ∝ P(l|n) ∝ 1..10
    assert out["H_frequencies"] == pytest.approx(-(weights * np.log(weights)).sum(), abs=1e-6)
    assert out["H_uniform"] == pytest.approx(math.log(10))
    assert out["t0_q1"] == pytest.approx(4 * math.log(33))
    assert out["t0_q3_momentum"] == pytest.approx(12 * math.log(79) / 10)
    with pytest.raises(ValueError, match="other_init"):
        ch5.fig6_summary(hand_sweep(), "random", other_init="random")
    with pytest.raises(TypeError, match="sweep"):
        ch5.fig6_summary({})


def test_recall_summary_on_a_hand_made_sweep():
    out = ch5.recall_summary(hand_sweep(), num_queries=1, eta_z=1.0, ratio=1.0)
    # eta_Z = 1 row: start 0.6, 0.5, 0.4 and falls 0.1, 0.2, 0.4 at ratios 1, 2, 10
    assert (out["start_ratio_lo"], out["start_ratio_hi"]) == pytest.approx((0.6, 0.4))
    assert (out["fall_ratio_lo"], out["fall_ratio_hi"]) == pytest.approx((0.1, 0.4))
    assert (out["relative_ratio_lo"], out["relative_ratio_hi"]) == pytest.approx((0.1 / 0.6, 1.0))
    # ratio 1 column: falls 0.3 at eta_Z = 0.5 and 0.05 at eta_Z = 3
    assert (out["fall_eta_z_lo"], out["fall_eta_z_hi"]) == pytest.approx((0.3, 0.05))
    assert out["slower_fig11"] == out["slower_fig12"] == out["panels"] == 2
    # relative: 0.05 / 0.3 at eta_Z = 3 against 0.3 / 0.9 at 0.5: still slower
    assert out["relative_slower_fig11"] == out["relative_slower_fig12"] == 2
    with pytest.raises(ValueError, match="eta_z"):
        ch5.recall_summary(hand_sweep(), eta_z=2.0)
    with pytest.raises(ValueError, match="num_queries"):
        ch5.recall_summary(hand_sweep(), num_queries=5)


def test_authors_compare_quotes_the_worst_cell_and_the_shares():
    cells = ch5.authors.load()
    panels = sorted({int(c["num_queries"]) for c in cells})
    eta_z, ratios = sorted({c["eta_z"] for c in cells}), sorted({c["ratio"] for c in cells})
    unit = np.array([-1.0, 1.0] * 5) / np.std([-1.0, 1.0] * 5, ddof=1)  # mean 0, std 1
    entropy = {q: np.zeros((len(eta_z), len(ratios), 10)) for q in panels}
    for k, c in enumerate(cells):  # per-seed std = pm; the book's mean is off by d·pm
        d = 3.0 if k == 5 else (1.5 if k % 4 == 0 else 0.5)
        i, j = eta_z.index(c["eta_z"]), ratios.index(c["ratio"])
        entropy[int(c["num_queries"])][i, j] = c["mean"] + d * c["pm"] + c["pm"] * unit
    sweep = ch5.Sweep(panels=[(q, 2 * q, 0) for q in panels], eta_z=eta_z, ratios=ratios,
                      seeds=list(range(1, 11)), inits=["random"],
                      entropy={(q, "random"): H for q, H in entropy.items()}, recall={},
                      thresholds={}, seconds={})
    out = ch5.authors.compare(sweep)
    far = sum(1 for k in range(64) if k == 5 or k % 4 == 0)
    assert out["cells"] == 64
    assert out["within_one_spread"] == pytest.approx((64 - far) / 64)
    assert out["within_two_spread"] == pytest.approx(63 / 64)
    worst = cells[5]
    assert (out["worst_num_queries"], out["worst_eta_z"], out["worst_ratio"]) == (
        worst["num_queries"], worst["eta_z"], worst["ratio"])
    assert out["worst_authors_mean"] == worst["mean"]
    assert out["worst_book_mean"] == pytest.approx(worst["mean"] + 3 * worst["pm"])
    assert out["std_over_sem"] == pytest.approx(math.sqrt(10))


# --- scan then snap -------------------------------------------------------------------------
def test_scan_snap_figure_numbers():
    run = ch5.scan_snap_runs(num_queries=1, eta_z=(1.0, 3.0), seeds=(1, 2), steps=20)
    data = ch5.scan_snap_figure(run).data
    s = ch5.scan_snap_summary(run)
    H, dz, B = s["entropy"], s["dominant"], data["B_theory"]
    assert data["entropy_start"] == pytest.approx(2.1512818, abs=1e-6)  # zero init, as Fig 6
    assert (data["entropy_end_lo"], data["entropy_end_hi"]) == (H[0][20], H[1][20])
    for row, key in ((0, "dominant_end_lo"), (1, "dominant_end_hi")):
        assert data[key] == dz[row][20]
    first_90 = []
    for row in dz:  # first step whose gain reaches 90 % of the final gain
        step = 0
        while row[step] < 0.9 * row[20]:
            step += 1
        first_90.append(step)
    assert (data["t90_lo"], data["t90_hi"]) == (min(first_90), max(first_90))
    ratio = [abs(H[e][10] - H[e][20]) / (H[e][0] - H[e][10]) for e in range(2)]
    assert data["late_over_early"] == pytest.approx(max(ratio))
    assert data["exceeds"] == sum(dz[e][20] > B[e][20] for e in range(2))
    assert data["num_eta_z"] == 2 and data["B_end_hi"] == B[1][20]
    assert type(data["rho0"]) is float and type(data["C0"]) is float
