"""Training the WikiText LM as the authors did (PAPER.md B.8 / Fig 7, B.9 / Fig 10).

:class:`LMConfig` holds one run's knobs (validated once, frozen); :func:`train_lm` trains a
:class:`~scansnap.lm.model.WikiLM` by plain SGD and records the attention of a fixed probe batch
at checkpoints (:class:`LMRun`); :func:`train_many` trains independent runs side by side in
worker processes; :func:`lr_sweep` trains one run per (learning rate, seed) for Fig 10, reusing
runs already trained. :data:`SIZES` names the run sizes of chapter 6.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .._validate import (
    as_float_list, as_int_list, check_bool, check_choice, check_float, check_int, check_memory,
    check_seed, check_tensor,
)
from ..wikitext import Corpus, Vocab, batchify, get_batch, load_corpus
from .model import WikiLM, training_bytes
from .stats import TOKEN_GROUPS, attention_entropy, token_group_shares

__all__ = [
    "SIZES", "SIZE_ENV", "BLOW_UP_FACTOR", "chapter_size", "default_device", "LMConfig", "LMRun",
    "SweepResult", "train_lm", "train_many", "lr_sweep",
]

# Named run sizes (chapter 6 picks one with :func:`chapter_size`).
#   "ci": the size the book is built at on a 2-core CPU: a 2k vocabulary cap (PAPER.md B.8a: the
#         vocabulary-sized decoder dominates the cost, and a 2k cap still shows the effect) and
#         the paper's 1500 iterations for Fig 7's 1-layer and 3-layer models (a 3-layer step
#         costs about twice a 1-layer one); a short Fig 10 sweep (300 steps, one seed: it already
#         orders lr 1..5) and a short run of the notebook's FFN-lr-10 variant.
#   "paper": the authors' setting: full vocabulary, 2000 steps (checkpoints 0..1900 as in their
#         notebook, plus 2000), the Fig 10 sweep over 5 seeds at the same length; uses the GPU
#         when there is one (on a CPU it takes hours).
#   "quick": a smoke test (command line --quick, tests).
# ``steps``/``deep_steps``/``checkpoint_every``: Fig 7's 1-layer and 3-layer runs;
# ``sweep_steps``/``sweep_every``/``sweep_seeds``/``sweep_last`` (checkpoints averaged into the
# "final" entropy): Fig 10's; ``variant_steps``: the run with the notebook's feed-forward
# learning rate 10.
SIZES: dict[str, dict[str, Any]] = {
    "quick": {"max_vocab": 500, "steps": 150, "deep_steps": 150, "checkpoint_every": 50,
              "sweep_steps": 100, "sweep_every": 50, "sweep_seeds": (1,), "sweep_last": 1,
              "variant_steps": 100},
    "ci": {"max_vocab": 2000, "steps": 1500, "deep_steps": 1500, "checkpoint_every": 100,
           "sweep_steps": 300, "sweep_every": 100, "sweep_seeds": (1,), "sweep_last": 2,
           "variant_steps": 300},
    "paper": {"max_vocab": None, "steps": 2000, "deep_steps": 2000, "checkpoint_every": 100,
              "sweep_steps": 2000, "sweep_every": 100, "sweep_seeds": (1, 2, 3, 4, 5),
              "sweep_last": 3, "variant_steps": 2000},
}
SIZE_ENV = "SCANSNAP_SIZE"


def chapter_size(default: str = "ci") -> str:
    """The run size of chapter 6: ``$SCANSNAP_SIZE`` when set (``quick``, ``ci``, ``paper``),
    else ``default``. The one switch between the CI-sized page and the paper-sized experiment."""
    default = check_choice("default", default, SIZES)
    value = os.environ.get(SIZE_ENV, "").strip()
    if not value:
        return default
    if value not in SIZES:
        raise ValueError(f"the environment variable {SIZE_ENV} must be one of {tuple(SIZES)}, "
                         f"got {value!r}")
    return value


def default_device(size: str) -> str:
    """The device a run of ``size`` uses when none is given: CUDA for "paper" when available,
    else the CPU (the CI and quick sizes are sized for a 2-core CPU)."""
    size = check_choice("size", size, SIZES)
    return "cuda" if size == "paper" and torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class LMConfig:
    """The knobs of one training run (PAPER.md B.8), validated once when built.

    SGD without momentum at a constant ``lr`` (the authors' StepLR is never stepped), gradient
    norm clipped to ``clip``; ``ffn_lr`` puts layer 0's FFN (linear1/linear2) in its own group, as
    the Fig 7 notebook does with 10. Batches of ``batch_size`` columns × ``bptt`` tokens; a
    checkpoint every ``checkpoint_every`` steps; ``probe_index``: the row of the batchified
    measure split where the probe chunk starts (None: ``100·bptt`` as the notebook, moved back
    when the split is shorter). ``device``: "cpu" or "cuda".
    """

    nlayers: int = 1
    lr: float = 5.0
    ffn_lr: float | None = None
    clip: float = 0.5
    steps: int = SIZES["ci"]["steps"]
    checkpoint_every: int = SIZES["ci"]["checkpoint_every"]
    seed: int = 1
    dropout: float = 0.2
    batch_size: int = 20
    bptt: int = 35
    probe_index: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        checked = {
            "nlayers": check_int("nlayers", self.nlayers, low=1),
            "lr": check_float("lr", self.lr, low=0.0),
            "ffn_lr": None if self.ffn_lr is None else check_float("ffn_lr", self.ffn_lr, low=0.0),
            "clip": check_float("clip", self.clip, low=0.0, low_open=True),
            "steps": check_int("steps", self.steps, low=1),
            "checkpoint_every": check_int("checkpoint_every", self.checkpoint_every, low=1),
            "seed": check_seed("seed", self.seed),
            "dropout": check_float("dropout", self.dropout, low=0.0, high=1.0),
            "batch_size": check_int("batch_size", self.batch_size, low=1),
            "bptt": check_int("bptt", self.bptt, low=1),
            "probe_index": None if self.probe_index is None else check_int(
                "probe_index", self.probe_index, low=0),
            "device": check_choice("device", self.device, ("cpu", "cuda")),
        }
        if checked["device"] == "cuda" and not torch.cuda.is_available():
            raise ValueError("device must be 'cpu' here: CUDA is not available")
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def for_size(cls, size: str = "ci", **knobs: Any) -> LMConfig:
        """The config of a run of ``size`` (:data:`SIZES`): its ``steps`` and
        ``checkpoint_every`` and :func:`default_device`, overridden by every knob not None."""
        size = check_choice("size", size, SIZES)
        unknown = set(knobs) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown training setting(s) {sorted(unknown)}; accepted: "
                            f"{[f.name for f in dataclasses.fields(cls)]}")
        defaults = {"steps": SIZES[size]["steps"],
                    "checkpoint_every": SIZES[size]["checkpoint_every"],
                    "device": default_device(size)}
        return cls(**(defaults | {k: v for k, v in knobs.items() if v is not None}))

    def checkpoints(self) -> list[int]:
        """The steps at which the run records: 0, every ``checkpoint_every``, and the last."""
        every = self.checkpoint_every
        return list(range(0, self.steps + 1, every)) + ([self.steps] if self.steps % every else [])

    def starts(self, other: LMConfig) -> bool:
        """Whether this run is the beginning of run ``other``: the same settings apart from a
        length no longer than ``other``'s, whose checkpoints begin with this run's. Training is
        deterministic given the seed, so ``other``'s first ``steps`` steps *are* this run."""
        return (self.steps <= other.steps
                and dataclasses.replace(other, steps=self.steps) == self
                and other.checkpoints()[: len(self.checkpoints())] == self.checkpoints())


@dataclass
class LMRun:
    """One training run (PAPER.md B.8). Arrays are CPU tensors indexed by checkpoint ``S``.

    ``steps[s]`` updates had been made at checkpoint ``s``. ``loss``: mean training loss of the
    batches since the previous checkpoint (at step 0: the first batch, before any update).
    ``probe_loss``: loss on the fixed probe batch (eval mode). ``entropy``: layer-0 attention
    entropy on the probe batch; ``entropy_layers`` [S, layers] the same for every layer.
    ``probe_maps`` [S, layers, B, L, L]: attention of every column of the probe batch, whose
    token ids are ``probe_ids`` [L, B]; ``maps`` [S, layers, L, L] (a view of it): column 0
    alone, Fig 7's 35×35 maps. ``config`` is the run's :class:`LMConfig` with its probe index
    resolved; ``data_id`` a fingerprint of the data it trained and measured on.
    """

    steps: torch.Tensor
    loss: torch.Tensor
    probe_loss: torch.Tensor
    entropy: torch.Tensor
    entropy_layers: torch.Tensor
    probe_maps: torch.Tensor
    train_loss: torch.Tensor  # [steps] every step's training loss
    probe_tokens: list[str]  # the probe chunk's column 0, for axis labels
    probe_ids: torch.Tensor  # [L, B] token ids of the whole probe batch (the maps' keys)
    model: WikiLM
    vocab: Vocab | None
    config: LMConfig
    vocab_size: int
    data_id: tuple[int, ...]
    note: str
    seconds: float
    diverged: bool = False  # the training loss blew up (train_lm's on_divergence="flag")

    @property
    def maps(self) -> torch.Tensor:
        """``[S, layers, L, L]``: the attention of the probe chunk's column 0 (Fig 7's maps)."""
        return self.probe_maps[:, :, 0]

    def map_at(self, step: int, layer: int = 0) -> torch.Tensor:
        """The recorded ``[L, L]`` map of ``layer`` at the checkpoint nearest to ``step``."""
        s = int((self.steps - step).abs().argmin())
        return self.maps[s, layer]

    def token_group_shares(self, layer: int = 0,
                           groups: Mapping[str, tuple[int, int | None]] = TOKEN_GROUPS
                           ) -> dict[str, tuple[torch.Tensor, float]]:
        """:func:`scansnap.lm.stats.token_group_shares` of ``layer`` on the probe batch at every
        checkpoint: per group of vocabulary ranks, the shares ``[S]`` and the uniform share."""
        layer = check_int("layer", layer, low=0, high=self.probe_maps.shape[1] - 1)
        return token_group_shares(self.probe_maps[:, layer], self.probe_ids.T, self.vocab_size,
                                  groups)

    def summary(self) -> dict[str, Any]:
        """The run's settings as plain JSON values (figure data)."""
        return dataclasses.asdict(self.config) | {"vocab_size": self.vocab_size}


def _data(
    corpus_or_ids: Corpus | torch.Tensor | None,
    max_vocab: int | None,
    measure_ids: torch.Tensor | None,
    vocab_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor, int, Vocab | None, str]:
    if corpus_or_ids is None:
        corpus_or_ids = load_corpus(max_size=max_vocab)
    if isinstance(corpus_or_ids, Corpus):
        c = corpus_or_ids
        return c.train_ids, c.measure_ids, len(c.vocab), c.vocab, c.note
    if isinstance(corpus_or_ids, torch.Tensor):
        ids = corpus_or_ids
        if ids.ndim != 1 or ids.dtype != torch.long or ids.numel() == 0:
            raise ValueError("corpus_or_ids must be a Corpus or a non-empty 1-D int64 tensor of ids")
        measure = ids if measure_ids is None else check_tensor("measure_ids", measure_ids, ndim=1)
        if measure.dtype != torch.long or measure.numel() == 0:
            raise ValueError("measure_ids must be a non-empty 1-D int64 tensor of ids")
        need = int(max(ids.max(), measure.max())) + 1
        if int(min(ids.min(), measure.min())) < 0:
            raise ValueError("corpus_or_ids must hold non-negative token ids")
        n = need if vocab_size is None else check_int("vocab_size", vocab_size, low=need)
        return ids, measure, n, None, "Trained on the given token ids."
    raise TypeError(
        f"corpus_or_ids must be a Corpus, a 1-D int64 tensor or None, got {type(corpus_or_ids).__name__}"
    )


def _probe_index(config: LMConfig, measure_rows: int) -> int:
    """The probe chunk's row in the batchified measure split: ``config.probe_index``, or row
    ``100·bptt`` (as the notebook) moved back to the last full chunk when the split is shorter."""
    last_start = measure_rows - 1 - config.bptt
    if last_start < 0:
        raise ValueError(f"the measure split is too short for batch_size={config.batch_size}, "
                         f"bptt={config.bptt}")
    if config.probe_index is None:
        return min(100 * config.bptt, last_start)
    return check_int("probe_index", config.probe_index, low=0, high=last_start)


def _fingerprint(train_ids: torch.Tensor, measure_ids: torch.Tensor) -> tuple[int, ...]:
    """A cheap identity of the data (lengths and id sums): runs on other data never match."""
    return (int(train_ids.numel()), int(train_ids.sum()), int(measure_ids.numel()),
            int(measure_ids.sum()))


BLOW_UP_FACTOR = 10.0
"""A loss above this many times ``log(ntoken)`` (a uniform guess) counts as diverged. Measured
with the authors' clip 0.5: on WikiText-2 (2k vocabulary, 300 steps) lr 5 peaks at 1.7× and
lr 5 with ffn_lr 10 at 1.5×; on random ids lr 1–10 stay below 1.6×, lr 50 reaches 55× and
lr 1e4 about 10⁶×."""


def _blew_up(losses: torch.Tensor, ntoken: int) -> bool:
    """Whether any loss is non-finite or above :data:`BLOW_UP_FACTOR` × ``log(ntoken)``."""
    return not bool((losses <= BLOW_UP_FACTOR * math.log(ntoken)).all())


def _optimizer(model: WikiLM, config: LMConfig) -> torch.optim.SGD:
    """Plain SGD (no momentum); layer 0's FFN in its own group at ``ffn_lr`` when given."""
    ffn = [] if config.ffn_lr is None else [
        p for m in (model.layers[0].linear1, model.layers[0].linear2) for p in m.parameters()]
    rest = [p for p in model.parameters() if all(p is not q for q in ffn)]
    groups = [{"params": rest, "lr": config.lr}]
    if ffn:
        groups.append({"params": ffn, "lr": config.ffn_lr})
    return torch.optim.SGD(groups, lr=config.lr, momentum=0.0)


def train_lm(
    corpus_or_ids: Corpus | torch.Tensor | None = None,
    nlayers: int = 1,
    *,
    size: str = "ci",
    max_vocab: int | None = None,
    measure_ids: torch.Tensor | None = None,
    vocab_size: int | None = None,
    progress: bool = True,
    on_divergence: str = "raise",
    **knobs: Any,
) -> LMRun:
    """Train the WikiText LM with the authors' optimizer and record attention (PAPER.md B.8/Fig 7).

    ``knobs`` are :class:`LMConfig`'s fields (``lr``, ``ffn_lr``, ``clip``, ``steps``,
    ``checkpoint_every``, ``seed``, ``dropout``, ``batch_size``, ``bptt``, ``probe_index``,
    ``device``); those not given come from ``size`` (:meth:`LMConfig.for_size`: "quick", "ci",
    "paper"; "paper" also picks CUDA when available). The data: a
    :class:`~scansnap.wikitext.Corpus` (its training/measure policy), a 1-D id tensor (measured on
    ``measure_ids``, default itself; ``vocab_size`` default max id + 1), or None (located with
    :func:`~scansnap.wikitext.load_corpus`, vocabulary capped at ``max_vocab`` or the size's).

    At step 0, every ``checkpoint_every`` steps and at the end, the fixed probe batch — the bptt
    chunk at the config's probe row of the batchified measure split — is run through
    :meth:`WikiLM.probe` in eval mode to record loss, entropy and maps.

    Divergence, as :func:`~scansnap.dynamics.train`: a training loss that is non-finite or above
    :data:`BLOW_UP_FACTOR` × ``log(ntoken)`` (that many times the loss of a uniform guess) is
    looked for at every checkpoint. ``on_divergence="raise"`` then raises ``FloatingPointError``
    naming ``lr``; ``"flag"`` finishes the run and sets ``LMRun.diverged``.
    """
    config = LMConfig.for_size(size, nlayers=nlayers, **knobs)
    progress = check_bool("progress", progress)
    on_divergence = check_choice("on_divergence", on_divergence, ("raise", "flag"))
    max_vocab = SIZES[size]["max_vocab"] if max_vocab is None else \
        check_int("max_vocab", max_vocab, low=2)
    train_ids, meas_ids, ntoken, vocab, note = _data(corpus_or_ids, max_vocab, measure_ids,
                                                     vocab_size)
    tokens = config.batch_size * config.bptt
    checkpoints = config.steps // config.checkpoint_every + 2  # at most
    check_memory({"vocab_size (the model's ntoken)": training_bytes(ntoken, tokens),
                  "steps (a loss per step, maps per checkpoint)": 4.0 * config.steps
                  + 4.0 * checkpoints * config.nlayers * tokens * config.bptt},
                 config.device)
    device, bptt, every = config.device, config.bptt, config.checkpoint_every
    source = batchify(train_ids, config.batch_size).to(device)  # [rows, B]
    starts = list(range(0, source.size(0) - bptt, bptt))  # full windows only: fixed shapes
    if not starts:
        raise ValueError(f"the training split is too short for batch_size={config.batch_size}, "
                         f"bptt={bptt}")
    measure = batchify(meas_ids, config.batch_size).to(device)
    config = dataclasses.replace(config, probe_index=_probe_index(config, measure.size(0)))
    probe_data, probe_targets = get_batch(measure, config.probe_index, bptt)  # [L, B], [L*B]

    # Own RNG stream: the run depends on `seed` only, and the caller's global state is restored.
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device == "cuda" else []):
        torch.manual_seed(config.seed)
        model = WikiLM(ntoken, config.nlayers, dropout=config.dropout).to(device)
        optimizer = _optimizer(model, config)
        criterion = nn.CrossEntropyLoss()
        train_loss = torch.zeros(config.steps, device=device)  # filled on device: no per-step sync
        records: list[tuple[int, torch.Tensor, torch.Tensor]] = []

        def checkpoint(step: int) -> None:
            model.eval()
            logits, maps = model.probe(probe_data)  # [L, B, V], [layers, B, L, L]
            model.train()
            records.append((step, criterion(logits.view(-1, ntoken), probe_targets), maps))

        start = time.perf_counter()
        model.train()
        bar = tqdm(total=config.steps, desc=f"WikiText LM {config.nlayers}L lr={config.lr:g}",
                   disable=not progress, leave=False)
        for step in range(config.steps):
            data, targets = get_batch(source, starts[step % len(starts)], bptt)
            loss = model.loss(data, targets)
            train_loss[step] = loss.detach()
            if step == 0:
                checkpoint(0)  # uses the first batch's loss, before any update
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            if (step + 1) % every == 0 or step + 1 == config.steps:
                checkpoint(step + 1)
                if on_divergence == "raise" and _blew_up(train_loss[:step + 1], ntoken):
                    bar.close()
                    raise FloatingPointError(
                        f"the training loss diverged by step {step + 1} (non-finite or above "
                        f"{BLOW_UP_FACTOR} × log(ntoken)) at lr={config.lr:g}"
                        + ("" if config.ffn_lr is None else f", ffn_lr={config.ffn_lr:g}")
                        + "; lower lr, or pass on_divergence='flag' to keep the run")
            bar.update(1)
        bar.close()
        seconds = time.perf_counter() - start

    model.eval()
    steps = torch.tensor([r[0] for r in records])
    windows = [train_loss[max(0, s - every): s] if s else train_loss[:1] for s in steps.tolist()]
    probe_maps = torch.stack([r[2] for r in records]).float().cpu()  # [S, layers, B, L, L]
    entropy = torch.stack([torch.stack([attention_entropy(m) for m in r[2]]) for r in records])
    probe_tokens = (vocab.lookup_tokens(probe_data[:, 0].tolist()) if vocab is not None
                    else [str(i) for i in probe_data[:, 0].tolist()])
    return LMRun(
        steps=steps,
        loss=torch.stack([w.mean() for w in windows]).cpu(),
        probe_loss=torch.stack([r[1] for r in records]).cpu(),
        entropy=entropy[:, 0].cpu(),
        entropy_layers=entropy.cpu(),
        probe_maps=probe_maps,
        train_loss=train_loss.cpu(),
        probe_tokens=probe_tokens,
        probe_ids=probe_data.cpu(),
        model=model.cpu(),
        vocab=vocab,
        config=config,
        vocab_size=ntoken,
        data_id=_fingerprint(train_ids, meas_ids),
        note=note,
        seconds=seconds,
        diverged=_blew_up(train_loss, ntoken),
    )


