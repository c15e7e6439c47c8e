"""Real-data tasks through the notebooks: 00 and 01 run in smoke mode with ``TASKS`` set to a
real task on a tiny prepared fixture (rhd_h3d at 64 px, the crop size of real tasks in smoke
mode), and a missing ``DATA_DIR`` stops notebook 01 in its setup cell with the commands that
prepare the data, while notebook 00 (the data tour) still runs and records that it is missing."""

from __future__ import annotations

import json
import math
import os

import pytest

from srpose_lib import runner, utils

pytestmark = pytest.mark.notebooks

TASK = "rhd_h3d"


def _run(tmp_path, only: str, data_dir) -> dict:
    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRPOSE_CACHE_DIR", str(tmp_path / "cache"))
        mp.setenv("TQDM_DISABLE", "1")
        # the kernel imports this checkout's srpose_lib, whatever else is installed
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(utils.repo_root()), os.environ.get("PYTHONPATH"))
                                                if p))
        code = runner.main(["--mode", "smoke", "--out", str(out), "--only", only, "--quiet",
                            "-p", "TASKS", TASK, "-p", "DATA_DIR", str(data_dir)])
    assert code in (0, 1), f"runner exited {code} (usage or parameter error; see its stderr)"
    return json.loads((out / "results.json").read_text())["notebooks"]


def _ok(info: dict, name: str) -> dict:
    assert info["status"] == "ok", f"{name} failed: {info['error']}\n  executed copy: {info['executed']}"
    metrics = info["metrics"]
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    assert metrics and not bad, f"{name}: no or non-finite metrics {bad or metrics}"
    return metrics


def test_a_real_task_runs_through_notebooks_00_and_01(rhd_h3d_data_dir, tmp_path):
    results = _run(tmp_path, "00,01", rhd_h3d_data_dir)
    tour = _ok(results["00_data_and_domain_gap"], "00")
    assert tour[f"data/{TASK}/prepared"] == 1.0
    for domain in ("source", "target"):
        assert tour[f"data/{TASK}/{domain}/val_images"] > 0
        assert 0 < tour[f"data/{TASK}/{domain}/visible_fraction"] <= 1
    assert (tmp_path / "run" / "figures" / "00_data_and_domain_gap" / f"domains_{TASK}.png").is_file()
    assert not any(k.startswith(("data/hand/", "data/body/")) for k in tour), "only the asked task is shown"

    pck = _ok(results["01_pose_predictor"], "01")
    for method, split in [("source_only", "source_test"), ("source_only", "target_test"),
                          ("oracle", "target_test")]:
        name = f"pck/{TASK}/{method}/{split}/all"
        assert name in pck and 0 <= pck[name] <= 100, f"01 did not record {name} in [0, 100]"
    assert f"gap/{TASK}/drop" in pck


def test_missing_data_names_the_script_to_run(tmp_path):
    missing = tmp_path / "no-data"
    results = _run(tmp_path, "00,01", missing)
    tour = _ok(results["00_data_and_domain_gap"], "00")  # the data tour reports, never fails
    assert tour == {f"data/{TASK}/prepared": 0.0}

    info = results["01_pose_predictor"]
    assert info["status"] == "failed" and info["metrics"] == {}
    error = info["error"]
    assert error.startswith("DataError: task rhd_h3d"), error
    for dataset in ("rhd", "h3d"):
        assert f"python -m data_scripts.{dataset} --data-dir {missing} --crop-size 64" in error, error
    assert "require_data" in info["failed_cell"]["source"], "the setup cell should stop the notebook"
