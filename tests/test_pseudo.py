"""Integrated pseudo-labels: lifting, kinematic constraints, reprojection, mask strategies,
and the adaptation loop's bookkeeping."""

import math

import pytest
import torch

from srpose_lib.adapt import lifting as lf
from srpose_lib.adapt.pseudo import (STRATEGIES, PseudoConfig, PseudoLabels, heat_at, make_pseudo_labels,
                                     overlap_counts, strategy_terms)
from srpose_lib.data.heatmaps import gaussian_targets
from srpose_lib.errors import ConfigError
from srpose_lib.skeletons import BODY16, HAND21
from srpose_lib.adapt.limits import body_frames, limit_violations
from srpose_lib.synth.benchmark import benchmark_config, render_split, sample_keypoints
from srpose_lib.synth.kinematics import MODELS
from srpose_lib.adapt.lifting_baselines import CopyXY, KeypointSplits, MeanPose


def test_constraints_restore_bone_length_ratios_and_joint_limits():
    sp = sample_keypoints(benchmark_config("hand", num_train=64, num_val=8, num_test=8), "source", "train")
    ratios = lf.reference_bone_ratios(sp.keypoints3d, HAND21)
    assert ratios.sum().item() == pytest.approx(1.0, abs=1e-5)
    noisy = sp.keypoints3d[:8] + 0.8 * torch.randn(8, 21, 3, generator=torch.Generator().manual_seed(0))
    assert limit_violations(noisy, HAND21).amax() > 20  # the noise breaks limits ...
    out = lf.constrain(noisy, HAND21, ratios)
    p, c = zip(*HAND21.bones)
    lengths = (out[:, list(c)] - out[:, list(p)]).norm(dim=-1)
    torch.testing.assert_close(lengths / lengths.sum(-1, keepdim=True), ratios.expand(8, -1), atol=1e-5, rtol=0)
    assert limit_violations(out, HAND21).amax() < 1e-2  # ... and the constraints restore them


@pytest.mark.parametrize("task", ["hand", "body"])
def test_source_poses_are_within_their_joint_limits(task):
    sp = sample_keypoints(benchmark_config(task, num_train=256, num_val=8, num_test=8), "source", "train")
    sk = sp.skeleton
    assert (limit_violations(sp.keypoints3d, sk) > 1.0).float().mean() < 0.01
    ratios = lf.reference_bone_ratios(sp.keypoints3d, sk)
    lengths_only = lf.constrain(sp.keypoints3d, sk, ratios, limits={})
    moved = lf.kinematic_deviation(lengths_only, lf.constrain(sp.keypoints3d, sk, ratios), sk)
    assert (moved > 0.05).float().mean() < 0.01  # the limits leave valid poses (almost all) alone


def model_pose(task: str, **angles) -> torch.Tensor:
    """Joints (1, K, 3) of the source kinematic model at the middle of every joint range,
    with ``angles`` (degrees) set, even outside their limits."""
    model = MODELS[task]()
    pose = ((model.lower + model.upper) / 2)[None].clone()
    for name, value in angles.items():
        pose[0, model.param_names.index(name)] = value
    return model.forward(pose, torch.ones(1, model.num_shape))[:, :model.skeleton.num_joints]


def test_constraints_straighten_a_finger_bent_backwards():
    bent = model_pose("hand", index_flex2=-50.0, index_flex3=0.0)  # PIP hyperextended by 50°
    plausible = model_pose("hand", index_flex2=0.0, index_flex3=0.0)
    ratios = lf.reference_bone_ratios(plausible, HAND21)
    pip = HAND21.index("index_dip")  # the bend at the PIP is read on its child bone
    assert limit_violations(bent, HAND21)[0, pip] == pytest.approx(50.0, abs=0.5)
    fixed = lf.constrain(bent, HAND21, ratios)
    size = (plausible[0].amax(0) - plausible[0].amin(0)).max()
    assert (bent - plausible).norm(dim=-1).max() > 0.15 * size
    assert (fixed - plausible).norm(dim=-1).max() < 1e-3 * size
    assert limit_violations(fixed, HAND21).amax() < 1e-2


