"""Measuring Theorems 1–3 and Corollary 1 in real runs (Sections 4–5; App. D–E).

The paper's statements are about quantities a run does not print: the back-propagated gradient
``g_n = Y(e_n − α_n)`` and its coordinates on the normalized attention vectors ``f_n``
(Theorem 1, Eqn 9), the relative gain ``r_{l/l'|n}`` and growth factor ``χ_l`` (Theorem 3), the
time to fit the next token (Corollary 1). The functions here compute them from a
:class:`~scansnap.dynamics.Run` (or from plain tensors), so a chapter can put the theorem's
prediction and the measurement side by side.

Conventions: ``Y`` is stored so that the logits are ``Yᵀ u`` (``u @ Y``), as everywhere in the
package; ``f`` holds the rows ``f_n`` (``[..., K, M]``); class ``n``'s target is the token id
``classes.next_tokens[n]``. A population step (and, in expectation, an SGD step on a batch) averages
the ``K`` classes, so class ``n``'s own rows move at rate ``η/K`` per step — which is why
Theorem 1's ``γ(t)`` uses ``h(t/K)`` and why :func:`growth_budget` carries a factor ``1/K``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import theory
from ._validate import check_float, check_int, check_tensor
from .data import SequenceClasses
from .dynamics import Run


# --- Theorem 1: the back-propagated gradient and its coordinates on F ------------------------
def backprop_gradient(Y: torch.Tensor, f: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Theorem 1 (Eqn 9, left side): ``g_n = Y (e_n − α_n)`` with ``α_n = softmax(Yᵀ f_n)``.

    ``Y [..., M, M]`` (logits ``Yᵀ u``), ``f [..., K, M]`` (rows ``f_n``; any leading dimensions
    broadcasting with ``Y``'s), ``targets [K]`` (token id of each class's next token). Returns
    ``g [..., K, M]``: the gradient that reaches the attention layer for class ``n`` as ``T → ∞``.
    """
    Y = check_tensor("Y", Y)
    f = check_tensor("f", f)
    if Y.ndim < 2 or Y.shape[-1] != Y.shape[-2]:
        raise ValueError(f"Y must have shape [..., M, M], got {list(Y.shape)}")
    M = Y.shape[-1]
    if f.ndim < 2 or f.shape[-1] != M:
        raise ValueError(f"f must have shape [..., K, {M}] to match Y, got {list(f.shape)}")
    targets = _targets(targets, f.shape[-2], M)
    f = f.to(Y.dtype)
    alpha = torch.softmax(f @ Y, dim=-1)  # [..., K, M]: softmax(Yᵀ f_n)
    e = torch.nn.functional.one_hot(targets, M).to(Y.dtype)
    return (e - alpha) @ Y.transpose(-1, -2)  # row n: (Y (e_n − α_n))ᵀ


