"""The instructor's guide's exercise solutions (docs/solutions/) run at smoke scale and assert their
answers, so they do not rot; and every exercise of every notebook has a solution and a guide entry.

The solutions share one cache for the session, in notebook order, so later ones reuse the stages
earlier ones trained (as the series does)."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import nbformat
import pytest

from srpose_lib import nb

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "docs" / "solutions"
GUIDE = ROOT / "docs" / "instructor_guide.md"
FILES = sorted(SOLUTIONS.glob("ex[0-9][0-9]_*.py"))


def _exercise_count(notebook: Path) -> int:
    """How many numbered exercises ``(1) ... (n)`` the notebook's **Exercises.** paragraph lists."""
    book = nbformat.read(notebook, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "markdown" and "**Exercises.**" in cell.source:
            text = cell.source.split("**Exercises.**", 1)[1]
            return len(set(re.findall(r"(?:^|\s)\((\d)\)\s", text)))
    return 0


def _module(path: Path):
    if str(SOLUTIONS) not in sys.path:
        sys.path.insert(0, str(SOLUTIONS))
    return importlib.import_module(path.stem)


@pytest.fixture(scope="session")
def solutions_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("solutions_cache")


def test_every_exercise_has_a_solution_and_a_guide_entry():
    guide = GUIDE.read_text()
    notebooks = nb.list_notebooks()
    assert notebooks
    for notebook in notebooks:
        count = _exercise_count(notebook)
        assert count > 0, f"{notebook.name} has no **Exercises.** paragraph"
        matches = [f for f in FILES if f.name.startswith(f"ex{notebook.name[:2]}_")]
        assert len(matches) == 1, f"no solution file docs/solutions/ex{notebook.name[:2]}_*.py for {notebook.name}"
        module = _module(matches[0])
        missing = [i for i in range(1, count + 1) if not callable(getattr(module, f"exercise_{i}", None))]
        assert not missing, f"{matches[0].name} lacks exercise_{missing} for {notebook.name}'s {count} exercises"
        assert notebook.stem in guide, f"the guide has no section for {notebook.stem}"
        assert f"solutions/{matches[0].name}" in guide, f"the guide does not link {matches[0].name}"
    assert "docs/instructor_guide.md" in (ROOT / "README.md").read_text(), "the README must link the guide"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_solution_runs_and_asserts_its_answers(path, solutions_cache, monkeypatch):
    monkeypatch.setenv("SRPOSE_SOLUTIONS_MODE", "smoke")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    module = _module(path)
    assert importlib.import_module("_common").MODE == "smoke"
    answers = module.main(solutions_cache)
    count = sum(1 for name in dir(module) if re.fullmatch(r"exercise_\d", name))
    assert sorted(answers) == [str(i) for i in range(1, count + 1)], f"{path.name} must answer every exercise"
