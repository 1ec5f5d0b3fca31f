"""The coverage registry names only pages, labels and tests that exist (so the intro's table
cannot drift from the book), and renders to MyST."""

import re
from pathlib import Path

import pytest

from scansnap.chapters import intro

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("result", intro.RESULTS, ids=lambda r: intro.short(r.name))
def test_registry_points_at_what_exists(result):
    page = ROOT / f"{result.page}.md"
    assert page.is_file(), f"{result.name}: no page {page}"
    text = page.read_text()
    if result.label is not None:
        assert (f":label: {result.label}" in text or f"({result.label})=" in text), \
            f"{result.name}: label {result.label} not on {result.page}"
    for test in result.tests:
        path, name = test.split("::")
        source = (ROOT / path).read_text()
        assert re.search(rf"^def {re.escape(name)}\(", source, re.M), f"{test} does not exist"


def test_every_page_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    for result in intro.RESULTS:
        assert f"file: {result.page}" in toc, f"{result.page} is not in _toc.yml"


def test_renders_links_and_verdicts():
    table = intro.coverage_table()
    assert table.count("\n") == len(intro.RESULTS) + 1
    assert "{prf:ref}`Lemma 4 <ch4-lem-zdot>`" in table
    chain = intro.dependency_map()
    assert chain.index("Lemma 4 <") < chain.index("Theorem 2 <") < chain.index("Theorem 4 <")
    with pytest.raises(ValueError, match="verdict"):
        intro.Result("x", "§0", "book/intro", None, (), "maybe", "")
    with pytest.raises(ValueError, match="no registered"):
        intro.find("Lemma 99")
