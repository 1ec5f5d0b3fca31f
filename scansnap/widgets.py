"""Widgets for the book's pages: static-capable scrubbers and live controls (DESIGN.md §4).

The published book is static HTML with no kernel. Two kinds of widget cope with that:

**Scrubbers** show precomputed frames (matplotlib figures rendered to PNG) under a slider and a
Play button whose links live in the browser (``jslink``), so they work in the static page, in
Binder and a local Jupyter alike; each link is doubled in the kernel (``widgets.link``) for front
ends that do not run ``jslink`` (Colab's, googlecolab/colabtools#1612)::

    import matplotlib.pyplot as plt
    from scansnap.widgets import scrubber

    def frame(step):                           # e.g. c_1 at one recorded step of a training run
        fig, ax = plt.subplots(figsize=(6, 2.5))
        ...                                    # draw this step
        return fig                             # scrubber() renders each figure and closes it

    steps = run.steps.tolist()
    scrubber((frame(s) for s in steps), labels=[f"t={s}" for s in steps], description="iteration")

``layered_scrubber`` adds a dropdown choosing among several such sets of frames (e.g. one per
layer), still linked in the browser.

**Live controls** re-run a fast computation in a kernel whenever a control changes. Fast path:
create the figure and its artists once, and let ``update`` only change their data; ``live``
re-renders that figure (median redraw ≈ tens of ms, see ``benchmarks/bench_widgets.py``)::

    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from scansnap.widgets import live

    fig, ax = plt.subplots(figsize=(6, 2.5))
    bars = ax.bar(range(10), [0.1] * 10)
    plt.close(fig)                             # live() shows it; keep the inline backend from doing so too

    def update(temperature):
        weights = np.exp(scores / temperature); weights /= weights.sum()
        for bar, w in zip(bars, weights):
            bar.set_height(w)

    live(update, {"temperature": widgets.FloatLogSlider(value=1, base=10, min=-1, max=1)},
         figure=fig)

Without ``figure=``, ``update`` must *return* a new Figure each call (simple, but slower: the
figure is rebuilt every time); ``live`` closes it after rendering. ``update`` is called with the
controls' current values as keyword arguments (the keys of ``controls``), once right away: in a
headless build that single call with the defaults is all that runs, and the static page shows its
result. Controls keep working in a kernel; in the static page a one-line note (visible only in
the book's HTML, see ``tools/static/scansnap.css``) points the reader to the launch buttons.
"""

from __future__ import annotations

import html
import io
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage

from ._validate import check_bool, check_int

