"""Which of the paper's results the book states, where, which test pins it, and the verdict.

The registry :data:`RESULTS` is the single source of the intro's coverage table and dependency
map (:func:`coverage_table`, :func:`dependency_map`); ``tests/test_coverage.py`` checks that every
page, label and test it names exists, so the table cannot drift from the book.

Verdicts: ``holds`` (within the stated tolerance of its test), ``partly`` (holds under the stated
condition, not in general), ``does not hold here`` (measured and found off), ``illustrated``
(a figure regenerated, not a claim tested against a bound).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..data import SequenceClasses
from ..dynamics import Run
from ..plots import new_figure
from ..widgets import figure_to_png

VERDICTS = ("holds", "partly", "does not hold here", "illustrated")


@dataclass(frozen=True)
class Result:
    """One result of the paper: its ``name`` ("Lemma 4"), ``paper`` section, the book ``page``
    (a document name) and ``label`` (a prf label on it, or ``None``), the ``tests`` that pin it
    (``path::function``), the ``verdict`` and a short ``note`` with the condition or tolerance."""

    name: str
    paper: str
    page: str
    label: str | None
    tests: tuple[str, ...]
    verdict: str
    note: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


RESULTS: tuple[Result, ...] = (
    Result("Lemma 2 (attention as T → ∞, Eqn 5)", "§3.2", "book/ch1_setting", "ch1-lemma2",
           ("tests/test_ch1_ch2.py::test_lemma2_convergence_rate_and_bound",),
           "holds", "empirical attention converges to c at the 1/√T rate of Lemma 18"),
    Result("Lemma 1 (closed-form gradients)", "§3.1", "book/ch2_reparameterization",
           "ch2-lemma1", ("tests/test_theory.py::test_lemma1_matches_autograd",),
           "holds", "equals autograd to float64 rounding"),
    Result("Lemmas 3, 5–7 (decoder dynamics, h)", "§4, App. D", "book/ch3_y_dynamics",
           "ch3-lemma-exact",
           ("tests/test_theory.py::test_lemma5_gradient_steps_exact",
            "tests/test_ch3_ch4.py::test_modified_dynamics_decouple_exactly_into_lemma5"),
           "holds", "exact for Lemma 3's modified update; the real update decouples only "
           "without overlap"),
    Result("Theorem 1 (back-propagated gradient, Eqn 9)", "§4", "book/ch3_y_dynamics",
           "ch3-thm-gradient",
           ("tests/test_ch3_ch4.py::test_theorem1_measured_on_overlapping_classes",),
           "partly", "ι within 5 % of 1 and 0 < β < f_nᵀf_n' under the real update (β is "
           "smaller than the overlap Eqn 13 assumes)"),
    Result("Lemma 4 (attention dynamics, Eqn 10)", "§5", "book/ch4_fates_of_tokens",
           "ch4-lem-zdot", ("tests/test_mechanism.py::test_lemma4_matches_measured_change_of_Z",
                            "tests/test_mechanism.py::test_no_common_token_keeps_Z_at_zero"),
           "partly", "within 2 % of the measured ΔZ at η_Y/η_Z = 100; fails at η_Y = η_Z"),
    Result("Theorem 2 (fates of tokens)", "§5", "book/ch4_fates_of_tokens", "ch4-thm-fates",
           ("tests/test_ch3_ch4.py::test_theorem2_fates_in_the_fig4_run",
            "tests/test_mechanism.py::test_theorem4_in_its_setting"),
           "holds", "(b) within 5 % in its own setting; (a) fails for the rarest token at "
           "T = 128 (finite T)"),
    Result("Theorem 3 (relative gain, growth bounds)", "§5", "book/ch4_fates_of_tokens",
           "ch4-thm-growth",
           ("tests/test_ch3_ch4.py::test_theorem3_identity_and_bounds_with_eta_y_much_larger",
            "tests/test_ch3_ch4.py::"
            "test_theorem3_identity_fails_at_equal_rates_for_close_competitors"),
           "partly", "identity within 1 % at η_Y = 100 η_Z; fails for close competitors at "
           "equal rates"),
    Result("Eqns 13, 128–129 (B_n closed form)", "§6, App. F", "book/ch5_phase_transition",
           "ch5-def-B", ("tests/test_theory.py::test_z_common_solves_eqn13",
                         "tests/test_theory.py::test_B_convention_and_printed_erratum"),
           "partly", "exact solution of Eqn 13 once its lower limit is restored (erratum)"),
    Result("Theorem 4 (phase transition)", "§6", "book/ch5_phase_transition", "ch5-thm-phase",
           ("tests/test_mechanism.py::test_theorem4_in_its_setting",
            "tests/test_mechanism.py::test_modified_decoder_gives_eqn13_shape_exactly"),
           "does not hold here", "exact in shape with Lemma 3's decoder; its constant is off "
           "by up to 2× (Eqn 13 drops β's O(1/M) term)"),
    Result("Remark 1 and Corollary 2", "§4, §5", "book/further_results", "fr-remark1",
           ("tests/test_further.py::test_remark1_effective_rate",
            "tests/test_further.py::test_corollary2_all_common_tokens_fall",
            "tests/test_further.py::test_real_update_beta_candidate_holds_for_weak_overlap_only"),
           "partly", "Remark 1's (1 − ρ)η_Y holds early (within 1 %), not after the "
           "softmax saturates"),
    Result("Theorem 5 (finite batches)", "§4", "book/further_results", "fr-thm5",
           ("tests/test_further.py::test_theorem5_noise_shrinks_with_batch",),
           "holds", "deviation from population dynamics shrinks like 1/√(batch)"),
    Result("§7 (residual connection)", "§7", "book/further_results", "fr-residual",
           ("tests/test_further.py::test_residual_changes_the_fates",),
           "illustrated", "the paper leaves the analysis as future work"),
    Result("Figs 3 and 9", "§6", "book/ch5_phase_transition", None,
           ("tests/test_phase.py::test_fig3_reproduces_scale_and_t0",
            "tests/test_phase.py::test_fig9_invariance"),
           "illustrated", "shape and order reproduced; Fig 3's scale needs an inadmissible C₀"),
    Result("Figs 4 and 5", "§8", "book/ch4_fates_of_tokens", None,
           ("tests/test_dynamics.py::test_fig4_larger_eta_y_ends_less_sparse",
            "tests/test_dynamics.py::test_adam_learning_rates_steer_attention"),
           "holds", "larger η_Y ends less sparse; the sparsification itself is mild"),
    Result("Fig 6 (640-run sweep)", "§8", "book/ch5_phase_transition", None,
           ("tests/test_phase.py::test_structural_checks",
            "tests/test_fig6_authors.py::test_compare_reads_pm_as_std_when_it_is"),
           "holds", "trends hold; cell means within the seed spread of the authors' numbers"),
    Result("Figs 7 and 10 (WikiText-2)", "§8", "book/ch6_wikitext", "ch6-thm-scan-snap",
           ("tests/test_wiki_figures.py::test_static_figures",),
           "illustrated", "a real transformer; see the chapter for what carries over"),
)

# Edges of the dependency map: (from, to) between result names' short forms.
DEPENDENCIES: tuple[tuple[str, str], ...] = (
    ("Lemma 2", "Lemma 1"), ("Lemma 1", "Theorem 1"), ("Lemmas 3, 5–7", "Theorem 1"),
    ("Theorem 1", "Lemma 4"), ("Lemma 4", "Theorem 2"), ("Lemma 4", "Theorem 3"),
    ("Theorem 2", "Theorem 4"), ("Theorem 3", "Theorem 4"), ("Lemmas 3, 5–7", "Theorem 4"),
)


def short(name: str) -> str:
    """``"Lemma 4 (attention …)"`` → ``"Lemma 4"``."""
    return name.split(" (")[0]


def find(short_name: str) -> Result:
    """The registered result whose short name is ``short_name``."""
    for result in RESULTS:
        if short(result.name) == short_name:
            return result
    raise ValueError(f"no registered result named {short_name!r}")


def _link(result: Result, text: str) -> str:
    """A MyST link to where the book states ``result``: its prf box, its section target
    (``fr-*`` labels are section targets), or the page."""
    if result.label is None:
        return f"{{doc}}`{text} </{result.page}>`"
    role = "ref" if result.label.startswith("fr-") else "prf:ref"
    return f"{{{role}}}`{text} <{result.label}>`"


def coverage_table() -> str:
    """The intro's coverage table (MyST Markdown): result → section → tests → verdict."""
    lines = ["| result | paper | stated in | chapter | tests | verdict |",
             "|---|---|---|---|---|---|"]
    for r in RESULTS:
        tests = "<br>".join(f"`{t.split('::')[1]}`" for t in r.tests)
        lines.append(f"| {r.name} | {r.paper} | {_link(r, short(r.name))} | "
                     f"{{doc}}`/{r.page}` | {tests} | **{r.verdict}**: {r.note} |")
    return "\n".join(lines)


