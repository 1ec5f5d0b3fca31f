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

import inspect
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ._validate import (
    as_float_list, as_int_list, check_bool, check_choice, check_float, check_int, check_memory,
    check_seed, check_tensor,
)
from .wikitext import Corpus, Vocab, batchify, get_batch, load_corpus, tokenize

__all__ = [
    "SIZES", "SIZE_ENV", "chapter_size", "default_device", "WikiLM", "LMRun", "SweepResult",
    "SentenceAttention", "causal_mask", "causal_attention", "attention_entropy", "row_entropy",
    "uniform_entropy", "uniform_attention", "self_mass", "offset_profile", "top_weight",
    "top_key_agreement", "row_change", "key_mass", "TOKEN_GROUPS", "token_group_shares",
    "train_lm", "lr_sweep", "sentence_attention",
]

# Named run sizes (chapter 6 picks one with :func:`chapter_size`).
#   "ci": the size the book is built at on a 2-core CPU: a 2k vocabulary cap (PAPER.md B.8a: the
#         vocabulary-sized decoder dominates the cost, and a 2k cap still shows the effect) and
#         the paper's 1500 iterations for Fig 7's 1-layer and 3-layer models (a 3-layer step
#         costs about twice a 1-layer one); a short Fig 10 sweep (300 steps, one seed: it already
#         orders lr 1..5) and a short run of the notebook's FFN-lr-10 variant. About 4.5 minutes
#         of one (shared) CPU core in all (chapter 6).
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


ENTROPY_EPS = 1e-8  # as the authors' decoder_wiki.py: -sum a log(a + 1e-8)


