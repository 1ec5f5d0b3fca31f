"""The authors' WikiText-2 language model and its training loop (PAPER.md B.8 / Fig 7, B.9 / Fig 10).

The model is the one in the authors' ``scan_snap/figure_7.ipynb`` (the PyTorch ``nn.Transformer``
tutorial): token embedding of width 200 scaled by √200, sinusoidal positions with dropout,
``nlayers`` post-LN encoder layers (1 head, FFN 200, ReLU, dropout), a causal mask that lets each
position attend to itself and earlier positions, and a linear decoder to the vocabulary.

Training runs through torch's own ``nn.TransformerEncoderLayer``, whose attention goes through the
fused ``scaled_dot_product_attention`` kernel (``is_causal=True``, no weights materialized).
Attention maps are *not* taken from the training pass: at each checkpoint :meth:`WikiLM.probe`
re-runs the fixed probe batch in eval mode, layer by layer, asking each attention module for its
weights. That keeps the hot path fast and the recorded maps exact (tests compare them with a
hand-written ``softmax(QKᵀ/√d + mask)``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ._validate import as_float_list, as_int_list, check_bool, check_choice, check_float, check_int
from .wikitext import Corpus, Vocab, batchify, get_batch, load_corpus, tokenize

__all__ = [
    "SIZES", "WikiLM", "LMRun", "SweepResult", "SentenceAttention", "causal_mask",
    "attention_entropy", "train_lm", "lr_sweep", "sentence_attention",
]

# Named run sizes. "ci" reproduces the fall-then-plateau of Fig 7 on a 2-core CPU in well under a
# minute per 1-layer run (PAPER.md B.8a: the vocabulary-sized decoder dominates the cost, and a
# 2k cap still shows the effect); "paper" is the authors' setting (full vocabulary, 2000 steps:
# checkpoints 0..1900 as in the notebook) and uses the GPU when there is one; "quick" is a smoke
# test. ``sweep_steps``/``sweep_every``: run length and checkpoint interval of the Fig 10 sweep
# (at the CI size, 400 steps × 10 runs ≈ 2 min on 2 cores and already orders lr 1..5 cleanly).
SIZES: dict[str, dict[str, Any]] = {
    "quick": {"max_vocab": 500, "steps": 150, "checkpoint_every": 50,
              "sweep_steps": 100, "sweep_every": 25},
    "ci": {"max_vocab": 2000, "steps": 1500, "checkpoint_every": 100,
           "sweep_steps": 400, "sweep_every": 50},
    "paper": {"max_vocab": None, "steps": 2000, "checkpoint_every": 100,
              "sweep_steps": 2000, "sweep_every": 100},
}
ENTROPY_EPS = 1e-8  # as the authors' decoder_wiki.py: -sum a log(a + 1e-8)


def causal_mask(length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Float ``[L, L]`` mask: 0 on and below the diagonal, -inf above (position attends to self)."""
    return torch.triu(torch.full((length, length), float("-inf"), device=device), diagonal=1)


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean over all leading axes and queries of ``-Σ_k a log(a + 1e-8)`` (decoder_wiki.py)."""
    return -(weights * torch.log(weights + ENTROPY_EPS)).sum(-1).mean()


class PositionalEncoding(nn.Module):
    """Sinusoidal positions (Vaswani et al.) added to ``[L, B, d]`` inputs, then dropout."""

    def __init__(self, d_model: int, dropout: float, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.pe[: x.size(0)])


class WikiLM(nn.Module):
    """The authors' causal Transformer LM (PAPER.md B.8), sequence-first ``[L, B]`` like the tutorial.

    ``forward(src) -> logits [L, B, V]``; ``probe(src) -> (logits, weights [layers, B, L, L])``.
    """

    def __init__(
        self,
        ntoken: int,
        nlayers: int = 1,
        *,
        d_model: int = 200,
        nhead: int = 1,
        d_hid: int = 200,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.ntoken = check_int("ntoken", ntoken, low=2)
        self.nlayers = check_int("nlayers", nlayers, low=1)
        self.d_model = check_int("d_model", d_model, low=2)
        nhead = check_int("nhead", nhead, low=1)
        if d_model % nhead:
            raise ValueError(f"d_model must be divisible by nhead={nhead}, got {d_model}")
        dropout = check_float("dropout", dropout, low=0.0, high=1.0)
        self.embedding = nn.Embedding(ntoken, d_model)
        self.pos_encoder = PositionalEncoding(d_model, dropout)
        # Stock post-LN layers: their training path calls scaled_dot_product_attention (fused).
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout, activation="relu")
            for _ in range(nlayers)
        )
        self.decoder = nn.Linear(d_model, ntoken)
        # Authors' init: embedding and decoder U(-0.1, 0.1), decoder bias 0. The attention in/out
        # projections keep nn.MultiheadAttention's own init: xavier_uniform weights, zero biases.
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        self._masks: dict[tuple[int, str], torch.Tensor] = {}

    def _mask(self, length: int, device: torch.device) -> torch.Tensor:
        key = (length, str(device))
        if key not in self._masks:
            self._masks[key] = causal_mask(length, device)
        return self._masks[key]

    def _embed(self, src: torch.Tensor) -> torch.Tensor:
        return self.pos_encoder(self.embedding(src) * math.sqrt(self.d_model))

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        x = self._embed(src)
        mask = self._mask(src.size(0), src.device)
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)  # is_causal: SDPA's causal kernel
        return self.decoder(x)

    @torch.no_grad()
    def probe(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[L, B, V]`` and head-averaged attention weights ``[layers, B, L, L]``.

        The same post-LN computation as :meth:`forward`, written out per layer so that each
        attention module returns its weights. Run it in eval mode: with dropout active the two
        paths draw different masks.
        """
        x = self._embed(src)
        mask = self._mask(src.size(0), src.device)
        maps = []
        for layer in self.layers:
            attended, weights = layer.self_attn(
                x, x, x, attn_mask=mask, need_weights=True, average_attn_weights=True
            )
            maps.append(weights)
            x = layer.norm1(x + layer.dropout1(attended))
            ff = layer.linear2(layer.dropout(layer.activation(layer.linear1(x))))
            x = layer.norm2(x + layer.dropout2(ff))
        return self.decoder(x), torch.stack(maps)


