"""The package's layout rules (README "The package"): core modules never import a chapter, a
chapter imports only the core and earlier chapters, and the figure registry is lazy."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scansnap"
ORDER = ["intro", "ch1_setting", "ch2_reparameterization", "ch3_y_dynamics", "ch4_fates_of_tokens",
         "ch5_phase_transition", "ch6_wikitext", "further_results"]


def _imports(path: Path) -> set[str]:
    """Absolute names of the scansnap modules ``path`` imports."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        package += ".__init__"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("scansnap")}


def _chapter_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "chapters" else None


def test_chapter_order_lists_every_chapter_module():
    present = {p.stem if p.is_file() else p.name for p in (PACKAGE / "chapters").iterdir()
               if p.name != "__init__.py" and not p.name.startswith((".", "_"))}
    assert present == set(ORDER)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layout(path):
    own = _chapter_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    for module in _imports(path):
        chapter = _chapter_of(module)
        if chapter is None:
            continue
        assert own is not None, f"{path.name}: a core module imports chapter {module}"
        assert ORDER.index(chapter) <= ORDER.index(own), \
            f"{path.name}: chapter {own} imports a later chapter, {module}"


def test_importing_the_package_and_chapter_1_does_not_load_the_language_model():
    code = ("import sys, scansnap, scansnap.figures, scansnap.chapters.ch1_setting;"
            "print(sorted(m for m in sys.modules if m.startswith(('scansnap.lm', 'scansnap.chapters.ch'))"
            " or m == 'scansnap.lm'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)
    assert out.stdout.strip() == "['scansnap.chapters.ch1_setting']"


def test_every_registered_figure_resolves_to_its_chapter():
    from scansnap import figures

    for number, target in figures.FIGURES.items():
        function = figures.function(number)
        assert f"{function.__module__}:{function.__name__}".startswith(target.split(":")[0])
        assert function.__name__ == target.split(":")[1]
