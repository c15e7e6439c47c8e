"""Mechanism instruments (srpose_lib.eval.instruments) on hand-made batches."""

import pytest
import torch

from srpose_lib.errors import ConfigError
from srpose_lib.eval import instruments as ins
from srpose_lib.skeletons import BODY16, HAND21


def test_mask_precision_coverage_and_what_m3d_removes():
    gt = torch.zeros(1, 4, 2)
    c2 = torch.tensor([[[0.0, 0.0], [5.0, 0.0], [0.0, 0.0], [5.0, 0.0]]])  # right, wrong, right, wrong
    c3 = torch.tensor([[[0.0, 0.0], [0.5, 0.0], [5.0, 0.0], [5.0, 0.0]]])  # right, right, wrong, wrong
    m2d = torch.tensor([[True, True, True, False]])
    m3d = torch.tensor([[True, True, False, False]])
    out = ins.mask_metrics(c2, c3, m2d, m3d, gt, thresh=1.0)
    assert out["precision/m2d"] == pytest.approx(2 / 3) and out["coverage/m2d"] == 0.75
    assert out["precision/m3d"] == 1.0 and out["coverage/m3d"] == 0.5
    # M_3D removes joint 2 (a correct 2D label) and adds nothing
    assert out["precision/m2d_not_m3d"] == 1.0 and out["coverage/m2d_not_m3d"] == 0.25
    assert out["precision/m3d_not_m2d"] is None and out["coverage/m3d_not_m2d"] == 0.0
    assert out["precision/union"] == pytest.approx(4 / 6)  # both labels of joints 0-2
    assert ins.overlap(m2d, m3d) == pytest.approx(2 / 3)
    # only joints with ground truth count
    valid = torch.tensor([[True, False, True, True]])
    assert ins.mask_metrics(c2, None, m2d, None, gt, 1.0, valid)["precision/m2d"] == 1.0
    with pytest.raises(ConfigError, match="shape"):
        ins.mask_metrics(c2, c3, m2d[:, :3], m3d, gt, 1.0)


def test_error_taxonomy_on_a_body():
    # spread the joints so that each is far from every other one
    gt = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1).view(1, 16, 2) * 20
    pred = gt.clone()
    r_wrist, l_wrist, r_knee, head = (BODY16.index(n) for n in ("r_wrist", "l_wrist", "r_knee", "head_top"))
    pred[0, r_wrist] = gt[0, l_wrist] + 0.5  # on its left/right partner: inversion
    pred[0, r_knee] = gt[0, head] + 0.5  # on another joint: swap
    pred[0, 0] = gt[0, 0] + torch.tensor([1.5, 0.0])  # just outside PCK: jitter
    pred[0, l_wrist] = gt[0, l_wrist] + torch.tensor([10.0, 10.0])  # nowhere: miss
    codes = ins.classify_errors(pred, gt, 1.0, BODY16)
    assert codes[0, r_wrist] == 2 and codes[0, r_knee] == 3 and codes[0, 0] == 1 and codes[0, l_wrist] == 4
    assert (codes[0, [j for j in range(16) if j not in (r_wrist, r_knee, 0, l_wrist)]] == 0).all()
    selected = torch.ones(1, 16, dtype=torch.bool)
    shares = ins.error_taxonomy(pred, gt, selected, 1.0, BODY16)
    assert shares == {"errors/jitter": 0.25, "errors/inversion": 0.25, "errors/swap": 0.25, "errors/miss": 0.25}
    selected[0, l_wrist] = False  # unselected labels do not count
    assert ins.error_taxonomy(pred, gt, selected, 1.0, BODY16)["errors/miss"] == 0.0
    assert ins.error_taxonomy(gt, gt, selected, 1.0, BODY16)["errors/miss"] is None  # nothing wrong


def test_hand_inversion_is_same_finger_confusion():
    cp = ins.counterparts(HAND21)
    assert cp[HAND21.index("index_dip")] == tuple(HAND21.index(f"index_{s}") for s in ("mcp", "pip", "tip"))
    assert cp[0] == ()  # the wrist has no counterpart
    gt = torch.stack(torch.meshgrid(torch.arange(3.0), torch.arange(7.0), indexing="ij"), -1).view(1, 21, 2) * 20
    pred = gt.clone()
    pred[0, HAND21.index("index_dip")] = gt[0, HAND21.index("index_tip")]
    pred[0, HAND21.index("ring_dip")] = gt[0, HAND21.index("little_dip")]
    codes = ins.classify_errors(pred, gt, 1.0, HAND21)
    assert codes[0, HAND21.index("index_dip")] == 2 and codes[0, HAND21.index("ring_dip")] == 3


def test_grad_toward_gt_by_group_and_error_size():
    K = 16
    pred = torch.zeros(1, K, 2)
    gt = torch.zeros(1, K, 2)
    gt[0, :, 0] = torch.tensor([1.0, 3.0, 8.0, 1.0] * 4)  # errors of 1, 3, 8, 1 px along x
    grad = torch.zeros(1, K, 2)
    grad[0, :, 0] = -1.0  # -grad = +x: towards the truth ...
    grad[0, BODY16.index("r_wrist"), 0] = 1.0  # ... except for one wrist
    grad[0, BODY16.index("pelvis")] = 0.0  # no gradient: left out
    out = ins.grad_toward_gt(pred, grad, gt, BODY16)
    assert out["wrist"] == 0.5 and out["head"] == 1.0 and out["all"] == 1.0 - 1 / 12
    # joints 2, 6 (pelvis, left out), 10 (r_wrist, away) and 14 have 8 px errors
    assert BODY16.index("r_wrist") == 10 and BODY16.index("pelvis") == 6
    assert out["err_gt_5px"] == pytest.approx(2 / 3)
    assert out["err_lt_2px"] == 1.0 and out["err_2_5px"] == 1.0
    # the same gradients in pixels of a stride-4 heatmap put every error above 2 px
    assert ins.grad_toward_gt(pred, grad, gt, BODY16, px_per_unit=4.0)["err_lt_2px"] is None
    assert ins.grad_toward_gt(pred, -grad, gt, BODY16)["head"] == 0.0


def test_named_metric_keys():
    out = ins.named({"precision/m2d": 0.5, "errors/miss": 0.1}, "pl/hand/ours", 3)
    assert out == {"pl/hand/ours/precision/m2d/epoch_3": 0.5, "pl/hand/ours/errors/miss/epoch_3": 0.1}
    assert list(ins.named({"wrist": 1.0}, "rec/body/grad_toward_gt", 1)) == ["rec/body/grad_toward_gt/wrist/epoch_1"]
