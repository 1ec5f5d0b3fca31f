"""The numbers chapter 3 quotes: each summary of scansnap.chapters.ch3_y_dynamics against a
computation written here from the lemmas' definitions (or against inputs built by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scansnap import SequenceClasses
from scansnap.chapters import ch3_y_dynamics as ch3
from scansnap.data import weakly_correlated
from scansnap.decompose import Theorem1Measurement

CLASSES = weakly_correlated()


def h_star_by_recursion(steps: int, M: int, eta: float) -> np.ndarray:
    """Lemma 5: h*(0) = 0, h*(s) = h*(s−1) + η/((M−1) + e^{M h*(s−1)})."""
    out = [0.0]
    for _ in range(steps):
        out.append(out[-1] + eta / ((M - 1) + math.exp(M * out[-1])))
    return np.array(out)


def h_by_bisection(t: np.ndarray, M: int, eta: float) -> np.ndarray:
    """Lemma 6: the root h >= 0 of e^{Mh} + (M−1)Mh = Mηt + 1, by bisection."""
    target = M * eta * np.asarray(t, dtype=np.float64) + 1
    lo, hi = np.zeros_like(target), np.log(target) / M + 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        above = np.exp(M * mid) + (M - 1) * M * mid >= target
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    return (lo + hi) / 2


def gamma_by_hand(t: np.ndarray, M: int, K: int, eta: float) -> np.ndarray:
    """γ(t) = (M−1)² h(t/K) / ((M−1) + e^{M h(t/K)})."""
    h = h_by_bisection(np.asarray(t, dtype=np.float64) / K, M, eta)
    return (M - 1) ** 2 * h / ((M - 1) + np.exp(M * h))


def test_setting_summary_overlap_and_beta_floor():
    out = ch3.setting_summary(CLASSES)
    p = CLASSES.probs().numpy()
    overlap = (p[0] * p[1]).sum() / math.sqrt((p[0] ** 2).sum() * (p[1] ** 2).sum())
    assert (out["M"], out["K"]) == (66, 3)
    assert out["overlap"] == pytest.approx(overlap, rel=1e-12) and 0 < out["overlap"] < 0.1
    assert out["beta_floor"] == pytest.approx(66 / 65**2, rel=1e-15)
    orthogonal = SequenceClasses(num_queries=1, next_per_query=3, num_common=0,
                                 distinct_per_next=20)
    assert ch3.setting_summary(orthogonal)["overlap"] == 0.0
    with pytest.raises(TypeError, match="classes must be a SequenceClasses"):
        ch3.setting_summary("classes")


def test_lemma5_errors_quote_the_final_entry_and_h_star():
    M, K, eta_y = 40, 3, 1.0
    steps = np.arange(25)
    hs = h_star_by_recursion(24, M, eta_y / K)
    W = np.tile(-hs[:, None, None], (1, K, K))
    for n in range(K):
        W[:, n, n] = (M - 1) * hs
    W[-1, 0, 1] = -0.75  # a leak Lemma 5 does not predict
    out = ch3.lemma5_errors({"leaky": (W, M)}, steps, K, eta_y)["leaky"]
    assert out["w_off_final"] == -0.75
    assert out["h_star_final"] == pytest.approx(hs[-1], rel=1e-13)
    assert out["off_diagonal"] == pytest.approx(0.75 - hs[-1], rel=1e-12)
    assert out["diagonal"] < 1e-12


def test_fig8_quotes_gaps_computed_from_the_definitions():
    data = ch3.fig8(quick=True).data
    fractions, smallest = [], []
    for M, etas, horizon in ch3.FIG8_PANELS:
        for eta in etas:
            gap = h_star_by_recursion(horizon, M, eta) - h_by_bisection(np.arange(horizon + 1),
                                                                         M, eta)
            key = f"M{M}_eta{eta:g}".replace(".", "p")
            assert data[f"max_gap_{key}"] == pytest.approx(gap.max(), rel=1e-9)
            assert data[f"final_gap_{key}"] == pytest.approx(gap[-1], rel=1e-9)
            assert data[f"bound_{key}"] == 2 * eta / M
            fractions.append(gap.max() / (2 * eta / M))
            smallest.append(gap[1:].min())
    assert data["max_gap_M50_eta0p5"] > 0  # the 0.5 → "0p5" key exists
    assert data["worst_bound_fraction"] == pytest.approx(max(fractions), rel=1e-9)
    assert data["min_gap"] == pytest.approx(min(smallest), rel=1e-9)
    assert 0 < data["min_gap"] and data["worst_bound_fraction"] < 1  # Lemma 7 holds


def test_corollary1_summary():
    rows = [(0.5, 12.0, 11.2), (0.2, 30.0, 30.9), (0.1, 61.0, 60.5), (0.05, 119.0, 119.6)]
    out = ch3.corollary1_summary(rows, halve_from=0.1)
    assert out["worst"] == pytest.approx(0.9)
    assert out["halving"] == pytest.approx(119 / 61)
    assert ch3.corollary1_summary(rows[::-1], halve_from=0.1) == out  # found by eps, not place
    with pytest.raises(ValueError, match="halve_from must be an eps of rows"):
        ch3.corollary1_summary(rows, halve_from=0.5)  # no eps 0.25


def test_gamma_summary_against_gamma_by_hand():
    M, K, eta = 66, 3, 2.0
    out = ch3.gamma_summary(M, K, eta)
    t0p = K * math.log(M) / eta
    assert out["t0_prime"] == pytest.approx(t0p, rel=1e-14)
    assert out["t0"] == pytest.approx(2 * t0p, rel=1e-14)
    grid = np.linspace(0.01, 3 * t0p, 30001)
    values = gamma_by_hand(grid, M, K, eta)
    assert out["peak"] == pytest.approx(grid[np.argmax(values)], abs=2 * (grid[1] - grid[0]))
    assert out["peak_over_t0_prime"] == pytest.approx(out["peak"] / t0p, rel=1e-14)
    peak_value = gamma_by_hand(np.array([out["peak"]]), M, K, eta)[0]
    assert out["gamma_t0_over_peak"] == pytest.approx(
        gamma_by_hand(np.array([2 * t0p]), M, K, eta)[0] / peak_value, rel=1e-9)
    q = ((M - 1) / M) ** 2
    early_t, late_t = t0p / 10, 10 * t0p
    assert out["early_ratio"] == pytest.approx(
        gamma_by_hand(np.array([early_t]), M, K, eta)[0] / (q * eta * early_t / K), rel=1e-9)
    late_term = q * K * math.log(M * eta * late_t / K) / (eta * late_t)
    assert out["late_ratio"] == pytest.approx(
        gamma_by_hand(np.array([late_t]), M, K, eta)[0] / late_term, rel=1e-9)
    with pytest.raises(ValueError, match="eta_y"):
        ch3.gamma_summary(M, K, 0.0)


def hand_measurement(shift: float = 0.0) -> Theorem1Measurement:
    """Four snapshots (steps 0, 10, 20, 40) of K = 3 classes with known entries."""
    steps = np.array([0, 10, 20, 40])
    iota = torch.tensor([[math.nan] * 3, [0.90, 0.95, 0.97], [0.99, 1.02, 1.00],
                         [1.01, 0.98, 1.03]], dtype=torch.float64)
    beta = torch.zeros(4, 3, 3, dtype=torch.float64)
    beta[:, 0, 1] = torch.tensor([math.nan, 0.01, 0.02, 0.03], dtype=torch.float64)
    overlap = torch.eye(3, dtype=torch.float64).expand(4, 3, 3).clone()
    overlap[:, 0, 1] = 0.06
    e_prime = torch.zeros(4, 3, 3, dtype=torch.float64)
    e_prime[:, 0, 0], e_prime[:, 0, 1] = 0.004, 0.05
    residual = torch.tensor([[math.nan] * 3, [1e-9, 3e-9, 2e-9], [5e-9, 1e-9, 1e-9],
                             [2e-9, 4e-9, 1e-9]], dtype=torch.float64)
    xi = torch.tensor([[0.0] * 3, [0.002, 0.003, 0.004], [0.001 + shift, 0.005, 0.005],
                       [0.006, 0.007, 0.008]], dtype=torch.float64)
    coefficients = torch.zeros(4, 3, 3, dtype=torch.float64)
    coefficients[:, 0, 0] = torch.tensor([0.0, 0.4, 0.7, 0.5], dtype=torch.float64)  # peak: 20
    return Theorem1Measurement(steps, np.zeros(4), coefficients, iota, beta, overlap, e_prime,
                               residual, xi)


def test_theorem1_summary_on_a_hand_made_measurement():
    out = ch3.theorem1_summary(hand_measurement(), from_step=20)
    assert (out["iota_lo"], out["iota_hi"]) == (0.98, 1.03)  # steps 20 and 40 only
    assert (out["iota_start"], out["iota_end"]) == (0.90, 1.01)
    assert (out["beta_end"], out["overlap_end"], out["e_prime_end"]) == (0.03, 0.06, 0.05)
    assert out["beta_ratio"] == pytest.approx(0.5)
    assert out["one_minus_e_prime_nn"] == pytest.approx(0.996)
    assert (out["residual_max"], out["residual_end"]) == (5e-9, 4e-9)
    assert out["xi_min"] == 0.001 and out["peak_step"] == 20.0
    with pytest.raises(ValueError, match="partner must be a class other than n"):
        ch3.theorem1_summary(hand_measurement(), n=1, partner=1)
    with pytest.raises(ValueError, match="from_step must be at most the last step, 40"):
        ch3.theorem1_summary(hand_measurement(), from_step=41)


def test_theorem1_summaries_name_each_and_take_the_smallest_xi():
    out = ch3.theorem1_summaries({(128, 128): hand_measurement(),
                                  (512, 64): hand_measurement(shift=-0.0015)}, from_step=20)
    assert out["128_128_iota_end"] == 1.01 and out["512_64_xi_min"] == pytest.approx(-0.0005)
    assert out["xi_min"] == pytest.approx(-0.0005)
    with pytest.raises(ValueError, match="measurements must be a non-empty mapping"):
        ch3.theorem1_summaries({})


def test_modified_theorem1_against_lemma3_by_hand():
    eta, steps = 2.0, 40
    P = CLASSES.probs().numpy()
    F = P / np.linalg.norm(P, axis=1, keepdims=True)  # rows f_n at Z = 0
    M, K = CLASSES.M, CLASSES.K
    targets = CLASSES.next_tokens.numpy()
    e_prime = np.eye(K) - np.linalg.inv(F @ F.T)
    Y = np.zeros((M, M))
    for _ in range(steps):  # Lemma 3: Y += η/K Σ_n (f_n − F E' e_n)(e_n − α_n)ᵀ
        step = np.zeros((M, M))
        for n in range(K):
            logits = Y.T @ F[n]
            alpha = np.exp(logits - logits.max())
            alpha /= alpha.sum()
            residual = -alpha
            residual[targets[n]] += 1
            step += np.outer(F[n] - F.T @ e_prime[:, n], residual)
        Y = Y + eta / K * step
    logits = Y.T @ F[0]
    alpha = np.exp(logits - logits.max())
    alpha /= alpha.sum()
    back = -alpha
    back[targets[0]] += 1
    g = Y @ back
    a = np.linalg.lstsq(F.T, g, rcond=None)[0]  # g_1 = Σ_k a_k f_k
    gamma = gamma_by_hand(np.array([steps]), M, K, eta)[0]
    out = ch3.modified_theorem1(CLASSES, eta_y=eta, steps=steps)
    assert out["iota"] == pytest.approx(a[0] / gamma, rel=1e-8)
    assert out["beta"] == pytest.approx(-a[1] / gamma, rel=1e-8)
    with pytest.raises(ValueError, match="steps"):
        ch3.modified_theorem1(CLASSES, eta_y=eta, steps=0)
