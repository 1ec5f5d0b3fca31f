"""Chapter 4's summary functions (what its paragraphs quote), each against numbers computed here
by hand or by another route."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from scansnap import metrics
from scansnap.chapters import ch4_fates_of_tokens as ch4
from scansnap.data import syn_small
from scansnap.decompose import Theorem3Measurement
from scansnap.dynamics import Run
from scansnap.plots import FigureResult

WEIGHTS = np.linspace(0.1, 1.0, 10)  # Syn-Small's distinct weights; its 10 common tokens weigh 1


def synthetic_run(Z: torch.Tensor) -> Run:
    """A one-run Run of Syn-Small holding the snapshots ``Z [S, M, M]`` (decoder zero)."""
    S = Z.shape[0]
    return Run(classes=syn_small(), configs=[(1.0, 1.0, 0)], steps=torch.arange(S),
               Y=torch.zeros_like(Z)[None], Z=Z[None], loss=torch.zeros(1, S),
               diverged=torch.zeros(1, dtype=torch.bool))


def test_lemma4_summary_takes_the_worst_error_per_ratio_and_counts_growth() -> None:
    steps = np.arange(4)
    agreements = {  # step 0's error (9.0) is left out, as in the chapter's figure
        "A, 100:1": dict(steps=steps, error=np.array([9.0, 0.010, 0.020, 0.015])),
        "B, 100:1": dict(steps=steps, error=np.array([9.0, 0.030, 0.001, 0.0005])),
        "A, 1:1": dict(steps=steps, error=np.array([9.0, 0.5, 0.6, 0.7])),
    }
    summary = ch4.lemma4_summary(agreements, early_step=1)
    assert summary == {"err_100": 0.030, "err_1": 0.7, "growing": 2, "runs": 3}
    assert ch4.lemma4_summary(agreements, early_step=2)["growing"] == 1
    with pytest.raises(ValueError, match="early_step"):
        ch4.lemma4_summary(agreements, early_step=7)
    with pytest.raises(ValueError, match="labels"):
        ch4.lemma4_summary({"no ratio": agreements["A, 1:1"]})
    with pytest.raises(ValueError, match="empty"):
        ch4.lemma4_summary({})


def test_no_common_token_control_keeps_attention_at_zero() -> None:
    control = ch4.no_common_token_control(steps=20)
    assert control["Z_max"] < 1e-12
    assert control["Y_max"] > 0.1  # the decoder learned meanwhile
    with pytest.raises(ValueError, match="steps"):
        ch4.no_common_token_control(steps=0)


def test_theorem2_summary_against_hand_computed_values() -> None:
    classes = syn_small()
    query = int(classes.query_tokens[0])
    common, distinct = classes.common_tokens(0), classes.distinct_tokens(0)
    z_distinct = torch.tensor([-0.2, 0.1, 0.3, 0.2, 0.4, 0.5, 0.6, 0.9, 0.8, 1.0],
                              dtype=torch.float64)
    Z = torch.zeros(2, classes.M, classes.M, dtype=torch.float64)
    Z[1, query, common] = -0.5
    Z[1, query, distinct] = z_distinct
    summary = ch4.theorem2_summary(synthetic_run(Z))
    assert summary["common_mass0"] == pytest.approx(10 / (10 + WEIGHTS.sum()))
    # f_1·f_2 at Z = 0: the classes share only the 10 common tokens (weight 1 each)
    assert summary["overlap"] == pytest.approx(10 / (10 + (WEIGHTS ** 2).sum()))
    common_weight = 10 * math.exp(-0.5)
    distinct_weight = float((WEIGHTS * np.exp(z_distinct.numpy())).sum())
    assert summary["common_mass_end"] == pytest.approx(common_weight
                                                       / (common_weight + distinct_weight))
    assert summary["common_max"] == pytest.approx(-0.5)
    assert summary["distinct_min"] == pytest.approx(-0.2)
    assert summary["negative_distinct"] == 1
    assert summary["top5_min"] == pytest.approx(0.5)  # logits of weights 0.6..1.0
    assert summary["ordered_pairs"] == pytest.approx(7 / 9)  # 0.3 > 0.2 and 0.9 > 0.8 break it
    with pytest.raises(TypeError, match="run"):
        ch4.theorem2_summary("run")
    with pytest.raises(ValueError, match="index"):
        ch4.theorem2_summary(synthetic_run(Z), index=1)


def test_rarest_logit_and_its_summary() -> None:
    classes = syn_small()
    Z = torch.zeros(3, classes.M, classes.M)
    rarest_token = int(classes.distinct_tokens(0)[int(np.argmin(WEIGHTS))])
    Z[:, int(classes.query_tokens[0]), rarest_token] = torch.tensor([-1.0, -2.0, 3.0])
    assert ch4.rarest_logit(classes, Z).tolist() == [-1.0, -2.0, 3.0]
    p_rare = 0.1 / (10 + WEIGHTS.sum())
    summary = ch4.rarest_token_summary(classes, paper=torch.tensor([-0.3, -0.1]),
                                       large_batch=torch.tensor([-0.2, -0.05]),
                                       long_context=torch.tensor([0.1, 0.4]),
                                       population_logit=0.25, seq_len=128, long_seq_len=512)
    assert summary["expected"] == pytest.approx(127 * p_rare)
    assert summary["absent"] == pytest.approx(math.exp(127 * math.log1p(-p_rare)))
    assert (summary["paper_max"], summary["large_batch_max"]) == pytest.approx((-0.1, -0.05))
    assert (summary["long_context_min"], summary["population"]) == pytest.approx((0.1, 0.25))
    assert "finite-T effect" in summary["verdict"] and "T = 512" in summary["verdict"]
    noisy = ch4.rarest_token_summary(classes, paper=torch.tensor([-0.3, 0.1]),
                                     large_batch=torch.tensor([-0.2]),
                                     long_context=torch.tensor([0.1]), population_logit=0.2)
    assert "does not separate" in noisy["verdict"]
    with pytest.raises(ValueError, match="long_seq_len"):
        ch4.rarest_token_summary(classes, torch.tensor([-1.0]), torch.tensor([-1.0]),
                                 torch.tensor([1.0]), 0.0, seq_len=128, long_seq_len=64)


def measurement(with_bounds: bool) -> Theorem3Measurement:
    # two competitors: column 0 rare (r(0) = 99), column 1 close (r(0) = 0.2)
    r = torch.tensor([[99.0, 0.2], [110.0, 0.21], [130.0, 0.30]], dtype=torch.float64)
    chi = torch.tensor([1.0, 1.1, 1.25], dtype=torch.float64)
    predicted = r[0] * chi[:, None]
    bounds = dict(B=None, lower=None, upper=None)
    if with_bounds:
        bounds = dict(B=torch.zeros(3), lower=torch.tensor([1.0, 1.2, 1.2]),
                      upper=torch.tensor([1.0, 2.0, 3.0]))
    return Theorem3Measurement(steps=np.arange(3), l0=19, others=torch.tensor([10, 18]), r=r,
                               predicted=predicted, rel_error=(r / predicted - 1).abs(), chi=chi,
                               **bounds)


def test_theorem3_summary_per_measurement() -> None:
    summary = ch4.theorem3_summary({"a": measurement(True), "b": measurement(False)})
    assert summary["chi_a"] == pytest.approx(1.25)
    assert (summary["r0_rare_a"], summary["r0_close_a"]) == pytest.approx((99.0, 0.2))
    assert summary["err_rare_a"] == pytest.approx(130 / (99 * 1.25) - 1)  # at step 2
    assert summary["err_close_a"] == pytest.approx(0.30 / 0.25 - 1)
    assert summary["err_all_a"] == pytest.approx(0.2)
    assert summary["err_matched_a"] == pytest.approx(0.2)  # first step with chi >= 1.2 is 2
    assert "err_matched_a" not in ch4.theorem3_summary({"a": measurement(True)},
                                                       matched_chi=2.0)
    assert summary["bounds_a"] == pytest.approx(2 / 3)  # step 1: chi 1.1 < lower 1.2
    assert (summary["lower_a"], summary["upper_a"]) == pytest.approx((1.2, 3.0))
    assert "bounds_b" not in summary and "chi_b" in summary
    with pytest.raises(TypeError, match="Theorem3Measurement"):
        ch4.theorem3_summary({"a": "not a measurement"})
    with pytest.raises(ValueError, match="matched_chi"):
        ch4.theorem3_summary({"a": measurement(True)}, matched_chi=0.5)


def test_common_logits_falling_counts_steps_without_a_rise() -> None:
    classes = syn_small()
    query = int(classes.query_tokens[0])
    Z = torch.zeros(4, classes.M, classes.M, dtype=torch.float64)
    Z[:, query, classes.common_tokens(0)] = torch.tensor([0.0, -0.1, -0.05, -0.3],
                                                           dtype=torch.float64)[:, None]
    assert ch4.common_logits_falling(synthetic_run(Z)) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="n must"):
        ch4.common_logits_falling(synthetic_run(Z), n=2)


def test_adam_summary_reads_the_panels_and_the_winners() -> None:
    data = {"etas": [0.1, 1.0],
            "panels": [{"top3_distinct_final": [11, 12, 13], "common_mass_final": 0.25},
                       {"top3_distinct_final": [19, 18, 17], "common_mass_final": 1e-4}]}
    summary = ch4.adam_summary(FigureResult(None, data), {0.1: [11, 12], 1.0: [19, 19]})
    assert summary == {"top_0.1": "11, 12, 13", "mass_0.1": 0.25, "win_0.1": "11, 12",
                       "top_1": "19, 18, 17", "mass_1": 1e-4, "win_1": "19, 19"}
    with pytest.raises(ValueError, match="winners"):
        ch4.adam_summary(FigureResult(None, data), {0.1: [11]})


def test_pair_concordance_is_kendalls_tau_rescaled() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=12), rng.normal(size=12)
    tau = stats.kendalltau(a, b).statistic
    assert ch4.pair_concordance(torch.tensor(a), torch.tensor(b)) == pytest.approx((1 + tau) / 2)
    with pytest.raises(ValueError, match="shape"):
        ch4.pair_concordance(torch.tensor(a), torch.tensor(b[:5]))


def test_fig4_numbers_at_the_start_and_the_loss_of_a_zero_decoder() -> None:
    run = ch4.fig4_run(eta_y=[1.0, 10.0], eta_z=1.0, steps=50, batch_size=8, record_every=2,
                       progress=False)
    data = ch4.fig4(run=run).data
    p = WEIGHTS / WEIGHTS.sum()
    assert data["distinct_entropy_start"] == pytest.approx(float(-(p * np.log(p)).sum()))
    assert data["common_mass_start"] == pytest.approx(10 / (10 + WEIGHTS.sum()))
    assert data["max_weight_start"] == pytest.approx(1 / (10 + WEIGHTS.sum()))
    assert data["loss_uniform"] == pytest.approx(math.log(34))
    for eta, index in (("eta1", 0), ("eta10", 1)):
        assert data[f"loss_start_{eta}"] == pytest.approx(math.log(34), rel=1e-5)
        assert data[f"loss_10_{eta}"] == pytest.approx(float(run.loss[index, 10]))
        assert data[f"distinct_entropy_{eta}"] == pytest.approx(
            data["distinct_entropy_start"] * (1 - data[f"entropy_drop_{eta}"]))
    assert data["distinct_entropy_eta1"] < data["distinct_entropy_start"]


def test_four_stages_quotes_its_steps_and_the_final_common_mass() -> None:
    run = ch4.fig4_run(eta_y=1.0, eta_z=1.0, steps=30, batch_size=8, record_every=1,
                       progress=False)
    data = ch4.four_stages(run).data
    mass = [float(m) for m in metrics.common_mass(run.classes, run.Z[0].double())[:, 0]]
    assert data["common_mass_end"] == pytest.approx(mass[-1])
    half_fall = mass[0] - 0.5 * (mass[0] - mass[-1])
    first = next(step for step, m in zip(run.steps.tolist(), mass) if m <= half_fall)
    assert data["suppressed"] == first
    assert data["suppressed"] <= data["snapped"] and data["emerged"] <= data["snapped"]
    assert [data[k] for k in ("suppressed", "emerged", "snapped")] == data["stages"][1:]
