"""The student edition: stubs instead of solutions, nothing of the solutions left, and
executed stubs fail only with NotImplementedError (issue: coursework)."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from scansnap.student import (
    chapter_sources,
    execute_exercises,
    student_notebook,
    write_student_edition,
)

FAKE = '''---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
# Fake chapter

```{code-cell} ipython3
import numpy as np
from scansnap import checks
```

```{code-cell} ipython3
expensive_experiment = 1
```

## Exercises

```{exercise} ★ Square
:label: fake-ex-square
Write `square(x)`.
```
````{solution-start} fake-ex-square
:class: dropdown
````
Elementwise products of an array with itself give the answer.
```{code-cell} ipython3
:tags: [solution]
def square(x):
    """Return the elementwise square of x."""
    # Hint: multiply x by itself
    return x * x
```
````{solution-end}
````

```{code-cell} ipython3
checks.compare("square", square, lambda x: x**2, [checks.Case("small", (np.arange(3.0),))])
```

```{exercise} ★★ Why
:label: fake-ex-why
Explain.
```
```{solution} fake-ex-why
:class: dropdown
Because gradient flow keeps every row sum unchanged forever.
```
'''


@pytest.fixture()
def fake_book(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    (book / "ch9_fake.md").write_text(FAKE)
    return book


def _leaks(source: Path) -> list[str]:
    """Substantial lines of removed solutions that still appear in the student notebook."""
    notebook, removed = student_notebook(source)
    text = json.dumps(notebook)
    stub_text = "\n".join(removed.stubs)
    lines = [line.strip() for block in removed.code for line in block.splitlines()]
    lines += [line.strip() for line in removed.prose]
    substantial = [line for line in lines
                   if len(line) >= 16 and line not in stub_text and not re.match(r"^[`:]{3}", line)]
    assert substantial, f"{source.name}: no solution found to remove"
    return [line for line in substantial if json.dumps(line)[1:-1] in text]


def test_fake_chapter_stubbed_and_clean(fake_book):
    source = fake_book / "ch9_fake.md"
    notebook, removed = student_notebook(source)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert any("raise NotImplementedError('multiply x by itself')" in s for s in code)
    assert any('"""Return the elementwise square of x."""' in s for s in code)
    assert not any("return x * x" in s for s in code)
    assert _leaks(source) == []
    assert "### Exercise: ★ Square" in json.dumps(notebook, ensure_ascii=False)


def test_fake_student_notebook_fails_only_at_stub(fake_book):
    notebook, _ = student_notebook(fake_book / "ch9_fake.md")
    errors = execute_exercises(notebook, timeout=120)
    assert [name for _, name in errors] == ["NotImplementedError"]


def test_write_student_edition(fake_book, tmp_path):
    written = write_student_edition(tmp_path / "out", book=fake_book)
    assert [p.name for p in written] == ["ch9_fake.ipynb"]
    nb = nbformat.read(written[0], as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_bad_book_folder(tmp_path):
    with pytest.raises(ValueError, match="book"):
        write_student_edition(tmp_path / "out", book=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no chapters"):
        write_student_edition(tmp_path / "out", book=tmp_path / "empty")


CHAPTERS = chapter_sources(Path(__file__).resolve().parent.parent / "book")


@pytest.mark.parametrize("source", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_solution_in_student_edition(source):
    assert _leaks(source) == []


@pytest.mark.parametrize("source", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_student_chapter_fails_only_with_not_implemented(source):
    notebook, removed = student_notebook(source)
    errors = execute_exercises(notebook)
    names = {name for _, name in errors}
    assert names <= {"NotImplementedError"}, f"{source.name}: unexpected errors {errors}"
    assert removed.stubs, f"{source.name}: no coding exercise (a `solution`-tagged cell)"
    assert errors, f"{source.name}: the checks accepted the untouched stubs"


def test_write_student_edition_refuses_to_overwrite(fake_book, tmp_path):
    out = tmp_path / "out"
    write_student_edition(out, book=fake_book)
    (out / "ch9_fake.ipynb").write_text("a student's answers")
    with pytest.raises(ValueError, match="out_dir .* already holds files.*force"):
        write_student_edition(out, book=fake_book)
    assert (out / "ch9_fake.ipynb").read_text() == "a student's answers"
    written = write_student_edition(out, book=fake_book, force=True)
    assert nbformat.read(written[0], as_version=4).cells  # overwritten with the notebook
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_student_edition(empty, book=fake_book)  # an existing empty folder is fine
    with pytest.raises(ValueError, match="out_dir must be a folder"):
        write_student_edition(out / "ch9_fake.ipynb", book=fake_book)
