"""Tests of the Chapter 5 package code: the Fig 6 sweep (scansnap.chapters.ch5_phase_transition.sweep), the phase-transition
figures and widget helpers (scansnap.chapters.ch5_phase_transition.phase: Theorem 4, Figs 3, 6, 9, 11, 12, scan then
snap), Figs 3, 6 and 9 from the command line, and the chapter's coursework checks (references
pass; wrong answers fail with a message a student can act on).

Sweeps here are tiny (a few runs, a few steps) so the file runs in seconds; the full 640-run
sweep runs in the chapter itself."""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from scansnap import SequenceClasses, mechanism, metrics, theory, train  # noqa: E402
from scansnap.__main__ import main  # noqa: E402
from scansnap.checks import CheckFailed, ch5  # noqa: E402
from scansnap.chapters import ch5_phase_transition  # noqa: E402
from scansnap.figures import save  # noqa: E402
from scansnap.plots import FigureResult  # noqa: E402

CELL_KEYS = {"eta_z", "ratio", "init", "mean", "sem", "std", "n"}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def small_sweep():
    """Two panels, both inits, 2 η_Z × 2 ratios × 3 seeds, 12 steps: every code path, fast."""
    return ch5_phase_transition.fig6_sweep(panels=(1, 3), eta_z=(1.0, 3.0), ratios=(1.0, 10.0),
                             seeds=(1, 2, 3), inits=("random", "zero"), steps=12)


# --- the sweep ------------------------------------------------------------------------------
def test_paper_grid_is_640_runs():
    assert len(ch5_phase_transition.PANELS) * len(ch5_phase_transition.ETA_Z) * len(ch5_phase_transition.RATIOS) * len(ch5_phase_transition.SEEDS) == 640
    assert [SequenceClasses(num_queries=q, next_per_query=2).M for q in ch5_phase_transition.PANELS] == [
        33, 79, 125, 240]


def test_sweep_shapes_stats_and_rows(small_sweep):
    sw = small_sweep
    assert sw.panels == [(1, 2, 33), (3, 6, 79)]
    assert sw.num_runs == 2 * 2 * 2 * 3 * 2
    for key, H in sw.entropy.items():
        assert H.shape == (2, 2, 3) and np.all(np.isfinite(H))
        assert np.all((H > 0) & (H <= math.log(10) + 1e-9))
        assert sw.recall[key].shape == (2, 2, 3, ch5_phase_transition.NUM_THRESHOLDS)
    st = sw.stats(1, "zero")
    H = sw.entropy[(1, "zero")]
    np.testing.assert_allclose(st["mean"], H.mean(-1))
    np.testing.assert_allclose(st["std"], H.std(-1, ddof=1))
    np.testing.assert_allclose(st["sem"], H.std(-1, ddof=1) / math.sqrt(3))
    assert np.all(st["n"] == 3)
    rows = sw.rows()
    assert len(rows) == sw.num_runs
    assert rows[0] == dict(num_queries=1, K=2, M=33, init="random", eta_z=1.0, ratio=1.0,
                           eta_y=1.0, seed=1, entropy=float(sw.entropy[(1, "random")][0, 0, 0]))


def test_sweep_matches_individual_runs(small_sweep):
    """A cell of the batched sweep equals the same run trained on its own (float32 noise)."""
    classes = SequenceClasses(num_queries=3, next_per_query=2)
    for init in ("random", "zero"):
        run = train(classes, eta_y=30.0, eta_z=3.0, seeds=2, steps=12, init=init,
                    record_every=None, dtype=torch.float32, progress=False)
        alone = float(metrics.distinct_entropy(classes, run.Z[0, -1].double()).mean())
        batched = small_sweep.entropy[(3, init)][1, 1, 1]  # eta_z = 3, ratio = 10, seed 2
        assert batched == pytest.approx(alone, abs=1e-5)


def test_sweep_json_schema(small_sweep):
    js = small_sweep.to_json()
    assert [p["num_queries"] for p in js["panels"]] == [1, 3]
    for panel in js["panels"]:
        assert set(panel) == {"num_queries", "K", "M", "cells"}
        assert len(panel["cells"]) == 2 * 2 * 2
        for cell in panel["cells"]:
            assert set(cell) == CELL_KEYS and cell["init"] in ("random", "zero") and cell["n"] == 3
    assert js["settings"]["steps"] == 12 and js["settings"]["momentum"] == 0.9
    json.dumps(js)


