"""Checks of the built book (_build/html): executed pages, saved widget state, no errors, no CDN.

Run after `jb build . -W -n --keep-going --all` (tools/setup_and_build.sh does both).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from book_site import (CONVENTION_CHAPTERS, HTML, MISSING_SITE, NO_SITE, ROOT, chapter_pages,
                       html_of, image_frames, toc_pages, widget_state)

pytestmark = [pytest.mark.book, pytest.mark.skipif(MISSING_SITE, reason=NO_SITE)]

ERROR_MARKERS = ('class="output traceback', 'class="output error', 'class="output stderr',
                 "Traceback (most recent call last)")


@pytest.mark.parametrize("page", toc_pages())
def test_page_built_without_error_outputs(page):
    html = html_of(page)
    for marker in ERROR_MARKERS:
        assert marker not in html, f"{page}: the executed page shows {marker!r}"


@pytest.mark.parametrize("page", ["book/intro", *chapter_pages()])
def test_page_has_saved_widget_state_and_figures(page):
    html = html_of(page)
    state = widget_state(html)
    assert state, f"{page}: no saved widget state (application/vnd.jupyter.widget-state+json)"
    static_figures = html.count('<img alt="_images/') + html.count('src="../_images/')
    assert static_figures or image_frames(state), f"{page}: no executed figure"
    views = html.count('type="application/vnd.jupyter.widget-view+json"')
    assert views >= 1, f"{page}: widget state but no widget displayed"


@pytest.mark.parametrize("page", chapter_pages())
def test_chapter_shows_figures(page):
    html = html_of(page)
    assert 'src="../_images/' in html or image_frames(widget_state(html)), f"{page}: no figure"


class _Assets(HTMLParser):
    """Collect every URL the page loads by itself (scripts, styles, images, fonts, frames)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video", "audio") and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href") and attrs.get("rel") in (
                "stylesheet", "preload", "modulepreload", "icon", "prefetch"):
            self.urls.append(attrs["href"])


@pytest.mark.parametrize("page", sorted(str(p.relative_to(HTML)) for p in HTML.rglob("*.html"))
                         if HTML.exists() else [])
def test_no_page_loads_from_a_cdn(page):
    parser = _Assets()
    parser.feed((HTML / page).read_text(encoding="utf-8"))
    remote = [url for url in parser.urls if "://" in url or url.startswith("//")]
    assert not remote, f"{page} loads {remote}"


def test_pinned_front_end_assets_are_in_the_site():
    for path in ("_static/widgets/require.js", "_static/widgets/embed-amd.js",
                 "_static/widgets/assets-path.js", "_static/mathjax/es5/tex-mml-chtml.js",
                 "_static/scansnap.css"):
        assert (HTML / path).is_file(), f"missing {path}: run tools/fetch_assets.sh, rebuild --all"
    html = html_of("book/intro")
    assert 'src="../_static/widgets/embed-amd.js' in html
    assert 'src="../_static/mathjax/es5/tex-mml-chtml.js' in html


def paired_pages() -> list[str]:
    """Pages of the toc with an .ipynb twin (the intro and every chapter: test_notebooks_paired)."""
    return [page for page in toc_pages() if (ROOT / f"{page}.ipynb").exists()]


@pytest.mark.parametrize("page", paired_pages())
def test_launch_buttons_open_the_ipynb_twin(page):
    html = html_of(page)
    name = Path(page).name
    assert f"urlpath=lab/tree/{page}.ipynb" in html, f"{page}: no Binder link to {name}.ipynb"
    assert f"colab.research.google.com/github/" in html and f"/{page}.ipynb" in html, (
        f"{page}: no Colab link to {name}.ipynb")


CHAPTER_NUMBERED_LABEL = re.compile(
    r"\b(Theorem|Lemma|Corollary|Definition|Assumption|Remark|Proposition|Conjecture|Axiom|"
    r"Criterion|Property|Observation|Algorithm)s?(\s|&nbsp;|&#160;)+\d+\.\d+\b")


