"""Real-data tasks run through the same pipeline as the built-in benchmark, from the
prepared format; missing data says which script to run."""

import numpy as np
import pytest
import torch

from srpose_lib.data.benchmark import BenchmarkData
from srpose_lib.data.real import RealTaskConfig, require_task_data, task_data_problems, validation_rows
from srpose_lib.errors import ConfigError, DataError
from srpose_lib.eval.evaluate import evaluate_pck
from srpose_lib.presets import benchmark_for, check_task, config_for, require_data
from srpose_lib.train.supervised import load_model, train_supervised


@pytest.fixture(scope="module")
def data_dir(rhd_h3d_data_dir):
    return rhd_h3d_data_dir


def test_real_tasks_are_known_and_checked():
    assert check_task("rhd_h3d") == "rhd_h3d"
    with pytest.raises(ConfigError, match="(?s)unknown task 'rhd_h3'.*rhd_h3d"):
        check_task("rhd_h3")
    full = config_for("source_only", "quick", "surreal_h36m")  # quick means paper scale for real data
    assert (full.model.arch, full.benchmark.image_size, full.data.target.heatmap_size) == ("resnet101", 256, 64)
    assert full.data.augment.rotation == 30.0 and config_for("oracle", "full", "rhd_h3d").data.augment.rotation == 180.0


def test_train_and_validation_take_whole_sequences():
    seq = np.repeat(np.arange(20), 8)
    val = validation_rows(seq, 0.1, 0)
    assert 0 < len(val) < len(seq) and set(np.unique(seq[val])).isdisjoint(set(seq[np.setdiff1d(np.arange(160), val)]))
    single = validation_rows(np.full(50, -1), 0.1, 0)
    assert len(single) == 5


def test_a_real_task_trains_and_evaluates_from_prepared_data(data_dir, tmp_path):
    data = BenchmarkData(tmp_path / "cache", show_progress=False, data_dir=data_dir)
    cfg = config_for("source_only", "smoke", "rhd_h3d", epochs=1, iters_per_epoch=3)
    train = data.split(cfg.benchmark, "source", "train")
    val = data.split(cfg.benchmark, "source", "val")
    assert len(train) + len(val) == 48 and set(train.sequence.tolist()).isdisjoint(val.sequence.tolist())
    res = train_supervised(cfg, tmp_path / "run", data, log=lambda *_: None, show_progress=False)
    ev = evaluate_pck(load_model(res), data.dataset(cfg.benchmark, cfg.data, "target", "test"))
    assert 0 <= ev.all <= 100 and int(ev.heatmap.valid.sum()) > 0


def test_missing_or_mismatched_data_names_the_fix(data_dir, tmp_path):
    empty = BenchmarkData(None, show_progress=False, data_dir=tmp_path / "nothing")
    with pytest.raises(DataError, match=r"data_scripts\.rhd"):
        empty.split(RealTaskConfig("rhd_h3d", image_size=64), "source", "train")
    wrong = BenchmarkData(None, show_progress=False, data_dir=data_dir)
    with pytest.raises(DataError, match="crop-size 256"):
        wrong.split(benchmark_for("full", "rhd_h3d"), "target", "test")


def test_the_early_check_lists_every_missing_dataset_and_its_script(data_dir, tmp_path):
    assert task_data_problems("hand", tmp_path) == {} and require_task_data("body", tmp_path) is None
    assert task_data_problems("rhd_h3d", data_dir, 64) == {}
    require_task_data("rhd_h3d", data_dir, 64)
    with pytest.raises(DataError) as err:
        require_task_data("surreal_lsp", tmp_path / "nothing", 64)
    fix = err.value.fix
    assert "surreal" in err.value.message and "lsp" in err.value.message
    assert f"python -m data_scripts.surreal --data-dir {tmp_path / 'nothing'} --crop-size 64" in fix
    assert f"python -m data_scripts.lsp --data-dir {tmp_path / 'nothing'} --crop-size 64" in fix
    # one dataset present: only the other is listed; the default crop size adds no flag
    problems = task_data_problems("rhd_mvhand", data_dir, 256)
    assert set(problems) == {"rhd", "mvhand"} and "64 px crops" in problems["rhd"][0]
    assert problems["rhd"][1].endswith("data_scripts.rhd --data-dir " + str(data_dir) + " --force")
    assert set(task_data_problems("rhd_mvhand", data_dir, 64)) == {"mvhand"}
    assert "data_scripts.mvhand" in task_data_problems("rhd_mvhand", data_dir)["mvhand"][1]


def test_notebooks_check_the_data_at_the_crop_size_of_their_run_mode(data_dir):
    require_data("rhd_h3d", "smoke", data_dir)  # smoke: 64 px crops, as the fixture's
    require_data("hand", "full", data_dir / "nothing")  # the built-in tasks need no data
    with pytest.raises(DataError, match=r"(?s)64 px crops.*data_scripts\.rhd --data-dir .* --force"):
        require_data("rhd_h3d", "quick", data_dir)  # real data: quick is paper scale, 256 px
    with pytest.raises(ConfigError, match="unknown task"):
        require_data("rhd", "smoke", data_dir)


def test_smoke_mode_keeps_the_tiny_network_for_real_tasks():
    """quick means paper scale for real data, smoke must not: the notebook tests run it on CPU."""
    for task in ("rhd_h3d", "surreal_3dpw"):
        smoke, built_in = config_for("source_only", "smoke", task), config_for("source_only", "smoke", "hand")
        assert (smoke.model, smoke.train, smoke.data.target) == (built_in.model, built_in.train, built_in.data.target)
        assert smoke.benchmark.image_size == 64
        adapt = config_for("baseline", "smoke", task)
        assert adapt.pretrain.model.arch == "resnet_tiny" and adapt.train.iters_per_epoch <= 8
        assert config_for("style_net", "smoke", task).net == config_for("style_net", "smoke", "hand").net


def test_checkpoints_of_real_tasks_are_keyed_by_the_prepared_data(data_dir, tmp_path):
    import json
    import shutil

    from srpose_lib.train.cache import run_key

    cfg = config_for("source_only", "smoke", "rhd_h3d")
    synthetic = config_for("source_only", "smoke", "hand")
    data = BenchmarkData(tmp_path / "cache", show_progress=False, data_dir=data_dir)
    assert data.fingerprint(synthetic) is None  # the benchmark's config fixes its data
    assert run_key("source_only", synthetic, None) == run_key("source_only", synthetic)
    first = data.fingerprint(cfg)
    assert first is not None and first == data.fingerprint(config_for("baseline", "smoke", "rhd_h3d"))
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    assert BenchmarkData(None, data_dir=copy).fingerprint(cfg) == first  # the same data elsewhere: same key
    meta = copy / "prepared" / "h3d" / "meta.json"
    m = json.loads(meta.read_text())
    m["re-prepared"] = True
    meta.write_text(json.dumps(m))
    other = BenchmarkData(None, data_dir=copy).fingerprint(cfg)
    assert other != first and run_key("source_only", cfg, other) != run_key("source_only", cfg, first)
