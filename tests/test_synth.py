"""The built-in benchmark: kinematics, rasteriser, scenes, splits and their cache."""

import math

import pytest
import torch

from srpose_lib.errors import ConfigError, DataError
from srpose_lib.synth.benchmark import (benchmark_config, load_split, render_split,
                                        sample_scene_table, split_key, Renderer)
from srpose_lib.synth.domains import domain_preset, kinematic_model, sample_keyposes
from srpose_lib.synth.kinematics import BodyModel, HandModel
from srpose_lib.synth.render import joint_visibility, project, rasterize


def small(task, **kw):
    return benchmark_config(task, num_train=32, num_val=16, num_test=16, **kw)


# ----------------------------------------------------------------------------- kinematics


@pytest.mark.parametrize("prior", ["broad", "grasp"])
def test_hand_forward_kinematics_keeps_bone_lengths(prior):
    model = HandModel()
    gen = torch.Generator().manual_seed(0)
    pose = sample_keyposes(model, prior, 64, gen)
    assert model.within_limits(pose).all()
    shape = model.sample_shape(64, gen, 0.1)
    pts = model.forward(pose, shape)
    from srpose_lib.synth.kinematics import _BONES

    for f_idx, finger in enumerate(model.fingers):
        base = 1 + 4 * f_idx
        for k in range(3):
            length = (pts[:, base + k + 1] - pts[:, base + k]).norm(dim=-1)
            expected = _BONES[finger][k] * shape[:, 2 + f_idx] * shape[:, 0]
            torch.testing.assert_close(length, expected, rtol=1e-4, atol=1e-4)


def test_hand_flexion_curls_fingers_towards_the_palm_side():
    model = HandModel()
    pose = torch.zeros(2, model.num_params)
    idx = model.param_names.index("index_flex2")
    pose[1, idx] = 90.0
    pts = model.forward(pose, torch.ones(2, model.num_shape))
    # a bent PIP moves the index tip towards the palm normal (-z) and down the hand (-y)
    assert pts[1, 8, 2] < pts[0, 8, 2] - 1.0
    assert pts[1, 8, 1] < pts[0, 8, 1] - 1.0


@pytest.mark.parametrize("prior", ["broad", "activities"])
def test_body_kinematics_limb_lengths_and_limits(prior):
    model = BodyModel()
    gen = torch.Generator().manual_seed(1)
    pose = sample_keyposes(model, prior, 64, gen)
    assert model.within_limits(pose).all()
    ones = torch.ones(64, model.num_shape)
    pts = model.forward(pose, ones)
    sk = model.skeleton
    thigh = (pts[:, sk.index("l_knee")] - pts[:, sk.index("l_hip")]).norm(dim=-1)
    forearm = (pts[:, sk.index("r_wrist")] - pts[:, sk.index("r_elbow")]).norm(dim=-1)
    torch.testing.assert_close(thigh, torch.full_like(thigh, 0.43))
    torch.testing.assert_close(forearm, torch.full_like(forearm, 0.26))
    # the model's left side is at +x in the standing pose
    rest = model.forward(torch.zeros(1, model.num_params), torch.ones(1, model.num_shape))
    assert rest[0, sk.index("l_hip"), 0] > 0 > rest[0, sk.index("r_hip"), 0]


def test_unknown_prior_is_an_error():
    with pytest.raises(ConfigError, match="prior"):
        sample_keyposes(HandModel(), "fist", 2, torch.Generator())


# ----------------------------------------------------------------------------- rasteriser


def test_nearer_capsule_wins_and_hides_the_joint_behind_it():
    K = torch.tensor([[[50.0, 0, 31.5], [0, 50.0, 31.5], [0, 0, 1]]])
    # two crossing capsules: a horizontal one at depth 10, a vertical one at depth 5
    a = torch.tensor([[[-3.0, 0, 10], [0, -3, 5]]])
    b = torch.tensor([[[3.0, 0, 10], [0, 3, 5]]])
    r = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]])
    frag = rasterize(a, b, r, K, 64)
    assert frag.part[0, 32, 32] == 1  # the nearer (vertical) capsule covers the crossing
    assert frag.part[0, 32, 20] == 0  # the far one is seen where it is alone
    assert frag.part[0, 0, 0] == -1 and math.isinf(frag.depth[0, 0, 0])
    assert 4.4 < frag.depth[0, 32, 32] < 5.0  # front surface: axis depth minus the bulge
    joints = torch.tensor([[[0.0, 0, 10], [-2.5, 0, 10]]])  # behind the crossing / in the open
    px, z = project(joints, K)
    vis = joint_visibility(px, z, frag.depth, 0.6)
    assert vis.tolist() == [[False, True]]


