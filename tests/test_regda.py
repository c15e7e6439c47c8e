"""RegDA's mechanics (adapt/regda.py): ground-false heatmaps, the sign of the max step, which
parameters each step moves, and an exact resume."""

import pytest
import torch

from srpose_lib.adapt.regda import (RegDAConfig, RegDATrainConfig, build_optimizers, build_regda_net, disparity,
                                    load_regda, max_step, min_step, pseudo_heatmaps, source_step, train_regda,
                                    warm_start)
from srpose_lib.data.benchmark import BenchmarkData
from srpose_lib.presets import config_for
from srpose_lib.train.supervised import train_supervised


def quiet(*_):
    pass


def _peaked(B=2, K=3, h=16, w=16):
    """Heatmaps with one clear, well separated peak per keypoint; returns maps and peaks (x, y)."""
    y = torch.zeros(B, K, h, w)
    peaks = torch.tensor([[2, 3], [12, 4], [7, 12]])[:K]
    for k, (x, yy) in enumerate(peaks.tolist()):
        y[:, k, yy, x] = 5.0
    return y, peaks


def test_ground_false_excludes_the_predicted_peak():
    y, peaks = _peaked()
    truth, false = pseudo_heatmaps(y, sigma=1.0)
    for k, (x, yy) in enumerate(peaks.tolist()):
        assert truth[0, k, yy, x] == 1.0  # the ground truth sits on k's own peak
        assert false[0, k, yy, x] == 0.0  # the ground false does not ...
        others = [p for j, p in enumerate(peaks.tolist()) if j != k]
        for ox, oy in others:  # ... but covers every other keypoint's peak
            assert false[0, k, oy, ox] == 1.0
    assert false.max() <= 1.0 and false.min() >= 0.0


def test_the_adversarial_head_gets_the_opposite_gradient_sign_in_the_max_step():
    y, peaks = _peaked()
    y_adv = torch.zeros_like(y, requires_grad=True)
    grads = {}
    for mode in ("min", "max"):
        y_adv.grad = None
        disparity(y, y_adv, 1.0, mode).backward()
        grads[mode] = y_adv.grad.clone()
    for k, (x, yy) in enumerate(peaks.tolist()):
        # descent raises the adversarial logit at the main head's peak in the min step and
        # lowers it in the max step (the adversarial head is pushed to disagree)
        assert (grads["min"][:, k, yy, x] < 0).all()
        assert (grads["max"][:, k, yy, x] > 0).all()


def test_max_step_moves_only_the_adversarial_head_and_min_step_only_the_features():
    cfg = config_for("regda", "smoke", "hand")
    torch.manual_seed(0)
    model = build_regda_net(cfg)
    t = RegDATrainConfig(batch_size=2)
    opt = build_optimizers(model, t)
    K = model.num_keypoints
    x = torch.rand(2, 3, 64, 64)
    source = {"image": x, "heatmaps": torch.rand(2, K, 32, 32), "weights": torch.ones(2, K)}
    source_step(model, opt, t, 1.0, source, 0.1, "cpu")  # every parameter, so the heads are not all zero

    def moved(fn):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        fn(model, opt, t, 1.0, x, 0.1, "cpu")
        return {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}

    by_max = moved(max_step)
    assert by_max and all(n.startswith("head_adv.") for n in by_max)
    by_min = moved(min_step)
    assert by_min and all(n.startswith(("backbone.", "upsampling.")) for n in by_min)


def test_warm_start_goes_from_lo_towards_hi():
    assert warm_start(0, 0.0, 0.1, 1.0, 1000) == 0.0
    assert 0.04 < warm_start(1000, 0.0, 0.1, 1.0, 1000) < warm_start(10000, 0.0, 0.1, 1.0, 1000) < 0.1


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("regda")
    data = BenchmarkData(root / "cache", show_progress=False)
    pre = config_for("source_only", "smoke", "hand", epochs=1, iters_per_epoch=2, num_train=32, num_val=16,
                     num_test=16)
    return data, pre, train_supervised(pre, root / "pre", data, log=quiet, show_progress=False)


def test_regda_resumes_after_an_interruption(setup, tmp_path):
    data, pre, pretrained = setup
    cfg = RegDAConfig(pretrain=pre, train=RegDATrainConfig(epochs=2, iters_per_epoch=2, batch_size=4,
                                                           eval_batch_size=16))
    ref = train_regda(cfg, tmp_path / "ref", data, pretrained, log=quiet, show_progress=False)

    def stop(epoch, it):
        if (epoch, it) == (1, 0):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_regda(cfg, tmp_path / "run", data, pretrained, log=quiet, show_progress=False, on_iteration=stop)
    lines = []
    res = train_regda(cfg, tmp_path / "run", data, pretrained, log=lines.append, show_progress=False)
    assert any("resuming after epoch 1/2" in line for line in lines)
    for k, v in ref.state_dict.items():
        assert torch.equal(v, res.state_dict[k]), k
    assert [h["loss_false"] for h in ref.history] == [h["loss_false"] for h in res.history]
    model = load_regda(res)
    assert not model.training and model(torch.rand(1, 3, 64, 64)).shape[1] == 21  # the main head
