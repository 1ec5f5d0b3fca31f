"""Chapter 2 (the reparameterization, Section 3.1): measurements that compare the original
parameters ``(U, W_Q, W_K, W_V)`` with ``Y = U W_Vᵀ Uᵀ`` and ``Z = U W_Q W_Kᵀ Uᵀ / √d``.

* :func:`logit_identity`: the full model's logits, computed in the original parameters on token
  sequences, equal the ``(Y, Z)`` model's logits computed from token counts (float64 rounding).
* :func:`lemma1_check`: Lemma 1's closed-form gradients (:func:`scansnap.theory.lemma1_gradients`)
  against autograd on random instances.
* :func:`row_sum_drift`: the invariant ``Ẏ 1 = Ż 1 = 0`` (zero row sums from a zero start) along
  a :class:`~scansnap.dynamics.Run`; :func:`invariant_summary` and :func:`row_centring_effect`
  give the numbers the chapter quotes of it.
* :func:`one_step_rates` / :func:`predicted_rates`: one gradient step on the original
  parameters moves ``(Y, Z)`` along Lemma 1's gradients at *effective* rates
  ``κ_Y ≈ (5/3) η_Y`` and ``κ_Z ≈ 2 η_Z / (3 d)`` at PyTorch's default initialization.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import theory
from .._validate import as_int_list, check_bool, check_float, check_int, check_tensor
from ..data import SequenceClasses, counts_of
from ..dynamics import Run, train
from ..metrics import common_mass
from ..models import Transformer1L, full_to_yz, yz_logits
from ..plots import FigureResult, class_color, freeze_layout, new_figure, plot_attention

__all__ = ["logit_identity", "lemma1_check", "lemma1_summary", "row_sum_drift",
           "invariant_summary", "row_centring_effect", "OneStepRates", "one_step_rates",
           "predicted_rates", "rates_vs_width", "compare_frame", "plot_row_sums", "FullTraining",
           "train_full_with_rates", "plot_full_vs_yz", "attention_summary",
           "divergence_summary", "OneStepExplorer"]


def _check_classes(classes: object) -> SequenceClasses:
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")
    return classes


def logit_identity(classes: SequenceClasses, ds: Sequence[int] = (1, 4, 16, 64, 256),
                   seeds: Sequence[int] = (0, 1, 2), batch_size: int = 64,
                   seq_len: int = 128) -> dict[str, Any]:
    """Section 3.1: ``u_lᵀ W_V Uᵀ LN(Xᵀ b_T) = (Yᵀ LN(Xᵀ b_T))_l`` with ``b_T`` from ``Z``.

    For each width ``d`` and seed, a random :class:`~scansnap.models.Transformer1L` (float64)
    computes logits on sampled token sequences in its own parameters, and :func:`yz_logits`
    computes them from ``(Y, Z) = to_yz()`` and the sequences' token counts. Returns
    ``{"d", "seeds", "max_abs_error" [len(ds), len(seeds)], "max_abs_logit" [same]}`` and, over
    all widths and seeds, the largest logit difference ``max_error`` and the largest logit
    ``max_logit`` (the scale the difference is measured against).
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
            "max_abs_logit": size, "max_error": float(err.max()), "max_logit": float(size.max())}


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


LEMMA1_KEYS = ("max_rel_error_Y", "max_rel_error_Z", "max_row_sum")


def lemma1_summary(normalized: Mapping[str, float],
                   unnormalized: Mapping[str, float]) -> dict[str, float]:
    """What the chapter quotes of two :func:`lemma1_check` results, Lemma 1 (Eqn 3) with the
    normalization ``LN`` (``normalized``) and without it (``unnormalized``): ``error`` and
    ``error_plain``, the largest relative error of either closed-form gradient against
    autograd, and ``row_sum``, the largest ``|row sum|`` of any closed-form gradient of either
    (Lemma 1's invariant ``Ẏ 1 = Ż 1 = 0`` says 0)."""
    for name, result in (("normalized", normalized), ("unnormalized", unnormalized)):
        if not isinstance(result, Mapping) or not set(LEMMA1_KEYS) <= set(result):
            raise ValueError(f"{name} must be a lemma1_check result with keys {LEMMA1_KEYS}, "
                             f"got {result!r}")
    return {"error": max(normalized["max_rel_error_Y"], normalized["max_rel_error_Z"]),
            "error_plain": max(unnormalized["max_rel_error_Y"], unnormalized["max_rel_error_Z"]),
            "row_sum": max(normalized["max_row_sum"], unnormalized["max_row_sum"])}


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