__all__ = ["scrubber", "layered_scrubber", "live", "figure_to_png", "Scrubber", "LayeredScrubber",
           "Live", "STATIC_NOTE"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

STATIC_NOTE = (
    "This is the figure for the default settings. To move the controls, launch this page in "
    "Binder or Colab (rocket icon at the top of the page)."
)


def figure_to_png(figure: Figure, *, palette: bool = True, close: bool = True) -> bytes:
    """Render a matplotlib ``figure`` to PNG bytes.

    ``palette=True`` quantizes to a 256-colour palette PNG: visually identical for line and bar
    plots and about 3× smaller (frames are stored base64 in the page). ``close=True`` closes the
    figure afterwards so the inline backend does not also show it and memory is freed.
    """
    if not isinstance(figure, Figure):
        raise TypeError(f"figure must be a matplotlib Figure, got {type(figure).__name__}")
    palette = check_bool("palette", palette)
    close = check_bool("close", close)
    # Draw on the Agg canvas and encode its pixel buffer ourselves: about twice as fast as
    # savefig (which draws again at the savefig dpi and goes through a generic writer), and the
    # live redraw is latency-bound. Figures made without pyplot get an Agg canvas first.
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()
    width, height = canvas.get_width_height(physical=True)
    image = PILImage.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    if close:
        plt.close(figure)
    out = io.BytesIO()
    if palette:
        image.convert("RGB").quantize(colors=256).save(out, format="png", optimize=True)
    else:
        image.save(out, format="png", compress_level=1)  # zlib's fastest level
    return out.getvalue()


class Scrubber(widgets.VBox):
    """A Play button and a slider over a stack of images (see :func:`scrubber`).

    ``play``, ``slider`` and ``stack`` are the parts; their links are front-end links, so the
    static HTML page keeps them working without a kernel, doubled in the kernel (see
    :func:`_link_both`).
    """

    def __init__(self, images: list[widgets.Image], slider: widgets.Widget, play: widgets.Play,
                 stack: widgets.Stack, caption: widgets.HTML | None = None,
                 **kwargs: Any) -> None:
        parts = [widgets.HBox([play, slider]), stack] + ([caption] if caption else [])
        super().__init__(parts, **kwargs)
        self.caption = caption
        self.images = images
        self.slider = slider
        self.play = play
        self.stack = stack


def scrubber(
    frames: Iterable[Figure | bytes],
    labels: Iterable[Any] | None = None,
    description: str = "step",
    interval_ms: int = 300,
    alt: str | None = None,
) -> Scrubber:
    """A slider + Play button stepping through precomputed ``frames``; works in static HTML.

    Parameters
    ----------
    frames
        matplotlib Figures (rendered to palette PNGs and closed) or PNG bytes, in order. Pass a
        generator (``scrubber(draw(t) for t in steps)``) to keep one figure open at a time:
        matplotlib warns on stderr, which fails the book build, beyond 20 open figures.
    labels
        Optional readout per frame (e.g. the iteration); shown by a SelectionSlider. Without
        labels an IntSlider shows the frame index 0..N-1.
    description
        The slider's label.
    interval_ms
        Milliseconds per frame when playing.
    alt
        What the frames show (axes, curves, what changes from frame to frame), for readers who
        cannot see them: ipywidgets' Image has no ``alt`` attribute, so it becomes the figure's
        caption under the frames (:func:`frame_caption`).

    Returns a :class:`Scrubber` (an ``ipywidgets.VBox``): display it as a cell's last value.
    """
    if isinstance(frames, (str, bytes, Figure)):
        raise TypeError("frames must be a sequence of matplotlib Figures or PNG bytes, "
                        f"got a single {type(frames).__name__}")
    if not isinstance(frames, Iterable):
        raise TypeError(f"frames must be a sequence of matplotlib Figures or PNG bytes, "
                        f"got {type(frames).__name__}")
    if not isinstance(description, str):
        raise TypeError(f"description must be a str, got {type(description).__name__}")
    interval_ms = check_int("interval_ms", interval_ms, low=1)
    caption = frame_caption(alt)
    if labels is not None:
        labels = _check_labels(labels)

    layout = _frame_layout()
    images = []
    frames = iter(frames)
    # Frames are rendered as they come, so a generator keeps only one figure open at a time.
    try:
        for i, frame in enumerate(frames):
            images.append(widgets.Image(value=_frame_png(f"frames[{i}]", frame), format="png",
                                        layout=layout))
    except (TypeError, ValueError):
        for frame in frames:  # the rest of a list: do not leave its figures open
            if isinstance(frame, Figure):
                plt.close(frame)
        raise
    if not images:
        raise ValueError("frames must not be empty")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"labels must have one entry per frame: got {len(labels)} labels "
                         f"for {len(images)} frames")
    stack = widgets.Stack(images, selected_index=0)
    play, slider, position = _play_slider(len(images), labels, description, interval_ms,
                                          "min(100%, 32em)")
    _link_both((slider, position), (stack, "selected_index"))
    return Scrubber(images, slider, play, stack, caption)


ALT_CAPTION_CLASS = "scansnap-frame-alt"


def frame_caption(alt: str | None) -> widgets.HTML | None:
    """The caption that carries a scrubber's description of its frames (its alt text), or None
    without one. Its paragraph has the class ``scansnap-frame-alt`` (styled as a figure caption,
    found by the site tests)."""
    if alt is None:
        return None
    if not isinstance(alt, str):
        raise TypeError(f"alt must be a str, got {type(alt).__name__}")
    if len(alt.strip()) < 20:
        raise ValueError(f"alt must describe the frames in at least 20 characters, got {alt!r}")
    return widgets.HTML(f'<p class="{ALT_CAPTION_CLASS}" role="note">{html.escape(alt)}</p>')


