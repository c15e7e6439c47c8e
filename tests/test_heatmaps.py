"""gaussian_targets against a per-joint loop written from TLL's ``generate_target`` description."""

import math

import numpy as np
import pytest
import torch

from srpose_lib.data.heatmaps import gaussian_targets
from srpose_lib.errors import ConfigError, DataError


def reference_target(joints, vis, image_size, heatmap_size, sigma):
    """One joint at a time, as TLL does: Python int() truncation, a float32 patch of
    len(arange(0, 2t+1)) samples centred at (2t+1)//2, pasted at ul = int(mu - t)."""
    k = len(joints)
    target = np.zeros((k, heatmap_size, heatmap_size), np.float32)
    weight = np.array(vis, np.float32)
    stride = image_size / heatmap_size
    t = sigma * 3
    for j in range(k):
        mu_x, mu_y = int(joints[j][0] / stride + 0.5), int(joints[j][1] / stride + 0.5)
        if not (0 <= mu_x < heatmap_size and 0 <= mu_y < heatmap_size):
            weight[j] = 0
            continue
        size = 2 * t + 1
        x = np.arange(0, size, 1, np.float32)
        c = size // 2
        patch = np.exp(-((x - c) ** 2 + (x[:, None] - c) ** 2) / (2 * sigma ** 2))
        ul = (int(mu_x - t), int(mu_y - t))
        br = (int(mu_x + t + 1), int(mu_y + t + 1))
        if weight[j] > 0.5:
            for row in range(max(0, ul[1]), min(br[1], heatmap_size)):
                for col in range(max(0, ul[0]), min(br[0], heatmap_size)):
                    target[j, row, col] = patch[row - ul[1], col - ul[0]]
    return target, weight


# edge / off-grid cases at 256 -> 64 (stride 4): int() truncates toward zero, so x = -5
# (-1.25 + 0.5 = -0.75 -> 0) is still on the grid while x = -6 (-> -1) is not; x = 253.9
# gives 63.98 -> 63 (on), 254 gives 64 (off).
EDGE = [(-5.0, 10.0), (-6.0, 10.0), (10.0, -5.9), (253.9, 100.0), (254.0, 100.0),
        (0.0, 0.0), (255.0, 255.0), (3.0, 250.0), (130.7, 2.2), (1000.0, -1000.0)]


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0])
def test_matches_reference_loop(sigma):
    g = torch.Generator().manual_seed(int(sigma * 10))
    b, k = 3, 10
    xy = torch.rand(b, k, 2, generator=g) * 300 - 22  # some off the 256 image
    xy[0] = torch.tensor(EDGE)
    vis = (torch.rand(b, k, generator=g) > 0.3).float()
    vis[1, :3] = torch.tensor([0.3, 0.5, 0.7])  # 0.3/0.5: weight kept but no map drawn
    heat, weight = gaussian_targets(xy, vis, 256, 64, sigma)
    assert heat.shape == (b, k, 64, 64) and weight.shape == (b, k)
    for i in range(b):
        ref_h, ref_w = reference_target(xy[i].double().numpy(), vis[i].numpy(), 256, 64, sigma)
        np.testing.assert_allclose(heat[i].numpy(), ref_h, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(weight[i].numpy(), ref_w)


def test_edge_semantics_by_hand():
    xy = torch.tensor([[[-5.0, 10.0], [-6.0, 10.0], [253.9, 100.0], [254.0, 100.0], [41.9, 22.0]]])
    heat, weight = gaussian_targets(xy, torch.ones(1, 5), 256, 64, 2.0)
    assert weight.tolist() == [[1.0, 0.0, 1.0, 0.0, 1.0]]
    assert heat[0, 1].abs().sum() == 0 and heat[0, 3].abs().sum() == 0
    # 41.9 / 4 + 0.5 = 10.975 -> cell 10; 22 / 4 + 0.5 = 6 -> row 6; unit peak there
    assert heat[0, 4, 6, 10] == 1.0
    assert heat[0, 4].flatten().argmax().item() == 6 * 64 + 10
    # window cut at 3 sigma = 6 cells: column 16 is in, 17 is out
    assert heat[0, 4, 6, 16] == pytest.approx(math.exp(-36 / 8), rel=1e-6)
    assert heat[0, 4, 6, 17] == 0
    # x = -5 lands on column 0
    assert heat[0, 0, 3, 0] == 1.0  # 10 / 4 + 0.5 = 3


def test_half_integer_window_shift_quirk():
    # sigma 1.5: t = 4.5, ul = int(mu - 4.5) truncates toward zero for mu < 4.5, which
    # shifts TLL's drawn peak one cell right/down of mu. We keep this on purpose.
    heat, _ = gaussian_targets(torch.tensor([[8.0, 40.0]]), torch.ones(1), 256, 64, 1.5)
    row = heat[0, 10]  # 40 / 4 + 0.5 -> row 10 (not near the border)
    assert row.argmax().item() == 3  # mu_x = int(2.5) = 2, peak drawn at 3
    assert heat[0, 10, 3] == 1.0


def test_non_square_and_unbatched():
    xy = torch.tensor([[20.0, 60.0]])
    heat, weight = gaussian_targets(xy, torch.ones(1), (128, 256), (32, 64), 2.0)
    assert heat.shape == (1, 64, 32)
    assert heat[0].flatten().argmax().item() == 15 * 32 + 5


def test_bad_input():
    with pytest.raises(DataError):
        gaussian_targets(torch.zeros(2, 3, 3), torch.ones(2, 3), 256, 64, 2)
    with pytest.raises(DataError):
        gaussian_targets(torch.zeros(2, 3, 2), torch.ones(2, 4), 256, 64, 2)
    with pytest.raises(ConfigError):
        gaussian_targets(torch.zeros(2, 3, 2), torch.ones(2, 3), 256, 64, 0)