def invariant_summary(sgd: Run, adam: Run, run_index: int = 0) -> dict[str, float]:
    """Lemma 1's invariant ``Y 1 = Z 1 = 0`` under SGD and under Adam, as the chapter quotes it
    (:func:`row_sum_drift` of each run): ``sgd_row_sum``, the largest ``|row sum|`` of ``Y`` or
    ``Z`` at any snapshot of any seed of ``sgd`` (rounding, if the invariant holds);
    ``sgd_max_entry``, the largest ``|y_ij|`` at the end of seed ``run_index`` (the scale the row
    sums are measured against); ``adam_row_sum_y`` and ``adam_row_sum_z``, the largest ``|row
    sum|`` of ``Y`` and ``Z`` at the end of ``adam``'s seed ``run_index``; ``other_rows``, the
    largest ``|z_ml|`` over the rows of non-query tokens in either run (Eqn 4: no gradient
    reaches them, so 0 from a zero start)."""
    for name, run in (("sgd", sgd), ("adam", adam)):
        if not isinstance(run, Run):
            raise TypeError(f"{name} must be a scansnap Run, got {type(run).__name__}")
    runs = min(sgd.loss.shape[0], adam.loss.shape[0])
    run_index = check_int("run_index", run_index, low=0, high=runs - 1)
    drift_sgd, drift_adam = row_sum_drift(sgd), row_sum_drift(adam)
    return {"sgd_row_sum": float(max(drift_sgd["Y"].max(), drift_sgd["Z"].max())),
            "sgd_max_entry": float(sgd.Y[run_index, -1].abs().max()),
            "adam_row_sum_y": float(drift_adam["Y"][run_index, -1]),
            "adam_row_sum_z": float(drift_adam["Z"][run_index, -1]),
            "other_rows": max(float(drift_sgd["Z_other_rows"].max()),
                              float(drift_adam["Z_other_rows"].max()))}


