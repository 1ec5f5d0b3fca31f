"""The further-results page's summary functions (what its paragraphs quote), each against numbers
computed here by hand or by another route."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scansnap import mechanism
from scansnap.chapters import further_results as further
from scansnap.data import SequenceClasses


def test_remark1_summary_against_hand_values_and_the_modified_decoder() -> None:
    classes = mechanism.theorem4_classes(4, common_weight=1.0)
    t = np.array([1.0, 5.0, 50.0])
    rates = {0.2: np.array([0.79, 0.81, 0.4]), 0.5: np.array([0.5, 0.52, 0.45])}
    summary = further.remark1_summary(classes, t, rates, eta_y=1.0, early_t=10.0)
    assert summary["early"] == pytest.approx(0.04)  # 0.52 against 1 - 0.5
    assert (summary["late_lo"], summary["late_hi"]) == pytest.approx((0.5, 0.9))
    assert summary["t0"] == pytest.approx(2 * 4 * math.log(classes.M))
    assert summary["modified_err"] < 1e-5  # Lemma 3's decoder runs at eta_Y exactly
    assert further.remark1_summary(classes, t, rates, early_t=1.0)["early"] == pytest.approx(
        0.0125)  # only t = 1: 0.79 against 0.8
    with pytest.raises(ValueError, match="early_t"):
        further.remark1_summary(classes, t, rates, early_t=0.5)
    with pytest.raises(ValueError, match="rates"):
        further.remark1_summary(classes, t, {})


def test_corollary2_summary_counts_the_falling_steps() -> None:
    z = torch.tensor([[0.0, 0.0], [0.0, 0.0], [-0.1, -0.1], [-0.2, -0.15], [-0.3, -0.1]])
    summary = further.corollary2_summary({100: z, 1: z[:, :1]})
    # steps 2, 3, 4 compared with their predecessors; at step 4 the second logit rose
    assert (summary["moves_100"], summary["falling_100"]) == (3, 2)
    assert (summary["moves_1"], summary["falling_1"]) == (3, 3)
    assert summary["end_max_100"] == pytest.approx(-0.1)
    assert summary["spread_100"] == pytest.approx(0.2)
    assert summary["spread_1"] == 0.0
    with pytest.raises(ValueError, match="falls"):
        further.corollary2_summary({1: z[:2]})


def test_theorem5_summary_recovers_an_inverse_square_root() -> None:
    batch = np.array([8, 32, 128, 512])
    deviation = np.stack([0.03 / np.sqrt(batch), 0.05 / np.sqrt(batch)], axis=1)
    summary = further.theorem5_summary(dict(batch_sizes=batch, deviation=deviation))
    assert summary["slope"] == pytest.approx(-0.5)
    assert summary["hi"] == pytest.approx(0.04 / math.sqrt(8))
    assert summary["lo"] == pytest.approx(0.04 / math.sqrt(512))
    with pytest.raises(ValueError, match="two batch sizes"):
        further.theorem5_summary(dict(batch_sizes=batch[:1], deviation=deviation[:1]))


def test_residual_summary_means_and_the_entropy_of_the_frequencies() -> None:
    medium = SequenceClasses(num_queries=3, next_per_query=2)
    ends = {False: (torch.tensor([0.2, 0.3]), torch.tensor([2.0, 1.8])),
            True: (torch.tensor([0.05, 0.07]), torch.tensor([1.0, 1.2]))}
    summary = further.residual_summary(medium, ends)
    assert (summary["mass_off"], summary["mass_on"]) == pytest.approx((0.25, 0.06))
    assert (summary["entropy_off"], summary["entropy_on"]) == pytest.approx((1.9, 1.1))
    p = medium.probs()[0, medium.distinct_tokens(0)].double()
    p = p / p.sum()
    assert summary["entropy_start"] == pytest.approx(float(-(p * p.log()).sum()))
    with pytest.raises(ValueError, match="residual"):
        further.residual_summary(medium, {True: ends[True]})


def test_beta_creep_summary_per_weight() -> None:
    betas = {0.25: dict(measured=np.array([1.0, 2.0]), candidate=np.array([2.0, 2.0]),
                        overlap=0.016),
             3.0: dict(measured=np.array([3.0, 1.0]), candidate=np.array([1.0, 4.0]),
                       overlap=0.7)}
    summary = further.beta_creep_summary(betas)
    assert summary == pytest.approx({"0.25_lo": 0.5, "0.25_hi": 1.0, "0.25_rho": 0.016,
                                     "3_lo": 0.25, "3_hi": 3.0, "3_rho": 0.7})
