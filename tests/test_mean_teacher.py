"""Mean-teacher pieces: exact warp-back, EMA, mask, rectified labels, occlusion, views."""

import math

import pytest
import torch

from srpose_lib.adapt import mean_teacher as mt
from srpose_lib.data.heatmaps import gaussian_targets
from srpose_lib.data.transforms import invert_affine, warp_keypoints
from srpose_lib.keypoints import argmax_2d
from srpose_lib.models import ModelConfig, build_pose_net


def test_teacher_heatmaps_warped_forward_and_back_keep_their_peak():
    gen = torch.Generator().manual_seed(0)
    B, K, S, h = 16, 5, 64, 32
    stride = S / h
    cells = 8 + torch.rand(B, K, 2, generator=gen) * 16  # away from the border
    heat, _ = gaussian_targets(cells * stride, torch.ones(B, K), S, h, 1.0)
    view = mt.random_view(B, mt.ViewConfig(rotation=180, shear=30, scale=(0.8, 1.2)), S, gen)
    forward = mt.warp_heatmaps(heat, view, stride)
    back = mt.warp_heatmaps(forward, invert_affine(view), stride)
    peak, _ = argmax_2d(back)
    orig, _ = argmax_2d(heat)
    inside = ((warp_keypoints(orig * stride, view) / stride).clamp(0, h - 1) == warp_keypoints(orig * stride, view) / stride).all(-1)
    err = (peak - orig).norm(dim=-1)[inside]
    assert inside.float().mean() > 0.5 and (err <= 1.0 + 1e-6).all(), err.max()
    # and the forward warp moves the peak where the view's affine says
    fpeak, _ = argmax_2d(forward)
    moved = warp_keypoints(orig * stride, view) / stride
    assert ((fpeak - moved).norm(dim=-1)[inside] <= 1.5).all()


def test_ema_updates_parameters_only():
    cfg = ModelConfig(arch="resnet_tiny", deconv_channels=(8, 8, 8), tiny_widths=(4, 4, 4, 4))
    torch.manual_seed(0)
    teacher, student = build_pose_net(cfg, 3), build_pose_net(cfg, 3)
    t0 = [p.clone() for p in teacher.parameters()]
    s0 = [p.clone() for p in student.parameters()]
    student.train()(torch.rand(2, 3, 64, 64))  # changes the student's BN running stats
    buffers = [b.clone() for b in teacher.buffers()]
    mt.ema_update(teacher, student, 0.9)
    for t, a, b in zip(teacher.parameters(), t0, s0):
        torch.testing.assert_close(t, 0.9 * a + 0.1 * b)
    assert all(torch.equal(a, b) for a, b in zip(teacher.buffers(), buffers))


def test_confidence_mask_keeps_keypoints_above_the_batch_quantile():
    conf = torch.tensor([[0.1, 0.9, 0.5], [0.7, 0.2, 0.6]])
    # k = int(0.5 * 6) = 3 -> 3rd smallest is 0.5; strictly above: 0.9, 0.7, 0.6
    assert mt.confidence_mask(conf, 0.5).tolist() == [[False, True, False], [True, False, True]]
    assert mt.confidence_mask(conf, 0.0).all()


def test_confidence_is_one_for_a_perfect_prediction_in_both_losses():
    heat, _ = gaussian_targets(torch.tensor([[[20.0, 30.0]]]), torch.ones(1, 1), 64, 32, 1.0)
    assert mt.confidence(heat, "mse", 1.0).item() == pytest.approx(1.0)
    logits = torch.log(heat.clamp_min(1e-12))  # a KL net whose softmax equals the target
    assert mt.confidence(logits, "kl", 1.0).item() == pytest.approx(1.0, rel=1e-3)


def test_rectified_labels_and_student_targets():
    coords = torch.tensor([[[5.0, 7.0], [40.0, 3.0]]])
    heat, w = mt.rectify(coords, 32, 1.0, 2.0)
    peak, _ = argmax_2d(heat)
    assert peak[0, 0].tolist() == [5.0, 7.0] and w.tolist() == [[1.0, 0.0]]
    views = mt.TargetViews(torch.zeros(1, 3, 64, 64), [], mt.random_view(1, mt.ViewConfig(), 64, torch.Generator().manual_seed(1)),
                           [], torch.eye(2, 3)[None])
    base = torch.tensor([[[16.0, 16.0]]])
    target, weight = mt.student_targets(base, views, 32, 1.0, 2.0)
    expected = warp_keypoints(base * 2, views.base_to_student) / 2
    if weight.item() > 0:
        peak, _ = argmax_2d(target)
        assert (peak - expected).abs().max() <= 0.5 + 1e-6


