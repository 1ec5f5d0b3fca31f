"""Training dynamics of the 1-layer transformer, batched over runs.

:func:`train` is finite-``T`` SGD/Adam on sampled sequences (Section 8's experiments);
:func:`population` is the ``T → ∞`` expected dynamics of Lemma 2 (``c_n``, ``f_n`` in place of
sampled contexts, classes weighted equally). Both run every combination of learning rates and
seeds as one vectorized tensor program over a leading run axis, in the order of
``itertools.product(eta_y, eta_z, seeds)`` (seeds fastest), and return a :class:`Run`.

Randomness: each seed owns two ``torch.Generator`` streams, one for the data and one for the
random init, so a run's result does not depend on what else is batched with it, and runs that
share a seed see the same batches (as the authors' ``set_all_seeds`` gives).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import trange

from . import theory
from ._validate import as_float_list, as_int_list, check_bool, check_choice, check_float, check_int
from .data import SequenceClasses
from .models import INITS, full_to_yz, yz_logits

OPTIMIZERS = ("sgd", "adam")
MODELS = ("yz", "full")
_PROGRESS_THRESHOLD = 20_000  # run-steps above which a progress bar is shown by default


@dataclass
class Run:
    """The result of :func:`train` or :func:`population`.

    ``loss [R, steps]``: ``loss[:, t]`` is the mean loss of step ``t``'s batch before step
    ``t``'s update. ``Y, Z [R, S, M, M]`` are snapshots after ``steps[s]`` updates. ``configs``
    lists each run's ``(eta_y, eta_z, seed)``; ``diverged [R]`` flags runs whose loss became
    non-finite (they are stopped there; their later snapshots are not meaningful).
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
    def grid_shape(self) -> tuple[int, int, int]:
        """``(len(eta_y), len(eta_z), len(seeds))``: the run axis reshapes to this grid."""
        return tuple(len(v) for v in self.settings["grid"])  # type: ignore[return-value]

    def grid(self, values: torch.Tensor) -> torch.Tensor:
        """Reshape a per-run tensor ``[R, ...]`` to ``[n_eta_y, n_eta_z, n_seeds, ...]``."""
        return values.reshape(*self.grid_shape, *values.shape[1:])

    def attention(self) -> torch.Tensor:
        """``c_{l|ψ(n),n}`` (Lemma 2) at every snapshot: ``[R, S, K, M]``."""
        return theory.attention_limit(self.classes.probs(), self.Z, self.classes.query_tokens)

    def index(self, eta_y: float | None = None, eta_z: float | None = None,
              seed: int | None = None) -> list[int]:
        """Indices of the runs matching the given learning rates / seed (``None`` = any)."""
        wanted = (eta_y, eta_z, seed)
        return [i for i, config in enumerate(self.configs)
                if all(w is None or math.isclose(w, c) for w, c in zip(wanted, config))]

    def __repr__(self) -> str:
        R, S, M, _ = self.Z.shape
        return (f"Run(R={R} runs, S={S} snapshots of steps {self.steps[0].item()}.."
                f"{self.steps[-1].item()}, M={M}, diverged={int(self.diverged.sum())})")


