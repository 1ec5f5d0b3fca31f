"""scansnap.widgets: scrubbers (front-end linked, static-capable) and live controls."""

import io

import ipywidgets as widgets
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ipywidgets.embed import embed_data  # noqa: E402
from PIL import Image  # noqa: E402

from scansnap.widgets import (  # noqa: E402
    LayeredScrubber, Live, Scrubber, figure_to_png, layered_scrubber, live, scrubber,
)


def line_figure(k: int) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(np.sin(np.linspace(0, 6, 50) + k))
    return fig


def png_bytes(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(out, format="png")
    return out.getvalue()


def test_figure_to_png_palette_closes_figure():
    fig = line_figure(0)
    data = figure_to_png(fig)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    assert image.mode == "P"  # 256-colour palette
    assert image.size == (300, 200)
    assert not plt.fignum_exists(fig.number)


def test_figure_to_png_keeps_figure_when_asked():
    fig = line_figure(0)
    data = figure_to_png(fig, palette=False, close=False)
    assert Image.open(io.BytesIO(data)).mode == "RGBA"
    assert plt.fignum_exists(fig.number)
    plt.close(fig)


def front_end_links(s: Scrubber) -> set[tuple[str, str, str, str]]:
    """(source widget, trait, target widget, trait) of the jslinks among the scrubber's parts."""
    names = {f"IPY_MODEL_{w.model_id}": name
             for name, w in (("play", s.play), ("slider", s.slider), ("stack", s.stack))}
    state = embed_data(views=[s])["manager_state"]["state"]
    links = [m["state"] for m in state.values() if m["model_name"] == "LinkModel"]
    return {(names[link["source"][0]], link["source"][1], names[link["target"][0]],
             link["target"][1])
            for link in links if link["source"][0] in names}


def test_scrubber_links_are_front_end_links():
    before = set(plt.get_fignums())
    s = scrubber((line_figure(k) for k in range(4)), description="iteration", interval_ms=120)
    assert isinstance(s, Scrubber) and isinstance(s, widgets.VBox)
    assert set(plt.get_fignums()) == before  # every frame's figure was closed
    assert len(s.images) == 4 == len(s.stack.children)
    assert len({image.value for image in s.images}) == 4
    assert len({id(image.layout) for image in s.images}) == 1  # one shared Layout
    assert isinstance(s.slider, widgets.IntSlider) and (s.slider.min, s.slider.max) == (0, 3)
    assert (s.play.max, s.play.interval) == (3, 120)
    # The links must live in the browser (jslink models in the saved state), not in the kernel.
    assert front_end_links(s) == {("play", "value", "slider", "value"),
                                  ("slider", "value", "stack", "selected_index")}


def test_scrubber_with_labels_uses_selection_slider():
    s = scrubber([png_bytes("red"), png_bytes("blue"), png_bytes("green")], labels=[0, 10, 20])
    assert isinstance(s.slider, widgets.SelectionSlider)
    assert s.slider.options == ("0", "10", "20") and s.slider.index == 0
    assert front_end_links(s) == {("play", "value", "slider", "index"),
                                  ("slider", "index", "stack", "selected_index")}


@pytest.mark.parametrize("frames, error, match", [
    ([], ValueError, "frames must not be empty"),
    ("abc", TypeError, "frames"),
    (42, TypeError, "frames"),
    ([png_bytes("red"), 3], TypeError, r"frames\[1\]"),
    ([b"not a png"], ValueError, r"frames\[0\]"),
])
def test_scrubber_rejects_bad_frames(frames, error, match):
    with pytest.raises(error, match=match):
        scrubber(frames)


def test_scrubber_bad_frame_leaves_no_figure_open():
    before = set(plt.get_fignums())
    with pytest.raises(TypeError, match=r"frames\[1\]"):
        scrubber([line_figure(0), "oops", line_figure(2)])
    assert set(plt.get_fignums()) == before


@pytest.mark.parametrize("kwargs, error, match", [
    ({"labels": ["a"]}, ValueError, "one entry per frame"),
    ({"labels": ["a", "a"]}, ValueError, "distinct"),
    ({"labels": "ab"}, TypeError, "labels"),
    ({"interval_ms": 0}, ValueError, "interval_ms"),
    ({"interval_ms": 1.5}, TypeError, "interval_ms"),
    ({"description": 3}, TypeError, "description"),
])
def test_scrubber_rejects_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        scrubber([png_bytes("red"), png_bytes("blue")], **kwargs)


def test_layered_scrubber_links_every_stack_in_the_front_end():
    before = set(plt.get_fignums())
    s = layered_scrubber({"a": [png_bytes("red"), png_bytes("blue")],
                          "b": (line_figure(k) for k in range(2))}, labels=[0, 10],
                         selector="layer", interval_ms=120)
    assert isinstance(s, LayeredScrubber) and isinstance(s.children[0].children[0], widgets.Play)
    assert set(plt.get_fignums()) == before  # the figures were rendered and closed
    assert s.slider.options == ("0", "10") and s.play.interval == 120
    assert list(s.dropdown.options) == ["a", "b"] and s.dropdown.description == "layer"
    assert [len(stack.children) for stack in s.stacks] == [2, 2] and s.children[1] is s.outer
    names = {f"IPY_MODEL_{w.model_id}": name for name, w in (
        ("play", s.play), ("slider", s.slider), ("dropdown", s.dropdown), ("outer", s.outer),
        ("a", s.stacks[0]), ("b", s.stacks[1]))}
    state = embed_data(views=[s])["manager_state"]["state"]
    links = {(names[m["state"]["source"][0]], m["state"]["source"][1],
              names[m["state"]["target"][0]], m["state"]["target"][1])
             for m in state.values()
             if m["model_name"] == "LinkModel" and m["state"]["source"][0] in names}
    assert links == {("play", "value", "slider", "index"),
                     ("slider", "index", "a", "selected_index"),
                     ("slider", "index", "b", "selected_index"),
                     ("dropdown", "index", "outer", "selected_index")}


@pytest.mark.parametrize("frames, labels, error, match", [
    ({"a": [png_bytes("red")]}, ["0", "1"], ValueError, "one frame per label"),
    ({}, ["0"], TypeError, "frames"),
    ({"a": [b"not a png"]}, ["0"], ValueError, r"frames\['a'\]\[0\]"),
    ({"a": [png_bytes("red")] * 2}, ["0", "0"], ValueError, "distinct"),
    ({"a": []}, [], ValueError, "labels must not be empty"),
])
def test_layered_scrubber_rejects_bad_arguments(frames, labels, error, match):
    with pytest.raises(error, match=match):
        layered_scrubber(frames, labels)


def bar_figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    bars = ax.bar(range(5), np.ones(5))
    ax.set_ylim(0, 5)
    plt.close(fig)
    return fig, bars


def test_live_fast_path_redraws_in_place():
    fig, bars = bar_figure()
    calls = []

    def update(height, colour):
        calls.append((height, colour))
        for bar in bars:
            bar.set_height(height)
            bar.set_color(colour)

    slider = widgets.FloatSlider(value=1.0, min=0.0, max=5.0)
    dropdown = widgets.Dropdown(options=["red", "blue"], value="red")
    w = live(update, {"height": slider, "colour": dropdown}, figure=fig)
    assert isinstance(w, Live) and isinstance(w, widgets.VBox)
    assert calls == [(1.0, "red")]  # runs once with the defaults at construction
    first = w.image.value
    assert bytes(first).startswith(b"\x89PNG")
    assert slider.description == "height" and dropdown.description == "colour"
    slider.value = 4.0
    dropdown.value = "blue"
    assert calls[-2:] == [(4.0, "red"), (4.0, "blue")]
    assert w.image.value != first and len(w.redraw_seconds) == 3
    assert w.error.layout.display == "none"


def test_live_without_figure_takes_returned_figures_and_closes_them():
    before = set(plt.get_fignums())
    w = live(lambda k: line_figure(k), {"k": widgets.IntSlider(value=0, max=3)})
    w.controls["k"].value = 2
    assert len(w.redraw_seconds) == 2
    assert set(plt.get_fignums()) == before


def test_live_static_note_hidden_outside_the_book():
    fig, _ = bar_figure()
    w = live(lambda x: None, {"x": widgets.FloatSlider()}, figure=fig, note="launch it")
    # Hidden inline everywhere; tools/static/scansnap.css un-hides it in the book's HTML only.
    assert 'class="scansnap-static-note" style="display:none">launch it' in w.note.value


def test_live_first_update_error_propagates_later_errors_are_shown():
    fig, _ = bar_figure()
    with pytest.raises(ZeroDivisionError):
        live(lambda x: 1 / x, {"x": widgets.FloatSlider(value=0.0)}, figure=fig)

    def update(x):
        if x > 1:
            raise RuntimeError("too big")

    w = live(update, {"x": widgets.FloatSlider(value=0.0, max=3.0)}, figure=fig)
    w.controls["x"].value = 2.0  # an observer must not raise into the kernel's log
    assert "too big" in w.error.value and w.error.layout.display is None
    w.controls["x"].value = 0.5
    assert w.error.layout.display == "none"


def test_live_requires_a_figure_from_update_without_figure():
    with pytest.raises(TypeError, match="update must return a matplotlib Figure"):
        live(lambda x: None, {"x": widgets.FloatSlider()})


@pytest.mark.parametrize("args, kwargs, error, match", [
    (("not callable", {"x": widgets.FloatSlider()}), {}, TypeError, "update"),
    ((lambda x: None, [widgets.FloatSlider()]), {}, TypeError, "controls"),
    ((lambda x: None, {}), {}, ValueError, "controls"),
    ((lambda x: None, {"not an id": widgets.FloatSlider()}), {}, ValueError, "controls keys"),
    ((lambda x: None, {"x": widgets.Button()}), {}, TypeError, r"controls\['x'\]"),
    ((lambda x: None, {"x": widgets.FloatSlider()}), {"figure": "fig"}, TypeError, "figure"),
    ((lambda x: None, {"x": widgets.FloatSlider()}), {"note": 1}, TypeError, "note"),
])
def test_live_rejects_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        live(*args, **kwargs)


def test_figure_to_png_rejects_non_figures():
    with pytest.raises(TypeError, match="figure"):
        figure_to_png(b"\x89PNG")
    fig = line_figure(0)
    with pytest.raises(TypeError, match="palette"):
        figure_to_png(fig, palette="yes")
    plt.close(fig)


def test_scrubber_alt_becomes_its_caption():
    png = png_bytes("white")
    with_alt = scrubber([png, png], alt="Two identical frames <of> a test figure")
    assert with_alt.children[-1] is with_alt.caption
    assert with_alt.caption.value == ('<p class="scansnap-frame-alt" role="note">'
                                      "Two identical frames &lt;of&gt; a test figure</p>")
    assert scrubber([png, png]).caption is None
    layered = layered_scrubber({"a": [png], "b": [png]}, ["t=0"], alt="One frame per option here")
    assert layered.children[-1] is layered.caption
    with pytest.raises(ValueError, match="alt"):
        scrubber([png], alt="short")
    with pytest.raises(TypeError, match="alt"):
        layered_scrubber({"a": [png]}, ["t=0"], alt=3)
