"""Training dynamics of the 1-layer transformer, batched over runs.

:func:`train` is finite-``T`` SGD/Adam on sampled sequences (Section 8's experiments);
:func:`population` is the ``T → ∞`` expected dynamics of Lemma 2 (``c_n``, ``f_n`` in place of
sampled contexts, classes weighted equally). Both run every combination of learning rates and
seeds as one vectorized tensor program over a leading run axis — ``itertools.product(eta_y,
eta_z, seeds)``, or explicit ``(η_Y, η_Z)`` pairs × seeds — seeds fastest, and return a
:class:`Run`.

The (Y, Z) model is trained in class-grouped blocks with Lemma 1's closed-form gradients
(:mod:`scansnap.grouped`): only the rows of ``Y`` of contextual tokens and the entries of ``Z``
at (query, token in its classes' support) ever receive gradient. The full model, the residual
variant and weight decay (which moves every entry) go through autograd on
:func:`scansnap.models.yz_logits`; both paths see the same batches and agree to rounding.

Randomness: each seed owns two ``torch.Generator`` streams, one for the data and one for the
random init, so a run's result does not depend on what else is batched with it, and runs that
share a seed see the same batches (as the authors' ``set_all_seeds`` gives).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import trange

from . import theory
from ._validate import (
    as_float_list, as_int_list, check_bool, check_choice, check_device, check_dtype, check_float,
    SEED_MAX, check_int, check_memory, check_seed,
)
from .data import SequenceClasses
from .grouped import (GroupedBatch, Layout, Workspace, blocks_to_full, expected_step,
                      full_to_blocks, grouped_step)
from .models import INITS, full_to_yz, init_full, init_yz, yz_logits

OPTIMIZERS = ("sgd", "adam")
MODELS = ("yz", "full")
_PROGRESS_THRESHOLD = 20_000  # run-steps above which a progress bar is shown by default

Params = list[torch.Tensor]
Objective = Callable[[int, Params], tuple[torch.Tensor, Params]]


@dataclass
class Run:
    """The result of :func:`train` or :func:`population`.

    ``loss [R, steps]``: ``loss[:, t]`` is the mean loss of step ``t``'s batch before step
    ``t``'s update. ``Y, Z [R, S, M, M]`` are snapshots after ``steps[s]`` updates. ``configs``
    lists each run's ``(eta_y, eta_z, seed)``; ``diverged [R]`` flags runs whose loss became
    non-finite (they are stopped there; their later snapshots are not meaningful).
    Runs can be picked (:meth:`select`) and joined (:meth:`concat`); :meth:`grid` and
    :meth:`by_pair` reshape the run axis, read from ``configs`` alone.
    """

    classes: SequenceClasses
    configs: list[tuple[float, float, int]]
    steps: torch.Tensor
    Y: torch.Tensor
    Z: torch.Tensor
    loss: torch.Tensor
    diverged: torch.Tensor
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def eta_y(self) -> torch.Tensor:
        return torch.tensor([c[0] for c in self.configs], dtype=torch.float64)

    @property
    def eta_z(self) -> torch.Tensor:
        return torch.tensor([c[1] for c in self.configs], dtype=torch.float64)

    @property
    def seeds(self) -> torch.Tensor:
        return torch.tensor([c[2] for c in self.configs])

    @property
    def pairs(self) -> list[tuple[float, float]]:
        """The distinct ``(η_Y, η_Z)`` pairs, in order of first appearance."""
        return _unique((c[0], c[1]) for c in self.configs)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """``(len(eta_y), len(eta_z), len(seeds))`` when the runs are that product, in order."""
        axes = [_unique(c[i] for c in self.configs) for i in range(3)]
        if self.configs == list(itertools.product(*axes)):
            return tuple(len(a) for a in axes)  # type: ignore[return-value]
        raise ValueError("the runs are not an eta_y × eta_z × seeds product (e.g. explicit "
                         "pairs): reshape with Run.by_pair instead of Run.grid")

    def grid(self, values: torch.Tensor) -> torch.Tensor:
        """Reshape a per-run tensor ``[R, ...]`` to ``[n_eta_y, n_eta_z, n_seeds, ...]``."""
        return values.reshape(*self.grid_shape, *values.shape[1:])

    def by_pair(self, values: torch.Tensor) -> torch.Tensor:
        """Reshape a per-run tensor ``[R, ...]`` to ``[n_pairs, n_seeds, ...]`` (the runs must be
        :attr:`pairs` × seeds, seeds fastest, as :func:`train` orders them)."""
        seeds = _unique(c[2] for c in self.configs)
        if self.configs != [(*p, s) for p in self.pairs for s in seeds]:
            raise ValueError("the runs are not (eta_y, eta_z) pairs × seeds with seeds fastest")
        return values.reshape(len(self.pairs), len(seeds), *values.shape[1:])

    def attention(self) -> torch.Tensor:
        """``c_{l|ψ(n),n}`` (Lemma 2) at every snapshot: ``[R, S, K, M]``."""
        return theory.attention_limit(self.classes.probs(), self.Z, self.classes.query_tokens)

    def index(self, eta_y: float | None = None, eta_z: float | None = None,
              seed: int | None = None) -> list[int]:
        """Indices of the runs matching the given learning rates / seed (``None`` = any)."""
        wanted = (eta_y, eta_z, seed)
        return [i for i, config in enumerate(self.configs)
                if all(w is None or math.isclose(w, c) for w, c in zip(wanted, config))]

    def select(self, indices: Sequence[int]) -> Run:
        """The runs at ``indices`` (e.g. from :meth:`index`), in that order."""
        idx = as_int_list("indices", indices, low=0, high=len(self.configs) - 1)
        pick = torch.tensor(idx, dtype=torch.long)
        settings = {k: v for k, v in self.settings.items() if k != "grid"}
        return replace(self, configs=[self.configs[i] for i in idx], Y=self.Y[pick],
                       Z=self.Z[pick], loss=self.loss[pick], diverged=self.diverged[pick],
                       settings=settings)

    @staticmethod
    def concat(runs: Sequence[Run]) -> Run:
        """One :class:`Run` holding the runs of ``runs`` in order (same classes and snapshot
        steps; settings that differ between them are dropped)."""
        runs = list(runs)
        if not runs or not all(isinstance(r, Run) for r in runs):
            raise TypeError("runs must be a non-empty sequence of Run")
        first = runs[0]
        if any(r.classes is not first.classes or not torch.equal(r.steps, first.steps)
               for r in runs):
            raise ValueError("runs must share their classes and snapshot steps to be concatenated")
        settings = {k: v for k, v in first.settings.items()
                    if k != "grid" and all(r.settings.get(k) == v for r in runs)}
        return Run(classes=first.classes, configs=[c for r in runs for c in r.configs],
                   steps=first.steps, Y=torch.cat([r.Y for r in runs]),
                   Z=torch.cat([r.Z for r in runs]), loss=torch.cat([r.loss for r in runs]),
                   diverged=torch.cat([r.diverged for r in runs]), settings=settings)

    def __repr__(self) -> str:
        R, S, M, _ = self.Z.shape
        return (f"Run(R={R} runs, S={S} snapshots of steps {self.steps[0].item()}.."
                f"{self.steps[-1].item()}, M={M}, diverged={int(self.diverged.sum())})")


@dataclass(frozen=True)
class OptimizerConfig:
    """PyTorch's SGD (momentum buffer ``b ← μ b + g``, no dampening) or Adam, with L2
    ``weight_decay`` added to the gradient as both do."""

    name: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        check_choice("optimizer", self.name, OPTIMIZERS)
        check_float("momentum", self.momentum, low=0.0, high=1.0)
        check_float("weight_decay", self.weight_decay, low=0.0)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise TypeError("betas must be a pair (beta1, beta2) of numbers in [0, 1)")
        for i, b in enumerate(self.betas):
            check_float(f"betas[{i}]", b, low=0.0, high=1.0 - 1e-12)
        check_float("eps", self.eps, low=0.0, low_open=True)


def train(
    classes: SequenceClasses,
    eta_y: float | Sequence[float] | None = None,
    eta_z: float | Sequence[float] | None = None,
    *,
    pairs: Sequence[tuple[float, float]] | None = None,
    steps: int = 100,
    batch_size: int = 128,
    seq_len: int = 128,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    init: str = "zero",
    seeds: int | Sequence[int] = (1,),
    record_every: int | None = 2,
    model: str = "yz",
    d: int = 128,
    normalize: bool = True,
    residual: bool = False,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    on_divergence: str = "raise",
    observe: Callable[[int, Params, tuple[torch.Tensor, ...]], None] | None = None,
) -> Run:
    """Finite-``T`` training on sampled sequences (Section 8; the authors' ``decoder_only.py``).

    ``eta_y`` is the learning rate of the decoder ``Y`` and ``eta_z`` of the attention ``Z``
    (Lemma 1), default 1; each may be a scalar or a sequence, and so may ``seeds``: every
    combination runs batched, in ``itertools.product(eta_y, eta_z, seeds)`` order. Or give
    explicit ``pairs=[(η_Y, η_Z), ...]`` (then not ``eta_y``/``eta_z``): runs are
    ``pairs × seeds``, seeds fastest (a Fig 6 panel's 16 pairs are one program).
    ``optimizer="sgd"`` follows PyTorch's SGD, ``"adam"`` PyTorch's Adam (:class:`OptimizerConfig`).
    ``init`` is ``"zero"`` (the theory) or ``"random"`` (``U(±1/√M)``, the authors' Fig 6).
    ``model="full"`` trains ``U, W_Q, W_K, W_V`` of width ``d`` (``U, W_V`` at ``eta_y``;
    ``W_Q, W_K`` at ``eta_z``; needs ``init="random"``) and records the equivalent ``(Y, Z)``.
    Batches: exact token-count vectors, drawn per seed by :func:`batches`.
    ``record_every`` sets the snapshot cadence (``None``: only the first and final states).
    A run whose loss becomes non-finite is stopped and flagged; ``on_divergence="raise"`` then
    raises ``FloatingPointError``, ``"flag"`` only sets ``Run.diverged``.
    ``observe(step, params, batch)``, if given, is called before every step's update with the
    current parameters (``[R, ...]`` each: ``Y, Z`` or ``U, W_Q, W_K, W_V``; read them, do not
    modify them) and the step's batch ``(counts, queries, targets)``, one per seed
    (``[len(seeds), ...]``, in ``seeds`` order): to measure something along training.
    ``device``: where the program runs (``"cuda"`` on a GPU); the returned tensors are on the CPU.
    """
    _check_classes(classes)
    steps = check_int("steps", steps, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    seq_len = check_int("seq_len", seq_len, low=2)
    opt = OptimizerConfig(optimizer, momentum, weight_decay, betas, eps)
    init = check_choice("init", init, INITS)
    model = check_choice("model", model, MODELS)
    d = check_int("d", d, low=1)
    normalize, residual = check_bool("normalize", normalize), check_bool("residual", residual)
    dtype, device = check_dtype(dtype), check_device(device)
    M = classes.M
    width = ("the classes' vocabulary M", M * M) if model == "yz" else ("d", M * d + 3 * d * d)
    # both paths form each run's logits [R, B, M] every step (the batch itself is per seed)
    configs, grid = _configs(eta_y, eta_z, pairs, seeds, lambda R, D: check_memory(
        _train_bytes(R, steps, record_every, M, width, batch_size * R, dtype), device,
        context=f" for {R} run(s) (eta_y × eta_z × seeds)"))
    if observe is not None and not callable(observe):
        raise TypeError(f"observe must be callable or None, got {type(observe).__name__}")
    if model == "full" and init == "zero":
        raise ValueError("init must be 'random' for model='full': at zero the full model's "
                         "gradients vanish (a saddle point)")
    seed_list = _unique(c[2] for c in configs)
    stream = _batch_stream(classes, seed_list, batch_size, seq_len, dtype, device)
    full, lrs = _init_params(model, init, classes.M, d, configs, seed_list, dtype)
    M, D = classes.M, len(seed_list)

    def dense_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        n, support_counts, _ = batch
        counts = support_counts.new_zeros(*n.shape, M)
        counts.scatter_(-1, classes.support_index.to(device)[n], support_counts)
        return counts, classes.query_tokens.to(device)[n], classes.next_tokens.to(device)[n]

    grouped = model == "yz" and not residual and opt.weight_decay == 0
    if grouped:
        layout = Layout.of(classes)
        params = full_to_blocks(layout, *(p.to(device) for p in full))  # rates stay (eta_y, eta_z)
        base_Y, base_Z = full
        workspace = Workspace()

        def write_yz(p: Params, Y: torch.Tensor, Z: torch.Tensor) -> None:
            Y.copy_(base_Y)
            Z.copy_(base_Z)
            blocks_to_full(layout, [b.cpu() for b in p], Y, Z)

        def objective(step: int, p: Params) -> tuple[torch.Tensor, Params]:
            batch = next(stream)
            if observe is not None:
                Y, Z = torch.empty_like(base_Y), torch.empty_like(base_Z)
                write_yz(p, Y, Z)
                observe(step, [Y, Z], tuple(t.cpu() for t in dense_batch(batch)))
            n, support_counts, targets = batch
            step_batch = GroupedBatch.build(layout, n, support_counts,
                                            classes.next_tokens.to(device)[n])
            return grouped_step(layout, *p, step_batch, normalize=normalize, workspace=workspace)
    else:
        params = [p.to(device) for p in full]

        def write_yz(p: Params, Y: torch.Tensor, Z: torch.Tensor) -> None:
            with torch.no_grad():
                Y_now, Z_now = (p[0], p[1]) if model == "yz" else full_to_yz(*p)
            Y.copy_(Y_now)
            Z.copy_(Z_now)

        def objective(step: int, p: Params) -> tuple[torch.Tensor, Params]:
            counts, queries, targets = dense_batch(next(stream))
            if observe is not None:
                observe(step, [t.cpu() for t in p], (counts.cpu(), queries.cpu(), targets.cpu()))
            leaves = [t.detach().requires_grad_(True) for t in p]
            Y, Z = (leaves[0], leaves[1]) if model == "yz" else full_to_yz(*leaves)
            # Seeds run fastest, so [R, ...] views as [lr pairs, seeds, ...] and each seed's
            # batch broadcasts over its learning rates without being copied.
            logits = yz_logits(Y.view(-1, D, M, M), Z.view(-1, D, M, M), counts, queries,
                               normalize=normalize, residual=residual)
            loss = _cross_entropy(logits, targets.expand(*logits.shape[:-1])).reshape(-1)
            return loss.detach(), list(torch.autograd.grad(loss.sum(), leaves))

    settings = dict(kind="train", optimizer=opt.name, momentum=opt.momentum, init=init,
                    model=model, d=d, batch_size=batch_size, seq_len=seq_len, normalize=normalize,
                    residual=residual, weight_decay=opt.weight_decay, betas=tuple(opt.betas),
                    eps=opt.eps)
    if grid is not None:
        settings["grid"] = grid
    return _optimize(classes, configs, params, [lr.to(device) for lr in lrs], objective, write_yz,
                     steps=steps, record_every=record_every, opt=opt, progress=progress,
                     on_divergence=on_divergence, settings=settings)


def population(
    classes: SequenceClasses,
    eta_y: float | Sequence[float] | None = None,
    eta_z: float | Sequence[float] | None = None,
    *,
    pairs: Sequence[tuple[float, float]] | None = None,
    steps: int = 100,
    init: str = "zero",
    seeds: int | Sequence[int] = (1,),
    record_every: int | None = 1,
    normalize: bool = True,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    on_divergence: str = "raise",
) -> Run:
    """The ``T → ∞`` expected dynamics (Lemma 2, Sections 4–5): plain gradient steps on

    ``J = −(1/K) Σ_n log softmax(Yᵀ f_n)_n`` with ``f_n = c_n / ||c_n||`` and ``c_n`` of Eqn 5,
    i.e. the expected loss with classes weighted equally and contexts replaced by their limit.
    No sampling: ``seeds`` only matter for ``init="random"``. Same :class:`Run` type and run
    order as :func:`train` (``loss[:, t]`` is the expected loss before step ``t``). It is the
    class-grouped step of :func:`train` on one fixed "batch": one example per class whose
    counts are ``P(l | n)`` (``c_n ∝ P(l|n) e^{z_{ψ(n) l}}``, Eqn 5), in the lean form of
    :func:`scansnap.grouped.expected_step`.
    """
    _check_classes(classes)
    steps = check_int("steps", steps, low=1)
    init = check_choice("init", init, INITS)
    normalize = check_bool("normalize", normalize)
    dtype, device = check_dtype(dtype), check_device(device)
    configs, grid = _configs(eta_y, eta_z, pairs, seeds, lambda R, D: check_memory(
        _train_bytes(R, steps, record_every, classes.M, ("the classes' vocabulary M",
                                                          classes.M ** 2), classes.K, dtype),
        device, context=f" for {R} run(s) (eta_y × eta_z × seeds)"))
    layout = Layout.of(classes)
    full, lrs = _init_params("yz", init, classes.M, 0, configs, _unique(c[2] for c in configs),
                             dtype)
    params = full_to_blocks(layout, *(p.to(device) for p in full))
    n = torch.arange(classes.K, device=device)[None]  # one example per class, one "seed"
    probs = classes.probs().to(device=device, dtype=dtype)
    batch = GroupedBatch.build(layout, n, probs.gather(1, layout.support.to(device))[None],
                               classes.next_tokens.to(device)[None])

    def write_yz(p: Params, Y: torch.Tensor, Z: torch.Tensor) -> None:
        Y.copy_(full[0])
        Z.copy_(full[1])
        blocks_to_full(layout, [b.cpu() for b in p], Y, Z)

    def objective(step: int, p: Params) -> tuple[torch.Tensor, Params]:
        return expected_step(layout, *p, batch, normalize=normalize)

    settings = dict(kind="population", optimizer="sgd", momentum=0.0, init=init, model="yz",
                    normalize=normalize)
    if grid is not None:
        settings["grid"] = grid
    return _optimize(classes, configs, params, [lr.to(device) for lr in lrs],
                     objective, write_yz,
                     steps=steps, record_every=record_every,
                     opt=OptimizerConfig("sgd", momentum=0.0), progress=progress,
                     on_divergence=on_divergence, settings=settings)


def batches(
    classes: SequenceClasses, seed: int, batch_size: int, seq_len: int,
    dtype: torch.dtype = torch.float64,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The batches :func:`train` gives the runs of ``seed``, in order: ``(counts [B, M],
    queries [B], targets [B])`` per step.

    Step ``t``'s batch is the ``t``-th call of :meth:`SequenceClasses.sample_counts` on the
    seed's data stream ``torch.Generator().manual_seed(seed)`` (drawn on the classes' supports
    by :meth:`SequenceClasses.sample_support_counts`, the same random numbers).
    """
    _check_classes(classes)
    seed = check_seed("seed", seed)
    support = classes.support_index
    for n, support_counts, _ in _seed_stream(classes, seed, batch_size, seq_len, dtype):
        counts = torch.zeros(len(n), classes.M, dtype=dtype).scatter_(1, support[n],
                                                                      support_counts)
        yield counts, classes.query_tokens[n], classes.next_tokens[n]


# --- optimizer steps (PyTorch semantics), vectorized over the run axis ------------------------
def sgd_step(params: Params, grads: Params, lrs: Params, buffers: Params, *, momentum: float,
             first: bool) -> None:
    """``b ← μ b + g`` (``b = g`` at the first step), ``p ← p − lr·b``; in place."""
    for p, g, lr, buf in zip(params, grads, lrs, buffers):
        if momentum:
            if first:
                buf.copy_(g)
            else:
                torch.add(g, buf, alpha=momentum, out=buf)  # one pass over the buffer
            g = buf
        p.addcmul_(g, lr, value=-1.0)


def adam_step(params: Params, grads: Params, lrs: Params, moments: tuple[Params, Params], *,
              betas: tuple[float, float], eps: float, step: int) -> None:
    """Adam with bias correction (``step`` counts from 0); in place."""
    b1, b2 = betas
    for p, g, lr, m, v in zip(params, grads, lrs, *moments):
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v / (1 - b2 ** (step + 1))).sqrt_().add_(eps)
        p.addcmul_(m / denom, lr / (1 - b1 ** (step + 1)), value=-1.0)


# --- internals ------------------------------------------------------------------------------
def _check_classes(classes: Any) -> None:
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")


def _unique(values: Any) -> list[Any]:
    return list(dict.fromkeys(values))


def _configs(eta_y: Any, eta_z: Any, pairs: Any, seeds: Any,
             check_size: Callable[[int, int], None] = lambda runs, seeds: None,
             ) -> tuple[list[tuple[float, float, int]], tuple[list, list, list] | None]:
    """Each run's ``(eta_y, eta_z, seed)`` and the product grid (None for explicit pairs);
    ``check_size(runs, seeds)`` is called with the counts before the run list is built."""
    seed_list = as_int_list("seeds", seeds, low=0, high=SEED_MAX)
    if len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds must be distinct, got {seed_list}")
    if pairs is None:
        eta_y_list = as_float_list("eta_y", 1.0 if eta_y is None else eta_y, low=0.0)
        eta_z_list = as_float_list("eta_z", 1.0 if eta_z is None else eta_z, low=0.0)
        grid = (eta_y_list, eta_z_list, seed_list)
        check_size(math.prod(len(axis) for axis in grid), len(seed_list))
        return list(itertools.product(*grid)), grid
    if eta_y is not None or eta_z is not None:
        raise ValueError("give either eta_y/eta_z (their product is run) or pairs, not both")
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs:
        raise TypeError("pairs must be a non-empty sequence of (eta_y, eta_z) pairs")
    pair_list = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"pairs[{i}] must be a pair (eta_y, eta_z), got {pair!r}")
        pair_list.append((check_float(f"pairs[{i}][0] (eta_y)", pair[0], low=0.0),
                          check_float(f"pairs[{i}][1] (eta_z)", pair[1], low=0.0)))
    if len(set(pair_list)) != len(pair_list):
        raise ValueError(f"pairs must be distinct, got {pair_list}")
    check_size(len(pair_list) * len(seed_list), len(seed_list))
    return [(ey, ez, s) for ey, ez in pair_list for s in seed_list], None


def _train_bytes(runs: int, steps: int, record_every: int | None, M: int,
                 params: tuple[str, int], batch_rows: int, dtype: torch.dtype) -> dict[str, float]:
    """The bytes :func:`_optimize` allocates, by the parameter that sizes them: ``Y, Z``
    snapshots ``[R, S, M, M]`` and losses ``[R, steps]``; ``params = (name, elements per run)``
    with gradients and two optimizer buffers; one step's dense batch or logits
    ``[batch_rows, M]``."""
    snapshots = 2 if record_every is None else steps // check_int(
        "record_every", record_every, low=1) + 2
    size = torch.empty((), dtype=dtype).element_size()
    name, per_run = params
    return {"steps / record_every": float(runs * (2 * snapshots * M * M + steps)) * size,
            name: float(4 * runs * per_run) * size,
            "batch_size": float(batch_rows * M) * size}


