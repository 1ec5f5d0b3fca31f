"""Binder: binder/requirements.txt resolves with pip, and holds every package the chapters'
`.ipynb` twins import, directly or as a dependency (issue 13, item 4). A live Binder build
(repo2docker, the JupyterLab front end) cannot be run here; see book/reproducibility.md.
"""

from __future__ import annotations

import ast
import json
import os
import re
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder" / "requirements.txt"
TWINS = sorted((ROOT / "book").glob("*.ipynb"))
CI = os.environ.get("CI", "").lower() == "true"

pytestmark = pytest.mark.launch


def binder_lines() -> list[str]:
    return [line.split("#", 1)[0].strip() for line in BINDER.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def binder_names() -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in binder_lines()
            if not line.startswith("-") and line != "."}


def closure(names: set[str]) -> set[str]:
    """``names`` and everything they require (without extras), from the installed metadata."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for spec in map(Requirement, requires):
            if spec.marker is None or spec.marker.evaluate({"extra": ""}):
                todo.append(spec.name)
    return seen


def imported_modules(notebook: Path) -> set[str]:
    """Top-level names of every module a twin's code cells import (IPython magics skipped)."""
    modules = set()
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines()
                           if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


def test_binder_installs_the_package_and_what_the_package_needs():
    assert "." in binder_lines()  # scansnap, built from the repository (not editable)
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {canonicalize_name(Requirement(d).name) for d in project["dependencies"]}
    assert needed <= closure(binder_names())


@pytest.mark.parametrize("twin", TWINS, ids=lambda p: p.stem)
def test_every_import_of_a_twin_is_in_binders_list(twin):
    provided = closure(binder_names())
    owners = packages_distributions()
    missing = {}
    for module in imported_modules(twin) - set(sys.stdlib_module_names) - {"scansnap", "google"}:
        # google.colab is imported only inside Colab (the install cell's guarded branch)
        dists = {canonicalize_name(d) for d in owners.get(module, [])}
        if not dists & provided:
            missing[module] = sorted(dists) or "not installed here"
    assert missing == {}


def test_binder_lists_jupyterlab_for_the_widgets():
    names = binder_names()
    assert {"jupyterlab", "ipywidgets"} <= names
    assert "jupyterlab-widgets" in closure({"ipywidgets"})  # ipywidgets 8's JupyterLab renderer


def reachable(host: str, port: int = 443) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


@pytest.mark.online
def test_binder_requirements_resolve(tmp_path):
    """pip's resolver, a dry run from scratch (--ignore-installed), from the repository root as
    repo2docker runs it. Where the PyTorch CPU index is out of reach (as here), its line is
    dropped and torch==2.13.0+cpu becomes torch==2.13.0, the same release from PyPI."""
    if not reachable("pypi.org"):
        if CI:
            pytest.fail("PyPI is not reachable")
        pytest.skip("PyPI is not reachable")
    lines = BINDER.read_text().splitlines()
    index = next(line.split()[1] for line in lines if line.startswith("--extra-index-url"))
    if not reachable(urlparse(index).hostname):
        lines = [re.sub(r"^torch==(\S+)\+cpu$", r"torch==\1", line) for line in lines
                 if not line.startswith("--extra-index-url")]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(lines) + "\n")
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), "-r", str(requirements)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert resolved["torch"].split("+")[0] == "2.13.0"
    assert resolved["scansnap"] == "0.1.0" and resolved["ipywidgets"] == "8.1.9"
    assert "jupyterlab-widgets" in resolved
    imported = set().union(*(imported_modules(t) for t in TWINS)) - set(sys.stdlib_module_names)
    owners = packages_distributions()
    for module in imported - {"scansnap", "google"}:
        assert {canonicalize_name(d) for d in owners[module]} & set(resolved), module
