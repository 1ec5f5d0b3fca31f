"""Checks of scansnap.theory against the paper (PAPER.md §D, items 1, 4, 5, 6, 9-11) in float64.

Tolerances are stated at each assertion. Everything here is deterministic and runs in a few seconds.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp
from scipy.optimize import brentq

from scansnap import theory

# ------------------------------------------------------------------------------------- Lemma 6


@pytest.mark.parametrize("M", [2, 3, 10, 50, 1000, 10**5])
def test_h_matches_brentq_root_on_grid(M):
    """h solves e^{Mh} + (M-1)Mh = M eta t + 1 (Lemma 6): agreement with an independent bracketed
    root solve to 1e-13 relative, including M = 1e5, t = 1e6 and eta_y up to 1e6 (no overflow)."""
    etas = [1e-3, 0.5, 1.0, 10.0, 1e3, 1e6]
    ts = [0.0, 1e-12, 1e-6, 1e-2, 1.0, 10.0, 1e3, 1e6]
    got = theory.h(np.array(ts)[:, None], M, np.array(etas)[None, :])
    assert got.shape == (len(ts), len(etas)) and got.dtype == np.float64
    for i, t in enumerate(ts):
        for j, eta in enumerate(etas):
            rhs = M * eta * t
            if rhs == 0:
                assert got[i, j] == 0.0
                continue

            def f(x, rhs=rhs):
                return math.expm1(x) + (M - 1) * x - rhs

            x_ref = brentq(
                f, 0.0, min(math.log1p(rhs), rhs / (M - 1)), xtol=1e-300, rtol=1e-15, maxiter=500
            )
            assert M * got[i, j] == pytest.approx(x_ref, rel=1e-13)
            # the defining equation itself, relative residual < 1e-10 (PAPER.md D.5)
            x = M * got[i, j]
            lhs = math.expm1(x) + (M - 1) * x
            assert abs(lhs - rhs) <= 1e-10 * rhs


def test_h_scalar_and_torch_inputs():
    value = theory.h(2.0, 50, 1.0)
    assert isinstance(value, float) and isinstance(value, np.float64)
    arr = theory.h(torch.tensor([0.0, 2.0], dtype=torch.float32), 50, 1.0)
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.shape == (2,)
    assert arr[1] == pytest.approx(value, rel=1e-15)
    assert theory.h(0, 50, 1.0) == 0.0
    # monotone increasing in t and in eta_y
    t = np.linspace(0, 100, 201)
    assert np.all(np.diff(theory.h(t, 50, 1.0)) > 0)
    assert theory.h(10.0, 50, 2.0) > theory.h(10.0, 50, 1.0)


# ------------------------------------------------------------------------------------- Lemma 5


@pytest.mark.parametrize("M,eta", [(7, 0.3), (7, 2.0), (30, 1.0)])
def test_lemma5_gradient_steps_exact(M, eta):
    """PAPER.md D.4: plain gradient steps of size eta on softmax-CE(w, n) from w = 0 give
    w_nn = (M-1) h*(s), w_nj = -h*(s), and alpha(s) = softmax(w(s-1)) as in Lemma 5 (rtol 1e-12)."""
    n, steps = 2, 40
    w = torch.zeros(M, dtype=torch.float64, requires_grad=True)
    s = np.arange(steps + 1)
    hs = theory.h_star(s, M, eta)
    a_nn, a_nj = theory.lemma5_alpha(s[1:], M, eta)
    for k in range(1, steps + 1):
        alpha = torch.softmax(w.detach(), 0)
        np.testing.assert_allclose(alpha[n].item(), a_nn[k - 1], rtol=1e-12)
        others = torch.cat([alpha[:n], alpha[n + 1 :]]).numpy()
        np.testing.assert_allclose(others, a_nj[k - 1], rtol=1e-12)
        loss = torch.nn.functional.cross_entropy(w[None], torch.tensor([n]))
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= eta * grad
        wd = w.detach().numpy()
        np.testing.assert_allclose(wd[n], (M - 1) * hs[k], rtol=1e-12)
        np.testing.assert_allclose(np.delete(wd, n), -hs[k], rtol=1e-12)


def test_h_star_recursion_and_shapes():
    M, eta = 50, 0.7
    hs = theory.h_star(np.arange(6), M, eta)
    ref = [0.0]
    for _ in range(5):
        ref.append(ref[-1] + eta / ((M - 1) + math.exp(M * ref[-1])))
    np.testing.assert_allclose(hs, ref, rtol=1e-15, atol=0)
    assert isinstance(theory.h_star(3, M, eta), np.float64)
    etas = np.array([0.5, 1.0, 2.0])
    both = theory.h_star(np.array([[3], [5]]), M, etas)
    assert both.shape == (2, 3)
    for i, s in enumerate([3, 5]):
        for j, eta_y in enumerate(etas):  # every entry: each eta_y has its own recursion
            assert both[i, j] == theory.h_star(s, M, eta_y)
    assert theory.h_star(torch.tensor([4]), M, eta)[0] == theory.h_star(4, M, eta)
    # no overflow for huge M * h*
    big = theory.h_star(2000, 10**5, 1e4)
    assert np.isfinite(big) and big > 0


def test_h_star_fails_fast_beyond_its_step_bound():
    """h* is a recursion of s Python steps: s = 1e9 would run for minutes, so any s above
    H_STAR_MAX_STEPS is refused before the first step (well under a second, even on a loaded
    machine), with a message naming s and the accepted range."""
    start = time.perf_counter()
    for s in (10**9, [5, theory.H_STAR_MAX_STEPS + 1]):
        with pytest.raises(ValueError, match=f"s must be an integer >= 0 and <= {10**6}"):
            theory.h_star(s, 50, 1.0)
    assert time.perf_counter() - start < 1.0
    assert theory.H_STAR_MAX_STEPS == 10**6


# ------------------------------------------------------------------------------------- Lemma 7


@pytest.mark.parametrize("M", [50, 1000])
@pytest.mark.parametrize("eta", [0.1, 0.5, 1.0, 2.0, 4.0])
def test_lemma7_gap_bounds(M, eta):
    """0 <= h*(s) - h(s) <= 2 eta / M (Lemma 7), to 1e-15 absolute, and the gap tends to 0."""
    s = np.arange(0, 2001)
    gap = theory.h_star(s, M, eta) - theory.h(s, M, eta)
    assert gap.min() >= -1e-15
    assert gap.max() <= 2 * eta / M + 1e-15
    late = theory.h_star(10**5, M, eta) - theory.h(10**5, M, eta)
    assert 0 <= late < 0.01 * gap.max()  # gap -> 0


def test_lemma7_reproduces_fig8_numbers():
    """[R] (PAPER.md D.5): M = 50, t <= 80, max gap 0.0019 at eta 0.5 and 0.0085 at eta 2.
    We get 0.001896 and 0.008483: equal after rounding to the 4 printed decimals (tol 5e-5)."""
    s = np.arange(0, 81)
    for eta, expected in [(0.5, 0.0019), (2.0, 0.0085)]:
        gap = theory.h_star(s, 50, eta) - theory.h(s, 50, eta)
        assert abs(gap.max() - expected) <= 5e-5


# ------------------------------------------------------------------------------ gamma, Lemma 9


@pytest.mark.parametrize(
    "M,K,eta", [(1000, 10, 0.5), (1000, 10, 5.0), (100, 1, 1.0), (50, 3, 2.0), (10**5, 1, 1.0)]
)
def test_gamma_two_stages(M, K, eta):
    """PAPER.md D.6 / Lemma 9: gamma increases (nearly linearly at first), peaks, then decays like
    K ln(M eta t / K) / (eta t).

    Where the peak is: D.6 says "between t0' and t0". The exact gamma peaks where
    e^x (x - 1) = M - 1 (x = M h), at t* = K(ln M - ln ln M + O(1))/eta: 0.82 t0' for M = 1000,
    0.86 t0' for M = 100, 0.90 t0' for M = 50 -- i.e. just *before* t0' = K ln M / eta for every
    M >= 30 (after it only for tiny M, e.g. 1.58 t0' at M = 4). Lemma 9 itself only bounds gamma
    on either side, so this is a wording issue, not a contradiction; the test pins the exact peak."""
    tp, t0 = theory.t0_prime(M, K, eta), theory.t0(M, K, eta)
    peak = theory.gamma_peak(M, K, eta)
    grid = np.linspace(0, 3 * t0, 300001)
    g = theory.gamma(grid, M, K, eta)
    assert grid[np.argmax(g)] == pytest.approx(peak, abs=3 * grid[1])  # grid resolution
    assert 0.75 * tp < peak < tp  # before t0' (see docstring), well before t0
    rising = grid <= peak
    assert np.all(np.diff(g[rising]) > 0) and np.all(np.diff(g[~rising]) < 0)
    # nearly linear at the start: gamma ~ (M-1)^2 eta t /(K M^2) for t << t0' (2% at t = t0'/100)
    t_small = tp / 100
    lin = (M - 1) ** 2 * eta * t_small / (K * M**2)
    assert theory.gamma(t_small, M, K, eta) == pytest.approx(lin, rel=0.02)
    # late: gamma * eta t / (K ln(M eta t/K)) -> ((M-1)/M)^2; within 15% at 1e4 t0, 1% at 1e12 t0
    for factor, tol in [(1e4, 0.15), (1e12, 0.01)]:
        t = factor * t0
        ratio = theory.gamma(t, M, K, eta) * eta * t / (K * math.log(M * eta * t / K))
        assert ratio == pytest.approx(((M - 1) / M) ** 2, rel=tol)
    assert np.all(np.diff(theory.gamma(np.geomspace(t0, 1e9 * t0, 50), M, K, eta)) < 0)


def test_gamma_no_overflow():
    g = theory.gamma(np.array([0.0, 1.0, 1e6]), 10**5, 1, 1e6)
    assert np.all(np.isfinite(g)) and g[0] == 0 and np.all(g[1:] > 0)


# --------------------------------------------------------------------------- Gamma (Eqn 128)


@pytest.mark.parametrize(
    "M,K,eta_y,eta_z", [(1000, 10, 1.0, 0.5), (100, 1, 10.0, 1.0), (50, 2, 0.3, 3.0)]
)
def test_Gamma_equals_quadrature(M, K, eta_y, eta_z):
    """Eqn 128: eta_z * int_0^t gamma = (eta_z/eta_y) K (M-1)^2/2 h(t/K)^2 (quadrature, rtol 1e-9)."""
    for t in [0.5, theory.t0_prime(M, K, eta_y), 3 * theory.t0(M, K, eta_y)]:
        val, _ = quad(
            lambda s: eta_z * theory.gamma(s, M, K, eta_y), 0, t, epsabs=0, epsrel=1e-12, limit=200
        )
        assert theory.Gamma(t, M, K, eta_y, eta_z) == pytest.approx(val, rel=1e-9)
    assert theory.Gamma(0.0, M, K, eta_y, eta_z) == 0.0


# ----------------------------------------------------------------------- Theorem 4 closed form


@pytest.mark.parametrize(
    "M,K,eta_y,eta_z,C0",
    [(1000, 10, 1.0, 0.5, 0.00625), (100, 1, 10.0, 1.0, 1.0), (50, 2, 2.0, 2.0, 0.3)],
)
def test_z_common_solves_eqn13(M, K, eta_y, eta_z, C0):
    """PAPER.md D.10: integrating z' = -C0^{-1} eta_z gamma(t) e^{4z}, z(0) = 0 (solve_ivp, rtol
    1e-10) matches z_common = -1/4 ln(1 + 4 Gamma/C0) within 1e-8 absolute. The ODE only uses
    gamma (Lemma 9), so this checks the closed form of Gamma, B and z_common independently."""
    t_end = 3 * theory.t0(M, K, eta_y)
    ts = np.linspace(0, t_end, 25)
    sol = solve_ivp(
        lambda t, z: -eta_z * theory.gamma(t, M, K, eta_y) * np.exp(4 * z) / C0,
        (0, t_end),
        [0.0],
        t_eval=ts,
        rtol=1e-10,
        atol=1e-12,
        method="DOP853",
    )
    assert sol.success
    assert sol.y[0, -1] < -0.1  # the logit actually moved
    np.testing.assert_allclose(
        sol.y[0], theory.z_common(ts, M, K, eta_y, eta_z, C0), atol=1e-8, rtol=0
    )


# ---------------------------------------------------------------------- Theorem 4 transition


def test_B_convention_and_printed_erratum():
    """B(0) = 0 by definition (Theorem 3); the printed Eqn 129 gives 1/4 ln C0 at t = 0 (PAPER.md A.6).
    The two differ by exactly 1/4 ln C0 at every t."""
    M, K, ey, ez, C0 = 1000, 10, 1.0, 0.5, 0.00625
    assert theory.B(0.0, M, K, ey, ez, C0) == 0.0
    assert theory.B_printed(0.0, M, K, ey, ez, C0) == pytest.approx(0.25 * math.log(C0), rel=1e-15)
    assert theory.B_printed(0.0, M, K, ey, ez, C0) != 0.0
    t = np.linspace(0, 700, 15)
    np.testing.assert_allclose(
        theory.B_printed(t, M, K, ey, ez, C0) - theory.B(t, M, K, ey, ez, C0),
        0.25 * math.log(C0),
        rtol=1e-12,
    )
    assert np.all(np.diff(theory.B(t, M, K, ey, ez, C0)) > 0)
    # with C0 = 1 the conventions coincide
    np.testing.assert_allclose(
        theory.B_printed(t, M, K, ey, ez, 1.0), theory.B(t, M, K, ey, ez, 1.0), rtol=1e-14, atol=0
    )


def test_t0_values_fig3():
    """PAPER.md B.6 / D.11: K = 10, M = 1000: t0 = 276.3, 138.2, 69.1, 27.6 (to the printed 0.05)."""
    got = theory.t0(1000, 10, [0.5, 1.0, 2.0, 5.0])
    np.testing.assert_allclose(got, [276.3, 138.2, 69.1, 27.6], atol=0.05)
    np.testing.assert_allclose(theory.t0_prime(1000, 10, [0.5, 1, 2, 5]), got / 2, rtol=1e-15)
    assert isinstance(theory.t0(1000, 10, 1.0), np.float64)


def test_fig3_growth_factor_scale():
    """PAPER.md B.6 [R]: with C0 = 0.00625, chi(700) = e^{2B(700)} ~ 572, 439, 332, 227 for
    eta_y = 0.5, 1, 2, 5 (eta_z = 0.5, K = 10, M = 1000); matches to the printed 3 digits (0.5)."""
    got = theory.chi(700.0, 1000, 10, [0.5, 1.0, 2.0, 5.0], 0.5, 0.00625)
    np.testing.assert_allclose(got, [572, 439, 332, 227], atol=0.5)
    assert np.all(np.diff(got) < 0)  # a larger eta_y ends with a smaller chi


def test_dB_dlog_t_analytic_and_regimes():
    """PAPER.md D.11: dB/d ln t = 1/2 in the scanning window (4 Gamma >> C0, t << t0'), then
    ~ 1/(2 ln(M eta_y t/K)) after t0; checked against central finite differences (rtol 1e-6)."""
    M, K, ey, ez, C0 = 1000, 10, 1.0, 0.5, 1e-6
    args = (M, K, ey, ez, C0)
    t = np.geomspace(0.1, 1e7, 40)
    d = 1e-5
    fd = (theory.B(t * math.exp(d), *args) - theory.B(t * math.exp(-d), *args)) / (2 * d)
    np.testing.assert_allclose(theory.dB_dlog_t(t, *args), fd, rtol=1e-6)
    assert theory.dB_dlog_t(0.0, *args) == 0.0
    # scanning: t in [0.5, t0'/20], where 4 Gamma/C0 >= 50 and h is still linear -> 1/2 within 3%
    tp = theory.t0_prime(M, K, ey)
    early = np.geomspace(0.5, tp / 20, 10)
    assert np.all(4 * theory.Gamma(early, M, K, ey, ez) / C0 > 50)
    np.testing.assert_allclose(theory.dB_dlog_t(early, *args), 0.5, rtol=0.03)
    # snapping: 1/(2 ln(M eta t/K)) within 15% at 10^3 t0 and 3% at 10^12 t0 (asymptotic: h lags
    # ln(M eta t/K)/M by O(ln ln / M))
    for factor, tol in [(1e3, 0.15), (1e12, 0.03)]:
        tl = factor * theory.t0(M, K, ey)
        assert theory.dB_dlog_t(tl, *args) == pytest.approx(
            1 / (2 * math.log(M * ey * tl / K)), rel=tol
        )


def test_scanning_and_snapping_asymptotes():
    """Theorem 4's two lines (B(0) = 0 convention) track B in their regimes, and each equals the
    printed line minus 1/4 ln C0."""
    M, K, ey, ez, C0 = 1000, 10, 1.0, 0.5, 0.00625
    args = (M, K, ey, ez, C0)
    tp, t0 = theory.t0_prime(M, K, ey), theory.t0(M, K, ey)
    early = np.linspace(0, tp / 10, 20)
    np.testing.assert_allclose(
        theory.B_scanning(early, *args), theory.B(early, *args), rtol=0.01, atol=1e-12
    )
    assert np.all(theory.B_scanning(early, *args) >= theory.B(early, *args) - 1e-12)  # h <= eta t/M
    for factor, tol in [(10, 0.1), (1e6, 0.01), (1e12, 0.005)]:
        assert theory.B_snapping(factor * t0, *args) == pytest.approx(
            theory.B(factor * t0, *args), rel=tol
        )
    assert theory.B_snapping(0.0, *args) == 0.0 and theory.B_scanning(0.0, *args) == 0.0
    # relation to the printed Theorem 4 lines
    t = 50.0
    printed_scan = 0.25 * math.log(C0 + 2 * (M - 1) ** 2 / (K * M**2) * ey * ez * t**2)
    assert theory.B_scanning(t, *args) == pytest.approx(
        printed_scan - 0.25 * math.log(C0), rel=1e-13
    )
    t = 500.0
    printed_snap = 0.25 * math.log(
        C0 + 2 * K * (M - 1) ** 2 / M**2 * ez / ey * math.log(M * ey * t / K) ** 2
    )
    assert theory.B_snapping(t, *args) == pytest.approx(
        printed_snap - 0.25 * math.log(C0), rel=1e-13
    )


@pytest.mark.parametrize("eta_y,eta_z", [(2.5, 0.4), (0.3, 3.0)])
def test_theorem4_lines_typed_from_the_paper(eta_y, eta_z):
    """PAPER.md A.6, Theorem 4's two printed lines typed out, minus 1/4 ln C0 (the B(0) = 0
    convention), with eta_y != 1 and eta_z != 1 so that eta_y eta_z and eta_z/eta_y differ from
    their inverses (rel 1e-13). B_snapping at t = 0 is 0 without a divide-by-zero warning (a
    chapter would print it to stderr)."""
    M, K, C0 = 200, 3, 0.05
    args = (M, K, eta_y, eta_z, C0)
    t = np.array([0.5, 4.0, 30.0]) * theory.t0(M, K, eta_y)
    scan = 0.25 * np.log(C0 + 2 * (M - 1) ** 2 / (K * M**2) * eta_y * eta_z * t**2)
    snap = 0.25 * np.log(
        C0 + 2 * K * (M - 1) ** 2 / M**2 * eta_z / eta_y * np.log(M * eta_y * t / K) ** 2
    )
    np.testing.assert_allclose(theory.B_scanning(t, *args), scan - 0.25 * math.log(C0), rtol=1e-13)
    np.testing.assert_allclose(theory.B_snapping(t, *args), snap - 0.25 * math.log(C0), rtol=1e-13)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert theory.B_snapping(0.0, *args) == 0.0


def test_learning_rate_dependence():
    """PAPER.md A.6 insights / D.11: at large t, B decreases in eta_y with eta_z fixed, and increases
    in eta_z with nu = eta_y/eta_z fixed."""
    M, K, C0 = 1000, 10, 0.00625
    t = 5000.0
    b_y = theory.B(t, M, K, np.array([0.5, 1, 2, 5, 10]), 0.5, C0)
    assert np.all(np.diff(b_y) < 0)
    ez = np.array([0.5, 1, 2, 4, 8])
    b_z = theory.B(t, M, K, 10 * ez, ez, C0)
    assert np.all(np.diff(b_z) > 0)


def test_fig9_B_at_t0_independent_of_eta_z():
    """PAPER.md B.7 / D.11: K = 1, C0 = 1: B(t0) = 0.510 (nu = 10, M = 100) and 1.382 (nu = 1,
    M = 10000) for every eta_z (to 1e-12 relative across eta_z; 5e-4 vs the printed 3 decimals);
    B(5) rises 0.620 -> 0.783 with eta_z (nu = 10). With C0 = 1 the printed Eqn 129 and B(0) = 0
    conventions coincide, so these numbers cannot tell them apart."""
    for nu, M, expected in [(10, 100, 0.510), (1, 10000, 1.382)]:
        ez = np.array([0.5, 1, 2, 4, 8])
        ey = nu * ez
        b = theory.B(theory.t0(M, 1, ey), M, 1, ey, ez, 1.0)
        np.testing.assert_allclose(b, b[0], rtol=1e-12)
        assert abs(b[0] - expected) < 5e-4
        assert theory.B_printed(theory.t0(M, 1, ey[0]), M, 1, ey[0], ez[0], 1.0) == pytest.approx(
            b[0]
        )
    b5 = theory.B(5.0, 100, 1, 10 * np.array([0.5, 8]), np.array([0.5, 8]), 1.0)
    np.testing.assert_allclose(b5, [0.620, 0.783], atol=5e-4)
    # at other C0 B(t0) is still independent of eta_z (Gamma(t0) depends on nu only)
    ez = np.array([0.5, 2.0])
    b = theory.B(theory.t0(100, 3, 10 * ez), 100, 3, 10 * ez, ez, 0.2)
    assert b[0] == pytest.approx(b[1], rel=1e-12)


def test_chi_bounds_typed_from_theorem3():
    B = np.array([0.0, 0.3, 2.0])
    lo, hi = theory.chi_bounds(B, 0.4)
    np.testing.assert_allclose(lo, np.exp(2 * 0.16 * B), rtol=1e-15)
    np.testing.assert_allclose(hi, np.exp(2 * B), rtol=1e-15)
    assert np.all(lo <= hi)


@pytest.mark.parametrize(
    "M,K,eta_y,eta_z,C0", [(1000, 10, 1.0, 0.5, 0.00625), (50, 3, 2.0, 4.0, 0.7)]
)
def test_chi_equals_growth_from_quadrature(M, K, eta_y, eta_z, C0):
    """App. F: e^{-4z} = 1 + 4 Gamma/C0 and chi = e^{2B} = e^{-2z}, so chi(t) = sqrt(1 + 4 Gamma/C0)
    with Gamma = eta_z int_0^t gamma computed here by quadrature of gamma (not by Eqn 128, B or
    z_common); rtol 1e-9. chi(0) = 1 and chi grows."""
    ts = [0.0, 3.0, theory.t0_prime(M, K, eta_y), 2 * theory.t0(M, K, eta_y)]
    got = theory.chi(np.array(ts), M, K, eta_y, eta_z, C0)
    for t, value in zip(ts, got):
        Gamma, _ = quad(lambda s: eta_z * theory.gamma(s, M, K, eta_y), 0, t, epsrel=1e-12,
                        epsabs=0, limit=200)
        assert value == pytest.approx(math.sqrt(1 + 4 * Gamma / C0), rel=1e-9)
    assert got[0] == 1.0 and np.all(np.diff(got) > 0) and got[-1] > 2


# ------------------------------------------------------------------------------ Lemma 1 (Eqn 3)


def _autograd_lemma1(Y, Z, context, query, target, normalize):
    """The forward pass of PAPER.md A.1-A.2, differentiated by torch autograd."""
    Y = Y.clone().requires_grad_(True)
    Z = Z.clone().requires_grad_(True)
    X = torch.nn.functional.one_hot(context, Y.shape[0]).to(Y.dtype)
    b = torch.softmax(Z[query, context], 0)
    v = X.T @ b
    u = v / torch.linalg.vector_norm(v) if normalize else v
    loss = -torch.log_softmax(Y.T @ u, 0)[target]
    return torch.autograd.grad(loss, (Y, Z))


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_lemma1_matches_autograd(seed, normalize):
    """PAPER.md D.1: Eqn 3 closed form (with the projector P^perp_v/||v||) equals autograd of the
    cross-entropy, float64 rtol 1e-8; only row `query` of grad_Z is nonzero; row sums are 0."""
    g = torch.Generator().manual_seed(seed)
    M = 5 + seed
    Y = torch.randn(M, M, generator=g, dtype=torch.float64)
    Z = 2 * torch.randn(M, M, generator=g, dtype=torch.float64)
    context = torch.randint(0, M, (7 + 2 * seed,), generator=g)
    query, target = (
        int(torch.randint(0, M, (1,), generator=g)),
        int(torch.randint(0, M, (1,), generator=g)),
    )
    gY, gZ = theory.lemma1_gradients(Y, Z, context, query, target, normalize=normalize)
    aY, aZ = _autograd_lemma1(Y, Z, context, query, target, normalize)
    assert gY.dtype == gZ.dtype == torch.float64
    torch.testing.assert_close(gY, aY, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(gZ, aZ, rtol=1e-8, atol=1e-12)
    others = torch.ones(M, dtype=torch.bool)
    others[query] = False
    assert torch.all(gZ[others] == 0) and torch.any(gZ[query] != 0)
    # invariant Y'1 = Z'1 = 0 (PAPER.md A.2)
    assert torch.all(gY.sum(1).abs() < 1e-12) and torch.all(gZ.sum(1).abs() < 1e-12)


def test_lemma1_accepts_lists_and_numpy():
    M = 4
    Y = np.eye(M) - 0.25
    Z = np.zeros((M, M))
    gY, gZ = theory.lemma1_gradients(Y, Z, [0, 1, 1, 2], 3, 2)
    aY, aZ = _autograd_lemma1(
        torch.from_numpy(Y), torch.from_numpy(Z), torch.tensor([0, 1, 1, 2]), 3, 2, True
    )
    torch.testing.assert_close(gY, aY, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(gZ, aZ, rtol=1e-8, atol=1e-12)


# ----------------------------------------------------------------- xi, Lemma 4, Theorems 2-3


def _toy_classes():
    """M = 8: token 0 is the shared query, 1 the single common token, 2-4 distinct for class 0,
    5-7 distinct for class 1 (weights 1 for common, 0.2/0.5/1 for distinct)."""
    probs = torch.zeros(2, 8, dtype=torch.float64)
    probs[:, 1] = 1.0
    probs[0, 2:5] = torch.tensor([0.2, 0.5, 1.0])
    probs[1, 5:8] = torch.tensor([0.3, 0.6, 0.9])
    probs /= probs.sum(1, keepdim=True)
    return probs, torch.tensor([0, 0])


def test_attention_limit_is_overflow_safe():
    """Eqn 5 with logits of several hundred, one of them on a token outside class 0's support, and
    class 1 on another query row with small logits: equal to the softmax of log P + z (torch's
    own overflow-safe softmax) to 1e-12; tokens outside a support get exactly 0."""
    probs, _ = _toy_classes()
    queries = torch.tensor([0, 3])
    Z = torch.zeros(2, 8, 8, dtype=torch.float64)  # a batch of two snapshots
    Z[:, 0, 2:5] = torch.tensor([900.0, 905.0, 890.0], dtype=torch.float64)  # e^900 overflows
    Z[:, 0, 6] = 2000.0  # not in class 0's support: must not take the mass
    Z[1, 3] = torch.linspace(-1, 1, 8, dtype=torch.float64)
    c = theory.attention_limit(probs, Z, queries)
    want = torch.softmax(torch.log(probs) + Z[:, queries, :], dim=-1)
    torch.testing.assert_close(c, want, rtol=1e-12, atol=0)
    assert torch.all(torch.isfinite(c)) and torch.all(c[probs.expand_as(c) == 0] == 0)
    assert float(c[0, 0, 3]) > 0.99  # class 0 snapped to its largest logit


def test_lemma4_component_form_against_loops():
    """Eqn 10 vectorized == a literal double loop over n in psi^{-1}(m), n' != n (1e-13)."""
    g = torch.Generator().manual_seed(0)
    K, M = 4, 9
    f = torch.rand(3, K, M, generator=g, dtype=torch.float64)
    f = f / f.norm(dim=-1, keepdim=True)
    beta = torch.rand(3, K, K, generator=g, dtype=torch.float64)
    queries = torch.tensor([1, 1, 4, 1])
    gam = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    Zdot = theory.lemma4_zdot(f, beta, gam, queries, eta_z=0.7, M=M)
    assert Zdot.shape == (3, M, M)
    torch.testing.assert_close(Zdot, _lemma4_by_loops(f, beta, gam, queries, 0.7),
                               rtol=1e-13, atol=1e-15)
    # an unnormalized f: the n' = n term no longer vanishes by itself, so it must be excluded
    f_raw = 2 * torch.rand(3, K, M, generator=g, dtype=torch.float64)
    torch.testing.assert_close(theory.lemma4_zdot(f_raw, beta, gam, queries, 0.7),
                               _lemma4_by_loops(f_raw, beta, gam, queries, 0.7),
                               rtol=1e-13, atol=1e-15)
    # a scalar gamma is kept in float64 (1.3 is not a float32 number)
    torch.testing.assert_close(theory.lemma4_zdot(f, beta, 1.3, queries, 0.7),
                               _lemma4_by_loops(f, beta, torch.full((3,), 1.3,
                                                dtype=torch.float64), queries, 0.7),
                               rtol=1e-13, atol=1e-15)
    # gamma with two batch dimensions [2, 3] broadcasts against f's [3]
    two = theory.lemma4_zdot(f, beta, torch.stack([gam, 2 * gam]), queries, 0.7)
    assert two.shape == (2, 3, M, M)
    torch.testing.assert_close(two[1], 2 * Zdot, rtol=1e-13, atol=1e-15)
    rows = torch.ones(M, dtype=torch.bool)
    rows[[1, 4]] = False
    assert torch.all(Zdot[:, rows] == 0)
    # ||f_n|| = 1 makes every row sum of Eqn 10 vanish (the invariant Z'1 = 0)
    assert torch.all(Zdot.sum(-1).abs() < 1e-14)
    # xi (Theorem 1(a)) by loops, with a tensor gamma and with a scalar one (kept in float64)
    for gamma_arg, gamma_r in [(gam, gam), (1.3, torch.full((3,), 1.3, dtype=torch.float64))]:
        x = theory.xi(f_raw, beta, gamma_arg)
        for r in range(3):
            for n in range(K):
                want = gamma_r[r] * sum(
                    beta[r, n, n2] * (f_raw[r, n] @ f_raw[r, n2]) for n2 in range(K) if n2 != n
                )
                assert float(x[r, n]) == pytest.approx(float(want), rel=1e-13)