def _init_stream(seed: int) -> torch.Generator:
    """The init stream of ``seed``: independent of its data stream (``manual_seed(seed)``)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))


def _seed_stream(classes: SequenceClasses, seed: int, batch_size: int, seq_len: int,
                 dtype: torch.dtype) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per step: classes ``n [B]``, support counts ``[B, S]`` and targets."""
    batch_size = check_int("batch_size", batch_size, low=1)
    seq_len = check_int("seq_len", seq_len, low=2)
    data = torch.Generator().manual_seed(seed)
    while True:
        n, counts = classes.sample_support_counts(batch_size, seq_len, data, dtype=dtype)
        yield n, counts, classes.next_tokens[n]


def _batch_stream(classes: SequenceClasses, seeds: list[int], batch_size: int, seq_len: int,
                  dtype: torch.dtype, device: torch.device
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Every seed's step batch stacked: ``n [D, B]``, support counts ``[D, B, S]``, targets."""
    streams = [_seed_stream(classes, s, batch_size, seq_len, dtype) for s in seeds]
    while True:
        parts = [next(s) for s in streams]
        yield tuple(torch.stack(t).to(device) for t in zip(*parts))  # type: ignore[misc]


def _init_params(
    model: str, init: str, M: int, d: int, configs: list[tuple[float, float, int]],
    unique_seeds: list[int], dtype: torch.dtype,
) -> tuple[Params, Params]:
    """Initial parameters ``[R, ...]`` (one draw per seed, shared by its runs) and each
    parameter's per-run learning-rate tensor."""
    eta_y = torch.tensor([c[0] for c in configs], dtype=dtype)
    eta_z = torch.tensor([c[1] for c in configs], dtype=dtype)
    per_seed = []
    for seed in unique_seeds:
        g = _init_stream(seed)
        per_seed.append(list(init_yz(M, init, generator=g, dtype=dtype) if model == "yz"
                             else init_full(M, d, generator=g, dtype=dtype)))
    order = [unique_seeds.index(c[2]) for c in configs]
    params = [torch.stack([per_seed[i][k] for i in order]) for k in range(len(per_seed[0]))]
    # yz: (Y, Z); full: (U, W_Q, W_K, W_V) with U and W_V on the decoder's rate.
    lrs = [eta_y, eta_z] if model == "yz" else [eta_y, eta_z, eta_z, eta_y]
    return params, [lr.view(-1, *([1] * (p.ndim - 1))) for lr, p in zip(lrs, params)]


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per run: logits ``[R, B, M]``, targets ``[R, B]`` → ``[R]``."""
    log_probs = torch.log_softmax(logits, dim=-1)
    return -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).mean(-1)


def _record_steps(steps: int, record_every: int | None) -> list[int]:
    if record_every is None:
        return [0, steps]
    record_every = check_int("record_every", record_every, low=1)
    return sorted(set(range(0, steps + 1, record_every)) | {steps})


def _optimize(
    classes: SequenceClasses,
    configs: list[tuple[float, float, int]],
    params: Params,
    lrs: Params,
    objective: Objective,
    write_yz: Callable[[Params, torch.Tensor, torch.Tensor], None],
    *,
    steps: int,
    record_every: int | None,
    opt: OptimizerConfig,
    progress: bool | None,
    on_divergence: str,
    settings: dict[str, Any],
) -> Run:
    """The shared loop: ``objective(step, params) → (loss [R], grads)``, then one optimizer
    step; ``write_yz(params, Y, Z)`` fills the snapshots at the recorded steps."""
    on_divergence = check_choice("on_divergence", on_divergence, ("raise", "flag"))
    if progress is not None:
        check_bool("progress", progress)
    R, M = len(configs), classes.M
    record_at = _record_steps(steps, record_every)
    dtype, device = params[0].dtype, params[0].device
    Ys = torch.empty(R, len(record_at), M, M, dtype=dtype)
    Zs = torch.empty_like(Ys)
    losses = torch.empty(R, steps, dtype=dtype, device=device)
    diverged = torch.zeros(R, dtype=torch.bool, device=device)
    state = ([torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params])
    show = progress if progress is not None else R * steps >= _PROGRESS_THRESHOLD

    def snapshot(slot: int) -> None:
        write_yz(params, Ys[:, slot], Zs[:, slot])

    snapshot(0)
    for step in trange(steps, disable=not show, desc=f"{settings['kind']} ({R} runs)", leave=False):
        loss, grads = objective(step, params)
        losses[:, step] = loss
        with torch.no_grad():
            if opt.weight_decay:
                grads = [g + opt.weight_decay * p for g, p in zip(grads, params)]
            if opt.name == "sgd":
                sgd_step(params, grads, lrs, state[0], momentum=opt.momentum, first=step == 0)
            else:
                adam_step(params, grads, lrs, state, betas=opt.betas, eps=opt.eps, step=step)
            # A non-finite loss means the parameters left the finite range in the last update
            # (one sum checks every run: it is finite whenever they all are, barring overflow).
            if not math.isfinite(float(loss.sum())):
                finite = torch.isfinite(loss)
                if bool((~finite & ~diverged).any()):
                    diverged |= ~finite
                    lrs = [lr * (~diverged).view(-1, *([1] * (lr.ndim - 1))).to(lr.dtype)
                           for lr in lrs]
        if step + 1 in record_at:
            snapshot(record_at.index(step + 1))

    if diverged.any() and on_divergence == "raise":
        bad = [configs[i] for i in torch.nonzero(diverged).flatten().tolist()]
        raise FloatingPointError(
            f"{len(bad)} run(s) diverged (parameters overflowed), e.g. (eta_y, eta_z, seed) = "
            f"{bad[:3]}; lower the learning rates, or pass on_divergence='flag' to keep the "
            "finite runs and inspect Run.diverged"
        )
    return Run(classes=classes, configs=[tuple(c) for c in configs],
               steps=torch.tensor(record_at), Y=Ys, Z=Zs, loss=losses.cpu(),
               diverged=diverged.cpu(), settings=settings)
