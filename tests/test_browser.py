"""The built site in a real browser: Debian's Chromium, driven by Playwright (pytest-playwright).

For every page of the table of contents: it loads with zero failed requests and nothing fetched
from outside the local server, no page errors (but the known THEBE_JS_URL one), widgets render,
math is typeset with no errors (undefined macros included), and every scrubber changes the frame
it shows when moved — the frame shown is checked byte for byte against the page's saved frames
(collapsed cells and "Going deeper" dropdowns are opened first). The restructured chapters are
also read at a phone's width (no sideways scrolling, figures scale) and in the theme's dark mode
(figures keep a light, opaque background).
Never run `playwright install`: the tests use /usr/bin/chromium (apt-get install chromium).
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest
from book_site import (CONVENTION_CHAPTERS, HTML, MISSING_SITE, NO_SITE, REQUIRED, html_of,
                       image_frames, toc_pages, widget_state)

CHROMIUM = os.environ.get("SCANSNAP_CHROMIUM", "/usr/bin/chromium")
# jupyter-book 1.x emits the sphinx-thebe inline script twice: harmless, on every page.
KNOWN_PAGE_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)

pytestmark = [
    pytest.mark.browser,
    # pytest-base-url (a pytest-playwright dependency) trips a pytest deprecation warning.
    pytest.mark.filterwarnings("ignore::pytest.PytestRemovedIn10Warning"),
    pytest.mark.skipif(MISSING_SITE, reason=NO_SITE),
    pytest.mark.skipif(not os.path.exists(CHROMIUM) and not REQUIRED,
                       reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium"),
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch options, pointed at Debian's Chromium, offline-quiet."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]}


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The built site, served from 127.0.0.1 on a free port."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(HTML)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class Visit:
    """Loads a page and records what went wrong while it did."""

    def __init__(self, page, url: str) -> None:
        self.page = page
        self.host = urlparse(url).netloc
        self.failed: list[str] = []
        self.errors: list[str] = []
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url} ({r.status})"))
        page.on("request", self._check_local)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        expand_hidden(page)

    def _check_local(self, request) -> None:
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.netloc != self.host:
            self.failed.append(f"{request.url} (not served by the site)")

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(known in e for known in KNOWN_PAGE_ERRORS)]


def expand_hidden(page) -> None:
    """Open every collapsed block — hide-cell cells and "Going deeper" dropdowns are <details>
    elements — so that what they hold (widgets, scrubbers, figures) renders and can be tested."""
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")


def visible_frame(page, scrubber) -> bytes:
    """The bytes of the image a scrubber shows (its Stack renders the selected frame only)."""
    data = scrubber.evaluate("""async (box) => {
        const img = [...box.querySelectorAll('img.widget-image')].find(i => i.offsetParent !== null);
        if (!img) return null;
        const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
        return Array.from(bytes);
    }""")
    assert data is not None, "the scrubber shows no image"
    return bytes(data)


@pytest.mark.parametrize("name", toc_pages())
def test_page_renders_offline(site, page, name):
    visit = Visit(page, f"{site}/{name}.html")
    html = html_of(name)
    if widget_state(html):
        page.wait_for_selector(".widget-subarea .jupyter-widgets", timeout=15_000)
        views = html.count('type="application/vnd.jupyter.widget-view+json"')
        assert page.locator(".widget-subarea").count() >= views
        assert page.locator(".widget-subarea .jupyter-widgets").count() >= views
    if 'class="math' in html:
        # state="attached": the first formula may sit in a closed dropdown (a solution).
        page.wait_for_selector("mjx-container", state="attached", timeout=15_000)
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.evaluate("() => MathJax.startup.promise")
        assert page.locator("mjx-merror").count() == 0, "MathJax reported a TeX error"
        # MathJax's noundefined package shows an undefined macro as red text instead of an error.
        undefined = page.locator('mjx-assistive-mml mtext[mathcolor="red"]').all_text_contents()
        assert not undefined, f"undefined TeX macros {undefined}: add them to _config.yml"
        assert page.locator("mjx-container").count() >= html.count('class="math')
    assert not visit.failed, f"failed or non-local requests: {visit.failed}"
    assert not visit.unexpected_errors(), f"page errors: {visit.unexpected_errors()}"


def scrubber_pages() -> list[str]:
    if not HTML.exists():
        return []
    # A page missing from the build fails test_page_renders_offline, not the collection.
    return [name for name in toc_pages()
            if (HTML / f"{name}.html").exists() and "PlayModel" in html_of(name)]


@pytest.mark.parametrize("name", scrubber_pages())
def test_scrubbers_change_the_frame(site, page, name):
    visit = Visit(page, f"{site}/{name}.html")
    frames = image_frames(widget_state(html_of(name)))
    page.wait_for_selector(".widget-play", timeout=15_000)
    # A scrubber = the VBox holding a Play widget (and the slider beside it) above a Stack.
    scrubbers = page.locator(".widget-vbox:has(> .widget-hbox > .widget-play)")
    assert scrubbers.count() >= 1
    for i in range(scrubbers.count()):
        scrubber = scrubbers.nth(i)
        handle = scrubber.locator(".noUi-handle").first
        first = visible_frame(page, scrubber)
        assert first in frames, "the shown image is not one of the page's saved frames"
        digests = [hashlib.sha256(first).hexdigest()]
        for key in ("ArrowRight", "End"):
            handle.focus()
            handle.press(key)
            page.wait_for_timeout(200)
            shown = visible_frame(page, scrubber)
            assert shown in frames
            digests.append(hashlib.sha256(shown).hexdigest())
        assert digests[1] != digests[0], "ArrowRight did not change the frame"
        assert digests[2] != digests[1], "End did not change the frame"
        # Play from the start: the Font Awesome fix in assets-path.js keeps this working.
        handle.focus()
        handle.press("Home")
        page.wait_for_timeout(200)
        start = visible_frame(page, scrubber)
        scrubber.locator(".widget-play button").first.click()
        page.wait_for_timeout(1500)
        assert visible_frame(page, scrubber) != start, "Play did not advance the frame"
    assert not visit.failed, f"failed or non-local requests: {visit.failed}"
    assert not visit.unexpected_errors(), f"page errors: {visit.unexpected_errors()}"


def test_live_widget_note_shows_only_in_the_book(site, page):
    Visit(page, f"{site}/book/intro.html")
    page.wait_for_selector(".scansnap-static-note", state="attached", timeout=15_000)
    assert page.locator(".scansnap-static-note").first.is_visible()


PHONE = {"width": 390, "height": 844}  # a common phone's CSS viewport


def convention_pages() -> list[str]:
    """The chapters restructured to CONVENTIONS.md (their figures have alt text), and the
    notation page."""
    return [*CONVENTION_CHAPTERS, "book/notation"]


@pytest.mark.parametrize("name", convention_pages())
def test_page_fits_a_phone_without_sideways_scrolling(site, page, name):
    """At a phone's width the page itself never scrolls sideways (code blocks, tables and
    display math may scroll inside their own box), and every figure scales to the column."""
    page.set_viewport_size(PHONE)
    visit = Visit(page, f"{site}/{name}.html")
    page.wait_for_timeout(500)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{name}: the page scrolls sideways by {overflow} px at {PHONE['width']} px"
    too_wide = page.evaluate("""() => {
        const main = document.querySelector('main') || document.body;
        const limit = main.getBoundingClientRect().right + 1;
        return [...main.querySelectorAll('img')]
            .filter(img => img.offsetParent !== null && img.getBoundingClientRect().right > limit
                    && !img.closest('.widget-subarea, .jupyter-widgets'))
            .map(img => (img.getAttribute('src') || '').slice(0, 60));
    }""")
    assert not too_wide, f"{name}: figures wider than the column at phone width: {too_wide}"
    assert not visit.unexpected_errors(), f"page errors: {visit.unexpected_errors()}"


@pytest.mark.parametrize("name", convention_pages())
def test_figures_stay_legible_in_dark_mode(site, page, name):
    """In the theme's dark mode every figure keeps an opaque light background (no transparent
    PNG showing dark text on the dark page) and is not colour-inverted."""
    page.add_init_script("localStorage.setItem('theme', 'dark'); localStorage.setItem('mode', 'dark');")
    Visit(page, f"{site}/{name}.html")
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    figures = page.evaluate("""() => [...document.querySelectorAll('main img')]
        .filter(img => img.complete && img.naturalWidth > 50 && /[.]png|^data:image[/]png/.test(img.src))
        .map(img => {
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const ctx = canvas.getContext('2d');
            ctx.drawImage(img, 0, 0);
            const [r, g, b, a] = ctx.getImageData(1, 1, 1, 1).data;
            const shown = getComputedStyle(img);
            return {src: img.src.slice(-40), alpha: a, light: (r + g + b) / 3,
                    filter: shown.filter, background: shown.backgroundColor};
        })""")
    if name in CONVENTION_CHAPTERS:
        assert figures, f"{name}: no figure found"
    for figure in figures:
        assert "invert" not in figure["filter"], f"{name}: {figure['src']} is colour-inverted"
        opaque_light = figure["alpha"] == 255 and figure["light"] > 200
        light_backing = figure["background"] in ("rgb(255, 255, 255)", "rgba(255, 255, 255, 1)")
        assert opaque_light or light_backing, f"{name}: {figure} is not legible on a dark page"
