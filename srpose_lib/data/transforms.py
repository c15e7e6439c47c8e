"""Batched data augmentation that moves keypoints with the pixels.

Every geometric augmentation is one 2x3 affine matrix per image, in pixel coordinates
(pixel centres at integers): rotation about the image centre, zoom, translation and an
optional horizontal flip. Images are warped with ``grid_sample(align_corners=True)`` and
keypoints with the same matrix, so they stay consistent by construction; a flip also swaps
left/right joints (``Skeleton.flip_permutation``). Photometric augmentation (colour
jitter, blur) leaves keypoints alone.

The baselines' ERM augmentation (Transfer-Learning-Library): rotation ±180° for hands and
±30° for bodies, RandomResizedCrop scale 0.6-1.3, ColorJitter 0.25, Gaussian blur radius
U(0, 0.8). :class:`AugmentConfig` holds the same knobs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths; all zero / one means no augmentation."""

    rotation: float = 30.0  # max |angle| in degrees
    scale: tuple[float, float] = (0.75, 1.25)  # zoom factor range (>1 zooms in)
    translate: float = 0.05  # max shift as a fraction of the image side
    flip: float = 0.0  # probability of a horizontal flip (swaps left/right joints)
    color_jitter: float = 0.25  # brightness, contrast, saturation factors in [1-j, 1+j]
    blur: float = 0.0  # max Gaussian blur sigma, px at 64 px (scales with size)
    blur_prob: float = 0.0

    def __post_init__(self):
        if not 0 <= self.flip <= 1 or not 0 <= self.blur_prob <= 1:
            raise ConfigError("augment.flip and augment.blur_prob are probabilities",
                              "use values in [0, 1]")
        if self.scale[0] <= 0 or self.scale[0] > self.scale[1]:
            raise ConfigError(f"augment.scale {self.scale} is not a valid range",
                              "use (low, high) with 0 < low <= high")


NO_AUGMENT = AugmentConfig(rotation=0.0, scale=(1.0, 1.0), translate=0.0, flip=0.0,
                           color_jitter=0.0, blur=0.0, blur_prob=0.0)


def affine_matrix(angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                  flip: torch.Tensor, size: int, shear: torch.Tensor | None = None) -> torch.Tensor:
    """Affine maps (B, 2, 3) from input to output pixels: flip, then shear along x by
    ``shear`` (degrees, optional), rotate by ``angle`` (degrees, counter-clockwise on screen)
    and zoom by ``scale`` about the centre, then shift by ``shift`` (B, 2) px."""
    c = (size - 1) / 2.0
    a = angle * (math.pi / 180.0)
    cos, sin = torch.cos(a) * scale, torch.sin(a) * scale
    # x' = R S H F (x - c) + c + shift, with y pointing down (so +angle turns anticlockwise)
    lin = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    if shear is not None:
        h = torch.zeros_like(lin)
        h[:, 0, 0] = h[:, 1, 1] = 1.0
        h[:, 0, 1] = torch.tan(shear * (math.pi / 180.0))
        lin = lin @ h
    fx = torch.where(flip, -torch.ones_like(cos), torch.ones_like(cos))
    lin = lin * torch.stack([fx, torch.ones_like(fx)], -1)[:, None, :]
    centre = torch.tensor([c, c], dtype=angle.dtype, device=angle.device)
    return torch.cat([lin, (centre - lin @ centre + shift)[..., None]], -1)


