"""srpose_lib.nb: declared parameters, setup (fallbacks, validation), recording."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from srpose_lib import nb
from srpose_lib.errors import ConfigError, ParameterError

pytestmark = pytest.mark.usefixtures("clean_srpose_env")

SETUP = 'from srpose_lib import nb\nctx = nb.setup("00_fixture", globals())'


@pytest.fixture
def book(fixture_notebook) -> Path:
    return fixture_notebook("00_fixture", [SETUP], params='SCALE: float = 1.5  # a knob\n')


def namespace(path: Path, **changes) -> dict:
    """The globals a notebook would have after its parameters cell (plus some noise)."""
    ns = {name: spec["default"] for name, spec in nb.declared_parameters(path).items()}
    ns.update({"nb": nb, "np": np, "_": None, "In": [], "Out": {}, "lower_case": 1})
    ns.update(changes)
    return ns


def run_setup(path: Path, tmp_path: Path, **changes) -> nb.NotebookContext:
    changes.setdefault("OUTPUT_DIR", str(tmp_path / "out"))
    return nb.setup("00_fixture", namespace(path, **changes), notebook_dir=path.parent)


# --- declared parameters ------------------------------------------------------------------


def test_declared_parameters_types_defaults_help(book):
    declared = nb.declared_parameters(book)
    assert list(declared)[: len(nb.SHARED_PARAMETERS)] == list(nb.SHARED_PARAMETERS)
    assert declared["RUN_MODE"] == {"type": "str", "default": "quick",
                                    "help": "smoke / quick / full"}
    assert declared["SEED"]["type"] == "int" and declared["SEED"]["default"] == 0
    assert declared["INTERACTIVE"]["default"] is True
    assert declared["SCALE"] == {"type": "float", "default": 1.5, "help": "a knob"}


def test_declared_parameters_rejects_derived_values(fixture_notebook):
    path = fixture_notebook("00_bad", [SETUP], params="TWICE: int = SEED * 2  # derived\n")
    with pytest.raises(ParameterError, match="not a literal"):
        nb.declared_parameters(path)


def test_declared_parameters_needs_the_tag(tmp_path):
    import nbformat

    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("SEED: int = 0")])
    path = tmp_path / "00_untagged.ipynb"
    nbformat.write(book, path)
    with pytest.raises(ParameterError, match="tagged 'parameters'"):
        nb.declared_parameters(path)


def test_list_notebooks_sorted(tmp_path):
    for name in ("02_b", "00_a", "10_c", "notes", "1_x"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    assert [p.stem for p in nb.list_notebooks(tmp_path)] == ["00_a", "02_b", "10_c"]


# --- setup --------------------------------------------------------------------------------


def test_setup_defaults(book, tmp_path, capsys):
    ctx = run_setup(book, tmp_path)
    assert ctx.mode == "quick" and ctx.seed == 0 and ctx.interactive is True
    assert ctx.device.type in ("cpu", "cuda")
    assert ctx.out_dir == (tmp_path / "out").resolve()
    assert ctx.cache_dir == (tmp_path / "cache").resolve()
    assert ctx.params["SCALE"] == 1.5
    line = capsys.readouterr().out
    assert "00_fixture" in line and "mode quick" in line and "seed 0" in line
    doc = json.loads(ctx.metrics_path.read_text())
    assert doc["notebook"] == "00_fixture" and doc["mode"] == "quick"
    assert doc["metrics"] == {} and doc["parameters"]["SCALE"] == 1.5
    assert {"srpose", "torch", "torchvision", "python", "device"} <= set(doc["versions"])


def test_run_mode_env_fallback(book, tmp_path, monkeypatch):
    monkeypatch.setenv("SRPOSE_RUN_MODE", "smoke")
    ns = namespace(book, OUTPUT_DIR=str(tmp_path / "out"), RUN_MODE="full")
    ctx = nb.setup("00_fixture", ns, notebook_dir=book.parent)
    assert ctx.mode == "smoke" and ctx.params["RUN_MODE"] == "smoke"
    assert ns["RUN_MODE"] == "smoke"  # later cells see the effective value


def test_bad_run_mode_env(book, tmp_path, monkeypatch):
    monkeypatch.setenv("SRPOSE_RUN_MODE", "fast")
    with pytest.raises(ParameterError, match="SRPOSE_RUN_MODE"):
        run_setup(book, tmp_path)


@pytest.mark.parametrize("text, expected", [("0", False), ("false", False), ("1", True),
                                            ("TRUE", True)])
def test_interactive_env_fallback(book, tmp_path, monkeypatch, text, expected):
    monkeypatch.setenv("SRPOSE_INTERACTIVE", text)
    assert run_setup(book, tmp_path, INTERACTIVE=not expected).interactive is expected


def test_output_dir_env_fills_only_empty(book, tmp_path, monkeypatch):
    monkeypatch.setenv("SRPOSE_OUTPUT_DIR", str(tmp_path / "env_out"))
    assert run_setup(book, tmp_path, OUTPUT_DIR="").out_dir == (tmp_path / "env_out").resolve()
    given = tmp_path / "given"
    assert run_setup(book, tmp_path, OUTPUT_DIR=str(given)).out_dir == given.resolve()


def test_unknown_upper_case_global(book, tmp_path):
    with pytest.raises(ParameterError, match="SCALEE") as info:
        run_setup(book, tmp_path, SCALEE=2.0)
    assert "SCALE" in info.value.fix


@pytest.mark.parametrize("changes, pattern", [
    ({"SEED": "1"}, "SEED must be int"),
    ({"SEED": True}, "SEED must be int"),
    ({"INTERACTIVE": 1}, "INTERACTIVE must be bool"),
    ({"SCALE": "big"}, "SCALE must be float"),
    ({"RUN_MODE": "fast"}, "not a run mode"),
])
def test_bad_parameter_values(book, tmp_path, changes, pattern):
    with pytest.raises(ParameterError, match=pattern):
        run_setup(book, tmp_path, **changes)


def test_int_accepted_for_float(book, tmp_path):
    assert run_setup(book, tmp_path, SCALE=2).params["SCALE"] == 2


def test_bad_device(book, tmp_path):
    with pytest.raises(ConfigError, match="unknown device"):
        run_setup(book, tmp_path, DEVICE="tpu")


def test_unwritable_output_dir(book, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ParameterError, match="a_file"):
        run_setup(book, tmp_path, OUTPUT_DIR=str(blocker / "out"))


def test_unknown_notebook_name(book, tmp_path):
    with pytest.raises(ParameterError, match="cannot find"):
        nb.setup("00_fixtrue", namespace(book), notebook_dir=book.parent)


# --- recording ----------------------------------------------------------------------------


def test_record_values(book, tmp_path):
    ctx = run_setup(book, tmp_path)
    ctx.record("pck/hand/source_only/target_test/all", 61.25)
    ctx.record("loss/final", np.float32(0.5))
    ctx.record("loss/first", torch.tensor(2.0))
    ctx.record("count/images", 7)
    ctx.record("count/images", np.array(8))  # replaces
    assert nb.load_metrics("00_fixture", ctx.out_dir) == {
        "pck/hand/source_only/target_test/all": 61.25, "loss/final": 0.5,
        "loss/first": 2.0, "count/images": 8.0}


@pytest.mark.parametrize("value", [math.nan, math.inf, np.float64("nan"),
                                   torch.tensor(float("nan")), torch.ones(3), "1.0", None, True])
def test_record_rejects_non_finite_and_non_scalars(book, tmp_path, value):
    ctx = run_setup(book, tmp_path)
    with pytest.raises(ParameterError):
        ctx.record("loss/final", value)
    assert nb.load_metrics("00_fixture", ctx.out_dir) == {}


@pytest.mark.parametrize("name", ["loss", "Loss/final", "pck//all", "pck/hand all", "/pck/x",
                                  "pck/x/", "pck.hand/all"])
def test_record_rejects_bad_names(book, tmp_path, name):
    ctx = run_setup(book, tmp_path)
    with pytest.raises(ParameterError, match="bad metric name"):
        ctx.record(name, 1.0)


def test_record_many_nested_and_atomic(book, tmp_path):
    ctx = run_setup(book, tmp_path)
    ctx.record_many({"hand": {"mcp": 1, "all": 2.5}, "body": {"all": 3}}, prefix="pck/m/s")
    assert nb.load_metrics("00_fixture", ctx.out_dir) == {
        "pck/m/s/hand/mcp": 1.0, "pck/m/s/hand/all": 2.5, "pck/m/s/body/all": 3.0}
    with pytest.raises(ParameterError):
        ctx.record_many({"ok": 1.0, "bad": math.nan}, prefix="x")
    assert "x/ok" not in nb.load_metrics("00_fixture", ctx.out_dir)


def test_setup_resets_metrics_file(book, tmp_path):
    ctx = run_setup(book, tmp_path)
    ctx.record("loss/final", 1.0)
    assert nb.load_metrics("00_fixture", ctx.out_dir)
    run_setup(book, tmp_path)
    assert nb.load_metrics("00_fixture", ctx.out_dir) == {}


def test_load_metrics_missing(tmp_path):
    assert nb.load_metrics("00_nothing", tmp_path) == {}


def test_save_figure(book, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ctx = run_setup(book, tmp_path)
    path = ctx.save_figure(fig, "curve")
    assert path == ctx.out_dir / "figures" / "00_fixture" / "curve.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.fignum_exists(fig.number)  # not closed
    with pytest.raises(ParameterError):
        ctx.save_figure(fig, "../escape")
    off = run_setup(book, tmp_path, SAVE_FIGURES=False)
    assert off.save_figure(fig, "other") is None
    assert not (off.out_dir / "figures" / "00_fixture" / "other.png").exists()
    plt.close(fig)


# --- utils that setup relies on -----------------------------------------------------------


def test_resolve_device():
    from srpose_lib.utils import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cuda:x", ""):
        with pytest.raises(ConfigError):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resolve_device_cuda():
    from srpose_lib.utils import resolve_device, versions

    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    assert versions()["device"] != "cpu"


def test_atomic_writes(tmp_path):
    from srpose_lib.utils import atomic_torch_save, atomic_write_json

    path = atomic_write_json(tmp_path / "sub" / "a.json", {"x": 1.5, "p": tmp_path})
    assert json.loads(path.read_text()) == {"x": 1.5, "p": str(tmp_path)}
    with pytest.raises(ValueError):
        atomic_write_json(path, {"x": math.nan})
    assert json.loads(path.read_text())["x"] == 1.5  # the old file survives a failed write
    atomic_torch_save({"w": torch.ones(2)}, tmp_path / "ckpt.pt")
    assert torch.load(tmp_path / "ckpt.pt")["w"].sum() == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "ckpt.pt", "sub"]


def test_ensure_writable_dir(tmp_path):
    from srpose_lib.utils import ensure_writable_dir

    assert ensure_writable_dir(tmp_path / "a" / "b", "output").is_dir()
    (tmp_path / "f").write_text("")
    with pytest.raises(ParameterError, match="cannot write the cache folder .*f/x"):
        ensure_writable_dir(tmp_path / "f" / "x", "cache")


def test_progress_text_mode(monkeypatch, capsys):
    from srpose_lib import utils
    from srpose_lib.utils import progress

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv("SRPOSE_PROGRESS", "text")
    # disable=False: tqdm bakes a TQDM_DISABLE seen at import time into its defaults
    assert list(progress(range(4), desc="short", mininterval=0, disable=False)) == [0, 1, 2, 3]
    assert "short" not in capsys.readouterr().err  # a loop shorter than the 30 s gap prints nothing
    monkeypatch.setattr(utils, "TEXT_PROGRESS_GAP_S", 0.0)  # every loop counts as long
    assert list(progress(range(4), desc="epochs", mininterval=0, disable=False)) == [0, 1, 2, 3]
    err = capsys.readouterr().err
    assert "\r" not in err and "epochs: 100%" in err
    assert len(err.splitlines()) <= 4  # at 25, 50, 75 % (throttled), end
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert list(progress(range(2), desc="quiet")) == [0, 1]
    assert "quiet" not in capsys.readouterr().err


def test_provenance_never_raises():
    from srpose_lib.utils import git_sha, repo_root, versions

    sha = git_sha()
    assert sha is None or isinstance(sha, str)
    assert (repo_root() / "pyproject.toml").is_file()
    assert {"srpose", "torch", "torchvision", "python", "device"} <= set(versions())