def _lemma4_by_loops(f, beta, gam, queries, eta_z):
    """Eqn 10 as a literal loop over n in psi^{-1}(m), l and n' != n."""
    R, K, M = f.shape
    ref = torch.zeros(R, M, M, dtype=torch.float64)
    for r in range(R):
        for n in range(K):
            m = int(queries[n])
            for l in range(M):
                acc = 0.0
                for n2 in range(K):
                    if n2 != n:
                        acc += beta[r, n, n2] * ((f[r, n] @ f[r, n2]) * f[r, n, l] - f[r, n2, l])
                ref[r, m, l] += eta_z * gam[r] * f[r, n, l] * acc
    return ref


def test_theorem2_signs_and_distinct_token_form():
    """Theorem 2: (a) distinct token l of n: z'_{ml} = eta_z f_nl^2 xi_n > 0; (b) the single common
    token: z'_{ml} = -eta_z sum_n (1 - f_nl^2) xi_n < 0 (beta = f^T f > 0, rtol 1e-12)."""
    probs, queries = _toy_classes()
    Z = torch.zeros(8, 8, dtype=torch.float64)
    Z[0] = torch.tensor([0.0, -0.3, 0.1, 0.4, 0.2, -0.1, 0.0, 0.5], dtype=torch.float64)
    f = theory.normalized_attention(theory.attention_limit(probs, Z, queries))
    beta = f @ f.T
    x = theory.xi(f, beta, 1.3)
    assert torch.all(x > 0)
    zd = theory.lemma4_zdot(f, beta, 1.3, queries, 0.5)[0]
    for n, distinct in [(0, [2, 3, 4]), (1, [5, 6, 7])]:
        torch.testing.assert_close(
            zd[distinct], 0.5 * f[n, distinct] ** 2 * x[n], rtol=1e-12, atol=0
        )
        assert torch.all(zd[distinct] > 0)
    common = -0.5 * ((1 - f[:, 1] ** 2) * x).sum()
    assert float(zd[1]) == pytest.approx(float(common), rel=1e-12) and zd[1] < 0