def test_structural_checks(small_sweep):
    out = ch5_phase_transition.structural_checks(small_sweep, "zero")
    kinds = sorted({c["check"] for c in out})
    assert kinds == [1, 3]  # check 2 compares ratios 2 and 10: ratio 2 is not in this sweep
    assert all(isinstance(c["passed"], bool) for c in out)
    # a hand-made sweep where every check must pass / fail
    sw = small_sweep
    fake = ch5_phase_transition.Sweep(panels=[(1, 2, 33)], eta_z=[1.0, 3.0], ratios=[1.0, 2.0, 10.0], seeds=[1],
                        inits=["random"], entropy={(1, "random"): np.array(
                            [[[2.0], [2.05], [2.1]], [[1.5], [1.6], [1.7]]])},
                        recall={}, thresholds=sw.thresholds, seconds={})
    assert all(c["passed"] for c in ch5_phase_transition.structural_checks(fake))
    fake.entropy[(1, "random")][1, 0, 0] = 2.5  # ratio 1 no longer falls in eta_z
    assert [c["passed"] for c in ch5_phase_transition.structural_checks(fake) if c["check"] == 1] == [False]


def test_threshold_grid():
    np.testing.assert_allclose(ch5_phase_transition.threshold_grid(33)[[0, -1]], [0.028, 0.038])
    np.testing.assert_allclose(ch5_phase_transition.threshold_grid(240, num=3), [0.004, 0.0045, 0.005])
    lo, hi = ch5_phase_transition.threshold_grid(50)[[0, -1]]
    assert lo < 1 / 50 < hi


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(inits=("random", "random")), ValueError, "inits must be distinct"),
    (dict(inits=("uniform",)), ValueError, "inits"),
    (dict(seeds=(1, 1)), ValueError, "seeds must be distinct"),
    (dict(panels=(0,)), ValueError, "panels"),
    (dict(eta_z=(-1.0,)), ValueError, "eta_z"),
    (dict(progress="yes"), TypeError, "progress"),
])
def test_sweep_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ch5_phase_transition.fig6_sweep(**kwargs)


def test_sweep_lookup_errors(small_sweep):
    with pytest.raises(ValueError, match="num_queries must be one of"):
        small_sweep.stats(5)
    with pytest.raises(ValueError, match="init"):
        small_sweep.stats(1, "uniform")
    with pytest.raises(TypeError, match="sweep must be a Sweep"):
        ch5_phase_transition.structural_checks("not a sweep")


# --- Theorem 4 and the theory figures -------------------------------------------------------
def test_theorem4_figure_regimes():
    data = ch5_phase_transition.theorem4_figure(M=1000, K=10, eta_y=1.0, eta_z=0.5, C0=ch5_phase_transition.FIG3_C0).data
    t, slope = data["t"], data["slope"]
    assert data["t0"] == pytest.approx(2 * 10 * math.log(1000))
    assert data["t0_prime"] == pytest.approx(data["t0"] / 2)
    scanning = (t > 1) & (t < data["t0_prime"] / 2)
    assert abs(slope[scanning].mean() - 0.5) < 0.01
    assert slope[t > 100 * data["t0"]].max() < 0.05
    assert data["B_printed_at_0"] == pytest.approx(0.25 * math.log(ch5_phase_transition.FIG3_C0))
    np.testing.assert_allclose(data["B_printed"] - data["B"], 0.25 * math.log(ch5_phase_transition.FIG3_C0))
    early = t < data["t0_prime"] / 10
    np.testing.assert_allclose(data["B_scanning"][early], data["B"][early], atol=0.02)
    late = t > 100 * data["t0"]
    np.testing.assert_allclose(data["B_snapping"][late], data["B"][late], atol=0.02)


def test_fig3_reproduces_scale_and_t0():
    result = ch5_phase_transition.fig3()
    np.testing.assert_allclose(result.data["t0"], [276.31, 138.16, 69.08, 27.63], atol=0.01)
    np.testing.assert_allclose(result.data["chi_final"], [572.0, 439.0, 332.3, 227.5], atol=0.5)
    assert result.data["C0"] == 0.5**4 / 10
    assert result.data["chi"][:, 0] == pytest.approx(1.0)


def test_fig9_invariance():
    panels = ch5_phase_transition.fig9().data["panels"]
    assert [round(p["B_at_t0"][0], 3) for p in panels] == [0.510, 1.382]
    for p in panels:
        assert np.ptp(p["B_at_t0"]) < 1e-12
        assert np.all(np.diff(p["B"][:, -1]) > 0)  # at a fixed late t, B grows with eta_z