def _train_job(corpus: Corpus | torch.Tensor | None, size: str, knobs: dict[str, Any]
               ) -> tuple[LMRun, list[tuple[str, type[Warning]]]]:
    """One run of :func:`train_many` in a worker; its warnings travel back to the caller."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train_lm(corpus, size=size, progress=False, **knobs)
    return run, [(str(w.message), w.category) for w in caught]


def _one_thread() -> None:
    # One torch thread per worker: at these sizes two single-thread runs side by side beat one
    # two-thread run (PAPER.md B.8a), and a container's CPU quota (Binder) is not what
    # os.cpu_count() reports, so more threads could oversubscribe it.
    torch.set_num_threads(1)


def default_workers(device: str = "cpu") -> int:
    """How many runs :func:`train_many` trains side by side: one per CPU core (at most 2: the
    book's machines have 2), one on a GPU (each run already fills it)."""
    return 1 if device == "cuda" else max(1, min(2, os.cpu_count() or 1))


def train_many(
    corpus_or_ids: Corpus | torch.Tensor | None,
    jobs: Sequence[Mapping[str, Any]],
    *,
    size: str = "ci",
    workers: int | None = None,
) -> list[LMRun]:
    """Train independent runs side by side; ``jobs[i]`` holds :func:`train_lm`'s knobs
    (``nlayers``, ``lr``, ``steps``, ...) of run ``i``, and the runs come back in that order.

    Runs never share state, so each is exactly the run :func:`train_lm` would return alone
    with one torch thread (its own seeded random stream; the thread count changes the order of
    float sums, so every run trains on one thread; tests/test_lm.py checks bit-identity). With
    ``workers > 1`` they train in that many fresh worker processes (``spawn``, the longest jobs
    first); ``workers=1`` trains them one after another here. Default
    :func:`default_workers`. Progress bars are off; warnings of a worker are re-issued.

    The gain is what free cores give: on an otherwise idle 2-vCPU machine chapter 6's runs
    trained in 158 s side by side against 281 s one after another (1.8×); a core busy with
    other work takes its share (benchmarks/bench_ch6_runs.py measures both ways in one process).
    """
    if isinstance(jobs, Mapping) or not all(isinstance(j, Mapping) for j in jobs):
        raise TypeError("jobs must be a sequence of dicts of train_lm settings")
    configs = [LMConfig.for_size(size, **job) for job in jobs]  # every job validated up front
    workers = default_workers(configs[0].device if configs else "cpu") if workers is None else \
        check_int("workers", workers, low=1)
    workers = min(workers, len(jobs))
    if workers <= 1:
        threads = torch.get_num_threads()
        _one_thread()
        try:
            return [train_lm(corpus_or_ids, size=size, progress=False, **dict(job)) for job in jobs]
        finally:
            torch.set_num_threads(threads)
    # Longest first (a step costs about 1 + nlayers/2 one-layer steps), so no core idles at the end.
    order = sorted(range(len(jobs)), key=lambda i: -configs[i].steps * (2 + configs[i].nlayers))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        futures = {i: pool.submit(_train_job, corpus_or_ids, size, dict(jobs[i])) for i in order}
        results = {i: future.result() for i, future in futures.items()}
    for _, caught in results.values():
        for message, category in caught:
            warnings.warn(message, category, stacklevel=2)
    return [results[i][0] for i in range(len(jobs))]


@dataclass
class SweepResult:
    """Fig 10 (App. G): final layer-0 attention entropy per learning rate and seed.

    ``final[i, j]``: mean entropy over the last ``last`` checkpoints of run (lrs[i], seeds[j]);
    ``mean``/``std`` over seeds; ``curves[i, j]`` the whole entropy curve at ``steps``.
    """

    lrs: list[float]
    seeds: list[int]
    final: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    steps: torch.Tensor
    curves: torch.Tensor
    last: int
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)
    reused: list[tuple[float, int]] = field(default_factory=list)