def train(
    classes: SequenceClasses,
    eta_y: float | Sequence[float] = 1.0,
    eta_z: float | Sequence[float] = 1.0,
    steps: int = 100,
    batch_size: int = 128,
    seq_len: int = 128,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    init: str = "zero",
    seeds: int | Sequence[int] = (1,),
    record_every: int | None = 2,
    *,
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
    observe: Callable[[int, list[torch.Tensor], tuple[torch.Tensor, ...]], None] | None = None,
) -> Run:
    """Finite-``T`` training on sampled sequences (Section 8; the authors' ``decoder_only.py``).

    ``eta_y`` is the learning rate of the decoder ``Y`` and ``eta_z`` of the attention ``Z``
    (Lemma 1); each may be a scalar or a sequence, and so may ``seeds``: every combination runs
    batched, in ``itertools.product(eta_y, eta_z, seeds)`` order. ``optimizer="sgd"`` follows
    PyTorch's SGD (momentum buffer ``b ← μ b + g``, no dampening); ``"adam"`` PyTorch's Adam.
    ``init`` is ``"zero"`` (the theory) or ``"random"`` (``U(±1/√M)``, the authors' Fig 6).
    ``model="full"`` trains ``U, W_Q, W_K, W_V`` of width ``d`` (``U, W_V`` at ``eta_y``;
    ``W_Q, W_K`` at ``eta_z``; needs ``init="random"``) and records the equivalent ``(Y, Z)``.
    Contexts are drawn as exact token-count vectors (:meth:`SequenceClasses.sample_counts`).
    ``record_every`` sets the snapshot cadence (``None``: only the first and final states).
    A run whose loss becomes non-finite is stopped and flagged; ``on_divergence="raise"`` then
    raises ``FloatingPointError``, ``"flag"`` only sets ``Run.diverged``.
    ``observe(step, params, batch)``, if given, is called before every step's update with the
    current parameters (``[R, ...]`` each: ``Y, Z`` or ``U, W_Q, W_K, W_V``; read them, do not
    modify them) and the step's batch ``(counts, queries, targets)``, one per seed
    (``[len(seeds), ...]``, in ``seeds`` order): to measure something along training.
    """
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")
    grid = _grid(eta_y, eta_z, seeds)
    steps = check_int("steps", steps, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    seq_len = check_int("seq_len", seq_len, low=2)
    optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
    momentum = check_float("momentum", momentum, low=0.0, high=1.0)
    init = check_choice("init", init, INITS)
    model = check_choice("model", model, MODELS)
    d = check_int("d", d, low=1)
    normalize, residual = check_bool("normalize", normalize), check_bool("residual", residual)
    weight_decay = check_float("weight_decay", weight_decay, low=0.0)
    betas = _check_betas(betas)
    eps = check_float("eps", eps, low=0.0, low_open=True)
    on_divergence = check_choice("on_divergence", on_divergence, ("raise", "flag"))
    if observe is not None and not callable(observe):
        raise TypeError(f"observe must be callable or None, got {type(observe).__name__}")
    if model == "full" and init == "zero":
        raise ValueError("init must be 'random' for model='full': at zero the full model's "
                         "gradients vanish (a saddle point)")

    configs = list(itertools.product(*grid))
    unique_seeds = grid[2]
    data_streams = [torch.Generator().manual_seed(s) for s in unique_seeds]
    M = classes.M

    params, groups = _init_params(model, init, M, d, configs, unique_seeds, dtype)
    to_yz = (lambda p: (p[0], p[1])) if model == "yz" else (lambda p: full_to_yz(*p))

    def draw() -> tuple[torch.Tensor, ...]:
        draws = [classes.sample_counts(batch_size, seq_len, g, dtype=dtype) for g in data_streams]
        return tuple(torch.stack(parts) for parts in zip(*draws))

    drawn: list[tuple[torch.Tensor, ...]] = []  # the step's batch, when watch() drew it first

    def watch(step: int, params: list[torch.Tensor]) -> None:
        drawn.append(draw())
        observe(step, params, drawn[-1])  # type: ignore[misc]

    def loss_of(step: int, Y: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        counts, queries, targets = (t.to(Y.device) for t in (drawn.pop() if drawn else draw()))
        # Seeds run fastest, so [R, ...] views as [lr combos, seeds, ...] and each seed's batch
        # broadcasts over its learning rates without being copied.
        by_seed = (-1, len(unique_seeds), M, M)
        logits = yz_logits(Y.view(by_seed), Z.view(by_seed), counts, queries,
                           normalize=normalize, residual=residual)
        return _cross_entropy(logits, targets.expand(*logits.shape[:-1])).reshape(-1)

    settings = dict(kind="train", optimizer=optimizer, momentum=momentum, init=init, model=model,
                    d=d, batch_size=batch_size, seq_len=seq_len, normalize=normalize,
                    residual=residual, weight_decay=weight_decay, betas=betas, eps=eps,
                    grid=grid)
    return _optimize(classes, configs, params, groups, to_yz, loss_of, steps, record_every,
                     optimizer, momentum, weight_decay, betas, eps, device, progress,
                     on_divergence, settings, observe=watch if observe is not None else None)


def population(
    classes: SequenceClasses,
    eta_y: float | Sequence[float] = 1.0,
    eta_z: float | Sequence[float] = 1.0,
    steps: int = 100,
    init: str = "zero",
    seeds: int | Sequence[int] = (1,),
    record_every: int | None = 1,
    *,
    normalize: bool = True,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    on_divergence: str = "raise",
) -> Run:
    """The ``T → ∞`` expected dynamics (Lemma 2, Sections 4–5): plain gradient steps on

    ``J = −(1/K) Σ_n log softmax(Yᵀ f_n)_n`` with ``f_n = c_n / ||c_n||`` and ``c_n`` of Eqn 5,
    i.e. the expected loss with classes weighted equally and contexts replaced by their limit.
    No sampling: ``seeds`` only matter for ``init="random"``. Same :class:`Run` type as
    :func:`train` (``loss[:, t]`` is the expected loss before step ``t``).
    """
    if not isinstance(classes, SequenceClasses):
        raise TypeError(f"classes must be a SequenceClasses, got {type(classes).__name__}")
    grid = _grid(eta_y, eta_z, seeds)
    steps = check_int("steps", steps, low=1)
    init = check_choice("init", init, INITS)
    normalize = check_bool("normalize", normalize)
    on_divergence = check_choice("on_divergence", on_divergence, ("raise", "flag"))
    configs = list(itertools.product(*grid))
    params, groups = _init_params("yz", init, classes.M, 0, configs, grid[2], dtype)
    probs, queries, targets = classes.probs().to(dtype), classes.query_tokens, classes.next_tokens

    def loss_of(step: int, Y: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        c = theory.attention_limit(probs.to(Z.device), Z, queries.to(Z.device))  # [R, K, M]
        u = theory.normalized_attention(c) if normalize else c
        return _cross_entropy(u @ Y, targets.to(Y.device).expand(len(configs), -1))

    settings = dict(kind="population", optimizer="sgd", momentum=0.0, init=init, model="yz",
                    normalize=normalize, grid=grid)
    return _optimize(classes, configs, params, groups, lambda p: (p[0], p[1]), loss_of, steps,
                     record_every, "sgd", 0.0, 0.0, (0.9, 0.999), 1e-8, device, progress,
                     on_divergence, settings)


# --- internals ------------------------------------------------------------------------------
def _grid(eta_y: Any, eta_z: Any, seeds: Any) -> tuple[list[float], list[float], list[int]]:
    eta_y_list = as_float_list("eta_y", eta_y, low=0.0)
    eta_z_list = as_float_list("eta_z", eta_z, low=0.0)
    seed_list = as_int_list("seeds", seeds, low=0)
    if len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds must be distinct, got {seed_list}")
    return eta_y_list, eta_z_list, seed_list


def _check_betas(betas: Any) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError("betas must be a pair (beta1, beta2) of numbers in [0, 1)")
    return tuple(check_float(f"betas[{i}]", b, low=0.0, high=1.0 - 1e-12)  # type: ignore[return-value]
                 for i, b in enumerate(betas))


def _init_stream(seed: int) -> torch.Generator:
    """The init stream of ``seed``: independent of its data stream (``manual_seed(seed)``)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))


def _init_params(
    model: str, init: str, M: int, d: int, configs: list[tuple[float, float, int]],
    unique_seeds: list[int], dtype: torch.dtype,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Initial parameters ``[R, ...]`` (one draw per seed, shared by its runs) and each
    parameter's per-run learning-rate tensor."""
    eta_y = torch.tensor([c[0] for c in configs], dtype=dtype)
    eta_z = torch.tensor([c[1] for c in configs], dtype=dtype)
    per_seed = []
    for seed in unique_seeds:
        g = _init_stream(seed)
        if model == "yz":
            if init == "zero":
                per_seed.append([torch.zeros(M, M, dtype=dtype) for _ in range(2)])
            else:
                bound = 1 / math.sqrt(M)
                per_seed.append([(2 * torch.rand(M, M, generator=g, dtype=dtype) - 1) * bound
                                 for _ in range(2)])
        else:
            bound = 1 / math.sqrt(d)
            U = torch.randn(M, d, generator=g, dtype=dtype) * bound
            per_seed.append([U] + [(2 * torch.rand(d, d, generator=g, dtype=dtype) - 1) * bound
                                   for _ in range(3)])
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
    params: list[torch.Tensor],
    lrs: list[torch.Tensor],
    to_yz: Callable[[list[torch.Tensor]], tuple[torch.Tensor, torch.Tensor]],
    loss_of: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int,
    record_every: int | None,
    optimizer: str,
    momentum: float,
    weight_decay: float,
    betas: tuple[float, float],
    eps: float,
    device: str | torch.device | None,
    progress: bool | None,
    on_divergence: str,
    settings: dict[str, Any],
    observe: Callable[[int, list[torch.Tensor]], None] | None = None,
) -> Run:
    """The shared loop: vectorized SGD (PyTorch semantics) or Adam over the run axis;
    ``observe(step, params)`` is called before each step's update."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    params = [p.to(device) for p in params]
    lrs = [lr.to(device) for lr in lrs]
    R, M = len(configs), classes.M
    record_at = _record_steps(steps, record_every)
    dtype = params[0].dtype
    Ys = torch.empty(R, len(record_at), M, M, dtype=dtype)
    Zs = torch.empty_like(Ys)
    losses = torch.empty(R, steps, dtype=dtype)
    diverged = torch.zeros(R, dtype=torch.bool, device=device)
    state = [[torch.zeros_like(p) for p in params] for _ in range(2)]  # momentum / Adam moments
    show = progress if progress is not None else R * steps >= _PROGRESS_THRESHOLD
    if progress is not None:
        check_bool("progress", progress)

    def snapshot(slot: int) -> None:
        with torch.no_grad():
            Y, Z = to_yz(params)
            Ys[:, slot], Zs[:, slot] = Y.cpu(), Z.cpu()

    snapshot(0)
    for step in trange(steps, disable=not show, desc=f"{settings['kind']} ({R} runs)", leave=False):
        if observe is not None:
            observe(step, params)
        leaves = [p.detach().requires_grad_(True) for p in params]
        loss = loss_of(step, *to_yz(leaves))
        grads = torch.autograd.grad(loss.sum(), leaves)
        losses[:, step] = loss.detach().cpu()
        with torch.no_grad():
            for i, (p, g, lr) in enumerate(zip(params, grads, lrs)):
                if weight_decay:
                    g = g + weight_decay * p
                if optimizer == "sgd":
                    if momentum:
                        buf = state[0][i]
                        if step == 0:
                            buf.copy_(g)
                        else:
                            buf.mul_(momentum).add_(g)
                        g = buf
                    p.addcmul_(g, lr, value=-1.0)
                else:
                    m, v = state[0][i], state[1][i]
                    m.mul_(betas[0]).add_(g, alpha=1 - betas[0])
                    v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
                    denom = (v / (1 - betas[1] ** (step + 1))).sqrt_().add_(eps)
                    p.addcmul_(m / denom, lr / (1 - betas[0] ** (step + 1)), value=-1.0)
            # A non-finite loss means the parameters left the finite range in the last update.
            newly = ~torch.isfinite(loss.detach()) & ~diverged
            if newly.any():
                diverged |= newly
                lrs = [lr * (~diverged).view_as(lr).to(lr.dtype) for lr in lrs]
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
               steps=torch.tensor(record_at), Y=Ys, Z=Zs, loss=losses,
               diverged=diverged.cpu(), settings=settings)