def test_integrate_common_logit_is_minus_B():
    args = dict(M=200, K=4, eta_y=2.0, eta_z=0.7, C0=0.05)
    t = np.linspace(0.0, 60.0, 13)
    z = ch5_phase_transition.integrate_common_logit(t, **args)
    np.testing.assert_allclose(z, -theory.B(t, **args), atol=1e-7)
    assert abs(z[-1] + theory.B_printed(t[-1], **args)) > 0.5  # the printed form is off
    with pytest.raises(ValueError, match="t must be"):
        ch5_phase_transition.integrate_common_logit([3.0, 1.0], **args)
    with pytest.raises(ValueError, match="C0"):
        ch5_phase_transition.integrate_common_logit(t, **{**args, "C0": 0.0})


def test_B_explorer_updates_in_place():
    explorer = ch5_phase_transition.BExplorer(t_max=100.0)
    fig, update = explorer.figure, explorer.update
    update(M=100, K=2, eta_y=1.0, eta_z=0.5, C0=0.1)
    ax = fig.axes[0]
    B_line = ax.lines[0]
    np.testing.assert_allclose(B_line.get_ydata(), theory.B(np.linspace(0, 100, 400), M=100, K=2,
                                                            eta_y=1.0, eta_z=0.5, C0=0.1))
    assert "t_0" in ax.get_title()
    update(M=1000, K=10, eta_y=5.0, eta_z=5.0, C0=1.0)
    assert B_line.get_ydata()[-1] == pytest.approx(
        float(theory.B(100.0, M=1000, K=10, eta_y=5.0, eta_z=5.0, C0=1.0)))
    with pytest.raises(ValueError, match="t_max"):
        ch5_phase_transition.BExplorer(t_max=-1)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: ch5_phase_transition.theorem4_figure(M=1), ValueError, "M"),
    (lambda: ch5_phase_transition.theorem4_figure(C0=0.0), ValueError, "C0"),
    (lambda: ch5_phase_transition.fig3(C0=-1.0), ValueError, "C0"),
    (lambda: ch5_phase_transition.fig3(quick="no"), TypeError, "quick"),
    (lambda: ch5_phase_transition.fig9(K=0), ValueError, "K"),
])
def test_theory_figure_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --- Fig 6, 11, 12 from a sweep -------------------------------------------------------------
def test_fig6_data_is_exactly_the_schema(small_sweep, tmp_path):
    result = ch5_phase_transition.fig6(sweep=small_sweep)
    assert set(result.data) == {"panels"}
    for panel in result.data["panels"]:
        assert set(panel) == {"num_queries", "K", "M", "cells"}
        assert {c["init"] for c in panel["cells"]} == {"random", "zero"}
        assert all(set(c) == CELL_KEYS for c in panel["cells"])
    assert len(result.figure.axes) == 2 * 2  # rows: inits, columns: panels
    _, js = save(result, 6, tmp_path)
    assert json.loads(js.read_text()) == json.loads(json.dumps(result.data))
    with pytest.raises(TypeError, match="sweep must be a Sweep"):
        ch5_phase_transition.fig6(sweep={"panels": []})


def test_recall_figures(small_sweep):
    f11 = ch5_phase_transition.fig11(sweep=small_sweep, eta_z=3.0)
    f12 = ch5_phase_transition.fig12(sweep=small_sweep, ratio=10.0, init="zero")
    assert f11.data["vary"] == "ratio" and len(f11.data["panels"]) == 2
    assert len(f11.data["panels"][0]["curves"]) == 2
    for result in (f11, f12):
        for panel in result.data["panels"]:
            for y in panel["curves"].values():
                assert np.all((y >= 0) & (y <= 1)) and np.all(np.diff(y) <= 1e-12)
    with pytest.raises(ValueError, match="eta_z must be one of the swept values"):
        ch5_phase_transition.fig11(sweep=small_sweep, eta_z=0.5)


def test_fig6_explorer_frames(small_sweep):
    frames, labels = ch5_phase_transition.fig6_explorer_frames(small_sweep)
    assert labels == ["1/2 (M=33)", "3/6 (M=79)"]
    assert all(f.startswith(b"\x89PNG") for f in frames)  # frames are PNG bytes
    assert len(plt.get_fignums()) == 0  # not pyplot figures: nothing stays open
    with pytest.raises(TypeError, match="sweep must be a Sweep"):
        ch5_phase_transition.fig6_explorer_frames(None)