def test_normals_face_the_camera():
    K = torch.tensor([[[50.0, 0, 31.5], [0, 50.0, 31.5], [0, 0, 1]]])
    frag = rasterize(torch.tensor([[[0.0, -2, 10]]]), torch.tensor([[[0.0, 2, 10]]]),
                     torch.tensor([[[1.0, 1.0]]]), K, 64)
    n = frag.normal[0, :, 32, 32]
    assert n[2] < -0.99  # at the axis the surface faces the camera
    left = frag.normal[0, :, 32, 28]
    assert left[0] < -0.3  # towards the silhouette it turns sideways


# ----------------------------------------------------------------------------- scenes and splits


@pytest.mark.parametrize("task", ["hand", "body"])
def test_rendering_is_deterministic_and_independent_of_batching(task):
    cfg = small(task)
    a = render_split(cfg, "target", "val")
    b = render_split(cfg, "target", "val")
    assert torch.equal(a.images, b.images) and torch.equal(a.keypoints, b.keypoints)
    table = sample_scene_table(cfg, "target", "val")
    alone = Renderer(cfg, "target").render(table, torch.tensor([5]))
    assert torch.equal(alone["images"][0], a.images[5])
    c = render_split(benchmark_config(task, num_val=16, num_train=32, num_test=16, seed=1), "target", "val")
    assert not torch.equal(a.images, c.images)


@pytest.mark.parametrize("task", ["hand", "body"])
def test_annotations_are_consistent(task):
    cfg = small(task)
    sp = render_split(cfg, "source", "train")
    K = sp.skeleton.num_joints
    assert sp.images.shape == (32, 3, 64, 64) and sp.images.dtype == torch.uint8
    assert sp.keypoints.shape == (32, K, 2) and sp.keypoints3d.shape == (32, K, 3)
    px, _ = project(sp.keypoints3d, sp.intrinsics)
    torch.testing.assert_close(px, sp.keypoints, rtol=1e-4, atol=1e-3)
    # 1.5x square crop of the keypoint box: the box spans 1/1.5 of the crop on its long side
    extent = (sp.keypoints.max(1).values - sp.keypoints.min(1).values).max(-1).values
    torch.testing.assert_close(extent, torch.full_like(extent, 64 / 1.5), rtol=1e-3, atol=1e-2)
    assert (sp.keypoints > 0).all() and (sp.keypoints < 63).all()
    assert 0.3 < sp.visible.float().mean() < 1.0  # some self-occlusion, most joints visible


def test_pairs_come_from_one_sequence_within_the_gap():
    sp = render_split(small("body"), "target", "train")
    pairs = sp.pairs(max_gap=2)
    assert len(pairs) > 0
    assert (sp.sequence[pairs[:, 0]] == sp.sequence[pairs[:, 1]]).all()
    gap = (sp.frame[pairs[:, 0]] - sp.frame[pairs[:, 1]]).abs()
    assert ((gap >= 1) & (gap <= 2)).all()
    # consecutive frames move, but little: the base/driving regime of reconstruction
    d = (sp.keypoints3d[pairs[:, 0]] - sp.keypoints3d[pairs[:, 1]]).norm(dim=-1).mean()
    assert 0 < d < 0.3


def test_target_domain_differs_from_source():
    cfg = small("hand")
    src, tgt = render_split(cfg, "source", "val"), render_split(cfg, "target", "val")
    # plain backgrounds: the top row (background in a 1.5x crop) is uniform in the source
    def border_std(images):
        return (images.float() / 255)[..., 0, :].std(-1).mean()
    assert border_std(src.images) < 0.05 < border_std(tgt.images)
    assert tgt.visible.float().mean() < src.visible.float().mean() + 0.05  # occluders, grasps


def test_256px_rendering():
    cfg = benchmark_config("hand", image_size=256, num_val=4, num_train=4, num_test=4)
    sp = render_split(cfg, "target", "val")
    assert sp.images.shape == (4, 3, 256, 256)
    assert (sp.keypoints.max(1).values - sp.keypoints.min(1).values).max() > 150


def test_split_cache_roundtrip_and_corrupt_file(tmp_path):
    cfg = small("hand")
    first = load_split(cfg, "source", "val", tmp_path)
    path = tmp_path / "data" / f"{split_key(cfg, 'source', 'val')}.pt"
    assert path.exists()
    again = load_split(cfg, "source", "val", tmp_path)
    assert torch.equal(first.images, again.images)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=str(path.name)):
        load_split(cfg, "source", "val", tmp_path)


def test_split_key_changes_with_the_domain():
    cfg = small("hand")
    from srpose_lib.config import override

    other = override(cfg, target=domain_preset("hand", "target", noise=(0.0, 0.1)))
    assert split_key(cfg, "target", "test") != split_key(other, "target", "test")
    assert split_key(cfg, "source", "test") == split_key(other, "source", "test")


def test_bad_task_and_domain_names():
    with pytest.raises(ConfigError, match="unknown task 'hands'"):
        benchmark_config("hands")
    with pytest.raises(ConfigError, match="domain"):
        domain_preset("hand", "real")
    with pytest.raises(ConfigError, match="split"):
        sample_scene_table(small("hand"), "source", "validation")
    assert kinematic_model("body").skeleton.num_joints == 16
