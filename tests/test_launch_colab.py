"""The Colab path: the install cell every notebook page starts with, and scrubbers that keep
working where the front end does not run ``jslink`` (issue 13, item 2).

What cannot be checked here is Colab itself (its widget manager, its preinstalled packages): the
cell's Colab branch is executed with ``google.colab`` and ``subprocess.run`` stood in for, which
checks what it asks pip for and that it turns the widget manager on.
"""

from __future__ import annotations

import subprocess
import sys
import types
from importlib.metadata import version
from pathlib import Path

import ipywidgets as widgets
import jupytext
import pytest
from packaging.requirements import Requirement

from scansnap.widgets import layered_scrubber, scrubber

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(p for p in (ROOT / "book").glob("*.md") if "scansnap @ git+" in p.read_text())

pytestmark = pytest.mark.launch


def first_code_cell(path: Path):
    return next(cell for cell in jupytext.read(path).cells if cell.cell_type == "code")


def test_every_page_opens_with_the_same_colab_cell():
    cells = {page.name: first_code_cell(page) for page in PAGES}
    assert len(cells) >= 7  # intro and six chapters
    assert len({cell.source for cell in cells.values()}) == 1
    assert all(cell.metadata.get("tags") == ["remove-cell"] for cell in cells.values())


def run_colab_cell(monkeypatch, in_colab: bool) -> tuple[list[list[str]], list[str]]:
    """Execute the cell; return the commands it ran and the widget-manager calls it made."""
    commands, calls = [], []
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: commands.append(command))
    if in_colab:
        output = types.ModuleType("google.colab.output")
        output.enable_custom_widget_manager = lambda: calls.append("enable_custom_widget_manager")
        colab = types.ModuleType("google.colab")
        colab.output = output
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", colab)
        monkeypatch.setitem(sys.modules, "google.colab.output", output)
    exec(first_code_cell(PAGES[0]).source, {})
    return commands, calls


def test_outside_colab_the_cell_does_nothing(monkeypatch):
    assert run_colab_cell(monkeypatch, in_colab=False) == ([], [])


def test_in_colab_the_cell_keeps_colab_torch_and_enables_widgets(monkeypatch):
    commands, calls = run_colab_cell(monkeypatch, in_colab=True)
    assert calls == ["enable_custom_widget_manager"]
    assert len(commands) == 1 and commands[0][:4] == [sys.executable, "-m", "pip", "install"]
    requirements = {Requirement(arg).name: Requirement(arg) for arg in commands[0][4:]
                    if not arg.startswith("-")}
    assert set(requirements) == {"scansnap", "myst-nb", "torch"}
    assert requirements["scansnap"].url.startswith("git+https://github.com/")
    # torch is held at the version already installed (Colab's), so pip cannot replace it.
    assert str(requirements["torch"].specifier) == f"=={version('torch')}"
    assert str(requirements["myst-nb"].specifier) == f"=={version('myst-nb')}"


def test_package_asks_for_the_widgets_it_uses():
    """Colab ships ipywidgets 7; the scrubbers need 8 (Stack), so the wheel must say so for pip to
    upgrade it there."""
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "ipywidgets>=8" in dependencies
    assert not any(Requirement(d).name == "torch" and Requirement(d).specifier
                   for d in dependencies)  # no torch pin that could replace Colab's build


def test_scrubber_links_also_work_in_the_kernel():
    """Without any front end (as where jslink does not run), moving Play moves the frame."""
    s = scrubber([b"\x89PNG\r\n\x1a\n1", b"\x89PNG\r\n\x1a\n2", b"\x89PNG\r\n\x1a\n3"],
                 labels=["a", "b", "c"])
    s.play.value = 2
    assert (s.slider.index, s.stack.selected_index) == (2, 2)
    s.slider.index = 1
    assert s.stack.selected_index == 1 and s.play.value == 1
    plain = scrubber([b"\x89PNG\r\n\x1a\n1", b"\x89PNG\r\n\x1a\n2"])
    plain.play.value = 1
    assert (plain.slider.value, plain.stack.selected_index) == (1, 1)


def test_layered_scrubber_links_also_work_in_the_kernel():
    frames = {"a": [b"\x89PNG\r\n\x1a\na1", b"\x89PNG\r\n\x1a\na2"],
              "b": [b"\x89PNG\r\n\x1a\nb1", b"\x89PNG\r\n\x1a\nb2"]}
    s = layered_scrubber(frames, labels=[0, 10])
    s.play.value = 1
    assert [stack.selected_index for stack in s.stacks] == [1, 1]
    s.dropdown.index = 1
    assert s.outer.selected_index == 1
    assert isinstance(s.play, widgets.Play)