@pytest.mark.parametrize("angle, expected", [(-40.0, 0.0), (175.0, 145.0)])
def test_elbow_bent_backwards_or_too_far_is_clamped_and_a_valid_pose_kept(angle, expected):
    sk = BODY16
    valid = model_pose("body")
    ratios = lf.reference_bone_ratios(valid, sk)
    torch.testing.assert_close(lf.constrain(valid, sk, ratios), valid, atol=1e-5, rtol=0)
    fixed = lf.constrain(model_pose("body", r_elbow=angle), sk, ratios)
    torch.testing.assert_close(fixed, model_pose("body", r_elbow=expected), atol=1e-4, rtol=0)


def test_constraints_bring_swapped_arms_to_a_plausible_pose():
    sk = BODY16
    valid = model_pose("body", l_shoulder_flex=10.0, r_shoulder_flex=10.0, l_shoulder_abd=20.0,
                       r_shoulder_abd=20.0)  # arms down at the sides
    ratios = lf.reference_bone_ratios(valid, sk)
    swap = [sk.index(n) for n in ("l_elbow", "l_wrist", "r_elbow", "r_wrist")]
    swapped = valid.clone()
    swapped[:, swap] = valid[:, swap[2:] + swap[:2]]  # each arm below the shoulder on the other side
    arms = swap
    assert limit_violations(swapped, sk)[0, [sk.index("l_elbow"), sk.index("r_elbow")]].min() > 20
    fixed = lf.constrain(swapped, sk, ratios)
    assert limit_violations(fixed, sk).amax() < 1e-2
    # an arm on the wrong side may only cross in front of the chest (trunk frame: x to the
    # left, z forward), and the arms end nearer their true place
    trunk = body_frames(fixed)["trunk"][0]
    for side, sign in (("l", 1.0), ("r", -1.0)):
        local = trunk.T @ (fixed[0, sk.index(f"{side}_elbow")] - fixed[0, sk.index(f"{side}_shoulder")])
        assert sign * local[0] >= 0 or local[2] > 0
    err = lambda pose: (pose[0, arms] - valid[0, arms]).norm(dim=-1).mean()
    assert err(fixed) < 0.75 * err(swapped)


def test_constraints_restore_a_stretched_bone():
    valid = model_pose("hand")
    ratios = lf.reference_bone_ratios(valid, HAND21)
    d, t = HAND21.index("index_dip"), HAND21.index("index_tip")
    p = HAND21.parents[d]
    stretched = valid.clone()
    stretched[:, [d, t]] += valid[:, d] - valid[:, p]  # the middle phalanx twice as long
    fixed = lf.constrain(stretched, HAND21, ratios)
    norm = lambda pose: lf.normalise(pose, lf.ROOT["hand21"])[0]
    assert (norm(stretched) - norm(valid)).norm(dim=-1).max() > 0.2
    torch.testing.assert_close(norm(fixed), norm(valid), atol=1e-4, rtol=0)
    dev = lf.kinematic_deviation(stretched, fixed, HAND21)[0]
    assert dev.argmax() == d and dev[d] > 0.4  # the evidence names the stretched bone


def test_weak_perspective_fit_recovers_scale_and_shift():
    pose = torch.randn(3, 21, 3)
    xy = 2.5 * pose[..., :2] + torch.tensor([10.0, -4.0])
    torch.testing.assert_close(lf.fit_weak_perspective(pose, xy, torch.ones(3, 21)), xy, atol=1e-4, rtol=0)


LIFT_BENCH = benchmark_config("body", num_train=4096, num_val=128, num_test=8)


def check_lifting(net, ratios):
    """What a lifting network must do on held-out source poses: recover their 3D shape
    (normalised error after the constraints under 0.25; the stand-ins score 0.33 and 0.40)
    and reproject near the 2D input it was lifted from."""
    val = sample_keypoints(LIFT_BENCH, "source", "val")
    err = lf.lifting_errors(net, ratios, val.keypoints, val.keypoints3d, BODY16)
    assert err["mpjpe_constrained"] < 0.25, err
    assert lf.relative_reprojection_error(net, ratios, val.keypoints, BODY16) < 0.15


def test_lifting_net_learns_source_poses(tmp_path):
    cfg = lf.LiftingTrainConfig(LIFT_BENCH, lf.LiftingConfig(hidden=128, epochs=20, batch_size=128))
    res = lf.train_lifting(cfg, tmp_path, KeypointSplits(), log=lambda *_: None, show_progress=False)
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    check_lifting(*lf.load_lifting(res))


