"""Shared helpers of the built-site tests (test_site.py, test_browser.py): where the site is and
which pages the table of contents lists."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
NO_SITE = f"no built book at {HTML.relative_to(ROOT)}: run `jb build . -W -n --keep-going --all` first"
# In CI (CI=true, as .ci/run is called) the built site and Chromium are required: without them the
# site and browser tests fail instead of skipping, so a build step that silently did nothing
# cannot pass.
REQUIRED = os.environ.get("CI", "").lower() == "true"
MISSING_SITE = not (HTML / "index.html").exists() and not REQUIRED
# The chapters that follow CONVENTIONS.md (issue 11): goals, paper numbering, Going-deeper
# dropdowns, short code cells, alt text on every figure. ch4 and ch5 join when their rewrite is
# merged (tests/test_chapter_sources.py checks the same list on the sources).
CONVENTION_CHAPTERS = ["book/ch1_setting", "book/ch2_reparameterization", "book/ch3_y_dynamics",
                       "book/ch4_fates_of_tokens", "book/ch5_phase_transition", "book/ch6_wikitext",
                       "book/further_results"]
WIDGET_STATE = re.compile(
    r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', re.S)


def toc_pages() -> list[str]:
    """Every page of _toc.yml, root first, as paths without suffix (e.g. "book/intro")."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({key: value for key, value in toc.items() if key != "root"})
    return [str(Path(page).with_suffix("")) for page in pages]


def chapter_pages() -> list[str]:
    return [page for page in toc_pages() if Path(page).name.startswith("ch")]


def html_of(page: str) -> str:
    return (HTML / f"{page}.html").read_text(encoding="utf-8")


def widget_state(html: str) -> dict:
    """The saved ipywidgets state of a page ({} when it has none)."""
    match = WIDGET_STATE.search(html)
    return json.loads(match[1])["state"] if match else {}


def image_frames(state: dict) -> set[bytes]:
    """The PNG bytes of every Image widget in a page's saved widget state."""
    frames = set()
    for model in state.values():
        if model.get("model_name") == "ImageModel":
            for buffer in model.get("buffers", []):
                if buffer.get("path") == ["value"]:
                    frames.add(base64.b64decode(buffer["data"]))
    return frames
