"""Every notebook page of the book has an up-to-date, output-free .ipynb twin (for Colab/Binder).

Chapters and the intro must pair with ipynb; any other page that pairs must keep its twin fresh.
Fix a failure with ``.venv/bin/python tools/sync_notebooks.py`` (see README, "Writing a chapter").
"""

import json
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import sync_notebooks  # noqa: E402

BOOK = ROOT / "book"
NOTEBOOK_PAGES = sorted([BOOK / "intro.md", *BOOK.glob("ch*.md")])


@pytest.mark.parametrize("page", NOTEBOOK_PAGES, ids=lambda p: p.name)
def test_chapter_is_a_paired_myst_notebook(page):
    notebook = jupytext.read(page)
    assert "kernelspec" in notebook.metadata, f"{page.name}: no kernelspec in the jupytext header"
    formats = str(notebook.metadata.get("jupytext", {}).get("formats", "")).split(",")
    assert "md:myst" in formats and "ipynb" in formats, (
        f"{page.name} is not paired: run `jupytext --set-formats md:myst,ipynb book/{page.name}`")


@pytest.mark.parametrize("page", sync_notebooks.paired_pages(BOOK), ids=lambda p: p.name)
def test_twin_is_up_to_date_and_output_free(page):
    twin = page.with_suffix(".ipynb")
    assert twin.exists(), f"missing {twin.name}: run tools/sync_notebooks.py"
    notebook = nbformat.read(twin, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{twin.name} has outputs: run tools/sync_notebooks.py")
    assert page not in sync_notebooks.stale_twins(BOOK), (
        f"{twin.name} differs from {page.name}: run tools/sync_notebooks.py")


def test_no_orphan_twins():
    for twin in BOOK.glob("*.ipynb"):
        assert twin.with_suffix(".md").exists(), f"{twin.name} has no .md source"


GOALS = BOOK / "_goals"


@pytest.mark.parametrize("page", sync_notebooks.paired_pages(BOOK), ids=lambda p: p.name)
def test_twin_shows_included_text_not_the_directive(page):
    """Colab does not resolve MyST includes: the twin carries the goals' text itself."""
    source = page.read_text(encoding="utf-8")
    included = sync_notebooks.INCLUDE.findall(source)
    twin = nbformat.read(page.with_suffix(".ipynb"), as_version=4) if page.with_suffix(
        ".ipynb").exists() else sync_notebooks.twin_notebook(page)
    markdown = "\n".join(cell.source for cell in twin.cells if cell.cell_type == "markdown")
    assert "{include}" not in markdown, f"{page.name}: the twin shows a bare include directive"
    for _fence, target in included:
        text = (page.parent / target).read_text(encoding="utf-8").strip()
        assert text in markdown, f"{page.name}: the twin lacks the text of {target}"


def test_expand_includes_unwraps_the_goals_admonition(tmp_path):
    (tmp_path / "_goals").mkdir()
    (tmp_path / "_goals" / "g.md").write_text("- first goal\n- second goal\n")
    page = ("# Title\n\n:::{admonition} After this chapter you can\n:class: tip\n"
            "```{include} _goals/g.md\n```\n:::\n\nProse.")
    expanded = sync_notebooks.expand_includes(page, tmp_path)
    assert expanded == ("# Title\n\n**After this chapter you can**\n\n- first goal\n- second goal\n"
                        "\nProse.")
    with pytest.raises(FileNotFoundError, match="missing.md"):
        sync_notebooks.expand_includes("```{include} missing.md\n```", tmp_path)


def test_goal_files_are_not_pages_and_every_chapter_includes_its_own():
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    assert '"book/_goals"' in config, "_config.yml must exclude book/_goals from the pages"
    instructors = (BOOK / "instructors.md").read_text(encoding="utf-8")
    for goals in sorted(GOALS.glob("*.md")):
        chapter = BOOK / goals.name
        assert chapter.exists(), f"{goals.name} has no chapter"
        assert f"{{include}} _goals/{goals.name}" in chapter.read_text(encoding="utf-8"), (
            f"{chapter.name} does not include its goals")
        assert f"{{include}} _goals/{goals.name}" in instructors, (
            f"instructors.md does not include {goals.name}")


def test_twins_carry_the_package_code_the_pages_include():
    """A page's ``literalinclude :pyobject:`` shows package code in the book; Colab does not
    resolve it, so the twin carries that object's current source (and goes stale with it)."""
    import inspect
    import textwrap

    from scansnap import models

    twin = json.loads((BOOK / "ch2_reparameterization.ipynb").read_text())
    markdown = "".join("".join(cell["source"]) for cell in twin["cells"]
                       if cell["cell_type"] == "markdown")
    assert inspect.getsource(models.yz_logits).strip() in markdown
    twin = json.loads((BOOK / "ch1_setting.ipynb").read_text())
    markdown = "".join("".join(cell["source"]) for cell in twin["cells"]
                       if cell["cell_type"] == "markdown")
    assert textwrap.dedent(inspect.getsource(models.Transformer1L.forward)).strip() in markdown
