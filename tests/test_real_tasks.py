"""Real-data tasks run through the same pipeline as the built-in benchmark, from the
prepared format; missing data says which script to run."""

import numpy as np
import pytest
import torch

from srpose_lib.data.benchmark import BenchmarkData
from srpose_lib.data.prepared import PreparedWriter
from srpose_lib.data.real import RealTaskConfig, validation_rows
from srpose_lib.errors import ConfigError, DataError
from srpose_lib.eval.evaluate import evaluate_pck
from srpose_lib.presets import benchmark_for, check_task, config_for
from srpose_lib.synth.benchmark import benchmark_config, render_split
from srpose_lib.train.supervised import load_model, train_supervised


def write_prepared(data_dir, name, domain, n_train=48, n_test=16):
    """A tiny prepared dataset made of benchmark images (stand-ins for real crops)."""
    bench = benchmark_config("hand", num_train=n_train, num_test=n_test, num_val=8)
    writer = PreparedWriter(data_dir, name, "hand21", crop_size=64)
    for split, src in (("train", "train"), ("test", "test")):
        sp = render_split(bench, domain, src)
        for i in range(len(sp)):
            writer.add(split, sp.images[i], sp.keypoints[i], sp.visible[i], keypoints3d=sp.keypoints3d[i],
                       sequence=int(sp.sequence[i]), frame=int(sp.frame[i]), source_image=f"{split}/{i}.png")
    writer.finish({"kind": "test fixture"})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_prepared(root, "rhd", "source")
    write_prepared(root, "h3d", "target")
    return root


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
