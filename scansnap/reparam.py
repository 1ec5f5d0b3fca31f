"""Chapter 2 (the reparameterization, Section 3.1): measurements that compare the original
parameters ``(U, W_Q, W_K, W_V)`` with ``Y = U W_Vᵀ Uᵀ`` and ``Z = U W_Q W_Kᵀ Uᵀ / √d``.

* :func:`logit_identity`: the full model's logits, computed in the original parameters on token
  sequences, equal the ``(Y, Z)`` model's logits computed from token counts (float64 rounding).
* :func:`lemma1_check`: Lemma 1's closed-form gradients (:func:`scansnap.theory.lemma1_gradients`)
  against autograd on random instances.
* :func:`row_sum_drift`: the invariant ``Ẏ 1 = Ż 1 = 0`` (zero row sums from a zero start) along
  a :class:`~scansnap.dynamics.Run`.
* :func:`one_step_rates` / :func:`predicted_rates`: one gradient step on the original
  parameters moves ``(Y, Z)`` along Lemma 1's gradients at *effective* rates
  ``κ_Y ≈ (5/3) η_Y`` and ``κ_Z ≈ 2 η_Z / (3 d)`` at PyTorch's default initialization.
"""

from __future__ import annotations

import math

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from . import theory
from ._validate import as_int_list, check_bool, check_float, check_int, check_tensor
from .data import SequenceClasses, counts_of
from .dynamics import Run
from .figures import FigureResult
from .models import Transformer1L, full_to_yz, yz_logits
from .plots import class_color, new_figure, plot_attention

__all__ = ["logit_identity", "lemma1_check", "row_sum_drift", "OneStepRates", "one_step_rates",
           "predicted_rates", "rates_vs_width", "compare_frame"]


def _check_classes(classes: object) -> SequenceClasses:
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")
    return classes


def logit_identity(classes: SequenceClasses, ds: Sequence[int] = (1, 4, 16, 64, 256),
                   seeds: Sequence[int] = (0, 1, 2), batch_size: int = 64,
                   seq_len: int = 128) -> dict[str, np.ndarray]:
    """Section 3.1: ``u_lᵀ W_V Uᵀ LN(Xᵀ b_T) = (Yᵀ LN(Xᵀ b_T))_l`` with ``b_T`` from ``Z``.

    For each width ``d`` and seed, a random :class:`~scansnap.models.Transformer1L` (float64)
    computes logits on sampled token sequences in its own parameters, and :func:`yz_logits`
    computes them from ``(Y, Z) = to_yz()`` and the sequences' token counts. Returns
    ``{"d", "seeds", "max_abs_error" [len(ds), len(seeds)], "max_abs_logit" [same]}``.
    """
    classes = _check_classes(classes)
    ds = as_int_list("ds", list(ds), low=1)
    seeds = as_int_list("seeds", list(seeds), low=0)
    batch_size = check_int("batch_size", batch_size, low=1)
    seq_len = check_int("seq_len", seq_len, low=2)
    err = np.zeros((len(ds), len(seeds)))
    size = np.zeros_like(err)
    for i, d in enumerate(ds):
        for j, seed in enumerate(seeds):
            g = torch.Generator().manual_seed(seed)
            model = Transformer1L(classes.M, d, generator=g)
            contexts, queries, _ = classes.sample(batch_size, seq_len, g)
            with torch.no_grad():
                full = model(contexts, queries)
                Y, Z = model.to_yz()
                yz = yz_logits(Y, Z, counts_of(contexts, classes.M), queries)
            err[i, j] = float((full - yz).abs().max())
            size[i, j] = float(full.abs().max())
    return {"d": np.asarray(ds), "seeds": np.asarray(seeds), "max_abs_error": err,
            "max_abs_logit": size}


