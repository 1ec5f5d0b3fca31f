"""Training throughput of the WikiText LM (scansnap.lm.WikiLM) vs a stock nn.TransformerEncoder LM.

Both are the same size (d 200, 1 head, FFN 200, post-LN, dropout 0.2, causal mask), trained with
the same SGD + clip step on the same random batches (20 × 35 tokens), in one process,
interleaved in rounds so that machine load hits both alike. Also times the attention probe
(one eval pass that returns [layers, B, 35, 35] weights) relative to a training step.

    python benchmarks/bench_lm.py [--vocab 2000] [--layers 1 3] [--steps 60] [--rounds 3]

Writes ``benchmarks/results/lm.{json,md}``, which book/reproducibility.md includes.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn

from _results import table, write
from scansnap.lm import WikiLM


class StockLM(nn.Module):
    """The PyTorch nn.Transformer tutorial's model: nn.TransformerEncoder, sequence-first."""

    def __init__(self, ntoken: int, nlayers: int, d: int = 200, dropout: float = 0.2) -> None:
        super().__init__()
        self.d = d
        self.embedding = nn.Embedding(ntoken, d)
        position = torch.arange(5000).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(5000, 1, d)
        pe[:, 0, 0::2], pe[:, 0, 1::2] = torch.sin(position * div), torch.cos(position * div)
        self.register_buffer("pe", pe)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d, 1, 200, dropout)
        self.encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.decoder = nn.Linear(d, ntoken)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embedding(src) * math.sqrt(self.d) + self.pe[: src.size(0)])
        mask = nn.Transformer.generate_square_subsequent_mask(src.size(0))
        return self.decoder(self.encoder(x, mask=mask))


def time_training(model: nn.Module, batches: list[torch.Tensor], ntoken: int) -> float:
    """Seconds per step, median over the batches (after the first, a warm-up)."""
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    crit = nn.CrossEntropyLoss()
    model.train()
    times = []
    for batch in batches:
        t = time.perf_counter()
        loss = crit(model(batch[:-1]).view(-1, ntoken), batch[1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def time_probe(model: WikiLM, batch: torch.Tensor, repeats: int = 20) -> float:
    model.eval()
    model.probe(batch)
    t = time.perf_counter()
    for _ in range(repeats):
        model.probe(batch)
    model.train()
    return (time.perf_counter() - t) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[2000, 12000])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tokens = 20 * 35
    rows, data = [], []
    for vocab in args.vocab:
        for nlayers in args.layers:
            torch.manual_seed(0)
            ours, stock = WikiLM(vocab, nlayers), StockLM(vocab, nlayers)
            g = torch.Generator().manual_seed(1)
            batches = [torch.randint(0, vocab, (36, 20), generator=g) for _ in range(args.steps)]
            t_ours, t_stock = [], []
            for _ in range(args.rounds):  # interleave: load changes hit both
                t_ours.append(time_training(ours, batches, vocab))
                t_stock.append(time_training(stock, batches, vocab))
            a, b = min(t_ours), min(t_stock)
            probe = time_probe(ours, batches[0][:-1])
            rows.append([vocab, nlayers, f"{tokens / a:,.0f}".replace(",", " "),
                         f"{tokens / b:,.0f}".replace(",", " "), f"{b / a:.2f}×",
                         f"{a * 1e3:.0f} ms", f"{probe / a:.2f}"])
            data.append({"vocab": vocab, "layers": nlayers, "step_s": a, "stock_step_s": b,
                         "probe_s": probe})
    markdown = f"""
Training steps of {tokens} tokens (20 × 35), best of {args.rounds} interleaved rounds of
{args.steps} steps:

{table(["vocabulary", "layers", "ours, tokens/s", "stock encoder, tokens/s", "ratio", "step",
        "probe / training step"], rows, "rrrrrrr")}
"""
    print(write("lm", markdown, {"runs": data}).read_text())


if __name__ == "__main__":
    main()
