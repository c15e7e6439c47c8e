"""Supervised training: learning, resuming after an interruption, the checkpoint cache,
NaN losses, and the run-mode presets."""

import pytest
import torch

from srpose_lib.errors import CacheError, ConfigError, TrainingError
from srpose_lib.presets import config_for
from srpose_lib.train import supervised
from srpose_lib.train.cache import get_or_train, run_dir
from srpose_lib.data.benchmark import BenchmarkData
from srpose_lib.train.supervised import load_model, train_supervised


def tiny(stage="source_only", task="hand", **kw):
    base = dict(epochs=3, iters_per_epoch=6, num_train=96, num_val=32, num_test=32)
    base.update(kw)
    return config_for(stage, "smoke", task, **base)


@pytest.fixture()
def data(tmp_path):
    return BenchmarkData(tmp_path / "cache", show_progress=False)


def quiet(*_):
    pass


def test_training_lowers_the_loss(tmp_path, data):
    cfg = tiny(epochs=4, iters_per_epoch=12)
    res = train_supervised(cfg, tmp_path / "run", data, log=quiet, show_progress=False)
    losses = [h["loss"] for h in res.history]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0]
    assert res.metrics["best_epoch"] in range(1, 5)
    import json

    logged = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["loss"] for h in logged["history"]] == losses
    assert 0 <= res.metrics["val_pck"] <= 100


def test_an_interrupted_run_resumes_without_losing_finished_epochs(tmp_path, data):
    cfg = tiny()
    reference = train_supervised(cfg, tmp_path / "ref", data, log=quiet, show_progress=False)

    def interrupt(epoch, it):
        if epoch == 1 and it == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supervised(cfg, tmp_path / "run", data, log=quiet, show_progress=False, on_iteration=interrupt)
    assert (tmp_path / "run" / "progress.pt").exists()
    lines = []
    resumed = train_supervised(cfg, tmp_path / "run", data, log=lines.append, show_progress=False)
    assert any("resuming after epoch 1/3" in line for line in lines)
    assert len(resumed.history) == 3
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in reference.history]
    for k, v in reference.state_dict.items():
        assert torch.equal(v, resumed.state_dict[k]), k


def test_cache_loads_retrains_on_change_and_refuses_mismatches(tmp_path, data):
    cache = tmp_path / "cache"
    cfg = tiny(epochs=1)
    kwargs = dict(data=data, log=quiet, show_progress=False)
    first = get_or_train("source_only", cfg, train_supervised, cache, **kwargs)
    assert not first.from_cache
    again = get_or_train("source_only", cfg, train_supervised, cache, **kwargs)
    assert again.from_cache
    assert all(torch.equal(v, again.state_dict[k]) for k, v in first.state_dict.items())
    changed = tiny(epochs=1, lr=1e-3)
    assert run_dir("source_only", changed, cache) != run_dir("source_only", cfg, cache)
    assert not get_or_train("source_only", changed, train_supervised, cache, **kwargs).from_cache
    # a checkpoint whose stored config does not match its key fails loudly
    final = run_dir("source_only", cfg, cache) / "final.pt"
    ckpt = torch.load(final, weights_only=False)
    ckpt["config"]["train"]["lr"] = 0.5
    torch.save(ckpt, final)
    with pytest.raises(CacheError, match="configuration differs"):
        get_or_train("source_only", cfg, train_supervised, cache, **kwargs)
    forced = get_or_train("source_only", cfg, train_supervised, cache, force=True, **kwargs)
    assert not forced.from_cache
    model = load_model(forced)
    assert model.num_keypoints == 21 and not model.training


def test_nan_loss_stops_with_a_clear_error_and_keeps_finished_epochs(tmp_path, data, monkeypatch):
    cfg = tiny(epochs=2)
    real = supervised.build_loss

    def poisoned(name):
        loss = real(name)
        calls = {"n": 0}

        def fn(*args):
            calls["n"] += 1
            value = loss(*args)
            return value * float("nan") if calls["n"] > cfg.train.iters_per_epoch + 1 else value
        return fn

    monkeypatch.setattr(supervised, "build_loss", poisoned)
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2.*\n  fix: lower train.lr"):
        train_supervised(cfg, tmp_path / "run", data, log=quiet, show_progress=False)
    assert (tmp_path / "run" / "progress.pt").exists()


