"""Coursework in the grading tools instructors run (issue 15): the book's exercises exported as
an nbgrader course and as Otter-Grader assignments, then graded *by the real tools* — nbgrader's
``generate_assignment`` and ``autograde``, Otter's ``assign`` and its Docker-free grading entry
(``otter run``'s ``otter.api.grade_submission``) — on two submissions per chapter: the reference
solutions (full marks on every autograded cell) and the released blank notebook (zero on every
coding exercise, no error but the stubs' ``NotImplementedError``).

The graders live in the grading extra (``requirements-grading.txt``): without them these tests
skip, except under ``CI=true``, where a missing grader fails them.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from scansnap.coursework import read_book, write_nbgrader_course, write_otter_assignments
from scansnap.coursework.exercises import SolutionFunction, split_solution
from scansnap.coursework.nbgrader import solution_regions
from scansnap.coursework.otter import question_name, solution_with_prompt

BOOK = Path(__file__).resolve().parent.parent / "book"
PARTS = read_book(BOOK)
CHAPTERS = [part.name for part in PARTS]


def _graders_missing() -> str | None:
    missing = []
    for module in ("nbgrader", "otter"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    return ", ".join(missing) or None


_MISSING = _graders_missing()
if _MISSING and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI=true but the graders are not installed ({_MISSING}): "
                       "pip install -r requirements-grading.txt")
needs_graders = pytest.mark.skipif(
    _MISSING is not None,
    reason=f"the graders are not installed ({_MISSING}): pip install -r requirements-grading.txt")


# --- the exports, without the tools ------------------------------------------------------------
def test_every_chapter_has_exercises_with_points():
    assert CHAPTERS == ["ch1_setting", "ch2_reparameterization", "ch3_y_dynamics",
                        "ch4_fates_of_tokens", "ch5_phase_transition", "ch6_wikitext"]
    for part in PARTS:
        assert part.imports, part.name
        assert any(e.autograded for e in part.exercises), part.name
        assert any(not e.autograded for e in part.exercises), part.name
        for exercise in part.exercises:
            assert exercise.points == exercise.stars in (1, 2, 3)
            assert exercise.solution_prose, exercise.label
            assert (exercise.check is None) == (exercise.solution_code is None), exercise.label


def test_solution_markers_wrap_exactly_the_bodies():
    source = ('import math\n\n\ndef f(x):\n    """Doc."""\n    # Hint: square it.\n'
              '    y = x * x\n    return y\n')
    assert solution_regions(source) == (
        'import math\n\n\ndef f(x):\n    """Doc."""\n    # Hint: square it.\n'
        '    ### BEGIN SOLUTION\n    y = x * x\n    return y\n    ### END SOLUTION')
    otter = solution_with_prompt(source)
    assert ("    # BEGIN SOLUTION NO PROMPT\n    y = x * x\n    return y\n    # END SOLUTION"
            in otter)
    assert "    raise NotImplementedError('square it.')" in otter
    pieces, hint = split_solution(source)
    assert hint == "square it." and [p.body for p in pieces if isinstance(p, SolutionFunction)] \
        == [["    y = x * x", "    return y"]]


def test_nbgrader_export_metadata(tmp_path):
    written = write_nbgrader_course(tmp_path, BOOK)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        f"source/{name}/{name}.ipynb" for name in CHAPTERS]
    assert "c.ExecutePreprocessor.timeout" in (tmp_path / "nbgrader_config.py").read_text()
    for path, part in zip(written, PARTS):
        cells = nbformat.read(path, as_version=4).cells
        meta = [c.metadata["nbgrader"] for c in cells]
        assert len({m["grade_id"] for m in meta}) == len(meta)  # nbgrader needs unique ids
        tests = [(c.source, m["points"]) for c, m in zip(cells, meta)
                 if m["grade"] and not m["solution"]]
        assert tests == [(e.check.call(points=e.points), e.points)
                         for e in part.exercises if e.autograded]
        manual = [m["points"] for c, m in zip(cells, meta)
                  if m["grade"] and m["solution"] and c.cell_type == "markdown"]
        assert manual == [e.points for e in part.exercises if not e.autograded]
        answers = [c.source for c, m in zip(cells, meta) if m["solution"] and c.cell_type == "code"]
        assert len(answers) == sum(e.autograded for e in part.exercises)
        assert all("### BEGIN SOLUTION" in a and "### END SOLUTION" in a for a in answers)
        assert all(m["locked"] for m in meta if not m["solution"])  # text and tests read-only
        assert f"/book/{part.name}.html" in cells[0].source


def test_otter_export_config_and_questions(tmp_path):
    written = write_otter_assignments(tmp_path, BOOK)
    assert [p.name for p in written] == [f"{name}.ipynb" for name in CHAPTERS]
    for path, part in zip(written, PARTS):
        cells = nbformat.read(path, as_version=4).cells
        assert cells[0].cell_type == "raw" and cells[0].source.startswith("# ASSIGNMENT CONFIG")
        assert f"name: {part.name}" in cells[0].source
        raw = [c.source for c in cells if c.cell_type == "raw"]
        questions = [r for r in raw if r.startswith("# BEGIN QUESTION")]
        assert [re.search(r"name: (\S+)", q)[1] for q in questions] == [
            question_name(e) for e in part.exercises]
        assert [int(re.search(r"points: (\d+)", q)[1]) for q in questions] == [
            e.points for e in part.exercises]
        assert sum("manual: true" in q for q in questions) == sum(
            not e.autograded for e in part.exercises)


def test_cli_writes_both_exports(tmp_path):
    from scansnap.__main__ import main

    assert main(["coursework", "nbgrader", str(tmp_path / "nb"), "--book", str(BOOK)]) == 0
    assert main(["coursework", "otter", str(tmp_path / "ot"), "--book", str(BOOK)]) == 0
    assert (tmp_path / "nb" / "source" / "ch6_wikitext" / "ch6_wikitext.ipynb").is_file()
    assert (tmp_path / "ot" / "ch3_y_dynamics.ipynb").is_file()


def test_bad_book_folder(tmp_path):
    with pytest.raises(ValueError, match="book"):
        write_nbgrader_course(tmp_path / "out", tmp_path / "missing")
    with pytest.raises(ValueError, match="book"):
        write_otter_assignments(tmp_path / "out", tmp_path)  # a folder without chapters


# --- the real tools -----------------------------------------------------------------------------
def _env() -> dict[str, str]:
    """nbgrader runs ``alembic`` by name: the grading environment's scripts go first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


