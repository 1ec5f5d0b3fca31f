"""Benchmark of the batched dynamics (issue: the Fig 6 sweep must be fast enough for the book).

Prints, in one process:
(a) the wall time of the full Fig 6 sweep — 4 panels × η_Z ∈ {0.5, 1, 2, 3} × η_Y/η_Z ∈ {1, 2, 5, 10}
    × 10 seeds = 640 runs of 100 SGD steps (batch 128, T = 128, random init, momentum 0.9) —
    run batched with ``scansnap.train``, against two one-run-at-a-time loops timed on a sample
    of runs and extrapolated to 640: the authors' way (an ``nn.Module``, token-level sequences,
    ``torch.optim.SGD``) and ``train`` called once per run;
(b) population-dynamics (T → ∞) steps per second, one run and 64 runs batched.

Usage: ``python benchmarks/bench_dynamics.py [--sample N] [--dtype float32|float64]``.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from scansnap import SequenceClasses, population, train
from scansnap.models import YZModel

PANELS = (1, 3, 5, 10)
ETA_Z = (0.5, 1.0, 2.0, 3.0)
RATIOS = (1, 2, 5, 10)
SEEDS = tuple(range(1, 11))
STEPS, BATCH, SEQ_LEN = 100, 128, 128


def batched_sweep(dtype: torch.dtype) -> float:
    start = time.perf_counter()
    for q in PANELS:
        classes = SequenceClasses(num_queries=q, next_per_query=2)
        for eta_z in ETA_Z:
            train(classes, eta_y=[r * eta_z for r in RATIOS], eta_z=eta_z, seeds=SEEDS,
                  steps=STEPS, batch_size=BATCH, seq_len=SEQ_LEN, init="random",
                  record_every=None, dtype=dtype, progress=False)
    return time.perf_counter() - start


def authors_style_run(classes: SequenceClasses, eta_y: float, eta_z: float, seed: int,
                      dtype: torch.dtype) -> None:
    """One run as the authors' decoder_only.py does it: a module, token-level batches, optim.SGD."""
    generator = torch.Generator().manual_seed(seed)
    model = YZModel(classes.M, init="random", generator=generator, dtype=dtype)
    optimizers = [torch.optim.SGD([model.Y], lr=eta_y, momentum=0.9),
                  torch.optim.SGD([model.Z], lr=eta_z, momentum=0.9)]
    for _ in range(STEPS):
        contexts, queries, targets = classes.sample(BATCH, SEQ_LEN, generator)
        loss = torch.nn.functional.cross_entropy(model(contexts, queries), targets)
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in optimizers:
            opt.step()


def one_at_a_time(kind: str, sample: int, dtype: torch.dtype) -> float:
    """Seconds per run, averaged over ``sample`` runs of every panel; × 640 extrapolates."""
    seconds = 0.0
    for q in PANELS:
        classes = SequenceClasses(num_queries=q, next_per_query=2)
        start = time.perf_counter()
        for i in range(sample):
            eta_z, ratio, seed = ETA_Z[i % 4], RATIOS[(i // 4) % 4], SEEDS[i % 10]
            if kind == "authors":
                authors_style_run(classes, ratio * eta_z, eta_z, seed, dtype)
            else:
                train(classes, eta_y=ratio * eta_z, eta_z=eta_z, seeds=seed, steps=STEPS,
                      batch_size=BATCH, seq_len=SEQ_LEN, init="random", record_every=None,
                      dtype=dtype, progress=False)
        seconds += (time.perf_counter() - start) / sample * len(ETA_Z) * len(RATIOS) * len(SEEDS)
    return seconds


def population_rate(runs: int, steps: int = 500) -> float:
    classes = SequenceClasses()
    start = time.perf_counter()
    population(classes, eta_y=[1.0 + i for i in range(runs)], eta_z=1.0, steps=steps,
               record_every=None, progress=False)
    return runs * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=3, help="runs per panel for the loops")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"torch threads, torch {torch.__version__}, {args.dtype}")
    batched = batched_sweep(dtype)
    authors = one_at_a_time("authors", args.sample, dtype)
    single = one_at_a_time("train", args.sample, dtype)
    print("(a) Fig 6 sweep, 640 runs x 100 SGD steps")
    print(f"    batched train():                      {batched:8.1f} s")
    print(f"    one at a time, authors' style (extr.): {authors:8.1f} s   -> {authors / batched:5.1f}x")
    print(f"    one at a time, train() per run (extr.): {single:7.1f} s   -> {single / batched:5.1f}x")
    print("(b) population dynamics on Syn-Small (M=34)")
    print(f"    1 run:     {population_rate(1):10.0f} run-steps/s")
    print(f"    64 runs:   {population_rate(64):10.0f} run-steps/s")


if __name__ == "__main__":
    main()