@pytest.mark.parametrize("mode", ["smoke", "quick", "full"])
@pytest.mark.parametrize("task", ["hand", "body"])
def test_presets_match_network_and_heatmap_sizes(mode, task):
    from srpose_lib.models import build_pose_net

    cfg = config_for("oracle", mode, task)
    assert cfg.domain == "target" and cfg.task == task
    if mode == "full":
        assert (cfg.benchmark.image_size, cfg.data.target.heatmap_size, cfg.model.arch) == (256, 64, "resnet101")
        assert cfg.train.loss == "mse" and cfg.data.target.sigma == 2.0
        stride = 32 // 2 ** len(cfg.model.deconv_channels)
    else:
        stride = build_pose_net(cfg.model, 21).stride
    assert cfg.benchmark.image_size // stride == cfg.data.target.heatmap_size


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="unknown run mode 'fast'"):
        config_for("oracle", "fast", "hand")
    with pytest.raises(ConfigError, match="unknown task"):
        config_for("oracle", "quick", "rhd")
    with pytest.raises(ConfigError, match="unknown stage"):
        config_for("teacher", "quick", "hand")
    with pytest.raises(ConfigError, match=r"(?s)unknown config field 'epoch'.*did you mean 'train.epochs'"):
        config_for("oracle", "quick", "hand", epoch=3)
    with pytest.raises(ConfigError, match=r"(?s)ambiguous.*benchmark.source.noise"):
        config_for("oracle", "quick", "hand", noise=(0.0, 0.0))  # source or target?
    cfg = config_for("oracle", "quick", "hand", **{"benchmark.target.noise": (0.0, 0.0)}, rotation=10.0)
    assert cfg.benchmark.target.noise == (0.0, 0.0) and cfg.data.augment.rotation == 10.0


def test_seed_reaches_every_training_stage_but_not_the_data():
    """A notebook's SEED trains anew: every nested training config takes it (paired design:
    one pre-training and one W + G per seed, shared by that seed's methods), the data do not."""
    import dataclasses

    from srpose_lib import presets
    from srpose_lib.train.cache import run_key

    def seeds(node, path=""):
        out = {}
        if dataclasses.is_dataclass(node):
            for f in dataclasses.fields(node):
                if f.name == "seed":
                    out[path + "seed"] = getattr(node, f.name)
                out.update(seeds(getattr(node, f.name), f"{path}{f.name}."))
        return out

    found = seeds(presets.config_for("pseudo_rec", "smoke", "hand", seed=3))
    data = {k: v for k, v in found.items() if "benchmark." in k}
    training = {k: v for k, v in found.items() if k not in data}
    assert {"seed", "pretrain.seed", "style.seed", "lifting.seed", "generator.seed",
            "generator.predictor.pretrain.seed"} <= set(training)
    assert set(training.values()) == {3} and set(data.values()) == {0}
    assert presets.config_for("baseline", "smoke", "hand", seed=0) == presets.config_for("baseline", "smoke", "hand")
    a, b = (presets.method_config("rec", "smoke", "hand", seed=s) for s in (0, 1))
    assert run_key("rec", a) != run_key("rec", b) and a.pretrain.benchmark == b.pretrain.benchmark
    # the same seed: every method shares one pre-training and one W + G
    assert presets.method_config("pseudo_rec", "smoke", "hand", seed=1).generator == b.generator


def test_notebooks_pass_their_seed_to_every_training_config():
    import json
    import re
    from pathlib import Path

    calls = []
    for path in sorted(Path(__file__).resolve().parents[1].glob("notebooks/0[1-8]_*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                src = "".join(cell["source"])
                calls += [(path.name, m) for m in re.findall(r"presets\.(?:config_for|method_config)\((?:[^()]|\([^()]*\))*\)", src)]
    assert calls
    missing = [(n, c) for n, c in calls if "seed" not in c]
    assert not missing, f"these calls do not pass the notebook's seed (seed=ctx.seed): {missing}"
