"""Benchmark of ``scansnap.widgets`` (DESIGN.md §4: live redraws under ~150 ms).

Prints, in one process:
(a) the median redraw time of ``live`` (control change → ``update`` → new PNG in the Image widget)
    for two typical book figures — a 20-bar attention chart and a 5-line training-curve plot with
    a legend — on the fast path (``figure=``: artists updated in place) against the naive
    baseline (``update`` rebuilds the figure every time, as ``interact`` + ``plt.show`` does);
(b) a scrubber's cost: seconds per frame to render, and bytes per frame as stored in the page
    (256-colour palette PNG vs matplotlib's default PNG).

Usage: ``python benchmarks/bench_widgets.py [--repeats N]``. Writes
``benchmarks/results/widgets.{json,md}``, which book/reproducibility.md includes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import matplotlib

matplotlib.use("Agg")  # what a headless kernel uses; the inline backend renders with Agg too

import ipywidgets as widgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from _results import table, write  # noqa: E402
from scansnap.widgets import figure_to_png, live, scrubber  # noqa: E402

SIZE = (7, 2.6)
X = np.linspace(0, 1, 20)
T = np.arange(200)


def bars_values(temperature: float) -> np.ndarray:
    weights = np.exp(X / temperature)
    return weights / weights.sum()


def curves_values(rate: float) -> list[np.ndarray]:
    return [np.exp(-rate * k * T / 200) for k in range(1, 6)]


def bars_fast():
    fig, ax = plt.subplots(figsize=SIZE)
    bars = ax.bar(np.arange(20), bars_values(1.0))
    ax.set_ylim(0, 1)
    fig.tight_layout()
    plt.close(fig)

    def update(value: float) -> None:
        for bar, height in zip(bars, bars_values(value)):
            bar.set_height(height)
        ax.set_title(f"temperature {value:.2f}")

    return update, fig


def bars_naive(value: float):
    fig, ax = plt.subplots(figsize=SIZE)
    ax.bar(np.arange(20), bars_values(value))
    ax.set_ylim(0, 1)
    ax.set_title(f"temperature {value:.2f}")
    fig.tight_layout()
    return fig


def curves_fast():
    fig, ax = plt.subplots(figsize=SIZE)
    lines = [ax.plot(T, y, label=f"run {k}")[0] for k, y in enumerate(curves_values(1.0))]
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    fig.tight_layout()
    plt.close(fig)

    def update(value: float) -> None:
        for line, y in zip(lines, curves_values(value)):
            line.set_ydata(y)

    return update, fig


def curves_naive(value: float):
    fig, ax = plt.subplots(figsize=SIZE)
    for k, y in enumerate(curves_values(value)):
        ax.plot(T, y, label=f"run {k}")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def median_redraw_ms(update, figure, repeats: int) -> float:
    slider = widgets.FloatSlider(value=1.0, min=0.1, max=5.0)
    widget = live(update, {"value": slider}, figure=figure)
    for value in np.linspace(0.2, 4.8, repeats):
        slider.value = float(value)
    # The first redraw (at construction) includes one-off costs (font cache, layout): not a redraw.
    return 1000 * statistics.median(widget.redraw_seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()

    rows, data = [], {"figures": {}}
    for name, fast, naive in (("20-bar chart", bars_fast, bars_naive),
                              ("5 curves + legend", curves_fast, curves_naive)):
        update, figure = fast()
        fast_ms = median_redraw_ms(update, figure, args.repeats)
        naive_ms = median_redraw_ms(naive, None, args.repeats)
        rows.append([name, f"{fast_ms:.0f} ms", f"{naive_ms:.0f} ms", f"{naive_ms / fast_ms:.1f}×"])
        data["figures"][name] = {"fast_ms": fast_ms, "rebuild_ms": naive_ms}

    frames = 20
    start = time.perf_counter()
    widget = scrubber([bars_naive(v) for v in np.linspace(0.2, 4.8, frames)])
    per_frame = (time.perf_counter() - start) / frames
    palette = statistics.median(len(image.value) for image in widget.images)
    plain = statistics.median(len(figure_to_png(bars_naive(v), palette=False))
                              for v in np.linspace(0.2, 4.8, 5))
    data |= {"scrubber_ms_per_frame": 1000 * per_frame, "palette_kb": palette / 1024,
             "default_png_kb": plain / 1024}
    markdown = f"""
Median over {args.repeats} redraws of a {SIZE[0]}×{SIZE[1]} in figure at
{plt.rcParams['figure.dpi']:.0f} dpi (matplotlib {matplotlib.__version__}):

{table(["figure", "fast path", "rebuild every time", "speed-up"], rows)}

A scrubber frame (the 20-bar chart) takes {palette / 1024:.1f} KB as a 256-colour palette PNG
({plain / 1024:.1f} KB as matplotlib's default PNG) and {1000 * per_frame:.0f} ms to build and
render at build time.
"""
    print(write("widgets", markdown, data).read_text())


if __name__ == "__main__":
    main()
