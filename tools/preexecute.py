"""Execute the book's notebook pages in parallel into jupyter-book's execution cache.

`jb build` executes pages one after another (Sphinx's -j falls back to serial and fails under
-W). Filling the cache beforehand with jupyter-cache's parallel executor lets the build reuse the
outputs (≈1.6× faster on 2 cores, TOOLCHAIN.md). The build stays the gate: a page that fails
here is not cached, so `jb build` executes it again and fails with its traceback.

    .venv/bin/python tools/preexecute.py [--timeout S]

Uses the same reader (myst-nb's) and the same cache folder (_build/.jupyter_cache) as the build,
so the notebooks hash identically. Only pages listed in _toc.yml are executed.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
from pathlib import Path

import yaml
from jupyter_cache import get_cache
from jupyter_cache.executors import load_executor
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

ROOT = Path(__file__).resolve().parent.parent


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (as _config.yml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="preexecute: %(message)s")
    logger = logging.getLogger("preexecute")
    logger.setLevel(logging.INFO)
    cache = get_cache(str(ROOT / "_build" / ".jupyter_cache"))
    pages = notebook_pages()
    for page in pages:
        cache.add_nb_to_project(str(page), read_data={"name": "myst_nb_md", "type": "plugin"})
    # One torch thread per notebook: one notebook runs per core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    executor = load_executor("local-parallel", cache=cache, logger=logger)
    # jupyter-cache's own run_and_cache hands pages to the workers in chunks (Pool.map), which can
    # queue the two longest pages on one worker. Here each worker takes the next page when it is
    # free, longest first: the book's last chapters are its longest, so reversed book order.
    rank = {str(page): index for index, page in enumerate(pages)}
    records = sorted(executor.get_records(clear_tracebacks=True),
                     key=lambda record: -rank.get(record.uri, -1))
    logger.info("executing %d page(s) on %d workers", len(records), os.cpu_count())
    jobs = [ProcessData(record.pk, record.uri, cache, args.timeout, False) for record in records]
    with multiprocessing.Pool() as pool:
        outcomes = list(pool.imap_unordered(ExecutionWorkerLocalMProc(), jobs, chunksize=1))
    failed = [uri for code, uri in outcomes if code != 0]  # 1: a cell raised, 2: could not run
    for uri in failed:
        logger.warning("failed (jb build will show the traceback): %s", uri)
    logger.info("cached %d page(s), %d failed", len(outcomes) - len(failed), len(failed))
    return 0  # the build is the gate


if __name__ == "__main__":
    sys.exit(main())
