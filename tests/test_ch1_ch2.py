"""Tests of the Chapter 1–2 helpers: plots, Lemma 2 measurement, reparameterization measurements
and the chapters' coursework checks (reference passes, wrong answers fail helpfully)."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from scansnap import SequenceClasses, metrics, plots, train  # noqa: E402
from scansnap.chapters import ch1_setting, ch2_reparameterization  # noqa: E402
from scansnap.checks import CheckFailed, ch1, ch2  # noqa: E402
from scansnap.models import full_to_yz  # noqa: E402

SYN = SequenceClasses()


# --- plots -----------------------------------------------------------------------------------
def test_token_kinds_follow_the_paper_definition():
    kinds = plots.token_kinds(SYN)
    assert kinds[:10] == ["common"] * 10 and kinds[10:30] == ["distinct"] * 20
    assert kinds[30:32] == ["query"] * 2 and kinds[32:34] == ["next"] * 2
    # Per-query common tokens seen by one class only are distinct by |Ω(l)| = 1.
    one_per_query = SequenceClasses(num_queries=2, next_per_query=1, common_per_query=3)
    assert plots.token_kinds(one_per_query)[10:16] == ["distinct"] * 6
    shared = SequenceClasses(num_queries=2, next_per_query=2, common_per_query=3)
    assert plots.token_kinds(shared)[10:16] == ["common"] * 6


def test_plots_return_figures_and_validate():
    g = torch.Generator().manual_seed(0)
    contexts, queries, targets = SYN.sample(3, 40, g)
    figures = [plots.plot_class_probs(SYN), plots.plot_sequences(SYN, contexts, queries, targets),
               plots.plot_attention(SYN, SYN.probs(), reference=SYN.probs(), ymax=0.1)]
    for fig in figures:
        assert isinstance(fig, matplotlib.figure.Figure) and fig.axes
    with pytest.raises(TypeError):
        plots.plot_class_probs("not classes")
    with pytest.raises(ValueError, match="c must have shape"):
        plots.plot_attention(SYN, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="contexts must hold token ids"):
        plots.plot_sequences(SYN, contexts + 100, queries, targets)
    with pytest.raises(TypeError, match="integer token ids"):
        plots.plot_sequences(SYN, contexts.double(), queries, targets)


def test_book_figure_displays_as_png_without_pyplot():
    fig = plots.plot_class_probs(SYN)
    assert isinstance(fig, plots.BookFigure)
    png = fig._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_class_and_sequence_images():
    image = plots.class_rgb(SYN)
    assert image.shape == (SYN.K + 1, SYN.M, 3) and image.min() >= 0 and image.max() <= 1
    # A token outside a class's support is white in that class's row; query/next are marked.
    assert (image[1, 20:30] == 1.0).all() and not (image[1, 10:20] == 1.0).all()
    assert (image[1, 30] == image[0, 30]).all() and (image[1, 32] == image[0, 32]).all()
    g = torch.Generator().manual_seed(0)
    contexts, queries, targets = SYN.sample(3, 10, g)
    seq = plots.sequence_rgb(SYN, contexts, queries, targets)
    assert seq.shape == (3, 9 + 3, 3) and (seq[:, 9] == 1.0).all()  # white gap before the query
    with pytest.raises(TypeError):
        plots.class_rgb("classes")


def test_class_explorer_redraws_and_validates():
    explorer = ch1_setting.ClassExplorer(num_sequences=2, seq_len=12, seed=0)
    classes = explorer.update(num_queries=3, next_per_query=2, num_common=0, distinct_per_next=4)
    assert classes.K == 6
    assert explorer.image_p.get_array().shape == (classes.K + 1, classes.M, 3)
    assert explorer.image_s.get_array().shape == (2, 11 + 3, 3)
    assert explorer.figure._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="num_sequences"):
        ch1_setting.ClassExplorer(num_sequences=0)
    with pytest.raises(ValueError, match="seq_len"):
        ch1_setting.ClassExplorer(seq_len=1)


def test_plot_run_summary():
    run = train(SYN, [0.5, 1.0], 1.0, steps=4, batch_size=8, seq_len=16, seeds=[0],
                record_every=2)
    fig = plots.plot_run_summary(run)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 2 * SYN.K
    one = plots.plot_run_summary(run, runs=[1], labels=["b"])
    assert len(one.axes[0].lines) == 1
    with pytest.raises(ValueError, match="labels"):
        plots.plot_run_summary(run, runs=[0], labels=["a", "b"])
    with pytest.raises(ValueError, match="runs"):
        plots.plot_run_summary(run, runs=[2])
    with pytest.raises(TypeError, match="Run"):
        plots.plot_run_summary("run")


# --- Chapter 1: Lemma 2 ----------------------------------------------------------------------
def test_attention_from_counts_matches_positions():
    g = torch.Generator().manual_seed(1)
    contexts, queries, _ = SYN.sample(4, 50, g)
    Z = torch.randn(SYN.M, SYN.M, generator=g, dtype=torch.float64)
    for b in range(4):
        z = Z[queries[b]]
        weights = torch.softmax(z[contexts[b]], 0)  # b_t over positions
        by_token = torch.zeros(SYN.M, dtype=torch.float64).index_add_(0, contexts[b], weights)
        counts = torch.bincount(contexts[b], minlength=SYN.M).double()
        assert torch.allclose(ch1.attention_from_counts(z, counts), by_token, atol=1e-14)
    with pytest.raises(ValueError, match="nonnegative"):
        ch1.attention_from_counts(torch.zeros(3), torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="positive sum"):
        ch1.attention_from_counts(torch.zeros(3), torch.zeros(3))


def test_lemma18_bound_and_validation():
    assert math.isclose(ch1_setting.lemma18_bound(101, 0.05), math.sqrt(math.log(40) / 200))
    with pytest.raises(ValueError, match="T must be"):
        ch1_setting.lemma18_bound(1, 0.1)
    with pytest.raises(ValueError, match="delta"):
        ch1_setting.lemma18_bound(10, 1.0)


def test_lemma2_convergence_rate_and_bound():
    result = ch1_setting.lemma2_convergence(SYN, Ts=(100, 1000, 10000), batch_size=400, seed=3)
    data = result.data
    assert -0.6 < data["slope"] < -0.4
    assert all(q <= b for q, b in zip(data["freq_quantile"], data["bound"]))
    assert max(data["violation_rate"]) <= data["delta"]
    # The delta-method constant (Exercise ★★★) predicts the measured mean gap.
    predicted = ch1.reference_predicted_l1_gap(SYN.probs()[0], torch.zeros(SYN.M), 10000)
    assert abs(data["l1_mean"][-1] / predicted - 1) < 0.1
    with pytest.raises(ValueError, match="fit_min_T"):
        ch1_setting.lemma2_convergence(SYN, Ts=(10, 20), fit_min_T=100)


def test_ch1_checks_reject_wrong_answers():
    def naive(z_row, counts):  # overflows at large logits
        w = counts * torch.exp(z_row)
        return w / w.sum(-1, keepdim=True)

    with pytest.raises(CheckFailed, match="NaN or inf"):
        ch1.check_attention_from_counts(naive)
    with pytest.raises(CheckFailed, match="shape"):
        ch1.check_attention_from_counts(lambda z, q: ch1.attention_from_counts(z, q)[..., 1:])
    with pytest.raises(CheckFailed, match="factor"):
        ch1.check_predicted_l1_gap(lambda p, z, T: 2 * ch1.reference_predicted_l1_gap(p, z, T))
    with pytest.raises(NotImplementedError):
        ch1.check_attention_from_counts(lambda z, q: (_ for _ in ()).throw(NotImplementedError()))


# --- Chapter 2: reparameterization ---------------------------------------------------------
def test_logit_identity_is_exact():
    out = ch2_reparameterization.logit_identity(SYN, ds=(1, 32), seeds=(0,), batch_size=8, seq_len=20)
    assert out["max_abs_error"].shape == (2, 1)
    assert out["max_abs_error"].max() < 1e-12


def test_lemma1_check_agrees_with_autograd():
    for normalize in (True, False):
        out = ch2_reparameterization.lemma1_check(M=6, seq_len=8, cases=5, normalize=normalize)
        assert out["max_rel_error_Y"] < 1e-10 and out["max_rel_error_Z"] < 1e-10
        assert out["max_row_sum"] < 1e-12


def test_row_sums_sgd_vs_adam():
    sgd = train(SYN, 1.0, 1.0, steps=8, batch_size=16, seq_len=32, seeds=[0])
    adam = train(SYN, 0.1, 0.1, steps=8, batch_size=16, seq_len=32, seeds=[0], optimizer="adam")
    s, a = ch2_reparameterization.row_sum_drift(sgd), ch2_reparameterization.row_sum_drift(adam)
    assert s["Y"].max() < 1e-12 and s["Z"].max() < 1e-12 and s["Z_other_rows"].max() == 0
    assert a["Y"].max() > 1e-3 and a["Z"].max() > 1e-3
    assert a["Z_other_rows"].max() == 0  # Adam's update is 0 where the gradient is always 0
    with pytest.raises(TypeError):
        ch2_reparameterization.row_sum_drift("run")


def test_one_step_rates_match_prediction_at_large_width():
    r = ch2_reparameterization.one_step_rates(SYN, 256, eta_y=0.5, eta_z=2.0, seed=0, batch_size=64)
    ky, kz = ch2_reparameterization.predicted_rates(256, 0.5, 2.0)
    assert abs(r.kappa_y / ky - 1) < 0.2
    assert abs(r.kappa_z_attention / kz - 1) < 0.2 and r.cos_z_attention > 0.8
    assert r.cos_y > 0.8
    with pytest.raises(ValueError, match="d must be"):
        ch2_reparameterization.one_step_rates(SYN, 0)


def test_rates_vs_width_and_compare_frame():
    result = ch2_reparameterization.rates_vs_width(SYN, ds=(8, 64), seeds=(0,))
    assert len(result.data["kappa_y_mean"]) == 2
    fig = ch2_reparameterization.compare_frame(SYN, [("a", SYN.probs()), ("b", SYN.probs())], ymax=0.2)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="panels"):
        ch2_reparameterization.compare_frame(SYN, [])


def test_ch2_checks_reject_wrong_answers():
    with pytest.raises(CheckFailed, match="case 'vocabulary M = 2"):
        ch2.check_yz_from_full(lambda U, q, k, v: full_to_yz(U, q, k, v.T))
    with pytest.raises(CheckFailed, match=r"return the pair"):
        ch2.check_yz_from_full(lambda U, q, k, v: full_to_yz(U, q, k, v)[0])
    with pytest.raises(CheckFailed, match="opposite sign"):
        ch2.check_grad_z_row(lambda Y, z, q, t: -ch2.reference_grad_z_row(Y, z, q, t))

    def without_projection(Y, z, q, t):  # forgets P^⊥/‖v‖: a classic slip
        v = torch.softmax(z + torch.log(q), 0)
        u = v / v.norm()
        alpha = torch.softmax(Y.T @ u, 0)
        alpha[t] -= 1
        s = Y @ alpha
        return v * s - v * (v @ s)

    with pytest.raises(CheckFailed, match="grad_z_row"):
        ch2.check_grad_z_row(without_projection)
    assert torch.isfinite(ch2.reference_grad_z_row(torch.eye(3), torch.tensor([800.0, 0, 0]),
                                                    torch.ones(3), 1)).all()


def test_row_sum_plot():
    sgd = train(SYN, 1.0, 1.0, steps=4, batch_size=8, seq_len=16, seeds=[0])
    adam = train(SYN, 0.1, 0.1, steps=4, batch_size=8, seq_len=16, seeds=[0], optimizer="adam")
    result = ch2_reparameterization.plot_row_sums({"sgd": sgd, "adam": adam})
    fig = result.figure
    assert len(fig.axes) == 2
    assert result.data["adam"]["Z"] == list(fig.axes[1].lines[1].get_ydata())
    # Zeros are drawn at the floor, Adam's drift well above it.
    y_sgd, y_adam = (line.get_ydata() for line in fig.axes[0].lines[:2])
    assert y_sgd[0] == 1e-18 and y_adam[-1] > 1e-3
    with pytest.raises(ValueError, match="runs"):
        ch2_reparameterization.plot_row_sums({})
    with pytest.raises(ValueError, match="run_index"):
        ch2_reparameterization.plot_row_sums({"sgd": sgd}, run_index=3)


def test_train_full_with_rates_follows_train_and_measures():
    kwargs = dict(steps=6, batch_size=16, seq_len=24, seeds=[1, 2], record_every=3)
    full = ch2_reparameterization.train_full_with_rates(SYN, 0.1, 5.0, d=16, measure_every=2, **kwargs)
    ref = train(SYN, 0.1, 5.0, model="full", d=16, init="random", **kwargs)
    assert torch.allclose(full.run.Z, ref.Z, atol=1e-12) and torch.allclose(full.run.Y, ref.Y,
                                                                           atol=1e-12)
    assert torch.allclose(full.run.loss, ref.loss, atol=1e-12)
    assert full.kappa_y.shape == (2, 3) and list(full.rate_steps) == [0, 2, 4]
    assert full.embedding_norms.shape == (2, 3, SYN.M) and full.weight_norms.shape == (2, 3, 3)
    # The first measurement is one_step_rates' regime: near the initialization prediction.
    assert 0.5 < full.kappa_y[0, 0] / full.predicted[0] < 2
    result = ch2_reparameterization.plot_full_vs_yz(full, ref)
    assert len(result.figure.axes) == 2 and len(result.data["common_mass_full"]) == 2
    with pytest.raises(TypeError, match="FullTraining"):
        ch2_reparameterization.plot_full_vs_yz(ref, ref)
    with pytest.raises(ValueError, match="seeds must be distinct"):
        ch2_reparameterization.train_full_with_rates(SYN, 0.1, 1.0, seeds=[1, 1])
    with pytest.raises(FloatingPointError, match="diverged"):
        ch2_reparameterization.train_full_with_rates(SYN, 50.0, 50.0, d=8, steps=40, batch_size=8, seq_len=16)


def test_one_step_explorer_and_frame_reference():
    explorer = ch2_reparameterization.OneStepExplorer(SYN, batch_size=16)
    r = explorer.update(d=64, seed=1)
    assert r.d == 64 and explorer.points_y.get_offsets().shape == (SYN.M * SYN.M, 2)
    assert explorer.points_att.get_offsets().shape[0] == r.GZ.numel()
    assert explorer.figure.get_layout_engine() is None or \
        type(explorer.figure.get_layout_engine()).__name__ == "PlaceHolderLayoutEngine"
    fig = ch2_reparameterization.compare_frame(SYN, [("a", SYN.probs())], reference=SYN.probs())
    assert len(fig.axes) == 1
    with pytest.raises(TypeError, match="Figure"):
        plots.freeze_layout("figure")


def test_assumption2_eigenvalues_of_E():
    # Two classes: E = [[0, r], [r, 0]] with r = f_1·f_2, so |λ| = r for both eigenvalues.
    small = SequenceClasses()
    p = small.probs()
    r = float((p[0] @ p[1]) / (p[0].norm() * p[1].norm()))
    a = ch1_setting.assumption2(small)
    assert a.largest == pytest.approx(r, rel=1e-12) and a.smallest == pytest.approx(r, rel=1e-12)
    assert a.M_over_K2 == small.M / 4 and not a.weak_correlation  # r ≈ 0.72 > 1/K = 0.5
    # No common tokens: orthogonal classes, E = 0.
    orthogonal = ch1_setting.assumption2(SequenceClasses(num_queries=1, next_per_query=3, num_common=0))
    assert orthogonal.largest < 1e-12 and orthogonal.weak_correlation
    # Attention away from the common tokens decorrelates the classes.
    Z = torch.zeros(small.M, small.M, dtype=torch.float64)
    Z[small.query_tokens[:, None], small.common_tokens(0)] = -5.0
    assert ch1_setting.assumption2(small, Z).largest < a.largest
    with pytest.raises(TypeError, match="classes"):
        ch1_setting.assumption2("Syn-Small")
    with pytest.raises(ValueError, match="Z"):
        ch1_setting.assumption2(small, torch.zeros(3, 3))
    table = ch1_setting.assumption2_table(ch1_setting.book_datasets())
    assert table.count("<tr>") == 1 + len(ch1_setting.book_datasets())
    assert (f"<td>Syn-Small (ch. 1–4)</td><td>{small.M}</td><td>2</td><td>{small.M / 4:.1f}</td>"
            f"<td>{r:.3f}</td>") in table


def test_book_style_is_applied_and_colour_blind_safe():
    import matplotlib as mpl

    okabe_ito = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442",
                 "#000000"]
    plots.use_book_style()
    assert plots.BOOK_STYLE.is_file()
    assert mpl.rcParams["font.size"] >= 11 and mpl.rcParams["xtick.labelsize"] >= 10
    assert [c.upper() for c in mpl.rcParams["axes.prop_cycle"].by_key()["color"]] == okabe_ito
    assert mpl.colors.to_hex(mpl.rcParams["savefig.facecolor"]) == "#ffffff"  # dark-mode legible
    classes = SequenceClasses()
    for n in range(classes.K):
        assert plots.class_color(n).upper() in okabe_ito
    run = train(classes, eta_y=1.0, eta_z=1.0, steps=4, seeds=[1], record_every=2)
    for figure in (plots.plot_run_summary(run), plots.plot_class_probs(classes)):
        for ax in figure.axes:
            if ax.get_label() == "<colorbar>":
                continue
            assert ax.get_xlabel() or not ax.get_xticks().size, f"unlabelled x axis in {ax}"
            # every tick label is at least the style's small size
            for label in ax.get_xticklabels() + ax.get_yticklabels():
                assert label.get_fontsize() >= 0.69 * mpl.rcParams["font.size"]


def test_training_summary_reads_the_run():
    run = train(SYN, eta_y=10.0, eta_z=1.0, steps=30, batch_size=32, seq_len=32, seeds=[1, 2],
                record_every=10)
    summary = ch1_setting.training_summary(run, fit_loss=10.0)  # every loss is below 10
    mass = metrics.common_mass(SYN, run.Z)
    assert summary["mass0"] == pytest.approx(float(mass[0, 0, 0]))
    assert summary["mass_lo"] <= summary["mass1"] <= summary["mass_hi"]
    assert (summary["seeds"], summary["steps"], summary["fit_lo"], summary["fit_hi"]) == (2, 30, 0, 0)
    assert ch1_setting.training_summary(run, fit_loss=0.0)["fit_hi"] == -1  # never reached
    assert all(int(t) in range(1, SYN.distinct_per_next + 1) for t in summary["top"].split(" or "))


def test_glue_numbers_glues_scalars_only(monkeypatch):
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: glued.update({name: value}))
    from scansnap.gluing import glue_numbers

    glue_numbers("p", {"a": 1.5, "b": "x", "c": [1, 2], "d": True, "e": 3,
                       "f": np.float64(0.25), "g": np.int64(7)})
    assert glued == {"p_a": 1.5, "p_b": "x", "p_e": 3, "p_f": 0.25, "p_g": 7}
    assert type(glued["p_f"]) is float and type(glued["p_g"]) is int  # repr "0.25", not np.float64
    with pytest.raises(ValueError, match="prefix"):
        glue_numbers("not a prefix", {})


def test_class_summary_against_the_definition():
    """Syn-Small: 10 common tokens of weight ``common_weight`` and 10 distinct ones spaced
    linearly between the two ``distinct_weights``, ids 0–9 common (PAPER.md B.0)."""
    classes = SequenceClasses()
    contexts = classes.sample(50, 64, torch.Generator().manual_seed(3))[0]
    got = ch1_setting.class_summary(classes, contexts)
    lo, hi = classes.distinct_weights
    total = 10 * classes.common_weight + 10 * (lo + hi) / 2
    assert (got["M"], got["K"]) == (34, 2)
    assert got["p_common"] == pytest.approx(classes.common_weight / total, rel=1e-12)
    assert got["mass_common"] == pytest.approx(10 * classes.common_weight / total, rel=1e-12)
    assert got["p_distinct_min"] == pytest.approx(lo / total, rel=1e-12)
    assert got["p_distinct_max"] == pytest.approx(hi / total, rel=1e-12)
    assert got["sample_common_share"] == pytest.approx(float((contexts.numpy() < 10).mean()))
    with pytest.raises(ValueError, match="n"):
        ch1_setting.class_summary(classes, contexts, n=2)
    summary = metrics.assumption2(classes).summary()
    assert summary["bound"] == 0.5 and summary["M_over_K2"] == 34 / 4
    assert summary["holds"] == ("holds" if summary["largest"] < 0.5 else "does not hold")
