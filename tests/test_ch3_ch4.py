"""Tests of the Chapter 3–4 helpers: Theorem 1–3 measurements (scansnap.decompose), the Chapter 3
and 4 figures and widgets' helpers, Figs 4, 5 and 8 from the command line, and the chapters'
coursework checks (reference passes, wrong answers fail with a message a student can act on)."""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from scansnap import SequenceClasses, decompose, population, theory  # noqa: E402
from scansnap.__main__ import main  # noqa: E402
from scansnap.checks import CheckFailed, ch3  # noqa: E402
from scansnap.chapters import ch3_y_dynamics  # noqa: E402
from scansnap.data import syn_small, weakly_correlated  # noqa: E402

CH3 = weakly_correlated()
ORTHO = SequenceClasses(num_queries=1, next_per_query=3, num_common=0, distinct_per_next=20)


@pytest.fixture(scope="module")
def frozen():
    """Population dynamics with attention frozen on Chapter 3's classes (eta_Y = 2)."""
    return population(CH3, eta_y=2.0, eta_z=0.0, steps=60, record_every=1)


# --- Theorem 1: the back-propagated gradient ------------------------------------------------
def test_backprop_gradient_is_minus_the_input_gradient():
    """g_n = Y(e_n − α_n) is −∂CE/∂u at u = f_n for logits Yᵀu (so attention receives it)."""
    gen = torch.Generator().manual_seed(0)
    M, K = 9, 3
    Y = torch.randn(M, M, generator=gen, dtype=torch.float64)
    f = torch.rand(K, M, generator=gen, dtype=torch.float64)
    f = f / f.norm(dim=-1, keepdim=True)
    targets = torch.tensor([4, 0, 7])
    g = decompose.backprop_gradient(Y, f, targets)
    u = f.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(u @ Y, targets, reduction="sum").backward()
    torch.testing.assert_close(g, -u.grad, rtol=1e-12, atol=1e-14)
    # batched leading dimensions broadcast
    gb = decompose.backprop_gradient(torch.stack([Y, 2 * Y]), f, targets)
    assert gb.shape == (2, K, M)
    torch.testing.assert_close(gb[0], g)


def test_coordinates_recover_a_combination_exactly():
    gen = torch.Generator().manual_seed(1)
    f = torch.rand(3, 12, generator=gen, dtype=torch.float64)
    a_true = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    a, residual = decompose.coordinates(a_true @ f, f)
    torch.testing.assert_close(a, a_true, rtol=1e-10, atol=1e-12)
    assert float(residual.max()) < 1e-12
    outside = torch.zeros(12, dtype=torch.float64)
    outside[0] = 1.0
    outside = outside - (torch.linalg.pinv(f) @ (f @ outside))  # orthogonal to span F
    _, residual = decompose.coordinates(a_true @ f + outside, f)
    assert float(residual.min()) > 1e-3


def test_backprop_gradient_validates():
    Y = torch.zeros(5, 5, dtype=torch.float64)
    f = torch.eye(5, dtype=torch.float64)[:2]
    with pytest.raises(ValueError, match="Y must have shape"):
        decompose.backprop_gradient(torch.zeros(5, 4), f, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="f must have shape"):
        decompose.backprop_gradient(Y, torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="targets"):
        decompose.backprop_gradient(Y, f, torch.tensor([0, 9]))
    with pytest.raises(ValueError, match="targets"):
        decompose.backprop_gradient(Y, f, torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError):
        decompose.backprop_gradient("Y", f, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="g and f"):
        decompose.coordinates(torch.zeros(2, 5), torch.zeros(3, 5))


def test_theorem1_orthonormal_classes_iota_one_and_beta_of_order_one_over_m():
    """Orthonormal f_n (no common tokens), Z frozen: ι_n → 1 as the discrete steps follow the
    continuous h (Lemma 7), and β_nn' is not 0 but Lemma 5's M/(M−1)² ≈ 1/M — the theorem's
    δ_3 term (|δ_3| < 3/M): w_k·(e_n − α_n) = −M h/((M−1) + e^{Mh}) for k ≠ n."""
    run = population(ORTHO, eta_y=1.0, eta_z=0.0, steps=200, record_every=10)
    m = decompose.measure_theorem1(run)
    assert float(m.residual[1:].max()) < 1e-12
    M = ORTHO.M
    off = ~torch.eye(3, dtype=torch.bool)
    np.testing.assert_allclose(m.beta[-1][off].numpy(), M / (M - 1) ** 2, rtol=0.03)
    assert float(m.beta[1:][:, off].max()) < 3 / M
    assert np.isnan(m.iota[0].numpy()).all()  # γ(0) = 0
    assert float((m.iota[-1] - 1).abs().max()) < 0.02
    torch.testing.assert_close(m.overlap[0], torch.eye(3, dtype=torch.float64))


