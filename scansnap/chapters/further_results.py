"""Results the chapters do not carry: Remark 1 (the real decoder's effective rate), Corollary 2
(several common tokens), Theorem 5 (finite batches) and §7 (the residual connection).

Each function measures; none fits. Time units and class weights are those of
:mod:`scansnap.mechanism` (expected dynamics, weight ``1/K`` per class).
"""

from __future__ import annotations

from collections.abc import Sequence
import numpy as np
import torch

from .. import mechanism, metrics, theory
from .._validate import as_float64_array, as_int_list, check_float, check_int
from ..data import SequenceClasses
from ..dynamics import population, train
from ..plots import FigureResult, new_figure


def uniform_overlap(classes: SequenceClasses) -> float:
    """``ρ`` when every pair of classes has the same overlap ``f_nᵀf_{n'}`` at ``Z = 0``
    (Remark 1's setting); raises ``ValueError`` otherwise."""
    f = theory.normalized_attention(classes.probs()).numpy()
    off = (f @ f.T)[~np.eye(classes.K, dtype=bool)]
    if np.ptp(off) > 1e-12:
        raise ValueError("classes must have one common overlap f_n^T f_n' for every pair")
    return float(off[0])


def remark1_effective_rate(classes: SequenceClasses, eta_y: float, t: object,
                           decoder: str = "real") -> np.ndarray:
    """Remark 1 measured: with ``Z = 0`` frozen, integrate the decoder, read class ``n``'s
    margin ``x = w_nn − w_nj`` (``W = FᵀY``; ``x = M h`` under Lemma 5/6, the mean over ``n`` and
    ``j ≠ n``) and invert Lemma 6 for the rate that would produce it:
    ``η_eff(t) = (e^x − 1 + (M−1) x) K / (M t)``. Returns ``η_eff / η_Y`` at each ``t``
    (1 for Lemma 3's modified decoder, exactly; Remark 1 predicts ``1 − ρ`` for the real one)."""
    eta_y = check_float("eta_y", eta_y, low=0.0, low_open=True)
    times = as_float64_array("t", t, low=0.0).ravel()
    traj = mechanism.integrate(classes, eta_y, 0.0, times, decoder=decoder)
    f = theory.normalized_attention(classes.probs()).numpy()
    W = np.einsum("km,smj->skj", f, traj.Y)[:, :, classes.next_tokens.numpy()]  # [S, K, K]
    K, M = classes.K, classes.M
    diag = np.einsum("skk->sk", W)
    off = (W.sum(-1) - diag) / (K - 1)
    # w_n over all M outputs: the K−1 other next tokens and the M−K non-targets share −h each
    # under Lemma 5, so the margin against any non-target equals the one against next tokens.
    x = (diag - off).mean(-1)
    return (np.expm1(x) + (M - 1) * x) * K / (M * traj.t * eta_y)


def corollary2_common_logits(classes: SequenceClasses, eta_y: float, eta_z: float,
                             steps: int) -> torch.Tensor:
    """Corollary 2's setting (one query, symmetric classes, several common tokens, ``Z(0) = 0``):
    the common logits of the query along population dynamics, ``[steps + 1, C]``."""
    if classes.num_queries != 1:
        raise ValueError("Corollary 2 needs a single query (num_queries = 1)")
    run = population(classes, eta_y=eta_y, eta_z=eta_z, steps=check_int("steps", steps, low=1),
                     record_every=1)
    return metrics.common_logits(classes, run.Z[0])[:, 0]


def theorem5_deviation(classes: SequenceClasses, eta_y: float, steps: int,
                       batch_sizes: Sequence[int], seeds: Sequence[int],
                       seq_len: int = 1_000_000) -> dict[str, np.ndarray]:
    """Theorem 5's sampling noise: plain SGD on ``Y`` alone (``η_Z = 0``, no momentum, a very
    long ``seq_len`` so that finite-``T`` bias is negligible) against population dynamics at the
    same step count; returns ``batch_sizes`` and ``deviation [len(batch_sizes), len(seeds)]``,
    the relative Frobenius distance ``‖Y_SGD − Y_pop‖ / ‖Y_pop‖`` at the end."""
    eta_y = check_float("eta_y", eta_y, low=0.0, low_open=True)
    steps = check_int("steps", steps, low=1)
    sizes = as_int_list("batch_sizes", batch_sizes, low=1)
    seed_list = as_int_list("seeds", seeds, low=0)
    reference = population(classes, eta_y=eta_y, eta_z=0.0, steps=steps,
                           record_every=None).Y[0, -1]
    deviation = np.zeros((len(sizes), len(seed_list)))
    for i, batch in enumerate(sizes):
        run = train(classes, eta_y=eta_y, eta_z=0.0, steps=steps, batch_size=batch,
                    seq_len=seq_len, momentum=0.0, seeds=seed_list, record_every=None,
                    progress=False)
        diff = torch.linalg.matrix_norm(run.Y[:, -1] - reference)
        deviation[i] = (diff / torch.linalg.matrix_norm(reference)).numpy()
    return dict(batch_sizes=np.array(sizes), deviation=deviation)


def remark1_figure(t: np.ndarray, rates: dict[float, np.ndarray]) -> FigureResult:
    """Remark 1: measured ``η_eff/η_Y`` over ``t`` (log x), one curve per overlap ``ρ`` (the
    ``rates`` keys), with ``1 − ρ`` dashed in the same colour."""
    if not rates:
        raise ValueError("rates must not be empty")
    fig = new_figure(7, 3.4)
    ax = fig.subplots()
    for i, (rho, ratio) in enumerate(rates.items()):
        ax.semilogx(t, ratio, color=f"C{i}", label=rf"real decoder, $\rho$ = {rho:.2f}")
        ax.axhline(1 - rho, color=f"C{i}", ls="--", lw=1)
    ax.set(xlabel="t (expected steps)", ylabel=r"$\eta_{\mathrm{eff}}/\eta_Y$ (dashed: $1-\rho$)")
    ax.legend(fontsize=8)
    return FigureResult(fig, {"t": np.asarray(t).tolist(),
                              "rates": {f"{rho:.4f}": np.asarray(r).tolist() for rho, r in rates.items()}})


def real_update_beta(classes: SequenceClasses, eta_y: float, t: object) -> dict[str, np.ndarray]:
    """Theorem 1's ``β_{12}`` under the *real* decoder update with ``Z = 0`` frozen, measured
    (``γβ / γι`` from :func:`scansnap.mechanism.coefficients`), against a candidate closed form
    for its slow creep, ``β ≈ M/(M−1)² · (M η_Y t/K)^{f_1ᵀf_2}`` (the ``O(1/M)`` floor of Lemma 5
    raised by the overlap). Returns ``t``, ``measured``, ``candidate`` and ``overlap``."""
    eta_y = check_float("eta_y", eta_y, low=0.0, low_open=True)
    times = as_float64_array("t", t, low=0.0).ravel()
    traj = mechanism.integrate(classes, eta_y, 0.0, times)
    f = theory.normalized_attention(classes.probs()).numpy()
    rho = float(f[0] @ f[1])
    measured = []
    for Y, Z in zip(traj.Y, traj.Z):
        co = mechanism.coefficients(classes, Y, Z)
        measured.append(co["gamma_beta"][0, 1] / co["gamma_iota"][0])
    M, K = classes.M, classes.K
    candidate = M / (M - 1) ** 2 * (M * eta_y * traj.t / K) ** rho
    return dict(t=traj.t, measured=np.array(measured), candidate=candidate, overlap=rho)
