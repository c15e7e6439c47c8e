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
#: What a notebook shows besides its metric: a table, a figure, a printed line and a
#: progress loop (text progress with a 0.05 s gap instead of 30 s, so a 1 s loop is "long").
SHOWS = """\
import time
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from srpose_lib import utils
display(Markdown("| a | b |\\n|---|---|\\n| 1 | 2 |"))
fig, ax = plt.subplots(figsize=(2, 2)); ax.plot([0, 1]); plt.show()
print("a printed line", 2 * SCALE)
utils.TEXT_PROGRESS_GAP_S = 0.05
for _ in utils.progress(range(100), desc="fixture loop"):
    time.sleep(0.01)
"""
FAKE_BENCH = {"images_per_s": 100.0, "seconds": 8.0, "measured": "2026-01-01T00:00:00+00:00",
              "hostname": "testhost", "cpu": "Test CPU", "cpu_count": 2, "torch_threads": 2,
              "torch": "x", "device": "cpu", "cached": True}


@pytest.fixture(autouse=True)
def fake_bench(monkeypatch):
    """In-process runs get a fixed bench figure instead of measuring one."""
    calls = []

    def bench_figure(seconds=8.0, cache_path=None, refresh=False):
        calls.append(seconds)
        return dict(FAKE_BENCH)

    monkeypatch.setattr(runner.machine, "bench_figure", bench_figure)
    return calls


@pytest.fixture
def series(fixture_notebook) -> Path:
    """Three notebooks: 00 records 2*SCALE, 01 fails before setup, 02 records STEPS."""
    fixture_notebook("00_fixture", [SETUP.format(name="00_fixture"),
                                    'ctx.record("fixture/value", 2 * SCALE)', SHOWS],
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


def test_echo_stream_writes_whole_nonblank_lines():
    import io

    buf = io.StringIO()
    echo = runner._EchoStream(buf)
    echo.write("epoch 1")
    assert buf.getvalue() == ""  # half a line waits for the rest
    echo.write("/2 done\n\n  \nnext\rlast")
    echo.flush()
    assert buf.getvalue() == "  epoch 1/2 done\n  next\n  last\n"


def test_key_numbers_and_lines():
    metrics = {"pck/hand/source_only/target_test/all": 41.25, "pck/hand/source_only/target_test/mcp": 3.0,
               "pck/body/oracle/target_test/all": 70.0, "data/hand/source/detail": 0.1}
    assert runner.key_numbers(metrics) == ("PCK@0.05 target test, all joints: hand/source_only 41.2, "
                                           "body/oracle 70.0")
    assert runner.key_numbers({"data/x/y": 1.0}) == ""
    assert runner.start_line("01_x", "quick", 800.0, FAKE_BENCH) == (
        "== 01_x (quick): expected ~13 min on this machine ==")
    assert "reference machine" in runner.start_line("01_x", "quick", 800.0, None)
    assert runner._duration(5000) == "1 h 23 min" and runner._duration(42) == "42 s"
    assert "Test CPU" in runner.machine_line(FAKE_BENCH) and "100.0 images/s" in runner.machine_line(FAKE_BENCH)


def test_closing_lines_point_at_the_outputs(tmp_path, monkeypatch):
    results = {"mode": "quick", "duration_s": 4000.0, "notebooks": {
        "00_a": {"status": "ok", "duration_s": 30.0}, "01_b": {"status": "failed", "duration_s": 3970.0}}}
    monkeypatch.setattr(runner.utils, "repo_root", lambda: tmp_path)
    text = runner.closing_lines(results, tmp_path / "run")
    assert "1/2 notebook(s) ok in 1 h 07 min (quick)" in text and "FAILED 01_b" in text
    assert f"executed notebooks: {tmp_path / 'run' / 'executed'}" in text
    assert "docs site:          not built (make docs" in text
    site = tmp_path / runner.DOCS_SITE
    site.parent.mkdir(parents=True)
    site.write_text("<html></html>")
    assert f"docs site:          {site}" in runner.closing_lines(results, tmp_path / "run")


def test_expected_times_and_bench_in_results(series, tmp_path, monkeypatch, fake_bench, capsys):
    """The start line scales the recorded time by this machine's bench figure; results.json and
    summary.md keep the wall time, the expected time and the machine; --no-bench skips it."""
    times = {"reference_images_per_s": 50.0, "seconds": {"00_fixture": {"quick": 600}}}
    monkeypatch.setattr(runner.machine, "load_times", lambda path=None: times)

    def fake_run(path, out, mode, params, cell_timeout, quiet):
        return {"status": "ok", "duration_s": 12.5, "budget_s": None, "over_budget": False, "error": None,
                "failed_cell": None, "executed": str(out / path.name),
                "metrics": {"pck/hand/ours/target_test/all": 55.0}}

    monkeypatch.setattr(runner, "run_notebook", fake_run)
    out = tmp_path / "o"
    assert run_main(series, "--mode", "quick", "--only", "00", "--out", str(out)) == 0
    console = capsys.readouterr().out
    assert "== 00_fixture (quick): expected ~5 min on this machine ==" in console  # 600 s * 50 / 100
    assert "hand/ours 55.0" in console and fake_bench == [runner.BENCH_SECONDS["quick"]]
    results = json.loads((out / "results.json").read_text())
    assert results["machine"]["images_per_s"] == 100.0
    assert results["notebooks"]["00_fixture"]["expected_s"] == 300.0
    summary = (out / "summary.md").read_text()
    assert "| 00_fixture | ok | 12 s | 300 s | - |" in summary and "100.0 images/s" in summary

    assert run_main(series, "--mode", "quick", "--only", "00", "--out", str(out), "--no-bench") == 0
    assert fake_bench == [runner.BENCH_SECONDS["quick"]]  # not called again
    assert "expected ~10 min on the reference machine" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["machine"] is None


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
           "SRPOSE_CACHE_DIR": str(tmp_path / "cache"), "SRPOSE_RUN_MODE": "full",
           "SRPOSE_BENCH_FILE": str(tmp_path / "bench.json"),
           **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {})}
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

    # the bench figure of this machine: measured (smoke: 2 s) into the bench file, recorded
    machine = results["machine"]
    assert machine["images_per_s"] > 0 and machine["seconds"] == runner.BENCH_SECONDS["smoke"]
    assert json.loads((tmp_path / "bench.json").read_text())  # cached for the next run
    assert f"bench figure {machine['images_per_s']} images/s" in summary
    assert all("expected_s" in info for info in books.values())

    # a clean console: start lines, the printed lines, no stand-ins of displays, no
    # papermill chatter, no kernel warning; at the end where things are
    console = proc.stdout + proc.stderr
    for junk in ("<IPython.core.display", "<Figure size", "without encryption", "Input Notebook",
                 "Executing notebook"):
        assert junk not in console, f"{junk!r} in the console:\n{console}"
    assert "== 00_fixture (smoke): no recorded time to expect ==" in console
    assert "  a printed line 6.0" in console
    assert f"executed notebooks: {out / 'executed'}" in console
    assert f"summary:            {out / 'summary.md'}" in console
    progress = [ln for ln in console.splitlines() if "fixture loop" in ln]
    assert 1 <= len(progress) <= 5, progress

    # the executed notebook keeps its figure and table but a handful of progress lines
    import nbformat

    executed = nbformat.read(first["executed"], as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1
    assert sum("text/markdown" in o.get("data", {}) for o in outputs) == 1
    lines = [ln for o in outputs if o.output_type == "stream" for ln in o.text.splitlines()
             if "fixture loop" in ln]
    assert 1 <= len(lines) <= 5, lines


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