class _Text(HTMLParser):
    """The text a reader sees (script and style contents left out)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def page_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


# sphinx-proof writes a numbered box's number into its title's caption-number span ("Lemma 1 ",
# "Theorem 6.1 "); an unnumbered box's span holds only its type ("Lemma ").
NUMBERED_BOX = re.compile(r'<div class="proof [^"]*"[^>]*>\s*<p class="admonition-title"[^>]*>'
                          r'<span class="caption-number">([^<]*\d[^<]*)</span>')


@pytest.mark.parametrize("page", toc_pages())
def test_no_chapter_numbered_theorem_label_reaches_the_page(page):
    """sphinx-proof numbers boxes per chapter ("Theorem 6.1"); the book uses the paper's numbers
    ("Theorem 4", CONVENTIONS.md §3), so no box may carry the book's number and no such label may
    appear in a page's text (a bare {prf:ref} to a numbered box prints one)."""
    html = html_of(page)
    numbered = NUMBERED_BOX.findall(html)
    assert not numbered, f"{page}: boxes numbered by the book {numbered}: use :nonumber:"
    found = sorted({match[0] for match in CHAPTER_NUMBERED_LABEL.finditer(page_text(html))})
    assert not found, f"{page} shows chapter-numbered labels {found}: use :nonumber: and the paper's name"


def test_page_text_finds_a_numbered_label():
    # The pattern the test above relies on, on what sphinx-proof writes for a numbered box.
    html = ('<p class="admonition-title">Theorem 6.1 (Scan and snap)</p><script>"Lemma 2.1"'
            '</script><a href="#x">Lemma&nbsp;3.2</a> Theorem 4 Eqn 5.1')
    found = [m[0] for m in CHAPTER_NUMBERED_LABEL.finditer(page_text(html))]
    assert found == ["Theorem 6.1", "Lemma 3.2"]


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.alts: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and "_images/" in (attrs.get("src") or ""):
            self.alts.append((attrs.get("src", ""), attrs.get("alt") or ""))


@pytest.mark.parametrize("page", CONVENTION_CHAPTERS)
def test_every_figure_has_alt_text(page):
    """Each executed figure carries a description (cell metadata mystnb.image.alt, or the :alt:
    of a glue:figure), not the file name myst-nb writes by default."""
    parser = _Images()
    parser.feed(html_of(page))
    assert parser.alts, f"{page}: no figure"
    missing = [src for src, alt in parser.alts if len(alt) < 20 or "_images/" in alt]
    assert not missing, f"{page}: figures without alt text: {missing}"


def _scrubbers_and_captions(state: dict) -> tuple[int, list[str]]:
    """(number of scrubbers, texts of their frame captions) in a page's saved widget state: a
    scrubber is a VBox with a Stack child; its caption an HTML child of class scansnap-frame-alt."""
    ref = re.compile(r"IPY_MODEL_(\w+)")
    scrubbers, captions = 0, []
    for model in state.values():
        if model.get("model_name") != "VBoxModel":
            continue
        children = [state.get(ref.match(c)[1], {}) for c in model["state"].get("children", [])
                    if ref.match(c)]
        if not any(child.get("model_name") == "StackModel" for child in children):
            continue
        scrubbers += 1
        captions += [re.sub(r"<[^>]+>", "", child["state"]["value"]) for child in children
                     if child.get("model_name") == "HTMLModel"
                     and "scansnap-frame-alt" in child["state"].get("value", "")]
    return scrubbers, captions


@pytest.mark.parametrize("page", ["book/intro", *CONVENTION_CHAPTERS])
def test_every_scrubber_describes_its_frames(page):
    """ipywidgets' Image has no alt attribute: each scrubber carries its frames' description as
    a caption (scansnap.widgets.frame_caption), at least 20 characters."""
    scrubbers, captions = _scrubbers_and_captions(widget_state(html_of(page)))
    assert len(captions) == scrubbers, f"{page}: {scrubbers} scrubber(s), {len(captions)} caption(s)"
    assert all(len(text.strip()) >= 20 for text in captions), captions
