"""Integrated pseudo-labels: lifting, kinematic constraints, reprojection, mask strategies,
and the adaptation loop's bookkeeping."""

import math

import pytest
import torch

from srpose_lib.adapt import lifting as lf
from srpose_lib.adapt.pseudo import (PseudoConfig, PseudoLabels, heat_at, make_pseudo_labels,
                                     overlap_counts, strategy_terms)
from srpose_lib.data.heatmaps import gaussian_targets
from srpose_lib.errors import ConfigError
from srpose_lib.skeletons import BODY16, HAND21
from srpose_lib.synth.benchmark import benchmark_config, render_split


def test_constraints_restore_bone_length_ratios_and_joint_limits():
    sp = render_split(benchmark_config("hand", num_train=64, num_val=8, num_test=8), "source", "train")
    ratios = lf.reference_bone_ratios(sp.keypoints3d, HAND21)
    assert ratios.sum().item() == pytest.approx(1.0, abs=1e-5)
    noisy = sp.keypoints3d[:8] + 0.8 * torch.randn(8, 21, 3, generator=torch.Generator().manual_seed(0))
    out = lf.constrain(noisy, HAND21, ratios)
    p, c = zip(*HAND21.bones)
    lengths = (out[:, list(c)] - out[:, list(p)]).norm(dim=-1)
    torch.testing.assert_close(lengths / lengths.sum(-1, keepdim=True), ratios.expand(8, -1), atol=1e-5, rtol=0)
    # every limited bend is within its limit after the constraint
    for name, limit in lf.JOINT_LIMITS["hand21"].items():
        j = HAND21.index(name)
        pj = HAND21.parents[j]
        g = HAND21.parents[pj]
        a, b = out[:, pj] - out[:, g], out[:, j] - out[:, pj]
        cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
        assert (torch.rad2deg(torch.acos(cos.clamp(-1, 1))) <= limit + 1e-3).all(), name


def test_over_bent_elbow_is_clamped_and_a_valid_pose_kept():
    sk = BODY16
    pose = torch.zeros(1, 16, 3)
    for p, j in lf._topological(sk.bones, sk):  # unit bones, all along y (a valid pose)
        pose[0, j] = pose[0, p] + torch.tensor([0.0, 1.0, 0.0])
    ratios = lf.reference_bone_ratios(pose, sk)
    valid = lf.constrain(pose, sk, ratios)
    torch.testing.assert_close(valid, pose, atol=1e-5, rtol=0)
    # fold the right forearm straight back onto the upper arm (a 180 degree bend)
    e, w, s = sk.index("r_elbow"), sk.index("r_wrist"), sk.index("r_shoulder")
    bent = valid.clone()
    bent[0, w] = bent[0, e] - (bent[0, e] - bent[0, s])
    fixed = lf.constrain(bent, sk, ratios)
    a, b = fixed[0, e] - fixed[0, s], fixed[0, w] - fixed[0, e]
    angle = math.degrees(math.acos(float((a @ b) / (a.norm() * b.norm()))))
    assert angle == pytest.approx(lf.JOINT_LIMITS["body16"]["r_wrist"], abs=1e-2)


def test_weak_perspective_fit_recovers_scale_and_shift():
    pose = torch.randn(3, 21, 3)
    xy = 2.5 * pose[..., :2] + torch.tensor([10.0, -4.0])
    torch.testing.assert_close(lf.fit_weak_perspective(pose, xy, torch.ones(3, 21)), xy, atol=1e-4, rtol=0)


def test_lifting_net_learns_source_poses(tmp_path):
    from srpose_lib.data.benchmark import BenchmarkData

    bench = benchmark_config("body", num_train=512, num_val=64, num_test=8)
    cfg = lf.LiftingTrainConfig(bench, lf.LiftingConfig(hidden=64, epochs=6, batch_size=64))
    res = lf.train_lifting(cfg, tmp_path, BenchmarkData(None, show_progress=False), log=lambda *_: None, show_progress=False)
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    net, ratios = lf.load_lifting(res)
    val = render_split(bench, "source", "val")
    pose, reproj = lf.lift_and_constrain(net, val.keypoints, torch.ones(64, 16), BODY16, ratios)
    # the constrained, reprojected pose stays near the 2D input it was lifted from
    size = (val.keypoints.max(1).values - val.keypoints.min(1).values).max(-1).values.mean()
    assert (reproj - val.keypoints).norm(dim=-1).mean() < 0.15 * size


