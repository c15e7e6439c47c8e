"""Augmentation keeps keypoints on the pixels they label; the dataset builds targets."""

import types

import pytest
import torch

from srpose_lib.data.datasets import KeypointDataset, TargetConfig
from srpose_lib.data.transforms import (NO_AUGMENT, AugmentConfig, affine_matrix, invert_affine,
                                        random_affine, warp_images, warp_keypoints)
from srpose_lib.errors import ConfigError, DataError
from srpose_lib.keypoints import argmax_2d
from srpose_lib.skeletons import BODY16, HAND21
from srpose_lib.synth.benchmark import benchmark_config, render_split


def dot_images(keypoints, size=64):
    """Images that are black except a bright 1-pixel dot at every keypoint."""
    B, K, _ = keypoints.shape
    img = torch.zeros(B, 3, size, size)
    for b in range(B):
        for k in range(K):
            x, y = keypoints[b, k].round().long().tolist()
            img[b, :, y, x] = 1.0
    return img


def fake_split(keypoints, size=64):
    n, K, _ = keypoints.shape
    images = (dot_images(keypoints, size) * 255).to(torch.uint8)
    return types.SimpleNamespace(images=images, keypoints=keypoints, visible=torch.ones(n, K),
                                 keypoints3d=torch.zeros(n, K, 3), intrinsics=torch.eye(3).expand(n, 3, 3))


def test_flipped_left_wrist_lands_where_the_right_wrist_was():
    sk = BODY16
    kp = torch.rand(1, 16, 2) * 40 + 10
    ds = KeypointDataset(fake_split(kp), sk, TargetConfig(32, 1.0),
                         AugmentConfig(rotation=0, scale=(1, 1), translate=0, flip=1.0, color_jitter=0))
    sample = ds.get_batch(torch.tensor([0]), torch.Generator().manual_seed(0))
    assert sample["flipped"].all()
    lw, rw = sk.index("l_wrist"), sk.index("r_wrist")
    mirrored_right = torch.tensor([63 - kp[0, rw, 0], kp[0, rw, 1]])
    torch.testing.assert_close(sample["keypoints"][0, lw], mirrored_right)
    # and the image really has the (mirrored) dot there
    x, y = mirrored_right.round().long().tolist()
    assert sample["image"][0, 0, y, x] > 0.9
    # joints without a partner stay in place (mirrored)
    head = sk.index("head_top")
    assert torch.allclose(sample["keypoints"][0, head, 0], 63 - kp[0, head, 0])


def test_random_affine_moves_keypoints_with_their_pixels():
    gen = torch.Generator().manual_seed(3)
    kp = torch.rand(8, 5, 2) * 30 + 17
    img = dot_images(kp)
    cfg = AugmentConfig(rotation=60, scale=(0.8, 1.2), translate=0.05, flip=0.5, color_jitter=0)
    m, _ = random_affine(8, cfg, 64, gen)
    warped = warp_images(img, m)
    moved = warp_keypoints(kp, m)
    # every moved keypoint sits on a lit pixel of the warped image (bilinear: within 1 px)
    for b in range(8):
        for k in range(5):
            x, y = moved[b, k].tolist()
            patch = warped[b, 0, int(y) - 1:int(y) + 3, int(x) - 1:int(x) + 3]
            assert patch.max() > 0.2, (b, k)


def test_affine_inverse_and_rotation_direction():
    m = affine_matrix(torch.tensor([90.0]), torch.tensor([1.0]), torch.zeros(1, 2), torch.tensor([False]), 65)
    # +90 degrees turns a point right of the centre to above it (y points down)
    p = warp_keypoints(torch.tensor([[[42.0, 32.0]]]), m)
    torch.testing.assert_close(p, torch.tensor([[[32.0, 22.0]]]), atol=1e-4, rtol=0)
    back = warp_keypoints(p, invert_affine(m))
    torch.testing.assert_close(back, torch.tensor([[[42.0, 32.0]]]), atol=1e-4, rtol=0)


def test_benchmark_samples_have_targets_at_their_keypoints():
    sp = render_split(benchmark_config("hand", num_val=8, num_train=8, num_test=8), "source", "val")
    ds = KeypointDataset(sp, HAND21, TargetConfig(32, 1.0))
    s = ds[3]
    assert s["image"].shape == (3, 64, 64) and s["image"].max() <= 1.0
    assert s["heatmaps"].shape == (21, 32, 32) and s["weights"].shape == (21,)
    peak, _ = argmax_2d(s["heatmaps"][None])
    expected = torch.floor(s["keypoints"] / 2 + 0.5)
    torch.testing.assert_close(peak[0], expected)
    assert (s["weights"] == 1).all()  # label='all': occluded joints are labelled too
    vis_ds = KeypointDataset(sp, HAND21, TargetConfig(32, 1.0, label="visible"))
    torch.testing.assert_close(vis_ds[3]["weights"], sp.visible[3].float())


def test_batches_are_reproducible_from_the_generator():
    sp = render_split(benchmark_config("body", num_val=16, num_train=8, num_test=8), "target", "val")
    ds = KeypointDataset(sp, BODY16, TargetConfig(32, 1.0), AugmentConfig(blur=0.8, blur_prob=0.5, flip=0.5))
    a = ds.get_batch(torch.arange(6), torch.Generator().manual_seed(5))
    b = ds.get_batch(torch.arange(6), torch.Generator().manual_seed(5))
    c = ds.get_batch(torch.arange(6), torch.Generator().manual_seed(6))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["keypoints"], b["keypoints"])
    assert not torch.equal(a["image"], c["image"])
    plain = KeypointDataset(sp, BODY16, TargetConfig(32, 1.0), None).get_batch(torch.arange(6))
    assert torch.equal(plain["keypoints"], sp.keypoints[:6])


def test_bad_inputs_name_the_problem():
    kp = torch.rand(2, 16, 2) * 40 + 10
    with pytest.raises(DataError, match=r"expected \(N, 21, 2\)"):
        KeypointDataset(fake_split(kp), HAND21, TargetConfig(32, 1.0))
    with pytest.raises(ConfigError, match="not a multiple"):
        KeypointDataset(fake_split(kp), BODY16, TargetConfig(24, 1.0))
    with pytest.raises(ConfigError, match="label"):
        TargetConfig(32, 1.0, label="occluded")
    with pytest.raises(ConfigError, match="probabilit"):
        AugmentConfig(flip=2.0)
    assert NO_AUGMENT.rotation == 0
