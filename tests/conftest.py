"""Shared fixtures: tiny notebooks written into ``tmp_path``, a clean ``SRPOSE_*`` env and a
tiny prepared real-data task (rhd_h3d) made of benchmark images."""

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


def write_prepared(data_dir, name: str, domain: str, n_train: int = 48, n_test: int = 16) -> None:
    """A tiny prepared dataset (64 px crops, Hand21) made of the built-in benchmark's images
    of ``domain``, stand-ins for real crops."""
    from srpose_lib.data.prepared import PreparedWriter
    from srpose_lib.synth.benchmark import benchmark_config, render_split

    bench = benchmark_config("hand", num_train=n_train, num_test=n_test, num_val=8)
    writer = PreparedWriter(data_dir, name, "hand21", crop_size=64)
    for split, src in (("train", "train"), ("test", "test")):
        sp = render_split(bench, domain, src)
        for i in range(len(sp)):
            writer.add(split, sp.images[i], sp.keypoints[i], sp.visible[i], keypoints3d=sp.keypoints3d[i],
                       sequence=int(sp.sequence[i]), frame=int(sp.frame[i]), source_image=f"{split}/{i}.png")
    writer.finish({"kind": "test fixture"})


@pytest.fixture(scope="session")
def rhd_h3d_data_dir(tmp_path_factory) -> Path:
    """A DATA_DIR holding the two datasets of the real task rhd_h3d, prepared at 64 px (the
    crop size of real tasks in smoke mode): benchmark source images as "rhd", target
    images as "h3d"."""
    root = tmp_path_factory.mktemp("data")
    write_prepared(root, "rhd", "source")
    write_prepared(root, "h3d", "target")
    return root
