"""The paper's Fig 6 sweep (Section 8, App. G; PAPER.md B.4–B.5) as one function returning a
tidy table.

The authors ran a Hydra multirun of 640 jobs: ``num_last ∈ {1, 3, 5, 10}`` queries with two
classes each (``K = 2, 6, 10, 20``; ``M = 33, 79, 125, 240``), ``η_Z ∈ {0.5, 1, 2, 3}``,
``η_Y/η_Z ∈ {1, 2, 5, 10}``, seeds 1–10, 100 SGD steps (momentum 0.9, batch 128, ``T = 128``)
from a **random** init (``zero_init=false``). The measured quantity is the entropy (nats) of the
final ``c_n`` restricted to class ``n``'s distinct tokens and renormalized, averaged over
classes (:func:`scansnap.metrics.distinct_entropy`).

:func:`fig6_sweep` runs every panel as one batched :func:`scansnap.train` program (its
``(η_Y = ratio · η_Z, η_Z)`` pairs × seeds) and returns a :class:`Sweep`:
one row per run (:attr:`Sweep.rows`), the per-cell mean, standard error and per-seed standard
deviation (:meth:`Sweep.cells`), the recall-vs-threshold curves of Figs 11–12
(:attr:`Sweep.recall`) and the structural checks of PAPER.md D.14 (:func:`structural_checks`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ... import metrics, theory
from ..._validate import (as_float_list, as_int_list, check_bool, check_choice, check_float,
                           check_int)
from ...data import SYN_MEDIUM_QUERIES, SequenceClasses, syn_medium
from ...dynamics import train
from ...models import INITS

PANELS = SYN_MEDIUM_QUERIES
ETA_Z = (0.5, 1.0, 2.0, 3.0)
RATIOS = (1.0, 2.0, 5.0, 10.0)
SEEDS = tuple(range(1, 11))
#: The x-ranges of the paper's Figs 11–12 (App. G) per vocabulary size M.
PAPER_THRESHOLDS = {33: (0.028, 0.038), 79: (0.012, 0.016), 125: (0.0075, 0.0105),
                    240: (0.0040, 0.0050)}
NUM_THRESHOLDS = 41


def threshold_grid(M: int, num: int = NUM_THRESHOLDS) -> np.ndarray:
    """The thresholds of Figs 11–12 for vocabulary size ``M``: the paper's x-range where it
    gives one (M = 33, 79, 125, 240), otherwise ``[0.92/M, 1.25/M]`` (the same span around
    the uniform level ``1/M``); ``num`` evenly spaced points."""
    M = check_int("M", M, low=2)
    num = check_int("num", num, low=2)
    lo, hi = PAPER_THRESHOLDS.get(M, (0.92 / M, 1.25 / M))
    return np.linspace(lo, hi, num)


@dataclass
class Sweep:
    """The result of :func:`fig6_sweep`.

    ``entropy[(q, init)]`` is a float64 array ``[n_eta_z, n_ratios, n_seeds]`` of class-averaged
    distinct-token entropies at the final step; ``recall[(q, init)]`` is
    ``[n_eta_z, n_ratios, n_seeds, n_thresholds]`` at ``thresholds[q]``. ``panels`` lists
    ``(num_queries, K, M)``. ``seconds[(q, init)]`` is the wall time of that panel.
    """

    panels: list[tuple[int, int, int]]
    eta_z: list[float]
    ratios: list[float]
    seeds: list[int]
    inits: list[str]
    entropy: dict[tuple[int, str], np.ndarray]
    recall: dict[tuple[int, str], np.ndarray]
    thresholds: dict[int, np.ndarray]
    seconds: dict[tuple[int, str], float]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def num_runs(self) -> int:
        return len(self.panels) * len(self.eta_z) * len(self.ratios) * len(self.seeds) * len(self.inits)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per run: num_queries, K, M, init, eta_z, ratio, eta_y, seed, entropy."""
        out = []
        for q, K, M in self.panels:
            for init in self.inits:
                H = self.entropy[(q, init)]
                for i, ez in enumerate(self.eta_z):
                    for j, r in enumerate(self.ratios):
                        for k, s in enumerate(self.seeds):
                            out.append(dict(num_queries=q, K=K, M=M, init=init, eta_z=ez,
                                            ratio=r, eta_y=r * ez, seed=s,
                                            entropy=float(H[i, j, k])))
        return out

    def stats(self, num_queries: int, init: str = "random") -> dict[str, np.ndarray]:
        """``mean``, ``sem`` (standard error, std/√n), ``std`` (per-seed, ddof = 1) and ``n``
        over seeds, each ``[n_eta_z, n_ratios]``."""
        H = self.entropy[(self._panel(num_queries), check_choice("init", init, self.inits))]
        n = H.shape[-1]
        std = H.std(-1, ddof=1) if n > 1 else np.zeros(H.shape[:-1])
        return dict(mean=H.mean(-1), sem=std / math.sqrt(n), std=std, n=np.full(H.shape[:-1], n))

    def cells(self, num_queries: int, init: str | None = None) -> list[dict[str, Any]]:
        """The per-cell summaries of one panel (all inits unless ``init`` is given)."""
        out = []
        for ini in (self.inits if init is None else [check_choice("init", init, self.inits)]):
            st = self.stats(num_queries, ini)
            for i, ez in enumerate(self.eta_z):
                for j, r in enumerate(self.ratios):
                    out.append(dict(eta_z=ez, ratio=r, init=ini, mean=float(st["mean"][i, j]),
                                    sem=float(st["sem"][i, j]), std=float(st["std"][i, j]),
                                    n=int(st["n"][i, j])))
        return out

    def to_json(self) -> dict[str, Any]:
        """``{"panels": [{"num_queries", "K", "M", "cells": [...]}, ...]}`` plus the settings."""
        return {
            "panels": [dict(num_queries=q, K=K, M=M, cells=self.cells(q)) for q, K, M in self.panels],
            "settings": {**self.settings, "eta_z": self.eta_z, "ratios": self.ratios,
                         "seeds": self.seeds, "inits": self.inits},
            "seconds": {f"{q}/{init}": s for (q, init), s in self.seconds.items()},
        }

    def _panel(self, num_queries: int) -> int:
        q = check_int("num_queries", num_queries, low=1)
        known = [p[0] for p in self.panels]
        if q not in known:
            raise ValueError(f"num_queries must be one of the swept panels {known}, got {q}")
        return q


