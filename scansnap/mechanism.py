"""The paper's mechanism as an ODE: the expected (``T → ∞``) dynamics, continuous time, float64.

Time unit and class weighting (stated once, used everywhere): ``t`` counts steps of the
paper's Theorem 1 setting — batch size 1, the class drawn uniformly — taken in expectation, so
each class carries weight ``1/K``:

``Ẏ = (η_Y/K) Σ_n a_n (e_n − α_n)ᵀ`` and ``ż_{ψ(n)} += (η_Z/K) diag(f_n) P⊥_{f_n} g_n``,

with ``f_n`` from Lemma 2 (Eqn 5), ``α_n = softmax(Yᵀ f_n)``, ``g_n = Y(e_n − α_n)`` (Theorem 1's
back-propagated vector) and ``P⊥_f = I − f fᵀ``. The decoder direction ``a_n`` is ``f_n`` for
the real gradient (Eqn 7) and ``f_n − F E' e_n`` for Lemma 3's modified update
(``E' = I − (F ᵀF)^{-1}``). With the real decoder this is exactly gradient flow on
:func:`scansnap.population`'s loss (tested). Under it a class's decoder moves by ``h(t/K)``
(Lemma 6), the clock of ``γ`` and Eqn 129.

Theorem 1's coefficients are *measured*: ``g_n`` is projected on ``span(F)``,
``g_n = γι_n f_n − Σ_{n'≠n} γβ_{nn'} f_{n'} + r_n`` (least squares), and
``ξ_n = Σ_{n'≠n} γβ_{nn'} f_nᵀf_{n'}``. ``B_n = η_Z ∫ ξ_n dt`` is Theorem 3's budget exactly as
printed; in these time units Lemma 4's sum carries the class weight ``1/K``, so a distinct token
of class ``n`` grows as ``ż = f_{nl}² Ḃ_n / K`` and the single common token falls as
``ż = −(1/K) Σ_n (1 − f_{nl}²) Ḃ_n`` (Theorem 2 with the weight made explicit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

from . import decompose, metrics, theory
from ._validate import as_float64_array, check_choice, check_float, check_int
from .data import SequenceClasses

DECODERS = ("real", "modified")


@dataclass
class Trajectory:
    """Snapshots of :func:`integrate`: ``t [S]``, ``Y, Z [S, M, M]``, ``B [S, K]`` (the measured
    budget ``η_Z ∫ ξ_n``), and the settings."""

    classes: SequenceClasses
    eta_y: float
    eta_z: float
    decoder: str
    t: np.ndarray
    Y: np.ndarray
    Z: np.ndarray
    B: np.ndarray

    def attention(self) -> np.ndarray:
        """``f_n`` at every snapshot: ``[S, K, M]``."""
        return np.stack([_attention(self.classes, Z)[1] for Z in self.Z])

    def common_logit(self) -> np.ndarray:
        """``z_{m l}`` of every common token of class 0's query: ``[S, C]``."""
        m = int(self.classes.query_tokens[0])
        return self.Z[:, m, self.classes.common_tokens(0).numpy()]


