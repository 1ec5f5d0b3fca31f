"""The command line: python -m scansnap."""

import re
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
    """One line per regenerated figure, in order, each naming the figure its number makes (the
    summary is the first line of the registered function's docstring)."""
    from scansnap import figures

    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [int(re.match(r"figure (\d+): ", line).group(1)) for line in lines] == sorted(
        figures.FIGURES)
    assert sorted(figures.FIGURES) == list(range(3, 13))  # the paper's Figs 3-12
    for line in lines:
        number = line.split(":")[0].removeprefix("figure ")
        assert re.match(rf"figure {number}: Fig {number}\b", line), line


def test_student_edition_needs_a_book_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no book/ here: the package holds no chapters
    assert main(["student-edition", "out", "--book", "missing"]) == 2
    err = capsys.readouterr().err
    assert "--book" in err and str(tmp_path / "missing") in err
    assert main(["student-edition", "out"]) == 2
    assert str(tmp_path / "book") in capsys.readouterr().err


def _never_computed(*args, **kwargs):
    raise AssertionError("the figure was computed before the --out folder was checked")


def test_figure_out_must_be_a_writable_folder(tmp_path, monkeypatch, capsys):
    from scansnap import figures

    monkeypatch.setattr(figures, "make", _never_computed)
    a_file = tmp_path / "fig.png"
    a_file.write_text("not a folder")
    for out in (a_file, a_file / "inside"):
        assert main(["figure", "4", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --out must be a folder") and str(a_file) in err
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr("os.access", lambda path, mode: False)  # root can write anywhere
    assert main(["figure", "4", "--out", str(locked / "new")]) == 2
    assert f"{locked} is not writable" in capsys.readouterr().err


def test_figure_7_without_wikitext_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCANSNAP_WIKITEXT_DIR", str(tmp_path / "missing"))
    assert main(["figure", "7", "--quick", "--no-progress", "--out", str(tmp_path / "out")]) == 2
    first, *_ = capsys.readouterr().err.splitlines()
    assert first.startswith("error: WikiText-2 folder") and "does not exist" in first
    assert not (tmp_path / "out").exists()


def test_student_edition_and_coursework_refuse_a_folder_with_files(tmp_path, capsys):
    out = tmp_path / "students"
    out.mkdir()
    (out / "ch1_setting.ipynb").write_text("a student's work")
    for command in (["student-edition", str(out)], ["coursework", "otter", str(out)],
                    ["coursework", "nbgrader", str(out)]):
        assert main([*command, "--book", str(tmp_path / "missing")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: out_dir {out} already holds files") and "--force" in err
    assert (out / "ch1_setting.ipynb").read_text() == "a student's work"
    # with --force the folder is accepted (the missing book is the next error)
    assert main(["student-edition", str(out), "--book", str(tmp_path / "missing"), "--force"]) == 2
    assert "book must be an existing folder" in capsys.readouterr().err