def fig6_sweep(
    panels: Sequence[int] = PANELS,
    eta_z: Sequence[float] = ETA_Z,
    ratios: Sequence[float] = RATIOS,
    seeds: Sequence[int] = SEEDS,
    inits: Sequence[str] = ("random",),
    *,
    steps: int = 100,
    batch_size: int = 128,
    seq_len: int = 128,
    momentum: float = 0.9,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
) -> Sweep:
    """Run the Fig 6 sweep (PAPER.md B.4): every ``(num_queries, init, η_Z, η_Y/η_Z, seed)``.

    Each panel is :func:`scansnap.data.syn_medium` ``(q)`` (the authors'
    Syn-Medium); each ``(panel, init)`` is one batched :func:`scansnap.train` call over its
    16 ``(η_Y, η_Z)`` pairs and the seeds (the batches are drawn once per seed). Defaults are the paper's full 640-run sweep with the authors' random init;
    pass ``inits=("random", "zero")`` to add the theory's zero init. Runs that diverge are an
    error (none do at these settings). Also records the recall-vs-threshold curves of Figs 11–12
    (:func:`scansnap.metrics.recall_vs_threshold`) at :func:`threshold_grid` of each panel.
    """
    panel_list = as_int_list("panels", panels, low=1)
    eta_z_list = as_float_list("eta_z", eta_z, low=0.0)
    ratio_list = as_float_list("ratios", ratios, low=0.0)
    seed_list = as_int_list("seeds", seeds, low=0)
    if isinstance(inits, str):
        inits = (inits,)
    init_list = [check_choice("inits", i, INITS) for i in inits]
    progress = check_bool("progress", progress)
    for name, values in (("panels", panel_list), ("inits", init_list), ("seeds", seed_list)):
        if len(set(values)) != len(values):
            raise ValueError(f"{name} must be distinct, got {values}")

    entropy: dict[tuple[int, str], np.ndarray] = {}
    recall: dict[tuple[int, str], np.ndarray] = {}
    seconds: dict[tuple[int, str], float] = {}
    thresholds: dict[int, np.ndarray] = {}
    panel_info = []
    jobs = [(q, init) for q in panel_list for init in init_list]
    for q, init in tqdm(jobs, disable=not progress, desc="Fig 6 sweep", leave=False):
        classes = syn_medium(q)
        if init == init_list[0]:
            panel_info.append((q, classes.K, classes.M))
            thresholds[q] = threshold_grid(classes.M)
        start = time.perf_counter()
        pairs = [(r * ez, ez) for ez in eta_z_list for r in ratio_list]
        run = train(classes, pairs=pairs, seeds=seed_list, steps=steps, batch_size=batch_size,
                    seq_len=seq_len, momentum=momentum, init=init, record_every=None,
                    dtype=dtype, progress=False)
        final = run.Z[:, -1].double()
        shape = (len(eta_z_list), len(ratio_list), len(seed_list))
        entropy[(q, init)] = run.by_pair(metrics.distinct_entropy(classes, final).mean(-1)) \
            .reshape(shape).numpy()
        recall[(q, init)] = run.by_pair(
            metrics.recall_vs_threshold(classes, final, thresholds[q])).reshape(*shape, -1).numpy()
        seconds[(q, init)] = time.perf_counter() - start
    settings = dict(steps=steps, batch_size=batch_size, seq_len=seq_len, momentum=momentum,
                    next_per_query=2, optimizer="sgd", dtype=str(dtype).replace("torch.", ""))
    return Sweep(panels=panel_info, eta_z=eta_z_list, ratios=ratio_list, seeds=seed_list,
                 inits=init_list, entropy=entropy, recall=recall, thresholds=thresholds,
                 seconds=seconds, settings=settings)