def lr_sweep(
    lrs: Sequence[float] = (1.0, 2.0, 3.0, 4.0, 5.0),
    seeds: Sequence[int] | None = None,
    *,
    corpus: Corpus | None = None,
    nlayers: int = 1,
    steps: int | None = None,
    size: str = "ci",
    last: int | None = None,
    reuse: Sequence[LMRun] = (),
    progress: bool = True,
    workers: int | None = None,
    **knobs: Any,
) -> SweepResult:
    """Fig 10 (App. G): train one model per (lr, seed) with a single constant lr; final entropy.

    ``steps``, ``seeds``, ``last`` and the checkpoint interval default to the size's
    ``sweep_steps``, ``sweep_seeds``, ``sweep_last`` and ``sweep_every``; the ``last``
    checkpoints are averaged into the "final" entropy (B.8a used steps 1300–1500). ``knobs``:
    the other :class:`LMConfig` fields, shared by every run.

    ``reuse``: runs already trained (e.g. Fig 7's lr-5 run). A run whose config equals the sweep
    run's (lr, seed) apart from its length — same data, model, seed, clip, dropout, batching and
    probe — and whose checkpoints include the sweep's is cut to the sweep's length instead of
    being trained again: training is deterministic given the seed, so its first ``steps`` steps
    *are* that run (tests/test_lm.py checks this). ``SweepResult.reused`` lists those (lr, seed).
    The others train side by side in ``workers`` processes (:func:`train_many`; ``progress``
    then shows nothing until they are done).
    """
    lrs = as_float_list("lrs", lrs, low=0.0)
    size = check_choice("size", size, SIZES)
    cfg = SIZES[size]
    last = check_int("last", cfg["sweep_last"] if last is None else last, low=1)
    seeds = as_int_list("seeds", cfg["sweep_seeds"] if seeds is None else seeds, low=0)
    steps = cfg["sweep_steps"] if steps is None else check_int("steps", steps, low=1)
    if isinstance(reuse, LMRun) or not all(isinstance(r, LMRun) for r in reuse):
        raise TypeError("reuse must be a sequence of LMRun")
    knobs.setdefault("checkpoint_every", cfg["sweep_every"])
    if corpus is None:
        corpus = load_corpus(max_size=knobs.pop("max_vocab", None) or cfg["max_vocab"])
    if not isinstance(corpus, Corpus):
        raise TypeError(f"corpus must be a Corpus or None, got {type(corpus).__name__}")
    base = LMConfig.for_size(size, nlayers=nlayers, steps=steps, **knobs)
    workers = default_workers(base.device) if workers is None else \
        check_int("workers", workers, low=1)
    axis = base.checkpoints()
    if last > len(axis):
        raise ValueError(f"last must be at most the number of checkpoints ({len(axis)}), "
                         f"got {last}")
    measure_rows = corpus.measure_ids.numel() // base.batch_size  # batchify's rows
    data_id = _fingerprint(corpus.train_ids, corpus.measure_ids)
    start = time.perf_counter()
    found: dict[tuple[float, int], LMRun] = {}
    missing: list[LMConfig] = []
    for lr in lrs:
        for seed in seeds:
            want = dataclasses.replace(base, lr=lr, seed=seed)
            want = dataclasses.replace(want, probe_index=_probe_index(want, measure_rows))
            match = _matching_run(reuse, want, len(corpus.vocab), data_id)
            if match is None:
                missing.append(want)
            else:
                found[lr, seed] = match
    reused = list(found)
    with tqdm(total=len(missing), desc="lr sweep", disable=not progress or not missing,
              leave=False) as bar:
        if min(workers, len(missing)) <= 1:
            trained = []
            for want in missing:  # one at a time, with a progress bar
                trained.append(train_lm(corpus, size=size, progress=False,
                                        **dataclasses.asdict(want)))
                bar.update(1)
        else:
            trained = train_many(corpus, [dataclasses.asdict(w) for w in missing], size=size,
                                 workers=workers)
            bar.update(len(missing))
    found |= {(want.lr, want.seed): run for want, run in zip(missing, trained)}
    curves_t = torch.stack([torch.stack([found[lr, seed].entropy[: len(axis)] for seed in seeds])
                            for lr in lrs])  # [lrs, seeds, S]
    final = curves_t[..., -last:].mean(-1)
    std = final.std(-1, unbiased=True) if len(seeds) > 1 else torch.zeros(len(lrs))
    return SweepResult(lrs, seeds, final, final.mean(-1), std, torch.tensor(axis), curves_t, last,
                       time.perf_counter() - start,
                       {"nlayers": nlayers, "steps": steps, "size": size, **knobs}, reused)


def _matching_run(reuse: Sequence[LMRun], want: LMConfig, vocab_size: int,
                  data_id: tuple[int, ...]) -> LMRun | None:
    """The first run in ``reuse`` that ``want`` starts (:meth:`LMConfig.starts`) on the same
    vocabulary and data, or None."""
    for run in reuse:
        if want.starts(run.config) and run.vocab_size == vocab_size and run.data_id == data_id:
            return run
    return None
