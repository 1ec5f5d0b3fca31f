"""The command line: python -m scansnap."""

import subprocess
import sys

from scansnap.__main__ import main


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "scansnap", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    assert "figure" in result.stdout and "student-edition" in result.stdout


def test_unknown_figure_is_a_clear_error(capsys):
    assert main(["figure", "99", "--out", "unused"]) == 2
    assert "number must be one of" in capsys.readouterr().err


def test_list_figures(capsys):
    assert main(["list"]) == 0


def test_student_edition_needs_a_book_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no book/ here: the package holds no chapters
    assert main(["student-edition", "out", "--book", "missing"]) == 2
    err = capsys.readouterr().err
    assert "--book" in err and str(tmp_path / "missing") in err
    assert main(["student-edition", "out"]) == 2
    assert str(tmp_path / "book") in capsys.readouterr().err
