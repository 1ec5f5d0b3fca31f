"""Remark 1, Corollary 2, Theorem 5 and §7, measured (book/further_results.md)."""

import numpy as np
import pytest
import torch

from scansnap import SequenceClasses, mechanism, metrics, train
from scansnap.chapters import further_results as further


def test_remark1_effective_rate():
    classes = mechanism.theorem4_classes(4, common_weight=1.0)
    rho = further.uniform_overlap(classes)
    t = np.array([1.0, 5.0, 3000.0])
    real = further.remark1_effective_rate(classes, 1.0, t)
    np.testing.assert_allclose(real[:2], 1 - rho, rtol=0.01)  # Remark 1, early
    assert real[-1] < 0.5 * (1 - rho)  # the real decoder falls further behind later
    modified = further.remark1_effective_rate(classes, 1.0, t, decoder="modified")
    np.testing.assert_allclose(modified, 1.0, rtol=1e-5)  # Lemma 3: exact
    result = further.remark1_figure(t, {rho: real})
    np.testing.assert_allclose(result.figure.axes[0].get_lines()[0].get_ydata(), real)
    with pytest.raises(ValueError, match="overlap"):
        further.uniform_overlap(SequenceClasses(num_queries=2, next_per_query=2,
                                                common_per_query=2))


def test_corollary2_all_common_tokens_fall():
    classes = SequenceClasses(num_queries=1, next_per_query=4, num_common=5)
    z = further.corollary2_common_logits(classes, 1.0, 0.01, steps=60)
    assert z.shape == (61, 5)
    assert bool((z[2:] < z[1:-1]).all())
    with pytest.raises(ValueError, match="single query"):
        further.corollary2_common_logits(SequenceClasses(), 1.0, 0.01, steps=5)


def test_theorem5_noise_shrinks_with_batch():
    out = further.theorem5_deviation(mechanism.theorem4_classes(2), 1.0, 40, [8, 128],
                                     seeds=[1, 2, 3])
    small, large = out["deviation"].mean(1)
    # 16x the batch: sqrt(16) = 4x less noise; allow for three seeds' scatter
    assert 2.0 < small / large < 8.0


def test_residual_changes_the_fates():
    medium = SequenceClasses(num_queries=3, next_per_query=2)
    mass = {}
    for residual in (False, True):
        run = train(medium, eta_y=1.0, eta_z=1.0, steps=60, seeds=[1], residual=residual,
                    record_every=None, progress=False, dtype=torch.float32)
        mass[residual] = float(metrics.common_mass(medium, run.Z[:, -1].double()).mean())
    assert mass[True] < mass[False]


def test_real_update_beta_candidate_holds_for_weak_overlap_only():
    t = np.geomspace(1, 1e4, 5)
    weak = further.real_update_beta(mechanism.theorem4_classes(4), 1.0, t)
    np.testing.assert_allclose(weak["measured"], weak["candidate"], rtol=0.1)
    strong = further.real_update_beta(mechanism.theorem4_classes(4, common_weight=3.0), 1.0, t)
    assert (strong["measured"] / strong["candidate"]).min() < 0.1