def test_heat_at_reads_confidence_at_subpixel_positions():
    heat, _ = gaussian_targets(torch.tensor([[[20.0, 30.0]]]), torch.ones(1, 1), 64, 32, 1.0)
    at_peak = heat_at(heat, torch.tensor([[[10.0, 15.0]]]), "mse", 1.0)
    half_way = heat_at(heat, torch.tensor([[[10.5, 15.0]]]), "mse", 1.0)
    assert at_peak.item() == pytest.approx(1.0) and half_way.item() == pytest.approx((1 + math.exp(-0.5)) / 2, rel=1e-4)


def masks(m2d, m3d):
    m2d, m3d = torch.tensor(m2d), torch.tensor(m3d)
    c2, c3 = torch.zeros(1, 3, 2), torch.ones(1, 3, 2)
    return PseudoLabels(c2, c3, m2d, m3d, m2d.float(), m3d.float())


def test_mask_strategies_on_a_hand_made_batch():
    labels = masks([[True, True, False]], [[False, True, True]])
    (name, coords, m), = strategy_terms(labels, "m2d", False)
    assert name == "2d" and m.tolist() == [[True, True, False]]
    (name, coords, m), = strategy_terms(labels, "m3d", False)
    assert name == "3d" and torch.equal(coords, labels.coords3d) and m.tolist() == [[False, True, True]]
    union = strategy_terms(labels, "union", False)
    assert [t[0] for t in union] == ["2d", "3d"] and all(t[2].all() for t in union)
    indep = strategy_terms(labels, "indep", False)
    assert [t[2].tolist() for t in indep] == [[[True, True, False]], [[False, True, True]]]
    assert [t[2].tolist() for t in strategy_terms(labels, "ours", False)] == [t[2].tolist() for t in indep]
    assert [t[2].tolist() for t in strategy_terms(labels, "ours", True)] == [t[2].tolist() for t in union]
    assert overlap_counts(labels.m2d, labels.m3d) == (1, 3)
    with pytest.raises(ConfigError, match="strategy"):
        PseudoConfig(strategy="both")


def test_pseudo_labels_from_teacher_heatmaps():
    gen = torch.Generator().manual_seed(0)
    xy = 10 + torch.rand(4, 21, 2, generator=gen) * 40
    heat, _ = gaussian_targets(xy, torch.ones(4, 21), 64, 32, 1.0)
    heat = heat * torch.rand(4, 21, 1, 1, generator=gen)  # varied confidences
    labels = make_pseudo_labels(heat, "mse", 1.0, 0.5, HAND21, None)
    assert labels.m2d.sum() == 4 * 21 - int(0.5 * 4 * 21)  # strictly above the median
    expected = torch.floor(xy / 2 + 0.5)
    torch.testing.assert_close(labels.coords2d, expected)


def test_lifting_training_resumes_after_an_interruption(tmp_path):
    from srpose_lib.data.benchmark import BenchmarkData

    bench = benchmark_config("hand", num_train=128, num_val=16, num_test=8)
    cfg = lf.LiftingTrainConfig(bench, lf.LiftingConfig(hidden=32, epochs=3, batch_size=32))
    data = BenchmarkData(None, show_progress=False)
    ref = lf.train_lifting(cfg, tmp_path / "ref", data, log=lambda *_: None, show_progress=False)

    def stop(epoch, it):
        if (epoch, it) == (1, 2):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lf.train_lifting(cfg, tmp_path / "run", data, log=lambda *_: None, show_progress=False, on_iteration=stop)
    lines = []
    res = lf.train_lifting(cfg, tmp_path / "run", data, log=lines.append, show_progress=False)
    assert any("resuming after epoch 1/3" in line for line in lines)
    for k, v in ref.state_dict["net"].items():
        assert torch.equal(v, res.state_dict["net"][k]), k
    assert [h["loss"] for h in res.history] == [h["loss"] for h in ref.history]