def test_theorem1_measured_on_overlapping_classes(frozen):
    """Chapter 3's finding: ι ≈ 1, 0 < β < f_nᵀf_n' under the real update, ξ_n > 0, g ∈ span F."""
    m = decompose.measure_theorem1(frozen)
    late = m.steps >= 30
    assert float((m.iota[late] - 1).abs().max()) < 0.05
    off = ~torch.eye(3, dtype=torch.bool)
    beta = m.beta[-1][off]
    assert bool((beta > 0).all()) and bool((beta < m.overlap[-1][off]).all())
    assert bool((m.xi[1:] > 0).all()) and float(m.residual[1:].max()) < 1e-10
    # E' = I − (FᵀF)⁻¹ is close to, and below, the overlap for weak correlations
    e12, o12 = float(m.e_prime[0, 0, 1]), float(m.overlap[0, 0, 1])
    assert 0 < e12 < o12 and e12 > 0.9 * o12


def test_theorem1_rejects_a_frozen_decoder():
    run = population(CH3, eta_y=0.0, eta_z=1.0, steps=2, record_every=1)
    with pytest.raises(ValueError, match="eta_y > 0"):
        decompose.measure_theorem1(run)
    with pytest.raises(TypeError, match="run must be"):
        decompose.measure_theorem1("run")
    with pytest.raises(ValueError, match="index"):
        decompose.measure_theorem1(run, 3)


# --- Lemmas 3 and 5 ----------------------------------------------------------------------------
def test_modified_dynamics_decouple_exactly_into_lemma5():
    """Lemma 3: under the modified update W = FᵀY follows Lemma 5 with rate η/K, to rounding."""
    steps, Y = decompose.modified_y_dynamics(CH3, eta_y=1.0, steps=50, record_every=5)
    assert steps.tolist() == list(range(0, 51, 5)) and Y.shape == (11, CH3.M, CH3.M)
    F = theory.normalized_attention(CH3.probs())
    W = (F @ Y)[..., CH3.next_tokens]  # [S, K, K]
    hs = torch.from_numpy(np.asarray(theory.h_star(steps, CH3.M, 1.0 / CH3.K)))
    eye = torch.eye(3, dtype=torch.float64)
    want = (CH3.M - 1) * hs[:, None, None] * eye - hs[:, None, None] * (1 - eye)
    torch.testing.assert_close(W, want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="eta_y"):
        decompose.modified_y_dynamics(CH3, eta_y=0.0, steps=5)
    with pytest.raises(TypeError):
        decompose.modified_y_dynamics("classes", eta_y=1.0, steps=5)


def test_real_update_decouples_only_without_overlap(frozen):
    run = population(ORTHO, eta_y=1.0, eta_z=0.0, steps=40, record_every=1)
    W = decompose.decoupled_rows(run)
    hs = np.asarray(theory.h_star(run.steps.numpy(), ORTHO.M, 1.0 / ORTHO.K))
    np.testing.assert_allclose(W[:, 0, 0].numpy(), (ORTHO.M - 1) * hs, atol=1e-12)
    np.testing.assert_allclose(W[:, 0, 1].numpy(), -hs, atol=1e-12)
    # with overlap the off-diagonal leaks: w_12 rises above −h*
    W = decompose.decoupled_rows(frozen)
    hs = np.asarray(theory.h_star(frozen.steps.numpy(), CH3.M, 2.0 / CH3.K))
    assert float(W[-1, 0, 1]) > -hs[-1] + 0.1