NBGRADER_SCRIPT = r"""
import json, subprocess, sys, time
STUDENTS = {False: ("blank", "reference"), True: ("blank", "reference", "wrong")}
from pathlib import Path
import nbformat
from nbgrader.api import Gradebook

course = Path(sys.argv[1]); wrong = json.loads(sys.argv[2]); chapters = sys.argv[3:]
def nbgrader(*args):
    subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
nbgrader("generate_assignment", "*")
for name in chapters:
    released = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
    source = nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4)
    reference = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells}
    for student in STUDENTS[name == wrong["chapter"]]:
        folder = course / "submitted" / student / name
        folder.mkdir(parents=True, exist_ok=True)
        notebook = nbformat.from_dict(json.loads(json.dumps(released)))
        for cell in notebook.cells:
            if not cell.metadata["nbgrader"].get("solution"):
                continue
            if student != "blank":  # the reference solutions in the answer cells
                cell.source = reference[cell.metadata["nbgrader"]["grade_id"]]
            if student == "wrong" and f"def {wrong['function']}(" in cell.source:
                cell.source = wrong["source"]
        nbformat.write(notebook, folder / f"{name}.ipynb")
start = time.perf_counter()
nbgrader("autograde", "*", "--create")
out = {"seconds per submission": (time.perf_counter() - start) / (2 * len(chapters) + 1)}
with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
    for name in chapters:
        for student in STUDENTS[name == wrong["chapter"]]:
            graded = nbformat.read(course / "autograded" / student / name / f"{name}.ipynb", 4)
            errors = [o.ename for c in graded.cells if c.cell_type == "code"
                      for o in c.outputs if o.output_type == "error"]
            feedback = {c.metadata["nbgrader"]["grade_id"]: "".join(
                o.get("text", "") for o in c.outputs if o.output_type == "stream")
                for c in graded.cells if c.cell_type == "code"}
            notebook = gradebook.find_submission_notebook(name, name, student)
            out.setdefault(name, {})[student] = {
                "errors": errors, "feedback": feedback,
                "grades": {g.name: [g.auto_score, g.max_score] for g in notebook.grades}}
print(json.dumps(out))
"""

