"""Benchmark of the batched dynamics: the Fig 6 sweep and population dynamics, in one process.

(a) The full Fig 6 sweep — 4 panels × η_Z ∈ {0.5, 1, 2, 3} × η_Y/η_Z ∈ {1, 2, 5, 10} × 10 seeds
    = 640 runs of 100 SGD steps (batch 128, T = 128, random init, momentum 0.9) — as the book
    runs it (``scansnap.chapters.ch5_phase_transition.fig6_sweep``: one ``train`` program per panel), against
    one-run-at-a-time loops timed on a sample of runs and extrapolated to 640: the authors' way
    (an ``nn.Module`` fed token-level sequences, two ``torch.optim.SGD``), a straightforward
    count-level loop (the same module on exact count batches), and ``train`` called per run.
(b) Population dynamics (T → ∞, Syn-Small) run-steps per second for 1 and 64 runs, against
    :func:`reference_population` — the autograd implementation ``scansnap`` used before the
    class-grouped closed form (kept here only as the yardstick) — interleaved in rounds so that
    machine load hits both alike.

Both sides run with the same number of torch threads (``--threads``, default 1): the batched
programs' large products can use every core, the one-run-at-a-time loops' small ones mostly not.
Writes ``benchmarks/results/dynamics.{json,md}`` (``dynamics_<N>threads`` with ``--threads N``
above 1; the reproducibility page includes the .md files).
Usage: ``python benchmarks/bench_dynamics.py [--sample N] [--rounds N] [--dtype float32|float64]
[--threads N]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from _results import table, write
from scansnap import SequenceClasses, population, theory, train
from scansnap.models import YZModel
from scansnap.chapters.ch5_phase_transition import ETA_Z, PANELS, RATIOS, SEEDS, fig6_sweep

STEPS, BATCH, SEQ_LEN = 100, 128, 128
RUNS = len(PANELS) * len(ETA_Z) * len(RATIOS) * len(SEEDS)


def module_run(classes: SequenceClasses, eta_y: float, eta_z: float, seed: int,
               dtype: torch.dtype, tokens: bool) -> None:
    """One run with a module and torch.optim.SGD: token-level batches (the authors'
    decoder_only.py) or exact count batches (the straightforward loop)."""
    generator = torch.Generator().manual_seed(seed)
    model = YZModel(classes.M, init="random", generator=generator, dtype=dtype)
    optimizers = [torch.optim.SGD([model.Y], lr=eta_y, momentum=0.9),
                  torch.optim.SGD([model.Z], lr=eta_z, momentum=0.9)]
    for _ in range(STEPS):
        if tokens:
            contexts, queries, targets = classes.sample(BATCH, SEQ_LEN, generator)
            logits = model(contexts, queries)
        else:
            counts, queries, targets = classes.sample_counts(BATCH, SEQ_LEN, generator, dtype)
            logits = model.forward_counts(counts, queries)
        loss = torch.nn.functional.cross_entropy(logits, targets)
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in optimizers:
            opt.step()


def one_at_a_time(kind: str, sample: int, dtype: torch.dtype) -> float:
    """Seconds for all 640 runs, extrapolated from ``sample`` runs of every panel."""
    seconds = 0.0
    for q in PANELS:
        classes = SequenceClasses(num_queries=q, next_per_query=2)
        start = time.perf_counter()
        for i in range(sample):
            eta_z, ratio, seed = ETA_Z[i % 4], RATIOS[(i // 4) % 4], SEEDS[i % 10]
            if kind == "train":
                train(classes, eta_y=ratio * eta_z, eta_z=eta_z, seeds=seed, steps=STEPS,
                      batch_size=BATCH, seq_len=SEQ_LEN, init="random", record_every=None,
                      dtype=dtype, progress=False)
            else:
                module_run(classes, ratio * eta_z, eta_z, seed, dtype, tokens=kind == "authors")
        seconds += (time.perf_counter() - start) / sample * RUNS / len(PANELS)
    return seconds


def reference_population(classes: SequenceClasses, eta_y: list[float], steps: int) -> None:
    """Yesterday's population dynamics (η_Z = 1, zero init): autograd through Lemma 2's
    ``c_n`` over the full ``[R, M, M]`` matrices, vectorized SGD."""
    R, M = len(eta_y), classes.M
    Y, Z = torch.zeros(R, M, M, dtype=torch.float64), torch.zeros(R, M, M, dtype=torch.float64)
    lr_y = torch.tensor(eta_y, dtype=torch.float64).view(-1, 1, 1)
    probs, queries, targets = classes.probs(), classes.query_tokens, classes.next_tokens
    for _ in range(steps):
        Y.requires_grad_(True)
        Z.requires_grad_(True)
        u = theory.normalized_attention(theory.attention_limit(probs, Z, queries))  # [R, K, M]
        log_p = torch.log_softmax(u @ Y, dim=-1)
        loss = -log_p.gather(-1, targets.expand(R, -1).unsqueeze(-1)).mean((-1, -2))
        gY, gZ = torch.autograd.grad(loss.sum(), (Y, Z))
        with torch.no_grad():
            Y = Y - lr_y * gY
            Z = Z - gZ
        if not torch.isfinite(loss).all():
            raise FloatingPointError("reference population dynamics diverged")


def population_rates(runs: int, rounds: int, steps: int = 300) -> tuple[float, float]:
    """Best-of-``rounds`` run-steps/s of :func:`population` and of the reference."""
    classes = SequenceClasses()
    eta_y = [1.0 + i for i in range(runs)]
    ours, reference = [], []
    for _ in range(rounds + 1):  # the first round warms both up and is dropped
        start = time.perf_counter()
        population(classes, eta_y=eta_y, eta_z=1.0, steps=steps, record_every=None,
                   progress=False)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference_population(classes, eta_y, steps)
        reference.append(time.perf_counter() - start)
    return runs * steps / min(ours[1:]), runs * steps / min(reference[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=3, help="runs per panel for the loops")
    parser.add_argument("--rounds", type=int, default=3, help="rounds for population dynamics")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)

    start = time.perf_counter()
    sweep = fig6_sweep(dtype=dtype)
    batched = time.perf_counter() - start
    print(f"batched fig6_sweep: {batched:.1f} s", flush=True)
    loops = {}
    for kind in ("authors", "counts", "train"):
        loops[kind] = one_at_a_time(kind, args.sample, dtype)
        print(f"one at a time ({kind}): {loops[kind]:.0f} s", flush=True)
    rates = {runs: population_rates(runs, args.rounds) for runs in (1, 64)}

    names = {"authors": "one run at a time, authors' style (token-level batches)",
             "counts": "one run at a time, straightforward loop (count batches)",
             "train": "one run at a time, `train` per run"}
    rows = [["batched `fig6_sweep` (what the book runs)", f"{batched:.1f} s", "1×"]]
    rows += [[names[k], f"{s:.0f} s", f"{s / batched:.1f}× slower"] for k, s in loops.items()]
    pop_rows = [[runs, f"{ours:,.0f}".replace(",", " "), f"{ref:,.0f}".replace(",", " "),
                 f"{ours / ref:.1f}×"] for runs, (ours, ref) in rates.items()]
    per_panel = ", ".join(f"M = {M}: {sweep.seconds[(q, 'random')]:.1f} s"
                          for q, _, M in sweep.panels)
    markdown = f"""
Fig. 6 sweep, {RUNS} runs × {STEPS} SGD steps ({args.dtype}; loops timed on {args.sample} runs
per panel and extrapolated):

{table(["method", "wall time", "relative to batched"], rows)}

Batched time per panel ({per_panel}).

Population dynamics ($T \\to \\infty$, Syn-Small, $M = 34$, float64), run-steps per second,
best of {args.rounds} interleaved rounds of 300 steps:

{table(["runs", "`population`", "autograd reference", "speed-up"], pop_rows, "rrrr")}
"""
    data = {"dtype": args.dtype, "runs": RUNS, "batched_s": batched, "loops_s": loops,
            "panel_s": {str(M): sweep.seconds[(q, "random")] for q, _, M in sweep.panels},
            "population_run_steps_per_s": {str(r): {"population": a, "reference": b}
                                           for r, (a, b) in rates.items()}}
    name = "dynamics" if args.threads == 1 else f"dynamics_{args.threads}threads"
    print(write(name, markdown, data).read_text())


if __name__ == "__main__":
    main()