def coordinates(g: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares coordinates of each ``g_n`` on the span of ``f_1..f_K`` (Eqn 9's basis).

    ``g, f [..., K, M]``. Returns ``(a, residual)``: ``a [..., K, K]`` with
    ``g_n ≈ Σ_k a[n, k] f_k`` and ``residual [..., K] = ||g_n − Σ_k a[n,k] f_k|| / ||g_n||``
    (0 when ``g_n`` lies in the span, as it does exactly with ``Z`` frozen and ``Y(0) = 0``).
    Theorem 1 reads ``a[n, n] = γ ι_n`` and ``a[n, n'] = −γ β_{nn'}``.
    """
    g = check_tensor("g", g)
    f = check_tensor("f", f).to(g.dtype)
    if g.shape[-2:] != f.shape[-2:] or g.ndim < 2:
        raise ValueError(f"g and f must both have shape [..., K, M], got {list(g.shape)} and "
                         f"{list(f.shape)}")
    gram = f @ f.transpose(-1, -2)  # [..., K, K]
    a = torch.linalg.solve(gram, f @ g.transpose(-1, -2)).transpose(-1, -2)
    rest = g - a @ f
    norm = torch.linalg.vector_norm(g, dim=-1)
    residual = torch.linalg.vector_norm(rest, dim=-1) / norm.clamp_min(torch.finfo(g.dtype).tiny)
    return a, residual


@dataclass
class Theorem1Measurement:
    """Theorem 1 measured along one run, at each snapshot ``steps[s]``.

    ``gamma [S]`` is the theory's ``γ(t)`` (Lemma 6 ``h``, Eqn for γ) used to normalize;
    ``coefficients [S, K, K]`` the raw coordinates ``a`` of :func:`coordinates`;
    ``iota [S, K] = a_nn / γ``; ``beta [S, K, K] = −a_{nn'} / γ`` (diagonal set to 0);
    ``overlap [S, K, K] = f_nᵀ f_{n'}`` (``I + E``); ``e_prime [S, K, K] = I − (I + E)⁻¹``
    (Lemma 3's ``E'``, the theorem's finer prediction for ``β``); ``residual [S, K]`` the part
    of ``g_n`` outside span ``F``; ``xi [S, K] = Σ_{n'≠n} (−a_{nn'}) f_nᵀ f_{n'}`` — Theorem 1(a)'s
    ``ξ_n = γ Σ β_{nn'} f_nᵀ f_{n'}`` measured without any theory input.
    """

    steps: np.ndarray
    gamma: np.ndarray
    coefficients: torch.Tensor
    iota: torch.Tensor
    beta: torch.Tensor
    overlap: torch.Tensor
    e_prime: torch.Tensor
    residual: torch.Tensor
    xi: torch.Tensor


def measure_theorem1(run: Run, index: int = 0) -> Theorem1Measurement:
    """Decompose the back-propagated gradient of run ``index`` on its ``f_n`` (Theorem 1, Eqn 9).

    ``f_n`` is Lemma 2's limit at each snapshot's ``Z`` (the ``T → ∞`` input of the decoder) and
    ``g_n = Y(e_n − softmax(Yᵀ f_n))`` (:func:`backprop_gradient`); ``γ(t)`` is
    :func:`scansnap.theory.gamma` at the run's ``η_Y`` with ``t`` = the snapshot's step
    (step 0 has ``γ = 0``: its ``ι``, ``β`` are NaN).
    """
    classes, index = _check_run(run, index)
    eta_y = run.configs[index][0]
    if eta_y <= 0:
        raise ValueError("the run must train Y (eta_y > 0): γ(t) is undefined for eta_y = 0")
    Y, Z = run.Y[index].double(), run.Z[index].double()
    f = theory.normalized_attention(theory.attention_limit(classes.probs(), Z, classes.query_tokens))
    g = backprop_gradient(Y, f, classes.next_tokens)
    a, residual = coordinates(g, f)
    steps = run.steps.numpy()
    gamma = np.asarray(theory.gamma(steps.astype(np.float64), classes.M, classes.K, eta_y))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = torch.from_numpy(np.where(gamma > 0, 1.0 / np.where(gamma > 0, gamma, 1.0), np.nan))
    K = classes.K
    eye = torch.eye(K, dtype=torch.float64)
    iota = a.diagonal(dim1=-2, dim2=-1) * inv[:, None]
    beta = -a * (1 - eye) * inv[:, None, None]
    overlap = f @ f.transpose(-1, -2)
    e_prime = eye - torch.linalg.inv(overlap)
    xi = (-a * (1 - eye) * overlap).sum(-1)
    return Theorem1Measurement(steps=steps, gamma=gamma, coefficients=a, iota=iota, beta=beta,
                               overlap=overlap, e_prime=e_prime, residual=residual, xi=xi)


def modified_y_dynamics(classes: SequenceClasses, eta_y: float, steps: int,
                        record_every: int = 1) -> tuple[np.ndarray, torch.Tensor]:
    """Lemma 3's *modified* decoder dynamics with ``Z = 0`` frozen, in population form:

    ``Y ← Y + (η_Y/K) Σ_n (f_n − F E' e_n)(e_n − α_n)ᵀ`` with ``E' = I − (FᵀF)⁻¹``, under which
    ``W = FᵀY`` decouples exactly (each ``w_n`` follows Lemma 5 with rate ``η_Y/K``). The real
    (unmodified) update drops the ``− F E' e_n`` term. Returns ``(steps [S], Y [S, M, M])``.
    """
    _check_classes(classes)
    eta_y = check_float("eta_y", eta_y, low=0.0, low_open=True)
    steps = check_int("steps", steps, low=1)
    record_every = check_int("record_every", record_every, low=1)
    M, K = classes.M, classes.K
    F = theory.normalized_attention(classes.probs())  # Z = 0: c_n = P(·|n)
    e_prime = torch.eye(K, dtype=torch.float64) - torch.linalg.inv(F @ F.T)
    D = F - e_prime.T @ F  # row n: f_n − Σ_k E'_{kn} f_k = (F(I − E'))e_n (E' symmetric)
    E = torch.nn.functional.one_hot(classes.next_tokens, M).double()
    Y = torch.zeros(M, M, dtype=torch.float64)
    record = sorted(set(range(0, steps + 1, record_every)) | {steps})
    out = [Y.clone()]
    for s in range(1, steps + 1):
        Y = Y + eta_y / K * D.T @ (E - torch.softmax(F @ Y, dim=-1))
        if s in record:
            out.append(Y.clone())
    return np.asarray(record), torch.stack(out)


def decoupled_rows(run: Run, index: int = 0) -> torch.Tensor:
    """Lemma 3: ``W = FᵀY`` restricted to the classes' targets, ``[S, K, K]``.

    Row ``n`` holds ``w_n`` at the next tokens of all classes; Lemma 5 predicts
    ``w_nn = (M−1) h*`` on the diagonal and ``−h*`` off it (with ``Z`` frozen and ``F`` orthogonal).
    """
    classes, index = _check_run(run, index)
    f = theory.normalized_attention(
        theory.attention_limit(classes.probs(), run.Z[index].double(), classes.query_tokens))
    W = f @ run.Y[index].double()  # [S, K, M]: rows w_n = Yᵀ f_n
    return W[..., classes.next_tokens]


# --- Corollary 1: time to fit the next token --------------------------------------------------
def target_gap(run: Run, index: int = 0) -> torch.Tensor:
    """``||e_n − α_n||_2`` at each snapshot (Corollary 1's quantity), ``[S, K]``."""
    classes, index = _check_run(run, index)
    f = theory.normalized_attention(
        theory.attention_limit(classes.probs(), run.Z[index].double(), classes.query_tokens))
    alpha = torch.softmax(f @ run.Y[index].double(), dim=-1)
    e = torch.nn.functional.one_hot(classes.next_tokens, classes.M).double()
    return torch.linalg.vector_norm(e - alpha, dim=-1)


def fit_time(M: int, K: int, eta_y: Any, eps: Any) -> np.ndarray | np.float64:
    """Corollary 1, exact under Lemmas 5–6: the time ``t`` at which ``||e_n − α_n|| = ε``.

    With ``D = (M−1) + e^{Mh}``, Lemma 5 gives ``||e_n − α_n||² = (M−1)²/D² + (M−1)/D²
    = M(M−1)/D²``, so ``ε`` is reached at
    ``e^{Mh} = √(M(M−1))/ε − (M−1)`` and Lemma 6 turns ``h`` into time
    (class ``n`` sees ``t/K`` of the steps): ``t = K (e^{Mh} + (M−1) M h − 1) / (M η_Y)``.
    For small ``ε`` this is ``≈ K/(ε η_Y) + K ln(M/ε)/η_Y``, inside Corollary 1's
    ``O(K/(ε η_Y) · log(M/ε))``. ``eps`` in ``(0, √((M−1)/M))`` (the gap at ``t = 0``).
    """
    M = check_int("M", M, low=2)
    K = check_int("K", K, low=1)
    eta = np.asarray(eta_y, dtype=np.float64)
    e = np.asarray(eps, dtype=np.float64)
    if not np.all(np.isfinite(eta)) or np.any(eta <= 0):
        raise ValueError("eta_y must be finite and > 0")
    start = math.sqrt((M - 1) / M)
    if not np.all(np.isfinite(e)) or np.any(e <= 0) or np.any(e >= start):
        raise ValueError(f"eps must be in (0, {start:.4f}) (the gap at t = 0 is sqrt((M-1)/M))")
    exp_x = np.sqrt(M * (M - 1)) / e - (M - 1)
    x = np.log(exp_x)
    t = K * (exp_x + (M - 1) * x - 1.0) / (M * eta)
    return np.float64(t) if np.ndim(t) == 0 else t


def first_crossing(steps: Any, values: Any, level: float) -> float:
    """The first step at which ``values`` falls to ``level`` or below (``nan`` if never)."""
    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if steps.shape != values.shape or steps.ndim != 1:
        raise ValueError("steps and values must be 1-D arrays of the same length")
    hit = np.nonzero(values <= level)[0]
    return float(steps[hit[0]]) if hit.size else float("nan")


# --- Theorem 3: relative gain, growth factor and its bounds ------------------------------------
@dataclass
class Theorem3Measurement:
    """Theorem 3 measured along one run for class ``n``'s dominant distinct token ``l0``.

    ``others`` are the other distinct tokens ``l`` (ids); ``r [S, L] = r_{l0/l|n}(t)``;
    ``predicted [S, L] = r(0) χ_{l0}(t)`` with ``χ_{l0} = e^{2(z_{m l0}(t) − z_{m l0}(0))}``;
    ``rel_error [S, L] = |r / predicted − 1|``; ``chi [S]``; and, when ``B`` could be formed
    (every step recorded), ``B [S]``, ``lower [S] = e^{2 f_{n l0}(0)² B}``, ``upper = e^{2B}``.
    """

    steps: np.ndarray
    l0: int
    others: torch.Tensor
    r: torch.Tensor
    predicted: torch.Tensor
    rel_error: torch.Tensor
    chi: torch.Tensor
    B: torch.Tensor | None
    lower: torch.Tensor | None
    upper: torch.Tensor | None


def growth_budget(xi: torch.Tensor, eta_z: float, K: int, momentum: float = 0.0) -> torch.Tensor:
    """Theorem 3's ``B_n(t) = η_Z ∫_0^t ξ_n`` as a sum over consecutive steps: ``[S, ...]``.

    ``xi [S, ...]`` holds ``ξ_n`` *before* each step ``0..S−1``; ``B[0] = 0`` and
    ``B[s] = (η_Z/K) Σ_{s' < s} v_{s'}`` where ``v`` is ``ξ`` passed through the optimizer's
    momentum buffer (``v_s = μ v_{s−1} + ξ_s``; ``μ = 0`` is plain gradient descent). The ``1/K``
    is the share of each step that belongs to class ``n`` (classes weighted equally).
    """
    xi = check_tensor("xi", xi)
    eta_z = check_float("eta_z", eta_z, low=0.0)
    K = check_int("K", K, low=1)
    momentum = check_float("momentum", momentum, low=0.0, high=1.0)
    v = torch.zeros_like(xi[0])
    out = [torch.zeros_like(xi[0])]
    total = torch.zeros_like(xi[0])
    for s in range(xi.shape[0] - 1):
        v = momentum * v + xi[s]
        total = total + eta_z / K * v
        out.append(total.clone())
    return torch.stack(out)


def measure_theorem3(run: Run, index: int = 0, n: int = 0) -> Theorem3Measurement:
    """Theorem 3 along run ``index`` for class ``n``: the identity ``r(t) = r(0) χ_{l0}(t)``
    (checked at every snapshot) and, when the run recorded every step, the bounds
    ``e^{2 f_{n l0}(0)² B_n} ≤ χ_{l0} ≤ e^{2 B_n}`` with ``ξ_n`` measured by
    :func:`measure_theorem1` (momentum taken from the run's optimizer settings; Adam runs get no
    bounds). ``l0`` is class ``n``'s most likely distinct token.
    """
    classes, index = _check_run(run, index)
    n = check_int("n", n, low=0, high=classes.K - 1)
    distinct = classes.distinct_tokens(n)
    if distinct.numel() < 2:
        raise ValueError("class n needs at least two distinct tokens for a relative gain")
    probs = classes.probs()[n, distinct]
    l0 = int(distinct[int(torch.argmax(probs))])
    others = distinct[distinct != l0]
    m = int(classes.query_tokens[n])
    Z = run.Z[index].double()
    c = theory.attention_limit(classes.probs(), Z, classes.query_tokens)[:, n]  # [S, M]
    r = theory.relative_gain(c, torch.full_like(others, l0), others)  # [S, L]
    chi = torch.exp(2 * (Z[:, m, l0] - Z[0, m, l0]))
    predicted = r[0] * chi[:, None]
    rel_error = (r / predicted - 1).abs()
    B = lower = upper = None
    steps = run.steps.numpy()
    consecutive = np.array_equal(steps, np.arange(steps[0], steps[0] + len(steps)))
    optimizer = run.settings.get("optimizer", "sgd")
    if consecutive and optimizer == "sgd" and run.configs[index][0] > 0:
        xi = measure_theorem1(run, index).xi[:, n]
        B = growth_budget(xi, run.configs[index][1], classes.K, run.settings.get("momentum", 0.0))
        f0 = float(theory.normalized_attention(c[0])[l0])
        low, up = theory.chi_bounds(B.clamp_min(0).numpy(), f0)
        lower, upper = torch.from_numpy(np.asarray(low)), torch.from_numpy(np.asarray(up))
    return Theorem3Measurement(steps=steps, l0=l0, others=others, r=r, predicted=predicted,
                               rel_error=rel_error, chi=chi, B=B, lower=lower, upper=upper)


# --- the learnable TF-IDF view -----------------------------------------------------------------
def tfidf(classes: SequenceClasses) -> torch.Tensor:
    """A TF-IDF score per class from ``P(l|n)``: ``tf = P(l|n)``, ``idf = ln(K / |Ω(l)|)`` with
    ``Ω(l) = {n : P(l|n) > 0}`` (Section 3.2), normalized to sum to 1 per class: ``[K, M]``.

    Common tokens (in every class) get exactly 0; a class with no positive score keeps zeros.
    """
    _check_classes(classes)
    return tfidf_scores(classes.probs())


def tfidf_scores(probs: torch.Tensor) -> torch.Tensor:
    """:func:`tfidf` from a ``[K, M]`` tensor of ``P(l|n)`` (rows nonnegative, each summing to a
    positive number): ``P(l|n) ln(K/|Ω(l)|)`` normalized per row; rows with no positive score stay 0."""
    P = check_tensor("probs", probs, ndim=2).double()
    if bool((P < 0).any()):
        raise ValueError("probs must be nonnegative")
    K = P.shape[0]
    omega = (P > 0).sum(0).clamp_min(1).double()  # [M]: |Ω(l)|
    score = P * torch.log(K / omega)
    total = score.sum(-1, keepdim=True)
    return torch.where(total > 0, score / total.clamp_min(1e-300), score)


def sharpening_exponent(classes: SequenceClasses, c: torch.Tensor, n: int = 0) -> float:
    """Least-squares slope ``κ`` of ``ln c_{l|n}`` against ``ln P(l|n)`` over class ``n``'s
    distinct tokens: attention behaves like ``c ∝ P(l|n)^κ`` there (``κ = 1`` at ``Z = 0``;
    ``κ > 1`` means attention sharpened the TF part of TF-IDF)."""
    _check_classes(classes)
    n = check_int("n", n, low=0, high=classes.K - 1)
    c = check_tensor("c", c, shape=[classes.M]).double()
    tokens = classes.distinct_tokens(n)
    x = torch.log(classes.probs()[n, tokens]).numpy()
    y = torch.log(c[tokens].clamp_min(1e-300)).numpy()
    return float(np.polyfit(x, y, 1)[0])


# --- helpers -----------------------------------------------------------------------------------
def _check_classes(classes: Any) -> None:
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")


def _check_run(run: Any, index: Any) -> tuple[SequenceClasses, int]:
    if not isinstance(run, Run):
        raise TypeError(f"run must be a scansnap Run (from train or population), got {type(run).__name__}")
    index = check_int("index", index, low=0, high=len(run.configs) - 1)
    return run.classes, index


def _targets(targets: Any, K: int, M: int) -> torch.Tensor:
    targets = check_tensor("targets", targets)
    if targets.is_floating_point() or targets.shape != (K,):
        raise ValueError(f"targets must be an integer tensor of shape [{K}], got "
                         f"{targets.dtype} {list(targets.shape)}")
    if bool((targets < 0).any()) or bool((targets >= M).any()):
        raise ValueError(f"targets must hold token ids in [0, {M - 1}]")
    return targets.long()
