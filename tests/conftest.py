"""Shared fixtures: tiny notebooks written into ``tmp_path`` and a clean ``SRPOSE_*`` env."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import nbformat
import pytest

#: The shared parameter block every srpose notebook starts its parameters cell with.
SHARED_PARAMETERS_SOURCE = """\
RUN_MODE: str = "quick"  # smoke / quick / full
SEED: int = 0  # random seed
DEVICE: str = "auto"  # auto / cpu / cuda[:N]
DATA_DIR: str = ""  # empty: SRPOSE_DATA_DIR or <repo>/data
OUTPUT_DIR: str = ""  # empty: SRPOSE_OUTPUT_DIR or <repo>/artifacts
INTERACTIVE: bool = True  # build widgets
SAVE_FIGURES: bool = True  # write key figures
FORCE_RETRAIN: bool = False  # ignore cached checkpoints
"""

_ENV_KEYS = ("SRPOSE_RUN_MODE", "SRPOSE_INTERACTIVE", "SRPOSE_OUTPUT_DIR", "SRPOSE_DATA_DIR",
             "SRPOSE_PROGRESS")


def write_notebook(folder: Path, name: str, code_cells: list[str], params: str = "",
                   budget_s: dict | None = None) -> Path:
    """Write ``folder/<name>.ipynb``: a title, the parameters cell, then ``code_cells``."""
    folder.mkdir(parents=True, exist_ok=True)
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    book.metadata["srpose"] = {"budget_s": budget_s or {"smoke": 60, "quick": 900,
                                                        "full": 7200}}
    cell = nbformat.v4.new_code_cell(SHARED_PARAMETERS_SOURCE + params)
    cell.metadata["tags"] = ["parameters"]
    book.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), cell]
    book.cells += [nbformat.v4.new_code_cell(src) for src in code_cells]
    path = folder / f"{name}.ipynb"
    nbformat.write(book, path)
    return path


@pytest.fixture
def fixture_notebook(tmp_path: Path) -> Callable[..., Path]:
    """``make(name, code_cells, params="", budget_s=None)`` writing into ``tmp_path/notebooks``."""

    def make(name: str, code_cells: list[str], params: str = "",
             budget_s: dict | None = None) -> Path:
        return write_notebook(tmp_path / "notebooks", name, code_cells, params, budget_s)

    return make


@pytest.fixture
def clean_srpose_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Unset the ``SRPOSE_*`` fallbacks and point the cache at ``tmp_path/cache``."""
    for key in _ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SRPOSE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path