def test_theorem3_identity_and_bounds_along_eqn10():
    """PAPER.md D.8-D.9: integrating Eqn 10 (beta = f^T f, gamma = 1; solve_ivp rtol 1e-11):
    r_{l/l'|n}(t) = r(0) e^{2(z_ml(t) - z_ml(0))} (rel 1e-7); the dominant token's z and f rise;
    the common token's z' < 0; and e^{2 f0^2 B} <= chi_{l0} <= e^{2B} with B = eta_z int xi."""
    probs, queries = _toy_classes()
    eta_z, M, K = 5.0, 8, 2

    def rhs(_t, state):
        Z = torch.zeros(M, M, dtype=torch.float64)
        Z[0] = torch.from_numpy(state[:M])
        f = theory.normalized_attention(theory.attention_limit(probs, Z, queries))
        beta = f @ f.T
        zd = theory.lemma4_zdot(f, beta, 1.0, queries, eta_z)[0]
        return np.concatenate([zd.numpy(), eta_z * theory.xi(f, beta, 1.0).numpy()])

    ts = np.linspace(0, 40, 41)
    sol = solve_ivp(
        rhs, (0, 40), np.zeros(M + K), t_eval=ts, rtol=1e-11, atol=1e-13, method="DOP853"
    )
    assert sol.success
    z, Bn = sol.y[:M].T, sol.y[M:].T  # [S, M], [S, K]
    assert z[-1, 4] > 0.5  # it actually moved
    Zs = torch.zeros(len(ts), M, M, dtype=torch.float64)
    Zs[:, 0] = torch.from_numpy(z)
    f = theory.normalized_attention(theory.attention_limit(probs, Zs, queries))  # [S, K, M]
    for n, l, lp in [(0, 4, 2), (0, 3, 2), (0, 4, 3), (1, 7, 5)]:
        r = theory.relative_gain(f[:, n], l, lp).numpy()
        np.testing.assert_allclose(r, r[0] * np.exp(2 * (z[:, l] - z[0, l])), rtol=1e-7)
    assert np.all(np.diff(z[:, 4]) > 0) and np.all(np.diff(f[:, 0, 4].numpy()) > 0)
    assert np.all(np.diff(z[:, 1]) < 0)
    chi_l0 = np.exp(2 * (z[:, 4] - z[0, 4]))
    lo, hi = theory.chi_bounds(Bn[:, 0], float(f[0, 0, 4]))
    assert np.all(lo <= chi_l0 * (1 + 1e-9)) and np.all(chi_l0 <= hi * (1 + 1e-9))
    assert chi_l0[-1] > lo[-1] * 1.01 and chi_l0[-1] < hi[-1] * 0.99  # strict, not degenerate