# --- Corollary 1 -----------------------------------------------------------------------------
def test_fit_time_inverts_lemma5_and_matches_simulation(frozen):
    M, K, eta = CH3.M, CH3.K, 2.0
    for eps in (0.5, 0.1, 0.02):
        t = float(decompose.fit_time(M, K, eta, eps))
        x = float(theory.h(t / K, M, eta)) * M
        assert math.sqrt(M * (M - 1)) / ((M - 1) + math.exp(x)) == pytest.approx(eps, rel=1e-8)
    gaps = decompose.target_gap(frozen)[:, 0].numpy()
    assert gaps[0] == pytest.approx(math.sqrt((M - 1) / M), rel=1e-12)
    for eps in (0.3, 0.1):
        seen = decompose.first_crossing(frozen.steps.numpy(), gaps, eps)
        assert abs(seen - float(decompose.fit_time(M, K, eta, eps))) <= 1.5
    assert math.isnan(decompose.first_crossing([0, 1], [1.0, 0.9], 0.1))
    np.testing.assert_allclose(decompose.fit_time(M, K, eta, [0.5, 0.1]),
                               [decompose.fit_time(M, K, eta, 0.5), decompose.fit_time(M, K, eta, 0.1)])
    with pytest.raises(ValueError, match="eps must be in"):
        decompose.fit_time(M, K, eta, 0.999)
    with pytest.raises(ValueError, match="eta_y"):
        decompose.fit_time(M, K, -1.0, 0.1)
    with pytest.raises(ValueError, match="same length"):
        decompose.first_crossing([0, 1, 2], [1.0, 0.5], 0.6)


# --- Chapter 3 figures ---------------------------------------------------------------------
def test_fig8_data_matches_lemma7():
    result = ch3_y_dynamics.fig8(quick=True)
    plt.close(result.figure)
    panels = result.data["panels"]
    assert [p["M"] for p in panels] == [50, 1000]
    assert [c["eta_y"] for c in panels[0]["curves"]] == [0.1, 0.2, 0.5, 1.0, 2.0]
    assert [c["eta_y"] for c in panels[1]["curves"]] == [0.2, 0.5, 1.0, 2.0, 4.0]
    for panel in panels:
        for c in panel["curves"]:
            assert 0 < c["min_gap"] <= c["max_gap"] <= c["bound"]
            assert c["final_gap"] < c["max_gap"]
    gap = {c["eta_y"]: c["max_gap"] for c in panels[0]["curves"]}
    assert gap[0.5] == pytest.approx(0.0019, abs=1e-4) and gap[2.0] == pytest.approx(0.0085, abs=1e-4)


def test_gamma_stages_are_the_leading_terms():
    M, K, eta = 66, 3, 2.0
    t0p = float(theory.t0_prime(M, K, eta))
    early, late = ch3_y_dynamics.gamma_stages(np.array([t0p / 100, 100 * t0p]), M, K, eta)
    g = theory.gamma(np.array([t0p / 100, 100 * t0p]), M, K, eta)
    assert g[0] / early[0] == pytest.approx(1, abs=0.02)
    assert g[1] / late[1] == pytest.approx(1, abs=0.1)
    _, late0 = ch3_y_dynamics.gamma_stages(np.array([0.0]), M, K, eta)
    assert np.isnan(late0[0])
    with pytest.raises(ValueError, match="eta_y"):
        ch3_y_dynamics.gamma_stages(np.array([1.0]), M, K, 0.0)
    with pytest.raises(ValueError, match="t must be"):
        ch3_y_dynamics.gamma_stages(np.array([-1.0]), M, K, 1.0)
    plt.close("all")
    with pytest.raises(ValueError, match="stages_eta"):  # checked before any figure is made
        ch3_y_dynamics.gamma_figure(M, K, [1.0], 60, stages_eta=0.0)
    assert plt.get_fignums() == []
    # the peak lies before t0' (errata: not inside [t0', t0])
    for M_, K_ in ((66, 3), (1000, 10), (50, 1)):
        ratio = float(theory.gamma_peak(M_, K_, 1.0) / theory.t0_prime(M_, K_, 1.0))
        assert 0.75 < ratio < 0.95


