"""The book's Fig 6 against the authors' released numbers, cell by cell.

``reference/fig6_authors.json`` transcribes ``scan_snap/figure_6_data.pkl`` of the public
repository ``facebookresearch/luckmatters`` (the authors' aggregate of their Fig 6 sweep: per cell
the mean final distinct-token entropy over 10 seeds and a ``±`` whose meaning is not documented;
the caption says "standard deviation of the mean"). :func:`compare` puts the book's sweep
(:func:`~scansnap.chapters.ch5_phase_transition.sweep.fig6_sweep`, random init like the authors) beside it and tests what the
``±`` is: the book's per-seed standard deviation or its standard error of the mean.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import numpy as np

from ..._validate import check_choice
from .sweep import Sweep

SOURCE = ("scan_snap/figure_6_data.pkl in facebookresearch/luckmatters (the authors' released "
          "aggregate of their Fig. 6 sweep)")


def load() -> list[dict[str, float]]:
    """The 64 cells: ``num_queries, eta_z, ratio, mean, pm`` (entropies in nats)."""
    text = resources.files("scansnap").joinpath("reference/fig6_authors.json").read_text()
    return json.loads(text)["cells"]


def compare(sweep: Sweep, init: str = "random") -> dict[str, Any]:
    """Per-cell comparison with the authors (only the cells both have).

    Each record holds the authors' ``mean`` and ``pm``, the book's ``book_mean``, ``book_std``
    (per seed, ddof 1) and ``book_sem``; ``deviation`` = (book − authors) / book_std (in units of
    the seed spread); ``z_if_std`` and ``z_if_sem``: the difference of the two means over its
    standard error if the authors' ``pm`` is a per-seed std (``√((std_b² + pm²)/n)``) or an SEM
    (``√(sem_b² + pm²)``). Summary: ``pm_over_std`` and ``pm_over_sem`` (medians over cells),
    ``rms_z_if_std`` and ``rms_z_if_sem`` (close to 1 for the right reading),
    ``max_abs_deviation`` and ``median_abs_deviation``; the number of ``cells`` and the fractions
    ``within_one_spread`` / ``within_two_spread`` with ``|deviation| ≤ 1`` / ``≤ 2``; the cell of
    largest ``|deviation|`` (``worst_num_queries``, ``worst_eta_z``, ``worst_ratio``,
    ``worst_book_mean``, ``worst_authors_mean``); ``std_over_sem``, the median book std/SEM
    (``√n``)."""
    if not isinstance(sweep, Sweep):
        raise TypeError(f"sweep must be a Sweep, got {type(sweep).__name__}")
    init = check_choice("init", init, sweep.inits)
    records = []
    panels = {p[0] for p in sweep.panels}
    for cell in load():
        q = int(cell["num_queries"])
        if q not in panels or cell["eta_z"] not in sweep.eta_z or cell["ratio"] not in sweep.ratios:
            continue
        st = sweep.stats(q, init)
        i, j = sweep.eta_z.index(cell["eta_z"]), sweep.ratios.index(cell["ratio"])
        n = int(st["n"][i, j])
        mean, std, sem = (float(st[k][i, j]) for k in ("mean", "std", "sem"))
        diff = mean - cell["mean"]
        records.append(dict(num_queries=q, eta_z=cell["eta_z"], ratio=cell["ratio"],
                            mean=cell["mean"], pm=cell["pm"], book_mean=mean, book_std=std,
                            book_sem=sem, n=n, deviation=diff / std,
                            z_if_std=diff / math.sqrt((std**2 + cell["pm"] ** 2) / n),
                            z_if_sem=diff / math.sqrt(sem**2 + cell["pm"] ** 2)))
    if not records:
        raise ValueError("the sweep shares no cell with the authors' Fig 6")

    def column(key: str) -> np.ndarray:
        return np.array([r[key] for r in records])

    pm = column("pm")
    deviation = np.abs(column("deviation"))
    worst = records[int(np.argmax(deviation))]
    return dict(records=records, source=SOURCE, init=init, cells=len(records),
                within_one_spread=float(np.mean(deviation <= 1)),
                within_two_spread=float(np.mean(deviation <= 2)),
                worst_num_queries=worst["num_queries"], worst_eta_z=worst["eta_z"],
                worst_ratio=worst["ratio"], worst_book_mean=worst["book_mean"],
                worst_authors_mean=worst["mean"],
                std_over_sem=float(np.median(column("book_std") / column("book_sem"))),
                pm_over_std=float(np.median(pm / column("book_std"))),
                pm_over_sem=float(np.median(pm / column("book_sem"))),
                rms_z_if_std=float(np.sqrt(np.mean(column("z_if_std") ** 2))),
                rms_z_if_sem=float(np.sqrt(np.mean(column("z_if_sem") ** 2))),
                max_abs_deviation=float(deviation.max()),
                median_abs_deviation=float(np.median(deviation)))