def lemma1_check(M: int = 12, seq_len: int = 16, cases: int = 50, scale: float = 1.0,
                 normalize: bool = True, seed: int = 0) -> dict[str, float]:
    """Lemma 1 (Eqn 3) against autograd on ``cases`` random instances, in float64.

    Each instance has ``Y, Z ~ scale · N(0, 1)`` (``[M, M]``), ``seq_len − 1`` uniformly random
    contextual tokens, a random query and target. Returns the largest relative errors
    ``max |closed − autograd| / max |autograd|`` for ``Y`` and ``Z``, and the largest ``|row
    sum|`` of either closed-form gradient (Lemma 1's invariant says 0).
    """
    M = check_int("M", M, low=2)
    seq_len = check_int("seq_len", seq_len, low=2)
    cases = check_int("cases", cases, low=1)
    scale = check_float("scale", scale, low=0.0)
    normalize = check_bool("normalize", normalize)
    g = torch.Generator().manual_seed(check_int("seed", seed, low=0))
    worst_y = worst_z = worst_sum = 0.0
    for _ in range(cases):
        Y = (scale * torch.randn(M, M, generator=g, dtype=torch.float64)).requires_grad_(True)
        Z = (scale * torch.randn(M, M, generator=g, dtype=torch.float64)).requires_grad_(True)
        context = torch.randint(M, (seq_len - 1,), generator=g)
        query, target = (int(v) for v in torch.randint(M, (2,), generator=g))
        logits = yz_logits(Y, Z, counts_of(context[None], M), torch.tensor([query]),
                           normalize=normalize)
        loss = -torch.log_softmax(logits, -1)[0, target]
        auto_y, auto_z = torch.autograd.grad(loss, (Y, Z))
        closed_y, closed_z = theory.lemma1_gradients(Y.detach(), Z.detach(), context, query,
                                                     target, normalize=normalize)
        worst_y = max(worst_y, float((closed_y - auto_y).abs().max() / auto_y.abs().max()))
        worst_z = max(worst_z, float((closed_z - auto_z).abs().max()
                                     / auto_z.abs().max().clamp_min(1e-300)))
        worst_sum = max(worst_sum, float(closed_y.sum(1).abs().max()),
                        float(closed_z.sum(1).abs().max()))
    return {"max_rel_error_Y": worst_y, "max_rel_error_Z": worst_z, "max_row_sum": worst_sum}


def row_sum_drift(run: Run) -> dict[str, torch.Tensor]:
    """The invariant of Lemma 1 along a run: ``Y 1`` and ``Z 1`` stay 0 from a zero start.

    Returns ``{"Y": [R, S], "Z": [R, S]}``: the largest ``|row sum|`` at each snapshot, and
    ``"Z_other_rows" [R, S]``: the largest ``|z_{ml}|`` over rows ``m`` that are not query tokens
    (they receive no gradient, Eqn 4, so they stay exactly 0 from a zero start under SGD).
    """
    if not isinstance(run, Run):
        raise TypeError(f"run must be a scansnap Run, got {type(run).__name__}")
    other = torch.ones(run.classes.M, dtype=torch.bool)
    other[run.classes.query_tokens] = False
    return {"Y": run.Y.sum(-1).abs().amax(-1), "Z": run.Z.sum(-1).abs().amax(-1),
            "Z_other_rows": run.Z[..., other, :].abs().amax((-1, -2))}


@dataclass
class OneStepRates:
    """How one gradient step on ``(U, W_Q, W_K, W_V)`` moves ``(Y, Z)`` (first order).

    With ``G_Y, G_Z`` the gradients of the batch loss with respect to ``Y, Z`` (Lemma 1) and
    ``ΔY, ΔZ`` the first-order change of ``(Y, Z)`` under the step, ``kappa_y = −⟨ΔY, G_Y⟩ /
    ‖G_Y‖²`` is the effective learning rate of ``Y`` and ``cos_y`` the cosine between ``ΔY`` and
    ``−G_Y``. For ``Z`` only the query rows matter (the others are never read) and adding a
    constant to a row does not change attention, so ``Z``'s measures use the query rows over the
    contextual tokens, each row centred: ``kappa_z``/``cos_z`` for the full step,
    ``kappa_z_attention``/``cos_z_attention`` for the part due to ``W_Q, W_K`` alone and
    ``kappa_z_embedding``/``cos_z_embedding`` for the part due to ``U, W_V`` (the decoder's
    gradient reaching ``Z`` through the shared embedding); ``size_z_embedding = ‖ΔZ_emb‖ / ‖G_Z‖``
    is how far that part moves ``Z`` whatever its direction.
    """

    d: int
    eta_y: float
    eta_z: float
    kappa_y: float
    cos_y: float
    kappa_z: float
    cos_z: float
    kappa_z_attention: float
    cos_z_attention: float
    kappa_z_embedding: float
    cos_z_embedding: float
    size_z_embedding: float
    dY: torch.Tensor
    GY: torch.Tensor
    dZ: torch.Tensor
    GZ: torch.Tensor

    def summary(self) -> dict[str, float]:
        """The scalar fields (no tensors)."""
        return {k: v for k, v in asdict(self).items() if not isinstance(v, torch.Tensor)}


