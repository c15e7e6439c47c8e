"""CI gate: every notebook runs in smoke mode through the runner, within its budget, and
records sane metrics. One runner call for the session (notebooks share the cache in order)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from srpose_lib import nb, runner

pytestmark = pytest.mark.notebooks

NOTEBOOKS = nb.list_notebooks()
PREDICTOR = "01_pose_predictor"


def _budget(path: Path) -> float | None:
    return runner.notebook_budget(path, "smoke")


@pytest.fixture(scope="session")
def smoke_run(request, tmp_path_factory) -> dict:
    """``results.json`` of one smoke run over the selected notebooks (in filename order)."""
    if not NOTEBOOKS:
        pytest.fail(f"no notebooks NN_*.ipynb found in {nb.notebooks_dir()}")
    wanted = set()
    for item in request.session.items:
        if Path(str(item.path)) != Path(__file__):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "path" in params:
            wanted.add(params["path"].name[:2])
        elif item.name.startswith("test_pose_predictor"):
            wanted.add(PREDICTOR[:2])
        elif item.name.startswith("test_comparison_records"):
            wanted.add("08")
    only = ",".join(sorted(wanted)) or None
    out = tmp_path_factory.mktemp("smoke_run")
    args = ["--mode", "smoke", "--out", str(out)] + (["--only", only] if only else [])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRPOSE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("TQDM_DISABLE", "1")
        code = runner.main(args)
    assert code in (0, 1), f"runner exited {code} (usage or parameter error; see its stderr)"
    return json.loads((out / "results.json").read_text())


def test_the_series_exists():
    assert NOTEBOOKS, f"no notebooks NN_*.ipynb found in {nb.notebooks_dir()}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_smoke(smoke_run, path):
    info = smoke_run["notebooks"].get(path.stem)
    assert info is not None, f"{path.stem} was not run"
    assert info["status"] == "ok", (
        f"{path.stem} failed: {info['error']}\n  executed copy: {info['executed']}")
    budget = _budget(path)
    assert budget is not None, f"{path.stem}: metadata.srpose.budget_s.smoke is missing"
    assert info["duration_s"] <= budget, (
        f"{path.stem} took {info['duration_s']:.1f} s, over its smoke budget of {budget:.0f} s")
    if info["duration_s"] > 0.8 * budget:
        import warnings

        warnings.warn(f"{path.stem} used {info['duration_s'] / budget:.0%} of its smoke budget")
    metrics = info["metrics"]
    assert metrics, f"{path.stem} recorded no metrics"
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    assert not bad, f"{path.stem}: non-finite metrics {bad}"
    out_of_range = {k: v for k, v in metrics.items() if k.startswith("pck/") and not 0 <= v <= 100}
    assert not out_of_range, f"{path.stem}: PCK outside [0, 100]: {out_of_range}"


@pytest.mark.parametrize("task", ["hand", "body"])
def test_pose_predictor_records_the_gap(smoke_run, task):
    assert PREDICTOR in {p.stem for p in NOTEBOOKS}, f"notebook {PREDICTOR} is missing"
    metrics = smoke_run["notebooks"][PREDICTOR]["metrics"]
    for method, split in [("source_only", "source_test"), ("source_only", "target_test"),
                          ("oracle", "target_test")]:
        name = f"pck/{task}/{method}/{split}/all"
        assert name in metrics, f"{PREDICTOR} did not record {name}"



@pytest.mark.parametrize("task", ["hand", "body"])
def test_full_method_and_table_a_record_all_four_rows(smoke_run, task):
    """Smoke mode trains every row (its W + G is too brief to pass the diagnostics, and the
    gate is off there), so notebooks 05 and 06 record the four methods of Table A."""
    for notebook, names in (("05_full_method", "pck/{task}/{m}/target_test/all"),
                            ("06_complementarity", "tablea/{task}/{m}/all/mean")):
        metrics = smoke_run["notebooks"][notebook]["metrics"]
        for m in ("baseline", "pseudo", "rec", "pseudo_rec"):
            name = names.format(task=task, m=m)
            assert name in metrics, f"{notebook} did not record {name}"


@pytest.mark.parametrize("task", ["hand", "body"])
def test_comparison_records_all_five_systems(smoke_run, task):
    """Notebook 08 (Fig A) records the target-test PCK of the five systems it compares."""
    metrics = smoke_run["notebooks"]["08_qualitative_comparison"]["metrics"]
    for m in ("source_only", "ccssl", "regda", "baseline", "pseudo_rec"):
        name = f"pck/{task}/{m}/target_test/all"
        assert name in metrics, f"08_qualitative_comparison did not record {name}"
    assert f"figa/{task}/pseudo_rec/endpoint_error_px" in metrics
