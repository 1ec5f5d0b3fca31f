"""Chapter 5, the phase transition (Section 6, App. F–G; ``book/ch5_phase_transition.md``).

Three parts: :mod:`.sweep` (the Fig 6 sweep of 640 runs as one tidy table), :mod:`.authors`
(the authors' released Fig 6 numbers and the comparison with ours) and :mod:`.phase`
(Theorem 4's figures, Figs 3, 6, 9, 11, 12, scan then snap in real runs, the explorers).
Each measurement's ``*_summary`` (the numbers the page quotes) sits beside it.
Everything the page calls is importable from here.
"""

from . import authors
from .phase import (FIG3_C0, FIG9_C0, FIG9_K, FIG9_PANELS, BExplorer, closed_form_summary,
                    draw_fig6_panel, fig3, fig3_summary, fig6, fig6_explorer_frames,
                    fig6_vs_authors_figure, fig9, fig9_summary, fig11, fig12, gamma_peak_summary,
                    integrate_common_logit, printed_constant_check, scan_snap_figure,
                    scan_snap_runs, scan_snap_summary, theorem4_dynamics_figure, theorem4_figure,
                    theorem4_summary, theorem4_table, training_frames)
from .sweep import (ETA_Z, NUM_THRESHOLDS, PANELS, PAPER_THRESHOLDS, RATIOS, SEEDS, Sweep,
                    fig6_summary, fig6_sweep, key_label, recall_summary, structural_checks,
                    swept_index, threshold_grid)

__all__ = ["authors", "FIG3_C0", "FIG9_C0", "FIG9_K", "FIG9_PANELS", "BExplorer",
           "closed_form_summary", "draw_fig6_panel", "fig3", "fig3_summary", "fig6",
           "fig6_explorer_frames", "fig6_vs_authors_figure", "fig9", "fig9_summary", "fig11",
           "fig12", "gamma_peak_summary", "integrate_common_logit", "printed_constant_check",
           "scan_snap_figure", "scan_snap_runs", "scan_snap_summary", "theorem4_dynamics_figure",
           "theorem4_figure", "theorem4_summary", "theorem4_table", "training_frames", "ETA_Z",
           "NUM_THRESHOLDS", "PANELS", "PAPER_THRESHOLDS", "RATIOS", "SEEDS", "Sweep",
           "fig6_summary", "fig6_sweep", "key_label", "recall_summary", "structural_checks",
           "swept_index", "threshold_grid"]