def test_occlusion_copies_a_patch_over_one_confident_keypoint_only_where_chosen():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 64, 64, generator=gen)
    centres = torch.full((4, 2, 2), 32.0)
    candidates = torch.tensor([[True, False], [False, False], [True, True], [False, True]])
    out, chosen = mt.occlude(images, centres, candidates, rate=1.0, half_size=5, generator=gen)
    assert chosen.tolist() == [True, False, True, True]
    assert torch.equal(out[1], images[1])  # no candidate: untouched
    for b in (0, 2, 3):
        changed = (out[b] != images[b]).any(0)
        ys, xs = changed.nonzero(as_tuple=True)
        assert 27 <= ys.min() and ys.max() < 37 and 27 <= xs.min() and xs.max() < 37
        assert changed.sum() > 50  # a 10x10 patch (a few pixels may coincide)
    none, chosen = mt.occlude(images, centres, candidates, rate=0.0, half_size=5, generator=gen)
    assert torch.equal(none, images) and not chosen.any()


def test_views_move_pixels_where_their_affines_say():
    gen = torch.Generator().manual_seed(3)
    img = torch.zeros(2, 3, 64, 64)
    img[:, :, 30:34, 20:24] = 1.0  # a bright square centred at (21.5, 31.5)
    cfg = mt.MeanTeacherConfig(student=mt.ViewConfig(color_jitter=0.0), teacher=mt.ViewConfig(color_jitter=0.0))
    views = mt.make_views(img, cfg, gen)
    from srpose_lib.data.transforms import compose_affine

    point = torch.tensor([[[21.5, 31.5]]]).expand(2, 1, 2)
    where = warp_keypoints(point, compose_affine(views.base_to_student, views.original_to_base))
    for b in range(2):
        x, y = where[b, 0].round().long().tolist()
        if 2 <= x < 62 and 2 <= y < 62:
            assert views.student[b, 0, y - 2:y + 3, x - 2:x + 3].max() > 0.3


def test_consistency_loss_respects_the_mask():
    s = torch.rand(2, 3, 8, 8)
    p = torch.rand(2, 3, 8, 8)
    none = torch.zeros(2, 3, dtype=torch.bool)
    assert mt.consistency_loss(s, p, none, "mse").item() == 0.0
    full = torch.ones(2, 3, dtype=torch.bool)
    assert mt.consistency_loss(s, p, full, "mse").item() == pytest.approx(((s - p) ** 2).mean().item(), rel=1e-5)
    assert math.isfinite(mt.consistency_loss(s, p, full, "kl").item())


def test_kl_logits_warped_to_the_base_frame_pad_with_minus_infinity():
    """A KL net's logits are log-probabilities up to a constant: negative everywhere but near
    the keypoint. Padding the region the view did not see with logit 0 would give it the
    largest probability; the teacher's keypoint and confidence must survive the warp."""
    B, K, S, h = 4, 3, 64, 32
    stride = S / h
    cells = torch.tensor([16.0, 16.0]).expand(B, K, 2)
    target, _ = gaussian_targets(cells * stride, torch.ones(B, K), S, h, 1.0)
    logits = 8.0 * target - 10.0  # background logit -10, peak -2
    shift = torch.tensor([[1.0, 0.0, 10.0], [0.0, 1.0, 0.0]]).expand(B, 2, 3)  # base -> teacher
    views = mt.TargetViews(None, [None], None, [shift], None)
    base = mt.teacher_in_base_frame([logits], views, stride, "kl")
    peak, _ = argmax_2d(base)
    torch.testing.assert_close(peak, cells - torch.tensor([5.0, 0.0]))  # 10 px = 5 cells left
    conf_before = mt.confidence(logits, "kl", 1.0)
    assert (mt.confidence(base, "kl", 1.0) > 0.9 * conf_before).all()
    # MSE heatmaps still read 0 where the view did not see
    mse = mt.teacher_in_base_frame([target], views, stride)
    assert mse[..., -3:].abs().max() == 0 and argmax_2d(mse)[0].equal(peak)
