"""Where the benchmark scripts write their results: ``benchmarks/results/<name>.{json,md}``.

The Markdown file is what the reproducibility page includes (``{include}``), so the page's tables
are the scripts' output, with the machine and date of the measurement, never retyped.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """One line: CPU model, cores, torch threads, torch version, Python version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s){gpu}, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def table(header: list[str], rows: list[list[Any]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one letter per column (l/r), default left then right."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write(name: str, markdown: str, data: dict[str, Any]) -> Path:
    """Write ``<name>.json`` (data + provenance) and ``<name>.md`` (provenance line + body)."""
    RESULTS.mkdir(exist_ok=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python " + " ".join([Path(sys.argv[0]).as_posix().split("/")[-2] + "/"
                                    + Path(sys.argv[0]).name] + sys.argv[1:])
    where = machine()
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"date": when, "machine": where, "command": command, **data}, indent=1) + "\n")
    md = (f"*Measured {when} on {where}, with `{command}` "
          f"(results file `benchmarks/results/{name}.json`).*\n\n{markdown.strip()}\n")
    path = RESULTS / f"{name}.md"
    path.write_text(md)
    return path