def structural_checks(sweep: Sweep, init: str = "random") -> list[dict[str, Any]]:
    """The structural predictions of PAPER.md D.14 on a sweep's per-cell means.

    1. At ratio 1, the entropy decreases in ``η_Z`` (every panel).
    2. For ``num_queries ≥ 3`` and ``η_Z ≥ 1``: ``H(ratio 10) > H(ratio 2)``.
    3. For ``num_queries = 1``: ``H(ratio 10) > H(ratio 1)`` (every ``η_Z``).

    Returns one dict per tested instance: ``check`` (1–3), ``num_queries``, ``eta_z`` (None
    for check 1), ``passed`` and the compared ``values``. Instances whose ratios/``η_Z`` were
    not swept are skipped.
    """
    if not isinstance(sweep, Sweep):
        raise TypeError(f"sweep must be a Sweep, got {type(sweep).__name__}")
    init = check_choice("init", init, sweep.inits)
    out: list[dict[str, Any]] = []

    def col(values: list[float], v: float) -> int | None:
        hits = [i for i, x in enumerate(values) if math.isclose(x, v)]
        return hits[0] if hits else None

    for q, _, _ in sweep.panels:
        mean = sweep.stats(q, init)["mean"]
        r1, r2, r10 = (col(sweep.ratios, r) for r in (1.0, 2.0, 10.0))
        order = np.argsort(sweep.eta_z)
        if r1 is not None and len(order) > 1:
            series = mean[order, r1]
            out.append(dict(check=1, num_queries=q, eta_z=None,
                            passed=bool(np.all(np.diff(series) < 0)), values=series.tolist()))
        for i, ez in enumerate(sweep.eta_z):
            if q >= 3 and ez >= 1 and r2 is not None and r10 is not None:
                out.append(dict(check=2, num_queries=q, eta_z=ez,
                                passed=bool(mean[i, r10] > mean[i, r2]),
                                values=[float(mean[i, r2]), float(mean[i, r10])]))
            if q == 1 and r1 is not None and r10 is not None:
                out.append(dict(check=3, num_queries=q, eta_z=ez,
                                passed=bool(mean[i, r10] > mean[i, r1]),
                                values=[float(mean[i, r1]), float(mean[i, r10])]))
    return out