class LayeredScrubber(widgets.VBox):
    """A Play button, a slider and a dropdown over several stacks of images (see
    :func:`layered_scrubber`).

    ``stacks`` holds one Stack of frames per dropdown option, ``outer`` the Stack of those
    stacks; as in :class:`Scrubber`, every link is a front-end link (doubled in the kernel).
    """

    def __init__(self, stacks: list[widgets.Stack], outer: widgets.Stack,
                 slider: widgets.SelectionSlider, play: widgets.Play, dropdown: widgets.Dropdown,
                 caption: widgets.HTML | None = None, **kwargs: Any) -> None:
        controls = widgets.HBox([play, slider, dropdown],
                                layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([controls, outer] + ([caption] if caption else []), **kwargs)
        self.caption = caption
        self.stacks = stacks
        self.outer = outer
        self.slider = slider
        self.play = play
        self.dropdown = dropdown


def layered_scrubber(
    frames: Mapping[str, Iterable[Figure | bytes]],
    labels: Iterable[Any],
    description: str = "iteration",
    selector: str = "show",
    interval_ms: int = 400,
    alt: str | None = None,
) -> LayeredScrubber:
    """A :func:`scrubber` over ``labels`` (e.g. checkpoints) with a dropdown choosing which set of
    frames to show (e.g. a model's layer); works in static HTML.

    ``frames[option][i]`` is the frame (a matplotlib Figure, rendered and closed, or PNG bytes)
    of dropdown ``option`` at ``labels[i]``. The dropdown (label ``selector``) selects one stack
    of frames, the slider and Play (label ``description``) select the frame in every stack at
    once; all links run in the browser (and again in the kernel). Same layout as
    :func:`scrubber`: Play and slider on top.

    ``alt`` describes the frames for readers who cannot see them (a caption, as in
    :func:`scrubber`).

    Returns a :class:`LayeredScrubber` (an ``ipywidgets.VBox``): display it as a cell's last value.
    """
    if not isinstance(frames, Mapping) or not frames:
        raise TypeError("frames must be a non-empty dict of option -> list of frames")
    for name, text in (("description", description), ("selector", selector)):
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    labels = _check_labels(labels)
    if not labels:
        raise ValueError("labels must not be empty")
    interval_ms = check_int("interval_ms", interval_ms, low=1)
    caption = frame_caption(alt)
    layout = _frame_layout()
    stacks = []
    for option, pngs in frames.items():
        if isinstance(pngs, (str, bytes, Figure)) or not isinstance(pngs, Iterable):
            raise TypeError(f"frames[{option!r}] must be a sequence of frames, "
                            f"got {type(pngs).__name__}")
        pngs = [_frame_png(f"frames[{option!r}][{i}]", frame) for i, frame in enumerate(pngs)]
        if len(pngs) != len(labels):
            raise ValueError(f"frames[{option!r}] must have one frame per label ({len(labels)}), "
                             f"got {len(pngs)}")
        stacks.append(widgets.Stack([widgets.Image(value=p, format="png", layout=layout)
                                     for p in pngs], selected_index=0))
    outer = widgets.Stack(stacks, selected_index=0)
    play, slider, _ = _play_slider(len(labels), labels, description, interval_ms,
                                   "min(100%, 28em)")
    dropdown = widgets.Dropdown(options=list(frames), index=0, description=selector,
                                style={"description_width": "initial"},
                                layout=widgets.Layout(width="max-content"))
    for stack in stacks:
        _link_both((slider, "index"), (stack, "selected_index"))
    _link_both((dropdown, "index"), (outer, "selected_index"))
    return LayeredScrubber(stacks, outer, slider, play, dropdown, caption)


def _check_labels(labels: Any) -> list[str]:
    """One readout per frame, as distinct strings (a SelectionSlider's options)."""
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Iterable):
        raise TypeError(f"labels must be a sequence with one label per frame, "
                        f"got {type(labels).__name__}")
    labels = [str(label) for label in labels]
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be distinct (a SelectionSlider cannot tell equal "
                         "labels apart)")
    return labels


def _frame_layout() -> widgets.Layout:
    # One shared Layout: each frame's own Layout model would add ≈1.2 KB of state per frame.
    return widgets.Layout(max_width="100%", height="auto")


def _play_slider(count: int, labels: list[str] | None, description: str, interval_ms: int,
                 width: str) -> tuple[widgets.Play, widgets.Widget, str]:
    """Play button and slider over ``count`` frames, linked (:func:`_link_both`); the slider's
    trait that holds the frame index ("value" of an IntSlider without labels, else "index")."""
    last = count - 1
    play = widgets.Play(value=0, min=0, max=last, step=1, interval=interval_ms,
                        description="play", show_repeat=False)
    style = {"description_width": "initial"}
    slider_layout = widgets.Layout(width=width)
    if labels is None:
        slider: widgets.Widget = widgets.IntSlider(value=0, min=0, max=last, step=1,
                                                   description=description, style=style,
                                                   layout=slider_layout)
        position = "value"
    else:
        slider = widgets.SelectionSlider(options=labels, index=0, description=description,
                                         style=style, layout=slider_layout)
        position = "index"
    _link_both((play, "value"), (slider, position))
    return play, slider, position


def _link_both(source: tuple[widgets.Widget, str], target: tuple[widgets.Widget, str]) -> None:
    """Link two widget traits twice: in the browser and in the kernel.

    The front-end link (``jslink``) is what makes the static page work, where there is no kernel.
    The kernel-side link (``widgets.link``) keeps the control working where a front end does not
    run ``jslink`` models: Colab's widget manager has failed on them (googlecolab/colabtools#1612).
    Where both run, the second one finds the value already set and does nothing.
    """
    widgets.jslink(source, target)
    widgets.link(source, target)


