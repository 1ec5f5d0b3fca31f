"""The comparison of the book's Fig 6 with the authors' released numbers."""

import numpy as np
import pytest

from scansnap.chapters import ch5_phase_transition as ch5


def fake_sweep(scale_of_pm: float, shift: float = 0.0) -> ch5.Sweep:
    """A sweep whose per-cell mean is the authors' mean + shift and whose per-seed std is
    ``scale_of_pm`` times the authors' ±."""
    cells = ch5.authors.load()
    panels = sorted({int(c["num_queries"]) for c in cells})
    eta_z = sorted({c["eta_z"] for c in cells})
    ratios = sorted({c["ratio"] for c in cells})
    unit = np.array([-1.0, 1.0] * 5) / np.std([-1.0, 1.0] * 5, ddof=1)  # mean 0, std 1
    entropy = {}
    for q in panels:
        H = np.zeros((len(eta_z), len(ratios), 10))
        for c in cells:
            if c["num_queries"] == q:
                i, j = eta_z.index(c["eta_z"]), ratios.index(c["ratio"])
                H[i, j] = c["mean"] + shift + scale_of_pm * c["pm"] * unit
        entropy[(q, "random")] = H
    return ch5.Sweep(panels=[(q, 2 * q, 0) for q in panels], eta_z=eta_z, ratios=ratios,
                        seeds=list(range(1, 11)), inits=["random"], entropy=entropy, recall={},
                        thresholds={}, seconds={})


def test_load_has_the_64_cells():
    cells = ch5.authors.load()
    assert len(cells) == 64
    assert all(c["pm"] > 0 and 0 < c["mean"] < np.log(10) for c in cells)


def test_compare_reads_pm_as_std_when_it_is():
    out = ch5.authors.compare(fake_sweep(1.0))
    assert out["pm_over_std"] == pytest.approx(1.0)
    assert out["pm_over_sem"] == pytest.approx(np.sqrt(10))
    assert out["max_abs_deviation"] == pytest.approx(0.0, abs=1e-9)


def test_compare_deviation_in_seed_spread_units():
    out = ch5.authors.compare(fake_sweep(1.0, shift=0.01))
    dev = np.array([r["deviation"] for r in out["records"]])
    pm = np.array([r["pm"] for r in out["records"]])
    np.testing.assert_allclose(dev, 0.01 / pm)
    assert out["rms_z_if_std"] > out["rms_z_if_sem"]


def test_compare_validates():
    with pytest.raises(TypeError, match="sweep"):
        ch5.authors.compare({})
    with pytest.raises(ValueError, match="init"):
        ch5.authors.compare(fake_sweep(1.0), init="zero")