def test_relative_gain_vectorized():
    f = torch.tensor([[0.1, 0.2, 0.4], [0.3, 0.3, 0.6]], dtype=torch.float64)
    r = theory.relative_gain(f, 2, 0)
    torch.testing.assert_close(r, torch.tensor([15.0, 3.0], dtype=torch.float64))
    r2 = theory.relative_gain(f, torch.tensor([1, 2]), torch.tensor([0, 0]))
    assert r2.shape == (2, 2)
    assert float(r2[0, 0]) == pytest.approx(3.0)
    # three dimensions [4, 2, 3]: the token ids index the last one (M = 3), not the others
    f3 = torch.rand(4, 2, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    want = f3[..., 0] ** 2 / f3[..., 2] ** 2 - 1
    torch.testing.assert_close(theory.relative_gain(f3, 0, 2), want)


# ---------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: theory.h("1", 50, 1.0), TypeError, "t"),
        (lambda: theory.h(None, 50, 1.0), TypeError, "t"),
        (lambda: theory.h(True, 50, 1.0), TypeError, "t"),
        (lambda: theory.h(np.array([True]), 50, 1.0), TypeError, "t"),
        (lambda: theory.h(-1.0, 50, 1.0), ValueError, "t must be >= 0"),
        (lambda: theory.h(float("nan"), 50, 1.0), ValueError, "t must be finite"),
        (lambda: theory.h([1.0, float("inf")], 50, 1.0), ValueError, "t must be finite"),
        (lambda: theory.h(1.0, 1, 1.0), ValueError, r"M must be an integer in \[2, inf\)"),
        (lambda: theory.h(1.0, 50.0, 1.0), TypeError, "M must be an integer"),
        (lambda: theory.h(1.0, 2.5, 1.0), TypeError, "M must be an integer"),
        (lambda: theory.h(1.0, True, 1.0), TypeError, "M must be an integer"),
        (lambda: theory.h(1.0, 50, 0.0), ValueError, "eta_y must be > 0"),
        (lambda: theory.h(1.0, 50, -2.0), ValueError, "eta_y must be > 0"),
        (lambda: theory.h(1.0, 50, float("nan")), ValueError, "eta_y must be finite"),
        (lambda: theory.h(1e300, 10**5, 1e300), ValueError, r"^M \* eta_y \* t must be finite"),
        (lambda: theory.h_star(1.5, 50, 1.0), TypeError, "s must be an integer"),
        (lambda: theory.h_star(-1, 50, 1.0), ValueError, "s must be an integer >= 0"),
        (lambda: theory.h_star(True, 50, 1.0), TypeError, "s must be an integer"),
        (lambda: theory.lemma5_alpha(0, 50, 1.0), ValueError, "s must be an integer >= 1"),
        (lambda: theory.h_star(1e9, 50, 1.0), TypeError, "s must be an integer"),
        (lambda: theory.h_star(10**9, 50, 1.0), ValueError, r"s must be .*<= 1000000"),
        (lambda: theory.lemma5_alpha(10**7, 50, 1.0), ValueError, r"s must be .*<= 1000001"),
        (lambda: theory.h(1 + 0j, 50, 1.0), TypeError, "t must be a real number"),
        (lambda: theory.h(torch.tensor([True]), 50, 1.0), TypeError, "t must be a real number"),
        (lambda: theory.h([1.0, [2.0]], 50, 1.0), TypeError, "t must be a real number"),
        (lambda: theory.chi_bounds([0.1, True], 0.5), TypeError, "B must contain real numbers"),
        (lambda: theory.gamma(1.0, 50, 0, 1.0), ValueError, "K must be an integer"),
        (lambda: theory.Gamma(1.0, 50, 2, 1.0, -1.0), ValueError, "eta_z must be >= 0"),
        (lambda: theory.B(1.0, 50, 2, 1.0, 1.0, 0.0), ValueError, "C0 must be > 0"),
        (lambda: theory.B(1.0, 50, 2, 1.0, 1.0, "big"), TypeError, "C0"),
        (lambda: theory.B_printed(1.0, 50, 2, 1.0, 1.0, -1.0), ValueError, "C0 must be > 0"),
        (lambda: theory.t0(50, 2, 0.0), ValueError, "eta_y must be > 0"),
        (lambda: theory.t0_prime(1, 2, 1.0), ValueError, "M must be"),
        (lambda: theory.chi_bounds(-0.1, 0.5), ValueError, "B must be >= 0"),
        (lambda: theory.chi_bounds(1.0, 1.5), ValueError, "f0 must be <= 1"),
        (
            lambda: theory.xi(torch.ones(2, 3), torch.ones(3, 3), 1.0),
            ValueError,
            "beta must have shape",
        ),
        (lambda: theory.xi(torch.ones(2, 3), torch.ones(2, 2), "x"), TypeError, "gamma"),
        (
            lambda: theory.lemma4_zdot(torch.ones(2, 3), torch.ones(2, 2), 1.0, [0, 3], 1.0),
            ValueError,
            "queries must hold token ids",
        ),
        (
            lambda: theory.lemma4_zdot(torch.ones(2, 3), torch.ones(2, 2), 1.0, [0, 1], 1.0, M=4),
            ValueError,
            "M must equal",
        ),
        (
            lambda: theory.lemma1_gradients(torch.zeros(3, 3), torch.zeros(3, 4), [0], 1, 2),
            ValueError,
            "Z must have shape",
        ),
        (
            lambda: theory.lemma1_gradients(torch.zeros(3, 3), torch.zeros(3, 3), [0.0], 1, 2),
            TypeError,
            "context",
        ),
        (
            lambda: theory.lemma1_gradients(torch.zeros(3, 3), torch.zeros(3, 3), [0], 3, 2),
            ValueError,
            r"query must be an integer in \[0, 2\]",
        ),
        (
            lambda: theory.lemma1_gradients(
                torch.zeros(3, 3), torch.zeros(3, 3), [0], 1, 2, normalize=1
            ),
            TypeError,
            "normalize",
        ),
        (
            lambda: theory.lemma1_gradients(
                torch.zeros(3, 3, dtype=torch.int64), torch.zeros(3, 3), [0], 1, 2
            ),
            TypeError,
            "Y must be a floating-point",
        ),
        (lambda: theory.relative_gain(torch.ones(3), 5, 0), ValueError, "l must"),
        (lambda: theory.normalized_attention([1.0]), TypeError, "^c must be a torch.Tensor"),
        (
            lambda: theory.attention_limit([[1.0]], torch.zeros(1, 1), [0]),
            TypeError,
            "^probs must be a torch.Tensor",
        ),
        (
            lambda: theory.attention_limit(torch.ones(2, 3), torch.full((3, 3), math.nan), [0, 1]),
            ValueError,
            "^Z must contain only finite values",
        ),
        (
            lambda: theory.attention_limit(torch.ones(2, 3), torch.zeros(3), [0, 1]),
            ValueError,
            r"^Z must have shape \[\.\.\., 3, 3\]",
        ),
        (
            lambda: theory.attention_limit(torch.ones(2, 3), torch.zeros(3, 3), [0, 1, 2]),
            ValueError,
            r"^queries must have shape \[2\]",
        ),
        (
            lambda: theory.attention_limit(torch.ones(2, 3), torch.zeros(3, 3), [0, 3]),
            ValueError,
            r"^queries must hold token ids in \[0, 2\]",
        ),
        (
            lambda: theory.lemma1_gradients(torch.zeros(3, 3), torch.zeros(3, 3), [0], 1, 3),
            ValueError,
            r"^target must be an integer in \[0, 2\]",
        ),
        (
            lambda: theory.lemma1_gradients(torch.zeros(3, 3), torch.zeros(3, 3), [0], [1], 2),
            ValueError,
            "^query must have 0 dimensions",
        ),
        (
            lambda: theory.lemma1_gradients(torch.zeros(3, 3), torch.zeros(3, 3), 0, 1, 2),
            ValueError,
            "^context must have 1 dimensions",
        ),
        (
            lambda: theory.lemma1_gradients(
                torch.zeros(3, 3), torch.zeros(3, 3, dtype=torch.int64), [0], 1, 2
            ),
            TypeError,
            "^Z must be a floating-point tensor",
        ),
        (
            lambda: theory.lemma1_gradients(torch.zeros(3, 4), torch.zeros(3, 3), [0], 1, 2),
            ValueError,
            r"^Y must be square \[M, M\], got \[3, 4\]",
        ),
        (
            lambda: theory.lemma1_gradients(torch.zeros(3, 3), torch.zeros(3, 3), [0], 1, [2]),
            ValueError,
            "^target must have 0 dimensions",
        ),
        (
            lambda: theory.attention_limit(torch.ones(2, 3), torch.zeros(3, 4), [0, 1]),
            ValueError,
            r"^Z must have shape \[\.\.\., 3, 3\]",
        ),
        (
            lambda: theory.lemma1_gradients(torch.zeros(3), torch.zeros(3, 3), [0], 1, 2),
            ValueError,
            "^Y must have 2 dimensions",
        ),
        (
            lambda: theory.lemma1_gradients(
                torch.zeros(3, 3), torch.zeros(3, 3), [0], 1, 2, normalize="yes"
            ),
            TypeError,
            "^normalize must be True or False",
        ),
        (
            lambda: theory.attention_limit(torch.ones(3), torch.zeros(3, 3), [0]),
            ValueError,
            "^probs must have 2 dimensions",
        ),
        (
            lambda: theory.xi(torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 2), 1.0),
            TypeError,
            "^f must be a floating-point tensor",
        ),
        (
            lambda: theory.xi(torch.ones(2, 3), torch.ones(2, 2, dtype=torch.int64), 1.0),
            TypeError,
            "^beta must be a floating-point tensor",
        ),
        (
            lambda: theory.xi(torch.ones(2, 3), torch.ones(2, 2), torch.tensor(1)),
            TypeError,
            "^gamma must be a floating-point tensor",
        ),
        (
            lambda: theory.lemma4_zdot(torch.ones(2, 3), torch.ones(2, 2), "x", [0, 1], 1.0),
            TypeError,
            "^gamma must be a real number",
        ),
        (
            lambda: theory.lemma4_zdot(torch.ones(2, 3), torch.ones(2, 2), 1.0, [0, 1], 1.0, M=1),
            ValueError,
            r"^M must be an integer in \[2, inf\)",
        ),
        (
            lambda: theory.lemma4_zdot(torch.ones(2, 3), torch.ones(2, 2), 1.0, [0, 1], -1.0),
            ValueError,
            r"^eta_z must be in \[0.0, inf\)",
        ),
        (
            lambda: theory.lemma4_zdot(torch.ones(2, 3), torch.ones(2, 2), 1.0, [0], 1.0),
            ValueError,
            r"^queries must have shape \[2\]",
        ),
        (
            lambda: theory.lemma4_zdot(torch.ones(2, 3), torch.ones(2, 2), 1.0, [[0, 1]], 1.0),
            ValueError,
            r"^queries must have shape \[2\]",
        ),
        (
            lambda: theory.relative_gain(torch.ones(3, dtype=torch.int64), 1, 0),
            TypeError,
            "^f must be a floating-point tensor",
        ),
        (
            lambda: theory.relative_gain(torch.tensor(1.0), 0, 0),
            ValueError,
            "^f must have at least one dimension",
        ),
        (
            lambda: theory.relative_gain(torch.ones(3), 0, 3),
            ValueError,
            r"^l_prime must be an integer in \[0, 2\]",
        ),
        (
            lambda: theory.relative_gain(torch.ones(3), 0, 1.0),
            TypeError,
            "^l_prime must be an integer token id",
        ),
    ],
)
def test_bad_inputs(call, exc, match):
    """The error comes from the check, not from numpy or torch on the way: no warning first (a
    chapter would print it to stderr)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(exc, match=match):
            call()
