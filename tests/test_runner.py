"""srpose_lib.runner: argument checks (no kernel) and one end-to-end papermill run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from srpose_lib import runner
from srpose_lib.errors import ParameterError

pytestmark = pytest.mark.usefixtures("clean_srpose_env")

SETUP = 'from srpose_lib import nb\nctx = nb.setup("{name}", globals())'


@pytest.fixture
def series(fixture_notebook) -> Path:
    """Three notebooks: 00 records 2*SCALE, 01 fails before setup, 02 records STEPS."""
    fixture_notebook("00_fixture", [SETUP.format(name="00_fixture"),
                                    'ctx.record("fixture/value", 2 * SCALE)'],
                     params="SCALE: float = 1.0  # a knob\n")
    fixture_notebook("01_failing", ['raise RuntimeError("boom on purpose")',
                                    SETUP.format(name="01_failing")])
    path = fixture_notebook("02_after", [SETUP.format(name="02_after"),
                                         'ctx.record("fixture/steps", STEPS)',
                                         'ctx.record("fixture/fast", float(FAST))'],
                            params="STEPS: int = 5  # steps\nFAST: bool = False  # flag\n")
    return path.parent


def run_main(series: Path, *args: str) -> int:
    return runner.main(["--notebooks-dir", str(series), *args])


# --- helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, type_name, expected", [
    ("true", "bool", True), ("No", "bool", False), ("1", "bool", True), ("0", "bool", False),
    ("12", "int", 12), ("-3", "int", -3), ("0.5", "float", 0.5), ("2", "float", 2.0),
    ("1e-3", "float", 1e-3), ("hello world", "str", "hello world"), ("", "str", ""),
    ("[1, 2]", "list", [1, 2]),
])
def test_parse_value(text, type_name, expected):
    value = runner.parse_value(text, type_name)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text, type_name", [("maybe", "bool"), ("1.5", "int"), ("x", "float"),
                                             ("", "int")])
def test_parse_value_rejects(text, type_name):
    with pytest.raises(ParameterError):
        runner.parse_value(text, type_name)


def test_select_notebooks(series):
    assert [p.stem for p in runner.select_notebooks(None, series)] == [
        "00_fixture", "01_failing", "02_after"]
    assert [p.stem for p in runner.select_notebooks("02,0", series)] == ["00_fixture", "02_after"]
    with pytest.raises(ParameterError, match="07") as info:
        runner.select_notebooks("00,07", series)
    assert "00 (00_fixture)" in info.value.fix


def test_validate_parameters_routes_per_notebook(series):
    books = runner.select_notebooks(None, series)
    per = runner.validate_parameters([("SCALE", "3"), ("SEED", "4"), ("FAST", "yes")], books)
    assert per == {"00_fixture": {"SCALE": 3.0, "SEED": 4},
                   "01_failing": {"SEED": 4},
                   "02_after": {"SEED": 4, "FAST": True}}


# --- usage errors: exit 2, nothing executes -----------------------------------------------


def _assert_usage_error(code: int, capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err
    return err


def test_unknown_parameter(series, tmp_path, capsys):
    code = run_main(series, "--mode", "smoke", "--out", str(tmp_path / "o"), "-p", "SCAL", "2")
    err = _assert_usage_error(code, capsys, "SCAL", "'SCALE'")
    assert "did you mean" in err
    assert not (tmp_path / "o").exists()


def test_unknown_parameter_for_selected_notebooks(series, tmp_path, capsys):
    code = run_main(series, "--mode", "smoke", "--only", "02", "--out", str(tmp_path / "o"),
                    "-p", "SCALE", "2")
    _assert_usage_error(code, capsys, "SCALE")


def test_bad_value_type(series, tmp_path, capsys):
    code = run_main(series, "--mode", "smoke", "--out", str(tmp_path / "o"), "-p", "STEPS", "5.5")
    _assert_usage_error(code, capsys, "STEPS", "int")


def test_run_mode_via_p_is_rejected(series, tmp_path, capsys):
    code = run_main(series, "--mode", "smoke", "-p", "RUN_MODE", "full")
    _assert_usage_error(code, capsys, "--mode")


def test_unknown_only(series, capsys):
    code = run_main(series, "--mode", "smoke", "--only", "00,42")
    _assert_usage_error(code, capsys, "42", "00_fixture")


def test_unwritable_out(series, tmp_path, capsys):
    blocker = tmp_path / "plain_file"
    blocker.write_text("")
    code = run_main(series, "--mode", "smoke", "--out", str(blocker / "run"))
    _assert_usage_error(code, capsys, str(blocker / "run"))


def test_no_notebooks(tmp_path, capsys):
    code = runner.main(["--notebooks-dir", str(tmp_path / "none"), "--mode", "smoke",
                        "--only", "00"])
    _assert_usage_error(code, capsys, "no notebooks")


def test_mode_required_and_argparse_errors(series, capsys):
    _assert_usage_error(run_main(series), capsys, "--mode")
    assert run_main(series, "--mode", "huge") == 2
    assert run_main(series, "--bogus") == 2


def test_list(series, capsys):
    assert run_main(series, "--list") == 0
    out = capsys.readouterr().out
    assert "00_fixture" in out and "SCALE: float = 1.0" in out and "a knob" in out
    assert "smoke 60 s" in out


# --- reports ------------------------------------------------------------------------------


def test_metric_tables_group_rows():
    metrics = {"pck/hand/so/target/mcp": 50.0, "pck/hand/so/target/all": 60.0,
               "pck/hand/oracle/target/mcp": 80.0, "pck/hand/oracle/target/all": 90.0,
               "loss/final": 0.25}
    text = "\n".join(runner.metric_tables(metrics))
    assert "|  | mcp | all |" in text
    assert "| pck/hand/oracle/target | 80 | 90 |" in text
    assert "- `loss/final` = 0.25" in text


# --- end to end (kernels) -----------------------------------------------------------------


@pytest.mark.notebooks
def test_run_series_from_bare_shell(series, tmp_path):
    """A run from a shell without the venv on PATH: the -p value arrives, a failure is
    reported and later notebooks still run, the kernel is this interpreter."""
    out = tmp_path / "run"
    stale = out / "metrics" / "01_failing.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"metrics": {"stale/value": 1.0}}))
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)),
           "SRPOSE_CACHE_DIR": str(tmp_path / "cache"), "SRPOSE_RUN_MODE": "full"}
    proc = subprocess.run(
        [sys.executable, "-m", "srpose_lib.runner", "--mode", "smoke", "--notebooks-dir",
         str(series), "--out", str(out), "-p", "SCALE", "3", "-p", "FAST", "true"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    results = json.loads((out / "results.json").read_text())
    books = results["notebooks"]
    assert list(books) == ["00_fixture", "01_failing", "02_after"]
    assert results["mode"] == "smoke" and results["parameters"] == {"SCALE": 3.0, "FAST": True}

    first = books["00_fixture"]
    assert first["status"] == "ok" and first["error"] is None
    assert first["metrics"] == {"fixture/value": 6.0}  # 2 * SCALE: the -p value arrived
    assert Path(first["executed"]).is_file()
    assert first["budget_s"] == 60 and first["duration_s"] > 0

    failed = books["01_failing"]
    assert failed["status"] == "failed"
    assert "RuntimeError" in failed["error"] and "boom on purpose" in failed["error"]
    assert failed["metrics"] == {}  # the stale file from an earlier run is gone

    last = books["02_after"]
    assert last["status"] == "ok" and last["metrics"] == {"fixture/steps": 5.0,
                                                          "fixture/fast": 1.0}

    doc = json.loads((out / "metrics" / "00_fixture.json").read_text())
    assert doc["mode"] == "smoke"  # SRPOSE_RUN_MODE=full in the shell cannot contradict --mode
    assert doc["parameters"]["INTERACTIVE"] is False
    assert Path(doc["python_executable"]).parent == Path(sys.executable).parent
    summary = (out / "summary.md").read_text()
    assert "| 01_failing | failed |" in summary and "fixture/value" in summary
    assert "[FAILED] 01_failing" in proc.stdout


@pytest.mark.parametrize("args, expected", [(("--mode", "smoke"), 900.0), (("--mode", "quick"), None),
                                            (("--mode", "full"), None),
                                            (("--mode", "quick", "--cell-timeout", "30"), 30.0)])
def test_cell_timeout_defaults_per_mode(series, tmp_path, monkeypatch, args, expected):
    """A quick/full training cell may run for hours: no per-cell limit unless asked; smoke
    keeps one so a hang fails CI."""
    seen = []

    def fake_run(path, out, mode, params, cell_timeout, quiet):
        seen.append(cell_timeout)
        return {"status": "ok", "duration_s": 0.0, "budget_s": None, "over_budget": False, "error": None,
                "failed_cell": None, "executed": str(out / path.name), "metrics": {}}

    monkeypatch.setattr(runner, "run_notebook", fake_run)
    assert run_main(series, *args, "--only", "00", "--out", str(tmp_path / "o")) == 0
    assert seen == [expected]


def test_cell_timeout_must_be_positive(series, tmp_path, capsys):
    _assert_usage_error(run_main(series, "--mode", "quick", "--cell-timeout", "0", "--out", str(tmp_path / "o")),
                        capsys, "--cell-timeout")
