"""Keypoint coordinate conventions and heatmap decoding.

Conventions (project-wide): keypoints are (x, y) = (column, row), pixel centres at integer
coordinates. A heatmap of stride ``s`` has cell ``j`` centred on image pixel ``s * j``, the
convention of TLL/RegDA (``generate_target`` puts a point at cell ``int(x / s + 0.5)``, and
the evaluation maps cell ``j`` back to ``s * j``). Normalised coordinates in [-1, 1] follow
``torch.nn.functional.grid_sample(..., align_corners=True)``: ``u = 2 x / (W - 1) - 1``.
"""

from __future__ import annotations

import torch

from .errors import ConfigError, DataError


def _check_heatmaps(heatmaps: torch.Tensor) -> None:
    if heatmaps.dim() < 3:
        raise DataError(f"heatmaps must have shape (..., h, w), e.g. (B, K, h, w); "
                        f"got {tuple(heatmaps.shape)}", "pass a batch of per-joint heatmaps")


def _cell_xy(flat_index: torch.Tensor, width: int) -> torch.Tensor:
    """Flat index into an (h, w) map -> float (x, y) in cells."""
    return torch.stack([flat_index % width, torch.div(flat_index, width, rounding_mode="floor")], -1).float()


def argmax_2d(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard argmax of ``(..., h, w)`` maps -> coords ``(..., 2)`` (x, y) in cells, maxvals ``(...)``.

    Ties resolve to the first maximum in row-major order (as ``np.argmax`` on the flattened
    map in TLL ``get_max_preds``). No gradient flows through the coordinates."""
    _check_heatmaps(heatmaps)
    maxvals, index = heatmaps.flatten(-2).max(-1)
    return _cell_xy(index, heatmaps.shape[-1]), maxvals


def local_soft_argmax(heatmaps: torch.Tensor, radius: int = 3, eps: float = 1e-6) -> torch.Tensor:
    """Sub-cell coordinates ``(..., 2)`` from ``(..., h, w)`` maps, differentiable in the values.

    Hard argmax first (not differentiated), then the expectation of cell coordinates over the
    (2r+1)^2 window around it (clipped at the borders) with weights ReLU(heatmap) / sum.
    Where the window's sum is <= eps (an all-negative map) the argmax cell is returned."""
    if radius < 0:
        raise ConfigError(f"radius must be >= 0, got {radius}", "use e.g. radius=3")
    peak, _ = argmax_2d(heatmaps.detach())
    h, w = heatmaps.shape[-2:]
    xs = torch.arange(w, device=heatmaps.device, dtype=heatmaps.dtype)
    ys = torch.arange(h, device=heatmaps.device, dtype=heatmaps.dtype)
    peak = peak.to(heatmaps.dtype)
    in_x = (xs - peak[..., 0:1]).abs() <= radius  # (..., w)
    in_y = (ys - peak[..., 1:2]).abs() <= radius  # (..., h)
    window = in_y[..., :, None] & in_x[..., None, :]
    weights = torch.relu(heatmaps) * window
    total = weights.sum((-2, -1))
    x = (weights.sum(-2) * xs).sum(-1)
    y = (weights.sum(-1) * ys).sum(-1)
    soft = torch.stack([x, y], -1) / total.clamp_min(eps)[..., None]
    return torch.where((total > eps)[..., None], soft, peak)


def heatmap_to_image(coords: torch.Tensor, stride: float) -> torch.Tensor:
    """Heatmap cells -> input-image pixels: ``x_img = stride * x_cell`` (TLL/RegDA)."""
    return coords * stride


def image_to_heatmap(xy: torch.Tensor, stride: float) -> torch.Tensor:
    """Input-image pixels -> (fractional) heatmap cells: ``x_cell = x_img / stride``."""
    return xy / stride


def _size_wh(size: int | tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    w, h = (size, size) if isinstance(size, int) else tuple(size)
    if w < 2 or h < 2:
        raise ConfigError(f"size must be at least 2 pixels per side, got {size!r}",
                          "pass the image side as an int or (W, H)")
    return torch.tensor([w, h], dtype=like.dtype, device=like.device)


def pixel_to_normalized(xy: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Pixels ``(..., 2)`` -> [-1, 1] with ``align_corners=True``: ``u = 2 x / (W - 1) - 1``."""
    return 2 * xy / (_size_wh(size, xy) - 1) - 1


def normalized_to_pixel(uv: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`pixel_to_normalized`: ``x = (u + 1) (W - 1) / 2``."""
    return (uv + 1) * (_size_wh(size, uv) - 1) / 2