# --- scan then snap -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ss_run():
    return ch5_phase_transition.scan_snap_runs(num_queries=1, eta_z=(1.0, 3.0), seeds=(1, 2), steps=20)


def test_scan_snap_runs_and_summary(ss_run):
    assert ss_run.Z.shape == (4, 21, 33, 33)
    assert ss_run.configs == [(1.0, 1.0, 1), (1.0, 1.0, 2), (3.0, 3.0, 1), (3.0, 3.0, 2)]
    s = ch5_phase_transition.scan_snap_summary(ss_run)
    assert s["entropy"].shape == (2, 21) and s["dominant"].shape == (2, 21)
    assert s["entropy"][:, 0] == pytest.approx(2.1512818, abs=1e-6)  # zero init
    assert np.all(s["dominant"][:, 0] == 0) and np.all(s["dominant"][:, -1] > 0)
    assert np.all(s["common"][:, -1] < 0)  # Theorem 2: common tokens are suppressed
    assert s["entropy"][1, -1] < s["entropy"][0, -1]  # larger eta_z, sparser
    assert list(s["eta_z"]) == [1.0, 3.0] and s["ratio"] == 1.0
    # one batched program: each pair's runs equal that pair trained alone
    alone = train(ss_run.classes, eta_y=3.0, eta_z=3.0, seeds=2, steps=20, record_every=1,
                  dtype=torch.float64)
    torch.testing.assert_close(ss_run.Z[3], alone.Z[0])
    with pytest.raises(ValueError, match="one ratio"):
        ch5_phase_transition.scan_snap_summary(
            train(ss_run.classes, pairs=[(1.0, 1.0), (2.0, 1.0)], seeds=1, steps=2))


def test_init_overlap_C0_and_scan_snap_figure(ss_run):
    rho0, C0 = mechanism.init_overlap_C0(ss_run.classes)
    assert rho0 == pytest.approx(1.18, abs=0.01) and C0 == pytest.approx(rho0**4 / 2)
    result = ch5_phase_transition.scan_snap_figure(ss_run)
    assert result.data["C0"] == pytest.approx(C0)
    np.testing.assert_allclose(result.data["B_theory"][0], theory.B(
        np.arange(21.0), M=33, K=2, eta_y=1.0, eta_z=1.0, C0=C0))
    momentum = ch5_phase_transition.scan_snap_figure(ss_run, C0=0.5, momentum=0.9).data["B_theory"]
    np.testing.assert_allclose(momentum[1], theory.B(np.arange(21.0), M=33, K=2, eta_y=30.0,
                                                     eta_z=30.0, C0=0.5))
    with pytest.raises(ValueError, match="next_per_query"):
        mechanism.init_overlap_C0(SequenceClasses(num_queries=2, next_per_query=1))
    with pytest.raises(TypeError, match="run must be a Run"):
        ch5_phase_transition.scan_snap_figure("run")


def test_training_frames(ss_run):
    frames, labels = ch5_phase_transition.training_frames(ss_run, eta_z=3.0, seed=2, every=8)
    assert labels == ["t=0", "t=8", "t=16", "t=20"]
    assert all(f.startswith(b"\x89PNG") for f in frames)
    with pytest.raises(ValueError, match="not in the run"):
        ch5_phase_transition.training_frames(ss_run, eta_z=0.5, seed=1)
    with pytest.raises(ValueError, match="klass"):
        ch5_phase_transition.training_frames(ss_run, eta_z=1.0, seed=1, klass=2)