def predicted_rates(d: int, eta_y: float, eta_z: float) -> tuple[float, float]:
    """Effective rates of one full-parameter step at initialization (in expectation):
    ``κ_Y = (5/3) η_Y`` and ``κ_Z = 2 η_Z / (3 d)``.

    With ``U ~ N(0, 1/d)`` (``U Uᵀ ≈ I``) and ``W ~ U(±1/√d)`` (``W Wᵀ ≈ I/3``): the ``W_V``
    path moves ``Y`` by ``−η_Y (UUᵀ) G_Y (UUᵀ) ≈ −η_Y G_Y`` and the two ``U`` factors add
    ``−η_Y G_Y W_VᵀW_V``-type terms ≈ ``−(2/3) η_Y G_Y``; the ``W_Q`` and ``W_K`` paths each move
    ``Z`` by ``≈ −η_Z G_Z / (3 d)`` (one ``1/√d`` from ``Z``'s definition, one from the chain
    rule).
    """
    d = check_int("d", d, low=1)
    eta_y = check_float("eta_y", eta_y, low=0.0)
    eta_z = check_float("eta_z", eta_z, low=0.0)
    return 5.0 * eta_y / 3.0, 2.0 * eta_z / (3.0 * d)


def one_step_rates(classes: SequenceClasses, d: int, eta_y: float = 1.0, eta_z: float = 1.0,
                   seed: int = 0, batch_size: int = 256, seq_len: int = 128,
                   dtype: torch.dtype = torch.float64) -> OneStepRates:
    """Measure :class:`OneStepRates` for a random :class:`~scansnap.models.Transformer1L` of
    width ``d`` (seeded) on one sampled batch; compare with :func:`predicted_rates`.

    The step is plain SGD (the first step of SGD with momentum is the same), with ``U, W_V`` at
    ``eta_y`` and ``W_Q, W_K`` at ``eta_z`` as in :func:`scansnap.train` with ``model="full"``.
    The first-order change of ``(Y, Z)`` is computed exactly by the product rule.
    """
    classes = _check_classes(classes)
    d = check_int("d", d, low=1)
    eta_y = check_float("eta_y", eta_y, low=0.0)
    eta_z = check_float("eta_z", eta_z, low=0.0)
    seed = check_int("seed", seed, low=0)
    batch_size = check_int("batch_size", batch_size, low=1)
    seq_len = check_int("seq_len", seq_len, low=2)
    g = torch.Generator().manual_seed(seed)
    model = Transformer1L(classes.M, d, generator=g, dtype=dtype)
    counts, queries, targets = classes.sample_counts(batch_size, seq_len, g, dtype=dtype)
    params = tuple(p.detach() for p in (model.U, model.W_Q, model.W_K, model.W_V))

    def loss_yz(Y: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        logits = yz_logits(Y, Z, counts, queries)
        return -torch.log_softmax(logits, -1).gather(-1, targets[:, None]).mean()

    leaves = tuple(p.clone().requires_grad_(True) for p in params)
    grads = torch.autograd.grad(loss_yz(*full_to_yz(*leaves)), leaves)
    Y0, Z0 = full_to_yz(*params)
    yz_leaves = (Y0.clone().requires_grad_(True), Z0.clone().requires_grad_(True))
    GY, GZ = torch.autograd.grad(loss_yz(*yz_leaves), yz_leaves)

    U, W_Q, W_K, W_V = params

    def tangent(rates: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        # The exact first-order change (product rule) of Y = U W_Vᵀ Uᵀ, Z = U W_Q W_Kᵀ Uᵀ / √d.
        dU, dQ, dK, dV = (-r * gr for r, gr in zip(rates, grads))
        dY = dU @ W_V.T @ U.T + U @ dV.T @ U.T + U @ W_V.T @ dU.T
        dZ = (dU @ W_Q @ W_K.T @ U.T + U @ dQ @ W_K.T @ U.T + U @ W_Q @ dK.T @ U.T
              + U @ W_Q @ W_K.T @ dU.T) / math.sqrt(d)
        return dY, dZ

    rows, cols = classes.query_tokens, _contextual(classes)

    def z_view(A: torch.Tensor) -> torch.Tensor:
        block = A[rows][:, cols]
        return block - block.mean(-1, keepdim=True)

    def rate(delta: torch.Tensor, grad: torch.Tensor) -> tuple[float, float]:
        inner = float(-(delta * grad).sum())
        gn, dn = float(grad.norm()), float(delta.norm())
        return inner / gn**2, inner / max(dn * gn, 1e-300)

    dY, dZ = tangent((eta_y, eta_z, eta_z, eta_y))
    _, dZ_att = tangent((0.0, eta_z, eta_z, 0.0))
    _, dZ_emb = tangent((eta_y, 0.0, 0.0, eta_y))
    GZv = z_view(GZ)
    ky, cy = rate(dY, GY)
    kz, cz = rate(z_view(dZ), GZv)
    kza, cza = rate(z_view(dZ_att), GZv)
    kze, cze = rate(z_view(dZ_emb), GZv)
    size = float(z_view(dZ_emb).norm() / GZv.norm())
    return OneStepRates(d, eta_y, eta_z, ky, cy, kz, cz, kza, cza, kze, cze, size,
                        dY, GY, z_view(dZ), GZv)


def rates_vs_width(classes: SequenceClasses, ds: Sequence[int] = (4, 8, 16, 32, 64, 128, 256,
                                                                  512),
                   seeds: Sequence[int] = (0, 1, 2, 3), eta_y: float = 1.0,
                   eta_z: float = 1.0) -> FigureResult:
    """:func:`one_step_rates` over widths ``ds`` and seeds, against :func:`predicted_rates`.

    Left: ``κ_Y / η_Y`` (prediction 5/3). Right: ``κ_Z / η_Z`` for the ``W_Q, W_K`` path
    (prediction ``2/(3d)`` for ``d >> M``), and the size ``‖ΔZ‖/‖G_Z‖`` of the move due to the
    ``U, W_V`` path (at rate ``η_Y``; mostly not along ``−G_Z``), also divided by ``η_Z``. ``data`` holds the raw ``[len(ds), len(seeds)]``
    arrays and their means over seeds (``<field>_mean``).
    """
    classes = _check_classes(classes)
    ds = as_int_list("ds", list(ds), low=1)
    seeds = as_int_list("seeds", list(seeds), low=0)
    fields = ("kappa_y", "cos_y", "kappa_z_attention", "cos_z_attention", "kappa_z_embedding",
              "cos_z_embedding", "size_z_embedding", "kappa_z", "cos_z")
    raw = {f: np.zeros((len(ds), len(seeds))) for f in fields}
    for i, d in enumerate(ds):
        for j, seed in enumerate(seeds):
            r = one_step_rates(classes, d, eta_y, eta_z, seed=seed).summary()
            for f in fields:
                raw[f][i, j] = r[f]
    d_arr = np.asarray(ds, dtype=np.float64)
    pred_y, pred_z = predicted_rates(1, eta_y, eta_z)
    fig = new_figure(11.0, 3.6)
    ax, bx = fig.subplots(1, 2)
    ax.semilogx(d_arr, raw["kappa_y"].mean(1) / eta_y, "o-", color=class_color(0),
                label="measured $\\kappa_Y/\\eta_Y$ (mean over seeds)")
    ax.axhline(pred_y / eta_y, color="k", ls="--", lw=1, label="prediction 5/3")
    ax.set_ylim(0, None)
    ax.set_xlabel("embedding width $d$")
    ax.set_ylabel("effective rate of $Y$ per unit $\\eta_Y$")
    ax.set_title("Decoder: $\\Delta Y \\approx -\\kappa_Y\\, G_Y$", fontsize=10)
    bx.loglog(d_arr, raw["kappa_z_attention"].mean(1) / eta_z, "o-", color=class_color(1),
              label="measured, $W_Q, W_K$ path")
    bx.loglog(d_arr, raw["size_z_embedding"].mean(1) / eta_z, "s:", color="#777777",
              label="$U$ path: size $\\|\\Delta Z\\|/\\|G_Z\\|$ (any direction)")
    bx.loglog(d_arr, pred_z / d_arr / eta_z, "k--", lw=1, label="prediction $2/(3d)$")
    bx.set_xlabel("embedding width $d$")
    bx.set_ylabel("effective rate of $Z$ per unit $\\eta_Z$")
    bx.set_title("Attention: $\\Delta Z \\approx -\\kappa_Z\\, G_Z$ (query rows)", fontsize=10)
    for panel in (ax, bx):
        panel.legend(fontsize=8, frameon=False)
        panel.spines[["top", "right"]].set_visible(False)
    data = {"d": ds, "seeds": seeds, "eta_y": eta_y, "eta_z": eta_z,
            **{f: raw[f].tolist() for f in fields},
            **{f"{f}_mean": raw[f].mean(1).tolist() for f in fields}}
    return FigureResult(fig, data)


def compare_frame(classes: SequenceClasses, panels: Sequence[tuple[str, torch.Tensor]],
                  n: int = 0, ymax: float | None = None, title: str | None = None) -> Figure:
    """One figure with ``c_n`` side by side for several models: ``panels`` is a sequence of
    ``(label, c [K, M])``. Used for scrubber frames (pass a shared ``ymax``)."""
    classes = _check_classes(classes)
    n = check_int("n", n, low=0, high=classes.K - 1)
    if not panels:
        raise ValueError("panels must not be empty")
    fig = new_figure(4.2 * len(panels), 2.6)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (label, c) in zip(axes, panels):
        c = check_tensor("c", c, shape=(classes.K, classes.M))
        plot_attention(classes, c, ax=ax, classes_to_show=[n], ymax=ymax)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("token $l$", fontsize=8)
    if title is not None:
        fig.suptitle(title, fontsize=10)
    return fig


def _contextual(classes: SequenceClasses) -> torch.Tensor:
    return torch.nonzero(classes.probs().sum(0) > 0).flatten()