@pytest.mark.parametrize("stand_in", ["copy_2d_depth_0", "mean_pose"])
def test_lifting_check_fails_for_trivial_stand_ins(stand_in):
    train = sample_keypoints(LIFT_BENCH, "source", "train")
    ratios = lf.reference_bone_ratios(train.keypoints3d, BODY16)
    net = CopyXY() if stand_in == "copy_2d_depth_0" else MeanPose(lf.normalise(train.keypoints3d, lf.ROOT["body16"])[0])
    with pytest.raises(AssertionError):
        check_lifting(net, ratios)


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


class Oracle(torch.nn.Module):
    """A lifting stand-in that knows the 3D poses of the batch (ignores its input)."""

    def __init__(self, poses3d, root):
        super().__init__()
        self.poses = lf.normalise(poses3d, root)[0]

    def forward(self, xy):
        return self.poses


def _hand_batch():
    """Four valid hands and four with the index finger bent backwards, as teacher heatmaps
    (orthographic, 64 cells) on which the bent fingers' joints are the *most* confident."""
    flex = [20.0, 40.0, 60.0, 80.0, -60.0, -50.0, -40.0, -30.0]
    poses = torch.cat([model_pose("hand", index_flex2=f, index_flex3=0.0) for f in flex])
    xy = poses[..., :2]
    xy = 8 + 48 * (xy - xy.amin((0, 1))) / (xy.amax((0, 1)) - xy.amin((0, 1))).max()
    heat, _ = gaussian_targets(xy * 2, torch.ones(8, 21), 128, 64, 1.0)
    peak = 0.6 + 0.3 * torch.rand(8, 21, generator=torch.Generator().manual_seed(0))
    peak[4:, [7, 8]] = 1.0
    return poses, heat * peak[..., None, None]


@pytest.mark.parametrize("evidence, keeps_bent", [("kinematic", False), ("heatmap", True)])
def test_m3d_ranks_by_3d_evidence_not_by_the_heatmap(evidence, keeps_bent):
    poses, heat = _hand_batch()
    ratios = lf.reference_bone_ratios(poses[:4], HAND21)
    labels = make_pseudo_labels(heat, "mse", 1.0, 0.5, HAND21, (Oracle(poses, 0), ratios),
                                PseudoConfig(m3d_evidence=evidence))
    assert labels.m2d[4:, [7, 8]].all()  # M_2D trusts the confident, implausible joints
    assert bool(labels.m3d[4:, [7, 8]].any()) == keeps_bent
    assert labels.deviation3d[4:, 7].min() > 0.3 > labels.deviation3d[:4, 7].max()
    assert labels.conf3d.shape == (8, 21) and ((labels.conf3d > 0) & (labels.conf3d <= 1)).all()


def test_other_m3d_evidences_and_their_errors():
    poses, heat = _hand_batch()
    ratios = lf.reference_bone_ratios(poses[:4], HAND21)
    net = lf.LiftingNet(21, lf.LiftingConfig(hidden=32, dropout=0.3))
    for ev in ("reprojection", "dropout"):
        labels = make_pseudo_labels(heat, "mse", 1.0, 0.5, HAND21, (net, ratios), PseudoConfig(m3d_evidence=ev))
        assert ((labels.conf3d > 0) & (labels.conf3d <= 1)).all() and labels.m3d.any()
    same = make_pseudo_labels(heat, "mse", 1.0, 0.5, HAND21, (net, ratios), PseudoConfig(m3d_evidence="views"),
                              view_heatmaps=[heat, heat])
    torch.testing.assert_close(same.conf3d, torch.ones(8, 21))  # identical views agree fully
    with pytest.raises(ConfigError, match="teacher_views"):
        make_pseudo_labels(heat, "mse", 1.0, 0.5, HAND21, (net, ratios), PseudoConfig(m3d_evidence="views"))
    with pytest.raises(ConfigError, match="evidence"):
        PseudoConfig(m3d_evidence="kinematics")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_carries_the_same_total_consistency_weight(strategy):
    labels = masks([[True, True, False]], [[False, True, True]])
    for combined in (False, True):
        terms = strategy_terms(labels, strategy, combined)
        assert sum(PseudoConfig(strategy=strategy).term_weight(terms) for _ in terms) == pytest.approx(1.0)
        assert PseudoConfig(strategy=strategy, equal_weight=False).term_weight(terms) == 1.0


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
