"""The adaptation loop: it learns from pseudo-labels only, resumes exactly, and records
the pseudo-label analyses."""

import math

import pytest
import torch

from srpose_lib.adapt.lifting import train_lifting, load_lifting
from srpose_lib.adapt.mean_teacher import MeanTeacherConfig, ViewConfig
from srpose_lib.adapt.pseudo import PseudoConfig
from srpose_lib.adapt.train import AdaptConfig, load_teacher, train_adaptation
from srpose_lib.data.benchmark import BenchmarkData
from srpose_lib.presets import _lifting, config_for
from srpose_lib.train.supervised import TrainConfig, train_supervised


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt")
    data = BenchmarkData(root / "cache", show_progress=False)
    pre = config_for("source_only", "smoke", "hand", epochs=1, iters_per_epoch=4, num_train=64, num_val=16, num_test=16)
    pretrained = train_supervised(pre, root / "pre", data, log=quiet, show_progress=False)
    lcfg = _lifting("smoke", "hand")
    from srpose_lib.config import override

    lcfg = override(lcfg, **{"benchmark": pre.benchmark})
    lifting = load_lifting(train_lifting(lcfg, root / "lift", data, log=quiet, show_progress=False))
    return data, pre, pretrained, lcfg, lifting


def adapt_cfg(pre, lcfg, method="pseudo", strategy="ours", epochs=2, combine=0.7):
    views = ViewConfig(base_scale=(1, 1), rotation=30, shear=0, scale=(0.9, 1.1))
    return AdaptConfig(method=method, pretrain=pre, mean_teacher=MeanTeacherConfig(student=views, teacher=views),
                       pseudo=PseudoConfig(strategy=strategy, combine_overlap=combine), lifting=lcfg,
                       train=TrainConfig(epochs=epochs, iters_per_epoch=3, batch_size=8, lr=2e-4, milestones=(),
                                         loss="kl", eval_batch_size=16))


def test_target_labels_are_never_used_for_training(setup, tmp_path):
    data, pre, pretrained, lcfg, lifting = setup
    cfg = adapt_cfg(pre, lcfg, epochs=1)
    a = train_adaptation(cfg, tmp_path / "a", data, pretrained, lifting=lifting, log=quiet, show_progress=False)
    target = data.split(pre.benchmark, "target", "train")
    saved = target.keypoints.clone()
    target.keypoints.add_(17.0)  # corrupt the target ground truth in place
    try:
        b = train_adaptation(cfg, tmp_path / "b", data, pretrained, lifting=lifting, log=quiet, show_progress=False)
    finally:
        target.keypoints.copy_(saved)
    for k, v in a.state_dict.items():
        assert torch.equal(v, b.state_dict[k]), k  # identical weights: the truth only feeds the analyses
    assert a.history[0]["correct"] != b.history[0]["correct"]  # ... which do see it


def test_resume_after_interruption_is_exact(setup, tmp_path):
    data, pre, pretrained, lcfg, lifting = setup
    cfg = adapt_cfg(pre, lcfg, epochs=2)
    ref = train_adaptation(cfg, tmp_path / "ref", data, pretrained, lifting=lifting, log=quiet, show_progress=False)

    def stop(epoch, it):
        if epoch == 1 and it == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_adaptation(cfg, tmp_path / "run", data, pretrained, lifting=lifting, log=quiet,
                         show_progress=False, on_iteration=stop)
    lines = []
    res = train_adaptation(cfg, tmp_path / "run", data, pretrained, lifting=lifting, log=lines.append, show_progress=False)
    assert any("resuming after epoch 1/2" in line for line in lines)
    for k, v in ref.state_dict.items():
        assert torch.equal(v, res.state_dict[k]), k
    assert [h["correct"] for h in ref.history] == [h["correct"] for h in res.history]


def test_analyses_are_recorded_and_ours_combines_past_the_threshold(setup, tmp_path):
    data, pre, pretrained, lcfg, lifting = setup
    res = train_adaptation(adapt_cfg(pre, lcfg, epochs=2, combine=0.0), tmp_path / "c", data, pretrained,
                           lifting=lifting, log=quiet, show_progress=False)
    first, second = res.history
    assert first["wrong_coincidence"] is None and 0 <= second["wrong_coincidence"] <= 1
    assert 0 < first["overlap"] <= 1 and 0 <= first["correct"] <= 1
    assert first["saturation"] <= second["saturation"] <= 1  # cumulative
    assert first["combined"] and res.metrics["combined"]  # threshold 0: combined after epoch 1
    assert math.isfinite(res.metrics["val_pck"])
    teacher = load_teacher(res)
    assert not teacher.training
    never = train_adaptation(adapt_cfg(pre, lcfg, epochs=1, combine=1.01), tmp_path / "d", data, pretrained,
                             lifting=lifting, log=quiet, show_progress=False)
    assert not never.metrics["combined"]


def test_baseline_needs_no_lifting_and_methods_must_match_strategies(setup, tmp_path):
    data, pre, pretrained, lcfg, _ = setup
    cfg = adapt_cfg(pre, None, method="baseline", strategy="m2d", epochs=1)
    res = train_adaptation(cfg, tmp_path / "e", data, pretrained, log=quiet, show_progress=False)
    assert res.history[0]["overlap"] is None and res.history[0]["m3d_share"] == 0
    from srpose_lib.errors import ConfigError

    with pytest.raises(ConfigError, match="trains with strategy"):
        adapt_cfg(pre, lcfg, method="pseudo", strategy="m3d")
    with pytest.raises(ConfigError, match="lifting"):
        adapt_cfg(pre, None, method="pseudo_m3d", strategy="m3d")


def test_mechanism_instruments_agree_with_the_used_label_correctness(setup, tmp_path):
    """Per-mask precision/coverage and the error taxonomy are recorded every epoch; with the two
    independent terms (ours, never combined) the share of used labels that are correct is exactly
    the coverage-weighted mean of M_2D's and M_3D's precision."""
    from srpose_lib.adapt.stats import instrument_metrics

    data, pre, pretrained, lcfg, lifting = setup
    res = train_adaptation(adapt_cfg(pre, lcfg, epochs=1, combine=1.01), tmp_path / "i", data, pretrained,
                           lifting=lifting, log=quiet, show_progress=False)
    r = res.history[0]
    p2, c2, p3, c3 = r["precision/m2d"], r["coverage/m2d"], r["precision/m3d"], r["coverage/m3d"]
    assert c2 == pytest.approx(r["m2d_share"]) and c3 == pytest.approx(r["m3d_share"])
    assert r["correct"] == pytest.approx((p2 * c2 + p3 * c3) / (c2 + c3), abs=1e-6)
    # M_3D removes some 2D labels and adds some 3D ones: the parts add up to the masks
    assert r["coverage/m2d_not_m3d"] <= c2 and r["coverage/m3d_not_m2d"] <= c3
    shares = [r[f"errors/{t}"] for t in ("jitter", "inversion", "swap", "miss")]
    if r["correct"] < 1:
        assert sum(shares) == pytest.approx(1.0)
    names = instrument_metrics(res.history, "hand", "ours")
    assert names["pl/hand/ours/precision/m3d/epoch_1"] == p3
    assert "pl/hand/ours/errors/swap/epoch_1" in names and "pl/hand/ours/overlap/epoch_1" in names