def row_centring_effect(run: Run, run_index: int = 0, batch_size: int = 256,
                        seq_len: int = 128, seed: int = 5) -> dict[str, float]:
    """Lemma 1's invariant is about the path, not the model: removing every row's mean from the
    final ``Y`` and ``Z`` of seed ``run_index`` changes no prediction (the softmaxes cancel a
    shift of a row, Section 3.1). On ``batch_size`` fresh sequences of length ``seq_len`` (drawn
    with ``seed``) returns ``prob_change``, the largest change of any predicted probability
    (rounding), and ``row_sum``, the largest ``|row sum|`` of the final ``Y`` or ``Z`` (how much
    the centring removed)."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a scansnap Run, got {type(run).__name__}")
    run_index = check_int("run_index", run_index, low=0, high=run.loss.shape[0] - 1)
    batch_size = check_int("batch_size", batch_size, low=1)
    seq_len = check_int("seq_len", seq_len, low=2)
    seed = check_int("seed", seed, low=0)
    Y, Z = run.Y[run_index, -1], run.Z[run_index, -1]
    counts, queries, _ = run.classes.sample_counts(batch_size, seq_len,
                                                   torch.Generator().manual_seed(seed))
    probs = torch.softmax(yz_logits(Y, Z, counts, queries), -1)
    centred = torch.softmax(yz_logits(Y - Y.mean(1, keepdim=True), Z - Z.mean(1, keepdim=True),
                                      counts, queries), -1)
    return {"prob_change": float((probs - centred).abs().max()),
            "row_sum": float(max(Y.sum(1).abs().max(), Z.sum(1).abs().max()))}


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
    is how far that part moves ``Z`` whatever its direction. The tensors are ``ΔY``, ``G_Y`` and
    the centred query-row views of ``ΔZ`` (all paths), ``G_Z``, ``ΔZ`` due to ``W_Q, W_K``
    (``dZ_attention``) and ``ΔZ`` due to ``U`` (``dZ_embedding``).
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
    dZ_attention: torch.Tensor
    dZ_embedding: torch.Tensor

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
    return _rates_at(classes, params, counts, queries, targets, eta_y, eta_z)


def _batch_loss(Y: torch.Tensor, Z: torch.Tensor, counts: torch.Tensor, queries: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
    logits = yz_logits(Y, Z, counts, queries)
    return -torch.log_softmax(logits, -1).gather(-1, targets[:, None]).mean()


def _rates_at(classes: SequenceClasses, params: Sequence[torch.Tensor], counts: torch.Tensor,
              queries: torch.Tensor, targets: torch.Tensor, eta_y: float,
              eta_z: float) -> OneStepRates:
    """:class:`OneStepRates` of one plain SGD step from ``params = (U, W_Q, W_K, W_V)`` on the
    batch ``(counts, queries, targets)``."""
    params = tuple(p.detach() for p in params)
    U, W_Q, W_K, W_V = params
    d = U.shape[-1]
    leaves = tuple(p.clone().requires_grad_(True) for p in params)
    grads = torch.autograd.grad(_batch_loss(*full_to_yz(*leaves), counts, queries, targets),
                                leaves)
    Y0, Z0 = full_to_yz(*params)
    yz_leaves = (Y0.clone().requires_grad_(True), Z0.clone().requires_grad_(True))
    GY, GZ = torch.autograd.grad(_batch_loss(*yz_leaves, counts, queries, targets), yz_leaves)

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
        if gn == 0.0:  # a perfectly fitted batch: no gradient, no rate
            return math.nan, math.nan
        return inner / gn**2, inner / max(dn * gn, 1e-300)

    dY, dZ = tangent((eta_y, eta_z, eta_z, eta_y))
    _, dZ_att = tangent((0.0, eta_z, eta_z, 0.0))
    _, dZ_emb = tangent((eta_y, 0.0, 0.0, eta_y))
    GZv = z_view(GZ)
    ky, cy = rate(dY, GY)
    kz, cz = rate(z_view(dZ), GZv)
    kza, cza = rate(z_view(dZ_att), GZv)
    kze, cze = rate(z_view(dZ_emb), GZv)
    gzn = float(GZv.norm())
    size = float(z_view(dZ_emb).norm()) / gzn if gzn > 0 else math.nan
    return OneStepRates(d, eta_y, eta_z, ky, cy, kz, cz, kza, cza, kze, cze, size,
                        dY, GY, z_view(dZ), GZv, z_view(dZ_att), z_view(dZ_emb))


def rates_vs_width(classes: SequenceClasses, ds: Sequence[int] = (4, 8, 16, 32, 64, 128, 256,
                                                                  512),
                   seeds: Sequence[int] = (0, 1, 2, 3), eta_y: float = 1.0,
                   eta_z: float = 1.0) -> FigureResult:
    """:func:`one_step_rates` over widths ``ds`` and seeds, against :func:`predicted_rates`.

    Left: ``κ_Y / η_Y`` (prediction 5/3). Right: ``κ_Z / η_Z`` for the ``W_Q, W_K`` path
    (prediction ``2/(3d)`` for ``d >> M``), and the size ``‖ΔZ‖/‖G_Z‖`` of the move due to the
    ``U, W_V`` path (at rate ``η_Y``; mostly not along ``−G_Z``), also divided by ``η_Z``.
    ``data`` holds the raw ``[len(ds), len(seeds)]`` arrays and their means over seeds
    (``<field>_mean``), ``predicted_kappa_y`` (5/3) and, for each width ``d`` in ``ds``, the
    numbers a text quotes (means over seeds, per unit rate): ``kappa_y_d<d>`` (``κ_Y/η_Y``),
    ``kappa_z_attention_d<d>`` (``κ_Z/η_Z`` of the ``W_Q, W_K`` path) and its prediction
    ``predicted_kappa_z_d<d>`` (``2/(3d)``), ``cos_z_attention_d<d>``,
    ``size_z_embedding_d<d>`` (``‖ΔZ_emb‖/‖G_Z‖`` per unit ``η_Y``) with its cosine
    ``cos_z_embedding_d<d>``, ``embedding_to_attention_d<d>`` (how many times further the
    embedding path moves ``Z`` than the attention path, at equal rates) and
    ``predicted_speed_ratio_d<d>`` (``κ_Y/κ_Z = 5d/2`` predicted at equal rates).
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
    mean = {f: raw[f].mean(1) for f in fields}
    data = {"d": ds, "seeds": seeds, "eta_y": eta_y, "eta_z": eta_z,
            **{f: raw[f].tolist() for f in fields},
            **{f"{f}_mean": mean[f].tolist() for f in fields},
            "predicted_kappa_y": pred_y / eta_y}
    for i, d in enumerate(ds):
        kappa_y_d, kappa_z_d = predicted_rates(d, 1.0, 1.0)
        attention = float(mean["kappa_z_attention"][i]) / eta_z
        embedding = float(mean["size_z_embedding"][i]) / eta_y
        data.update({f"kappa_y_d{d}": float(mean["kappa_y"][i]) / eta_y,
                     f"kappa_z_attention_d{d}": attention,
                     f"predicted_kappa_z_d{d}": kappa_z_d,
                     f"cos_z_attention_d{d}": float(mean["cos_z_attention"][i]),
                     f"size_z_embedding_d{d}": embedding,
                     f"cos_z_embedding_d{d}": float(mean["cos_z_embedding"][i]),
                     f"embedding_to_attention_d{d}": embedding / attention,
                     f"predicted_speed_ratio_d{d}": kappa_y_d / kappa_z_d})
    return FigureResult(fig, data)


