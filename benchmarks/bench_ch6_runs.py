"""Chapter 6's runs one after another vs side by side (scansnap.lm.train_many), in one process.

The job list is chapter 6's at the CI size (Fig 7's 1- and 3-layer runs, the notebook's FFN-lr-10
variant, the four Fig 10 sweep runs that Fig 7's 1-layer run does not contain), each shortened to
``--fraction`` of its steps so that a round takes a minute, on WikiText-2 (``SCANSNAP_WIKITEXT_DIR``)
with the CI vocabulary cap. Rounds alternate the two ways, so that machine load hits both alike.

    python benchmarks/bench_ch6_runs.py [--fraction 0.1] [--rounds 2] [--workers 2]

Writes ``benchmarks/results/ch6_runs.{json,md}``.
"""

from __future__ import annotations

import argparse
import time

import torch

from _results import table, write
from scansnap import lm, wikitext
from scansnap.chapters import ch6_wikitext as ch6


def chapter_jobs(fraction: float) -> list[dict]:
    """Chapter 6's jobs at the CI size (:func:`ch6.train_runs`), steps × ``fraction``."""
    cfg = lm.SIZES["ci"]
    scale = lambda steps: max(1, round(steps * fraction))  # noqa: E731
    jobs = [{"nlayers": 1, "lr": 5.0, "steps": scale(cfg["steps"])},
            {"nlayers": 3, "lr": 5.0, "steps": scale(cfg["deep_steps"])},
            {"lr": 5.0, "ffn_lr": 10.0, "steps": scale(cfg["variant_steps"])}]
    jobs += [{"lr": lr, "steps": scale(cfg["sweep_steps"])} for lr in ch6.FIG10_LRS[:-1]]
    return [job | {"checkpoint_every": max(1, scale(cfg["checkpoint_every"]))} for job in jobs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = wikitext.load_corpus(max_size=lm.SIZES["ci"]["max_vocab"], download=False)
    jobs = chapter_jobs(args.fraction)
    times: dict[str, list[float]] = {"one after another": [], "side by side": []}
    for _ in range(args.rounds):
        for label, workers in (("one after another", 1), ("side by side", args.workers)):
            start = time.perf_counter()
            runs = lm.train_many(corpus, jobs, size="ci", workers=workers)
            times[label].append(time.perf_counter() - start)
            print(f"{label}: {times[label][-1]:.1f} s", flush=True)
    same = all(torch.equal(a.train_loss, b.train_loss) for a, b in zip(
        runs, lm.train_many(corpus, jobs[:1], size="ci", workers=1)))
    seq, par = min(times["one after another"]), min(times["side by side"])
    steps = sum(job["steps"] for job in jobs)
    markdown = f"""
Chapter 6's {len(jobs)} runs at the CI size, each at {args.fraction:g} of its steps ({steps} steps
in all), best of {args.rounds} alternating rounds; side by side in {args.workers} worker processes of
one torch thread each (start-up of the workers included). The first run is bit-identical either
way: {same}.

{table(["training", "seconds", "speed-up"],
       [["one after another (1 thread)", f"{seq:.1f}", "1.00×"],
        [f"side by side ({args.workers} processes)", f"{par:.1f}", f"{seq / par:.2f}×"]], "lrr")}
"""
    print(write("ch6_runs", markdown, {"jobs": jobs, "seconds": times, "identical": same})
          .read_text())


if __name__ == "__main__":
    main()
