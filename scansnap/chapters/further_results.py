"""Results the chapters do not carry: Remark 1 (the real decoder's effective rate), Corollary 2
(several common tokens), Theorem 5 (finite batches) and §7 (the residual connection).

Each function measures; none fits. Time units and class weights are those of
:mod:`scansnap.mechanism` (expected dynamics, weight ``1/K`` per class).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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


# --- What the page's paragraphs quote (glued by ``scansnap.gluing.glue_numbers``) ---------------
def remark1_summary(classes: SequenceClasses, t: object, rates: Mapping[float, np.ndarray],
                    eta_y: float = 1.0, early_t: float = 10.0) -> dict[str, float]:
    """Remark 1 in numbers, from :func:`remark1_effective_rate` results ``rates`` (overlap
    ``ρ`` → ``η_eff/η_Y`` at the times ``t``). Keys: ``early``, the largest relative deviation
    from ``1 − ρ`` at ``t ≤ early_t`` over every ``ρ``; ``late_lo``, ``late_hi``, the range of
    ``η_eff / ((1 − ρ) η_Y)`` at the last time; ``modified_err``, the largest deviation from 1 of
    Lemma 3's *modified* decoder on ``classes`` (exactly 1 in theory); ``t0``, Theorem 4's
    ``t_0 = 2K ln M/η_Y`` of ``classes`` (the time scale of the plot)."""
    if not rates:
        raise ValueError("rates must not be empty")
    times = as_float64_array("t", t, low=0.0).ravel()
    early_t = check_float("early_t", early_t, low=float(times.min()))
    early = times <= early_t
    deviation = [float(np.abs(np.asarray(r)[early] / (1 - rho) - 1).max())
                 for rho, r in rates.items()]
    late = [float(np.asarray(r)[-1] / (1 - rho)) for rho, r in rates.items()]
    modified = remark1_effective_rate(classes, eta_y, times, decoder="modified")
    return dict(early=max(deviation), late_lo=min(late), late_hi=max(late),
                modified_err=float(np.abs(modified - 1).max()),
                t0=float(theory.t0(classes.M, classes.K, eta_y)))


def corollary2_summary(falls: Mapping[float, torch.Tensor]) -> dict[str, Any]:
    """Corollary 2 in numbers, per rate ratio ``r`` of ``falls`` (:func:`corollary2_common_logits`
    results, ``[steps + 1, C]``). Step 0 is left out (``Y = 0`` there, so nothing moves). Keys:
    ``moves_<r>``, the steps compared; ``falling_<r>``, those at which every common logit fell
    (Corollary 2: all of them); ``end_max_<r>``, the largest common logit at the end;
    ``spread_<r>``, the spread ``max − min`` of the common logits at the end (0 when the
    symmetry keeps them identical)."""
    out: dict[str, Any] = {}
    for ratio, z in falls.items():
        z = torch.as_tensor(z)
        if z.ndim != 2 or z.shape[0] < 3:
            raise ValueError(f"falls[{ratio!r}] must be [steps + 1 >= 3, C], got "
                             f"{list(z.shape)}")
        fell = (z[2:] < z[1:-1]).all(-1)
        out |= {f"moves_{ratio:g}": len(fell), f"falling_{ratio:g}": int(fell.sum()),
                f"end_max_{ratio:g}": float(z[-1].max()),
                f"spread_{ratio:g}": float(z[-1].max() - z[-1].min())}
    return out


def theorem5_summary(noise: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Theorem 5 in numbers, from :func:`theorem5_deviation`: ``slope``, the least-squares
    slope of the log mean (over seeds) distance against the log batch size (Theorem 5:
    ``−1/2``), and ``lo``, ``hi``, the smallest and largest mean distance."""
    mean = np.asarray(noise["deviation"], dtype=np.float64).mean(1)
    batch = np.asarray(noise["batch_sizes"], dtype=np.float64)
    if len(batch) < 2 or len(batch) != len(mean):
        raise ValueError("noise must hold at least two batch sizes, one deviation row each")
    slope = np.polyfit(np.log(batch), np.log(mean), 1)[0]
    return dict(slope=float(slope), lo=float(mean.min()), hi=float(mean.max()))


def residual_summary(classes: SequenceClasses,
                     ends: Mapping[bool, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """§7 in numbers: ``ends`` maps ``residual`` (off/on) to the common mass and distinct entropy
    at the end of training, one value per seed (each averaged over classes). Keys: ``mass_off``,
    ``mass_on``, ``entropy_off``, ``entropy_on`` (means over seeds) and ``entropy_start``, the
    distinct entropy of class 1 at ``Z = 0`` (the token frequencies alone)."""
    missing = {False, True} - set(ends)
    if missing:
        raise ValueError(f"ends must have entries for residual False and True; missing {missing}")
    out = {"entropy_start": float(metrics.distinct_entropy(
        classes, torch.zeros(classes.M, classes.M, dtype=torch.float64))[0])}
    for name, residual in (("off", False), ("on", True)):
        mass, entropy = ends[residual]
        out[f"mass_{name}"] = float(torch.as_tensor(mass).double().mean())
        out[f"entropy_{name}"] = float(torch.as_tensor(entropy).double().mean())
    return out


def beta_creep_summary(betas: Mapping[float, Mapping[str, Any]]) -> dict[str, float]:
    """The creep of ``β`` against its candidate closed form, per common-token weight ``w`` of
    ``betas`` (:func:`real_update_beta` results): ``<w>_lo``, ``<w>_hi``, the range of
    measured / candidate over time, and ``<w>_rho``, the classes' overlap ``f_1ᵀf_2``."""
    out: dict[str, float] = {}
    for weight, b in betas.items():
        ratio = np.asarray(b["measured"]) / np.asarray(b["candidate"])
        out |= {f"{weight:g}_lo": float(ratio.min()), f"{weight:g}_hi": float(ratio.max()),
                f"{weight:g}_rho": float(b["overlap"])}
    return out
