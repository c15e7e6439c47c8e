"""Notebook 03, exercises 1-3: the mask ratio, kinematic joint limits, the teacher's BatchNorm."""

from __future__ import annotations

import math

import torch

from _common import MODE, TASK, cfg, expect, finite, setup
from srpose_lib.adapt import mean_teacher as mt
from srpose_lib.adapt.lifting import JOINT_LIMITS, constrain, normalise, ROOT
from srpose_lib.adapt.limits import limit_violations
from srpose_lib.adapt.pseudo import make_pseudo_labels
from srpose_lib.data.transforms import warp_keypoints
from srpose_lib.train.supervised import load_model


def _teacher_labels(data, stages, n: int = 64):
    """The pre-trained teacher's heatmaps on target images, in the base frame, and the truth there."""
    c = cfg("baseline")
    pc = c.pretrain
    stride = pc.benchmark.image_size / pc.data.target.heatmap_size
    target = data.split(pc.benchmark, "target", "train")
    teacher = load_model(stages.supervised(pc), "cpu")
    images = target.images[:n].float() / 255
    views = mt.make_views(images, c.mean_teacher, torch.Generator().manual_seed(0))
    with torch.no_grad():
        base_hm = mt.teacher_in_base_frame([teacher(views.teachers[0])], views, stride)
    truth = warp_keypoints(target.keypoints[:n].float(), views.original_to_base) / stride
    return c, target, base_hm, truth


def exercise_1(data, stages) -> dict:
    """(1) ``mask_ratio`` is the quantile of the batch's confidences below which labels are dropped: 0.2
    keeps 80 % of the labels, 0.8 keeps the 20 % most confident. Fewer, more confident labels are more
    often correct (higher precision) but teach fewer joints — mostly the easy ones, so the hard joints
    (fingertips) get almost no signal. Measured here on the pre-trained teacher's labels, and by training
    the Baseline with both ratios (its history's ``correct`` is the share of used labels that were right)."""
    c, target, base_hm, truth = _teacher_labels(data, stages)
    h = c.pretrain.data.target.heatmap_size
    out = {}
    for ratio in (0.2, 0.5, 0.8):
        labels = make_pseudo_labels(base_hm, c.train.loss, c.pretrain.data.target.sigma, ratio, target.skeleton, None)
        ok = (labels.coords2d - truth).norm(dim=-1) < 0.05 * h
        kept = float(labels.m2d.float().mean())
        assert abs(kept - (1 - ratio)) < 0.1, (ratio, kept)
        out[ratio] = {"kept": kept, "correct_of_kept": float(ok[labels.m2d].float().mean())}
    for ratio in (0.2, 0.8):
        hist = stages.adapted(cfg("baseline", mask_ratio=ratio)).history
        out[ratio]["trained_correct"] = hist[-1]["correct"]
        assert finite(hist[-1]["correct"])
    expect(out[0.8]["correct_of_kept"] > out[0.2]["correct_of_kept"], "a higher ratio keeps more correct labels")
    return out


def exercise_2(data, stages) -> dict:
    """(2) Without ``JOINT_LIMITS`` the lifted 3D labels keep whatever bend the lifting network predicts:
    on curled fingers (ambiguous in 2D: a finger bent towards or away from the camera projects alike)
    some joints bend backwards or beyond anatomy, and their reprojections land off the finger. With the
    limits every bend is clamped (bone lengths keep the reference ratios either way)."""
    c = cfg("pseudo")
    net, ratios = stages.lifting_model(c.lifting)
    target = data.split(c.pretrain.benchmark, "target", "val")
    sk = target.skeleton
    norm, _, _ = normalise(target.keypoints.float(), ROOT[sk.name])
    with torch.no_grad():
        raw = net.eval()(norm)
    limited, free = constrain(raw, sk, ratios), constrain(raw, sk, ratios, limits={})
    over = {}
    limited_joints = [sk.index(n) for n in JOINT_LIMITS.get(sk.name, {})]
    for label, pose in (("with_limits", limited), ("without_limits", free)):
        v = limit_violations(pose, sk)[:, limited_joints]  # degrees outside each joint's limit
        over[label] = float((v > 1.0).float().mean())
    # the limits are enforced root outwards and a ball joint's reachable set is sampled, so a
    # joint may stay a fraction of a degree outside; none stays more than a degree outside
    assert over["with_limits"] <= 0.01, over
    assert over["without_limits"] >= over["with_limits"]
    moved = (limited - free).norm(dim=-1).amax(-1)
    return {"share_of_bends_over_the_limit": over, "poses_changed_by_limits": float((moved > 1e-4).float().mean())}


def exercise_3(data, stages) -> dict:
    """(3) The teacher runs with BatchNorm in training mode (UniFrame): its running statistics were
    collected on *source* images, and the target's feature statistics differ (that is the domain gap,
    measured below at the first BatchNorm). In training mode each layer normalises with the statistics
    of the target batch itself (as AdaBN does), so the features the teacher's later layers see are
    distributed as in training. The cost: predictions depend on the batch, so batches must be large and
    mixed (the runner's batches are)."""
    c = cfg("baseline")
    model = load_model(stages.supervised(c.pretrain), "cpu").eval()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = {}
    hook = bn.register_forward_hook(lambda m, inp, out: seen.__setitem__("x", inp[0].detach()))
    stats = {}
    for name, domain, sl in (("source_a", "source", slice(0, 32)), ("source_b", "source", slice(32, 64)),
                             ("target", "target", slice(0, 32))):
        with torch.no_grad():
            model(data.split(c.pretrain.benchmark, domain, "train").images[sl].float() / 255)
        stats[name] = (seen["x"].mean((0, 2, 3)), seen["x"].std((0, 2, 3)))
    hook.remove()

    def gap(a, b):  # channel means apart, in units of the channel's std, plus the relative std change
        (ma, sa), (mb, sb) = stats[a], stats[b]
        return float(((ma - mb).abs() / sa.clamp_min(1e-5)).mean() + ((sb / sa.clamp_min(1e-5)) - 1).abs().mean())

    out = {"source_vs_source": gap("source_a", "source_b"), "source_vs_target": gap("source_a", "target")}
    assert finite(*out.values()) and out["source_vs_target"] > out["source_vs_source"], out
    return {"first_batchnorm_input_statistics_gap": out}


def main(cache_dir=None) -> dict:
    data, stages = setup(cache_dir)
    return {"1": exercise_1(data, stages), "2": exercise_2(data, stages), "3": exercise_3(data, stages)}


if __name__ == "__main__":
    for k, v in main().items():
        print(k, v)