def dependency_map() -> str:
    """The logical chain as MyST, each result linked to where the book states it."""
    chain = ["Lemma 2", "Lemma 1", "Theorem 1", "Lemma 4", "Theorem 2", "Theorem 4"]
    lines = [" → ".join(_link(find(n), n) for n in chain), ""]
    for a, b in DEPENDENCIES:
        if not any(chain[i] == a and chain[i + 1] == b for i in range(len(chain) - 1)):
            lines.append(f"* also {_link(find(a), a)} → {_link(find(b), b)}")
    return "\n".join(lines)


# --- The opening picture: class n's attention over its common, then distinct tokens --------
class AttentionBars:
    """Bars of class ``n``'s attention ``c_n`` over its common tokens (grey), then its distinct
    tokens (blue), in one figure redrawn in place: :meth:`frames` for a scrubber over a run,
    :meth:`update` for the live control that sets two logits by hand."""

    def __init__(self, classes: SequenceClasses, n: int = 0, ylim: float = 0.45) -> None:
        self.classes, self.n = classes, n
        self.common, self.distinct = classes.common_tokens(n), classes.distinct_tokens(n)
        self.support = torch.cat([self.common, self.distinct])  # [S]
        self.probs = classes.probs()[n]  # P(l|n)                 [M]
        self.figure = new_figure(7, 2.6)
        self.ax = self.figure.subplots()
        colors = ["0.6"] * len(self.common) + ["tab:blue"] * len(self.distinct)
        self.bars = self.ax.bar(np.arange(len(self.support)), self.probs[self.support].numpy(),
                                color=colors)
        self.ax.set_ylim(0, ylim)
        middle = len(self.common) + (len(self.distinct) - 1) / 2
        self.ax.set_xticks([(len(self.common) - 1) / 2, middle],
                           ["common tokens", f"distinct tokens of class {n + 1}"])
        self.ax.set_ylabel(rf"attention $c_{{l|{n + 1}}}$")

    def draw(self, weights: torch.Tensor, title: str) -> None:
        """Set the bars to ``weights [M]`` (the attention over the vocabulary)."""
        for bar, w in zip(self.bars, weights[self.support].tolist()):
            bar.set_height(w)
        self.ax.set_title(title)

    def frames(self, run: Run, index: int = 0) -> Iterator[bytes]:
        """One PNG frame per snapshot of run ``index``: ``c_n`` at that iteration."""
        c = run.attention()[index, :, self.n]  # [S, M]
        for s, step in enumerate(run.steps.tolist()):
            self.draw(c[s], f"iteration {step}")
            yield figure_to_png(self.figure, close=False)

    def update(self, common_logit: float, top_logit: float) -> None:
        """``c_n ∝ P(l|n) e^{z_l}`` with one logit for every common token and one for the most
        frequent distinct token (all other logits 0)."""
        z = torch.zeros(self.classes.M, dtype=torch.float64)  # [M]
        z[self.common] = common_logit
        z[int(self.distinct[self.probs[self.distinct].argmax()])] = top_logit
        weights = self.probs * torch.exp(z)
        weights = weights / weights.sum()
        share = weights[self.common].sum().item()
        self.draw(weights, f"common tokens hold {share:.2f} of the attention")
