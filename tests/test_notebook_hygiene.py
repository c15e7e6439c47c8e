"""Committed notebooks are clean and follow the conventions (nbformat only, no execution)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

from srpose_lib import nb

NOTEBOOKS = nb.list_notebooks()
ERROR_MARKERS = ("papermill-error-cell", "injected-parameters")




def test_the_series_exists():
    """An empty series must fail, not pass vacuously."""
    assert NOTEBOOKS, f"no notebooks NN_*.ipynb found in {nb.notebooks_dir()}"


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def path(request) -> Path:
    return request.param


def _read(path: Path):
    book = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    assert book.nbformat == 4, f"{path.name}: nbformat {book.nbformat}, expected 4"
    nbformat.validate(book)
    return book


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _parameters_index(book) -> int:
    tagged = [i for i, c in enumerate(book.cells) if "parameters" in _tags(c)]
    assert len(tagged) == 1, f"expected exactly one cell tagged 'parameters', found {len(tagged)}"
    assert book.cells[tagged[0]].cell_type == "code", "the parameters cell must be a code cell"
    return tagged[0]


def _is_constant(node) -> bool:
    """A literal constant, allowing a sign on numbers (``-1``, ``-0.5``)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
        return isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
    return isinstance(node, ast.Constant)


def test_valid_nbformat_4(path):
    _read(path)


def test_no_outputs(path):
    book = _read(path)
    dirty = [i for i, c in enumerate(book.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} carry outputs or execution counts; "
                       "clear all outputs before committing")


def test_no_widget_or_papermill_metadata(path):
    book = _read(path)
    assert "widgets" not in book.metadata, f"{path.name}: metadata.widgets (saved widget state)"
    assert "papermill" not in book.metadata, f"{path.name}: metadata.papermill (executed copy?)"
    bad = [i for i, c in enumerate(book.cells) if "papermill" in c.get("metadata", {})]
    assert not bad, f"{path.name}: cells {bad} carry metadata.papermill"


def test_no_injected_or_error_cells(path):
    book = _read(path)
    for i, cell in enumerate(book.cells):
        for marker in ERROR_MARKERS:
            assert not any(marker in t for t in _tags(cell)), f"cell {i} tagged {marker}"
            assert marker not in cell.source, f"cell {i} holds a papermill {marker} marker"


def test_kernelspec(path):
    book = _read(path)
    assert book.metadata.get("kernelspec", {}).get("name") == "python3"


def test_first_cell_is_a_markdown_title(path):
    first = _read(path).cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("#")


def test_parameters_cell(path):
    book = _read(path)
    cell = book.cells[_parameters_index(book)]
    tree = ast.parse(cell.source)
    assert tree.body, "the parameters cell is empty"
    for stmt in tree.body:
        assert isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name), (
            f"line {stmt.lineno}: only `NAME: type = literal  # help` lines belong in the "
            f"parameters cell, found {ast.unparse(stmt)!r}")
        assert _is_constant(stmt.value), (
            f"{stmt.target.id}: the value must be a literal constant, "
            f"found {ast.unparse(stmt.value) if stmt.value else 'nothing'}")
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", stmt.target.id), (
            f"{stmt.target.id}: parameter names are UPPER_CASE")
    declared = nb.declared_parameters(path)
    for name, kind in nb.SHARED_PARAMETERS.items():
        assert name in declared, f"shared parameter {name} missing"
        assert declared[name]["type"] == kind.__name__, f"{name} must be {kind.__name__}"
    assert declared["RUN_MODE"]["default"] in nb.RUN_MODES
    no_help = [n for n, spec in declared.items() if not spec["help"]]
    assert not no_help, f"parameters without an inline help comment: {no_help}"


def test_budgets(path):
    budgets = _read(path).metadata.get("srpose", {}).get("budget_s", {})
    for mode in nb.RUN_MODES:
        value = budgets.get(mode)
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0, (
            f"metadata.srpose.budget_s.{mode} must be a positive number of seconds")


def test_calls_setup_after_parameters(path):
    book = _read(path)
    start = _parameters_index(book)
    calls = [re.search(r"\bnb\.setup\(\s*(['\"])([^'\"]+)\1", c.source)
             for c in book.cells[start + 1:] if c.cell_type == "code"]
    calls = [m for m in calls if m]
    assert calls, "no `nb.setup(` call in a code cell after the parameters cell"
    assert calls[0].group(2) == path.stem, (
        f"nb.setup({calls[0].group(2)!r}) must name the notebook itself ({path.stem!r})")


def test_papermill_parses_every_parameter(path):
    """papermill's own parser must see each parameter (a help comment containing '=' makes
    it skip the line with only a warning, and -p values for that name are then lost)."""
    import papermill

    seen = set(papermill.inspect_notebook(str(path)))
    declared = set(nb.declared_parameters(path))
    assert declared <= seen, f"papermill cannot parse {sorted(declared - seen)}: avoid '=' in help comments"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_a_unique_id(path):
    """nbformat 4.5 cell ids (a missing id becomes a hard error in future nbformat versions)."""
    cells = json.loads(path.read_text())["cells"]
    ids = [c.get("id") for c in cells]
    assert all(ids) and len(set(ids)) == len(ids), [i for i, c in enumerate(cells) if not c.get("id")]