def compare_frame(classes: SequenceClasses, panels: Sequence[tuple[str, torch.Tensor]],
                  n: int = 0, ymax: float | None = None, title: str | None = None,
                  reference: torch.Tensor | None = None) -> Figure:
    """One figure with ``c_n`` side by side for several models: ``panels`` is a sequence of
    ``(label, c [K, M])``; ``reference [K, M]`` (e.g. ``P(l | n)``) is drawn as black ticks in
    every panel. Used for scrubber frames (pass a shared ``ymax``)."""
    classes = _check_classes(classes)
    n = check_int("n", n, low=0, high=classes.K - 1)
    if not panels:
        raise ValueError("panels must not be empty")
    fig = new_figure(4.2 * len(panels), 2.6)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (label, c) in zip(axes, panels):
        c = check_tensor("c", c, shape=(classes.K, classes.M))
        plot_attention(classes, c, ax=ax, classes_to_show=[n], ymax=ymax, reference=reference)
        if ax.get_legend() is not None:
            ax.get_legend().remove()  # drawn above each panel it would cover the panel's title
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("token $l$", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", fontsize=8, frameon=False)
    if title is not None:
        fig.suptitle(title, fontsize=10)
    return fig


def _contextual(classes: SequenceClasses) -> torch.Tensor:
    return torch.nonzero(classes.probs().sum(0) > 0).flatten()



def plot_row_sums(runs: Mapping[str, Run], run_index: int = 0) -> FigureResult:
    """Lemma 1's invariant along training: the largest ``|row sum|`` of ``Y`` (left) and ``Z``
    (right) at every snapshot (:func:`row_sum_drift`), one line per labelled run, on log axes.

    Exact zeros are drawn at ``1e-18`` (a dotted floor) so that they show on the log scale; the
    dashed line is float64's machine epsilon, the size of one rounding error of a unit number.
    """
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("runs must be a non-empty mapping {label: Run}")
    run_index = check_int("run_index", run_index, low=0)
    floor = 1e-18
    fig = new_figure(11.0, 3.4)
    axes = fig.subplots(1, 2, sharey=True)
    styles = ["-", "--", "-.", ":"]
    data: dict[str, dict[str, list[float]]] = {}
    for i, (label, run) in enumerate(runs.items()):
        drift = row_sum_drift(run)
        if run_index >= run.loss.shape[0]:
            raise ValueError(f"run_index must be < {run.loss.shape[0]} for run {label!r}, "
                             f"got {run_index}")
        steps = run.steps.numpy()
        data[label] = {"steps": steps.tolist()}
        for ax, key in zip(axes, ("Y", "Z")):
            values = drift[key][run_index].double().clamp_min(floor).numpy()
            ax.semilogy(steps, values, styles[i % 4], color=class_color(i + 2), label=label)
            data[label][key] = values.tolist()
    for ax, key in zip(axes, ("Y", "Z")):
        ax.axhline(float(torch.finfo(torch.float64).eps), color="k", ls="--", lw=0.8,
                   label="float64 epsilon")
        ax.axhline(floor, color="#999999", ls=":", lw=0.8)
        ax.set_xlabel("step $t$")
        ax.set_title(f"$\\max_l |({key}\\mathbf{{1}})_l|$: row sums of ${key}$", fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(fontsize=8, frameon=False)
    axes[0].set_ylabel("largest |row sum| (0 drawn at $10^{-18}$)")
    return FigureResult(fig, data)


@dataclass
class FullTraining:
    """Full-parameter training with the effective rates measured along the way
    (:func:`train_full_with_rates`).

    ``run`` is a :class:`~scansnap.dynamics.Run` (``model="full"``; the same trajectory as
    :func:`scansnap.train` with the same arguments). ``rate_steps [P]`` are the steps at which
    the rates were measured; ``kappa_y``, ``kappa_z``, ``kappa_z_attention``,
    ``kappa_z_embedding`` and ``cos_z`` are ``[R, P]`` arrays (one row per seed) with the
    meaning of :class:`OneStepRates`; at the same steps ``embedding_norms [R, P, M]`` holds the
    norm of every token's embedding (the rows of ``U``) and ``weight_norms [R, P, 3]`` the
    Frobenius norms of ``W_Q, W_K, W_V``; ``predicted`` is :func:`predicted_rates` at
    initialization.
    """

    run: Run
    rate_steps: np.ndarray
    kappa_y: np.ndarray
    kappa_z: np.ndarray
    kappa_z_attention: np.ndarray
    kappa_z_embedding: np.ndarray
    cos_z: np.ndarray
    embedding_norms: np.ndarray
    weight_norms: np.ndarray
    predicted: tuple[float, float]

    def summary(self, last_steps: int = 20) -> dict[str, float]:
        """What the chapter quotes of the run: the predicted initial rates ``kappa_y`` and
        ``kappa_z`` (:func:`predicted_rates`, Section 3.1's ``η_Y, η_Z`` in the original
        parameters); ``growth_y_lo``/``growth_y_hi`` and ``growth_z_lo``/``growth_z_hi``, the
        range over seeds of the measured ``κ_Y`` and ``κ_Z`` (all paths), averaged over the
        measurements in the last ``last_steps`` steps, in units of those predictions; and how
        many times longer the weights are at the last measurement than at the first, averaged
        over seeds: ``grow_next`` (embeddings of the next tokens), ``grow_context`` (of the
        common tokens of class 1) and ``grow_wv`` (``W_V``)."""
        last_steps = check_int("last_steps", last_steps, low=1)
        late = self.rate_steps >= int(self.run.steps[-1]) - last_steps
        if not late.any():
            raise ValueError(f"last_steps must reach back to a measurement (the last one is at "
                             f"step {int(self.rate_steps[-1])}), got {last_steps}")
        kappa_y, kappa_z = self.predicted
        growth_y = self.kappa_y[:, late].mean(1) / kappa_y
        growth_z = self.kappa_z[:, late].mean(1) / kappa_z
        grown = self.embedding_norms[:, -1] / self.embedding_norms[:, 0]  # [seeds, M]
        classes = self.run.classes
        return {"kappa_y": kappa_y, "kappa_z": kappa_z,
                "growth_y_lo": float(growth_y.min()), "growth_y_hi": float(growth_y.max()),
                "growth_z_lo": float(growth_z.min()), "growth_z_hi": float(growth_z.max()),
                "grow_next": float(grown[:, classes.next_tokens].mean()),
                "grow_context": float(grown[:, classes.common_tokens(0)].mean()),
                "grow_wv": float((self.weight_norms[:, -1, 2] / self.weight_norms[:, 0, 2]).mean())}


def train_full_with_rates(classes: SequenceClasses, eta_y: float, eta_z: float, d: int = 128,
                          steps: int = 100, seeds: Sequence[int] = (1,), batch_size: int = 128,
                          seq_len: int = 128, momentum: float = 0.9, record_every: int = 2,
                          measure_every: int = 5,
                          dtype: torch.dtype = torch.float64) -> FullTraining:
    """Train ``(U, W_Q, W_K, W_V)`` with :func:`scansnap.train` (``model="full"``,
    ``init="random"``, SGD with momentum) and, every ``measure_every`` steps, measure how a plain
    gradient step from the current weights moves ``(Y, Z)`` (:class:`OneStepRates`, on that
    step's batch; through ``train``'s ``observe`` hook).

    Section 3.1 treats ``Y`` and ``Z`` as independent parameters with rates ``η_Y, η_Z``; in the
    original parameters the rates are those of a preconditioner that depends on the weights
    (``κ_Y ≈ (5/3) η_Y``, ``κ_Z ≈ 2 η_Z/(3d)`` at initialization, :func:`predicted_rates`) and
    therefore changes as they grow. Diverging runs raise ``FloatingPointError``.
    """
    classes = _check_classes(classes)
    eta_y = check_float("eta_y", eta_y, low=0.0)
    eta_z = check_float("eta_z", eta_z, low=0.0)
    steps = check_int("steps", steps, low=1)
    seeds = as_int_list("seeds", list(seeds), low=0)
    measure_every = check_int("measure_every", measure_every, low=1)
    measure_at = np.arange(0, steps, measure_every)
    fields = ("kappa_y", "kappa_z", "kappa_z_attention", "kappa_z_embedding", "cos_z")
    rates = {f: np.full((len(seeds), len(measure_at)), np.nan) for f in fields}
    embedding_norms = np.zeros((len(seeds), len(measure_at), classes.M))
    norms = np.zeros((len(seeds), len(measure_at), 3))

    def measure(step: int, params: list[torch.Tensor], batch: tuple[torch.Tensor, ...]) -> None:
        if step % measure_every:
            return
        i = step // measure_every
        for r in range(len(seeds)):  # one seed per run: train's batch r belongs to run r
            one = _rates_at(classes, [p[r] for p in params], *(b[r] for b in batch), eta_y, eta_z)
            for f in fields:
                rates[f][r, i] = getattr(one, f)
            embedding_norms[r, i] = params[0][r].norm(dim=1).numpy()
            norms[r, i] = [float(p[r].norm()) for p in params[1:]]

    run = train(classes, eta_y, eta_z, steps=steps, batch_size=batch_size, seq_len=seq_len,
                momentum=momentum, init="random", seeds=seeds, record_every=record_every,
                model="full", d=d, dtype=dtype, progress=False, observe=measure)
    return FullTraining(run, measure_at, *(rates[f] for f in fields),
                        embedding_norms=embedding_norms, weight_norms=norms,
                        predicted=predicted_rates(d, eta_y, eta_z))


def plot_full_vs_yz(full: FullTraining, yz: Run, n: int = 0) -> FigureResult:
    """Left: the effective rates of the full model along training, ``κ_Y/η_Y`` and ``κ_Z/η_Z``
    (the ``W_Q, W_K`` path and the total), relative to their values predicted at initialization
    (:func:`predicted_rates`; a YZ model trained at those rates stays at 1). Right: class
    ``n``'s attention mass on common tokens over training, every seed of ``full.run`` (solid)
    and of the YZ run ``yz`` (dashed)."""
    if not isinstance(full, FullTraining):
        raise TypeError(f"full must be a FullTraining, got {type(full).__name__}")
    if not isinstance(yz, Run):
        raise TypeError(f"yz must be a scansnap Run, got {type(yz).__name__}")
    classes = full.run.classes
    n = check_int("n", n, low=0, high=classes.K - 1)
    pred_y, pred_z = full.predicted
    fig = new_figure(11.0, 3.6)
    ax, bx = fig.subplots(1, 2)
    t = full.rate_steps
    series = [("$\\kappa_Y$", full.kappa_y / pred_y, class_color(0), "-"),
              ("$\\kappa_Z$, $W_Q, W_K$ path", full.kappa_z_attention / pred_z, class_color(1),
               "-"),
              ("$\\kappa_Z$, all paths", full.kappa_z / pred_z, class_color(1), ":")]
    for label, values, color, style in series:
        for r in range(values.shape[0]):
            ax.semilogy(t, values[r], style, color=color, lw=1.2, alpha=0.8,
                        label=label if r == 0 else None)
    ax.axhline(1.0, color="k", ls="--", lw=0.8, label="value at initialization (prediction)")
    ax.set_xlabel("step $t$")
    ax.set_ylabel("effective rate / predicted initial rate")
    ax.set_title("Full model: effective rates of $Y$ and $Z$ grow", fontsize=10)
    steps_full = full.run.steps.numpy()
    mass_full = common_mass(classes, full.run.Z)[..., n].double().numpy()  # [R, S]
    mass_yz = common_mass(classes, yz.Z)[..., n].double().numpy()
    for r in range(mass_full.shape[0]):
        bx.plot(steps_full, mass_full[r], "-", color=class_color(3),
                label="full $(U, W_Q, W_K, W_V)$" if r == 0 else None)
    for r in range(mass_yz.shape[0]):
        bx.plot(yz.steps.numpy(), mass_yz[r], "--", color=class_color(2),
                label="$(Y, Z)$ at the matched rates" if r == 0 else None)
    bx.set_ylim(0, 1.02)
    bx.set_xlabel("step $t$")
    bx.set_ylabel(f"$\\sum_{{l \\in G_{{CT}}}} c_{{l\\mid {n + 1}}}$")
    bx.set_title(f"Attention mass on common tokens, class {n + 1} (every seed)", fontsize=10)
    for panel in (ax, bx):
        panel.legend(fontsize=7, frameon=False)
        panel.spines[["top", "right"]].set_visible(False)
    data = {"rate_steps": np.asarray(t).tolist(),
            **{key: np.asarray(values).tolist() for key, values in
               (("kappa_y", series[0][1]), ("kappa_z_attention", series[1][1]), ("kappa_z", series[2][1]))},
            "steps_full": steps_full.tolist(), "common_mass_full": mass_full.tolist(),
            "steps_yz": yz.steps.tolist(), "common_mass_yz": mass_yz.tolist()}
    return FigureResult(fig, data)


def attention_summary(runs: Mapping[str, Run], n: int = 0,
                      run_index: int = 0) -> dict[str, float | int]:
    """Where each of several runs has moved class ``n``'s attention ``c_n`` (Lemma 2's limit
    of ``Z``): for every ``name`` of ``runs`` (an identifier), ``<name>_mass_start`` and
    ``<name>_mass``, the attention mass on common tokens at the first and the last snapshot of
    seed ``run_index``; ``<name>_mass_lo`` and ``<name>_mass_hi``, its range over all seeds at
    the last snapshot; ``<name>_top``, the distinct token with the most attention at the end of
    seed ``run_index``, numbered 1 (least likely) to ``U`` (most likely) within the class."""
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("runs must be a non-empty mapping {name: Run}")
    out: dict[str, float | int] = {}
    for name, run in runs.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"runs' names must be identifiers (they become glue keys), "
                             f"got {name!r}")
        if not isinstance(run, Run):
            raise TypeError(f"runs[{name!r}] must be a scansnap Run, got {type(run).__name__}")
        classes = run.classes
        n = check_int("n", n, low=0, high=classes.K - 1)
        index = check_int("run_index", run_index, low=0, high=run.loss.shape[0] - 1)
        mass = common_mass(classes, run.Z)[..., n]  # [R, S]
        final = run.attention()[index, -1, n]
        out.update({f"{name}_mass_start": float(mass[index, 0]),
                    f"{name}_mass": float(mass[index, -1]),
                    f"{name}_mass_lo": float(mass[:, -1].min()),
                    f"{name}_mass_hi": float(mass[:, -1].max()),
                    f"{name}_top": int(final[classes.distinct_tokens(n)].argmax()) + 1})
    return out


def divergence_summary(run: Run) -> dict[str, int | str]:
    """Which seeds of ``run`` (trained with ``on_divergence="flag"``) diverged: ``diverged``
    of ``runs`` seeds, and ``steps``, the first step with a non-finite loss of each diverged
    seed, as a comma-separated list (empty if none diverged)."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a scansnap Run, got {type(run).__name__}")
    first_bad = [int((~torch.isfinite(loss)).nonzero()[0]) for loss, bad in
                 zip(run.loss, run.diverged) if bad]
    return {"diverged": len(first_bad), "runs": int(run.loss.shape[0]),
            "steps": ", ".join(str(step) for step in first_bad)}


class OneStepExplorer:
    """A live figure of one full-parameter gradient step in ``(Y, Z)`` coordinates.

    ``update(d, seed)`` measures :func:`one_step_rates` (``η_Y = η_Z = 1``) for a fresh model of
    width ``d`` and redraws, in place, the entries of ``ΔY`` against ``−G_Y`` (left) and of the
    query rows of ``ΔZ`` against ``−G_Z`` (right; centred rows, as Lemma 1's invariant allows),
    split into the move due to ``W_Q, W_K`` and the move due to the embedding ``U``, with the
    measured slopes ``κ`` and the predictions of :func:`predicted_rates`. Returns the
    :class:`OneStepRates`.
    """

    def __init__(self, classes: SequenceClasses, batch_size: int = 128) -> None:
        self.classes = _check_classes(classes)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.figure = new_figure(10.0, 3.6)
        self.ax_y, self.ax_z = self.figure.subplots(1, 2)
        self.points_y = self.ax_y.scatter([0.0], [0.0], s=6, color=class_color(0), alpha=0.6)
        self.points_emb = self.ax_z.scatter([0.0], [0.0], s=8, color="#999999", alpha=0.6,
                                            label="$\\Delta Z$ due to $U$")
        self.points_att = self.ax_z.scatter([0.0], [0.0], s=10, color=class_color(1), alpha=0.8,
                                            label="$\\Delta Z$ due to $W_Q, W_K$")
        (self.fit_y,) = self.ax_y.plot([], [], "-", color=class_color(0), lw=1.2,
                                       label="measured slope $\\kappa_Y/\\eta_Y$")
        (self.pred_y,) = self.ax_y.plot([], [], "k--", lw=1, label="prediction 5/3")
        (self.fit_z,) = self.ax_z.plot([], [], "-", color=class_color(1), lw=1.2,
                                       label="slope, $W_Q, W_K$ path")
        (self.pred_z,) = self.ax_z.plot([], [], "k--", lw=1, label="prediction $2/(3d)$")
        self.ax_y.set_xlabel("$-G_Y$ (Lemma 1), entry by entry")
        self.ax_y.set_ylabel("$\\Delta Y$ per unit $\\eta_Y$")
        self.ax_z.set_xlabel("$-G_Z$ (Lemma 1), query rows, entry by entry")
        self.ax_z.set_ylabel("$\\Delta Z$ per unit $\\eta$")
        for ax in (self.ax_y, self.ax_z):
            ax.axhline(0, color="#cccccc", lw=0.6)
            ax.axvline(0, color="#cccccc", lw=0.6)
            ax.spines[["top", "right"]].set_visible(False)
            ax.legend(fontsize=7, frameon=False, loc="upper left")
        self.update()
        freeze_layout(self.figure)  # redraws only move data: keep the first layout

    def update(self, d: int = 128, seed: int = 0) -> OneStepRates:
        r = one_step_rates(self.classes, d, 1.0, 1.0, seed=seed, batch_size=self.batch_size)
        pred_y, pred_z = predicted_rates(d, 1.0, 1.0)
        gy, dy = -r.GY.flatten().numpy(), r.dY.flatten().numpy()
        gz = -r.GZ.flatten().numpy()
        att, emb = r.dZ_attention.flatten().numpy(), r.dZ_embedding.flatten().numpy()
        self.points_y.set_offsets(np.column_stack([gy, dy]))
        self.points_att.set_offsets(np.column_stack([gz, att]))
        self.points_emb.set_offsets(np.column_stack([gz, emb]))
        for ax, fit, pred, x, ys, k, kp in (
                (self.ax_y, self.fit_y, self.pred_y, gy, (dy,), r.kappa_y, pred_y),
                (self.ax_z, self.fit_z, self.pred_z, gz, (att, emb), r.kappa_z_attention, pred_z)):
            lim_x = 1.05 * float(np.abs(x).max())
            lim_y = 1.05 * max(max(float(np.abs(y).max()) for y in ys), kp * lim_x)
            grid = np.array([-lim_x, lim_x])
            fit.set_data(grid, k * grid)
            pred.set_data(grid, kp * grid)
            ax.set_xlim(-lim_x, lim_x)
            ax.set_ylim(-lim_y, lim_y)
        self.ax_y.set_title(f"$d$ = {d}: $\\kappa_Y/\\eta_Y$ = {r.kappa_y:.3g} (predicted "
                            f"{pred_y:.3g}), cos = {r.cos_y:.2f}", fontsize=9)
        self.ax_z.set_title(f"$W_Q, W_K$ path: $\\kappa_Z/\\eta_Z$ = {r.kappa_z_attention:.3g} "
                            f"(predicted {pred_z:.3g}), cos = {r.cos_z_attention:.2f}", fontsize=9)
        return r