def compose_affine(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """The affine map ``outer ∘ inner`` (apply ``inner`` first), both (B, 2, 3)."""
    lin = outer[:, :, :2] @ inner[:, :, :2]
    return torch.cat([lin, outer[:, :, :2] @ inner[:, :, 2:] + outer[:, :, 2:]], -1)


def rescale_affine(m: torch.Tensor, stride: float) -> torch.Tensor:
    """An image-pixel affine as a heatmap-cell affine: cell j sits at pixel ``stride * j``,
    so the linear part stays and the translation divides by the stride."""
    return torch.cat([m[:, :, :2], m[:, :, 2:] / stride], -1)


def random_affine(n: int, cfg: AugmentConfig, size: int, generator: torch.Generator | None = None,
                  device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random augmentation matrices (n, 2, 3) and flip flags (n,)."""
    def u(lo, hi, shape=(n,)):
        return lo + (hi - lo) * torch.rand(shape, generator=generator)

    angle = u(-cfg.rotation, cfg.rotation)
    scale = torch.exp(u(math.log(cfg.scale[0]), math.log(cfg.scale[1])))
    shift = u(-cfg.translate, cfg.translate, (n, 2)) * size
    flip = torch.rand(n, generator=generator) < cfg.flip
    m = affine_matrix(angle, scale, shift, flip, size)
    return (m.to(device), flip.to(device)) if device is not None else (m, flip)


def invert_affine(m: torch.Tensor) -> torch.Tensor:
    """Inverse of affine maps (B, 2, 3)."""
    lin = torch.linalg.inv(m[:, :, :2])
    return torch.cat([lin, -(lin @ m[:, :, 2:])], 2)


def warp_keypoints(keypoints: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Apply affine maps (B, 2, 3) to keypoints (B, K, 2)."""
    return keypoints @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]


def warp_images(images: torch.Tensor, m: torch.Tensor, out_size: int | None = None,
                padding_mode: str = "zeros") -> torch.Tensor:
    """Warp images (B, C, H, W) by affine maps (B, 2, 3) from input to output pixels."""
    B, C, H, W = images.shape
    S = out_size or W
    inv = invert_affine(m)  # output pixel -> input pixel
    # normalised coordinates (align_corners=True): u = 2 x / (size - 1) - 1
    to_px = torch.tensor([[(S - 1) / 2, 0, (S - 1) / 2], [0, (S - 1) / 2, (S - 1) / 2], [0, 0, 1]],
                         dtype=m.dtype, device=m.device)
    to_norm = torch.tensor([[2 / (W - 1), 0, -1], [0, 2 / (H - 1), -1]], dtype=m.dtype, device=m.device)
    inv3 = torch.cat([inv, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=m.dtype, device=m.device).expand(B, 1, 3)], 1)
    theta = to_norm @ inv3 @ to_px
    grid = F.affine_grid(theta.to(images.dtype), (B, C, S, S), align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def flip_joints(values: torch.Tensor, flip: torch.Tensor, permutation: tuple[int, ...]) -> torch.Tensor:
    """Swap left/right joints of flipped samples: ``values`` (B, K, ...) per joint."""
    if not flip.any():
        return values
    perm = torch.tensor(permutation, device=values.device)
    swapped = values[:, perm]
    mask = flip.view(-1, *([1] * (values.dim() - 1)))
    return torch.where(mask, swapped, values)


def color_jitter(images: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, contrast and saturation factors in [1 - s, 1 + s] (torchvision's
    ColorJitter definitions), applied in that fixed order."""
    if strength <= 0:
        return images
    B = images.shape[0]

    def factor():
        return (1 - strength + 2 * strength * torch.rand(B, generator=generator)).to(images.device)[:, None, None, None]

    x = images * factor()
    gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    x = (x - gray.mean((2, 3), keepdim=True)) * factor() + gray.mean((2, 3), keepdim=True)
    x = x.clamp(0, 1)
    gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    x = (x - gray) * factor() + gray
    return x.clamp(0, 1)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Per-image Gaussian blur with standard deviations ``sigma`` (B,) px (0 = none)."""
    if max_sigma <= 0:
        return images
    B, C, H, W = images.shape
    r = max(1, int(math.ceil(3 * max_sigma)))
    x = torch.arange(-r, r + 1, dtype=images.dtype, device=images.device)
    s = sigma.to(images.device, images.dtype).clamp_min(1e-3)[:, None]
    k = torch.exp(-0.5 * (x[None] / s) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(C, 0)  # sigma ~ 0 gives a delta
    flat = F.pad(images.reshape(1, B * C, H, W), (r, r, r, r), mode="reflect")
    flat = F.conv2d(flat, k[:, None, None, :], groups=B * C)
    flat = F.conv2d(flat, k[:, None, :, None], groups=B * C)
    return flat.view(B, C, H, W)


def random_blur(images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    if cfg.blur <= 0 or cfg.blur_prob <= 0:
        return images
    B, size = images.shape[0], images.shape[-1]
    scale = size / 64.0
    sigma = torch.rand(B, generator=generator) * cfg.blur * scale
    sigma = torch.where(torch.rand(B, generator=generator) < cfg.blur_prob, sigma, torch.zeros_like(sigma))
    return gaussian_blur(images, sigma, cfg.blur * scale)
