"""Heatmap decoding and coordinate conventions."""

import numpy as np
import pytest
import torch

from srpose_lib.errors import ConfigError, DataError
from srpose_lib.keypoints import (argmax_2d, heatmap_to_image, image_to_heatmap, local_soft_argmax,
                                  normalized_to_pixel, pixel_to_normalized)


def gaussian_maps(centres: torch.Tensor, h: int, w: int, sigma: float) -> torch.Tensor:
    """Continuous Gaussians (B, K, h, w) centred at sub-cell (x, y) ``centres`` (B, K, 2)."""
    ys, xs = torch.meshgrid(torch.arange(h).double(), torch.arange(w).double(), indexing="ij")
    dx = xs - centres[..., 0, None, None]
    dy = ys - centres[..., 1, None, None]
    return torch.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2)).float()


def test_argmax_matches_numpy_on_random_maps():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(4, 5, 7, 9, generator=g)
    coords, maxvals = argmax_2d(maps)
    flat = maps.numpy().reshape(4, 5, -1)
    idx = flat.argmax(-1)
    np.testing.assert_array_equal(coords[..., 0].numpy(), idx % 9)
    np.testing.assert_array_equal(coords[..., 1].numpy(), idx // 9)
    np.testing.assert_array_equal(maxvals.numpy(), flat.max(-1))
    assert coords.dtype == torch.float32


def test_argmax_ties_take_first_row_major():
    maps = torch.zeros(1, 2, 4, 5)
    maps[0, 0, 1, 3] = maps[0, 0, 2, 0] = 1.0  # (x=3, y=1) comes first in row-major order
    coords, maxvals = argmax_2d(maps)
    assert coords[0, 0].tolist() == [3.0, 1.0]
    assert coords[0, 1].tolist() == [0.0, 0.0]  # all-equal map -> first cell
    assert maxvals.tolist() == [[1.0, 0.0]]


def test_local_soft_argmax_subcell_accuracy():
    g = torch.Generator().manual_seed(1)
    centres = 8 + torch.rand(3, 6, 2, generator=g, dtype=torch.float64) * 48
    maps = gaussian_maps(centres, 64, 64, sigma=2.0)
    coords = local_soft_argmax(maps, radius=3)
    err = (coords.double() - centres).abs()
    assert err.max() < 0.25
    # and better than the hard argmax on average
    hard, _ = argmax_2d(maps)
    assert err.mean() < (hard.double() - centres).abs().mean()


def test_local_soft_argmax_window_and_border():
    maps = torch.zeros(1, 2, 16, 16)
    maps[0, 0, 5, 5] = 1.0
    maps[0, 0, 5, 7] = 1.0   # in the radius-3 window: mean x = 6
    maps[0, 0, 5, 15] = 0.5  # outside the window: ignored
    maps[0, 1, 0, 0] = 1.0   # at the corner the window is clipped
    maps[0, 1, 0, 1] = 1.0
    coords = local_soft_argmax(maps, radius=3)
    assert torch.allclose(coords[0, 0], torch.tensor([6.0, 5.0]))
    assert torch.allclose(coords[0, 1], torch.tensor([0.5, 0.0]))


def test_local_soft_argmax_falls_back_on_negative_maps():
    maps = -torch.rand(2, 3, 8, 8) - 0.1
    maps[0, 1, 4, 6] = -0.05
    coords = local_soft_argmax(maps)
    assert torch.isfinite(coords).all()
    assert coords[0, 1].tolist() == [6.0, 4.0]
    assert torch.equal(coords, argmax_2d(maps)[0])


def test_local_soft_argmax_gradient():
    maps = gaussian_maps(torch.tensor([[[10.3, 7.6]]], dtype=torch.float64), 16, 16, 2.0)
    maps.requires_grad_(True)
    coords = local_soft_argmax(maps)
    coords.sum().backward()
    assert torch.isfinite(maps.grad).all() and maps.grad.abs().sum() > 0
    # gradient only inside the 7x7 window around the peak (10, 8)
    assert maps.grad[0, 0, :, :7].abs().sum() == 0 and maps.grad[0, 0, 12:].abs().sum() == 0
    with pytest.raises(ConfigError):
        local_soft_argmax(maps, radius=-1)
    with pytest.raises(DataError):
        argmax_2d(torch.zeros(4, 4))


def test_stride_round_trip_and_convention():
    xy = torch.tensor([[12.0, 40.0], [0.0, 255.0]])
    cells = image_to_heatmap(xy, 4)
    assert cells.tolist() == [[3.0, 10.0], [0.0, 63.75]]  # cell j is centred at pixel 4 j
    assert torch.equal(heatmap_to_image(cells, 4), xy)


def test_normalized_round_trip_align_corners():
    xy = torch.tensor([[0.0, 0.0], [255.0, 127.0], [127.5, 63.5]])
    uv = pixel_to_normalized(xy, (256, 128))
    assert torch.allclose(uv, torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))
    assert torch.allclose(normalized_to_pixel(uv, (256, 128)), xy)
    g = torch.Generator().manual_seed(2)
    pts = torch.rand(5, 7, 2, generator=g, dtype=torch.float64) * 64
    assert torch.allclose(normalized_to_pixel(pixel_to_normalized(pts, 64), 64), pts)
    # agrees with grid_sample(align_corners=True): sampling at uv(x, y) reads pixel (x, y)
    img = torch.arange(12.0).reshape(1, 1, 3, 4)
    uv = pixel_to_normalized(torch.tensor([[[[2.0, 1.0]]]]), (4, 3))
    val = torch.nn.functional.grid_sample(img, uv, align_corners=True)
    assert val.item() == img[0, 0, 1, 2].item()