def _frame_png(name: str, frame: Any) -> bytes:
    if isinstance(frame, Figure):
        return figure_to_png(frame)
    if isinstance(frame, (bytes, bytearray)):
        if bytes(frame[:8]) != _PNG_SIGNATURE:
            raise ValueError(f"{name} must be PNG bytes (no PNG signature)")
        return bytes(frame)
    raise TypeError(f"{name} must be a matplotlib Figure or PNG bytes, got {type(frame).__name__}")


class Live(widgets.VBox):
    """Controls, the figure they drive, and the static-page note (see :func:`live`).

    ``redraw_seconds`` holds the duration of every redraw (update + render), the first included.
    """

    def __init__(self, update: Callable[..., Figure | None], controls: dict[str, widgets.Widget],
                 figure: Figure | None, note: str) -> None:
        self.update = update
        self.controls = controls
        self.figure = figure
        self.redraw_seconds: list[float] = []
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%",
                                                                       height="auto"))
        self.error = widgets.HTML(layout=widgets.Layout(display="none"))
        # Hidden by its inline style everywhere except the book's HTML, whose stylesheet
        # (tools/static/scansnap.css) shows .scansnap-static-note: a kernel user never sees it.
        self.note = widgets.HTML(
            f'<div class="scansnap-static-note" style="display:none">{note}</div>')
        box = widgets.HBox(list(controls.values()),
                           layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([box, self.image, self.error, self.note])
        self.redraw()  # raises on the first call: a failing default must fail the book build
        for control in controls.values():
            control.observe(self._on_change, names="value")

    def values(self) -> dict[str, Any]:
        """The controls' current values, keyed as in ``controls``."""
        return {name: control.value for name, control in self.controls.items()}

    def redraw(self) -> None:
        """Call ``update`` with the current values and show the resulting figure."""
        start = time.perf_counter()
        result = self.update(**self.values())
        if self.figure is not None:
            png = figure_to_png(self.figure, palette=False, close=False)
        else:
            if not isinstance(result, Figure):
                raise TypeError("update must return a matplotlib Figure when live() is called "
                                f"without figure=, got {type(result).__name__}")
            png = figure_to_png(result, palette=False, close=True)
        self.image.value = png
        self.redraw_seconds.append(time.perf_counter() - start)

    def _on_change(self, _change: Any) -> None:
        # In a kernel an exception in an observer vanishes into the log: show it instead.
        try:
            self.redraw()
        except Exception as error:  # noqa: BLE001 - any failure of user code is shown, not raised
            self.error.value = (f'<span style="color:#b00">update failed: '
                                f"{type(error).__name__}: {error}</span>")
            self.error.layout.display = None
        else:
            self.error.layout.display = "none"


def live(
    update: Callable[..., Figure | None],
    controls: Mapping[str, widgets.Widget],
    *,
    figure: Figure | None = None,
    note: str = STATIC_NOTE,
) -> Live:
    """Controls that redraw a figure in a kernel; the default state in the static page.

    Parameters
    ----------
    update
        Called as ``update(**values)`` with each control's current value under its key in
        ``controls``. With ``figure`` it changes that figure's artists in place (fast path) and
        returns nothing; without, it returns a new matplotlib Figure.
    controls
        ``{name: widget}`` of value widgets (sliders, dropdowns, checkboxes...). A widget with no
        description gets ``name``.
    figure
        The figure ``update`` modifies. Close it after creating it (``plt.close(fig)``) so that
        the inline backend does not display it a second time.
    note
        The line shown under the figure in the static HTML page only.

    Returns a :class:`Live` (an ``ipywidgets.VBox``): display it as a cell's last value.
    """
    if not callable(update):
        raise TypeError(f"update must be callable, got {type(update).__name__}")
    if not isinstance(controls, Mapping):
        raise TypeError(f"controls must be a dict of name -> widget, got {type(controls).__name__}")
    if not controls:
        raise ValueError("controls must not be empty")
    for name, control in controls.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"controls keys must be Python identifiers (they become keyword "
                             f"arguments of update), got {name!r}")
        if not isinstance(control, widgets.ValueWidget):
            raise TypeError(f"controls[{name!r}] must be an ipywidgets value widget "
                            f"(slider, dropdown, ...), got {type(control).__name__}")
    if figure is not None and not isinstance(figure, Figure):
        raise TypeError(f"figure must be a matplotlib Figure or None, got {type(figure).__name__}")
    if not isinstance(note, str):
        raise TypeError(f"note must be a str, got {type(note).__name__}")
    controls = dict(controls)
    for name, control in controls.items():
        if hasattr(control, "description") and not control.description:
            control.description = name
        if hasattr(control, "style") and hasattr(control.style, "description_width"):
            control.style.description_width = "initial"
    return Live(update, controls, figure, note)