def _attention(classes: SequenceClasses, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(c, f)`` of Eqn 5 at logits ``Z``, each ``[K, M]``."""
    P = classes.probs().numpy()
    rows = Z[classes.query_tokens.numpy()]
    rows = np.where(P > 0, rows, -np.inf)
    w = P * np.exp(rows - rows.max(-1, keepdims=True))
    c = w / w.sum(-1, keepdims=True)
    return c, c / np.linalg.norm(c, axis=-1, keepdims=True)


def coefficients(classes: SequenceClasses, Y: np.ndarray, Z: np.ndarray) -> dict[str, np.ndarray]:
    """Theorem 1's decomposition, measured (:func:`scansnap.decompose.backprop_gradient` and
    :func:`~scansnap.decompose.coordinates`: ``g_n`` projected on ``span(F)``).

    Returns ``f [K, M]``, ``gamma_iota [K]``, ``gamma_beta [K, K]`` (zero diagonal), ``xi [K]``
    (``Σ_{n'≠n} γβ_{nn'} f_nᵀf_{n'}``) and ``residual [K]`` (``‖r_n‖ / ‖g_n‖``)."""
    _, f = _attention(classes, Z)
    ft = torch.from_numpy(f)
    a, residual = decompose.coordinates(
        decompose.backprop_gradient(torch.from_numpy(Y), ft, classes.next_tokens), ft)
    a = a.numpy()
    gamma_beta = -a * (1 - np.eye(classes.K))
    return dict(f=f, gamma_iota=np.diag(a).copy(), gamma_beta=gamma_beta,
                xi=(gamma_beta * (f @ f.T)).sum(-1), residual=residual.numpy())


def rates(classes: SequenceClasses, Y: np.ndarray, Z: np.ndarray, eta_y: float, eta_z: float,
          decoder: str = "real") -> tuple[np.ndarray, np.ndarray]:
    """``(Ẏ, Ż)`` of the expected dynamics (module docstring), float64 numpy ``[M, M]`` each."""
    decoder = check_choice("decoder", decoder, DECODERS)
    K = classes.K
    _, f = _attention(classes, Z)
    alpha = _softmax(f @ Y)
    err = np.eye(classes.M)[classes.next_tokens.numpy()] - alpha
    direction = f
    if decoder == "modified":
        E_prime = np.eye(K) - np.linalg.inv(f @ f.T)
        direction = f - E_prime @ f  # row n: f_n − F E' e_n (E' is symmetric)
    Ydot = eta_y / K * direction.T @ err
    g = err @ Y.T
    pushed = f * (g - f * (f * g).sum(-1, keepdims=True))  # diag(f_n) P⊥ g_n
    Zdot = np.zeros_like(Z)
    np.add.at(Zdot, classes.query_tokens.numpy(), eta_z / K * pushed)
    return Ydot, Zdot


def lemma4_rate(classes: SequenceClasses, Y: np.ndarray, Z: np.ndarray,
                eta_z: float) -> np.ndarray:
    """Lemma 4 (Eqn 10) evaluated with the measured ``γβ`` (:func:`coefficients`) and this
    module's ``1/K`` class weight: ``Ż`` as :func:`scansnap.theory.lemma4_zdot` predicts it."""
    eta_z = check_float("eta_z", eta_z, low=0.0)
    co = coefficients(classes, Y, Z)
    zdot = theory.lemma4_zdot(torch.from_numpy(co["f"]), torch.from_numpy(co["gamma_beta"]), 1.0,
                              classes.query_tokens, eta_z / classes.K)
    return zdot.numpy()


def lemma4_agreement(run: "Run", index: int = 0) -> dict[str, np.ndarray]:
    """Lemma 4 against the measured change of ``Z`` in a :func:`scansnap.population` run (plain
    gradient steps: one step is one time unit of this module). Between consecutive snapshots
    ``s < s'`` the measured rate ``(Z_{s'} − Z_s)/(s' − s)`` is compared with Lemma 4's ``Ż``
    averaged over the two ends (trapezoid; exact when snapshots are one step apart, since a
    gradient step *is* the rate at its start — then only the left end is used).
    Returns ``steps [S-1]``, ``error [S-1]`` (``‖Ż_L4 − Ż_meas‖_F / ‖Ż_meas‖_F``) and the
    decomposition's ``residual [S-1]`` (largest ``‖r_n‖/‖g_n‖``)."""
    from .dynamics import Run

    if not isinstance(run, Run) or run.settings.get("kind") != "population":
        raise TypeError("run must be a Run returned by scansnap.population")
    if not run.settings.get("normalize", True):
        raise ValueError("Lemma 4 is stated for the normalized (LayerNorm) model")
    eta_z = float(run.configs[index][1])
    steps = run.steps.numpy()
    Y, Z = run.Y[index].double().numpy(), run.Z[index].double().numpy()
    predicted = [lemma4_rate(run.classes, y, z, eta_z) for y, z in zip(Y, Z)]
    errors, residuals = [], []
    for s in range(len(steps) - 1):
        span = steps[s + 1] - steps[s]
        measured = (Z[s + 1] - Z[s]) / span
        pred = predicted[s] if span == 1 else 0.5 * (predicted[s] + predicted[s + 1])
        errors.append(np.linalg.norm(pred - measured) / max(np.linalg.norm(measured), 1e-300))
        residuals.append(coefficients(run.classes, Y[s], Z[s])["residual"].max())
    return dict(steps=steps[:-1], error=np.array(errors), residual=np.array(residuals))


def integrate(classes: SequenceClasses, eta_y: float, eta_z: float, t: object,
              decoder: str = "real", rtol: float = 1e-8, atol: float = 1e-10) -> Trajectory:
    """Integrate the expected dynamics from ``Y = Z = 0`` (float64, ``scipy`` LSODA), recording
    snapshots at the increasing times ``t`` (``t[0] >= 0``; a log grid is the natural choice)."""
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")
    eta_y = check_float("eta_y", eta_y, low=0.0, low_open=True)
    eta_z = check_float("eta_z", eta_z, low=0.0)
    decoder = check_choice("decoder", decoder, DECODERS)
    times = as_float64_array("t", t, low=0.0).ravel()
    if times.size < 2 or np.any(np.diff(times) <= 0):
        raise ValueError("t must hold at least two strictly increasing times")
    M, K = classes.M, classes.K

    def rhs(_: float, state: np.ndarray) -> np.ndarray:
        Y, Z = state[: M * M].reshape(M, M), state[M * M: 2 * M * M].reshape(M, M)
        Ydot, Zdot = rates(classes, Y, Z, eta_y, eta_z, decoder)
        Bdot = eta_z * coefficients(classes, Y, Z)["xi"]
        return np.concatenate([Ydot.ravel(), Zdot.ravel(), Bdot])

    start = np.zeros(2 * M * M + K)
    if times[0] > 0:
        times = np.concatenate([[0.0], times])
        keep = slice(1, None)
    else:
        keep = slice(None)
    sol = solve_ivp(rhs, (0.0, times[-1]), start, method="LSODA", t_eval=times,
                    rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"the ODE solver failed: {sol.message}")
    states = sol.y.T[keep]
    S = len(states)
    return Trajectory(classes=classes, eta_y=eta_y, eta_z=eta_z, decoder=decoder,
                      t=times[keep], Y=states[:, : M * M].reshape(S, M, M),
                      Z=states[:, M * M: 2 * M * M].reshape(S, M, M),
                      B=states[:, 2 * M * M:])


def init_overlap_C0(classes: SequenceClasses) -> tuple[float, float]:
    """``(ρ_0, C_0 = ρ_0^4/K)`` matched at zero init: App. F approximates
    ``f_nᵀf_{n'} ≈ e^{2 z_{ml}}/ρ_0^2``, so at ``Z = 0`` we set ``ρ_0^{-2}`` to the mean overlap
    ``f_nᵀf_{n'}`` of classes sharing a query (0.72 for the Fig 6 data: ρ_0 ≈ 1.18). The paper
    gives no value; this is the book's choice, stated where it is used."""
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")
    f = theory.normalized_attention(classes.probs())
    same = classes.class_query[:, None] == classes.class_query[None, :]
    pairs = same & ~torch.eye(classes.K, dtype=torch.bool)
    if not bool(pairs.any()):
        raise ValueError("classes must have next_per_query >= 2 (no two classes share a query)")
    overlap = float((f @ f.T)[pairs].mean())
    rho0 = 1 / math.sqrt(overlap)
    return rho0, rho0**4 / classes.K


def theorem4_classes(K: int, num_common: int = 1, common_weight: float = 0.25) -> SequenceClasses:
    """Theorem 4's setting: one query shared by ``K`` classes, ``num_common`` common tokens of
    weight ``common_weight`` and 10 distinct tokens per class (weights ``linspace(0.1, 1, 10)``).
    With the defaults Assumption 2 holds at ``Z = 0`` for ``K <= 8`` (:func:`assumption2`);
    ``common_weight = 3`` violates it."""
    return SequenceClasses(num_queries=1, next_per_query=check_int("K", K, low=2),
                           num_common=num_common, common_weight=common_weight)


def assumption2(classes: SequenceClasses) -> dict[str, float | bool]:
    """:func:`scansnap.metrics.assumption2` at ``Z = 0`` as the numbers this module's studies
    report: ``lambda_max`` (``max |λ(E)|``), ``bound = 1/K``, ``M_over_K2`` and ``holds`` (both
    ``M > K²`` and ``lambda_max < 1/K``; the reconstructed eigenvalue floor is not checked)."""
    a = metrics.assumption2(classes)
    return dict(lambda_max=a.largest, bound=1 / a.K, M_over_K2=a.M_over_K2,
                holds=bool(a.weak_correlation and a.M_over_K2 > 1))


def lemma3_xi_factor(classes: SequenceClasses) -> float:
    """``κ = ξ_n / γ`` at ``Z = 0`` under Lemma 3's modified decoder, exactly (class mean).

    Lemma 3 gives ``Y = F(I+E)^{-1} W`` and Lemma 5/6 ``w_j = (M−1) h ζ_j``, so
    ``g_n = γ M/(M−1) F A [e_n − 1_{¬n}/(M−1)]`` with ``A = (FᵀF)^{-1}``: the coefficient of
    ``f_{n'}`` is ``−γβ_{nn'}`` with ``β_{nn'} = −M/(M−1) [A_{n'n} − Σ_{j≠n} A_{n'j}/(M−1)]``, i.e.
    ``E'_{nn'}`` plus the ``O(1/M)`` term (Theorem 1's ``δ_3``) that Eqn 13 drops. Then
    ``ξ_n = κ γ`` and, while the common logit has barely moved, ``B_n = κ Γ``."""
    f = theory.normalized_attention(classes.probs()).numpy()
    G = f @ f.T
    A = np.linalg.inv(G)
    M, K = classes.M, classes.K
    coef = M / (M - 1) * (A - (A.sum(1, keepdims=True) - A) / (M - 1))  # [n', n]
    beta = -coef.T * (1 - np.eye(K))
    return float((beta * G).sum(1).mean())


def theorem4_check(classes: SequenceClasses, eta_y: float, eta_z: float,
                   t_over_t0: object, decoder: str = "real") -> dict[str, object]:
    """Theorem 4 against the dynamics it describes: integrate from zero at the times
    ``t = t_over_t0 · t_0`` (``t_0 = 2K ln M/η_Y``) and return, per time, the simulated budget
    ``B`` (class mean of ``η_Z ∫ ξ_n``), the fall of the common logit ``fall = −z_{ml}`` (mean
    over common tokens), Eqn 129 (``B129``, with ``B(0) = 0``), its two asymptotes
    (``B_scanning``, ``B_snapping``), ``B_lemma3 = κΓ`` (:func:`lemma3_xi_factor`), the measured
    ``γι`` (class mean) against Theorem 1's
    ``γ(t)``, the common token's ``f_{nl}²`` (class 0), with ``C_0`` from
    :func:`init_overlap_C0` and :func:`assumption2`. Nothing is fitted."""
    ratio = as_float64_array("t_over_t0", t_over_t0, low=0.0).ravel()
    M, K = classes.M, classes.K
    t0 = float(theory.t0(M, K, eta_y))
    t = ratio * t0
    traj = integrate(classes, eta_y, eta_z, t, decoder=decoder)
    _, C0 = init_overlap_C0(classes)
    args = dict(M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0)
    co = [coefficients(classes, Y, Z) for Y, Z in zip(traj.Y, traj.Z)]
    common = classes.common_tokens(0).numpy()
    f = traj.attention()
    return dict(t=t, t_over_t0=ratio, t0=t0, t0_prime=float(theory.t0_prime(M, K, eta_y)),
                C0=C0, B=traj.B.mean(-1), fall=-traj.common_logit().mean(-1),
                B129=np.asarray(theory.B(t, **args)),
                B_scanning=np.asarray(theory.B_scanning(t, **args)),
                B_snapping=np.asarray(theory.B_snapping(t, **args)),
                B_lemma3=lemma3_xi_factor(classes) * np.asarray(
                    theory.Gamma(t, M, K, eta_y, eta_z)),
                gamma=np.array([c["gamma_iota"].mean() for c in co]),
                gamma_theory=np.asarray(theory.gamma(t, M, K, eta_y)),
                residual=np.array([c["residual"].max() for c in co]),
                f_common_sq=(f[:, 0, common] ** 2).sum(-1),
                assumption2=assumption2(classes), trajectory=traj)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