OTTER_SCRIPT = r"""
import contextlib, io, json, shutil, sys, time
import nbformat
from pathlib import Path
import otter.assign
from otter.api import grade_submission

folder = Path(sys.argv[1]); wrong = json.loads(sys.argv[2]); chapters = sys.argv[3:]
out = {}
seconds = []
for name in chapters:
    dist = folder / "dist" / name
    with contextlib.redirect_stdout(io.StringIO()):
        otter.assign.main(str(folder / f"{name}.ipynb"), str(dist), no_run_tests=True)
    zip_path = next((dist / "autograder").glob("*.zip"))
    submissions = {"blank": dist / "student" / f"{name}.ipynb",
                   "reference": dist / "autograder" / f"{name}.ipynb"}
    if name == wrong["chapter"]:
        submissions["wrong"] = submissions["reference"]
    for student, notebook in submissions.items():
        copy = folder / "submitted" / student / f"{name}.ipynb"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(notebook, copy)
        if student == "wrong":
            edited = nbformat.read(copy, as_version=4)
            for cell in edited.cells:
                if cell.cell_type == "code" and f"def {wrong['function']}(" in cell.source:
                    cell.source = wrong["source"]
            nbformat.write(edited, copy)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            results = grade_submission(str(copy), str(zip_path), quiet=True)
        seconds.append(time.perf_counter() - start)
        out.setdefault(name, {})[student] = {
            question: {"score": tf.score, "possible": tf.possible,
                       "messages": [r.message for r in tf.test_case_results if not r.passed]}
            for question, tf in results.results.items()}
out["seconds per submission"] = sum(seconds) / len(seconds)
print(json.dumps(out))
"""


