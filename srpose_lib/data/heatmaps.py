"""Gaussian heatmap targets, exactly as the baselines build them.

Reproduces ``generate_target`` of Transfer-Learning-Library
(``tllib/vision/datasets/keypoint_detection/util.py``; UniFrame's ``lib/datasets/util.py``
is the same code), vectorised over any batch shape:

* stride ``s = image_size / heatmap_size`` per axis; the centre cell is
  ``mu = int(x / s + 0.5)`` (Python ``int``, i.e. truncation toward zero, per axis);
* a unit-peak Gaussian ``exp(-d^2 / (2 sigma^2))`` on a window of ``tmp_size = 3 sigma``
  around the centre; outside the window the map is 0;
* weight = visibility, but 0 (and an empty map) when the centre falls off the grid;
  the Gaussian is drawn only where visibility > 0.5.

Two quirks carry over on purpose: the window bounds use ``int()`` (truncation), so for a
non-integer ``3 sigma`` and a window that crosses the top/left border the drawn Gaussian is
shifted by one cell; and a joint with 0 < visibility <= 0.5 keeps its weight but gets an
empty map. Keypoints are (x, y) = (column, row) in input-image pixels.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError, DataError


def _pair(size: int | tuple[int, int], what: str) -> tuple[int, int]:
    """``int`` or ``(W, H)`` -> ``(W, H)``, validated."""
    w, h = (size, size) if isinstance(size, int) else tuple(size)
    if w <= 0 or h <= 0:
        raise ConfigError(f"{what} must be positive, got {size!r}",
                          f"pass {what} as a positive int or a (W, H) pair")
    return int(w), int(h)


def _axis_profile(mu: torch.Tensor, n_cells: int, tmp_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets (cell - Gaussian centre) along one axis and the in-window mask.

    ``mu`` (...,) integer-valued float64. TLL's patch ``g`` of ``len(arange(0, 2t+1))``
    samples has its centre at ``(2t+1) // 2`` and its first sample at cell ``ul = int(mu - t)``;
    cells ``[ul, br)`` with ``br = int(mu + t + 1)`` receive it. Returns (..., n_cells) each."""
    ul = torch.trunc(mu - tmp_size)
    br = torch.trunc(mu + tmp_size + 1)
    x0 = math.floor((2 * tmp_size + 1) / 2)
    cells = torch.arange(n_cells, device=mu.device, dtype=torch.float64)
    offset = cells - ul[..., None] - x0
    inside = (cells >= ul[..., None]) & (cells < br[..., None])
    return offset, inside


def gaussian_targets(keypoints: torch.Tensor, visible: torch.Tensor,
                     image_size: int | tuple[int, int], heatmap_size: int | tuple[int, int],
                     sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps and weights for keypoints ``(..., K, 2)`` with visibility ``(..., K)``.

    ``image_size`` / ``heatmap_size`` are an int (square) or ``(W, H)`` as in TLL.
    Returns float32 heatmaps ``(..., K, H_h, W_h)`` and weights ``(..., K)`` on the
    keypoints' device (TLL ``generate_target`` semantics, see the module docstring)."""
    if keypoints.shape[-1:] != (2,) or keypoints.dim() < 2:
        raise DataError(f"keypoints must have shape (..., K, 2), got {tuple(keypoints.shape)}",
                        "pass (x, y) pixel coordinates in the last dimension")
    if visible.shape != keypoints.shape[:-1]:
        raise DataError(f"visible must have shape {tuple(keypoints.shape[:-1])}, "
                        f"got {tuple(visible.shape)}", "pass one visibility per keypoint")
    if not sigma > 0:
        raise ConfigError(f"sigma must be positive, got {sigma!r}", "use e.g. sigma=2")
    (iw, ih), (hw, hh) = _pair(image_size, "image_size"), _pair(heatmap_size, "heatmap_size")

    xy = keypoints.detach().to(torch.float64)
    stride = torch.tensor([iw / hw, ih / hh], dtype=torch.float64, device=xy.device)
    mu = torch.trunc(xy / stride + 0.5)
    size = torch.tensor([hw, hh], dtype=torch.float64, device=xy.device)
    on_grid = ((mu >= 0) & (mu < size)).all(-1)

    tmp_size = sigma * 3
    dx, in_x = _axis_profile(mu[..., 0], hw, tmp_size)
    dy, in_y = _axis_profile(mu[..., 1], hh, tmp_size)
    # TLL evaluates the patch in float32: exp(-(dx^2 + dy^2) / (2 sigma^2))
    d2 = (dy[..., :, None] ** 2 + dx[..., None, :] ** 2).to(torch.float32)
    gauss = torch.exp(-d2 / torch.tensor(2 * sigma ** 2, dtype=torch.float32))

    vis = visible.detach().to(device=xy.device, dtype=torch.float32)
    draw = on_grid & (vis > 0.5)
    mask = in_y[..., :, None] & in_x[..., None, :] & draw[..., None, None]
    heatmaps = torch.where(mask, gauss, torch.zeros((), dtype=torch.float32, device=xy.device))
    weights = torch.where(on_grid, vis, torch.zeros_like(vis))
    return heatmaps, weights
