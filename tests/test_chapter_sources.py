"""The chapter conventions of CONVENTIONS.md (issue 11), checked on the MyST sources.

COVERED lists the chapters restructured so far; ch4 and ch5 join it when their rewrite is merged
(until then they would fail on the cell-size and numbering rules).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
sys.path.insert(0, str(ROOT / "tools"))

import core_path_stats  # noqa: E402

from book_site import CONVENTION_CHAPTERS  # noqa: E402

COVERED = [Path(page).name for page in CONVENTION_CHAPTERS]
MAX_LINES, MAX_COLUMNS = 12, 88
PAPER_TITLE = re.compile(r"^(Theorem|Theorems|Lemma|Lemmas|Corollary|Definition|Assumption|Assumptions|"
                         r"Remark|Proposition|Eqn) [0-9A-Z(§]|^Book result: ")
CHAPTER_NUMBERED = re.compile(
    r"\b(Theorem|Lemma|Corollary|Definition|Assumption|Remark|Proposition)s?\s+\d+\.\d+\b")


def source(chapter: str) -> str:
    return (BOOK / f"{chapter}.md").read_text(encoding="utf-8")


def shown_code_cells(text: str) -> list[list[str]]:
    """Every code cell a reader can see, at once or with one click (not tagged remove-*)."""
    lines = text.split("\n")
    cells, index = [], 0
    while index < len(lines):
        if lines[index].startswith("```{code-cell}"):
            index, body, tags = core_path_stats._code_cell(lines, index)
            if not {"remove-cell", "remove-input"} & set(tags):
                cells.append(body)
        else:
            index += 1
    return cells


@pytest.mark.parametrize("chapter", COVERED)
def test_shown_code_cells_are_short_and_narrow(chapter):
    for cell in shown_code_cells(source(chapter)):
        assert len(cell) <= MAX_LINES, (
            f"{chapter}: a shown code cell has {len(cell)} lines (max {MAX_LINES}), starting "
            f"{cell[0]!r}: move bookkeeping into a remove-cell cell or the package")
        for line in cell:
            assert len(line) <= MAX_COLUMNS, f"{chapter}: {len(line)} columns: {line!r}"


@pytest.mark.parametrize("chapter", COVERED)
def test_boxes_carry_the_papers_numbering(chapter):
    text = source(chapter)
    boxes = re.findall(r"^(`{3,}|:{3,})\{prf:(\w+)\}[ \t]*(.*)\n((?::[\w-]+:.*\n)*)", text, re.M)
    assert boxes, f"{chapter}: no prf box"
    for _fence, kind, title, options in boxes:
        assert ":nonumber:" in options, f"{chapter}: prf:{kind} {title!r} is numbered by chapter"
        assert PAPER_TITLE.match(title), (
            f"{chapter}: box title {title!r} must start with the paper's name for it "
            "(e.g. 'Theorem 4 (…)') or 'Book result: '")
    bare = re.findall(r"\{prf:ref\}`([^`<]*)`", text)
    assert not bare, f"{chapter}: {{prf:ref}} without explicit text would print no number: {bare}"
    assert not CHAPTER_NUMBERED.search(re.sub(r"\(.*?\)=", "", text)), (
        f"{chapter}: a chapter-numbered label is typed in the text")


@pytest.mark.parametrize("chapter", COVERED)
def test_chapter_opens_with_goals_and_ends_with_summary(chapter):
    text = source(chapter)
    title = re.search(r"^# .*$", text, re.M)
    opening = text[title.end():title.end() + 300]
    assert re.match(r"\s*:::\{admonition\} After this chapter you can\n:class: tip\n"
                    rf"```{{include}} _goals/{chapter}\.md\n```\n:::", opening), (
        f"{chapter}: the goals admonition must come right under the title")
    assert (BOOK / "_goals" / f"{chapter}.md").is_file()
    sections = re.findall(r"^## (.*)$", text, re.M)
    assert "Summary" in sections, f"{chapter}: no ## Summary"
    summary = text[text.index("## Summary"):]
    assert "{doc}`" in summary or "{ref}`" in summary, f"{chapter}: the summary points nowhere"
    assert "{glue:text}`" in summary, f"{chapter}: the summary quotes no measured number"


@pytest.mark.parametrize("chapter", COVERED)
def test_going_deeper_sections_are_dropdowns(chapter):
    text = source(chapter)
    parts = re.split(r"^(?=## )", text, flags=re.M)
    deeper = [part for part in parts if part.startswith("## Going deeper: ")]
    assert deeper, f"{chapter}: no Going deeper section"
    for part in deeper:
        topic = part.split("\n", 1)[0].removeprefix("## Going deeper: ")
        assert f"{{dropdown}} Going deeper — {topic}" in part, (
            f"{chapter}: 'Going deeper: {topic}' has no dropdown of the same topic")
        for cell in re.findall(r"```\{code-cell\} ipython3\n(:tags: .*)?", part):
            assert "hide-cell" in cell or "remove-cell" in cell, (
                f"{chapter}: a code cell of 'Going deeper: {topic}' is not tagged hide-cell")


NOTATION_ANCHORS = re.compile(r"^\(notation-([\w-]+)\)=$", re.M)


def test_notation_page_defines_the_agreed_anchors():
    text = (BOOK / "notation.md").read_text(encoding="utf-8")
    anchors = set(NOTATION_ANCHORS.findall(text))
    # CONVENTIONS.md §6's names, except Γ: Sphinx lowercases labels, so "notation-Gamma" would
    # collide with γ's "notation-gamma"; Γ is "notation-big-gamma".
    agreed = {"M", "K", "psi", "c", "f", "Y", "Z", "eta-y", "eta-z", "gamma", "big-gamma", "B",
              "t0", "t0prime", "C0", "rho0", "beta", "xi"}
    assert agreed <= anchors, f"notation.md lacks anchors {sorted(agreed - anchors)}"
    lowered = [anchor.lower() for anchor in NOTATION_ANCHORS.findall(text)]
    assert len(lowered) == len(set(lowered)), "two anchors differ only in case (Sphinx merges them)"
    assert text.lstrip().startswith("(notation)=")


@pytest.mark.parametrize("chapter", COVERED)
def test_chapter_links_its_symbols_to_the_notation_page(chapter):
    anchors = set(NOTATION_ANCHORS.findall((BOOK / "notation.md").read_text(encoding="utf-8")))
    links = re.findall(r"\{ref\}`[^`<]*<notation-([\w-]+)>`", source(chapter))
    assert links, f"{chapter}: no link to the notation page"
    assert set(links) <= anchors, f"{chapter}: links to missing anchors {set(links) - anchors}"


def _resolve(name: str) -> object | None:
    """``scansnap.<name>``, where ``Run.x`` / ``SequenceClasses.x`` name an attribute of an
    instance (a dataclass field or a method) and ``a.b`` a module ``scansnap.a``'s ``b``."""
    import importlib

    from scansnap import SequenceClasses
    from scansnap.dynamics import Run

    head, *rest = name.split(".")
    owners = {"Run": Run, "SequenceClasses": SequenceClasses()}
    if head in owners:
        owner = owners[head]
        return True if rest[0] in getattr(owner, "__dataclass_fields__", {}) else getattr(
            owner, rest[0], None)
    obj: object | None = importlib.import_module(f"scansnap.{head}")
    for part in rest:
        obj = getattr(obj, part, None)
    return obj