@dataclass
class LMRun:
    """One training run (PAPER.md B.8). Arrays are CPU tensors indexed by checkpoint ``S``.

    ``steps[s]`` updates had been made at checkpoint ``s``. ``loss``: mean training loss of the
    batches since the previous checkpoint (at step 0: the first batch, before any update).
    ``probe_loss``: loss on the fixed probe batch (eval mode). ``entropy``: layer-0 attention
    entropy on the probe batch; ``entropy_layers`` [S, layers] the same for every layer.
    ``maps`` [S, layers, L, L]: attention of the probe chunk's column 0 (Fig 7's 35×35 maps).
    """

    steps: torch.Tensor
    loss: torch.Tensor
    probe_loss: torch.Tensor
    entropy: torch.Tensor
    entropy_layers: torch.Tensor
    maps: torch.Tensor
    train_loss: torch.Tensor  # [steps] every step's training loss
    probe_tokens: list[str]  # the probe chunk's column 0, for axis labels
    model: WikiLM
    vocab: Vocab | None
    config: dict[str, Any]
    note: str
    seconds: float

    def map_at(self, step: int, layer: int = 0) -> torch.Tensor:
        """The recorded ``[L, L]`` map of ``layer`` at the checkpoint nearest to ``step``."""
        s = int((self.steps - step).abs().argmin())
        return self.maps[s, layer]


def _resolve_size(size: str, **given: Any) -> dict[str, Any]:
    """The size's defaults, overridden by every ``given`` value that is not None."""
    size = check_choice("size", size, SIZES)
    return SIZES[size] | {k: v for k, v in given.items() if v is not None}


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
        measure = ids if measure_ids is None else measure_ids
        need = int(max(ids.max(), measure.max())) + 1
        if int(min(ids.min(), measure.min())) < 0:
            raise ValueError("corpus_or_ids must hold non-negative token ids")
        n = need if vocab_size is None else check_int("vocab_size", vocab_size, low=need)
        return ids, measure, n, None, "Trained on the given token ids."
    raise TypeError(
        f"corpus_or_ids must be a Corpus, a 1-D int64 tensor or None, got {type(corpus_or_ids).__name__}"
    )