def key_label(value: float) -> str:
    """A number as part of a glue key: ``0.5 → "0p5"``, ``10.0 → "10"``, ``-1 → "m1"``."""
    return f"{value:g}".replace(".", "p").replace("-", "m")


def fig6_summary(sweep: Sweep, init: str = "random",
                 other_init: str | None = "zero") -> dict[str, Any]:
    """What the chapter quotes of the Fig 6 sweep (Section 8's insights (b)–(c), PAPER.md D.14),
    with ``{q}``, ``{ez}``, ``{r}`` a panel's ``num_queries``, ``η_Z`` and ``η_Y/η_Z`` as in
    :func:`key_label`:

    * ``mean_q{q}_ez{ez}_r{r}``: the seed mean of every cell from ``init``;
    * ``min_at_2`` of ``min_curves``: of the curves (one per ``η_Z ≥ 1``, panels with
      ``num_queries ≥ 3``), how many have their smallest entropy at ratio 2 (if swept);
    * ``checks_{i}_passed`` of ``checks_{i}_total``: :func:`structural_checks` per init ``i``;
    * ``init_diff_q{q}`` (per panel) and ``init_diff_multi`` (over ``num_queries > 1``): the
      largest ``|mean(init) − mean(other_init)|`` over cells, when ``other_init`` is given;
    * ``H_frequencies``: the entropy at ``Z = 0`` (the frequencies alone) of the first panel,
      and ``H_uniform = ln(distinct tokens per class)``;
    * ``t0_q{q}``: Theorem 4's ``t_0 = 2K ln M/η_Y`` of each panel at ``η_Y = 1``, and
      ``t0_q{q}_momentum`` at the momentum-amplified rate ``η_Y = 1/(1 − momentum)``."""
    if not isinstance(sweep, Sweep):
        raise TypeError(f"sweep must be a Sweep, got {type(sweep).__name__}")
    init = check_choice("init", init, sweep.inits)
    if other_init is not None:
        other_init = check_choice("other_init", other_init, [i for i in sweep.inits if i != init])
    out: dict[str, Any] = {}
    for q, K, M in sweep.panels:
        mean = sweep.stats(q, init)["mean"]
        for i, ez in enumerate(sweep.eta_z):
            for j, r in enumerate(sweep.ratios):
                out[f"mean_q{q}_ez{key_label(ez)}_r{key_label(r)}"] = float(mean[i, j])
    curves = [sweep.stats(q, init)["mean"][i] for q, _, _ in sweep.panels if q >= 3
              for i, ez in enumerate(sweep.eta_z) if ez >= 1]
    if curves and any(math.isclose(r, 2.0) for r in sweep.ratios):
        two = swept_index("ratio", sweep.ratios, 2.0)
        out |= dict(min_at_2=sum(int(np.argmin(c) == two) for c in curves), min_curves=len(curves))
    for i in sweep.inits:
        checks = structural_checks(sweep, i)
        out |= {f"checks_{i}_passed": sum(c["passed"] for c in checks),
                f"checks_{i}_total": len(checks)}
    if other_init is not None:
        diff = {q: float(np.abs(sweep.stats(q, init)["mean"] - sweep.stats(q, other_init)["mean"])
                         .max()) for q, _, _ in sweep.panels}
        out |= {f"init_diff_q{q}": d for q, d in diff.items()}
        multi = [d for q, d in diff.items() if q > 1]
        if multi:
            out["init_diff_multi"] = max(multi)
    first = syn_medium(sweep.panels[0][0])
    zero = torch.zeros(first.M, first.M, dtype=torch.float64)
    out |= dict(H_frequencies=float(metrics.distinct_entropy(first, zero)[0]),
                H_uniform=math.log(first.distinct_per_next))
    fast = 1 / (1 - sweep.settings.get("momentum", 0.0))
    for q, K, M in sweep.panels:
        out[f"t0_q{q}"] = float(theory.t0(M, K, 1.0))
        out[f"t0_q{q}_momentum"] = float(theory.t0(M, K, fast))
    return out


