"""binder/requirements.txt pins exactly what requirements.txt pins (CPU torch, no test tools,
plus the JupyterLab that Binder opens)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_ONLY = {"pytest", "playwright", "pytest-playwright"}
BINDER_ONLY = {"jupyterlab"}  # the interface the launch button opens
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)$")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-") or line == ".":  # --extra-index-url, the package
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: {line!r} is not an exact pin (name==version)"
        found[match[1].lower().replace("_", "-")] = match[2]
    return found


def test_binder_pins_match_requirements():
    book = pins(ROOT / "requirements.txt")
    binder = pins(ROOT / "binder" / "requirements.txt")
    expected = {name: version for name, version in book.items() if name not in TEST_ONLY}
    expected["torch"] = expected["torch"].split("+")[0] + "+cpu"
    assert {name: v for name, v in binder.items() if name not in BINDER_ONLY} == expected
    assert set(binder) - set(expected) == BINDER_ONLY


def test_binder_uses_cpu_torch_index_and_installs_the_package():
    lines = [line.strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "." in lines  # built and installed like a reader's pip install, not editable


def test_binder_python_matches_the_tested_python():
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
