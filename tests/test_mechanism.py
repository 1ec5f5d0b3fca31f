"""The mechanism (Lemma 4) and Theorem 4 against the expected dynamics they describe."""

import numpy as np
import pytest
import torch

from scansnap import SequenceClasses, mechanism, population, theory

T_OVER_T0 = [0.1, 1.0, 10.0, 100.0, 1000.0]


theorem4_classes = mechanism.theorem4_classes


def test_rates_are_gradient_flow_of_population():
    """One population step equals the ODE's rates (same loss, same 1/K class weight)."""
    classes = SequenceClasses()
    run = population(classes, eta_y=1.0, eta_z=0.5, steps=21, record_every=1)
    Y, Z = run.Y[0, 20].numpy(), run.Z[0, 20].numpy()
    Ydot, Zdot = mechanism.rates(classes, Y, Z, 1.0, 0.5)
    np.testing.assert_allclose(run.Y[0, 21].numpy() - Y, Ydot, atol=1e-13)
    np.testing.assert_allclose(run.Z[0, 21].numpy() - Z, Zdot, atol=1e-13)
    assert np.abs(Zdot).max() > 1e-3  # the comparison is not vacuous


def test_no_common_token_keeps_Z_at_zero():
    """Orthogonal classes: P⊥ removes the self term and diag(f_n) f_n' = 0, so Ż = 0 exactly."""
    classes = SequenceClasses(num_queries=1, next_per_query=3, num_common=0)
    run = population(classes, eta_y=1.0, eta_z=1.0, steps=200, record_every=None)
    assert float(run.Z.abs().max()) < 1e-12
    assert float(run.Y.abs().max()) > 1.0  # the decoder did learn
    traj = mechanism.integrate(classes, 1.0, 1.0, [1.0, 100.0])
    assert np.abs(traj.Z).max() < 1e-12 and np.abs(traj.B).max() < 1e-12


@pytest.mark.parametrize("classes", [SequenceClasses(),
                                     SequenceClasses(num_queries=3, next_per_query=2),
                                     theorem4_classes(4)], ids=["syn-small", "syn-medium-3", "th4"])
def test_lemma4_matches_measured_change_of_Z(classes):
    """Eqn 10 with the measured γβ: within 2 % at η_Y/η_Z = 100; it fails at η_Y = η_Z."""
    run = population(classes, eta_y=[1.0], eta_z=[0.01, 1.0], steps=150, record_every=1)
    slow = mechanism.lemma4_agreement(run, 0)
    fast = mechanism.lemma4_agreement(run, 1)
    assert slow["error"][1:].max() < 0.02
    assert fast["error"][-1] > 0.3


def test_lemma4_agreement_rejects_train_runs():
    with pytest.raises(TypeError, match="population"):
        mechanism.lemma4_agreement("run")


@pytest.mark.parametrize("K", [2, 4, 8])
def test_theorem4_in_its_setting(K):
    check = mechanism.theorem4_check(theorem4_classes(K), 1.0, 0.01, T_OVER_T0)
    assert check["assumption2"]["holds"]
    # Theorem 2(b) with the 1/K class weight: the common logit falls by (1 - f_c^2) B
    np.testing.assert_allclose(check["fall"] / check["B"], 1 - check["f_common_sq"], rtol=0.05)
    # Theorem 1's γ: the measured γι follows Lemma 6's γ(t) within 5 %
    np.testing.assert_allclose(check["gamma"], check["gamma_theory"], rtol=0.05)
    # Eqn 129 is within a factor 2 of the simulated budget, not within a few percent
    ratio = check["B129"] / check["B"]
    assert np.all((ratio > 0.5) & (ratio < 2.0))
    assert np.abs(ratio - 1).max() > 0.05


@pytest.mark.parametrize("K", [2, 4, 8])
def test_modified_decoder_gives_eqn13_shape_exactly(K):
    """Lemma 3's decoder: B = κΓ (Eqn 128's Γ, β with δ_3 kept) over t/t0 in [0.1, 1000]."""
    check = mechanism.theorem4_check(theorem4_classes(K), 1.0, 0.01, T_OVER_T0,
                                     decoder="modified")
    np.testing.assert_allclose(check["B"], check["B_lemma3"], rtol=0.03)
    ratio = check["B129"] / check["B"]
    assert np.ptp(ratio) / ratio.mean() < 0.05  # the shape of Eqn 129 holds; its constant not


def test_equal_rates_break_theorem2b():
    check = mechanism.theorem4_check(theorem4_classes(4), 1.0, 1.0, T_OVER_T0)
    assert (check["fall"] / check["B"])[-1] < 0.7


def test_assumption2_and_C0():
    a2 = mechanism.assumption2(theorem4_classes(4, common_weight=3.0))
    assert not a2["holds"] and a2["lambda_max"] > a2["bound"]
    rho0, C0 = mechanism.init_overlap_C0(theorem4_classes(2))
    assert rho0 >= 1 and C0 == pytest.approx(rho0**4 / 2)
    f = theory.normalized_attention(theorem4_classes(2).probs())
    assert 1 / rho0**2 == pytest.approx(float(f[0] @ f[1]))


def test_integrate_validates():
    classes = SequenceClasses()
    with pytest.raises(ValueError, match="t must"):
        mechanism.integrate(classes, 1.0, 1.0, [2.0, 1.0])
    with pytest.raises(ValueError, match="decoder"):
        mechanism.integrate(classes, 1.0, 1.0, [1.0, 2.0], decoder="other")
    with pytest.raises(TypeError, match="classes"):
        mechanism.integrate(torch.zeros(3), 1.0, 1.0, [1.0, 2.0])
