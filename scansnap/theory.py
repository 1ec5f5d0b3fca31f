"""The paper's closed forms (Tian, Wang, Chen, Du, NeurIPS 2023), exact in float64.

Sections map to the paper: Lemma 2 (the T→∞ attention ``c`` and its ℓ2-normalized ``f``),
Lemma 1 (closed-form gradients), Lemmas 5–7 (``h_star``, ``lemma5_alpha``, ``h``), the
speed-control coefficient ``gamma`` (and its exact peak ``gamma_peak``) and ``Gamma`` (Eqn 128),
Theorem 1(a)/2 (``xi``), Lemma 4 (``lemma4_zdot``), Theorem 3 (``relative_gain``,
``chi_bounds``) and Theorem 4 (``B``, ``B_printed``, ``B_scanning``, ``B_snapping``,
``dB_dlog_t``, ``z_common``, ``chi``, ``t0``, ``t0_prime``).

Scalar closed forms take Python numbers, numpy arrays or torch tensors (broadcast) and return
float64 numpy: a ``numpy.float64`` (a ``float`` subclass) when all inputs are scalars, else an
``ndarray``. Tensor closed forms (Lemma 1, ξ, Lemma 4, Theorem 3 gains) are torch in, torch out.

Convention for ``B_n``: ``B_n(0) = 0`` as in its definition (Theorem 3). The printed Eqns
14/124/129 drop the ``-¼ ln C_0`` from the lower limit of the integral (PAPER.md A.6);
:func:`B_printed` keeps the printed form for the erratum.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.special import wrightomega

from ._validate import (
    as_float64_array,
    as_int64_array,
    as_token_ids,
    check_bool,
    check_float,
    check_int,
    check_tensor,
)


def attention_limit(probs: torch.Tensor, Z: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Lemma 2 / Eqn 5: ``c_{l|n} = P(l|n) exp(z_{ψ(n) l}) / Σ_l' P(l'|n) exp(z_{ψ(n) l'})``.

    ``probs`` is ``[K, M]`` (P(l|n)), ``Z`` is ``[..., M, M]`` and ``queries`` ``[K]`` holds ψ(n).
    Returns ``c`` of shape ``[..., K, M]``; tokens outside a class's support get exactly 0.
    Overflow-safe: the maximum logit over the support is subtracted first.
    """
    probs = check_tensor("probs", probs, ndim=2)
    Z = check_tensor("Z", Z)
    K, M = probs.shape
    if Z.shape[-2:] != (M, M):
        raise ValueError(f"Z must have shape [..., {M}, {M}] to match probs, got {list(Z.shape)}")
    queries = as_token_ids("queries", queries, M).to(Z.device)
    if queries.shape != (K,):
        raise ValueError(f"queries must have shape [{K}], got {list(queries.shape)}")
    rows = Z[..., queries, :]  # [..., K, M]: z_{ψ(n), ·}
    support = probs > 0
    masked = rows.masked_fill(~support, float("-inf"))
    shifted = torch.exp(masked - masked.amax(dim=-1, keepdim=True))
    weights = probs.to(Z.dtype) * shifted
    return weights / weights.sum(dim=-1, keepdim=True)


def normalized_attention(c: torch.Tensor) -> torch.Tensor:
    """``f_n = c_n / ||c_n||_2`` (Lemma 2 notation; the input of the decoder as T→∞)."""
    c = check_tensor("c", c)
    return c / torch.linalg.vector_norm(c, dim=-1, keepdim=True)


# ---------------------------------------------------------------------------------------------
# Tensor-valued closed forms (Lemma 1, Theorem 1(a)/2, Lemma 4, Theorem 3): torch in, torch out
# (numpy arrays are accepted and converted). Computed in the input's floating dtype; pass float64
# for exactness.
# ---------------------------------------------------------------------------------------------