# --- command line ---------------------------------------------------------------------------
@pytest.mark.parametrize("number", [3, 9])
def test_cli_theory_figures(number, tmp_path):
    assert main(["figure", str(number), "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    assert (tmp_path / f"fig{number}.png").stat().st_size > 10_000
    data = json.loads((tmp_path / f"fig{number}.json").read_text())
    assert data["C0"] == (ch5_phase_transition.FIG3_C0 if number == 3 else ch5_phase_transition.FIG9_C0)


def test_fig6_quick_and_full_settings(monkeypatch):
    """``figure 6 --quick`` runs seeds 1-3; without it the paper's 10 seeds (640 runs per
    init). The sweep itself is replaced by a recorder: the real one runs in the chapter."""
    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(ch5_phase_transition.phase, "fig6_sweep", fake)
    for quick in (True, False):
        with pytest.raises(RuntimeError, match="stop"):
            ch5_phase_transition.fig6(quick=quick)
    assert calls[0]["seeds"] == (1, 2, 3) and calls[1]["seeds"] == ch5_phase_transition.SEEDS
    assert all(c["inits"] == ("random", "zero") for c in calls)


# --- coursework checks ----------------------------------------------------------------------
def test_check_references_pass():
    assert "snap_time" in ch5.check_snap_time(lambda M, K, eta_y: 2 * K * math.log(M) / eta_y)
    assert "B" in ch5.check_B(lambda t, M, K, eta_y, eta_z, C0: theory.B(
        t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0))
    assert "fig6_entropy" in ch5.check_fig6_entropy(
        lambda classes, Z: metrics.distinct_entropy(classes, Z).mean())


def test_checks_explain_wrong_answers():
    with pytest.raises(CheckFailed, match="snap_time"):
        ch5.check_snap_time(lambda M, K, eta_y: K * math.log(M) / eta_y)  # t0' instead of t0
    with pytest.raises(CheckFailed, match="t = 0"):  # the printed formula: B(0) != 0
        ch5.check_B(lambda t, M, K, eta_y, eta_z, C0: theory.B_printed(
            t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0))
    with pytest.raises(CheckFailed, match="shape"):
        ch5.check_B(lambda t, M, K, eta_y, eta_z, C0: 0.0)
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        ch5.check_B(lambda t, M, K, eta_y, eta_z, C0: 1 / 0)
    with pytest.raises(NotImplementedError):  # a student stub: exactly this error, untouched
        ch5.check_B(lambda *args: (_ for _ in ()).throw(NotImplementedError("stub")))
    with pytest.raises(CheckFailed, match="expected a function"):
        ch5.check_B(3.0)
    with pytest.raises(CheckFailed, match="whole support"):  # entropy over the whole support
        ch5.check_fig6_entropy(lambda classes, Z: float(torch.special.entr(
            theory.attention_limit(classes.probs(), Z, classes.query_tokens)).sum(-1).mean()))

    def not_renormalized(classes, Z):
        c = metrics.attention(classes, Z)
        return torch.stack([torch.special.entr(c[n, classes.distinct_tokens(n)]).sum()
                            for n in range(classes.K)]).mean()

    with pytest.raises(CheckFailed, match="without renormalizing"):
        ch5.check_fig6_entropy(not_renormalized)


def test_fig3_quick_draws_the_full_curves_on_a_coarser_grid():
    """The quick Fig 3 is a FigureResult whose drawn lines are its data, on 201 points of
    [0, 700], equal to the full figure's values at the times both grids share (every 7 steps) and
    ending at the paper's printed scale (PAPER.md B.6: 572, 439, 332, 227, to 0.5)."""
    quick, full = ch5_phase_transition.fig3(quick=True), ch5_phase_transition.fig3()
    assert isinstance(quick, FigureResult)
    t = quick.data["t"]
    assert len(t) == 201 and t[0] == 0.0 and t[-1] == 700.0
    drawn = [line.get_ydata() for line in quick.figure.axes[0].lines if len(line.get_ydata()) > 2]
    np.testing.assert_array_equal(np.array(drawn), quick.data["chi"])
    in_full, in_quick = np.isin(full.data["t"], t), np.isin(t, full.data["t"])
    assert in_full.sum() == in_quick.sum() == 101  # t = 0, 7, 14, ..., 700
    np.testing.assert_allclose(quick.data["chi"][:, in_quick], full.data["chi"][:, in_full],
                               rtol=1e-12)
    np.testing.assert_allclose(quick.data["chi_final"], [572, 439, 332, 227], atol=0.5)


def test_theorem4_dynamics_figure_and_table():
    from scansnap import mechanism

    grid = np.geomspace(0.1, 1000, 9)
    checks = {"K = 2": mechanism.theorem4_check(mechanism.theorem4_classes(2), 1.0, 0.01, grid)}
    result = ch5_phase_transition.theorem4_dynamics_figure(checks)
    plt.close(result.figure)
    np.testing.assert_allclose(result.data["K = 2"]["B129_over_B"],
                               checks["K = 2"]["B129"] / checks["K = 2"]["B"])
    table = ch5_phase_transition.theorem4_table(checks, at=[0.1, 1000])
    first = checks["K = 2"]["B129"][0] / checks["K = 2"]["B"][0]
    assert f"{first:.2f}" in table and table.count("\n") == 2
    with pytest.raises(ValueError, match="grid"):
        ch5_phase_transition.theorem4_table(checks, at=[0.2])
    with pytest.raises(TypeError, match="checks"):
        ch5_phase_transition.theorem4_dynamics_figure({})