def causal_mask(length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Float ``[L, L]`` mask: 0 on and below the diagonal, -inf above (position attends to self)."""
    return torch.triu(torch.full((length, length), float("-inf"), device=device), diagonal=1)


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean over all leading axes and queries of ``-Σ_k a log(a + 1e-8)`` (decoder_wiki.py)."""
    return -(weights * torch.log(weights + ENTROPY_EPS)).sum(-1).mean()


def causal_attention(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Single-head causal attention weights ``softmax(q kᵀ/√d + mask)`` as the authors' model
    computes them: ``q, k [..., L, d]`` → ``[..., L, L]``; query ``i`` attends to keys ``0..i``,
    *itself included* (the ``triu(-inf, 1)`` mask of PAPER.md B.8; the theory excludes the
    query)."""
    q = check_tensor("q", q)
    k = check_tensor("k", k)
    if q.ndim < 2 or q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape [..., L, d], got {list(q.shape)} and "
                         f"{list(k.shape)}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores + causal_mask(q.shape[-2], q.device).to(scores.dtype), dim=-1)


def _maps(name: str, maps: torch.Tensor) -> torch.Tensor:
    maps = check_tensor(name, maps)
    if maps.ndim < 2 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"{name} must be attention maps [..., L, L], got shape {list(maps.shape)}")
    if maps.shape[-1] < 2:
        raise ValueError(f"{name} must have at least 2 positions, got L = {maps.shape[-1]}")
    return maps


def row_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each attention row, ``-Σ_k a log(a + 1e-8)``:
    ``[..., L, L]`` → ``[..., L]``."""
    weights = _maps("weights", weights)
    return -(weights * torch.log(weights + ENTROPY_EPS)).sum(-1)


def uniform_entropy(length: int) -> float:
    """Mean row entropy of *uniform* causal attention over ``length`` positions, self included:
    row ``i`` spreads over ``i + 1`` keys, so the mean is ``(1/L) Σ_i ln(i+1) = ln(L!)/L`` —
    the ceiling of :func:`attention_entropy` for the authors' mask."""
    length = check_int("length", length, low=1)
    return math.lgamma(length + 1) / length


def uniform_attention(length: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniform causal attention ``[L, L]``, self included: row ``i`` puts ``1/(i+1)`` on keys
    ``0..i`` — the content-blind baseline of the statistics below (e.g. ``self_mass`` of it is
    the self-weight a rule ignoring the tokens would give)."""
    length = check_int("length", length, low=1)
    uniform = torch.ones(length, length, dtype=dtype).tril()
    return uniform / uniform.sum(-1, keepdim=True)


def self_mass(maps: torch.Tensor) -> float:
    """Mean weight a query puts on *itself* (the diagonal), over rows ``1..L-1`` and all leading
    axes (row 0 can attend only to itself). The theory's query never attends to itself."""
    maps = _maps("maps", maps)
    return float(maps.diagonal(dim1=-2, dim2=-1)[..., 1:].mean())


def offset_profile(maps: torch.Tensor, max_offset: int = 5) -> torch.Tensor:
    """Mean weight on the key ``k`` positions back (``k = 0`` self, ``1`` the previous token, ...),
    ``k = 0..max_offset``, over the rows ``i >= max_offset`` (which have all these keys) and all
    leading axes. A content-only rule (the theory: no positional encoding) has no reason to favour
    any offset; a peak at small ``k`` is a positional rule."""
    maps = _maps("maps", maps)
    L = maps.shape[-1]
    max_offset = check_int("max_offset", max_offset, low=0, high=L - 1)
    rows = torch.arange(max_offset, L)
    return torch.stack([maps[..., rows, rows - k].mean() for k in range(max_offset + 1)])


def top_weight(maps: torch.Tensor) -> float:
    """Mean over rows ``1..L-1`` (and leading axes) of each row's largest weight: 1 is one-hot."""
    maps = _maps("maps", maps)
    return float(maps[..., 1:, :].amax(-1).mean())


def top_key_agreement(before: torch.Tensor, after: torch.Tensor) -> float:
    """Fraction of rows ``1..L-1`` whose most-attended key is the same in ``before`` and ``after``
    (two maps of the same queries, e.g. two checkpoints): 1 means the attended tokens froze."""
    before, after = _maps("before", before), _maps("after", after)
    if before.shape != after.shape:
        raise ValueError(f"before and after must have the same shape, got {list(before.shape)} and "
                         f"{list(after.shape)}")
    return float((before[..., 1:, :].argmax(-1) == after[..., 1:, :].argmax(-1)).float().mean())


def row_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """Mean total-variation distance ``½ Σ_k |a_k - b_k|`` between matching rows ``1..L-1``:
    0 when nothing moved, 1 when every row moved all its weight elsewhere."""
    before, after = _maps("before", before), _maps("after", after)
    if before.shape != after.shape:
        raise ValueError(f"before and after must have the same shape, got {list(before.shape)} and "
                         f"{list(after.shape)}")
    return float(0.5 * (before[..., 1:, :] - after[..., 1:, :]).abs().sum(-1).mean())


def key_mass(maps: torch.Tensor, key_ids: torch.Tensor, ids: Sequence[int]) -> tuple[float, float]:
    """Share of attention on keys whose token id is in ``ids``, and the same share under uniform
    causal attention (the baseline a content-blind rule would give).

    ``maps [..., B, L, L]`` with ``key_ids [B, L]`` (the token at each key position; transpose a
    run's ``probe_ids``). Rows ``1..L-1`` are averaged. With the vocabulary sorted by frequency
    (:func:`scansnap.wikitext.build_vocab`), ``ids=range(1, 21)`` are the 20 most frequent words
    and ``ids=[0]`` is ``<unk>``.
    """
    maps = _maps("maps", maps)
    key_ids = check_tensor("key_ids", key_ids, ndim=2)
    if maps.ndim < 3 or tuple(maps.shape[-3:-1]) != tuple(key_ids.shape):
        raise ValueError(f"key_ids must be [B, L] matching maps [..., B, L, L], got "
                         f"{list(key_ids.shape)} and {list(maps.shape)}")
    ids = as_int_list("ids", ids, low=0)
    chosen = torch.isin(key_ids, torch.tensor(ids)).to(maps.dtype)  # [B, L]
    mass = (maps[..., 1:, :] * chosen[:, None, :]).sum(-1).mean()
    uniform = uniform_attention(maps.shape[-1], maps.dtype)
    baseline = (uniform[1:] @ chosen.T).mean()  # [L-1, B]
    return float(mass), float(baseline)


TOKEN_GROUPS = {"<unk>": (0, 1), "20 most frequent words": (1, 21),
                "rare words (rank ≥ 500)": (500, None)}


def token_group_shares(run: LMRun, layer: int = 0,
                       groups: Mapping[str, tuple[int, int | None]] = TOKEN_GROUPS
                       ) -> dict[str, tuple[torch.Tensor, float]]:
    """For each group of vocabulary ranks ``[lo, hi)`` (ids are frequency ranks, ``<unk>`` is 0;
    ``hi=None``: to the end), the attention share of the group's keys at every checkpoint of
    ``run`` (``[S]``) and under uniform causal attention (:func:`key_mass` on the probe batch).

    Groups with no rank inside the vocabulary are left out. A share above the uniform one means
    the layer favours those tokens. The theory's common
    tokens (seen before many different next tokens) are best approximated in text by the most
    frequent words, its distinct tokens by rare ones."""
    if not isinstance(run, LMRun):
        raise TypeError(f"run must be an LMRun, got {type(run).__name__}")
    layer = check_int("layer", layer, low=0, high=run.probe_maps.shape[1] - 1)
    vocab = run.config["vocab_size"]
    key_ids = run.probe_ids.T
    out = {}
    for name, (lo, hi) in groups.items():
        lo = check_int(f"groups[{name!r}] start", lo, low=0)
        hi = vocab if hi is None else min(check_int(f"groups[{name!r}] end", hi, low=0), vocab)
        ids = list(range(lo, hi))
        if not ids:  # e.g. rank >= 500 in a smaller vocabulary: left out
            continue
        shares = [key_mass(run.probe_maps[s, layer], key_ids, ids) for s in range(len(run.steps))]
        out[name] = (torch.tensor([m for m, _ in shares]), shares[0][1])
    return out


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
    ``probe_maps`` [S, layers, B, L, L]: attention of every column of the probe batch, whose
    token ids are ``probe_ids`` [L, B]; ``maps`` [S, layers, L, L] (a view of it): column 0
    alone, Fig 7's 35×35 maps.
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
    config: dict[str, Any]
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


def _default_probe_index(measure_rows: int, bptt: int) -> int:
    """Row ``100·bptt`` of the batchified measure split (as the notebook), moved back to the last
    full chunk when the split is shorter."""
    return min(100 * bptt, measure_rows - 1 - bptt)


def _fingerprint(train_ids: torch.Tensor, measure_ids: torch.Tensor) -> list[int]:
    """A cheap identity of the data (lengths and id sums): runs on other data never match."""
    return [int(train_ids.numel()), int(train_ids.sum()), int(measure_ids.numel()),
            int(measure_ids.sum())]


BLOW_UP_FACTOR = 10.0
"""A loss above this many times ``log(ntoken)`` (a uniform guess) counts as diverged. Measured
with the authors' clip 0.5: on WikiText-2 (2k vocabulary, 300 steps) lr 5 peaks at 1.7× and
lr 5 with ffn_lr 10 at 1.5×; on random ids lr 1–10 stay below 1.6×, lr 50 reaches 55× and
lr 1e4 about 10⁶×."""


def _blew_up(losses: torch.Tensor, ntoken: int) -> bool:
    """Whether any loss is non-finite or above :data:`BLOW_UP_FACTOR` × ``log(ntoken)``."""
    return not bool((losses <= BLOW_UP_FACTOR * math.log(ntoken)).all())


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
    on_divergence: str = "raise",
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

    Divergence, as :func:`~scansnap.dynamics.train`: a training loss that is non-finite or above
    :data:`BLOW_UP_FACTOR` × ``log(ntoken)`` (that many times the loss of a uniform guess) is
    looked for at every checkpoint. ``on_divergence="raise"`` then raises ``FloatingPointError``
    naming ``lr``; ``"flag"`` finishes the run and sets ``LMRun.diverged``.
    """
    cfg = _resolve_size(size, steps=steps, max_vocab=max_vocab, checkpoint_every=checkpoint_every)
    steps = check_int("steps", cfg["steps"], low=1)
    every = check_int("checkpoint_every", cfg["checkpoint_every"], low=1)
    nlayers = check_int("nlayers", nlayers, low=1)
    lr = check_float("lr", lr, low=0.0)
    ffn_lr = None if ffn_lr is None else check_float("ffn_lr", ffn_lr, low=0.0)
    clip = check_float("clip", clip, low=0.0, low_open=True)
    seed = check_seed("seed", seed)
    batch_size = check_int("batch_size", batch_size, low=1)
    bptt = check_int("bptt", bptt, low=1)
    progress = check_bool("progress", progress)
    on_divergence = check_choice("on_divergence", on_divergence, ("raise", "flag"))
    device = check_choice("device", default_device(size) if device is None else device,
                          ("cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device must be 'cpu' here: CUDA is not available")

    train_ids, meas_ids, ntoken, vocab, note = _data(corpus_or_ids, cfg["max_vocab"], measure_ids,
                                                     vocab_size)
    width = inspect.signature(WikiLM).parameters["d_model"].default
    check_memory({"vocab_size (the model's ntoken)": 4.0 * ntoken * (4 * width
                                                                    + 3 * batch_size * bptt)},
                 device)  # float32 embedding and decoder with gradients; logits and their grad
    source = batchify(train_ids, batch_size).to(device)
    starts = list(range(0, source.size(0) - bptt, bptt))  # full windows only: fixed shapes
    if not starts:
        raise ValueError(f"the training split is too short for batch_size={batch_size}, bptt={bptt}")
    measure = batchify(meas_ids, batch_size).to(device)
    last_start = measure.size(0) - 1 - bptt
    if last_start < 0:
        raise ValueError(f"the measure split is too short for batch_size={batch_size}, bptt={bptt}")
    probe_index = _default_probe_index(measure.size(0), bptt) if probe_index is None else \
        check_int("probe_index", probe_index, low=0, high=last_start)
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
                            maps.float().cpu()))

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
                if on_divergence == "raise" and _blew_up(train_loss[:step + 1], ntoken):
                    bar.close()
                    raise FloatingPointError(
                        f"the training loss diverged by step {step + 1} (non-finite or above "
                        f"{BLOW_UP_FACTOR} × log(ntoken)) at lr={lr:g}"
                        + ("" if ffn_lr is None else f", ffn_lr={ffn_lr:g}")
                        + "; lower lr, or pass on_divergence='flag' to keep the run")
            bar.update(1)
        bar.close()
        seconds = time.perf_counter() - start

    model.eval()
    probe_tokens = (vocab.lookup_tokens(probe_data[:, 0].tolist()) if vocab is not None
                    else [str(i) for i in probe_data[:, 0].tolist()])
    config = {"nlayers": nlayers, "lr": lr, "ffn_lr": ffn_lr, "clip": clip, "steps": steps,
              "checkpoint_every": every, "seed": seed, "vocab_size": ntoken, "size": size,
              "dropout": dropout, "batch_size": batch_size, "bptt": bptt,
              "probe_index": probe_index, "device": device,
              "data": _fingerprint(train_ids, meas_ids)}
    return LMRun(
        steps=torch.tensor([r[0] for r in records]),
        loss=torch.tensor([r[1] for r in records]),
        probe_loss=torch.tensor([r[2] for r in records]),
        entropy=torch.stack([r[3][0] for r in records]),
        entropy_layers=torch.stack([r[3] for r in records]),
        probe_maps=torch.stack([r[4] for r in records]),
        train_loss=train_loss.cpu(),
        probe_tokens=probe_tokens,
        probe_ids=probe_data.cpu(),
        model=model.cpu(),
        vocab=vocab,
        config=config,
        note=note,
        seconds=seconds,
        diverged=_blew_up(train_loss, ntoken),
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
    **train_kwargs: Any,
) -> SweepResult:
    """Fig 10 (App. G): train one model per (lr, seed) with a single constant lr; final entropy.

    Runs are sequential in one process: measured on 2 cores, two single-thread processes side by
    side gain only ≈1.3× (PAPER.md B.8a), not worth a process pool in a notebook. ``steps``,
    ``seeds``, ``last`` and the checkpoint interval default to the size's ``sweep_steps``,
    ``sweep_seeds``, ``sweep_last`` and ``sweep_every``; the ``last`` checkpoints are averaged
    into the "final" entropy (B.8a used steps 1300–1500).

    ``reuse``: runs already trained (e.g. Fig 7's lr-5 run). A run whose settings match a
    (lr, seed) of the sweep — same data, model, seed, clip, dropout, batching and probe — and whose
    checkpoints include the sweep's is cut to the sweep's length instead of being trained again:
    training is deterministic given the seed, so its first ``steps`` steps *are* that run
    (tests/test_lm.py checks this). ``SweepResult.reused`` lists those (lr, seed).
    """
    lrs = as_float_list("lrs", lrs, low=0.0)
    cfg = _resolve_size(size)
    last = check_int("last", cfg["sweep_last"] if last is None else last, low=1)
    seeds = as_int_list("seeds", cfg["sweep_seeds"] if seeds is None else seeds, low=0)
    steps = cfg["sweep_steps"] if steps is None else check_int("steps", steps, low=1)
    if isinstance(reuse, LMRun) or not all(isinstance(r, LMRun) for r in reuse):
        raise TypeError("reuse must be a sequence of LMRun")
    train_kwargs.setdefault("checkpoint_every", cfg["sweep_every"])
    every = check_int("checkpoint_every", train_kwargs["checkpoint_every"], low=1)
    axis = list(range(0, steps + 1, every)) + ([steps] if steps % every else [])
    if corpus is None:
        corpus = load_corpus(max_size=train_kwargs.pop("max_vocab", None) or cfg["max_vocab"])
    start = time.perf_counter()
    curves, reused = [], []
    bar = tqdm(total=len(lrs) * len(seeds), desc="lr sweep", disable=not progress, leave=False)
    for lr in lrs:
        row = []
        for seed in seeds:
            match = _matching_run(reuse, axis, corpus, nlayers, lr, seed, size, train_kwargs)
            if match is not None:
                row.append(match.entropy[: len(axis)])
                reused.append((lr, seed))
            else:
                run = train_lm(corpus, nlayers, lr=lr, seed=seed, steps=steps, size=size,
                               progress=False, **train_kwargs)
                row.append(run.entropy)
            bar.update(1)
        curves.append(torch.stack(row))
    bar.close()
    curves_t = torch.stack(curves)  # [lrs, seeds, S]
    final = curves_t[..., -last:].mean(-1)
    std = final.std(-1, unbiased=True) if len(seeds) > 1 else torch.zeros(len(lrs))
    return SweepResult(lrs, seeds, final, final.mean(-1), std, torch.tensor(axis), curves_t, last,
                       time.perf_counter() - start,
                       {"nlayers": nlayers, "steps": steps, "size": size, **train_kwargs},
                       reused)


def _matching_run(reuse: Sequence[LMRun], axis: list[int], corpus: Corpus, nlayers: int,
                  lr: float, seed: int, size: str, train_kwargs: dict[str, Any]) -> LMRun | None:
    """The first run in ``reuse`` that is the sweep's run (lr, seed) continued, or None."""
    kw = {name: param.default for name, param in inspect.signature(train_lm).parameters.items()
          if name in ("ffn_lr", "clip", "dropout", "batch_size", "bptt", "probe_index", "device")}
    kw |= {name: train_kwargs[name] for name in kw if name in train_kwargs}
    if kw["probe_index"] is None:  # train_lm's default (batchify keeps numel // batch_size rows)
        kw["probe_index"] = _default_probe_index(
            corpus.measure_ids.numel() // kw["batch_size"], kw["bptt"])
    if kw["device"] is None:
        kw["device"] = default_device(size)
    want = {"nlayers": nlayers, "lr": lr, "seed": seed, **kw, "vocab_size": len(corpus.vocab),
            "data": _fingerprint(corpus.train_ids, corpus.measure_ids)}
    for run in reuse:
        if all(run.config.get(k) == v for k, v in want.items()) and \
                run.steps[: len(axis)].tolist() == axis:
            return run
    return None


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