def test_chapter3_figures_and_frames_leave_no_figure_open(frozen):
    plt.close("all")
    m = decompose.measure_theorem1(frozen)
    figs = [result.figure for result in (ch3_y_dynamics.gamma_figure(CH3.M, CH3.K, [0.5, 2.0], 60,
                            measured={2.0: (m.steps[1:], m.coefficients[1:, 0, 0].numpy())},
                            stages_eta=2.0),
            ch3_y_dynamics.gamma_figure(CH3.M, CH3.K, [1.0], 60),
            ch3_y_dynamics.theorem1_figure(m, "title"))]
    assert len(figs[0].axes) == 2 and len(figs[1].axes) == 1
    frames, labels = ch3_y_dynamics.gradient_scrubber_frames(frozen, every=20)
    assert labels == ["1", "21", "41"] and all(f.startswith(b"\x89PNG") for f in frames)
    assert plt.get_fignums() == []


def test_h_explorer_updates_in_place():
    explorer = ch3_y_dynamics.HExplorer(horizon=40)
    explorer.update(M=200, K=4, eta_y=0.5)
    x, y = explorer.g_line.get_data()
    np.testing.assert_allclose(y, theory.gamma(explorer.t, 200, 4, 0.5))
    assert explorer.t0.get_xdata()[0] == pytest.approx(float(theory.t0(200, 4, 0.5)))
    with pytest.raises(ValueError, match="M"):
        explorer.update(M=1)


# --- Chapter 3 checks ---------------------------------------------------------------------
def test_ch3_checks_accept_the_references():
    assert "all" in ch3.check_h_star(lambda s, M, eta_y: theory.h_star(np.arange(s + 1), M, eta_y))


def test_ch3_checks_explain_wrong_answers():
    def off_by_one(s, M, eta_y):
        return theory.h_star(np.arange(s), M, eta_y)

    def forgot_m_minus_1(s, M, eta_y):
        out = np.zeros(s + 1)
        for k in range(1, s + 1):
            out[k] = out[k - 1] + eta_y / (M + np.exp(M * out[k - 1]))
        return out

    with pytest.raises(CheckFailed, match="shape"):
        ch3.check_h_star(off_by_one)
    with pytest.raises(CheckFailed, match="expected"):
        ch3.check_h_star(forgot_m_minus_1)
    transposed = lambda Y, f, t: decompose.backprop_gradient(Y.T.contiguous(), f, t)  # noqa: E731
    with pytest.raises(CheckFailed, match="Reminder"):
        ch3.check_backprop_gradient(transposed)
    flipped = lambda Y, f, t: -decompose.backprop_gradient(Y, f, t)  # noqa: E731
    with pytest.raises(CheckFailed, match="opposite sign"):
        ch3.check_backprop_gradient(flipped)


# === Chapter 4 ================================================================================
from scansnap import metrics, train  # noqa: E402
from scansnap.checks import ch4  # noqa: E402
from scansnap.chapters import ch4_fates_of_tokens  # noqa: E402

SYN = syn_small()


@pytest.fixture(scope="module")
def sgd_short():
    """The Fig 4 command, shortened: both learning rates, every step recorded up to 50."""
    return ch4_fates_of_tokens.fig4_run(eta_y=[1.0, 10.0], eta_z=1.0, steps=50, batch_size=64, record_every=1,
                       progress=False)


# --- TF-IDF and the sharpening exponent ------------------------------------------------------
def test_tfidf_zeroes_common_tokens_and_follows_p_on_distinct():
    scores = decompose.tfidf(SYN)
    assert scores.shape == (2, 34) and scores.dtype == torch.float64
    torch.testing.assert_close(scores.sum(-1), torch.ones(2, dtype=torch.float64))
    assert torch.all(scores[:, SYN.common_tokens(0)] == 0)
    d = SYN.distinct_tokens(0)
    p = SYN.probs()[0, d]
    torch.testing.assert_close(scores[0, d], p / p.sum())
    torch.testing.assert_close(decompose.tfidf_scores(SYN.probs()), scores)
    # every token in every class: no positive score, rows stay zero
    assert torch.all(decompose.tfidf_scores(torch.ones(3, 4, dtype=torch.float64)) == 0)
    with pytest.raises(ValueError, match="nonnegative"):
        decompose.tfidf_scores(-torch.ones(2, 3))
    with pytest.raises(ValueError, match="probs"):
        decompose.tfidf_scores(torch.ones(3))
    with pytest.raises(TypeError):
        decompose.tfidf("classes")