def train_lm(
    corpus_or_ids: Corpus | torch.Tensor | None = None,
    nlayers: int = 1,
    *,
    lr: float = 5.0,
    ffn_lr: float | None = None,
    clip: float = 0.5,
    steps: int | None = None,
    checkpoint_every: int | None = None,
    seed: int = 1,
    max_vocab: int | None = None,
    size: str = "ci",
    dropout: float = 0.2,
    batch_size: int = 20,
    bptt: int = 35,
    probe_index: int | None = None,
    measure_ids: torch.Tensor | None = None,
    vocab_size: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> LMRun:
    """Train the WikiText LM with the authors' optimizer and record attention (PAPER.md B.8/Fig 7).

    SGD without momentum at a constant ``lr`` (the authors' StepLR is never stepped), gradient
    norm clipped to ``clip``, cross-entropy, batches of ``batch_size`` columns × ``bptt`` tokens
    cycling through the training split (full windows only). ``ffn_lr`` puts layer 0's FFN
    (linear1/linear2) in its own group, as the Fig 7 notebook does with 10.

    ``size`` ("quick", "ci", "paper"; see :data:`SIZES`) fills ``steps``, ``max_vocab`` and
    ``checkpoint_every`` when they are None; "paper" also picks CUDA when available. The data:
    a :class:`~scansnap.wikitext.Corpus` (its training/measure policy), a 1-D id tensor, or None
    (located with :func:`~scansnap.wikitext.load_corpus`, vocabulary capped at ``max_vocab``).

    At step 0, every ``checkpoint_every`` steps and at the end, the fixed probe batch — the bptt
    chunk at row ``probe_index`` (default ``100·bptt`` as the notebook, moved back if the
    measure split is shorter) of the batchified measure split — is run through
    :meth:`WikiLM.probe` in eval mode to record loss, entropy and maps.
    """
    cfg = _resolve_size(size, steps=steps, max_vocab=max_vocab, checkpoint_every=checkpoint_every)
    steps = check_int("steps", cfg["steps"], low=1)
    every = check_int("checkpoint_every", cfg["checkpoint_every"], low=1)
    nlayers = check_int("nlayers", nlayers, low=1)
    lr = check_float("lr", lr, low=0.0)
    ffn_lr = None if ffn_lr is None else check_float("ffn_lr", ffn_lr, low=0.0)
    clip = check_float("clip", clip, low=0.0, low_open=True)
    seed = check_int("seed", seed, low=0)
    batch_size = check_int("batch_size", batch_size, low=1)
    bptt = check_int("bptt", bptt, low=1)
    progress = check_bool("progress", progress)
    if device is None:
        device = "cuda" if size == "paper" and torch.cuda.is_available() else "cpu"
    device = check_choice("device", device, ("cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device must be 'cpu' here: CUDA is not available")

    train_ids, meas_ids, ntoken, vocab, note = _data(corpus_or_ids, cfg["max_vocab"], measure_ids,
                                                     vocab_size)
    source = batchify(train_ids, batch_size).to(device)
    starts = list(range(0, source.size(0) - bptt, bptt))  # full windows only: fixed shapes
    if not starts:
        raise ValueError(f"the training split is too short for batch_size={batch_size}, bptt={bptt}")
    measure = batchify(meas_ids, batch_size).to(device)
    last_start = measure.size(0) - 1 - bptt
    if last_start < 0:
        raise ValueError(f"the measure split is too short for batch_size={batch_size}, bptt={bptt}")
    probe_index = min(100 * bptt, last_start) if probe_index is None else check_int(
        "probe_index", probe_index, low=0, high=last_start)
    probe_data, probe_targets = get_batch(measure, probe_index, bptt)

    # Own RNG stream: the run depends on `seed` only, and the caller's global state is restored.
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device == "cuda" else []):
        torch.manual_seed(seed)
        model = WikiLM(ntoken, nlayers, dropout=dropout).to(device)
        ffn = [] if ffn_lr is None else [p for m in (model.layers[0].linear1, model.layers[0].linear2)
                                         for p in m.parameters()]
        rest = [p for p in model.parameters() if all(p is not q for q in ffn)]
        groups = [{"params": rest, "lr": lr}] + ([{"params": ffn, "lr": ffn_lr}] if ffn else [])
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.0)
        criterion = nn.CrossEntropyLoss()
        train_loss = torch.zeros(steps, device=device)  # filled on device: no per-step sync
        records: list[tuple[int, float, float, torch.Tensor, torch.Tensor]] = []

        def checkpoint(step: int) -> None:
            model.eval()
            logits, maps = model.probe(probe_data)
            model.train()
            probe_loss = criterion(logits.view(-1, ntoken), probe_targets).item()
            window = train_loss[max(0, step - every) : step] if step else train_loss[:1]
            ent = [attention_entropy(m).item() for m in maps]
            records.append((step, float(window.mean()), probe_loss, torch.tensor(ent),
                            maps[:, 0].float().cpu()))

        start = time.perf_counter()
        model.train()
        bar = tqdm(total=steps, desc=f"WikiText LM {nlayers}L lr={lr:g}", disable=not progress,
                   leave=False)
        for step in range(steps):
            data, targets = get_batch(source, starts[step % len(starts)], bptt)
            loss = criterion(model(data).view(-1, ntoken), targets)
            train_loss[step] = loss.detach()
            if step == 0:
                checkpoint(0)  # uses the first batch's loss, before any update
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            if (step + 1) % every == 0 or step + 1 == steps:
                checkpoint(step + 1)
            bar.update(1)
        bar.close()
        seconds = time.perf_counter() - start

    model.eval()
    probe_tokens = (vocab.lookup_tokens(probe_data[:, 0].tolist()) if vocab is not None
                    else [str(i) for i in probe_data[:, 0].tolist()])
    config = {"nlayers": nlayers, "lr": lr, "ffn_lr": ffn_lr, "clip": clip, "steps": steps,
              "checkpoint_every": every, "seed": seed, "vocab_size": ntoken, "size": size,
              "dropout": dropout, "batch_size": batch_size, "bptt": bptt,
              "probe_index": probe_index, "device": device}
    return LMRun(
        steps=torch.tensor([r[0] for r in records]),
        loss=torch.tensor([r[1] for r in records]),
        probe_loss=torch.tensor([r[2] for r in records]),
        entropy=torch.stack([r[3][0] for r in records]),
        entropy_layers=torch.stack([r[3] for r in records]),
        maps=torch.stack([r[4] for r in records]),
        train_loss=train_loss.cpu(),
        probe_tokens=probe_tokens,
        model=model.cpu(),
        vocab=vocab,
        config=config,
        note=note,
        seconds=seconds,
    )


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


