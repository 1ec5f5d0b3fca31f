"""One source of truth for the launch URL: _config.yml's repository drives the README badges and
every Colab install cell (tools/set_repository.py rewrites them; issue 13, item 5)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import set_repository  # noqa: E402

pytestmark = pytest.mark.launch


def test_every_launch_link_agrees_with_the_config():
    assert {str(p.relative_to(ROOT)) for p in set_repository.disagreeing()} == set()


def test_every_notebook_page_has_the_install_cell():
    pages = {p.name for p in (ROOT / "book").glob("*.md") if "scansnap @ git+" in p.read_text()}
    chapters = {p.name for p in (ROOT / "book").glob("ch[0-9]*.md")}
    assert chapters | {"intro.md"} <= pages


def test_changing_the_config_moves_every_link(tmp_path):
    for name in ("README.md", "_config.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "book", tmp_path / "book", ignore=shutil.ignore_patterns("*.ipynb"))
    owner, name, _ = set_repository.repository(tmp_path)
    config = tmp_path / "_config.yml"
    config.write_text(config.read_text().replace(f"https://github.com/{owner}/{name}",
                                                 "https://github.com/someone/elsewhere"))
    stale = set_repository.disagreeing(tmp_path)
    assert tmp_path / "README.md" in stale and tmp_path / "book" / "intro.md" in stale
    for path, text in stale.items():
        path.write_text(text)
    assert set_repository.disagreeing(tmp_path) == {}
    readme = (tmp_path / "README.md").read_text()
    for link in ("https://mybinder.org/v2/gh/someone/elsewhere/main?",
                 "https://colab.research.google.com/github/someone/elsewhere/blob/main/",
                 "https://github.com/someone/elsewhere/actions/",
                 "https://someone.github.io/elsewhere/"):
        assert link in readme
    assert f"{owner}/{name}" not in readme
    assert "scansnap @ git+https://github.com/someone/elsewhere\"" in (
        tmp_path / "book" / "ch1_setting.md").read_text()


def test_bad_repository_url(tmp_path):
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://example.org/x\n")
    with pytest.raises(ValueError, match="repository.url"):
        set_repository.repository(tmp_path)
