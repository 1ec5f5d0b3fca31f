"""The numbers chapter 2 quotes: each summary of scansnap.chapters.ch2_reparameterization against
a computation written here from the definitions (or against inputs built by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scansnap import SequenceClasses, train
from scansnap.chapters import ch2_reparameterization as ch2
from scansnap.models import Transformer1L

SYN = SequenceClasses()


def hand_yz_logits(Y: np.ndarray, Z: np.ndarray, context: np.ndarray, query: int) -> np.ndarray:
    """Section 3.1's logits Yᵀ LN(Xᵀ b_T) of one sequence, position by position."""
    scores = Z[query, context]
    b = np.exp(scores - scores.max())
    b /= b.sum()
    v = np.zeros(Y.shape[0])
    for token, weight in zip(context, b):
        v[token] += weight
    return Y.T @ (v / np.linalg.norm(v))


def test_logit_identity_quotes_the_largest_logit_and_error():
    out = ch2.logit_identity(SYN, ds=(4, 16), seeds=(0, 1), batch_size=6, seq_len=12)
    largest = 0.0
    for d in (4, 16):
        for seed in (0, 1):  # the same draws as logit_identity: model first, then sequences
            g = torch.Generator().manual_seed(seed)
            model = Transformer1L(SYN.M, d, generator=g)
            contexts, queries, _ = SYN.sample(6, 12, g)
            U, W_Q, W_K, W_V = (p.detach().double().numpy()
                                for p in (model.U, model.W_Q, model.W_K, model.W_V))
            Y, Z = U @ W_V.T @ U.T, U @ W_Q @ W_K.T @ U.T / math.sqrt(d)
            for context, query in zip(contexts.numpy(), queries.numpy()):
                largest = max(largest, np.abs(hand_yz_logits(Y, Z, context, query)).max())
    assert isinstance(out["max_logit"], float) and isinstance(out["max_error"], float)
    assert out["max_logit"] == pytest.approx(largest, rel=1e-12)
    assert 0.0 <= out["max_error"] < 1e-12 * out["max_logit"] * 100


def test_lemma1_summary_takes_the_worst_of_both_checks():
    normalized = {"max_rel_error_Y": 3e-16, "max_rel_error_Z": 7e-16, "max_row_sum": 2e-17}
    unnormalized = {"max_rel_error_Y": 5e-16, "max_rel_error_Z": 1e-16, "max_row_sum": 9e-17}
    assert ch2.lemma1_summary(normalized, unnormalized) == {
        "error": 7e-16, "error_plain": 5e-16, "row_sum": 9e-17}
    real = ch2.lemma1_check(M=6, seq_len=8, cases=3)
    assert ch2.lemma1_summary(real, real)["error"] < 1e-10
    with pytest.raises(ValueError, match="unnormalized must be a lemma1_check result"):
        ch2.lemma1_summary(normalized, {"max_rel_error_Y": 0.0})


def row_sums(matrices: torch.Tensor) -> np.ndarray:
    """Largest |row sum| of each [M, M] matrix of a [..., M, M] stack, in numpy."""
    return np.abs(matrices.numpy().sum(axis=-1)).max(axis=-1)