def test_notation_page_names_exist_in_the_package():
    text = (BOOK / "notation.md").read_text(encoding="utf-8")
    names = set(re.findall(r"`((?:[a-z_]+\.)*[A-Za-z_]+\.[A-Za-z_0-9]+)(?:\(|`)", text))
    assert len(names) > 20, names
    missing = [name for name in sorted(names) if _resolve(name) is None]
    assert not missing, f"notation.md names what scansnap does not have: {missing}"


def test_core_path_stats_counts_only_the_core_path(tmp_path):
    page = tmp_path / "chX.md"
    page.write_text("""---
kernelspec:
  name: python3
---
# Title

Two words {glue:text}`a:.2f` and $x^2 + y$ here.

```{code-cell} ipython3
x = 1
y = 2
```

```{code-cell} ipython3
:tags: [remove-cell]

glue("a", 1.0)
```

:::{dropdown} Going deeper — hidden
Many many many words {glue:text}`b` here.
:::

## Going deeper: side

Side words {glue:text}`c`.

```{code-cell} ipython3
:tags: [hide-cell]

z = 3
```

## Summary

Done {glue:text}`a`.
""")
    stats = core_path_stats.stats(page)
    # "Title", "Two words NUMBER and MATH here", "Summary", "Done NUMBER"
    assert stats.words == 1 + 6 + 1 + 2
    assert stats.glued_numbers == 2
    assert stats.visible_code_lines == 2 and stats.longest_visible_cell == 2
    assert stats.widest_visible_line == len("x = 1")


def test_execute_page_reports_unglued_and_misformatted_references():
    import execute_page
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    record = "application/papermill.record/text/plain"
    cell.outputs = [nbformat.v4.new_output("display_data", data={record: repr(value)},
                                           metadata={"scrapbook": {"name": name}})
                    for name, value in [("x", 0.5), ("s", "a–b"), ("n", 0.25)]]
    cell.outputs[2]["data"][record] = "np.float64(0.25)"  # how a numpy scalar is glued
    nb.cells = [cell]
    source = "{glue:text}`x:.2f` {glue:text}`n` {glue:text}`s` {glue}`x`"
    assert execute_page.glue_problems(source, nb) == []
    problems = execute_page.glue_problems(
        source + " {glue:text}`gone` {glue:text}`s:.2f` {glue:text}`n:.1%`", nb)
    assert len(problems) == 3
    assert "nothing glued as 'gone'" in problems[0]
    assert "`s:.2f`" in problems[1] and "`n:.1%`" in problems[2]


def test_glue_references_from_another_page_carry_a_format():
    """myst-nb splits ``{glue:text}`page.md::key``` at its last colon, reading ``page.md:`` as
    the key; with a format spec (``page.md::key:d``) the key comes out whole."""
    pattern = re.compile(r"\{glue(?::\w+)?\}`([^`]+\.md::[^`:]+)`")
    bare = [(page.name, ref) for page in sorted((ROOT / "book").glob("*.md"))
            for ref in pattern.findall(page.read_text())]
    assert not bare, f"cross-page glue references without a format spec: {bare}"