# A near miss a student could write: Y right, Z with W_Q and W_K swapped (Z transposed).
WRONG_YZ = '''def yz_from_full(U, W_Q, W_K, W_V):
    return U @ W_V.T @ U.T, U @ W_K @ W_Q.T @ U.T / math.sqrt(U.shape[1])
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Export both ways, then run nbgrader and Otter side by side (two cores) on a blank and a
    reference submission of every chapter; their results, and the seconds it took."""
    if _MISSING:
        pytest.skip(f"the graders are not installed ({_MISSING})")
    root = tmp_path_factory.mktemp("coursework")
    write_nbgrader_course(root / "nbgrader", BOOK)
    write_otter_assignments(root / "otter", BOOK)
    start = time.perf_counter()
    wrong = json.dumps({"chapter": "ch2_reparameterization", "function": "yz_from_full",
                        "source": WRONG_YZ})
    runs = {tool: subprocess.Popen([sys.executable, "-c", script, str(root / tool), wrong,
                                    *CHAPTERS],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=_env())
            for tool, script in (("nbgrader", NBGRADER_SCRIPT), ("otter", OTTER_SCRIPT))}
    results = {}
    for tool, process in runs.items():
        stdout, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, f"{tool} failed:\n{stderr[-4000:]}"
        results[tool] = json.loads(stdout.strip().splitlines()[-1])
    results["seconds"] = time.perf_counter() - start
    results["root"] = root
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"\ncoursework grading (both tools side by side, 6 chapters x 2 submissions + 1 near "
          f"miss): {results['seconds']:.0f} s wall, {cpu.ru_utime + cpu.ru_stime:.0f} s CPU; "
          f"per submission: nbgrader {results['nbgrader']['seconds per submission']:.1f} s, "
          f"Otter {results['otter']['seconds per submission']:.1f} s")
    return results


@needs_graders
@pytest.mark.parametrize("name", CHAPTERS)
def test_nbgrader_reference_full_marks_blank_zero(graded, name):
    part = PARTS[CHAPTERS.index(name)]
    reference, blank = graded["nbgrader"][name]["reference"], graded["nbgrader"][name]["blank"]
    autograded = {f"{e.label}-check": e.points for e in part.exercises if e.autograded}
    for grade_id, points in autograded.items():
        assert reference["grades"][grade_id] == [points, points], grade_id
        assert blank["grades"][grade_id] == [0, points], grade_id
        assert "part(s) correct" in reference["feedback"][grade_id]  # the check's own lines
    assert reference["errors"] == []
    assert blank["errors"] and set(blank["errors"]) == {"NotImplementedError"}
    manual = {f"{e.label}-answer-text" for e in part.exercises if not e.autograded}
    assert manual <= set(reference["grades"])  # graded by hand: in the gradebook, no auto score
    assert all(reference["grades"][g][0] is None for g in manual)


@needs_graders
@pytest.mark.parametrize("name", CHAPTERS)
def test_otter_reference_full_marks_blank_zero(graded, name):
    part = PARTS[CHAPTERS.index(name)]
    reference, blank = graded["otter"][name]["reference"], graded["otter"][name]["blank"]
    coding = {question_name(e): e.points for e in part.exercises if e.autograded}
    assert set(coding) <= set(reference)
    for question, points in coding.items():
        assert reference[question]["score"] == reference[question]["possible"] == points
        assert reference[question]["messages"] == []
        assert blank[question]["score"] == 0 and blank[question]["possible"] == points
        assert blank[question]["messages"]
        assert all("NotImplementedError" in m for m in blank[question]["messages"]), question


@needs_graders
def test_no_solution_line_survives_into_released_notebooks(graded):
    root = graded["root"]
    for part in PARTS:
        released = {
            "nbgrader": root / "nbgrader" / "release" / part.name / f"{part.name}.ipynb",
            "otter": root / "otter" / "dist" / part.name / "student" / f"{part.name}.ipynb"}
        secret = set()
        for exercise in part.exercises:
            if exercise.solution_code:
                pieces, _ = split_solution(exercise.solution_code)
                secret |= {line.strip() for p in pieces if isinstance(p, SolutionFunction)
                           for line in p.body}
            secret |= {line.strip() for line in exercise.solution_prose}
            secret |= {line.strip() for code in exercise.extra_solution_code
                       for line in code.splitlines()}
        secret = {line for line in secret if len(line) >= 8}
        assert len(secret) > 10, part.name
        for tool, path in released.items():
            text = path.read_text(encoding="utf-8")
            notebook = nbformat.reads(text, as_version=4)
            lines = {line.strip() for cell in notebook.cells for line in cell.source.splitlines()}
            leaked = secret & lines
            assert not leaked, f"{tool} {part.name}: {sorted(leaked)[:3]}"
            assert "BEGIN SOLUTION" not in text, f"{tool} {part.name}"


@needs_graders
def test_partial_credit_and_feedback_reach_the_grading_report(graded):
    """A near miss (ch2's Z transposed, Y right) earns half of the exercise's point in both
    tools, and the check's explanation of the wrong part is in the grading feedback."""
    nbgrader = graded["nbgrader"]["ch2_reparameterization"]["wrong"]
    assert nbgrader["grades"]["ch2-ex-yz-check"] == [0.5, 1]
    feedback = nbgrader["feedback"]["ch2-ex-yz-check"]
    assert "✓ yz_from_full — Y = U W_Vᵀ Uᵀ" in feedback
    assert re.search(r"✗ yz_from_full — Z = .*value at index \(\d+, \d+\) is", feedback)
    otter = graded["otter"]["ch2_reparameterization"]["wrong"]["ch2_ex_yz"]
    assert otter["score"] == 0.5 and otter["possible"] == 1
    assert len(otter["messages"]) == 1 and "CheckFailed" in otter["messages"][0]
    assert "value at index" in otter["messages"][0]


@needs_graders
def test_grading_fits_the_ci_budget(graded):
    """Both tools, 6 chapters, 13 submissions each, side by side: inside CI's 15 minutes
    (the fixture prints the time; a chapter's assignment holds only its exercises)."""
    assert graded["seconds"] < 600


def test_graders_are_an_extra_with_exact_pins():
    """Readers install requirements.txt (or binder's); the graders live only in the extra."""
    root = BOOK.parent
    extra = [line.split("#")[0].strip() for line in
             (root / "requirements-grading.txt").read_text().splitlines()]
    assert [line for line in extra if line] == ["nbgrader==0.9.6", "otter-grader==7.0.0"]
    for readers in (root / "requirements.txt", root / "binder" / "requirements.txt"):
        text = readers.read_text()
        assert "nbgrader" not in text and "otter" not in text, readers