def test_invariant_summary_against_row_sums_by_hand():
    kwargs = dict(steps=6, batch_size=16, seq_len=32, seeds=[0, 1], record_every=1)
    sgd = train(SYN, 1.0, 1.0, **kwargs)
    adam = train(SYN, 0.1, 0.1, optimizer="adam", **kwargs)
    out = ch2.invariant_summary(sgd, adam, run_index=1)
    # Summed in another order, rounding-level row sums agree to rounding only.
    assert out["sgd_row_sum"] == pytest.approx(max(row_sums(sgd.Y).max(), row_sums(sgd.Z).max()),
                                               abs=1e-14)
    assert out["sgd_row_sum"] < 1e-12  # Lemma 1: SGD from zero keeps Y1 = Z1 = 0
    assert out["sgd_max_entry"] == np.abs(sgd.Y[1, -1].numpy()).max() > 0
    assert out["adam_row_sum_y"] == pytest.approx(row_sums(adam.Y[1, -1]), rel=1e-12)
    assert out["adam_row_sum_z"] == pytest.approx(row_sums(adam.Z[1, -1]), rel=1e-12)
    assert out["adam_row_sum_y"] > 0.1  # Adam drifts
    others = [m for m in range(SYN.M) if m not in SYN.query_tokens.tolist()]
    assert out["other_rows"] == max(np.abs(run.Z[:, :, others].numpy()).max()
                                    for run in (sgd, adam)) == 0.0
    with pytest.raises(ValueError, match="run_index"):
        ch2.invariant_summary(sgd, adam, run_index=2)
    with pytest.raises(TypeError, match="adam must be a scansnap Run"):
        ch2.invariant_summary(sgd, "adam")


def test_row_centring_changes_no_prediction_of_a_drifted_run():
    adam = train(SYN, 0.1, 0.1, steps=6, batch_size=16, seq_len=32, seeds=[0],
                 optimizer="adam")
    out = ch2.row_centring_effect(adam, batch_size=32, seq_len=64, seed=5)
    removed = max(row_sums(adam.Y[0, -1]), row_sums(adam.Z[0, -1]))
    assert out["row_sum"] == pytest.approx(removed, rel=1e-12)
    assert out["row_sum"] > 0.1  # the centring removes a lot ...
    assert out["prob_change"] < 1e-12  # ... and no prediction notices
    with pytest.raises(ValueError, match="batch_size"):
        ch2.row_centring_effect(adam, batch_size=0)


def test_rates_vs_width_quotes_per_width_and_per_unit_rate():
    eta_y, eta_z = 2.0, 0.5
    data = ch2.rates_vs_width(SYN, ds=(8, 64), seeds=(0, 1), eta_y=eta_y, eta_z=eta_z).data
    for d in (8, 64):
        one = [ch2.one_step_rates(SYN, d, eta_y, eta_z, seed=s) for s in (0, 1)]
        kappa_y = sum(r.kappa_y for r in one) / 2 / eta_y
        attention = sum(r.kappa_z_attention for r in one) / 2 / eta_z
        embedding = sum(r.size_z_embedding for r in one) / 2 / eta_y
        assert data[f"kappa_y_d{d}"] == pytest.approx(kappa_y, rel=1e-12)
        assert data[f"kappa_z_attention_d{d}"] == pytest.approx(attention, rel=1e-12)
        assert data[f"size_z_embedding_d{d}"] == pytest.approx(embedding, rel=1e-12)
        assert data[f"embedding_to_attention_d{d}"] == pytest.approx(embedding / attention,
                                                                      rel=1e-12)
        assert data[f"cos_z_attention_d{d}"] == pytest.approx(
            sum(r.cos_z_attention for r in one) / 2, rel=1e-12)
        assert data[f"predicted_kappa_z_d{d}"] == pytest.approx(2 / (3 * d), rel=1e-15)
        assert data[f"predicted_speed_ratio_d{d}"] == pytest.approx(5 * d / 2, rel=1e-15)
    assert data["predicted_kappa_y"] == pytest.approx(5 / 3, rel=1e-15)


