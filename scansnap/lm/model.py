"""The authors' WikiText-2 language model (PAPER.md B.8): positions, causal mask, ``WikiLM``.

The model is the one in the authors' ``scan_snap/figure_7.ipynb`` (the PyTorch ``nn.Transformer``
tutorial): token embedding of width 200 scaled by √200, sinusoidal positions with dropout,
``nlayers`` post-LN encoder layers (1 head, FFN 200, ReLU, dropout), a causal mask that lets each
position attend to itself and earlier positions, and a linear decoder to the vocabulary.

Training runs through torch's own ``nn.TransformerEncoderLayer``, whose attention goes through the
fused ``scaled_dot_product_attention`` kernel (``is_causal=True``, no weights materialized).
:meth:`WikiLM.probe` runs the *same* forward pass with hooks that ask each attention module for
its weights, so the recorded maps are those of the real forward (tests compare them with a
hand-written ``softmax(QKᵀ/√d + mask)``). This is the lowest floor of :mod:`scansnap.lm`: the
training loop and the statistics import from here, never the other way round.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .._validate import check_float, check_int, check_tensor

__all__ = ["D_MODEL", "PositionalEncoding", "WikiLM", "causal_mask", "causal_attention",
           "linear_cross_entropy", "training_bytes"]

D_MODEL = 200  # the authors' width (embedding, attention and FFN)


def causal_mask(length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Float ``[L, L]`` mask: 0 on and below the diagonal, -inf above (position attends to self)."""
    return torch.triu(torch.full((length, length), float("-inf"), device=device), diagonal=1)


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
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [..., L, L]
    return torch.softmax(scores + causal_mask(q.shape[-2], q.device).to(scores.dtype), dim=-1)


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weightᵀ + bias`` against ``targets``, with a hand-written
    backward: the gradient of the logits is ``(softmax − onehot) / N``, formed in one pass over
    the saved logits (torch's log_softmax backward and the zero-filled nll_loss gradient take
    about a third of a training step at the CI size, PAPER.md B.8a)."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
        logits = torch.addmm(bias, hidden, weight.t())  # [N, V]
        lse = torch.logsumexp(logits, dim=1)  # [N]
        loss = (lse - logits.gather(1, targets[:, None])[:, 0]).mean()
        ctx.save_for_backward(hidden, weight, logits, lse, targets)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, logits, lse, targets = ctx.saved_tensors
        grad = (logits - lse[:, None]).exp_()  # [N, V] softmax
        grad[torch.arange(len(targets), device=grad.device), targets] -= 1.0
        grad.mul_(grad_loss / len(targets))  # d loss / d logits
        return grad @ weight, grad.t() @ hidden, grad.sum(0), None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         targets: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(F.linear(hidden, weight, bias), targets)`` (mean over the ``N`` rows of
    ``hidden [N, d]``; ``weight [V, d]``, ``targets [N]``) with a one-pass backward: the same
    loss and gradients (tests/test_lm.py compares them), faster on a CPU."""
    return _LinearCrossEntropy.apply(hidden, weight, bias, targets)


class PositionalEncoding(nn.Module):
    """Sinusoidal positions (Vaswani et al.) added to ``[L, B, d]`` inputs, then dropout."""

    def __init__(self, d_model: int, dropout: float, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len).unsqueeze(1)  # [max_len, 1]
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)  # [max_len, 1, d]
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.pe[: x.size(0)])  # [L, B, d]


def training_bytes(ntoken: int, tokens_per_batch: int, d_model: int = D_MODEL) -> float:
    """Bytes of the vocabulary-sized tensors of one training step: the float32 embedding and
    decoder with their gradients, the logits and their gradient (the rest is O(d²))."""
    return 4.0 * ntoken * (4 * d_model + 3 * tokens_per_batch)


class WikiLM(nn.Module):
    """The authors' causal Transformer LM (PAPER.md B.8), sequence-first ``[L, B]`` like the tutorial.

    ``forward(src) -> logits [L, B, V]``; ``probe(src) -> (logits, weights [layers, B, L, L])``.
    """

    def __init__(
        self,
        ntoken: int,
        nlayers: int = 1,
        *,
        d_model: int = D_MODEL,
        nhead: int = 1,
        d_hid: int = D_MODEL,
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

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        """The last layer's output ``[L, B, d]`` for token ids ``src [L, B]`` (before the decoder)."""
        x = self.pos_encoder(self.embedding(src) * math.sqrt(self.d_model))  # [L, B, d]
        mask = self._mask(src.size(0), src.device)  # [L, L]
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)  # [L, B, d]; is_causal: SDPA's kernel
        return x

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(src))  # [L, B, V]

    def loss(self, src: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy of ``src [L, B]`` against ``targets [L*B]`` (the
        training objective; :func:`linear_cross_entropy` fuses the decoder into it)."""
        hidden = self.encode(src).reshape(-1, self.d_model)  # [L*B, d]
        return linear_cross_entropy(hidden, self.decoder.weight, self.decoder.bias, targets)

    @torch.no_grad()
    def probe(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[L, B, V]`` and head-averaged attention weights ``[layers, B, L, L]``.

        Runs :meth:`forward` itself; a forward pre-hook on every layer's attention module asks
        it for its (head-averaged) weights and a forward hook keeps them, so the maps are those
        of the real forward pass. Run it in eval mode: in training mode dropout draws masks.
        """
        maps: list[torch.Tensor] = []

        def want_weights(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
                         ) -> tuple[tuple[Any, ...], dict[str, Any]]:
            return args, kwargs | {"need_weights": True, "average_attn_weights": True}

        def keep_weights(_module: nn.Module, _args: Any, output: tuple[torch.Tensor, Any]) -> None:
            maps.append(output[1])  # [B, L, L]

        handles = [h for layer in self.layers for h in (
            layer.self_attn.register_forward_pre_hook(want_weights, with_kwargs=True),
            layer.self_attn.register_forward_hook(keep_weights))]
        try:
            logits = self(src)
        finally:
            for handle in handles:
                handle.remove()
        if len(maps) != self.nlayers or any(m is None for m in maps):
            # torch's fused inference path would bypass the attention modules; it needs
            # batch_first layers, which this sequence-first model never builds.
            raise RuntimeError("the attention modules did not return their weights")
        return logits, torch.stack(maps)