def recall_summary(sweep: Sweep, num_queries: int = 1, eta_z: float = 1.0, ratio: float = 1.0,
                   init: str = "random") -> dict[str, Any]:
    """What the chapter quotes of the recall-vs-threshold curves of Figs 11–12 (App. G): recall
    (seed mean) *falls* by ``recall(lowest threshold) − recall(highest)``, and *relatively* by
    that fall over the starting recall. In panel ``num_queries``: ``start_ratio_lo``/``_hi``,
    ``fall_ratio_lo``/``_hi`` and ``relative_ratio_lo``/``_hi`` at ``η_Z = eta_z`` for the
    smallest/largest ratio (Fig 11), ``fall_eta_z_lo``/``_hi`` at ``η_Y/η_Z = ratio`` for the
    smallest/largest ``η_Z`` (Fig 12). Over all ``panels``: ``slower_fig11``, in how many the
    smallest ratio (sparser) falls less than the largest, ``slower_fig12``, in how many the
    largest ``η_Z`` (sparser) falls less than the smallest, and ``relative_slower_fig11``/
    ``_fig12`` the same for the relative fall."""
    if not isinstance(sweep, Sweep):
        raise TypeError(f"sweep must be a Sweep, got {type(sweep).__name__}")
    q = sweep._panel(num_queries)
    init = check_choice("init", init, sweep.inits)
    i, j = swept_index("eta_z", sweep.eta_z, eta_z), swept_index("ratio", sweep.ratios, ratio)
    r_lo, r_hi = int(np.argmin(sweep.ratios)), int(np.argmax(sweep.ratios))
    e_lo, e_hi = int(np.argmin(sweep.eta_z)), int(np.argmax(sweep.eta_z))
    recall = {p: sweep.recall[(p, init)].mean(axis=2) for p, _, _ in sweep.panels}  # [E, R, L]
    fall = {p: rec[..., 0] - rec[..., -1] for p, rec in recall.items()}
    relative = {p: fall[p] / rec[..., 0] for p, rec in recall.items()}
    out = dict(start_ratio_lo=recall[q][i, r_lo, 0], start_ratio_hi=recall[q][i, r_hi, 0],
               fall_ratio_lo=fall[q][i, r_lo], fall_ratio_hi=fall[q][i, r_hi],
               relative_ratio_lo=relative[q][i, r_lo], relative_ratio_hi=relative[q][i, r_hi],
               fall_eta_z_lo=fall[q][e_lo, j], fall_eta_z_hi=fall[q][e_hi, j])
    out = {k: float(v) for k, v in out.items()}
    for name, table in (("", fall), ("relative_", relative)):
        out[f"{name}slower_fig11"] = sum(bool(f[i, r_lo] < f[i, r_hi]) for f in table.values())
        out[f"{name}slower_fig12"] = sum(bool(f[e_hi, j] < f[e_lo, j]) for f in table.values())
    out["panels"] = len(sweep.panels)
    return out


def swept_index(name: str, values: list[float], value: float) -> int:
    """The position of ``value`` among the swept ``values`` (``math.isclose``); ValueError
    naming ``name`` if it was not swept."""
    value = check_float(name, value)
    for i, v in enumerate(values):
        if math.isclose(v, value):
            return i
    raise ValueError(f"{name} must be one of the swept values {values}, got {value}")