def test_full_training_summary_on_hand_made_measurements():
    run = train(SYN, 0.1, 1.0, steps=10, batch_size=8, seq_len=16, model="full", d=8,
                init="random", seeds=[1, 2], record_every=2)
    rate_steps = np.arange(0, 10, 2)  # measured at 0, 2, 4, 6, 8; the run ends at step 10
    kappa_y = np.array([[1.0, 1, 1, 4, 6], [1.0, 1, 1, 2, 2]])  # last 4 steps: 6 and 8
    kappa_z = np.array([[0.01, 0, 0, 0.03, 0.05], [0.01, 0, 0, 0.2, 0.4]])
    embedding_norms = np.ones((2, 5, SYN.M))
    embedding_norms[:, -1, SYN.next_tokens] = 2.0
    embedding_norms[0, -1, SYN.common_tokens(0)] = 3.0
    embedding_norms[1, -1, SYN.common_tokens(0)] = 5.0
    weight_norms = np.ones((2, 5, 3))
    weight_norms[:, -1, 2] = [6.0, 8.0]
    full = ch2.FullTraining(run, rate_steps, kappa_y, kappa_z, kappa_z, kappa_z, kappa_z,
                            embedding_norms, weight_norms, predicted=(0.5, 0.01))
    out = full.summary(last_steps=4)
    assert out["kappa_y"] == 0.5 and out["kappa_z"] == 0.01
    assert out["growth_y_lo"] == pytest.approx(2 / 0.5) and out["growth_y_hi"] == 5 / 0.5
    assert out["growth_z_lo"] == pytest.approx(4.0) and out["growth_z_hi"] == pytest.approx(30.0)
    assert out["grow_next"] == 2.0 and out["grow_context"] == 4.0 and out["grow_wv"] == 7.0
    with pytest.raises(ValueError, match="last_steps must reach back"):
        full.summary(last_steps=1)


def test_attention_summary_against_attention_by_hand():
    kwargs = dict(steps=8, batch_size=16, seq_len=32, seeds=[0, 1], record_every=4)
    runs = {"slow": train(SYN, 1.0, 1.0, **kwargs), "fast": train(SYN, 1.0, 20.0, **kwargs)}
    out = ch2.attention_summary(runs, n=1, run_index=1)
    probs = SYN.probs().numpy()[1]
    query = int(SYN.query_tokens[1])
    common, distinct = SYN.common_tokens(1).numpy(), SYN.distinct_tokens(1).numpy()
    for name, run in runs.items():
        def c(seed, snapshot):  # Lemma 2: c_l ∝ P(l|n) exp(z_{ψ(n) l})
            weights = probs * np.exp(run.Z[seed, snapshot, query].numpy())
            return weights / weights.sum()

        ends = [c(seed, -1)[common].sum() for seed in (0, 1)]
        assert out[f"{name}_mass_start"] == pytest.approx(c(1, 0)[common].sum(), rel=1e-12)
        assert out[f"{name}_mass"] == pytest.approx(ends[1], rel=1e-12)
        assert out[f"{name}_mass_lo"] == pytest.approx(min(ends), rel=1e-12)
        assert out[f"{name}_mass_hi"] == pytest.approx(max(ends), rel=1e-12)
        assert out[f"{name}_top"] == int(np.argmax(c(1, -1)[distinct])) + 1
    assert abs(out["fast_mass"] - out["fast_mass_start"]) > 1e-3  # attention moved
    with pytest.raises(ValueError, match="identifiers"):
        ch2.attention_summary({"two words": runs["slow"]})


def test_divergence_summary_lists_the_first_non_finite_step():
    kwargs = dict(batch_size=8, seq_len=16, model="full", d=8, init="random", seeds=[1, 2, 3])
    blowup = train(SYN, 50.0, 50.0, steps=40, on_divergence="flag", **kwargs)
    first_bad = []
    for losses in blowup.loss.numpy():
        bad = [t for t, loss in enumerate(losses) if not np.isfinite(loss)]
        if bad:
            first_bad.append(bad[0])
    assert first_bad  # the setting does diverge
    out = ch2.divergence_summary(blowup)
    assert out == {"diverged": len(first_bad), "runs": 3,
                   "steps": ", ".join(map(str, first_bad))}
    calm = train(SYN, 0.1, 0.1, steps=3, **kwargs)
    assert ch2.divergence_summary(calm) == {"diverged": 0, "runs": 3, "steps": ""}
    with pytest.raises(TypeError, match="run must be a scansnap Run"):
        ch2.divergence_summary(blowup.loss)