def test_sharpening_exponent():
    P = SYN.probs()[0]
    assert decompose.sharpening_exponent(SYN, P) == pytest.approx(1.0, abs=1e-10)
    assert decompose.sharpening_exponent(SYN, P**2 / (P**2).sum()) == pytest.approx(2.0, abs=1e-10)
    with pytest.raises(ValueError, match="c"):
        decompose.sharpening_exponent(SYN, torch.ones(5))
    with pytest.raises(ValueError, match="n"):
        decompose.sharpening_exponent(SYN, P, n=2)


# --- Theorem 3 -------------------------------------------------------------------------------
def test_growth_budget_sums_xi_through_momentum():
    xi = torch.tensor([1.0, 2.0, 0.5, 0.0], dtype=torch.float64)
    B = decompose.growth_budget(xi, eta_z=2.0, K=2, momentum=0.5)
    v1, v2, v3 = 1.0, 0.5 * 1.0 + 2.0, 0.5 * 2.5 + 0.5
    torch.testing.assert_close(B, torch.tensor([0.0, v1, v1 + v2, v1 + v2 + v3],
                                                dtype=torch.float64))
    plain = decompose.growth_budget(xi[:, None].repeat(1, 3), eta_z=1.0, K=1)
    torch.testing.assert_close(plain[:, 1], torch.tensor([0.0, 1.0, 3.0, 3.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="momentum"):
        decompose.growth_budget(xi, eta_z=1.0, K=1, momentum=1.5)


def test_theorem3_identity_and_bounds_with_eta_y_much_larger():
    """η_Y = 100 η_Z in population dynamics: the identity holds to < 1% and the bounds hold,
    with the lower bound nearly tight while f_{n l0} is still f_{n l0}(0)."""
    run = population(SYN, eta_y=10.0, eta_z=0.1, steps=400, record_every=1)
    m = decompose.measure_theorem3(run, n=0)
    assert m.l0 == 19 and m.others.tolist() == list(range(10, 19))
    assert float(m.chi[-1]) > 1.05
    assert float(m.rel_error.max()) < 0.01
    assert bool(((m.lower <= m.chi * (1 + 1e-4)) & (m.chi <= m.upper)).all())
    torch.testing.assert_close(m.predicted[0], m.r[0])
    torch.testing.assert_close(m.r[0, 0], torch.tensor(99.0, dtype=torch.float64))
    # class 2's dominant token is the last of its block
    assert decompose.measure_theorem3(run, n=1).l0 == 29


def test_theorem3_identity_fails_at_equal_rates_for_close_competitors():
    run = population(SYN, eta_y=0.3, eta_z=0.3, steps=500, record_every=1)
    m = decompose.measure_theorem3(run)
    assert float(m.rel_error[-1, 0]) < 0.05 < 0.2 < float(m.rel_error[-1, -1])
    assert bool((m.r[-1, -1] < m.predicted[-1, -1]))  # close competitors grow faster
    assert bool((m.lower[-1] > m.chi[-1]))  # the lower bound fails off Eqn 10


def test_theorem3_bounds_only_with_every_step_and_sgd(sgd_short):
    m = decompose.measure_theorem3(sgd_short, 0)
    late = slice(6, None)  # with batch 64, χ trails the lower bound for steps 2–5 (sampling noise)
    assert m.B is not None
    assert bool(((m.lower[late] <= m.chi[late]) & (m.chi[late] <= m.upper[late])).all())
    coarse = ch4_fates_of_tokens.fig4_run(eta_y=1.0, steps=6, batch_size=8, record_every=2, progress=False)
    assert decompose.measure_theorem3(coarse).B is None
    adam = ch4_fates_of_tokens.fig4_run(eta_y=0.1, eta_z=0.1, optimizer="adam", steps=3, batch_size=8,
                       record_every=1, progress=False)
    assert decompose.measure_theorem3(adam).B is None
    with pytest.raises(ValueError, match="n must be"):
        decompose.measure_theorem3(sgd_short, 0, n=5)


# --- Theorem 2 in the Fig 4 run, and the Chapter 4 figures -----------------------------------
def test_theorem2_fates_in_the_fig4_run(sgd_short):
    Z = sgd_short.Z[0, -1].double()
    assert bool((metrics.common_logits(SYN, Z) < 0).all())
    top = metrics.distinct_logits(SYN, Z)[:, -5:]
    assert bool((top > 0).all()) and bool((top.diff(dim=-1) > 0).all())


def test_fig4_reuses_a_run_and_validates(sgd_short):
    plt.close("all")
    with pytest.raises(ValueError, match="run must be"):
        ch4_fates_of_tokens.fig4(run=ch4_fates_of_tokens.fig4_run(eta_y=1.0, steps=2, batch_size=4, progress=False))
    result = ch4_fates_of_tokens.fig4(run=sgd_short)
    plt.close(result.figure)
    lo, hi = result.data["panels"]
    assert result.data["final_iteration"] == 48 and result.data["iterations"][-1] == 48
    assert hi["distinct_entropy_final"] > lo["distinct_entropy_final"]
    assert hi["common_mass_final"] > lo["common_mass_final"]
    assert len(lo["c1_rows"]) == 7 and len(lo["c1_rows"][0]) == 20
    assert lo["loss"][0] == pytest.approx(math.log(34), rel=1e-6)
    frames, labels = ch4_fates_of_tokens.attention_scrubber_frames(sgd_short, steps=[0, 2, 48])
    assert labels == ["0", "2", "48"] and all(f.startswith(b"\x89PNG") for f in frames)
    with pytest.raises(ValueError, match="recorded steps"):
        ch4_fates_of_tokens.attention_scrubber_frames(sgd_short, steps=[0, 500])
    trajectories = ch4_fates_of_tokens.logit_trajectories(sgd_short)
    first_common = trajectories.figure.axes[0].get_lines()[0].get_ydata()
    np.testing.assert_allclose(np.asarray(trajectories.data["common"])[:, 0], first_common)
    m = [decompose.measure_theorem3(sgd_short, i) for i in range(2)]
    result = ch4_fates_of_tokens.theorem3_figure(m, ["a", "b"])
    assert len(result.figure.axes) == 4 and set(result.data) == {"a", "b"}
    with pytest.raises(ValueError, match="equal length"):
        ch4_fates_of_tokens.theorem3_figure(m, ["a"])
    assert plt.get_fignums() == []


def test_training_explorer_updates_in_place():
    explorer = ch4_fates_of_tokens.TrainingExplorer(steps=6, batch_size=16)
    explorer.update(eta_y=1.0, eta_z=1.0, optimizer="sgd")
    heights = np.array([b.get_height() for b in explorer.bars])
    assert heights.sum() == pytest.approx(1.0, abs=1e-5) and "SGD" in explorer.ax.get_title()
    explorer.update(eta_y=0.5, eta_z=0.5, optimizer="adam")
    assert "ADAM" in explorer.ax.get_title()
    explorer.update(eta_y=1e30, eta_z=1e30)
    assert "DIVERGED" in explorer.ax.get_title()
    with pytest.raises(ValueError, match="optimizer"):
        explorer.update(optimizer="lbfgs")
    with pytest.raises(ValueError, match="steps"):
        ch4_fates_of_tokens.TrainingExplorer(steps=0)


def test_population_explorer_updates_in_place():
    explorer = ch4_fates_of_tokens.PopulationExplorer(steps=5)
    explorer.update(eta_y=1.0, eta_z=1.0)
    heights = np.array([b.get_height() for b in explorer.bars])
    assert heights.sum() == pytest.approx(1.0, abs=1e-9) and "population" in explorer.ax.get_title()
    assert explorer.ax.get_ylim() == (0, 0.5) and plt.get_fignums() == []


# --- Figs 4, 5, 8 from the command line ---------------------------------------------------
@pytest.mark.parametrize("number", [4, 5, 8])
def test_cli_writes_png_and_json(number, tmp_path, capsys):
    assert main(["figure", str(number), "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    png, js = tmp_path / f"fig{number}.png", tmp_path / f"fig{number}.json"
    assert png.read_bytes().startswith(b"\x89PNG")
    data = json.loads(js.read_text())
    assert data["quick"] is True and data["panels"]
    if number == 5:
        assert data["etas"] == [0.1, 0.5, 1.0]
        assert all(len(p["top3_distinct_final"]) == 3 for p in data["panels"])
    plt.close("all")


# --- Chapter 4 checks ---------------------------------------------------------------------
def test_ch4_checks_accept_the_references():
    assert "all" in ch4.check_relative_gain(lambda c, l, lp: c[..., l] ** 2 / c[..., lp] ** 2 - 1)


def test_ch4_checks_explain_wrong_answers():
    with pytest.raises(CheckFailed, match="expected"):
        ch4.check_relative_gain(lambda c, l, lp: c[..., l] / c[..., lp] - 1)  # not squared
    with pytest.raises(CheckFailed, match="last axis"):
        ch4.check_relative_gain(lambda c, l, lp: c[l] ** 2 / c[lp] ** 2 - 1)  # first axis
    def unnormalized(probs):
        K = probs.shape[0]
        return probs * torch.log(K / (probs > 0).sum(0).clamp_min(1).double())
    with pytest.raises(CheckFailed, match="Reminder"):
        ch4.check_tfidf(unnormalized)
    with pytest.raises(CheckFailed, match="squares"):
        ch4.check_relative_gain(lambda c, l, lp: c[..., l] / c[..., lp] - 1)
    def zero_row_nan(probs):  # 0/0 on a class whose every token is in every class
        score = probs * torch.log(probs.shape[0] / (probs > 0).sum(0).clamp_min(1).double())
        return score / score.sum(-1, keepdim=True)
    with pytest.raises(CheckFailed, match="stays zeros"):
        ch4.check_tfidf(zero_row_nan)


def test_lemma4_figure():
    from scansnap import mechanism

    run = population(mechanism.theorem4_classes(2), eta_y=1.0, eta_z=[0.01, 1.0], steps=20,
                     record_every=1)
    agreement = {f"ratio {r}": mechanism.lemma4_agreement(run, i) for i, r in enumerate((100, 1))}
    result = ch4_fates_of_tokens.lemma4_figure(agreement, tolerance=0.02)
    lines = result.figure.axes[0].get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), agreement["ratio 100"]["error"][1:])
    np.testing.assert_allclose(result.data["agreements"]["ratio 100"]["error"], lines[0].get_ydata())
    with pytest.raises(ValueError, match="agreements"):
        ch4_fates_of_tokens.lemma4_figure({}, tolerance=0.02)


def test_four_stages_are_measured_and_ordered():
    run = ch4_fates_of_tokens.fig4_run(eta_y=1.0, eta_z=1.0, record_every=1)
    result = ch4_fates_of_tokens.four_stages(run)
    plt.close(result.figure)
    s = result.data["stages"]
    assert s[0] == 0 and s[0] < s[1] < s[2] < s[3] <= 100
    mass = np.array(result.data["common_mass"])
    assert mass[s[1]] <= mass[0] - 0.5 * (mass[0] - mass[-1]) < mass[s[1] - 1]
    with pytest.raises(TypeError, match="run"):
        ch4_fates_of_tokens.four_stages("run")


def test_lemma5_errors_zero_on_lemma5_and_positive_off_it():
    M, K, eta_y = 40, 3, 1.0
    steps = np.arange(30)
    hs = theory.h_star(steps, M, eta_y / K)
    exact = np.zeros((len(steps), K, K))
    exact[:] = -hs[:, None, None]
    for n in range(K):
        exact[:, n, n] = (M - 1) * hs
    shifted = exact.copy()
    shifted[:, 0, 1] += 0.25
    errors = ch3_y_dynamics.lemma5_errors({"exact": (exact, M), "shifted": (shifted, M)}, steps, K, eta_y)
    assert errors["exact"]["max"] < 1e-12
    assert errors["shifted"]["off_diagonal"] == pytest.approx(0.25)
    assert errors["shifted"]["diagonal"] < 1e-12
    with pytest.raises(ValueError, match="rows"):
        ch3_y_dynamics.lemma5_errors({"bad": (exact[:, :2], M)}, steps, K, eta_y)
    with pytest.raises(ValueError, match="eta_y"):
        ch3_y_dynamics.lemma5_errors({"exact": (exact, M)}, steps, K, 0.0)