def lemma1_gradients(
    Y: torch.Tensor, Z: torch.Tensor, context: Any, query: int, target: int, normalize: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lemma 1 (Eqn 3): closed-form gradients of the cross-entropy **loss** ``-J`` of ONE sequence.

    Forward pass (PAPER.md A.1-A.2): ``b_t ∝ exp(Z[query, x_t])`` over the contextual tokens
    ``context = [x_1..x_{T-1}]`` (the query is masked), ``v = X^T b``, ``u = v/||v||`` if
    ``normalize`` else ``u = v``, logits ``Y^T u``, ``α = softmax(Y^T u)``, loss
    ``-log α_target``. Returns ``(grad_Y, grad_Z) = (-Ẏ/η_Y, -Ż/η_Z)``:

    * ``grad_Y = u (α - e_target)^T``;
    * only row ``query`` of ``grad_Z`` is nonzero (Eqn 4):
      ``grad_Z[query] = (X^T diag(b) X - v v^T) J Y (α - e_target)`` with
      ``J = P^⊥_v / ||v||`` (``P^⊥_v = I - v v^T/||v||^2``) when ``normalize``, else ``J = I``.

    With ``normalize`` the ``- v v^T`` term vanishes identically (``v^T P^⊥_v = 0``), which is
    why Eqn 3 does not show it; without normalization it is the softmax Jacobian's second term
    and is needed. Both forms keep ``grad_Y 1 = grad_Z 1 = 0`` (PAPER.md A.2).

    ``Y``, ``Z``: floating tensors ``[M, M]`` (numpy accepted); ``context``: integer ids
    ``[T-1]``; ``query``, ``target``: integer ids. Returns torch tensors in ``Y``'s dtype.
    """
    Y = check_tensor("Y", Y, ndim=2, floating=True)
    M = Y.shape[0]
    if Y.shape != (M, M):
        raise ValueError(f"Y must be square [M, M], got {list(Y.shape)}")
    Z = check_tensor("Z", Z, shape=[M, M], floating=True).to(Y.dtype)
    normalize = check_bool("normalize", normalize)
    ctx = as_token_ids("context", context, M, ndim=1).to(Y.device)
    m = int(as_token_ids("query", query, M, ndim=0))
    n = int(as_token_ids("target", target, M, ndim=0))
    dtype = Y.dtype
    X = torch.nn.functional.one_hot(ctx, M).to(dtype)  # [T-1, M]
    b = torch.softmax(Z[m, ctx], dim=0)  # [T-1]
    v = X.T @ b  # [M]
    eye = torch.eye(M, dtype=dtype, device=Y.device)
    if normalize:
        norm = torch.linalg.vector_norm(v)
        u = v / norm
        J = (eye - torch.outer(v, v) / norm**2) / norm  # P^⊥_v / ||v||
    else:
        u = v
        J = eye
    alpha = torch.softmax(Y.T @ u, dim=0)
    e_n = eye[n]
    grad_Y = torch.outer(u, alpha - e_n)
    g = J @ (Y @ (alpha - e_n))  # dLoss/dv
    row = (X.T @ torch.diag(b) @ X - torch.outer(v, v)) @ g
    grad_Z = torch.zeros_like(Y)
    grad_Z[m] = row
    return grad_Y, grad_Z


def xi(f: torch.Tensor, beta: torch.Tensor, gamma: Any) -> torch.Tensor:
    """Theorem 1(a) / Theorem 2: ``ξ_n = γ Σ_{n' != n} β_{nn'} f_n^T f_{n'}``.

    ``f``: ``[..., K, M]`` (rows ``f_n``), ``beta``: ``[..., K, K]``, ``gamma``: a number or a
    tensor broadcastable to ``[...]``. Returns a tensor ``[..., K]`` (torch; numpy accepted)."""
    f, beta, g = _xi_inputs(f, beta, gamma)
    G = f @ f.transpose(-1, -2)  # [..., K, K]: f_n^T f_n'
    off = 1.0 - torch.eye(f.shape[-2], dtype=f.dtype, device=f.device)
    return g.unsqueeze(-1) * (beta * G * off).sum(-1)


def _xi_inputs(f: Any, beta: Any, gamma: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The checked ``(f [..., K, M], beta [..., K, K], gamma)`` of ξ and Lemma 4, in f's dtype."""
    f = check_tensor("f", f, floating=True)
    beta = check_tensor("beta", beta, floating=True).to(f.dtype)
    if f.ndim < 2 or beta.shape[-2:] != (f.shape[-2], f.shape[-2]):
        raise ValueError(f"beta must have shape [..., K, K] with K = f.shape[-2], "
                         f"got f {list(f.shape)} and beta {list(beta.shape)}")
    if isinstance(gamma, (torch.Tensor, np.ndarray)):
        return f, beta, check_tensor("gamma", gamma, floating=True).to(f.dtype)
    return f, beta, torch.tensor(check_float("gamma", gamma), dtype=f.dtype)


def lemma4_zdot(
    f: torch.Tensor,
    beta: torch.Tensor,
    gamma: Any,
    queries: Any,
    eta_z: float,
    M: int | None = None,
) -> torch.Tensor:
    """Lemma 4 (Eqn 10), component form, as ``T → ∞``:

    ``ż_{ml} = η_Z γ Σ_{n ∈ ψ^{-1}(m)} f_{nl} Σ_{n' != n} β_{nn'} [(f_n^T f_{n'}) f_{nl} - f_{n'l}]``.

    ``f``: ``[..., K, M]``, ``beta``: ``[..., K, K]``, ``gamma``: number or tensor broadcastable to
    ``[...]``, ``queries``: integer ``[K]`` holding ψ(n), ``eta_z >= 0``; ``M`` (optional) must
    equal ``f.shape[-1]``. Returns ``Ż`` of shape ``[..., M, M]``: only rows of query tokens are
    nonzero. For a distinct token ``l`` of class ``n`` this is ``η_Z f_{nl}^2 ξ_n``
    (Theorem 2(a)). Torch in/out.
    """
    f, beta, g = _xi_inputs(f, beta, gamma)
    K, Mf = f.shape[-2:]
    if M is not None and check_int("M", M, low=2) != Mf:
        raise ValueError(f"M must equal f.shape[-1] = {Mf}, got {M}")
    eta_z = check_float("eta_z", eta_z, low=0.0)
    q = as_token_ids("queries", queries, Mf)
    if q.shape != (K,):
        raise ValueError(f"queries must have shape [{K}], got {list(q.shape)}")
    G = f @ f.transpose(-1, -2)  # [..., K, K]
    off = 1.0 - torch.eye(K, dtype=f.dtype, device=f.device)
    w = beta * off  # β_{nn'} for n' != n
    # Σ_{n'} β_{nn'} [(f_n·f_n') f_nl - f_n'l] = (Σ_n' β G)_n f_nl - (β f)_nl
    inner = (w * G).sum(-1, keepdim=True) * f - w @ f  # [..., K, M]
    d = eta_z * g.unsqueeze(-1).unsqueeze(-1) * f * inner  # [..., K, M]
    batch = torch.broadcast_shapes(d.shape[:-2])
    Zdot = torch.zeros(*batch, Mf, Mf, dtype=f.dtype, device=f.device)
    Zdot.index_add_(-2, q.to(f.device), d.expand(*batch, K, Mf))
    return Zdot


def relative_gain(f: Any, l: Any, l_prime: Any) -> torch.Tensor:
    """Theorem 3: ``r_{l/l'|n} = f_{nl}^2 / f_{nl'}^2 - 1`` (equivalently ``c̃_l^2/c̃_{l'}^2 - 1``).

    ``f``: ``[..., M]`` (a class's ``f_n``, or ``c_n``: the ratio does not depend on the
    normalization); ``l``, ``l_prime``: integer token ids or integer tensors (advanced indexing of
    the last axis, broadcast). Theorem 3: ``r(t) = r(0) e^{2(z_{ml}(t) - z_{ml}(0))}`` along
    Eqn 10. Torch in/out."""
    f = check_tensor("f", f, floating=True)
    if f.ndim < 1:
        raise ValueError("f must have at least one dimension [..., M]")
    li = as_token_ids("l", l, f.shape[-1]).to(f.device)
    lp = as_token_ids("l_prime", l_prime, f.shape[-1]).to(f.device)
    return f[..., li] ** 2 / f[..., lp] ** 2 - 1.0


# ---------------------------------------------------------------------------------------------
# Conventions for the scalar closed forms below (Lemmas 5-7, gamma, Gamma, B, t0, chi).
#
# * Every computation is float64 numpy.
# * Array-like arguments (``t``, ``s``, ``eta_y``, ``eta_z``, ``C0``, ``B``, ``f0``) may be Python
#   numbers, sequences, numpy arrays or torch tensors; they broadcast against each other.
# * ``M`` and ``K`` are plain integers (Python or numpy), not arrays.
# * Return type: when every array-like argument is a scalar, the result is a ``numpy.float64``
#   (a subclass of Python ``float``); otherwise a float64 ``numpy.ndarray`` of the broadcast shape.
# * Wrong types raise ``TypeError``; out-of-range or non-finite values raise ``ValueError`` naming
#   the parameter and the accepted range.
# ---------------------------------------------------------------------------------------------


# The accepted range of every argument of the scalar closed forms, checked once at the boundary.
_INTEGER_LOW = {"M": 2, "K": 1}
_REAL_RANGE = {
    "t": dict(low=0.0),
    "eta_y": dict(low=0.0, low_open=True),
    "eta_z": dict(low=0.0),
    "C0": dict(low=0.0, low_open=True),
    "B": dict(low=0.0),
    "f0": dict(low=0.0, high=1.0),
}

# h* is a step-by-step recursion (about 1 µs a step in Python): beyond this many steps use h
# (Lemma 7 bounds the gap by 2 η_Y / M) instead of waiting minutes.
H_STAR_MAX_STEPS = 10**6


def _checked(**args: Any) -> list[Any]:
    """The arguments of a scalar closed form, validated by name: ``M``, ``K`` as integers, the
    rest as float64 arrays in :data:`_REAL_RANGE` (conventions above)."""
    return [
        check_int(name, value, low=_INTEGER_LOW[name]) if name in _INTEGER_LOW
        else as_float64_array(name, value, **_REAL_RANGE[name])
        for name, value in args.items()
    ]


def _out(array: np.ndarray) -> np.ndarray | np.float64:
    array = np.asarray(array, dtype=np.float64)
    return np.float64(array) if array.ndim == 0 else array


def _inv_denominator(M: int, x: np.ndarray) -> np.ndarray:
    """``1 / ((M-1) + e^x)`` for ``x >= 0`` without overflow: ``e^-x / ((M-1) e^-x + 1)``."""
    e = np.exp(-x)
    return e / ((M - 1) * e + 1.0)


def _x_of(tau: np.ndarray, M: int, eta_y: np.ndarray) -> np.ndarray:
    """``x = M h(tau)``: the root of ``e^x + (M-1) x = M eta_y tau + 1`` (Lemma 6), float64."""
    with np.errstate(over="ignore"):  # an overflow is reported below as a ValueError
        rhs = M * eta_y * tau  # = e^x - 1 + (M-1) x
    if not np.all(np.isfinite(rhs)):
        raise ValueError(
            "M * eta_y * t must be finite (it overflows float64); use smaller t or eta_y"
        )
    # y = A - x solves y e^y = e^A / (M-1), with A = (M eta_y tau + 1) / (M-1); y = W(e^{A - ln(M-1)})
    # is the Wright omega function of A - ln(M-1) (no exp of A is ever formed).
    A = (rhs + 1.0) / (M - 1)
    y = wrightomega(A - math.log(M - 1))
    # Two cancellation-free forms of x: A - y (accurate while A is small) and ln((M-1) y) (from
    # e^x = (M-1)(A - x) = (M-1) y; accurate once A is large, when A - y cancels).
    x = np.where(A < 1.0, A - y, math.log(M - 1) + np.log(np.maximum(y, 1e-300)))
    x = np.maximum(x, 0.0)
    # Polish with Newton on f(x) = expm1(x) + (M-1) x - M eta_y tau (f convex and increasing; expm1
    # keeps relative accuracy for tiny x). Two steps take the ~1e-10 starting error to rounding.
    for _ in range(3):
        f = np.expm1(x) + (M - 1) * x - rhs
        x = np.maximum(x - f / (np.exp(x) + (M - 1)), 0.0)
    return np.where(rhs == 0, 0.0, x)  # h(0) = 0 exactly, whatever the Newton rounding


def h(t: Any, M: int, eta_y: Any) -> np.ndarray | np.float64:
    """Lemma 6: the continuous solution ``h(t)`` of ``ḣ = η_Y / ((M-1) + e^{M h})``, ``h(0) = 0``.

    It is the root of ``e^{M h} + (M-1) M h = M η_Y t + 1``. With ``x = M h`` and
    ``A = (M η_Y t + 1)/(M-1)``, ``y = A - x`` solves ``y e^y = e^A/(M-1)``, so
    ``y = W(e^{A - ln(M-1)}) = wrightomega(A - ln(M-1))``; ``x`` is then taken in a
    cancellation-free form and polished by Newton steps. No overflow for ``M`` up to 1e5 and
    ``η_Y t`` up to ~1e300/M. Relative residual of the defining equation ~1e-15.

    ``t >= 0`` and ``eta_y > 0`` are arrays or scalars (broadcast); ``M >= 2`` an integer.
    Returns float64 (``numpy.float64`` for scalar inputs, else ``numpy.ndarray``).
    """
    t, M, eta_y = _checked(t=t, M=M, eta_y=eta_y)
    return _out(_x_of(t, M, eta_y) / M)


def h_star(s: Any, M: int, eta_y: Any) -> np.ndarray | np.float64:
    """Lemma 5: the exact discrete ``h*(s)``, ``h*(0) = 0``,
    ``h*(s) = h*(s-1) + η_Y / ((M-1) + e^{M h*(s-1)})``.

    One gradient-ascent step of size ``η_Y`` on ``log softmax(w)_n`` from ``w = 0`` gives
    ``w_nn = (M-1) h*(s)``, ``w_nj = -h*(s)`` (Lemma 5). ``s`` is an integer or an integer array
    (``>= 0``); ``eta_y > 0`` broadcasts against it. The increment is evaluated as
    ``η e^{-Mh} / ((M-1) e^{-Mh} + 1)``, so it never overflows. Cost: ``max(s)`` steps per
    distinct ``eta_y``, so ``s`` is bounded by :data:`H_STAR_MAX_STEPS` (a ``ValueError`` beyond;
    use :func:`h` there, Lemma 7: ``0 <= h* - h <= 2 η_Y / M``). Returns float64
    (``numpy.float64`` for scalar inputs).
    """
    s = as_int64_array("s", s, low=0, high=H_STAR_MAX_STEPS)
    M, eta_y = _checked(M=M, eta_y=eta_y)
    return _out(_h_star(s, M, eta_y))


def _h_star(s: np.ndarray, M: int, eta_y: np.ndarray) -> np.ndarray:
    s, eta_y = np.broadcast_arrays(s, eta_y)
    out = np.empty(s.shape, dtype=np.float64)
    for eta in np.unique(eta_y):
        sel = eta_y == eta
        path = [hs := 0.0]
        for _ in range(int(s[sel].max())):
            e = math.exp(-M * hs)
            hs += eta * e / ((M - 1) * e + 1.0)
            path.append(hs)
        out[sel] = np.asarray(path)[s[sel]]
    return out


def lemma5_alpha(s: Any, M: int, eta_y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Lemma 5: the softmax used by the ``s``-th step (``s >= 1``), i.e. ``α = softmax(w(s-1))``:
    ``α_nn(s) = e^{M h*(s-1)} / ((M-1) + e^{M h*(s-1)})`` and, for ``j != n``,
    ``α_nj(s) = 1 / ((M-1) + e^{M h*(s-1)})``. Overflow-safe. Returns ``(α_nn, α_nj)``."""
    s = as_int64_array("s", s, low=1, high=H_STAR_MAX_STEPS + 1)
    M, eta_y = _checked(M=M, eta_y=eta_y)
    hs = _h_star(s - 1, M, eta_y)
    e = np.exp(-M * hs)
    denom = (M - 1) * e + 1.0
    return _out(1.0 / denom), _out(e / denom)


def gamma(t: Any, M: int, K: int, eta_y: Any) -> np.ndarray | np.float64:
    """Speed control coefficient (Lemma 9, Theorem 1):
    ``γ(t) = (M-1)^2 h(t/K) / ((M-1) + e^{M h(t/K)})`` with ``h`` from Lemma 6.

    Evaluated as ``(M-1)^2 h e^{-Mh} / ((M-1) e^{-Mh} + 1)`` (no overflow). Two stages (Lemma 9):
    ``γ = O(η_Y t / K)`` for ``t <= K ln M / η_Y``; ``γ = O(K ln(M η_Y t / K) / (η_Y t))`` for
    ``t >= 2(1+ω) K ln M / η_Y``. Returns float64 (``numpy.float64`` for scalar inputs).
    """
    return _out(_gamma(*_checked(t=t, M=M, K=K, eta_y=eta_y)))


def _gamma(t: np.ndarray, M: int, K: int, eta_y: np.ndarray) -> np.ndarray:
    x = _x_of(t / K, M, eta_y)
    return (M - 1) ** 2 * (x / M) * _inv_denominator(M, x)


def Gamma(t: Any, M: int, K: int, eta_y: Any, eta_z: Any) -> np.ndarray | np.float64:
    """``Γ(t) := η_Z ∫_0^t γ(t') dt' = (η_Z/η_Y) · K (M-1)^2 / 2 · h(t/K)^2`` (Eqn 128, exact).

    The closed form follows from Lemma 6 (``d h(t/K)/dt = η_Y / (K((M-1) + e^{Mh}))``).
    ``eta_z >= 0`` (0 freezes Z). Returns float64 (``numpy.float64`` for scalar inputs).
    """
    return _out(_Gamma(*_checked(t=t, M=M, K=K, eta_y=eta_y, eta_z=eta_z)))


def _Gamma(t: np.ndarray, M: int, K: int, eta_y: np.ndarray, eta_z: np.ndarray) -> np.ndarray:
    hh = _x_of(t / K, M, eta_y) / M
    return eta_z / eta_y * K * (M - 1) ** 2 / 2.0 * hh * hh


def B(t: Any, M: int, K: int, eta_y: Any, eta_z: Any, C0: Any) -> np.ndarray | np.float64:
    """``B_n(t) = ¼ ln(1 + 4Γ(t)/C_0)`` (Theorem 3's ``η_Z ∫ ξ_n`` under App. F's approximations,
    Eqn 13; ``C_0 = ρ_0^4 / K``), with ``Γ`` from Eqn 128.

    This is Eqn 129 *including* the lower limit of the integral, so ``B(0) = 0`` and the common
    token's logit is exactly ``z = -B`` (see :func:`z_common`). The printed Eqns 14/124/129 read
    ``¼ ln(C_0 + 4Γ)``, which differs by the constant ``¼ ln C_0`` (see :func:`B_printed`, and
    PAPER.md A.6); the two agree when ``C_0 = 1``. Returns float64.
    """
    return _out(_B(*_checked(t=t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0)))


def _B(t: Any, M: int, K: int, eta_y: Any, eta_z: Any, C0: Any) -> np.ndarray:
    return 0.25 * np.log1p(4.0 * _Gamma(t, M, K, eta_y, eta_z) / C0)


def B_printed(t: Any, M: int, K: int, eta_y: Any, eta_z: Any, C0: Any) -> np.ndarray | np.float64:
    """Eqn 129 exactly as printed: ``¼ ln(C_0 + 4Γ(t))`` = :func:`B` ``+ ¼ ln C_0``.

    Kept for the erratum: as printed, ``B_n(0) = ¼ ln C_0 != 0`` although ``B_n(0) = 0`` by its
    definition in Theorem 3."""
    t, M, K, eta_y, eta_z, C0 = _checked(t=t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0)
    return _out(0.25 * np.log(C0 + 4.0 * _Gamma(t, M, K, eta_y, eta_z)))


def B_scanning(t: Any, M: int, K: int, eta_y: Any, eta_z: Any, C0: Any) -> np.ndarray | np.float64:
    """Theorem 4, early regime (``t < t_0' = K ln M / η_Y``), with ``B(0) = 0``:
    ``¼ ln(1 + 2(M-1)^2 η_Y η_Z t^2 / (K M^2 C_0))``.

    It is ``B`` with ``h(τ) ≈ η_Y τ / M`` (the linearization of Lemma 6 at ``h = 0``). The
    printed Theorem 4 line is ``¼ ln(C_0 + 2(M-1)^2 η_Y η_Z t^2/(K M^2))`` = this ``+ ¼ ln C_0``.
    Since ``h(τ) <= η_Y τ / M`` it is an upper bound of :func:`B`, tight for ``t << t_0'``."""
    t, M, K, eta_y, eta_z, C0 = _checked(t=t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0)
    four_gamma = 2.0 * (M - 1) ** 2 / (K * M**2) * eta_y * eta_z * t * t
    return _out(0.25 * np.log1p(four_gamma / C0))


def B_snapping(t: Any, M: int, K: int, eta_y: Any, eta_z: Any, C0: Any) -> np.ndarray | np.float64:
    """Theorem 4, late regime (``t >= t_0 = 2(1+o(1)) K ln M / η_Y``), with ``B(0) = 0``:
    ``¼ ln(1 + 2K(M-1)^2 (η_Z/η_Y) ln^2(M η_Y t / K) / (M^2 C_0))``.

    It is ``B`` with ``h(τ) ≈ ln(M η_Y τ)/M`` (Lemma 9). The printed Theorem 4 line is
    ``¼ ln(C_0 + 2K(M-1)^2/M^2 (η_Z/η_Y) ln^2(M η_Y t / K))`` = this ``+ ¼ ln C_0``. Only
    meaningful for ``t >= t_0``; for ``M η_Y t / K < 1`` the logarithm is clipped at 0 (returns 0).
    """
    t, M, K, eta_y, eta_z, C0 = _checked(t=t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0)
    with np.errstate(divide="ignore"):
        L = np.maximum(np.log(M * eta_y * t / K), 0.0)
    four_gamma = 2.0 * K * (M - 1) ** 2 / M**2 * eta_z / eta_y * L * L
    return _out(0.25 * np.log1p(four_gamma / C0))


def dB_dlog_t(t: Any, M: int, K: int, eta_y: Any, eta_z: Any, C0: Any) -> np.ndarray | np.float64:
    """``dB_n / d ln t = t η_Z γ(t) / (C_0 + 4Γ(t))`` (analytic; same for :func:`B` and
    :func:`B_printed`, which differ by a constant). About ½ in the scanning window
    (``4Γ >> C_0``, ``t < t_0'``) and about ``1/(2 ln(M η_Y t/K))`` after ``t_0`` (Theorem 4)."""
    t, M, K, eta_y, eta_z, C0 = _checked(t=t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0)
    G = _Gamma(t, M, K, eta_y, eta_z)
    return _out(t * eta_z * _gamma(t, M, K, eta_y) / (C0 + 4.0 * G))


def z_common(t: Any, M: int, K: int, eta_y: Any, eta_z: Any, C0: Any) -> np.ndarray | np.float64:
    """App. F closed form for the single common token's logit under Eqn 13
    (``ż = -C_0^{-1} η_Z γ e^{4z}``, ``z(0) = 0``): ``e^{-4z(t)} = 1 + 4Γ(t)/C_0``, i.e.
    ``z(t) = -B_n(t)``."""
    return _out(-_B(*_checked(t=t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0)))


def chi(t: Any, M: int, K: int, eta_y: Any, eta_z: Any, C0: Any) -> np.ndarray | np.float64:
    """The growth-factor upper bound ``e^{2 B_n(t)}`` of Theorem 3 with ``B_n`` from :func:`B`
    (what Fig. 3 plots; ``chi(0) = 1``)."""
    return _out(np.exp(2.0 * _B(*_checked(t=t, M=M, K=K, eta_y=eta_y, eta_z=eta_z, C0=C0))))


def chi_bounds(B: Any, f0: Any) -> tuple[np.ndarray, np.ndarray]:
    """Theorem 3: ``e^{2 f_{nl_0}^2(0) B_n} <= χ_{l_0}(t) <= e^{2 B_n}``.

    ``B >= 0`` (``B_n(t)``) and ``f0`` in ``[0, 1]`` (``f_{nl_0}(0)``) broadcast.
    Returns ``(lower, upper)``."""
    Bv, f0 = np.broadcast_arrays(*_checked(B=B, f0=f0))
    return _out(np.exp(2.0 * f0 * f0 * Bv)), _out(np.exp(2.0 * Bv))


def t0(M: int, K: int, eta_y: Any) -> np.ndarray | np.float64:
    """Theorem 4: the snapping time ``t_0 = 2 K ln M / η_Y`` (the ``(1 + o(1))`` factor dropped,
    as in Fig. 3's dotted lines)."""
    M, K, eta_y = _checked(M=M, K=K, eta_y=eta_y)
    return _out(2.0 * K * math.log(M) / eta_y)


def t0_prime(M: int, K: int, eta_y: Any) -> np.ndarray | np.float64:
    """Theorem 4 / Lemma 9: the end of the scanning regime ``t_0' = K ln M / η_Y``."""
    M, K, eta_y = _checked(M=M, K=K, eta_y=eta_y)
    return _out(K * math.log(M) / eta_y)


def gamma_peak(M: int, K: int, eta_y: Any) -> np.ndarray | np.float64:
    """The time at which :func:`gamma` is largest (exact, from Lemma 6).

    ``γ ∝ x / ((M-1) + e^x)`` with ``x = M h(t/K)`` increasing in ``t``, so the peak is at
    ``e^x (x - 1) = M - 1``, i.e. ``x* = 1 + W((M-1)/e)`` (``= 1 + wrightomega(ln(M-1) - 1)``),
    reached at ``t* = K (e^{x*} - 1 + (M-1) x*) / (M η_Y)`` ≈ ``K (ln M - ln ln M + O(1)) / η_Y``.
    Note: for ``M >= 30`` this is *before* ``t_0' = K ln M / η_Y`` (0.8-0.95 ``t_0'``), not
    between ``t_0'`` and ``t_0``; Lemma 9 only bounds γ on either side."""
    M, K, eta_y = _checked(M=M, K=K, eta_y=eta_y)
    x = 1.0 + float(wrightomega(math.log(M - 1) - 1.0))
    return _out(K * (math.expm1(x) + (M - 1) * x) / (M * eta_y))