def lr_sweep(
    lrs: Sequence[float] = (1.0, 2.0, 3.0, 4.0, 5.0),
    seeds: Sequence[int] = (1, 2),
    *,
    corpus: Corpus | None = None,
    nlayers: int = 1,
    steps: int | None = None,
    size: str = "ci",
    last: int = 3,
    progress: bool = True,
    **train_kwargs: Any,
) -> SweepResult:
    """Fig 10 (App. G): train one model per (lr, seed) with a single constant lr; final entropy.

    Runs are sequential in one process: measured on 2 cores, two single-thread processes side by
    side gain only ≈1.3× (PAPER.md B.8a), not worth a process pool in a notebook. ``steps``
    defaults to the size's ``sweep_steps``; ``last`` checkpoints are averaged (B.8a used steps
    1300–1500, i.e. 3 checkpoints).
    """
    lrs = as_float_list("lrs", lrs, low=0.0)
    seeds = as_int_list("seeds", seeds, low=0)
    last = check_int("last", last, low=1)
    cfg = _resolve_size(size)
    steps = cfg["sweep_steps"] if steps is None else check_int("steps", steps, low=1)
    train_kwargs.setdefault("checkpoint_every", cfg["sweep_every"])
    if corpus is None:
        corpus = load_corpus(max_size=train_kwargs.pop("max_vocab", None) or cfg["max_vocab"])
    start = time.perf_counter()
    curves, step_axis = [], None
    bar = tqdm(total=len(lrs) * len(seeds), desc="lr sweep", disable=not progress, leave=False)
    for lr in lrs:
        row = []
        for seed in seeds:
            run = train_lm(corpus, nlayers, lr=lr, seed=seed, steps=steps, size=size,
                           progress=False, **train_kwargs)
            row.append(run.entropy)
            step_axis = run.steps
            bar.update(1)
        curves.append(torch.stack(row))
    bar.close()
    curves_t = torch.stack(curves)  # [lrs, seeds, S]
    final = curves_t[..., -last:].mean(-1)
    std = final.std(-1, unbiased=True) if len(seeds) > 1 else torch.zeros(len(lrs))
    return SweepResult(lrs, seeds, final, final.mean(-1), std, step_axis, curves_t, last,
                       time.perf_counter() - start,
                       {"nlayers": nlayers, "steps": steps, "size": size, **train_kwargs})


@dataclass
class SentenceAttention:
    """Attention of a trained model on one sentence: ``tokens`` and ``weights [layers, L, L]``."""

    tokens: list[str]
    ids: list[int]
    weights: torch.Tensor


def sentence_attention(model: WikiLM, vocab: Vocab, text: str, *, max_len: int = 64) -> SentenceAttention:
    """Tokenize ``text`` (basic_english) and return the model's per-layer attention on it.

    For the live widget: one probe pass on a single short sequence, a few milliseconds on CPU.
    Unknown words show as ``<unk>``; at most ``max_len`` tokens are kept.
    """
    if not isinstance(model, WikiLM):
        raise TypeError(f"model must be a WikiLM, got {type(model).__name__}")
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a Vocab, got {type(vocab).__name__}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    max_len = check_int("max_len", max_len, low=1, high=5000)
    words = tokenize(text)[:max_len]
    if not words:
        raise ValueError("text must contain at least one token")
    ids = vocab(words)
    if max(ids) >= model.ntoken:
        raise ValueError("vocab must match the model: it has more tokens than the model's ntoken")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    _, weights = model.probe(torch.tensor(ids, device=device).unsqueeze(1))
    model.train(was_training)
    return SentenceAttention(vocab.lookup_tokens(ids), ids, weights[:, 0].cpu())
