"""PCK@0.05 as the baselines compute it, on hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from srpose_lib.data.heatmaps import gaussian_targets
from srpose_lib.errors import ConfigError, DataError
from srpose_lib.eval.pck import PCKAccumulator, pck_from_coords, pck_from_heatmaps
from srpose_lib.skeletons import BODY16, HAND21


def peak_maps(cells, h, w, value=1.0, background=0.0):
    """(1, K, h, w) maps, one peak per joint at cell (x, y); None = empty map."""
    maps = torch.full((1, len(cells), h, w), background)
    for k, cell in enumerate(cells):
        if cell is not None:
            maps[0, k, cell[1], cell[0]] = value
    return maps


def test_hits_on_64_maps_by_hand():
    # 64x64: errors divided by 6.4, hit when < 0.5, i.e. distance < 3.2 cells
    gt = peak_maps([(10, 10)] * 6, 64, 64)
    pred = peak_maps([(10, 10),   # d = 0                     -> hit
                      (13, 10),   # d = 3      -> 0.469         -> hit
                      (13, 11),   # d = sqrt(10) = 3.16 -> 0.494 -> hit
                      (13, 12),   # d = sqrt(13) = 3.61 -> 0.563 -> miss
                      (10, 14),   # d = 4      -> 0.625         -> miss
                      (7, 8)],    # d = sqrt(13)                 -> miss
                     64, 64)
    hits, valid = pck_from_heatmaps(pred, gt)
    assert valid.all()
    assert hits.tolist() == [[True, True, True, False, False, False]]


def test_exact_threshold_is_a_miss():
    # 20x20: normaliser 2, so one cell off is exactly 0.5, which is not < 0.5
    gt = peak_maps([(5, 5), (5, 5), (5, 5)], 20, 20)
    pred = peak_maps([(6, 5), (5, 5), (5, 4)], 20, 20)
    hits, _ = pck_from_heatmaps(pred, gt)
    assert hits.tolist() == [[False, True, False]]
    hits, _ = pck_from_heatmaps(pred, gt, thr=0.5001)
    assert hits.tolist() == [[True, True, True]]
    # 40x40: normaliser 4; 2 cells = 0.5 -> miss; diagonal sqrt(2) / 4 = 0.35 -> hit
    gt = peak_maps([(5, 5), (5, 5)], 40, 40)
    pred = peak_maps([(5, 7), (6, 6)], 40, 40)
    assert pck_from_heatmaps(pred, gt)[0].tolist() == [[False, True]]


def test_ignore_rule_x_or_y_at_most_one():
    # GT cells (1, 5) and (5, 1) are ignored (x <= 1 or y <= 1) even though visible and
    # predicted exactly; (2, 2) counts; an empty GT map decodes to (0, 0) and is ignored.
    gt = peak_maps([(1, 5), (5, 1), (2, 2), None, (0, 9)], 20, 20)
    pred = peak_maps([(1, 5), (5, 1), (2, 2), (0, 0), (0, 9)], 20, 20)
    hits, valid = pck_from_heatmaps(pred, gt)
    assert valid.tolist() == [[False, False, True, False, False]]
    assert hits.tolist() == [[False, False, True, False, False]]


def test_prediction_with_nonpositive_max_becomes_origin():
    # GT at (2, 2). A prediction peaking at (2, 2) but with max <= 0 becomes (0, 0):
    # distance sqrt(8) / 2 = 1.41 -> miss; the same map shifted positive -> hit.
    gt = peak_maps([(2, 2)] * 3, 20, 20)
    negative = peak_maps([(2, 2)] * 3, 20, 20, value=-0.1, background=-1.0)
    negative[0, 1, 2, 2] = 0.0  # max exactly 0 is also "<= 0"
    hits, valid = pck_from_heatmaps(negative, gt)
    assert valid.all() and not hits.any()
    hits, _ = pck_from_heatmaps(negative + 1.1, gt)
    assert hits.all()


def test_non_square_normaliser_is_h_w_swapped():
    # TLL divides by [h, w] / 10: on (h=20, w=40) maps the x error is divided by 2, the y
    # error by 4. GT (10, 10): dy = 1 -> 0.25 hit; dx = 1 -> 0.5 miss; dy = 2 -> 0.5 miss.
    gt = peak_maps([(10, 10)] * 3, 20, 40)
    pred = peak_maps([(10, 11), (11, 10), (10, 12)], 20, 40)
    assert pck_from_heatmaps(pred, gt)[0].tolist() == [[True, False, False]]


def reference_pck(pred, gt, thr=0.5):
    """Loop written from the TLL description: argmax (zeroed when max <= 0), ignore GT
    x <= 1 or y <= 1, each axis over [h, w] / 10, hit when the norm < thr."""
    b, k, h, w = pred.shape
    hits = np.zeros((b, k), bool)
    valid = np.zeros((b, k), bool)
    for n in range(b):
        for j in range(k):
            pts = []
            for m in (pred[n, j], gt[n, j]):
                i = int(np.argmax(m))
                pts.append(np.array([i % w, i // w], np.float32) * (m.max() > 0))
            if pts[1][0] > 1 and pts[1][1] > 1:
                valid[n, j] = True
                norm = np.array([h, w]) / 10
                hits[n, j] = np.linalg.norm(pts[0] / norm - pts[1] / norm) < thr
    return hits, valid


def test_matches_reference_loop_on_random_maps():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(6, 16, 2, generator=g) * 256
    gt, _ = gaussian_targets(xy, (torch.rand(6, 16, generator=g) > 0.2).float(), 256, 64, 2.0)
    pred, _ = gaussian_targets(xy + torch.randn(6, 16, 2, generator=g) * 10, torch.ones(6, 16), 256, 64, 2.0)
    pred = pred + 0.05 * torch.randn(pred.shape, generator=g) - 0.02
    hits, valid = pck_from_heatmaps(pred, gt)
    ref_hits, ref_valid = reference_pck(pred.numpy(), gt.numpy())
    np.testing.assert_array_equal(valid.numpy(), ref_valid)
    np.testing.assert_array_equal(hits.numpy(), ref_hits)
    assert 0 < hits.sum() < valid.sum()  # the case mixes hits and misses


def test_perfect_prediction_of_targets():
    # pred = GT maps: every valid joint is a hit; invisible joints and those in the first two
    # heatmap columns (x = 4 px -> cell 1) are not valid.
    xy = torch.tensor([[[100.0, 100.0], [4.0, 100.0], [12.0, 12.0], [50.0, 50.0]]])
    gt, _ = gaussian_targets(xy, torch.tensor([[1.0, 1.0, 1.0, 0.0]]), 256, 64, 2.0)
    hits, valid = pck_from_heatmaps(gt, gt)
    assert valid.tolist() == [[True, False, True, False]]
    assert torch.equal(hits, valid)


def test_pck_from_coords():
    gt = torch.tensor([[[100.0, 100.0]] * 4, [[50.0, 50.0]] * 4])
    off = torch.tensor([[3.0, 4.0], [3.0, 3.9], [0.0, 0.0], [12.75, 0.0]])
    pred = gt + off
    valid = torch.tensor([[1, 1, 0, 1], [1, 1, 1, 1]])
    # threshold 5: d = 5 exactly -> miss; d = 4.92 -> hit; invalid -> not a hit; d = 12.75 miss
    hits, v = pck_from_coords(pred, gt, valid, 5.0)
    assert hits.tolist() == [[False, True, False, False], [False, True, True, False]]
    assert v.dtype == torch.bool and v.tolist() == valid.bool().tolist()
    # per-sample thresholds (B, 1): 12.75 for sample 0 (d = 12.75 exactly -> miss), 13 for sample 1
    hits, _ = pck_from_coords(pred, gt, valid, torch.tensor([[12.75], [13.0]]))
    assert hits.tolist() == [[True, True, False, False], [True, True, True, True]]
    with pytest.raises(DataError):
        pck_from_coords(pred, gt, valid[:, :3], 5.0)


def test_body_all_is_the_twelve_limb_joints():
    # every limb joint hit, head/pelvis/thorax/neck missed -> All = 100, Head = 0
    acc = PCKAccumulator(BODY16)
    hits = torch.ones(3, 16, dtype=torch.bool)
    hits[:, [6, 7, 8, 9]] = False
    acc.update(hits, torch.ones(3, 16, dtype=torch.bool))
    groups = acc.per_group()
    assert list(groups) == ["Head", "Sld", "Elb", "Wrist", "Hip", "Knee", "Ankle", "All"]
    assert groups["All"] == 100.0 and groups["Head"] == 0.0
    assert sorted(BODY16.groups["All"]) == [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15]


def test_never_valid_joint_is_nan_and_left_out_of_its_group():
    acc = PCKAccumulator(HAND21)
    hits = torch.zeros(2, 21, dtype=torch.bool)
    valid = torch.ones(2, 21, dtype=torch.bool)
    valid[:, 4] = False                            # thumb tip never valid
    hits[:, 4] = True                              # ... its hits must not count
    hits[0, 8] = True                              # index tip: 1 / 2 -> 50
    hits[:, 12] = True                             # middle tip: 2 / 2 -> 100
    #                                                ring tip 16: 0 / 2 -> 0
    valid[1, 20] = False; hits[:, 20] = True       # little tip: 1 / 1 -> 100
    acc.update(hits, valid)
    pj = acc.per_joint()
    assert math.isnan(pj[4]) and pj[8] == 50 and pj[12] == 100 and pj[16] == 0 and pj[20] == 100
    groups = acc.per_group()
    assert groups["Fin"] == pytest.approx((50 + 100 + 0 + 100) / 4)  # 62.5, NaN skipped
    # All: 20 valid joints; hits only at 8 (50), 12 (100), 20 (100) -> 250 / 20
    assert groups["All"] == pytest.approx(12.5)
    hits_c, valid_c = acc.counts()
    assert hits_c[4] == 0 and valid_c[4] == 0 and valid_c[20] == 1 and hits_c[8] == 1
    empty = PCKAccumulator("hand21")
    assert all(math.isnan(v) for v in empty.per_group().values())


def test_whole_split_aggregation_differs_from_per_batch():
    # Wrist (joint 0) only matters; every other hand joint is valid and hit everywhere.
    #   batch A (2 samples): wrist valid in 1, hit            -> batch wrist acc 1.0
    #   batch B (3 samples): wrist valid in 3, none hit       -> batch wrist acc 0.0
    # whole split (ours):   wrist 1 / 4 = 25 %; All = (25 + 20 * 100) / 21 = 96.43 %
    # UniFrame meter (batch-size weighted): wrist (1.0*2 + 0.0*3) / 5 = 40 %
    # TLL erm per-batch All: A = 100, B = 2000/21 = 95.24 -> (2*100 + 3*95.24) / 5 = 97.14 %
    acc = PCKAccumulator(HAND21)
    hits_a = torch.ones(2, 21, dtype=torch.bool)
    valid_a = torch.ones(2, 21, dtype=torch.bool)
    valid_a[1, 0] = False
    hits_b = torch.ones(3, 21, dtype=torch.bool)
    hits_b[:, 0] = False
    valid_b = torch.ones(3, 21, dtype=torch.bool)
    acc.update(hits_a, valid_a)
    acc.update(hits_b, valid_b)
    assert acc.per_joint()[0] == pytest.approx(25.0)
    assert acc.per_group()["All"] == pytest.approx(2025 / 21)
    assert acc.per_group()["All"] != pytest.approx(97.14, abs=0.01)
    # batching does not matter: the same five samples in one batch give the same numbers
    one = PCKAccumulator(HAND21)
    one.update(torch.cat([hits_a, hits_b]), torch.cat([valid_a, valid_b]))
    assert torch.equal(one.per_joint(), acc.per_joint())
    # merge of two workers' accumulators = one accumulator over everything
    wa, wb = PCKAccumulator(HAND21), PCKAccumulator(HAND21)
    wa.update(hits_a, valid_a)
    wb.update(hits_b, valid_b)
    assert torch.equal(wa.merge(wb).per_joint(), acc.per_joint())
    assert acc.as_metrics("pck/hand/src/test")["pck/hand/src/test/all"] == pytest.approx(2025 / 21)
    acc.reset()
    assert acc.counts()[1].sum() == 0 and math.isnan(acc.per_joint()[0])


def test_accumulator_bad_input():
    acc = PCKAccumulator(HAND21)
    with pytest.raises(DataError):
        acc.update(torch.ones(2, 16, dtype=torch.bool), torch.ones(2, 16, dtype=torch.bool))
    with pytest.raises(ConfigError):
        acc.merge(PCKAccumulator(BODY16))
    with pytest.raises(DataError):
        pck_from_heatmaps(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 9))


def test_non_finite_ground_truth_is_ignored():
    gt = torch.tensor([[[10.0, 10.0], [float("nan"), 5.0], [20.0, float("inf")]]])
    pred = torch.tensor([[[10.0, 10.0], [5.0, 5.0], [20.0, 20.0]]])
    hits, valid = pck_from_coords(pred, gt, torch.ones(1, 3, dtype=torch.bool), 2.0)
    assert valid.tolist() == [[True, False, False]] and hits.tolist() == [[True, False, False]]
    maps = peak_maps([(10, 10), (20, 20)], 64, 64)
    gt_maps = maps.clone()
    gt_maps[0, 1, 3, 3] = float("nan")  # a NaN cell: no ground truth, not an (always missed) joint
    hits, valid = pck_from_heatmaps(maps, gt_maps)
    assert valid.tolist() == [[True, False]] and hits.tolist() == [[True, False]]
    acc = PCKAccumulator(HAND21)
    acc.update(torch.zeros(1, 21, dtype=torch.bool), torch.zeros(1, 21, dtype=torch.bool))
    assert math.isnan(acc.per_joint()[0])
