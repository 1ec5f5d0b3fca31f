"""The package apart from the repository, as a reader's Colab or `pip install` gets it (issue 13).

The wheel is built from the sources (with pip, as `pip install "scansnap @ git+…"` builds it) and
installed, not editable, into a fresh virtual environment; every command then runs in a folder
that holds nothing of the repository, with no PYTHONPATH. The chapters' `.ipynb` twins are
executed that way by tools/preexecute.py, whose outputs the book build reuses (one execution
proves both); :func:`test_book_was_executed_as_a_reader_runs_it` checks its record.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from jupyter_cache.cache.main import JupyterCacheBase
from jupyter_cache.readers import get_reader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from preexecute import RECORD, notebook_pages  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "scansnap"
CI = os.environ.get("CI", "").lower() == "true"

pytestmark = pytest.mark.launch


def package_files() -> set[str]:
    """Every file of the package's source tree, as a path inside the wheel."""
    return {path.relative_to(ROOT).as_posix() for path in PACKAGE.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def reader_env_vars() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from the repository's sources (built from a copy of what the build
    reads, so the checkout gets no build/ folder)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "scansnap", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(work / "dist"), str(source)], check=True, timeout=600)
    (found,) = (work / "dist").glob("scansnap-*.whl")
    return found


@pytest.fixture(scope="module")
def reader_python(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed (no -e) and no checkout on its path.

    Its dependencies are the pinned packages of the running environment, made visible by a .pth
    file that lists their folder: a folder named in a .pth is only appended to sys.path, its own
    .pth files are not processed, so an editable scansnap installed there stays inactive, and a
    non-editable one is shadowed by the environment's own copy (checked below).
    """
    env = tmp_path_factory.mktemp("reader") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True,
                   timeout=120)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], check=True, capture_output=True, text=True).stdout
    import site

    Path(purelib.strip(), "borrowed_dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    # --ignore-installed: the borrowed folder may hold a scansnap (editable or not); pip must
    # neither skip this install because of it nor touch it.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", "--ignore-installed", str(wheel)], check=True,
                   timeout=300)
    return python


def test_wheel_holds_every_file_of_the_package(wheel):
    with zipfile.ZipFile(wheel) as z:
        in_wheel = {name for name in z.namelist() if name.startswith("scansnap/")}
    assert in_wheel == package_files()
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read("scansnap-0.1.0.dist-info/METADATA").decode()
        entry_points = z.read("scansnap-0.1.0.dist-info/entry_points.txt").decode()
    assert "scansnap = scansnap.__main__:main" in entry_points
    assert "Requires-Dist: platformdirs" in metadata


def test_no_module_reads_a_path_of_the_repository():
    """Package data would be read through importlib.resources; nothing is located from
    ``__file__``, and no repository folder is named."""
    pattern = re.compile(r"__file__|[\"']\.\./shared|parents\[")
    offending = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in sorted(PACKAGE.rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert offending == []


def test_every_module_imports_from_the_installed_wheel(reader_python, tmp_path):
    code = ("import importlib, json, sys\n"
            f"names = {module_names()!r}\n"
            "print(json.dumps({n: importlib.import_module(n).__file__ for n in names}))\n")
    result = subprocess.run([str(reader_python), "-c", code], cwd=tmp_path, env=reader_env_vars(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    files = {name: Path(file) for name, file in json.loads(result.stdout).items()}
    site = reader_python.parent.parent
    assert all(file.is_relative_to(site) for file in files.values()), files
    assert not any(file.is_relative_to(ROOT) for file in files.values())


def test_cli_figure_6_from_any_folder(reader_python, tmp_path):
    command = reader_python.parent / "scansnap"
    result = subprocess.run([str(command), "figure", "6", "--out", "out", "--quick",
                             "--no-progress"], cwd=tmp_path, env=reader_env_vars(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    png, data = tmp_path / "out" / "fig6.png", tmp_path / "out" / "fig6.json"
    assert png.read_bytes().startswith(b"\x89PNG") and json.loads(data.read_text())


def test_student_edition_needs_the_book_folder(reader_python, tmp_path):
    command = reader_python.parent / "scansnap"
    result = subprocess.run([str(command), "student-edition", "out"], cwd=tmp_path,
                            env=reader_env_vars(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "--book" in result.stderr and str(tmp_path / "book") in result.stderr
    result = subprocess.run([str(command), "student-edition", "out", "--book",
                             str(ROOT / "book")], cwd=tmp_path, env=reader_env_vars(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{p.stem}.ipynb" for p in (ROOT / "book").glob("ch[0-9]*.md"))


TWINNED = [page for page in notebook_pages() if page.with_suffix(".ipynb").exists()]


@pytest.mark.parametrize("page", TWINNED, ids=lambda page: page.stem)
def test_page_and_twin_share_their_cache_key(page, tmp_path):
    """jupyter-cache keys a notebook on its code cells and kernelspec: the build of the .md page
    finds the outputs tools/preexecute.py cached for its twin, and does not execute it again."""
    cache = JupyterCacheBase(str(tmp_path / "cache"))
    read_page = get_reader({"name": "myst_nb_md", "type": "plugin"})
    page_key = cache.create_hashed_notebook(read_page(str(page)))[1]
    twin_key = cache.create_hashed_notebook(
        nbformat.read(page.with_suffix(".ipynb"), as_version=4))[1]
    assert page_key == twin_key


def test_book_was_executed_as_a_reader_runs_it():
    """tools/preexecute.py ran every executing page's twin outside the repository against an
    installed (non-editable) scansnap, and none failed."""
    if not RECORD.exists():
        message = f"no {RECORD.relative_to(ROOT)}: run tools/preexecute.py (the book build) first"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    record = json.loads(RECORD.read_text())
    assert not Path(record["folder"]).is_relative_to(ROOT)
    assert not record["from_checkout"], f"scansnap came from the checkout: {record['scansnap']}"
    expected = {str(page.relative_to(ROOT)) for page in notebook_pages()}
    assert set(record["pages"]) == expected
    allowed = {"ok"} if CI else {"ok", "cached"}  # CI starts from an empty cache
    assert {page: outcome for page, outcome in record["pages"].items()
            if outcome not in allowed} == {}
