"""Execute the book's notebooks, as a reader runs them, into jupyter-book's execution cache.

Each executing page of _toc.yml that has an output-free ``.ipynb`` twin (the file Colab and
Binder open) is run from that twin, copied into a temporary folder outside the repository, in a
fresh kernel whose ``scansnap`` is the installed package: nothing of the checkout is on its path.
A page without a twin is not opened in Colab or Binder (instructors, reproducibility); it runs in
its own folder, where it may read the book's sources, with the same installed package. With the package
installed from its wheel (``pip install .``, as tools/setup_and_build.sh and CI do), this is the
Colab path of a reader, and its outputs are the book's: jupyter-cache keys a notebook on its code
cells and kernelspec, which a page and its twin share, so `jb build` then finds every page in the
cache instead of executing it a second time. One execution proves both.

    .venv/bin/python tools/preexecute.py [--timeout S] [--require-installed] [PAGE.md ...]

Exit 1 when a twin fails (its traceback is printed), when the installed scansnap differs from the
checkout's scansnap/ (reinstall it after an edit), or, with ``--require-installed`` (CI), when the
kernels would import scansnap from the checkout (an editable install) rather than an installed
wheel. The longest page (chapter 6, which trains on every core itself) runs alone first, then
the others in parallel, one per core, longest first (≈1.6× faster than `jb build`'s serial
execution on 2 cores, TOOLCHAIN.md); a page whose outputs are already cached is not run again
("cached" in the record). ``_build/launch.json`` records what ran where, for
tests/test_launch.py. PYTHONPATH is not passed to the kernels.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import yaml
from jupyter_cache import get_cache
from jupyter_cache.executors import load_executor
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData
from jupyter_client.kernelspec import KernelSpecManager

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "_build" / "launch.json"
REINSTALL = ".venv/bin/python -m pip install --no-deps --force-reinstall ."
USES_EVERY_CORE = ("book/ch6_wikitext.md",)  # trains its runs side by side (lm.train_many)


def notebook_pages() -> list[Path]:
    """Pages of _toc.yml whose .md front matter declares a kernel (i.e. pages that execute)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            names.extend([node["file"]] if "file" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", []))
    walk(toc.get("chapters", []))
    pages = []
    for name in names:
        path = ROOT / f"{Path(name).with_suffix('')}.md"
        if path.exists() and "kernelspec:" in path.read_text(encoding="utf-8").split("\n---", 1)[0]:
            pages.append(path)
    return pages


def kernel_python() -> str:
    """The interpreter of the ``python3`` kernel the notebooks ask for (jupyter_client runs a
    bare ``python`` in a kernelspec as this process's interpreter)."""
    command = KernelSpecManager().get_kernel_spec("python3").argv[0]
    return sys.executable if re.fullmatch(r"python[\d.]*", command) else command


def installed_scansnap(folder: Path, env: dict[str, str]) -> Path:
    """The scansnap a kernel started in ``folder`` with ``env`` imports (its ``__init__.py``)."""
    result = subprocess.run(
        [kernel_python(), "-c", "import scansnap; print(scansnap.__file__)"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        raise SystemExit(f"preexecute: scansnap is not importable outside the repository:\n"
                         f"{result.stderr}")
    return Path(result.stdout.strip()).resolve()


def same_package(installed: Path, logger: logging.Logger) -> bool:
    """Whether the installed package is this checkout's scansnap/ (else the book would show the
    outputs of other code). Files the installed copy lacks are only reported: the twins then
    fail as a reader's would, with the wheel's missing module in their traceback."""
    source = ROOT / "scansnap"
    files = {p.relative_to(source) for p in source.rglob("*.py")}
    copies = {p.relative_to(installed) for p in installed.rglob("*.py")}
    stale = sorted(str(f) for f in files & copies
                   if (source / f).read_bytes() != (installed / f).read_bytes())
    stale += sorted(f"{f} (not in the checkout)" for f in copies - files)
    if stale:
        logger.error("the installed scansnap (%s) is not this checkout's: %s differ. Reinstall "
                     "it: %s", installed, ", ".join(stale[:5]), REINSTALL)
        return False
    if files - copies:
        logger.warning("the installed scansnap lacks %s: its wheel does not hold them",
                       ", ".join(sorted(str(f) for f in files - copies)[:5]))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=600,
                        help="seconds per cell (as _config.yml)")
    parser.add_argument("--require-installed", action="store_true",
                        help="fail unless the kernels import an installed (non-editable) scansnap")
    parser.add_argument("pages", nargs="*", type=Path,
                        help="only these pages (book/NAME.md; default: every executing page)")
    args = parser.parse_args(argv)
    pages = notebook_pages()
    if args.pages:
        wanted = {page.resolve() for page in args.pages}
        unknown = wanted - set(pages)
        if unknown:
            parser.error(f"not executing pages of _toc.yml: {sorted(map(str, unknown))}")
        pages = [page for page in pages if page in wanted]
    logging.basicConfig(level=logging.WARNING, format="preexecute: %(message)s")
    logger = logging.getLogger("preexecute")
    logger.setLevel(logging.INFO)

    # The reader's kernel: no checkout on its path (PYTHONPATH would put one there).
    os.environ.pop("PYTHONPATH", None)
    # One torch thread per notebook: one notebook runs per core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    folder = Path(tempfile.mkdtemp(prefix="scansnap-launch-")).resolve()
    if folder.is_relative_to(ROOT):
        raise SystemExit(f"preexecute: the temporary folder {folder} is inside the repository")
    try:
        origin = installed_scansnap(folder, dict(os.environ))
        # The checkout's own scansnap/ folder (an editable install); .venv may sit inside ROOT.
        from_checkout = origin.is_relative_to(ROOT / "scansnap")
        logger.info("kernels run in %s and import scansnap from %s%s", folder, origin.parent,
                    " (the checkout: an editable install, not the reader's path)"
                    if from_checkout else "")
        if from_checkout and args.require_installed:
            logger.error("--require-installed: install the package from its wheel first "
                         "(%s)", REINSTALL)
            return 1
        if not from_checkout and not same_package(origin.parent, logger):
            return 1
        outcomes = execute_twins(pages, folder, args.timeout, logger)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps({
        "folder": str(folder), "scansnap": str(origin), "from_checkout": from_checkout,
        "python": kernel_python(), "pages": outcomes,
    }, indent=1) + "\n")
    failed = [page for page, outcome in outcomes.items() if outcome == "failed"]
    logger.info("cached %d page(s), %d failed", len(outcomes) - len(failed), len(failed))
    return 1 if failed else 0


def execute_twins(pages: list[Path], folder: Path, timeout: int,
                  logger: logging.Logger) -> dict[str, str]:
    """Run each page's twin (copied into ``folder``) into the cache; page -> "ok", "cached" or
    "failed"."""
    cache = get_cache(str(ROOT / "_build" / ".jupyter_cache"))
    copies = {}
    for page in pages:
        twin = page.with_suffix(".ipynb")
        if twin.exists():
            copy = folder / twin.name
            nbformat.write(nbformat.read(twin, as_version=4), copy)
            cache.add_nb_to_project(str(copy))
        else:  # a page without a twin is not opened in Colab/Binder: it runs in its own folder
            # (the instructors' page reads the chapters beside it), still importing the wheel
            copy = page
            cache.add_nb_to_project(str(copy), read_data={"name": "myst_nb_md", "type": "plugin"})
        copies[str(copy)] = str(page.relative_to(ROOT))
    executor = load_executor("local-parallel", cache=cache, logger=logger)
    # jupyter-cache's own run_and_cache hands pages to the workers in chunks (Pool.map), which can
    # queue the two longest pages on one worker. Here each worker takes the next page when it is
    # free, longest first: the book's last chapters are its longest, so chapters in reversed
    # book order, then the other pages (short).
    order = list(copies)
    records = sorted(executor.get_records(filter_uris=order, clear_tracebacks=True),
                     key=lambda record: (not copies[record.uri].startswith("book/ch"),
                                         -order.index(record.uri)))
    pending = {record.uri for record in records}  # the others' outputs are in the cache already
    logger.info("executing %d notebook(s) on %d workers", len(records), os.cpu_count())
    # Chapter 6 trains its runs in one process per core, so it runs alone first: beside another
    # page it would get half the machine, not priority (each kernel is its own session, and
    # Linux shares the CPU between sessions' groups, whatever their nice).
    jobs = [ProcessData(record.pk, record.uri, cache, timeout, False) for record in records]
    alone = [job for job in jobs if copies[job.uri] in USES_EVERY_CORE]
    others = [job for job in jobs if copies[job.uri] not in USES_EVERY_CORE]
    results = {}
    for batch, workers in ((alone, 1), (others, None)):
        with multiprocessing.Pool(workers) as pool:
            results.update((uri, code) for code, uri in
                           pool.imap_unordered(ExecutionWorkerLocalMProc(), batch, chunksize=1))
    outcomes = {}
    for uri, page in copies.items():
        if uri not in pending:
            outcomes[page] = "cached"  # unchanged since an earlier run: not executed again
            cache.remove_nb_from_project(uri)
            continue
        code = results.get(uri, 2)  # 1: a cell raised, 2: could not run
        outcomes[page] = "ok" if code == 0 else "failed"
        if code != 0:
            traceback = cache.get_project_record(uri).traceback or "(no traceback recorded)"
            logger.error("%s failed outside the repository:\n%s", page, traceback)
        cache.remove_nb_from_project(uri)  # the copy is deleted; its cached outputs stay
    return outcomes


if __name__ == "__main__":
    sys.exit(main())
